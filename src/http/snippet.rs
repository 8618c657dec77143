//! GET /mitra.js: the landing-page snippet (`assets/mitra.js`), embedded in
//! the binary. Its version is a hash of its bytes: the URL with `?v=` and
//! that version may be cached for a year (a new release is a new URL); the
//! bare URL for five minutes, revalidated by ETag.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub const SCRIPT: &str = include_str!("../../assets/mitra.js");
pub const PATH: &str = "/mitra.js";

/// The first 12 hex digits of the script's SHA-256.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        Sha256::digest(SCRIPT.as_bytes())
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// The URL shops paste: cacheable for a year.
pub fn versioned_url(public_url: &url::Url) -> String {
    format!(
        "{}{PATH}?v={}",
        public_url.as_str().trim_end_matches('/'),
        version()
    )
}

/// Serve the landing-page snippet
///
/// GET /mitra.js: the script shops put on their pages. It keeps the click
/// id a shopper landed with (and a coupon) in first-party cookies for the
/// attribution window and hands it to the checkout. `?v=<version>` (as
/// `GET /v1/programs/{id}/integrations` gives it) may be cached for a year.
#[utoipa::path(
    get,
    path = "/mitra.js",
    operation_id = "getSnippet",
    tag = "integrations",
    params(("v" = Option<String>, Query, description = "The script's version; with it, the answer may be cached for a year.")),
    responses(
        (status = 200, description = "The script.", content_type = "text/javascript", body = String),
        (status = 304, description = "The cached copy (`If-None-Match`) is current."),
        (status = 500, response = crate::http::openapi::Internal),
    )
)]
pub async fn script(req: HttpRequest) -> HttpResponse {
    let etag = format!("\"{}\"", version());
    let pinned = req
        .query_string()
        .split('&')
        .any(|pair| pair == format!("v={}", version()));
    let cache = if pinned {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    let cached = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut res = if cached {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if cached {
        return res.finish();
    }
    res.content_type("text/javascript; charset=utf-8")
        .body(SCRIPT)
}
