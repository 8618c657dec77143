//! Agreements: POST /v1/programs/{id}/agreements, GET/PUT /v1/agreements/{id},
//! and the version history.

use super::pagination::{Cursor, List, Page};
use super::validate::Checker;
use crate::agreements::{self, Agreement, Terms, WriteError};
use crate::domain::{AgreementId, BasisPoints, CouponCode, PartnerId, ProgramId, Share, Shares};
use crate::enrollments;
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeSet;

/// A page of agreements, as the OpenAPI document names it.
type AgreementPage = List<Agreement>;

pub const MAX_COUPONS: usize = 100;

/// One partner's share, as the client sends it.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewShare)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    #[schema(value_type = PartnerId)]
    partner_id: String,
    /// Basis points; the shares must sum to exactly 10000.
    #[schema(minimum = 0, maximum = 10000, examples(10000))]
    share_bps: i64,
}

/// The terms of a new agreement's first version.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = AgreementTerms)]
#[serde(deny_unknown_fields)]
pub struct TermsBody {
    /// 1 to 100 partners, each once, with shares summing to 10000.
    #[serde(deserialize_with = "super::body::objects")]
    #[schema(min_items = 1, max_items = 100)]
    partners: Vec<ShareBody>,
    /// Overrides the program's rules for the events it names; null or absent: the program's.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::CommissionRules>)]
    commission: Option<serde_json::Value>,
    /// Coupon codes that attribute a conversion to this agreement (at most 100), unique in the program.
    #[serde(default)]
    #[schema(value_type = Vec<CouponCode>, max_items = 100)]
    coupon_codes: Vec<String>,
    #[serde(default)]
    valid_from: Option<DateTime<Utc>>,
    /// Must be after `valid_from`.
    #[serde(default)]
    valid_until: Option<DateTime<Utc>>,
}

/// New terms for an agreement: its next version. The same fields as
/// `AgreementTerms`, and the version the change is based on.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = AgreementChange)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    /// 1 to 100 partners, each once, with shares summing to 10000.
    #[serde(deserialize_with = "super::body::objects")]
    #[schema(min_items = 1, max_items = 100)]
    partners: Vec<ShareBody>,
    /// Overrides the program's rules for the events it names; null or absent: the program's.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::CommissionRules>)]
    commission: Option<serde_json::Value>,
    /// Coupon codes that attribute a conversion to this agreement (at most 100), unique in the program.
    #[serde(default)]
    #[schema(value_type = Vec<CouponCode>, max_items = 100)]
    coupon_codes: Vec<String>,
    #[serde(default)]
    valid_from: Option<DateTime<Utc>>,
    /// Must be after `valid_from`.
    #[serde(default)]
    valid_until: Option<DateTime<Utc>>,
    /// The version the change is based on; when someone changed the terms
    /// since, the answer is 409 and nothing changes.
    #[serde(default)]
    base_version: Option<i32>,
}

impl ChangeBody {
    fn split(self) -> (TermsBody, Option<i32>) {
        let terms = TermsBody {
            partners: self.partners,
            commission: self.commission,
            coupon_codes: self.coupon_codes,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        };
        (terms, self.base_version)
    }
}

impl TermsBody {
    /// The terms, when every partner named is active in `program`. A
    /// partner that does not exist and one that is not a member get the same
    /// answer, so the check tells nothing about other programs' partners.
    async fn parse(&self, state: &AppState, program: ProgramId) -> Result<Terms, ApiError> {
        let mut c = Checker::new();
        let mut shares = Vec::new();
        for (i, p) in self.partners.iter().enumerate() {
            let id = c.check(
                format!("partners[{i}].partner_id"),
                PartnerId::parse(&p.partner_id),
            );
            let bps = c.check(
                format!("partners[{i}].share_bps"),
                BasisPoints::new(p.share_bps),
            );
            if let (Some(partner_id), Some(share_bps)) = (id, bps) {
                shares.push(Share {
                    partner_id,
                    share_bps,
                });
            }
        }
        let shares = if c.is_ok() {
            match Shares::new(shares) {
                Ok(s) => Some(s),
                Err(e) => {
                    c.fail("partners", e);
                    None
                }
            }
        } else {
            None
        };
        if let Some(shares) = &shares {
            let ids: Vec<PartnerId> = shares.iter().map(|s| s.partner_id).collect();
            let active = enrollments::active_among(&state.db, program, &ids).await?;
            for (i, p) in self.partners.iter().enumerate() {
                let member = PartnerId::parse(&p.partner_id).is_ok_and(|id| active.contains(&id));
                if !member {
                    c.fail(
                        format!("partners[{i}].partner_id"),
                        "is not an active partner of this program",
                    );
                }
            }
        }
        let commission = match &self.commission {
            None | Some(serde_json::Value::Null) => Some(None),
            Some(v) => c.rules("commission", v).map(Some),
        };
        let mut codes = BTreeSet::new();
        if self.coupon_codes.len() > MAX_COUPONS {
            c.fail("coupon_codes", format!("at most {MAX_COUPONS} codes"));
        }
        for (i, code) in self.coupon_codes.iter().enumerate() {
            if let Some(code) = c.check(format!("coupon_codes[{i}]"), CouponCode::parse(code)) {
                codes.insert(code);
            }
        }
        if let (Some(from), Some(until)) = (self.valid_from, self.valid_until)
            && from >= until
        {
            c.fail("valid_until", "must be after valid_from");
        }
        c.finish(|| {
            Some(Terms {
                shares: shares?,
                commission: commission?,
                coupon_codes: codes.into_iter().collect(),
                valid_from: self.valid_from,
                valid_until: self.valid_until,
            })
        })
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::CouponTaken(_) | WriteError::StaleVersion { .. } => {
                ApiError::Conflict(e.to_string())
            }
            WriteError::NotFound => ApiError::NotFound("agreement"),
            WriteError::Db(e) => e.into(),
        }
    }
}

