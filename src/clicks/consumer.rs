//! The click consumer: reads the click stream as a consumer group, rolls the
//! clicks up into Postgres, acknowledges only after the commit, reclaims
//! what a crashed consumer left pending, and trims only what every group has
//! processed.
//!
//! One step applies several stream entries in one transaction. The entries'
//! ids are recorded in the same transaction, so an entry delivered twice (a
//! consumer died before acknowledging it) is applied once.

use super::record::{self, ClickEvent, STREAM};
use crate::background::{Every, Step};
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use crate::rollups::clicks::{self as rollup, ClickFact, Counts};
use chrono::DateTime;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamReadReply};
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// A stream entry: its id and the clicks it carries.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub events: Vec<ClickEvent>,
}

/// What one step applied, for metrics and tests.
#[derive(Debug, Default)]
pub struct Report {
    /// Entries applied now; the others had been applied before.
    pub applied_entries: usize,
    pub skipped_entries: usize,
    /// Totals per program.
    pub per_program: BTreeMap<i64, Counts>,
    /// Events naming a link that does not exist (or not in that program): dropped.
    pub invalid_events: usize,
}

/// A click entry pending this long with a consumer is taken over by another.
pub const RECLAIM_IDLE: Duration = Duration::from_secs(30);

/// The consumer group that feeds the roll-ups.
pub const GROUP: &str = "rollup";
/// Entries read per step.
const READ_COUNT: usize = 50;
/// How often trimming, gauges and purging run.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);

pub struct ClickConsumer {
    redis: RedisClient,
    db: PgPool,
    metrics: Arc<Metrics>,
    key: String,
    consumer: String,
    /// Entries pending this long with another consumer are taken over.
    reclaim_idle: Duration,
    /// Whether the group and this consumer are known to exist.
    joined: std::sync::atomic::AtomicBool,
    housekeeping: Every,
}

