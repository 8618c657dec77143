//! Commission rules real programs use, end to end: versioned program terms,
//! order lines and category rates, refunds of lines, subscription renewals,
//! tiers with re-rating, milestone bonuses, and the simulator.

use crate::helpers::*;
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn patch(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.request(Method::PATCH, path, Some(token), Some(body))
        .await
}

/// Posts a signed conversion and expects it stored.
async fn post(app: &TestApp, program: &Value, body: Value) {
    let res = app.post_conversion(program, &body).await;
    assert_status(res, StatusCode::ACCEPTED).await;
}

/// A program with `commission`, and a partner with a coupon `AYU` for it.
async fn program_with(app: &TestApp, commission: Value) -> (Value, Value, Value) {
    let program = app
        .create_program_with(json!({"commission": commission, "hold_days": 0}))
        .await;
    let partner = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(
            &program,
            &[(&partner, 10_000)],
            json!({"coupon_codes": ["AYU"]}),
        )
        .await;
    (program, partner, agreement)
}

fn sale_with(order: &str, amount: i64, extra: Value) -> Value {
    let mut body = json!({"order_id": order, "event": "sale", "amount_minor": amount,
                          "currency": "EUR", "coupon": "AYU"});
    merge(&mut body, extra);
    body
}

#[tokio::test]
async fn changing_program_terms_makes_a_new_version_and_every_version_stays_readable() {
    let app = spawn_app().await;
    let (program, partner, _) = program_with(&app, json!({"sale": {"percent_bps": 1000}})).await;
    let id = s(&program["id"]);
    assert_eq!(program["terms_version"], 1);
    let key = s(&program["api_key"]);
    let changed = assert_status(
        patch(
            &app,
            &format!("/v1/programs/{id}"),
            key,
            &json!({"commission": {"sale": {"percent_bps": 1500}}, "hold_days": 7, "base_version": 1}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["terms_version"], 2);
    assert_eq!(
        changed["commission"],
        json!({"sale": {"percent_bps": 1500}})
    );
    assert_eq!(
        (
            changed["hold_days"].clone(),
            changed["attribution_window_days"].clone()
        ),
        (json!(7), json!(30)),
        "what the change leaves out stays as it was"
    );
    // A change based on a version that is no longer current is refused.
    let stale = patch(
        &app,
        &format!("/v1/programs/{id}"),
        key,
        &json!({"hold_days": 1, "base_version": 1}),
    )
    .await;
    assert_problem(stale, StatusCode::CONFLICT).await;
    let nothing = patch(&app, &format!("/v1/programs/{id}"), key, &json!({})).await;
    assert_eq!(
        invalid_fields(&assert_problem(nothing, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["commission"]
    );
    let bad = patch(
        &app,
        &format!("/v1/programs/{id}"),
        key,
        &json!({"commission": {"sale": {"percent_bps": 1000, "tiers": {"by": "count", "steps": []}}}}),
    )
    .await;
    assert_eq!(
        invalid_fields(&assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["commission.sale.tiers.steps"]
    );
    // Every version, for the program and for a partner in one of its agreements.
    for token in [key, s(&partner["api_key"])] {
        let all = assert_status(
            app.get(&format!("/v1/programs/{id}/versions"), token).await,
            StatusCode::OK,
        )
        .await;
        let versions: Vec<(i64, Value, i64)> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["version"].as_i64().unwrap(),
                    v["commission"].clone(),
                    v["hold_days"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            versions,
            vec![
                (1, json!({"sale": {"percent_bps": 1000}}), 0),
                (2, json!({"sale": {"percent_bps": 1500}}), 7)
            ]
        );
    }
    let v1 = assert_status(
        app.get(&format!("/v1/programs/{id}/versions/1"), key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v1["actor"], "admin");
    let v2 = assert_status(
        app.get(&format!("/v1/programs/{id}/versions/2"), key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v2["actor"], program["id"]);
    assert_problem(
        app.get(&format!("/v1/programs/{id}/versions/3"), key).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Another partner, another program's key: it does not exist for them.
    let stranger = app.create_partner("Budi").await;
    let other = app.create_program().await;
    for token in [s(&stranger["api_key"]), s(&other["api_key"])] {
        assert_problem(
            app.get(&format!("/v1/programs/{id}/versions"), token).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    assert_problem(
        patch(
            &app,
            &format!("/v1/programs/{id}"),
            s(&partner["api_key"]),
            &json!({"hold_days": 1}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_sale_earns_under_the_program_terms_in_force_when_it_happened() {
    let app = spawn_app().await;
    let (program, _, agreement) = program_with(&app, json!({"sale": {"percent_bps": 1000}})).await;
    let before = Utc::now() - Duration::seconds(30);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let id = s(&program["id"]);
    assert_status(
        patch(
            &app,
            &format!("/v1/programs/{id}"),
            &app.admin_token,
            &json!({"commission": {"sale": {"percent_bps": 2500}}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    post(
        &app,
        &program,
        sale_with("OLD", 10_000, json!({"occurred_at": before})),
    )
    .await;
    post(&app, &program, sale_with("NEW", 10_000, json!({}))).await;
    app.attribute().await;
    let old = app.conversion(&program, "OLD").await;
    let new = app.conversion(&program, "NEW").await;
    let summary = |c: &Value| {
        (
            c["program_version"].as_i64().unwrap(),
            c["commissions"][0]["program_version"].as_i64().unwrap(),
            c["commissions"][0]["amount_minor"].as_i64().unwrap(),
            s(&c["commissions"][0]["rule_source"]).to_owned(),
            c["commissions"][0]["agreement_version"].as_i64().unwrap(),
        )
    };
    assert_eq!(summary(&old), (1, 1, 1_000, "program".into(), 1));
    assert_eq!(summary(&new), (2, 2, 2_500, "program".into(), 1));
    // An agreement's own rule for the event wins over the program's.
    let v2 = json!({"partners": agreement["partners"], "coupon_codes": ["AYU"],
                    "commission": {"sale": {"flat_minor": 300}}});
    let res = app
        .put(
            &format!("/v1/agreements/{}", s(&agreement["id"])),
            &app.admin_token,
            &v2,
        )
        .await;
    assert_status(res, StatusCode::OK).await;
    post(&app, &program, sale_with("OWN", 10_000, json!({}))).await;
    app.attribute().await;
    let own = app.conversion(&program, "OWN").await;
    assert_eq!(summary(&own), (2, 2, 300, "agreement".into(), 2));
}

#[tokio::test]
async fn order_lines_earn_their_category_rates_and_refunds_of_lines_take_back_their_part() {
    let app = spawn_app().await;
    let (program, partner, _) = program_with(
        &app,
        json!({"sale": {"percent_bps": 1000, "categories": {
            "books": {"percent_bps": 500}, "gift-cards": {"flat_minor": 50}
        }}}),
    )
    .await;
    let items = json!([
        {"sku": "B-1", "category": "Books", "amount_minor": 6_000},
        {"sku": "G-1", "category": "gift-cards", "amount_minor": 2_000, "quantity": 4},
        {"sku": "T-1", "category": "toys", "amount_minor": 3_001},
        {"sku": "X-1", "amount_minor": 1_000}
    ]);
    post(
        &app,
        &program,
        sale_with("L-1", 12_001, json!({"items": items})),
    )
    .await;
    app.attribute().await;
    let c = app.conversion(&program, "L-1").await;
    assert_eq!(
        c["items"][0]["category"], "books",
        "categories are kept lower-cased"
    );
    let commission = &c["commissions"][0];
    // Default 4,001 at 10% = 400.1 -> 400; books 6,000 at 5% = 300; 4 gift
    // cards at 0.50 = 200.
    assert_eq!(commission["amount_minor"], 900);
    let lines: Vec<(Value, i64, i64)> = commission["rule"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["category"].clone(),
                l["amount_minor"].as_i64().unwrap(),
                l["commission_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (Value::Null, 4_001, 400),
            (json!("books"), 6_000, 300),
            (json!("gift-cards"), 2_000, 200)
        ]
    );
    // Refunding the books takes back the books' 3.00 only.
    let refund = |amount: i64, items: Value| {
        json!({"order_id": "L-1", "event": "refund", "amount_minor": amount, "currency": "EUR",
               "event_id": format!("r-{amount}-{}", items.to_string().len()), "items": items})
    };
    post(
        &app,
        &program,
        refund(6_000, json!([{"sku": "B-1", "amount_minor": 6_000}])),
    )
    .await;
    app.attribute().await;
    let c = app.conversion(&program, "L-1").await;
    assert_eq!(c["commissions"][0]["amount_minor"], 600);
    assert_eq!(c["refunded_minor"], 6_000);
    // A refund without lines takes from what is left of the order in
    // proportion: 3,000 of the 6,001 left keeps floor(600 * 3,001 / 6,001) = 300.
    let whole = json!({"order_id": "L-1", "event": "refund", "amount_minor": 3_000,
                       "currency": "EUR", "event_id": "r-whole"});
    post(&app, &program, whole).await;
    app.attribute().await;
    let c = app.conversion(&program, "L-1").await;
    assert_eq!(c["commissions"][0]["amount_minor"], 300);
    let statement = assert_status(
        app.get(
            &format!("/v1/partners/{}/statement", s(&partner["id"])),
            &app.admin_token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let entries: Vec<(String, i64)> = statement["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["bucket"] == "pending")
        .map(|e| {
            (
                s(&e["kind"]).to_owned(),
                e["amount_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("created".into(), 900),
            ("adjusted".into(), -300),
            ("adjusted".into(), -300)
        ]
    );
}

#[tokio::test]
async fn lines_that_do_not_add_up_and_subscriptions_on_leads_are_refused() {
    let app = spawn_app().await;
    let (program, _, _) = program_with(&app, json!({"sale": {"percent_bps": 1000}})).await;
    let cases = [
        (
            sale_with(
                "A",
                100,
                json!({"items": [{"sku": "a", "amount_minor": 99}]}),
            ),
            "items",
        ),
        (
            sale_with(
                "A",
                100,
                json!({"items": [{"sku": "a", "amount_minor": 50}, {"sku": "a", "amount_minor": 50}]}),
            ),
            "items[1].sku",
        ),
        (
            sale_with(
                "A",
                100,
                json!({"items": [{"sku": "a", "amount_minor": 100, "category": ""}]}),
            ),
            "items[0].category",
        ),
        (
            json!({"order_id": "A", "event": "lead", "amount_minor": 0, "currency": "EUR",
                   "subscription_id": "s-1"}),
            "subscription_id",
        ),
        (
            json!({"order_id": "A", "event": "lead", "amount_minor": 0, "currency": "EUR",
                   "items": [{"sku": "a", "amount_minor": 0}]}),
            "items",
        ),
    ];
    for (body, field) in cases {
        let res = app.post_conversion(&program, &body).await;
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(invalid_fields(&problem), vec![field], "{body}");
    }
}

#[tokio::test]
async fn renewals_go_to_the_first_payments_partner_without_a_click_for_the_rules_months() {
    let app = spawn_app().await;
    let (program, partner, _) = program_with(
        &app,
        json!({"sale": {"percent_bps": 2000, "recurring": {"months": 2}}}),
    )
    .await;
    let first_at = Utc::now() - Duration::days(100);
    post(
        &app,
        &program,
        sale_with(
            "S-1",
            5_000,
            json!({"subscription_id": "sub-1", "occurred_at": first_at}),
        ),
    )
    .await;
    app.attribute().await;
    for (order, days) in [("S-2", 30), ("S-3", 59), ("S-4", 75)] {
        // Renewals carry no click and no coupon.
        let body = json!({"order_id": order, "event": "sale", "amount_minor": 5_000,
                          "currency": "EUR", "subscription_id": "sub-1",
                          "occurred_at": first_at + Duration::days(days)});
        post(&app, &program, body).await;
    }
    app.attribute().await;
    let mut got = Vec::new();
    for order in ["S-2", "S-3", "S-4"] {
        let c = app.conversion(&program, order).await;
        got.push((
            s(&c["status"]).to_owned(),
            c["attributed_via"].clone(),
            c["reason"].clone(),
            c["commissions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["amount_minor"].as_i64().unwrap())
                .sum::<i64>(),
        ));
    }
    assert_eq!(
        got,
        vec![
            (
                "attributed".into(),
                json!("subscription"),
                Value::Null,
                1_000
            ),
            (
                "attributed".into(),
                json!("subscription"),
                Value::Null,
                1_000
            ),
            (
                "attributed".into(),
                json!("subscription"),
                json!("renewal_not_paid"),
                0
            )
        ]
    );
    let renewal = app.conversion(&program, "S-2").await;
    let first = app.conversion(&program, "S-1").await;
    assert_eq!(
        renewal["commissions"][0]["rule"]["renewal"]["first_conversion_id"],
        first["id"]
    );
    assert_eq!(renewal["commissions"][0]["partner_id"], partner["id"]);
}

#[tokio::test]
async fn a_bonus_is_booked_once_with_its_own_ledger_kind_and_re_rating_books_one_adjustment() {
    let app = spawn_app().await;
    let (program, partner, _) = program_with(
        &app,
        json!({"sale": {
            "percent_bps": 1000,
            "tiers": {"by": "count", "rerate": true, "steps": [{"from": 3, "percent_bps": 1500}]},
            "bonuses": [{"by": "count", "at": 3, "flat_minor": 2_000}]
        }}),
    )
    .await;
    for (i, amount) in [10_005, 20_000, 30_000, 5_000].iter().enumerate() {
        post(
            &app,
            &program,
            sale_with(&format!("M-{i}"), *amount, json!({})),
        )
        .await;
        app.attribute().await;
    }
    // The 3rd sale reaches 15%: the two before are raised from 3,001 to
    // 15% of 30,005 = 4,501 (an adjustment of 1,500), and the bonus is due.
    let third = app.conversion(&program, "M-2").await;
    assert_eq!(
        kinds_and_amounts(&third["commissions"]),
        vec![
            ("bonus".into(), 2_000),
            ("conversion".into(), 4_500),
            ("tier_adjustment".into(), 1_500)
        ]
    );
    let adjustment = third["commissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "tier_adjustment")
        .unwrap();
    assert_eq!(
        adjustment["rule"]["rerated"],
        json!({"month": adjustment["rule"]["rerated"]["month"], "step": 1, "sales": 2,
               "base_minor": 30_005, "booked_minor": 3_001, "rerated_minor": 4_501})
    );
    let fourth = app.conversion(&program, "M-3").await;
    assert_eq!(
        kinds_and_amounts(&fourth["commissions"]),
        vec![("conversion".into(), 750)]
    );
    let kinds: Vec<String> = sqlx::query_scalar(
        "select kind from ledger_entries where partner_id = (select partner_id from commissions limit 1) order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        kinds,
        vec![
            "created",
            "created",
            "created",
            "tier_adjustment",
            "bonus",
            "created"
        ]
    );
    let balance = assert_status(
        app.get(
            &format!("/v1/partners/{}/balance", s(&partner["id"])),
            &app.admin_token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        balance["balances"][0]["pending_minor"],
        1_001 + 2_000 + 4_500 + 1_500 + 2_000 + 750
    );
}

#[tokio::test]
async fn the_simulator_answers_what_booking_then_books_and_books_nothing_itself() {
    let app = spawn_app().await;
    let (program, partner, agreement) = program_with(
        &app,
        json!({"sale": {
            "percent_bps": 1000,
            "tiers": {"by": "count", "steps": [{"from": 2, "percent_bps": 1200}]},
            "categories": {"books": {"percent_bps": 400}},
            "bonuses": [{"by": "count", "at": 2, "flat_minor": 999}]
        }}),
    )
    .await;
    let id = s(&program["id"]);
    post(&app, &program, sale_with("P-1", 10_000, json!({}))).await;
    app.attribute().await;
    let order = json!({"event": "sale", "amount_minor": 12_345, "currency": "EUR",
                       "items": [{"sku": "b", "category": "books", "amount_minor": 2_345},
                                 {"sku": "x", "amount_minor": 10_000}]});
    let quote = assert_status(
        app.post(
            &format!("/v1/programs/{id}/simulate"),
            s(&partner["api_key"]),
            &order,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(quote["program_version"], 1);
    let q = &quote["quotes"][0];
    assert_eq!(q["agreement_id"], agreement["id"]);
    assert_eq!(q["month_to_date"]["sales"], 1);
    // The second sale of the month: 12% of 100.00 and 4% of 23.45 (0.94), and the bonus.
    assert_eq!(q["total_minor"], 1_200 + 94 + 999);
    assert_eq!(q["commissions"][0]["rule"]["tier"]["step"], 1);
    let count: i64 = sqlx::query_scalar("select count(*) from commissions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1, "the simulator booked nothing");
    // Booking the same order books exactly the quote.
    let mut webhook = order.clone();
    merge(&mut webhook, json!({"order_id": "P-2", "coupon": "AYU"}));
    post(&app, &program, webhook).await;
    app.attribute().await;
    let booked = app.conversion(&program, "P-2").await;
    assert_eq!(
        kinds_and_amounts(&booked["commissions"]),
        kinds_and_amounts(&q["commissions"])
    );
    assert_eq!(
        booked["commissions"][0]["rule"]["lines"],
        q["commissions"][0]["rule"]["lines"]
    );
    // "What if I had 40 sales this month": the tier, no bonus (already past it).
    let what_if = assert_status(
        app.post(
            &format!("/v1/programs/{id}/simulate"),
            &app.admin_token,
            &json!({"event": "sale", "amount_minor": 10_000, "currency": "EUR",
                    "month_to_date": {"sales": 40, "revenue_minor": 400_000}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(what_if["quotes"][0]["total_minor"], 1_200);
    // Someone else's program does not exist for a partner outside it.
    let stranger = app.create_partner("Budi").await;
    assert_problem(
        app.post(
            &format!("/v1/programs/{id}/simulate"),
            s(&stranger["api_key"]),
            &order,
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let wrong = app
        .post(
            &format!("/v1/programs/{id}/simulate"),
            &app.admin_token,
            &json!({"event": "refund", "amount_minor": 1, "currency": "USD"}),
        )
        .await;
    assert_eq!(
        invalid_fields(&assert_problem(wrong, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["event", "currency"]
    );
}

/// The tier step and month rank each order's conversion commission recorded.
async fn ranks(app: &TestApp, program: &Value, orders: &[String]) -> Vec<(i64, i64)> {
    let mut got = Vec::new();
    for order in orders {
        let conversion = app.conversion(program, order).await;
        let c = conversion["commissions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "conversion")
            .unwrap_or_else(|| panic!("{order} booked no commission: {conversion}"));
        let tier = &c["rule"]["tier"];
        got.push((
            tier["step"].as_i64().unwrap(),
            tier["month_sales"].as_i64().unwrap(),
        ));
    }
    got
}

#[tokio::test]
async fn a_sale_whose_rank_a_stopped_worker_reserved_keeps_it_and_is_counted_once() {
    let app = spawn_app().await;
    let (program, _, _) = program_with(
        &app,
        json!({"sale": {"percent_bps": 1000,
                        "tiers": {"by": "count", "steps": [{"from": 2, "percent_bps": 2000}]}}}),
    )
    .await;
    post(&app, &program, sale_with("R-1", 10_000, json!({}))).await;
    post(&app, &program, sale_with("R-2", 10_000, json!({}))).await;
    // What a worker leaves that reserved R-2 as the month's first sale and
    // stopped before booking: the month advanced, R-2's rank recorded.
    let agreement_id: i64 = sqlx::query_scalar("select id from agreements")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let (r2, month): (i64, chrono::NaiveDate) = sqlx::query_as(
        "select id, date_trunc('month', occurred_at at time zone 'UTC')::date
         from conversions where order_id = 'R-2'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "insert into agreement_months (agreement_id, month, sales, revenue_minor, rated_sales,
                                       rated_base_minor, rated_minor)
         values ($1, $2, 1, 10000, 1, 10000, 1000)",
    )
    .bind(agreement_id)
    .bind(month)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "insert into month_ranks (conversion_id, agreement_id, month, sales, revenue_minor, tier,
                                  rated_sales, rated_base_minor, rated_minor)
         values ($1, $2, $3, 0, 0, 0, 0, 0, 0)",
    )
    .bind(r2)
    .bind(agreement_id)
    .bind(month)
    .execute(&app.db)
    .await
    .unwrap();

    app.attribute().await;
    // R-2 keeps the first rank (10%) though R-1 is older and claimed first;
    // R-1 takes the next (20%), and the month counts two sales, not three.
    assert_eq!(
        ranks(&app, &program, &["R-1".into(), "R-2".into()]).await,
        vec![(1, 2), (0, 1)]
    );
    let amounts: Vec<i64> = sqlx::query_scalar(
        "select c.amount_minor from commissions c join conversions v on v.id = c.conversion_id
         order by v.order_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(amounts, vec![2_000, 1_000]);
    let (sales, left): (i64, i64) = sqlx::query_as(
        "select (select sales from agreement_months), (select count(*) from month_ranks)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (sales, left),
        (2, 0),
        "counted once; booking clears the reservation"
    );
}

#[tokio::test]
async fn workers_booking_one_agreements_month_at_once_give_every_sale_its_own_rank() {
    let app = spawn_app_with(
        mitra::startup::Roles::API,
        &[("MITRA_ATTRIBUTION_BATCH", "4")],
    )
    .await;
    let (program, partner, _) = program_with(
        &app,
        json!({"sale": {"percent_bps": 1000,
                        "tiers": {"by": "count", "rerate": true,
                                  "steps": [{"from": 10, "percent_bps": 1200},
                                            {"from": 25, "percent_bps": 1500}]},
                        "bonuses": [{"by": "count", "at": 20, "flat_minor": 700}]}}),
    )
    .await;
    let orders: Vec<String> = (0..40).map(|i| format!("W-{i:02}")).collect();
    for order in &orders {
        post(&app, &program, sale_with(order, 1_000, json!({}))).await;
    }
    // Three workers, batches of four, all on one agreement's month.
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let worker = app.attributor();
            tokio::spawn(async move {
                while worker.step().await.unwrap() != mitra::background::Step::Idle {}
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let mut got: Vec<i64> = ranks(&app, &program, &orders)
        .await
        .into_iter()
        .map(|(_, rank)| rank)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (1..=40).collect::<Vec<_>>(), "each rank given once");
    // Whatever order the workers took, the month books what 40 sales of
    // 10.00 earn: 9 at 10%, 15 at 12%, 16 at 15%, the earlier ones raised
    // to each step reached (re-rating), and one bonus.
    let balance = assert_status(
        app.get(
            &format!("/v1/partners/{}/balance", s(&partner["id"])),
            &app.admin_token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(balance["balances"][0]["pending_minor"], 40 * 150 + 700);
    let bonuses: i64 = sqlx::query_scalar("select count(*) from commissions where kind = 'bonus'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(bonuses, 1);
}
