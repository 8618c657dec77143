//! Accepting a claim: what it changes in the ledger.
//!
//! - untracked: the sale is booked through the one booking path
//!   (`commissions::booking::book`) under the agreement version in force at
//!   the claimed date, for every partner of the agreement as attribution
//!   would have; the conversion records that it came from the claim
//!   (`attributed_via: claim`). A sale the shop reported but that was not
//!   attributed (no click, say) is that conversion; otherwise a conversion is
//!   made from the claim.
//! - incorrect: an `adjusted` ledger entry brings the commission to the
//!   amount accepted (once paid, a shortfall is due in the next payout and an
//!   excess is carried as a debt, as refunds are).
//! - declined: the reversed commission is reinstated, pending again, for its
//!   hold period.

use super::{ClaimError, Locked, lock_open, record};
use crate::attribution::decide::split;
use crate::commissions::booking::{self, NewCommission};
use crate::commissions::decisions;
use crate::commissions::ledger::{Entry, append};
use crate::commissions::reasons::LedgerReason;
use crate::domain::{
    AgreementId, AppliedRule, Bucket, ClaimAction, ClaimId, ClaimKind, CommissionKind,
    CommissionRules, CommissionStatus, ConversionId, ConversionStatus, EarningEvent,
    EnrollmentStatus, LedgerKind, LinkId, PartnerId, Rule, RuleSource, earns_at,
};
use crate::rollups::conversions::{self as rollup, Delta};
use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};

/// Accepts an open claim. `amount_minor` overrides what was claimed: the
/// sale's amount (untracked) or the commission's (incorrect, declined).
pub async fn accept(
    db: &PgPool,
    id: ClaimId,
    actor: &str,
    note: Option<&str>,
    amount_minor: Option<i64>,
) -> Result<(), ClaimError> {
    let mut tx = db.begin().await?;
    accept_in(&mut tx, id, actor, note, amount_minor).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn accept_in(
    tx: &mut PgConnection,
    id: ClaimId,
    actor: &str,
    note: Option<&str>,
    amount_minor: Option<i64>,
) -> Result<(), ClaimError> {
    let claim = lock_open(tx, id).await?;
    let hold_days = sqlx::query_scalar!(
        "select hold_days from programs where id = $1",
        claim.program_id.get()
    )
    .fetch_one(&mut *tx)
    .await?;
    let reason = LedgerReason::ClaimAccepted(id).to_string();
    let conversion = match claim.kind {
        ClaimKind::Untracked => book_untracked(tx, &claim, amount_minor, hold_days).await?,
        ClaimKind::Incorrect | ClaimKind::Declined => {
            correct(tx, &claim, amount_minor, hold_days, actor, &reason).await?
        }
    };
    sqlx::query!(
        "update claims set status = 'accepted', decision_note = $2, decided_by = $3,
                decided_at = now(), conversion_id = $4, updated_at = now()
         where id = $1",
        id.get(),
        note,
        actor,
        conversion.get()
    )
    .execute(&mut *tx)
    .await?;
    record(tx, id, ClaimAction::Accepted, actor, None, note).await?;
    Ok(())
}

/// The agreement a claim falls under: the one it names, or the partner's
/// only agreement in the program.
async fn agreement_of(tx: &mut PgConnection, claim: &Locked) -> Result<AgreementId, ClaimError> {
    if let Some(a) = claim.agreement_id {
        return Ok(a);
    }
    let found = sqlx::query_scalar!(
        r#"select distinct a.id as "id: AgreementId" from agreements a
           join agreement_partners ap on ap.agreement_id = a.id
           where a.program_id = $1 and ap.partner_id = $2"#,
        claim.program_id.get(),
        claim.partner_id.get()
    )
    .fetch_all(&mut *tx)
    .await?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(ClaimError::Conflict(
            "the partner has no agreement in the program".into(),
        )),
        many => Err(ClaimError::Invalid(
            "agreement_id",
            format!(
                "the partner has {} agreements in the program: the claim must name one",
                many.len()
            ),
        )),
    }
}

/// The shop's own report of a claimed order.
struct Reported {
    id: ConversionId,
    status: ConversionStatus,
    amount_minor: i64,
    occurred_at: DateTime<Utc>,
    link_id: Option<LinkId>,
    /// Whether it earned anyone a commission already.
    booked: bool,
}

