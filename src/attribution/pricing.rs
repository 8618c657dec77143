//! Pricing, without I/O: what one order earns under one event rule, given
//! the agreement's month so far. `decide::earn` prices every sale and lead
//! through here, for booking and for the simulator alike.
//!
//! The order of precedence inside a rule (the agreement-over-program choice
//! is made before, in `decide`):
//!
//! 1. The order's amount is grouped by rate: the lines of each category the
//!    rule names earn that category's rate; everything else (lines of other
//!    categories, lines without one, an order without lines) is the default
//!    part.
//! 2. The default rate is the tier in force: the step reached by the
//!    month's count or revenue with this sale, or the base rate below the
//!    first step. Category rates are not tiered.
//! 3. Each part earns its rate: a percentage of the part, rounded half away
//!    from zero once per part; a flat category rate per unit; a flat default
//!    rate once per order. The total is the sum of the parts.
//! 4. On top: a bonus for each milestone this sale reaches, and, when the
//!    rule re-rates and this sale reached a higher step, the month's earlier
//!    default parts raised to the new rate (never lowered).

use crate::domain::{
    AppliedBonus, AppliedLine, AppliedRenewal, AppliedRerate, AppliedRule, AppliedTier, Category,
    EarningEvent, EventRule, Item, MoneyError, Rule, TierBasis, apply_rate,
};
use chrono::{Datelike, NaiveDate};
use std::sync::Arc;

/// An agreement's month so far: what its counted sales add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonthState {
    pub sales: i64,
    pub revenue_minor: i64,
    /// The highest tier step a sale of the month earned at.
    pub tier: i32,
    /// Sales with a default-rated part, that part's amount, and what it
    /// earned (re-rating adjustments included).
    pub rated_sales: i64,
    pub rated_base_minor: i64,
    pub rated_minor: i64,
}

/// The first day of the calendar month (UTC) a day falls in.
pub fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("every month has a first day")
}

/// What an order earns, before the split among partners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub total_minor: i64,
    pub applied: AppliedRule,
    /// Milestones this sale reached: (index in the rule, amount, record).
    pub bonuses: Vec<(usize, i64, AppliedRule)>,
    /// The month's earlier sales raised to the step reached: (step, amount, record).
    pub rerate: Option<(u32, i64, AppliedRule)>,
    /// The month with this sale counted, when the rule keeps one.
    pub month_after: Option<MonthState>,
}

