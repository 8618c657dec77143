//! The click worker: reads the click stream as a consumer group, rolls the
//! clicks up into Postgres, acknowledges only after the commit, reclaims
//! what a crashed consumer left pending, and trims only what every group has
//! processed.

use super::Step;
use crate::clicks::ClickEvent;
use crate::clicks::log::STREAM;
use crate::clicks::rollup::{self, Entry};
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamReadReply};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The consumer group that feeds the roll-ups.
pub const GROUP: &str = "rollup";
/// Entries read per step.
const READ_COUNT: usize = 50;
/// How often trimming, gauges and purging run.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);

pub struct ClickWorker {
    redis: RedisClient,
    db: PgPool,
    metrics: Arc<Metrics>,
    key: String,
    consumer: String,
    /// Entries pending this long with another consumer are taken over.
    reclaim_idle: Duration,
    /// Whether the group and this consumer are known to exist.
    joined: std::sync::atomic::AtomicBool,
    last_housekeeping: Mutex<Option<Instant>>,
}

impl ClickWorker {
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
            last_housekeeping: Mutex::new(None),
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
                let data = id.get::<Vec<u8>>("d").unwrap_or_default();
                let mut events = Vec::new();
                // One event per line; an unreadable line is dropped (and the
                // entry acknowledged like the rest), so it cannot block the stream.
                for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    match serde_json::from_slice::<ClickEvent>(line) {
                        Ok(e) => events.push(e),
                        Err(e) => tracing::error!(entry = %id.id, error = %e, "unreadable click event dropped"),
                    }
                }
                Entry { id: id.id, events }
            })
            .collect()
    }

    /// Rolls the entries up in one transaction (entries seen before are skipped).
    pub async fn apply(&self, entries: &[Entry]) -> anyhow::Result<rollup::Report> {
        let report = rollup::apply(&self.db, entries).await.inspect_err(|_| {
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
        let mut last = self.last_housekeeping.lock().await;
        if last.is_some_and(|l| l.elapsed() < HOUSEKEEPING_EVERY) {
            return Ok(());
        }
        *last = Some(Instant::now());
        drop(last);
        self.trim_and_measure().await?;
        self.forget_departed_consumers().await?;
        rollup::purge(&self.db).await?;
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
