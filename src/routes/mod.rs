//! HTTP routes. Handlers parse requests into domain types, call the domain
//! modules, and map results to responses; they hold no business rules.

mod agreements;
mod commissions;
mod conversions;
mod earnings;
mod links;
mod ops;
mod pagination;
mod partners;
mod payouts;
mod programs;
mod redirect;
mod reports;
mod validate;

use crate::error::{ApiError, json_error};
use actix_web::web;

pub use redirect::{PREFIX as REDIRECT_PREFIX, ROUTE as REDIRECT_ROUTE};

/// Largest JSON body the admin API reads.
pub const JSON_LIMIT: usize = 64 * 1024;

/// Health, readiness and metrics: served by every role.
pub fn ops(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics));
}

/// The public and admin API: served by the api role.
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(JSON_LIMIT)
            .error_handler(|err, _| json_error(err, JSON_LIMIT).into()),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|err, _| {
            ApiError::BadRequest(format!("bad query string: {err}")).into()
        }),
    )
    // A static prefix, not a "/l/{code}" pattern: the router then matches
    // without a regex, and the handler takes the code from the raw path.
    .service(web::scope("/l").default_service(web::to(redirect::redirect)))
    .service(
        web::scope("/v1")
            .service(
                web::resource("/programs")
                    .route(web::post().to(programs::create))
                    .route(web::get().to(programs::list)),
            )
            .route("/programs/{id}", web::get().to(programs::get))
            .route(
                "/programs/{id}/conversions",
                web::post().to(conversions::receive),
            )
            .route(
                "/programs/{id}/conversions/{order_id}",
                web::get().to(conversions::by_order),
            )
            .route(
                "/programs/{id}/webhook-secrets",
                web::post().to(conversions::roll_secret),
            )
            .service(
                web::resource("/programs/{id}/agreements")
                    .route(web::post().to(agreements::create))
                    .route(web::get().to(agreements::list_for_program)),
            )
            .service(
                web::resource("/partners")
                    .route(web::post().to(partners::create))
                    .route(web::get().to(partners::list)),
            )
            .route("/partners/{id}", web::get().to(partners::get))
            .route(
                "/partners/{id}/commissions",
                web::get().to(earnings::commissions),
            )
            .route("/partners/{id}/balance", web::get().to(earnings::balance))
            .route(
                "/partners/{id}/statement",
                web::get().to(earnings::statement),
            )
            .route(
                "/commissions/{id}/approve",
                web::post().to(commissions::approve),
            )
            .route(
                "/commissions/{id}/reject",
                web::post().to(commissions::reject),
            )
            .service(
                web::resource("/programs/{id}/payouts")
                    .route(web::post().to(payouts::create))
                    .route(web::get().to(payouts::list)),
            )
            .route("/payouts/{id}", web::get().to(payouts::get))
            .route("/reports", web::get().to(reports::get))
            .service(
                web::resource("/agreements/{id}")
                    .route(web::get().to(agreements::get))
                    .route(web::put().to(agreements::update)),
            )
            .route(
                "/agreements/{id}/versions",
                web::get().to(agreements::versions),
            )
            .route(
                "/agreements/{id}/versions/{version}",
                web::get().to(agreements::version),
            )
            .service(
                web::resource("/links")
                    .route(web::post().to(links::create))
                    .route(web::get().to(links::list)),
            )
            .service(
                web::resource("/links/{id}")
                    .route(web::get().to(links::get))
                    .route(web::delete().to(links::disable)),
            ),
    );
}

/// Parses an id from the path. An id that cannot exist names nothing: 404.
pub fn path_id<T: std::str::FromStr>(raw: &str, kind: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(kind))
}

/// Unknown routes.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("resource"))
}
