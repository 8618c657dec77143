//! /v1/partners: create, read and list partners.

use super::pagination::{Cursor, List, Page};
use super::validate::Checker;
use crate::domain::{Email, KeyOwner, Name, NewApiKey, PartnerId};
use crate::enrollments;
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::partners::{self, Partner};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

/// A page of partners, as the OpenAPI document names it.
type PartnerPage = List<Partner>;

/// A new partner.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePartner {
    #[schema(value_type = Name)]
    name: String,
    #[schema(value_type = Email)]
    email: String,
}

/// A partner just created, with its API key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedPartner {
    #[serde(flatten)]
    partner: Partner,
    /// The partner's API key (`mitra_ptn_...`). Shown once: only its hash is stored.
    #[schema(examples("mitra_ptn_7Hd2..."))]
    api_key: String,
}

/// Create a partner
///
/// Answers 201 with the partner's API key, shown only now.
#[utoipa::path(
    post,
    path = "/v1/partners",
    operation_id = "createPartner",
    tag = "partners",
    request_body = CreatePartner,
    responses(
        (status = 201, description = "Created.", body = CreatedPartner,
            headers(("Location" = String, description = "`/v1/partners/{id}`"))),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let body: CreatePartner = body.json()?;
    let mut c = Checker::new();
    let name = c.check("name", Name::parse(&body.name));
    let email = c.check("email", Email::parse(&body.email));
    let (name, email) = c.finish(|| Some((name?, email?)))?;
    let key = NewApiKey::generate(KeyOwner::Partner);
    let partner = partners::insert(&state.db, &name, &email, &key.hash).await?;
    tracing::info!(partner = %partner.id, "partner created");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/partners/{}", partner.id)))
        .json(CreatedPartner {
            partner,
            api_key: key.plaintext,
        }))
}

/// Read a partner
///
/// The admin, the partner itself, or a program the partner works with.
#[utoipa::path(
    get,
    path = "/v1/partners/{id}",
    operation_id = "getPartner",
    tag = "partners",
    params(("id" = PartnerId, Path, description = "The partner's id.")),
    responses(
        (status = 200, description = "The partner.", body = Partner),
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
    let id = super::path_id::<PartnerId>(&path, "partner")?;
    let allowed = match who {
        Principal::Admin => true,
        Principal::Partner(p) => p == id,
        // Contact details only while the partner is a member.
        Principal::Program(program) => enrollments::is_active(&state.db, program, id).await?,
    };
    if !allowed {
        return Err(ApiError::NotFound("partner"));
    }
    let partner = partners::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("partner"))?;
    Ok(HttpResponse::Ok().json(partner))
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

/// List partners
///
/// The admin sees every partner; a program key the partners in its agreements.
#[utoipa::path(
    get,
    path = "/v1/partners",
    operation_id = "listPartners",
    tag = "partners",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of partners.", body = PartnerPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(query.limit, query.cursor)?;
    let program = match who {
        Principal::Admin => None,
        Principal::Program(p) => Some(p),
        Principal::Partner(_) => return Err(ApiError::Forbidden("partners cannot list partners")),
    };
    let rows = partners::list(&state.db, program, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |p| p.id.get())))
}
