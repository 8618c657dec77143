//! Deciding, without I/O: to whom each conversion's credit goes, under which
//! terms, and what each partner earns. `load` gathers the facts, this
//! decides, the worker books what was decided.

use super::fraud::Signals;
use crate::commissions::booking::NewCommission;
use crate::config::FraudSettings;
use crate::domain::click_id::ClickId;
use crate::domain::{
    AgreementId, AppliedRule, AttributionSource, CommissionRules, ConversionId, ConversionReason,
    ConversionStatus, Currency, EnrollmentStatus, Event, FraudSignal, LinkId, PartnerId, ProgramId,
    Rule, allocate, apply_rate, earns_at,
};
use crate::rollups::conversions::Delta;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

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
            sale_id: None,
        }
    }
}

/// The program settings attribution needs.
#[derive(Debug, Clone)]
pub struct ProgramTerms {
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
    fn in_force_at(&self, at: DateTime<Utc>) -> bool {
        self.valid_from.is_none_or(|f| at >= f) && self.valid_until.is_none_or(|u| at < u)
    }
}

/// A partner's membership of a program: its status, and when it ended.
pub type Membership = (EnrollmentStatus, Option<DateTime<Utc>>);

/// Everything the database knows that bears on a batch.
#[derive(Default)]
pub struct Facts {
    pub programs: HashMap<ProgramId, ProgramTerms>,
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
}

/// Where a conversion's credit goes before terms are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub via: AttributionSource,
    pub agreement_id: AgreementId,
    pub link_id: Option<LinkId>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub click_id: Option<&'a str>,
}

/// The coupon's or the click's agreement, or why there is none. A coupon
/// beats a click: influencer codes are how merchants expect it.
pub fn candidate<'a>(row: &'a Claimed, facts: &Facts) -> Result<Candidate<'a>, Outcome> {
    use ConversionReason as R;
    use ConversionStatus as S;
    let not = |status, reason| Outcome::new(row.id, status, Some(reason));
    let program = facts
        .programs
        .get(&row.program_id)
        .ok_or_else(|| not(S::Rejected, R::UnknownProgram))?;
    if let Some(code) = &row.coupon {
        let key = (row.program_id, code.trim().to_ascii_uppercase());
        if let Some(agreement_id) = facts.coupons.get(&key) {
            return Ok(Candidate {
                via: AttributionSource::Coupon,
                agreement_id: *agreement_id,
                link_id: None,
                clicked_at: None,
                click_id: None,
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
    })
}

/// What a batch decided: each conversion's outcome, the commissions to
/// book, and the changes to the daily roll-ups.
#[derive(Debug, Default)]
pub struct Decided {
    pub outcomes: Vec<Outcome>,
    pub bookings: Vec<NewCommission>,
    pub deltas: Vec<Delta>,
}

/// Decides every sale and lead of a batch (refunds are decided apart).
pub fn attribute(
    rows: &[Claimed],
    facts: &Facts,
    fraud: &FraudSettings,
    now: DateTime<Utc>,
) -> Decided {
    let mut d = Decided::default();
    for row in rows {
        match candidate(row, facts) {
            Err(outcome) => d.outcomes.push(outcome),
            Ok(cand) => decide_one(row, &cand, facts, fraud, now, &mut d),
        }
    }
    d
}

fn decide_one(
    row: &Claimed,
    cand: &Candidate<'_>,
    facts: &Facts,
    fraud: &FraudSettings,
    now: DateTime<Utc>,
    d: &mut Decided,
) {
    use ConversionReason as R;
    use ConversionStatus as S;
    let mut outcome = Outcome {
        via: Some(cand.via),
        link_id: cand.link_id,
        clicked_at: cand.clicked_at,
        agreement_id: Some(cand.agreement_id),
        ..Outcome::new(row.id, S::Unattributed, None)
    };
    let Some(terms) = facts.terms.get(&row.id) else {
        outcome.reason = Some(R::AgreementMissing);
        d.outcomes.push(outcome);
        return;
    };
    outcome.agreement_version = Some(terms.version);
    if !terms.in_force_at(row.occurred_at) {
        outcome.reason = Some(R::AgreementInactive);
        d.outcomes.push(outcome);
        return;
    }
    if row.event == Event::Lead && facts.signals.is_repeat_lead(row, cand.click_id) {
        outcome.status = S::Rejected;
        outcome.reason = Some(R::Duplicate);
        d.outcomes.push(outcome);
        return;
    }
    outcome.fraud = facts
        .signals
        .check(row, cand.click_id, cand.clicked_at, fraud);
    outcome.status = S::Attributed;
    let day_delta = |partner: Option<PartnerId>, commission: i64| Delta {
        program: row.program_id,
        partner,
        link: cand.link_id,
        day: row.occurred_at.date_naive(),
        conversions: 1,
        revenue_minor: if row.event == Event::Sale {
            row.amount_minor
        } else {
            0
        },
        commission_minor: commission,
    };
    let program = &facts.programs[&row.program_id];
    let Some(event) = row.event.earning() else {
        return; // refunds never reach here
    };
    let Some(rule) = terms.rules.overriding(&program.rules).get(event) else {
        outcome.reason = Some(R::NoRule);
        d.deltas.push(day_delta(None, 0));
        d.outcomes.push(outcome);
        return;
    };
    let Some((total, parts)) = split(rule, row.amount_minor, &terms.shares) else {
        outcome.status = S::Rejected;
        outcome.reason = Some(R::AmountOverflow);
        d.outcomes.push(outcome);
        return;
    };
    // A partner earns only while it is a member of the program (or on what
    // happened before its membership ended); its share is not passed on.
    let earning: Vec<((PartnerId, u32), i64)> = terms
        .shares
        .iter()
        .copied()
        .zip(parts)
        .filter(|((partner, _), _)| {
            facts
                .members
                .get(&(row.program_id, *partner))
                .is_some_and(|(status, ended)| earns_at(*status, *ended, row.occurred_at))
        })
        .collect();
    if earning.is_empty() {
        outcome.status = S::Unattributed;
        outcome.reason = Some(R::PartnerInactive);
        outcome.fraud.clear();
        d.outcomes.push(outcome);
        return;
    }
    d.deltas
        .push(day_delta(None, earning.iter().map(|(_, a)| a).sum()));
    for ((partner, share), amount) in earning {
        if amount == 0 {
            continue;
        }
        d.deltas.push(day_delta(Some(partner), amount));
        d.bookings.push(NewCommission {
            conversion_id: row.id,
            program_id: row.program_id,
            partner_id: partner,
            agreement_id: cand.agreement_id,
            agreement_version: terms.version,
            rule: AppliedRule { event, rule },
            base_minor: row.amount_minor,
            total_minor: total,
            share_bps: share as i32,
            amount_minor: amount,
            currency: row.currency,
            review: !outcome.fraud.is_empty(),
            fraud_reasons: outcome.fraud.clone(),
            approve_after: now + Duration::days(i64::from(program.hold_days)),
        });
    }
    d.outcomes.push(outcome);
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
            ProgramTerms {
                rules: rules(
                    serde_json::json!({"sale": {"percent_bps": 1000}, "lead": {"flat_minor": 200}}),
                ),
                window_days: 30,
                hold_days: 14,
            },
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
            AppliedRule {
                event: EarningEvent::Sale,
                rule: Rule::PercentBps(BasisPoints::new(1000).unwrap())
            }
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
        f.programs.get_mut(&PROGRAM).unwrap().rules =
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
