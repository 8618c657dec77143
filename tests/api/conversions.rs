//! Conversion webhooks, attribution and exactly-once booking.

use crate::helpers::*;
use chrono::{Duration, Utc};
use mitra::startup::Roles;
use reqwest::StatusCode;
use serde_json::{Value, json};

const MINUTE: Duration = Duration::minutes(1);

/// The commissions of an order, as (partner id, amount, status).
fn commissions(conversion: &Value) -> Vec<(String, i64, String)> {
    let order: Order = serde_json::from_value(conversion.clone()).expect("an order");
    order
        .commissions
        .into_iter()
        .map(|c| (c.partner_id, c.amount_minor, c.status))
        .collect()
}

#[tokio::test]
async fn every_signature_failure_is_a_401_problem() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let other = app.create_program().await;
    let body =
        serde_json::to_vec(&sale("A-1", 10_000, &app.click_id_ago(&f.link, MINUTE))).unwrap();
    let secret = s(&f.program["webhook_secret"]);
    let now = Utc::now().timestamp();
    let sign =
        |secret: &str, t: i64, body: &[u8]| mitra::conversions::signature::header(secret, t, body);
    let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("missing header", None, body.clone()),
        ("empty header", Some(String::new()), body.clone()),
        (
            "no timestamp",
            Some(format!("v1={}", "a".repeat(64))),
            body.clone(),
        ),
        ("no v1", Some(format!("t={now}")), body.clone()),
        ("not hex", Some(format!("t={now},v1=zz")), body.clone()),
        // 10 s beyond the 300 s tolerance: a loaded machine may take a
        // second or more to reach the future case (301 s failed that way).
        (
            "stale by 310 s",
            Some(sign(secret, now - 310, &body)),
            body.clone(),
        ),
        (
            "310 s in the future",
            Some(sign(secret, now + 310, &body)),
            body.clone(),
        ),
        (
            "another program's secret",
            Some(sign(s(&other["webhook_secret"]), now, &body)),
            body.clone(),
        ),
        (
            "body altered after signing",
            Some(sign(secret, now, &body)),
            {
                let mut b = body.clone();
                b.extend_from_slice(b" ");
                b
            },
        ),
        (
            "timestamp altered",
            Some(sign(secret, now, &body).replacen(
                &format!("t={now}"),
                &format!("t={}", now - 1),
                1,
            )),
            body.clone(),
        ),
    ];
    for (what, header, raw) in cases {
        let res = app.post_conversion_raw(&f.program, raw, header).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_problem(res, StatusCode::UNAUTHORIZED).await;
    }
    let count: i64 = sqlx::query_scalar("select count(*) from conversions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing refused was stored");
    // The same body, signed properly, is accepted; so is a header with several v1 values.
    let header = format!(
        "t={now},v1={},v1={}",
        "0".repeat(64),
        mitra::conversions::signature::signature(secret, now, &body)
    );
    let res = app
        .post_conversion_raw(&f.program, body, Some(header))
        .await;
    assert_status(res, StatusCode::ACCEPTED).await;
}

/// Standard Webhooks' signature, computed here from the specification:
/// base64 HMAC-SHA256 of "{id}.{timestamp}.{body}", keyed with the base64
/// decoding of the secret after `whsec_`.
fn standard_signature(secret: &str, id: &str, t: i64, body: &[u8]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, KeyInit, Mac};
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{t}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn standard_webhooks_signatures_verify_with_the_programs_secret() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let secret = s(&f.program["webhook_secret"]);
    let body =
        serde_json::to_vec(&sale("SW-1", 10_000, &app.click_id_ago(&f.link, MINUTE))).unwrap();
    let now = Utc::now().timestamp();
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut req = app
            .client
            .post(app.url(&format!("/v1/programs/{}/conversions", s(&f.program["id"]))))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let signed = |id: &str, t: i64, secret: &str| {
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", t.to_string()),
            (
                "webhook-signature",
                standard_signature(secret, id, t, &body),
            ),
        ]
    };
    // (what, headers, the problem's detail)
    type Case<'a> = (&'a str, Vec<(&'static str, String)>, &'a str);
    let refused: Vec<Case> = vec![
        (
            "another program's secret",
            signed(
                "msg_1",
                now,
                s(&app.create_program().await["webhook_secret"]),
            ),
            "no v1 signature matches the webhook-id, timestamp and body under the program's webhook secrets",
        ),
        (
            "stale",
            signed("msg_1", now - 301, secret),
            "the webhook-timestamp is more than 300 s away from now",
        ),
        (
            "no webhook-id",
            signed("msg_1", now, secret)
                .into_iter()
                .filter(|(k, _)| *k != "webhook-id")
                .collect(),
            "a Standard Webhooks signature needs the webhook-id and webhook-timestamp headers",
        ),
        (
            "the id changed after signing",
            {
                let mut h = signed("msg_1", now, secret);
                h[0].1 = "msg_2".into();
                h
            },
            "no v1 signature matches the webhook-id, timestamp and body under the program's webhook secrets",
        ),
    ];
    for (what, headers, detail) in refused {
        let problem = assert_problem(
            post(headers, body.clone()).await.unwrap(),
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(problem["detail"], detail, "{what}");
    }
    let res = post(signed("msg_1", now, secret), body.clone())
        .await
        .unwrap();
    let first = assert_status(res, StatusCode::ACCEPTED).await;
    // A retry (same message) is the same conversion.
    let res = post(signed("msg_1", now + 5, secret), body.clone())
        .await
        .unwrap();
    let again = assert_status(res, StatusCode::OK).await;
    assert_eq!(again["conversion_id"], first["conversion_id"]);
}

