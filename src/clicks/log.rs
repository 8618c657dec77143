//! The click log: every redirect appends one event to a Redis stream.
//!
//! A redirect does not wait for Redis. It serializes its event into a buffer
//! of its own HTTP worker thread (no allocation, no lock contention) and
//! answers. One flusher task collects the buffers every few milliseconds and
//! writes each as a single stream entry, all in one pipelined round trip:
//! thousands of redirects share one round trip (group commit), so logging
//! costs the shopper no latency and the server little throughput.
//!
//! When Redis is down or slow, events wait in memory (bounded) and are
//! written once Redis answers; redirects go on meanwhile. Events beyond the
//! bound are counted as lost (`mitra_clicks_total{outcome="log_failed"}`).
//! On shutdown the flusher writes what is left. A crash loses at most the
//! last flush interval: the money path never depends on the click log,
//! because attribution decodes click ids on its own.

use super::record::{FIELD_COUNT, FIELD_DATA, STREAM};
use crate::config::ClickLogSettings;
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// One HTTP worker thread's events since the last flush: newline-separated JSON.
#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    count: usize,
}

struct Inner {
    id: u64,
    shards: Mutex<Vec<Arc<Mutex<Buffer>>>>,
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
}

thread_local! {
    /// This thread's buffer in each click log (tests run several apps per process).
    static SHARDS: RefCell<Vec<(u64, Arc<Mutex<Buffer>>)>> = const { RefCell::new(Vec::new()) };
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
            shards: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
            capacity: settings.capacity.max(1),
            healthy: AtomicBool::new(true),
            wake: Notify::new(),
            metrics,
        });
        let (flush_now, requests) = mpsc::channel(16);
        let flusher = Flusher {
            key: redis.key(STREAM),
            redis,
            inner: inner.clone(),
            interval: settings.flush_interval,
            unwritten: Vec::new(),
            spare: Vec::new(),
            requests,
        };
        (Self { inner, flush_now }, flusher)
    }

    /// Whether the last write to Redis succeeded.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// Events appended and not yet written to Redis.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Appends one event, serialized by `write` into this thread's buffer.
    pub fn append(&self, write: impl FnOnce(&mut Vec<u8>)) -> Appended {
        let inner = &self.inner;
        if inner.queued.fetch_add(1, Ordering::Relaxed) >= inner.capacity {
            inner.queued.fetch_sub(1, Ordering::Relaxed);
            return Appended::Lost;
        }
        let shard = self.shard();
        let first = {
            let mut buf = shard.lock().unwrap_or_else(|p| p.into_inner());
            let first = buf.count == 0;
            write(&mut buf.data);
            buf.data.push(b'\n');
            buf.count += 1;
            first
        };
        if first {
            inner.wake.notify_one();
        }
        Appended::Queued
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

    fn shard(&self) -> Arc<Mutex<Buffer>> {
        let id = self.inner.id;
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            if let Some((_, shard)) = shards.iter().find(|(i, _)| *i == id) {
                return shard.clone();
            }
            let shard = Arc::new(Mutex::new(Buffer::default()));
            self.inner
                .shards
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(shard.clone());
            shards.push((id, shard.clone()));
            shard
        })
    }
}

/// Writes the redirects' buffers to Redis.
pub struct Flusher {
    redis: RedisClient,
    key: String,
    inner: Arc<Inner>,
    interval: Duration,
    /// Buffers taken from the shards but not yet written (Redis was away).
    unwritten: Vec<Buffer>,
    /// Emptied buffers kept for reuse, so shards do not regrow from nothing.
    spare: Vec<Vec<u8>>,
    /// `ClickLog::flush` asking for a write now.
    requests: mpsc::Receiver<oneshot::Sender<bool>>,
}

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
            let lost: usize = self.unwritten.iter().map(|b| b.count).sum();
            tracing::error!(lost, "click events lost at shutdown: Redis did not answer");
            self.count_lost();
        }
    }

    /// Takes every shard's buffer and writes all of them in one round trip.
    async fn flush(&mut self) -> bool {
        let shards: Vec<Arc<Mutex<Buffer>>> = self
            .inner
            .shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for shard in shards {
            let mut buf = shard.lock().unwrap_or_else(|p| p.into_inner());
            if buf.count > 0 {
                let fresh = Buffer {
                    data: self.spare.pop().unwrap_or_default(),
                    count: 0,
                };
                self.unwritten.push(std::mem::replace(&mut *buf, fresh));
            }
        }
        if self.unwritten.is_empty() {
            return true;
        }
        let mut pipe = redis::pipe();
        for buf in &self.unwritten {
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("*")
                .arg(FIELD_COUNT)
                .arg(buf.count)
                .arg(FIELD_DATA)
                .arg(&buf.data)
                .ignore();
        }
        let mut conn = self.redis.conn();
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => {
                let written: usize = self.unwritten.iter().map(|b| b.count).sum();
                self.inner.queued.fetch_sub(written, Ordering::Relaxed);
                for buf in self.unwritten.drain(..) {
                    let mut data = buf.data;
                    // Keep moderately sized buffers; let a burst's giant ones go.
                    if data.capacity() <= 4 << 20 {
                        data.clear();
                        self.spare.push(data);
                    }
                }
                if !self.inner.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("click log writes to Redis again");
                }
                true
            }
            Err(e) => {
                if self.inner.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "click log cannot write to Redis; queueing in memory");
                }
                self.inner.metrics.backend_error("redis");
                false
            }
        }
    }

    /// Counts the unwritten events as lost, per program.
    fn count_lost(&self) {
        #[derive(serde::Deserialize)]
        struct ProgramOnly {
            program_id: i64,
        }
        for buf in &self.unwritten {
            for line in buf.data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let program = serde_json::from_slice::<ProgramOnly>(line)
                    .map(|p| crate::domain::ProgramId::from_db(p.program_id).to_string())
                    .unwrap_or_else(|_| "unknown".into());
                self.inner
                    .metrics
                    .clicks
                    .with_label_values(&[&program, "log_failed"])
                    .inc();
            }
        }
    }
}
