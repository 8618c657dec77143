//! Every error, the framework's own included, is problem+json with the right status.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app().await;
    let res = app.get("/v1/nothing-here", &app.admin_token).await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_with_allow() {
    let app = spawn_app().await;
    let res = app
        .request(Method::DELETE, "/v1/programs", Some(&app.admin_token), None)
        .await;
    let allow = res
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
    assert!(allow.unwrap_or_default().contains("POST"));
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = spawn_app().await;
    for body in [
        "{",
        "[]",
        r#"{"name": 5}"#,
        r#"{"name":"x","email":"a@b.co","extra":1}"#,
        "",
    ] {
        let res = app
            .client
            .post(app.url("/v1/partners"))
            .bearer_auth(&app.admin_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(res, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn a_body_or_a_struct_in_it_sent_as_an_array_is_a_400_problem() {
    // Serde fills a struct from an array by position: `[]` paid out with
    // the defaults, `[["ptn_1", 10000]]` named a partner.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let program = s(&f.program["id"]);
    let res = app
        .post(
            &format!("/v1/programs/{program}/payouts"),
            &app.admin_token,
            &json!([]),
        )
        .await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
    let res = app
        .post(
            &format!("/v1/programs/{program}/agreements"),
            &app.admin_token,
            &json!({"partners": [[s(&f.partner["id"]), 10000]]}),
        )
        .await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn an_optional_body_of_whitespace_is_a_400_problem_not_the_defaults() {
    // Only no body at all means the defaults; whitespace is a body, and
    // not JSON.
    let app = spawn_app().await;
    let program = app.create_program().await;
    let res = app
        .client
        .post(app.url(&format!("/v1/programs/{}/payouts", s(&program["id"]))))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .body("\t")
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_that_integer() {
    // JSON Schema, and so the document, counts 7.0 as the integer 7.
    let app = spawn_app().await;
    let program = app
        .create_program_with(json!({"hold_days": 7.0, "attribution_window_days": 3e1}))
        .await;
    assert_eq!(program["hold_days"], 7);
    assert_eq!(program["attribution_window_days"], 30);
    let res = app
        .post(
            &format!("/v1/programs/{}/payouts", s(&program["id"])),
            &app.admin_token,
            &json!({"min_amount_minor": 7.5}),
        )
        .await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415_problem() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/v1/partners"))
        .bearer_auth(&app.admin_token)
        .header("content-type", "text/plain")
        .body(r#"{"name":"x","email":"a@b.co"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_problem() {
    let app = spawn_app().await;
    let big = json!({"name": "x".repeat(70 * 1024), "email": "a@b.co"});
    let res = app.post("/v1/partners", &app.admin_token, &big).await;
    assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn missing_or_unknown_credentials_are_401_problems() {
    let app = spawn_app().await;
    let res = app.request(Method::GET, "/v1/programs", None, None).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_problem(res, StatusCode::UNAUTHORIZED).await;
    for token in [
        "nope",
        "mitra_prg_forged",
        "mitra_ptn_forged",
        &format!("{}x", app.admin_token),
    ] {
        let res = app.get("/v1/programs", token).await;
        assert_problem(res, StatusCode::UNAUTHORIZED).await;
    }
    let res = app
        .client
        .get(app.url("/v1/programs"))
        .header("authorization", format!("Basic {}", app.admin_token))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_malformed_id_in_the_path_is_a_404_problem() {
    let app = spawn_app().await;
    for path in [
        "/v1/programs/123",
        "/v1/programs/ptn_1",
        "/v1/programs/prg_0",
        "/v1/agreements/agr_!",
        "/v1/links/lnk_",
    ] {
        let res = app.get(path, &app.admin_token).await;
        assert_problem(res, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn a_bad_query_string_is_a_400_problem() {
    let app = spawn_app().await;
    for q in [
        "limit=0",
        "limit=abc",
        "limit=100000",
        "cursor=%%%",
        "cursor=0",
        "unknown=1",
    ] {
        let res = app
            .get(&format!("/v1/programs?{q}"), &app.admin_token)
            .await;
        assert_problem(res, StatusCode::BAD_REQUEST).await;
    }
}
