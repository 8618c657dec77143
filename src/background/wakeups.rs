//! Waking idle workers when work arrives, instead of at their next poll.
//!
//! The side that adds work pokes a Postgres channel (`pg_notify`) after its
//! commit: the webhook intake when it stored conversions (`CONVERSIONS`),
//! the API and the portal after a change that may queue outgoing webhooks
//! (`EVENTS`: a payout, an enrollment, a claim, a decision). One listener
//! per process (`listen`) wakes the loops idling on those channels. (Within
//! a process, a worker whose commit made work for another tells it
//! directly: attribution, the hold-period approvals and the claims'
//! deadlines wake outgoing webhooks, see `startup`.) A notification is a
//! hint, never the record: one lost (the listener reconnecting, a process
//! starting, a poke skipped) only means the work waits for the poll, as it
//! did before. So the poll can stay slow
//! (`MITRA_WORKER_POLL_MS`, 500 ms) while a quiet system still books a
//! sale within milliseconds.
//!
//! The poke is its own statement after the commit, not a `NOTIFY` inside
//! the writing transaction: Postgres serializes the commits of transactions
//! that notify (a lock held through the commit's flush), and the webhook
//! intake's group commits must not queue behind each other for a hint.

use super::backoff;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The channel received conversions are announced on.
pub const CONVERSIONS: &str = "mitra_conversions";

/// The channel other changes that may queue outgoing webhooks are announced on.
pub const EVENTS: &str = "mitra_events";

/// Pokes at most this often: a worker woken once finds every row queued
/// since, and goes on to linger and look again while rows keep arriving
/// (a steady 1,000 webhooks/s pokes 50 times a second, not once a batch).
const MIN_GAP: Duration = Duration::from_millis(20);

/// Pokes a channel after work was committed: at most one poke in flight
/// and one per `MIN_GAP`, never waiting for it.
pub struct Poke {
    db: PgPool,
    channel: &'static str,
    in_flight: Arc<AtomicBool>,
    last: Mutex<Option<Instant>>,
}

impl Poke {
    pub fn new(db: PgPool, channel: &'static str) -> Self {
        Self {
            db,
            channel,
            in_flight: Arc::new(AtomicBool::new(false)),
            last: Mutex::new(None),
        }
    }

    /// Announces new work on the channel, in the background.
    pub fn poke(&self) {
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|l| l.elapsed() < MIN_GAP) {
                return;
            }
            if self.in_flight.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let (db, channel, in_flight) = (self.db.clone(), self.channel, self.in_flight.clone());
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("select pg_notify($1, '')")
                .bind(channel)
                .execute(&db)
                .await
            {
                // The poll finds the work anyway.
                tracing::debug!(error = %e, channel, "a wake-up was not sent");
            }
            in_flight.store(false, Ordering::Release);
        });
    }
}

/// Listens on `channels` until `shutdown` and wakes `wake`'s waiters at each
/// notification, and whenever the connection was lost (what was announced
/// meanwhile is gone; a look costs one step). A failure to connect is
/// retried with the workers' backoff: the listener never stops the process.
pub async fn listen(
    db: PgPool,
    channels: &'static [&'static str],
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut failures: u32 = 0;
    while !shutdown.is_cancelled() {
        match listen_once(&db, channels, &wake, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, ?channels, failures, "wake-up listener failed; the workers poll meanwhile");
                wake.notify_waiters();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff(failures)) => {}
                }
            }
        }
    }
}

async fn listen_once(
    db: &PgPool,
    channels: &'static [&'static str],
    wake: &Notify,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen_all(channels.iter().copied()).await?;
    tracing::debug!(?channels, "listening for wake-ups");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = listener.try_recv() => next?,
        };
        // A notification, or `None`: the connection was lost and is made
        // again; either way, look.
        if next.is_none() {
            tracing::debug!(?channels, "wake-up listener reconnected");
        }
        wake.notify_waiters();
    }
}
