//! GET and HEAD /l/{code}: the redirect shoppers touch.
//!
//! Order matters for speed and safety: the code's signature is checked
//! before any I/O, the link comes from the in-process cache, and the click
//! is logged through the group-committing click log. Anything invalid
//! answers 404 and logs nothing.

use crate::clicks::{ClickEvent, bots, click_id, log::Logged, truncate_header};
use crate::domain::WebUrl;
use crate::error::ApiError;
use crate::links::cache::CachedLink;
use crate::state::AppState;
use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::BTreeMap;
use std::time::Instant;
use url::Url;

/// The query parameter carrying the click id to the landing page.
pub const CLICK_PARAM: &str = "mitra_click";

pub async fn redirect(
    req: HttpRequest,
    code: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = serve(&req, &code, &state).await;
    state
        .metrics
        .redirect_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn serve(req: &HttpRequest, code: &str, state: &AppState) -> Result<HttpResponse, ApiError> {
    let refused = |outcome: &str, program: &str| {
        state
            .metrics
            .clicks
            .with_label_values(&[program, outcome])
            .inc();
        ApiError::NotFound("link")
    };
    let Some(link_id) = crate::links::code::verify(&state.settings.link_keys, code) else {
        return Err(refused("invalid_code", "unknown"));
    };
    let link = match state.link_cache.get(link_id).await {
        Ok(Some(link)) => link,
        Ok(None) => return Err(refused("unknown_link", "unknown")),
        Err(e) => {
            state.metrics.backend_error("postgres");
            return Err(e.into());
        }
    };
    if link.disabled {
        return Err(refused("disabled", &link.program_label));
    }
    let destination = match deep_link(req.query_string(), &link) {
        Ok(d) => d,
        Err(()) => return Err(refused("bad_deep_link", &link.program_label)),
    };

    let now_ms = chrono::Utc::now().timestamp_millis();
    let click = click_id::issue(&state.settings.link_keys, link.id, now_ms, rand::random());
    let mut location = destination.clone();
    add_tracking(&mut location, &link, click.as_ref().map(|c| c.as_str()));

    let headers = req.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let user_agent = text(header::USER_AGENT);
    let bot = bots::classify(user_agent, req.method() == Method::HEAD);
    let peer = req.peer_addr().map(|a| a.ip());
    let client = state.settings.clicks.trusted_proxies.client_ip(
        peer,
        text(header::HeaderName::from_static("x-forwarded-for")),
    );
    if let Some(click) = click {
        let event = ClickEvent {
            click_id: click.to_string(),
            link_id: link.id.get(),
            program_id: link.program_id.get(),
            partner_ids: link.partner_ids.clone(),
            at_ms: now_ms,
            ip_hash: state.ip_hasher.hash(client),
            user_agent: user_agent.map(truncate_header),
            referrer: text(header::REFERER).map(truncate_header),
            sub_ids: link
                .sub_ids
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<BTreeMap<_, _>>(),
            bot,
        };
        if state.click_log.log(event, link.program_label.clone()).await != Logged::Lost {
            match bot {
                Some(_) => link.bot.inc(),
                None => link.logged.inc(),
            }
        }
    } else {
        tracing::error!(link = %link.id, "no click id: link id beyond the click id range");
    }

    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, location.as_str()))
        // Each visit must reach us to be counted, and the click id must not
        // be cached by a browser or shared proxy.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer-when-downgrade"))
        .finish())
}

/// The landing URL: `?to=` when it is an http(s) URL on one of the program's
/// landing domains (exactly, as a browser would parse it), else the link's.
fn deep_link(query: &str, link: &CachedLink) -> Result<Url, ()> {
    let mut to = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "to" {
            if to.is_some() {
                return Err(()); // two destinations: ambiguous, refuse
            }
            to = Some(v.into_owned());
        }
    }
    match to {
        None => Ok(link.destination.clone()),
        Some(raw) => {
            // Browsers treat a backslash as a slash, which the URL parser
            // normalizes too; an explicit one in a deep link is a trick.
            if raw.contains('\\') || raw.chars().any(char::is_control) {
                return Err(());
            }
            let url = WebUrl::parse(&raw).map_err(|_| ())?;
            link.landing
                .check(url)
                .map(|u| u.as_url().clone())
                .map_err(|_| ())
        }
    }
}

/// Adds the link's sub ids (unless the destination sets them itself) and the
/// click id (replacing any the destination carried) to the query string,
/// keeping the existing query and fragment.
fn add_tracking(url: &mut Url, link: &CachedLink, click: Option<&str>) {
    let existing: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != CLICK_PARAM)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let had_click = url.query_pairs().any(|(k, _)| k == CLICK_PARAM);
    let subs: Vec<(&str, &str)> = link
        .sub_ids
        .iter()
        .filter(|(k, _)| !existing.iter().any(|(e, _)| e == k))
        .collect();
    if subs.is_empty() && click.is_none() && !had_click {
        return;
    }
    if had_click {
        url.set_query(None);
        if !existing.is_empty() {
            url.query_pairs_mut().extend_pairs(existing.iter());
        }
    }
    let mut pairs = url.query_pairs_mut();
    pairs.extend_pairs(subs);
    if let Some(click) = click {
        pairs.append_pair(CLICK_PARAM, click);
    }
}
