//! A partner's balance and statement.

use crate::commissions::queries::{self, Balance, Statement};
use crate::domain::PartnerId;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

pub(crate) fn partner(who: Principal, raw: &str) -> Result<PartnerId, ApiError> {
    let id = super::path_id::<PartnerId>(raw, "partner")?;
    who.require_partner(id)?;
    Ok(id)
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
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("partner_key" = []))
)]
pub async fn balance(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let partner = partner(who, &path)?;
    Ok(HttpResponse::Ok().json(queries::balance(&state.db, partner).await?))
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
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
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
    // May come from the read replica (see db::ReadPool for how stale).
    let statement = queries::statement(state.db_read.pool(), partner, from, to)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "from",
                format!(
                    "the period holds more than {} entries: ask for a shorter one",
                    queries::MAX_STATEMENT_ENTRIES
                ),
            )
        })?;
    Ok(HttpResponse::Ok().json(statement))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any statement query, times included: refused or read, never a panic.
        #[test]
        fn an_arbitrary_statement_query_never_panics(
            raw in "\\PC{0,120}",
            at in "[0-9T:Z+.-]{0,30}|2026-11-30T10:00:00(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
        ) {
            let _ = web::Query::<StatementQuery>::from_query(&raw);
            let _ = web::Query::<StatementQuery>::from_query(&format!("from={at}&to={at}"));
        }
    }
}
