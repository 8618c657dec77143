//! The click log: every redirect appends one event to a Redis stream.
//!
//! A redirect does not wait for Redis. It serializes its event into a buffer
//! of its own HTTP worker thread (no allocation, no lock contention) and
//! answers. One flusher task collects the buffers every few milliseconds and
//! writes each as a single stream entry (a batch), one pipelined round trip
//! per shard stream: thousands of redirects share one round trip (group
//! commit), so logging costs the shopper no latency and the server little
//! throughput. Batches go to the shards in turn, so on a Redis Cluster the
//! clicks spread over its primaries.
//!
//! When Redis is down or slow, events wait in memory (bounded) and are
//! written once Redis answers; redirects go on meanwhile. Events beyond the
//! bound are counted as lost (`mitra_clicks_total{outcome="log_failed"}`).
//! A batch whose write failed (or, with `MITRA_CLICK_LOG_REPLICAS`, did not
//! reach enough replicas) is written again, to another shard, under the
//! same batch id: the consumer applies each batch id once.
//! On shutdown the flusher writes what is left. A crash loses at most the
//! last flush interval: the money path never depends on the click log,
//! because attribution decodes click ids on its own.

use super::record::{
    self, FIELD_BATCH, FIELD_COUNT, FIELD_DATA, FIELD_FORMAT, FORMAT_BINARY, SHARD_REGISTRY,
};
use crate::config::ClickLogSettings;
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// One HTTP worker thread's events since the last flush, encoded (see `record`).
#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    count: usize,
}

struct Inner {
    id: u64,
    buffers: Mutex<Vec<Arc<Mutex<Buffer>>>>,
    /// Events appended but not yet written.
    queued: AtomicUsize,
    capacity: usize,
    healthy: AtomicBool,
    wake: Notify,
    metrics: Arc<Metrics>,
}

/// The handle redirects use; cheap to clone.
#[derive(Clone)]
pub struct ClickLog {
    inner: Arc<Inner>,
    flush_now: mpsc::Sender<oneshot::Sender<bool>>,
    streams: Arc<[String]>,
}

thread_local! {
    /// This thread's buffer in each click log (tests run several apps per process).
    static BUFFERS: RefCell<Vec<(u64, Arc<Mutex<Buffer>>)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Queued for the next flush.
    Queued,
    /// Over the in-memory bound (Redis has been away too long): lost, counted.
    Lost,
}

impl ClickLog {
    /// The log and its flusher, which the caller runs (`Flusher::run`) for
    /// as long as redirects may append.
    pub fn new(
        redis: RedisClient,
        metrics: Arc<Metrics>,
        settings: &ClickLogSettings,
    ) -> (Self, Flusher) {
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            buffers: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
            capacity: settings.capacity.max(1),
            healthy: AtomicBool::new(true),
            wake: Notify::new(),
            metrics,
        });
        let (flush_now, requests) = mpsc::channel(16);
        let streams: Vec<String> = record::shard_streams(settings.shards)
            .iter()
            .map(|s| redis.key(s))
            .collect();
        let flusher = Flusher {
            failed_at: vec![None; streams.len()],
            streams: streams.clone(),
            next_shard: 0,
            registry: redis.key(SHARD_REGISTRY),
            registered: false,
            replicas: settings.replicas,
            redis,
            inner: inner.clone(),
            interval: settings.flush_interval,
            batch_stem: rand::random(),
            batch_seq: 0,
            unwritten: Vec::new(),
            spare: Vec::new(),
            requests,
        };
        let log = Self {
            inner,
            flush_now,
            streams: streams.into(),
        };
        (log, flusher)
    }

    /// The full keys of the shard streams this log writes to.
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// Whether the last write to Redis succeeded.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// Events appended and not yet written to Redis.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Appends one event, encoded by `write` into this thread's buffer
    /// (`write` answers false when it wrote nothing).
    pub fn append(&self, write: impl FnOnce(&mut Vec<u8>) -> bool) -> Appended {
        let inner = &self.inner;
        if inner.queued.fetch_add(1, Ordering::Relaxed) >= inner.capacity {
            inner.queued.fetch_sub(1, Ordering::Relaxed);
            return Appended::Lost;
        }
        let first = BUFFERS.with(|buffers| {
            let mut buffers = buffers.borrow_mut();
            let index = match buffers.iter().position(|(i, _)| *i == inner.id) {
                Some(index) => index,
                None => {
                    let buffer = Arc::new(Mutex::new(Buffer::default()));
                    inner
                        .buffers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(buffer.clone());
                    buffers.push((inner.id, buffer));
                    buffers.len() - 1
                }
            };
            // Uncontended but for the flusher's swap every few milliseconds.
            let mut buf = buffers[index].1.lock().unwrap_or_else(|p| p.into_inner());
            if !write(&mut buf.data) {
                return None;
            }
            buf.count += 1;
            Some(buf.count == 1)
        });
        match first {
            None => {
                inner.queued.fetch_sub(1, Ordering::Relaxed);
                Appended::Lost
            }
            Some(first) => {
                if first {
                    inner.wake.notify_one();
                }
                Appended::Queued
            }
        }
    }

    /// Writes everything queued now and waits for it; true when written.
    /// For shutdown paths and tests.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.flush_now.send(tx).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

