//! POST /v1/programs/{id}/webhook-secrets: rolling the secret shops sign
//! conversion webhooks with.

use crate::domain::ProgramId;
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Rolling the webhook secret.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = RollSecret)]
#[serde(deny_unknown_fields)]
pub struct RollBody {
    /// How long the current secret keeps verifying (default 24 h, at most 30 days).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 720, default = 24)]
    grace_hours: Option<i64>,
}

/// A new webhook secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RolledSecret {
    /// Shown once.
    #[schema(examples("whsec_8Qm2..."))]
    webhook_secret: String,
    /// Until when the previous secret keeps verifying.
    previous_valid_until: DateTime<Utc>,
}

/// Roll a program's webhook secret
///
/// POST /v1/programs/{id}/webhook-secrets: a new webhook secret; the old
/// one keeps verifying for `grace_hours`. The body is optional.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/webhook-secrets",
    operation_id = "rollWebhookSecret",
    tag = "conversions",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body(content = Option<RollBody>, description = "Optional."),
    responses(
        (status = 201, description = "The new secret.", body = RolledSecret),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn roll(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path).await?.id;
    let hours = body
        .optional_json::<RollBody>()?
        .and_then(|b| b.grace_hours)
        .unwrap_or(24);
    if !(0..=720).contains(&hours) {
        return Err(ApiError::invalid("grace_hours", "must be from 0 to 720"));
    }
    let grace = std::time::Duration::from_secs(hours as u64 * 3600);
    let secret =
        crate::conversions::webhook_context::roll_secret(&state.db, program, grace).await?;
    state.webhook_contexts.forget(program);
    tracing::info!(program = %program, grace_hours = hours, "webhook secret rolled");
    Ok(HttpResponse::Created().json(RolledSecret {
        webhook_secret: secret,
        previous_valid_until: Utc::now() + Duration::hours(hours),
    }))
}
