//! Conversion webhooks from shops, and reading conversions back.

use super::validate::Checker;
use crate::conversions::signature::{self, SignatureError};
use crate::conversions::{
    self, ConversionView, Event, NewConversion, StoreError, Stored, check_amount, check_code,
    check_occurred_at, check_reference,
};
use crate::domain::{
    Category, ConversionId, ConversionStatus, Currency, Item, ProgramId, check_items,
};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Largest webhook body read.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The webhook body's fields. Unknown fields are ignored: shops send what
/// their platform sends, and a new field must not break their integration.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ConversionFields)]
struct ConversionBody {
    /// The shop's order reference. A refund names its sale's.
    #[schema(schema_with = order_id_schema)]
    order_id: String,
    #[schema(value_type = Event)]
    event: String,
    /// The order amount (a refund: the amount refunded), in minor units.
    /// Required for sales and refunds; a lead needs none (0).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, examples(12500))]
    amount_minor: Option<i64>,
    /// Must be the program's currency. Required for sales and refunds; a
    /// lead without one is in the program's currency.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::Currency>)]
    currency: Option<String>,
    /// The `mitra_click` value the shopper landed with.
    #[serde(default)]
    #[schema(schema_with = code_schema)]
    click_id: Option<String>,
    /// A coupon code of one of the program's agreements.
    #[serde(default)]
    #[schema(schema_with = code_schema)]
    coupon: Option<String>,
    /// When it happened; default: when received.
    #[serde(default)]
    occurred_at: Option<DateTime<Utc>>,
    /// The shop's idempotency key; default: (`order_id`, `event`).
    #[serde(default)]
    #[schema(schema_with = event_id_schema)]
    event_id: Option<String>,
    /// A sale's lines (at most 100, each `sku` once), summing to
    /// `amount_minor`: rules may pay per category. A refund's lines name the
    /// sale's lines given back (by `sku`), summing to the refund's amount.
    /// Without lines, the whole amount earns the default rate.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::domain::Item>>, min_items = 1, max_items = 100)]
    items: Option<Vec<ItemBody>>,
    /// Sales only: the subscription this payment belongs to, 1 to 128
    /// characters. The subscription's first sale is attributed as any sale;
    /// later ones (renewals) go to the same agreement without a click, and
    /// earn as the rule's `recurring` says.
    #[serde(default)]
    #[schema(schema_with = subscription_id_schema)]
    subscription_id: Option<String>,
}

/// One order line as the shop sends it; checked into a `domain::Item`.
#[derive(Deserialize)]
pub(super) struct ItemBody {
    sku: String,
    #[serde(default)]
    category: Option<String>,
    amount_minor: i64,
    #[serde(default)]
    quantity: Option<i64>,
}

/// The webhook body as documented: its fields, and what each event requires
/// of them (`ConversionBody::parse` refuses the rest, 422).
struct NewConversionDoc;

impl utoipa::PartialSchema for NewConversionDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Ref, Type};
        let event = |word: Event| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([word.as_str()]))
        };
        let amount = |minimum: i64| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(minimum))
        };
        // Absent, or null.
        let absent = || ObjectBuilder::new().schema_type(Type::Null);
        // A sale and a refund need an amount (a refund's at least 1) and a
        // currency; a lead needs neither. Only a sale belongs to a
        // subscription; a lead has no lines.
        let priced = |word: Event, minimum: i64| {
            let object = ObjectBuilder::new()
                .property("event", event(word))
                .property("amount_minor", amount(minimum))
                .property("currency", Ref::from_schema_name("Currency"))
                .required("amount_minor")
                .required("currency");
            if word == Event::Sale {
                object
            } else {
                object.property("subscription_id", absent())
            }
        };
        AllOfBuilder::new()
            .description(Some(
                "A sale, lead or refund. Unknown fields are ignored: shops send what their \
                 platform sends. A sale and a refund need `amount_minor` (a refund's at least \
                 1) and `currency`; a lead needs neither (0, the program's). A lead has no \
                 `items`; only a sale has a `subscription_id`.",
            ))
            .item(Ref::from_schema_name("ConversionFields"))
            .item(
                OneOfBuilder::new()
                    .item(priced(Event::Sale, 0))
                    .item(priced(Event::Refund, 1))
                    .item(
                        ObjectBuilder::new()
                            .property("event", event(Event::Lead))
                            .property("items", absent())
                            .property("subscription_id", absent()),
                    ),
            )
            .into()
    }
}

impl utoipa::ToSchema for NewConversionDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "NewConversion".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("ConversionFields".into(), ConversionBody::schema()));
        <ConversionBody as utoipa::ToSchema>::schemas(schemas);
    }
}

