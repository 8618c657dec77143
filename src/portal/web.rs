//! What every portal page shares: who is visiting (session cookie, CSRF
//! token, language, time zone), reading forms, answering HTML, and errors
//! as pages.

use super::i18n::{Locale, Tr};
use crate::accounts::{self, Session, Tenant};
use crate::domain::{PartnerId, ProgramId, random_token};
use crate::http::state::AppState;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use chrono_tz::Tz;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "mitra_session";
pub const CSRF_COOKIE: &str = "mitra_csrf";
pub const LANG_COOKIE: &str = "mitra_lang";
pub const TZ_COOKIE: &str = "mitra_tz";

/// Why a page was not served.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// No such page, or another tenant's (indistinguishable on purpose).
    #[error("not found")]
    NotFound,
    /// The page needs a signed-in person: off to the sign-in page, then back.
    #[error("sign in first")]
    SignIn(String),
    /// A form without its CSRF token, or with another one.
    #[error("the form expired")]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for PortalError {
    fn from(e: sqlx::Error) -> Self {
        PortalError::Internal(anyhow::Error::new(e).context("portal query failed"))
    }
}

/// The error pages speak both languages: an error may come before we know
/// which one the visitor reads.
fn error_page(status: StatusCode, en: &str, id: &str) -> HttpResponse {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{status}</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/portal/static/portal.css\"></head>\
         <body><main class=\"narrow\"><h1>{code}</h1><p>{en}</p><p lang=\"id\">{id}</p>\
         <p><a href=\"/portal\">mitra</a></p></main></body></html>",
        code = status.as_u16()
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

impl ResponseError for PortalError {
    fn status_code(&self) -> StatusCode {
        match self {
            PortalError::NotFound => StatusCode::NOT_FOUND,
            PortalError::SignIn(_) => StatusCode::SEE_OTHER,
            PortalError::Csrf => StatusCode::FORBIDDEN,
            PortalError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PortalError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PortalError::NotFound => error_page(
                StatusCode::NOT_FOUND,
                "This page does not exist.",
                "Halaman ini tidak ada.",
            ),
            PortalError::SignIn(next) => {
                let to = format!(
                    "/portal/login?next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                see_other(&to)
            }
            PortalError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "This form has expired. Go back, reload the page and send it again.",
                "Formulir ini sudah kedaluwarsa. Kembali, muat ulang halaman, lalu kirim lagi.",
            ),
            PortalError::BadRequest(_) => error_page(
                StatusCode::BAD_REQUEST,
                "The request could not be read.",
                "Permintaan tidak dapat dibaca.",
            ),
            PortalError::Internal(e) => {
                tracing::error!(error = ?e, "portal page failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side. Please try again.",
                    "Terjadi kesalahan di pihak kami. Silakan coba lagi.",
                )
            }
        }
    }
}

/// 303 See Other: where a form's answer sends the browser.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// A local path to go back to after signing in: only our own pages, never
/// another site (`//evil.example` is another site).
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?;
    let ok = next.starts_with("/portal")
        && !next.starts_with("//")
        && !next.contains(['\\', '\r', '\n'])
        && !next.starts_with("/portal/logout");
    ok.then(|| next.to_owned())
}

/// Who is visiting: a signed-in session or not, with the language, time
/// zone and CSRF token their pages use.
pub struct Visitor {
    pub session: Option<(String, Session)>,
    pub locale: Locale,
    pub tz: Tz,
    /// The CSRF token of an anonymous visitor (double-submit cookie).
    anon_csrf: String,
    /// Whether the anonymous CSRF cookie must be (re)set on the answer.
    new_csrf: bool,
    pub path: String,
    pub secure: bool,
}

impl Visitor {
    pub fn tr(&self) -> Tr {
        Tr::new(self.locale, self.tz)
    }

    /// The token every form of this visitor carries.
    pub fn csrf(&self) -> &str {
        match &self.session {
            Some((_, s)) => &s.csrf,
            None => &self.anon_csrf,
        }
    }

