//! Deciding, without I/O: to whom each conversion's credit goes, under which
//! terms, and what each partner earns. `load` gathers the facts, this
//! decides, the worker books what was decided. `earn` (what an order earns
//! under an agreement's terms) is also what the simulator answers with, so
//! a quote and a booking can never disagree.
//!
//! Order of precedence, from the conversion to the amounts:
//!
//! 1. Attribution: a renewal goes to its subscription's first payment's
//!    agreement; otherwise a coupon beats a click.
//! 2. Terms: the agreement version and the program terms version in force
//!    when the conversion happened.
//! 3. Rule: the agreement's rule for the event if it has one, else the
//!    program's (the whole rule, options and all; never the higher of two).
//! 4. Within the rule (`pricing`): a line's category rate over the default
//!    rate; the default rate is the tier in force; bonuses and re-rating on
//!    top, as commissions of their own.
//! 5. The split: each total among the agreement's partners by share.

use super::fraud::Signals;
use super::pricing::{self, MonthState};
use crate::commissions::booking::NewCommission;
use crate::config::FraudSettings;
use crate::domain::click_id::ClickId;
use crate::domain::{
    AgreementId, AppliedRenewal, AppliedRule, AttributionSource, CommissionKind, CommissionRules,
    ConversionId, ConversionReason, ConversionStatus, Currency, EarningEvent, EnrollmentStatus,
    Event, FraudSignal, Item, LinkId, PartnerId, ProgramId, Rule, RuleSource, allocate, apply_rate,
    earns_at,
};
use crate::rollups::conversions::Delta;
use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use sqlx::types::Json;
use std::collections::{BTreeSet, HashMap};

/// A claimed conversion.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: ConversionId,
    pub program_id: ProgramId,
    pub event: Event,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub click_id: Option<String>,
    pub coupon: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// The webhook's request id: log lines about this conversion carry it.
    pub request_id: Option<String>,
    /// The order's lines, when the shop sent them.
    pub items: Option<Json<Vec<Item>>>,
    /// Sales: the subscription this payment belongs to.
    pub subscription_id: Option<String>,
}

impl Claimed {
    pub fn lines(&self) -> Option<&[Item]> {
        self.items.as_ref().map(|i| i.0.as_slice())
    }
}

/// What attribution decided for one conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: ConversionId,
    pub status: ConversionStatus,
    pub reason: Option<ConversionReason>,
    pub fraud: Vec<FraudSignal>,
    pub via: Option<AttributionSource>,
    pub link_id: Option<LinkId>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub agreement_id: Option<AgreementId>,
    pub agreement_version: Option<i32>,
    pub program_version: Option<i32>,
    /// Refunds: the sale they were applied to.
    pub sale_id: Option<ConversionId>,
}

impl Outcome {
    pub fn new(
        id: ConversionId,
        status: ConversionStatus,
        reason: Option<ConversionReason>,
    ) -> Self {
        Self {
            id,
            status,
            reason,
            fraud: Vec::new(),
            via: None,
            link_id: None,
            clicked_at: None,
            agreement_id: None,
            agreement_version: None,
            program_version: None,
            sale_id: None,
        }
    }
}

/// One version of a program's terms.
#[derive(Debug, Clone)]
pub struct ProgramTerms {
    pub version: i32,
    /// When this version was made; it governs conversions from then on.
    pub since: DateTime<Utc>,
    pub rules: CommissionRules,
    pub window_days: i32,
    pub hold_days: i32,
}

/// An agreement's terms in force when a conversion happened.
#[derive(Debug, Clone)]
pub struct Terms {
    pub version: i32,
    pub rules: CommissionRules,
    /// Partners and their shares in basis points, summing to 10000.
    pub shares: Vec<(PartnerId, u32)>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

impl Terms {
    pub fn in_force_at(&self, at: DateTime<Utc>) -> bool {
        self.valid_from.is_none_or(|f| at >= f) && self.valid_until.is_none_or(|u| at < u)
    }
}

/// A subscription's first payment, as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub id: ConversionId,
    pub status: ConversionStatus,
    pub agreement_id: Option<AgreementId>,
    pub link_id: Option<LinkId>,
    pub occurred_at: DateTime<Utc>,
}

/// A partner's membership of a program: its status, and when it ended.
pub type Membership = (EnrollmentStatus, Option<DateTime<Utc>>);

/// Everything the database knows that bears on a batch.
#[derive(Default)]
pub struct Facts {
    /// Every version of each program's terms, oldest first.
    pub programs: HashMap<ProgramId, Vec<ProgramTerms>>,
    /// (program, upper-cased code) -> the agreement owning the coupon.
    pub coupons: HashMap<(ProgramId, String), AgreementId>,
    /// Click ids that verify under our keys, by conversion.
    pub clicks: HashMap<ConversionId, ClickId>,
    /// Link -> (its program, its agreement).
    pub links: HashMap<LinkId, (ProgramId, AgreementId)>,
    /// The terms of each candidate's agreement in force at its conversion.
    pub terms: HashMap<ConversionId, Terms>,
    /// (program, partner) -> the membership's status and when it ended.
    pub members: HashMap<(ProgramId, PartnerId), Membership>,
    pub signals: Signals,
    /// (program, subscription id) -> the subscription's first payment.
    pub subscriptions: HashMap<(ProgramId, String), Origin>,
    /// (agreement, month) -> its counted sales so far, for the rules with
    /// tiers or bonuses the batch's sales price under.
    pub months: HashMap<(AgreementId, NaiveDate), MonthState>,
    /// Sales whose rank in a month was reserved by an earlier attempt (a
    /// worker that stopped before booking them): the month as it stood
    /// before each. Such a sale prices from here and is not counted again.
    pub ranks: HashMap<ConversionId, Rank>,
}

