//! Group commit for webhooks: concurrent webhooks share one INSERT and one
//! commit. Each handler still answers only after its row is committed; under
//! load, many rows ride one round trip instead of one each.

use super::{NewConversion, StoreError, Stored, store_many};
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// Most conversions in one statement.
pub const MAX_BATCH: usize = 500;
/// Statements in flight at once.
const WRITERS: usize = 2;

type Reply = oneshot::Sender<Result<Stored, StoreError>>;

#[derive(Clone)]
pub struct ConversionWriter {
    tx: mpsc::Sender<(NewConversion, Reply)>,
}

impl ConversionWriter {
    /// Starts the writer tasks on the current runtime; they end when the
    /// last handle is dropped.
    pub fn start(db: PgPool) -> Self {
        let (tx, rx) = mpsc::channel::<(NewConversion, Reply)>(MAX_BATCH * 8);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WRITERS {
            let (db, rx) = (db.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    // Whatever queued while the previous statement ran goes
                    // into the next one; nobody waits for a batch to fill.
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    let (new, replies): (Vec<NewConversion>, Vec<Reply>) =
                        batch.into_iter().unzip();
                    match store_many(&db, &new).await {
                        Ok(results) => {
                            for (reply, result) in replies.into_iter().zip(results) {
                                let _ = reply.send(result);
                            }
                        }
                        Err(e) => {
                            let unavailable = crate::error::is_unavailable(&e);
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
            });
        }
        Self { tx }
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
