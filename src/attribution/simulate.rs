//! The rule simulator: what an order would earn under a program's terms,
//! agreement by agreement, booking nothing. It loads what booking loads
//! (the program's terms versions, each agreement's terms in force, each
//! agreement's month so far, a subscription's first payment) with the same
//! queries, without locking or writing, and prices through `decide::earn`,
//! the function booking prices through; so a quote is what booking the
//! same order in the same month would book.

use super::decide::{self, Held, Membership, Order, ProgramTerms, Renewal, Terms};
use super::pricing::{self, MonthState};
use super::{load, months};
use crate::domain::{
    AgreementId, AppliedRule, CommissionKind, ConversionId, ConversionReason, ConversionStatus,
    Currency, EarningEvent, Item, PartnerId, ProgramId, RuleSource,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;

/// Most agreements one simulation quotes.
pub const MAX_QUOTES: i64 = 100;

/// An order to price, as the webhook would take it.
#[derive(Debug, Clone)]
pub struct Request {
    pub program: ProgramId,
    pub event: EarningEvent,
    pub amount_minor: i64,
    pub currency: Currency,
    pub items: Option<Vec<Item>>,
    pub subscription_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// Only this agreement.
    pub agreement: Option<AgreementId>,
    /// Only agreements whose terms include this partner (a partner asking).
    pub partner: Option<PartnerId>,
    /// A month to price in instead of the real one: (sales, revenue) so far.
    pub month_to_date: Option<(i64, i64)>,
    /// Price the order as a renewal of a subscription whose first payment
    /// (made now, under each quoted agreement) earned: "would a renewal
    /// earn?" without naming a real subscription. Ignored with
    /// `subscription_id`, which prices the real subscription's renewal.
    pub hypothetical_renewal: bool,
}

/// The month an order would be counted in, as it stood before the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MonthToDate {
    /// The calendar month (UTC), as its first day.
    pub month: NaiveDate,
    pub sales: i64,
    pub revenue_minor: i64,
    /// The highest tier step a sale of the month earned at.
    pub tier: i32,
}

/// One commission the order would book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuotedCommission {
    pub partner_id: PartnerId,
    pub kind: CommissionKind,
    pub share_bps: i32,
    /// This partner's part.
    pub amount_minor: i64,
    /// Every partner's parts together.
    pub total_minor: i64,
    /// The rule, tier, category lines, renewal, bonus or re-rating behind it.
    pub rule: AppliedRule,
    pub approve_after: DateTime<Utc>,
}

/// What the order would earn under one agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Quote {
    pub agreement_id: AgreementId,
    /// The agreement version in force at `occurred_at`.
    pub agreement_version: Option<i32>,
    /// Whose rule prices it, when one does.
    pub rule_source: Option<RuleSource>,
    /// Why it would earn nothing: `no_rule`, `agreement_inactive`,
    /// `renewal_not_paid`, `amount_overflow`, `partner_inactive` (no partner
    /// of the agreement is a member of the program).
    pub reason: Option<ConversionReason>,
    /// The agreement's month before this order, when its rule counts one
    /// (tiers or bonuses).
    pub month_to_date: Option<MonthToDate>,
    /// Every commission below together.
    pub total_minor: i64,
    pub commissions: Vec<QuotedCommission>,
}

/// The simulator's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Simulation {
    pub program_id: ProgramId,
    /// The program terms version in force at `occurred_at`.
    pub program_version: i32,
    pub currency: Currency,
    pub occurred_at: DateTime<Utc>,
    /// A renewal: quoted for its subscription's first payment's agreement only.
    pub renewal_of: Option<ConversionId>,
    pub quotes: Vec<Quote>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("no such program")]
    NoProgram,
    /// A renewal whose first payment earned nothing, or is still being attributed.
    #[error("{0}")]
    Subscription(ConversionReason),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for SimulateError {
    fn from(e: sqlx::Error) -> Self {
        SimulateError::Other(e.into())
    }
}

