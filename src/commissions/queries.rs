//! What a partner earned: commissions, balances and statements, all read
//! from the commissions and the ledger, so a partner can recompute every
//! figure from what it is shown.

use crate::domain::{
    AgreementId, AppliedRule, Bucket, CommissionId, CommissionKind, CommissionStatus, ConversionId,
    Currency, Event, FraudSignal, LedgerEntryId, LedgerKind, PartnerId, PayoutId, ProgramId,
    RuleSource,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

/// What one partner earns from one conversion.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Commission {
    pub id: CommissionId,
    pub conversion_id: ConversionId,
    pub program_id: ProgramId,
    pub partner_id: PartnerId,
    pub agreement_id: AgreementId,
    pub agreement_version: i32,
    /// The program terms version in force when the conversion happened.
    pub program_version: i32,
    /// `conversion`: the order's commission; `bonus` or `tier_adjustment`:
    /// one the order triggered.
    pub kind: CommissionKind,
    /// Whose rule produced it.
    pub rule_source: RuleSource,
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
               c.program_version, c.kind as "kind: CommissionKind",
               c.rule_source as "rule_source: RuleSource",
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

/// One commission of `partner`: none when there is no such commission or
/// it is another partner's.
pub async fn commission_of(
    db: &PgPool,
    partner: PartnerId,
    id: CommissionId,
) -> Result<Option<Commission>, sqlx::Error> {
    let next = commissions(db, partner, &Filter::default(), id.get() - 1, 1).await?;
    Ok(next.into_iter().find(|c| c.id == id))
}

/// The order of each of these commissions (of any partner: the caller
/// shows only commissions the reader may see).
pub async fn orders_of(
    db: &PgPool,
    ids: &[CommissionId],
) -> Result<HashMap<CommissionId, String>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = ids.iter().map(|i| i.get()).collect();
    let rows = sqlx::query!(
        r#"select c.id as "id: CommissionId", v.order_id
           from commissions c join conversions v on v.id = c.conversion_id
           where c.id = any($1)"#,
        &ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.order_id)).collect())
}

