//! Claims past their deadline: the worker applies each program's policy
//! (accept as claimed, or decline with `deadline_passed`) and counts the
//! claims that stay open past it in `mitra_claims_overdue{program}` (a
//! program that leaves them open, or a claim that cannot be accepted as it
//! stands: the worker writes why in its thread and leaves it to a person).

use super::accept::accept_in;
use super::{ClaimError, decline_in, record};
use crate::background::{Every, Step};
use crate::domain::{ClaimAction, ClaimId, ClaimReason, OverdueAction, ProgramId};
use crate::metrics::Metrics;
use sqlx::{Acquire, PgPool};
use std::sync::Arc;

pub const BATCH: i64 = 50;
/// Who the thread names for what the deadline decided.
pub const ACTOR: &str = "deadline";

pub struct Overdue {
    db: PgPool,
    metrics: Arc<Metrics>,
    gauges: Every,
}

impl Overdue {
    pub fn new(db: PgPool, metrics: Arc<Metrics>) -> Self {
        Self {
            db,
            metrics,
            gauges: Every::new(std::time::Duration::from_secs(5)),
        }
    }

    /// Applies the policy to one batch of claims past their deadline.
    pub async fn step(&self) -> anyhow::Result<Step> {
        let mut tx = self.db.begin().await?;
        let due = sqlx::query!(
            r#"select id as "id: ClaimId", overdue_action as "action: OverdueAction"
               from claims
               where status = 'open' and deadline_at <= now() and overdue_action <> 'none'
               order by deadline_at, id limit $1
               for update skip locked"#,
            BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        for claim in &due {
            // Each in a savepoint: one that cannot be decided this way is
            // left to a person, and the others go on.
            let mut one = tx.begin().await?;
            let done = match claim.action {
                OverdueAction::Accept => {
                    let note = "accepted: the program did not answer by the deadline";
                    accept_in(&mut one, claim.id, ACTOR, Some(note), None).await
                }
                OverdueAction::Decline => {
                    let note = "declined: the program did not answer by the deadline";
                    decline_in(
                        &mut one,
                        claim.id,
                        ACTOR,
                        ClaimReason::DeadlinePassed,
                        Some(note),
                    )
                    .await
                }
                OverdueAction::KeepOpen => Ok(()),
            };
            match done {
                Ok(()) => one.commit().await?,
                Err(ClaimError::Db(e)) => return Err(e.into()),
                Err(why) => {
                    one.rollback().await?;
                    let verb = match claim.action {
                        OverdueAction::Decline => "declined",
                        _ => "accepted",
                    };
                    let note = format!("could not be {verb} at the deadline: {why}");
                    record(
                        &mut tx,
                        claim.id,
                        ClaimAction::Commented,
                        ACTOR,
                        None,
                        Some(&note),
                    )
                    .await?;
                    sqlx::query!(
                        "update claims set overdue_action = 'none', updated_at = now() where id = $1",
                        claim.id.get()
                    )
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        // After deciding: what stays overdue is what the gauge shows.
        if self.gauges.due() {
            self.measure().await?;
        }
        Ok(if due.len() as i64 == BATCH {
            Step::Busy
        } else if due.is_empty() {
            Step::Idle
        } else {
            // Decided some: their webhooks are queued (see `startup`).
            Step::Drained
        })
    }

    /// Sets `mitra_claims_overdue{program}`: open claims past their deadline.
    pub async fn measure(&self) -> anyhow::Result<()> {
        let rows = sqlx::query!(
            r#"select program_id as "program_id: ProgramId", count(*) as "n!"
               from claims where status = 'open' and deadline_at <= now()
               group by program_id"#
        )
        .fetch_all(&self.db)
        .await?;
        let gauge = &self.metrics.claims_overdue;
        gauge.reset();
        for r in rows {
            gauge
                .with_label_values(&[&r.program_id.to_string()])
                .set(r.n);
        }
        Ok(())
    }
}
