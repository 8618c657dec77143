//! Signing in and out, opening invitations, setting and resetting
//! passwords, one-time sign-in links, the language switch and the account
//! page.

use super::layout::Layout;
use super::web::{
    Form, LANG_COOKIE, PortalError, SESSION_COOKIE, TZ_COOKIE, Visitor, field, render, safe_next,
    see_other,
};
use super::{Limits, i18n::Locale};
use crate::accounts::{self, NewAccount, Purpose, Tenant, mail, passwords};
use crate::domain::{Email, Name};
use crate::enrollments::{self, EnrollError};
use crate::http::state::AppState;
use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

/// `/portal`: where a visitor belongs.
pub async fn home(visitor: Visitor) -> Result<HttpResponse, PortalError> {
    Ok(
        visitor.finish(match visitor.session().map(|s| s.user.tenant) {
            Some(Tenant::Partner(_)) => see_other("/portal/partner"),
            Some(Tenant::Program(_)) => see_other("/portal/merchant"),
            None => see_other("/portal/login"),
        }),
    )
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    l: Layout,
    next: String,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// GET /portal/login
pub async fn login_page(
    visitor: Visitor,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, PortalError> {
    let page = LoginPage {
        l: Layout::new(&visitor, "login-title"),
        next: safe_next(query.next.as_deref()).unwrap_or_default(),
        email: String::new(),
        error: None,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    email: String,
    password: String,
    next: Option<String>,
    /// The browser's time zone, filled in by the page's script.
    tz: Option<String>,
}

/// Starts a session: the cookie, and where to go.
async fn signed_in(
    state: &AppState,
    visitor: &Visitor,
    user: &accounts::User,
    to: &str,
) -> Result<HttpResponse, PortalError> {
    let (token, _) = accounts::start_session(&state.db, user.id).await?;
    let mut res = see_other(to);
    res.add_cookie(&visitor.cookie(SESSION_COOKIE, token, accounts::SESSION_LIFETIME.num_days()))
        .map_err(|e| PortalError::Internal(e.into()))?;
    tracing::info!(user = %user.id, "signed in to the portal");
    Ok(res)
}

/// POST /portal/login: e-mail and password, limited per account and per address.
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    limits: web::Data<Limits>,
    visitor: Visitor,
    Form(form): Form<LoginForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let tr = visitor.tr();
    let email = form.email.trim().to_owned();
    let next = safe_next(form.next.as_deref());
    let fail = |status: StatusCode, key: &str| -> Result<HttpResponse, PortalError> {
        let page = LoginPage {
            l: Layout::new(&visitor, "login-title"),
            next: next.clone().unwrap_or_default(),
            email: email.clone(),
            error: Some(tr.t(key)),
        };
        Ok(visitor.html(status, render(&page)?))
    };
    let address = state
        .settings
        .clicks
        .trusted_proxies
        .client_ip(req.peer_addr().map(|a| a.ip()), None);
    if !limits.allow_sign_in(&email, address).await {
        tracing::warn!("portal sign-in attempts limited");
        return fail(StatusCode::TOO_MANY_REQUESTS, "login-too-many");
    }
    let found = accounts::by_email(&state.db, &email).await?;
    let password = form.password.clone();
    let stored = found.as_ref().and_then(|(_, h)| h.clone());
    // argon2 takes tens of milliseconds of CPU: off the async threads.
    let ok = web::block(move || passwords::verify(&password, stored.as_deref()))
        .await
        .map_err(|e| PortalError::Internal(anyhow::anyhow!("password check failed: {e}")))?;
    let Some((user, _)) = found.filter(|_| ok) else {
        return fail(StatusCode::UNAUTHORIZED, "login-failed");
    };
    if let Some(tz) = field(&form.tz).filter(|tz| tz.parse::<chrono_tz::Tz>().is_ok())
        && user.time_zone == "UTC"
        && tz != "UTC"
    {
        accounts::set_preferences(&state.db, user.id, user.locale.as_deref(), tz).await?;
    }
    signed_in(
        &state,
        &visitor,
        &user,
        next.as_deref().unwrap_or("/portal"),
    )
    .await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// POST /portal/logout
pub async fn logout(
    state: web::Data<AppState>,
    visitor: Visitor,
    Form(form): Form<CsrfForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    if let Some((token, _)) = &visitor.session {
        accounts::end_session(&state.db, token).await?;
    }
    let mut res = see_other("/portal/login?notice=signed-out");
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/portal").finish();
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    Ok(res)
}

/// GET /portal/lang/{code}?next=: the language switch (a cookie, and the
/// account's choice when signed in).
pub async fn set_language(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, PortalError> {
    let locale = Locale::parse(&path).ok_or(PortalError::NotFound)?;
    if let Some(s) = visitor.session() {
        accounts::set_preferences(&state.db, s.user.id, Some(locale.code()), &s.user.time_zone)
            .await?;
    }
    let mut res = see_other(&safe_next(query.next.as_deref()).unwrap_or_else(|| "/portal".into()));
    let _ = res.add_cookie(&visitor.cookie(LANG_COOKIE, locale.code().into(), 365));
    Ok(visitor.finish(res))
}

#[derive(Template)]
#[template(path = "portal/password.html")]
struct PasswordPage {
    l: Layout,
    action: String,
    email: String,
    intro: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    password: String,
    password2: String,
}

fn purpose_of(kind: &str) -> Option<(Purpose, &'static str)> {
    match kind {
        "welcome" => Some((Purpose::Invite, "welcome")),
        "password-reset" => Some((Purpose::Reset, "password-reset")),
        _ => None,
    }
}

/// GET /portal/welcome/{token} and /portal/password-reset/{token}: choose a password.
pub async fn password_page(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let kind = req.path().split('/').nth(2).unwrap_or("");
    let (purpose, key) = purpose_of(kind).ok_or(PortalError::NotFound)?;
    let Some(user) = accounts::peek(&state.db, &path, purpose).await? else {
        return expired(&visitor);
    };
    let page = PasswordPage {
        l: Layout::new(&visitor, &format!("{key}-title")),
        action: format!("/portal/{kind}/{}", path.as_str()),
        email: user.email,
        intro: visitor.tr().t(&format!("{key}-intro")),
        error: None,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

fn expired(visitor: &Visitor) -> Result<HttpResponse, PortalError> {
    message(
        visitor,
        StatusCode::NOT_FOUND,
        "link-expired-title",
        "link-expired-body",
    )
}

#[derive(Template)]
#[template(path = "portal/message.html")]
struct MessagePage {
    l: Layout,
    body: String,
}

pub fn message(
    visitor: &Visitor,
    status: StatusCode,
    title: &str,
    body: &str,
) -> Result<HttpResponse, PortalError> {
    let page = MessagePage {
        l: Layout::new(visitor, title),
        body: visitor.tr().t(body),
    };
    Ok(visitor.html(status, render(&page)?))
}

/// A new password from a form, hashed: or the message saying why not.
async fn new_password(
    visitor: &Visitor,
    form: &PasswordForm,
) -> Result<Result<String, String>, PortalError> {
    let tr = visitor.tr();
    if form.password != form.password2 {
        return Ok(Err(tr.t("password-mismatch")));
    }
    if passwords::check(&form.password).is_err() {
        return Ok(Err(tr.ta(
            "password-length",
            &[
                ("min", passwords::MIN_LEN.to_string()),
                ("max", passwords::MAX_LEN.to_string()),
            ],
        )));
    }
    let password = form.password.clone();
    let hash = web::block(move || passwords::hash(&password))
        .await
        .map_err(|e| PortalError::Internal(anyhow::anyhow!("hashing failed: {e}")))??;
    Ok(Ok(hash))
}

/// POST /portal/welcome/{token} and /portal/password-reset/{token}.
pub async fn set_password(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    path: web::Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let kind = req.path().split('/').nth(2).unwrap_or("").to_owned();
    let (purpose, key) = purpose_of(&kind).ok_or(PortalError::NotFound)?;
    let Some(user) = accounts::peek(&state.db, &path, purpose).await? else {
        return expired(&visitor);
    };
    let hash = match new_password(&visitor, &form).await? {
        Ok(hash) => hash,
        Err(error) => {
            let page = PasswordPage {
                l: Layout::new(&visitor, &format!("{key}-title")),
                action: format!("/portal/{kind}/{}", path.as_str()),
                email: user.email,
                intro: visitor.tr().t(&format!("{key}-intro")),
                error: Some(error),
            };
            return Ok(visitor.html(StatusCode::UNPROCESSABLE_ENTITY, render(&page)?));
        }
    };
    // Used once: a second submit of the same link finds it spent.
    let Some(user) = accounts::redeem(&state.db, &path, purpose).await? else {
        return expired(&visitor);
    };
    accounts::set_password(&state.db, user.id, &hash).await?;
    signed_in(&state, &visitor, &user, "/portal?notice=password-set").await
}

/// GET /portal/login-links/{token}: a one-time sign-in from a merchant's site.
pub async fn login_link(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    match accounts::redeem(&state.db, &path, Purpose::Login).await? {
        Some(user) => signed_in(&state, &visitor, &user, "/portal").await,
        None => expired(&visitor),
    }
}

#[derive(Template)]
#[template(path = "portal/reset_request.html")]
struct ResetRequestPage {
    l: Layout,
    can_mail: bool,
}

/// GET /portal/password-reset
pub async fn reset_page(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    let page = ResetRequestPage {
        l: Layout::new(&visitor, "reset-title"),
        can_mail: mail::configured(&state.settings.portal),
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    csrf: String,
    email: String,
}

/// POST /portal/password-reset: mails a link when the address has an
/// account; the answer is the same either way (no probing for accounts).
pub async fn request_reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    limits: web::Data<Limits>,
    visitor: Visitor,
    Form(form): Form<ResetForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let portal = &state.settings.portal;
    if !mail::configured(portal) {
        return message(&visitor, StatusCode::OK, "reset-title", "reset-no-mail");
    }
    let address = state
        .settings
        .clicks
        .trusted_proxies
        .client_ip(req.peer_addr().map(|a| a.ip()), None);
    let email = form.email.trim();
    if !limits.allow_sign_in(email, address).await {
        return message(
            &visitor,
            StatusCode::TOO_MANY_REQUESTS,
            "reset-title",
            "login-too-many",
        );
    }
    if let Some(issued) = accounts::reset_token(&state.db, email).await? {
        let tr = visitor.tr();
        let url = format!(
            "{}/portal/password-reset/{}",
            state.settings.public_base(),
            issued.token
        );
        let mail = mail::Mail {
            to: issued.user.email.clone(),
            subject: tr.t("reset-mail-subject"),
            body: tr.ta("reset-mail-body", &[("url", url)]),
        };
        // The page says the same whether or not this works: the log says more.
        if let Err(e) = mail::send(portal, &mail).await {
            tracing::error!(error = ?e, user = %issued.user.id, "password-reset e-mail not sent");
        } else {
            tracing::info!(user = %issued.user.id, "password-reset e-mail sent");
        }
    }
    message(&visitor, StatusCode::OK, "reset-title", "reset-sent")
}

#[derive(Template)]
#[template(path = "portal/invitation.html")]
struct InvitationPage {
    l: Layout,
    token: String,
    program_name: String,
    note: Option<String>,
    /// Signed in as a partner: it may answer.
    can_answer: bool,
    /// Signed in as a merchant: not for them.
    wrong_side: bool,
    /// Anonymous, and the invitee has no account yet: it may make one.
    can_sign_up: bool,
    /// The account will need a partner name (an invitation by e-mail).
    needs_name: bool,
    email: String,
    error: Option<String>,
}

/// Whom an invitation's account would be for: the invited partner, or the
/// partner with the invited address, or (neither) a partner made on sign-up.
async fn invitee(
    state: &AppState,
    e: &enrollments::Enrollment,
) -> Result<(Option<crate::domain::PartnerId>, String), PortalError> {
    if let Some(p) = e.partner_id {
        let partner = crate::partners::get(&state.db, p)
            .await?
            .ok_or(PortalError::NotFound)?;
        return Ok((Some(p), partner.email));
    }
    let email = e.email.clone().unwrap_or_default();
    let existing = sqlx::query_scalar!(
        r#"select id as "id: crate::domain::PartnerId" from partners
           where lower(email) = lower($1) order by id limit 1"#,
        email
    )
    .fetch_optional(&state.db)
    .await?;
    Ok((existing, email))
}

async fn invitation_page(
    state: &AppState,
    visitor: &Visitor,
    token: &str,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let Some(e) = enrollments::by_token(&state.db, token).await? else {
        return expired(visitor);
    };
    let (partner, email) = invitee(state, &e).await?;
    let has_account = match partner {
        Some(p) => {
            sqlx::query_scalar!(
                r#"select exists(select 1 from users where partner_id = $1) as "found!""#,
                p.get()
            )
            .fetch_one(&state.db)
            .await?
        }
        None => accounts::by_email(&state.db, &email).await?.is_some(),
    };
    let tenant = visitor.session().map(|s| s.user.tenant);
    let mut l = Layout::new(visitor, "invite-heading");
    l.title = visitor
        .tr()
        .ta("invite-title", &[("program", e.program_name.clone())]);
    let page = InvitationPage {
        l,
        token: token.to_owned(),
        program_name: e.program_name,
        note: e.note,
        can_answer: matches!(tenant, Some(Tenant::Partner(_))),
        wrong_side: matches!(tenant, Some(Tenant::Program(_))),
        can_sign_up: tenant.is_none() && !has_account,
        needs_name: partner.is_none(),
        email,
        error,
    };
    Ok(visitor.html(status, render(&page)?))
}

/// GET /portal/invitations/{token}: a program's invitation to a partner.
pub async fn invitation(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    invitation_page(&state, &visitor, &path, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct SignUpForm {
    #[serde(default)]
    csrf: String,
    name: Option<String>,
    password: String,
    password2: String,
}

/// POST /portal/invitations/{token}/signup: the invitee's first account.
pub async fn sign_up(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
    Form(form): Form<SignUpForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let token = path.into_inner();
    let Some(e) = enrollments::by_token(&state.db, &token).await? else {
        return expired(&visitor);
    };
    let (partner, email) = invitee(&state, &e).await?;
    let tr = visitor.tr();
    let who = match partner {
        Some(p) => NewAccount::Partner(p),
        None => {
            let name = field(&form.name).map(Name::parse);
            let (Some(Ok(name)), Ok(email)) = (name, Email::parse(&email)) else {
                let error = Some(tr.t("signup-name-needed"));
                return invitation_page(
                    &state,
                    &visitor,
                    &token,
                    error,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            };
            NewAccount::NewPartner { name, email }
        }
    };
    let passwords = PasswordForm {
        csrf: form.csrf,
        password: form.password,
        password2: form.password2,
    };
    let hash = match new_password(&visitor, &passwords).await? {
        Ok(h) => h,
        Err(error) => {
            return invitation_page(
                &state,
                &visitor,
                &token,
                Some(error),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let user = match accounts::sign_up(&state.db, who, &hash).await {
        Ok(user) => user,
        Err(accounts::AccountError::AlreadyActive | accounts::AccountError::EmailTaken) => {
            let error = Some(tr.t("signup-has-account"));
            return invitation_page(&state, &visitor, &token, error, StatusCode::CONFLICT).await;
        }
        Err(accounts::AccountError::NotFound(_)) => return Err(PortalError::NotFound),
        Err(accounts::AccountError::Db(e)) => return Err(e.into()),
    };
    signed_in(
        &state,
        &visitor,
        &user,
        &format!("/portal/invitations/{token}"),
    )
    .await
}

#[derive(Deserialize)]
pub struct AnswerForm {
    #[serde(default)]
    csrf: String,
    answer: String,
}

/// POST /portal/invitations/{token}/answer: accept or decline, as the
/// signed-in partner, through the same core function as the API.
pub async fn answer(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
    Form(form): Form<AnswerForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let partner = visitor.partner()?;
    let accept = match form.answer.as_str() {
        "accept" => true,
        "decline" => false,
        _ => return Err(PortalError::BadRequest("answer".into())),
    };
    match enrollments::accept_token(&state.db, &path, partner, accept).await {
        Ok(_) => Ok(see_other(if accept {
            "/portal/partner/programs?notice=invitation-accepted"
        } else {
            "/portal/partner/programs?notice=invitation-declined"
        })),
        Err(EnrollError::NotFound(_) | EnrollError::UnknownPartner) => expired(&visitor),
        Err(EnrollError::Move(_) | EnrollError::Conflict(_)) => {
            let error = Some(visitor.tr().t("invite-cannot-answer"));
            invitation_page(&state, &visitor, &path, error, StatusCode::CONFLICT).await
        }
        Err(EnrollError::Db(e)) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    l: Layout,
    email: String,
    time_zone: String,
    zones: &'static [&'static str],
    locale: &'static str,
    error: Option<String>,
}

/// Time zones offered in the account page's list (any IANA name is
/// accepted; these are the ones partners and merchants most often need).
const ZONES: &[&str] = &[
    "UTC",
    "Asia/Jakarta",
    "Asia/Makassar",
    "Asia/Jayapura",
    "Asia/Singapore",
    "Asia/Kuala_Lumpur",
    "Asia/Bangkok",
    "Asia/Manila",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Europe/London",
    "Europe/Amsterdam",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
];

/// GET /portal/account
pub async fn account(visitor: Visitor) -> Result<HttpResponse, PortalError> {
    let s = visitor.require()?;
    account_page(&visitor, s, None, StatusCode::OK)
}

fn account_page(
    visitor: &Visitor,
    s: &accounts::Session,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let page = AccountPage {
        l: Layout::new(visitor, "account-title"),
        email: s.user.email.clone(),
        time_zone: visitor.tz.name().to_owned(),
        zones: ZONES,
        locale: visitor.locale.code(),
        error,
    };
    Ok(visitor.html(status, render(&page)?))
}

#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    csrf: String,
    locale: Option<String>,
    time_zone: Option<String>,
    current_password: Option<String>,
    password: Option<String>,
    password2: Option<String>,
}

/// POST /portal/account: language and time zone; a new password when the
/// current one is given.
pub async fn save_account(
    state: web::Data<AppState>,
    visitor: Visitor,
    Form(form): Form<AccountForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let s = visitor.require()?;
    let tr = visitor.tr();
    if let Some(new) = field(&form.password) {
        let current = form.current_password.clone().unwrap_or_default();
        let stored = accounts::by_email(&state.db, &s.user.email)
            .await?
            .and_then(|(_, h)| h);
        let ok = web::block(move || passwords::verify(&current, stored.as_deref()))
            .await
            .map_err(|e| PortalError::Internal(anyhow::anyhow!("password check failed: {e}")))?;
        if !ok {
            let error = Some(tr.t("account-wrong-password"));
            return account_page(&visitor, s, error, StatusCode::UNPROCESSABLE_ENTITY);
        }
        let change = PasswordForm {
            csrf: form.csrf.clone(),
            password: new.to_owned(),
            password2: form.password2.clone().unwrap_or_default(),
        };
        match new_password(&visitor, &change).await? {
            Ok(hash) => accounts::set_password(&state.db, s.user.id, &hash).await?,
            Err(error) => {
                return account_page(&visitor, s, Some(error), StatusCode::UNPROCESSABLE_ENTITY);
            }
        }
        // Every session ended with the old password, this one too.
        return Ok(see_other("/portal/login?notice=password-changed"));
    }
    let locale = field(&form.locale).and_then(Locale::parse);
    let tz = field(&form.time_zone)
        .filter(|z| z.parse::<chrono_tz::Tz>().is_ok())
        .unwrap_or(&s.user.time_zone);
    accounts::set_preferences(&state.db, s.user.id, locale.map(Locale::code), tz).await?;
    let mut res = see_other("/portal/account?notice=saved");
    let _ = res.add_cookie(&visitor.cookie(TZ_COOKIE, tz.to_owned(), 365));
    Ok(res)
}