/// A sale's place in its agreement's month: the month, and the state it
/// stood at before the sale.
pub type Rank = ((AgreementId, NaiveDate), MonthState);

impl Facts {
    /// The program's terms in force at `at`: the latest version made at or
    /// before it (the first version for anything earlier).
    pub fn program_terms(&self, program: ProgramId, at: DateTime<Utc>) -> Option<&ProgramTerms> {
        in_force(self.programs.get(&program)?, at)
    }
}

/// The version of `versions` (oldest first) in force at `at`.
pub fn in_force(versions: &[ProgramTerms], at: DateTime<Utc>) -> Option<&ProgramTerms> {
    versions
        .iter()
        .rev()
        .find(|v| v.since <= at)
        .or_else(|| versions.first())
}

/// Where a conversion's credit goes before terms are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub via: AttributionSource,
    pub agreement_id: AgreementId,
    pub link_id: Option<LinkId>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub click_id: Option<&'a str>,
    /// A renewal: its subscription's first payment.
    pub renewal: Option<Renewal>,
}

/// A renewal's first payment, for pricing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    pub subscription_id: String,
    pub first_id: ConversionId,
    pub first_occurred_at: DateTime<Utc>,
}

impl Renewal {
    /// A renewal of `subscription_id`, whose first payment is `first`.
    pub fn of(subscription_id: &str, first: &Origin) -> Self {
        Self {
            subscription_id: subscription_id.to_owned(),
            first_id: first.id,
            first_occurred_at: first.occurred_at,
        }
    }
}

/// The coupon's or the click's agreement, or why there is none. A coupon
/// beats a click: influencer codes are how merchants expect it. A renewal
/// (a sale whose subscription has an earlier first payment) goes where the
/// first payment went, whatever click or coupon it carries.
///
/// An outcome with status `received` means "not yet": a renewal whose first
/// payment has not been attributed yet (in this batch, or held by another
/// worker); it stays received and is claimed again.
pub fn candidate<'a>(row: &'a Claimed, facts: &Facts) -> Result<Candidate<'a>, Outcome> {
    use ConversionReason as R;
    use ConversionStatus as S;
    let not = |status, reason| Outcome::new(row.id, status, Some(reason));
    let program = facts
        .program_terms(row.program_id, row.occurred_at)
        .ok_or_else(|| not(S::Rejected, R::UnknownProgram))?;
    if row.event == Event::Sale
        && let Some(sub) = &row.subscription_id
        && let Some(first) = facts.subscriptions.get(&(row.program_id, sub.clone()))
        && first.id != row.id
    {
        return match (first.status, first.agreement_id) {
            (S::Received, _) => Err(Outcome::new(row.id, S::Received, None)),
            (S::Attributed, Some(agreement_id)) => Ok(Candidate {
                via: AttributionSource::Subscription,
                agreement_id,
                link_id: first.link_id,
                clicked_at: None,
                click_id: None,
                renewal: Some(Renewal::of(sub, first)),
            }),
            _ => Err(not(S::Unattributed, R::SubscriptionNotAttributed)),
        };
    }
    if let Some(code) = &row.coupon {
        let key = (row.program_id, code.trim().to_ascii_uppercase());
        if let Some(agreement_id) = facts.coupons.get(&key) {
            return Ok(Candidate {
                via: AttributionSource::Coupon,
                agreement_id: *agreement_id,
                link_id: None,
                clicked_at: None,
                click_id: None,
                renewal: None,
            });
        }
        if row.click_id.is_none() {
            return Err(not(S::Unattributed, R::UnknownCoupon));
        }
    }
    let raw_click = row
        .click_id
        .as_deref()
        .ok_or_else(|| not(S::Unattributed, R::NoClick))?;
    let click = facts
        .clicks
        .get(&row.id)
        .ok_or_else(|| not(S::Rejected, R::InvalidClick))?;
    let (link_program, agreement_id) = facts
        .links
        .get(&click.link)
        .ok_or_else(|| not(S::Rejected, R::InvalidClick))?;
    if *link_program != row.program_id {
        // Signed by us, but for another program's link.
        return Err(not(S::Rejected, R::InvalidClick));
    }
    let clicked_at = click.clicked_at();
    if clicked_at > row.occurred_at + Duration::seconds(60) {
        return Err(not(S::Rejected, R::ClickAfterConversion));
    }
    if row.occurred_at - clicked_at > Duration::days(i64::from(program.window_days)) {
        return Err(not(S::Unattributed, R::OutsideWindow));
    }
    Ok(Candidate {
        via: AttributionSource::Click,
        agreement_id: *agreement_id,
        link_id: Some(click.link),
        clicked_at: Some(clicked_at),
        click_id: Some(raw_click),
        renewal: None,
    })
}