fn order_id_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::domain::plain_schema(conversions::MAX_ID_LEN, false)
        .description(Some(
            "The shop's order reference, 1 to 128 characters without control characters. \
             A refund names its sale's.",
        ))
        .examples(["order-1001"])
}

pub(super) fn subscription_id_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::domain::plain_schema(conversions::MAX_ID_LEN, true).examples(["sub_8812"])
}

/// An optional RFC 3339 time: a `date-time` string, or `null` (absent).
pub(super) fn optional_time_schema() -> utoipa::openapi::schema::OneOfBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    use utoipa::openapi::{KnownFormat, SchemaFormat};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
}

fn event_id_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::domain::plain_schema(conversions::MAX_ID_LEN, true)
}

fn code_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::domain::plain_schema(conversions::MAX_CODE_LEN, true)
}

/// A conversion as stored, by id.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Receipt {
    conversion_id: ConversionId,
    /// `received` when new; a repeat answers the earlier conversion's status.
    status: ConversionStatus,
}

impl ConversionBody {
    fn parse(
        self,
        program: ProgramId,
        currency: Currency,
        now: DateTime<Utc>,
        request_id: Option<String>,
    ) -> Result<NewConversion, ApiError> {
        let mut c = Checker::new();
        c.check("order_id", check_reference(&self.order_id));
        if let Some(id) = &self.event_id {
            c.check("event_id", check_reference(id));
        }
        let event = Event::parse(&self.event).ok();
        if event.is_none() {
            c.fail("event", "unknown event (expected sale, lead or refund)");
        }
        // A lead needs no amount or currency; a sale and a refund need both.
        let is_lead = event == Some(Event::Lead);
        let amount = match self.amount_minor {
            None if is_lead => 0,
            None => {
                c.fail("amount_minor", "is required for a sale or a refund");
                0
            }
            Some(a) => c.check("amount_minor", check_amount(event, a)).unwrap_or(0),
        };
        match self.currency.as_deref().map(Currency::parse) {
            None if is_lead => {}
            None => c.fail("currency", "is required for a sale or a refund"),
            Some(Ok(cur)) if cur == currency => {}
            Some(Ok(_)) => c.fail("currency", format!("the program's currency is {currency}")),
            Some(Err(e)) => c.fail("currency", e),
        }
        for (field, value) in [("click_id", &self.click_id), ("coupon", &self.coupon)] {
            if let Some(v) = value {
                c.check(field, check_code(v));
            }
        }
        if let Some(sub) = &self.subscription_id {
            if event != Some(Event::Sale) {
                c.fail("subscription_id", "only a sale belongs to a subscription");
            }
            c.check("subscription_id", check_reference(sub));
        }
        let items = self.items.map(|lines| items(lines, event, amount, &mut c));
        if let Some(at) = self.occurred_at {
            c.check("occurred_at", check_occurred_at(at, now));
        }
        c.finish(|| {
            Some(NewConversion {
                program,
                event_id: self.event_id,
                order_id: self.order_id,
                event: event?,
                amount_minor: amount,
                currency,
                click_id: self.click_id,
                coupon: self.coupon,
                occurred_at: self.occurred_at,
                request_id,
                items: items.flatten(),
                subscription_id: self.subscription_id,
            })
        })
    }
}

/// Checks a sale's or refund's lines, recording each problem under its path.
pub(super) fn items(
    lines: Vec<ItemBody>,
    event: Option<Event>,
    amount_minor: i64,
    c: &mut Checker,
) -> Option<Vec<Item>> {
    if event == Some(Event::Lead) {
        c.fail("items", "a lead has no lines");
        return None;
    }
    let mut parsed = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        let category = match line.category.as_deref().map(Category::parse) {
            None => None,
            Some(Ok(category)) => Some(category),
            Some(Err(e)) => {
                c.fail(format!("items[{i}].category"), e);
                None
            }
        };
        parsed.push(Item {
            sku: line.sku,
            category,
            amount_minor: line.amount_minor,
            quantity: line.quantity.unwrap_or(1),
        });
    }
    match check_items(&parsed, amount_minor) {
        Ok(()) => Some(parsed),
        Err(e) => {
            c.fail(e.path, e.message);
            None
        }
    }
}

/// Reads the raw body (the signature covers its exact bytes), refusing
/// anything over the limit before reading it all, or too slow to arrive.
pub(crate) async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<web::BytesMut, ApiError> {
    super::body::read(req, payload, BODY_LIMIT, state.settings.body_timeout).await
}

