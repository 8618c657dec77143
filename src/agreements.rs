//! Agreements: versioned terms between a program and its partners.
//!
//! Terms are never edited in place. A change inserts version n+1 and moves
//! the agreement's `current_version`; every commission records the version it
//! was computed under, so any amount can be explained later.

use crate::domain::{AgreementId, CommissionRules, CouponCode, PartnerId, ProgramId, Shares};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

/// Validated terms for one version.
pub struct Terms {
    pub shares: Shares,
    /// Overrides the program's rules for the events it names.
    pub commission: Option<CommissionRules>,
    pub coupon_codes: Vec<CouponCode>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// One partner's share of an agreement's commissions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Share)]
pub struct ShareView {
    pub partner_id: PartnerId,
    /// Basis points; the shares of one version sum to 10000.
    #[schema(minimum = 0, maximum = 10000, examples(10000))]
    pub share_bps: i32,
}

/// One version of an agreement, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Agreement {
    pub id: AgreementId,
    pub program_id: ProgramId,
    pub version: i32,
    pub current_version: i32,
    pub partners: Vec<ShareView>,
    /// This agreement's override, or null when the program's rules apply.
    #[schema(value_type = Option<crate::domain::CommissionRules>)]
    pub commission: Option<serde_json::Value>,
    /// The rules in force under this version: the override over the program's.
    #[schema(value_type = crate::domain::CommissionRules)]
    pub effective_commission: serde_json::Value,
    pub coupon_codes: Vec<String>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    /// When this version was made; it governs conversions from then on.
    pub created_at: DateTime<Utc>,
}

struct Row {
    agreement_id: AgreementId,
    program_id: ProgramId,
    current_version: i32,
    version: i32,
    commission: Option<serde_json::Value>,
    program_commission: serde_json::Value,
    coupon_codes: Vec<String>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    partner_ids: Vec<i64>,
    share_bps: Vec<i32>,
}

