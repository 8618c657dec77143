//! /v1/partners: create, read and list partners.

use super::pagination::{List, Page};
use super::validate::Checker;
use crate::auth::Principal;
use crate::domain::{Email, KeyOwner, Name, NewApiKey, PartnerId};
use crate::error::ApiError;
use crate::partners::{self, Partner};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePartner {
    name: String,
    email: String,
}

#[derive(Serialize)]
struct CreatedPartner {
    #[serde(flatten)]
    partner: Partner,
    /// Shown once: only its hash is stored.
    api_key: String,
}

pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<CreatePartner>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
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

/// The admin, the partner itself, or a program the partner works with.
pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<PartnerId>(&path, "partner")?;
    let allowed = match who {
        Principal::Admin => true,
        Principal::Partner(p) => p == id,
        Principal::Program(program) => partners::works_with(&state.db, id, program).await?,
    };
    if !allowed {
        return Err(ApiError::NotFound("partner"));
    }
    let partner = partners::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("partner"))?;
    Ok(HttpResponse::Ok().json(partner))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The admin sees every partner; a program key the partners in its agreements.
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(query.limit, query.cursor.as_deref())?;
    let program = match who {
        Principal::Admin => None,
        Principal::Program(p) => Some(p),
        Principal::Partner(_) => return Err(ApiError::Forbidden("partners cannot list partners")),
    };
    let rows = partners::list(&state.db, program, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |p| p.id.get())))
}
