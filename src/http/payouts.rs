//! Payouts: pay approved commissions, read them back, export them as CSV.

use super::pagination::{Cursor, List, Page};
use crate::commissions::payouts::{self, Payout};
use crate::domain::{PayoutId, ProgramId};
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

/// A page of payouts, as the OpenAPI document names it.
type PayoutPage = List<Payout>;

/// A payout run.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayout {
    /// Partners whose approved balance is below this are left for later (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, default = 1)]
    min_amount_minor: Option<i64>,
}

/// Pay approved commissions
///
/// POST /v1/programs/{id}/payouts: pays each partner its approved balance
/// per currency, net of debts carried from refunds, when it reaches
/// `min_amount_minor`. The body is optional.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/payouts",
    operation_id = "createPayout",
    tag = "payouts",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body(content = Option<CreatePayout>, description = "Optional."),
    responses(
        (status = 201, description = "The payout made (possibly without items).", body = Payout,
            headers(("Location" = String, description = "`/v1/payouts/{id}`"))),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path).await?.id;
    let min = body
        .optional_json::<CreatePayout>()?
        .and_then(|b| b.min_amount_minor)
        .unwrap_or(1);
    if !(1..=crate::conversions::MAX_AMOUNT_MINOR).contains(&min) {
        return Err(ApiError::invalid(
            "min_amount_minor",
            "must be a positive amount in minor units",
        ));
    }
    let actor = match who {
        Principal::Program(p) => p.to_string(),
        _ => "admin".into(),
    };
    let payout = payouts::create(&state.db, program, min, &actor).await?;
    payouts::record(&state.metrics, &payout);
    tracing::info!(payout = %payout.id, program = %program, items = payout.items.len(), "payout made");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/payouts/{}", payout.id)))
        .json(payout))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    cursor: Option<Cursor>,
}

/// List a program's payouts
///
/// GET /v1/programs/{id}/payouts
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/payouts",
    operation_id = "listPayouts",
    tag = "payouts",
    params(("id" = ProgramId, Path, description = "The program's id."), ListQuery),
    responses(
        (status = 200, description = "A page of payouts.", body = PayoutPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(&path, "program")?;
    who.require_program(program)?;
    let page = Page::parse(query.limit, query.cursor)?;
    let rows = payouts::list(&state.db, program, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |p| p.id.get())))
}

/// Whether the client asked for CSV.
pub fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// Read a payout
///
/// GET /v1/payouts/{id} (JSON, or CSV with `Accept: text/csv`)
#[utoipa::path(
    get,
    path = "/v1/payouts/{id}",
    operation_id = "getPayout",
    tag = "payouts",
    params(("id" = PayoutId, Path, description = "The payout's id.")),
    responses(
        (status = 200, description = "The payout; CSV (one line per item, amounts in major \
            units) when the request accepts `text/csv`.",
            content(
                (Payout = "application/json"),
                (String = "text/csv"),
            ),
            headers(("Content-Disposition" = String,
                description = "CSV only: `attachment; filename=\"payout-<id>.csv\"`."))),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<PayoutId>(&path, "payout")?;
    let payout = payouts::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("payout"))?;
    who.require_program(payout.program_id)
        .map_err(|_| ApiError::NotFound("payout"))?;
    if wants_csv(&req) {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"payout-{id}.csv\""),
            ))
            .body(payouts::to_csv(&payout)));
    }
    Ok(HttpResponse::Ok().json(payout))
}
