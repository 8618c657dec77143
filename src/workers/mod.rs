//! Background workers: small steps run in a loop until shutdown.
//!
//! A step does one batch of work inside its own transaction and reports
//! whether it found any. Shutdown is only checked between steps, so a batch
//! in flight always finishes (or, if the process is killed, rolls back and is
//! claimed again). Tests drive the steps directly.

pub mod clicks;
pub mod lifecycle;

use crate::metrics::Metrics;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Work was done; look for more at once.
    Busy,
    /// Nothing to do; wait before polling again.
    Idle,
}

/// The worker roles one process can host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerRoles {
    pub clicks: bool,
    pub attribution: bool,
    pub lifecycle: bool,
}

impl WorkerRoles {
    pub const ALL: WorkerRoles = WorkerRoles {
        clicks: true,
        attribution: true,
        lifecycle: true,
    };
    pub const NONE: WorkerRoles = WorkerRoles {
        clicks: false,
        attribution: false,
        lifecycle: false,
    };

    pub fn any(self) -> bool {
        self.clicks || self.attribution || self.lifecycle
    }
}

/// Runs `step` until `shutdown` fires: busy steps follow each other at once,
/// an idle step waits `idle` (or less, if shutdown comes first), and a
/// failed step is logged and retried after a backoff that grows to 25.6 s.
pub async fn run_loop<F, Fut>(
    name: &'static str,
    shutdown: CancellationToken,
    idle: Duration,
    metrics: Arc<Metrics>,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Step>>,
{
    tracing::info!(worker = name, "worker started");
    let mut failures: u32 = 0;
    while !shutdown.is_cancelled() {
        let pause = match step().await {
            Ok(Step::Busy) => {
                failures = 0;
                metrics
                    .worker_steps
                    .with_label_values(&[name, "busy"])
                    .inc();
                // Yield so a long backlog cannot starve the rest of the runtime.
                tokio::task::yield_now().await;
                continue;
            }
            Ok(Step::Idle) => {
                failures = 0;
                metrics
                    .worker_steps
                    .with_label_values(&[name, "idle"])
                    .inc();
                idle
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                metrics
                    .worker_steps
                    .with_label_values(&[name, "failed"])
                    .inc();
                tracing::warn!(worker = name, error = ?e, failures, "worker step failed");
                backoff(failures)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!(worker = name, "worker stopped");
}

/// 100 ms doubled per consecutive failure, at most 25.6 s.
pub fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << failures.min(9).saturating_sub(1));
    Duration::from_millis(ms.min(30_000))
}

/// Starts the loops of the roles this process hosts, each under `shutdown`.
pub fn spawn_all(
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    state: &actix_web::web::Data<crate::state::AppState>,
    roles: WorkerRoles,
    shutdown: CancellationToken,
) {
    let idle = state.settings.workers.idle_poll;
    if roles.clicks {
        let worker = clicks::ClickWorker::new(
            state.redis.clone(),
            state.db.clone(),
            state.metrics.clone(),
            CLICK_RECLAIM_IDLE,
        );
        let (stop, metrics) = (shutdown.clone(), state.metrics.clone());
        tasks.spawn(async move {
            run_loop("clicks", stop, idle, metrics, || worker.step()).await;
            Ok(())
        });
    }
    if roles.attribution {
        // Several loops per process: while one waits on Postgres another
        // computes; SKIP LOCKED keeps their batches apart.
        for _ in 0..state.settings.attribution.concurrency {
            let worker = crate::attribution::Attributor::new(
                state.db.clone(),
                state.settings.link_keys.clone(),
                state.metrics.clone(),
                state.settings.attribution.clone(),
            );
            let (stop, metrics) = (shutdown.clone(), state.metrics.clone());
            tasks.spawn(async move {
                run_loop("attribution", stop, idle, metrics, || worker.step()).await;
                Ok(())
            });
        }
    }
    if roles.lifecycle {
        let worker = lifecycle::Lifecycle::new(state.db.clone(), state.metrics.clone());
        let (stop, metrics) = (shutdown.clone(), state.metrics.clone());
        tasks.spawn(async move {
            run_loop("lifecycle", stop, idle, metrics, || worker.step()).await;
            Ok(())
        });
    }
    // Every process reports whether its back ends answer, for alerts.
    let state = state.clone();
    tasks.spawn(async move {
        probe_backends(state, shutdown).await;
        Ok(())
    });
}

/// A click entry pending this long with a consumer is taken over by another.
pub const CLICK_RECLAIM_IDLE: Duration = Duration::from_secs(30);

/// Sets `mitra_backend_up` every 5 s from a real query and a PING.
async fn probe_backends(
    state: actix_web::web::Data<crate::state::AppState>,
    shutdown: CancellationToken,
) {
    let timeout = Duration::from_secs(1);
    loop {
        let pg = tokio::time::timeout(timeout, sqlx::query("select 1").execute(&state.db))
            .await
            .is_ok_and(|r| r.is_ok());
        let redis = tokio::time::timeout(timeout, state.redis.ping())
            .await
            .is_ok_and(|r| r.is_ok());
        let up = &state.metrics.backend_up;
        up.with_label_values(&["postgres"]).set(i64::from(pg));
        up.with_label_values(&["redis"]).set(i64::from(redis));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(9), Duration::from_millis(25_600));
        assert_eq!(backoff(100), Duration::from_millis(25_600));
    }
}
