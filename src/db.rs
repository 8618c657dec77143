//! The Postgres pools (the primary, and a read replica for reports and
//! statements) and the migrations they run.

use crate::config::Settings;
use crate::metrics::Metrics;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool that connects on first use, so the API can start (and report
/// itself unready) while Postgres is down. Acquiring waits at most 3 s: a
/// request should fail fast with 503 rather than hang.
pub fn pool(settings: &Settings) -> anyhow::Result<PgPool> {
    pool_on(settings.expose_database_url(), "DATABASE_URL", settings)
}

fn pool_on(url: &str, var: &str, settings: &Settings) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|_| anyhow::anyhow!("{var} is not a usable Postgres URL"))?;
    // Every query here is short and runs often: compiling it (JIT) costs
    // more than it could ever save, and made a year's report 3x slower.
    let options = options.options([("jit", "off")]);
    Ok(PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options))
}

/// Applies pending migrations. Safe to run from several processes at once:
/// sqlx holds an advisory lock while it migrates.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| anyhow::anyhow!("applying migrations failed: {e}"))
}

/// Whether an error means Postgres cannot be reached (retry later), as
/// opposed to a bug or a broken invariant.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    ) || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

/// Where reads that may be a little stale go (reports, statements): the
/// read replica while it is fresh enough, else the primary. Cheap to clone.
///
/// Freshness is measured, not assumed: `watch` samples the primary's WAL
/// insert position every probe interval and asks the replica how far it has
/// replayed. A replica that has replayed past the position sampled at time
/// t holds every transaction committed before t, so its staleness is at
/// most now - t. While that exceeds `max_lag`, or the replica does not
/// answer, reads go to the primary. A read therefore misses nothing
/// committed more than `max_lag` plus one probe interval before it.
#[derive(Clone)]
pub struct ReadPool {
    primary: PgPool,
    replica: Option<Arc<Replica>>,
    metrics: Arc<Metrics>,
}

struct Replica {
    pool: PgPool,
    max_lag: Duration,
    /// Whether the last probe found the replica fresh enough.
    fresh: AtomicBool,
}

impl ReadPool {
    /// The replica `settings` name, if any, beside `primary`. Reads start on
    /// the primary and move to the replica once a probe finds it fresh.
    pub fn new(
        settings: &Settings,
        primary: PgPool,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let replica = match &settings.database_read {
            None => None,
            Some(read) => Some(Arc::new(Replica {
                pool: pool_on(
                    secrecy::ExposeSecret::expose_secret(&read.url),
                    "MITRA_DATABASE_READ_URL",
                    settings,
                )?,
                max_lag: read.max_lag,
                fresh: AtomicBool::new(false),
            })),
        };
        Ok(Self {
            primary,
            replica,
            metrics,
        })
    }

    /// The pool for a read that may be up to the bound stale.
    pub fn pool(&self) -> &PgPool {
        match &self.replica {
            Some(r) if r.fresh.load(Ordering::Relaxed) => {
                self.metrics.db_reads.with_label_values(&["replica"]).inc();
                &r.pool
            }
            _ => {
                self.metrics.db_reads.with_label_values(&["primary"]).inc();
                &self.primary
            }
        }
    }

    /// Whether a replica is configured.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Measures the replica's lag every probe interval until `shutdown`,
    /// and routes reads accordingly. Returns at once without a replica.
    pub async fn watch(self, shutdown: CancellationToken) {
        let Some(replica) = self.replica.clone() else {
            return;
        };
        let every = (replica.max_lag / 4).min(Duration::from_secs(1));
        // (when, the primary's WAL insert position then), oldest first.
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        loop {
            let lag = self.probe(&replica, &mut samples).await;
            let fresh = lag.is_some_and(|l| l <= replica.max_lag);
            if replica.fresh.swap(fresh, Ordering::Relaxed) != fresh {
                match lag {
                    Some(lag) if fresh => {
                        tracing::info!(?lag, "reports read from the replica again")
                    }
                    Some(lag) => tracing::warn!(
                        ?lag,
                        max = ?replica.max_lag,
                        "read replica too far behind; reports read from the primary"
                    ),
                    None => {
                        tracing::warn!("read replica unreachable; reports read from the primary")
                    }
                }
            }
            let up = &self.metrics.backend_up;
            up.with_label_values(&["postgres_replica"])
                .set(i64::from(lag.is_some()));
            if let Some(lag) = lag {
                self.metrics.replica_lag.set(lag.as_secs_f64());
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// The replica's staleness bound now, or `None` when it cannot be told.
    async fn probe(
        &self,
        replica: &Replica,
        samples: &mut VecDeque<(Instant, i64)>,
    ) -> Option<Duration> {
        let sampled_at = Instant::now();
        match primary_wal_position(&self.primary).await {
            Ok(position) => samples.push_back((sampled_at, position)),
            Err(e) => tracing::debug!(error = %e, "primary WAL position unknown"),
        }
        // Samples older than twice the bound can only say "too stale".
        while samples.len() > 1 && samples[1].0.elapsed() > replica.max_lag * 2 {
            samples.pop_front();
        }
        let replayed = match replica_replayed(&replica.pool).await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.backend_error("postgres_replica");
                tracing::debug!(error = %e, "read replica did not answer");
                return None;
            }
        };
        let Some(replayed) = replayed else {
            // Not in recovery: a primary itself, as fresh as can be.
            return Some(Duration::ZERO);
        };
        let (oldest, _) = *samples.front()?;
        Some(
            samples
                .iter()
                .rev()
                .find(|(_, position)| *position <= replayed)
                .map(|(at, _)| at.elapsed())
                // Behind everything sampled: at least as stale as the oldest sample.
                .unwrap_or_else(|| oldest.elapsed().max(replica.max_lag * 2)),
        )
    }
}

/// The primary's WAL insert position in bytes: every transaction committed
/// before now ends at or below it.
async fn primary_wal_position(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint as "position!""#
    )
    .fetch_one(db)
    .await
}

/// How far a replica has replayed the WAL, in bytes; `None` when the server
/// is not a replica.
async fn replica_replayed(db: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select case when pg_is_in_recovery()
                  then (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint end as replayed"#
    )
    .fetch_one(db)
    .await
}
