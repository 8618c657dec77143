//! Group commit for webhooks: concurrent webhooks share one INSERT and one
//! commit. Each handler still answers only after its row is committed; under
//! load, many rows ride one round trip instead of one each. After a commit
//! that stored something new, the attribution workers are poked
//! (`background::wakeups`), so an idle worker books it at once.
//!
//! One statement is in flight at a time: what arrives meanwhile waits for it
//! and goes into the next. Two in flight (as before) made statements of one
//! row apiece at a steady 1,000 webhooks/s, and every statement costs its
//! commit, its flush and two triggers: one at a time used 8-10% less CPU of
//! mitra and of Postgres there, and took a 20,000-sale burst as fast
//! (benches/README.md, "The webhooks at 1,000/s: one statement in flight").
//!
//! The writer keeps its own connection rather than taking one from the pool
//! for each statement: sqlx tests a pooled connection with a round trip to
//! Postgres when it is taken and again when it is given back, so each
//! statement cost three round trips, each waking Postgres and mitra. Held,
//! it costs one: at 1,000 webhooks/s that took a quarter to a third off
//! mitra's CPU and Postgres's, and a fifth or more off the p99 with booking
//! alongside (benches/README.md, "The writer's own connection"). A
//! connection that sat idle for `IDLE_CHECK` is tested first, as the pool
//! would, so one that Postgres (or a proxy) closed while nothing arrived
//! is replaced instead of failing the next webhook. A failed statement gives
//! its connection back to the pool.

use super::{NewConversion, StoreError, Stored, store_many};
use crate::background::wakeups::{self, Poke};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgPool, Postgres};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most conversions in one statement.
pub const MAX_BATCH: usize = 500;

/// A held connection unused this long is tested with a round trip before
/// the next statement. Busier than that, the statements themselves tell.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

type Reply = oneshot::Sender<Result<Stored, StoreError>>;

#[derive(Clone)]
pub struct ConversionWriter {
    tx: mpsc::Sender<(NewConversion, Reply)>,
}

impl ConversionWriter {
    /// The writer handle webhooks store through, and the task that writes
    /// (`WriterTask::run`), which the caller runs while webhooks may arrive.
    pub fn new(db: PgPool) -> (Self, WriterTask) {
        let (tx, rx) = mpsc::channel::<(NewConversion, Reply)>(MAX_BATCH * 8);
        (
            Self { tx },
            WriterTask {
                poke: Poke::new(db.clone(), wakeups::CONVERSIONS),
                db,
                held: None,
                rx,
            },
        )
    }

    /// Stores one conversion; returns once it is committed (or refused).
    pub async fn store(&self, new: NewConversion) -> Result<Stored, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((new, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Batch {
        unavailable: true,
        message: "the conversion writer has stopped".into(),
    }
}

/// Takes what webhooks queued and writes it, one statement at a time.
pub struct WriterTask {
    db: PgPool,
    /// The connection statements go through, and when it was last used.
    held: Option<(PoolConnection<Postgres>, Instant)>,
    poke: Poke,
    rx: mpsc::Receiver<(NewConversion, Reply)>,
}

impl WriterTask {
    /// One statement through the held connection, taken from the pool (which
    /// tests it) when there is none or the held one failed its test.
    async fn store(
        &mut self,
        batch: &[NewConversion],
    ) -> Result<Vec<Result<Stored, StoreError>>, sqlx::Error> {
        let held = match self.held.take() {
            Some((conn, used)) if used.elapsed() < IDLE_CHECK => Some(conn),
            Some((mut conn, _)) => match conn.ping().await {
                Ok(()) => Some(conn),
                Err(e) => {
                    tracing::debug!(error = %e, "the conversion writer's idle connection was lost");
                    conn.close_on_drop();
                    None
                }
            },
            None => None,
        };
        let mut conn = match held {
            Some(conn) => conn,
            None => self.db.acquire().await?,
        };
        let stored = store_many(&mut conn, batch).await;
        if stored.is_ok() {
            self.held = Some((conn, Instant::now()));
        }
        stored
    }

    /// Writes until `stop` fires. Stop it only after the HTTP server has
    /// drained: then no webhook is waiting for an answer.
    pub async fn run(mut self, stop: CancellationToken) {
        // The writer opens its connection and prepares its statement before
        // the first webhook, which would otherwise wait for both (a process
        // just started in a rolling deploy takes traffic at once). An empty
        // batch writes nothing. Postgres down is no matter here: the first
        // webhook's statement connects, or answers 503.
        tokio::select! {
            warmed = self.store(&[]) => if let Err(e) = warmed {
                tracing::debug!(error = %e, "the conversion writer could not warm its connection");
            },
            _ = stop.cancelled() => return,
        }
        loop {
            // Whatever queued while the previous statement ran goes into the
            // next one (`recv_many` waits for one, then takes what is there);
            // nobody waits for a batch to fill.
            let mut batch = Vec::new();
            let taken = tokio::select! {
                taken = self.rx.recv_many(&mut batch, MAX_BATCH) => taken,
                _ = stop.cancelled() => return,
            };
            if taken == 0 {
                return; // every sender is gone
            }
            let (new, replies): (Vec<NewConversion>, Vec<Reply>) = batch.into_iter().unzip();
            match self.store(&new).await {
                Ok(results) => {
                    if results.iter().any(|r| matches!(r, Ok(Stored::New(_)))) {
                        self.poke.poke();
                    }
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    let unavailable = crate::db::is_unavailable(&e);
                    tracing::warn!(error = %e, "a batch of conversions was not stored");
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Batch {
                            unavailable,
                            message: format!("storing conversions failed: {e}"),
                        }));
                    }
                }
            }
        }
    }
}
