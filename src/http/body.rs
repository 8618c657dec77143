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

    /// No body at all. Whitespace is a body, and not JSON: refused (400).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
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

    /// Whether it is sent as CSV (`text/csv`).
    pub fn is_csv(&self) -> bool {
        self.content_type
            .as_deref()
            .and_then(|t| t.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"))
    }

    /// The body as UTF-8 text: 400 when it is not.
    pub fn text(&self) -> Result<&str, ApiError> {
        std::str::from_utf8(&self.bytes)
            .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".into()))
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

/// Parses a JSON object, naming the first problem serde finds.
///
/// Every body is an object: serde would also fill a struct from an array,
/// by position (`[]` for a payout with its defaults), which no client
/// means and the document does not allow.
///
/// JSON has one kind of number, and the OpenAPI document's JSON Schema
/// counts `15.0` or `1.5e3` as the integers 15 and 1500; so does this: a
/// whole number written with a fraction or an exponent is read as that
/// integer (exactly, up to 2^53), wherever it is in the body.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed =
        |e: serde_json::Error| ApiError::BadRequest(format!("malformed JSON body: {e}"));
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(malformed)?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "malformed JSON body: expected a JSON object".into(),
        ));
    }
    whole_numbers_as_integers(&mut value);
    serde_json::from_value(value).map_err(malformed)
}

/// For a list of structs in a body: each item must be a JSON object (serde
/// would also fill a struct from an array, by position).
pub fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::Deserialize;
    use serde::de::Error;
    let items = Vec::<serde_json::Map<String, serde_json::Value>>::deserialize(d)?;
    items
        .into_iter()
        .map(|item| {
            serde_json::from_value(serde_json::Value::Object(item)).map_err(D::Error::custom)
        })
        .collect()
}

/// Rewrites every float with no fractional part (within 2^53, where a
/// float is exact) as an integer.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() <= EXACT
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Shape {
        amount: i64,
        #[serde(default)]
        rules: serde_json::Value,
    }

    #[test]
    fn whole_numbers_written_as_floats_are_integers_anywhere_in_the_body() {
        let shape: Shape = parse(br#"{"amount": 1.5e3, "rules": {"x": [15.0, -0.0]}}"#).unwrap();
        assert_eq!(
            shape,
            Shape {
                amount: 1500,
                rules: serde_json::json!({"x": [15, 0]}),
            }
        );
    }

    #[test]
    fn a_whole_number_with_seventeen_digits_written_as_a_float_is_read_exactly() {
        let shape: Shape = parse(br#"{"amount": 2251799813685247.0, "rules": {}}"#).unwrap();
        assert_eq!(shape.amount, 2_251_799_813_685_247);
    }

    #[test]
    fn a_body_and_the_structs_in_it_are_objects_not_arrays() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Item {
            #[allow(dead_code)]
            n: i64,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct List {
            #[serde(deserialize_with = "objects")]
            items: Vec<Item>,
        }
        assert!(matches!(
            parse::<Shape>(b"[1]"),
            Err(ApiError::BadRequest(_))
        ));
        let list = parse::<List>(br#"{"items": [{"n": 1}]}"#).unwrap();
        assert_eq!(list.items.len(), 1);
        assert!(matches!(
            parse::<List>(br#"{"items": [[1]]}"#),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn fractions_and_inexact_floats_stay_floats_and_are_refused() {
        for body in [
            &br#"{"amount": 15.5}"#[..],
            br#"{"amount": 1e17}"#,
            br#"{"amount": "15"}"#,
        ] {
            assert!(
                matches!(parse::<Shape>(body), Err(ApiError::BadRequest(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