/// What a batch decided: each conversion's outcome, the commissions to
/// book, the changes to the daily roll-ups, the months' new tier state, and
/// the rank each newly counted sale took in its month.
#[derive(Debug, Default)]
pub struct Decided {
    pub outcomes: Vec<Outcome>,
    pub bookings: Vec<NewCommission>,
    pub deltas: Vec<Delta>,
    pub months: Vec<((AgreementId, NaiveDate), MonthState)>,
    pub ranks: Vec<(ConversionId, Rank)>,
}

/// Decides every sale and lead of a batch (refunds are decided apart), in
/// claim order: that order ranks a month's sales for tiers and milestones
/// (after those whose rank `facts.ranks` already holds).
pub fn attribute(
    rows: &[Claimed],
    facts: &Facts,
    fraud: &FraudSettings,
    now: DateTime<Utc>,
) -> Decided {
    // Two commissions and three roll-up rows per sale is the common case.
    let mut d = Decided {
        outcomes: Vec::with_capacity(rows.len()),
        bookings: Vec::with_capacity(rows.len() * 2),
        deltas: Vec::with_capacity(rows.len() * 3),
        months: Vec::new(),
        ranks: Vec::new(),
    };
    let mut months = facts.months.clone();
    let mut touched = BTreeSet::new();
    for row in rows {
        match candidate(row, facts) {
            Err(outcome) if outcome.status == ConversionStatus::Received => {}
            Err(outcome) => d.outcomes.push(outcome),
            Ok(cand) => {
                if let Some(key) = decide_one(row, &cand, facts, fraud, now, &months, &mut d) {
                    months.insert(key.0, key.1);
                    touched.insert(key.0);
                }
            }
        }
    }
    d.months = touched.into_iter().map(|k| (k, months[&k])).collect();
    d
}

/// Decides one attributed conversion; answers the month state it changed.
fn decide_one(
    row: &Claimed,
    cand: &Candidate<'_>,
    facts: &Facts,
    fraud: &FraudSettings,
    now: DateTime<Utc>,
    months: &HashMap<(AgreementId, NaiveDate), MonthState>,
    d: &mut Decided,
) -> Option<((AgreementId, NaiveDate), MonthState)> {
    use ConversionReason as R;
    use ConversionStatus as S;
    let program = facts.program_terms(row.program_id, row.occurred_at)?;
    let mut outcome = Outcome {
        via: Some(cand.via),
        link_id: cand.link_id,
        clicked_at: cand.clicked_at,
        agreement_id: Some(cand.agreement_id),
        program_version: Some(program.version),
        ..Outcome::new(row.id, S::Unattributed, None)
    };
    let Some(terms) = facts.terms.get(&row.id) else {
        outcome.reason = Some(R::AgreementMissing);
        d.outcomes.push(outcome);
        return None;
    };
    outcome.agreement_version = Some(terms.version);
    if !terms.in_force_at(row.occurred_at) {
        outcome.reason = Some(R::AgreementInactive);
        d.outcomes.push(outcome);
        return None;
    }
    if row.event == Event::Lead && facts.signals.is_repeat_lead(row, cand.click_id) {
        outcome.status = S::Rejected;
        outcome.reason = Some(R::Duplicate);
        d.outcomes.push(outcome);
        return None;
    }
    outcome.fraud = facts
        .signals
        .check(row, cand.click_id, cand.clicked_at, fraud);
    outcome.status = S::Attributed;
    let day_delta = |partner: Option<PartnerId>, commission: i64, counted: bool| Delta {
        program: row.program_id,
        partner,
        link: cand.link_id,
        day: row.occurred_at.date_naive(),
        conversions: i64::from(counted),
        revenue_minor: if counted && row.event == Event::Sale {
            row.amount_minor
        } else {
            0
        },
        commission_minor: commission,
    };
    let event = row.event.earning()?; // refunds never reach here
    let order = Order {
        conversion_id: row.id,
        program_id: row.program_id,
        agreement_id: cand.agreement_id,
        event,
        amount_minor: row.amount_minor,
        currency: row.currency,
        items: row.lines(),
        occurred_at: row.occurred_at,
        renewal: cand.renewal.as_ref(),
    };
    let month_key = (
        cand.agreement_id,
        pricing::month_of(row.occurred_at.date_naive()),
    );
    // A rank reserved for this very month stands; otherwise the sale takes
    // the next one.
    let reserved = facts
        .ranks
        .get(&row.id)
        .filter(|(key, _)| *key == month_key)
        .map(|(_, before)| *before);
    let month = reserved.unwrap_or_else(|| months.get(&month_key).copied().unwrap_or_default());
    let held = Held {
        review: outcome.fraud.clone(),
        approve_after: now + Duration::days(i64::from(program.hold_days)),
    };
    let earned = match earn(&order, terms, program, month, &held) {
        Ok(earned) => earned,
        Err(R::AmountOverflow) => {
            outcome.status = S::Rejected;
            outcome.reason = Some(R::AmountOverflow);
            d.outcomes.push(outcome);
            return None;
        }
        Err(reason) => {
            // Attributed, earning nothing: no rule for the event, or a
            // renewal the rule does not pay. It still counts in reports.
            outcome.reason = Some(reason);
            d.deltas.push(day_delta(None, 0, true));
            d.outcomes.push(outcome);
            return None;
        }
    };
    // A partner earns only while it is a member of the program (or on what
    // happened before its membership ended); its share is not passed on.
    let Some(earned) = members_only(
        earned,
        row.program_id,
        terms,
        &facts.members,
        row.occurred_at,
    ) else {
        outcome.status = S::Unattributed;
        outcome.reason = Some(R::PartnerInactive);
        outcome.fraud.clear();
        d.outcomes.push(outcome);
        return None;
    };
    let all: i64 = earned.bookings.iter().map(|b| b.amount_minor).sum();
    d.deltas.push(day_delta(None, all, true));
    for b in &earned.bookings {
        let counted = b.kind == CommissionKind::Conversion;
        d.deltas
            .push(day_delta(Some(b.partner_id), b.amount_minor, counted));
    }
    d.bookings.extend(earned.bookings);
    d.outcomes.push(outcome);
    if reserved.is_some() {
        return None; // counted in its month when the rank was reserved
    }
    let after = earned.month?;
    d.ranks.push((row.id, (month_key, month)));
    Some((month_key, after))
}

