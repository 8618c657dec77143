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
//!
//! A refund may name the sale's lines (`items`, by `sku`): then it takes
//! back from the part of the sale that earned those lines' rate only
//! (`commissions::refunds::remaining_by_part`), never more than a line's
//! amount; what it does not name, or names but the sale does not have,
//! is refunded from the whole order. Only the sale's own commissions are
//! reduced: bonuses and tier adjustments it helped reach stand.

use super::decide::{Claimed, Outcome};
use crate::commissions::ledger::{self, Entry, Held};
use crate::commissions::reasons::LedgerReason;
use crate::commissions::refunds::{Part, remaining_by_part};
use crate::domain::allocate_weighted;
use crate::domain::{
    AgreementId, AppliedLine, AppliedRule, AttributionSource, CommissionId, CommissionStatus,
    ConversionId, ConversionReason, ConversionStatus, Currency, Item, LinkId, PartnerId, ProgramId,
};
use crate::rollups::conversions::Delta;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use std::collections::BTreeMap;
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
    pub items: Option<Json<Vec<Item>>>,
    /// What refunds naming a line took back so far, by sku.
    pub refunded_items: Json<BTreeMap<String, i64>>,
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
    /// The parts of each attributed sale by rate, as its commissions record them.
    pub lines: HashMap<ConversionId, Vec<AppliedLine>>,
}

/// What applying a batch's refunds changes.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub report: Report,
    pub entries: Vec<Entry>,
    /// Commissions whose amount or status changed: (id, amount, status).
    pub commissions: Vec<(CommissionId, i64, CommissionStatus)>,
    /// Sales whose refunded amount changed: (id, refunded so far, by line).
    pub sales: Vec<(ConversionId, i64, BTreeMap<String, i64>)>,
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
                  program_id as "program_id: ProgramId", occurred_at,
                  items as "items: Json<Vec<Item>>",
                  refunded_items as "refunded_items: Json<BTreeMap<String, i64>>"
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
    let mut lines: HashMap<ConversionId, Vec<AppliedLine>> = HashMap::new();
    for c in sqlx::query!(
        r#"select id as "id: CommissionId", conversion_id as "conversion_id: ConversionId",
                  program_id as "program_id: ProgramId", partner_id as "partner_id: PartnerId",
                  currency as "currency: Currency", status as "status: CommissionStatus",
                  amount_minor, original_minor, rule as "rule: Json<AppliedRule>"
           from commissions where conversion_id = any($1) and kind = 'conversion'
           order by id for update"#,
        &attributed
    )
    .fetch_all(&mut *tx)
    .await?
    {
        lines
            .entry(c.conversion_id)
            .or_insert_with(|| c.rule.0.lines.to_vec());
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
        lines,
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
        let taken = take_back(sale, refund);
        let reason = if taken.capped {
            Some(R::RefundExceedsSale)
        } else if taken.unknown_line {
            Some(R::RefundItemUnknown)
        } else {
            None
        };
        let mut outcome = Outcome {
            sale_id: Some(sale.id),
            agreement_id: sale.agreement_id,
            agreement_version: sale.agreement_version,
            link_id: sale.link_id,
            via: sale.attributed_via,
            ..Outcome::new(refund.id, S::Attributed, reason)
        };
        let applied = taken.applied;
        let refunded = sale.refunded_minor;
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
        let reason = LedgerReason::Refund {
            amount_minor: refund.amount_minor,
            refunded_minor: refunded,
            sale_minor: sale.amount_minor,
        }
        .to_string();
        // Only live commissions share the refund: one a person rejected
        // holds nothing and gives nothing back.
        let live: Vec<&mut Held> = held
            .iter_mut()
            .filter(|c| c.status != CommissionStatus::Reversed)
            .collect();
        let original: i64 = live.iter().map(|c| c.original_minor).sum();
        let current: i64 = live.iter().map(|c| c.amount_minor).sum();
        let parts = parts_of(sale, loaded.lines.get(&sale.id).map(Vec::as_slice));
        let reduction = current - remaining_by_part(original, &parts, sale.amount_minor, refunded);
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
        .map(|id| {
            let sale = &loaded.sales[id];
            (*id, sale.refunded_minor, sale.refunded_items.0.clone())
        })
        .collect();
    a
}

/// What one refund took back of its sale.
struct Taken {
    applied: i64,
    /// It asked for more than was left of a line or of the order.
    capped: bool,
    /// It named a line the sale does not have (refunded from the whole order).
    unknown_line: bool,
}

