//! The click log and its worker: counted exactly, bots flagged, uniques
//! once, and nothing lost or doubled when Redis or a worker fails.

use crate::helpers::*;
use mitra::startup::Roles;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

async fn click(app: &TestApp, path: &str, user_agent: &str, ip: &str) -> StatusCode {
    app.client
        .get(app.url(path))
        .header("user-agent", user_agent)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap()
        .status()
}

/// Roll-up totals of a link: (clicks, unique, bots).
async fn link_totals(app: &TestApp, link: &serde_json::Value) -> (i64, i64, i64) {
    let id = mitra::domain::LinkId::parse(s(&link["id"])).unwrap().get();
    sqlx::query_as(
        "select coalesce(sum(clicks), 0)::bigint, coalesce(sum(unique_clicks), 0)::bigint,
                coalesce(sum(bot_clicks), 0)::bigint from link_click_days where link_id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

async fn partner_totals(app: &TestApp, partner: &serde_json::Value) -> (i64, i64, i64) {
    let id = mitra::domain::PartnerId::parse(s(&partner["id"]))
        .unwrap()
        .get();
    sqlx::query_as(
        "select coalesce(sum(clicks), 0)::bigint, coalesce(sum(unique_clicks), 0)::bigint,
                coalesce(sum(bot_clicks), 0)::bigint from partner_click_days where partner_id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

fn trusting() -> [(&'static str, &'static str); 1] {
    [("MITRA_TRUSTED_PROXIES", "127.0.0.1/32")]
}

#[tokio::test]
async fn concurrent_redirects_are_counted_exactly() {
    let app = spawn_app_with(Roles::API, &trusting()).await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    let n = 300;
    let requests = (0..n).map(|i| {
        let (app, path) = (&app, &path);
        async move { click(app, path, BROWSER, &format!("198.51.100.{}", i % 100)).await }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::FOUND));
    let events = app.click_events().await;
    assert_eq!(events.len(), n, "one event per redirect");
    let mut ids: Vec<&str> = events.iter().map(|e| e.click_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "click ids are distinct");

    app.drain_clicks().await;
    assert_eq!(link_totals(&app, &f.link).await, (n as i64, 100, 0));
    assert_eq!(partner_totals(&app, &f.partner).await, (n as i64, 100, 0));
    let m = app.metrics().await;
    let label = s(&f.program["id"]);
    assert_eq!(
        metric(
            &m,
            &format!(r#"mitra_clicks_total{{outcome="logged",program="{label}"}}"#)
        ),
        n as f64
    );
    assert_eq!(
        metric(
            &m,
            &format!(r#"mitra_click_rollup_total{{kind="clicks",program="{label}"}}"#)
        ),
        n as f64
    );
}

#[tokio::test]
async fn bot_clicks_are_flagged_and_left_out_of_clicks() {
    let app = spawn_app_with(Roles::API, &trusting()).await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    for ua in [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "facebookexternalhit/1.1",
        "curl/8.5.0",
        "",
    ] {
        assert_eq!(
            click(&app, &path, ua, "198.51.100.1").await,
            StatusCode::FOUND,
            "bots are redirected too"
        );
    }
    click(&app, &path, BROWSER, "198.51.100.1").await;
    app.drain_clicks().await;
    assert_eq!(link_totals(&app, &f.link).await, (1, 1, 4));
    let flagged: i64 = sqlx::query_scalar("select count(*) from flagged_clicks")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        flagged, 4,
        "bot click ids are kept for attribution's fraud checks"
    );
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            &format!(
                r#"mitra_clicks_total{{outcome="bot",program="{}"}}"#,
                s(&f.program["id"])
            )
        ),
        4.0
    );
}

#[tokio::test]
async fn repeated_clicks_from_one_address_are_unique_once_per_day() {
    let app = spawn_app_with(Roles::API, &trusting()).await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    for ip in [
        "198.51.100.7",
        "198.51.100.7",
        "198.51.100.8",
        "198.51.100.7",
    ] {
        click(&app, &path, BROWSER, ip).await;
    }
    app.drain_clicks().await;
    // In a later batch the same address is still not unique again.
    click(&app, &path, BROWSER, "198.51.100.7").await;
    app.drain_clicks().await;
    assert_eq!(link_totals(&app, &f.link).await, (5, 2, 0));
}

#[tokio::test]
async fn a_joint_agreement_shows_each_click_to_each_partner_once() {
    let app = spawn_app_with(Roles::API, &trusting()).await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    let agreement = app
        .create_agreement(&program, &[(&ayu, 5000), (&budi, 5000)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    for i in 0..3 {
        click(
            &app,
            &TestApp::link_path(&link),
            BROWSER,
            &format!("198.51.100.{i}"),
        )
        .await;
    }
    app.drain_clicks().await;
    assert_eq!(
        link_totals(&app, &link).await,
        (3, 3, 0),
        "the program counts each click once"
    );
    assert_eq!(partner_totals(&app, &ayu).await, (3, 3, 0));
    assert_eq!(partner_totals(&app, &budi).await, (3, 3, 0));
}

#[tokio::test]
async fn a_worker_killed_before_acknowledging_loses_and_doubles_nothing() {
    let app = spawn_app_with(Roles::API, &trusting()).await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    for i in 0..20 {
        click(&app, &path, BROWSER, &format!("198.51.100.{i}")).await;
    }
    // Worker A reads and dies before applying; worker B reads the rest,
    // applies and dies before acknowledging.
    app.state.click_log.flush().await;
    let a = app.click_worker(Duration::from_secs(30));
    a.ensure_group().await.unwrap();
    let read_by_a = a.read_new().await.unwrap();
    assert!(!read_by_a.is_empty());
    drop(a);
    for i in 20..30 {
        click(&app, &path, BROWSER, &format!("198.51.100.{i}")).await;
    }
    app.state.click_log.flush().await;
    let b = app.click_worker(Duration::from_secs(30));
    let read_by_b = b.read_new().await.unwrap();
    assert!(!read_by_b.is_empty());
    b.apply(&read_by_b).await.unwrap();
    drop(b);
    assert_eq!(
        link_totals(&app, &f.link).await.0,
        10,
        "only B's batch is applied so far"
    );

    // Worker C takes over everything pending (idle threshold 0 for the test).
    let c = app.click_worker(Duration::ZERO);
    while c.step().await.unwrap() != mitra::background::Step::Idle {}
    assert_eq!(link_totals(&app, &f.link).await, (30, 30, 0));
    // Everything is acknowledged and trimmed away.
    c.trim_and_measure().await.unwrap();
    assert!(
        app.click_events().await.is_empty(),
        "processed entries are trimmed"
    );
}

#[tokio::test]
async fn unprocessed_entries_are_never_trimmed() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    click(&app, &path, BROWSER, "198.51.100.1").await;
    app.state.click_log.flush().await;
    let w = app.click_worker(Duration::from_secs(30));
    w.ensure_group().await.unwrap();
    let pending = w.read_new().await.unwrap();
    click(&app, &path, BROWSER, "198.51.100.2").await;
    app.state.click_log.flush().await;
    w.trim_and_measure().await.unwrap();
    assert_eq!(
        app.click_events().await.len(),
        2,
        "a pending and an undelivered entry stay"
    );
    let m = app.metrics().await;
    assert_eq!(metric(&m, r#"mitra_queue_depth{queue="clicks"}"#), 2.0);
    w.apply(&pending).await.unwrap();
    w.ack(&pending).await.unwrap();
    w.trim_and_measure().await.unwrap();
    assert_eq!(
        app.click_events().await.len(),
        1,
        "only the processed entry is gone"
    );
}

#[tokio::test]
async fn with_redis_stopped_shoppers_are_still_redirected_and_queued_clicks_arrive_later() {
    let mut redis = RedisServer::start();
    let app = spawn_app_with(Roles::API, &[("REDIS_URL", &redis.url())]).await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    assert_eq!(
        click(&app, &path, BROWSER, "1.1.1.1").await,
        StatusCode::FOUND
    );
    assert!(app.state.click_log.flush().await);
    redis.stop();
    for _ in 0..10 {
        let started = std::time::Instant::now();
        assert_eq!(
            click(&app, &path, BROWSER, "1.1.1.1").await,
            StatusCode::FOUND
        );
        // Not a benchmark: only that nobody waits on a dead Redis.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a redirect hung on Redis"
        );
    }
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!app.state.click_log.flush().await, "nothing can be written");
    assert!(!app.state.click_log.is_healthy());
    assert_eq!(app.state.click_log.queued(), 10);

    redis.restart();
    // The flusher retries; the queued clicks land (the first was lost with the old server's memory).
    let since = std::time::Instant::now();
    loop {
        if app.click_events().await.len() == 10 {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "queued clicks were not written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        click(&app, &path, BROWSER, "1.1.1.1").await,
        StatusCode::FOUND
    );
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn clicks_beyond_the_memory_queue_are_counted_as_lost() {
    let mut redis = RedisServer::start();
    let app = spawn_app_with(
        Roles::API,
        &[
            ("REDIS_URL", &redis.url()),
            ("MITRA_CLICK_LOG_CAPACITY", "5"),
        ],
    )
    .await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    redis.stop();
    for _ in 0..30 {
        assert_eq!(
            click(&app, &path, BROWSER, "1.1.1.1").await,
            StatusCode::FOUND
        );
    }
    let m = app.metrics().await;
    let lost = metric(
        &m,
        &format!(
            r#"mitra_clicks_total{{outcome="log_failed",program="{}"}}"#,
            s(&f.program["id"])
        ),
    );
    let logged = metric(
        &m,
        &format!(
            r#"mitra_clicks_total{{outcome="logged",program="{}"}}"#,
            s(&f.program["id"])
        ),
    );
    // Five fit the memory queue; the other 25 are lost, and counted.
    assert_eq!((logged, lost), (5.0, 25.0), "{m}");
    assert_eq!(
        lost + logged,
        30.0,
        "every click is either queued or counted lost"
    );
}

#[tokio::test]
async fn a_worker_configured_with_fewer_shards_still_reads_every_shard_the_api_writes() {
    let app = spawn_app_with(Roles::API, &[("MITRA_CLICK_SHARDS", "6")]).await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    // One flush per click: consecutive batches land on consecutive shards.
    for i in 0..12 {
        click(&app, &path, BROWSER, &format!("198.51.100.{i}")).await;
        assert!(app.state.click_log.flush().await);
    }
    let mut settings = app.settings.clone();
    settings.clicks.log.shards = 2;
    let worker = mitra::startup::Workers::new(&settings)
        .unwrap()
        .click_consumer(Duration::from_secs(30));
    while worker.step().await.unwrap() != mitra::background::Step::Idle {}
    assert_eq!(link_totals(&app, &f.link).await.0, 12);
    let mut read: Vec<String> = worker.streams().iter().map(|s| s.to_string()).collect();
    read.sort();
    let mut written = app.state.click_log.streams().to_vec();
    written.sort();
    assert!(
        written.iter().all(|s| read.contains(s)),
        "it found the six shards in the registry: {read:?}"
    );
}

#[tokio::test]
async fn clicks_left_in_the_unsharded_stream_of_an_earlier_version_are_counted_once() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let link_id = mitra::domain::LinkId::parse(s(&f.link["id"])).unwrap();
    let program_id = mitra::domain::ProgramId::parse(s(&f.program["id"])).unwrap();
    let partner_id = mitra::domain::PartnerId::parse(s(&f.partner["id"])).unwrap();
    let mut data = Vec::new();
    for i in 0..3 {
        let event = mitra::clicks::ClickEvent {
            click_id: format!("old-click-{i}"),
            link_id: link_id.get(),
            program_id: program_id.get(),
            partner_ids: vec![partner_id.get()],
            at_ms: chrono::Utc::now().timestamp_millis(),
            ip_hash: format!("{i:032x}"),
            user_agent: Some(BROWSER.into()),
            referrer: None,
            sub_ids: Default::default(),
            bot: None,
        };
        serde_json::to_writer(&mut data, &event).unwrap();
        data.push(b'\n');
    }
    // As an earlier version wrote it: one stream, no batch id.
    let mut conn = app.state.redis.conn();
    let _: String = redis::cmd("XADD")
        .arg(app.state.redis.key("clicks"))
        .arg("*")
        .arg("n")
        .arg(3)
        .arg("d")
        .arg(&data)
        .query_async(&mut conn)
        .await
        .unwrap();
    app.drain_clicks().await;
    app.drain_clicks().await;
    assert_eq!(link_totals(&app, &f.link).await, (3, 3, 0));
}