/// `earned` with only the commissions of partners who are members of the
/// program at `at` (active, or whose membership ended after it): a
/// partner who left earns nothing new, and its share is not passed on.
/// `None` when no partner of the agreement earns. Booking and the
/// simulator both filter through it.
pub fn members_only(
    mut earned: Earned,
    program: ProgramId,
    terms: &Terms,
    members: &HashMap<(ProgramId, PartnerId), Membership>,
    at: DateTime<Utc>,
) -> Option<Earned> {
    let member = |partner: PartnerId| {
        members
            .get(&(program, partner))
            .is_some_and(|(status, ended)| earns_at(*status, *ended, at))
    };
    if !terms.shares.iter().any(|(p, _)| member(*p)) {
        return None;
    }
    earned.bookings.retain(|b| member(b.partner_id));
    Some(earned)
}

/// An order as pricing sees it.
#[derive(Debug, Clone)]
pub struct Order<'a> {
    pub conversion_id: ConversionId,
    pub program_id: ProgramId,
    pub agreement_id: AgreementId,
    pub event: EarningEvent,
    pub amount_minor: i64,
    pub currency: Currency,
    pub items: Option<&'a [Item]>,
    pub occurred_at: DateTime<Utc>,
    pub renewal: Option<&'a Renewal>,
}

/// How the commissions of an order are held: for review (with the fraud
/// signals), and until when.
#[derive(Debug, Clone)]
pub struct Held {
    pub review: Vec<FraudSignal>,
    pub approve_after: DateTime<Utc>,
}

/// What an order earns under an agreement's terms.
#[derive(Debug, Clone)]
pub struct Earned {
    /// The order's commission before the split (bonuses and adjustments apart).
    pub total_minor: i64,
    pub source: RuleSource,
    /// Every commission to book: each partner's share of the order's
    /// commission (none for a zero share), then of each bonus reached and of
    /// the re-rating adjustment.
    pub bookings: Vec<NewCommission>,
    /// The agreement's month with this sale counted, when its rule keeps one.
    pub month: Option<MonthState>,
}

/// What `order` earns under the agreement's `terms` over the `program`'s,
/// in a month that stood at `month` before it: the one pricing path of
/// booking and of the simulator. An error is the reason it earns nothing:
/// no rule for the event, a renewal the rule does not pay, or an overflow.
pub fn earn(
    order: &Order<'_>,
    terms: &Terms,
    program: &ProgramTerms,
    month: MonthState,
    held: &Held,
) -> Result<Earned, ConversionReason> {
    let (rule, source) = terms
        .rules
        .rule_over(&program.rules, order.event)
        .ok_or(ConversionReason::NoRule)?;
    let renewal = match order.renewal {
        None => None,
        Some(r) => {
            let months = rule.renewal_months();
            let until = r
                .first_occurred_at
                .checked_add_months(Months::new(months))
                .ok_or(ConversionReason::AmountOverflow)?;
            if months == 0 || order.occurred_at >= until {
                return Err(ConversionReason::RenewalNotPaid);
            }
            Some(AppliedRenewal {
                subscription_id: r.subscription_id.clone(),
                first_conversion_id: r.first_id,
                first_occurred_at: r.first_occurred_at,
                months,
            })
        }
    };
    let month_start = pricing::month_of(order.occurred_at.date_naive());
    let priced = pricing::price(
        order.event,
        rule,
        order.amount_minor,
        order.items,
        (month_start, month),
        renewal,
    )
    .map_err(|_| ConversionReason::AmountOverflow)?;
    let weights: Vec<u32> = terms.shares.iter().map(|(_, bps)| *bps).collect();
    let mut bookings = Vec::new();
    let mut book = |kind: CommissionKind,
                    once_key: Option<String>,
                    rule: &AppliedRule,
                    base_minor: i64,
                    total: i64|
     -> Result<(), ConversionReason> {
        let parts = allocate(total, &weights).map_err(|_| ConversionReason::AmountOverflow)?;
        for ((partner, share), amount) in terms.shares.iter().zip(parts) {
            if amount == 0 {
                continue;
            }
            bookings.push(NewCommission {
                conversion_id: order.conversion_id,
                program_id: order.program_id,
                partner_id: *partner,
                agreement_id: order.agreement_id,
                agreement_version: terms.version,
                program_version: program.version,
                kind,
                rule_source: source,
                period: once_key.as_ref().map(|_| month_start),
                once_key: once_key.clone(),
                rule: rule.clone(),
                base_minor,
                total_minor: total,
                share_bps: *share as i32,
                amount_minor: amount,
                currency: order.currency,
                review: !held.review.is_empty(),
                fraud_reasons: held.review.clone(),
                approve_after: held.approve_after,
            });
        }
        Ok(())
    };
    book(
        CommissionKind::Conversion,
        None,
        &priced.applied,
        order.amount_minor,
        priced.total_minor,
    )?;
    if let Some((step, amount, record)) = &priced.rerate {
        let base = record.rerated.as_ref().map_or(0, |r| r.base_minor);
        book(
            CommissionKind::TierAdjustment,
            Some(format!("tier:{step}")),
            record,
            base,
            *amount,
        )?;
    }
    for (_, amount, record) in &priced.bonuses {
        let key = record
            .bonus
            .as_ref()
            .map(|b| format!("bonus:{}:{}", b.by, b.at));
        book(CommissionKind::Bonus, key, record, 0, *amount)?;
    }
    Ok(Earned {
        total_minor: priced.total_minor,
        source,
        bookings,
        month: priced.month_after,
    })
}

