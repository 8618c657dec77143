//! The portal: partners and merchants use mitra in a browser, at
//! `/portal`, served by the api role beside the JSON API.
//!
//! Server-rendered HTML that works without JavaScript; a little script
//! (copy buttons, the browser's time zone) is vendored in the binary and
//! served from `/portal/static/`. Pages call the same core functions as
//! the API (enrollments, links, decisions, payouts, statements), so the
//! rules live in one place; what the portal adds is sessions, forms and
//! words. Every page sets a strict Content-Security-Policy: no inline
//! script or style, nothing from another origin.

mod auth;
mod chart;
mod claim_thread;
mod claims;
mod disputes;
mod examples;
pub mod i18n;
mod layout;
mod limits;
mod merchant;
mod partner;
mod signed_statements;
mod simulator;
mod web;
mod words;

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web as aw};

pub use examples::{Example, all as webhook_examples};
pub use limits::{ATTEMPTS_PER_ACCOUNT, ATTEMPTS_PER_ADDRESS, Limits};

/// No script but our own file, no inline style or script, no framing, forms
/// only to ourselves.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("static/portal.css");
const JS: &str = include_str!("static/portal.js");

async fn asset(path: aw::Path<String>) -> HttpResponse {
    let (body, kind) = match path.as_str() {
        "portal.css" => (CSS, "text/css; charset=utf-8"),
        "portal.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return actix_web::ResponseError::error_response(&web::PortalError::NotFound),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

async fn not_found() -> Result<HttpResponse, web::PortalError> {
    Err(web::PortalError::NotFound)
}

/// The portal's routes, under `/portal`.
pub fn configure(cfg: &mut aw::ServiceConfig) {
    use aw::{get, post};
    cfg.service(
        aw::scope("/portal")
            .wrap(
                DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    // Tokens travel in some portal URLs: never in a Referer.
                    .add((header::REFERRER_POLICY, "no-referrer"))
                    .add((header::CACHE_CONTROL, "no-store")),
            )
            .route("", get().to(auth::home))
            .route("/", get().to(auth::home))
            .route("/static/{file}", get().to(asset))
            .route("/login", get().to(auth::login_page))
            .route("/login", post().to(auth::login))
            .route("/logout", post().to(auth::logout))
            .route("/lang/{code}", get().to(auth::set_language))
            .route("/welcome/{token}", get().to(auth::password_page))
            .route("/welcome/{token}", post().to(auth::set_password))
            .route("/password-reset", get().to(auth::reset_page))
            .route("/password-reset", post().to(auth::request_reset))
            .route("/password-reset/{token}", get().to(auth::password_page))
            .route("/password-reset/{token}", post().to(auth::set_password))
            .route("/login-links/{token}", get().to(auth::login_link))
            .route("/invitations/{token}", get().to(auth::invitation))
            .route("/invitations/{token}/signup", post().to(auth::sign_up))
            .route("/invitations/{token}/answer", post().to(auth::answer))
            .route("/account", get().to(auth::account))
            .route("/account", post().to(auth::save_account))
            .route("/partner", get().to(partner::dashboard))
            .route("/partner/programs", get().to(partner::programs))
            .route("/partner/programs/{id}/apply", post().to(partner::apply))
            .route(
                "/partner/enrollments/{id}/{answer}",
                post().to(partner::answer),
            )
            .route("/partner/links", get().to(partner::links))
            .route("/partner/links", post().to(partner::create_link))
            .route("/partner/links/{id}", get().to(partner::link))
            .route("/partner/commissions", get().to(partner::commissions))
            .route("/partner/commissions/{id}/claim", get().to(disputes::page))
            .route("/partner/commissions/{id}/claim", post().to(disputes::open))
            .route("/partner/simulate", get().to(simulator::page))
            .route("/partner/claims", get().to(claims::page))
            .route("/partner/claims", post().to(claims::open))
            .route("/partner/statement", get().to(partner::statement))
            .route("/partner/statement.csv", get().to(partner::statement_csv))
            .route(
                "/partner/programs/{id}/signed-statement",
                get().to(signed_statements::download),
            )
            .route("/partner/payouts", get().to(partner::payouts))
            .route("/merchant", get().to(merchant::overview))
            .route("/merchant/partners", get().to(merchant::partners))
            .route("/merchant/partners/invite", post().to(merchant::invite))
            .route(
                "/merchant/enrollments/{id}/{action}",
                post().to(merchant::decide_enrollment),
            )
            .route("/merchant/agreements", get().to(merchant::agreements_list))
            .route(
                "/merchant/agreements",
                post().to(merchant::create_agreement),
            )
            .route("/merchant/agreements/{id}", get().to(merchant::agreement))
            .route(
                "/merchant/agreements/{id}/versions",
                post().to(merchant::new_version),
            )
            .route("/merchant/conversions", get().to(merchant::conversions))
            .route("/merchant/claims", get().to(claims::queue))
            .route("/merchant/claims/policy", post().to(claims::set_policy))
            // A claim's thread on either side; its comments before the
            // program's `{action}`, which would take "comment" for a decision.
            .route("/{side}/claims/{id}", get().to(claim_thread::page))
            .route(
                "/{side}/claims/{id}/comment",
                post().to(claim_thread::comment),
            )
            .route("/merchant/claims/{id}/{action}", post().to(claims::decide))
            .route(
                "/merchant/conversions/{id}/{action}",
                post().to(merchant::review),
            )
            .route("/merchant/payouts", get().to(merchant::payouts_page))
            .route("/merchant/payouts", post().to(merchant::run_payout))
            .route("/merchant/payouts/{file}", get().to(merchant::payout_csv))
            .route("/merchant/integration", get().to(merchant::integration))
            .route(
                "/merchant/integration/secret",
                post().to(merchant::roll_secret),
            )
            .default_service(aw::to(not_found)),
    );
}
