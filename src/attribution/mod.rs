//! The attribution worker: claims received conversions, attributes each to
//! a coupon or a click, and books commissions, all in one transaction.
//!
//! One step reads top to bottom: claim a batch (`load::claim`), load what
//! the database knows about it (`load::facts`: terms, subscriptions, fraud
//! signals, ranks reserved by an earlier attempt), decide without I/O
//! (`decide::attribute`, unit-tested; `pricing` inside it) — first
//! reserving the sales' ranks in their agreement-months when their rule has
//! tiers or bonuses (`months`) — book through the one booking path, apply
//! the batch's refunds (`refunds`, likewise load, decide, write), and
//! record every outcome.
//!
//! Several workers may run: each claims a batch with `FOR UPDATE SKIP
//! LOCKED`, so no two see the same conversion, and a commission is unique
//! per (conversion, partner), so nothing is booked twice even if one did.
//! A worker killed mid-batch rolls back; its batch is claimed again.

pub mod accepted;
pub mod decide;
pub mod fraud;
mod load;
mod months;
pub mod pricing;
mod refunds;
pub mod simulate;

use crate::background::{Every, Step};
use crate::commissions::booking::{self, NewCommission};
use crate::config::AttributionSettings;
use crate::conversions::aliases;
use crate::domain::{CommissionId, ConversionId, ConversionStatus, Event, KeyRing};
use crate::metrics::Metrics;
use crate::rollups::conversions as rollup;
use chrono::{DateTime, Utc};
use decide::{Claimed, Outcome};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

pub struct Attributor {
    db: PgPool,
    keys: KeyRing,
    metrics: Arc<Metrics>,
    settings: AttributionSettings,
    averages: fraud::SaleAverages,
    housekeeping: Every,
    /// Told after a commit that booked or decided something (outgoing
    /// webhooks have events to send).
    done: Option<Arc<Notify>>,
}

impl Attributor {
    pub fn new(
        db: PgPool,
        keys: KeyRing,
        metrics: Arc<Metrics>,
        settings: AttributionSettings,
    ) -> Self {
        Self {
            db,
            keys,
            metrics,
            settings,
            averages: fraud::SaleAverages::default(),
            housekeeping: Every::new(std::time::Duration::from_secs(5)),
            done: None,
        }
    }

    /// Tells `done`'s waiters after each commit that booked or decided
    /// something: the idle loops that send outgoing webhooks.
    pub fn waking(mut self, done: Arc<Notify>) -> Self {
        self.done = Some(done);
        self
    }