/// The sale an untracked claim books.
#[derive(Debug, PartialEq)]
struct Sale {
    /// The shop's report of it, when it made one.
    existing: Option<ConversionId>,
    amount_minor: i64,
    at: DateTime<Utc>,
    link: Option<LinkId>,
}

/// The agreement's terms in force at the sale's date, and the program's
/// (`program_version`, `program_commission`).
struct Terms {
    version: i32,
    program_version: i32,
    commission: Option<serde_json::Value>,
    program_commission: serde_json::Value,
    partner_ids: Vec<i64>,
    share_bps: Vec<i32>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
}

/// A partner of the agreement, as enrolled in the program.
struct Member {
    partner_id: PartnerId,
    status: EnrollmentStatus,
    ended_at: Option<DateTime<Utc>>,
}

/// What the sale earns: the rule, the total, and each earning partner's
/// share and part.
#[derive(Debug, PartialEq)]
struct Earnings {
    rule: Rule,
    /// Whether the agreement's own rule or the program's produced it.
    source: RuleSource,
    total_minor: i64,
    parts: Vec<(PartnerId, u32, i64)>,
}

async fn book_untracked(
    tx: &mut PgConnection,
    claim: &Locked,
    amount_override: Option<i64>,
    hold_days: i32,
) -> Result<ConversionId, ClaimError> {
    let reported = match &claim.order_id {
        Some(order_id) => load_reported(tx, claim, order_id).await?,
        None => None,
    };
    let sale = the_sale(claim, reported, amount_override)?;
    let agreement = agreement_of(tx, claim).await?;
    let terms = load_terms(tx, agreement, sale.at).await?;
    let members = sqlx::query_as!(
        Member,
        r#"select partner_id as "partner_id!: PartnerId", status as "status: EnrollmentStatus",
                  ended_at
           from enrollments where program_id = $1 and partner_id = any($2)"#,
        claim.program_id.get(),
        &terms.partner_ids
    )
    .fetch_all(&mut *tx)
    .await?;
    let earnings = earnings(&terms, &members, &sale)?;
    write_booking(
        tx,
        claim,
        &sale,
        agreement,
        (terms.version, terms.program_version),
        &earnings,
        hold_days,
    )
    .await
}

/// The shop's report of the order, locked, if it sent one.
async fn load_reported(
    tx: &mut PgConnection,
    claim: &Locked,
    order_id: &str,
) -> Result<Option<Reported>, ClaimError> {
    Ok(sqlx::query_as!(
        Reported,
        r#"select id as "id: ConversionId", status as "status: ConversionStatus", amount_minor,
                  occurred_at, link_id as "link_id: LinkId",
                  exists(select 1 from commissions c where c.conversion_id = v.id) as "booked!"
           from conversions v
           where program_id = $1 and order_id = $2 and event = 'sale' for update"#,
        claim.program_id.get(),
        order_id
    )
    .fetch_optional(&mut *tx)
    .await?)
}

/// The version in force at the sale's date, chosen as attribution chooses.
async fn load_terms(
    tx: &mut PgConnection,
    agreement: AgreementId,
    at: DateTime<Utc>,
) -> Result<Terms, ClaimError> {
    Ok(sqlx::query_as!(
        Terms,
        r#"select t.version as "version!", p.version as "program_version!", t.commission,
                  p.commission as "program_commission!",
                  t.partner_ids as "partner_ids!", t.share_bps as "share_bps!",
                  t.valid_from, t.valid_until
           from agreement_terms t
           join agreements a on a.id = t.agreement_id
           join program_versions p on p.program_id = a.program_id and p.version = (
               select pv.version from program_versions pv where pv.program_id = a.program_id
               order by case when pv.created_at <= $2 then pv.version else -pv.version end desc
               limit 1)
           where t.agreement_id = $1 and t.version = (
               select v.version from agreement_versions v where v.agreement_id = $1
               order by case when v.created_at <= $2 then v.version else -v.version end desc
               limit 1)"#,
        agreement.get(),
        at
    )
    .fetch_one(&mut *tx)
    .await?)
}

