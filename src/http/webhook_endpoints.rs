//! Outgoing webhook endpoints: register, read, enable, delete, test-fire,
//! and every delivery with its attempts, replayable.

use super::pagination::{Cursor, List, Page};
use crate::domain::{
    DeliveryId, EndpointKind, PartnerId, PostbackTemplate, ProgramId, TargetUrl, WebhookEndpointId,
    WebhookEvent,
};
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::outbox::endpoints::{self, Delivery, Endpoint, Owner, Target};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

/// A new endpoint.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookEndpointFields)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// `webhook` (default): signed JSON events are POSTed to `url`.
    /// `postback`: a partner's classic postback for `program_id`; `url` is a
    /// template whose macros are filled in, URL-encoded, and fetched with GET.
    #[serde(default)]
    kind: Option<EndpointKind>,
    /// Where to send: http(s); not a loopback, private or link-local address
    /// unless the operator allows it. A postback's template may use
    /// `{click_id}`, `{sub1}`..`{sub5}`, `{order_id}`, `{event}`,
    /// `{amount_minor}`, `{commission_minor}`, `{currency}` and `{status}`
    /// in its path and query.
    #[schema(schema_with = url_schema)]
    url: String,
    /// The event types to receive (`webhook.test` is sent to test-fires only).
    #[schema(schema_with = events_schema)]
    events: Vec<String>,
    /// The admin: the program that owns a webhook endpoint; a postback's
    /// program (required, from anyone).
    program_id: Option<ProgramId>,
    /// The admin only: the partner that owns it (events that concern it).
    partner_id: Option<PartnerId>,
}

/// An absolute http(s) URL (a postback's may hold `{macro}`s after its
/// host): `TargetUrl` and `PostbackTemplate` judge the rest.
fn url_schema() -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    // The plain URL shape, with braces allowed after the host.
    let pattern = crate::domain::plain_url_pattern().replace(r"%\[\]]*)?", r"%\[\]{}]*)?");
    debug_assert_ne!(pattern, crate::domain::plain_url_pattern());
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(crate::domain::TARGET_URL_MAX_LEN))
        .pattern(Some(pattern))
        .examples(["https://hooks.partner.example/mitra"])
}

/// 1 to as many event types as there are, each one an endpoint may take.
fn events_schema() -> utoipa::openapi::schema::ArrayBuilder {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let words: Vec<&str> = WebhookEvent::ALL
        .iter()
        .filter(|e| **e != WebhookEvent::Test)
        .map(|e| e.as_str())
        .collect();
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(words)),
        )
        .min_items(Some(1))
        .max_items(Some(WebhookEvent::ALL.len()))
        .examples([serde_json::json!([
            "commission.created",
            "commission.approved"
        ])])
}

/// The body as documented: its fields, and who owns the endpoint (a
/// postback names its program; a webhook endpoint is the program's or the
/// partner's, never both). `owner_of` and `postback_owner` refuse the rest.
struct NewEndpointDoc;

impl utoipa::PartialSchema for NewEndpointDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AllOfBuilder, AnyOfBuilder, ObjectBuilder, OneOfBuilder, Ref, Type,
        };
        let absent = || ObjectBuilder::new().schema_type(Type::Null);
        let postback = ObjectBuilder::new()
            .property(
                "kind",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([EndpointKind::Postback.as_str()])),
            )
            .property("program_id", Ref::from_schema_name("ProgramId"))
            .required("kind")
            .required("program_id");
        let webhook = AllOfBuilder::new()
            .item(
                ObjectBuilder::new().property(
                    "kind",
                    ObjectBuilder::new()
                        .schema_type(
                            [Type::String, Type::Null]
                                .into_iter()
                                .collect::<utoipa::openapi::schema::SchemaType>(),
                        )
                        .enum_values(Some([
                            serde_json::json!(EndpointKind::Webhook.as_str()),
                            serde_json::Value::Null,
                        ])),
                ),
            )
            .item(
                AnyOfBuilder::new()
                    .item(ObjectBuilder::new().property("program_id", absent()))
                    .item(ObjectBuilder::new().property("partner_id", absent())),
            );
        AllOfBuilder::new()
            .description(Some(
                "A new endpoint. A postback names `program_id` (the admin also `partner_id`); \
                 a webhook endpoint belongs to one owner, a program or a partner: the admin \
                 names one of `program_id` and `partner_id`, a key names at most itself.",
            ))
            .item(Ref::from_schema_name("WebhookEndpointFields"))
            .item(OneOfBuilder::new().item(postback).item(webhook))
            .into()
    }
}

impl utoipa::ToSchema for NewEndpointDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "NewWebhookEndpoint".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("WebhookEndpointFields".into(), NewEndpoint::schema()));
        <NewEndpoint as utoipa::ToSchema>::schemas(schemas);
    }
}

