//! Outgoing webhooks against a real HTTP receiver: what is sent, signed the
//! Standard Webhooks way (checked with the reference library from PyPI),
//! retries, every attempt kept (until its retention), replays, disabling,
//! the SSRF guard, and kill -9 between commit and delivery.

use crate::helpers::*;
use crate::receiver::{Receiver, Reply, verify_with_python};
use mitra::background::Step;
use mitra::startup::Roles;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const ALLOW_PRIVATE: (&str, &str) = ("MITRA_WEBHOOK_ALLOW_PRIVATE", "true");

async fn register(app: &TestApp, token: &str, url: &str, events: &[&str]) -> Value {
    let res = app
        .post(
            "/v1/webhook-endpoints",
            token,
            &json!({"url": url, "events": events}),
        )
        .await;
    assert_status(res, StatusCode::CREATED).await
}

/// Runs delivery steps: fan-out, then what is due.
async fn deliver(app: &TestApp) {
    let worker = app.workers.deliverer().unwrap();
    for _ in 0..3 {
        worker.step().await.unwrap();
    }
}

/// A test-fire to `endpoint`: the delivery it queued.
async fn test_fire(app: &TestApp, token: &str, endpoint: &Value) -> Value {
    let path = format!("/v1/webhook-endpoints/{}/test", s(&endpoint["id"]));
    let res = app
        .request(reqwest::Method::POST, &path, Some(token), None)
        .await;
    assert_status(res, StatusCode::ACCEPTED).await
}

async fn deliveries(app: &TestApp, endpoint: &Value, token: &str) -> Vec<Value> {
    let path = format!("/v1/webhook-endpoints/{}/deliveries", s(&endpoint["id"]));
    let page = assert_status(app.get(&path, token).await, StatusCode::OK).await;
    page["data"].as_array().unwrap().clone()
}

