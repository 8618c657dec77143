//! Enrollment: partners join programs by invitation or application, and a
//! program sees and pays only its members.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MINUTE: chrono::Duration = chrono::Duration::minutes(1);
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

async fn post_as(app: &TestApp, path: &str, token: &str, body: Value) -> reqwest::Response {
    app.post(path, token, &body).await
}

fn key(v: &Value) -> &str {
    s(&v["api_key"])
}

#[tokio::test]
async fn a_program_never_sees_a_partner_that_is_not_its_member() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let member = app.create_partner("Ayu").await;
    let stranger = app.create_partner("Budi").await;
    app.enroll(&program, &member).await;

    // Contact details: the member's, never the stranger's.
    let get = |p: &Value| format!("/v1/partners/{}", s(&p["id"]));
    assert_status(app.get(&get(&member), key(&program)).await, StatusCode::OK).await;
    assert_problem(
        app.get(&get(&stranger), key(&program)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let list = assert_status(app.get("/v1/partners", key(&program)).await, StatusCode::OK).await;
    let ids: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, vec![&member["id"]]);

    // An agreement may not name it, not even with a 0 bps share, and the
    // answer is the same as for an id nobody has.
    let path = format!("/v1/programs/{}/agreements", s(&program["id"]));
    let answer = |partner_id: Value| {
        json!({"partners": [
            {"partner_id": member["id"], "share_bps": 10000},
            {"partner_id": partner_id, "share_bps": 0}
        ]})
    };
    let real = assert_problem(
        post_as(&app, &path, key(&program), answer(stranger["id"].clone())).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let made_up = assert_problem(
        post_as(&app, &path, key(&program), answer(json!("ptn_zzzzzz"))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(real["errors"], made_up["errors"]);
    assert_eq!(
        real["errors"][0]["message"],
        "is not an active partner of this program"
    );
    // And still nothing to read.
    assert_problem(
        app.get(&get(&stranger), key(&program)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn inviting_a_partner_nobody_has_is_an_invalid_field_not_a_missing_program() {
    // The path names the program, which is there; the body names the
    // partner. A 404 would say the program was not found.
    let app = spawn_app().await;
    let program = app.create_program().await;
    let path = format!("/v1/programs/{}/enrollments", s(&program["id"]));
    let problem = assert_problem(
        post_as(
            &app,
            &path,
            key(&program),
            json!({"partner_id": "ptn_zzzz"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "partner_id");
    assert_eq!(problem["errors"][0]["message"], "no such partner");
}

#[tokio::test]
async fn an_invited_partner_is_named_to_the_program_only_once_it_accepts() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let path = format!("/v1/programs/{}/enrollments", s(&program["id"]));
    let invited = assert_status(
        post_as(
            &app,
            &path,
            key(&program),
            json!({"partner_id": ayu["id"], "note": "Welcome!"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(invited["status"], "invited");
    assert_eq!(invited["partner_name"], Value::Null);
    assert!(
        s(&invited["accept_url"]).contains("/portal/invitations/"),
        "{invited}"
    );

    // The partner sees it, with the program's name and note.
    let mine = format!("/v1/partners/{}/enrollments", s(&ayu["id"]));
    let list = assert_status(app.get(&mine, key(&ayu)).await, StatusCode::OK).await;
    assert_eq!(list["data"][0]["program_name"], "Batik Shop");
    assert_eq!(list["data"][0]["note"], "Welcome!");

    // Only the partner accepts: the program cannot accept for it.
    let accept = format!("/v1/enrollments/{}/accept", s(&invited["id"]));
    assert_problem(
        app.request(Method::POST, &accept, Some(key(&program)), None)
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let active = assert_status(
        app.request(Method::POST, &accept, Some(key(&ayu)), None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(active["status"], "active");
    let seen = assert_status(
        app.get(
            &format!("/v1/enrollments/{}", s(&invited["id"])),
            key(&program),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["partner_name"], "Ayu");
    let moves: Vec<(&Value, &Value)> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["to_status"], &e["actor"]))
        .collect();
    assert_eq!(
        moves,
        vec![
            (&json!("invited"), &program["id"]),
            (&json!("active"), &ayu["id"])
        ]
    );

    // Another program, and another partner, are told it does not exist.
    let other = app.create_program().await;
    let budi = app.create_partner("Budi").await;
    let one = format!("/v1/enrollments/{}", s(&invited["id"]));
    assert_problem(app.get(&one, key(&other)).await, StatusCode::NOT_FOUND).await;
    assert_problem(app.get(&one, key(&budi)).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn an_invitation_by_e_mail_is_taken_by_its_link() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let path = format!("/v1/programs/{}/enrollments", s(&program["id"]));
    let invited = assert_status(
        post_as(
            &app,
            &path,
            key(&program),
            json!({"email": "Ayu@Example.com"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (&invited["partner_id"], &invited["email"]),
        (&Value::Null, &json!("Ayu@Example.com"))
    );
    let token = s(&invited["accept_url"])
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // The partner signs up later with that address and finds the invitation.
    let ayu = app.create_partner("Ayu").await;
    let mine = format!("/v1/partners/{}/enrollments?status=invited", s(&ayu["id"]));
    let list = assert_status(app.get(&mine, key(&ayu)).await, StatusCode::OK).await;
    assert_eq!(list["data"][0]["id"], invited["id"]);
    // A made-up token names nothing; the real one makes it the partner's.
    let bad = app
        .request(
            Method::POST,
            "/v1/invitations/not-a-token/accept",
            Some(key(&ayu)),
            None,
        )
        .await;
    assert_problem(bad, StatusCode::NOT_FOUND).await;
    let accepted = assert_status(
        app.request(
            Method::POST,
            &format!("/v1/invitations/{token}/accept"),
            Some(key(&ayu)),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&accepted["status"], &accepted["partner_id"]),
        (&json!("active"), &ayu["id"])
    );
    // Used once: the link does not work again.
    let again = app
        .request(
            Method::POST,
            &format!("/v1/invitations/{token}/accept"),
            Some(key(&ayu)),
            None,
        )
        .await;
    assert_problem(again, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_partner_applies_to_a_public_program_and_is_rejected_then_approved() {
    let app = spawn_app().await;
    let hidden = app.create_program().await;
    let listed = app
        .create_program_with(json!({"public": true, "description": "Batik for everyone", "reapply_cooldown_days": 0}))
        .await;
    let ayu = app.create_partner("Ayu").await;
    let apply = |p: &Value| format!("/v1/programs/{}/applications", s(&p["id"]));

    // Only public programs are listed and take applications.
    let public = assert_status(
        app.get("/v1/public-programs", key(&ayu)).await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<&Value> = public["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, vec![&listed["id"]]);
    assert_problem(
        post_as(&app, &apply(&hidden), key(&ayu), json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let applied = assert_status(
        post_as(
            &app,
            &apply(&listed),
            key(&ayu),
            json!({"note": "I run a batik blog"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(applied["status"], "applied");
    let queue = format!(
        "/v1/programs/{}/enrollments?status=applied",
        s(&listed["id"])
    );
    let queue = assert_status(app.get(&queue, key(&listed)).await, StatusCode::OK).await;
    assert_eq!(queue["data"][0]["partner_name"], "Ayu");
    assert_eq!(queue["data"][0]["application_note"], "I run a batik blog");

    // A partner cannot approve itself; a rejection needs a reason.
    let decide = |what: &str| format!("/v1/enrollments/{}/{what}", s(&applied["id"]));
    assert_problem(
        post_as(&app, &decide("approve"), key(&ayu), json!({})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let problem = assert_problem(
        post_as(&app, &decide("reject"), key(&listed), json!({"note": "no"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(invalid_fields(&problem), vec!["reason_code"]);
    let rejected = assert_status(
        post_as(
            &app,
            &decide("reject"),
            key(&listed),
            json!({"reason_code": "not_a_fit", "note": "We sell to B2B only"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&rejected["reason_code"], &rejected["note"]),
        (&json!("not_a_fit"), &json!("We sell to B2B only"))
    );
    // With no cooldown, it may apply again at once; then it is approved.
    assert_status(
        post_as(&app, &apply(&listed), key(&ayu), json!({})).await,
        StatusCode::CREATED,
    )
    .await;
    let active = assert_status(
        post_as(&app, &decide("approve"), key(&listed), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(active["status"], "active");
}

#[tokio::test]
async fn a_rejected_partner_waits_for_the_cooldown_before_applying_again() {
    let app = spawn_app().await;
    let listed = app.create_program_with(json!({"public": true})).await;
    let ayu = app.create_partner("Ayu").await;
    let apply = format!("/v1/programs/{}/applications", s(&listed["id"]));
    let applied = assert_status(
        post_as(&app, &apply, key(&ayu), json!({})).await,
        StatusCode::CREATED,
    )
    .await;
    let reject = format!("/v1/enrollments/{}/reject", s(&applied["id"]));
    let rejected = assert_status(
        post_as(
            &app,
            &reject,
            key(&listed),
            json!({"reason_code": "incomplete_profile"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(rejected["reapply_after"].is_string());
    let problem = assert_problem(
        post_as(&app, &apply, key(&ayu), json!({})).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        s(&problem["detail"]).starts_with("the partner may apply again from"),
        "{problem}"
    );
}

async fn sale_for(app: &TestApp, program: &Value, link: &Value, order: &str) -> Value {
    let click = app.click_id_ago(link, MINUTE);
    assert_status(
        app.post_conversion(program, &sale(order, 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    app.conversion(program, order).await
}

#[tokio::test]
async fn a_deactivated_partner_keeps_what_it_earned_and_earns_nothing_new() {
    let app = spawn_app().await;
    let program = app.create_program_with(json!({"hold_days": 0})).await;
    let ayu = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&ayu, 10000)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    let before = sale_for(&app, &program, &link, "B-1").await;
    assert_eq!(before["commissions"][0]["amount_minor"], 1_000);

    let membership = app
        .get(
            &format!("/v1/partners/{}/enrollments", s(&ayu["id"])),
            key(&ayu),
        )
        .await;
    let membership = assert_status(membership, StatusCode::OK).await;
    let deactivate = format!(
        "/v1/enrollments/{}/deactivate",
        s(&membership["data"][0]["id"])
    );
    assert_status(
        post_as(
            &app,
            &deactivate,
            key(&program),
            json!({"reason_code": "inactive"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    // No contact details any more; the link stops; a new sale earns nothing.
    let contact = format!("/v1/partners/{}", s(&ayu["id"]));
    assert_problem(
        app.get(&contact, key(&program)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.state.link_cache.clear();
    let res = app
        .client
        .get(app.url(&TestApp::link_path(&link)))
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    sale_for(&app, &program, &link, "B-2").await;
    let after = app.order(&program, "B-2").await;
    assert_eq!(
        (after.status.as_str(), after.reason.as_deref()),
        ("unattributed", Some("partner_inactive"))
    );
    assert_eq!(after.commissions, vec![]);

    // What it earned before is still approved and paid.
    let worker = app.workers.lifecycle();
    while worker.step().await.unwrap() != mitra::background::Step::Idle {}
    let payout = post_as(
        &app,
        &format!("/v1/programs/{}/payouts", s(&program["id"])),
        key(&program),
        json!({}),
    )
    .await;
    let payout = assert_status(payout, StatusCode::CREATED).await;
    assert_eq!(payout["items"][0]["partner_id"], ayu["id"]);
    assert_eq!(payout["items"][0]["amount_minor"], 1_000);
}

#[tokio::test]
async fn a_ban_holds_the_partners_pending_commissions_for_review() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&ayu, 10000)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    let c = sale_for(&app, &program, &link, "F-1").await;
    assert_eq!(c["commissions"][0]["review"], false);
    let membership = app
        .get(
            &format!("/v1/partners/{}/enrollments", s(&ayu["id"])),
            key(&ayu),
        )
        .await;
    let membership = assert_status(membership, StatusCode::OK).await;
    let ban = format!("/v1/enrollments/{}/ban", s(&membership["data"][0]["id"]));
    let banned = assert_status(
        post_as(
            &app,
            &ban,
            key(&program),
            json!({"reason_code": "fraud", "note": "cookie stuffing"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(banned["status"], "banned");
    let c = app.conversion(&program, "F-1").await;
    assert_eq!(
        (
            &c["commissions"][0]["status"],
            &c["commissions"][0]["review"]
        ),
        (&json!("pending"), &json!(true))
    );
    // A ban is final: not even an invitation brings it back.
    let invite = format!("/v1/programs/{}/enrollments", s(&program["id"]));
    assert_problem(
        post_as(
            &app,
            &invite,
            key(&program),
            json!({"partner_id": ayu["id"]}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
}