/// Loads what booking would load for the order, then quotes each agreement.
pub async fn simulate(
    db: &PgPool,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Simulation, SimulateError> {
    let mut conn = db.acquire().await?;
    let versions = load::program_versions(&mut conn, &[req.program])
        .await?
        .remove(&req.program)
        .ok_or(SimulateError::NoProgram)?;
    let program = decide::in_force(&versions, req.occurred_at)
        .ok_or(SimulateError::NoProgram)?
        .clone();
    // A renewal goes where its first payment went, and only there.
    let mut renewal = None;
    let mut agreements = Vec::new();
    if let Some(sub) = &req.subscription_id
        && req.event == EarningEvent::Sale
        && let Some(first) = load::first_payments(&mut conn, &[(req.program, sub.as_str())])
            .await?
            .remove(&(req.program, sub.clone()))
    {
        match (first.status, first.agreement_id) {
            (ConversionStatus::Attributed, Some(agreement)) => {
                agreements.push(agreement);
                renewal = Some(Renewal::of(sub, &first));
            }
            (ConversionStatus::Received, _) => {
                return Err(SimulateError::Subscription(
                    ConversionReason::SaleNotProcessed,
                ));
            }
            _ => {
                return Err(SimulateError::Subscription(
                    ConversionReason::SubscriptionNotAttributed,
                ));
            }
        }
    } else {
        if req.hypothetical_renewal
            && req.subscription_id.is_none()
            && req.event == EarningEvent::Sale
        {
            renewal = Some(Renewal {
                subscription_id: "simulated".to_owned(),
                first_id: ConversionId::from_db(0),
                first_occurred_at: req.occurred_at,
            });
        }
        agreements = sqlx::query_scalar!(
            r#"select a.id as "id: AgreementId" from agreements a
               where a.program_id = $1 and ($2::bigint is null or a.id = $2)
                 and ($3::bigint is null or exists (
                     select 1 from agreement_partners ap
                     where ap.agreement_id = a.id and ap.partner_id = $3))
               order by a.id limit $4"#,
            req.program.get(),
            req.agreement.map(AgreementId::get),
            req.partner.map(PartnerId::get),
            MAX_QUOTES
        )
        .fetch_all(&mut *conn)
        .await?;
    }
    let wanted: Vec<(AgreementId, DateTime<Utc>)> =
        agreements.iter().map(|a| (*a, req.occurred_at)).collect();
    let terms = load::terms_at(&mut conn, &wanted).await?;
    let month = pricing::month_of(req.occurred_at.date_naive());
    let counted: Vec<(ProgramId, AgreementId, NaiveDate)> = agreements
        .iter()
        .zip(&terms)
        .filter(|(_, t)| {
            t.as_ref()
                .is_some_and(|t| needs_month(t, &program, req.event))
        })
        .map(|(a, _)| (req.program, *a, month))
        .collect();
    let mut pairs: Vec<(i64, i64)> = terms
        .iter()
        .flatten()
        .flat_map(|t| t.shares.iter().map(|(p, _)| (req.program.get(), p.get())))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let members = load::members_of(&mut conn, pairs).await?;
    let months = match req.month_to_date {
        Some(_) => Default::default(),
        None => months::read(&mut conn, &counted).await?,
    };
    let order = |agreement_id| Order {
        conversion_id: ConversionId::from_db(0),
        program_id: req.program,
        agreement_id,
        event: req.event,
        amount_minor: req.amount_minor,
        currency: req.currency,
        items: req.items.as_deref(),
        occurred_at: req.occurred_at,
        renewal: renewal.as_ref(),
    };
    let mut quotes = Vec::with_capacity(agreements.len());
    for (agreement, terms) in agreements.iter().zip(&terms) {
        // A partner sees only agreements whose terms in force include it.
        if let (Some(partner), Some(t)) = (req.partner, terms)
            && !t.shares.iter().any(|(p, _)| *p == partner)
        {
            continue;
        }
        let Some(terms) = terms else { continue };
        let state = match req.month_to_date {
            Some((sales, revenue)) => hypothetical(terms, &program, req.event, sales, revenue),
            None => months
                .get(&(*agreement, month))
                .copied()
                .unwrap_or_default(),
        };
        quotes.push(quote(
            &order(*agreement),
            terms,
            &program,
            state,
            &members,
            now,
        ));
    }
    Ok(Simulation {
        program_id: req.program,
        program_version: program.version,
        currency: req.currency,
        occurred_at: req.occurred_at,
        // A hypothetical renewal has no first payment to name.
        renewal_of: renewal
            .filter(|_| req.subscription_id.is_some())
            .map(|r| r.first_id),
        quotes,
    })
}

fn needs_month(terms: &Terms, program: &ProgramTerms, event: EarningEvent) -> bool {
    terms
        .rules
        .rule(event)
        .or_else(|| program.rules.rule(event))
        .is_some_and(|r| r.needs_month())
}

/// A month of `sales` and `revenue` so far whose sales earned the step those
/// figures reach. What earlier sales earned is unknown, so nothing is
/// re-rated in it.
fn hypothetical(
    terms: &Terms,
    program: &ProgramTerms,
    event: EarningEvent,
    sales: i64,
    revenue: i64,
) -> MonthState {
    let tier = terms
        .rules
        .rule(event)
        .or_else(|| program.rules.rule(event))
        .and_then(|r| r.tiers.as_ref())
        .map_or(0, |t| {
            t.index_at(match t.by {
                crate::domain::TierBasis::Count => sales,
                crate::domain::TierBasis::Revenue => revenue,
            })
        });
    MonthState {
        sales,
        revenue_minor: revenue,
        tier: tier as i32,
        ..MonthState::default()
    }
}

/// What `order` would earn under one agreement's terms in force, in a month
/// at `month`: the commissions `decide` would book for it, held for no
/// review (fraud signals need the real conversion).
pub fn quote(
    order: &Order<'_>,
    terms: &Terms,
    program: &ProgramTerms,
    month: MonthState,
    members: &HashMap<(ProgramId, PartnerId), Membership>,
    now: DateTime<Utc>,
) -> Quote {
    let mut q = Quote {
        agreement_id: order.agreement_id,
        agreement_version: Some(terms.version),
        rule_source: None,
        reason: None,
        month_to_date: needs_month(terms, program, order.event).then(|| MonthToDate {
            month: pricing::month_of(order.occurred_at.date_naive()),
            sales: month.sales,
            revenue_minor: month.revenue_minor,
            tier: month.tier,
        }),
        total_minor: 0,
        commissions: Vec::new(),
    };
    if !terms.in_force_at(order.occurred_at) {
        q.reason = Some(ConversionReason::AgreementInactive);
        return q;
    }
    let held = Held {
        review: Vec::new(),
        approve_after: now + Duration::days(i64::from(program.hold_days)),
    };
    let earned = decide::earn(order, terms, program, month, &held).and_then(|earned| {
        decide::members_only(earned, order.program_id, terms, members, order.occurred_at)
            .ok_or(ConversionReason::PartnerInactive)
    });
    match earned {
        Err(reason) => q.reason = Some(reason),
        Ok(earned) => {
            q.rule_source = Some(earned.source);
            q.total_minor = earned.bookings.iter().map(|b| b.amount_minor).sum();
            q.commissions = earned
                .bookings
                .into_iter()
                .map(|b| QuotedCommission {
                    partner_id: b.partner_id,
                    kind: b.kind,
                    share_bps: b.share_bps,
                    amount_minor: b.amount_minor,
                    total_minor: b.total_minor,
                    rule: b.rule,
                    approve_after: b.approve_after,
                })
                .collect();
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::decide::{Claimed, Facts, attribute};
    use crate::config::FraudSettings;
    use crate::domain::{Category, CommissionRules, Event, allocate};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const PROGRAM: ProgramId = ProgramId::from_db(1);
    const AGREEMENT: AgreementId = AgreementId::from_db(7);

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    fn rate() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0i64..=10_000).prop_map(|b| json!({"percent_bps": b})),
            (0i64..=100_000).prop_map(|f| json!({"flat_minor": f})),
        ]
    }

    /// Any sale rule: a rate, and maybe tiers, categories `a` and `b`, bonuses.
    fn sale_rule() -> impl Strategy<Value = Value> {
        (
            rate(),
            proptest::option::of((
                any::<bool>(),
                any::<bool>(),
                proptest::collection::vec((1i64..40, rate()), 1..4),
            )),
            proptest::option::of((rate(), rate())),
            proptest::option::of(proptest::collection::vec((any::<bool>(), 1i64..60), 1..3)),
        )
            .prop_map(|(rate, tiers, categories, bonuses)| {
                let mut rule = rate.as_object().unwrap().clone();
                if let Some((by_count, rerate, steps)) = tiers {
                    let unit = if by_count { 1 } else { 20_000 };
                    let mut from = 0;
                    let steps: Vec<Value> = steps
                        .into_iter()
                        .map(|(gap, r)| {
                            from += gap;
                            let mut s = r.as_object().unwrap().clone();
                            s.insert("from".into(), json!(from * unit));
                            Value::Object(s)
                        })
                        .collect();
                    let by = if by_count { "count" } else { "revenue" };
                    rule.insert(
                        "tiers".into(),
                        json!({"by": by, "rerate": rerate, "steps": steps}),
                    );
                }
                if let Some((a, b)) = categories {
                    rule.insert("categories".into(), json!({"a": a, "b": b}));
                }
                if let Some(bonuses) = bonuses {
                    let mut seen = std::collections::HashSet::new();
                    let list: Vec<Value> = bonuses
                        .into_iter()
                        .filter(|b| seen.insert(*b))
                        .map(|(by_count, at)| {
                            if by_count {
                                json!({"by": "count", "at": at, "flat_minor": 1_000 + at})
                            } else {
                                json!({"by": "revenue", "at": at * 20_000, "flat_minor": 3_001})
                            }
                        })
                        .collect();
                    rule.insert("bonuses".into(), Value::Array(list));
                }
                json!({ "sale": rule })
            })
    }

    /// Any order: an amount, or lines of categories a, b, c (no rate) or none.
    fn order_lines() -> impl Strategy<Value = (i64, Option<Vec<Item>>)> {
        prop_oneof![
            (0i64..2_000_000).prop_map(|a| (a, None)),
            proptest::collection::vec((0usize..4, 0i64..500_000, 1i64..5), 1..6).prop_map(
                |lines| {
                    let items: Vec<Item> = lines
                        .into_iter()
                        .enumerate()
                        .map(|(i, (c, amount, quantity))| Item {
                            sku: format!("sku-{i}"),
                            category: ["a", "b", "c"].get(c).map(|c| Category::parse(c).unwrap()),
                            amount_minor: amount,
                            quantity,
                        })
                        .collect();
                    (items.iter().map(|i| i.amount_minor).sum(), Some(items))
                }
            ),
        ]
    }

    fn month_state() -> impl Strategy<Value = MonthState> {
        (
            0i64..80,
            0i64..2_000_000,
            0i32..3,
            0i64..80,
            0i64..2_000_000,
            0i64..300_000,
        )
            .prop_map(|(sales, revenue, tier, rated_sales, rated_base, rated)| {
                MonthState {
                    sales,
                    revenue_minor: revenue,
                    tier,
                    rated_sales,
                    rated_base_minor: rated_base,
                    rated_minor: rated,
                }
            })
    }

    fn shares() -> impl Strategy<Value = Vec<(PartnerId, u32)>> {
        proptest::collection::vec(1u32..100, 1..5).prop_map(|w| {
            let bps = allocate(10_000, &w).unwrap();
            bps.into_iter()
                .enumerate()
                .map(|(i, b)| (PartnerId::from_db(i as i64 + 11), b as u32))
                .collect()
        })
    }

    /// Every partner of `terms` an active member of the program.
    fn members(terms: &Terms) -> HashMap<(ProgramId, PartnerId), Membership> {
        terms
            .shares
            .iter()
            .map(|(p, _)| {
                (
                    (PROGRAM, *p),
                    (crate::domain::EnrollmentStatus::Active, None),
                )
            })
            .collect()
    }

    proptest! {
        #[test]
        fn what_booking_books_is_what_the_simulator_answers(
            rules in sale_rule(),
            (amount, items) in order_lines(),
            month in month_state(),
            shares in shares(),
        ) {
            let rules = CommissionRules::parse(&rules).unwrap();
            let program = ProgramTerms {
                version: 3,
                since: t0() - Duration::days(10),
                rules,
                window_days: 30,
                hold_days: 14,
            };
            let terms = Terms {
                version: 2,
                rules: CommissionRules::default(),
                shares,
                valid_from: None,
                valid_until: None,
            };
            let row = Claimed {
                id: ConversionId::from_db(5),
                program_id: PROGRAM,
                event: Event::Sale,
                order_id: "o-5".into(),
                amount_minor: amount,
                currency: Currency::parse("EUR").unwrap(),
                click_id: None,
                coupon: Some("AYU10".into()),
                occurred_at: t0(),
                request_id: None,
                items: items.clone().map(sqlx::types::Json),
                subscription_id: None,
            };
            // Booking: the worker's whole decision over the loaded facts.
            let mut facts = Facts::default();
            facts.programs.insert(PROGRAM, vec![program.clone()]);
            facts.coupons.insert((PROGRAM, "AYU10".into()), AGREEMENT);
            facts.terms.insert(row.id, terms.clone());
            facts.members = members(&terms);
            let month_start = pricing::month_of(t0().date_naive());
            facts.months.insert((AGREEMENT, month_start), month);
            let decided = attribute(std::slice::from_ref(&row), &facts, &FraudSettings::default(), t0());
            // The simulator, for the same order, terms and month.
            let order = Order {
                conversion_id: ConversionId::from_db(0),
                program_id: PROGRAM,
                agreement_id: AGREEMENT,
                event: EarningEvent::Sale,
                amount_minor: amount,
                currency: row.currency,
                items: items.as_deref(),
                occurred_at: t0(),
                renewal: None,
            };
            let q = quote(&order, &terms, &program, month, &facts.members, t0());
            let booked: i64 = decided.bookings.iter().map(|b| b.amount_minor).sum();
            prop_assert_eq!(booked, q.total_minor);
            let booked: Vec<(PartnerId, CommissionKind, i64, &AppliedRule)> = decided
                .bookings
                .iter()
                .map(|b| (b.partner_id, b.kind, b.amount_minor, &b.rule))
                .collect();
            let quoted: Vec<(PartnerId, CommissionKind, i64, &AppliedRule)> = q
                .commissions
                .iter()
                .map(|c| (c.partner_id, c.kind, c.amount_minor, &c.rule))
                .collect();
            prop_assert_eq!(booked, quoted);
            // Each commission's parts sum to its total, and the order's total
            // is the sum of its lines.
            for kind in [CommissionKind::Conversion, CommissionKind::Bonus, CommissionKind::TierAdjustment] {
                let of_kind: Vec<_> = q.commissions.iter().filter(|c| c.kind == kind).collect();
                let mut totals: Vec<(i64, i64)> = Vec::new();
                for c in &of_kind {
                    match totals.iter_mut().find(|(t, _)| *t == c.total_minor) {
                        Some(t) => t.1 += c.amount_minor,
                        None => totals.push((c.total_minor, c.amount_minor)),
                    }
                }
                if kind == CommissionKind::Conversion {
                    prop_assert!(totals.len() <= 1);
                }
                for (total, sum) in totals {
                    if kind != CommissionKind::Bonus {
                        prop_assert_eq!(total, sum);
                    }
                }
            }
            if let Some(c) = q.commissions.iter().find(|c| c.kind == CommissionKind::Conversion)
                && !c.rule.lines.is_empty()
            {
                prop_assert_eq!(
                    c.rule.lines.iter().map(|l| l.commission_minor).sum::<i64>(),
                    c.total_minor
                );
                prop_assert_eq!(c.rule.lines.iter().map(|l| l.amount_minor).sum::<i64>(), amount);
            }
        }
    }

    #[test]
    fn a_quote_names_why_an_agreement_would_earn_nothing() {
        let program = ProgramTerms {
            version: 1,
            since: t0() - Duration::days(10),
            rules: CommissionRules::parse(&json!({"lead": {"flat_minor": 200}})).unwrap(),
            window_days: 30,
            hold_days: 14,
        };
        let terms = Terms {
            version: 1,
            rules: CommissionRules::default(),
            shares: vec![(PartnerId::from_db(11), 10_000)],
            valid_from: None,
            valid_until: Some(t0() + Duration::days(1)),
        };
        let order = Order {
            conversion_id: ConversionId::from_db(0),
            program_id: PROGRAM,
            agreement_id: AGREEMENT,
            event: EarningEvent::Sale,
            amount_minor: 10_000,
            currency: Currency::parse("EUR").unwrap(),
            items: None,
            occurred_at: t0(),
            renewal: None,
        };
        let q = quote(
            &order,
            &terms,
            &program,
            MonthState::default(),
            &members(&terms),
            t0(),
        );
        assert_eq!(
            (q.reason, q.total_minor),
            (Some(ConversionReason::NoRule), 0)
        );
        let later = Order {
            occurred_at: t0() + Duration::days(2),
            ..order
        };
        let q = quote(
            &later,
            &terms,
            &program,
            MonthState::default(),
            &members(&terms),
            t0(),
        );
        assert_eq!(q.reason, Some(ConversionReason::AgreementInactive));
    }
}
