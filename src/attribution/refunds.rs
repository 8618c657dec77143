//! Refunds: an order's refund takes back its sale's commissions in
//! proportion to the amount refunded: load the sales and their commissions,
//! decide (pure), write the ledger entries and new amounts.
//!
//! After refunds totalling R of a sale of A, the sale's live commissions
//! together hold floor(T * (A - R) / A) of their original total T (see
//! `commissions::refunds`): rounded down, so a partial refund never leaves
//! the partners a cent the exact share would not give. The reduction is
//! split over them by what each still holds (largest remainder), so none
//! gives more than it has and the parts always sum to the reduction. A
//! commission a person rejected is not live: it holds nothing and gives
//! nothing back. A full refund reverses them all. A refund whose sale has
//! not arrived waits, and is applied when it does.

use super::decide::{Claimed, Outcome};
use crate::commissions::ledger::{self, Entry, Held};
use crate::commissions::refunds::remaining_total;
use crate::domain::allocate_weighted;
use crate::domain::{
    AgreementId, AttributionSource, CommissionId, CommissionStatus, ConversionId, ConversionReason,
    ConversionStatus, Currency, LinkId, PartnerId, ProgramId,
};
use crate::rollups::conversions::Delta;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::HashMap;

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub outcomes: Vec<Outcome>,
    /// (program, currency, amount reversed, commissions reversed).
    pub reversed: Vec<(ProgramId, Currency, i64, u64)>,
    /// Refund conversion id -> program, for metrics.
    pub programs: HashMap<ConversionId, ProgramId>,
    /// What the refunds take off the daily roll-ups.
    pub deltas: Vec<Delta>,
}

/// A refunded order's sale, locked.
#[derive(Debug, Clone)]
pub(crate) struct Sale {
    pub id: ConversionId,
    pub status: ConversionStatus,
    pub amount_minor: i64,
    pub refunded_minor: i64,
    pub agreement_id: Option<AgreementId>,
    pub agreement_version: Option<i32>,
    pub link_id: Option<LinkId>,
    pub attributed_via: Option<AttributionSource>,
    pub program_id: ProgramId,
    pub occurred_at: DateTime<Utc>,
}

/// What the database holds about a batch's refunds.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// (program, order) -> its sale.
    pub sale_of: HashMap<(ProgramId, String), ConversionId>,
    /// The sales this worker could lock; another worker holds the rest.
    pub sales: HashMap<ConversionId, Sale>,
    /// The commissions of attributed sales, locked.
    pub commissions: HashMap<ConversionId, Vec<Held>>,
}

/// What applying a batch's refunds changes.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub report: Report,
    pub entries: Vec<Entry>,
    /// Commissions whose amount or status changed: (id, amount, status).
    pub commissions: Vec<(CommissionId, i64, CommissionStatus)>,
    /// Sales whose refunded amount changed: (id, refunded so far).
    pub sales: Vec<(ConversionId, i64)>,
}

/// Applies a batch's refunds: load, decide, write.
pub(crate) async fn apply(
    tx: &mut PgConnection,
    refunds: &[Claimed],
    sales_in_batch: &[ConversionId],
) -> anyhow::Result<Report> {
    if refunds.is_empty() {
        return Ok(Report::default());
    }
    let loaded = load(tx, refunds).await?;
    let applied = decide(refunds, sales_in_batch, loaded);
    write(tx, &applied).await?;
    Ok(applied.report)
}

