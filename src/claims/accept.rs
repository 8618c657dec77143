//! Accepting a claim: what it changes in the ledger.
//!
//! - untracked: the sale is priced as attribution would have priced it
//!   (`attribution::accepted`: the terms in force at the claimed date, the
//!   order's lines, the agreement's month with its tiers, milestones and
//!   re-rating, members only) and booked through the one booking path
//!   (`commissions::booking::book`); the conversion records that it came
//!   from the claim (`attributed_via: claim`). A sale the shop reported but
//!   that was not attributed (no click, say) is that conversion; otherwise a
//!   conversion is made from the claim.
//! - incorrect: an `adjusted` ledger entry brings the commission to the
//!   amount accepted (once paid, a shortfall is due in the next payout and an
//!   excess is carried as a debt, as refunds are).
//! - declined: the reversed commission is reinstated, pending again, for its
//!   hold period.

use super::{ClaimError, Locked, lock_open, record};
use crate::attribution::accepted::{self, PriceError};
use crate::commissions::booking;
use crate::commissions::decisions;
use crate::commissions::ledger::{Entry, append};
use crate::commissions::reasons::LedgerReason;
use crate::domain::{
    AgreementId, Bucket, ClaimAction, ClaimId, ClaimKind, CommissionKind, CommissionStatus,
    ConversionId, ConversionReason, ConversionStatus, Item, LedgerKind, LinkId,
};
use crate::rollups::conversions::{self as rollup, Delta};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
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
    let reason = LedgerReason::ClaimAccepted(id).to_string();
    let conversion = match claim.kind {
        ClaimKind::Untracked => book_untracked(tx, &claim, amount_minor).await?,
        ClaimKind::Incorrect | ClaimKind::Declined => {
            let hold_days = sqlx::query_scalar!(
                "select hold_days from programs where id = $1",
                claim.program_id.get()
            )
            .fetch_one(&mut *tx)
            .await?;
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
    items: Option<Json<Vec<Item>>>,
    subscription_id: Option<String>,
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
    /// The order's lines, when the shop reported them.
    items: Option<Vec<Item>>,
    /// The subscription the shop reported it under: a renewal is priced as one.
    subscription_id: Option<String>,
}

async fn book_untracked(
    tx: &mut PgConnection,
    claim: &Locked,
    amount_override: Option<i64>,
) -> Result<ConversionId, ClaimError> {
    let reported = match &claim.order_id {
        Some(order_id) => load_reported(tx, claim, order_id).await?,
        None => None,
    };
    let sale = the_sale(claim, reported, amount_override)?;
    let agreement = agreement_of(tx, claim).await?;
    // Stored unattributed until priced: the agreement's month, if pricing
    // starts it, counts the agreement's attributed sales.
    let conversion = match sale.existing {
        Some(id) => id,
        None => store_claimed(tx, claim, &sale).await?,
    };
    let priced = accepted::price(
        tx,
        &accepted::Sale {
            conversion_id: conversion,
            program_id: claim.program_id,
            agreement_id: agreement,
            amount_minor: sale.amount_minor,
            currency: claim.currency,
            items: sale.items.as_deref(),
            occurred_at: sale.at,
            subscription_id: sale.subscription_id.as_deref(),
        },
        Utc::now(),
    )
    .await
    .map_err(refusal)?;
    if priced.earned.bookings.is_empty() {
        return Err(ClaimError::Conflict(
            "nobody in the agreement earns from this sale".into(),
        ));
    }
    write_booking(tx, claim, &sale, conversion, agreement, &priced).await?;
    Ok(conversion)
}

/// Why an accepted sale cannot be booked, in the claim's words.
fn refusal(e: PriceError) -> ClaimError {
    use ConversionReason as R;
    match e {
        PriceError::Earns(R::AgreementInactive) => {
            ClaimError::Conflict("the agreement was not in force on the sale's date".into())
        }
        PriceError::Earns(R::NoRule) => {
            ClaimError::Conflict("the agreement has no commission rule for sales".into())
        }
        PriceError::Earns(R::PartnerInactive) => {
            ClaimError::Conflict("nobody in the agreement earns from this sale".into())
        }
        PriceError::Earns(R::AmountOverflow) => {
            ClaimError::Invalid("amount_minor", "the commission overflows".into())
        }
        PriceError::Earns(R::RenewalNotPaid) => ClaimError::Conflict(
            "the order renews a subscription past the months its rule pays renewals for".into(),
        ),
        PriceError::RenewsAnotherAgreements(_) => ClaimError::Conflict(
            "the order renews a subscription whose first payment went to another agreement, \
             which its renewals follow"
                .into(),
        ),
        PriceError::Earns(reason) => ClaimError::Conflict(format!(
            "the sale earns nothing under the agreement ({})",
            reason.as_str()
        )),
        PriceError::Db(e) => ClaimError::Db(sqlx::Error::Protocol(format!("{e:#}"))),
    }
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
                  occurred_at, link_id as "link_id: LinkId", items as "items: Json<Vec<Item>>",
                  subscription_id,
                  exists(select 1 from commissions c where c.conversion_id = v.id) as "booked!"
           from conversions v
           where program_id = $1 and order_id = $2 and event = 'sale' for update"#,
        claim.program_id.get(),
        order_id
    )
    .fetch_optional(&mut *tx)
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
            items: r.items.map(|i| i.0),
            subscription_id: r.subscription_id,
        }),
        None => Ok(Sale {
            existing: None,
            amount_minor: amount_override.unwrap_or(claimed_amount),
            at: claimed_at,
            link: None,
            items: None,
            subscription_id: None,
        }),
    }
}

