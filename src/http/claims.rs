//! Claims: a partner opens them (one, or a CSV batch), the program sees
//! its queue, both write in the thread, the program accepts or declines.

use super::pagination::{Cursor, List, Page};
use crate::claims::{self, Claim, ClaimError, NewClaim, PolicyProblem};
use crate::conversions::check_amount;
use crate::domain::{
    AgreementId, ClaimId, ClaimKind, ClaimReason, ClaimStatus, CommissionId, OverdueAction,
    PartnerId, ProgramId,
};
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::{ApiError, FieldError};
use crate::http::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

impl From<ClaimError> for ApiError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::TooLate { field, .. } => ApiError::invalid(field, e.to_string()),
            ClaimError::NotFound(what) => ApiError::NotFound(what),
            ClaimError::Invalid(field, m) => ApiError::invalid(field, m),
            ClaimError::Conflict(m) => ApiError::Conflict(m),
            ClaimError::Db(e) => e.into(),
        }
    }
}

/// Who acts, as the thread records it.
fn actor(who: Principal) -> String {
    match who {
        Principal::Admin => "admin".into(),
        Principal::Program(p) => p.to_string(),
        Principal::Partner(p) => p.to_string(),
    }
}

/// A new claim.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ClaimFields)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    kind: ClaimKind,
    /// untracked: the shop's order id, 1 to 128 characters.
    #[schema(schema_with = order_id_schema)]
    order_id: Option<String>,
    /// untracked: when the sale happened (at most 400 days ago).
    #[schema(schema_with = super::conversions::optional_time_schema)]
    occurred_at: Option<DateTime<Utc>>,
    /// untracked: the sale's amount, in the program's currency.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    amount_minor: Option<i64>,
    /// untracked: the agreement it falls under (needed when the partner has several).
    agreement_id: Option<AgreementId>,
    /// incorrect, declined: the commission disputed.
    commission_id: Option<CommissionId>,
    /// The commission the partner expects.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    expected_commission_minor: Option<i64>,
    /// What the program should know; at most 2000 characters.
    #[schema(max_length = 2000)]
    note: Option<String>,
    /// The admin only: the partner the claim is from.
    partner_id: Option<PartnerId>,
}

fn order_id_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::domain::plain_schema(crate::conversions::MAX_ID_LEN, true)
}

/// A claim as documented: its fields, and which of them each kind gives
/// (`checked` refuses the rest, 422). An untracked claim names the order,
/// when and how much, and no commission; an incorrect or declined one names
/// the commission (an incorrect one the amount expected), and nothing of an
/// order.
struct NewClaimDoc;

impl utoipa::PartialSchema for NewClaimDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Ref, Type};
        use utoipa::openapi::{KnownFormat, SchemaFormat};
        let kind = |k: ClaimKind| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([k.as_str()]))
        };
        let absent = || ObjectBuilder::new().schema_type(Type::Null);
        let amount = || ObjectBuilder::new().schema_type(Type::Integer);
        let untracked = ObjectBuilder::new()
            .property("kind", kind(ClaimKind::Untracked))
            .property("order_id", ObjectBuilder::new().schema_type(Type::String))
            .property(
                "occurred_at",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .property("amount_minor", amount())
            .property("commission_id", absent())
            .required("kind")
            .required("order_id")
            .required("occurred_at")
            .required("amount_minor");
        let disputed = |k: ClaimKind| {
            let object = ObjectBuilder::new()
                .property("kind", kind(k))
                .property("commission_id", Ref::from_schema_name("CommissionId"))
                .property("order_id", absent())
                .property("occurred_at", absent())
                .property("amount_minor", absent())
                .property("agreement_id", absent())
                .required("kind")
                .required("commission_id");
            if k == ClaimKind::Incorrect {
                object
                    .property("expected_commission_minor", amount())
                    .required("expected_commission_minor")
            } else {
                object
            }
        };
        AllOfBuilder::new()
            .description(Some(
                "A new claim. `untracked` (a sale never booked) gives `order_id`, \
                 `occurred_at` and `amount_minor` (and `agreement_id` when the partner has \
                 several agreements), no `commission_id`; `incorrect` and `declined` name \
                 the `commission_id` disputed (`incorrect` with `expected_commission_minor`) \
                 and none of the order's fields.",
            ))
            .item(Ref::from_schema_name("ClaimFields"))
            .item(
                OneOfBuilder::new()
                    .item(untracked)
                    .item(disputed(ClaimKind::Incorrect))
                    .item(disputed(ClaimKind::Declined)),
            )
            .into()
    }
}

