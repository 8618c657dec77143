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
//! mitra and of Postgres there, and took a 20,000-sale burst as fast (README,
//! Performance, "One statement in flight").

use super::{NewConversion, StoreError, Stored, store_many};
use crate::background::wakeups::{self, Poke};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most conversions in one statement.
pub const MAX_BATCH: usize = 500;

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
    poke: Poke,
    rx: mpsc::Receiver<(NewConversion, Reply)>,
}

impl WriterTask {
    /// Writes until `stop` fires. Stop it only after the HTTP server has
    /// drained: then no webhook is waiting for an answer.
    pub async fn run(mut self, stop: CancellationToken) {
        // The writer opens its connection and prepares its statement before
        // the first webhook, which would otherwise wait for both (a process
        // just started in a rolling deploy takes traffic at once). An empty
        // batch writes nothing. Postgres down is no matter here: the first
        // webhook's statement connects, or answers 503.
        tokio::select! {
            warmed = store_many(&self.db, &[]) => if let Err(e) = warmed {
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
            match store_many(&self.db, &new).await {
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