/// Report a conversion (shop webhook)
///
/// POST /v1/programs/{id}/conversions: a shop reports a sale, lead or
/// refund. Answered 202 only after the conversion is committed; a repeat
/// answers 200 with the same id. Signed with `Mitra-Signature` or with
/// Standard Webhooks' `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` headers, under the program's webhook secret, not with
/// a bearer token; the body is read as JSON whatever its content type.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/conversions",
    operation_id = "receiveConversion",
    tag = "conversions",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body = NewConversionDoc,
    responses(
        (status = 202, description = "Stored; attribution follows.", body = Receipt),
        (status = 200, description = "A repeat of an earlier conversion: its id and status.",
            body = Receipt),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::BadSignature),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("webhook_signature" = []), ("standard_webhooks" = []))
)]
pub async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = receive_inner(&req, &path, payload, &state).await;
    state
        .metrics
        .webhook_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn receive_inner(
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(path, "program")?;
    let body = read_body(req, payload, state).await?;
    let ctx = state
        .webhook_contexts
        .get(&state.db, program)
        .await?
        .ok_or(ApiError::NotFound("program"))?;
    let now = Utc::now();
    verify_signature(req, &body, now.timestamp(), &ctx.secrets).map_err(|detail| {
        tracing::info!(program = %program, reason = detail, "webhook signature refused");
        ApiError::BadSignature(detail)
    })?;
    let parsed: ConversionBody = super::body::parse(&body)?;
    let new = parsed.parse(program, ctx.currency, now, request_id(req))?;
    let stored = store(state, new).await.map_err(store_error)?;
    let status = match stored {
        Stored::New(_) => actix_web::http::StatusCode::ACCEPTED,
        Stored::Repeat { .. } => actix_web::http::StatusCode::OK,
    };
    Ok(HttpResponse::build(status).json(Receipt::from(stored)))
}

/// Either scheme the webhook accepts: Standard Webhooks when its
/// `webhook-signature` header is there, else `Mitra-Signature`. Both verify
/// with the program's webhook secrets. The error is the detail for the shop.
fn verify_signature(
    req: &HttpRequest,
    body: &[u8],
    now: i64,
    secrets: &[String],
) -> Result<(), &'static str> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(sig) = header(signature::standard::SIGNATURE) {
        let id = header(signature::standard::ID);
        let t = header(signature::standard::TIMESTAMP);
        return signature::standard::verify(id, t, Some(sig), body, now, secrets).map_err(|e| {
            match e {
                SignatureError::Missing => {
                    "a Standard Webhooks signature needs the webhook-id and webhook-timestamp headers"
                }
                SignatureError::Malformed => {
                    "the webhook-signature or webhook-timestamp header is malformed \
                     (expected v1,<base64> and unix seconds)"
                }
                SignatureError::Stale => "the webhook-timestamp is more than 300 s away from now",
                SignatureError::Mismatch => {
                    "no v1 signature matches the webhook-id, timestamp and body \
                     under the program's webhook secrets"
                }
            }
        });
    }
    signature::verify(header(signature::HEADER), body, now, secrets).map_err(|e| match e {
        SignatureError::Missing => {
            "the Mitra-Signature header (or Standard Webhooks' webhook-signature) is missing"
        }
        SignatureError::Malformed => {
            "the Mitra-Signature header is malformed (expected t=<unix seconds>,v1=<hex>)"
        }
        SignatureError::Stale => "the signature's timestamp is more than 300 s away from now",
        SignatureError::Mismatch => {
            "no v1 signature matches the body under the program's webhook secrets"
        }
    })
}

/// The request id the middleware gave this request, kept with what it stores.
pub(crate) fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions()
        .get::<crate::http::middleware::RequestId>()
        .map(|r| r.0.clone())
}

/// The one way a webhook stores a conversion, whichever shop or platform
/// sent it: through the group-commit writer, answered only once committed
/// (the attribution worker takes it from there), and counted.
pub(crate) async fn store(state: &AppState, new: NewConversion) -> Result<Stored, StoreError> {
    let label = new.program.to_string();
    let event = new.event;
    let stored = state.conversion_writer.store(new).await;
    let outcome = match &stored {
        Ok(Stored::New(_)) => "received",
        Ok(Stored::Repeat { .. }) => "duplicate",
        Err(StoreError::Conflict(_)) => "conflict",
        Err(_) => return stored,
    };
    state
        .metrics
        .conversions
        .with_label_values(&[&label, event.as_str(), outcome])
        .inc();
    stored
}

/// A store that failed, as the API answers it.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(detail) => ApiError::Conflict(detail),
        StoreError::Db(e) => e.into(),
        StoreError::Batch {
            unavailable: true,
            message,
        } => ApiError::Unavailable(anyhow::anyhow!(message)),
        StoreError::Batch { message, .. } => ApiError::Internal(anyhow::anyhow!(message)),
    }
}

