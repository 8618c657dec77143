//! A partner's commissions, balance and statement.

use super::pagination::{List, Page};
use crate::auth::Principal;
use crate::domain::{PartnerId, ProgramId};
use crate::earnings::{self, Balance, Commission, Filter, Statement};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

/// A page of commissions, as the OpenAPI document names it.
type CommissionPage = List<Commission>;

fn partner(who: Principal, raw: &str) -> Result<PartnerId, ApiError> {
    let id = super::path_id::<PartnerId>(raw, "partner")?;
    who.require_partner(id)?;
    Ok(id)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CommissionsQuery {
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only commissions in this status.
    #[param(schema_with = crate::openapi::enums::commission_status)]
    status: Option<String>,
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
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    ),
    security(("admin_token" = []), ("partner_key" = []))
)]
pub async fn commissions(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<CommissionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let partner = partner(who, &path)?;
    let page = Page::parse(query.limit, query.cursor.as_deref())?;
    if let Some(s) = &query.status
        && !["pending", "approved", "paid", "reversed"].contains(&s.as_str())
    {
        return Err(ApiError::BadRequest(
            "status must be pending, approved, paid or reversed".into(),
        ));
    }
    let program = match &query.program_id {
        None => None,
        Some(p) => Some(
            ProgramId::parse(p)
                .map_err(|_| ApiError::BadRequest("program_id is not a program id".into()))?,
        ),
    };
    let filter = Filter {
        status: query.status.clone(),
        program,
        from: query.from,
        to: query.to,
    };
    let rows = earnings::commissions(&state.db, partner, &filter, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |c| c.id.get())))
}

/// Read a partner's balance
///
/// Sums per currency: pending (in the hold period or under review), approved
/// (due in the next payout, net of carried refunds) and paid.
#[utoipa::path(
    get,
    path = "/v1/partners/{id}/balance",
    operation_id = "getBalance",
    tag = "commissions",
    params(("id" = PartnerId, Path, description = "The partner's id.")),
    responses(
        (status = 200, description = "The balance.", body = Balance),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    ),
    security(("admin_token" = []), ("partner_key" = []))
)]
pub async fn balance(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let partner = partner(who, &path)?;
    Ok(HttpResponse::Ok().json(earnings::balance(&state.db, partner).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// Start of the period, inclusive (default: 30 days before `to`).
    from: Option<DateTime<Utc>>,
    /// End of the period, exclusive (default: now).
    to: Option<DateTime<Utc>>,
}

/// Read a partner's statement
///
/// GET /v1/partners/{id}/statement?from=&to= (default: the last 30 days):
/// every ledger entry of the period with what explains it, between opening
/// and closing balances.
#[utoipa::path(
    get,
    path = "/v1/partners/{id}/statement",
    operation_id = "getStatement",
    tag = "commissions",
    params(("id" = PartnerId, Path, description = "The partner's id."), StatementQuery),
    responses(
        (status = 200, description = "The statement.", body = Statement),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    ),
    security(("admin_token" = []), ("partner_key" = []))
)]
pub async fn statement(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<StatementQuery>,
) -> Result<HttpResponse, ApiError> {
    let partner = partner(who, &path)?;
    let to = query.to.unwrap_or_else(Utc::now);
    let from = query.from.unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    let statement = earnings::statement(&state.db, partner, from, to)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "from",
                format!(
                    "the period holds more than {} entries: ask for a shorter one",
                    earnings::MAX_STATEMENT_ENTRIES
                ),
            )
        })?;
    Ok(HttpResponse::Ok().json(statement))
}
