//! Links: issued under an agreement, redirected by `GET /l/{code}`.

pub mod cache;

use crate::domain::KeyRing;
use crate::domain::{AgreementId, LinkId, PartnerId, ProgramId, SubIds, WebUrl};
use crate::{agreements, enrollments, programs};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;

/// A link as stored. The public `url` is added by the HTTP layer from
/// `MITRA_PUBLIC_URL`, so moving the public host does not rewrite rows.
#[derive(Debug, Clone)]
pub struct Link {
    pub id: LinkId,
    pub code: String,
    pub program_id: ProgramId,
    pub agreement_id: AgreementId,
    pub destination_url: Option<String>,
    pub sub_ids: serde_json::Value,
    pub created_by_partner_id: Option<PartnerId>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The API's view of a link.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Link)]
pub struct LinkView {
    pub id: LinkId,
    /// The signed code in the link's path.
    #[schema(examples("2bH7kQ9xPz1mV"))]
    pub code: String,
    /// The link to share: `MITRA_PUBLIC_URL` + `/l/` + code.
    #[schema(format = "uri", examples("https://go.shop.example/l/2bH7kQ9xPz1mV"))]
    pub url: String,
    pub program_id: ProgramId,
    pub agreement_id: AgreementId,
    /// Where the link lands; null: the program's default URL.
    #[schema(format = "uri")]
    pub destination_url: Option<String>,
    #[schema(value_type = crate::domain::SubIds)]
    pub sub_ids: serde_json::Value,
    pub created_by_partner_id: Option<PartnerId>,
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Link {
    pub fn view(self, public_base: &str) -> LinkView {
        LinkView {
            url: format!("{public_base}/l/{}", self.code),
            id: self.id,
            code: self.code,
            program_id: self.program_id,
            agreement_id: self.agreement_id,
            destination_url: self.destination_url,
            sub_ids: self.sub_ids,
            created_by_partner_id: self.created_by_partner_id,
            disabled: self.disabled_at.is_some(),
            disabled_at: self.disabled_at,
            created_at: self.created_at,
        }
    }
}

pub struct NewLink {
    pub program_id: ProgramId,
    pub agreement_id: AgreementId,
    pub destination_url: Option<WebUrl>,
    pub sub_ids: SubIds,
    pub created_by_partner_id: Option<PartnerId>,
}

/// Who asks for a link: the admin, a program, or a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    Admin,
    Program(ProgramId),
    Partner(PartnerId),
}

/// Why a link was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No such agreement, or not one the issuer may issue links under.
    #[error("no such agreement")]
    NotFound,
    /// Fields that do not make a link, each with its message.
    #[error("invalid link")]
    Invalid(Vec<(&'static str, String)>),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for IssueError {
    fn from(e: sqlx::Error) -> Self {
        IssueError::Other(e.into())
    }
}

/// Issues a link under an agreement, for the API and the portal alike:
/// the admin, the agreement's program, or a partner named in its current
/// terms and active in the program may; to anyone else the agreement does
/// not exist. The destination must be on the program's landing domains.
pub async fn issue(
    db: &PgPool,
    keys: &KeyRing,
    issuer: Issuer,
    agreement_id: AgreementId,
    destination_url: Option<&str>,
    sub_ids: &BTreeMap<String, String>,
) -> Result<Link, IssueError> {
    let agreement = agreements::get(db, agreement_id, None)
        .await?
        .ok_or(IssueError::NotFound)?;
    let allowed = match issuer {
        Issuer::Admin => true,
        Issuer::Program(p) => p == agreement.program_id,
        Issuer::Partner(p) => {
            agreement.partners.iter().any(|s| s.partner_id == p)
                && enrollments::is_active(db, agreement.program_id, p).await?
        }
    };
    if !allowed {
        return Err(IssueError::NotFound);
    }
    let program = programs::get(db, agreement.program_id)
        .await?
        .ok_or(IssueError::NotFound)?;
    let mut invalid = Vec::new();
    let destination = match destination_url {
        None => None,
        Some(raw) => match WebUrl::parse_plain(raw).and_then(|u| program.landing().check(u)) {
            Ok(u) => Some(u),
            Err(e) => {
                invalid.push(("destination_url", e.to_string()));
                None
            }
        },
    };
    let sub_ids = match SubIds::parse(sub_ids) {
        Ok(s) => Some(s),
        Err(e) => {
            invalid.push(("sub_ids", e.to_string()));
            None
        }
    };
    let (Some(sub_ids), true) = (sub_ids, invalid.is_empty()) else {
        return Err(IssueError::Invalid(invalid));
    };
    let new = NewLink {
        program_id: agreement.program_id,
        agreement_id,
        destination_url: destination,
        sub_ids,
        created_by_partner_id: match issuer {
            Issuer::Partner(p) => Some(p),
            _ => None,
        },
    };
    let link = insert(db, keys, &new).await?;
    tracing::info!(link = %link.id, agreement = %agreement_id, "link issued");
    Ok(link)
}

/// Inserts a link and signs its code. The id is drawn first because the
/// code is a signature over it.
pub async fn insert(db: &PgPool, keys: &KeyRing, new: &NewLink) -> anyhow::Result<Link> {
    let mut tx = db.begin().await?;
    let id: i64 =
        sqlx::query_scalar!(r#"select nextval(pg_get_serial_sequence('links', 'id')) as "id!""#)
            .fetch_one(&mut *tx)
            .await?;
    let code = crate::domain::link_code::sign(keys, LinkId::from_db(id))
        .ok_or_else(|| anyhow::anyhow!("link id {id} is beyond the code range"))?;
    let link = sqlx::query_as!(
        Link,
        r#"
        insert into links (id, program_id, agreement_id, code, destination_url, sub_ids, created_by_partner_id)
        overriding system value
        values ($1, $2, $3, $4, $5, $6, $7)
        returning id as "id: LinkId", code, program_id as "program_id: ProgramId",
                  agreement_id as "agreement_id: AgreementId", destination_url, sub_ids,
                  created_by_partner_id as "created_by_partner_id: PartnerId", disabled_at, created_at
        "#,
        id,
        new.program_id.get(),
        new.agreement_id.get(),
        code,
        new.destination_url.as_ref().map(WebUrl::as_str),
        new.sub_ids.to_json(),
        new.created_by_partner_id.map(PartnerId::get),
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(link)
}

pub async fn get(db: &PgPool, id: LinkId) -> Result<Option<Link>, sqlx::Error> {
    sqlx::query_as!(
        Link,
        r#"
        select id as "id: LinkId", code, program_id as "program_id: ProgramId",
               agreement_id as "agreement_id: AgreementId", destination_url, sub_ids,
               created_by_partner_id as "created_by_partner_id: PartnerId", disabled_at, created_at
        from links where id = $1
        "#,
        id.get()
    )
    .fetch_optional(db)
    .await
}

/// Links in id order, narrowed to a program, an agreement, or the
/// agreements a partner appears in.
pub async fn list(
    db: &PgPool,
    program: Option<ProgramId>,
    agreement: Option<AgreementId>,
    partner: Option<PartnerId>,
    after: i64,
    limit: i64,
) -> Result<Vec<Link>, sqlx::Error> {
    sqlx::query_as!(
        Link,
        r#"
        select l.id as "id: LinkId", l.code, l.program_id as "program_id: ProgramId",
               l.agreement_id as "agreement_id: AgreementId", l.destination_url, l.sub_ids,
               l.created_by_partner_id as "created_by_partner_id: PartnerId", l.disabled_at, l.created_at
        from links l
        where l.id > $1
          and ($2::bigint is null or l.program_id = $2)
          and ($3::bigint is null or l.agreement_id = $3)
          and ($4::bigint is null or exists (
                select 1 from agreement_partners ap
                where ap.agreement_id = l.agreement_id and ap.partner_id = $4))
        order by l.id
        limit $5
        "#,
        after,
        program.map(ProgramId::get),
        agreement.map(AgreementId::get),
        partner.map(PartnerId::get),
        limit
    )
    .fetch_all(db)
    .await
}

/// Marks a link disabled (idempotent) and bumps `updated_at` so every
/// instance's cache drops it.
pub async fn disable(db: &PgPool, id: LinkId) -> Result<Link, sqlx::Error> {
    sqlx::query_as!(
        Link,
        r#"
        update links set disabled_at = coalesce(disabled_at, now()), updated_at = now()
        where id = $1
        returning id as "id: LinkId", code, program_id as "program_id: ProgramId",
                  agreement_id as "agreement_id: AgreementId", destination_url, sub_ids,
                  created_by_partner_id as "created_by_partner_id: PartnerId", disabled_at, created_at
        "#,
        id.get()
    )
    .fetch_one(db)
    .await
}
