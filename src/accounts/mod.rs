//! Accounts: the people who sign in to the portal, each acting for one
//! partner or one program; their sessions; and the one-time tokens that
//! create accounts (invitations), reset passwords, and sign merchants'
//! partners in from the merchant's own site (sign-in links).
//!
//! Nobody signs up unasked: an account exists only because an admin or a
//! program invited the address (or a program invited a partner to join it).
//! Tokens and session cookies are random 256-bit values stored as sha-256,
//! so the database alone hands out nothing.

pub mod mail;
pub mod passwords;

use crate::domain::{Email, KeyOwner, Name, NewApiKey, PartnerId, ProgramId, UserId, random_token};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

/// Whom an account acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant {
    Partner(PartnerId),
    Program(ProgramId),
}

impl Tenant {
    fn from_row(partner: Option<i64>, program: Option<i64>) -> Option<Tenant> {
        match (partner, program) {
            (Some(p), None) => Some(Tenant::Partner(PartnerId::from_db(p))),
            (None, Some(p)) => Some(Tenant::Program(ProgramId::from_db(p))),
            _ => None,
        }
    }

    fn columns(self) -> (Option<i64>, Option<i64>) {
        match self {
            Tenant::Partner(p) => (Some(p.get()), None),
            Tenant::Program(p) => (None, Some(p.get())),
        }
    }
}

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub tenant: Tenant,
    /// `en` or `id`; none: the browser's languages decide.
    pub locale: Option<String>,
    /// IANA time zone name.
    pub time_zone: String,
    pub has_password: bool,
}

/// What a one-time token is for, and how long it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Opening an invitation: set a password, sign in.
    Invite,
    /// Choosing a new password.
    Reset,
    /// Signing in once, from a merchant's site.
    Login,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Invite => "invite",
            Purpose::Reset => "reset",
            Purpose::Login => "login",
        }
    }

    pub fn lifetime(self) -> Duration {
        match self {
            Purpose::Invite => Duration::days(7),
            Purpose::Reset => Duration::hours(1),
            // Long enough for a redirect, too short to be worth stealing.
            Purpose::Login => Duration::seconds(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The address already has an account of another partner or program.
    #[error("this e-mail address already has an account for another partner or program")]
    EmailTaken,
    /// The address already has an account here, with a password.
    #[error("this e-mail address already has an account: sign in, or reset its password")]
    AlreadyActive,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A token as issued: shown once, stored hashed.
#[derive(Debug, Clone)]
pub struct Issued {
    pub user: User,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

struct Row {
    id: UserId,
    email: String,
    partner_id: Option<i64>,
    program_id: Option<i64>,
    locale: Option<String>,
    time_zone: String,
    password_hash: Option<String>,
}

impl Row {
    fn user(self) -> Result<(User, Option<String>), sqlx::Error> {
        let tenant = Tenant::from_row(self.partner_id, self.program_id)
            .ok_or_else(|| sqlx::Error::Protocol(format!("user {} has no tenant", self.id)))?;
        Ok((
            User {
                id: self.id,
                email: self.email,
                tenant,
                locale: self.locale,
                time_zone: self.time_zone,
                has_password: self.password_hash.is_some(),
            },
            self.password_hash,
        ))
    }
}

async fn row_by_email(db: &mut PgConnection, email: &str) -> Result<Option<Row>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        r#"select id as "id: UserId", email, partner_id, program_id, locale, time_zone, password_hash
           from users where lower(email) = lower($1)"#,
        email
    )
    .fetch_optional(db)
    .await
}

/// The account of an address, with its password hash.
pub async fn by_email(
    db: &PgPool,
    email: &str,
) -> Result<Option<(User, Option<String>)>, sqlx::Error> {
    let mut conn = db.acquire().await?;
    row_by_email(&mut conn, email)
        .await?
        .map(Row::user)
        .transpose()
}

pub async fn get(db: &PgPool, id: UserId) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        r#"select id as "id: UserId", email, partner_id, program_id, locale, time_zone, password_hash
           from users where id = $1"#,
        id.get()
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Row::user).transpose()?.map(|(u, _)| u))
}

