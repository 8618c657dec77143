//! What a commission was computed under, kept with it so a partner can
//! recompute the amount: the event and the rate and, when the rule had
//! options, the tier with the month's count and revenue, the order's lines
//! by category, the subscription, the bonus milestone or the re-rating.
//! A plain rate records `{"event": "sale", "rule": {"percent_bps": 1000}}`,
//! exactly as before the options existed.

use super::text_enum::text_enum;
use super::{Category, ConversionId, EarningEvent, Rule, TierBasis};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

text_enum! {
    /// Whose rule produced a commission.
    pub enum RuleSource("rule source") {
        /// The program's rule for the event, in the program's terms version.
        Program = "program",
        /// The agreement's own rule for the event, which replaces the program's.
        Agreement = "agreement",
    }
}

/// The rule a commission was computed under, with its inputs. The parts
/// only some commissions have are boxed, and the lines shared, so that the
/// commissions of one order (one per partner) stay cheap to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedRule {
    pub event: EarningEvent,
    /// The default rate in force: the rule's rate, or its tier step's. With
    /// `lines`, each line says which rate it earned.
    pub rule: Rule,
    /// The tier in force, when the rule has tiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<AppliedTier>,
    /// The order's amount by rate: one line per category with its own rate
    /// and one (without `category`) for the rest, when the order had lines or
    /// the rule has categories. Their commissions sum to the total.
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<AppliedLine>)]
    pub lines: Arc<[AppliedLine]>,
    /// A subscription renewal, attributed through its first payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AppliedRenewal>)]
    pub renewal: Option<Box<AppliedRenewal>>,
    /// A milestone bonus (a `bonus` commission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AppliedBonus>)]
    pub bonus: Option<Box<AppliedBonus>>,
    /// The month's earlier sales raised to a new tier (a `tier_adjustment` commission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AppliedRerate>)]
    pub rerated: Option<Box<AppliedRerate>>,
}

impl AppliedRule {
    /// A rate applied as it is, without options.
    pub fn plain(event: EarningEvent, rule: Rule) -> Self {
        Self {
            event,
            rule,
            tier: None,
            lines: Arc::from([]),
            renewal: None,
            bonus: None,
            rerated: None,
        }
    }
}

/// The tier a sale earned at, and the month's figures that put it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedTier {
    pub by: TierBasis,
    /// 0: the base rate, below the first step; n: the n-th step.
    pub step: u32,
    /// The step's threshold; absent for the base rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// The calendar month (UTC), as its first day.
    pub month: NaiveDate,
    /// The agreement's counted sales in the month, this one included.
    pub month_sales: i64,
    /// The agreement's counted revenue in the month, this sale included.
    pub month_revenue_minor: i64,
    pub rerate: bool,
}

/// Part of an order's amount that earned one rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedLine {
    /// The category whose own rate applied; absent: the default rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// The lines' amounts together, in minor units.
    pub amount_minor: i64,
    /// The lines' units together (a flat category rate pays per unit).
    pub quantity: i64,
    pub rate: Rule,
    /// What this part earned, before the split among partners.
    pub commission_minor: i64,
}

/// A renewal, and the first payment it was attributed through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedRenewal {
    pub subscription_id: String,
    pub first_conversion_id: ConversionId,
    pub first_occurred_at: DateTime<Utc>,
    /// The rule's `recurring.months`: renewals within them earn.
    pub months: u32,
}

/// The milestone a bonus was paid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedBonus {
    pub by: TierBasis,
    pub at: i64,
    pub month: NaiveDate,
    /// The month's counted sales and revenue with the sale that reached it.
    pub month_sales: i64,
    pub month_revenue_minor: i64,
}

/// The month's earlier sales raised to the rate of the step just reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedRerate {
    pub month: NaiveDate,
    /// The step reached.
    pub step: u32,
    /// The earlier sales with a part at the default rate, and that part's amount.
    pub sales: i64,
    pub base_minor: i64,
    /// What those parts had earned, and what they earn at the new rate; the
    /// adjustment is the difference (never negative).
    pub booked_minor: i64,
    pub rerated_minor: i64,
}