/// Decides, without I/O, which sale is booked: the shop's report of the
/// order when it made one that was not attributed, else the claim's.
fn the_sale(
    claim: &Locked,
    reported: Option<Reported>,
    amount_override: Option<i64>,
) -> Result<Sale, ClaimError> {
    let (Some(_), Some(claimed_at), Some(claimed_amount)) =
        (&claim.order_id, claim.occurred_at, claim.amount_minor)
    else {
        return Err(ClaimError::Conflict("the claim names no sale".into()));
    };
    match reported {
        Some(r) if r.booked => Err(ClaimError::Conflict(
            "the order is booked already: open an incorrect claim about its commission".into(),
        )),
        Some(r)
            if matches!(
                r.status,
                ConversionStatus::Received | ConversionStatus::Waiting
            ) =>
        {
            Err(ClaimError::Conflict(
                "the shop's report of the order waits for attribution: try again shortly".into(),
            ))
        }
        Some(r) => Ok(Sale {
            existing: Some(r.id),
            amount_minor: r.amount_minor,
            at: r.occurred_at,
            link: r.link_id,
        }),
        None => Ok(Sale {
            existing: None,
            amount_minor: amount_override.unwrap_or(claimed_amount),
            at: claimed_at,
            link: None,
        }),
    }
}

/// Decides, without I/O, what the sale earns under `terms`: each partner
/// as attribution would pay it, while it is (or was, at the date) a member.
fn earnings(terms: &Terms, members: &[Member], sale: &Sale) -> Result<Earnings, ClaimError> {
    if terms.valid_from.is_some_and(|f| sale.at < f)
        || terms.valid_until.is_some_and(|u| sale.at >= u)
    {
        return Err(ClaimError::Conflict(
            "the agreement was not in force on the sale's date".into(),
        ));
    }
    let parse = |v: &serde_json::Value| {
        CommissionRules::parse(v).map_err(|e| {
            ClaimError::Db(sqlx::Error::Protocol(format!(
                "stored rules are invalid: {e}"
            )))
        })
    };
    let program_rules = parse(&terms.program_commission)?;
    let own = match &terms.commission {
        Some(v) => parse(v)?,
        None => CommissionRules::default(),
    };
    let (rule, source) = own
        .rule_over(&program_rules, EarningEvent::Sale)
        .map(|(rule, source)| (rule.rate, source))
        .ok_or_else(|| {
            ClaimError::Conflict("the agreement has no commission rule for sales".into())
        })?;
    let shares: Vec<(PartnerId, u32)> = terms
        .partner_ids
        .iter()
        .zip(&terms.share_bps)
        .map(|(p, s)| (PartnerId::from_db(*p), *s as u32))
        .collect();
    let (total_minor, parts) = split(rule, sale.amount_minor, &shares)
        .ok_or_else(|| ClaimError::Invalid("amount_minor", "the commission overflows".into()))?;
    let earns = |p: PartnerId| {
        members
            .iter()
            .any(|m| m.partner_id == p && earns_at(m.status, m.ended_at, sale.at))
    };
    let parts: Vec<(PartnerId, u32, i64)> = shares
        .iter()
        .zip(parts)
        .filter(|((p, _), part)| *part > 0 && earns(*p))
        .map(|((p, share), part)| (*p, *share, part))
        .collect();
    if parts.is_empty() {
        return Err(ClaimError::Conflict(
            "nobody in the agreement earns from this sale".into(),
        ));
    }
    Ok(Earnings {
        rule,
        source,
        total_minor,
        parts,
    })
}