/// Invites an address to act for `tenant`: makes the account (without a
/// password) or renews the invitation of one that never set a password.
pub async fn invite(db: &PgPool, tenant: Tenant, email: &Email) -> Result<Issued, AccountError> {
    let mut tx = db.begin().await?;
    let exists = match tenant {
        Tenant::Partner(p) => {
            sqlx::query_scalar!(
                r#"select exists(select 1 from partners where id = $1) as "found!""#,
                p.get()
            )
            .fetch_one(&mut *tx)
            .await?
        }
        Tenant::Program(p) => {
            sqlx::query_scalar!(
                r#"select exists(select 1 from programs where id = $1) as "found!""#,
                p.get()
            )
            .fetch_one(&mut *tx)
            .await?
        }
    };
    if !exists {
        return Err(AccountError::NotFound(match tenant {
            Tenant::Partner(_) => "partner",
            Tenant::Program(_) => "program",
        }));
    }
    // Serializes invitations of one address.
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('mitra-user:' || lower($1), 0))",
        email.as_str()
    )
    .execute(&mut *tx)
    .await?;
    let user = match row_by_email(&mut tx, email.as_str()).await? {
        Some(row) => {
            let (user, hash) = row.user()?;
            if user.tenant != tenant {
                return Err(AccountError::EmailTaken);
            }
            if hash.is_some() {
                return Err(AccountError::AlreadyActive);
            }
            user
        }
        None => insert(&mut tx, tenant, email.as_str(), None).await?,
    };
    let issued = issue(&mut tx, user, Purpose::Invite).await?;
    tx.commit().await?;
    Ok(issued)
}

async fn insert(
    tx: &mut PgConnection,
    tenant: Tenant,
    email: &str,
    password_hash: Option<&str>,
) -> Result<User, AccountError> {
    let (partner, program) = tenant.columns();
    let row = sqlx::query_as!(
        Row,
        r#"insert into users (email, partner_id, program_id, password_hash) values ($1, $2, $3, $4)
           returning id as "id: UserId", email, partner_id, program_id, locale, time_zone, password_hash"#,
        email,
        partner,
        program,
        password_hash
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("users_email") => {
            AccountError::EmailTaken
        }
        _ => AccountError::Db(e),
    })?;
    Ok(row.user()?.0)
}

/// Issues a one-time token of `purpose` for `user`.
async fn issue(tx: &mut PgConnection, user: User, purpose: Purpose) -> Result<Issued, sqlx::Error> {
    let token = random_token();
    let expires_at = Utc::now() + purpose.lifetime();
    sqlx::query!(
        "insert into user_tokens (token_hash, user_id, purpose, expires_at) values ($1, $2, $3, $4)",
        digest(&token),
        user.id.get(),
        purpose.as_str(),
        expires_at
    )
    .execute(&mut *tx)
    .await?;
    Ok(Issued {
        user,
        token,
        expires_at,
    })
}

/// A password-reset token for the account of `email`, if there is one.
pub async fn reset_token(db: &PgPool, email: &str) -> Result<Option<Issued>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let Some(row) = row_by_email(&mut tx, email).await? else {
        return Ok(None);
    };
    let user = row.user()?.0;
    let issued = issue(&mut tx, user, Purpose::Reset).await?;
    tx.commit().await?;
    Ok(Some(issued))
}

