//! /v1/links: issue and read tracked links.

use super::pagination::{Cursor, List, Page};
use crate::agreements;
use crate::domain::{AgreementId, LinkId, WebUrl};
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::{ApiError, FieldError};
use crate::http::state::AppState;
use crate::links::{self, IssueError, Issuer, LinkView};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A page of links, as the OpenAPI document names it.
type LinkPage = List<LinkView>;

/// A new link.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    #[schema(value_type = AgreementId)]
    agreement_id: String,
    /// Where the link lands, on one of the program's landing domains;
    /// absent: the program's default URL.
    #[serde(default)]
    #[schema(value_type = Option<WebUrl>)]
    destination_url: Option<String>,
    #[serde(default)]
    #[schema(value_type = crate::domain::SubIds)]
    sub_ids: BTreeMap<String, String>,
}

/// Issue a link
///
/// The admin, the agreement's program, or a partner in its current terms
/// may issue a link; to anyone else the agreement does not exist.
#[utoipa::path(
    post,
    path = "/v1/links",
    operation_id = "createLink",
    tag = "links",
    request_body = CreateLink,
    responses(
        (status = 201, description = "Issued.", body = LinkView,
            headers(("Location" = String, description = "`/v1/links/{id}`"))),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    // Anyone with a key may issue links; which agreement is in the body.
    let body: CreateLink = body.json()?;
    let agreement_id = AgreementId::parse(&body.agreement_id)
        .map_err(|_| ApiError::invalid("agreement_id", "not an agreement id"))?;
    let issuer = match who {
        Principal::Admin => Issuer::Admin,
        Principal::Program(p) => Issuer::Program(p),
        Principal::Partner(p) => Issuer::Partner(p),
    };
    let link = links::issue(
        &state.db,
        &state.settings.link_keys,
        issuer,
        agreement_id,
        body.destination_url.as_deref(),
        &body.sub_ids,
    )
    .await
    .map_err(|e| match e {
        IssueError::NotFound => ApiError::NotFound("agreement"),
        IssueError::Invalid(fields) => ApiError::Validation(
            fields
                .into_iter()
                .map(|(field, message)| FieldError {
                    field: field.into(),
                    message,
                })
                .collect(),
        ),
        IssueError::Other(e) => e.into(),
    })?;
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

/// Read a link
#[utoipa::path(
    get,
    path = "/v1/links/{id}",
    operation_id = "getLink",
    tag = "links",
    params(("id" = LinkId, Path, description = "The link's id.")),
    responses(
        (status = 200, description = "The link.", body = LinkView),
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
    let id = super::path_id::<LinkId>(&path, "link")?;
    let link = links::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("link"))?;
    if !can_see(&state, who, &link).await? {
        return Err(ApiError::NotFound("link"));
    }
    Ok(HttpResponse::Ok().json(link.view(&state.settings.public_base())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    cursor: Option<Cursor>,
    /// Only the links of this agreement.
    #[param(value_type = Option<AgreementId>)]
    agreement_id: Option<String>,
}

/// List links
///
/// Links the caller may see, optionally of one agreement.
#[utoipa::path(
    get,
    path = "/v1/links",
    operation_id = "listLinks",
    tag = "links",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of links.", body = LinkPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(query.limit, query.cursor)?;
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

/// Disable a link
///
/// Disables a link: it stops redirecting on every instance within seconds.
/// The admin, the program, or the partner who issued it may do so.
#[utoipa::path(
    delete,
    path = "/v1/links/{id}",
    operation_id = "disableLink",
    tag = "links",
    params(("id" = LinkId, Path, description = "The link's id.")),
    responses(
        (status = 200, description = "The link, disabled.", body = LinkView),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
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