/// An endpoint just registered, with its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// The Standard Webhooks signing secret (`whsec_...`), shown once: pass
    /// it as is to a Standard Webhooks or Svix library to verify deliveries.
    #[schema(examples("whsec_8Qm2..."))]
    secret: String,
}

/// A delivery queued (a test-fire or a replay).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Queued {
    delivery_id: DeliveryId,
}

/// Who owns a postback, and the program it fires for.
fn postback_owner(who: Principal, body: &NewEndpoint) -> Result<(Owner, ProgramId), ApiError> {
    let program = body.program_id.ok_or_else(|| {
        ApiError::invalid("program_id", "a postback names the program it fires for")
    })?;
    let partner = match who {
        Principal::Admin => body
            .partner_id
            .ok_or_else(|| ApiError::invalid("partner_id", "the admin names the partner"))?,
        Principal::Partner(p) if body.partner_id.is_none_or(|q| q == p) => p,
        _ => {
            return Err(ApiError::Forbidden(
                "a postback belongs to a partner, set with its own key",
            ));
        }
    };
    Ok((Owner::Partner(partner), program))
}

fn owner_of(who: Principal, body: &NewEndpoint) -> Result<Owner, ApiError> {
    let named = (body.program_id, body.partner_id);
    match who {
        Principal::Admin => match named {
            (Some(p), None) => Ok(Owner::Program(p)),
            (None, Some(p)) => Ok(Owner::Partner(p)),
            _ => Err(ApiError::invalid(
                "program_id",
                "the admin names exactly one owner: program_id or partner_id",
            )),
        },
        Principal::Program(p) if named == (None, None) || named == (Some(p), None) => {
            Ok(Owner::Program(p))
        }
        Principal::Partner(p) if named == (None, None) || named == (None, Some(p)) => {
            Ok(Owner::Partner(p))
        }
        _ => Err(ApiError::Forbidden(
            "an endpoint belongs to the key that registers it",
        )),
    }
}

fn events(words: &[String]) -> Result<Vec<WebhookEvent>, ApiError> {
    if words.is_empty() || words.len() > WebhookEvent::ALL.len() {
        return Err(ApiError::invalid(
            "events",
            "name at least one event type, each once",
        ));
    }
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let e = WebhookEvent::parse(w).map_err(|e| ApiError::invalid(format!("events[{i}]"), e))?;
        if e == WebhookEvent::Test {
            return Err(ApiError::invalid(
                format!("events[{i}]"),
                "webhook.test is sent by test-fires to their endpoint only",
            ));
        }
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Register a webhook endpoint
///
/// Events are POSTed as JSON (`id`, `type`, `timestamp`, `data`) signed the
/// Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature: v1,<base64>`) with the `secret` answered here, once.
/// A program's endpoint receives its program's events; a partner's, the
/// events that concern it, in every program.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints",
    operation_id = "createWebhookEndpoint",
    tag = "webhooks",
    request_body = NewEndpointDoc,
    responses(
        (status = 201, description = "Registered; the secret is shown once.", body = CreatedEndpoint),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let new: NewEndpoint = body.json()?;
    let allow_private = state.settings.webhooks.allow_private;
    if new.kind == Some(EndpointKind::Postback) {
        let (owner, program) = postback_owner(who, &new)?;
        let template = PostbackTemplate::parse(&new.url, allow_private)
            .map_err(|e| ApiError::invalid("url", e))?;
        let events = events(&new.events)?;
        let Owner::Partner(partner) = owner else {
            unreachable!("a postback's owner is a partner")
        };
        let member = sqlx::query_scalar!(
            r#"select exists(select 1 from enrollments
                             where program_id = $1 and partner_id = $2 and status = 'active') as "found!""#,
            program.get(),
            partner.get()
        )
        .fetch_one(&state.db)
        .await?;
        if !member {
            return Err(ApiError::NotFound("program"));
        }
        let target = Target::Postback {
            program,
            template: &template,
        };
        let (endpoint, secret) = endpoints::create(&state.db, owner, target, &events).await?;
        tracing::info!(endpoint = %endpoint.id, "postback registered");
        return Ok(HttpResponse::Created().json(CreatedEndpoint { endpoint, secret }));
    }
    let owner = owner_of(who, &new)?;
    let url = TargetUrl::parse(&new.url, allow_private).map_err(|e| ApiError::invalid("url", e))?;
    let events = events(&new.events)?;
    let exists = match owner {
        Owner::Program(p) => crate::programs::get(&state.db, p).await?.is_some(),
        Owner::Partner(p) => {
            sqlx::query_scalar!(
                r#"select exists(select 1 from partners where id = $1) as "found!""#,
                p.get()
            )
            .fetch_one(&state.db)
            .await?
        }
    };
    if !exists {
        return Err(ApiError::NotFound(match owner {
            Owner::Program(_) => "program",
            Owner::Partner(_) => "partner",
        }));
    }
    let (endpoint, secret) =
        endpoints::create(&state.db, owner, Target::Webhook(&url), &events).await?;
    tracing::info!(endpoint = %endpoint.id, "webhook endpoint registered");
    Ok(HttpResponse::Created().json(CreatedEndpoint { endpoint, secret }))
}