/// Writes the booking: the conversion (the shop's report, now attributed
/// through the claim, or a new one), its commissions through the one
/// booking path, and the report roll-ups.
async fn write_booking(
    tx: &mut PgConnection,
    claim: &Locked,
    sale: &Sale,
    agreement: AgreementId,
    (version, program_version): (i32, i32),
    earnings: &Earnings,
    hold_days: i32,
) -> Result<ConversionId, ClaimError> {
    let conversion = match sale.existing {
        Some(id) => {
            sqlx::query!(
                "update conversions set status = 'attributed', reason = null, attributed_via = 'claim',
                        agreement_id = $2, agreement_version = $3, program_version = $4,
                        processed_at = now()
                 where id = $1",
                id.get(),
                agreement.get(),
                version,
                program_version
            )
            .execute(&mut *tx)
            .await?;
            id
        }
        None => sqlx::query_scalar!(
            r#"insert into conversions
                   (program_id, idempotency_key, order_id, event, amount_minor, currency,
                    occurred_at, status, attributed_via, agreement_id, agreement_version,
                    program_version, processed_at)
               values ($1, $2, $3, 'sale', $4, $5, $6, 'attributed', 'claim', $7, $8, $9, now())
               returning id as "id: ConversionId""#,
            claim.program_id.get(),
            format!("claim:{}", claim.id),
            claim.order_id.as_deref(),
            sale.amount_minor,
            claim.currency.code(),
            sale.at,
            agreement.get(),
            version,
            program_version
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
                ClaimError::Conflict("the shop reported the order meanwhile: accept again".into())
            }
            _ => ClaimError::Db(e),
        })?,
    };
    let approve_after = Utc::now() + Duration::days(i64::from(hold_days));
    let new: Vec<NewCommission> = earnings
        .parts
        .iter()
        .map(|&(partner_id, share, part)| NewCommission {
            conversion_id: conversion,
            program_id: claim.program_id,
            partner_id,
            agreement_id: agreement,
            agreement_version: version,
            program_version,
            kind: CommissionKind::Conversion,
            rule_source: earnings.source,
            period: None,
            once_key: None,
            rule: AppliedRule::plain(EarningEvent::Sale, earnings.rule),
            base_minor: sale.amount_minor,
            total_minor: earnings.total_minor,
            share_bps: share as i32,
            amount_minor: part,
            currency: claim.currency,
            review: false,
            fraud_reasons: Vec::new(),
            approve_after,
        })
        .collect();
    booking::book(tx, &new).await?;
    let day = sale.at.date_naive();
    let delta = |partner, commission| Delta {
        program: claim.program_id,
        partner,
        link: sale.link,
        day,
        conversions: 1,
        revenue_minor: sale.amount_minor,
        commission_minor: commission,
    };
    let mut deltas = vec![delta(None, new.iter().map(|n| n.amount_minor).sum())];
    deltas.extend(
        new.iter()
            .map(|n| delta(Some(n.partner_id), n.amount_minor)),
    );
    rollup::add(tx, &deltas).await?;
    Ok(conversion)
}

