//! What a partner earned: commissions, balances and statements, all read
//! from the commissions and the ledger, so a partner can recompute every
//! figure from what it is shown.

use crate::domain::{
    AgreementId, AppliedRule, Bucket, CommissionId, CommissionStatus, ConversionId, Currency,
    Event, FraudSignal, LedgerEntryId, LedgerKind, PartnerId, PayoutId, ProgramId,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

/// What one partner earns from one conversion.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Commission {
    pub id: CommissionId,
    pub conversion_id: ConversionId,
    pub program_id: ProgramId,
    pub partner_id: PartnerId,
    pub agreement_id: AgreementId,
    pub agreement_version: i32,
    pub order_id: String,
    pub event: Event,
    /// The rule that produced the amount, and what it applied to.
    #[schema(value_type = AppliedRule)]
    pub rule: Json<AppliedRule>,
    /// The amount the rule applied to, in minor units.
    pub base_minor: i64,
    /// The commission of every partner of the conversion together.
    pub total_minor: i64,
    pub share_bps: i32,
    /// This partner's part when booked, before refunds.
    pub original_minor: i64,
    /// Net of refunds.
    pub amount_minor: i64,
    pub currency: Currency,
    pub status: CommissionStatus,
    pub review: bool,
    pub fraud_reasons: Vec<FraudSignal>,
    pub approve_after: DateTime<Utc>,
    pub payout_id: Option<PayoutId>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Filter {
    pub status: Option<CommissionStatus>,
    pub program: Option<ProgramId>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// A partner's commissions, oldest first, by the filter.
pub async fn commissions(
    db: &PgPool,
    partner: PartnerId,
    filter: &Filter,
    after: i64,
    limit: i64,
) -> Result<Vec<Commission>, sqlx::Error> {
    sqlx::query_as!(
        Commission,
        r#"
        select c.id as "id: CommissionId", c.conversion_id as "conversion_id: ConversionId",
               c.program_id as "program_id: ProgramId", c.partner_id as "partner_id: PartnerId",
               c.agreement_id as "agreement_id: AgreementId", c.agreement_version,
               v.order_id, v.event as "event: Event", c.rule as "rule: Json<AppliedRule>",
               c.base_minor, c.total_minor, c.share_bps, c.original_minor, c.amount_minor,
               c.currency as "currency: Currency", c.status as "status: CommissionStatus", c.review,
               c.fraud_reasons as "fraud_reasons: Vec<FraudSignal>",
               c.approve_after, c.payout_id as "payout_id: PayoutId", c.created_at
        from commissions c join conversions v on v.id = c.conversion_id
        where c.partner_id = $1 and c.id > $2
          and ($3::text is null or c.status = $3)
          and ($4::bigint is null or c.program_id = $4)
          and ($5::timestamptz is null or c.created_at >= $5)
          and ($6::timestamptz is null or c.created_at < $6)
        order by c.id
        limit $7
        "#,
        partner.get(),
        after,
        filter.status.map(CommissionStatus::as_str),
        filter.program.map(ProgramId::get),
        filter.from,
        filter.to,
        limit
    )
    .fetch_all(db)
    .await
}

/// Sums per bucket, for one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CurrencyBalance {
    pub currency: Currency,
    pub pending_minor: i64,
    pub approved_minor: i64,
    pub paid_minor: i64,
}

/// What a partner has, per currency.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Balance {
    pub partner_id: PartnerId,
    pub balances: Vec<CurrencyBalance>,
}

/// Bucket sums of a partner's ledger entries before `until` (all when None).
async fn sums(
    db: &mut PgConnection,
    partner: PartnerId,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<CurrencyBalance>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"
        select currency as "currency: Currency",
               coalesce(sum(amount_minor) filter (where bucket = 'pending'), 0)::bigint as "pending!",
               coalesce(sum(amount_minor) filter (where bucket = 'approved'), 0)::bigint as "approved!",
               coalesce(sum(amount_minor) filter (where bucket = 'paid'), 0)::bigint as "paid!"
        from ledger_entries
        where partner_id = $1 and ($2::timestamptz is null or created_at < $2)
        group by currency order by currency
        "#,
        partner.get(),
        until
    )
    .fetch_all(&mut *db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CurrencyBalance {
            currency: r.currency,
            pending_minor: r.pending,
            approved_minor: r.approved,
            paid_minor: r.paid,
        })
        .collect())
}

