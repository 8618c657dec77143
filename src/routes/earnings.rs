//! A partner's commissions, balance and statement.

use super::pagination::{List, Page};
use crate::auth::Principal;
use crate::domain::{PartnerId, ProgramId};
use crate::earnings::{self, Filter};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

fn partner(who: Principal, raw: &str) -> Result<PartnerId, ApiError> {
    let id = super::path_id::<PartnerId>(raw, "partner")?;
    who.require_partner(id)?;
    Ok(id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommissionsQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
    program_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// GET /v1/partners/{id}/commissions?status=&program_id=&from=&to=
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

/// GET /v1/partners/{id}/balance
pub async fn balance(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let partner = partner(who, &path)?;
    Ok(HttpResponse::Ok().json(earnings::balance(&state.db, partner).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// GET /v1/partners/{id}/statement?from=&to= (default: the last 30 days)
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
