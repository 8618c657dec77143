//! A person's decisions on pending commissions (approve early, reject with a
//! reason), and the approval the lifecycle worker makes when a hold ends.

use super::ledger::{Held, append, transfer};
use super::reasons::LedgerReason;
use crate::domain::{
    Bucket, CommissionId, CommissionStatus, Currency, LedgerKind, LinkId, PartnerId, ProgramId,
};
use crate::metrics::Metrics;
use crate::rollups::conversions::{self as rollup, Delta};
use sqlx::{PgConnection, PgPool};

/// A person's decision on one pending commission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Approve before the hold ends, or clear a review; the reason is optional.
    Approve(Option<&'a str>),
    /// Not owed: the reason is shown to the partner.
    Reject(&'a str),
}

/// Why a decision was not taken.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No such commission, or one of another program.
    #[error("no such commission")]
    NotFound,
    #[error("the commission is {0}, not pending")]
    NotPending(CommissionStatus),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The program a commission belongs to.
pub async fn program_of(db: &PgPool, id: CommissionId) -> Result<Option<ProgramId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select program_id as "id: ProgramId" from commissions where id = $1"#,
        id.get()
    )
    .fetch_optional(db)
    .await
}

/// A person decides on a pending commission (the API and the portal both
/// come here): `program` limits it to that program's commissions (`None`:
/// the admin, any program). Counts the decision in the metrics.
pub async fn decide(
    db: &PgPool,
    metrics: &Metrics,
    program: Option<ProgramId>,
    id: CommissionId,
    verdict: Verdict<'_>,
    actor: &str,
) -> Result<Held, DecideError> {
    let mut tx = db.begin().await?;
    let held = lock(&mut tx, &[id])
        .await?
        .pop()
        .filter(|c| program.is_none_or(|p| p == c.program_id))
        .ok_or(DecideError::NotFound)?;
    if held.status != CommissionStatus::Pending {
        return Err(DecideError::NotPending(held.status));
    }
    let label = held.program_id.to_string();
    let (bucket, counted) = match verdict {
        Verdict::Approve(reason) => {
            let early = LedgerReason::ApprovedEarly.to_string();
            let reason = reason.unwrap_or(&early);
            approve(&mut tx, std::slice::from_ref(&held), actor, Some(reason)).await?;
            ("approved", "approved")
        }
        Verdict::Reject(reason) => {
            reject(&mut tx, &held, actor, reason).await?;
            ("reversed", "rejected")
        }
    };
    tx.commit().await?;
    metrics
        .commission_minor
        .with_label_values(&[&label, held.currency.code(), bucket])
        .inc_by(held.amount_minor as u64);
    metrics
        .commissions
        .with_label_values(&[&label, counted])
        .inc();
    tracing::info!(commission = %id, %actor, decision = counted, "commission decided by hand");
    Ok(held)
}

/// Approves pending commissions (the lifecycle worker when their hold is
/// over, or a person early): status and entries in one go.
pub async fn approve(
    tx: &mut PgConnection,
    held: &[Held],
    actor: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    if held.is_empty() {
        return Ok(());
    }
    let entries: Vec<_> = held
        .iter()
        .flat_map(|c| {
            transfer(
                c,
                Bucket::Pending,
                Bucket::Approved,
                LedgerKind::Approved,
                actor,
                reason,
            )
        })
        .collect();
    append(tx, &entries).await?;
    let ids: Vec<i64> = held.iter().map(|c| c.id.get()).collect();
    sqlx::query!(
        "update commissions set status = 'approved', review = false, updated_at = now() where id = any($1)",
        &ids
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Locks commissions by id, in id order.
pub async fn lock(tx: &mut PgConnection, ids: &[CommissionId]) -> Result<Vec<Held>, sqlx::Error> {
    let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    sqlx::query_as!(
        Held,
        r#"select id as "id: CommissionId", program_id as "program_id: ProgramId",
                  partner_id as "partner_id: PartnerId", currency as "currency: Currency",
                  status as "status: CommissionStatus", amount_minor, original_minor
           from commissions where id = any($1) order by id for update"#,
        &ids
    )
    .fetch_all(&mut *tx)
    .await
}

/// Rejects a pending commission (a person's decision, with a reason): its
/// amount leaves the pending bucket, it becomes reversed, and the day's
/// report loses it.
pub async fn reject(
    tx: &mut PgConnection,
    c: &Held,
    actor: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let mut entry = c.entry(
        Bucket::Pending,
        -c.amount_minor,
        LedgerKind::Rejected,
        actor,
    );
    entry.reason = Some(reason.to_owned());
    append(tx, &[entry]).await?;
    let conv = sqlx::query!(
        r#"update commissions c set status = 'reversed', amount_minor = 0, review = false, updated_at = now()
           from conversions v where c.id = $1 and v.id = c.conversion_id
           returning v.occurred_at, v.link_id as "link_id: LinkId""#,
        c.id.get()
    )
    .fetch_one(&mut *tx)
    .await?;
    let delta = |partner| Delta {
        program: c.program_id,
        partner,
        link: conv.link_id,
        day: conv.occurred_at.date_naive(),
        conversions: 0,
        revenue_minor: 0,
        commission_minor: -c.amount_minor,
    };
    rollup::add(tx, &[delta(None), delta(Some(c.partner_id))]).await
}
