//! The click stream on a real Redis Cluster (three primaries, one replica
//! each): sharded over every primary, every 302 counted exactly once, even
//! while a primary is killed and its replica takes over, and while a
//! shard's slot moves to another primary.
//!
//! Each redirect comes from its own client address, so the roll-ups tell a
//! lost click (unique clicks below the 302s served) from a doubled one
//! (clicks above them).

use crate::cluster_harness::RedisCluster;
use crate::helpers::*;
use mitra::background::Step;
use mitra::startup::Roles;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

async fn app_on(cluster: &RedisCluster) -> TestApp {
    spawn_app_with(
        Roles::API,
        &[
            ("REDIS_URL", &cluster.url()),
            ("MITRA_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("MITRA_CLICK_SHARDS", "6"),
            // A click write counts once a replica has it: a primary killed
            // right after answering cannot take clicks with it.
            ("MITRA_CLICK_LOG_REPLICAS", "1"),
        ],
    )
    .await
}

/// Redirects from ever new client addresses, `concurrency` at a time,
/// until `stop`; answers how many 302s were served. Anything but a 302
/// fails the test: a shopper is never refused because of Redis.
fn click_until(
    app: &TestApp,
    path: &str,
    concurrency: usize,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    // Client addresses stay distinct across calls in one test.
    static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);
    let served = Arc::new(AtomicU64::new(0));
    let url = app.url(path);
    let client = app.client.clone();
    tokio::spawn(async move {
        let loops = (0..concurrency).map(|_| {
            let (url, client, served, stop) =
                (url.clone(), client.clone(), served.clone(), stop.clone());
            async move {
                while !stop.is_cancelled() {
                    served.fetch_add(1, Ordering::Relaxed);
                    let n = NEXT_CLIENT.fetch_add(1, Ordering::Relaxed);
                    let ip = format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255);
                    let res = client
                        .get(&url)
                        .header("user-agent", BROWSER)
                        .header("x-forwarded-for", ip)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), StatusCode::FOUND);
                }
            }
        });
        futures::future::join_all(loops).await;
        served.load(Ordering::Relaxed)
    })
}

/// Click workers sharing the shards, each stepping until `stop`; a
/// consumer dead for a second has its pending entries taken over.
fn consumers(app: &TestApp, n: usize, stop: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let worker = app.click_worker(Duration::from_secs(1));
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    match worker.step().await {
                        Ok(Step::Busy | Step::Drained) => {}
                        Ok(Step::Idle) => tokio::time::sleep(Duration::from_millis(20)).await,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        })
        .collect()
}

