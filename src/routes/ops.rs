//! Health, readiness and metrics: what orchestrators and Prometheus call.

use crate::error::{PROBLEM_JSON, problem_type};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;
use std::time::Duration;

/// How long readiness waits for each back end.
const CHECK_TIMEOUT: Duration = Duration::from_millis(1000);

/// 200 while the process runs; touches nothing.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 when Postgres and Redis both answer within a second; else 503 with
/// which one failed, so a load balancer stops sending traffic here.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let postgres = async {
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("select 1").execute(&state.db))
            .await
            .is_ok_and(|r| r.is_ok())
    };
    let redis = async {
        tokio::time::timeout(CHECK_TIMEOUT, state.redis.ping())
            .await
            .is_ok_and(|r| r.is_ok())
    };
    let (postgres, redis) = tokio::join!(postgres, redis);
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let checks = json!({"postgres": word(postgres), "redis": word(redis)});
    if postgres && redis {
        return HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}));
    }
    if !postgres {
        state.metrics.backend_error("postgres");
    }
    if !redis {
        state.metrics.backend_error("redis");
    }
    HttpResponse::ServiceUnavailable()
        .content_type(PROBLEM_JSON)
        .json(json!({
            "type": problem_type("not-ready"),
            "title": "Service Unavailable",
            "status": 503,
            "detail": "a back end is not answering",
            "checks": checks,
        }))
}

/// Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
