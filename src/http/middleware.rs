//! Request middleware: a request id for every request, metrics per route
//! pattern, and the workers woken after a change.

use crate::http::state::AppState;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, web};
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

/// The request's id: the caller's `X-Request-Id` when it is a plain token,
/// else a new `req_` and 16 hex digits.
pub fn request_id(req: &HttpRequest) -> HeaderValue {
    if let Some(id) = req.headers().get(&X_REQUEST_ID)
        && id.to_str().is_ok_and(acceptable)
    {
        return id.clone();
    }
    let mut id = *b"req_0000000000000000";
    let n: u64 = rand::random();
    for (i, digit) in id[4..].iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[(n >> (60 - 4 * i) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).expect("ASCII")
}

/// The span every log line of a request is written under.
pub fn request_span(id: &HeaderValue, req: &HttpRequest) -> tracing::Span {
    let id = id.to_str().unwrap_or_default();
    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path())
}

/// Gives every request an id (the caller's `X-Request-Id`, or a new one),
/// answers it in `X-Request-Id`, and runs the request inside a span that
/// carries it, so every log line of the request names it.
pub async fn request_id_and_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = request_id(req.request());
    req.extensions_mut()
        .insert(RequestId(id.to_str().expect("a plain token").to_owned()));
    let span = request_span(&id, req.request());
    let mut res = next.call(req).instrument(span).await?;
    res.headers_mut().insert(X_REQUEST_ID, id);
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

/// After a change the API or the portal carried out (a write answered 2xx,
/// or a portal form's redirect), pokes the workers (`wakeups::EVENTS`): a
/// payout, an enrollment, a claim or a decision queues outgoing webhooks,
/// which then go out at once rather than at the workers' next poll. The
/// poke is a hint sent after the response is made, never awaited, at most
/// one per process each 20 ms. The webhook intake pokes its own channel
/// after its group commit, and reads change nothing.
pub async fn wake_workers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    use actix_web::http::Method;
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let state = write
        .then(|| req.app_data::<web::Data<AppState>>().cloned())
        .flatten();
    let res = next.call(req).await?;
    if let Some(state) = state
        && (res.status().is_success() || res.status().is_redirection())
        && !is_intake(res.request())
    {
        state.wake_workers.poke();
    }
    Ok(res)
}

/// The webhook intake: `POST /v1/programs/{id}/conversions`.
fn is_intake(req: &HttpRequest) -> bool {
    req.path()
        .strip_prefix("/v1/programs/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_, tail)| tail == "conversions")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_the_intake_is_left_to_poke_its_own_channel() {
        let intake = |path: &str| is_intake(&TestRequest::with_uri(path).to_http_request());
        assert!(intake("/v1/programs/prg_1/conversions"));
        assert!(!intake("/v1/programs/prg_1/claims"));
        assert!(!intake("/v1/programs/prg_1/conversions/A-1"));
        assert!(!intake("/v1/programs"));
        assert!(!intake("/portal/partner/claims"));
    }
}
