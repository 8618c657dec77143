use crate::helpers::*;
use mitra::startup::Roles;
use reqwest::StatusCode;

#[tokio::test]
async fn healthz_answers_while_the_process_runs() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_ok_when_postgres_and_redis_answer() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    let body = assert_status(res, StatusCode::OK).await;
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[tokio::test]
async fn readyz_is_503_when_postgres_is_down() {
    let app = spawn_app_with(
        Roles::API,
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")],
    )
    .await;
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    let body = assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["checks"]["postgres"], "down");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[tokio::test]
async fn readyz_is_503_when_redis_is_down() {
    let app = spawn_app_with(Roles::API, &[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    let body = assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "down");
}

#[tokio::test]
async fn an_api_call_answers_503_when_postgres_is_down() {
    let app = spawn_app_with(
        Roles::API,
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")],
    )
    .await;
    let res = app.get("/v1/programs/prg_1", "mitra_prg_whatever").await;
    let body = assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        !body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_label_requests_by_route_pattern_not_raw_path() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let path = format!("/v1/programs/{}", s(&program["id"]));
    app.get(&path, &app.admin_token).await;
    app.get("/no/such/thing", &app.admin_token).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"mitra_http_requests_total{method="GET",route="/v1/programs/{id}",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(
        !text.contains(s(&program["id"])),
        "a raw id leaked into labels"
    );
    assert!(!text.contains("/no/such/thing"));
    assert!(text.contains("mitra_http_request_duration_seconds_bucket"));
    assert!(text.contains("process_resident_memory_bytes"));
    assert!(text.contains("mitra_build_info"));
}

#[tokio::test]
async fn a_worker_only_process_serves_health_and_metrics_but_not_the_api() {
    let app = spawn_app_with(Roles::WORKER, &[]).await;
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.get("/v1/programs", &app.admin_token).await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
}
