//! Refunds: an order's refund takes back its sale's commissions in
//! proportion to the amount refunded.
//!
//! After refunds totalling R of a sale of A, the sale's commissions together
//! hold floor(T * (A - R) / A) of their original total T: rounded down, so a
//! partial refund never leaves a partner a cent the exact share would not
//! give. The reduction is split over the commissions by what each still
//! holds (largest remainder), so no commission gives more than it has and
//! the parts always sum to the reduction. A full refund reverses them.
//! A refund whose sale has not arrived waits, and is applied when it does.

use super::{Claimed, Outcome};
use crate::commissions::ledger::{self, Entry, Held};
use crate::commissions::refunds::remaining_total;
use crate::domain::allocate_weighted;
use crate::rollups::conversions::Delta;
use sqlx::PgConnection;
use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct Report {
    pub outcomes: Vec<Outcome>,
    /// (program, currency, amount reversed, commissions reversed).
    pub reversed: Vec<(i64, String, i64, u64)>,
    /// Refund conversion id -> program, for metrics.
    pub programs: HashMap<i64, i64>,
    /// What the refunds take off the daily roll-ups.
    pub deltas: Vec<Delta>,
}

#[derive(Debug, Clone)]
struct Sale {
    id: i64,
    status: String,
    amount_minor: i64,
    refunded_minor: i64,
    agreement_id: Option<i64>,
    agreement_version: Option<i32>,
    link_id: Option<i64>,
    attributed_via: Option<String>,
    program_id: i64,
    occurred_at: chrono::DateTime<chrono::Utc>,
}

