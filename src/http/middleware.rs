//! Request middleware: a request id for every request, and metrics per
//! route pattern.

use crate::http::state::AppState;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use std::time::Instant;
use tracing::Instrument;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A caller's id is kept when it is a plain token (a proxy or the shop
/// chose it, so both sides can search their logs for it).
fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Gives every request an id (the caller's `X-Request-Id`, or a new one),
/// answers it in `X-Request-Id`, and runs the request inside a span that
/// carries it, so every log line of the request names it.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req_{:016x}", rand::random::<u64>()));
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let mut res = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(res)
}

/// The method as a metrics label: one of the methods the API answers, or
/// `OTHER`. A client may send any token as a method; none of them may
/// become a new label value (each would be a new time series, forever).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Counts and times every request, labelled by the matched route pattern
/// (`/v1/programs/{id}`), never by the raw path, so label cardinality stays
/// bounded whatever clients send.
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // Redirects are the hot path: they time themselves
    // (mitra_redirect_duration_seconds) and are counted here by status
    // through handles resolved once, without asking the router again.
    if req.path().starts_with(super::redirect::PREFIX) {
        let res = next.call(req).await?;
        if let Some(state) = state {
            state
                .redirect_counters
                .count(method_label(res.request().method()), res.status());
        }
        return Ok(res);
    }
    let start = Instant::now();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res.request().match_pattern();
        let route = route.as_deref().unwrap_or("unmatched");
        let method = method_label(res.request().method());
        let m = &state.metrics;
        m.http_requests
            .with_label_values(&[method, route, res.status().as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[method, route])
            .observe(start.elapsed().as_secs_f64());
    }
    Ok(res)
}