/// The endpoint in the path, when `who` owns it (or is the admin).
async fn owned(state: &AppState, who: Principal, raw: &str) -> Result<Endpoint, ApiError> {
    let id = super::path_id::<WebhookEndpointId>(raw, "webhook endpoint")?;
    let endpoint = endpoints::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    let mine = match (who, endpoint.owner()) {
        (Principal::Admin, _) => true,
        (Principal::Program(p), Owner::Program(q)) => p == q,
        (Principal::Partner(p), Owner::Partner(q)) => p == q,
        _ => false,
    };
    if mine {
        Ok(endpoint)
    } else {
        Err(ApiError::NotFound("webhook endpoint"))
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    cursor: Option<Cursor>,
}

type EndpointPage = List<Endpoint>;
type DeliveryPage = List<Delivery>;

/// List webhook endpoints
///
/// The caller's endpoints (the admin: every one), oldest first.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    operation_id = "listWebhookEndpoints",
    tag = "webhooks",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of endpoints.", body = EndpointPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(query.limit, query.cursor)?;
    let owner = match who {
        Principal::Admin => None,
        Principal::Program(p) => Some(Owner::Program(p)),
        Principal::Partner(p) => Some(Owner::Partner(p)),
    };
    let rows = endpoints::list(&state.db, owner, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |e| e.id.get())))
}

/// Read a webhook endpoint
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}",
    operation_id = "getWebhookEndpoint",
    tag = "webhooks",
    params(("id" = WebhookEndpointId, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The endpoint.", body = Endpoint),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(owned(&state, who, &path).await?))
}

/// Delete a webhook endpoint
///
/// Nothing more is sent to it.
#[utoipa::path(
    delete,
    path = "/v1/webhook-endpoints/{id}",
    operation_id = "deleteWebhookEndpoint",
    tag = "webhooks",
    params(("id" = WebhookEndpointId, Path, description = "The endpoint's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = owned(&state, who, &path).await?;
    endpoints::delete(&state.db, endpoint.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Enable a webhook endpoint again
///
/// After it was disabled for failing: its failures are forgotten and the
/// deliveries that waited are sent at once.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/enable",
    operation_id = "enableWebhookEndpoint",
    tag = "webhooks",
    params(("id" = WebhookEndpointId, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "Enabled.", body = Endpoint),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn enable(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = owned(&state, who, &path).await?;
    endpoints::enable(&state.db, endpoint.id).await?;
    let endpoint = owned(&state, who, &path).await?;
    Ok(HttpResponse::Ok().json(endpoint))
}

/// Test-fire a webhook endpoint
///
/// Sends a `webhook.test` event to this endpoint only, through the same
/// queue, signature and retries as every event.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/test",
    operation_id = "testWebhookEndpoint",
    tag = "webhooks",
    params(("id" = WebhookEndpointId, Path, description = "The endpoint's id.")),
    responses(
        (status = 202, description = "Queued.", body = Queued),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn test_fire(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = owned(&state, who, &path).await?;
    let delivery_id = endpoints::test_fire(&state.db, &endpoint).await?;
    Ok(HttpResponse::Accepted().json(Queued { delivery_id }))
}

/// List an endpoint's deliveries
///
/// Newest first, each with its status, the last response code, and every
/// attempt (when, how long, the response code or why none came).
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}/deliveries",
    operation_id = "listWebhookDeliveries",
    tag = "webhooks",
    params(("id" = WebhookEndpointId, Path, description = "The endpoint's id."), PageQuery),
    responses(
        (status = 200, description = "A page of deliveries.", body = DeliveryPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn deliveries(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = owned(&state, who, &path).await?;
    let page = Page::parse(query.limit, query.cursor)?;
    let before = (page.after > 0).then_some(page.after);
    let rows = endpoints::deliveries(&state.db, endpoint.id, before, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |d| d.id.get())))
}

/// Replay a delivery
///
/// Sends the delivery's event to the endpoint again, as a new delivery with
/// the same event id (`webhook-id`).
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/replay",
    operation_id = "replayWebhookDelivery",
    tag = "webhooks",
    params(
        ("id" = WebhookEndpointId, Path, description = "The endpoint's id."),
        ("delivery_id" = DeliveryId, Path, description = "The delivery's id."),
    ),
    responses(
        (status = 202, description = "Queued.", body = Queued),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn replay(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw_endpoint, raw_delivery) = path.into_inner();
    let endpoint = owned(&state, who, &raw_endpoint).await?;
    let delivery = super::path_id::<DeliveryId>(&raw_delivery, "delivery")?;
    let delivery_id = endpoints::replay(&state.db, endpoint.id, delivery)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    Ok(HttpResponse::Accepted().json(Queued { delivery_id }))
}