/// Writes the redirects' buffers to Redis.
pub struct Flusher {
    redis: RedisClient,
    /// The shard streams' full keys.
    streams: Vec<String>,
    /// When each shard last failed: new batches avoid it for a while.
    failed_at: Vec<Option<Instant>>,
    /// The next shard a batch goes to (round robin).
    next_shard: usize,
    /// The set naming the shards, and whether ours are in it yet.
    registry: String,
    registered: bool,
    /// Replicas a write must reach (WAIT) before it counts; 0: none.
    replicas: u32,
    inner: Arc<Inner>,
    interval: Duration,
    /// This process's batch ids: a random stem and a counter.
    batch_stem: u64,
    batch_seq: u64,
    /// Batches taken from the buffers but not yet written (Redis was away).
    unwritten: Vec<Batch>,
    /// Emptied buffers kept for reuse, so buffers do not regrow from nothing.
    spare: Vec<Vec<u8>>,
    /// `ClickLog::flush` asking for a write now.
    requests: mpsc::Receiver<oneshot::Sender<bool>>,
}

/// One buffer on its way to a shard.
struct Batch {
    id: String,
    shard: usize,
    buf: Buffer,
}

/// Most events in one stream entry (a consumer reads some tens of entries
/// at a time: this bounds what it holds).
const MAX_EVENTS_PER_ENTRY: usize = 1000;
/// Emptied buffers kept for reuse: as many as threads usually write, each
/// no larger than a busy flush interval needs.
const MAX_SPARES: usize = 64;
const MAX_SPARE_BYTES: usize = 256 << 10;
/// How long a shard whose write failed gets no new batches.
const SHARD_RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long a write waits for its replicas.
const WAIT_TIMEOUT_MS: u64 = 100;

