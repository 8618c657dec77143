//! Who is calling: `Authorization: Bearer <token>` resolved to a principal.
//!
//! The admin token may do everything; a program key acts on its own program;
//! a partner key on its own links, commissions and reports. Handlers ask the
//! principal for a scope; another tenant's object answers 404, exactly as a
//! missing one, so ids cannot be probed.

use crate::domain::{KeyOwner, PartnerId, ProgramId, hash_api_key};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures::future::LocalBoxFuture;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Program(ProgramId),
    Partner(PartnerId),
}

impl Principal {
    /// Admin-only actions: anyone else is known but not allowed (403).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            _ => Err(ApiError::Forbidden("only the admin token may do this")),
        }
    }

    /// The admin, or the program itself. Anyone else is told the program does not exist.
    pub fn require_program(&self, program: ProgramId) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Program(p) if *p == program => Ok(()),
            _ => Err(ApiError::NotFound("program")),
        }
    }

    /// The admin, or the partner itself.
    pub fn require_partner(&self, partner: PartnerId) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Partner(p) if *p == partner => Ok(()),
            _ => Err(ApiError::NotFound("partner")),
        }
    }

    /// A program key's program, for list endpoints that narrow to it.
    pub fn program(&self) -> Option<ProgramId> {
        match self {
            Principal::Program(p) => Some(*p),
            _ => None,
        }
    }

    pub fn partner(&self) -> Option<PartnerId> {
        match self {
            Principal::Partner(p) => Some(*p),
            _ => None,
        }
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthorized)?;
            let state = state.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no app state")))?;
            authenticate(&state, &token).await
        })
    }
}

pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let admin = state.settings.admin_token.expose_secret().as_bytes();
    if bool::from(admin.ct_eq(token.as_bytes())) {
        return Ok(Principal::Admin);
    }
    let hash = hash_api_key(token);
    match KeyOwner::of_token(token) {
        Some(KeyOwner::Program) => {
            let id = sqlx::query_scalar!(
                r#"select id as "id: ProgramId" from programs where api_key_hash = $1"#,
                hash
            )
            .fetch_optional(&state.db)
            .await?;
            id.map(Principal::Program).ok_or(ApiError::Unauthorized)
        }
        Some(KeyOwner::Partner) => {
            let id = sqlx::query_scalar!(
                r#"select id as "id: PartnerId" from partners where api_key_hash = $1"#,
                hash
            )
            .fetch_optional(&state.db)
            .await?;
            id.map(Principal::Partner).ok_or(ApiError::Unauthorized)
        }
        None => Err(ApiError::Unauthorized),
    }
}