    /// Checks a form's CSRF token, in constant time.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PortalError> {
        let expected = self.csrf().as_bytes();
        if expected.is_empty() || !bool::from(expected.ct_eq(sent.as_bytes())) {
            return Err(PortalError::Csrf);
        }
        Ok(())
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref().map(|(_, s)| s)
    }

    /// The signed-in person, or off to the sign-in page.
    pub fn require(&self) -> Result<&Session, PortalError> {
        self.session()
            .ok_or_else(|| PortalError::SignIn(self.path.clone()))
    }

    /// The partner a signed-in partner acts for. Anyone else: no such page.
    pub fn partner(&self) -> Result<PartnerId, PortalError> {
        match self.require()?.user.tenant {
            Tenant::Partner(p) => Ok(p),
            Tenant::Program(_) => Err(PortalError::NotFound),
        }
    }

    /// The program a signed-in merchant acts for. Anyone else: no such page.
    pub fn program(&self) -> Result<ProgramId, PortalError> {
        match self.require()?.user.tenant {
            Tenant::Program(p) => Ok(p),
            Tenant::Partner(_) => Err(PortalError::NotFound),
        }
    }

    /// A cookie of the portal: HttpOnly, SameSite=Lax, Secure over https.
    pub fn cookie(&self, name: &'static str, value: String, max_age_days: i64) -> Cookie<'static> {
        Cookie::build(name, value)
            .path("/portal")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(CookieDuration::days(max_age_days))
            .finish()
    }

    /// Adds what every answer to this visitor needs (the anonymous CSRF cookie).
    pub fn finish(&self, mut res: HttpResponse) -> HttpResponse {
        if self.new_csrf && self.session.is_none() {
            let _ = res.add_cookie(&self.cookie(CSRF_COOKIE, self.anon_csrf.clone(), 1));
        }
        res
    }

    /// An HTML page.
    pub fn html(&self, status: StatusCode, body: String) -> HttpResponse {
        self.finish(
            HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(body),
        )
    }
}

fn tz_of(name: Option<&str>) -> Option<Tz> {
    name.and_then(|n| n.parse::<Tz>().ok())
}

impl FromRequest for Visitor {
    type Error = PortalError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| PortalError::Internal(anyhow::anyhow!("no app state")))?;
            let session = match req.cookie(SESSION_COOKIE) {
                Some(c) if c.value().len() == 44 => {
                    let token = c.value().to_owned();
                    accounts::session(&state.db, &token)
                        .await?
                        .map(|s| (token, s))
                }
                _ => None,
            };
            let chosen = session
                .as_ref()
                .and_then(|(_, s)| s.user.locale.as_deref())
                .and_then(Locale::parse)
                .or_else(|| {
                    req.cookie(LANG_COOKIE)
                        .and_then(|c| Locale::parse(c.value()))
                });
            let locale = chosen.unwrap_or_else(|| {
                req.headers()
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .map(Locale::from_accept_language)
                    .unwrap_or_default()
            });
            let tz = session
                .as_ref()
                .and_then(|(_, s)| tz_of(Some(&s.user.time_zone)))
                .filter(|tz| *tz != Tz::UTC)
                .or_else(|| tz_of(req.cookie(TZ_COOKIE).as_ref().map(|c| c.value())))
                .unwrap_or(Tz::UTC);
            let (anon_csrf, new_csrf) = match req.cookie(CSRF_COOKIE) {
                Some(c) if c.value().len() == 44 => (c.value().to_owned(), false),
                _ => (random_token(), true),
            };
            let path = match req.uri().query() {
                Some(q) => format!("{}?{q}", req.path()),
                None => req.path().to_owned(),
            };
            Ok(Visitor {
                session,
                locale,
                tz,
                anon_csrf,
                new_csrf,
                path,
                secure: state.settings.portal.secure_cookies,
            })
        })
    }
}

/// A form body (`application/x-www-form-urlencoded`), read within the size
/// limit and the body deadline like every other body.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Form<T> {
    type Error = PortalError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let deadline = req
                .app_data::<web::Data<AppState>>()
                .map(|s| s.settings.body_timeout)
                .unwrap_or(crate::http::body::DEFAULT_TIMEOUT);
            let form_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            if !form_type {
                return Err(PortalError::BadRequest("not a form".into()));
            }
            let bytes = crate::http::body::read(&req, payload, crate::http::body::LIMIT, deadline)
                .await
                .map_err(|e| PortalError::BadRequest(e.to_string()))?;
            serde_urlencoded::from_bytes(&bytes)
                .map(Form)
                .map_err(|e| PortalError::BadRequest(format!("unreadable form: {e}")))
        })
    }
}

/// A form's text field: trimmed, empty as none.
/// A page's HTML from its template.
pub fn render(t: &impl askama::Template) -> Result<String, PortalError> {
    t.render()
        .map_err(|e| PortalError::Internal(anyhow::anyhow!("template failed: {e}")))
}

pub fn field(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
