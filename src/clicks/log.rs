//! The click log: every redirect appends one event to a Redis stream.
//!
//! Redirect handlers hand their event to a channel and wait (briefly) for
//! it to be written. One flusher task takes whatever has queued up while the
//! previous write was in flight and writes it as a single stream entry: many
//! concurrent redirects share one round trip and one XADD (group commit), so
//! logging adds little latency and almost no Redis work per click.
//!
//! When Redis is down or slow the shopper is not kept waiting: handlers stop
//! waiting for the write, events queue in memory (bounded) and are written
//! once Redis answers again. Events that do not fit are counted as lost.

use super::ClickEvent;
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most events in one stream entry.
pub const MAX_BATCH: usize = 1000;

/// The stream's name under the deployment's prefix.
pub const STREAM: &str = "clicks";

struct Pending {
    event: ClickEvent,
    program_label: Arc<str>,
    ack: Option<oneshot::Sender<()>>,
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// Written to Redis before the redirect was answered.
    Written,
    /// Queued in memory; Redis is slow or down, it will be written later.
    Queued,
    /// The in-memory queue was full: the event is lost (and counted).
    Lost,
}

#[derive(Clone)]
pub struct ClickLog {
    tx: mpsc::Sender<Pending>,
    healthy: Arc<AtomicBool>,
    wait: Duration,
    metrics: Arc<Metrics>,
}

pub struct Settings {
    /// Events held in memory while Redis is away.
    pub capacity: usize,
    /// How long a redirect waits for its event to be written.
    pub wait: Duration,
}

impl ClickLog {
    /// Starts the flusher on the current runtime. It runs until `stop` fires,
    /// then writes what is still queued (if Redis answers) and ends.
    pub fn start(
        redis: RedisClient,
        metrics: Arc<Metrics>,
        settings: Settings,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        let healthy = Arc::new(AtomicBool::new(true));
        let flusher = Flusher {
            redis,
            metrics: metrics.clone(),
            healthy: healthy.clone(),
            key: String::new(),
        };
        let handle = tokio::spawn(flusher.run(rx, stop));
        (
            Self {
                tx,
                healthy,
                wait: settings.wait,
                metrics,
            },
            handle,
        )
    }

    /// Whether the last write to Redis succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Logs one click. Waits for the write only while Redis is healthy, and
    /// never longer than the configured wait.
    pub async fn log(&self, event: ClickEvent, program_label: Arc<str>) -> Logged {
        let wait = self.is_healthy() && !self.wait.is_zero();
        let (ack, done) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let pending = Pending {
            event,
            program_label,
            ack,
        };
        if let Err(mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p)) =
            self.tx.try_send(pending)
        {
            self.metrics
                .clicks
                .with_label_values(&[&p.program_label, "log_failed"])
                .inc();
            return Logged::Lost;
        }
        match done {
            Some(done) => match tokio::time::timeout(self.wait, done).await {
                Ok(Ok(())) => Logged::Written,
                _ => Logged::Queued,
            },
            None => Logged::Queued,
        }
    }
}

struct Flusher {
    redis: RedisClient,
    metrics: Arc<Metrics>,
    healthy: Arc<AtomicBool>,
    key: String,
}

impl Flusher {
    async fn run(mut self, mut rx: mpsc::Receiver<Pending>, stop: CancellationToken) {
        self.key = self.redis.key(STREAM);
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = tokio::select! {
                p = rx.recv() => p,
                _ = stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            if !self.write_until_done(&mut batch, &stop).await {
                break;
            }
        }
        // Shutting down: one last attempt for what is still queued.
        rx.close();
        while let Ok(p) = rx.try_recv() {
            batch.push(p);
        }
        if !batch.is_empty() && !self.write(&batch).await {
            tracing::error!(
                lost = batch.len(),
                "click events lost at shutdown: Redis did not answer"
            );
            self.count_lost(&batch);
        }
    }

    /// Writes the batch, retrying with backoff while Redis is away. Waiting
    /// handlers are released at the first failure. False when stopped first.
    async fn write_until_done(
        &mut self,
        batch: &mut Vec<Pending>,
        stop: &CancellationToken,
    ) -> bool {
        let mut failures: u32 = 0;
        loop {
            if self.write(batch).await {
                for p in batch.drain(..) {
                    if let Some(ack) = p.ack {
                        let _ = ack.send(());
                    }
                }
                return true;
            }
            // Let the shoppers go; the events stay queued.
            for p in batch.iter_mut() {
                p.ack = None;
            }
            failures += 1;
            let pause = crate::workers::backoff(failures).min(Duration::from_secs(2));
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn write(&self, batch: &[Pending]) -> bool {
        let events: Vec<&ClickEvent> = batch.iter().map(|p| &p.event).collect();
        let data = match serde_json::to_vec(&events) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "click events do not serialize");
                return true;
            }
        };
        let mut conn = self.redis.conn();
        let result: redis::RedisResult<String> = redis::cmd("XADD")
            .arg(&self.key)
            .arg("*")
            .arg("n")
            .arg(batch.len())
            .arg("d")
            .arg(data)
            .query_async(&mut conn)
            .await;
        match result {
            Ok(_) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("click log writes to Redis again");
                }
                true
            }
            Err(e) => {
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "click log cannot write to Redis; queueing in memory");
                }
                self.metrics.backend_error("redis");
                false
            }
        }
    }

    fn count_lost(&self, batch: &[Pending]) {
        for p in batch {
            self.metrics
                .clicks
                .with_label_values(&[&p.program_label, "log_failed"])
                .inc();
        }
    }
}
