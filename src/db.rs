//! The Postgres pool and the migrations it runs.

use crate::config::Settings;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool that connects on first use, so the API can start (and report
/// itself unready) while Postgres is down. Acquiring waits at most 3 s: a
/// request should fail fast with 503 rather than hang.
pub fn pool(settings: &Settings) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = settings
        .expose_database_url()
        .parse()
        .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a usable Postgres URL"))?;
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
