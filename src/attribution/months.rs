//! The agreement-months: each agreement's sales counted toward tiers and
//! milestones per calendar month, and the rank each sale takes in its month.
//!
//! A sale's tier is its rank in the month, so no two sales may take the same
//! rank. `decide` reserves a batch's ranks in a short transaction of its
//! own: lock the batch's months (in key order, so workers never deadlock),
//! decide the batch against them, advance them, record in `month_ranks` the
//! state each newly counted sale found, commit. The worker then books the
//! batch in its main transaction while other workers reserve and book
//! theirs: a month is locked for the milliseconds of a reservation, not for
//! a whole booking, so one agreement's sales no longer book one batch after
//! another.
//!
//! The reservation commits without waiting for its WAL flush
//! (`synchronous_commit = off`). It matters only to the booking that uses
//! it, and that booking's commit comes later in the WAL and waits for its
//! flush, which makes the reservation durable too; a crash before then
//! loses both together. A worker that stops between the two leaves its
//! reservations behind: the next attempt reads them (`reserved`) and prices
//! those sales from them, so a sale keeps its rank and its month counts it
//! once. Booking deletes the batch's reservations (`forget`) in its own
//! transaction. Should a retry attribute a reserved sale elsewhere (its
//! agreement ended in between), the sale takes a rank in its new month and
//! its old month keeps counting it: a rank, once given, is not taken back.

use super::decide::{self, Claimed, Decided, Facts, Rank};
use super::pricing::{self, MonthState};
use crate::config::FraudSettings;
use crate::domain::{AgreementId, ConversionId, EarningEvent, Event, ProgramId};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

