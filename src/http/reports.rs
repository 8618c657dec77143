//! GET /v1/reports: daily figures, as JSON or CSV.

use super::payouts::wants_csv;
use crate::domain::{LinkId, PartnerId, ProgramId};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::rollups::reports::{self, MAX_DAYS, ReportQuery, Row};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Query {
    /// First day, UTC (default: 29 days before `to`).
    from: Option<NaiveDate>,
    /// Last day, inclusive, UTC (default: today); at most 1100 days after `from`.
    to: Option<NaiveDate>,
    /// Only this program (a program key: its own).
    #[param(value_type = Option<ProgramId>)]
    program_id: Option<String>,
    /// Only this partner's share (a partner key: its own).
    #[param(value_type = Option<PartnerId>)]
    partner_id: Option<String>,
    /// Only this link.
    #[param(value_type = Option<LinkId>)]
    link_id: Option<String>,
    /// `day`, the only grouping.
    #[param(pattern = "^day$")]
    group_by: Option<String>,
}

/// Daily figures of a period, and their totals.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Report {
    /// One row per day of the period, days without activity as zeros.
    data: Vec<Row>,
    totals: Row,
    /// Always null: a report is one page.
    #[schema(value_type = Option<String>)]
    next_cursor: Option<String>,
    from: NaiveDate,
    to: NaiveDate,
}

fn id_of<T: std::str::FromStr>(raw: &Option<String>, name: &str) -> Result<Option<T>, ApiError> {
    raw.as_deref()
        .map(|s| {
            s.parse()
                .map_err(|_| ApiError::BadRequest(format!("{name} is not a valid id")))
        })
        .transpose()
}

/// Read daily figures
///
/// Per day: clicks (without bots), unique clicks, conversions, revenue,
/// commission, EPC and conversion rate. A program key sees its program, a
/// partner key its own rows; naming another tenant's program, partner or
/// link answers 404. CSV with `Accept: text/csv`.
#[utoipa::path(
    get,
    path = "/v1/reports",
    operation_id = "getReport",
    tag = "reports",
    params(Query),
    responses(
        (status = 200, description = "The report; CSV (one line per day) when the request \
            accepts `text/csv`.",
            content(
                (Report = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    if query.group_by.as_deref().is_some_and(|g| g != "day") {
        return Err(ApiError::BadRequest("group_by must be day".into()));
    }
    let to = query.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = query.from.unwrap_or(to - Duration::days(29));
    if from > to || (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::BadRequest(format!(
            "from must not be after to, and the period at most {MAX_DAYS} days"
        )));
    }
    let mut program: Option<ProgramId> = id_of(&query.program_id, "program_id")?;
    let mut partner: Option<PartnerId> = id_of(&query.partner_id, "partner_id")?;
    let link: Option<LinkId> = id_of(&query.link_id, "link_id")?;
    match who {
        Principal::Admin => {}
        Principal::Program(own) => {
            if program.is_some_and(|p| p != own) {
                return Err(ApiError::NotFound("program"));
            }
            program = Some(own);
        }
        Principal::Partner(own) => {
            if partner.is_some_and(|p| p != own) {
                return Err(ApiError::NotFound("partner"));
            }
            partner = Some(own);
        }
    }
    if let Some(link) = link {
        let found = crate::links::get(&state.db, link)
            .await?
            .ok_or(ApiError::NotFound("link"))?;
        if !super::links::can_see(&state, who, &found).await? {
            return Err(ApiError::NotFound("link"));
        }
    }
    let q = ReportQuery {
        from,
        to,
        program,
        partner,
        link,
    };
    // Roll-ups may come from the read replica (see db::ReadPool for how stale).
    let (rows, totals) = reports::daily(state.db_read.pool(), &q).await?;
    if wants_csv(&req) {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(reports::to_csv(&rows)));
    }
    Ok(HttpResponse::Ok().json(Report {
        data: rows,
        totals,
        next_cursor: None,
        from,
        to,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any query string, dates and ids included: refused or read, never a panic.
        #[test]
        fn an_arbitrary_report_query_never_panics(
            raw in "\\PC{0,120}",
            from in "[0-9-]{0,12}|2026-02-3[01]|\\+?[0-9]{4,7}-[0-9]{2}-[0-9]{2}",
            id in "(prg_|ptn_|lnk_)?[0-9A-Za-z%]{0,14}",
        ) {
            let _ = web::Query::<Query>::from_query(&raw);
            let shaped = format!("from={from}&to={from}&program_id={id}&partner_id={id}&link_id={id}&group_by=day");
            if let Ok(q) = web::Query::<Query>::from_query(&shaped) {
                let _ = id_of::<ProgramId>(&q.program_id, "program_id");
                let _ = id_of::<LinkId>(&q.link_id, "link_id");
            }
        }
    }
}