impl ClickConsumer {
    pub fn new(
        redis: RedisClient,
        db: PgPool,
        metrics: Arc<Metrics>,
        reclaim_idle: Duration,
    ) -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "mitra".into());
        let consumer = format!(
            "{host}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Self {
            key: redis.key(STREAM),
            redis,
            db,
            metrics,
            consumer,
            reclaim_idle,
            joined: std::sync::atomic::AtomicBool::new(false),
            housekeeping: Every::new(HOUSEKEEPING_EVERY),
        }
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Creates the stream and the group if they do not exist yet.
    pub async fn ensure_group(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            other => other?,
        }
        // Join by name at once, so XINFO CONSUMERS lists every worker, busy or not.
        let _: i64 = redis::cmd("XGROUP")
            .arg("CREATECONSUMER")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&self.consumer)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Forgets consumers that left: nothing pending and silent for an hour
    /// (a worker that restarted comes back under a new name).
    async fn forget_departed_consumers(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let consumers: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&self.key)
            .arg(GROUP)
            .query_async(&mut conn)
            .await?;
        for c in consumers.consumers {
            if c.pending == 0 && c.idle > 3_600_000 && c.name != self.consumer {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&self.key)
                    .arg(GROUP)
                    .arg(&c.name)
                    .query_async(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// One step: reclaim abandoned entries, else read new ones; apply them;
    /// acknowledge them. Then, now and then, housekeeping.
    pub async fn step(&self) -> anyhow::Result<Step> {
        use std::sync::atomic::Ordering;
        if !self.joined.load(Ordering::Relaxed) {
            self.ensure_group().await?;
            self.joined.store(true, Ordering::Relaxed);
        }
        let result = self.step_joined().await;
        if result.is_err() {
            // Redis may have lost the stream (a restart without persistence):
            // join again before the next step.
            self.joined.store(false, Ordering::Relaxed);
        }
        result
    }

    async fn step_joined(&self) -> anyhow::Result<Step> {
        let mut entries = self.reclaim().await?;
        if entries.is_empty() {
            entries = self.read_new().await?;
        }
        let busy = !entries.is_empty();
        if busy {
            self.apply(&entries).await?;
            self.ack(&entries).await?;
        }
        self.housekeeping_if_due().await?;
        Ok(if busy { Step::Busy } else { Step::Idle })
    }

    /// New entries for this consumer (they become pending until acknowledged).
    pub async fn read_new(&self) -> anyhow::Result<Vec<Entry>> {
        let mut conn = self.redis.conn();
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let ids = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        Ok(self.decode(ids))
    }

    /// Entries another consumer read but did not acknowledge for `reclaim_idle`.
    pub async fn reclaim(&self) -> anyhow::Result<Vec<Entry>> {
        let mut conn = self.redis.conn();
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(self.reclaim_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(READ_COUNT)
            .query_async(&mut conn)
            .await?;
        if !reply.claimed.is_empty() {
            tracing::info!(
                entries = reply.claimed.len(),
                "reclaimed click entries of a stalled consumer"
            );
        }
        Ok(self.decode(reply.claimed))
    }

    fn decode(&self, ids: Vec<StreamId>) -> Vec<Entry> {
        ids.into_iter()
            .map(|id| {
                let data = id.get::<Vec<u8>>(record::FIELD_DATA).unwrap_or_default();
                // An unreadable line is dropped (and the entry acknowledged
                // like the rest), so it cannot block the stream.
                let events = record::decode_events(&data, |e| {
                    tracing::error!(entry = %id.id, error = %e, "unreadable click event dropped")
                });
                Entry { id: id.id, events }
            })
            .collect()
    }

    /// Rolls the entries up in one transaction (entries seen before are skipped).
    pub async fn apply(&self, entries: &[Entry]) -> anyhow::Result<Report> {
        let report = apply(&self.db, entries).await.inspect_err(|_| {
            self.metrics.backend_error("postgres");
        })?;
        for (program, c) in &report.per_program {
            let label = crate::domain::ProgramId::from_db(*program).to_string();
            let m = &self.metrics.click_rollup;
            m.with_label_values(&[&label, "clicks"])
                .inc_by(c.clicks as u64);
            m.with_label_values(&[&label, "unique"])
                .inc_by(c.unique as u64);
            m.with_label_values(&[&label, "bot"]).inc_by(c.bots as u64);
        }
        if report.invalid_events > 0 {
            tracing::warn!(
                events = report.invalid_events,
                "click events for unknown links dropped"
            );
        }
        Ok(report)
    }

    pub async fn ack(&self, entries: &[Entry]) -> anyhow::Result<()> {
        let mut conn = self.redis.conn();
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.key).arg(GROUP);
        for e in entries {
            cmd.arg(&e.id);
        }
        let _: i64 = cmd.query_async(&mut conn).await?;
        Ok(())
    }

    async fn housekeeping_if_due(&self) -> anyhow::Result<()> {
        if !self.housekeeping.due() {
            return Ok(());
        }
        self.trim_and_measure().await?;
        self.forget_departed_consumers().await?;
        purge(&self.db).await?;
        Ok(())
    }

    /// Trims entries every group has acknowledged, and sets the queue gauges.
    /// Returns the id trimmed below, if any.
    pub async fn trim_and_measure(&self) -> anyhow::Result<Option<String>> {
        let mut conn = self.redis.conn();
        let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.key)
            .query_async(&mut conn)
            .await?;
        // The oldest entry some group still needs: its first pending entry,
        // else the first one after what it was last given.
        let mut keep_from: Option<(u64, u64)> = None;
        let mut depth: u64 = 0;
        for g in &groups.groups {
            let first_needed = if g.pending > 0 {
                let summary: redis::Value = redis::cmd("XPENDING")
                    .arg(&self.key)
                    .arg(&g.name)
                    .query_async(&mut conn)
                    .await?;
                pending_start(&summary).and_then(|s| parse_id(&s))
            } else {
                parse_id(&g.last_delivered_id).map(|(ms, seq)| (ms, seq + 1))
            };
            depth = depth.max(g.pending as u64 + g.lag.unwrap_or(0) as u64);
            if let Some(id) = first_needed {
                keep_from = Some(keep_from.map_or(id, |k| k.min(id)));
            }
        }
        let gauge_depth = self.metrics.queue_depth.with_label_values(&["clicks"]);
        gauge_depth.set(depth as i64);
        let Some((ms, seq)) = keep_from else {
            return Ok(None);
        };
        // The oldest entry still needed, if it exists, gives the age.
        let oldest: Vec<StreamId> = redis::cmd("XRANGE")
            .arg(&self.key)
            .arg(format!("{ms}-{seq}"))
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async::<redis::streams::StreamRangeReply>(&mut conn)
            .await?
            .ids;
        let age = oldest
            .first()
            .and_then(|id| parse_id(&id.id))
            .map(|(oldest_ms, _)| {
                (chrono::Utc::now().timestamp_millis() as u64).saturating_sub(oldest_ms)
            })
            .unwrap_or(0);
        self.metrics
            .queue_oldest_age
            .with_label_values(&["clicks"])
            .set(if depth == 0 { 0.0 } else { age as f64 / 1000.0 });
        let min_id = format!("{ms}-{seq}");
        let _: i64 = redis::cmd("XTRIM")
            .arg(&self.key)
            .arg("MINID")
            .arg(&min_id)
            .query_async(&mut conn)
            .await?;
        Ok(Some(min_id))
    }
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The smallest pending id from an XPENDING summary reply.
fn pending_start(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::Array(items) => match items.get(1)? {
            redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            redis::Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Applies entries in one transaction: records their ids (an entry seen
/// before is skipped), adds their clicks to the roll-ups, and keeps the bot
/// clicks for attribution's fraud checks.
pub async fn apply(db: &PgPool, entries: &[Entry]) -> Result<Report, sqlx::Error> {
    let mut report = Report::default();
    if entries.is_empty() {
        return Ok(report);
    }
    let mut tx = db.begin().await?;
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let fresh: HashSet<String> = sqlx::query_scalar!(
        r#"insert into click_batches_applied (entry_id) select unnest($1::text[])
           on conflict do nothing returning entry_id"#,
        &ids as &[&str]
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    report.applied_entries = fresh.len();
    report.skipped_entries = entries.len() - fresh.len();
    let events: Vec<&ClickEvent> = entries
        .iter()
        .filter(|e| fresh.contains(&e.id))
        .flat_map(|e| e.events.iter())
        .collect();
    if !events.is_empty() {
        let facts: Vec<ClickFact<'_>> = events
            .iter()
            .map(|e| ClickFact {
                link_id: e.link_id,
                program_id: e.program_id,
                partner_ids: &e.partner_ids,
                at_ms: e.at_ms,
                ip_hash: &e.ip_hash,
                bot: e.bot.is_some(),
            })
            .collect();
        let added = rollup::add(&mut tx, &facts).await?;
        report.per_program = added.per_program;
        report.invalid_events = added.invalid;
        flag_bots(&mut tx, &events).await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// Keeps the clicks flagged as bots or link previews, for attribution's
/// fraud checks (the click id itself cannot say what sent it).
async fn flag_bots(tx: &mut PgConnection, events: &[&ClickEvent]) -> Result<(), sqlx::Error> {
    let mut flagged: Vec<(&str, i64, &'static str, i64)> = events
        .iter()
        .filter_map(|e| Some((e.click_id.as_str(), e.link_id, e.bot?.as_str(), e.at_ms)))
        .collect();
    if flagged.is_empty() {
        return Ok(());
    }
    flagged.sort_by(|a, b| a.0.cmp(b.0));
    let click_ids: Vec<&str> = flagged.iter().map(|f| f.0).collect();
    let links: Vec<i64> = flagged.iter().map(|f| f.1).collect();
    let reasons: Vec<&str> = flagged.iter().map(|f| f.2).collect();
    let times: Vec<DateTime<chrono::Utc>> = flagged
        .iter()
        .map(|f| DateTime::from_timestamp_millis(f.3).unwrap_or_default())
        .collect();
    sqlx::query!(
        r#"insert into flagged_clicks (click_id, link_id, reason, clicked_at)
           select * from unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[])
           on conflict do nothing"#,
        &click_ids as &[&str],
        &links,
        &reasons as &[&str],
        &times
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes bookkeeping nobody needs any more: uniqueness of past days,
/// applied-entry ids long since trimmed from the stream, and bot flags older
/// than any attribution window.
pub async fn purge(db: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    rollup::purge(&mut tx).await?;
    sqlx::query!("delete from click_batches_applied where applied_at < now() - interval '7 days'")
        .execute(&mut *tx)
        .await?;
    sqlx::query!("delete from flagged_clicks where clicked_at < now() - interval '400 days'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
