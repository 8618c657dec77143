//! The API's one error type, answered as RFC 9457 problem details.
//!
//! Handlers return `ApiError`; only the variant decides the status. Internal
//! detail (SQL, Redis, stack of contexts) is logged with the request's span and
//! never sent to the client.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request, with a message a developer can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's path in the request, e.g. `partners[0].share_bps` or `commission.sale`.
    #[schema(examples("currency"))]
    pub field: String,
    #[schema(examples("`EURO` is not an active ISO 4217 currency code"))]
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON of the expected shape, or a parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or credentials nobody issued.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// 401 for webhooks: the signature header is missing, stale or wrong.
    #[error("{0}")]
    BadSignature(&'static str),
    /// 403: the caller is known but this action is not theirs to take.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such object, or it belongs to another tenant (indistinguishable on purpose).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// 409: the request conflicts with the current state (e.g. a coupon code in use).
    #[error("{0}")]
    Conflict(String),
    /// 408: the body did not arrive in time.
    #[error("the request body did not arrive within the time allowed")]
    RequestTimeout,
    /// 413: the body is over the endpoint's limit.
    #[error("the request body is too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    /// 415: the body is not `application/json`.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// 422: well-formed JSON whose values are invalid, field by field.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// 503: a back end (Postgres, Redis) did not answer; the client should retry.
    #[error("a back end is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 500: anything else; logged with its context chain.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl ToString) -> Self {
        ApiError::Validation(vec![FieldError {
            field: field.into(),
            message: message.to_string(),
        }])
    }

    /// The problem details this error answers with (the documentation's examples).
    pub fn problem(&self) -> Problem<'_> {
        let errors = match self {
            ApiError::Validation(errors) => Some(errors.as_slice()),
            _ => None,
        };
        Problem::new(self.status_code(), self.slug(), self.to_string(), errors)
    }

    /// A slug for the problem `type` URI.
    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadSignature(_) => "bad-signature",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::RequestTimeout => "request-timeout",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::Validation(_) => "validation",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// Database errors: an unreachable database is 503 (retry later), anything
/// else is a bug or a broken invariant and answers 500.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            ApiError::Unavailable(anyhow::Error::new(e).context("Postgres is unavailable"))
        } else {
            ApiError::Internal(anyhow::Error::new(e).context("database query failed"))
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<sqlx::Error>() {
            Ok(sqlx) => sqlx.into(),
            Err(e) => ApiError::Internal(e),
        }
    }
}

/// The problem details body. `errors` is an extension member listing invalid fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "An RFC 9457 problem (`application/problem+json`). \
    `type` names the kind of problem and is stable; `detail` is for people.")]
pub struct Problem<'a> {
    /// `urn:mitra:problem:` and a slug: `bad-request`, `unauthorized`, `bad-signature`,
    /// `forbidden`, `not-found`, `method-not-allowed`, `conflict`, `payload-too-large`,
    /// `unsupported-media-type`, `validation`, `unavailable`, `not-ready` or `internal`.
    #[serde(rename = "type")]
    #[schema(format = "uri", examples("urn:mitra:problem:not-found"))]
    pub kind: String,
    /// The HTTP status's reason phrase.
    #[schema(value_type = String, examples("Not Found"))]
    pub title: &'a str,
    /// The HTTP status code, repeated.
    #[schema(minimum = 400, maximum = 599, examples(404))]
    pub status: u16,
    /// What went wrong, for a person to read.
    #[schema(examples("no such program"))]
    pub detail: String,
    /// 422 only: every invalid field of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<FieldError>)]
    pub errors: Option<&'a [FieldError]>,
}

impl<'a> Problem<'a> {
    pub fn new(
        status: StatusCode,
        slug: &str,
        detail: String,
        errors: Option<&'a [FieldError]>,
    ) -> Self {
        Problem {
            kind: problem_type(slug),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

pub fn problem_type(slug: &str) -> String {
    format!("urn:mitra:problem:{slug}")
}

pub fn problem_response(
    status: StatusCode,
    slug: &str,
    detail: String,
    errors: Option<&[FieldError]>,
) -> HttpResponse {
    let body = Problem::new(status, slug, detail, errors);
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .body(serde_json::to_vec(&body).expect("problem serializes"))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            ApiError::Internal(e) => tracing::error!(error = ?e, "request failed"),
            ApiError::Unavailable(e) => tracing::warn!(error = ?e, "back end unavailable"),
            _ => {}
        }
        let errors = match self {
            ApiError::Validation(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let mut response = problem_response(status, self.slug(), self.to_string(), errors);
        match self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

/// The last line of defence: any 4xx/5xx response that is not already problem
/// details (the router's 404 and 405, an extractor's own error) is rewritten
/// as one, so API clients never see an empty body or an HTML page. The
/// portal's own error pages (HTML under `/portal`) are for people and pass.
pub fn ensure_problem_json<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    // The portal answers its errors as pages, for people.
    let is_portal_page = res.request().path().starts_with("/portal")
        && res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_problem || is_portal_page {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "no such resource".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            format!("{} is not allowed on this resource", res.request().method()),
        ),
        s if s.is_server_error() => ("internal", "internal error".to_owned()),
        s => (
            "bad-request",
            s.canonical_reason().unwrap_or("bad request").to_lowercase(),
        ),
    };
    let (req, old) = res.into_parts();
    let mut new = problem_response(status, slug, detail, None);
    // Keep headers such as Allow from the original answer.
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res = ServiceResponse::new(req, new.map_into_boxed_body()).map_into_right_body::<B>();
    Ok(ErrorHandlerResponse::Response(res))
}