/// An incorrect claim: the commission brought to the accepted amount. A
/// declined claim: the reversed commission reinstated at it.
async fn correct(
    tx: &mut PgConnection,
    claim: &Locked,
    amount_override: Option<i64>,
    hold_days: i32,
    actor: &str,
    reason: &str,
) -> Result<ConversionId, ClaimError> {
    let id = claim
        .commission_id
        .ok_or_else(|| ClaimError::Conflict("the claim names no commission".into()))?;
    let held = decisions::lock(tx, &[id])
        .await?
        .pop()
        .ok_or(ClaimError::NotFound("commission"))?;
    let target = match claim.kind {
        ClaimKind::Declined => amount_override
            .or(claim.expected_commission_minor)
            .unwrap_or(held.original_minor),
        _ => amount_override
            .or(claim.expected_commission_minor)
            .ok_or_else(|| {
                ClaimError::Invalid(
                    "amount_minor",
                    "name the commission's right amount: the claim gives none".into(),
                )
            })?,
    };
    let change = target - held.amount_minor;
    let (bucket, kind, status) = match (claim.kind, held.status) {
        (ClaimKind::Declined, CommissionStatus::Reversed) => (
            Bucket::Pending,
            LedgerKind::Adjusted,
            CommissionStatus::Pending,
        ),
        (ClaimKind::Declined, s) => {
            return Err(ClaimError::Conflict(format!(
                "the commission is {s}, not reversed"
            )));
        }
        (_, CommissionStatus::Reversed) => {
            return Err(ClaimError::Conflict(
                "the commission is reversed: a declined claim reinstates it".into(),
            ));
        }
        (_, CommissionStatus::Paid) if change < 0 => (
            Bucket::Approved,
            LedgerKind::Carried,
            CommissionStatus::Paid,
        ),
        // Paid already: what it was short is due in the next payout.
        (_, CommissionStatus::Paid) => (
            Bucket::Approved,
            LedgerKind::Adjusted,
            CommissionStatus::Paid,
        ),
        (_, s) => (
            s.bucket().unwrap_or(Bucket::Pending),
            LedgerKind::Adjusted,
            s,
        ),
    };
    if change == 0 || (target <= 0 && claim.kind == ClaimKind::Declined) {
        return Err(ClaimError::Conflict(
            "the commission already holds that amount".into(),
        ));
    }
    let entry = Entry {
        reason: Some(reason.to_owned()),
        ..held.entry(bucket, change, kind, actor)
    };
    append(tx, &[entry]).await?;
    let conv = sqlx::query!(
        r#"update commissions c set amount_minor = $2, status = $3, updated_at = now(),
                  review = case when $4 then false else c.review end,
                  approve_after = case when $4 then now() + make_interval(days => $5)
                                       else c.approve_after end
           from conversions v where c.id = $1 and v.id = c.conversion_id
           returning v.id as "id: ConversionId", v.occurred_at, v.link_id as "link_id: LinkId""#,
        id.get(),
        target,
        status.as_str(),
        claim.kind == ClaimKind::Declined,
        hold_days
    )
    .fetch_one(&mut *tx)
    .await?;
    let delta = |partner| Delta {
        program: claim.program_id,
        partner,
        link: conv.link_id,
        day: conv.occurred_at.date_naive(),
        conversions: 0,
        revenue_minor: 0,
        commission_minor: change,
    };
    rollup::add(tx, &[delta(None), delta(Some(held.partner_id))]).await?;
    Ok(conv.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, ProgramId};
    use serde_json::json;

    fn at(day: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-{day:02}T12:00:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn claim() -> Locked {
        Locked {
            id: ClaimId::from_db(1),
            program_id: ProgramId::from_db(1),
            partner_id: PartnerId::from_db(7),
            kind: ClaimKind::Untracked,
            order_id: Some("A-1".into()),
            occurred_at: Some(at(10)),
            amount_minor: Some(10_000),
            currency: Currency::parse("IDR").unwrap(),
            agreement_id: None,
            commission_id: None,
            expected_commission_minor: None,
        }
    }

    fn reported(status: ConversionStatus, booked: bool) -> Reported {
        Reported {
            id: ConversionId::from_db(5),
            status,
            amount_minor: 12_000,
            occurred_at: at(9),
            link_id: None,
            booked,
        }
    }

    #[test]
    fn the_shops_unattributed_report_is_the_sale_else_the_claim_is() {
        let sale = the_sale(&claim(), None, Some(9_000)).unwrap();
        assert_eq!(
            sale,
            Sale {
                existing: None,
                amount_minor: 9_000,
                at: at(10),
                link: None
            }
        );
        let unattributed = reported(ConversionStatus::Unattributed, false);
        let sale = the_sale(&claim(), Some(unattributed), Some(9_000)).unwrap();
        assert_eq!(
            (sale.existing, sale.amount_minor, sale.at),
            (Some(ConversionId::from_db(5)), 12_000, at(9))
        );
        let refused = |r: Reported| match the_sale(&claim(), Some(r), None) {
            Err(ClaimError::Conflict(m)) => m,
            other => panic!("{:?}", other.map(|s| s.amount_minor)),
        };
        assert!(
            refused(reported(ConversionStatus::Attributed, true))
                .starts_with("the order is booked")
        );
        assert!(
            refused(reported(ConversionStatus::Received, false)).contains("waits for attribution")
        );
    }

    fn terms(from: Option<DateTime<Utc>>) -> Terms {
        Terms {
            version: 2,
            program_version: 1,
            commission: Some(json!({"sale": {"percent_bps": 1000}})),
            program_commission: json!({"sale": {"flat_minor": 500}}),
            partner_ids: vec![7, 8, 9],
            share_bps: vec![5000, 3000, 2000],
            valid_from: from,
            valid_until: None,
        }
    }

    fn member(id: i64, status: EnrollmentStatus, ended_at: Option<DateTime<Utc>>) -> Member {
        Member {
            partner_id: PartnerId::from_db(id),
            status,
            ended_at,
        }
    }

    #[test]
    fn a_claimed_sale_pays_the_agreements_members_at_its_date_by_their_shares() {
        let sale = the_sale(&claim(), None, None).unwrap();
        let members = [
            member(7, EnrollmentStatus::Active, None),
            // Left after the sale: still earns from it.
            member(8, EnrollmentStatus::Deactivated, Some(at(11))),
            // Left before the sale: earns nothing.
            member(9, EnrollmentStatus::Deactivated, Some(at(5))),
        ];
        let got = earnings(&terms(None), &members, &sale).unwrap();
        assert_eq!(
            got,
            Earnings {
                rule: Rule::PercentBps(crate::domain::BasisPoints::new(1000).unwrap()),
                source: RuleSource::Agreement,
                total_minor: 1_000,
                parts: vec![
                    (PartnerId::from_db(7), 5000, 500),
                    (PartnerId::from_db(8), 3000, 300)
                ],
            }
        );
        match earnings(&terms(Some(at(11))), &members, &sale) {
            Err(ClaimError::Conflict(m)) => {
                assert_eq!(m, "the agreement was not in force on the sale's date")
            }
            other => panic!("{:?}", other.map(|e| e.total_minor)),
        }
    }
}