impl Row {
    fn into_agreement(self) -> anyhow::Result<Agreement> {
        let program_rules = CommissionRules::parse(&self.program_commission)?;
        let effective = match &self.commission {
            Some(own) => CommissionRules::parse(own)?.overriding(&program_rules),
            None => program_rules,
        };
        Ok(Agreement {
            id: self.agreement_id,
            program_id: self.program_id,
            version: self.version,
            current_version: self.current_version,
            partners: self
                .partner_ids
                .into_iter()
                .zip(self.share_bps)
                .map(|(p, s)| ShareView {
                    partner_id: PartnerId::from_db(p),
                    share_bps: s,
                })
                .collect(),
            commission: self.commission,
            effective_commission: effective.to_json(),
            coupon_codes: self.coupon_codes,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            created_at: self.created_at,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("coupon code {0} belongs to another agreement of this program")]
    CouponTaken(String),
    #[error("the agreement is at version {current}, not {expected}")]
    StaleVersion { current: i32, expected: i32 },
    #[error("no such agreement")]
    NotFound,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Creates an agreement at version 1.
pub async fn insert(
    db: &PgPool,
    program: ProgramId,
    terms: &Terms,
) -> Result<AgreementId, WriteError> {
    let mut tx = db.begin().await?;
    let id = sqlx::query_scalar!(
        r#"insert into agreements (program_id, current_version) values ($1, 1)
           returning id as "id: AgreementId""#,
        program.get()
    )
    .fetch_one(&mut *tx)
    .await?;
    write_version(&mut tx, id, program, 1, terms).await?;
    tx.commit().await?;
    Ok(id)
}

/// Makes version n+1 with `terms`. With `expected`, refuses when another
/// change got in first, so two editors cannot silently overwrite each other.
pub async fn new_version(
    db: &PgPool,
    id: AgreementId,
    expected: Option<i32>,
    terms: &Terms,
) -> Result<i32, WriteError> {
    let mut tx = db.begin().await?;
    let current = sqlx::query!(
        r#"select current_version, program_id as "program_id: ProgramId"
           from agreements where id = $1 for update"#,
        id.get()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(WriteError::NotFound)?;
    if let Some(expected) = expected
        && expected != current.current_version
    {
        return Err(WriteError::StaleVersion {
            current: current.current_version,
            expected,
        });
    }
    let version = current.current_version + 1;
    write_version(&mut tx, id, current.program_id, version, terms).await?;
    sqlx::query!(
        "update agreements set current_version = $2, updated_at = now() where id = $1",
        id.get(),
        version
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(version)
}

async fn write_version(
    tx: &mut PgConnection,
    id: AgreementId,
    program: ProgramId,
    version: i32,
    terms: &Terms,
) -> Result<(), WriteError> {
    let codes: Vec<String> = terms
        .coupon_codes
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    sqlx::query!(
        r#"insert into agreement_versions
               (agreement_id, version, commission, coupon_codes, valid_from, valid_until)
           values ($1, $2, $3, $4, $5, $6)"#,
        id.get(),
        version,
        terms.commission.as_ref().map(CommissionRules::to_json),
        &codes,
        terms.valid_from,
        terms.valid_until,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        r#"insert into agreement_partners (agreement_id, version, partner_id, share_bps)
           select $1, $2, * from unnest($3::bigint[], $4::int[])"#,
        id.get(),
        version,
        &terms.shares.partner_ids(),
        &terms.shares.bps(),
    )
    .execute(&mut *tx)
    .await?;
    // The coupon table maps each code to its current owner.
    sqlx::query!("delete from coupons where agreement_id = $1", id.get())
        .execute(&mut *tx)
        .await?;
    let taken = sqlx::query_scalar!(
        r#"
        with wanted as (select unnest($3::text[]) as code),
        added as (
            insert into coupons (program_id, code, agreement_id)
            select $1, code, $2 from wanted
            on conflict (program_id, code) do nothing
            returning code
        )
        select code as "code!" from wanted where code not in (select code from added)
        "#,
        program.get(),
        id.get(),
        &codes
    )
    .fetch_all(&mut *tx)
    .await?;
    if let Some(code) = taken.into_iter().next() {
        return Err(WriteError::CouponTaken(code));
    }
    Ok(())
}

/// One version of an agreement; the current one when `version` is `None`.
pub async fn get(
    db: &PgPool,
    id: AgreementId,
    version: Option<i32>,
) -> anyhow::Result<Option<Agreement>> {
    let row = sqlx::query_as!(
        Row,
        r#"
        select agreement_id as "agreement_id!: AgreementId", program_id as "program_id!: ProgramId",
               current_version as "current_version!", version as "version!", commission,
               program_commission as "program_commission!", coupon_codes as "coupon_codes!",
               valid_from, valid_until, created_at as "created_at!",
               partner_ids as "partner_ids!", share_bps as "share_bps!"
        from agreement_terms
        where agreement_id = $1 and version = coalesce($2, current_version)
        "#,
        id.get(),
        version
    )
    .fetch_optional(db)
    .await?;
    row.map(Row::into_agreement).transpose()
}

/// Every version of an agreement, oldest first.
pub async fn versions(db: &PgPool, id: AgreementId) -> anyhow::Result<Vec<Agreement>> {
    let rows = sqlx::query_as!(
        Row,
        r#"
        select agreement_id as "agreement_id!: AgreementId", program_id as "program_id!: ProgramId",
               current_version as "current_version!", version as "version!", commission,
               program_commission as "program_commission!", coupon_codes as "coupon_codes!",
               valid_from, valid_until, created_at as "created_at!",
               partner_ids as "partner_ids!", share_bps as "share_bps!"
        from agreement_terms
        where agreement_id = $1
        order by version
        "#,
        id.get()
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(Row::into_agreement).collect()
}

/// Current versions of a program's agreements (or, with `partner`, only
/// those whose current terms include that partner), in id order.
pub async fn list(
    db: &PgPool,
    program: Option<ProgramId>,
    partner: Option<PartnerId>,
    after: i64,
    limit: i64,
) -> anyhow::Result<Vec<Agreement>> {
    let rows = sqlx::query_as!(
        Row,
        r#"
        select agreement_id as "agreement_id!: AgreementId", program_id as "program_id!: ProgramId",
               current_version as "current_version!", version as "version!", commission,
               program_commission as "program_commission!", coupon_codes as "coupon_codes!",
               valid_from, valid_until, created_at as "created_at!",
               partner_ids as "partner_ids!", share_bps as "share_bps!"
        from agreement_terms
        where version = current_version
          and agreement_id > $1
          and ($2::bigint is null or program_id = $2)
          and ($3::bigint is null or $3 = any(partner_ids))
        order by agreement_id
        limit $4
        "#,
        after,
        program.map(ProgramId::get),
        partner.map(PartnerId::get),
        limit
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(Row::into_agreement).collect()
}

/// Whether the partner is in any version of the agreement.
pub async fn has_partner(
    db: &PgPool,
    id: AgreementId,
    partner: PartnerId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from agreement_partners where agreement_id = $1 and partner_id = $2) as "found!""#,
        id.get(),
        partner.get()
    )
    .fetch_one(db)
    .await
}

/// Whether the partner is in any version of any agreement of the program.
pub async fn partner_in_program(
    db: &PgPool,
    program: ProgramId,
    partner: PartnerId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (
               select 1 from agreements a join agreement_partners ap on ap.agreement_id = a.id
               where a.program_id = $1 and ap.partner_id = $2
           ) as "found!""#,
        program.get(),
        partner.get()
    )
    .fetch_one(db)
    .await
}
