//! Commissions: a partner's list, and a person's decisions on single
//! commissions (approve early, or reject).

use super::pagination::{Cursor, List, Page};
use crate::commissions::decisions::{self, DecideError, Verdict};
use crate::commissions::queries::{self, Commission, Filter};
use crate::domain::PartnerId;
use crate::domain::{CommissionId, CommissionStatus, ProgramId, TextRule};
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A person's decision on a commission.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why. Required to reject: the partner sees it.
    #[serde(default)]
    #[schema(schema_with = optional_reason_schema)]
    reason: Option<String>,
}

/// A rejection: a `Decision` whose reason is required (the partner sees it).
/// Only documents the body; it is read as a `Decision` (the derive states
/// the same unknown-field rule).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Rejection {
    #[schema(schema_with = reason_schema)]
    reason: String,
}

/// Why a commission was decided on by hand.
const REASON: TextRule = TextRule::line(500);

fn reason_schema() -> utoipa::openapi::schema::ObjectBuilder {
    REASON
        .schema(true)
        .description(Some(
            "At most 500 characters on one line, without control characters, and something \
             besides whitespace (which is trimmed).",
        ))
        .examples(["order cancelled before shipping"])
}

fn optional_reason_schema() -> utoipa::openapi::schema::ObjectBuilder {
    REASON.schema(false).description(Some(
        "At most 500 characters on one line, without control characters; empty or only \
         whitespace: none.",
    ))
}

/// The commission's new status.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Decided {
    id: CommissionId,
    status: CommissionStatus,
    /// The rejection's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Who decided, as the ledger records it.
fn actor(who: Principal) -> String {
    match who {
        Principal::Admin => "admin".into(),
        Principal::Program(p) => p.to_string(),
        Principal::Partner(p) => p.to_string(),
    }
}

fn reason(body: &Body) -> Result<Option<String>, ApiError> {
    let decision = body.optional_json::<Decision>()?;
    match decision.as_ref().and_then(|b| b.reason.as_deref()) {
        None => Ok(None),
        Some(r) => REASON
            .parse(r)
            .map(|r| r.map(str::to_owned))
            .map_err(|e| ApiError::invalid("reason", e)),
    }
}

/// The commission in the path, if `who` may decide on it (the admin, or
/// its program): checked before anything is said about the body.
async fn decidable(state: &AppState, who: Principal, raw: &str) -> Result<CommissionId, ApiError> {
    let id = super::path_id::<CommissionId>(raw, "commission")?;
    let program = decisions::program_of(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("commission"))?;
    who.require_program(program)
        .map_err(|_| ApiError::NotFound("commission"))?;
    Ok(id)
}

/// Takes a person's decision through the one core path.
async fn decide(
    state: &AppState,
    who: Principal,
    id: CommissionId,
    verdict: Verdict<'_>,
) -> Result<(), ApiError> {
    if let Principal::Partner(_) = who {
        return Err(ApiError::NotFound("commission"));
    }
    decisions::decide(
        &state.db,
        &state.metrics,
        who.program(),
        id,
        verdict,
        &actor(who),
    )
    .await
    .map(|_| ())
    .map_err(|e| match e {
        DecideError::NotFound => ApiError::NotFound("commission"),
        DecideError::NotPending(status) => {
            ApiError::Conflict(format!("the commission is {status}, not pending"))
        }
        DecideError::Db(e) => e.into(),
    })
}

/// Approve a commission early
///
/// POST /v1/commissions/{id}/approve: approve before the hold period ends,
/// or clear a commission held for review. The body is optional.
#[utoipa::path(
    post,
    path = "/v1/commissions/{id}/approve",
    operation_id = "approveCommission",
    tag = "commissions",
    params(("id" = CommissionId, Path, description = "The commission's id.")),
    request_body(content = Option<Decision>, description = "Optional."),
    responses(
        (status = 200, description = "Approved.", body = Decided),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn approve(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let id = decidable(&state, who, &path).await?;
    let reason = reason(&body)?;
    decide(&state, who, id, Verdict::Approve(reason.as_deref())).await?;
    Ok(HttpResponse::Ok().json(Decided {
        id,
        status: CommissionStatus::Approved,
        reason: None,
    }))
}

/// Reject a commission
///
/// POST /v1/commissions/{id}/reject: a pending commission is not owed.
/// A reason is required: the partner sees it in its statement.
#[utoipa::path(
    post,
    path = "/v1/commissions/{id}/reject",
    operation_id = "rejectCommission",
    tag = "commissions",
    params(("id" = CommissionId, Path, description = "The commission's id.")),
    request_body = Rejection,
    responses(
        (status = 200, description = "Rejected: the commission is reversed.", body = Decided),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn reject(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let id = decidable(&state, who, &path).await?;
    let reason =
        reason(&body)?.ok_or_else(|| ApiError::invalid("reason", "a rejection needs a reason"))?;
    decide(&state, who, id, Verdict::Reject(&reason)).await?;
    Ok(HttpResponse::Ok().json(Decided {
        id,
        status: CommissionStatus::Reversed,
        reason: Some(reason),
    }))
}

/// A page of commissions, as the OpenAPI document names it.
type CommissionPage = List<Commission>;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CommissionsQuery {
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    cursor: Option<Cursor>,
    /// Only commissions in this status.
    status: Option<CommissionStatus>,
    /// Only commissions of this program.
    #[param(value_type = Option<ProgramId>)]
    program_id: Option<String>,
    /// Only commissions booked at or after this time.
    from: Option<DateTime<Utc>>,
    /// Only commissions booked before this time.
    to: Option<DateTime<Utc>>,
}

/// List a partner's commissions
///
/// GET /v1/partners/{id}/commissions?status=&program_id=&from=&to=, oldest first.
#[utoipa::path(
    get,
    path = "/v1/partners/{id}/commissions",
    operation_id = "listCommissions",
    tag = "commissions",
    params(("id" = PartnerId, Path, description = "The partner's id."), CommissionsQuery),
    responses(
        (status = 200, description = "A page of commissions.", body = CommissionPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("partner_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<CommissionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let partner = super::balances::partner(who, &path)?;
    let page = Page::parse(query.limit, query.cursor)?;
    let program = match &query.program_id {
        None => None,
        Some(p) => Some(
            ProgramId::parse(p)
                .map_err(|_| ApiError::BadRequest("program_id is not a program id".into()))?,
        ),
    };
    let filter = Filter {
        status: query.status,
        program,
        from: query.from,
        to: query.to,
    };
    let rows = queries::commissions(&state.db, partner, &filter, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |c| c.id.get())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any commissions query: refused or read, never a panic.
        #[test]
        fn an_arbitrary_commissions_query_never_panics(
            raw in "\\PC{0,120}",
            status in "pending|approved|paid|reversed|\\PC{0,10}",
            cursor in "[0-9A-Za-z]{0,14}",
            limit in "-?[0-9]{0,20}",
        ) {
            let _ = web::Query::<CommissionsQuery>::from_query(&raw);
            let shaped = format!("status={status}&cursor={cursor}&limit={limit}&from=2026-01-01T00:00:00Z");
            if let Ok(q) = web::Query::<CommissionsQuery>::from_query(&shaped) {
                let _ = Page::parse(q.limit, q.cursor);
            }
        }
    }
}