async fn load(
    state: &AppState,
    id: AgreementId,
    version: Option<i32>,
) -> Result<Agreement, ApiError> {
    agreements::get(&state.db, id, version)
        .await?
        .ok_or(ApiError::NotFound("agreement"))
}

/// Reads are open to the admin, the owning program, and partners named in
/// any version; anyone else is told it does not exist.
async fn readable(
    state: &AppState,
    who: Principal,
    id: AgreementId,
) -> Result<Agreement, ApiError> {
    let agreement = load(state, id, None).await?;
    let allowed = match who {
        Principal::Admin => true,
        Principal::Program(p) => p == agreement.program_id,
        Principal::Partner(p) => agreements::has_partner(&state.db, id, p).await?,
    };
    allowed
        .then_some(agreement)
        .ok_or(ApiError::NotFound("agreement"))
}

/// Create an agreement
///
/// Makes version 1 of the terms between the program and its partners.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/agreements",
    operation_id = "createAgreement",
    tag = "agreements",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body = TermsBody,
    responses(
        (status = 201, description = "Created, at version 1.", body = Agreement,
            headers(("Location" = String, description = "`/v1/agreements/{id}`"))),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
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
    let body: TermsBody = body.json()?;
    let terms = body.parse(&state, program).await?;
    let id = agreements::insert(&state.db, program, &terms).await?;
    let agreement = load(&state, id, None).await?;
    tracing::info!(agreement = %id, program = %program, "agreement created");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/agreements/{id}")))
        .json(agreement))
}

/// Change an agreement's terms
///
/// Changing terms makes a new version; the earlier ones stay readable, and
/// each commission keeps the version it was computed under.
#[utoipa::path(
    put,
    path = "/v1/agreements/{id}",
    operation_id = "updateAgreement",
    tag = "agreements",
    params(("id" = AgreementId, Path, description = "The agreement's id.")),
    request_body = ChangeBody,
    responses(
        (status = 200, description = "The new version.", body = Agreement),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn update(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<AgreementId>(&path, "agreement")?;
    let current = load(&state, id, None).await?;
    who.require_program(current.program_id)
        .map_err(|_| ApiError::NotFound("agreement"))?;
    let (body, base_version) = body.json::<ChangeBody>()?.split();
    let terms = body.parse(&state, current.program_id).await?;
    let version = agreements::new_version(&state.db, id, base_version, &terms).await?;
    tracing::info!(agreement = %id, version, "agreement terms changed");
    Ok(HttpResponse::Ok().json(load(&state, id, Some(version)).await?))
}

/// Read an agreement's current version
#[utoipa::path(
    get,
    path = "/v1/agreements/{id}",
    operation_id = "getAgreement",
    tag = "agreements",
    params(("id" = AgreementId, Path, description = "The agreement's id.")),
    responses(
        (status = 200, description = "The current version.", body = Agreement),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<AgreementId>(&path, "agreement")?;
    Ok(HttpResponse::Ok().json(readable(&state, who, id).await?))
}

/// List an agreement's versions
///
/// Every version, oldest first, in one page.
#[utoipa::path(
    get,
    path = "/v1/agreements/{id}/versions",
    operation_id = "listAgreementVersions",
    tag = "agreements",
    params(("id" = AgreementId, Path, description = "The agreement's id.")),
    responses(
        (status = 200, description = "Every version.", body = AgreementPage),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn versions(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<AgreementId>(&path, "agreement")?;
    readable(&state, who, id).await?;
    let all = agreements::versions(&state.db, id).await?;
    Ok(HttpResponse::Ok().json(List {
        data: all,
        next_cursor: None,
    }))
}

/// Read one version of an agreement
#[utoipa::path(
    get,
    path = "/v1/agreements/{id}/versions/{version}",
    operation_id = "getAgreementVersion",
    tag = "agreements",
    params(
        ("id" = AgreementId, Path, description = "The agreement's id."),
        ("version" = i32, Path, minimum = 1, description = "The version, from 1."),
    ),
    responses(
        (status = 200, description = "That version.", body = Agreement),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn version(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<AgreementId>(&path.0, "agreement")?;
    let n: i32 = path
        .1
        .parse()
        .map_err(|_| ApiError::NotFound("agreement version"))?;
    readable(&state, who, id).await?;
    let agreement = agreements::get(&state.db, id, Some(n))
        .await?
        .ok_or(ApiError::NotFound("agreement version"))?;
    Ok(HttpResponse::Ok().json(agreement))
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

/// List a program's agreements
///
/// Current versions: for the admin and the program all of them, for a
/// partner key those whose current terms include it.
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/agreements",
    operation_id = "listAgreements",
    tag = "agreements",
    params(("id" = ProgramId, Path, description = "The program's id."), ListQuery),
    responses(
        (status = 200, description = "A page of agreements.", body = AgreementPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn list_for_program(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(&path, "program")?;
    let page = Page::parse(query.limit, query.cursor)?;
    let partner = match who {
        Principal::Partner(p) => Some(p),
        other => {
            other.require_program(program)?;
            None
        }
    };
    let rows =
        agreements::list(&state.db, Some(program), partner, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |a| a.id.get())))
}
