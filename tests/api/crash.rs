//! kill -9 of the server while webhooks are in flight: every conversion that
//! was acknowledged is stored and booked exactly once after a restart.

use crate::helpers::*;
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const LINK_KEYS: &str = "1:crash-test-link-key-0123456789";
const ADMIN: &str = "admin-token-crash-test-0123456789";

async fn admin_post(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let res = client
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_status(res, StatusCode::CREATED).await
}

async fn post_signed(
    client: &reqwest::Client,
    base: &str,
    program: &str,
    secret: &str,
    body: &[u8],
) -> reqwest::Result<(StatusCode, Value)> {
    let header = mitra::conversions::signature::header(secret, Utc::now().timestamp(), body);
    let res = client
        .post(format!("{base}/v1/programs/{program}/conversions"))
        .header("content-type", "application/json")
        .header("mitra-signature", header)
        .body(body.to_vec())
        .send()
        .await?;
    let status = res.status();
    Ok((status, res.json().await?))
}

#[tokio::test]
async fn a_server_killed_with_webhooks_in_flight_loses_no_acknowledged_conversion() {
    let (_db, url) = fresh_database().await;
    let env = vec![
        ("DATABASE_URL", url.to_string()),
        ("REDIS_URL", std::env::var("REDIS_URL").unwrap()),
        ("MITRA_ADMIN_TOKEN", ADMIN.to_owned()),
        ("MITRA_LINK_KEYS", LINK_KEYS.to_owned()),
        (
            "MITRA_REDIS_PREFIX",
            format!("test:crash:{}:", std::process::id()),
        ),
    ];
    let mut first = ServerProcess::start(&["serve", "--role", "api"], &env);
    let client = reqwest::Client::new();
    let base = first.base.clone();
    let program = admin_post(
        &client,
        &base,
        "/v1/programs",
        json!({
            "name": "Crash Shop", "currency": "EUR", "landing_domains": ["shop.example"],
            "default_url": "https://shop.example/", "commission": {"sale": {"percent_bps": 1000}}
        }),
    )
    .await;
    let partner = admin_post(
        &client,
        &base,
        "/v1/partners",
        json!({"name": "Ayu", "email": "ayu@example.com"}),
    )
    .await;
    let invited = admin_post(
        &client,
        &base,
        &format!("/v1/programs/{}/enrollments", s(&program["id"])),
        json!({"partner_id": partner["id"]}),
    )
    .await;
    let accepted = client
        .post(format!(
            "{base}/v1/enrollments/{}/accept",
            s(&invited["id"])
        ))
        .bearer_auth(s(&partner["api_key"]))
        .send()
        .await
        .unwrap();
    assert_status(accepted, StatusCode::OK).await;
    let agreement = admin_post(
        &client,
        &base,
        &format!("/v1/programs/{}/agreements", s(&program["id"])),
        json!({"partners": [{"partner_id": partner["id"], "share_bps": 10000}]}),
    )
    .await;
    let link = admin_post(
        &client,
        &base,
        "/v1/links",
        json!({"agreement_id": agreement["id"]}),
    )
    .await;
    let keys =
        mitra::domain::signing::KeyRing::parse(&secrecy::SecretString::from(LINK_KEYS.to_owned()))
            .unwrap();
    let link_id = mitra::domain::LinkId::parse(s(&link["id"])).unwrap();
    let minute_ago = (Utc::now() - chrono::Duration::minutes(1)).timestamp_millis();
    let n = 400;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..n)
            .map(|i| {
                let click =
                    mitra::domain::click_id::issue(&keys, link_id, minute_ago, i as u32).unwrap();
                serde_json::to_vec(&sale(&format!("K-{i}"), 10_000 + i, click.as_str())).unwrap()
            })
            .collect(),
    );
    let (program_id, secret) = (
        s(&program["id"]).to_owned(),
        s(&program["webhook_secret"]).to_owned(),
    );

    // Shops post concurrently; after 100 acknowledgements the server dies.
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let (client, base, program_id, secret, bodies, acked) = (
            client.clone(),
            base.clone(),
            program_id.clone(),
            secret.clone(),
            bodies.clone(),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in (worker..bodies.len()).step_by(16) {
                match post_signed(&client, &base, &program_id, &secret, &bodies[i]).await {
                    Ok((status, body)) if status.is_success() => {
                        acked.fetch_add(1, Ordering::Relaxed);
                        answers.push((i, Some(s(&body["conversion_id"]).to_owned())));
                    }
                    _ => answers.push((i, None)),
                }
            }
            answers
        }));
    }
    while acked.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    first.kill_9();
    let mut acknowledged: HashMap<usize, String> = HashMap::new();
    let mut failed = 0;
    for t in tasks {
        for (i, id) in t.await.unwrap() {
            match id {
                Some(id) => {
                    acknowledged.insert(i, id);
                }
                None => failed += 1,
            }
        }
    }
    assert!(
        acknowledged.len() >= 100 && failed > 0,
        "the kill landed mid-run ({} acked, {failed} failed)",
        acknowledged.len()
    );

    // Restarted, the shops retry everything; what was acknowledged before
    // answers 200 with the same id.
    let second = ServerProcess::start(&["serve", "--role", "api"], &env);
    for (i, body) in bodies.iter().enumerate() {
        let (status, answer) = post_signed(&client, &second.base, &program_id, &secret, body)
            .await
            .unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::ACCEPTED,
            "{status}"
        );
        if let Some(id) = acknowledged.get(&i) {
            assert_eq!(
                status,
                StatusCode::OK,
                "an acknowledged conversion was stored"
            );
            assert_eq!(s(&answer["conversion_id"]), id);
        }
    }

    // Attribution books each exactly once.
    let db = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    let settings = test_settings(&url, &[("MITRA_LINK_KEYS", LINK_KEYS)]);
    let worker = mitra::startup::Workers::new(&settings)
        .unwrap()
        .attributor();
    while worker.step().await.unwrap() != mitra::background::Step::Idle {}
    let (conversions, commissions, per_conversion_max): (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from conversions), (select count(*) from commissions),
                (select coalesce(max(c), 0) from (select count(*) c from commissions group by conversion_id) x)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((conversions, commissions, per_conversion_max), (n, n, 1));
}