fn types(got: &[crate::receiver::Received]) -> Vec<String> {
    let mut t: Vec<String> = got
        .iter()
        .map(|r| s(&r.json()["type"]).to_owned())
        .collect();
    t.sort();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_reach_a_real_receiver_signed_the_standard_webhooks_way() {
    // Arrange: the program and its partner each register an endpoint.
    let program_hooks = Receiver::start(vec![]).await;
    let partner_hooks = Receiver::start(vec![]).await;
    let app = spawn_app_with(Roles::API, &[ALLOW_PRIVATE]).await;
    let f = fixture(&app, json!({})).await;
    let program_endpoint = register(
        &app,
        s(&f.program["api_key"]),
        &format!("{}/program", program_hooks.url),
        &[
            "conversion.received",
            "conversion.attributed",
            "commission.created",
            "commission.approved",
        ],
    )
    .await;
    let partner_endpoint = register(
        &app,
        s(&f.partner["api_key"]),
        &format!("{}/partner?src=mitra", partner_hooks.url),
        &["conversion.received", "commission.created"],
    )
    .await;
    assert!(s(&program_endpoint["secret"]).starts_with("whsec_"));
    assert_eq!(program_endpoint["program_id"], f.program["id"]);
    assert_eq!(partner_endpoint["partner_id"], f.partner["id"]);

    // Act: a sale is received, attributed, booked, and approved by hand.
    let click = app.click_id_ago(&f.link, chrono::Duration::minutes(1));
    assert_status(
        app.post_conversion(&f.program, &sale("W-1", 12_500, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let order = app.order(&f.program, "W-1").await;
    let commission = order.of(&f.partner).id.clone();
    let approve = format!("/v1/commissions/{commission}/approve");
    assert_status(
        app.request(
            reqwest::Method::POST,
            &approve,
            Some(s(&f.program["api_key"])),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    deliver(&app).await;

    // Assert: the program hears of each change, the partner of its commission only.
    let got = program_hooks.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(
        types(&got),
        vec![
            "commission.approved",
            "commission.created",
            "conversion.attributed",
            "conversion.received"
        ]
    );
    let partner_got = partner_hooks.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(types(&partner_got), vec!["commission.created"]);
    let created = partner_got[0].json();
    assert_eq!(partner_got[0].method, "POST");
    assert_eq!(partner_got[0].target, "/partner?src=mitra");
    assert_eq!(partner_got[0].header("content-type"), "application/json");
    assert_eq!(partner_got[0].header("webhook-id"), s(&created["id"]));
    assert!(s(&created["id"]).starts_with("evt_"));
    assert_eq!(created["data"]["commission_id"], json!(commission));
    assert_eq!(created["data"]["partner_id"], f.partner["id"]);
    assert_eq!(created["data"]["program_id"], f.program["id"]);
    assert_eq!(created["data"]["order_id"], "W-1");
    assert_eq!(created["data"]["change_minor"], 1_250);
    assert_eq!(created["data"]["currency"], "EUR");
    let attributed = got
        .iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "conversion.attributed")
        .unwrap();
    assert_eq!(attributed["data"]["agreement_id"], f.agreement["id"]);
    assert_eq!(attributed["data"]["amount_minor"], 12_500);

    // Each verifies with the Standard Webhooks library, under its endpoint's secret only.
    let verdicts = verify_with_python(s(&program_endpoint["secret"]), &got);
    let mut expected: Vec<String> = got
        .iter()
        .map(|r| format!("ok {} {}", s(&r.json()["id"]), s(&r.json()["type"])))
        .collect();
    assert_eq!(verdicts, expected);
    expected = vec!["fail No matching signature found".into()];
    assert_eq!(
        verify_with_python(s(&partner_endpoint["secret"]), &got[..1]),
        expected
    );
    let mut tampered = got[0].clone();
    tampered.body = tampered.body.replace("12500", "99999");
    tampered.body = tampered.body.replace("1250", "9999");
    assert_ne!(tampered.body, got[0].body);
    assert_eq!(
        verify_with_python(s(&program_endpoint["secret"]), &[tampered]),
        expected
    );

    // Every delivery is listed, succeeded at its first attempt with a 200.
    let listed = deliveries(&app, &program_endpoint, s(&f.program["api_key"])).await;
    let summary: Vec<(String, i64, i64)> = listed
        .iter()
        .map(|d| {
            (
                s(&d["status"]).to_owned(),
                d["attempt_count"].as_i64().unwrap(),
                d["response_status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, vec![("succeeded".into(), 1, 200); 4]);
    // Another tenant sees none of it.
    assert_problem(
        app.get(
            &format!("/v1/webhook-endpoints/{}", s(&program_endpoint["id"])),
            s(&f.partner["api_key"]),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_endpoint_nothing_is_queued_and_a_new_endpoint_hears_the_changes_after_it() {
    // Arrange: a shop without outgoing webhooks books a sale.
    let hooks = Receiver::start(vec![]).await;
    let app = spawn_app_with(Roles::API, &[ALLOW_PRIVATE]).await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, chrono::Duration::minutes(1));
    assert_status(
        app.post_conversion(&f.program, &sale("Q-0", 12_500, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let queued = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from outbox_queue")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    // Nothing was queued for the outbox: the sale, its outcome, its commission.
    assert_eq!(queued().await, 0);

    // Act: the program registers an endpoint, and a second sale is booked.
    let endpoint = register(
        &app,
        s(&f.program["api_key"]),
        &hooks.url,
        &["conversion.received", "commission.created"],
    )
    .await;
    let click = app.click_id_ago(&f.link, chrono::Duration::minutes(1));
    assert_status(
        app.post_conversion(&f.program, &sale("Q-1", 12_500, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    assert!(queued().await > 0);
    deliver(&app).await;

    // Assert: the endpoint hears the second sale only.
    let got = hooks.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(types(&got), ["commission.created", "conversion.received"]);
    assert!(got.iter().all(|r| r.json()["data"]["order_id"] == "Q-1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hooks.received().len(), 2);
    assert_eq!(
        deliveries(&app, &endpoint, s(&f.program["api_key"]))
            .await
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_every_attempt_is_kept_and_a_delivery_can_be_replayed() {
    let hooks = Receiver::start(vec![Reply::Status(500), Reply::Status(503)]).await;
    let app = spawn_app_with(
        Roles::API,
        &[ALLOW_PRIVATE, ("MITRA_WEBHOOK_RETRY_BASE_MS", "100")],
    )
    .await;
    let program = app.create_program().await;
    let token = s(&program["api_key"]);
    let endpoint = register(&app, token, &hooks.url, &["payout.paid"]).await;

    // A test-fire goes through the same queue and retries.
    let fired = test_fire(&app, token, &endpoint).await;
    let worker = app.workers.deliverer().unwrap();
    let started = std::time::Instant::now();
    while hooks.received().len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(20), "not retried");
        worker.step().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = hooks.received();
    assert_eq!(got.len(), 3);
    let id = got[0].header("webhook-id").to_owned();
    assert!(got.iter().all(|r| r.header("webhook-id") == id));
    assert_eq!(got[0].json()["type"], "webhook.test");
    // Waits of 100 ms, then 200 ms, at least.
    let listed = deliveries(&app, &endpoint, token).await;
    assert_eq!(listed.len(), 1);
    let d = &listed[0];
    assert_eq!(d["id"], fired["delivery_id"]);
    assert_eq!(
        (
            s(&d["status"]),
            d["attempt_count"].as_i64(),
            d["response_status"].as_i64()
        ),
        ("succeeded", Some(3), Some(200))
    );
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response_status"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 503, 200]);
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(s(&d["attempts"][i]["attempted_at"])).unwrap()
    };
    assert!(at(1) - at(0) >= chrono::Duration::milliseconds(100));
    assert!(at(2) - at(1) >= chrono::Duration::milliseconds(200));

    // Replayed: a new delivery of the same event.
    let replay = format!(
        "/v1/webhook-endpoints/{}/deliveries/{}/replay",
        s(&endpoint["id"]),
        s(&d["id"])
    );
    let replayed = assert_status(
        app.request(reqwest::Method::POST, &replay, Some(token), None)
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    worker.step().await.unwrap();
    let got = hooks.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(got[3].header("webhook-id"), id);
    let listed = deliveries(&app, &endpoint, token).await;
    assert_eq!(listed[0]["id"], replayed["delivery_id"]);
    assert_eq!(listed[0]["replay_of"], d["id"]);
    assert_eq!(listed[0]["status"], "succeeded");
    let verdicts = verify_with_python(s(&endpoint["secret"]), &got);
    assert_eq!(verdicts, vec![format!("ok {id} webhook.test"); 4]);
}

/// Event, delivery and attempt ids of the app's deliveries, oldest first.
async fn delivery_rows(app: &TestApp) -> Vec<(i64, i64, i64)> {
    sqlx::query_as(
        "select d.id, d.event_id, (select count(*) from webhook_attempts a where a.delivery_id = d.id)
         from webhook_deliveries d order by d.id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_past_its_retention_is_purged_but_pending_and_recently_replayed_events_stay() {
    let hooks = Receiver::start(vec![]).await;
    let app = spawn_app_with(
        Roles::API,
        &[ALLOW_PRIVATE, ("MITRA_WEBHOOK_RETENTION_DAYS", "30")],
    )
    .await;
    let program = app.create_program().await;
    let token = s(&program["api_key"]);
    let endpoint = register(&app, token, &hooks.url, &["payout.paid"]).await;
    let mut fired = Vec::new();
    for _ in 0..4 {
        fired.push(test_fire(&app, token, &endpoint).await["delivery_id"].clone());
    }
    deliver(&app).await;
    hooks.wait_for(4, Duration::from_secs(10)).await;
    let rows = delivery_rows(&app).await;
    assert_eq!(rows.iter().map(|r| r.2).collect::<Vec<_>>(), vec![1; 4]);
    let old: Vec<i64> = rows[..3].iter().map(|r| r.1).collect();

    // Three events are 40 days old: the first alone, the second replayed
    // today, the third waiting again (as for a disabled endpoint). The
    // fourth is from today, and one more, 40 days old, was never dispatched.
    for aging in [
        "update outbox_events set created_at = created_at - interval '40 days' where id = any($1)",
        "update webhook_deliveries set created_at = created_at - interval '40 days'
         where event_id = any($1)",
    ] {
        sqlx::query(aging)
            .bind(&old)
            .execute(&app.db)
            .await
            .unwrap();
    }
    let replay = format!(
        "/v1/webhook-endpoints/{}/deliveries/{}/replay",
        s(&endpoint["id"]),
        s(&fired[1])
    );
    let res = app
        .request(reqwest::Method::POST, &replay, Some(token), None)
        .await;
    let replayed = assert_status(res, StatusCode::ACCEPTED).await["delivery_id"].clone();
    sqlx::query("update webhook_deliveries set status = 'succeeded' where replay_of is not null")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "update webhook_deliveries set status = 'pending', next_attempt_at = now() + interval '1 day'
         where event_id = $1",
    )
    .bind(old[2])
    .execute(&app.db)
    .await
    .unwrap();
    let undispatched: i64 = sqlx::query_scalar(
        "insert into outbox_events (type, data, dispatched, created_at)
         values ('webhook.test', '{}', false, now() - interval '40 days') returning id",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();

    let history = app.workers.webhook_history();
    let purged = history.purge().await.unwrap();
    assert_eq!(
        (purged.events, purged.deliveries, purged.attempts),
        (1, 1, 1),
        "only the first event has passed its retention"
    );
    let listed = || async {
        let page = deliveries(&app, &endpoint, token).await;
        page.iter().map(|d| d["id"].clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        listed().await,
        vec![
            replayed,
            fired[3].clone(),
            fired[2].clone(),
            fired[1].clone()
        ]
    );
    let events: Vec<i64> = sqlx::query_scalar("select id from outbox_events order by id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(events, vec![old[1], old[2], rows[3].1, undispatched]);
    // Nothing more to do; and the walk does not look back until it starts over.
    let again = history.purge().await.unwrap();
    assert_eq!((again.events, again.deliveries, again.attempts), (0, 0, 0));

    // Once the replay is as old, the event goes with both deliveries (the
    // replay was never attempted). The running worker has walked past it; one
    // that starts (or starts its walk over) finds it.
    sqlx::query(
        "update webhook_deliveries set created_at = created_at - interval '31 days'
         where replay_of is not null",
    )
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(history.purge().await.unwrap().events, 0);
    let restarted = app.workers.webhook_history();
    let purged = restarted.purge().await.unwrap();
    assert_eq!(
        (purged.events, purged.deliveries, purged.attempts),
        (1, 2, 1)
    );
    assert_eq!(listed().await, vec![fired[3].clone(), fired[2].clone()]);

    // The loop the webhooks role runs: a step purges at once, then rests.
    sqlx::query(
        "update webhook_deliveries set created_at = created_at - interval '40 days',
                status = 'failed' where event_id = $1",
    )
    .bind(old[2])
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("update outbox_events set dispatched = true where id = $1")
        .bind(undispatched)
        .execute(&app.db)
        .await
        .unwrap();
    let looping = app.workers.webhook_history();
    assert_eq!(looping.step().await.unwrap(), Step::Idle);
    assert_eq!(listed().await, vec![fired[3].clone()]);
    let events: Vec<i64> = sqlx::query_scalar("select id from outbox_events order by id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![rows[3].1],
        "the failed one and the dispatched one went"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_purged_while_it_is_replayed_is_not_found() {
    let hooks = Receiver::start(vec![]).await;
    let app = spawn_app_with(Roles::API, &[ALLOW_PRIVATE]).await;
    let program = app.create_program().await;
    let token = s(&program["api_key"]);
    let endpoint = register(&app, token, &hooks.url, &["payout.paid"]).await;
    let fired = test_fire(&app, token, &endpoint).await;
    deliver(&app).await;
    hooks.wait_for(1, Duration::from_secs(10)).await;
    let delivery = delivery_rows(&app).await[0].0;

    // The purge has deleted the delivery, and not yet committed.
    let mut purge = app.db.begin().await.unwrap();
    for delete in [
        "delete from webhook_attempts where delivery_id = $1",
        "delete from webhook_deliveries where id = $1",
    ] {
        sqlx::query(delete)
            .bind(delivery)
            .execute(&mut *purge)
            .await
            .unwrap();
    }
    // The replay still reads the delivery, then waits on the purge to
    // check its reference to it; the purge commits.
    let replay = format!(
        "/v1/webhook-endpoints/{}/deliveries/{}/replay",
        s(&endpoint["id"]),
        s(&fired["delivery_id"])
    );
    let commit = async {
        let started = std::time::Instant::now();
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and wait_event_type = 'Lock'",
            )
            .fetch_one(&app.db)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the replay never waited"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        purge.commit().await.unwrap();
    };
    let (res, ()) = tokio::join!(
        app.request(reqwest::Method::POST, &replay, Some(token), None),
        commit
    );
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let left: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_keeps_failing_is_disabled_and_its_owner_told() {
    let broken = Receiver::start(vec![Reply::Status(500); 10]).await;
    let alerts = Receiver::start(vec![]).await;
    let app = spawn_app_with(Roles::API, &[ALLOW_PRIVATE]).await;
    let program = app.create_program().await;
    let token = s(&program["api_key"]);
    let failing = register(&app, token, &broken.url, &["commission.created"]).await;
    register(&app, token, &alerts.url, &["webhook_endpoint.disabled"]).await;
    let fire = format!("/v1/webhook-endpoints/{}/test", s(&failing["id"]));
    for _ in 0..10 {
        assert_status(
            app.request(reqwest::Method::POST, &fire, Some(token), None)
                .await,
            StatusCode::ACCEPTED,
        )
        .await;
    }

    deliver(&app).await;

    assert_eq!(broken.received().len(), 10);
    let path = format!("/v1/webhook-endpoints/{}", s(&failing["id"]));
    let now = assert_status(app.get(&path, token).await, StatusCode::OK).await;
    assert_eq!(
        (
            &now["enabled"],
            &now["consecutive_failures"],
            &now["disabled_reason"]
        ),
        (
            &json!(false),
            &json!(10),
            &json!("10 attempts in a row failed")
        )
    );
    let told = alerts.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(told[0].json()["type"], "webhook_endpoint.disabled");
    assert_eq!(told[0].json()["data"]["endpoint_id"], failing["id"]);
    assert_eq!(
        metric(
            &app.metrics().await,
            "mitra_webhook_endpoints_disabled_total"
        ),
        1.0
    );
    // Disabled, it is sent nothing; enabled again, what waited goes out.
    deliver(&app).await;
    assert_eq!(broken.received().len(), 10);
    let enable = format!("/v1/webhook-endpoints/{}/enable", s(&failing["id"]));
    let enabled = assert_status(
        app.request(reqwest::Method::POST, &enable, Some(token), None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&enabled["enabled"], &enabled["consecutive_failures"]),
        (&json!(true), &json!(0))
    );
    deliver(&app).await;
    assert_eq!(broken.wait_for(20, Duration::from_secs(10)).await.len(), 20);
}

#[tokio::test]
async fn private_loopback_and_link_local_targets_are_refused_unless_allowed() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let token = s(&program["api_key"]);
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "ftp://hooks.example.com/",
        "https://user:pw@hooks.example.com/",
    ] {
        let res = app
            .post(
                "/v1/webhook-endpoints",
                token,
                &json!({"url": url, "events": ["payout.paid"]}),
            )
            .await;
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(invalid_fields(&problem), vec!["url"], "{url}");
    }
    register(
        &app,
        token,
        "https://hooks.example.com/mitra",
        &["payout.paid"],
    )
    .await;
    let res = app
        .post(
            "/v1/webhook-endpoints",
            token,
            &json!({"url": "https://hooks.example.com/", "events": ["order.shipped"]}),
        )
        .await;
    let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(invalid_fields(&problem), vec!["events[0]"]);

    // A target allowed once and refused now is never contacted: the rule
    // is applied again at every attempt.
    let hooks = Receiver::start(vec![]).await;
    let allowed = spawn_app_with(Roles::API, &[ALLOW_PRIVATE]).await;
    let program = allowed.create_program().await;
    let endpoint = register(
        &allowed,
        s(&program["api_key"]),
        &hooks.url,
        &["payout.paid"],
    )
    .await;
    let fire = format!("/v1/webhook-endpoints/{}/test", s(&endpoint["id"]));
    assert_status(
        allowed
            .request(
                reqwest::Method::POST,
                &fire,
                Some(s(&program["api_key"])),
                None,
            )
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let strict = mitra::startup::Workers::new(&test_settings(
        &url::Url::parse(allowed.settings.expose_database_url()).unwrap(),
        &[],
    ))
    .unwrap()
    .deliverer()
    .unwrap();
    strict.step().await.unwrap();
    assert_eq!(hooks.received().len(), 0);
    let listed = deliveries(&allowed, &endpoint, s(&program["api_key"])).await;
    assert_eq!(
        listed[0]["attempts"][0]["error"],
        "the URL must not point to a loopback, private, link-local or other internal address"
    );
    assert_eq!(listed[0]["attempts"][0]["response_status"], Value::Null);
}

const ADMIN: &str = "admin-token-webhook-crash-0123456789";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_a_kill_9_is_delivered_once_mitra_is_back() {
    // The receiver holds the first delivery long enough to kill mitra mid-send.
    let hooks = Receiver::start(vec![Reply::Hold(Duration::from_secs(30))]).await;
    let (_db, url) = fresh_database().await;
    let env = vec![
        ("DATABASE_URL", url.to_string()),
        ("REDIS_URL", std::env::var("REDIS_URL").unwrap()),
        ("MITRA_ADMIN_TOKEN", ADMIN.to_owned()),
        (
            "MITRA_LINK_KEYS",
            "1:webhook-crash-link-key-0123456789".to_owned(),
        ),
        (
            "MITRA_REDIS_PREFIX",
            format!("test:webhook-crash:{}:", std::process::id()),
        ),
        ("MITRA_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        ("MITRA_WORKER_POLL_MS", "50".to_owned()),
    ];
    let client = reqwest::Client::new();

    // 1. An API process alone: the conversion and its event are committed,
    // and nothing delivers them before it is killed.
    let mut api = ServerProcess::start(&["serve", "--role", "api"], &env);
    let program = admin_post(
        &client,
        &api.base,
        "/v1/programs",
        json!({
            "name": "Crash Shop", "currency": "EUR", "landing_domains": ["shop.example"],
            "default_url": "https://shop.example/", "commission": {"sale": {"percent_bps": 1000}}
        }),
    )
    .await;
    let endpoint = client
        .post(format!("{}/v1/webhook-endpoints", api.base))
        .bearer_auth(s(&program["api_key"]))
        .json(&json!({"url": hooks.url, "events": ["conversion.received"]}))
        .send()
        .await
        .unwrap();
    let endpoint = assert_status(endpoint, StatusCode::CREATED).await;
    let body = serde_json::to_vec(
        &json!({"order_id": "K-1", "event": "sale", "amount_minor": 4_200, "currency": "EUR"}),
    )
    .unwrap();
    let signature = mitra::conversions::signature::header(
        s(&program["webhook_secret"]),
        chrono::Utc::now().timestamp(),
        &body,
    );
    let res = client
        .post(format!(
            "{}/v1/programs/{}/conversions",
            api.base,
            s(&program["id"])
        ))
        .header("content-type", "application/json")
        .header("mitra-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let stored = assert_status(res, StatusCode::ACCEPTED).await;
    api.kill_9();
    assert_eq!(hooks.received().len(), 0);

    // 2. A full process picks the event up; killed while the receiver holds it.
    let mut worker = ServerProcess::start(&["serve"], &env);
    let first = hooks.wait_for(1, Duration::from_secs(30)).await;
    worker.kill_9();

    // 3. Back again: the delivery, rolled back with the process, is sent again.
    let back = ServerProcess::start(&["serve"], &env);
    let got = hooks.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2);
    let event = got[1].json();
    assert_eq!(event["type"], "conversion.received");
    assert_eq!(event["data"]["conversion_id"], stored["conversion_id"]);
    assert_eq!(event["data"]["order_id"], "K-1");
    assert_eq!(event["data"]["amount_minor"], 4_200);
    assert_eq!(
        first[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "the same event, the same idempotency key"
    );
    let verdicts = verify_with_python(s(&endpoint["secret"]), &got);
    let id = s(&event["id"]);
    assert_eq!(verdicts, vec![format!("ok {id} conversion.received"); 2]);
    // The delivery succeeded once and is kept with that attempt.
    let mut listed = Value::Null;
    for _ in 0..100 {
        let res = client
            .get(format!(
                "{}/v1/webhook-endpoints/{}/deliveries",
                back.base,
                s(&endpoint["id"])
            ))
            .bearer_auth(s(&program["api_key"]))
            .send()
            .await
            .unwrap();
        listed = assert_status(res, StatusCode::OK).await;
        if listed["data"][0]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["status"], "succeeded");
    assert_eq!(listed["data"][0]["response_status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_postback_fills_its_macros_url_encoded() {
    let tracker = Receiver::start(vec![]).await;
    let app = spawn_app_with(Roles::API, &[ALLOW_PRIVATE]).await;
    let program = app.create_program().await;
    let partner = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&partner, 10000)], json!({}))
        .await;
    let link = app
        .create_link(
            &agreement,
            json!({"sub_ids": {"sub1": "fb ads & more/é", "sub3": "a+b=c"}}),
        )
        .await;
    let template = format!(
        "{}/pb?cid={{click_id}}&s1={{sub1}}&s2={{sub2}}&s3={{sub3}}&o={{order_id}}&ev={{event}}\
         &amt={{amount_minor}}&c={{commission_minor}}&cur={{currency}}&st={{status}}",
        tracker.url
    );
    let body = json!({
        "kind": "postback", "program_id": program["id"], "url": template,
        "events": ["commission.created"]
    });
    let postback = assert_status(
        app.post("/v1/webhook-endpoints", s(&partner["api_key"]), &body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (
            &postback["kind"],
            &postback["program_id"],
            &postback["partner_id"]
        ),
        (&json!("postback"), &program["id"], &partner["id"])
    );
    // A postback is a partner's, its macros stay out of the host.
    assert_problem(
        app.post("/v1/webhook-endpoints", s(&program["api_key"]), &body)
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let mut in_host = body.clone();
    in_host["url"] = json!("https://{sub1}.tracker.example/pb");
    let problem = assert_problem(
        app.post("/v1/webhook-endpoints", s(&partner["api_key"]), &in_host)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(invalid_fields(&problem), vec!["url"]);

    let click = app.click_id_ago(&link, chrono::Duration::minutes(1));
    assert_status(
        app.post_conversion(&program, &sale("ORD 7/8&x?", 12_500, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    deliver(&app).await;

    let got = tracker.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "GET");
    assert_eq!(
        got[0].target,
        format!(
            "/pb?cid={click}&s1=fb%20ads%20%26%20more%2F%C3%A9&s2=&s3=a%2Bb%3Dc\
             &o=ORD%207%2F8%26x%3F&ev=sale&amt=12500&c=1250&cur=EUR&st=pending"
        )
    );
    let listed = deliveries(&app, &postback, s(&partner["api_key"])).await;
    assert_eq!(
        (
            &listed[0]["type"],
            &listed[0]["status"],
            &listed[0]["response_status"]
        ),
        (
            &json!("commission.created"),
            &json!("succeeded"),
            &json!(200)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollments_payouts_and_claims_are_told_to_both_sides() {
    let program_hooks = Receiver::start(vec![]).await;
    let partner_hooks = Receiver::start(vec![]).await;
    let app = spawn_app_with(Roles::API, &[ALLOW_PRIVATE]).await;
    let program = app.create_program_with(json!({"hold_days": 0})).await;
    let partner = app.create_partner("Ayu").await;
    let events = [
        "partner.enrolled",
        "payout.paid",
        "claim.opened",
        "claim.commented",
        "claim.declined",
    ];
    register(&app, s(&program["api_key"]), &program_hooks.url, &events).await;
    register(&app, s(&partner["api_key"]), &partner_hooks.url, &events).await;

    // Enrolled, a sale booked and approved by the clock, paid out.
    let agreement = app
        .create_agreement(&program, &[(&partner, 10000)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    let click = app.click_id_ago(&link, chrono::Duration::minutes(1));
    assert_status(
        app.post_conversion(&program, &sale("E-1", 30_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let lifecycle = app.workers.lifecycle();
    lifecycle.step().await.unwrap();
    let payouts = format!("/v1/programs/{}/payouts", s(&program["id"]));
    let payout = assert_status(
        app.post(&payouts, s(&program["api_key"]), &json!({})).await,
        StatusCode::CREATED,
    )
    .await;
    // A claim opened, commented on and declined.
    let claims = format!("/v1/programs/{}/claims", s(&program["id"]));
    let claim = assert_status(
        app.post(
            &claims,
            s(&partner["api_key"]),
            &json!({"kind": "untracked", "order_id": "E-2", "amount_minor": 1_000,
                    "occurred_at": chrono::Utc::now()}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let claim_id = s(&claim["data"][0]["id"]).to_owned();
    assert_status(
        app.post(
            &format!("/v1/claims/{claim_id}/comments"),
            s(&program["api_key"]),
            &json!({"note": "which shop?"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_status(
        app.post(
            &format!("/v1/claims/{claim_id}/decline"),
            s(&program["api_key"]),
            &json!({"reason_code": "order_not_found"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    deliver(&app).await;

    for hooks in [&program_hooks, &partner_hooks] {
        let got = hooks.wait_for(5, Duration::from_secs(10)).await;
        assert_eq!(
            types(&got),
            vec![
                "claim.commented",
                "claim.declined",
                "claim.opened",
                "partner.enrolled",
                "payout.paid"
            ]
        );
        let body = |t: &str| {
            got.iter()
                .map(|r| r.json())
                .find(|b| b["type"] == t)
                .unwrap()
        };
        assert_eq!(body("payout.paid")["data"]["payout_id"], payout["id"]);
        assert_eq!(body("payout.paid")["data"]["amount_minor"], 3_000);
        assert_eq!(
            body("partner.enrolled")["data"]["partner_id"],
            partner["id"]
        );
        assert_eq!(body("claim.declined")["data"]["claim_id"], json!(claim_id));
        assert_eq!(
            body("claim.declined")["data"]["reason_code"],
            "order_not_found"
        );
        assert_eq!(body("claim.commented")["data"]["note"], "which shop?");
        assert_eq!(body("claim.commented")["data"]["actor"], program["id"]);
    }
}

/// Every role in one process, polling once a minute, whose loops idle
/// now (their first steps found nothing); the fixture's program listens for
/// `events` at a receiver.
async fn idle_program_listening(events: &[&str]) -> (Receiver, TestApp, Fixture) {
    let hooks = Receiver::start(vec![]).await;
    let app = spawn_app_with(
        Roles::ALL,
        &[ALLOW_PRIVATE, ("MITRA_WORKER_POLL_MS", "60000")],
    )
    .await;
    let f = fixture(&app, json!({})).await;
    register(&app, s(&f.program["api_key"]), &hooks.url, events).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    (hooks, app, f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_sends_a_sales_webhooks_at_once_not_at_its_next_poll() {
    // Arrange: only the wake-ups (the intake's poke, then the booking's
    // commit) send within seconds. The program listens for both events of a
    // sale.
    let (hooks, app, f) =
        idle_program_listening(&["conversion.received", "commission.created"]).await;

    // Act: a sale.
    let click = app.click_id_ago(&f.link, chrono::Duration::minutes(1));
    assert_status(
        app.post_conversion(&f.program, &sale("I-1", 12_500, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;

    // Assert: both webhooks arrive within seconds, not a minute.
    let got = hooks.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(types(&got), ["commission.created", "conversion.received"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_sends_the_webhooks_of_an_api_change_at_once_not_at_its_next_poll() {
    // Arrange: the program listens for claims and what accepting one books.
    let (hooks, app, f) =
        idle_program_listening(&["claim.opened", "claim.accepted", "commission.created"]).await;

    // Act: the partner claims a sale through the API.
    let path = format!("/v1/programs/{}/claims", s(&f.program["id"]));
    let body = json!({"kind": "untracked", "order_id": "C-1",
                      "occurred_at": chrono::Utc::now(), "amount_minor": 10_000});
    let opened = assert_status(
        app.post(&path, s(&f.partner["api_key"]), &body).await,
        StatusCode::CREATED,
    )
    .await;

    // Assert: the program hears of it within seconds, not a minute; and
    // of its answer, and of what the answer booked.
    let got = hooks.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(types(&got), ["claim.opened"]);
    let accept = format!("/v1/claims/{}/accept", s(&opened["data"][0]["id"]));
    let res = app
        .request(Method::POST, &accept, Some(s(&f.program["api_key"])), None)
        .await;
    assert_status(res, StatusCode::OK).await;
    let got = hooks.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(
        types(&got),
        ["claim.accepted", "claim.opened", "commission.created"]
    );
}
