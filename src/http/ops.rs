//! Health, readiness, metrics and the API's description: what orchestrators,
//! Prometheus and API clients call.

use crate::http::error::{PROBLEM_JSON, Problem};
use crate::http::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

/// The process is up.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(value_type = String, examples("ok"))]
    status: &'static str,
}

/// Each back end, `ok` or `down`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Checks {
    #[schema(value_type = String, examples("ok"))]
    postgres: &'static str,
    #[schema(value_type = String, examples("ok"))]
    redis: &'static str,
}

/// Every back end answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(value_type = String, examples("ready"))]
    status: &'static str,
    checks: Checks,
}

/// A problem (`urn:mitra:problem:not-ready`) naming the back end that is down.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NotReady {
    #[serde(flatten)]
    problem: Problem<'static>,
    checks: Checks,
}

/// 200 while the process runs; touches nothing.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "ops",
    responses(
        (status = 200, description = "The process runs.", body = Health),
        (status = 500, response = crate::http::openapi::Internal),
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// 200 when Postgres and Redis both answer within a second; else 503 with
/// which one failed, so a load balancer stops sending traffic here.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Postgres and Redis answer.", body = Ready),
        (status = 503, description = "Postgres or Redis does not answer within a second.",
            body = NotReady, content_type = "application/problem+json"),
        (status = 500, response = crate::http::openapi::Internal),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let up = crate::health::check(&state.db, &state.redis).await;
    let (postgres, redis) = (up.postgres, up.redis);
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let checks = Checks {
        postgres: word(postgres),
        redis: word(redis),
    };
    if postgres && redis {
        return HttpResponse::Ok().json(Ready {
            status: "ready",
            checks,
        });
    }
    if !postgres {
        state.metrics.backend_error("postgres");
    }
    if !redis {
        state.metrics.backend_error("redis");
    }
    HttpResponse::ServiceUnavailable()
        .content_type(PROBLEM_JSON)
        .json(NotReady {
            problem: Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "a back end is not answering".into(),
                None,
            ),
            checks,
        })
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    responses(
        (status = 200, description = "Every metric, in the Prometheus text format.",
            body = String, content_type = "text/plain; version=0.0.4"),
        (status = 500, response = crate::http::openapi::Internal),
    )
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// This API's OpenAPI 3.1 document, generated from the code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "ops",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", body = Object),
        (status = 500, response = crate::http::openapi::Internal),
    )
)]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::http::openapi::json())
}
