//! The pieces every background worker is made of: a step, the loop that
//! runs it until shutdown, the backoff after a failure, and a timer for
//! housekeeping between steps, and the wake-ups that end an idle wait
//! early (`wakeups`).
//!
//! A step does one batch of work inside its own transaction and reports
//! whether it found any. Shutdown is only checked between steps, so a batch
//! in flight always finishes (or, if the process is killed, rolls back and is
//! claimed again). Tests drive the steps directly.

pub mod wakeups;

use crate::metrics::Metrics;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A full batch was done; more may be waiting: look again at once.
    Busy,
    /// Work was done, and the queue ran dry before a batch filled: wait a
    /// moment (`Pauses::linger`) so that what arrives meanwhile makes one
    /// batch, instead of each arrival a transaction of its own.
    Drained,
    /// Nothing to do; wait before polling again.
    Idle,
}

/// How long a worker waits after a step that drained its queue, and after
/// one that found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pauses {
    pub linger: Duration,
    pub idle: Duration,
}

/// Runs `step` until `shutdown` fires: busy steps follow each other at once,
/// a drained step waits `pauses.linger`, an idle step `pauses.idle` or until
/// `wake` is notified (either less, if shutdown comes first), and a failed
/// step is logged and retried after a backoff that grows to 25.6 s.
///
/// A wake-up that comes while the step runs still counts: the loop listens
/// for it from before the step. Only an idle wait is cut short; a linger
/// waits its time, so that what arrives meanwhile makes one batch.
pub async fn run_loop<F, Fut>(
    name: &'static str,
    shutdown: CancellationToken,
    pauses: Pauses,
    wake: Option<Arc<Notify>>,
    metrics: Arc<Metrics>,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Step>>,
{
    tracing::info!(worker = name, "worker started");
    let mut failures: u32 = 0;
    while !shutdown.is_cancelled() {
        let mut woken = wake.as_deref().map(|w| Box::pin(w.notified()));
        if let Some(w) = woken.as_mut() {
            w.as_mut().enable();
        }
        // Each outcome, and how long to wait before the next step (none
        // for a busy one).
        let (outcome, pause) = match step().await {
            Ok(Step::Busy) => {
                failures = 0;
                ("busy", None)
            }
            Ok(Step::Drained) => {
                failures = 0;
                ("drained", Some(pauses.linger))
            }
            Ok(Step::Idle) => {
                failures = 0;
                ("idle", Some(pauses.idle))
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(worker = name, error = ?e, failures, "worker step failed");
                ("failed", Some(backoff(failures)))
            }
        };
        metrics
            .worker_steps
            .with_label_values(&[name, outcome])
            .inc();
        let Some(pause) = pause else {
            // Yield so a long backlog cannot starve the rest of the runtime.
            tokio::task::yield_now().await;
            continue;
        };
        let wakeable = outcome == "idle";
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
            _ = async {
                match woken {
                    Some(w) if wakeable => w.await,
                    _ => std::future::pending().await,
                }
            } => {}
        }
    }
    tracing::info!(worker = name, "worker stopped");
}

/// 100 ms doubled per consecutive failure, at most 25.6 s.
pub fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << failures.min(9).saturating_sub(1));
    Duration::from_millis(ms.min(30_000))
}

/// Says "due" at most once per period: the housekeeping a worker does
/// between steps (gauges, trimming, purging), which must not run at every
/// idle poll.
pub struct Every {
    period: Duration,
    last: Mutex<Option<Instant>>,
}

impl Every {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last: Mutex::new(None),
        }
    }

    /// True the first time, then once `period` has passed since it last was.
    pub fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|l| l.elapsed() < self.period) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// The long-running tasks of one process, supervised together: the HTTP