    /// One batch: claim, load, decide, book, commit. Busy when it claimed a
    /// full batch and got on with it; drained when it claimed less (the
    /// queue is empty now) or could do nothing with what it claimed.
    pub async fn step(&self) -> anyhow::Result<Step> {
        self.housekeeping_if_due().await?;
        let mut tx = self.db.begin().await?;
        let claimed = load::claim(&mut tx, self.settings.batch).await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Step::Idle);
        }
        let full = claimed.len() as i64 >= self.settings.batch;
        let (earning, refund_rows): (Vec<Claimed>, Vec<Claimed>) =
            claimed.into_iter().partition(|c| c.event != Event::Refund);

        let mut facts = load::facts(&mut tx, &earning, &self.keys, &self.averages).await?;
        let decided = months::decide(
            &self.db,
            &earning,
            &mut facts,
            &self.settings.fraud,
            Utc::now(),
        )
        .await?;
        let booked = booking::book(&mut tx, &decided.bookings).await?;
        months::forget(&mut tx, &facts, &decided).await?;
        let in_batch: Vec<ConversionId> = earning.iter().map(|c| c.id).collect();
        let refund_report = refunds::apply(&mut tx, &refund_rows, &in_batch).await?;

        let mut outcomes = decided.outcomes;
        outcomes.extend(refund_report.outcomes.iter().cloned());
        write_outcomes(&mut tx, &outcomes).await?;
        // Nothing decided and nothing booked: every row claimed was a refund
        // whose sale another worker holds. Claiming them again at once
        // would spin until that worker commits.
        let progressed = !outcomes.is_empty() || !booked.is_empty();
        // Refunds that arrived before these sales can now be applied.
        requeue_waiting_refunds(&mut tx).await?;
        // Last before the commit: every batch of a program's sales through
        // one link on one day adds to the same rollup rows, and holds
        // their locks until it commits; the other loops wait for them.
        let mut deltas = decided.deltas;
        deltas.extend(refund_report.deltas.iter().copied());
        rollup::add(&mut tx, &deltas).await?;
        tx.commit().await?;
        if progressed && let Some(done) = &self.done {
            done.notify_waiters();
        }

        self.count(&earning, &outcomes, &booked, &refund_report);
        self.trace(earning.iter().chain(&refund_rows), &outcomes);
        tracing::info!(
            claimed = earning.len() + refund_rows.len(),
            commissions = booked.len(),
            "attribution batch committed"
        );
        Ok(if full && progressed {
            Step::Busy
        } else {
            Step::Drained
        })
    }

    /// One line per conversion, under the webhook's request id: the trace
    /// from "received" to "booked". Debug, for the volume.
    fn trace<'a>(&self, rows: impl Iterator<Item = &'a Claimed>, outcomes: &[Outcome]) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let request_ids: HashMap<ConversionId, &Option<String>> =
            rows.map(|c| (c.id, &c.request_id)).collect();
        for o in outcomes {
            tracing::debug!(
                conversion = %o.id,
                request_id = request_ids.get(&o.id).and_then(|r| r.as_deref()).unwrap_or(""),
                status = %o.status,
                reason = o.reason.map(|r| r.as_str()).unwrap_or(""),
                fraud = ?o.fraud,
                "conversion processed"
            );
        }
    }

    fn count(
        &self,
        earning: &[Claimed],
        outcomes: &[Outcome],
        booked: &[(CommissionId, NewCommission)],
        refunds: &refunds::Report,
    ) {
        let m = &self.metrics;
        let by_id: HashMap<ConversionId, &Outcome> = outcomes.iter().map(|o| (o.id, o)).collect();
        for row in earning {
            let Some(o) = by_id.get(&row.id) else {
                continue;
            };
            let label = row.program_id.to_string();
            let attributed = o.status == ConversionStatus::Attributed;
            let outcome = if attributed && !o.fraud.is_empty() {
                "fraud_suspected"
            } else {
                o.status.as_str()
            };
            m.conversions
                .with_label_values(&[&label, row.event.as_str(), outcome])
                .inc();
            if attributed && row.event == Event::Sale {
                m.revenue_minor
                    .with_label_values(&[&label, row.currency.code()])
                    .inc_by(row.amount_minor as u64);
            }
        }
        for (_, c) in booked {
            let label = c.program_id.to_string();
            m.commission_minor
                .with_label_values(&[&label, c.currency.code(), "pending"])
                .inc_by(c.amount_minor as u64);
            m.commissions.with_label_values(&[&label, "pending"]).inc();
        }
        for (program, currency, reversed, count) in &refunds.reversed {
            let label = program.to_string();
            m.commission_minor
                .with_label_values(&[&label, currency.code(), "reversed"])
                .inc_by(*reversed as u64);
            m.commissions
                .with_label_values(&[&label, "reversed"])
                .inc_by(*count);
        }
        for o in &refunds.outcomes {
            if let Some(program) = refunds.programs.get(&o.id) {
                m.conversions
                    .with_label_values(&[&program.to_string(), "refund", o.status.as_str()])
                    .inc();
            }
        }
    }

    async fn housekeeping_if_due(&self) -> anyhow::Result<()> {
        if !self.housekeeping.due() {
            return Ok(());
        }
        let mut conn = self.db.acquire().await?;
        requeue_waiting_refunds(&mut conn).await?;
        drop(conn);
        let kept_since = Utc::now() - chrono::Duration::days(aliases::KEPT_DAYS);
        aliases::purge(&self.db, kept_since).await?;
        self.measure().await
    }

    /// Sets the attribution queue gauges, and those of the refunds waiting
    /// for their sale (`refunds_waiting`): a refund of an order whose sale
    /// never arrives (another order id, a sale sent elsewhere) waits
    /// forever, and its partners' commissions stay unreversed, so its age is
    /// watched (alert `MitraRefundsWaiting`). The oldest of each is the one
    /// with the lowest id (ids are handed out as conversions arrive), looked
    /// up alone: joined to its queue, the planner may read all of
    /// `conversions`.
    pub async fn measure(&self) -> anyhow::Result<()> {
        let received = sqlx::query!(
            r#"select (select count(*) from attribution_queue) as "depth!",
                      extract(epoch from now() - (select received_at from conversions
                          where id = (select min(conversion_id) from attribution_queue)))::float8 as age"#
        )
        .fetch_one(&self.db)
        .await?;
        self.metrics
            .queue("attribution", received.depth, received.age);
        let waiting = sqlx::query!(
            r#"select (select count(*) from refunds_waiting) as "depth!",
                      extract(epoch from now() - (select received_at from conversions
                          where id = (select min(conversion_id) from refunds_waiting)))::float8 as age"#
        )
        .fetch_one(&self.db)
        .await?;
        self.metrics
            .queue("refunds_waiting", waiting.depth, waiting.age);
        Ok(())
    }
}

