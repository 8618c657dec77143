//! Two API processes and two worker processes on one Postgres and one
//! Redis: every click counted once, every conversion booked once.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-scale-out-0123456789";

#[tokio::test]
async fn two_apis_and_two_workers_count_every_click_once_and_book_every_conversion_once() {
    let (database, url) = fresh_database().await;
    // Unique to this run: a process id may repeat across runs, Redis keeps keys.
    let prefix = format!("test:scale:{}:", database.name);
    let env = vec![
        ("DATABASE_URL", url.to_string()),
        ("REDIS_URL", std::env::var("REDIS_URL").unwrap()),
        ("MITRA_ADMIN_TOKEN", ADMIN.to_owned()),
        (
            "MITRA_LINK_KEYS",
            "1:scale-out-link-key-0123456789".to_owned(),
        ),
        ("MITRA_REDIS_PREFIX", prefix.clone()),
        ("MITRA_WORKER_POLL_MS", "50".to_owned()),
        ("MITRA_FRAUD_MIN_CLICK_SECONDS", "0".to_owned()),
    ];
    let apis = [
        ServerProcess::start(&["serve", "--role", "api"], &env),
        ServerProcess::start(&["serve", "--role", "api"], &env),
    ];
    let _workers = [
        ServerProcess::start(&["serve", "--role", "worker"], &env),
        ServerProcess::start(&["serve", "--role", "worker"], &env),
    ];
    let client = client_builder().build().unwrap();
    let admin = |path: &str, body: Value| {
        let req = client
            .post(format!("{}{path}", apis[0].base))
            .bearer_auth(ADMIN)
            .json(&body);
        async move { assert_status(req.send().await.unwrap(), StatusCode::CREATED).await }
    };
    let program = admin("/v1/programs", json!({
        "name": "Scale Shop", "currency": "EUR", "landing_domains": ["shop.example"],
        "default_url": "https://shop.example/", "hold_days": 30, "commission": {"sale": {"percent_bps": 1000}}
    }))
    .await;
    let partner = admin(
        "/v1/partners",
        json!({"name": "Ayu", "email": "ayu@example.com"}),
    )
    .await;
    let invited = admin(
        &format!("/v1/programs/{}/enrollments", s(&program["id"])),
        json!({"partner_id": partner["id"]}),
    )
    .await;
    let accepted = client
        .post(format!(
            "{}/v1/enrollments/{}/accept",
            apis[0].base,
            s(&invited["id"])
        ))
        .bearer_auth(s(&partner["api_key"]))
        .send()
        .await
        .unwrap();
    assert_status(accepted, StatusCode::OK).await;
    let agreement = admin(
        &format!("/v1/programs/{}/agreements", s(&program["id"])),
        json!({"partners": [{"partner_id": partner["id"], "share_bps": 10000}]}),
    )
    .await;
    let link = admin("/v1/links", json!({"agreement_id": agreement["id"]})).await;

    // 200 clicks spread over both APIs, concurrently.
    let clicks = futures::future::join_all((0..200).map(|i| {
        let url = format!("{}/l/{}", apis[i % 2].base, s(&link["code"]));
        let client = client.clone();
        async move {
            let res = client
                .get(url)
                .header("user-agent", "Mozilla/5.0 Firefox/120.0")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FOUND);
            let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
            to.query_pairs()
                .find(|(k, _)| k == "mitra_click")
                .unwrap()
                .1
                .into_owned()
        }
    }))
    .await;

    // 100 sales, each posted to both APIs at once (a shop retrying).
    let secret = s(&program["webhook_secret"]).to_owned();
    let posts = (0..100).flat_map(|i| {
        let body = serde_json::to_vec(&sale(&format!("S-{i}"), 10_000, &clicks[i])).unwrap();
        (0..2).map(move |copy| (i, copy, body.clone()))
    });
    let answers = futures::future::join_all(posts.map(|(i, copy, body)| {
        let url = format!(
            "{}/v1/programs/{}/conversions",
            apis[(i + copy) % 2].base,
            s(&program["id"])
        );
        let header =
            mitra::conversions::signature::header(&secret, chrono::Utc::now().timestamp(), &body);
        let client = client.clone();
        async move {
            let res = client
                .post(url)
                .header("content-type", "application/json")
                .header("mitra-signature", header)
                .body(body)
                .send()
                .await
                .unwrap();
            res.status()
        }
    }))
    .await;
    assert_eq!(
        answers
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count(),
        100
    );
    assert_eq!(
        answers.iter().filter(|s| **s == StatusCode::OK).count(),
        100
    );

    // The workers share the work; wait until it is all done.
    let db = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    let started = Instant::now();
    let (clicked, booked) = loop {
        let (clicked, booked): (i64, i64) = sqlx::query_as(
            "select (select coalesce(sum(clicks), 0)::bigint from link_click_days),
                    (select count(*) from conversions where status = 'attributed')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if (clicked >= 200 && booked >= 100) || started.elapsed() > Duration::from_secs(30) {
            break (clicked, booked);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((clicked, booked), (200, 100));
    // Give the workers time to double anything they would double.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (clicked, unique, conversions, commissions, entries): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "select (select coalesce(sum(clicks), 0)::bigint from link_click_days),
                (select coalesce(sum(clicks), 0)::bigint from partner_click_days),
                (select count(*) from conversions), (select count(*) from commissions),
                (select count(*) from ledger_entries)",
        )
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        (clicked, unique, conversions, commissions, entries),
        (200, 200, 100, 100, 100)
    );
    // Both worker processes joined the consumer group of every shard.
    let redis = redis::Client::open(std::env::var("REDIS_URL").unwrap()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let shards = mitra::clicks::record::shard_streams(6);
    for shard in &shards {
        let stream = format!("{prefix}{shard}");
        let consumers: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&stream)
            .arg("rollup")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(consumers.len(), 2, "one consumer per worker process");
    }
}