impl From<Stored> for Receipt {
    fn from(stored: Stored) -> Self {
        match stored {
            Stored::New(id) => Receipt {
                conversion_id: id,
                status: ConversionStatus::Received,
            },
            Stored::Repeat { id, status } => Receipt {
                conversion_id: id,
                status,
            },
        }
    }
}

/// An order's conversion with its refunds, or only refunds while the sale
/// has not arrived.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Order {
    Converted(Box<OrderConversion>),
    Waiting(WaitingOrder),
}

/// The order's sale or lead, its attribution and commissions, and its refunds.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderConversion {
    #[serde(flatten)]
    conversion: ConversionView,
    refunds: Vec<ConversionView>,
}

/// Refunds that arrived before their sale.
#[derive(Serialize, utoipa::ToSchema)]
// Documents `additionalProperties: false`, so that an order with its sale
// (which has these fields too) is not also a waiting order.
#[serde(deny_unknown_fields)]
pub struct WaitingOrder {
    order_id: String,
    /// Always `waiting`.
    status: ConversionStatus,
    refunds: Vec<ConversionView>,
}

/// Read an order's conversions
///
/// GET /v1/programs/{id}/conversions/{order_id}: the order's sale or lead
/// with its attribution and commissions, and its refunds.
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/conversions/{order_id}",
    operation_id = "getConversion",
    tag = "conversions",
    params(
        ("id" = ProgramId, Path, description = "The program's id."),
        ("order_id" = String, Path, description = "The shop's order reference."),
    ),
    responses(
        (status = 200, description = "The order's conversions.", body = Order),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn by_order(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(&path.0, "program")?;
    who.require_program(program)?;
    let all = conversions::by_order(&state.db, program, &path.1).await?;
    let (mut primary, refunds): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|c| c.event != Event::Refund);
    if primary.is_empty() && refunds.is_empty() {
        return Err(ApiError::NotFound("conversion"));
    }
    // An order's refunds may arrive before its sale; then they are all there is.
    let body = match primary.pop() {
        Some(conversion) => Order::Converted(Box::new(OrderConversion {
            conversion,
            refunds,
        })),
        None => Order::Waiting(WaitingOrder {
            order_id: path.1.clone(),
            status: ConversionStatus::Waiting,
            refunds,
        }),
    };
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    /// A JSON value of any shape, a few levels deep.
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            "\\PC{0,80}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("\\PC{0,10}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A webhook body with the right field names and values of any kind.
    fn webhook_body() -> impl Strategy<Value = serde_json::Value> {
        let field = |words: &'static [&'static str]| {
            prop_oneof![
                proptest::sample::select(words).prop_map(serde_json::Value::from),
                any_json(),
            ]
        };
        (
            field(&["sale", "lead", "refund", "SALE"]),
            prop_oneof![
                (-10i64..2_000_000_000_000).prop_map(serde_json::Value::from),
                any_json()
            ],
            field(&["EUR", "IDR", "eur", "XXX"]),
            field(&["order-1", "", "x"]),
            field(&[
                "2026-11-30T10:00:00Z",
                "2126-01-01T00:00:00Z",
                "1900-01-01T00:00:00Z",
            ]),
            any_json(),
        )
            .prop_map(|(event, amount, currency, order, at, extra)| {
                serde_json::json!({
                    "event": event, "amount_minor": amount, "currency": currency,
                    "order_id": order, "occurred_at": at, "click_id": extra.clone(),
                    "coupon": extra, "event_id": order,
                })
            })
    }

    #[test]
    fn a_valid_sale_parses_into_a_new_conversion() {
        let body: ConversionBody = crate::http::body::parse(
            br#"{"order_id":"A-1","event":"sale","amount_minor":12500,"currency":"EUR","click_id":"abc"}"#,
        )
        .unwrap();
        let new = body
            .parse(ProgramId::from_db(1), eur(), now(), None)
            .unwrap();
        assert_eq!(
            (new.event, new.amount_minor, new.currency),
            (Event::Sale, 12_500, eur())
        );
    }

    proptest! {
        /// Any bytes, and any JSON of the webhook's shape: refused or parsed,
        /// never a panic.
        #[test]
        fn an_arbitrary_webhook_body_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            json in webhook_body(),
        ) {
            if let Ok(b) = crate::http::body::parse::<ConversionBody>(&bytes) {
                let _ = b.parse(ProgramId::from_db(1), eur(), now(), None);
            }
            let raw = serde_json::to_vec(&json).unwrap();
            if let Ok(b) = crate::http::body::parse::<ConversionBody>(&raw)
                && let Ok(new) = b.parse(ProgramId::from_db(1), eur(), now(), None)
            {
                prop_assert!((0..=crate::conversions::MAX_AMOUNT_MINOR).contains(&new.amount_minor));
            }
        }
    }
}