/// Records each conversion's outcome. `c.id = any($1)` repeats the join's
/// ids as an index condition: joined to `unnest` alone, the planner (its
/// statistics behind the table's growth) hashed a scan of the whole table
/// for every batch.
async fn write_outcomes(tx: &mut PgConnection, outcomes: &[Outcome]) -> Result<(), sqlx::Error> {
    if outcomes.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        r#"
        update conversions c set
            status = u.status, reason = u.reason,
            fraud_reasons = coalesce(string_to_array(nullif(u.fraud, ''), ','), '{}'),
            attributed_via = u.via, link_id = u.link_id, clicked_at = u.clicked_at,
            agreement_id = u.agreement_id, agreement_version = u.version, sale_id = u.sale_id,
            program_version = u.program_version,
            processed_at = case when u.status = 'waiting' then null else now() end
        from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                    $7::timestamptz[], $8::bigint[], $9::int[], $10::bigint[], $11::int[])
             as u(id, status, reason, fraud, via, link_id, clicked_at, agreement_id, version, sale_id,
                  program_version)
        where c.id = u.id and c.id = any($1)
        "#,
        &outcomes.iter().map(|o| o.id.get()).collect::<Vec<_>>(),
        &outcomes.iter().map(|o| o.status.as_str()).collect::<Vec<_>>() as &[&str],
        &outcomes.iter().map(|o| o.reason.map(|r| r.as_str())).collect::<Vec<_>>() as &[Option<&str>],
        &outcomes
            .iter()
            .map(|o| o.fraud.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>(),
        &outcomes.iter().map(|o| o.via.map(|v| v.as_str())).collect::<Vec<_>>() as &[Option<&str>],
        &outcomes.iter().map(|o| o.link_id.map(|l| l.get())).collect::<Vec<_>>() as &[Option<i64>],
        &outcomes.iter().map(|o| o.clicked_at).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
        &outcomes.iter().map(|o| o.agreement_id.map(|a| a.get())).collect::<Vec<_>>() as &[Option<i64>],
        &outcomes.iter().map(|o| o.agreement_version).collect::<Vec<_>>() as &[Option<i32>],
        &outcomes.iter().map(|o| o.sale_id.map(|s| s.get())).collect::<Vec<_>>() as &[Option<i64>],
        &outcomes.iter().map(|o| o.program_version).collect::<Vec<_>>() as &[Option<i32>],
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Puts refunds that waited for their sale back in the queue once the sale
/// has been processed.
///
/// It runs after every batch, so it must cost next to nothing when no
/// refund waits: the waiting refunds drive (`refunds_waiting`, which
/// triggers keep to the conversions waiting; the status change puts the
/// refund back in `attribution_queue`), as an array of ids (joined to it,
/// the planner read every refund through `conversions_refund_order`), and
/// each looks its sale up by order. Written as `exists`, the planner could
/// turn it around (a semi-join), and with the table's statistics behind its
/// growth it did: it read every processed sale of the table per batch to
/// find none waiting (benches/conversions_load.sh, 18-31 ms a batch). A
/// scalar subquery cannot be turned into a join.
async fn requeue_waiting_refunds(tx: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"
        update conversions r set status = 'received', reason = null
        where r.id = any (array(select conversion_id from refunds_waiting))
          and r.status = 'waiting' and r.event = 'refund'
          and (select true from conversions s
               where s.program_id = r.program_id and s.order_id = r.order_id
                 and s.event = 'sale' and s.status in ('attributed', 'unattributed', 'rejected')
               limit 1)
        "#
    )
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}
