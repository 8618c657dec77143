//! A sale a person accepted into attribution (an untracked claim), priced
//! as attribution would have priced it had its click been tracked: through
//! `decide::earn`, under the agreement's terms and the program's in force
//! at the sale's date, in the agreement's month (its tier, the milestones it
//! reaches, the re-rating of the month's earlier sales), paying only the
//! partners who were members at that date.
//!
//! A subscription's renewal is priced as one: attribution would have sent it
//! where its first payment went and paid it for the rule's `recurring`
//! months, so the claim's agreement must be that one (or the first payment
//! went nowhere), and a renewal past those months earns nothing.
//!
//! The month is locked and advanced in the caller's transaction, which books
//! the sale: unlike a worker's batch (`months`), nothing reserves a rank
//! apart, so nothing is left behind if the transaction rolls back. The
//! caller must not have counted the sale in the month before: its
//! conversion is attributed to the agreement only after pricing, since a
//! month started now counts the agreement's attributed sales.

use super::decide::{self, Earned, Held, Order, Renewal};
use super::{load, months, pricing};
use crate::domain::{
    AgreementId, ConversionId, ConversionReason, ConversionStatus, Currency, EarningEvent, Item,
    ProgramId,
};
use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;

/// The sale to price.
#[derive(Debug, Clone)]
pub struct Sale<'a> {
    pub conversion_id: ConversionId,
    pub program_id: ProgramId,
    pub agreement_id: AgreementId,
    pub amount_minor: i64,
    pub currency: Currency,
    /// The order's lines, when the shop reported them.
    pub items: Option<&'a [Item]>,
    pub occurred_at: DateTime<Utc>,
    /// The subscription the shop reported it under, if any.
    pub subscription_id: Option<&'a str>,
}

/// What the sale earns, and the terms versions it earns under.
#[derive(Debug)]
pub struct Priced {
    pub agreement_version: i32,
    pub program_version: i32,
    /// The commissions to book (the sale's, then any re-rating and bonuses),
    /// held for the program's hold period from `now`, none for review.
    pub earned: Earned,
}

/// Why an accepted sale cannot be booked, or a database fault.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("{}", .0.as_str())]
    Earns(ConversionReason),
    /// A renewal whose subscription's first payment went to another
    /// agreement: its renewals go there too.
    #[error("the subscription's first payment went to agreement {0}")]
    RenewsAnotherAgreements(AgreementId),
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

impl From<sqlx::Error> for PriceError {
    fn from(e: sqlx::Error) -> Self {
        PriceError::Db(e.into())
    }
}

/// Prices `sale`, and counts it in its agreement's month when the rule
/// keeps one (the month's row stays locked until the caller commits).
/// `Earns(reason)` when it earns nothing: `agreement_missing`,
/// `agreement_inactive` (not in force at the date), `no_rule`,
/// `partner_inactive` (no partner of the agreement was a member then),
/// `renewal_not_paid` (a renewal past the rule's months) or
/// `amount_overflow`; `RenewsAnotherAgreements` for a renewal whose first
/// payment went to another agreement.
pub async fn price(
    tx: &mut PgConnection,
    sale: &Sale<'_>,
    now: DateTime<Utc>,
) -> Result<Priced, PriceError> {
    let versions = load::program_versions(tx, &[sale.program_id])
        .await?
        .remove(&sale.program_id)
        .unwrap_or_default();
    let program = decide::in_force(&versions, sale.occurred_at)
        .ok_or(PriceError::Earns(ConversionReason::AgreementMissing))?;
    let terms = load::terms_at(tx, &[(sale.agreement_id, sale.occurred_at)])
        .await?
        .pop()
        .flatten()
        .ok_or(PriceError::Earns(ConversionReason::AgreementMissing))?;
    if !terms.in_force_at(sale.occurred_at) {
        return Err(PriceError::Earns(ConversionReason::AgreementInactive));
    }
    let (rule, _) = terms
        .rules
        .rule_over(&program.rules, EarningEvent::Sale)
        .ok_or(PriceError::Earns(ConversionReason::NoRule))?;
    let month_key = (
        sale.agreement_id,
        pricing::month_of(sale.occurred_at.date_naive()),
    );
    let month = if rule.needs_month() {
        let wanted = [(sale.program_id, month_key.0, month_key.1)];
        months::lock(tx, &wanted)
            .await?
            .remove(&month_key)
            .unwrap_or_default()
    } else {
        Default::default()
    };
    let pairs = terms
        .shares
        .iter()
        .map(|(p, _)| (sale.program_id.get(), p.get()))
        .collect();
    let members = load::members_of(tx, pairs).await?;
    let renewal = renewal_of(tx, sale).await?;
    let order = Order {
        conversion_id: sale.conversion_id,
        program_id: sale.program_id,
        agreement_id: sale.agreement_id,
        event: EarningEvent::Sale,
        amount_minor: sale.amount_minor,
        currency: sale.currency,
        items: sale.items,
        occurred_at: sale.occurred_at,
        renewal: renewal.as_ref(),
    };
    let held = Held {
        review: Vec::new(),
        approve_after: now + Duration::days(i64::from(program.hold_days)),
    };
    let earned = decide::earn(&order, &terms, program, month, &held).map_err(PriceError::Earns)?;
    let earned = decide::members_only(earned, sale.program_id, &terms, &members, sale.occurred_at)
        .ok_or(PriceError::Earns(ConversionReason::PartnerInactive))?;
    if let Some(after) = earned.month {
        months::write(tx, &[(month_key, after)]).await?;
    }
    Ok(Priced {
        agreement_version: terms.version,
        program_version: program.version,
        earned,
    })
}

/// The first payment `sale` renews, when it is a renewal: a sale of a
/// subscription with an earlier first payment. A first payment attributed
/// to another agreement takes the renewal there, as attribution does.
async fn renewal_of(tx: &mut PgConnection, sale: &Sale<'_>) -> Result<Option<Renewal>, PriceError> {
    let Some(subscription) = sale.subscription_id else {
        return Ok(None);
    };
    let first = load::first_payments(tx, &[(sale.program_id, subscription)])
        .await?
        .remove(&(sale.program_id, subscription.to_owned()));
    let Some(first) = first.filter(|f| f.id != sale.conversion_id) else {
        return Ok(None);
    };
    match (first.status, first.agreement_id) {
        (ConversionStatus::Attributed, Some(other)) if other != sale.agreement_id => {
            Err(PriceError::RenewsAnotherAgreements(other))
        }
        _ => Ok(Some(Renewal::of(subscription, &first))),
    }
}