/// Takes a refund off its sale: the lines it names from those lines (up to
/// what is left of each), the rest from the order; never beyond the sale.
fn take_back(sale: &mut Sale, refund: &Claimed) -> Taken {
    let mut left = sale.amount_minor - sale.refunded_minor;
    let mut t = Taken {
        applied: 0,
        capped: false,
        unknown_line: false,
    };
    let mut unnamed = refund.amount_minor;
    for line in refund.lines().unwrap_or_default() {
        let item = sale
            .items
            .as_ref()
            .and_then(|items| items.0.iter().find(|i| i.sku == line.sku));
        let Some(item) = item else {
            t.unknown_line = true;
            continue; // stays in the unnamed rest
        };
        unnamed -= line.amount_minor;
        let done = sale.refunded_items.0.entry(line.sku.clone()).or_insert(0);
        let take = line.amount_minor.min(item.amount_minor - *done).min(left);
        t.capped |= take < line.amount_minor;
        *done += take;
        left -= take;
        t.applied += take;
    }
    let take = unnamed.min(left);
    t.capped |= take < unnamed;
    t.applied += take;
    sale.refunded_minor += t.applied;
    t
}

/// The parts of a sale by rate, with what refunds naming their lines took
/// back: a line belongs to its category's part when its category had a rate
/// of its own, else to the default part.
fn parts_of(sale: &Sale, lines: Option<&[AppliedLine]>) -> Vec<Part> {
    let lines = lines.unwrap_or_default();
    let mut parts: Vec<Part> = lines
        .iter()
        .map(|l| Part {
            amount_minor: l.amount_minor,
            commission_minor: l.commission_minor,
            refunded_minor: 0,
        })
        .collect();
    for item in sale.items.as_ref().map_or(&[][..], |i| i.0.as_slice()) {
        let done = sale.refunded_items.0.get(&item.sku).copied().unwrap_or(0);
        let own = lines
            .iter()
            .position(|l| l.category.is_some() && l.category == item.category);
        let part = own.or_else(|| lines.iter().position(|l| l.category.is_none()));
        if let Some(i) = part {
            parts[i].refunded_minor += done;
        }
    }
    parts
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
            r#"update conversions c set refunded_minor = u.refunded, refunded_items = u.by_line
               from unnest($1::bigint[], $2::bigint[], $3::jsonb[]) as u(id, refunded, by_line)
               where c.id = u.id"#,
            &a.sales.iter().map(|s| s.0.get()).collect::<Vec<_>>(),
            &a.sales.iter().map(|s| s.1).collect::<Vec<_>>(),
            &a.sales.iter().map(|s| Json(&s.2)).collect::<Vec<_>>()
                as &[Json<&BTreeMap<String, i64>>],
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
            items: None,
            subscription_id: None,
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
                    items: None,
                    refunded_items: Json(BTreeMap::new()),
                },
            )]
            .into(),
            commissions: [(SALE, held)].into(),
            lines: HashMap::new(),
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
        assert_eq!(a.sales, vec![(SALE, 5_000, BTreeMap::new())]);
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
        assert_eq!(a.sales, vec![(SALE, 10_000, BTreeMap::new())]);
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

    #[test]
    fn a_refund_naming_lines_takes_back_from_their_part_and_never_twice() {
        use crate::domain::{Category, Rule};
        let item = |sku: &str, category: &str, amount| Item {
            sku: sku.into(),
            category: Some(Category::parse(category).unwrap()),
            amount_minor: amount,
            quantity: 1,
        };
        let line = |category: &str, amount, commission| AppliedLine {
            category: Some(Category::parse(category).unwrap()),
            amount_minor: amount,
            quantity: 1,
            rate: Rule::FlatMinor(0),
            commission_minor: commission,
        };
        // Books 60.00 earned 3.00, toys 40.00 earned 8.00.
        let mut l = loaded(vec![commission(
            1,
            1,
            CommissionStatus::Pending,
            1_100,
            1_100,
        )]);
        let sale = l.sales.get_mut(&SALE).unwrap();
        sale.items = Some(Json(vec![
            item("b1", "books", 6_000),
            item("t1", "toys", 4_000),
        ]));
        l.lines.insert(
            SALE,
            vec![line("books", 6_000, 300), line("toys", 4_000, 800)],
        );
        let named = |id, sku: &str, amount| Claimed {
            items: Some(Json(vec![Item {
                sku: sku.into(),
                category: None,
                amount_minor: amount,
                quantity: 1,
            }])),
            ..refund(id, amount)
        };
        let a = decide(
            &[
                named(20, "t1", 4_000),
                named(21, "t1", 100),
                named(22, "zz", 1_000),
            ],
            &[],
            l,
        );
        let taken: Vec<i64> = a.entries.iter().map(|e| e.amount_minor).collect();
        // The toys give back their 8.00; toys again gives nothing (capped);
        // an unknown line refunds 10.00 of the 60.00 left: 3.00 * 50/60 = 2.50.
        assert_eq!(taken, vec![-800, -50]);
        let reasons: Vec<Option<ConversionReason>> =
            a.report.outcomes.iter().map(|o| o.reason).collect();
        assert_eq!(
            reasons,
            vec![
                None,
                Some(ConversionReason::RefundExceedsSale),
                Some(ConversionReason::RefundItemUnknown)
            ]
        );
        assert_eq!(
            a.sales,
            vec![(SALE, 5_000, BTreeMap::from([("t1".to_owned(), 4_000)]))]
        );
        assert_eq!(
            a.commissions,
            vec![(CommissionId::from_db(1), 250, CommissionStatus::Pending)]
        );
    }
}
