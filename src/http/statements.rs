//! Verifiable statements: a program's published statement key, a partner's
//! signed statement of one program, and chain proofs between statements.

use crate::domain::{PartnerId, ProgramId};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::statements::format::{ChainProof, SignedStatement};
use crate::statements::keys::{self, PublishedKey};
use crate::statements::{self, StatementError};
use actix_web::{HttpResponse, web};
use serde::Deserialize;

impl From<StatementError> for ApiError {
    fn from(e: StatementError) -> Self {
        match e {
            StatementError::Range(m) => ApiError::invalid("after_seq", m),
            e @ StatementError::TooLong(_) => ApiError::invalid("to_seq", e),
            StatementError::Db(e) => e.into(),
            e @ StatementError::Key(_) => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

/// Whether the partner is, or ever was, in the program.
async fn ever_member(
    state: &AppState,
    program: ProgramId,
    partner: PartnerId,
) -> Result<bool, ApiError> {
    Ok(crate::enrollments::ever_enrolled(&state.db, program, partner).await?)
}

/// The program in the path, when it exists and `who` may read its chain:
/// the admin, the program, or a partner that is or was its member.
async fn readable_program(
    state: &AppState,
    who: Principal,
    raw: &str,
) -> Result<ProgramId, ApiError> {
    let id = super::path_id::<ProgramId>(raw, "program")?;
    match who {
        Principal::Partner(p) if ever_member(state, id, p).await? => {}
        Principal::Partner(_) => return Err(ApiError::NotFound("program")),
        other => other.require_program(id)?,
    }
    crate::programs::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("program"))?;
    Ok(id)
}

/// Read a program's statement key
///
/// The Ed25519 public key the program signs partner statements with;
/// `mitra verify-statement --public-key` takes `public_key` as it is.
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/statement-key",
    operation_id = "getStatementKey",
    tag = "statements",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    responses(
        (status = 200, description = "The published key.", body = PublishedKey),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn key(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<ProgramId>(&path, "program")?;
    // The key is public: any partner may read it; programs read their own.
    if !matches!(who, Principal::Partner(_)) {
        who.require_program(id)?;
    }
    crate::programs::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("program"))?;
    let mut conn = state.db.acquire().await?;
    let (_, published) = keys::current(&mut conn, &state.statement_keys, id)
        .await
        .map_err(|e| ApiError::from(StatementError::Key(e)))?;
    Ok(HttpResponse::Ok().json(published))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start after this link of the program's chain: the previous
    /// statement's `head.seq` (default 0, the beginning).
    #[param(minimum = 0)]
    after_seq: Option<i64>,
    /// End at this link (default: the chain's head).
    #[param(minimum = 0)]
    to_seq: Option<i64>,
}

/// Read a partner's signed statement of a program
///
/// The partner's ledger entries in the program, in chain order, after
/// `after_seq` up to `to_seq` (default the chain's head), with each entry's
/// hash and the link before it, the opening and closing balances, and an
/// Ed25519 signature by the program's statement key. Save it and check it
/// offline with `mitra verify-statement`. Entries are on statements once
/// the chainer has linked them, within about a second of their commit.
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/partners/{partner_id}/statement",
    operation_id = "getSignedStatement",
    tag = "statements",
    params(
        ("id" = ProgramId, Path, description = "The program's id."),
        ("partner_id" = PartnerId, Path, description = "The partner's id."),
        RangeQuery
    ),
    responses(
        (status = 200, description = "The signed statement.", body = SignedStatement),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn statement(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
    query: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (raw_program, raw_partner) = path.into_inner();
    let program = super::path_id::<ProgramId>(&raw_program, "program")?;
    let partner = super::path_id::<PartnerId>(&raw_partner, "partner")?;
    match who {
        Principal::Partner(p) if p == partner => {}
        Principal::Partner(_) => return Err(ApiError::NotFound("partner")),
        other => other.require_program(program)?,
    }
    if !ever_member(&state, program, partner).await? {
        return Err(ApiError::NotFound("partner"));
    }
    let statement = statements::signed(
        &state.db,
        &state.statement_keys,
        program,
        partner,
        query.after_seq.unwrap_or(0),
        query.to_seq,
    )
    .await?;
    Ok(HttpResponse::Ok().json(statement))
}

/// Read a proof of a program's chain
///
/// Every link of the program's chain after `after_seq` up to `to_seq`
/// (default the head): whose entry each is, its digest and hash, never its
/// content. Between two statements (`after_seq` the earlier one's head,
/// `to_seq` the later one's), it lets the partner recompute the chain from
/// one head to the other and see that every one of its entries there is in
/// the later statement: nothing was removed (`mitra verify-statement LATER
/// --previous EARLIER --chain PROOF`).
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/chain",
    operation_id = "getChainProof",
    tag = "statements",
    params(("id" = ProgramId, Path, description = "The program's id."), RangeQuery),
    responses(
        (status = 200, description = "The links.", body = ChainProof),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn chain(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let program = readable_program(&state, who, &path).await?;
    let proof = statements::proof(
        &state.db,
        program,
        query.after_seq.unwrap_or(0),
        query.to_seq,
    )
    .await?;
    Ok(HttpResponse::Ok().json(proof))
}