/// A partner's latest commissions by the filter, newest first (the portal's list).
pub async fn latest_commissions(
    db: &PgPool,
    partner: PartnerId,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<Commission>, sqlx::Error> {
    sqlx::query_as!(
        Commission,
        r#"
        select c.id as "id: CommissionId", c.conversion_id as "conversion_id: ConversionId",
               c.program_id as "program_id: ProgramId", c.partner_id as "partner_id: PartnerId",
               c.agreement_id as "agreement_id: AgreementId", c.agreement_version,
               c.program_version, c.kind as "kind: CommissionKind",
               c.rule_source as "rule_source: RuleSource",
               v.order_id, v.event as "event: Event", c.rule as "rule: Json<AppliedRule>",
               c.base_minor, c.total_minor, c.share_bps, c.original_minor, c.amount_minor,
               c.currency as "currency: Currency", c.status as "status: CommissionStatus", c.review,
               c.fraud_reasons as "fraud_reasons: Vec<FraudSignal>",
               c.approve_after, c.payout_id as "payout_id: PayoutId", c.created_at
        from commissions c join conversions v on v.id = c.conversion_id
        where c.partner_id = $1
          and ($2::text is null or c.status = $2)
          and ($3::bigint is null or c.program_id = $3)
        order by c.id desc
        limit $4
        "#,
        partner.get(),
        filter.status.map(CommissionStatus::as_str),
        filter.program.map(ProgramId::get),
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

/// Bucket sums of a partner's ledger entries before `until` (all when
/// None): the latest balance checkpoint up to then, plus the entries after it.
async fn sums(
    db: &mut PgConnection,
    partner: PartnerId,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<CurrencyBalance>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"
        with checkpoint as (
            select through from ledger_checkpoint_runs
            where $2::timestamptz is null or through <= $2
            order by through desc limit 1
        )
        select currency as "currency!: Currency",
               sum(pending)::bigint as "pending!", sum(approved)::bigint as "approved!",
               sum(paid)::bigint as "paid!"
        from (
            select currency, pending_minor as pending, approved_minor as approved,
                   paid_minor as paid
            from ledger_checkpoints
            where partner_id = $1 and through = (select through from checkpoint)
            union all
            select currency,
                   coalesce(sum(amount_minor) filter (where bucket = 'pending'), 0),
                   coalesce(sum(amount_minor) filter (where bucket = 'approved'), 0),
                   coalesce(sum(amount_minor) filter (where bucket = 'paid'), 0)
            from ledger_entries
            where partner_id = $1
              and created_at >= coalesce((select through from checkpoint), '-infinity')
              and ($2::timestamptz is null or created_at < $2)
            group by currency
        ) s
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
    pub program_version: Option<i32>,
    pub commission_kind: Option<CommissionKind>,
    pub rule_source: Option<RuleSource>,
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

/// The balances after `entries`, starting from `opening`, per currency in
/// currency order.
fn close(opening: &[CurrencyBalance], entries: &[StatementLine]) -> Vec<CurrencyBalance> {
    let mut by_currency: std::collections::BTreeMap<&str, CurrencyBalance> = opening
        .iter()
        .map(|b| (b.currency.code(), b.clone()))
        .collect();
    for e in entries {
        let b = by_currency
            .entry(e.currency.code())
            .or_insert_with(|| CurrencyBalance {
                currency: e.currency,
                pending_minor: 0,
                approved_minor: 0,
                paid_minor: 0,
            });
        match e.bucket {
            Bucket::Pending => b.pending_minor += e.amount_minor,
            Bucket::Approved => b.approved_minor += e.amount_minor,
            Bucket::Paid => b.paid_minor += e.amount_minor,
        }
    }
    by_currency.into_values().collect()
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
               c.agreement_version as "agreement_version?", c.program_version as "program_version?",
               c.kind as "commission_kind?: CommissionKind",
               c.rule_source as "rule_source?: RuleSource", c.rule as "rule?: Json<AppliedRule>",
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
    let opening = sums(&mut tx, partner, Some(from)).await?;
    // The closing balance is the opening plus the period's entries (the same
    // snapshot): one scan of the partner's ledger instead of two.
    let closing = close(&opening, &entries);
    Ok(Some(Statement {
        partner_id: partner,
        from,
        to,
        opening,
        entries,
        closing,
    }))
}

/// A ledger entry that explains a change to a commission in words: a
/// refund, a rejection, an approval by hand.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub commission_id: CommissionId,
    pub kind: LedgerKind,
    pub amount_minor: i64,
    pub actor: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The explained entries of these commissions of `partner`, oldest first.
pub async fn explanations(
    db: &PgPool,
    partner: PartnerId,
    ids: &[CommissionId],
) -> Result<Vec<Explanation>, sqlx::Error> {
    let ids: Vec<i64> = ids.iter().map(|i| i.get()).collect();
    sqlx::query_as!(
        Explanation,
        r#"select commission_id as "commission_id!: CommissionId", kind as "kind: LedgerKind",
                  amount_minor, actor, reason, created_at
           from ledger_entries
           where partner_id = $1 and commission_id = any($2) and reason is not null
             and kind in ('adjusted', 'reversed', 'rejected', 'carried', 'approved')
             -- An approval is a pair of entries (out of pending, into approved): one says it.
             and not (kind = 'approved' and bucket = 'pending')
           order by id"#,
        partner.get(),
        &ids
    )
    .fetch_all(db)
    .await
}

/// A commission held for a person's review, with its conversion.
#[derive(Debug, Clone)]
pub struct Held {
    pub id: CommissionId,
    pub conversion_id: ConversionId,
    pub order_id: String,
    pub event: Event,
    pub conversion_amount_minor: i64,
    pub partner_id: PartnerId,
    pub partner_name: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub fraud_reasons: Vec<FraudSignal>,
    pub occurred_at: DateTime<Utc>,
}

/// The program's pending commissions held for review, oldest first.
pub async fn review_queue(
    db: &PgPool,
    program: ProgramId,
    limit: i64,
) -> Result<Vec<Held>, sqlx::Error> {
    sqlx::query_as!(
        Held,
        r#"select c.id as "id: CommissionId", c.conversion_id as "conversion_id: ConversionId",
                  v.order_id, v.event as "event: Event", v.amount_minor as conversion_amount_minor,
                  c.partner_id as "partner_id: PartnerId", p.name as partner_name, c.amount_minor,
                  c.currency as "currency: Currency",
                  c.fraud_reasons as "fraud_reasons: Vec<FraudSignal>", v.occurred_at
           from commissions c
           join conversions v on v.id = c.conversion_id
           join partners p on p.id = c.partner_id
           where c.program_id = $1 and c.status = 'pending' and c.review
           order by c.id
           limit $2"#,
        program.get(),
        limit
    )
    .fetch_all(db)
    .await
}

/// How many of the program's commissions wait for a person's review.
pub async fn review_count(db: &PgPool, program: ProgramId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from commissions
           where program_id = $1 and status = 'pending' and review"#,
        program.get()
    )
    .fetch_one(db)
    .await
}

/// A statement as CSV: one line per ledger entry, amounts in minor units
/// and in major units, the opening and closing balances as lines of their own.
pub fn statement_csv(s: &Statement) -> String {
    use crate::commissions::payouts::csv_field;
    let mut out = String::from(
        "line,created_at,kind,bucket,currency,amount_minor,amount,program_id,commission_id,order_id,event,agreement_id,agreement_version,payout_id,reason\n",
    );
    let balance = |out: &mut String, line: &str, at: DateTime<Utc>, b: &CurrencyBalance| {
        for (bucket, amount) in [
            ("pending", b.pending_minor),
            ("approved", b.approved_minor),
            ("paid", b.paid_minor),
        ] {
            out.push_str(&format!(
                "{line},{},,{bucket},{},{amount},{},,,,,,,,\n",
                at.to_rfc3339(),
                b.currency,
                b.currency.format_minor(amount)
            ));
        }
    };
    for b in &s.opening {
        balance(&mut out, "opening", s.from, b);
    }
    for e in &s.entries {
        out.push_str(&format!(
            "entry,{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            e.created_at.to_rfc3339(),
            e.kind,
            e.bucket,
            e.currency,
            e.amount_minor,
            e.currency.format_minor(e.amount_minor),
            e.program_id,
            e.commission_id.map(|c| c.to_string()).unwrap_or_default(),
            csv_field(e.order_id.as_deref().unwrap_or("")),
            e.event.map(|v| v.to_string()).unwrap_or_default(),
            e.agreement_id.map(|a| a.to_string()).unwrap_or_default(),
            e.agreement_version
                .map(|v| v.to_string())
                .unwrap_or_default(),
            e.payout_id.map(|p| p.to_string()).unwrap_or_default(),
            csv_field(e.reason.as_deref().unwrap_or("")),
        ));
    }
    for b in &s.closing {
        balance(&mut out, "closing", s.to, b);
    }
    out
}
