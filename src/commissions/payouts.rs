//! Payouts: pay each partner its approved balance in a program, net of
//! debts carried from refunds of paid commissions.
//!
//! One payout runs per program at a time (an advisory lock), in a
//! repeatable-read transaction that locks the approved commissions it pays:
//! a commission paid by one payout is never in another, even with
//! concurrent requests, and a conflicting concurrent change retries.

use super::ledger::{self, Entry, Held};
use super::reasons::LedgerReason;
use crate::domain::{
    Bucket, CommissionId, CommissionStatus, Currency, LedgerKind, PartnerId, PayoutId, ProgramId,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;

/// What one partner is paid in one currency.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PayoutItem {
    pub partner_id: PartnerId,
    pub partner_name: String,
    pub currency: Currency,
    /// Approved commissions net of debts carried from refunds.
    pub amount_minor: i64,
    pub commission_count: i32,
}

/// A batch payment of approved commissions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Payout {
    pub id: PayoutId,
    pub program_id: ProgramId,
    pub min_amount_minor: i64,
    pub actor: String,
    pub created_at: DateTime<Utc>,
    pub items: Vec<PayoutItem>,
}

/// Counts a payout in the metrics (whoever ran it: the API or the portal).
pub fn record(metrics: &crate::metrics::Metrics, payout: &Payout) {
    let label = payout.program_id.to_string();
    metrics.payouts.with_label_values(&[&label]).inc();
    for item in &payout.items {
        metrics
            .payout_minor
            .with_label_values(&[&label, item.currency.code()])
            .inc_by(item.amount_minor.max(0) as u64);
        metrics
            .commissions
            .with_label_values(&[&label, "paid"])
            .inc_by(item.commission_count as u64);
    }
}

/// Pays every partner of `program` whose approved balance (per currency)
/// reaches `min_amount_minor`.
pub async fn create(
    db: &PgPool,
    program: ProgramId,
    min_amount_minor: i64,
    actor: &str,
) -> anyhow::Result<Payout> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_create(db, program, min_amount_minor, actor).await {
            Ok(id) => {
                return get(db, id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("payout {id} vanished after commit"));
            }
            // 40001: a concurrent change to the same rows; try on fresh data.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("40001") && attempt < 5 =>
            {
                tracing::info!(program = %program, attempt, "payout retried after a concurrent change");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn try_create(
    db: &PgPool,
    program: ProgramId,
    min_amount_minor: i64,
    actor: &str,
) -> Result<PayoutId, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("set transaction isolation level repeatable read")
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('mitra-payout:' || $1::bigint, 0))",
        program.get()
    )
    .execute(&mut *tx)
    .await?;
    let approved = sqlx::query_as!(
        Held,
        r#"select id as "id: CommissionId", program_id as "program_id: ProgramId",
                  partner_id as "partner_id: PartnerId", currency as "currency: Currency",
                  status as "status: CommissionStatus", amount_minor, original_minor
           from commissions where program_id = $1 and status = 'approved'
           order by id for update"#,
        program.get()
    )
    .fetch_all(&mut *tx)
    .await?;
    let balances = approved_balances(&mut tx, program).await?;
    let payout = sqlx::query_scalar!(
        r#"insert into payouts (program_id, min_amount_minor, actor) values ($1, $2, $3)
           returning id as "id: PayoutId""#,
        program.get(),
        min_amount_minor,
        actor
    )
    .fetch_one(&mut *tx)
    .await?;
    let plan = plan(
        program,
        payout,
        &approved,
        &balances,
        min_amount_minor,
        actor,
    );
    ledger::append(&mut tx, &plan.entries).await?;
    mark_paid(&mut tx, &plan.paid, payout).await?;
    sqlx::query!(
        r#"insert into payout_items (payout_id, partner_id, currency, amount_minor, commission_count)
           select $1, * from unnest($2::bigint[], $3::text[], $4::bigint[], $5::int[])"#,
        payout.get(),
        &plan.items.iter().map(|i| i.partner_id.get()).collect::<Vec<_>>(),
        &plan.items.iter().map(|i| i.currency.code()).collect::<Vec<_>>() as &[&str],
        &plan.items.iter().map(|i| i.amount_minor).collect::<Vec<_>>(),
        &plan.items.iter().map(|i| i.commission_count).collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(payout)
}