/// What the partner has, per currency: pending (in its hold period or
/// under review), approved (due in the next payout, net of carried refunds)
/// and paid.
pub async fn balance(db: &PgPool, partner: PartnerId) -> Result<Balance, sqlx::Error> {
    let mut conn = db.acquire().await?;
    Ok(Balance {
        partner_id: partner,
        balances: sums(&mut conn, partner, None).await?,
    })
}

/// One ledger entry with what explains it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatementLine {
    pub entry_id: LedgerEntryId,
    pub created_at: DateTime<Utc>,
    pub kind: LedgerKind,
    pub bucket: Bucket,
    /// Signed: what this entry adds to (or takes from) its bucket.
    pub amount_minor: i64,
    pub currency: Currency,
    pub program_id: ProgramId,
    pub commission_id: Option<CommissionId>,
    pub conversion_id: Option<ConversionId>,
    pub order_id: Option<String>,
    pub event: Option<Event>,
    pub agreement_id: Option<AgreementId>,
    pub agreement_version: Option<i32>,
    #[schema(value_type = Option<AppliedRule>)]
    pub rule: Option<Json<AppliedRule>>,
    pub base_minor: Option<i64>,
    pub total_minor: Option<i64>,
    pub share_bps: Option<i32>,
    pub payout_id: Option<PayoutId>,
    pub actor: String,
    pub reason: Option<String>,
}

/// A partner's ledger over a period, between opening and closing balances.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Statement {
    pub partner_id: PartnerId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Balances when the period began; plus every entry, they give `closing`.
    pub opening: Vec<CurrencyBalance>,
    pub entries: Vec<StatementLine>,
    pub closing: Vec<CurrencyBalance>,
}

/// Most entries one statement lists; ask for a shorter period beyond it.
pub const MAX_STATEMENT_ENTRIES: i64 = 50_000;

/// Every ledger entry of the partner in [from, to), with the conversion,
/// order, agreement version and rule behind it, between opening and closing
/// balances.
pub async fn statement(
    db: &PgPool,
    partner: PartnerId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<Statement>, sqlx::Error> {
    // One snapshot for the entries and both balances, so they reconcile.
    let mut tx = db.begin().await?;
    sqlx::query("set transaction isolation level repeatable read")
        .execute(&mut *tx)
        .await?;
    let entries = sqlx::query_as!(
        StatementLine,
        r#"
        select e.id as "entry_id: LedgerEntryId", e.created_at, e.kind as "kind: LedgerKind",
               e.bucket as "bucket: Bucket", e.amount_minor,
               e.currency as "currency: Currency", e.program_id as "program_id: ProgramId",
               e.commission_id as "commission_id: CommissionId",
               c.conversion_id as "conversion_id?: ConversionId", v.order_id as "order_id?",
               v.event as "event?: Event", c.agreement_id as "agreement_id?: AgreementId",
               c.agreement_version as "agreement_version?", c.rule as "rule?: Json<AppliedRule>",
               c.base_minor as "base_minor?", c.total_minor as "total_minor?",
               c.share_bps as "share_bps?", e.payout_id as "payout_id: PayoutId", e.actor, e.reason
        from ledger_entries e
        left join commissions c on c.id = e.commission_id
        left join conversions v on v.id = c.conversion_id
        where e.partner_id = $1 and e.created_at >= $2 and e.created_at < $3
        order by e.created_at, e.id
        limit $4
        "#,
        partner.get(),
        from,
        to,
        MAX_STATEMENT_ENTRIES + 1
    )
    .fetch_all(&mut *tx)
    .await?;
    if entries.len() as i64 > MAX_STATEMENT_ENTRIES {
        return Ok(None);
    }
    Ok(Some(Statement {
        partner_id: partner,
        from,
        to,
        opening: sums(&mut tx, partner, Some(from)).await?,
        entries,
        closing: sums(&mut tx, partner, Some(to)).await?,
    }))
}