impl utoipa::ToSchema for NewClaimDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "NewClaim".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("ClaimFields".into(), ClaimBody::schema()));
        <ClaimBody as utoipa::ToSchema>::schemas(schemas);
    }
}

fn note(field: &str, n: Option<String>) -> Result<Option<String>, FieldError> {
    match n.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > 2000 => Err(FieldError {
            field: field.into(),
            message: "must be at most 2000 characters".into(),
        }),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

/// Checks one claim's fields; `at` prefixes field names (a CSV row).
fn checked(
    b: ClaimBody,
    program: ProgramId,
    partner: PartnerId,
    at: &str,
    now: DateTime<Utc>,
) -> Result<NewClaim, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: String| {
        errors.push(FieldError {
            field: format!("{at}{field}"),
            message,
        })
    };
    match b.kind {
        ClaimKind::Untracked => {
            for p in
                claims::check_untracked(b.order_id.as_deref(), b.occurred_at, b.amount_minor, now)
            {
                bad(p.field(), p.message());
            }
            if b.commission_id.is_some() {
                bad(
                    "commission_id",
                    "an untracked sale has no commission".into(),
                );
            }
        }
        ClaimKind::Incorrect | ClaimKind::Declined => {
            if b.commission_id.is_none() {
                bad("commission_id", "name the commission disputed".into());
            }
            if b.kind == ClaimKind::Incorrect && b.expected_commission_minor.is_none() {
                bad(
                    "expected_commission_minor",
                    "an incorrect claim gives the amount expected".into(),
                );
            }
            for (field, given) in [
                ("order_id", b.order_id.is_some()),
                ("occurred_at", b.occurred_at.is_some()),
                ("amount_minor", b.amount_minor.is_some()),
                ("agreement_id", b.agreement_id.is_some()),
            ] {
                if given {
                    bad(field, "only an untracked claim gives this".into());
                }
            }
        }
    }
    if let Some(e) = b.expected_commission_minor
        && let Err(m) = claims::check_expected(e)
    {
        bad("expected_commission_minor", m);
    }
    let note = match note(&format!("{at}note"), b.note) {
        Ok(n) => n,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(NewClaim {
        program,
        partner,
        kind: b.kind,
        order_id: b.order_id,
        occurred_at: b.occurred_at,
        amount_minor: b.amount_minor,
        agreement_id: b.agreement_id,
        commission_id: b.commission_id,
        expected_commission_minor: b.expected_commission_minor,
        note,
    })
}

/// A CSV row as a claim body: the same fields, as columns.
fn from_row(row: &BTreeMap<String, String>, at: &str) -> Result<ClaimBody, Vec<FieldError>> {
    let fields: serde_json::Map<String, serde_json::Value> = row
        .iter()
        .map(|(k, v)| {
            let number = matches!(k.as_str(), "amount_minor" | "expected_commission_minor");
            let value = match (number, v.parse::<i64>()) {
                (true, Ok(n)) => serde_json::Value::from(n),
                _ => serde_json::Value::from(v.as_str()),
            };
            (k.clone(), value)
        })
        .collect();
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| {
        vec![FieldError {
            field: at.trim_end_matches('.').to_owned(),
            message: e.to_string(),
        }]
    })
}

/// Claims just opened.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenedClaims {
    data: Vec<Claim>,
}

