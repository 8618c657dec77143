//! Request ids and JSON logs: every request has an id, every log line of it
//! names it, and a conversion keeps the id of the webhook that brought it.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_callers_id_is_kept() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    for path in ["/healthz", "/v1/nothing", &TestApp::link_path(&f.link)] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap();
        assert!(id.starts_with("req_") && id.len() == 20, "{path}: {id}");
    }
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "shop-7f3a_retry.2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "shop-7f3a_retry.2");
    // Something that is not a plain token is replaced, not echoed.
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "<script>")
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[tokio::test]
async fn a_conversion_keeps_the_request_id_of_its_webhook() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let body = serde_json::to_vec(&sale(
        "T-1",
        1_000,
        &app.click_id_ago(&f.link, chrono::Duration::minutes(1)),
    ))
    .unwrap();
    let header = mitra::conversions::signature::header(
        s(&f.program["webhook_secret"]),
        chrono::Utc::now().timestamp(),
        &body,
    );
    let res = app
        .client
        .post(app.url(&format!("/v1/programs/{}/conversions", s(&f.program["id"]))))
        .header("content-type", "application/json")
        .header("mitra-signature", header)
        .header("x-request-id", "shop-order-T-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_status(res, StatusCode::ACCEPTED).await;
    assert_eq!(
        app.conversion(&f.program, "T-1").await["request_id"],
        "shop-order-T-1"
    );
}

#[tokio::test]
async fn json_log_lines_of_a_request_name_its_id() {
    let (_db, url) = fresh_database().await;
    let admin = "admin-token-tracing-0123456789";
    let server = ServerProcess::start(
        &["serve", "--role", "api"],
        &[
            ("DATABASE_URL", url.to_string()),
            ("REDIS_URL", std::env::var("REDIS_URL").unwrap()),
            ("MITRA_ADMIN_TOKEN", admin.to_owned()),
            (
                "MITRA_LINK_KEYS",
                "1:tracing-test-link-key-0123456".to_owned(),
            ),
            (
                "MITRA_REDIS_PREFIX",
                format!("test:tracing:{}:", std::process::id()),
            ),
        ],
    );
    let res = reqwest::Client::new()
        .post(format!("{}/v1/partners", server.base))
        .bearer_auth(admin)
        .header("x-request-id", "trace-me-42")
        .json(&json!({"name": "Ayu", "email": "ayu@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let mut found = None;
    for _ in 0..50 {
        found = server
            .logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "partner created");
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let line = found.expect("a JSON log line for the new partner");
    assert_eq!(line["span"]["request_id"], "trace-me-42", "{line}");
    assert_eq!(line["level"], "INFO");
    assert!(line["timestamp"].is_string());
}