/// Decides a batch of sales and leads; when any sale prices under a rule
/// that counts its month, first reserves their ranks (see the module).
pub async fn decide(
    db: &PgPool,
    rows: &[Claimed],
    facts: &mut Facts,
    fraud: &FraudSettings,
    now: DateTime<Utc>,
) -> anyhow::Result<Decided> {
    let wanted = wanted(rows, facts);
    if wanted.is_empty() {
        return Ok(decide::attribute(rows, facts, fraud, now));
    }
    let mut tx = db.begin().await?;
    sqlx::query!("set local synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    facts.months = lock(&mut tx, &wanted).await?;
    let decided = decide::attribute(rows, facts, fraud, now);
    write(&mut tx, &decided.months).await?;
    record(&mut tx, &decided.ranks).await?;
    tx.commit().await?;
    Ok(decided)
}

/// The ranks earlier attempts reserved for these conversions.
pub async fn reserved(
    tx: &mut PgConnection,
    rows: &[Claimed],
) -> Result<HashMap<ConversionId, Rank>, sqlx::Error> {
    let ids: Vec<i64> = rows
        .iter()
        .filter(|r| r.event == Event::Sale)
        .map(|r| r.id.get())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let found = sqlx::query!(
        r#"select conversion_id as "conversion_id: ConversionId",
                  agreement_id as "agreement_id: AgreementId", month, sales, revenue_minor,
                  tier, rated_sales, rated_base_minor, rated_minor
           from month_ranks where conversion_id = any($1)"#,
        &ids
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(found
        .into_iter()
        .map(|r| {
            let row = MonthRow {
                agreement_id: r.agreement_id,
                month: r.month,
                sales: r.sales,
                revenue_minor: r.revenue_minor,
                tier: r.tier,
                rated_sales: r.rated_sales,
                rated_base_minor: r.rated_base_minor,
                rated_minor: r.rated_minor,
            };
            (r.conversion_id, row.entry())
        })
        .collect())
}

/// Deletes the reservations of conversions now booked (in the booking's
/// transaction).
pub async fn forget(
    tx: &mut PgConnection,
    facts: &Facts,
    decided: &Decided,
) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = facts
        .ranks
        .keys()
        .chain(decided.ranks.iter().map(|(id, _)| id))
        .map(|id| id.get())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "delete from month_ranks where conversion_id = any($1)",
        &ids
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records each newly counted sale's rank: the month as it stood before it.
async fn record(tx: &mut PgConnection, ranks: &[(ConversionId, Rank)]) -> Result<(), sqlx::Error> {
    if ranks.is_empty() {
        return Ok(());
    }
    let states = Columns::of(ranks.iter().map(|r| &r.1.1));
    sqlx::query!(
        r#"
        insert into month_ranks (conversion_id, agreement_id, month, sales, revenue_minor, tier,
                                 rated_sales, rated_base_minor, rated_minor)
        select * from unnest($1::bigint[], $2::bigint[], $3::date[], $4::bigint[], $5::bigint[],
                             $6::int[], $7::bigint[], $8::bigint[], $9::bigint[])
        on conflict (conversion_id) do update set
            agreement_id = excluded.agreement_id, month = excluded.month, sales = excluded.sales,
            revenue_minor = excluded.revenue_minor, tier = excluded.tier,
            rated_sales = excluded.rated_sales, rated_base_minor = excluded.rated_base_minor,
            rated_minor = excluded.rated_minor, reserved_at = now()
        "#,
        &ranks.iter().map(|r| r.0.get()).collect::<Vec<_>>(),
        &ranks.iter().map(|r| r.1.0.0.get()).collect::<Vec<_>>(),
        &ranks.iter().map(|r| r.1.0.1).collect::<Vec<_>>(),
        &states.sales,
        &states.revenue_minor,
        &states.tier,
        &states.rated_sales,
        &states.rated_base_minor,
        &states.rated_minor,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The (program, agreement, month) of each sale whose rule keeps a month
/// (tiers or bonuses, under the terms in force when it happened) and that
/// holds no rank in that month yet.
fn wanted(rows: &[Claimed], facts: &Facts) -> Vec<(ProgramId, AgreementId, NaiveDate)> {
    let mut wanted: Vec<(ProgramId, AgreementId, NaiveDate)> = rows
        .iter()
        .filter(|r| r.event == Event::Sale)
        .filter_map(|r| {
            let c = decide::candidate(r, facts).ok()?;
            let terms = facts.terms.get(&r.id)?;
            let program = facts.program_terms(r.program_id, r.occurred_at)?;
            let (rule, _) = terms.rules.rule_over(&program.rules, EarningEvent::Sale)?;
            let key = (
                c.agreement_id,
                pricing::month_of(r.occurred_at.date_naive()),
            );
            let reserved = facts.ranks.get(&r.id).is_some_and(|(k, _)| *k == key);
            (rule.needs_month() && !reserved).then_some((r.program_id, key.0, key.1))
        })
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// Locks the agreement-months the batch prices sales in, in key order (so
/// workers never deadlock), starting a missing one from the month's
/// attributed sales of the agreement that earned under a rule: a rule that
/// gains tiers mid-month counts the month's earlier sales (nothing from
/// before it is re-rated).
pub(super) async fn lock(
    tx: &mut PgConnection,
    wanted: &[(ProgramId, AgreementId, NaiveDate)],
) -> Result<HashMap<(AgreementId, NaiveDate), MonthState>, sqlx::Error> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let agreements: Vec<i64> = wanted.iter().map(|w| w.1.get()).collect();
    let months: Vec<NaiveDate> = wanted.iter().map(|w| w.2).collect();
    let mut found = select_months(tx, &agreements, &months).await?;
    if found.len() < wanted.len() {
        let missing: Vec<&(ProgramId, AgreementId, NaiveDate)> = wanted
            .iter()
            .filter(|w| !found.contains_key(&(w.1, w.2)))
            .collect();
        sqlx::query!(
            r#"
            insert into agreement_months (agreement_id, month, sales, revenue_minor)
            select q.agreement_id, q.month, x.sales, x.revenue
            from unnest($1::bigint[], $2::bigint[], $3::date[]) as q(program_id, agreement_id, month)
            cross join lateral (
                select count(*) as sales, coalesce(sum(c.amount_minor), 0)::bigint as revenue
                from conversions c
                where c.program_id = q.program_id and c.agreement_id = q.agreement_id
                  and c.event = 'sale' and c.status = 'attributed' and c.reason is null
                  and c.occurred_at >= q.month::timestamp at time zone 'UTC'
                  and c.occurred_at < (q.month + interval '1 month')::timestamp at time zone 'UTC'
            ) x
            on conflict do nothing
            "#,
            &missing.iter().map(|w| w.0.get()).collect::<Vec<_>>(),
            &missing.iter().map(|w| w.1.get()).collect::<Vec<_>>(),
            &missing.iter().map(|w| w.2).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
        found = select_months(tx, &agreements, &months).await?;
    }
    Ok(found)
}

async fn select_months(
    tx: &mut PgConnection,
    agreements: &[i64],
    months: &[NaiveDate],
) -> Result<HashMap<(AgreementId, NaiveDate), MonthState>, sqlx::Error> {
    let rows = sqlx::query_as!(
        MonthRow,
        r#"select m.agreement_id as "agreement_id: AgreementId", m.month, m.sales, m.revenue_minor,
                  m.tier, m.rated_sales, m.rated_base_minor, m.rated_minor
           from agreement_months m
           join unnest($1::bigint[], $2::date[]) as q(agreement_id, month)
             on m.agreement_id = q.agreement_id and m.month = q.month
           order by m.agreement_id, m.month
           for update of m"#,
        agreements,
        months
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(MonthRow::entry).collect())
}

/// Writes the months' new state (their rows are locked since `facts`).
pub(super) async fn write(
    tx: &mut PgConnection,
    months: &[((AgreementId, NaiveDate), MonthState)],
) -> Result<(), sqlx::Error> {
    if months.is_empty() {
        return Ok(());
    }
    let states = Columns::of(months.iter().map(|m| &m.1));
    sqlx::query!(
        r#"
        update agreement_months m set
            sales = u.sales, revenue_minor = u.revenue, tier = u.tier, rated_sales = u.rated_sales,
            rated_base_minor = u.rated_base, rated_minor = u.rated
        from unnest($1::bigint[], $2::date[], $3::bigint[], $4::bigint[], $5::int[], $6::bigint[],
                    $7::bigint[], $8::bigint[])
             as u(agreement_id, month, sales, revenue, tier, rated_sales, rated_base, rated)
        where m.agreement_id = u.agreement_id and m.month = u.month
        "#,
        &months.iter().map(|m| m.0.0.get()).collect::<Vec<_>>(),
        &months.iter().map(|m| m.0.1).collect::<Vec<_>>(),
        &states.sales,
        &states.revenue_minor,
        &states.tier,
        &states.rated_sales,
        &states.rated_base_minor,
        &states.rated_minor,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The agreement-months' state as it stands, neither locked nor written:
/// what the simulator prices against. A month without a row yet is counted
/// from its attributed sales, as `lock` would start it.
pub(crate) async fn read(
    tx: &mut PgConnection,
    wanted: &[(ProgramId, AgreementId, NaiveDate)],
) -> Result<HashMap<(AgreementId, NaiveDate), MonthState>, sqlx::Error> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query_as!(
        MonthRow,
        r#"
        select q.agreement_id as "agreement_id!: AgreementId", q.month as "month!",
               coalesce(m.sales, x.sales) as "sales!",
               coalesce(m.revenue_minor, x.revenue) as "revenue_minor!",
               coalesce(m.tier, 0) as "tier!", coalesce(m.rated_sales, 0) as "rated_sales!",
               coalesce(m.rated_base_minor, 0) as "rated_base_minor!",
               coalesce(m.rated_minor, 0) as "rated_minor!"
        from unnest($1::bigint[], $2::bigint[], $3::date[]) as q(program_id, agreement_id, month)
        left join agreement_months m on m.agreement_id = q.agreement_id and m.month = q.month
        cross join lateral (
            select count(*) as sales, coalesce(sum(c.amount_minor), 0)::bigint as revenue
            from conversions c
            where m.agreement_id is null
              and c.program_id = q.program_id and c.agreement_id = q.agreement_id
              and c.event = 'sale' and c.status = 'attributed' and c.reason is null
              and c.occurred_at >= q.month::timestamp at time zone 'UTC'
              and c.occurred_at < (q.month + interval '1 month')::timestamp at time zone 'UTC'
        ) x
        "#,
        &wanted.iter().map(|w| w.0.get()).collect::<Vec<_>>(),
        &wanted.iter().map(|w| w.1.get()).collect::<Vec<_>>(),
        &wanted.iter().map(|w| w.2).collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(MonthRow::entry).collect())
}

/// An agreement-month's row as `agreement_months` and `month_ranks` hold it.
struct MonthRow {
    agreement_id: AgreementId,
    month: NaiveDate,
    sales: i64,
    revenue_minor: i64,
    tier: i32,
    rated_sales: i64,
    rated_base_minor: i64,
    rated_minor: i64,
}

impl MonthRow {
    fn entry(self) -> ((AgreementId, NaiveDate), MonthState) {
        (
            (self.agreement_id, self.month),
            MonthState {
                sales: self.sales,
                revenue_minor: self.revenue_minor,
                tier: self.tier,
                rated_sales: self.rated_sales,
                rated_base_minor: self.rated_base_minor,
                rated_minor: self.rated_minor,
            },
        )
    }
}

/// Month states as the column arrays a set-wise write binds.
struct Columns {
    sales: Vec<i64>,
    revenue_minor: Vec<i64>,
    tier: Vec<i32>,
    rated_sales: Vec<i64>,
    rated_base_minor: Vec<i64>,
    rated_minor: Vec<i64>,
}

impl Columns {
    fn of<'a>(states: impl ExactSizeIterator<Item = &'a MonthState>) -> Self {
        let n = states.len();
        let mut c = Columns {
            sales: Vec::with_capacity(n),
            revenue_minor: Vec::with_capacity(n),
            tier: Vec::with_capacity(n),
            rated_sales: Vec::with_capacity(n),
            rated_base_minor: Vec::with_capacity(n),
            rated_minor: Vec::with_capacity(n),
        };
        for m in states {
            c.sales.push(m.sales);
            c.revenue_minor.push(m.revenue_minor);
            c.tier.push(m.tier);
            c.rated_sales.push(m.rated_sales);
            c.rated_base_minor.push(m.rated_base_minor);
            c.rated_minor.push(m.rated_minor);
        }
        c
    }
}
