//! Programs: a merchant's affiliate program and its settings.
//!
//! The program's terms (commission rules, hold days, attribution window)
//! are versioned like agreements: a change inserts version n+1 and never
//! edits an earlier one; `programs` holds the current version's values. A
//! conversion is priced under the version in force when it happened, and
//! every commission records it.

use crate::domain::{CommissionRules, Currency, LandingDomains, Name, ProgramId, WebUrl};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};

/// A program as validated at the edge, ready to insert.
pub struct NewProgram {
    pub name: Name,
    pub currency: Currency,
    pub landing_domains: LandingDomains,
    pub default_url: WebUrl,
    pub attribution_window_days: i32,
    pub hold_days: i32,
    pub commission: CommissionRules,
    pub listing: Listing,
}

/// How a program shows itself to partners looking for programs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Listed to partners, who may apply.
    pub public: bool,
    pub description: Option<String>,
    /// After a rejection, a partner waits this long before applying again.
    pub reapply_cooldown_days: i32,
}

/// A merchant's affiliate program.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Program {
    pub id: ProgramId,
    #[schema(examples("Batik Shop"))]
    pub name: String,
    pub currency: Currency,
    /// Hosts shoppers may land on (exact match).
    #[schema(examples("shop.example"))]
    pub landing_domains: Vec<String>,
    #[schema(format = "uri", examples("https://shop.example/"))]
    pub default_url: String,
    /// How long after a click a conversion is attributed to it.
    #[schema(examples(30))]
    pub attribution_window_days: i32,
    /// How long a commission stays pending before it is approved.
    #[schema(examples(30))]
    pub hold_days: i32,
    #[schema(value_type = crate::domain::CommissionRules)]
    pub commission: serde_json::Value,
    /// The current version of the terms (commission, hold days, attribution window).
    #[schema(examples(1))]
    pub terms_version: i32,
    /// Listed to partners, who may apply to it.
    pub public: bool,
    /// What partners read about it.
    pub description: Option<String>,
    /// Days a rejected applicant waits before applying again.
    #[schema(minimum = 0, maximum = 365, examples(30))]
    pub reapply_cooldown_days: i32,
    pub created_at: DateTime<Utc>,
}

/// One version of a program's terms.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProgramVersion {
    pub program_id: ProgramId,
    pub version: i32,
    #[schema(value_type = crate::domain::CommissionRules)]
    pub commission: serde_json::Value,
    pub attribution_window_days: i32,
    pub hold_days: i32,
    /// Who made it: `admin`, or the program's id.
    pub actor: String,
    /// When it was made; it governs conversions from then on.
    pub created_at: DateTime<Utc>,
}

