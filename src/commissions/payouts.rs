//! Payouts: pay each partner its approved balance in a program, net of
//! debts carried from refunds of paid commissions.
//!
//! One payout runs per program at a time (an advisory lock), in a
//! repeatable-read transaction that locks the approved commissions it pays:
//! a commission paid by one payout is never in another, even with
//! concurrent requests, and a conflicting concurrent change retries.

use crate::commissions::ledger::{self, Entry, Held};
use crate::domain::{PartnerId, PayoutId, ProgramId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;

/// What one partner is paid in one currency.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PayoutItem {
    pub partner_id: PartnerId,
    pub partner_name: String,
    #[schema(value_type = crate::domain::Currency)]
    pub currency: String,
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
        r#"select id, program_id, partner_id, currency, status, amount_minor, original_minor
           from commissions where program_id = $1 and status = 'approved'
           order by id for update"#,
        program.get()
    )
    .fetch_all(&mut *tx)
    .await?;
    let balances = sqlx::query!(
        r#"select partner_id, currency, sum(amount_minor)::bigint as "balance!"
           from ledger_entries where program_id = $1 and bucket = 'approved'
           group by partner_id, currency
           order by partner_id, currency"#,
        program.get()
    )
    .fetch_all(&mut *tx)
    .await?;
    let payout = sqlx::query_scalar!(
        r#"insert into payouts (program_id, min_amount_minor, actor) values ($1, $2, $3)
           returning id as "id: PayoutId""#,
        program.get(),
        min_amount_minor,
        actor
    )
    .fetch_one(&mut *tx)
    .await?;

    let mut by_partner: BTreeMap<(i64, String), Vec<&Held>> = BTreeMap::new();
    for c in &approved {
        by_partner
            .entry((c.partner_id, c.currency.clone()))
            .or_default()
            .push(c);
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut paid: Vec<i64> = Vec::new();
    let mut items: Vec<(i64, String, i64, i32)> = Vec::new();
    for b in balances {
        if b.balance <= 0 || b.balance < min_amount_minor {
            continue; // below the threshold (or in debt): it carries over
        }
        let commissions = by_partner
            .remove(&(b.partner_id, b.currency.clone()))
            .unwrap_or_default();
        let mut moved = 0i64;
        for c in &commissions {
            entries.extend(ledger::transfer(c, "approved", "paid", "paid", actor, None));
            paid.push(c.id);
            moved += c.amount_minor;
        }
        // What the approved bucket holds beyond these commissions is debt
        // carried from refunds after earlier payouts: settled by netting.
        let rest = b.balance - moved;
        if rest != 0 {
            for (bucket, amount) in [("approved", -rest), ("paid", rest)] {
                entries.push(Entry {
                    commission_id: None,
                    program_id: program.get(),
                    partner_id: b.partner_id,
                    currency: b.currency.clone(),
                    bucket,
                    amount_minor: amount,
                    kind: "settled",
                    conversion_id: None,
                    payout_id: None,
                    actor: actor.to_owned(),
                    reason: Some("carried refunds netted against this payout".into()),
                });
            }
        }
        items.push((
            b.partner_id,
            b.currency,
            b.balance,
            commissions.len() as i32,
        ));
    }
    for e in &mut entries {
        e.payout_id = Some(payout.get());
    }
    ledger::append(&mut tx, &entries).await?;
    mark_paid(&mut tx, &paid, payout).await?;
    sqlx::query!(
        r#"insert into payout_items (payout_id, partner_id, currency, amount_minor, commission_count)
           select $1, * from unnest($2::bigint[], $3::text[], $4::bigint[], $5::int[])"#,
        payout.get(),
        &items.iter().map(|i| i.0).collect::<Vec<_>>(),
        &items.iter().map(|i| i.1.clone()).collect::<Vec<_>>(),
        &items.iter().map(|i| i.2).collect::<Vec<_>>(),
        &items.iter().map(|i| i.3).collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(payout)
}

async fn mark_paid(
    tx: &mut PgConnection,
    ids: &[i64],
    payout: PayoutId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update commissions set status = 'paid', payout_id = $2, updated_at = now() where id = any($1)",
        ids,
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
        r#"select i.partner_id as "partner_id: PartnerId", p.name as partner_name, i.currency,
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
        let amount = crate::domain::Currency::parse(&i.currency)
            .map(|c| c.format_minor(i.amount_minor))
            .unwrap_or_else(|_| i.amount_minor.to_string());
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
