//! /v1/links: issue and read tracked links.

use super::pagination::{List, Page};
use super::validate::Checker;
use crate::agreements;
use crate::auth::Principal;
use crate::domain::{AgreementId, LinkId, SubIds, WebUrl};
use crate::error::ApiError;
use crate::links::{self, NewLink};
use crate::programs;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    agreement_id: String,
    #[serde(default)]
    destination_url: Option<String>,
    #[serde(default)]
    sub_ids: BTreeMap<String, String>,
}

/// The admin, the agreement's program, or a partner in its current terms
/// may issue a link; to anyone else the agreement does not exist.
pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<CreateLink>,
) -> Result<HttpResponse, ApiError> {
    let agreement_id = AgreementId::parse(&body.agreement_id)
        .map_err(|_| ApiError::invalid("agreement_id", "not an agreement id"))?;
    let agreement = agreements::get(&state.db, agreement_id, None)
        .await?
        .ok_or(ApiError::NotFound("agreement"))?;
    let allowed = match who {
        Principal::Admin => true,
        Principal::Program(p) => p == agreement.program_id,
        Principal::Partner(p) => agreement.partners.iter().any(|s| s.partner_id == p),
    };
    if !allowed {
        return Err(ApiError::NotFound("agreement"));
    }
    let program = programs::get(&state.db, agreement.program_id)
        .await?
        .ok_or(ApiError::NotFound("program"))?;

    let mut c = Checker::new();
    let destination = match &body.destination_url {
        None => Some(None),
        Some(raw) => c
            .check(
                "destination_url",
                WebUrl::parse(raw).and_then(|u| program.landing().check(u)),
            )
            .map(Some),
    };
    let sub_ids = match SubIds::parse(&body.sub_ids) {
        Ok(s) => Some(s),
        Err(e) => {
            c.fail("sub_ids", e);
            None
        }
    };
    let new = c.finish(|| {
        Some(NewLink {
            program_id: agreement.program_id,
            agreement_id,
            destination_url: destination?,
            sub_ids: sub_ids?,
            created_by_partner_id: who.partner(),
        })
    })?;
    let link = links::insert(&state.db, &state.settings.link_keys, &new).await?;
    tracing::info!(link = %link.id, agreement = %agreement_id, "link issued");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/links/{}", link.id)))
        .json(link.view(&state.settings.public_base())))
}

/// Whether `who` may see a link of this program and agreement.
pub async fn can_see(
    state: &AppState,
    who: Principal,
    link: &links::Link,
) -> Result<bool, ApiError> {
    Ok(match who {
        Principal::Admin => true,
        Principal::Program(p) => p == link.program_id,
        Principal::Partner(p) => agreements::has_partner(&state.db, link.agreement_id, p).await?,
    })
}

pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<LinkId>(&path, "link")?;
    let link = links::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("link"))?;
    if !can_see(&state, who, &link).await? {
        return Err(ApiError::NotFound("link"));
    }
    Ok(HttpResponse::Ok().json(link.view(&state.settings.public_base())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    agreement_id: Option<String>,
}

/// Links the caller may see, optionally of one agreement.
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(query.limit, query.cursor.as_deref())?;
    let agreement = match &query.agreement_id {
        None => None,
        Some(a) => Some(
            AgreementId::parse(a)
                .map_err(|_| ApiError::BadRequest("agreement_id is not an agreement id".into()))?,
        ),
    };
    let rows = links::list(
        &state.db,
        who.program(),
        agreement,
        who.partner(),
        page.after,
        page.fetch(),
    )
    .await?;
    let base = state.settings.public_base();
    let list = List::from_rows(rows, page, |l| l.id.get());
    Ok(HttpResponse::Ok().json(List {
        data: list
            .data
            .into_iter()
            .map(|l| l.view(&base))
            .collect::<Vec<_>>(),
        next_cursor: list.next_cursor,
    }))
}

/// Disables a link: it stops redirecting on every instance within seconds.
/// The admin, the program, or the partner who issued it may do so.
pub async fn disable(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<LinkId>(&path, "link")?;
    let link = links::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("link"))?;
    let allowed = match who {
        Principal::Admin => true,
        Principal::Program(p) => p == link.program_id,
        Principal::Partner(p) => link.created_by_partner_id == Some(p),
    };
    if !allowed {
        return Err(if can_see(&state, who, &link).await? {
            ApiError::Forbidden("only the partner who issued a link may disable it")
        } else {
            ApiError::NotFound("link")
        });
    }
    let link = links::disable(&state.db, id).await?;
    // This instance forgets it at once; the others on their next poll.
    state.link_cache.invalidate(id.get());
    tracing::info!(link = %id, "link disabled");
    Ok(HttpResponse::Ok().json(link.view(&state.settings.public_base())))
}