/// server, the writers and flushers behind it, and every worker loop. Each
/// is expected to run until shutdown; one that ends before (an error, a
/// panic, or simply returning) is logged and stops the whole process with
/// an error, so an orchestrator restarts it instead of leaving it half
/// alive.
#[derive(Default)]
pub struct Supervised {
    tasks: tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Supervised {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` under `name` until it ends.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// Waits for `shutdown`, or for a task to end first. Then runs `stop`
    /// (which makes the remaining tasks end) and waits for every task.
    /// Fails when a task ended before shutdown, or failed or panicked.
    pub async fn run<S: Future<Output = ()>>(
        mut self,
        shutdown: CancellationToken,
        stop: S,
    ) -> anyhow::Result<()> {
        let mut failure: Option<anyhow::Error> = None;
        tokio::select! {
            // A task that ends because shutdown began is not a failure.
            biased;
            _ = shutdown.cancelled() => {}
            Some(joined) = self.tasks.join_next() => {
                let e = match joined {
                    Ok((name, Ok(()))) => anyhow::anyhow!("task {name} stopped unexpectedly"),
                    Ok((name, Err(e))) => e.context(format!("task {name} failed")),
                    Err(e) => anyhow::anyhow!("a task panicked: {e}"),
                };
                tracing::error!(error = ?e, "a task ended before shutdown; stopping the process");
                failure = Some(e);
                shutdown.cancel();
            }
        }
        stop.await;
        while let Some(joined) = self.tasks.join_next().await {
            let e = match joined {
                Ok((_, Ok(()))) => continue,
                Ok((name, Err(e))) => e.context(format!("task {name} failed")),
                Err(e) => anyhow::anyhow!("a task panicked: {e}"),
            };
            tracing::error!(error = ?e, "a task failed while stopping");
            failure.get_or_insert(e);
        }
        failure.map_or(Ok(()), Err)
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

    #[test]
    fn every_is_due_at_first_and_then_once_per_period() {
        let every = Every::new(Duration::from_secs(3600));
        assert!(every.due());
        assert!(!every.due());
        let often = Every::new(Duration::ZERO);
        assert!(often.due());
        assert!(often.due());
    }

    #[tokio::test]
    async fn a_task_that_ends_before_shutdown_stops_the_others_and_fails() {
        let shutdown = CancellationToken::new();
        let mut set = Supervised::new();
        let stop = shutdown.clone();
        set.spawn("long", async move {
            stop.cancelled().await;
            Ok(())
        });
        set.spawn("short", async { Ok(()) });
        let err = set.run(shutdown.clone(), async {}).await.unwrap_err();
        assert_eq!(err.to_string(), "task short stopped unexpectedly");
        assert!(shutdown.is_cancelled(), "the other tasks are told to stop");
    }

    /// Virtual time (tokio's paused clock): the pauses are exact.
    #[tokio::test(start_paused = true)]
    async fn busy_goes_on_at_once_drained_lingers_idle_polls_failed_backs_off() {
        let pauses = Pauses {
            linger: Duration::from_millis(50),
            idle: Duration::from_millis(500),
        };
        let script = [
            Some(Step::Busy),
            Some(Step::Drained),
            Some(Step::Idle),
            None, // fails
            Some(Step::Busy),
        ];
        let calls = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let (log, stop) = (calls.clone(), shutdown.clone());
        let started = tokio::time::Instant::now();
        run_loop(
            "test",
            shutdown.clone(),
            pauses,
            None,
            Arc::new(Metrics::new()),
            move || {
                let (log, stop) = (log.clone(), stop.clone());
                async move {
                    let mut log = log.lock().unwrap();
                    log.push(started.elapsed());
                    let outcome = script.get(log.len() - 1).copied().flatten();
                    if log.len() == script.len() {
                        stop.cancel();
                    }
                    outcome.ok_or_else(|| anyhow::anyhow!("step failed"))
                }
            },
        )
        .await;
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(
            *calls.lock().unwrap(),
            // busy: at once; drained: +50; idle: +500; failed: +100 (backoff)
            vec![ms(0), ms(0), ms(50), ms(550), ms(650)]
        );
    }

    /// A wake-up ends an idle wait at once, and one that comes while the
    /// step runs is not lost; a linger still waits its time.
    #[tokio::test(start_paused = true)]
    async fn a_wake_up_ends_an_idle_wait_but_not_a_linger() {
        let pauses = Pauses {
            linger: Duration::from_millis(50),
            idle: Duration::from_millis(500),
        };
        let script = [Step::Idle, Step::Drained, Step::Idle, Step::Idle];
        let wake = Arc::new(Notify::new());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let started = tokio::time::Instant::now();
        // Work arrives at 100 ms (the loop idles) and at 120 ms (it lingers).
        let waker = wake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            waker.notify_waiters();
            tokio::time::sleep(Duration::from_millis(20)).await;
            waker.notify_waiters();
        });
        let (log, stop, waker) = (calls.clone(), shutdown.clone(), wake.clone());
        run_loop(
            "test",
            shutdown.clone(),
            pauses,
            Some(wake),
            Arc::new(Metrics::new()),
            move || {
                let (log, stop, waker) = (log.clone(), stop.clone(), waker.clone());
                async move {
                    let mut log = log.lock().unwrap();
                    log.push(started.elapsed());
                    // The third step finds nothing, and work arrives meanwhile.
                    if log.len() == 3 {
                        waker.notify_waiters();
                    }
                    if log.len() == script.len() {
                        stop.cancel();
                    }
                    Ok(script[log.len() - 1])
                }
            },
        )
        .await;
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(
            *calls.lock().unwrap(),
            // idle, woken at 100; drained: lingers to 150 despite the wake at
            // 120; idle, woken during its own step: at once
            vec![ms(0), ms(100), ms(150), ms(150)]
        );
    }

    #[tokio::test]
    async fn a_failing_or_panicking_task_is_named_in_the_error() {
        let shutdown = CancellationToken::new();
        let mut set = Supervised::new();
        set.spawn("broken", async { Err(anyhow::anyhow!("disk full")) });
        let err = set.run(shutdown.clone(), async {}).await.unwrap_err();
        assert_eq!(format!("{err:#}"), "task broken failed: disk full");

        let mut set = Supervised::new();
        set.spawn("panics", async { panic!("boom") });
        let err = set
            .run(CancellationToken::new(), async {})
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("a task panicked"), "{err}");
    }

    #[tokio::test]
    async fn on_shutdown_every_task_is_stopped_and_awaited() {
        let shutdown = CancellationToken::new();
        let drained = CancellationToken::new();
        let mut set = Supervised::new();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (d, f) = (drained.clone(), finished.clone());
        set.spawn("flusher", async move {
            d.cancelled().await;
            f.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        shutdown.cancel();
        let stop = {
            let drained = drained.clone();
            async move { drained.cancel() }
        };
        set.run(shutdown, stop).await.unwrap();
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }
}