/// A change of terms; what is absent stays as it is.
#[derive(Debug, Default)]
pub struct TermsChange {
    pub commission: Option<CommissionRules>,
    pub attribution_window_days: Option<i32>,
    pub hold_days: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the program's terms are at version {current}, not {expected}")]
    StaleVersion { current: i32, expected: i32 },
    #[error("no such program")]
    NotFound,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Program {
    /// The program's commission rules; they were validated when written.
    pub fn rules(&self) -> anyhow::Result<CommissionRules> {
        CommissionRules::parse(&self.commission)
            .map_err(|e| anyhow::anyhow!("stored rules of {} are invalid: {e}", self.id))
    }

    pub fn landing(&self) -> LandingDomains {
        LandingDomains::from_db(self.landing_domains.clone())
    }
}

/// Inserts the program with its API key hash and first webhook secret, in one transaction.
pub async fn insert(
    db: &PgPool,
    new: &NewProgram,
    api_key_hash: &[u8],
    webhook_secret: &str,
) -> Result<Program, sqlx::Error> {
    let mut tx = db.begin().await?;
    let program = sqlx::query_as!(
        Program,
        r#"
        insert into programs
            (name, currency, landing_domains, default_url, attribution_window_days,
             hold_days, commission, api_key_hash, public, description, reapply_cooldown_days)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        returning id as "id: ProgramId", name, currency as "currency: Currency",
                  landing_domains, default_url, attribution_window_days, hold_days,
                  commission, terms_version, public, description, reapply_cooldown_days, created_at
        "#,
        new.name.as_str(),
        new.currency.code(),
        &new.landing_domains.as_strings(),
        new.default_url.as_str(),
        new.attribution_window_days,
        new.hold_days,
        new.commission.to_json(),
        api_key_hash,
        new.listing.public,
        new.listing.description,
        new.listing.reapply_cooldown_days,
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into webhook_secrets (program_id, secret) values ($1, $2)",
        program.id.get(),
        webhook_secret
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        r#"insert into program_versions
               (program_id, version, commission, attribution_window_days, hold_days, actor, created_at)
           values ($1, 1, $2, $3, $4, 'admin', $5)"#,
        program.id.get(),
        program.commission,
        program.attribution_window_days,
        program.hold_days,
        program.created_at,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(program)
}

/// Makes version n+1 of the program's terms from the current one and
/// `change`. With `expected`, refuses when another change got in first, so
/// two editors cannot silently overwrite each other.
pub async fn new_version(
    db: &PgPool,
    id: ProgramId,
    expected: Option<i32>,
    change: &TermsChange,
    actor: &str,
) -> Result<Program, WriteError> {
    let mut tx = db.begin().await?;
    let current = sqlx::query!(
        r#"select terms_version, commission, attribution_window_days, hold_days
           from programs where id = $1 for update"#,
        id.get()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(WriteError::NotFound)?;
    if let Some(expected) = expected
        && expected != current.terms_version
    {
        return Err(WriteError::StaleVersion {
            current: current.terms_version,
            expected,
        });
    }
    let version = current.terms_version + 1;
    let commission = change
        .commission
        .as_ref()
        .map_or(current.commission, CommissionRules::to_json);
    let window = change
        .attribution_window_days
        .unwrap_or(current.attribution_window_days);
    let hold = change.hold_days.unwrap_or(current.hold_days);
    sqlx::query!(
        r#"insert into program_versions
               (program_id, version, commission, attribution_window_days, hold_days, actor)
           values ($1, $2, $3, $4, $5, $6)"#,
        id.get(),
        version,
        commission,
        window,
        hold,
        actor
    )
    .execute(&mut *tx)
    .await?;
    let program = sqlx::query_as!(
        Program,
        r#"
        update programs set commission = $2, attribution_window_days = $3, hold_days = $4,
                            terms_version = $5, updated_at = now()
        where id = $1
        returning id as "id: ProgramId", name, currency as "currency: Currency",
                  landing_domains, default_url, attribution_window_days, hold_days,
                  commission, terms_version, public, description, reapply_cooldown_days, created_at
        "#,
        id.get(),
        commission,
        window,
        hold,
        version
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(program)
}

/// Every version of a program's terms, oldest first; or only `version`.
pub async fn versions(
    db: &PgPool,
    id: ProgramId,
    version: Option<i32>,
) -> Result<Vec<ProgramVersion>, sqlx::Error> {
    sqlx::query_as!(
        ProgramVersion,
        r#"
        select program_id as "program_id: ProgramId", version, commission,
               attribution_window_days, hold_days, actor, created_at
        from program_versions
        where program_id = $1 and ($2::int is null or version = $2)
        order by version
        "#,
        id.get(),
        version
    )
    .fetch_all(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, id: ProgramId) -> Result<Option<Program>, sqlx::Error> {
    sqlx::query_as!(
        Program,
        r#"
        select id as "id: ProgramId", name, currency as "currency: Currency",
               landing_domains, default_url, attribution_window_days, hold_days,
               commission, terms_version, public, description, reapply_cooldown_days, created_at
        from programs where id = $1
        "#,
        id.get()
    )
    .fetch_optional(db)
    .await
}

/// Programs in id order after `after`; only `only` when given.
pub async fn list(
    db: &PgPool,
    only: Option<ProgramId>,
    after: i64,
    limit: i64,
) -> Result<Vec<Program>, sqlx::Error> {
    sqlx::query_as!(
        Program,
        r#"
        select id as "id: ProgramId", name, currency as "currency: Currency",
               landing_domains, default_url, attribution_window_days, hold_days,
               commission, terms_version, public, description, reapply_cooldown_days, created_at
        from programs
        where id > $1 and ($2::bigint is null or id = $2)
        order by id
        limit $3
        "#,
        after,
        only.map(ProgramId::get),
        limit
    )
    .fetch_all(db)
    .await
}

/// Changes how a program shows itself to partners.
pub async fn set_listing(
    db: &PgPool,
    id: ProgramId,
    listing: &Listing,
) -> Result<Option<Program>, sqlx::Error> {
    sqlx::query_as!(
        Program,
        r#"
        update programs set public = $2, description = $3, reapply_cooldown_days = $4,
                            updated_at = now()
        where id = $1
        returning id as "id: ProgramId", name, currency as "currency: Currency",
                  landing_domains, default_url, attribution_window_days, hold_days,
                  commission, terms_version, public, description, reapply_cooldown_days, created_at
        "#,
        id.get(),
        listing.public,
        listing.description,
        listing.reapply_cooldown_days
    )
    .fetch_optional(db)
    .await
}

/// Public programs in id order: what partners may apply to.
pub async fn list_public(db: &PgPool, after: i64, limit: i64) -> Result<Vec<Program>, sqlx::Error> {
    sqlx::query_as!(
        Program,
        r#"
        select id as "id: ProgramId", name, currency as "currency: Currency",
               landing_domains, default_url, attribution_window_days, hold_days,
               commission, terms_version, public, description, reapply_cooldown_days, created_at
        from programs
        where public and id > $1
        order by id
        limit $2
        "#,
        after,
        limit
    )
    .fetch_all(db)
    .await
}
