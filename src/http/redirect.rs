//! GET and HEAD /l/{code}: the redirect shoppers touch.
//!
//! Order matters for speed and safety: the code's signature is checked
//! before any I/O (a code the cached link has already seen verify is that
//! same signature, recognised without a second HMAC), the link comes from
//! the in-process cache with its landing URL prebuilt, and the click is serialized straight into the click log's
//! buffer. Nothing here waits on Redis. Anything invalid answers 404 and
//! logs nothing.

use crate::clicks::log::Appended;
use crate::clicks::record::truncate_header;
use crate::clicks::{ClickEventRef, bots};
use crate::domain::WebUrl;
use crate::domain::click_id;
use crate::domain::link_code;
use crate::http::error::{ApiError, problem_response};
use crate::http::middleware;
use crate::http::state::AppState;
use crate::links::cache::{CachedLink, Location};
use crate::metrics::Metrics;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use prometheus::{IntCounter, IntCounterVec};
use std::time::Instant;

/// The route prefix; the code is the rest of the path.
pub const PREFIX: &str = "/l/";
/// The route pattern redirects are reported under in metrics.
pub const ROUTE: &str = "/l/{code}";

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The redirect's answers in `mitra_http_requests_total`: the hot path is
/// counted through handles resolved once, without asking the router for the
/// matched pattern or the registry for the label set.
pub struct RedirectCounters {
    found: IntCounter,
    not_found: IntCounter,
    requests: IntCounterVec,
}

impl RedirectCounters {
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            found: metrics
                .http_requests
                .with_label_values(&["GET", ROUTE, "302"]),
            not_found: metrics
                .http_requests
                .with_label_values(&["GET", ROUTE, "404"]),
            requests: metrics.http_requests.clone(),
        }
    }

    /// Counts one answer; `method` is already one of the few label values.
    pub fn count(&self, method: &str, status: StatusCode) {
        match (method, status.as_u16()) {
            ("GET", 302) => self.found.inc(),
            ("GET", 404) => self.not_found.inc(),
            _ => self
                .requests
                .with_label_values(&[method, ROUTE, status.as_str()])
                .inc(),
        }
    }
}

/// Follow a tracked link
///
/// Answers 302 to the link's destination (or the program's default URL)
/// with the link's sub ids and `mitra_click=<click id>` added to its query,
/// keeping the query and fragment. `?to=<url>` deep-links to any http(s) URL
/// whose host is exactly one of the program's landing domains. Anything
/// invalid (a forged or altered code, a disabled link, a deep link elsewhere)
/// answers 404 and logs nothing.
#[utoipa::path(
    get,
    path = "/l/{code}",
    operation_id = "followLink",
    tag = "redirect",
    params(
        ("code" = String, Path, description = "The link's signed code.",
            pattern = "^[0-9A-Za-z]{1,22}$", example = "2bH7kQ9xPz1mV"),
        ("to" = Option<String>, Query, format = "uri",
            description = "A deep link: an http(s) URL on one of the program's landing domains.",
            example = "https://shop.example/sale"),
    ),
    responses(
        (status = 302, description = "To the destination, with `mitra_click` added.",
            headers(
                ("Location" = String, description = "The destination URL with the link's sub ids \
                    and `mitra_click=<click id>` in its query."),
                ("Cache-Control" = String, description = "`no-store`: every visit must be counted."),
            )),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    )
)]
pub async fn redirect(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    // The hot path runs outside the app's middleware (see `http::redirects`):
    // it gives itself the request id, and opens the request's span only
    // when there is something to log, so a redirect costs no span.
    let request_id = middleware::request_id(&req);
    let mut res = match serve(&req, &state).await {
        Ok(res) => res,
        Err(e) => middleware::request_span(&request_id, &req).in_scope(|| e.error_response()),
    };
    res.headers_mut()
        .insert(middleware::X_REQUEST_ID, request_id);
    state
        .redirect_counters
        .count(middleware::method_label(req.method()), res.status());
    state
        .metrics
        .redirect_duration
        .observe(started.elapsed().as_secs_f64());
    res
}