/// A one-time sign-in link's token for a partner: for its oldest account,
/// or (a partner nobody has signed in for yet) for a new account at the
/// partner's address, reachable only through such links until someone
/// sets a password. The program vouches for its partner by asking.
pub async fn login_token(db: &PgPool, partner: PartnerId) -> Result<Issued, AccountError> {
    let mut tx = db.begin().await?;
    let existing = sqlx::query_as!(
        Row,
        r#"select id as "id: UserId", email, partner_id, program_id, locale, time_zone, password_hash
           from users where partner_id = $1 order by id limit 1"#,
        partner.get()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let user = match existing {
        Some(row) => row.user()?.0,
        None => {
            let email =
                sqlx::query_scalar!("select email from partners where id = $1", partner.get())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(AccountError::NotFound("partner"))?;
            insert(&mut tx, Tenant::Partner(partner), &email, None).await?
        }
    };
    let issued = issue(&mut tx, user, Purpose::Login).await?;
    tx.commit().await?;
    Ok(issued)
}

/// The account a valid, unused token of `purpose` belongs to, without
/// using it (to show the page it opens).
pub async fn peek(db: &PgPool, token: &str, purpose: Purpose) -> Result<Option<User>, sqlx::Error> {
    let id = sqlx::query_scalar!(
        r#"select user_id as "id: UserId" from user_tokens
           where token_hash = $1 and purpose = $2 and used_at is null and expires_at > now()"#,
        digest(token),
        purpose.as_str()
    )
    .fetch_optional(db)
    .await?;
    match id {
        Some(id) => get(db, id).await,
        None => Ok(None),
    }
}

/// Uses a token: once, and only before it expires.
pub async fn redeem(
    db: &PgPool,
    token: &str,
    purpose: Purpose,
) -> Result<Option<User>, sqlx::Error> {
    let id = sqlx::query_scalar!(
        r#"update user_tokens set used_at = now()
           where token_hash = $1 and purpose = $2 and used_at is null and expires_at > now()
           returning user_id as "id: UserId""#,
        digest(token),
        purpose.as_str()
    )
    .fetch_optional(db)
    .await?;
    match id {
        Some(id) => get(db, id).await,
        None => Ok(None),
    }
}

/// Sets a password (already hashed) and ends every other session.
pub async fn set_password(db: &PgPool, user: UserId, hash: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "update users set password_hash = $2, updated_at = now() where id = $1",
        user.get(),
        hash
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("delete from sessions where user_id = $1", user.get())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Who signs up from a program's invitation to a partner.
#[derive(Debug, Clone)]
pub enum NewAccount {
    /// The invited partner, which has no account yet.
    Partner(PartnerId),
    /// Someone invited by e-mail who is no partner yet: the partner is made now.
    NewPartner { name: Name, email: Email },
}

/// Makes a partner's first account, with a password, from an invitation
/// the caller has checked.
pub async fn sign_up(
    db: &PgPool,
    who: NewAccount,
    password_hash: &str,
) -> Result<User, AccountError> {
    let mut tx = db.begin().await?;
    let (partner, email) = match who {
        NewAccount::Partner(p) => {
            let email = sqlx::query_scalar!("select email from partners where id = $1", p.get())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(AccountError::NotFound("partner"))?;
            (p, email)
        }
        NewAccount::NewPartner { name, email } => {
            // The partner gets an API key like any other; nobody sees it
            // until the admin issues one to show.
            let key = NewApiKey::generate(KeyOwner::Partner);
            let id = sqlx::query_scalar!(
                r#"insert into partners (name, email, api_key_hash) values ($1, $2, $3)
                   returning id as "id: PartnerId""#,
                name.as_str(),
                email.as_str(),
                key.hash
            )
            .fetch_one(&mut *tx)
            .await?;
            (id, email.as_str().to_owned())
        }
    };
    let has_account = sqlx::query_scalar!(
        r#"select exists(select 1 from users where partner_id = $1) as "found!""#,
        partner.get()
    )
    .fetch_one(&mut *tx)
    .await?;
    if has_account {
        return Err(AccountError::AlreadyActive);
    }
    let user = insert(
        &mut tx,
        Tenant::Partner(partner),
        &email,
        Some(password_hash),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Language and time zone, as the person chose them.
pub async fn set_preferences(
    db: &PgPool,
    user: UserId,
    locale: Option<&str>,
    time_zone: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update users set locale = $2, time_zone = $3, updated_at = now() where id = $1",
        user.get(),
        locale,
        time_zone
    )
    .execute(db)
    .await?;
    Ok(())
}

/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::days(14);

/// A signed-in session, as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf: String,
}

/// Starts a session for `user`: answers the cookie's token and the session's CSRF token.
pub async fn start_session(db: &PgPool, user: UserId) -> Result<(String, String), sqlx::Error> {
    let token = random_token();
    let csrf = random_token();
    sqlx::query!(
        "insert into sessions (token_hash, user_id, csrf_token, expires_at) values ($1, $2, $3, $4)",
        digest(&token),
        user.get(),
        csrf,
        Utc::now() + SESSION_LIFETIME
    )
    .execute(db)
    .await?;
    // Expired sessions of anyone go as new ones come: no timer needed.
    sqlx::query!("delete from sessions where expires_at < now() - interval '1 day'")
        .execute(db)
        .await?;
    Ok((token, csrf))
}

/// The live session a cookie's token names.
pub async fn session(db: &PgPool, token: &str) -> Result<Option<Session>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select u.id as "id: UserId", u.email, u.partner_id, u.program_id, u.locale, u.time_zone,
                  u.password_hash, s.csrf_token
           from sessions s join users u on u.id = s.user_id
           where s.token_hash = $1 and s.expires_at > now()"#,
        digest(token)
    )
    .fetch_optional(db)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let (user, _) = Row {
        id: r.id,
        email: r.email,
        partner_id: r.partner_id,
        program_id: r.program_id,
        locale: r.locale,
        time_zone: r.time_zone,
        password_hash: r.password_hash,
    }
    .user()?;
    Ok(Some(Session {
        user,
        csrf: r.csrf_token,
    }))
}

/// Ends the session a cookie's token names.
pub async fn end_session(db: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from sessions where token_hash = $1", digest(token))
        .execute(db)
        .await?;
    Ok(())
}
