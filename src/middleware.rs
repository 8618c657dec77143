//! Request middleware: metrics per route pattern.

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use std::time::Instant;

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
    if req.path().starts_with(crate::routes::REDIRECT_PREFIX) {
        let res = next.call(req).await?;
        if let Some(state) = state {
            state
                .metrics
                .count_redirect(res.request().method().as_str(), res.status());
        }
        return Ok(res);
    }
    let start = Instant::now();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res.request().match_pattern();
        let route = route.as_deref().unwrap_or("unmatched");
        let method = res.request().method().as_str();
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