/// Prices an order of `amount_minor` (with its lines, if sent) under
/// `rule`, in `month` with the month's state so far. `month` matters only
/// for rules with tiers or bonuses.
pub fn price(
    event: EarningEvent,
    rule: &EventRule,
    amount_minor: i64,
    items: Option<&[Item]>,
    month: (NaiveDate, MonthState),
    renewal: Option<AppliedRenewal>,
) -> Result<Priced, MoneyError> {
    let (month_start, before) = month;
    let counted = rule.needs_month();
    let sales = before.sales.checked_add(1).ok_or(MoneyError::Overflow)?;
    let revenue = before
        .revenue_minor
        .checked_add(amount_minor)
        .ok_or(MoneyError::Overflow)?;
    let position = |by: TierBasis| match by {
        TierBasis::Count => sales,
        TierBasis::Revenue => revenue,
    };
    let step = rule
        .tiers
        .as_ref()
        .map_or(0, |t| t.index_at(position(t.by)));
    let default_rate = rule.rate_at(step);

    // Group the amount by rate: the default part first, then each category
    // the rule names, in the order the lines name them. Orders have few
    // categories, so a list beats a map.
    let mut parts: Vec<(Option<&Category>, i64, i64)> = Vec::with_capacity(4);
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                let key = item
                    .category
                    .as_ref()
                    .filter(|c| rule.categories.contains_key(*c));
                let at = match parts.iter().position(|p| p.0 == key) {
                    Some(at) => at,
                    None => {
                        parts.push((key, 0, 0));
                        parts.len() - 1
                    }
                };
                let part = &mut parts[at];
                part.1 = part
                    .1
                    .checked_add(item.amount_minor)
                    .ok_or(MoneyError::Overflow)?;
                part.2 = part
                    .2
                    .checked_add(item.quantity)
                    .ok_or(MoneyError::Overflow)?;
            }
            // The default part first, then categories by name: one order
            // records its lines the same way whatever order they came in.
            parts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        _ => parts.push((None, amount_minor, 1)),
    }
    let record = items.is_some() || !rule.categories.is_empty();
    let mut lines = Vec::with_capacity(if record { parts.len() } else { 0 });
    let mut total: i64 = 0;
    let mut default_part: Option<(i64, i64)> = None;
    for (category, amount, quantity) in parts {
        let rate = category.map_or(default_rate, |c| rule.categories[c]);
        let commission = match (category, rate) {
            (_, Rule::PercentBps(bps)) => apply_rate(amount, bps)?,
            (Some(_), Rule::FlatMinor(flat)) => {
                flat.checked_mul(quantity).ok_or(MoneyError::Overflow)?
            }
            (None, Rule::FlatMinor(flat)) => flat,
        };
        if category.is_none() {
            default_part = Some((amount, commission));
        }
        total = total.checked_add(commission).ok_or(MoneyError::Overflow)?;
        if record {
            lines.push(AppliedLine {
                category: category.cloned(),
                amount_minor: amount,
                quantity,
                rate,
                commission_minor: commission,
            });
        }
    }
    let applied = AppliedRule {
        event,
        rule: default_rate,
        tier: rule.tiers.as_ref().map(|t| AppliedTier {
            by: t.by,
            step: step as u32,
            from: step.checked_sub(1).map(|i| t.steps[i].from),
            month: month_start,
            month_sales: sales,
            month_revenue_minor: revenue,
            rerate: t.rerate,
        }),
        lines: lines.into(),
        renewal: renewal.map(Box::new),
        bonus: None,
        rerated: None,
    };
    if !counted {
        return Ok(Priced {
            total_minor: total,
            applied,
            bonuses: Vec::new(),
            rerate: None,
            month_after: None,
        });
    }

    // Re-rating: the step reached is above any the month earned at before.
    let mut rated_minor = before.rated_minor;
    let mut rerate = None;
    if let Some(t) = &rule.tiers
        && t.rerate
        && step as i32 > before.tier
    {
        let rerated = match default_rate {
            Rule::PercentBps(bps) => apply_rate(before.rated_base_minor, bps)?,
            Rule::FlatMinor(flat) => flat
                .checked_mul(before.rated_sales)
                .ok_or(MoneyError::Overflow)?,
        };
        let adjustment = rerated - before.rated_minor;
        if adjustment > 0 {
            rated_minor = rerated;
            let record = AppliedRule {
                rerated: Some(Box::new(AppliedRerate {
                    month: month_start,
                    step: step as u32,
                    sales: before.rated_sales,
                    base_minor: before.rated_base_minor,
                    booked_minor: before.rated_minor,
                    rerated_minor: rerated,
                })),
                lines: Arc::from([]),
                renewal: None,
                ..applied.clone()
            };
            rerate = Some((step as u32, adjustment, record));
        }
    }
    let bonuses = rule
        .bonuses
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            let was = match b.by {
                TierBasis::Count => before.sales,
                TierBasis::Revenue => before.revenue_minor,
            };
            was < b.at && b.at <= position(b.by)
        })
        .map(|(i, b)| {
            let record = AppliedRule {
                rule: Rule::FlatMinor(b.flat_minor),
                tier: None,
                lines: Arc::from([]),
                renewal: None,
                bonus: Some(Box::new(AppliedBonus {
                    by: b.by,
                    at: b.at,
                    month: month_start,
                    month_sales: sales,
                    month_revenue_minor: revenue,
                })),
                rerated: None,
                event,
            };
            (i, b.flat_minor, record)
        })
        .collect();
    let (default_amount, default_commission) = default_part.unwrap_or((0, 0));
    let month_after = MonthState {
        sales,
        revenue_minor: revenue,
        tier: before.tier.max(step as i32),
        rated_sales: before.rated_sales + i64::from(default_part.is_some()),
        rated_base_minor: before
            .rated_base_minor
            .checked_add(default_amount)
            .ok_or(MoneyError::Overflow)?,
        rated_minor: rated_minor
            .checked_add(default_commission)
            .ok_or(MoneyError::Overflow)?,
    };
    Ok(Priced {
        total_minor: total,
        applied,
        bonuses,
        rerate,
        month_after: Some(month_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CommissionRules;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> EventRule {
        CommissionRules::parse(&json!({ "sale": v }))
            .unwrap()
            .rule(EarningEvent::Sale)
            .unwrap()
            .clone()
    }

    fn item(sku: &str, category: Option<&str>, amount: i64, quantity: i64) -> Item {
        Item {
            sku: sku.into(),
            category: category.map(|c| Category::parse(c).unwrap()),
            amount_minor: amount,
            quantity,
        }
    }

    fn december() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    }

    fn month(sales: i64, revenue: i64) -> (NaiveDate, MonthState) {
        (
            december(),
            MonthState {
                sales,
                revenue_minor: revenue,
                ..MonthState::default()
            },
        )
    }

    #[test]
    fn a_plain_rate_prices_as_it_always_did() {
        let p = price(
            EarningEvent::Sale,
            &rule(json!({"percent_bps": 1000})),
            12_345,
            None,
            month(0, 0),
            None,
        )
        .unwrap();
        assert_eq!(p.total_minor, 1_235);
        assert_eq!(
            serde_json::to_value(&p.applied).unwrap(),
            json!({"event": "sale", "rule": {"percent_bps": 1000}})
        );
        assert_eq!(p.month_after, None, "no tiers, no bonuses: nothing counted");
    }

    #[test]
    fn category_rates_beat_the_default_and_flat_category_rates_pay_per_unit() {
        let r = rule(json!({"percent_bps": 1000, "categories": {
            "shoes": {"percent_bps": 500}, "books": {"flat_minor": 100}
        }}));
        let lines = [
            item("s1", Some("Shoes"), 4_001, 1),
            item("s2", Some("shoes"), 2_000, 2),
            item("b1", Some("books"), 1_000, 3),
            item("t1", Some("toys"), 2_999, 1),
            item("x1", None, 1_000, 1),
        ];
        let p = price(
            EarningEvent::Sale,
            &r,
            11_000,
            Some(&lines),
            month(0, 0),
            None,
        )
        .unwrap();
        // Default part 3,999 at 10% = 399.9 -> 400; shoes 6,001 at 5% = 300.05
        // -> 300; books 3 units at 1.00 = 300.
        let got: Vec<(Option<&str>, i64, i64)> = p
            .applied
            .lines
            .iter()
            .map(|l| {
                (
                    l.category.as_ref().map(Category::as_str),
                    l.amount_minor,
                    l.commission_minor,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (None, 3_999, 400),
                (Some("books"), 1_000, 300),
                (Some("shoes"), 6_001, 300)
            ]
        );
        assert_eq!(p.total_minor, 1_000);
    }

    #[test]
    fn without_lines_the_whole_amount_earns_the_default_and_a_flat_default_pays_once() {
        let r = rule(json!({"flat_minor": 500, "categories": {"books": {"percent_bps": 100}}}));
        let p = price(EarningEvent::Sale, &r, 9_000, None, month(0, 0), None).unwrap();
        assert_eq!(p.total_minor, 500);
        assert_eq!(p.applied.lines.len(), 1);
        let lines = [item("a", None, 4_000, 2), item("b", Some("toys"), 5_000, 3)];
        let p = price(
            EarningEvent::Sale,
            &r,
            9_000,
            Some(&lines),
            month(0, 0),
            None,
        )
        .unwrap();
        assert_eq!(
            p.total_minor, 500,
            "one flat default per order, not per line"
        );
    }

    #[test]
    fn the_tier_is_the_step_reached_with_this_sale() {
        let r = rule(
            json!({"percent_bps": 1000, "tiers": {"by": "count", "steps": [
                {"from": 21, "percent_bps": 1200}, {"from": 51, "percent_bps": 1500}
            ]}}),
        );
        let at = |sales_before| {
            let p = price(
                EarningEvent::Sale,
                &r,
                10_000,
                None,
                month(sales_before, 0),
                None,
            )
            .unwrap();
            (p.total_minor, p.applied.tier.unwrap().step)
        };
        assert_eq!(at(0), (1_000, 0));
        assert_eq!(at(19), (1_000, 0));
        assert_eq!(at(20), (1_200, 1), "the 21st sale");
        assert_eq!(at(50), (1_500, 2), "the 51st sale");
        let by_revenue = rule(
            json!({"percent_bps": 1000, "tiers": {"by": "revenue", "steps": [
                {"from": 100_000, "percent_bps": 2000}
            ]}}),
        );
        let p = price(
            EarningEvent::Sale,
            &by_revenue,
            10_000,
            None,
            month(3, 89_999),
            None,
        )
        .unwrap();
        assert_eq!(
            p.total_minor, 1_000,
            "99,999 with this sale: below the step"
        );
        let p = price(
            EarningEvent::Sale,
            &by_revenue,
            10_000,
            None,
            month(3, 90_000),
            None,
        )
        .unwrap();
        assert_eq!(p.total_minor, 2_000, "100,000 with this sale: the step");
        assert_eq!(p.month_after.unwrap().revenue_minor, 100_000);
    }

    #[test]
    fn re_rating_raises_the_months_earlier_default_parts_once_per_step() {
        let r = rule(
            json!({"percent_bps": 1000, "tiers": {"by": "count", "rerate": true,
            "steps": [{"from": 3, "percent_bps": 1500}]}}),
        );
        let mut state = MonthState::default();
        let mut adjustments = Vec::new();
        let mut totals = Vec::new();
        for amount in [10_005, 20_000, 30_000, 5_000] {
            let p = price(
                EarningEvent::Sale,
                &r,
                amount,
                None,
                (december(), state),
                None,
            )
            .unwrap();
            totals.push(p.total_minor);
            adjustments.push(p.rerate.as_ref().map(|(_, a, _)| *a));
            state = p.month_after.unwrap();
        }
        // 10% of 10,005 -> 1,001 and of 20,000 -> 2,000; the third sale reaches
        // 15%: 15% of 30,005 = 4,500.75 -> 4,501, less the 3,001 booked = 1,500.
        assert_eq!(totals, vec![1_001, 2_000, 4_500, 750]);
        assert_eq!(adjustments, vec![None, None, Some(1_500), None]);
        assert_eq!(
            (
                state.tier,
                state.rated_sales,
                state.rated_base_minor,
                state.rated_minor
            ),
            (1, 4, 65_005, 4_501 + 4_500 + 750)
        );
    }

    #[test]
    fn a_bonus_is_reached_once_by_the_sale_that_crosses_its_milestone() {
        let r = rule(json!({"percent_bps": 0, "bonuses": [
            {"by": "count", "at": 3, "flat_minor": 700},
            {"by": "revenue", "at": 25_000, "flat_minor": 900}
        ]}));
        let mut state = MonthState::default();
        let mut reached = Vec::new();
        for amount in [10_000, 10_000, 10_000, 10_000] {
            let p = price(
                EarningEvent::Sale,
                &r,
                amount,
                None,
                (december(), state),
                None,
            )
            .unwrap();
            reached.push(
                p.bonuses
                    .iter()
                    .map(|(i, a, _)| (*i, *a))
                    .collect::<Vec<_>>(),
            );
            state = p.month_after.unwrap();
        }
        assert_eq!(
            reached,
            vec![vec![], vec![], vec![(0, 700), (1, 900)], vec![]]
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let r = rule(
            json!({"flat_minor": 100_000_000_000i64, "categories": {"x": {"flat_minor": 100_000_000_000i64}}}),
        );
        // 100 lines of a million units at 1e11 each: 1e19, beyond i64.
        let lines: Vec<Item> = (0..100)
            .map(|i| item(&i.to_string(), Some("x"), 1, 1_000_000))
            .collect();
        assert_eq!(
            price(EarningEvent::Sale, &r, 100, Some(&lines), month(0, 0), None),
            Err(MoneyError::Overflow)
        );
    }
}
