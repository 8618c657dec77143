//! The click consumer: reads every shard of the click stream as a consumer
//! group, rolls the clicks up into Postgres, acknowledges only after the
//! commit, reclaims what a crashed consumer left pending, and trims only
//! what every group has processed.
//!
//! Every consumer reads every shard: each shard's consumer group hands an
//! entry to one consumer only, so consumers share the shards without
//! agreeing on who owns which, and a consumer that dies leaves its pending
//! entries to the others (XAUTOCLAIM after `reclaim_idle`). A shard whose
//! Redis node fails is skipped until it answers again (on a cluster, until
//! its replica has taken over); the others go on.
//!
//! One step applies the entries it read from all shards in one transaction.
//! Their batch ids are recorded in the same transaction, so a batch
//! delivered twice (a consumer died before acknowledging it, a failover
//! replayed it, or the producer wrote it again to another shard) is applied
//! once.

use super::record::{self, ClickEvent, LEGACY_STREAM, SHARD_REGISTRY};
use crate::background::{Every, Step};
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use crate::rollups::clicks::{self as rollup, ClickFact, Counts};
use chrono::DateTime;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamReadReply};
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A stream entry: where it came from, its batch id, and the clicks it carries.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The full key of the shard stream it was read from.
    pub stream: Arc<str>,
    /// Its id in that stream.
    pub id: String,
    /// What makes it applied once: the producer's batch id (the stream id
    /// for entries of the legacy stream, which carry none).
    pub batch: String,
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
/// Entries read per step, over all shards, at most ...
const READ_BUDGET: usize = 60;
/// ... and about this many events: entries vary from one click to a
/// thousand, and a step holds all it read in memory at once.
const STEP_EVENTS: u64 = 4000;
/// How often trimming, gauges, purging and looking for new shards run.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);

pub struct ClickConsumer {
    redis: RedisClient,
    db: PgPool,
    metrics: Arc<Metrics>,
    consumer: String,
    /// Entries pending this long with another consumer are taken over.
    reclaim_idle: Duration,
    /// The shards this process's own settings name.
    configured: Vec<String>,
    /// Every stream known to carry clicks, and whether this consumer has
    /// joined its group there.
    streams: Mutex<Vec<(Arc<str>, bool)>>,
    /// Whether the streams have been looked up since the start (or since
    /// Redis failed).
    discovered: std::sync::atomic::AtomicBool,
    /// Events per entry lately (a moving average).
    events_per_entry: std::sync::atomic::AtomicU64,
    housekeeping: Every,
}

