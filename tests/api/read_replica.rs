//! MITRA_DATABASE_READ_URL on a real streaming replica of the test
//! Postgres (scripts/test makes it with pg_basebackup): reports and
//! statements read it while it is fresh, and the primary once it lags
//! past the bound or does not answer.

use crate::helpers::*;
use mitra::startup::Roles;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};

fn replica_url(database: &str) -> url::Url {
    let raw = std::env::var("DATABASE_REPLICA_URL").expect(
        "DATABASE_REPLICA_URL is not set: run the tests with scripts/test, which starts a streaming replica",
    );
    let mut url = url::Url::parse(&raw).expect("DATABASE_REPLICA_URL is a URL");
    url.set_path(&format!("/{database}"));
    url
}

/// Replay paused on the replica for as long as it lives; resumed on drop,
/// even when the test fails.
struct ReplayPaused {
    /// When the primary was at the position the replica replayed to before
    /// it paused: the replica holds what was committed before this instant,
    /// and is as stale as the time since.
    stale_since: Instant,
}

impl ReplayPaused {
    /// Pauses replay once the replica has caught up with the primary: the
    /// shared server takes WAL from other tests too (a database cloned from
    /// the template is a burst of it), and a replica already behind when
    /// paused would look stale sooner than the test counts from. Catching
    /// up takes a while on a loaded machine, so staleness is counted from
    /// when the position caught up to was read, not from the pause.
    async fn start(primary: &str) -> Self {
        let mut conn = PgConnection::connect(replica_url("postgres").as_str())
            .await
            .unwrap();
        let mut on_primary = PgConnection::connect(primary).await.unwrap();
        let stale_since = Instant::now();
        let target: String = sqlx::query_scalar("select pg_current_wal_lsn()::text")
            .fetch_one(&mut on_primary)
            .await
            .unwrap();
        eventually(
            Duration::from_secs(10),
            "the replica never caught up with the primary",
            || {
                let replica = replica_url("postgres");
                let target = target.clone();
                async move {
                    let mut c = PgConnection::connect(replica.as_str()).await.unwrap();
                    sqlx::query_scalar::<_, bool>(
                        "select pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    )
                    .bind(target)
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
                }
            },
        )
        .await;
        sqlx::query("select pg_wal_replay_pause()")
            .execute(&mut conn)
            .await
            .unwrap();
        ReplayPaused { stale_since }
    }
}

impl Drop for ReplayPaused {
    fn drop(&mut self) {
        let _ = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = PgConnection::connect(replica_url("postgres").as_str())
                    .await
                    .unwrap();
                sqlx::query("select pg_wal_replay_resume()")
                    .execute(&mut conn)
                    .await
                    .unwrap();
            });
        })
        .join();
    }
}

async fn clicks_reported(app: &TestApp) -> i64 {
    let body = assert_status(
        app.get("/v1/reports", &app.admin_token).await,
        StatusCode::OK,
    )
    .await;
    body["totals"]["clicks"].as_i64().unwrap()
}

async fn reads_from(app: &TestApp, pool: &str) -> f64 {
    metric(
        &app.metrics().await,
        &format!(r#"mitra_db_reads_total{{pool="{pool}"}}"#),
    )
}

async fn click_and_roll_up(app: &TestApp, link: &Value, n: usize) {
    for i in 0..n {
        let res = app
            .client
            .get(app.url(&TestApp::link_path(link)))
            .header("user-agent", "Mozilla/5.0 Firefox/120.0")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "click {i}");
    }
    app.drain_clicks().await;
}

#[tokio::test]
async fn reports_read_the_replica_while_it_is_within_its_lag_bound_and_the_primary_after() {
    let (database, url) = fresh_database().await;
    let read_url = replica_url(&database.name);
    // The database reaches the replica by streaming replication too.
    eventually(
        Duration::from_secs(10),
        "the database never reached the replica",
        || async { PgConnection::connect(read_url.as_str()).await.is_ok() },
    )
    .await;
    let settings = test_settings(
        &url,
        &[
            ("MITRA_DATABASE_READ_URL", read_url.as_str()),
            ("MITRA_DATABASE_READ_MAX_LAG_MS", "2000"),
        ],
    );
    let app = start(settings, std::sync::Arc::new(database), Roles::API).await;
    let f = fixture(&app, json!({})).await;
    click_and_roll_up(&app, &f.link, 3).await;
    // Reads start on the primary; the first probe finds the replica fresh.
    eventually(
        Duration::from_secs(10),
        "the replica never served the report",
        || async {
            let replica = reads_from(&app, "replica").await;
            clicks_reported(&app).await == 3 && reads_from(&app, "replica").await > replica
        },
    )
    .await;
    // Statements read there too.
    let before = reads_from(&app, "replica").await;
    let statement = format!("/v1/partners/{}/statement", s(&f.partner["id"]));
    assert_status(app.get(&statement, &app.admin_token).await, StatusCode::OK).await;
    assert_eq!(reads_from(&app, "replica").await, before + 1.0);

    // The replica stops replaying: what the primary commits now it lacks.
    let paused = ReplayPaused::start(url.as_str()).await;
    let paused_at = paused.stale_since;
    click_and_roll_up(&app, &f.link, 2).await;
    let seen = clicks_reported(&app).await;
    // Lag is measured against samples taken every 500 ms, so it may read
    // up to 500 ms high, and up to 1 s when the replica was a moment behind
    // the last sample as replay stopped: reads may leave the replica from
    // 1 s on (CI once saw 1.27 s), never sooner.
    if paused_at.elapsed() < Duration::from_millis(900) {
        assert_eq!(
            seen, 3,
            "a stale report, but within the bound, from the replica"
        );
    }
    // Past the bound, reads go to the primary, which has all five.
    eventually(
        Duration::from_secs(10),
        "reads never left the stale replica",
        || async { clicks_reported(&app).await == 5 },
    )
    .await;
    assert!(
        paused_at.elapsed() >= Duration::from_millis(900),
        "reads left the replica long before it was 2 s behind ({:?})",
        paused_at.elapsed()
    );
    let on_primary = reads_from(&app, "primary").await;
    clicks_reported(&app).await;
    assert_eq!(reads_from(&app, "primary").await, on_primary + 1.0);

    // Replaying again, it catches up and serves reads once more.
    drop(paused);
    eventually(
        Duration::from_secs(10),
        "reads never came back to the replica",
        || async {
            let replica = reads_from(&app, "replica").await;
            clicks_reported(&app).await == 5 && reads_from(&app, "replica").await > replica
        },
    )
    .await;
}

#[tokio::test]
async fn with_the_replica_unreachable_reports_read_the_primary() {
    let app = spawn_app_with(
        Roles::API,
        &[(
            "MITRA_DATABASE_READ_URL",
            "postgres://postgres@127.0.0.1:1/nowhere",
        )],
    )
    .await;
    let f = fixture(&app, json!({})).await;
    click_and_roll_up(&app, &f.link, 2).await;
    assert_eq!(clicks_reported(&app).await, 2);
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a replica down does not make mitra unready"
    );
    eventually(
        Duration::from_secs(5),
        "the replica is reported down",
        || async {
            let m = app.metrics().await;
            m.contains(r#"mitra_backend_up{backend="postgres_replica"} 0"#)
        },
    )
    .await;
}
