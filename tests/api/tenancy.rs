//! A key reaches only its own tenant's objects; anything else answers 404.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct World {
    app: TestApp,
    a: Value,
    b: Value,
    ayu: Value,
    budi: Value,
    agreement_a: Value,
    agreement_b: Value,
    link_a: Value,
    link_b: Value,
}

/// Two programs, each with its own partner, agreement and link.
async fn world() -> World {
    let app = spawn_app().await;
    let a = app.create_program().await;
    let b = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    let agreement_a = app.create_agreement(&a, &[(&ayu, 10000)], json!({})).await;
    let agreement_b = app.create_agreement(&b, &[(&budi, 10000)], json!({})).await;
    let link_a = app.create_link(&agreement_a, json!({})).await;
    let link_b = app.create_link(&agreement_b, json!({})).await;
    World {
        app,
        a,
        b,
        ayu,
        budi,
        agreement_a,
        agreement_b,
        link_a,
        link_b,
    }
}

#[tokio::test]
async fn a_program_key_reaches_only_its_own_program() {
    let w = world().await;
    let key = s(&w.a["api_key"]);
    for path in [
        format!("/v1/programs/{}", s(&w.b["id"])),
        format!("/v1/programs/{}/agreements", s(&w.b["id"])),
        format!("/v1/agreements/{}", s(&w.agreement_b["id"])),
        format!("/v1/agreements/{}/versions", s(&w.agreement_b["id"])),
        format!("/v1/agreements/{}/versions/1", s(&w.agreement_b["id"])),
        format!("/v1/links/{}", s(&w.link_b["id"])),
        format!("/v1/partners/{}", s(&w.budi["id"])),
    ] {
        assert_problem(w.app.get(&path, key).await, StatusCode::NOT_FOUND).await;
    }
    // Writes into the other program are 404 too, and change nothing.
    let body = json!({"partners": [{"partner_id": w.ayu["id"], "share_bps": 10000}]});
    let res = w
        .app
        .post(
            &format!("/v1/programs/{}/agreements", s(&w.b["id"])),
            key,
            &body,
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let res = w
        .app
        .put(
            &format!("/v1/agreements/{}", s(&w.agreement_b["id"])),
            key,
            &body,
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let res = w
        .app
        .post(
            "/v1/links",
            key,
            &json!({"agreement_id": w.agreement_b["id"]}),
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let versions: i32 = sqlx::query_scalar("select max(current_version) from agreements")
        .fetch_one(&w.app.db)
        .await
        .unwrap();
    assert_eq!(versions, 1);

    // Its own objects it reaches, and its lists hold only them.
    assert_status(
        w.app
            .get(&format!("/v1/agreements/{}", s(&w.agreement_a["id"])), key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_status(
        w.app
            .get(&format!("/v1/partners/{}", s(&w.ayu["id"])), key)
            .await,
        StatusCode::OK,
    )
    .await;
    let programs = assert_status(w.app.get("/v1/programs", key).await, StatusCode::OK).await;
    assert_eq!(programs["data"].as_array().unwrap().len(), 1);
    assert_eq!(programs["data"][0]["id"], w.a["id"]);
    let links = assert_status(w.app.get("/v1/links", key).await, StatusCode::OK).await;
    assert_eq!(links["data"].as_array().unwrap().len(), 1);
    assert_eq!(links["data"][0]["id"], w.link_a["id"]);
    let partners = assert_status(w.app.get("/v1/partners", key).await, StatusCode::OK).await;
    assert_eq!(partners["data"].as_array().unwrap().len(), 1);
    assert_eq!(partners["data"][0]["id"], w.ayu["id"]);
}

#[tokio::test]
async fn a_partner_key_reaches_only_its_own_objects() {
    let w = world().await;
    let key = s(&w.ayu["api_key"]);
    for path in [
        format!("/v1/partners/{}", s(&w.budi["id"])),
        format!("/v1/agreements/{}", s(&w.agreement_b["id"])),
        format!("/v1/links/{}", s(&w.link_b["id"])),
        format!("/v1/programs/{}", s(&w.a["id"])),
    ] {
        assert_problem(w.app.get(&path, key).await, StatusCode::NOT_FOUND).await;
    }
    let res = w
        .app
        .post(
            "/v1/links",
            key,
            &json!({"agreement_id": w.agreement_b["id"]}),
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    assert_status(
        w.app
            .get(&format!("/v1/agreements/{}", s(&w.agreement_a["id"])), key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_status(
        w.app
            .get(&format!("/v1/links/{}", s(&w.link_a["id"])), key)
            .await,
        StatusCode::OK,
    )
    .await;
    let links = assert_status(w.app.get("/v1/links", key).await, StatusCode::OK).await;
    assert_eq!(links["data"].as_array().unwrap().len(), 1);
    // A partner cannot change terms, even of its own agreement.
    let body = json!({"partners": [{"partner_id": w.ayu["id"], "share_bps": 10000}]});
    let res = w
        .app
        .put(
            &format!("/v1/agreements/{}", s(&w.agreement_a["id"])),
            key,
            &body,
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn admin_only_actions_are_forbidden_to_other_keys() {
    let w = world().await;
    let program = json!({"name": "X", "currency": "EUR", "landing_domains": ["x.example"],
                         "default_url": "https://x.example/", "commission": {}});
    for key in [s(&w.a["api_key"]), s(&w.ayu["api_key"])] {
        assert_problem(
            w.app.post("/v1/programs", key, &program).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        let partner = json!({"name": "Eve", "email": "eve@example.com"});
        assert_problem(
            w.app.post("/v1/partners", key, &partner).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    assert_problem(
        w.app.get("/v1/programs", s(&w.ayu["api_key"])).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}
