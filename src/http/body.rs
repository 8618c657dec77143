//! Request bodies: read within a size limit and a deadline, parsed only
//! when the handler asks, after it has decided the caller may act.
//!
//! Reading is separate from parsing for two reasons. A caller who may not
//! do something is told so (403/404) before anything is said about what it
//! sent. And an optional body means "defaults" only when it is empty: any
//! body that is sent must be JSON of the right shape, or the request is
//! refused (415/400), never quietly run with defaults.

use super::error::ApiError;
use super::state::AppState;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Largest body any endpoint reads.
pub const LIMIT: usize = 64 * 1024;

/// A request body, read but not yet parsed.
#[derive(Debug, Clone)]
pub struct Body {
    bytes: Bytes,
    content_type: Option<String>,
}

impl Body {
    /// The raw bytes (what a webhook signature covers).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.iter().all(u8::is_ascii_whitespace)
    }

    /// The body as JSON of `T`: 415 unless it is sent as JSON, 400 when it
    /// is missing or does not have `T`'s shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.require_json_type()?;
        if self.is_empty() {
            return Err(ApiError::BadRequest("a JSON body is required".into()));
        }
        parse(&self.bytes)
    }

    /// `None` for an empty body (the endpoint's defaults); anything else
    /// must be JSON of `T`, exactly as `json` requires.
    pub fn optional_json<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        if self.is_empty() {
            return Ok(None);
        }
        self.json().map(Some)
    }

    fn require_json_type(&self) -> Result<(), ApiError> {
        let essence = self
            .content_type
            .as_deref()
            .and_then(|t| t.split(';').next())
            .map(|t| t.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/json") => Ok(()),
            Some(t) if t.starts_with("application/") && t.ends_with("+json") => Ok(()),
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }
}

/// Parses JSON, naming the first problem serde finds.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let deadline = req
                .app_data::<web::Data<AppState>>()
                .map(|s| s.settings.body_timeout)
                .unwrap_or(DEFAULT_TIMEOUT);
            let bytes = read(&req, payload, LIMIT, deadline).await?;
            let content_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok(Body {
                bytes: bytes.freeze(),
                content_type,
            })
        })
    }
}

/// How long a body may take to arrive when no setting says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a whole body: 413 when it is (or declares to be) over `limit`,
/// 408 when it has not arrived within `timeout` (a client trickling bytes
/// would otherwise hold its connection and buffer for as long as it likes).
pub async fn read<S>(
    req: &HttpRequest,
    mut payload: S,
    limit: usize,
    timeout: Duration,
) -> Result<BytesMut, ApiError>
where
    S: futures::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    loop {
        let next = tokio::time::timeout_at(deadline, payload.next())
            .await
            .map_err(|_| ApiError::RequestTimeout)?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