/// What a payout run now would pay, without paying anything: the same
/// plan `create` writes, from the same rows, read without locks.
pub async fn preview(
    db: &PgPool,
    program: ProgramId,
    min_amount_minor: i64,
) -> Result<Vec<PayoutItem>, sqlx::Error> {
    let mut conn = db.acquire().await?;
    let approved = sqlx::query_as!(
        Held,
        r#"select id as "id: CommissionId", program_id as "program_id: ProgramId",
                  partner_id as "partner_id: PartnerId", currency as "currency: Currency",
                  status as "status: CommissionStatus", amount_minor, original_minor
           from commissions where program_id = $1 and status = 'approved'
           order by id"#,
        program.get()
    )
    .fetch_all(&mut *conn)
    .await?;
    let balances = approved_balances(&mut conn, program).await?;
    let planned = plan(
        program,
        PayoutId::from_db(0),
        &approved,
        &balances,
        min_amount_minor,
        "preview",
    );
    let ids: Vec<i64> = planned.items.iter().map(|i| i.partner_id.get()).collect();
    let names: BTreeMap<i64, String> =
        sqlx::query!("select id, name from partners where id = any($1)", &ids)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
    Ok(planned
        .items
        .into_iter()
        .map(|i| PayoutItem {
            partner_name: names.get(&i.partner_id.get()).cloned().unwrap_or_default(),
            partner_id: i.partner_id,
            currency: i.currency,
            amount_minor: i.amount_minor,
            commission_count: i.commission_count,
        })
        .collect())
}

async fn approved_balances(
    conn: &mut PgConnection,
    program: ProgramId,
) -> Result<Vec<Approved>, sqlx::Error> {
    sqlx::query_as!(
        Approved,
        r#"select partner_id as "partner_id: PartnerId", currency as "currency: Currency",
                  sum(amount_minor)::bigint as "balance!"
           from ledger_entries where program_id = $1 and bucket = 'approved'
           group by partner_id, currency
           order by partner_id, currency"#,
        program.get()
    )
    .fetch_all(&mut *conn)
    .await
}

/// One payment a partner received.
#[derive(Debug, Clone)]
pub struct Received {
    pub payout_id: PayoutId,
    pub program_id: ProgramId,
    pub program_name: String,
    pub currency: Currency,
    pub amount_minor: i64,
    pub commission_count: i32,
    pub created_at: DateTime<Utc>,
}

/// What a partner was paid, newest first.
pub async fn received(
    db: &PgPool,
    partner: PartnerId,
    limit: i64,
) -> Result<Vec<Received>, sqlx::Error> {
    sqlx::query_as!(
        Received,
        r#"select p.id as "payout_id: PayoutId", p.program_id as "program_id: ProgramId",
                  g.name as program_name, i.currency as "currency: Currency", i.amount_minor,
                  i.commission_count, p.created_at
           from payout_items i
           join payouts p on p.id = i.payout_id
           join programs g on g.id = p.program_id
           where i.partner_id = $1
           order by p.id desc
           limit $2"#,
        partner.get(),
        limit
    )
    .fetch_all(db)
    .await
}

/// A partner's approved balance in one currency, from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approved {
    pub partner_id: PartnerId,
    pub currency: Currency,
    pub balance: i64,
}

/// One line of a payout, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedItem {
    pub partner_id: PartnerId,
    pub currency: Currency,
    pub amount_minor: i64,
    pub commission_count: i32,
}

/// What a payout writes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub items: Vec<PlannedItem>,
    pub entries: Vec<Entry>,
    /// Commissions it pays.
    pub paid: Vec<CommissionId>,
}

/// Decides a payout without I/O: every partner whose approved balance in
/// a currency reaches `min_amount_minor` is paid that balance; each of its
/// approved commissions moves to paid, and what the balance holds beyond
/// them (debts carried from refunds of earlier payouts) is settled by
/// netting. A balance below the threshold, or in debt, carries over.
pub fn plan(
    program: ProgramId,
    payout: PayoutId,
    approved: &[Held],
    balances: &[Approved],
    min_amount_minor: i64,
    actor: &str,
) -> Plan {
    let mut by_partner: BTreeMap<(PartnerId, Currency), Vec<&Held>> = BTreeMap::new();
    for c in approved {
        by_partner
            .entry((c.partner_id, c.currency))
            .or_default()
            .push(c);
    }
    let mut plan = Plan::default();
    for b in balances {
        if b.balance <= 0 || b.balance < min_amount_minor {
            continue;
        }
        let commissions = by_partner
            .remove(&(b.partner_id, b.currency))
            .unwrap_or_default();
        let mut moved = 0i64;
        for c in &commissions {
            plan.entries.extend(ledger::transfer(
                c,
                Bucket::Approved,
                Bucket::Paid,
                LedgerKind::Paid,
                actor,
                None,
            ));
            plan.paid.push(c.id);
            moved += c.amount_minor;
        }
        let rest = b.balance - moved;
        if rest != 0 {
            for (bucket, amount) in [(Bucket::Approved, -rest), (Bucket::Paid, rest)] {
                plan.entries.push(Entry {
                    commission_id: None,
                    program_id: program,
                    partner_id: b.partner_id,
                    currency: b.currency,
                    bucket,
                    amount_minor: amount,
                    kind: LedgerKind::Settled,
                    conversion_id: None,
                    payout_id: None,
                    actor: actor.to_owned(),
                    reason: Some(LedgerReason::CarriedNetted.to_string()),
                });
            }
        }
        plan.items.push(PlannedItem {
            partner_id: b.partner_id,
            currency: b.currency,
            amount_minor: b.balance,
            commission_count: commissions.len() as i32,
        });
    }
    for e in &mut plan.entries {
        e.payout_id = Some(payout);
    }
    plan
}

