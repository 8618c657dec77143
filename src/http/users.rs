//! Portal accounts through the API: invitations that make accounts, one-time
//! sign-in links for merchants who embed mitra, and password-reset links
//! handed to the admin (for deployments without e-mail).

use crate::accounts::{self, AccountError, Issued, Tenant};
use crate::domain::{Email, PartnerId, ProgramId, UserId};
use crate::enrollments;
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whom to invite to the portal.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewUser)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// The person's address; it signs in with it.
    #[schema(format = Email, max_length = 254, examples("ayu@example.com"))]
    email: String,
}

/// An account invited to the portal.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = UserInvitation)]
pub struct UserInvitation {
    id: UserId,
    #[schema(format = Email)]
    email: String,
    /// Opening it lets the person choose a password, and signs them in.
    /// Valid for 7 days, once. Shown once.
    #[schema(
        format = "uri",
        examples("https://go.shop.example/portal/welcome/3kT9...")
    )]
    invite_url: String,
    expires_at: DateTime<Utc>,
}

/// A one-time link.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OneTimeLink {
    /// The link; it works once, until `expires_at`.
    #[schema(
        format = "uri",
        examples("https://go.shop.example/portal/login-links/3kT9...")
    )]
    url: String,
    expires_at: DateTime<Utc>,
}

/// Whose password to reset.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewPasswordReset)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::EmailTaken | AccountError::AlreadyActive => {
                ApiError::Conflict(e.to_string())
            }
            AccountError::NotFound(what) => ApiError::NotFound(what),
            AccountError::Db(e) => e.into(),
        }
    }
}

fn email(body: &Body) -> Result<Email, ApiError> {
    let body: NewUserBody = body.json()?;
    Email::parse(&body.email).map_err(|e| ApiError::invalid("email", e))
}

fn invitation(state: &AppState, issued: Issued) -> HttpResponse {
    HttpResponse::Created().json(UserInvitation {
        id: issued.user.id,
        email: issued.user.email,
        invite_url: format!(
            "{}/portal/welcome/{}",
            state.settings.public_base(),
            issued.token
        ),
        expires_at: issued.expires_at,
    })
}

/// Invite a merchant's person to the portal
///
/// POST /v1/programs/{id}/users: makes an account for the address, acting
/// for the program, and answers the `invite_url` to send them (shown once).
/// Inviting an address again renews the link until a password is set.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/users",
    operation_id = "inviteProgramUser",
    tag = "accounts",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Invited.", body = UserInvitation),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn invite_program_user(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path).await?.id;
    let email = email(&body)?;
    let issued = accounts::invite(&state.db, Tenant::Program(program), &email).await?;
    tracing::info!(user = %issued.user.id, program = %program, "portal user invited");
    Ok(invitation(&state, issued))
}

/// Invite a partner's person to the portal
///
/// POST /v1/partners/{id}/users: makes an account for the address, acting
/// for the partner, and answers the `invite_url` to send them (shown once).
#[utoipa::path(
    post,
    path = "/v1/partners/{id}/users",
    operation_id = "invitePartnerUser",
    tag = "accounts",
    params(("id" = PartnerId, Path, description = "The partner's id.")),
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Invited.", body = UserInvitation),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
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
pub async fn invite_partner_user(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let partner = super::path_id::<PartnerId>(&path, "partner")?;
    who.require_partner(partner)?;
    let email = email(&body)?;
    let issued = accounts::invite(&state.db, Tenant::Partner(partner), &email).await?;
    tracing::info!(user = %issued.user.id, partner = %partner, "portal user invited");
    Ok(invitation(&state, issued))
}

/// Make a one-time sign-in link for a partner
///
/// POST /v1/partners/{id}/login-links: for a merchant who embeds mitra in
/// its own site: a link that signs the partner in to the portal, valid for
/// 60 seconds, once. A program may ask for its active partners only. The
/// partner's first link makes its portal account, under its e-mail address:
/// an address that already has an account elsewhere answers 409.
#[utoipa::path(
    post,
    path = "/v1/partners/{id}/login-links",
    operation_id = "createLoginLink",
    tag = "accounts",
    params(("id" = PartnerId, Path, description = "The partner's id.")),
    responses(
        (status = 201, description = "The link.", body = OneTimeLink),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn login_link(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let partner = super::path_id::<PartnerId>(&path, "partner")?;
    let allowed = match who {
        Principal::Admin => true,
        Principal::Program(p) => enrollments::is_active(&state.db, p, partner).await?,
        Principal::Partner(_) => false,
    };
    if !allowed {
        return Err(ApiError::NotFound("partner"));
    }
    let issued = accounts::login_token(&state.db, partner).await?;
    tracing::info!(user = %issued.user.id, partner = %partner, "portal sign-in link made");
    Ok(HttpResponse::Created().json(OneTimeLink {
        url: format!(
            "{}/portal/login-links/{}",
            state.settings.public_base(),
            issued.token
        ),
        expires_at: issued.expires_at,
    }))
}

/// Make a password-reset link
///
/// POST /v1/password-resets: the admin hands a person a link to choose a
/// new password (valid for one hour, once), e.g. where mitra sends no
/// e-mail (`MITRA_SMTP_URL` unset). An address without an account: 404.
#[utoipa::path(
    post,
    path = "/v1/password-resets",
    operation_id = "createPasswordReset",
    tag = "accounts",
    request_body = ResetBody,
    responses(
        (status = 201, description = "The link.", body = OneTimeLink),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []))
)]
pub async fn password_reset(
    state: web::Data<AppState>,
    who: Principal,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let body: ResetBody = body.json()?;
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid("email", e))?;
    let issued = accounts::reset_token(&state.db, email.as_str())
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    tracing::info!(user = %issued.user.id, "password-reset link made by the admin");
    Ok(HttpResponse::Created().json(OneTimeLink {
        url: format!(
            "{}/portal/password-reset/{}",
            state.settings.public_base(),
            issued.token
        ),
        expires_at: issued.expires_at,
    }))
}
