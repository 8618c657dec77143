//! Inputs an outside reviewer tried against a release build, each once
//! answered wrongly: every test here failed before its fix.

use crate::helpers::*;
use mitra::startup::Roles;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const MINUTE: chrono::Duration = chrono::Duration::minutes(1);

#[tokio::test]
async fn a_made_up_method_never_becomes_a_metrics_label() {
    let app = spawn_app().await;
    let methods = ["BREW", "WHEN", "PROPFIND", "X-7d3f9a", "GETT"];
    for m in methods {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        for path in ["/v1/programs", "/l/abc", "/nowhere"] {
            let res = app
                .client
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            assert!(
                res.status().is_client_error(),
                "{m} {path}: {}",
                res.status()
            );
        }
    }
    let text = app.metrics().await;
    for m in methods {
        assert!(
            !text.contains(&format!("method=\"{m}\"")),
            "{m} became a label"
        );
    }
    assert_eq!(
        metric(
            &text,
            r#"mitra_http_requests_total{method="OTHER",route="/l/{code}",status="405"}"#
        ),
        5.0
    );
}

/// A program with one approved commission of 1,000 waiting for a payout.
async fn program_with_approved_commission(app: &TestApp) -> (Value, Value) {
    let program = app.create_program_with(json!({"hold_days": 0})).await;
    let partner = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&partner, 10000)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    let click = app.click_id_ago(&link, MINUTE);
    assert_status(
        app.post_conversion(&program, &sale("P-1", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let worker = app.workers.lifecycle();
    while worker.step().await.unwrap() != mitra::background::Step::Idle {}
    (program, partner)
}

async fn approved_balance(app: &TestApp, partner: &Value) -> i64 {
    let path = format!("/v1/partners/{}/balance", s(&partner["id"]));
    let b = assert_status(app.get(&path, &app.admin_token).await, StatusCode::OK).await;
    b["balances"][0]["approved_minor"].as_i64().unwrap()
}

#[tokio::test]
async fn an_optional_body_that_does_not_parse_is_refused_not_read_as_defaults() {
    let app = spawn_app().await;
    let (program, partner) = program_with_approved_commission(&app).await;
    let path = format!("/v1/programs/{}/payouts", s(&program["id"]));
    // A form instead of JSON, and a number sent as a string: neither may pay with a minimum of 1.
    let form = app
        .client
        .post(app.url(&path))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("min_amount_minor=500000")
        .send()
        .await
        .unwrap();
    assert_problem(form, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let stringly = app
        .post(
            &path,
            &app.admin_token,
            &json!({"min_amount_minor": "500000"}),
        )
        .await;
    assert_problem(stringly, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        approved_balance(&app, &partner).await,
        1_000,
        "nothing was paid"
    );
    // An empty body still means the defaults.
    let empty = app
        .client
        .post(app.url(&path))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    let payout = assert_status(empty, StatusCode::CREATED).await;
    assert_eq!(payout["items"][0]["amount_minor"], 1_000);

    // A secret roll with a bad grace period does not roll.
    let roll = format!("/v1/programs/{}/webhook-secrets", s(&program["id"]));
    let bad = app
        .post(&roll, &app.admin_token, &json!({"grace_hours": "1"}))
        .await;
    assert_problem(bad, StatusCode::BAD_REQUEST).await;
    let secrets: i64 = sqlx::query_scalar("select count(*) from webhook_secrets")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(secrets, 1);
}

#[tokio::test]
async fn a_body_that_trickles_in_is_answered_408_at_the_deadline() {
    let app = spawn_app_with(Roles::API, &[("MITRA_BODY_TIMEOUT_MS", "400")]).await;
    let program = app.create_program().await;
    for path in [
        format!("/v1/programs/{}/conversions", s(&program["id"])),
        "/v1/partners".to_owned(),
    ] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
            .await
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"order",
            app.admin_token
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let read = async {
            loop {
                // One more byte every 100 ms: never enough, never silent.
                let _ = stream.write_all(b" ").await;
                let mut buf = [0u8; 1024];
                tokio::select! {
                    n = stream.read(&mut buf) => {
                        let n = n.unwrap_or(0);
                        answer.extend_from_slice(&buf[..n]);
                        if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") { break; }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("answered");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            started.elapsed() >= Duration::from_millis(350),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn forwarded_for_sent_as_two_lines_is_read_as_one_list() {
    let app = spawn_app_with(Roles::API, &[("MITRA_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let f = fixture(&app, json!({})).await;
    // The client wrote the first line; the trusted proxy appended the second.
    app.client
        .get(app.url(&TestApp::link_path(&f.link)))
        .header("user-agent", BROWSER)
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let events = app.click_events().await;
    let real: std::net::IpAddr = "203.0.113.9".parse().unwrap();
    assert_eq!(
        events[0].ip_hash,
        app.state.ip_hasher.hash(Some(real)).as_str()
    );
}

#[tokio::test]
async fn another_program_posting_our_click_id_changes_nothing_for_us() {
    let app = spawn_app().await;
    let ours = fixture(&app, json!({})).await;
    let theirs = app.create_program().await;
    let click = app.click_id_ago(&ours.link, MINUTE);
    // Another merchant posts our click id: a lead and four sales.
    let lead = |order: &str| json!({"order_id": order, "event": "lead", "click_id": click});
    assert_status(
        app.post_conversion(&theirs, &lead("T-lead")).await,
        StatusCode::ACCEPTED,
    )
    .await;
    for i in 0..4 {
        let body = sale(&format!("T-{i}"), 1_000, &click);
        assert_status(
            app.post_conversion(&theirs, &body).await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    app.attribute().await;
    assert_eq!(
        app.conversion(&theirs, "T-lead").await["reason"],
        "invalid_click"
    );
    // Our genuine lead and sale.
    assert_status(
        app.post_conversion(&ours.program, &lead("O-lead")).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_status(
        app.post_conversion(&ours.program, &sale("O-1", 1_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let our_lead = app.conversion(&ours.program, "O-lead").await;
    assert_eq!(
        (&our_lead["status"], &our_lead["reason"]),
        (&json!("attributed"), &Value::Null)
    );
    let our_sale = app.conversion(&ours.program, "O-1").await;
    assert_eq!(our_sale["fraud_reasons"], json!([]));
}

#[tokio::test]
async fn a_caller_without_the_right_is_told_so_before_anything_about_its_body() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let partner = app.create_partner("Ayu").await;
    let garbage = |path: &str, token: &str| {
        app.client
            .post(app.url(path))
            .bearer_auth(token.to_owned())
            .header("content-type", "text/plain")
            .body("{not json")
            .send()
    };
    let key = s(&partner["api_key"]);
    assert_problem(
        garbage("/v1/programs", key).await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_problem(
        garbage("/v1/partners", key).await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let agreements = format!("/v1/programs/{}/agreements", s(&program["id"]));
    assert_problem(
        garbage(&agreements, key).await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let payouts = format!("/v1/programs/{}/payouts", s(&program["id"]));
    assert_problem(garbage(&payouts, key).await.unwrap(), StatusCode::NOT_FOUND).await;
    // The admin sending the same is told what is wrong with it.
    assert_problem(
        garbage("/v1/programs", &app.admin_token).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
}

#[tokio::test]
async fn a_refund_after_a_rejected_share_takes_only_from_the_live_commission() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let (ayu, budi) = (
        app.create_partner("Ayu").await,
        app.create_partner("Budi").await,
    );
    let agreement = app
        .create_agreement(&program, &[(&ayu, 5000), (&budi, 5000)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    let click = app.click_id_ago(&link, MINUTE);
    assert_status(
        app.post_conversion(&program, &sale("S-1", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let budi_commission = app.order(&program, "S-1").await.of(&budi).id.clone();
    let reject = format!("/v1/commissions/{budi_commission}/reject");
    let res = app
        .post(
            &reject,
            &app.admin_token,
            &json!({"reason": "self-referral"}),
        )
        .await;
    assert_status(res, StatusCode::OK).await;
    let refund =
        json!({"order_id": "S-1", "event": "refund", "amount_minor": 5_000, "currency": "EUR"});
    assert_status(
        app.post_conversion(&program, &refund).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let order = app.order(&program, "S-1").await;
    assert_eq!(
        (order.of(&ayu).amount_minor, order.of(&ayu).status.as_str()),
        (250, "pending")
    );
    assert_eq!(
        (
            order.of(&budi).amount_minor,
            order.of(&budi).status.as_str()
        ),
        (0, "reversed")
    );
}

#[tokio::test]
async fn a_lead_needs_no_amount_or_currency() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, MINUTE);
    let lead = json!({"order_id": "L-1", "event": "lead", "click_id": click});
    assert_status(
        app.post_conversion(&f.program, &lead).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let c = app.conversion(&f.program, "L-1").await;
    assert_eq!(
        (&c["amount_minor"], &c["currency"]),
        (&json!(0), &json!("EUR"))
    );
    assert_eq!(c["commissions"][0]["amount_minor"], 200);
    // A sale still needs both.
    let bare = json!({"order_id": "S-1", "event": "sale", "click_id": click});
    let problem = assert_problem(
        app.post_conversion(&f.program, &bare).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(invalid_fields(&problem), vec!["amount_minor", "currency"]);
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own_and_leave_the_public_port() {
    let app = spawn_app_with(Roles::ALL, &[("MITRA_METRICS_LISTEN", "127.0.0.1:0")]).await;
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_problem(public, StatusCode::NOT_FOUND).await;
    let port = app.metrics_port.expect("a metrics port");
    assert_ne!(port, app.port);
    let private = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    let text = assert_status(private, StatusCode::OK).await;
    assert!(s(&text).contains("mitra_build_info"), "{text}");
    // Only metrics there.
    let other = app
        .client
        .get(format!("http://127.0.0.1:{port}/v1/programs"))
        .send()
        .await
        .unwrap();
    assert_problem(other, StatusCode::NOT_FOUND).await;
    // Health stays on the main port for the probes.
    assert_status(
        app.client.get(app.url("/healthz")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    app.stop().await;
}