async fn mark_paid(
    tx: &mut PgConnection,
    ids: &[CommissionId],
    payout: PayoutId,
) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    sqlx::query!(
        "update commissions set status = 'paid', payout_id = $2, updated_at = now() where id = any($1)",
        &ids,
        payout.get()
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn get(db: &PgPool, id: PayoutId) -> Result<Option<Payout>, sqlx::Error> {
    let Some(p) = sqlx::query!(
        r#"select id as "id: PayoutId", program_id as "program_id: ProgramId", min_amount_minor, actor, created_at
           from payouts where id = $1"#,
        id.get()
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let items = sqlx::query_as!(
        PayoutItem,
        r#"select i.partner_id as "partner_id: PartnerId", p.name as partner_name,
                  i.currency as "currency: Currency",
                  i.amount_minor, i.commission_count
           from payout_items i join partners p on p.id = i.partner_id
           where i.payout_id = $1 order by i.partner_id, i.currency"#,
        id.get()
    )
    .fetch_all(db)
    .await?;
    Ok(Some(Payout {
        id: p.id,
        program_id: p.program_id,
        min_amount_minor: p.min_amount_minor,
        actor: p.actor,
        created_at: p.created_at,
        items,
    }))
}

/// A program's payouts, newest last, without their items.
pub async fn list(
    db: &PgPool,
    program: ProgramId,
    after: i64,
    limit: i64,
) -> Result<Vec<Payout>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id as "id: PayoutId", program_id as "program_id: ProgramId", min_amount_minor, actor, created_at
           from payouts where program_id = $1 and id > $2 order by id limit $3"#,
        program.get(),
        after,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|p| Payout {
            id: p.id,
            program_id: p.program_id,
            min_amount_minor: p.min_amount_minor,
            actor: p.actor,
            created_at: p.created_at,
            items: Vec::new(),
        })
        .collect())
}

/// The payout as CSV for a bank or payment provider: one line per partner
/// and currency, amounts in minor units and in major units.
pub fn to_csv(p: &Payout) -> String {
    let mut out = String::from(
        "payout_id,partner_id,partner_name,currency,amount_minor,amount,commission_count\n",
    );
    for i in &p.items {
        let amount = i.currency.format_minor(i.amount_minor);
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            p.id,
            i.partner_id,
            csv_field(&i.partner_name),
            i.currency,
            i.amount_minor,
            amount,
            i.commission_count
        ));
    }
    out
}

/// Quotes a CSV field when needed, and defuses spreadsheet formulas.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn approved(id: i64, partner: i64, amount: i64) -> Held {
        Held {
            id: CommissionId::from_db(id),
            program_id: ProgramId::from_db(1),
            partner_id: PartnerId::from_db(partner),
            currency: eur(),
            status: CommissionStatus::Approved,
            amount_minor: amount,
            original_minor: amount,
        }
    }

    #[test]
    fn balances_at_the_threshold_are_paid_and_debts_are_netted() {
        let commissions = [
            approved(1, 10, 700),
            approved(2, 10, 300),
            approved(3, 20, 400),
        ];
        let balances = [
            // Partner 10 owes 100 from a refund after an earlier payout.
            Approved {
                partner_id: PartnerId::from_db(10),
                currency: eur(),
                balance: 900,
            },
            Approved {
                partner_id: PartnerId::from_db(20),
                currency: eur(),
                balance: 400,
            },
        ];
        let plan = plan(
            ProgramId::from_db(1),
            PayoutId::from_db(5),
            &commissions,
            &balances,
            500,
            "admin",
        );
        assert_eq!(
            plan.items,
            vec![PlannedItem {
                partner_id: PartnerId::from_db(10),
                currency: eur(),
                amount_minor: 900,
                commission_count: 2
            }]
        );
        assert_eq!(
            plan.paid,
            vec![CommissionId::from_db(1), CommissionId::from_db(2)]
        );
        let net = |bucket| -> i64 {
            plan.entries
                .iter()
                .filter(|e| e.bucket == bucket)
                .map(|e| e.amount_minor)
                .sum()
        };
        assert_eq!((net(Bucket::Approved), net(Bucket::Paid)), (-900, 900));
        let settled: Vec<i64> = plan
            .entries
            .iter()
            .filter(|e| e.kind == LedgerKind::Settled)
            .map(|e| e.amount_minor)
            .collect();
        assert_eq!(settled, vec![100, -100]);
        assert!(
            plan.entries
                .iter()
                .all(|e| e.payout_id == Some(PayoutId::from_db(5)))
        );
    }
}