/// Open claims
///
/// A partner (or the admin, naming `partner_id`) opens one claim with a
/// JSON body, or several with `Content-Type: text/csv`: a header row naming
/// the columns (`kind`, `order_id`, `occurred_at`, `amount_minor`,
/// `agreement_id`, `commission_id`, `expected_commission_minor`, `note`),
/// then one claim per row. A batch opens all or none; problems name their
/// row (`rows[2].amount_minor`). Each claim gets the program's deadline.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/claims",
    operation_id = "openClaims",
    tag = "claims",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body(content = NewClaimDoc, description = "One claim as JSON, or several as `text/csv`."),
    responses(
        (status = 201, description = "Opened.", body = OpenedClaims),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("partner_key" = []))
)]
pub async fn open(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(&path, "program")?;
    if let Principal::Program(_) = who {
        return Err(ApiError::Forbidden("claims are opened by partners"));
    }
    let now = Utc::now();
    let bodies: Vec<(String, ClaimBody)> = if body.is_csv() {
        let rows = claims::csv::parse(body.text()?).map_err(ApiError::BadRequest)?;
        if rows.is_empty() || rows.len() > 500 {
            return Err(ApiError::BadRequest("a batch holds 1 to 500 claims".into()));
        }
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let at = format!("rows[{i}].");
            match from_row(row, &at) {
                Ok(b) => out.push((at, b)),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        out
    } else {
        vec![(String::new(), body.json()?)]
    };
    let mut checked_claims = Vec::new();
    let mut errors = Vec::new();
    for (at, b) in bodies {
        let partner = match (who, b.partner_id) {
            (Principal::Partner(p), None) => p,
            (Principal::Partner(p), Some(q)) if p == q => p,
            (Principal::Admin, Some(p)) => p,
            (Principal::Admin, None) => {
                return Err(ApiError::invalid(
                    format!("{at}partner_id"),
                    "the admin names the partner",
                ));
            }
            _ => return Err(ApiError::Forbidden("a partner opens its own claims")),
        };
        match checked(b, program, partner, &at, now) {
            Ok(c) => checked_claims.push(c),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let opened = claims::open(&state.db, &checked_claims, &actor(who)).await;
    // The admin sees every program: when it names a partner that was never
    // in this one, the program is there and the body is wrong (422), as
    // for agreements and invitations. A partner's key sees no program it
    // is not in (404).
    if let Err((i, ClaimError::NotFound("program"))) = &opened
        && who == Principal::Admin
        && crate::programs::get(&state.db, program).await?.is_some()
    {
        let at = if checked_claims.len() > 1 {
            format!("rows[{i}].")
        } else {
            String::new()
        };
        return Err(ApiError::invalid(
            format!("{at}partner_id"),
            "is not a partner of this program",
        ));
    }
    let ids = opened.map_err(|(i, e)| match e {
        ClaimError::Conflict(m) if checked_claims.len() > 1 => {
            ApiError::Conflict(format!("rows[{i}]: {m}"))
        }
        e => e.into(),
    })?;
    let mut data = Vec::with_capacity(ids.len());
    for id in ids {
        data.push(
            claims::get(&state.db, id)
                .await?
                .ok_or(ApiError::NotFound("claim"))?,
        );
    }
    Ok(HttpResponse::Created().json(OpenedClaims { data }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClaimsQuery {
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    cursor: Option<Cursor>,
    /// Only claims in this status (`open`: the queue).
    status: Option<ClaimStatus>,
}

type ClaimPage = List<Claim>;

/// List a program's claims
///
/// The program's queue (oldest first; `?status=open`), or a partner's own
/// claims in the program.
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/claims",
    operation_id = "listClaims",
    tag = "claims",
    params(("id" = ProgramId, Path, description = "The program's id."), ClaimsQuery),
    responses(
        (status = 200, description = "A page of claims, without their threads.", body = ClaimPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<ClaimsQuery>,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(&path, "program")?;
    let partner = match who {
        Principal::Partner(p) => Some(p),
        other => {
            other.require_program(program)?;
            None
        }
    };
    let page = Page::parse(query.limit, query.cursor)?;
    let rows = claims::list(
        &state.db,
        Some(program),
        partner,
        query.status,
        page.after,
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |c| c.id.get())))
}

/// The claim in the path, when `who` is on one of its sides (or the admin).
async fn visible(state: &AppState, who: Principal, raw: &str) -> Result<Claim, ApiError> {
    let id = super::path_id::<ClaimId>(raw, "claim")?;
    let claim = claims::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("claim"))?;
    let party = match who {
        Principal::Admin => true,
        Principal::Program(p) => p == claim.program_id,
        Principal::Partner(p) => p == claim.partner_id,
    };
    if party {
        Ok(claim)
    } else {
        Err(ApiError::NotFound("claim"))
    }
}

/// Read a claim
///
/// The claim and its thread: every step, who and when.
#[utoipa::path(
    get,
    path = "/v1/claims/{id}",
    operation_id = "getClaim",
    tag = "claims",
    params(("id" = ClaimId, Path, description = "The claim's id.")),
    responses(
        (status = 200, description = "The claim.", body = Claim),
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
    Ok(HttpResponse::Ok().json(visible(&state, who, &path).await?))
}

/// A comment in a claim's thread.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ClaimComment)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// At most 2000 characters, not only whitespace.
    #[schema(schema_with = comment_schema)]
    note: String,
}

/// Text with something besides whitespace (what `str::trim` removes).
fn comment_schema() -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(2000))
        .pattern(Some(format!("[^{}]", crate::domain::WHITESPACE)))
        .examples(["The order is in our shop's export: ORD-1001, paid 3 March."])
}

/// Comment on a claim
///
/// Either side writes in the thread; the other is told (`claim.commented`).
#[utoipa::path(
    post,
    path = "/v1/claims/{id}/comments",
    operation_id = "commentClaim",
    tag = "claims",
    params(("id" = ClaimId, Path, description = "The claim's id.")),
    request_body = CommentBody,
    responses(
        (status = 201, description = "The claim with its thread.", body = Claim),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn comment(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let claim = visible(&state, who, &path).await?;
    let b: CommentBody = body.json()?;
    let text = note("note", Some(b.note))
        .map_err(|e| ApiError::Validation(vec![e]))?
        .ok_or_else(|| ApiError::invalid("note", "a comment says something"))?;
    claims::comment(&state.db, claim.id, &actor(who), &text).await?;
    let claim = visible(&state, who, &path).await?;
    Ok(HttpResponse::Created().json(claim))
}

/// Accepting a claim.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = ClaimAcceptance)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The amount accepted, when not as claimed: the sale's (untracked) or
    /// the commission's (incorrect, declined).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    amount_minor: Option<i64>,
    /// What the partner reads; at most 2000 characters.
    #[schema(max_length = 2000)]
    note: Option<String>,
}

/// Declining a claim.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ClaimDecline)]
#[serde(deny_unknown_fields)]
pub struct DeclineBody {
    reason_code: ClaimReason,
    /// What the partner reads; at most 2000 characters.
    #[schema(max_length = 2000)]
    note: Option<String>,
}

/// The claim in the path, when `who` may decide on it (the admin or its program).
async fn decidable(state: &AppState, who: Principal, raw: &str) -> Result<Claim, ApiError> {
    let claim = visible(state, who, raw).await?;
    if let Principal::Partner(_) = who {
        return Err(ApiError::Forbidden("the program decides on claims"));
    }
    Ok(claim)
}

/// Accept a claim
///
/// An untracked sale is booked through the one booking path under the
/// agreement version in force at its date (the conversion shows
/// `attributed_via: claim`); an incorrect commission gets an adjustment
/// entry to the amount accepted; a declined one is reinstated, pending.
/// The body is optional.
#[utoipa::path(
    post,
    path = "/v1/claims/{id}/accept",
    operation_id = "acceptClaim",
    tag = "claims",
    params(("id" = ClaimId, Path, description = "The claim's id.")),
    request_body(content = Option<AcceptBody>, description = "Optional."),
    responses(
        (status = 200, description = "Accepted.", body = Claim),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn accept(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let claim = decidable(&state, who, &path).await?;
    let b = body.optional_json::<AcceptBody>()?.unwrap_or_default();
    let text = note("note", b.note).map_err(|e| ApiError::Validation(vec![e]))?;
    if let Some(a) = b.amount_minor {
        check_amount(None, a).map_err(|m| ApiError::invalid("amount_minor", m))?;
    }
    crate::claims::accept::accept(
        &state.db,
        claim.id,
        &actor(who),
        text.as_deref(),
        b.amount_minor,
    )
    .await?;
    Ok(HttpResponse::Ok().json(visible(&state, who, &path).await?))
}

/// Decline a claim
///
/// With a reason code and a note the partner reads.
#[utoipa::path(
    post,
    path = "/v1/claims/{id}/decline",
    operation_id = "declineClaim",
    tag = "claims",
    params(("id" = ClaimId, Path, description = "The claim's id.")),
    request_body = DeclineBody,
    responses(
        (status = 200, description = "Declined.", body = Claim),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn decline(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let claim = decidable(&state, who, &path).await?;
    let b: DeclineBody = body.json()?;
    let text = note("note", b.note).map_err(|e| ApiError::Validation(vec![e]))?;
    claims::decline(
        &state.db,
        claim.id,
        &actor(who),
        b.reason_code,
        text.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(visible(&state, who, &path).await?))
}

/// A program's claim policy.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimPolicy {
    /// Days the program has to answer a claim (1 to 365; default 75).
    #[schema(minimum = 1, maximum = 365, examples(30))]
    deadline_days: i32,
    /// What happens to a claim still open then: `accept` (as claimed, the
    /// default), `decline` (`deadline_passed`) or `none` (left open, counted
    /// in `mitra_claims_overdue`).
    overdue_action: OverdueAction,
    /// How many days after a sale the partner may claim it (untracked) or
    /// dispute its commission (incorrect, declined), 1 to 400; null or
    /// absent: any sale mitra takes (from 400 days back). A claim of an
    /// older sale is refused with 422, naming `occurred_at` or
    /// `commission_id`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 400, examples(90))]
    window_days: Option<i32>,
}

/// Set a program's claim policy
///
/// How long the program has to answer claims, what happens past it, and
/// how old a sale may be to be claimed. Claims opened from now on get it.
#[utoipa::path(
    put,
    path = "/v1/programs/{id}/claim-policy",
    operation_id = "setClaimPolicy",
    tag = "claims",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body = ClaimPolicy,
    responses(
        (status = 200, description = "The policy.", body = ClaimPolicy),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn set_policy(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path).await?.id;
    let b: ClaimPolicy = body.json()?;
    let policy = claims::Policy {
        deadline_days: b.deadline_days,
        overdue: b.overdue_action,
        window_days: b.window_days,
    };
    if let Some(problem) = policy.problems().first() {
        return Err(match problem {
            PolicyProblem::Deadline => ApiError::invalid(
                "deadline_days",
                format!("must be from 1 to {}", claims::MAX_DEADLINE_DAYS),
            ),
            PolicyProblem::Window => ApiError::invalid(
                "window_days",
                format!("must be from 1 to {}", claims::MAX_WINDOW_DAYS),
            ),
        });
    }
    claims::set_policy(&state.db, program, policy).await?;
    let p = claims::policy(&state.db, program)
        .await?
        .ok_or(ApiError::NotFound("program"))?;
    Ok(HttpResponse::Ok().json(ClaimPolicy {
        deadline_days: p.deadline_days,
        overdue_action: p.overdue,
        window_days: p.window_days,
    }))
}