impl Flusher {
    /// Writes every few milliseconds until `stop` fires, then writes what
    /// is still queued (if Redis answers) and ends.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let asked = tokio::select! {
                _ = self.inner.wake.notified() => {
                    // Let events gather: one write for all of them.
                    tokio::select! {
                        _ = tokio::time::sleep(self.interval) => {}
                        _ = stop.cancelled() => {}
                    }
                    None
                }
                Some(reply) = self.requests.recv() => Some(reply),
                _ = stop.cancelled() => break,
            };
            let written = self.flush().await;
            if let Some(reply) = asked {
                let _ = reply.send(written);
            }
            if written {
                failures = 0;
            } else {
                // Try again after a pause; redirects keep queueing meanwhile.
                failures = failures.saturating_add(1);
                let pause = crate::background::backoff(failures).min(Duration::from_secs(2));
                self.inner.wake.notify_one();
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
        // Shutting down: every redirect has been answered; one last write.
        if !self.flush().await {
            let lost: usize = self.unwritten.iter().map(|b| b.buf.count).sum();
            tracing::error!(lost, "click events lost at shutdown: Redis did not answer");
            self.count_lost();
        }
    }

    /// Takes every thread's buffer and writes each as one entry of a shard,
    /// one pipelined round trip per shard, all shards at once. True when
    /// nothing is left unwritten.
    async fn flush(&mut self) -> bool {
        self.take_buffers();
        if self.unwritten.is_empty() {
            return true;
        }
        if !self.registered {
            match self.register().await {
                Ok(()) => self.registered = true,
                Err(e) => return self.failed(&e),
            }
        }
        let mut by_shard: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, batch) in self.unwritten.iter().enumerate() {
            by_shard.entry(batch.shard).or_default().push(i);
        }
        let writes = by_shard.iter().map(|(&shard, batches)| {
            let mut pipe = redis::pipe();
            for &i in batches {
                let batch = &self.unwritten[i];
                pipe.cmd("XADD")
                    .arg(&self.streams[shard])
                    .arg("*")
                    .arg(FIELD_BATCH)
                    .arg(&batch.id)
                    .arg(FIELD_FORMAT)
                    .arg(FORMAT_BINARY)
                    .arg(FIELD_COUNT)
                    .arg(batch.buf.count)
                    .arg(FIELD_DATA)
                    .arg(&batch.buf.data)
                    .ignore();
            }
            if self.replicas > 0 {
                pipe.cmd("WAIT").arg(self.replicas).arg(WAIT_TIMEOUT_MS);
            }
            let mut conn = self.redis.conn();
            let replicas = self.replicas;
            async move {
                if replicas == 0 {
                    return pipe.query_async::<()>(&mut conn).await;
                }
                let (acked,): (u32,) = pipe.query_async(&mut conn).await?;
                if acked >= replicas {
                    Ok(())
                } else {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "written, but not yet to enough replicas",
                        format!("{acked} of {replicas}"),
                    )))
                }
            }
        });
        let results = futures::future::join_all(writes).await;
        let mut written = vec![false; self.unwritten.len()];
        let mut error = None;
        for ((&shard, batches), result) in by_shard.iter().zip(results) {
            match result {
                Ok(()) => batches.iter().for_each(|&i| written[i] = true),
                Err(e) => {
                    self.failed_at[shard] = Some(Instant::now());
                    error.get_or_insert(e);
                }
            }
        }
        let mut count = 0;
        let mut kept = Vec::new();
        for (batch, written) in std::mem::take(&mut self.unwritten).into_iter().zip(written) {
            if written {
                count += batch.buf.count;
                self.recycle(batch.buf.data);
            } else {
                kept.push(batch);
            }
        }
        self.unwritten = kept;
        self.inner.queued.fetch_sub(count, Ordering::Relaxed);
        // What failed goes to another shard next time: its first write may
        // have landed too, but it carries the same batch id, so it is
        // applied once. A shard whose primary died is avoided meanwhile.
        for i in 0..self.unwritten.len() {
            let shard = self.pick_shard();
            self.unwritten[i].shard = shard;
        }
        match error {
            None => {
                if !self.inner.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("click log writes to Redis again");
                }
                true
            }
            Some(e) => self.failed(&e),
        }
    }

    /// Moves each thread's buffered events into a batch of its own.
    fn take_buffers(&mut self) {
        let buffers: Vec<Arc<Mutex<Buffer>>> = self
            .inner
            .buffers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for buffer in buffers {
            let taken = {
                let mut buf = buffer.lock().unwrap_or_else(|p| p.into_inner());
                if buf.count == 0 {
                    continue;
                }
                let fresh = Buffer {
                    data: self.spare.pop().unwrap_or_default(),
                    count: 0,
                };
                std::mem::replace(&mut *buf, fresh)
            };
            if taken.count <= MAX_EVENTS_PER_ENTRY {
                self.push_batch(taken);
                continue;
            }
            // A long pause (Redis away) gathered many events: several
            // entries, so a consumer never holds a giant one in memory.
            let runs: Vec<Buffer> = record::split_events(&taken.data, MAX_EVENTS_PER_ENTRY)
                .into_iter()
                .map(|(bytes, count)| Buffer {
                    data: bytes.to_vec(),
                    count,
                })
                .collect();
            for run in runs {
                self.push_batch(run);
            }
            self.recycle(taken.data);
        }
    }

    fn push_batch(&mut self, buf: Buffer) {
        self.batch_seq += 1;
        let batch = Batch {
            id: format!("{:016x}.{}", self.batch_stem, self.batch_seq),
            shard: self.pick_shard(),
            buf,
        };
        self.unwritten.push(batch);
    }

    /// Keeps an emptied buffer for reuse, unless a burst made it large:
    /// memory held between bursts stays small.
    fn recycle(&mut self, mut data: Vec<u8>) {
        if data.capacity() <= MAX_SPARE_BYTES && self.spare.len() < MAX_SPARES {
            data.clear();
            self.spare.push(data);
        }
    }

    /// The next shard in turn that has not failed lately (any, if all have).
    fn pick_shard(&mut self) -> usize {
        let n = self.streams.len();
        for _ in 0..n {
            let shard = self.next_shard % n;
            self.next_shard = self.next_shard.wrapping_add(1);
            match self.failed_at[shard] {
                Some(at) if at.elapsed() < SHARD_RETRY_AFTER => continue,
                _ => return shard,
            }
        }
        let shard = self.next_shard % n;
        self.next_shard = self.next_shard.wrapping_add(1);
        shard
    }

    /// Names our shards in the registry, so every consumer reads them.
    async fn register(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        redis::cmd("SADD")
            .arg(&self.registry)
            .arg(&self.streams)
            .query_async::<()>(&mut conn)
            .await
    }

    fn failed(&mut self, e: &redis::RedisError) -> bool {
        if self.inner.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, "click log cannot write to Redis; queueing in memory");
        }
        // Redis may come back empty (a restart without persistence).
        self.registered = false;
        self.inner.metrics.backend_error("redis");
        false
    }

    /// Counts the unwritten events as lost, per program.
    fn count_lost(&self) {
        for batch in &self.unwritten {
            let events = record::decode_entry(Some(FORMAT_BINARY), &batch.buf.data, |_| {});
            for event in &events {
                let program = crate::domain::ProgramId::from_db(event.program_id).to_string();
                self.inner
                    .metrics
                    .clicks
                    .with_label_values(&[&program, "log_failed"])
                    .inc();
            }
            let unreadable = batch.buf.count.saturating_sub(events.len());
            if unreadable > 0 {
                self.inner
                    .metrics
                    .clicks
                    .with_label_values(&["unknown", "log_failed"])
                    .inc_by(unreadable as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedisTopology;

    #[tokio::test]
    async fn a_long_queue_goes_out_as_entries_of_at_most_a_thousand_events() {
        let redis = RedisClient::new(
            &"redis://127.0.0.1:1".to_owned().into(),
            RedisTopology::Single,
            "t:",
        )
        .unwrap();
        let settings = ClickLogSettings {
            capacity: 10_000,
            flush_interval: Duration::from_millis(2),
            shards: 3,
            replicas: 0,
        };
        let (log, mut flusher) = ClickLog::new(redis, Arc::new(Metrics::new()), &settings);
        // One thread's buffer gathers 2,500 events (Redis away for a while).
        for i in 0..2_500u32 {
            let appended = log.append(|buf| {
                buf.extend_from_slice(&2u16.to_le_bytes());
                buf.extend_from_slice(&(i as u16).to_le_bytes());
                true
            });
            assert_eq!(appended, Appended::Queued);
        }
        flusher.take_buffers();
        let sizes: Vec<usize> = flusher.unwritten.iter().map(|b| b.buf.count).collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
        let ids: std::collections::BTreeSet<&str> =
            flusher.unwritten.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids.len(), 3, "each entry its own batch id");
        let shards: Vec<usize> = flusher.unwritten.iter().map(|b| b.shard).collect();
        assert_eq!(shards, vec![0, 1, 2], "spread over the shards");
        let bytes: usize = flusher.unwritten.iter().map(|b| b.buf.data.len()).sum();
        assert_eq!(bytes, 2_500 * 4, "nothing lost in the cut");
    }
}