/// The commission a rule gives on `amount`, and each partner's part of it
/// (largest remainder: the parts always sum to the total). `None` when the
/// arithmetic would overflow.
pub fn split(
    rule: Rule,
    amount_minor: i64,
    shares: &[(PartnerId, u32)],
) -> Option<(i64, Vec<i64>)> {
    let total = match rule {
        Rule::PercentBps(bps) => apply_rate(amount_minor, bps).ok()?,
        Rule::FlatMinor(flat) => flat,
    };
    let weights: Vec<u32> = shares.iter().map(|(_, bps)| *bps).collect();
    Some((total, allocate(total, &weights).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::click_id;
    use crate::domain::{BasisPoints, EarningEvent, KeyRing};
    use secrecy::SecretString;

    fn keys() -> KeyRing {
        KeyRing::parse(&SecretString::from(
            "1:0123456789abcdefghijklmnop".to_owned(),
        ))
        .unwrap()
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    const PROGRAM: ProgramId = ProgramId::from_db(1);
    const AGREEMENT: AgreementId = AgreementId::from_db(7);
    const LINK: LinkId = LinkId::from_db(3);

    fn row(
        id: i64,
        event: Event,
        amount: i64,
        click: Option<&ClickId>,
        coupon: Option<&str>,
    ) -> Claimed {
        Claimed {
            id: ConversionId::from_db(id),
            program_id: PROGRAM,
            event,
            order_id: format!("o-{id}"),
            amount_minor: amount,
            currency: Currency::parse("EUR").unwrap(),
            click_id: click.map(|c| c.as_str().to_owned()),
            coupon: coupon.map(str::to_owned),
            occurred_at: t0(),
            request_id: None,
            items: None,
            subscription_id: None,
        }
    }

    fn rules(v: serde_json::Value) -> CommissionRules {
        CommissionRules::parse(&v).unwrap()
    }

    /// A program paying 10% of sales and 2.00 per lead, one agreement split
    /// 50/50 between partners 11 and 12, one link, and a click 10 minutes
    /// before `t0`.
    fn facts(rows: &[Claimed]) -> Facts {
        let mut f = Facts::default();
        f.programs.insert(
            PROGRAM,
            vec![ProgramTerms {
                version: 1,
                since: t0() - Duration::days(365),
                rules: rules(
                    serde_json::json!({"sale": {"percent_bps": 1000}, "lead": {"flat_minor": 200}}),
                ),
                window_days: 30,
                hold_days: 14,
            }],
        );
        f.coupons.insert((PROGRAM, "AYU10".into()), AGREEMENT);
        for p in [11, 12] {
            f.members.insert(
                (PROGRAM, PartnerId::from_db(p)),
                (EnrollmentStatus::Active, None),
            );
        }
        f.links.insert(LINK, (PROGRAM, AGREEMENT));
        for r in rows {
            if let Some(c) = r
                .click_id
                .as_deref()
                .and_then(|c| click_id::verify(&keys(), c))
            {
                f.clicks.insert(r.id, c);
            }
            f.terms.insert(
                r.id,
                Terms {
                    version: 2,
                    rules: CommissionRules::default(),
                    shares: vec![
                        (PartnerId::from_db(11), 5000),
                        (PartnerId::from_db(12), 5000),
                    ],
                    valid_from: None,
                    valid_until: None,
                },
            );
        }
        f
    }

    fn click(minutes_before: i64) -> ClickId {
        let at = (t0() - Duration::minutes(minutes_before)).timestamp_millis();
        click_id::issue(&keys(), LINK, at, 42).unwrap()
    }

    #[test]
    fn a_clicked_sale_books_each_partners_share_of_the_rule() {
        let c = click(10);
        let rows = [row(1, Event::Sale, 12_345, Some(&c), None)];
        let d = attribute(&rows, &facts(&rows), &FraudSettings::default(), t0());
        let o = &d.outcomes[0];
        assert_eq!(o.status, ConversionStatus::Attributed);
        assert_eq!(
            (o.via, o.link_id, o.agreement_version),
            (Some(AttributionSource::Click), Some(LINK), Some(2))
        );
        assert_eq!(o.fraud, Vec::<FraudSignal>::new());
        // 10% of 123.45 is 12.35 (rounded half away from zero), split 6.18 + 6.17.
        let amounts: Vec<i64> = d.bookings.iter().map(|b| b.amount_minor).collect();
        assert_eq!(amounts, vec![618, 617]);
        assert!(
            d.bookings
                .iter()
                .all(|b| b.total_minor == 1235 && b.base_minor == 12_345)
        );
        assert_eq!(
            d.bookings[0].rule,
            AppliedRule::plain(
                EarningEvent::Sale,
                Rule::PercentBps(BasisPoints::new(1000).unwrap())
            )
        );
        assert_eq!(d.bookings[0].approve_after, t0() + Duration::days(14));
        // One program row and one per partner, each counting the conversion.
        assert_eq!(d.deltas.len(), 3);
        assert!(
            d.deltas
                .iter()
                .all(|x| x.conversions == 1 && x.revenue_minor == 12_345)
        );
    }

    #[test]
    fn a_coupon_beats_a_click_and_carries_no_link() {
        let c = click(10);
        let rows = [row(1, Event::Lead, 0, Some(&c), Some(" ayu10 "))];
        let d = attribute(&rows, &facts(&rows), &FraudSettings::default(), t0());
        assert_eq!(d.outcomes[0].via, Some(AttributionSource::Coupon));
        assert_eq!(d.outcomes[0].link_id, None);
        assert!(d.deltas.iter().all(|x| x.link.is_none()));
        assert_eq!(d.bookings.iter().map(|b| b.amount_minor).sum::<i64>(), 200);
    }

    #[test]
    fn each_reason_not_to_attribute_is_the_specific_one() {
        use ConversionReason as R;
        use ConversionStatus as S;
        let forged = {
            let mut s = click(10).as_str().to_owned();
            s.replace_range(0..1, if s.starts_with('A') { "B" } else { "A" });
            s
        };
        let late = click(-5); // 5 minutes after the sale
        let old = click(31 * 24 * 60);
        let mut rows = vec![
            row(1, Event::Sale, 100, None, None),
            row(2, Event::Sale, 100, None, Some("NOPE")),
            row(3, Event::Sale, 100, Some(&late), None),
            row(4, Event::Sale, 100, Some(&old), None),
        ];
        let mut bad = row(5, Event::Sale, 100, None, None);
        bad.click_id = Some(forged);
        rows.push(bad);
        let mut other = row(6, Event::Sale, 100, None, None);
        other.program_id = ProgramId::from_db(99);
        rows.push(other);
        let d = attribute(&rows, &facts(&rows), &FraudSettings::default(), t0());
        let got: Vec<(S, Option<R>)> = d.outcomes.iter().map(|o| (o.status, o.reason)).collect();
        assert_eq!(
            got,
            vec![
                (S::Unattributed, Some(R::NoClick)),
                (S::Unattributed, Some(R::UnknownCoupon)),
                (S::Rejected, Some(R::ClickAfterConversion)),
                (S::Unattributed, Some(R::OutsideWindow)),
                (S::Rejected, Some(R::InvalidClick)),
                (S::Rejected, Some(R::UnknownProgram)),
            ]
        );
        assert!(d.bookings.is_empty() && d.deltas.is_empty());
    }

    #[test]
    fn terms_out_of_force_or_without_a_rule_book_nothing() {
        let c = click(10);
        let rows = [
            row(1, Event::Sale, 100, Some(&c), None),
            row(2, Event::Sale, 100, Some(&c), None),
        ];
        let mut f = facts(&rows);
        f.terms
            .get_mut(&ConversionId::from_db(1))
            .unwrap()
            .valid_until = Some(t0());
        f.programs.get_mut(&PROGRAM).unwrap()[0].rules =
            rules(serde_json::json!({"lead": {"flat_minor": 1}}));
        let d = attribute(&rows, &f, &FraudSettings::default(), t0());
        assert_eq!(
            d.outcomes[0].reason,
            Some(ConversionReason::AgreementInactive)
        );
        assert_eq!(d.outcomes[0].status, ConversionStatus::Unattributed);
        assert_eq!(d.outcomes[1].reason, Some(ConversionReason::NoRule));
        assert_eq!(d.outcomes[1].status, ConversionStatus::Attributed);
        assert!(d.bookings.is_empty());
        assert_eq!(
            d.deltas.len(),
            1,
            "the conversion still counts in the report"
        );
    }

    #[test]
    fn a_conversion_within_seconds_of_its_click_is_held_for_review() {
        let at = (t0() - Duration::seconds(1)).timestamp_millis();
        let c = click_id::issue(&keys(), LINK, at, 1).unwrap();
        let rows = [row(1, Event::Sale, 10_000, Some(&c), None)];
        let d = attribute(&rows, &facts(&rows), &FraudSettings::default(), t0());
        assert_eq!(d.outcomes[0].fraud, vec![FraudSignal::TooFast]);
        assert!(
            d.bookings
                .iter()
                .all(|b| b.review && b.fraud_reasons == vec![FraudSignal::TooFast])
        );
    }

    #[test]
    fn a_split_always_sums_to_the_rule_total() {
        let shares = [
            (PartnerId::from_db(1), 3333),
            (PartnerId::from_db(2), 3333),
            (PartnerId::from_db(3), 3334),
        ];
        assert_eq!(
            split(Rule::FlatMinor(100), 0, &shares),
            Some((100, vec![33, 33, 34]))
        );
        let max = split(
            Rule::PercentBps(BasisPoints::new(10_000).unwrap()),
            i64::MAX,
            &shares,
        )
        .unwrap();
        assert_eq!(max.0, i64::MAX);
        assert_eq!(
            max.1.iter().map(|p| i128::from(*p)).sum::<i128>(),
            i128::from(i64::MAX)
        );
    }

    fn november() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
    }

    fn renewal(id: i64, subscription: &str) -> Claimed {
        Claimed {
            subscription_id: Some(subscription.into()),
            ..row(id, Event::Sale, 10_000, None, None)
        }
    }

    #[test]
    fn a_renewal_goes_to_its_first_payments_agreement_for_the_rules_months() {
        use ConversionReason as R;
        use ConversionStatus as S;
        let rows = [
            renewal(1, "paid"),
            renewal(2, "too-late"),
            renewal(3, "first-in-flight"),
            renewal(4, "first-unattributed"),
        ];
        let mut f = facts(&rows);
        f.programs.get_mut(&PROGRAM).unwrap()[0].rules =
            rules(serde_json::json!({"sale": {"percent_bps": 1000, "recurring": {"months": 1}}}));
        let origin = |id, status, days_before| Origin {
            id: ConversionId::from_db(id),
            status,
            agreement_id: Some(AGREEMENT),
            link_id: Some(LINK),
            occurred_at: t0() - Duration::days(days_before),
        };
        for (sub, o) in [
            ("paid", origin(90, S::Attributed, 20)),
            ("too-late", origin(91, S::Attributed, 40)),
            ("first-in-flight", origin(92, S::Received, 1)),
            ("first-unattributed", origin(93, S::Unattributed, 1)),
        ] {
            f.subscriptions.insert((PROGRAM, sub.into()), o);
        }
        let d = attribute(&rows, &f, &FraudSettings::default(), t0());
        let got: Vec<(ConversionId, S, Option<R>, Option<AttributionSource>)> = d
            .outcomes
            .iter()
            .map(|o| (o.id, o.status, o.reason, o.via))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    ConversionId::from_db(1),
                    S::Attributed,
                    None,
                    Some(AttributionSource::Subscription)
                ),
                (
                    ConversionId::from_db(2),
                    S::Attributed,
                    Some(R::RenewalNotPaid),
                    Some(AttributionSource::Subscription)
                ),
                // 3 waits: its first payment is being attributed elsewhere.
                (
                    ConversionId::from_db(4),
                    S::Unattributed,
                    Some(R::SubscriptionNotAttributed),
                    None
                ),
            ]
        );
        assert_eq!(d.outcomes[0].link_id, Some(LINK));
        let amounts: Vec<i64> = d.bookings.iter().map(|b| b.amount_minor).collect();
        assert_eq!(
            amounts,
            vec![500, 500],
            "only the renewal within a month earns"
        );
        let applied = d.bookings[0].rule.renewal.as_ref().unwrap();
        assert_eq!(
            (applied.first_conversion_id, applied.months),
            (ConversionId::from_db(90), 1)
        );
    }

    #[test]
    fn a_batchs_sales_climb_the_tier_in_claim_order_and_reach_a_bonus_once() {
        let rows: Vec<Claimed> = (1..=3)
            .map(|id| row(id, Event::Sale, 10_000, None, Some("AYU10")))
            .collect();
        let mut f = facts(&rows);
        f.programs.get_mut(&PROGRAM).unwrap()[0].rules = rules(serde_json::json!({"sale": {
            "percent_bps": 1000,
            "tiers": {"by": "count", "steps": [{"from": 3, "percent_bps": 2000}]},
            "bonuses": [{"by": "count", "at": 3, "flat_minor": 501}]
        }}));
        // One sale of November was counted before this batch.
        f.months.insert(
            (AGREEMENT, november()),
            MonthState {
                sales: 1,
                revenue_minor: 5_000,
                ..MonthState::default()
            },
        );
        let d = attribute(&rows, &f, &FraudSettings::default(), t0());
        let got: Vec<(i64, CommissionKind, i64, i64, Option<&str>)> = d
            .bookings
            .iter()
            .map(|b| {
                (
                    b.conversion_id.get(),
                    b.kind,
                    b.total_minor,
                    b.amount_minor,
                    b.once_key.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, CommissionKind::Conversion, 1_000, 500, None),
                (1, CommissionKind::Conversion, 1_000, 500, None),
                (2, CommissionKind::Conversion, 2_000, 1_000, None),
                (2, CommissionKind::Conversion, 2_000, 1_000, None),
                (2, CommissionKind::Bonus, 501, 251, Some("bonus:count:3")),
                (2, CommissionKind::Bonus, 501, 250, Some("bonus:count:3")),
                (3, CommissionKind::Conversion, 2_000, 1_000, None),
                (3, CommissionKind::Conversion, 2_000, 1_000, None),
            ]
        );
        let tier = d.bookings[2].rule.tier.as_ref().unwrap();
        assert_eq!(
            (tier.step, tier.month_sales, tier.month),
            (1, 3, november())
        );
        assert!(
            d.bookings
                .iter()
                .all(|b| b.rule_source == RuleSource::Program)
        );
        assert_eq!(
            d.months,
            vec![(
                (AGREEMENT, november()),
                MonthState {
                    sales: 4,
                    revenue_minor: 35_000,
                    tier: 1,
                    rated_sales: 3,
                    rated_base_minor: 30_000,
                    rated_minor: 5_000,
                }
            )]
        );
        // The bonus counts in the partners' reports as commission, not as a conversion.
        let bonus_deltas: Vec<&Delta> = d
            .deltas
            .iter()
            .filter(|x| x.partner.is_some() && x.conversions == 0)
            .collect();
        assert_eq!(bonus_deltas.len(), 2);
        assert!(bonus_deltas.iter().all(|x| x.revenue_minor == 0));
    }

    #[test]
    fn a_reserved_rank_stands_and_the_rest_take_the_next_ones() {
        let rows: Vec<Claimed> = (1..=3)
            .map(|id| row(id, Event::Sale, 10_000, None, Some("AYU10")))
            .collect();
        let mut f = facts(&rows);
        f.programs.get_mut(&PROGRAM).unwrap()[0].rules = rules(serde_json::json!({"sale": {
            "percent_bps": 1000,
            "tiers": {"by": "count", "steps": [{"from": 2, "percent_bps": 2000}]}
        }}));
        let key = (AGREEMENT, november());
        // Sale 2 was ranked first in an earlier attempt, and counted then.
        f.ranks
            .insert(ConversionId::from_db(2), (key, MonthState::default()));
        let counted = MonthState {
            sales: 1,
            revenue_minor: 10_000,
            rated_sales: 1,
            rated_base_minor: 10_000,
            rated_minor: 1_000,
            ..MonthState::default()
        };
        f.months.insert(key, counted);
        let d = attribute(&rows, &f, &FraudSettings::default(), t0());
        let totals: Vec<(i64, i64)> = d
            .bookings
            .iter()
            .map(|b| (b.conversion_id.get(), b.total_minor))
            .collect();
        assert_eq!(
            totals,
            vec![
                (1, 2_000),
                (1, 2_000),
                (2, 1_000),
                (2, 1_000),
                (3, 2_000),
                (3, 2_000)
            ]
        );
        let ranked: Vec<(i64, i64)> = d
            .ranks
            .iter()
            .map(|(id, (k, before))| {
                assert_eq!(*k, key);
                (id.get(), before.sales)
            })
            .collect();
        assert_eq!(ranked, vec![(1, 1), (3, 2)], "sale 2 is not ranked again");
        assert_eq!(d.months[0].1.sales, 3);
    }

    #[test]
    fn a_partner_who_left_earns_only_on_what_happened_before() {
        let c = click(10);
        let rows = [row(1, Event::Sale, 10_000, Some(&c), None)];
        let mut f = facts(&rows);
        // Partner 12 was deactivated a minute before the sale; 11 is active.
        f.members.insert(
            (PROGRAM, PartnerId::from_db(12)),
            (
                EnrollmentStatus::Deactivated,
                Some(t0() - Duration::minutes(1)),
            ),
        );
        let d = attribute(&rows, &f, &FraudSettings::default(), t0());
        let booked: Vec<(PartnerId, i64)> = d
            .bookings
            .iter()
            .map(|b| (b.partner_id, b.amount_minor))
            .collect();
        assert_eq!(
            booked,
            vec![(PartnerId::from_db(11), 500)],
            "12's half is not passed on"
        );
        assert_eq!(d.deltas[0].commission_minor, 500);
        // Ended after the sale: it still earns its half.
        f.members.insert(
            (PROGRAM, PartnerId::from_db(12)),
            (EnrollmentStatus::Banned, Some(t0() + Duration::minutes(1))),
        );
        let d = attribute(&rows, &f, &FraudSettings::default(), t0());
        assert_eq!(d.bookings.len(), 2);
        // Nobody left: not attributed.
        f.members.clear();
        let d = attribute(&rows, &f, &FraudSettings::default(), t0());
        assert_eq!(
            (d.outcomes[0].status, d.outcomes[0].reason),
            (
                ConversionStatus::Unattributed,
                Some(ConversionReason::PartnerInactive)
            )
        );
        assert!(d.bookings.is_empty() && d.deltas.is_empty());
    }
}