async fn load(tx: &mut PgConnection, refunds: &[Claimed]) -> Result<Loaded, sqlx::Error> {
    let programs: Vec<i64> = refunds.iter().map(|r| r.program_id.get()).collect();
    let orders: Vec<&str> = refunds.iter().map(|r| r.order_id.as_str()).collect();
    let sale_of: HashMap<(ProgramId, String), ConversionId> = sqlx::query!(
        r#"select s.id as "id: ConversionId", s.program_id as "program_id: ProgramId", s.order_id
           from conversions s
           join unnest($1::bigint[], $2::text[]) as q(program_id, order_id)
             on s.program_id = q.program_id and s.order_id = q.order_id
           where s.event = 'sale'"#,
        &programs,
        &orders as &[&str]
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| ((r.program_id, r.order_id), r.id))
    .collect();
    let sale_ids: Vec<i64> = sale_of.values().map(|id| id.get()).collect();
    // Another worker may hold a sale (attributing it, or refunding it): skip
    // those refunds this time rather than wait, so workers never deadlock.
    let sales: HashMap<ConversionId, Sale> = sqlx::query_as!(
        Sale,
        r#"select id as "id: ConversionId", status as "status: ConversionStatus", amount_minor,
                  refunded_minor, agreement_id as "agreement_id: AgreementId", agreement_version,
                  link_id as "link_id: LinkId", attributed_via as "attributed_via: AttributionSource",
                  program_id as "program_id: ProgramId", occurred_at
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
        .filter(|s| s.status == ConversionStatus::Attributed)
        .map(|s| s.id.get())
        .collect();
    let mut commissions: HashMap<ConversionId, Vec<Held>> = HashMap::new();
    for c in sqlx::query!(
        r#"select id as "id: CommissionId", conversion_id as "conversion_id: ConversionId",
                  program_id as "program_id: ProgramId", partner_id as "partner_id: PartnerId",
                  currency as "currency: Currency", status as "status: CommissionStatus",
                  amount_minor, original_minor
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
    Ok(Loaded {
        sale_of,
        sales,
        commissions,
    })
}

/// Decides each refund in order (several refunds of one sale add up).
pub(crate) fn decide(
    refunds: &[Claimed],
    sales_in_batch: &[ConversionId],
    mut loaded: Loaded,
) -> Applied {
    use ConversionReason as R;
    use ConversionStatus as S;
    let mut a = Applied::default();
    let mut touched_sales: Vec<ConversionId> = Vec::new();
    let mut changed: Vec<CommissionId> = Vec::new();
    for refund in refunds {
        a.report.programs.insert(refund.id, refund.program_id);
        let Some(sale_id) = loaded
            .sale_of
            .get(&(refund.program_id, refund.order_id.clone()))
        else {
            a.report
                .outcomes
                .push(Outcome::new(refund.id, S::Waiting, Some(R::SaleNotFound)));
            continue;
        };
        if sales_in_batch.contains(sale_id) {
            continue; // the sale is attributed in this batch; the refund follows in the next
        }
        let Some(sale) = loaded.sales.get_mut(sale_id) else {
            continue; // held by another worker: next time
        };
        if !sale.status.is_processed() {
            a.report.outcomes.push(Outcome::new(
                refund.id,
                S::Waiting,
                Some(R::SaleNotProcessed),
            ));
            continue;
        }
        let wanted = i128::from(sale.refunded_minor) + i128::from(refund.amount_minor);
        let capped = wanted > i128::from(sale.amount_minor);
        let refunded = wanted.min(i128::from(sale.amount_minor)) as i64;
        let mut outcome = Outcome {
            sale_id: Some(sale.id),
            agreement_id: sale.agreement_id,
            agreement_version: sale.agreement_version,
            link_id: sale.link_id,
            via: sale.attributed_via,
            ..Outcome::new(
                refund.id,
                S::Attributed,
                capped.then_some(R::RefundExceedsSale),
            )
        };
        let applied = refunded - sale.refunded_minor;
        sale.refunded_minor = refunded;
        touched_sales.push(sale.id);
        if sale.status != S::Attributed {
            outcome.status = S::Unattributed;
            outcome.reason = Some(R::SaleNotAttributed);
            a.report.outcomes.push(outcome);
            continue;
        }
        let delta = |partner: Option<PartnerId>, revenue: i64, commission: i64| Delta {
            program: sale.program_id,
            partner,
            link: sale.link_id,
            day: sale.occurred_at.date_naive(),
            conversions: 0,
            revenue_minor: -revenue,
            commission_minor: -commission,
        };
        let held = loaded.commissions.entry(sale.id).or_default();
        a.report.deltas.push(delta(None, applied, 0));
        for c in held.iter() {
            a.report.deltas.push(delta(Some(c.partner_id), applied, 0));
        }
        let reason = format!(
            "refund of {} ({} of {} refunded so far)",
            refund.amount_minor, refunded, sale.amount_minor
        );
        // Only live commissions share the refund: one a person rejected
        // holds nothing and gives nothing back.
        let live: Vec<&mut Held> = held
            .iter_mut()
            .filter(|c| c.status != CommissionStatus::Reversed)
            .collect();
        let original: i64 = live.iter().map(|c| c.original_minor).sum();
        let current: i64 = live.iter().map(|c| c.amount_minor).sum();
        let reduction = current - remaining_total(original, sale.amount_minor, refunded);
        if reduction > 0 {
            let weights: Vec<u64> = live.iter().map(|c| c.amount_minor.max(0) as u64).collect();
            let parts = allocate_weighted(reduction, &weights).unwrap_or_default();
            for (c, part) in live.into_iter().zip(parts) {
                let Some((entry, amount, status)) = ledger::reduce(c, part, refund.id, &reason)
                else {
                    continue;
                };
                a.report.deltas.push(delta(None, 0, part));
                a.report.deltas.push(delta(Some(c.partner_id), 0, part));
                let reversed = u64::from(status == CommissionStatus::Reversed);
                a.report
                    .reversed
                    .push((c.program_id, c.currency, part, reversed));
                c.amount_minor = amount;
                c.status = status;
                changed.push(c.id);
                a.entries.push(entry);
            }
        }
        a.report.outcomes.push(outcome);
    }
    changed.sort_unstable();
    changed.dedup();
    a.commissions = loaded
        .commissions
        .values()
        .flatten()
        .filter(|c| changed.binary_search(&c.id).is_ok())
        .map(|c| (c.id, c.amount_minor, c.status))
        .collect();
    a.commissions.sort_unstable_by_key(|c| c.0);
    touched_sales.sort_unstable();
    touched_sales.dedup();
    a.sales = touched_sales
        .iter()
        .map(|id| (*id, loaded.sales[id].refunded_minor))
        .collect();
    a
}

async fn write(tx: &mut PgConnection, a: &Applied) -> Result<(), sqlx::Error> {
    ledger::append(tx, &a.entries).await?;
    if !a.commissions.is_empty() {
        sqlx::query!(
            r#"update commissions c set amount_minor = u.amount, status = u.status, updated_at = now()
               from unnest($1::bigint[], $2::bigint[], $3::text[]) as u(id, amount, status)
               where c.id = u.id"#,
            &a.commissions.iter().map(|c| c.0.get()).collect::<Vec<_>>(),
            &a.commissions.iter().map(|c| c.1).collect::<Vec<_>>(),
            &a.commissions.iter().map(|c| c.2.as_str()).collect::<Vec<_>>() as &[&str],
        )
        .execute(&mut *tx)
        .await?;
    }
    if !a.sales.is_empty() {
        sqlx::query!(
            r#"update conversions c set refunded_minor = u.refunded
               from unnest($1::bigint[], $2::bigint[]) as u(id, refunded) where c.id = u.id"#,
            &a.sales.iter().map(|s| s.0.get()).collect::<Vec<_>>(),
            &a.sales.iter().map(|s| s.1).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Bucket, Event, LedgerKind};

    const PROGRAM: ProgramId = ProgramId::from_db(1);
    const SALE: ConversionId = ConversionId::from_db(10);

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn refund(id: i64, amount: i64) -> Claimed {
        Claimed {
            id: ConversionId::from_db(id),
            program_id: PROGRAM,
            event: Event::Refund,
            order_id: "o-1".into(),
            amount_minor: amount,
            currency: eur(),
            click_id: None,
            coupon: None,
            occurred_at: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            request_id: None,
        }
    }

    fn commission(
        id: i64,
        partner: i64,
        status: CommissionStatus,
        amount: i64,
        original: i64,
    ) -> Held {
        Held {
            id: CommissionId::from_db(id),
            program_id: PROGRAM,
            partner_id: PartnerId::from_db(partner),
            currency: eur(),
            status,
            amount_minor: amount,
            original_minor: original,
        }
    }

    /// A sale of 100.00 whose commissions are `held`.
    fn loaded(held: Vec<Held>) -> Loaded {
        Loaded {
            sale_of: [((PROGRAM, "o-1".to_owned()), SALE)].into(),
            sales: [(
                SALE,
                Sale {
                    id: SALE,
                    status: ConversionStatus::Attributed,
                    amount_minor: 10_000,
                    refunded_minor: 0,
                    agreement_id: Some(AgreementId::from_db(5)),
                    agreement_version: Some(1),
                    link_id: None,
                    attributed_via: Some(AttributionSource::Coupon),
                    program_id: PROGRAM,
                    occurred_at: DateTime::from_timestamp(1_794_000_000, 0).unwrap(),
                },
            )]
            .into(),
            commissions: [(SALE, held)].into(),
        }
    }

    #[test]
    fn a_half_refund_halves_each_live_commission_and_leaves_a_rejected_one_at_nothing() {
        // 10% of 100.00 split 50/50; partner 2's share was rejected by a person.
        let held = vec![
            commission(1, 1, CommissionStatus::Pending, 500, 500),
            commission(2, 2, CommissionStatus::Reversed, 0, 500),
        ];
        let a = decide(&[refund(20, 5_000)], &[], loaded(held));
        assert_eq!(
            a.commissions,
            vec![(CommissionId::from_db(1), 250, CommissionStatus::Pending)]
        );
        assert_eq!(a.entries.len(), 1);
        assert_eq!(
            (
                a.entries[0].bucket,
                a.entries[0].kind,
                a.entries[0].amount_minor
            ),
            (Bucket::Pending, LedgerKind::Adjusted, -250)
        );
        assert_eq!(a.sales, vec![(SALE, 5_000)]);
        assert_eq!(a.report.outcomes[0].status, ConversionStatus::Attributed);
    }

    #[test]
    fn two_refunds_in_one_batch_add_up_and_a_full_refund_reverses_everything() {
        let held = vec![
            commission(1, 1, CommissionStatus::Approved, 617, 617),
            commission(2, 2, CommissionStatus::Paid, 618, 618),
        ];
        let a = decide(&[refund(20, 4_000), refund(21, 7_000)], &[], loaded(held));
        assert_eq!(
            a.commissions,
            vec![
                (CommissionId::from_db(1), 0, CommissionStatus::Reversed),
                (CommissionId::from_db(2), 0, CommissionStatus::Reversed),
            ]
        );
        let taken: i64 = a.entries.iter().map(|e| e.amount_minor).sum();
        assert_eq!(taken, -1_235, "exactly what was booked comes back");
        let paid_back: Vec<LedgerKind> = a
            .entries
            .iter()
            .filter(|e| e.partner_id == PartnerId::from_db(2))
            .map(|e| e.kind)
            .collect();
        assert_eq!(paid_back, vec![LedgerKind::Carried, LedgerKind::Carried]);
        assert_eq!(a.sales, vec![(SALE, 10_000)]);
        assert_eq!(
            a.report.outcomes[1].reason,
            Some(ConversionReason::RefundExceedsSale)
        );
    }

    #[test]
    fn a_refund_without_its_sale_waits() {
        let mut l = loaded(vec![]);
        l.sale_of.clear();
        let a = decide(&[refund(20, 100)], &[], l);
        assert_eq!(
            (a.report.outcomes[0].status, a.report.outcomes[0].reason),
            (
                ConversionStatus::Waiting,
                Some(ConversionReason::SaleNotFound)
            )
        );
        let a = decide(&[refund(20, 100)], &[SALE], loaded(vec![]));
        assert!(
            a.report.outcomes.is_empty(),
            "the sale is processed in this batch first"
        );
    }
}
