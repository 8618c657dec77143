//! GET /v1/reports: figures against hand-computed ones, CSV, and scoping.

use crate::helpers::*;
use chrono::{Duration, Utc};
use mitra::startup::Roles;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

async fn click(app: &TestApp, link: &Value, ua: &str, ip: &str) {
    let res = app
        .client
        .get(app.url(&TestApp::link_path(link)))
        .header("user-agent", ua)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
}

fn today() -> String {
    Utc::now().date_naive().to_string()
}

/// Today's row of a report.
async fn today_row(app: &TestApp, token: &str, query: &str) -> Value {
    let path = format!("/v1/reports?from={}&to={}{query}", today(), today());
    let r = assert_status(app.get(&path, token).await, StatusCode::OK).await;
    assert_eq!(r["data"].as_array().unwrap().len(), 1);
    r["data"][0].clone()
}

struct World {
    app: TestApp,
    program: Value,
    ayu: Value,
    budi: Value,
    ayu_link: Value,
    joint_link: Value,
}

/// Ayu alone on one link; Ayu and Budi 50/50 on another.
/// Clicks: Ayu's link 4 human (3 addresses) + 1 bot; the joint link 2 human.
/// Sales: 200.00 via Ayu's link (commission 20.00), 100.00 via the joint
/// link (10.00, split 5.00 / 5.00), and a lead via Ayu's link (2.00).
async fn world() -> World {
    let app = spawn_app_with(Roles::API, &[("MITRA_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    let ayu_link = app
        .create_link(
            &app.create_agreement(&program, &[(&ayu, 10000)], json!({}))
                .await,
            json!({}),
        )
        .await;
    let joint_link = app
        .create_link(
            &app.create_agreement(&program, &[(&ayu, 5000), (&budi, 5000)], json!({}))
                .await,
            json!({}),
        )
        .await;
    for ip in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.1",
    ] {
        click(&app, &ayu_link, BROWSER, ip).await;
    }
    click(&app, &ayu_link, "Twitterbot/1.0", "198.51.100.9").await;
    for ip in ["198.51.100.4", "198.51.100.5"] {
        click(&app, &joint_link, BROWSER, ip).await;
    }
    app.drain_clicks().await;
    let ago = Duration::minutes(1);
    for (order, amount, link) in [("O-1", 20_000, &ayu_link), ("O-2", 10_000, &joint_link)] {
        let c = app.click_id_ago(link, ago);
        assert_status(
            app.post_conversion(&program, &sale(order, amount, &c))
                .await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    let lead = json!({"order_id": "O-3", "event": "lead", "amount_minor": 0, "currency": "EUR",
                      "click_id": app.click_id_ago(&ayu_link, ago)});
    assert_status(
        app.post_conversion(&program, &lead).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    World {
        app,
        program,
        ayu,
        budi,
        ayu_link,
        joint_link,
    }
}

#[tokio::test]
async fn report_figures_match_hand_computed_ones() {
    let w = world().await;
    let app = &w.app;
    // The program: every click once, every conversion once.
    let row = today_row(app, s(&w.program["api_key"]), "").await;
    assert_eq!(row["day"], today());
    assert_eq!(
        (
            row["clicks"].clone(),
            row["unique_clicks"].clone(),
            row["bot_clicks"].clone()
        ),
        (json!(6), json!(5), json!(1))
    );
    assert_eq!(
        (
            row["conversions"].clone(),
            row["revenue_minor"].clone(),
            row["commission_minor"].clone()
        ),
        (json!(3), json!(30_000), json!(3_200))
    );
    assert_eq!(row["epc_minor"], 533, "3,200 / 6 clicks = 533.3");
    assert_eq!(row["conversion_rate"], 0.5);

    // Ayu sees both links: 6 clicks, 3 conversions, her 20.00 + 5.00 + 2.00.
    let ayu = today_row(app, s(&w.ayu["api_key"]), "").await;
    assert_eq!(
        (
            ayu["clicks"].clone(),
            ayu["conversions"].clone(),
            ayu["commission_minor"].clone()
        ),
        (json!(6), json!(3), json!(2_700))
    );
    assert_eq!(ayu["epc_minor"], 450);
    // Budi only the joint link: 2 clicks, 1 conversion, 5.00.
    let budi = today_row(app, s(&w.budi["api_key"]), "").await;
    assert_eq!(
        (
            budi["clicks"].clone(),
            budi["conversions"].clone(),
            budi["commission_minor"].clone()
        ),
        (json!(2), json!(1), json!(500))
    );
    assert_eq!(
        (
            budi["revenue_minor"].clone(),
            budi["epc_minor"].clone(),
            budi["conversion_rate"].clone()
        ),
        (json!(10_000), json!(250), json!(0.5))
    );

    // One link, as the admin.
    let link = today_row(
        app,
        &app.admin_token,
        &format!("&link_id={}", s(&w.joint_link["id"])),
    )
    .await;
    assert_eq!(
        (
            link["clicks"].clone(),
            link["conversions"].clone(),
            link["commission_minor"].clone()
        ),
        (json!(2), json!(1), json!(1_000))
    );

    // A refund takes its share off the day it sold on.
    let refund =
        json!({"order_id": "O-1", "event": "refund", "amount_minor": 5_000, "currency": "EUR"});
    assert_status(
        app.post_conversion(&w.program, &refund).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let row = today_row(app, s(&w.program["api_key"]), "").await;
    assert_eq!(
        (
            row["revenue_minor"].clone(),
            row["commission_minor"].clone()
        ),
        (json!(25_000), json!(2_700))
    );
    assert_eq!(row["conversions"], 3, "a refund is not a conversion less");
}

#[tokio::test]
async fn a_report_lists_every_day_with_totals_and_as_csv() {
    let w = world().await;
    let app = &w.app;
    let from = (Utc::now() - Duration::days(6)).date_naive().to_string();
    let path = format!("/v1/reports?from={from}&to={}&group_by=day", today());
    let r = assert_status(
        app.get(&path, s(&w.program["api_key"])).await,
        StatusCode::OK,
    )
    .await;
    let rows = r["data"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        7,
        "every day of the period, quiet ones as zeros"
    );
    assert_eq!(rows[0]["clicks"], 0);
    assert_eq!(rows[0]["epc_minor"], Value::Null, "no clicks, no EPC");
    assert_eq!(r["totals"]["clicks"], 6);
    assert_eq!(r["totals"]["commission_minor"], 3_200);

    let csv = app
        .client
        .get(app.url(&path))
        .bearer_auth(s(&w.program["api_key"]))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(
        lines[0],
        "day,clicks,unique_clicks,bot_clicks,conversions,revenue_minor,commission_minor,epc_minor,conversion_rate"
    );
    assert_eq!(lines[1], format!("{from},0,0,0,0,0,0,,"));
    assert_eq!(lines[7], format!("{},6,5,1,3,30000,3200,533,0.5", today()));
}

#[tokio::test]
async fn reports_are_scoped_and_other_tenants_answer_404() {
    let w = world().await;
    let app = &w.app;
    let other = app.create_program().await;
    let eve = app.create_partner("Eve").await;
    // A program key cannot name another program; a partner key another partner.
    let foreign_program = format!("/v1/reports?program_id={}", s(&w.program["id"]));
    assert_problem(
        app.get(&foreign_program, s(&other["api_key"])).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let foreign_partner = format!("/v1/reports?partner_id={}", s(&w.ayu["id"]));
    assert_problem(
        app.get(&foreign_partner, s(&eve["api_key"])).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let foreign_link = format!("/v1/reports?link_id={}", s(&w.ayu_link["id"]));
    assert_problem(
        app.get(&foreign_link, s(&other["api_key"])).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.get(&foreign_link, s(&w.budi["api_key"])).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Without filters, each sees only its own rows.
    assert_eq!(today_row(app, s(&other["api_key"]), "").await["clicks"], 0);
    assert_eq!(today_row(app, s(&eve["api_key"]), "").await["clicks"], 0);
    // Bad parameters are 400s.
    for q in [
        "from=2026-13-01",
        "from=2026-02-01&to=2026-01-01",
        "from=2020-01-01&to=2026-01-01",
        "group_by=week",
        "program_id=nope",
    ] {
        assert_problem(
            app.get(&format!("/v1/reports?{q}"), &app.admin_token).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}
