//! Whether the back ends answer: a real query to Postgres and a PING to
//! Redis, each bounded by a timeout. Readiness (`GET /readyz`) asks once per
//! request; every process also probes every 5 s for `mitra_backend_up`, so
//! alerts see a back end go away even when nobody calls.

use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long each check waits for its back end.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often the probe runs.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Which back ends answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backends {
    pub postgres: bool,
    pub redis: bool,
}

impl Backends {
    pub fn all_up(self) -> bool {
        self.postgres && self.redis
    }
}

/// Checks both back ends at once.
pub async fn check(db: &PgPool, redis: &RedisClient) -> Backends {
    let postgres = async {
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("select 1").execute(db))
            .await
            .is_ok_and(|r| r.is_ok())
    };
    let redis = async {
        tokio::time::timeout(CHECK_TIMEOUT, redis.ping())
            .await
            .is_ok_and(|r| r.is_ok())
    };
    let (postgres, redis) = tokio::join!(postgres, redis);
    Backends { postgres, redis }
}

/// Sets `mitra_backend_up` every 5 s until `shutdown`.
pub async fn probe(
    db: PgPool,
    redis: RedisClient,
    metrics: std::sync::Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let up = check(&db, &redis).await;
        let gauge = &metrics.backend_up;
        gauge
            .with_label_values(&["postgres"])
            .set(i64::from(up.postgres));
        gauge.with_label_values(&["redis"]).set(i64::from(up.redis));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}