#[tokio::test]
async fn bad_bodies_are_refused_with_the_right_status() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, MINUTE);
    let unprocessable: Vec<(Value, &str)> = vec![
        (
            json!({"order_id": "A", "event": "sale", "amount_minor": 100, "currency": "USD", "click_id": click}),
            "currency",
        ),
        (
            json!({"order_id": "A", "event": "sale", "amount_minor": 100, "currency": "eur"}),
            "currency",
        ),
        (
            json!({"order_id": "A", "event": "sale", "amount_minor": -1, "currency": "EUR"}),
            "amount_minor",
        ),
        (
            json!({"order_id": "A", "event": "sale", "amount_minor": 1_000_000_000_001i64, "currency": "EUR"}),
            "amount_minor",
        ),
        (
            json!({"order_id": "A", "event": "refund", "amount_minor": 0, "currency": "EUR"}),
            "amount_minor",
        ),
        (
            json!({"order_id": "A", "event": "purchase", "amount_minor": 100, "currency": "EUR"}),
            "event",
        ),
        (
            json!({"order_id": "", "event": "sale", "amount_minor": 100, "currency": "EUR"}),
            "order_id",
        ),
        (
            json!({"order_id": "x".repeat(129), "event": "sale", "amount_minor": 100, "currency": "EUR"}),
            "order_id",
        ),
        (
            json!({"order_id": "A", "event": "sale", "amount_minor": 100, "currency": "EUR",
                "occurred_at": (Utc::now() + Duration::hours(1)).to_rfc3339()}),
            "occurred_at",
        ),
        (
            json!({"order_id": "A", "event": "sale", "amount_minor": 100, "currency": "EUR", "click_id": ""}),
            "click_id",
        ),
    ];
    for (body, field) in unprocessable {
        let problem = assert_problem(
            app.post_conversion(&f.program, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(invalid_fields(&problem), vec![field.to_owned()], "{body}");
    }
    for body in [
        json!({"event": "sale", "amount_minor": 100, "currency": "EUR"}),
        json!({"order_id": "A", "event": "sale", "amount_minor": 12.5, "currency": "EUR"}),
        json!({"order_id": "A", "event": "sale", "amount_minor": "100", "currency": "EUR"}),
        json!([1, 2, 3]),
    ] {
        assert_problem(
            app.post_conversion(&f.program, &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let secret = s(&f.program["webhook_secret"]);
    let raw = b"{not json".to_vec();
    let header = mitra::conversions::signature::header(secret, Utc::now().timestamp(), &raw);
    assert_problem(
        app.post_conversion_raw(&f.program, raw, Some(header)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let big = json!({"order_id": "A", "event": "sale", "amount_minor": 1, "currency": "EUR", "padding": "x".repeat(70_000)});
    assert_problem(
        app.post_conversion(&f.program, &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let ghost = json!({"id": "prg_zzzzz", "webhook_secret": "whsec_x"});
    assert_problem(
        app.post_conversion(&ghost, &sale("A", 1, &click)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let count: i64 = sqlx::query_scalar("select count(*) from conversions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

/// A process just started (a rolling deploy's new one) takes webhooks at
/// once: its conversion writer connects and runs its statement before the
/// first arrives, instead of making it wait for both.
#[tokio::test]
async fn the_conversion_writer_is_connected_and_prepared_before_the_first_webhook() {
    let app = spawn_app().await;
    writer_backend(&app).await;
    // Nothing was stored by it.
    let stored: i64 = sqlx::query_scalar("select count(*) from conversions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

/// The backends that have run the conversion writer's insert, as their
/// last query (not this query itself, which an earlier call left on another
/// connection of the test's pool).
async fn writer_backends(app: &TestApp) -> Vec<i32> {
    sqlx::query_scalar(
        "select pid from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()
           and query like '%insert into conversions%'
           and query not like '%pg_stat_activity%'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// The backend of the conversion writer's held connection, once it has run
/// its insert.
async fn writer_backend(app: &TestApp) -> i32 {
    eventually(
        std::time::Duration::from_secs(10),
        "no backend had run the writer's insert after 10 s",
        || async { !writer_backends(app).await.is_empty() },
    )
    .await;
    writer_backends(app).await[0]
}

async fn cut(app: &TestApp, pid: i32) {
    let cut: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(cut);
}

#[tokio::test]
async fn a_worker_only_process_holds_no_webhook_writer_connection() {
    // The API process beside it has the writer; this one takes no webhooks.
    let app = spawn_app_with(Roles::WORKER, &[]).await;
    // Its loops are up (the wake-up listener is connected), and its writer
    // would have warmed up by now.
    listener_backend(&app, None).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(writer_backends(&app).await, Vec::<i32>::new());
}

#[tokio::test]
async fn the_writer_replaces_its_connection_when_postgres_closed_it() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, MINUTE);

    // Cut while the writer idles: the next webhook finds the connection
    // gone before it writes, and is stored through another.
    cut(&app, writer_backend(&app).await).await;
    tokio::time::sleep(
        mitra::conversions::writer::IDLE_CHECK + std::time::Duration::from_millis(200),
    )
    .await;
    assert_status(
        app.post_conversion(&f.program, &sale("CUT-1", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;

    // Cut right after a statement: that webhook may be refused with 503
    // (retry), and its retry is stored, once.
    let pid = writer_backend(&app).await;
    cut(&app, pid).await;
    let body = sale("CUT-2", 10_000, &click);
    let first = app.post_conversion(&f.program, &body).await;
    let status = first.status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let problem: Value = first.json().await.unwrap();
        assert_eq!(problem["status"], 503, "{problem}");
        assert_status(
            app.post_conversion(&f.program, &body).await,
            StatusCode::ACCEPTED,
        )
        .await;
    } else {
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let stored: i64 =
        sqlx::query_scalar("select count(*) from conversions where order_id in ('CUT-1', 'CUT-2')")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn a_repeated_webhook_answers_200_with_the_same_id() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let body = sale("A-1", 10_000, &app.click_id_ago(&f.link, MINUTE));
    let first = assert_status(
        app.post_conversion(&f.program, &body).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert!(s(&first["conversion_id"]).starts_with("cnv_"));
    let again = assert_status(app.post_conversion(&f.program, &body).await, StatusCode::OK).await;
    assert_eq!(again["conversion_id"], first["conversion_id"]);

    // With event ids, refunds of one order are distinct events.
    let refund = |id: &str| json!({"order_id": "A-1", "event": "refund", "amount_minor": 100, "currency": "EUR", "event_id": id});
    let r1 = assert_status(
        app.post_conversion(&f.program, &refund("r1")).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let r2 = assert_status(
        app.post_conversion(&f.program, &refund("r2")).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_ne!(r1["conversion_id"], r2["conversion_id"]);
    let r1_again = assert_status(
        app.post_conversion(&f.program, &refund("r1")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r1_again["conversion_id"], r1["conversion_id"]);

    // The same key for a different conversion is a conflict, not a silent repeat.
    let mut changed = body.clone();
    changed["amount_minor"] = json!(9_999);
    assert_problem(
        app.post_conversion(&f.program, &changed).await,
        StatusCode::CONFLICT,
    )
    .await;
    // A second sale for the order under another event id is a conflict too.
    let mut second = body.clone();
    second["event_id"] = json!("another");
    assert_problem(
        app.post_conversion(&f.program, &second).await,
        StatusCode::CONFLICT,
    )
    .await;
}

#[tokio::test]
async fn the_same_webhook_four_times_into_two_processes_books_one_commission() {
    let a = spawn_app_with(Roles::API, &[]).await;
    let f = fixture(&a, json!({})).await;
    let mut settings = a.settings.clone();
    settings.listen = "127.0.0.1:0".parse().unwrap();
    let b = start(settings, a.database.clone(), Roles::API).await;
    let body = sale("ORDER-77", 12_345, &a.click_id_ago(&f.link, MINUTE));
    let posts = (0..4).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let (program, body) = (&f.program, &body);
        async move {
            let res = app.post_conversion(program, body).await;
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }
    });
    let answers = futures::future::join_all(posts).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    let repeated = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, repeated), (1, 3), "{answers:?}");
    let ids: Vec<&Value> = answers.iter().map(|(_, b)| &b["conversion_id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]));

    // Two workers, one in each process, race for it.
    let (wa, wb) = (a.attributor(), b.attributor());
    let (ra, rb) = tokio::join!(wa.step(), wb.step());
    ra.unwrap();
    rb.unwrap();
    let conversion = a.conversion(&f.program, "ORDER-77").await;
    assert_eq!(conversion["status"], "attributed");
    assert_eq!(
        commissions(&conversion),
        vec![(s(&f.partner["id"]).to_owned(), 1_235, "pending".to_owned())]
    );
    let entries: i64 = sqlx::query_scalar("select count(*) from ledger_entries")
        .fetch_one(&a.db)
        .await
        .unwrap();
    assert_eq!(entries, 1);
}

#[tokio::test]
async fn a_real_click_attributes_a_sale_and_books_the_commission() {
    let app = spawn_app_with(Roles::API, &[("MITRA_FRAUD_MIN_CLICK_SECONDS", "0")]).await;
    let f = fixture(
        &app,
        json!({"destination_url": "https://shop.example/batik"}),
    )
    .await;
    let res = app
        .client
        .get(app.url(&TestApp::link_path(&f.link)))
        .header("user-agent", "Mozilla/5.0 Firefox/120.0")
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let click = location
        .query_pairs()
        .find(|(k, _)| k == "mitra_click")
        .unwrap()
        .1
        .into_owned();
    assert_status(
        app.post_conversion(&f.program, &sale("B-1", 25_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let before = app.conversion(&f.program, "B-1").await;
    assert_eq!(before["status"], "received");
    app.attribute().await;
    let c = app.conversion(&f.program, "B-1").await;
    assert_eq!(c["status"], "attributed");
    assert_eq!(c["attributed_via"], "click");
    assert_eq!(c["link_id"], f.link["id"]);
    assert_eq!(c["agreement_id"], f.agreement["id"]);
    assert_eq!(c["agreement_version"], 1);
    assert_eq!(c["fraud_reasons"], json!([]));
    let com = &c["commissions"][0];
    assert_eq!(com["amount_minor"], 2_500, "10% of 250.00");
    assert_eq!(
        com["rule"],
        json!({"event": "sale", "rule": {"percent_bps": 1000}})
    );
    assert_eq!(com["agreement_version"], 1);
    assert_eq!(com["status"], "pending");
    let m = app.metrics().await;
    let p = s(&f.program["id"]);
    assert_eq!(
        metric(
            &m,
            &format!(
                r#"mitra_conversions_total{{event="sale",outcome="attributed",program="{p}"}}"#
            )
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            &format!(
                r#"mitra_commission_minor_total{{currency="EUR",program="{p}",status="pending"}}"#
            )
        ),
        2500.0
    );
    assert_eq!(
        metric(
            &m,
            &format!(r#"mitra_revenue_minor_total{{currency="EUR",program="{p}"}}"#)
        ),
        25000.0
    );
}

#[tokio::test]
async fn a_joint_agreement_splits_an_odd_amount_to_the_cent() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    let agreement = app
        .create_agreement(&program, &[(&ayu, 3333), (&budi, 6667)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    // 10% of 10,015 is 1,001.5 -> 1,002; split 3333/6667: 333.97 and 668.03 -> 334 and 668.
    let click = app.click_id_ago(&link, MINUTE);
    assert_status(
        app.post_conversion(&program, &sale("S-1", 10_015, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let c = app.conversion(&program, "S-1").await;
    let mut parts = commissions(&c);
    parts.sort();
    assert_eq!(
        parts,
        vec![
            (s(&ayu["id"]).to_owned(), 334, "pending".into()),
            (s(&budi["id"]).to_owned(), 668, "pending".into())
        ]
    );
    assert_eq!(parts.iter().map(|p| p.1).sum::<i64>(), 1_002);
}

#[tokio::test]
async fn a_coupon_attributes_and_beats_a_click() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    let by_link = app
        .create_agreement(&program, &[(&ayu, 10000)], json!({}))
        .await;
    let by_coupon = app
        .create_agreement(
            &program,
            &[(&budi, 10000)],
            json!({"coupon_codes": ["BUDI10"], "commission": {"sale": {"flat_minor": 500}}}),
        )
        .await;
    let link = app.create_link(&by_link, json!({})).await;
    let click = app.click_id_ago(&link, MINUTE);
    let mut both = sale("C-1", 10_000, &click);
    both["coupon"] = json!("budi10");
    assert_status(
        app.post_conversion(&program, &both).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let coupon_only = json!({"order_id": "C-2", "event": "sale", "amount_minor": 10_000, "currency": "EUR", "coupon": "BUDI10"});
    assert_status(
        app.post_conversion(&program, &coupon_only).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let unknown = json!({"order_id": "C-3", "event": "sale", "amount_minor": 10_000, "currency": "EUR", "coupon": "NOPE"});
    assert_status(
        app.post_conversion(&program, &unknown).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    for order in ["C-1", "C-2"] {
        let c = app.conversion(&program, order).await;
        assert_eq!(c["attributed_via"], "coupon", "{order}");
        assert_eq!(c["agreement_id"], by_coupon["id"]);
        assert_eq!(
            commissions(&c),
            vec![(s(&budi["id"]).to_owned(), 500, "pending".into())]
        );
    }
    let c = app.conversion(&program, "C-3").await;
    assert_eq!(
        (c["status"].clone(), c["reason"].clone()),
        (json!("unattributed"), json!("unknown_coupon"))
    );
}

#[tokio::test]
async fn clicks_attribute_only_within_the_window_and_only_when_genuine() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await; // 30-day window
    let other = fixture(&app, json!({})).await;
    let link_id = mitra::domain::LinkId::parse(s(&f.link["id"])).unwrap();
    // Whole milliseconds, as click ids carry them.
    let occurred = chrono::DateTime::from_timestamp_millis(
        (Utc::now() - Duration::hours(1)).timestamp_millis(),
    )
    .unwrap();
    let click_at = |offset: Duration| {
        mitra::domain::click_id::issue(
            &app.settings.link_keys,
            link_id,
            (occurred - offset).timestamp_millis(),
            7,
        )
        .unwrap()
        .to_string()
    };
    let forged = {
        let ring = mitra::domain::signing::KeyRing::parse(&secrecy::SecretString::from(
            "1:someone-elses-key-someone".to_owned(),
        ))
        .unwrap();
        mitra::domain::click_id::issue(&ring, link_id, occurred.timestamp_millis() - 60_000, 7)
            .unwrap()
            .to_string()
    };
    let cases: Vec<(&str, Value, &str, Option<&str>)> = vec![
        (
            "W-edge",
            json!(click_at(Duration::days(30))),
            "attributed",
            None,
        ),
        (
            "W-past",
            json!(click_at(Duration::days(30) + Duration::milliseconds(1))),
            "unattributed",
            Some("outside_window"),
        ),
        ("W-forged", json!(forged), "rejected", Some("invalid_click")),
        (
            "W-garbage",
            json!("not-a-click-id"),
            "rejected",
            Some("invalid_click"),
        ),
        (
            "W-foreign",
            json!(app.click_id_ago(&other.link, MINUTE)),
            "rejected",
            Some("invalid_click"),
        ),
        (
            "W-after",
            json!(click_at(-Duration::minutes(5))),
            "rejected",
            Some("click_after_conversion"),
        ),
        ("W-none", Value::Null, "unattributed", Some("no_click")),
    ];
    for (order, click, _, _) in &cases {
        let mut body = json!({"order_id": order, "event": "sale", "amount_minor": 1000, "currency": "EUR",
                              "occurred_at": occurred.to_rfc3339()});
        if !click.is_null() {
            body["click_id"] = click.clone();
        }
        assert_status(
            app.post_conversion(&f.program, &body).await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    app.attribute().await;
    for (order, _, status, reason) in cases {
        let c = app.conversion(&f.program, order).await;
        assert_eq!(c["status"], status, "{order}: {c}");
        assert_eq!(c["reason"].as_str(), reason, "{order}");
        let booked = c["commissions"].as_array().unwrap().len();
        assert_eq!(booked, usize::from(status == "attributed"), "{order}");
    }
}

#[tokio::test]
async fn a_lead_earns_the_flat_rule_and_one_click_makes_one_lead() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, MINUTE);
    for order in ["L-1", "L-2"] {
        let body = json!({"order_id": order, "event": "lead", "amount_minor": 0, "currency": "EUR", "click_id": click});
        assert_status(
            app.post_conversion(&f.program, &body).await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    app.attribute().await;
    let first = app.conversion(&f.program, "L-1").await;
    assert_eq!(
        commissions(&first),
        vec![(s(&f.partner["id"]).to_owned(), 200, "pending".into())]
    );
    let second = app.conversion(&f.program, "L-2").await;
    assert_eq!(
        (second["status"].clone(), second["reason"].clone()),
        (json!("rejected"), json!("duplicate"))
    );
}

#[tokio::test]
async fn terms_in_force_when_the_sale_happened_are_applied_and_recorded() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let before_change = Utc::now() - Duration::seconds(1);
    let path = format!("/v1/agreements/{}", s(&f.agreement["id"]));
    let v2 = json!({"partners": [{"partner_id": f.partner["id"], "share_bps": 10000}], "commission": {"sale": {"percent_bps": 2000}}});
    assert_status(app.put(&path, &app.admin_token, &v2).await, StatusCode::OK).await;
    let click = app.click_id_ago(&f.link, Duration::minutes(5));
    let mut old = sale("T-old", 10_000, &click);
    old["occurred_at"] = json!(before_change.to_rfc3339());
    let new = sale("T-new", 10_000, &click);
    assert_status(
        app.post_conversion(&f.program, &old).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_status(
        app.post_conversion(&f.program, &new).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let old = app.conversion(&f.program, "T-old").await;
    assert_eq!(
        (
            old["agreement_version"].clone(),
            old["commissions"][0]["amount_minor"].clone()
        ),
        (json!(1), json!(1000))
    );
    let new = app.conversion(&f.program, "T-new").await;
    assert_eq!(
        (
            new["agreement_version"].clone(),
            new["commissions"][0]["amount_minor"].clone()
        ),
        (json!(2), json!(2000))
    );
    assert_eq!(
        new["commissions"][0]["rule"]["rule"],
        json!({"percent_bps": 2000})
    );
}

#[tokio::test]
async fn suspected_fraud_is_booked_for_review_not_dropped() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    // Too fast: converted within a second of the click.
    let fast = app.click_id_ago(&f.link, Duration::milliseconds(500));
    assert_status(
        app.post_conversion(&f.program, &sale("F-fast", 1000, &fast))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    // A click the click worker flagged as a bot.
    let bot = app.click_id_ago(&f.link, MINUTE);
    let link_id = mitra::domain::LinkId::parse(s(&f.link["id"]))
        .unwrap()
        .get();
    sqlx::query("insert into flagged_clicks (click_id, link_id, reason, clicked_at) values ($1, $2, 'user_agent', now())")
        .bind(&bot)
        .bind(link_id)
        .execute(&app.db)
        .await
        .unwrap();
    assert_status(
        app.post_conversion(&f.program, &sale("F-bot", 1000, &bot))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    // One click converting again and again.
    let reused = app.click_id_ago(&f.link, MINUTE);
    for i in 0..4 {
        assert_status(
            app.post_conversion(&f.program, &sale(&format!("F-reuse-{i}"), 1000, &reused))
                .await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    app.attribute().await;
    for (order, reason) in [
        ("F-fast", "too_fast"),
        ("F-bot", "bot_click"),
        ("F-reuse-3", "click_reused"),
    ] {
        let c = app.conversion(&f.program, order).await;
        assert_eq!(c["status"], "attributed", "{order}");
        assert_eq!(c["fraud_reasons"], json!([reason]), "{order}");
        assert_eq!(c["commissions"][0]["review"], true, "{order}");
        assert_eq!(c["commissions"][0]["status"], "pending", "{order}");
    }
    let m = app.metrics().await;
    let p = s(&f.program["id"]);
    assert_eq!(
        metric(
            &m,
            &format!(
                r#"mitra_conversions_total{{event="sale",outcome="fraud_suspected",program="{p}"}}"#
            )
        ),
        6.0
    );
}

#[tokio::test]
async fn a_sale_far_above_the_programs_normal_is_held_for_review() {
    let app = spawn_app_with(Roles::API, &[("MITRA_FRAUD_AMOUNT_MIN_SAMPLES", "5")]).await;
    let f = fixture(&app, json!({})).await;
    for i in 0..5 {
        let click = app.click_id_ago(&f.link, MINUTE);
        assert_status(
            app.post_conversion(&f.program, &sale(&format!("N-{i}"), 10_000, &click))
                .await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    app.attribute().await;
    let click = app.click_id_ago(&f.link, MINUTE);
    assert_status(
        app.post_conversion(&f.program, &sale("N-big", 100_001, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let click = app.click_id_ago(&f.link, MINUTE);
    assert_status(
        app.post_conversion(&f.program, &sale("N-ok", 100_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    assert_eq!(
        app.conversion(&f.program, "N-big").await["fraud_reasons"],
        json!(["amount_outlier"])
    );
    assert_eq!(
        app.conversion(&f.program, "N-ok").await["fraud_reasons"],
        json!([])
    );
}

#[tokio::test]
async fn partial_and_full_refunds_reduce_and_reverse_the_commissions() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    let agreement = app
        .create_agreement(&program, &[(&ayu, 3333), (&budi, 6667)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    assert_status(
        app.post_conversion(
            &program,
            &sale("R-1", 12_345, &app.click_id_ago(&link, MINUTE)),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    // Booked: 1,235 split 412 / 823.
    let refund = |id: &str, amount: i64| json!({"order_id": "R-1", "event": "refund", "amount_minor": amount, "currency": "EUR", "event_id": id});
    assert_status(
        app.post_conversion(&program, &refund("r1", 2_345)).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    // Keeps floor(1235 * 10000 / 12345) = 1000, taken in proportion to what each holds.
    let c = app.conversion(&program, "R-1").await;
    assert_eq!(c["refunded_minor"], 2_345);
    let amounts: Vec<i64> = commissions(&c).iter().map(|x| x.1).collect();
    assert_eq!(amounts.iter().sum::<i64>(), 1_000);
    assert_eq!(c["refunds"][0]["status"], "attributed");
    // The rest, and more than the rest: everything reversed, nothing negative.
    assert_status(
        app.post_conversion(&program, &refund("r2", 50_000)).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let c = app.conversion(&program, "R-1").await;
    assert_eq!(c["refunded_minor"], 12_345);
    for (_, amount, status) in commissions(&c) {
        assert_eq!((amount, status.as_str()), (0, "reversed"));
    }
    assert_eq!(c["refunds"][1]["reason"], "refund_exceeds_sale");
    // Every change is in the ledger, which sums to the commissions' amounts.
    let (sum, entries): (i64, i64) =
        sqlx::query_as("select sum(amount_minor)::bigint, count(*) from ledger_entries")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(sum, 0);
    assert_eq!(
        entries,
        2 + 2 + 2,
        "created, adjusted, reversed for each partner"
    );
}

#[tokio::test]
async fn a_refund_that_arrives_before_its_sale_waits_and_is_applied_later() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let refund =
        json!({"order_id": "E-1", "event": "refund", "amount_minor": 10_000, "currency": "EUR"});
    assert_status(
        app.post_conversion(&f.program, &refund).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(queues(&app.db).await, (1, 0), "the refund is queued");
    app.attribute().await;
    let waiting = app.conversion(&f.program, "E-1").await;
    assert_eq!(waiting["refunds"][0]["status"], "waiting");
    assert_eq!(
        queues(&app.db).await,
        (0, 1),
        "it waits apart from the queue"
    );
    // Ops see it wait (alert MitraRefundsWaiting on its age).
    app.attributor().measure().await.unwrap();
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, r#"mitra_queue_depth{queue="refunds_waiting"}"#),
        1.0
    );
    assert!(m.contains(r#"mitra_queue_oldest_age_seconds{queue="refunds_waiting"} "#));
    assert_status(
        app.post_conversion(
            &f.program,
            &sale("E-1", 10_000, &app.click_id_ago(&f.link, MINUTE)),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(queues(&app.db).await, (1, 1), "the sale is queued");
    app.attribute().await;
    assert_eq!(queues(&app.db).await, (0, 0), "the refund was queued again");
    let c = app.conversion(&f.program, "E-1").await;
    assert_eq!(c["status"], "attributed");
    assert_eq!(c["refunds"][0]["status"], "attributed");
    assert_eq!(
        commissions(&c),
        vec![(s(&f.partner["id"]).to_owned(), 0, "reversed".into())]
    );
    app.attributor().measure().await.unwrap();
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, r#"mitra_queue_depth{queue="refunds_waiting"}"#),
        0.0
    );
}

/// How many conversions are queued for attribution and how many refunds
/// wait for their sale, asserting the invariant the queue's triggers keep:
/// `attribution_queue` holds exactly the conversions whose status is
/// `received`, and `refunds_waiting` exactly those `waiting`.
async fn queues(db: &sqlx::PgPool) -> (usize, usize) {
    let (received, queued, waiting, parked): (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>) =
        sqlx::query_as(
            "select array(select id from conversions where status = 'received' order by id),
                    array(select conversion_id from attribution_queue order by 1),
                    array(select id from conversions where status = 'waiting' order by id),
                    array(select conversion_id from refunds_waiting order by 1)",
        )
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(
        queued, received,
        "attribution_queue holds the received conversions"
    );
    assert_eq!(parked, waiting, "refunds_waiting holds the waiting refunds");
    (queued.len(), parked.len())
}

#[tokio::test]
async fn upgrading_moves_the_queued_and_waiting_conversions_into_their_tables() {
    // A database as the release before the queue moved out of
    // `conversions` left it: two conversions queued, a refund waiting for
    // its sale, a sale decided.
    let (_db, url) = fresh_empty_database().await;
    let db = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    mitra::db::MIGRATOR
        .run_to(20261202020001, &db)
        .await
        .unwrap();
    sqlx::query(
        "insert into conversions
             (program_id, idempotency_key, order_id, event, amount_minor, currency, occurred_at, status)
         values (1, 'k1', 'A-1', 'sale', 100, 'EUR', now(), 'received'),
                (1, 'k2', 'A-2', 'sale', 100, 'EUR', now(), 'attributed'),
                (1, 'k3', 'A-3', 'refund', 100, 'EUR', now(), 'waiting'),
                (1, 'k4', 'A-4', 'refund', 100, 'EUR', now(), 'received')",
    )
    .execute(&db)
    .await
    .unwrap();
    mitra::db::migrate(&db).await.unwrap();
    assert_eq!(queues(&db).await, (2, 1));
    let fillfactor: Vec<String> =
        sqlx::query_scalar("select unnest(reloptions) from pg_class where relname = 'conversions'")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(fillfactor, ["fillfactor=45"]);
    db.close().await;
}

#[tokio::test]
async fn a_conversion_an_older_binary_writes_is_queued_and_booked() {
    // During a rolling deploy, an API process from before the queue moved
    // out of `conversions` still inserts conversions its own way.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, MINUTE);
    sqlx::query(
        "insert into conversions
             (program_id, idempotency_key, order_id, event, amount_minor, currency, click_id, occurred_at)
         values ($1, 'old-binary:O-1', 'O-1', 'sale', 20000, 'EUR', $2, now())",
    )
    .bind(mitra::domain::ProgramId::parse(s(&f.program["id"])).unwrap().get())
    .bind(&click)
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(queues(&app.db).await, (1, 0));
    app.attribute().await;
    assert_eq!(queues(&app.db).await, (0, 0));
    let c = app.conversion(&f.program, "O-1").await;
    assert_eq!(c["status"], "attributed");
    assert_eq!(
        commissions(&c),
        vec![(s(&f.partner["id"]).to_owned(), 2000, "pending".into())]
    );
}

/// Posts `n` sales through the fixture's link at once (orders
/// `{prefix}-0`...), each accepted.
async fn post_clicked_sales(app: &TestApp, f: &Fixture, prefix: &str, n: i64) {
    let posts = (0..n).map(|i| {
        let body = sale(
            &format!("{prefix}-{i}"),
            1_000 + i,
            &app.click_id_ago(&f.link, MINUTE),
        );
        async move { app.post_conversion(&f.program, &body).await.status() }
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::ACCEPTED));
}

/// Postgres locks every row an UPDATE touches before it runs a table's
/// BEFORE ROW UPDATE triggers, whatever their column lists and WHEN clauses
/// decide: a tuple lock and its WAL record for each outcome (and each
/// commission's approval) that no guard needs. The key guards are AFTER
/// triggers (their refusals are tested in
/// `lifecycle::money_rows_refer_to_rows_that_exist_and_those_are_never_deleted`).
#[tokio::test]
async fn no_before_row_update_trigger_locks_the_booked_rows() {
    let app = spawn_app().await;
    // tgtype bits: 1 row, 2 before, 16 update.
    let before_row_update: Vec<String> = sqlx::query_scalar(
        "select tgrelid::regclass::text || '.' || tgname from pg_trigger
         where tgrelid in ('conversions'::regclass, 'commissions'::regclass)
           and not tgisinternal and tgtype & 19 = 19
         order by 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(before_row_update, Vec::<String>::new());
}

#[tokio::test]
async fn the_outcome_of_a_booked_sale_is_a_hot_update() {
    // A HOT update keeps the new version on its page and enters it in no
    // index: it needs room on the page (the table's fillfactor) and no
    // index over a column the outcome sets (the queue apart from
    // `conversions`). Postgres counts both kinds per table.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let n = 60;
    post_clicked_sales(&app, &f, "H", n).await;
    app.attribute().await;
    // Each backend reports its counts to the statistics within a second of
    // going idle.
    let counts = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "select n_tup_upd, n_tup_hot_upd from pg_stat_user_tables where relname = 'conversions'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    eventually(
        std::time::Duration::from_secs(20),
        "the statistics had not counted every outcome after 20 s",
        || async { counts().await.0 >= n },
    )
    .await;
    let (updated, hot) = counts().await;
    assert_eq!(updated, n, "one outcome per sale");
    assert_eq!(hot, n, "every outcome a HOT update");
}

#[tokio::test]
async fn concurrent_workers_book_each_conversion_exactly_once() {
    let app = spawn_app_with(Roles::API, &[("MITRA_ATTRIBUTION_BATCH", "20")]).await;
    let f = fixture(&app, json!({})).await;
    let n = 200;
    post_clicked_sales(&app, &f, "X", n).await;
    let workers: Vec<_> = (0..4).map(|_| app.attributor()).collect();
    let runs = workers
        .iter()
        .map(|w| async move { while w.step().await.unwrap() != mitra::background::Step::Idle {} });
    futures::future::join_all(runs).await;
    let (conversions, commissions, entries): (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from conversions where status = 'attributed'),
                (select count(*) from commissions), (select count(*) from ledger_entries)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((conversions, commissions, entries), (n, n, n));
}

#[tokio::test]
async fn a_webhook_answers_503_when_postgres_is_down() {
    let app = spawn_app_with(
        Roles::API,
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")],
    )
    .await;
    let program = json!({"id": "prg_1", "webhook_secret": "whsec_x"});
    let body = json!({"order_id": "A", "event": "sale", "amount_minor": 1, "currency": "EUR"});
    let res = app.post_conversion(&program, &body).await;
    assert_eq!(res.headers()["retry-after"], "5");
    assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
}

#[tokio::test]
async fn a_rolled_secret_keeps_the_old_one_verifying_for_the_grace_period() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let path = format!("/v1/programs/{}/webhook-secrets", s(&f.program["id"]));
    let rolled = assert_status(
        app.post(&path, s(&f.program["api_key"]), &json!({"grace_hours": 1}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let new_secret = s(&rolled["webhook_secret"]).to_owned();
    assert_ne!(new_secret, s(&f.program["webhook_secret"]));
    let click = app.click_id_ago(&f.link, MINUTE);
    // The old secret still verifies...
    assert_status(
        app.post_conversion(&f.program, &sale("K-1", 100, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    // ...and so does the new one.
    let with_new = json!({"id": f.program["id"], "webhook_secret": new_secret});
    assert_status(
        app.post_conversion(&with_new, &sale("K-2", 100, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    // Rolled with no grace, the old secrets stop at once.
    assert_status(
        app.post(&path, &app.admin_token, &json!({"grace_hours": 0}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_problem(
        app.post_conversion(&with_new, &sale("K-3", 100, &click))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Another program cannot roll this one's secret.
    let other = app.create_program().await;
    assert_problem(
        app.post(&path, s(&other["api_key"]), &json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn another_programs_key_cannot_read_its_conversions() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let other = app.create_program().await;
    assert_status(
        app.post_conversion(
            &f.program,
            &sale("P-1", 100, &app.click_id_ago(&f.link, MINUTE)),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let path = format!("/v1/programs/{}/conversions/P-1", s(&f.program["id"]));
    assert_problem(
        app.get(&path, s(&other["api_key"])).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.get(&path, s(&f.partner["api_key"])).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_status(
        app.get(&path, s(&f.program["api_key"])).await,
        StatusCode::OK,
    )
    .await;
    let missing = format!("/v1/programs/{}/conversions/NOPE", s(&f.program["id"]));
    assert_problem(
        app.get(&missing, &app.admin_token).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn refunds_whose_sale_another_worker_holds_wait_instead_of_spinning() {
    use mitra::background::Step;
    let app = spawn_app_with(Roles::API, &[("MITRA_ATTRIBUTION_BATCH", "1")]).await;
    let f = fixture(&app, json!({})).await;
    let res = app
        .post_conversion(
            &f.program,
            &sale("H-1", 10_000, &app.click_id_ago(&f.link, MINUTE)),
        )
        .await;
    assert_status(res, StatusCode::ACCEPTED).await;
    app.attribute().await;
    let refund = json!({"order_id": "H-1", "event": "refund", "amount_minor": 1_000,
                        "currency": "EUR", "event_id": "r-1"});
    let res = app.post_conversion(&f.program, &refund).await;
    assert_status(res, StatusCode::ACCEPTED).await;
    // Another worker holds the sale: its row locked in a transaction.
    let mut holder = app.db.begin().await.unwrap();
    sqlx::query("select id from conversions where order_id = 'H-1' and event = 'sale' for update")
        .execute(&mut *holder)
        .await
        .unwrap();
    let worker = app.attributor();
    assert_eq!(
        worker.step().await.unwrap(),
        Step::Drained,
        "a full batch that could do nothing waits before claiming again"
    );
    let waiting: String =
        sqlx::query_scalar("select status from conversions where event = 'refund'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(waiting, "received", "the refund is claimed again later");
    holder.rollback().await.unwrap();
    while worker.step().await.unwrap() != Step::Idle {}
    let (status, refunded): (String, i64) = sqlx::query_as(
        "select r.status, s.refunded_minor from conversions r, conversions s
         where r.event = 'refund' and s.event = 'sale'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_ne!(status, "received");
    assert_eq!(refunded, 1_000);
}

/// Waits up to `within` for the order's sale to be booked.
async fn booked_within(app: &TestApp, program: &Value, order: &str, within: std::time::Duration) {
    let what = format!("{order} not booked within {within:?}");
    eventually(within, &what, || async {
        app.conversion(program, order).await["status"] == "attributed"
    })
    .await;
}

/// The backend of the process's wake-up listener, once it listens.
async fn listener_backend(app: &TestApp, besides: Option<i32>) -> i32 {
    for _ in 0..200 {
        let pid: Option<i32> = sqlx::query_scalar(
            "select pid from pg_stat_activity
             where datname = current_database() and query ilike 'listen %' and pid <> coalesce($1, 0)",
        )
        .bind(besides)
        .fetch_optional(&app.db)
        .await
        .unwrap();
        if let Some(pid) = pid {
            return pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no wake-up listener");
}

#[tokio::test]
async fn an_idle_worker_books_a_sale_at_once_not_at_its_next_poll() {
    // Arrange: workers that poll once a minute: only a wake-up books a sale
    // within seconds.
    let app = spawn_app_with(Roles::ALL, &[("MITRA_WORKER_POLL_MS", "60000")]).await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, MINUTE);
    let listener = listener_backend(&app, None).await;
    // The loops' first steps found nothing; they idle now.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let within = std::time::Duration::from_secs(5);

    // Act and assert: a sale is booked at once ...
    assert_status(
        app.post_conversion(&f.program, &sale("W-1", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    booked_within(&app, &f.program, "W-1", within).await;
    // ... and so is the next, after the listener's connection was cut and
    // made again.
    cut(&app, listener).await;
    listener_backend(&app, Some(listener)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_status(
        app.post_conversion(&f.program, &sale("W-2", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    booked_within(&app, &f.program, "W-2", within).await;
}