async fn serve(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let is_head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let detail = format!("{} is not allowed on this resource", req.method());
            let mut res = problem_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                detail,
                None,
            );
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Ok(res);
        }
    };
    let refused = |outcome: &str, program: &str| {
        state
            .metrics
            .clicks
            .with_label_values(&[program, outcome])
            .inc();
        ApiError::NotFound("link")
    };
    // The raw path: a percent-encoded code is not a code.
    let code = req.path().strip_prefix(PREFIX).unwrap_or("");
    let Some(code) = link_code::decode(code) else {
        return Err(refused("invalid_code", "unknown"));
    };
    // A code already verified for this cached link is the same signature:
    // no HMAC for it again (see `LinkCache::verified`). Anything else is
    // checked before the cache may go to Postgres.
    let link = match state.link_cache.verified(&code) {
        Some(link) => link,
        None => {
            if !link_code::check(&state.settings.link_keys, &code) {
                return Err(refused("invalid_code", "unknown"));
            }
            match state.link_cache.get(code.link).await {
                Ok(Some(link)) => {
                    link.remember_verified(&code);
                    link
                }
                Ok(None) => return Err(refused("unknown_link", "unknown")),
                Err(e) => {
                    state.metrics.backend_error("postgres");
                    return Err(e.into());
                }
            }
        }
    };
    if link.disabled {
        return Err(refused("disabled", &link.program_label));
    }
    let deep = match deep_link(req.query_string(), &link) {
        Ok(d) => d,
        Err(()) => return Err(refused("bad_deep_link", &link.program_label)),
    };
    let location = deep.as_ref().unwrap_or(&link.location);

    let now_ms = chrono::Utc::now().timestamp_millis();
    let Some(click) =
        click_id::issue_text(&state.settings.link_keys, link.id, now_ms, rand::random())
    else {
        tracing::error!(link = %link.id, "no click id: link id beyond the click id range");
        return Ok(found(location.with_click("")));
    };

    let headers = req.headers();
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let user_agent = text(&header::USER_AGENT).map(truncate_header);
    let bot = bots::classify(user_agent, is_head);
    // A header sent as several lines is one list, in order: read them all,
    // or a value a client put in front of the proxy's own would win.
    let mut forwarded = headers.get_all(&X_FORWARDED_FOR);
    let joined: Option<String>;
    let forwarded_for = match (forwarded.next(), forwarded.next()) {
        (None, _) => None,
        (Some(one), None) => one.to_str().ok(),
        (Some(_), Some(_)) => {
            let lines: Option<Vec<&str>> = headers
                .get_all(&X_FORWARDED_FOR)
                .map(|v| v.to_str().ok())
                .collect();
            joined = lines.map(|l| l.join(","));
            joined.as_deref()
        }
    };
    let client = state
        .settings
        .clicks
        .trusted_proxies
        .client_ip(req.peer_addr().map(|a| a.ip()), forwarded_for);
    let ip_hash = state.ip_hasher.hash(client);
    let event = ClickEventRef {
        click_id: click.as_str(),
        link_id: link.id.get(),
        program_id: link.program_id.get(),
        partner_ids: &link.partner_ids,
        at_ms: now_ms,
        ip_hash: ip_hash.as_str(),
        user_agent,
        referrer: text(&header::REFERER).map(truncate_header),
        sub_ids: &link.sub_ids,
        bot,
    };
    let appended = state.click_log.append(|buf| event.encode(buf));
    match (appended, bot) {
        (Appended::Lost, _) => link.log_failed.inc(),
        (Appended::Queued, Some(_)) => link.bot.inc(),
        (Appended::Queued, None) => link.logged.inc(),
    }
    Ok(found(location.with_click(click.as_str())))
}

fn found(location: String) -> HttpResponse {
    let mut res = HttpResponse::new(StatusCode::FOUND);
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::try_from(location) {
        headers.insert(header::LOCATION, value);
    }
    // Each visit must reach us to be counted, and a click id must not be
    // cached by a browser or a shared proxy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `?to=` when it is an http(s) URL on one of the program's landing domains
/// (exactly, as a browser would parse it); `None` when there is no `to`.
fn deep_link(query: &str, link: &CachedLink) -> Result<Option<Location>, ()> {
    if query.is_empty() {
        return Ok(None);
    }
    let mut to = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "to" {
            if to.is_some() {
                return Err(()); // two destinations: ambiguous, refuse
            }
            to = Some(v.into_owned());
        }
    }
    let Some(raw) = to else { return Ok(None) };
    // Browsers read a backslash as a slash (and the URL parser does too);
    // in a deep link it is a trick, as are control characters.
    if raw.contains('\\') || raw.chars().any(char::is_control) {
        return Err(());
    }
    let url = WebUrl::parse(&raw).map_err(|_| ())?;
    let url = link.landing.check(url).map_err(|_| ())?;
    Ok(Some(Location::new(url.as_url().clone(), &link.sub_ids)))
}
