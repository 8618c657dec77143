//! The lifecycle worker: pending commissions whose hold is over become
//! approved. Commissions held for review wait for a person. Between
//! batches it takes the hourly balance checkpoint.

use super::ledger::Held;
use super::reasons::LedgerReason;
use super::{checkpoints, decisions};
use crate::background::{Every, Step};
use crate::domain::{CommissionId, CommissionStatus, Currency, PartnerId, ProgramId};
use crate::metrics::Metrics;
use sqlx::PgPool;
use std::sync::Arc;

pub const BATCH: i64 = 500;

pub struct Lifecycle {
    db: PgPool,
    metrics: Arc<Metrics>,
    gauges: Every,
    checkpoints: Every,
}

impl Lifecycle {
    pub fn new(db: PgPool, metrics: Arc<Metrics>) -> Self {
        Self {
            db,
            metrics,
            gauges: Every::new(std::time::Duration::from_secs(5)),
            // Checkpoints are hourly; looking every 5 minutes takes each soon
            // after its hour, and costs one small transaction when taken.
            checkpoints: Every::new(std::time::Duration::from_secs(300)),
        }
    }

    /// Approves one batch of due commissions. Several workers may run: each
    /// skips the rows another has locked, and the status check makes a
    /// second approval impossible.
    pub async fn step(&self) -> anyhow::Result<Step> {
        let mut tx = self.db.begin().await?;
        let due = sqlx::query_as!(
            Held,
            r#"select id as "id: CommissionId", program_id as "program_id: ProgramId",
                      partner_id as "partner_id: PartnerId", currency as "currency: Currency",
                      status as "status: CommissionStatus", amount_minor, original_minor
               from commissions
               where status = 'pending' and not review and approve_after <= now()
               order by id
               limit $1
               for update skip locked"#,
            BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            tx.commit().await?;
            // The gauges every 5 s, not at every idle poll.
            if self.gauges.due() {
                self.measure().await?;
            }
            if self.checkpoints.due()
                && let Some(through) = checkpoints::take(&self.db, None).await?
            {
                tracing::info!(%through, "balance checkpoint taken");
            }
            return Ok(Step::Idle);
        }
        let reason = LedgerReason::HoldPeriodOver.to_string();
        decisions::approve(&mut tx, &due, "worker", Some(&reason)).await?;
        tx.commit().await?;
        for c in &due {
            let label = c.program_id.to_string();
            self.metrics
                .commission_minor
                .with_label_values(&[&label, c.currency.code(), "approved"])
                .inc_by(c.amount_minor as u64);
            self.metrics
                .commissions
                .with_label_values(&[&label, "approved"])
                .inc();
        }
        Ok(if due.len() as i64 == BATCH {
            Step::Busy
        } else {
            Step::Idle
        })
    }

    /// Sets the lifecycle queue gauges: commissions due for approval now,
    /// and how long the oldest has been due.
    pub async fn measure(&self) -> anyhow::Result<()> {
        let row = sqlx::query!(
            r#"select count(*) as "depth!", extract(epoch from now() - min(approve_after))::float8 as age
               from commissions where status = 'pending' and not review and approve_after <= now()"#
        )
        .fetch_one(&self.db)
        .await?;
        self.metrics.queue("lifecycle", row.depth, row.age);
        Ok(())
    }
}