pub(crate) async fn apply(
    tx: &mut PgConnection,
    refunds: &[Claimed],
    sales_in_batch: &[i64],
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    if refunds.is_empty() {
        return Ok(report);
    }
    let programs: Vec<i64> = refunds.iter().map(|r| r.program_id).collect();
    let orders: Vec<String> = refunds.iter().map(|r| r.order_id.clone()).collect();
    let found = sqlx::query!(
        r#"select s.id, s.program_id, s.order_id from conversions s
           join unnest($1::bigint[], $2::text[]) as q(program_id, order_id)
             on s.program_id = q.program_id and s.order_id = q.order_id
           where s.event = 'sale'"#,
        &programs,
        &orders
    )
    .fetch_all(&mut *tx)
    .await?;
    let sale_of: HashMap<(i64, String), i64> = found
        .into_iter()
        .map(|r| ((r.program_id, r.order_id), r.id))
        .collect();
    let sale_ids: Vec<i64> = sale_of.values().copied().collect();
    // Another worker may hold a sale (attributing it, or refunding it): skip
    // those refunds this time rather than wait, so workers never deadlock.
    let mut sales: HashMap<i64, Sale> = sqlx::query_as!(
        Sale,
        r#"select id, status, amount_minor, refunded_minor, agreement_id, agreement_version, link_id,
                  attributed_via, program_id, occurred_at
           from conversions where id = any($1) order by id for update skip locked"#,
        &sale_ids
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|s| (s.id, s))
    .collect();
    let attributed: Vec<i64> = sales
        .values()
        .filter(|s| s.status == "attributed")
        .map(|s| s.id)
        .collect();
    let mut commissions: HashMap<i64, Vec<Held>> = HashMap::new();
    for c in sqlx::query!(
        r#"select id, conversion_id, program_id, partner_id, currency, status, amount_minor, original_minor
           from commissions where conversion_id = any($1) order by id for update"#,
        &attributed
    )
    .fetch_all(&mut *tx)
    .await?
    {
        commissions.entry(c.conversion_id).or_default().push(Held {
            id: c.id,
            program_id: c.program_id,
            partner_id: c.partner_id,
            currency: c.currency,
            status: c.status,
            amount_minor: c.amount_minor,
            original_minor: c.original_minor,
        });
    }

    let mut entries: Vec<Entry> = Vec::new();
    let mut touched_sales: Vec<i64> = Vec::new();
    for refund in refunds {
        report.programs.insert(refund.id, refund.program_id);
        let Some(sale_id) = sale_of.get(&(refund.program_id, refund.order_id.clone())) else {
            report
                .outcomes
                .push(Outcome::new(refund.id, "waiting", Some("sale_not_found")));
            continue;
        };
        if sales_in_batch.contains(sale_id) {
            continue; // the sale is attributed in this batch; the refund follows in the next
        }
        let Some(sale) = sales.get_mut(sale_id) else {
            continue; // held by another worker: next time
        };
        if sale.status == "received" || sale.status == "waiting" {
            report.outcomes.push(Outcome::new(
                refund.id,
                "waiting",
                Some("sale_not_processed"),
            ));
            continue;
        }
        let wanted = i128::from(sale.refunded_minor) + i128::from(refund.amount_minor);
        let capped = wanted > i128::from(sale.amount_minor);
        let refunded = wanted.min(i128::from(sale.amount_minor)) as i64;
        let mut outcome = Outcome {
            id: refund.id,
            sale_id: Some(sale.id),
            agreement_id: sale.agreement_id,
            agreement_version: sale.agreement_version,
            link_id: sale.link_id,
            via: match sale.attributed_via.as_deref() {
                Some("click") => Some("click"),
                Some("coupon") => Some("coupon"),
                _ => None,
            },
            reason: capped.then(|| "refund_exceeds_sale".to_owned()),
            ..Default::default()
        };
        let applied = refunded - sale.refunded_minor;
        sale.refunded_minor = refunded;
        touched_sales.push(sale.id);
        if sale.status != "attributed" {
            outcome.status = "unattributed";
            outcome.reason = Some("sale_not_attributed".into());
            report.outcomes.push(outcome);
            continue;
        }
        outcome.status = "attributed";
        let held = commissions.entry(sale.id).or_default();
        let delta = |partner: Option<i64>, revenue: i64, commission: i64| Delta {
            program: sale.program_id,
            partner,
            link: sale.link_id.unwrap_or(0),
            day: sale.occurred_at.date_naive(),
            conversions: 0,
            revenue_minor: -revenue,
            commission_minor: -commission,
        };
        report.deltas.push(delta(None, applied, 0));
        for c in held.iter() {
            report.deltas.push(delta(Some(c.partner_id), applied, 0));
        }
        let original: i64 = held.iter().map(|c| c.original_minor).sum();
        let current: i64 = held.iter().map(|c| c.amount_minor).sum();
        let reduction = current - remaining_total(original, sale.amount_minor, refunded);
        if reduction > 0 {
            let weights: Vec<u64> = held.iter().map(|c| c.amount_minor.max(0) as u64).collect();
            let parts = allocate_weighted(reduction, &weights)?;
            let reason = format!(
                "refund of {} ({} of {} refunded so far)",
                refund.amount_minor, refunded, sale.amount_minor
            );
            for (c, part) in held.iter_mut().zip(parts) {
                if let Some((entry, amount, status)) = ledger::reduce(c, part, refund.id, &reason) {
                    report.deltas.push(delta(None, 0, part));
                    report.deltas.push(delta(Some(c.partner_id), 0, part));
                    let reversed = u64::from(status == "reversed");
                    report
                        .reversed
                        .push((c.program_id, c.currency.clone(), part, reversed));
                    c.amount_minor = amount;
                    c.status = status.to_owned();
                    entries.push(entry);
                }
            }
        }
        report.outcomes.push(outcome);
    }

    ledger::append(tx, &entries).await?;
    let changed: Vec<&Held> = commissions
        .values()
        .flatten()
        .filter(|c| entries.iter().any(|e| e.commission_id == Some(c.id)))
        .collect();
    if !changed.is_empty() {
        sqlx::query!(
            r#"update commissions c set amount_minor = u.amount, status = u.status, updated_at = now()
               from unnest($1::bigint[], $2::bigint[], $3::text[]) as u(id, amount, status)
               where c.id = u.id"#,
            &changed.iter().map(|c| c.id).collect::<Vec<_>>(),
            &changed.iter().map(|c| c.amount_minor).collect::<Vec<_>>(),
            &changed.iter().map(|c| c.status.clone()).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    touched_sales.sort_unstable();
    touched_sales.dedup();
    if !touched_sales.is_empty() {
        let refunded: Vec<i64> = touched_sales
            .iter()
            .map(|id| sales[id].refunded_minor)
            .collect();
        sqlx::query!(
            r#"update conversions c set refunded_minor = u.refunded
               from unnest($1::bigint[], $2::bigint[]) as u(id, refunded) where c.id = u.id"#,
            &touched_sales,
            &refunded
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(report)
}