/// (clicks, unique clicks) rolled up for the link.
async fn totals(app: &TestApp, link: &serde_json::Value) -> (i64, i64) {
    let id = mitra::domain::LinkId::parse(s(&link["id"])).unwrap().get();
    sqlx::query_as(
        "select coalesce(sum(clicks), 0)::bigint, coalesce(sum(unique_clicks), 0)::bigint
         from link_click_days where link_id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// Writes what the click log still holds, then waits until the roll-ups
/// reach `served` clicks, and a little longer to see that nothing doubles.
async fn assert_counted_once(app: &TestApp, link: &serde_json::Value, served: u64) {
    let since = Instant::now();
    while !app.state.click_log.flush().await {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "the click log could not write"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let since = Instant::now();
    while totals(app, link).await.0 < served as i64 && since.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reclaims of entries the dead primary's replica still lists happen a
    // second later: give them time to double anything they would double.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let served = served as i64;
    assert_eq!(
        totals(app, link).await,
        (served, served),
        "every 302 counted once"
    );
}

#[tokio::test]
async fn on_a_redis_cluster_clicks_spread_over_every_primary_and_count_once() {
    let cluster = RedisCluster::start().await;
    let app = app_on(&cluster).await;
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "readiness PINGs every primary"
    );
    // Sign-in limits count on the cluster: five attempts through one
    // process's limits, and the sixth through another's is refused (with
    // Redis failing, each would count alone and allow it).
    let limits =
        || mitra::portal::Limits::shared(app.state.redis.clone(), app.state.metrics.clone());
    let here = limits();
    for _ in 0..5 {
        assert!(here.allow_sign_in("owner@shop.example", None).await);
    }
    assert!(!limits().allow_sign_in("owner@shop.example", None).await);

    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);

    // Six waves, each flushed: consecutive batches go to consecutive shards.
    let mut served = 0u64;
    for wave in 0..6 {
        let stop = CancellationToken::new();
        let clicking = click_until(&app, &path, 4, stop.clone());
        tokio::time::sleep(Duration::from_millis(100 + wave * 10)).await;
        stop.cancel();
        served += clicking.await.unwrap();
        assert!(app.state.click_log.flush().await);
    }

    let mut per_primary: BTreeMap<u16, usize> = BTreeMap::new();
    for key in app.state.click_log.streams() {
        let slot = mitra::redis_client::key_slot(key.as_bytes());
        let primary = cluster.primary_of(slot).await;
        *per_primary.entry(primary.port).or_default() += 1;
        let mut conn = cluster.node(primary.port).await;
        let len: u64 = redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(len > 0, "{key} got no batch");
    }
    assert_eq!(
        per_primary.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "six shards, two on each primary"
    );

    let stop = CancellationToken::new();
    let workers = consumers(&app, 2, stop.clone());
    assert_counted_once(&app, &f.link, served).await;
    stop.cancel();
    for w in workers {
        w.await.unwrap();
    }
    // Both consumers joined every shard's group.
    for key in app.state.click_log.streams() {
        let mut conn = app.state.redis.conn();
        let consumers: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(key)
            .arg("rollup")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(consumers.len(), 2, "{key}");
    }
}

#[tokio::test]
async fn a_primary_killed_mid_run_loses_and_doubles_no_click() {
    let mut cluster = RedisCluster::start().await;
    let app = app_on(&cluster).await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    let stop_workers = CancellationToken::new();
    let workers = consumers(&app, 2, stop_workers.clone());
    let stop = CancellationToken::new();
    let clicking = click_until(&app, &path, 8, stop.clone());

    tokio::time::sleep(Duration::from_millis(800)).await;
    let shard = &app.state.click_log.streams()[0];
    let slot = mitra::redis_client::key_slot(shard.as_bytes());
    let victim = cluster.primary_of(slot).await;
    cluster.kill(victim.port);
    let successor = cluster
        .wait_for_failover(slot, &victim.id, Duration::from_secs(20))
        .await;
    assert_ne!(successor.port, victim.port);
    // Clicks go on while the promoted replica has no replica of its own
    // (its writes cannot be confirmed: they go to the other shards) ...
    tokio::time::sleep(Duration::from_millis(800)).await;
    // ... and after the old primary comes back as its replica.
    cluster.restart(victim.port);
    cluster.wait_until_healthy(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let served = clicking.await.unwrap();
    assert!(served > 100, "only {served} clicks served");

    assert_counted_once(&app, &f.link, served).await;
    stop_workers.cancel();
    for w in workers {
        w.await.unwrap();
    }
}

#[tokio::test]
async fn moving_shard_slots_to_other_primaries_mid_run_loses_and_doubles_no_click() {
    let cluster = RedisCluster::start().await;
    let app = app_on(&cluster).await;
    let f = fixture(&app, json!({})).await;
    let path = TestApp::link_path(&f.link);
    let stop_workers = CancellationToken::new();
    let workers = consumers(&app, 2, stop_workers.clone());
    let stop = CancellationToken::new();
    let clicking = click_until(&app, &path, 8, stop.clone());

    tokio::time::sleep(Duration::from_millis(500)).await;
    // Two shards' slots move, with their streams, while clicks are written
    // to them and consumers read them.
    let streams = app.state.click_log.streams().to_vec();
    let mut moved = BTreeSet::new();
    for key in [&streams[0], &streams[3]] {
        let slot = mitra::redis_client::key_slot(key.as_bytes());
        let from = cluster.primary_of(slot).await;
        let to = cluster
            .primaries()
            .await
            .into_iter()
            .find(|p| p.id != from.id)
            .unwrap();
        cluster.move_slot(slot, &to).await;
        assert_eq!(cluster.primary_of(slot).await.id, to.id);
        moved.insert((key.clone(), to.port));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let served = clicking.await.unwrap();
    assert!(served > 100, "only {served} clicks served");

    assert_counted_once(&app, &f.link, served).await;
    stop_workers.cancel();
    for w in workers {
        w.await.unwrap();
    }
    // The streams live on their new primaries, consumer groups and all.
    for (key, port) in moved {
        let mut conn = cluster.node(port).await;
        let groups: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(groups.len(), 1, "{key} kept its consumer group");
    }
}
