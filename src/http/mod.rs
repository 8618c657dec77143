//! The HTTP layer: one route file per resource, the middleware, who is
//! calling (`auth`), the one error type (`error`) and the OpenAPI document.
//! Handlers parse requests into domain types at the edge, authorize the
//! caller, call the aggregate modules below, and map results to responses.
//!
//! The route table below is declared once, by `route_table!`: it gives both
//! the list of (method, path) pairs and the function that registers exactly
//! those routes. The OpenAPI document (`crate::http::openapi`) lists every
//! handler's operation; `tests/api/openapi.rs` checks that the two agree in
//! both directions, so a route added without documentation (or documented
//! without being served) fails the tests.

pub mod auth;
pub mod body;
pub mod error;
pub mod middleware;
pub mod openapi;
pub mod state;

pub(crate) mod agreements;
pub(crate) mod balances;
pub(crate) mod claims;
pub(crate) mod commissions;
pub(crate) mod conversions;
pub(crate) mod enrollments;
pub(crate) mod integrations;
pub(crate) mod links;
pub(crate) mod ops;
pub(crate) mod pagination;
pub(crate) mod partners;
pub(crate) mod payouts;
pub(crate) mod programs;
pub mod redirect;
pub(crate) mod reports;
pub(crate) mod simulations;
pub(crate) mod snippet;
pub(crate) mod statements;
pub(crate) mod users;
mod validate;
pub(crate) mod webhook_endpoints;
pub(crate) mod webhook_secrets;

use actix_web::web;
use error::ApiError;

pub use redirect::{PREFIX as REDIRECT_PREFIX, ROUTE as REDIRECT_ROUTE};
pub use snippet::version as snippet_version;

/// Largest JSON body the admin API reads.
pub const JSON_LIMIT: usize = body::LIMIT;