impl ClickConsumer {
    pub fn new(
        redis: RedisClient,
        db: PgPool,
        metrics: Arc<Metrics>,
        shards: usize,
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
        let configured: Vec<String> = record::shard_streams(shards)
            .iter()
            .map(|s| redis.key(s))
            .collect();
        Self {
            streams: Mutex::new(
                configured
                    .iter()
                    .map(|k| (k.as_str().into(), false))
                    .collect(),
            ),
            configured,
            redis,
            db,
            metrics,
            consumer,
            reclaim_idle,
            discovered: std::sync::atomic::AtomicBool::new(false),
            events_per_entry: std::sync::atomic::AtomicU64::new(1),
            housekeeping: Every::new(HOUSEKEEPING_EVERY),
        }
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The streams this consumer reads (after `ensure_group` or a step).
    pub fn streams(&self) -> Vec<Arc<str>> {
        self.lock_streams().iter().map(|(k, _)| k.clone()).collect()
    }

    fn lock_streams(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<str>, bool)>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn joined(&self) -> Vec<Arc<str>> {
        self.lock_streams()
            .iter()
            .filter(|(_, joined)| *joined)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn set_joined(&self, key: &str, joined: bool) {
        if let Some(s) = self.lock_streams().iter_mut().find(|(k, _)| &**k == key) {
            s.1 = joined;
        }
    }

    /// Looks up every stream that carries clicks: the configured shards,
    /// those other producers registered, and the legacy stream while it
    /// exists.
    async fn discover(&self) -> anyhow::Result<()> {
        let mut conn = self.redis.conn();
        let registered: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.redis.key(SHARD_REGISTRY))
            .query_async(&mut conn)
            .await?;
        let legacy = self.redis.key(LEGACY_STREAM);
        let legacy_exists: bool = redis::cmd("EXISTS")
            .arg(&legacy)
            .query_async(&mut conn)
            .await?;
        let mut names: BTreeSet<String> = self.configured.iter().cloned().collect();
        names.extend(registered);
        if legacy_exists {
            names.insert(legacy);
        }
        let mut streams = self.lock_streams();
        for name in names {
            if !streams.iter().any(|(k, _)| **k == *name) {
                streams.push((name.into(), false));
            }
        }
        self.discovered
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Finds the streams and joins each one's group (creating the stream
    /// and the group where they do not exist yet). Fails when a stream
    /// could not be joined; the others are joined all the same.
    pub async fn ensure_group(&self) -> anyhow::Result<()> {
        self.discover().await?;
        match self.join_pending().await {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Joins the groups of the streams not joined yet; the first failure, if any.
    async fn join_pending(&self) -> Option<anyhow::Error> {
        let pending: Vec<Arc<str>> = self
            .lock_streams()
            .iter()
            .filter(|(_, joined)| !*joined)
            .map(|(k, _)| k.clone())
            .collect();
        let results =
            futures::future::join_all(pending.iter().map(|key| self.join(key.clone()))).await;
        let mut error = None;
        for (key, result) in pending.iter().zip(results) {
            match result {
                Ok(()) => self.set_joined(key, true),
                Err(e) => {
                    self.metrics.backend_error("redis");
                    error.get_or_insert(anyhow::Error::from(e).context(format!("joining {key}")));
                }
            }
        }
        error
    }

    async fn join(&self, key: Arc<str>) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&*key)
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
            .arg(&*key)
            .arg(GROUP)
            .arg(&self.consumer)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Runs `op` on every joined stream at once. A stream that fails is
    /// left (to be joined again, in case Redis lost it) and the first error
    /// returned beside what the others gave.
    async fn each_stream<T, F, Fut>(&self, op: F) -> (Vec<T>, Option<anyhow::Error>)
    where
        F: Fn(Arc<str>) -> Fut,
        Fut: Future<Output = anyhow::Result<Vec<T>>>,
    {
        let streams = self.joined();
        let results = futures::future::join_all(streams.iter().map(|k| op(k.clone()))).await;
        let mut out = Vec::new();
        let mut error = None;
        for (key, result) in streams.iter().zip(results) {
            match result {
                Ok(items) => out.extend(items),
                Err(e) => {
                    self.metrics.backend_error("redis");
                    self.set_joined(key, false);
                    self.discovered
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    error.get_or_insert(e.context(format!("on {key}")));
                }
            }
        }
        (out, error)
    }

    /// Entries to ask each stream for: the step's budget shared out, and
    /// fewer when entries have been large.
    fn per_stream_count(&self) -> usize {
        let streams = self.joined().len().max(1) as u64;
        let per_entry = self
            .events_per_entry
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1);
        let by_events = STEP_EVENTS / (per_entry * streams);
        by_events.clamp(1, (READ_BUDGET as u64 / streams).max(1)) as usize
    }

    fn observe_entries(&self, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        let events: usize = entries.iter().map(|e| e.events.len()).sum();
        let seen = (events / entries.len()).max(1) as u64;
        let avg = &self.events_per_entry;
        let old = avg.load(std::sync::atomic::Ordering::Relaxed);
        avg.store(
            (old * 3 + seen).div_ceil(4),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Forgets consumers that left one stream: nothing pending and silent
    /// for an hour (a worker that restarted comes back under a new name).
    async fn forget_departed_consumers(&self, key: &str) -> anyhow::Result<()> {
        let mut conn = self.redis.conn();
        let consumers: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(key)
            .arg(GROUP)
            .query_async(&mut conn)
            .await?;
        for c in consumers.consumers {
            if c.pending == 0 && c.idle > 3_600_000 && c.name != self.consumer {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(key)
                    .arg(GROUP)
                    .arg(&c.name)
                    .query_async(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// One step: reclaim abandoned entries, else read new ones, from every
    /// shard; apply them; acknowledge them. Then, now and then, housekeeping.
    /// A shard that fails is skipped; the step fails only when it found
    /// nothing to do and some shard failed (so the loop backs off).
    pub async fn step(&self) -> anyhow::Result<Step> {
        let mut failure = self.prepare().await;
        let (mut entries, e) = self.reclaim_each().await;
        failure = failure.or(e);
        if entries.is_empty() {
            let (new, e) = self.read_each().await;
            entries = new;
            failure = failure.or(e);
        }
        self.observe_entries(&entries);
        let busy = !entries.is_empty();
        if busy {
            self.apply(&entries).await?;
            if let Some(e) = self.ack_each(&entries).await {
                // Unacknowledged entries are reclaimed and skipped later.
                failure.get_or_insert(e);
            }
        }
        if self.housekeeping.due()
            && let Err(e) = self.housekeeping().await
        {
            failure.get_or_insert(e);
        }
        match failure {
            Some(e) if !busy => Err(e),
            Some(e) => {
                tracing::warn!(error = ?e, "click stream shard skipped");
                Ok(Step::Busy)
            }
            None => Ok(if busy { Step::Busy } else { Step::Idle }),
        }
    }

    /// Looks the streams up if that is due, and joins those not joined yet;
    /// the first failure, if any.
    async fn prepare(&self) -> Option<anyhow::Error> {
        let mut failure = None;
        if !self.discovered.load(std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = self.discover().await
        {
            self.metrics.backend_error("redis");
            failure = Some(e);
        }
        if let Some(e) = self.join_pending().await {
            failure.get_or_insert(e);
        }
        failure
    }

    /// New entries for this consumer from every shard (they become pending
    /// until acknowledged).
    pub async fn read_new(&self) -> anyhow::Result<Vec<Entry>> {
        if let Some(e) = self.prepare().await {
            return Err(e);
        }
        match self.read_each().await {
            (entries, None) => Ok(entries),
            (_, Some(e)) => Err(e),
        }
    }

    async fn read_each(&self) -> (Vec<Entry>, Option<anyhow::Error>) {
        let count = self.per_stream_count();
        self.each_stream(|key| async move {
            let mut conn = self.redis.conn();
            let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(count)
                .arg("STREAMS")
                .arg(&*key)
                .arg(">")
                .query_async(&mut conn)
                .await?;
            let ids = reply
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .unwrap_or_default();
            Ok(decode(&key, ids))
        })
        .await
    }

    /// Entries another consumer read but did not acknowledge for
    /// `reclaim_idle`, from every shard.
    pub async fn reclaim(&self) -> anyhow::Result<Vec<Entry>> {
        if let Some(e) = self.prepare().await {
            return Err(e);
        }
        match self.reclaim_each().await {
            (entries, None) => Ok(entries),
            (_, Some(e)) => Err(e),
        }
    }

    async fn reclaim_each(&self) -> (Vec<Entry>, Option<anyhow::Error>) {
        let count = self.per_stream_count();
        self.each_stream(|key| async move {
            let mut conn = self.redis.conn();
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&*key)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(self.reclaim_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(count)
                .query_async(&mut conn)
                .await?;
            if !reply.claimed.is_empty() {
                tracing::info!(
                    stream = %key,
                    entries = reply.claimed.len(),
                    "reclaimed click entries of a stalled consumer"
                );
            }
            Ok(decode(&key, reply.claimed))
        })
        .await
    }

    /// Rolls the entries up in one transaction (batches seen before are skipped).
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

    /// Acknowledges the entries in their streams.
    pub async fn ack(&self, entries: &[Entry]) -> anyhow::Result<()> {
        match self.ack_each(entries).await {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn ack_each(&self, entries: &[Entry]) -> Option<anyhow::Error> {
        let mut by_stream: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in entries {
            by_stream.entry(&e.stream).or_default().push(&e.id);
        }
        let acks = by_stream.iter().map(|(key, ids)| async move {
            let mut conn = self.redis.conn();
            let mut cmd = redis::cmd("XACK");
            cmd.arg(*key).arg(GROUP).arg(ids);
            cmd.query_async::<i64>(&mut conn).await
        });
        let mut error = None;
        for result in futures::future::join_all(acks).await {
            if let Err(e) = result {
                self.metrics.backend_error("redis");
                error.get_or_insert(anyhow::Error::from(e).context("acknowledging click entries"));
            }
        }
        error
    }

    /// Looks for new shards, trims and measures every shard, forgets
    /// departed consumers, and purges old bookkeeping.
    async fn housekeeping(&self) -> anyhow::Result<()> {
        self.discover().await?;
        self.trim_and_measure().await?;
        purge(&self.db).await?;
        Ok(())
    }

    /// Trims from every shard the entries every group has acknowledged, and
    /// sets the queue gauges (depth summed over the shards, age of the
    /// oldest entry still needed on any).
    pub async fn trim_and_measure(&self) -> anyhow::Result<()> {
        let (measured, error) = self
            .each_stream(|key| async move {
                let measured = self.trim_one(&key).await?;
                self.forget_departed_consumers(&key).await?;
                Ok(vec![measured])
            })
            .await;
        let depth: u64 = measured.iter().map(|m| m.0).sum();
        let age_ms = measured.iter().map(|m| m.1).max().unwrap_or(0);
        let age = (depth > 0).then(|| age_ms as f64 / 1000.0);
        self.metrics.queue("clicks", depth as i64, age);
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Trims one stream below the oldest entry some group still needs;
    /// answers its depth and the age of that entry in milliseconds.
    async fn trim_one(&self, key: &str) -> anyhow::Result<(u64, u64)> {
        let mut conn = self.redis.conn();
        let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        // The oldest entry some group still needs: its first pending entry,
        // else the first one after what it was last given.
        let mut keep_from: Option<(u64, u64)> = None;
        let mut depth: u64 = 0;
        for g in &groups.groups {
            let first_needed = if g.pending > 0 {
                let summary: redis::Value = redis::cmd("XPENDING")
                    .arg(key)
                    .arg(&g.name)
                    .query_async(&mut conn)
                    .await?;
                pending_start(&summary).and_then(|s| record::parse_stream_id(&s))
            } else {
                record::parse_stream_id(&g.last_delivered_id).map(|(ms, seq)| (ms, seq + 1))
            };
            depth = depth.max(g.pending as u64 + g.lag.unwrap_or(0) as u64);
            if let Some(id) = first_needed {
                keep_from = Some(keep_from.map_or(id, |k| k.min(id)));
            }
        }
        let Some((ms, seq)) = keep_from else {
            return Ok((depth, 0));
        };
        // The oldest entry still needed, if it exists, gives the age.
        let oldest: Vec<StreamId> = redis::cmd("XRANGE")
            .arg(key)
            .arg(format!("{ms}-{seq}"))
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async::<redis::streams::StreamRangeReply>(&mut conn)
            .await?
            .ids;
        let age = oldest
            .first()
            .and_then(|id| record::parse_stream_id(&id.id))
            .map(|(oldest_ms, _)| {
                (chrono::Utc::now().timestamp_millis() as u64).saturating_sub(oldest_ms)
            })
            .unwrap_or(0);
        let _: i64 = redis::cmd("XTRIM")
            .arg(key)
            .arg("MINID")
            .arg(format!("{ms}-{seq}"))
            .query_async(&mut conn)
            .await?;
        Ok((depth, age))
    }
}

/// The entries of one stream's reply, with their events read.
fn decode(stream: &Arc<str>, ids: Vec<StreamId>) -> Vec<Entry> {
    ids.into_iter()
        .map(|id| {
            let format = id.get::<String>(record::FIELD_FORMAT);
            let events = match id.map.get(record::FIELD_DATA) {
                // An unreadable event is dropped (and the entry acknowledged
                // like the rest), so it cannot block the stream.
                Some(redis::Value::BulkString(data)) => {
                    record::decode_entry(format.as_deref(), data, |e| {
                        tracing::error!(entry = %id.id, error = %e, "unreadable click event dropped")
                    })
                }
                _ => {
                    tracing::error!(entry = %id.id, "click entry without events dropped");
                    Vec::new()
                }
            };
            let batch = id
                .get::<String>(record::FIELD_BATCH)
                .unwrap_or_else(|| id.id.clone());
            Entry {
                stream: stream.clone(),
                id: id.id,
                batch,
                events,
            }
        })
        .collect()
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

/// Applies entries in one transaction: records their batch ids (a batch
/// seen before is skipped), adds their clicks to the roll-ups, and keeps the bot
/// clicks for attribution's fraud checks.
pub async fn apply(db: &PgPool, entries: &[Entry]) -> Result<Report, sqlx::Error> {
    let mut report = Report::default();
    if entries.is_empty() {
        return Ok(report);
    }
    let mut tx = db.begin().await?;
    let batches: Vec<&str> = entries.iter().map(|e| e.batch.as_str()).collect();
    let mut fresh: HashSet<String> = sqlx::query_scalar!(
        r#"insert into click_batches_applied (entry_id) select unnest($1::text[])
           on conflict do nothing returning entry_id"#,
        &batches as &[&str]
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    // A batch read twice in this step (written to two shards) counts once:
    // `remove` is true for its first entry only.
    let applied: Vec<&Entry> = entries.iter().filter(|e| fresh.remove(&e.batch)).collect();
    report.applied_entries = applied.len();
    report.skipped_entries = entries.len() - applied.len();
    let events: Vec<&ClickEvent> = applied.iter().flat_map(|e| e.events.iter()).collect();
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