/// Stores the claimed sale the shop never reported, unattributed until it
/// is priced.
async fn store_claimed(
    tx: &mut PgConnection,
    claim: &Locked,
    sale: &Sale,
) -> Result<ConversionId, ClaimError> {
    sqlx::query_scalar!(
        r#"insert into conversions
               (program_id, idempotency_key, order_id, event, amount_minor, currency,
                occurred_at, status)
           values ($1, $2, $3, 'sale', $4, $5, $6, 'unattributed')
           returning id as "id: ConversionId""#,
        claim.program_id.get(),
        format!("claim:{}", claim.id),
        claim.order_id.as_deref(),
        sale.amount_minor,
        claim.currency.code(),
        sale.at,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
            ClaimError::Conflict("the shop reported the order meanwhile: accept again".into())
        }
        _ => ClaimError::Db(e),
    })
}

/// Writes the booking as attribution writes a batch's: the commissions
/// through the one booking path, then the conversion's outcome (so its
/// `conversion.attributed` event names the partners it pays), then the
/// report roll-ups.
async fn write_booking(
    tx: &mut PgConnection,
    claim: &Locked,
    sale: &Sale,
    conversion: ConversionId,
    agreement: AgreementId,
    priced: &accepted::Priced,
) -> Result<(), ClaimError> {
    let bookings = &priced.earned.bookings;
    booking::book(tx, bookings).await?;
    sqlx::query!(
        "update conversions set status = 'attributed', reason = null, attributed_via = 'claim',
                agreement_id = $2, agreement_version = $3, program_version = $4,
                processed_at = now()
         where id = $1",
        conversion.get(),
        agreement.get(),
        priced.agreement_version,
        priced.program_version
    )
    .execute(&mut *tx)
    .await?;
    let day = sale.at.date_naive();
    let delta = |partner, commission, counted: bool| Delta {
        program: claim.program_id,
        partner,
        link: sale.link,
        day,
        conversions: i64::from(counted),
        revenue_minor: if counted { sale.amount_minor } else { 0 },
        commission_minor: commission,
    };
    let mut deltas = vec![delta(
        None,
        bookings.iter().map(|b| b.amount_minor).sum(),
        true,
    )];
    deltas.extend(bookings.iter().map(|b| {
        delta(
            Some(b.partner_id),
            b.amount_minor,
            b.kind == CommissionKind::Conversion,
        )
    }));
    rollup::add(tx, &deltas).await?;
    Ok(())
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
    use crate::domain::{Currency, PartnerId, ProgramId};

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
            items: None,
            subscription_id: None,
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
                link: None,
                items: None,
                subscription_id: None,
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
}