/// Declares a route table: a const list of (method, path) pairs, methods in
/// lower case as OpenAPI writes them, and a function registering exactly
/// those routes, one resource per path.
macro_rules! route_table {
    (
        $(#[$doc:meta])*
        $table:ident, $register:ident {
            $( $path:literal => { $( $method:ident : $handler:path ),+ $(,)? } ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        pub const $table: &[(&str, &str)] = &[ $( $( (stringify!($method), $path), )+ )* ];

        fn $register(cfg: &mut web::ServiceConfig) {
            $( cfg.service(web::resource($path) $( .route(web::$method().to($handler)) )+ ); )*
        }
    };
}

route_table! {
    /// Health, readiness, metrics and the OpenAPI document: served by every role.
    OPS_ROUTES, register_ops {
        "/healthz" => { get: ops::healthz },
        "/readyz" => { get: ops::readyz },
        "/openapi.json" => { get: ops::openapi },
    }
}

route_table! {
    /// Prometheus: on the main listener, or on `MITRA_METRICS_LISTEN` alone.
    METRICS_ROUTES, register_metrics {
        "/metrics" => { get: ops::metrics },
    }
}

/// The redirect: everything under `/l/` reaches one handler, which answers
/// GET and HEAD (405 to other methods). Registered by `redirects`.
pub const REDIRECT_ROUTES: &[(&str, &str)] = &[("get", REDIRECT_ROUTE), ("head", REDIRECT_ROUTE)];

route_table! {
    /// The admin and partner API under `/v1`, the platforms' webhooks, and
    /// the landing-page snippet: served by the api role.
    API_ROUTES, register_api {
        // The shops' webhooks first: the router tries patterns in this
        // order, one regex match each, and these take the money path's
        // traffic (benches/conversions_load.sh).
        "/v1/programs/{id}/conversions" => { post: conversions::receive },
        "/v1/programs/{id}/integrations/shopify" => { post: integrations::shopify },
        "/v1/programs/{id}/integrations/woocommerce" => { post: integrations::woocommerce },
        "/v1/programs/{id}/integrations/stripe" => { post: integrations::stripe },
        "/mitra.js" => { get: snippet::script },
        "/v1/programs" => { post: programs::create, get: programs::list },
        "/v1/programs/{id}" => { get: programs::get, patch: programs::update },
        "/v1/programs/{id}/versions" => { get: programs::versions },
        "/v1/programs/{id}/versions/{version}" => { get: programs::version },
        "/v1/programs/{id}/simulate" => { post: simulations::simulate },
        "/v1/programs/{id}/listing" => { put: programs::set_listing },
        "/v1/public-programs" => { get: programs::list_public },
        "/v1/programs/{id}/enrollments" => {
            post: enrollments::invite,
            get: enrollments::list_for_program,
        },
        "/v1/programs/{id}/applications" => { post: enrollments::apply },
        "/v1/partners/{id}/enrollments" => { get: enrollments::list_for_partner },
        "/v1/enrollments/{id}" => { get: enrollments::get },
        "/v1/enrollments/{id}/accept" => { post: enrollments::accept },
        "/v1/enrollments/{id}/decline" => { post: enrollments::decline },
        "/v1/enrollments/{id}/approve" => { post: enrollments::approve },
        "/v1/enrollments/{id}/reject" => { post: enrollments::reject },
        "/v1/enrollments/{id}/deactivate" => { post: enrollments::deactivate },
        "/v1/enrollments/{id}/ban" => { post: enrollments::ban },
        "/v1/invitations/{token}/{answer}" => { post: enrollments::answer_invitation },
        "/v1/programs/{id}/conversions/{order_id}" => { get: conversions::by_order },
        "/v1/programs/{id}/webhook-secrets" => { post: webhook_secrets::roll },
        "/v1/programs/{id}/integrations" => { get: integrations::list },
        "/v1/programs/{id}/integrations/{platform}/secret" => { put: integrations::set_secret },
        "/v1/programs/{id}/agreements" => {
            post: agreements::create,
            get: agreements::list_for_program,
        },
        "/v1/partners" => { post: partners::create, get: partners::list },
        "/v1/partners/{id}" => { get: partners::get },
        "/v1/partners/{id}/commissions" => { get: commissions::list },
        "/v1/partners/{id}/balance" => { get: balances::balance },
        "/v1/partners/{id}/statement" => { get: balances::statement },
        "/v1/commissions/{id}/approve" => { post: commissions::approve },
        "/v1/commissions/{id}/reject" => { post: commissions::reject },
        "/v1/programs/{id}/payouts" => { post: payouts::create, get: payouts::list },
        "/v1/programs/{id}/statement-key" => { get: statements::key },
        "/v1/programs/{id}/partners/{partner_id}/statement" => { get: statements::statement },
        "/v1/programs/{id}/chain" => { get: statements::chain },
        "/v1/programs/{id}/claims" => { post: claims::open, get: claims::list },
        "/v1/programs/{id}/claim-policy" => { put: claims::set_policy },
        "/v1/claims/{id}" => { get: claims::get },
        "/v1/claims/{id}/comments" => { post: claims::comment },
        "/v1/claims/{id}/accept" => { post: claims::accept },
        "/v1/claims/{id}/decline" => { post: claims::decline },
        "/v1/webhook-endpoints" => {
            post: webhook_endpoints::create,
            get: webhook_endpoints::list,
        },
        "/v1/webhook-endpoints/{id}" => {
            get: webhook_endpoints::get,
            delete: webhook_endpoints::delete,
        },
        "/v1/webhook-endpoints/{id}/enable" => { post: webhook_endpoints::enable },
        "/v1/webhook-endpoints/{id}/test" => { post: webhook_endpoints::test_fire },
        "/v1/webhook-endpoints/{id}/deliveries" => { get: webhook_endpoints::deliveries },
        "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/replay" => {
            post: webhook_endpoints::replay,
        },
        "/v1/payouts/{id}" => { get: payouts::get },
        "/v1/reports" => { get: reports::get },
        "/v1/agreements/{id}" => { get: agreements::get, put: agreements::update },
        "/v1/agreements/{id}/versions" => { get: agreements::versions },
        "/v1/agreements/{id}/versions/{version}" => { get: agreements::version },
        "/v1/links" => { post: links::create, get: links::list },
        "/v1/links/{id}" => { get: links::get, delete: links::disable },
        "/v1/programs/{id}/users" => { post: users::invite_program_user },
        "/v1/partners/{id}/users" => { post: users::invite_partner_user },
        "/v1/partners/{id}/login-links" => { post: users::login_link },
        "/v1/password-resets" => { post: users::password_reset },
    }
}

/// Every (method, path) a process running the api role serves.
pub fn served_routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    OPS_ROUTES
        .iter()
        .chain(METRICS_ROUTES)
        .chain(REDIRECT_ROUTES)
        .chain(API_ROUTES)
        .copied()
}

/// Health, readiness, metrics and the OpenAPI document: served by every
/// role. With a separate metrics listener, `/metrics` is served there only.
pub fn ops(cfg: &mut web::ServiceConfig, metrics_here: bool) {
    register_ops(cfg);
    if metrics_here {
        register_metrics(cfg);
    }
}

/// The metrics listener's only route.
pub fn metrics_only(cfg: &mut web::ServiceConfig) {
    register_metrics(cfg);
}

/// The redirect, served by the api role. Registered outside the middleware
/// that wraps every other route: it is the hot path, and it gives itself
/// the request id, the metrics and the problem details that middleware
/// gives the rest. A static prefix, not a "/l/{code}" pattern: the router
/// then matches without a regex, and the handler takes the code from the
/// raw path.
pub fn redirects(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/l").default_service(web::to(redirect::redirect)));
}

/// The public and admin API: served by the api role.
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|err, _| {
            ApiError::BadRequest(format!("bad query string: {err}")).into()
        }),
    );
    register_api(cfg);
}

/// The program an id in the path names, when `who` may act on it (the admin
/// or the program itself); anything else is told it does not exist.
pub async fn program_in_path(
    state: &state::AppState,
    who: auth::Principal,
    raw: &str,
) -> Result<crate::programs::Program, ApiError> {
    let id = path_id::<crate::domain::ProgramId>(raw, "program")?;
    who.require_program(id)?;
    crate::programs::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("program"))
}

/// Parses an id from the path. An id that cannot exist names nothing: 404.
pub fn path_id<T: std::str::FromStr>(raw: &str, kind: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(kind))
}

/// Unknown routes.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("resource"))
}
