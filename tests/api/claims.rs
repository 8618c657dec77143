//! Claims both ways: accepted and booked (under the terms in force at the
//! claimed date), declined with a reason, an incorrect commission adjusted,
//! deadlines and their policy; the partner's balance and signed statement
//! reconcile afterwards.

use crate::helpers::*;
use crate::statements::{chain_all, public_key, statement, verify};
use mitra::background::Step;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn open(app: &TestApp, program: &Value, partner: &Value, body: Value) -> Value {
    let path = format!("/v1/programs/{}/claims", s(&program["id"]));
    let opened = assert_status(
        app.post(&path, s(&partner["api_key"]), &body).await,
        StatusCode::CREATED,
    )
    .await;
    opened["data"][0].clone()
}

/// Posts `action` (accept, decline, comments) on a claim, whatever it answers.
async fn try_act(
    app: &TestApp,
    token: &str,
    claim: &Value,
    action: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let path = format!("/v1/claims/{}/{action}", s(&claim["id"]));
    app.request(Method::POST, &path, Some(token), body).await
}

/// Posts `action` on a claim, and asserts it was done.
async fn act(
    app: &TestApp,
    token: &str,
    claim: &Value,
    action: &str,
    body: Option<Value>,
) -> Value {
    let res = try_act(app, token, claim, action, body.as_ref()).await;
    let expected = if action == "comments" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    assert_status(res, expected).await
}

async fn balance(app: &TestApp, partner: &Value) -> (i64, i64, i64) {
    let path = format!("/v1/partners/{}/balance", s(&partner["id"]));
    let b = assert_status(app.get(&path, s(&partner["api_key"])).await, StatusCode::OK).await;
    let b = &b["balances"][0];
    (
        b["pending_minor"].as_i64().unwrap(),
        b["approved_minor"].as_i64().unwrap(),
        b["paid_minor"].as_i64().unwrap(),
    )
}

/// The partner's signed statement of the program verifies, and closes on
/// its balance.
async fn statement_reconciles(app: &TestApp, program: &Value, partner: &Value) -> Value {
    chain_all(app).await;
    let st = statement(app, program, partner, 0).await;
    let key = public_key(app, program, s(&partner["api_key"])).await;
    let (code, out) = verify(&key, &st, None);
    assert_eq!(code, 0, "{out}");
    let (pending, approved, paid) = balance(app, partner).await;
    assert_eq!(
        st["closing"],
        json!([{"currency": "EUR", "pending_minor": pending, "approved_minor": approved, "paid_minor": paid}])
    );
    st
}

#[tokio::test]
async fn an_untracked_sale_claimed_and_accepted_is_booked_under_the_terms_of_its_date() {
    // Arrange: 10% of sales in version 1; the claimed sale happens now.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let claimed_at = chrono::Utc::now();
    let claim = open(
        &app,
        &f.program,
        &f.partner,
        json!({
            "kind": "untracked", "order_id": "U-1", "occurred_at": claimed_at,
            "amount_minor": 20_000, "expected_commission_minor": 2_000,
            "note": "order confirmation attached"
        }),
    )
    .await;
    assert_eq!(
        (s(&claim["status"]), s(&claim["kind"])),
        ("open", "untracked")
    );
    // Version 2 (20%) comes after the sale's date: it does not apply.
    let update = format!("/v1/agreements/{}", s(&f.agreement["id"]));
    let v2 = app
        .put(
            &update,
            s(&f.program["api_key"]),
            &json!({
                "partners": [{"partner_id": f.partner["id"], "share_bps": 10000}],
                "commission": {"sale": {"percent_bps": 2000}}
            }),
        )
        .await;
    assert_eq!(assert_status(v2, StatusCode::OK).await["version"], 2);

    // Act: a thread, then the program accepts.
    let program_key = s(&f.program["api_key"]);
    act(
        &app,
        program_key,
        &claim,
        "comments",
        Some(json!({"note": "checking the shop"})),
    )
    .await;
    act(
        &app,
        s(&f.partner["api_key"]),
        &claim,
        "comments",
        Some(json!({"note": "order U-1, card"})),
    )
    .await;
    let partner_try = try_act(&app, s(&f.partner["api_key"]), &claim, "accept", None).await;
    assert_problem(partner_try, StatusCode::FORBIDDEN).await;
    let accepted = act(
        &app,
        program_key,
        &claim,
        "accept",
        Some(json!({"note": "found it"})),
    )
    .await;

    // Assert: booked through the booking path, under version 1, from the claim.
    assert_eq!(accepted["status"], "accepted");
    let order = app.conversion(&f.program, "U-1").await;
    assert_eq!(order["id"], accepted["conversion_id"]);
    assert_eq!(
        (
            &order["status"],
            &order["attributed_via"],
            &order["agreement_version"]
        ),
        (&json!("attributed"), &json!("claim"), &json!(1))
    );
    assert_eq!(order["commissions"][0]["amount_minor"], 2_000);
    assert_eq!(order["commissions"][0]["status"], "pending");
    let thread: Vec<(String, String)> = accepted["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (s(&e["action"]).to_owned(), s(&e["actor"]).to_owned()))
        .collect();
    let (partner_id, program_id) = (
        s(&f.partner["id"]).to_owned(),
        s(&f.program["id"]).to_owned(),
    );
    assert_eq!(
        thread,
        vec![
            ("opened".into(), partner_id.clone()),
            ("commented".into(), program_id.clone()),
            ("commented".into(), partner_id),
            ("accepted".into(), program_id),
        ]
    );
    assert_eq!(balance(&app, &f.partner).await, (2_000, 0, 0));
    let st = statement_reconciles(&app, &f.program, &f.partner).await;
    assert_eq!(st["entries"][0]["kind"], "created");
    assert_eq!(st["entries"][0]["amount_minor"], 2_000);
    // Decided once: a second answer conflicts.
    let again = try_act(
        &app,
        program_key,
        &claim,
        "decline",
        Some(&json!({"reason_code": "other"})),
    )
    .await;
    assert_problem(again, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn an_accepted_untracked_sale_takes_its_rank_in_the_month_as_a_tracked_one_would() {
    // Arrange: 10% of sales, 20% from the month's 2nd sale with the month's
    // earlier sales re-rated, a bonus at the 2nd sale, books at 5% untiered.
    let app = spawn_app().await;
    let program = app.create_program().await;
    let partner = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(
            &program,
            &[(&partner, 10000)],
            json!({"commission": {"sale": {
                "percent_bps": 1000,
                "tiers": {"by": "count", "rerate": true, "steps": [{"from": 2, "percent_bps": 2000}]},
                "categories": {"books": {"percent_bps": 500}},
                "bonuses": [{"by": "count", "at": 2, "flat_minor": 700}]
            }}}),
        )
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    let hook = json!({"url": "https://partner.example/hooks", "events": ["conversion.attributed"]});
    let res = app
        .post("/v1/webhook-endpoints", s(&partner["api_key"]), &hook)
        .await;
    assert_status(res, StatusCode::CREATED).await;
    let click = app.click_id_ago(&link, chrono::Duration::minutes(1));
    let now = chrono::Utc::now();
    assert_status(
        app.post_conversion(&program, &sale("T-1", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    // The shop reported R-4, with its lines, but no click came with it.
    let untracked_report = json!({"order_id": "R-4", "event": "sale", "amount_minor": 10_000,
        "currency": "EUR", "occurred_at": now,
        "items": [{"sku": "b-1", "category": "books", "amount_minor": 10_000, "quantity": 1}]});
    assert_status(
        app.post_conversion(&program, &untracked_report).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    assert_eq!(
        kinds_and_amounts(&app.conversion(&program, "T-1").await["commissions"]),
        vec![("conversion".to_owned(), 1_000)]
    );
    assert_eq!(app.order(&program, "R-4").await.status, "unattributed");
    let program_key = s(&program["api_key"]);

    // Act: the partner claims U-2, which the shop never reported; accepted.
    let claim = open(
        &app,
        &program,
        &partner,
        json!({"kind": "untracked", "order_id": "U-2", "occurred_at": now, "amount_minor": 20_000}),
    )
    .await;
    act(&app, program_key, &claim, "accept", None).await;

    // Assert: the month's 2nd sale: the 2nd step's rate, T-1 re-rated to it,
    // the milestone's bonus. The base rate alone would have paid 2,000.
    assert_eq!(
        kinds_and_amounts(&app.conversion(&program, "U-2").await["commissions"]),
        vec![
            ("bonus".to_owned(), 700),
            ("conversion".to_owned(), 4_000),
            ("tier_adjustment".to_owned(), 1_000)
        ]
    );
    // The month counted it: the next tracked sale is the 3rd, at 20%, with
    // neither the bonus nor the re-rating again.
    assert_status(
        app.post_conversion(&program, &sale("T-3", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    assert_eq!(
        kinds_and_amounts(&app.conversion(&program, "T-3").await["commissions"]),
        vec![("conversion".to_owned(), 2_000)]
    );
    // A claim of the shop's own report prices its lines: books at 5%.
    let reported = open(
        &app,
        &program,
        &partner,
        json!({"kind": "untracked", "order_id": "R-4", "occurred_at": now, "amount_minor": 10_000}),
    )
    .await;
    act(&app, program_key, &reported, "accept", None).await;
    let r4 = app.conversion(&program, "R-4").await;
    assert_eq!(
        (&r4["status"], &r4["attributed_via"]),
        (&json!("attributed"), &json!("claim"))
    );
    assert_eq!(
        kinds_and_amounts(&r4["commissions"]),
        vec![("conversion".to_owned(), 500)]
    );
    // Outgoing webhooks: each accepted sale's conversion.attributed names the
    // partner it pays, as attribution's do.
    sqlx::query("select outbox_expand(1000)")
        .execute(&app.db)
        .await
        .unwrap();
    let paid: Vec<(String, Vec<i64>)> = sqlx::query_as(
        "select data->>'order_id', partner_ids from outbox_events
         where type = 'conversion.attributed' order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    // (One entry per commission: U-2 names the partner three times.)
    let paid: Vec<(String, Vec<i64>)> = paid
        .into_iter()
        .map(|(order, mut ids)| {
            ids.dedup();
            (order, ids)
        })
        .collect();
    let partner_db_id = paid[0].1.clone();
    assert_eq!(partner_db_id.len(), 1, "{paid:?}");
    assert_eq!(
        paid,
        ["T-1", "U-2", "T-3", "R-4"]
            .iter()
            .map(|o| (o.to_string(), partner_db_id.clone()))
            .collect::<Vec<_>>()
    );
    let st = statement_reconciles(&app, &program, &partner).await;
    assert_eq!(
        st["closing"][0]["pending_minor"],
        1_000 + 5_700 + 2_000 + 500
    );
}

#[tokio::test]
async fn a_declined_claim_books_nothing_and_an_incorrect_one_is_adjusted() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, chrono::Duration::minutes(1));
    assert_status(
        app.post_conversion(&f.program, &sale("B-1", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let commission = app.order(&f.program, "B-1").await.of(&f.partner).id.clone();
    let program_key = s(&f.program["api_key"]);

    // An untracked claim the shop cannot find: declined with a reason.
    let untracked = open(
        &app,
        &f.program,
        &f.partner,
        json!({"kind": "untracked", "order_id": "U-404", "occurred_at": chrono::Utc::now(),
               "amount_minor": 5_000}),
    )
    .await;
    let needs_reason = try_act(
        &app,
        program_key,
        &untracked,
        "decline",
        Some(&json!({"note": "no"})),
    )
    .await;
    assert_problem(needs_reason, StatusCode::BAD_REQUEST).await;
    let declined = act(
        &app,
        program_key,
        &untracked,
        "decline",
        Some(json!({"reason_code": "order_not_found", "note": "no such order in the shop"})),
    )
    .await;
    assert_eq!(
        (
            &declined["status"],
            &declined["reason_code"],
            &declined["decision_note"]
        ),
        (
            &json!("declined"),
            &json!("order_not_found"),
            &json!("no such order in the shop")
        )
    );
    let missing = app
        .get(
            &format!("/v1/programs/{}/conversions/U-404", s(&f.program["id"])),
            &app.admin_token,
        )
        .await;
    assert_problem(missing, StatusCode::NOT_FOUND).await;
    assert_eq!(balance(&app, &f.partner).await, (1_000, 0, 0));

    // An incorrect commission: 1,000 booked, 1,500 expected, accepted.
    let incorrect = open(
        &app,
        &f.program,
        &f.partner,
        json!({"kind": "incorrect", "commission_id": commission, "expected_commission_minor": 1_500,
               "note": "the rate in my agreement is 15%"}),
    )
    .await;
    let twice = app
        .post(
            &format!("/v1/programs/{}/claims", s(&f.program["id"])),
            s(&f.partner["api_key"]),
            &json!({"kind": "incorrect", "commission_id": commission, "expected_commission_minor": 1_600}),
        )
        .await;
    assert_problem(twice, StatusCode::CONFLICT).await;
    act(&app, program_key, &incorrect, "accept", None).await;
    let order = app.order(&f.program, "B-1").await;
    assert_eq!(order.of(&f.partner).amount_minor, 1_500);
    assert_eq!(balance(&app, &f.partner).await, (1_500, 0, 0));
    let st = statement_reconciles(&app, &f.program, &f.partner).await;
    let last = st["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["kind"], &last["bucket"], &last["amount_minor"]),
        (&json!("adjusted"), &json!("pending"), &json!(500))
    );
    assert_eq!(
        last["reason"],
        format!("claim {} accepted", s(&incorrect["id"]))
    );
    // Another partner sees neither claim.
    let other = app.create_partner("Budi").await;
    assert_problem(
        app.get(
            &format!("/v1/claims/{}", s(&incorrect["id"])),
            s(&other["api_key"]),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The admin naming a partner that was never in the program: the
    // program is there, the body is wrong (422); that partner's own key
    // does not see the program (404).
    let path = format!("/v1/programs/{}/claims", s(&f.program["id"]));
    let named = json!({"kind": "declined", "commission_id": commission,
                       "partner_id": s(&other["id"])});
    let problem = assert_problem(
        app.post(&path, &app.admin_token, &named).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "partner_id", "{problem}");
    let own = json!({"kind": "declined", "commission_id": commission});
    assert_problem(
        app.post(&path, s(&other["api_key"]), &own).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn claims_past_the_deadline_follow_the_programs_policy_and_show_on_the_metrics() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let program_key = s(&f.program["api_key"]);
    let policy = format!("/v1/programs/{}/claim-policy", s(&f.program["id"]));
    let set = |days: i64, action: &'static str| {
        let (app, policy) = (&app, policy.clone());
        async move {
            let res = app
                .put(
                    &policy,
                    program_key,
                    &json!({"deadline_days": days, "overdue_action": action}),
                )
                .await;
            assert_status(res, StatusCode::OK).await
        }
    };
    assert_eq!(
        set(7, "none").await,
        json!({"deadline_days": 7, "overdue_action": "none", "window_days": null})
    );

    // A batch in CSV: two claims, each with the policy of its opening.
    let csv = format!(
        "kind,order_id,occurred_at,amount_minor,expected_commission_minor,note\n\
         untracked,D-1,{at},30000,3000,\"bought twice, \"\"see\"\" receipt\"\n\
         untracked,D-2,{at},40000,,\n",
        at = chrono::Utc::now().to_rfc3339()
    );
    let res = app
        .client
        .post(app.url(&format!("/v1/programs/{}/claims", s(&f.program["id"]))))
        .bearer_auth(s(&f.partner["api_key"]))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let batch = assert_status(res, StatusCode::CREATED).await;
    let claims = batch["data"].as_array().unwrap().clone();
    assert_eq!(claims.len(), 2);
    assert_eq!(claims[0]["note"], "bought twice, \"see\" receipt");
    assert_eq!(claims[1]["expected_commission_minor"], Value::Null);
    assert_eq!(claims[0]["overdue_action"], "none");

    // Past its deadline, a claim the policy leaves open is overdue.
    sqlx::query("update claims set deadline_at = now() - interval '1 day' where order_id = 'D-1'")
        .execute(&app.db)
        .await
        .unwrap();
    let worker = app.workers.overdue_claims();
    assert_eq!(worker.step().await.unwrap(), Step::Idle);
    let series = format!(
        "mitra_claims_overdue{{program=\"{}\"}}",
        s(&f.program["id"])
    );
    assert_eq!(metric(&app.metrics().await, &series), 1.0);
    let path = format!("/v1/claims/{}", s(&claims[0]["id"]));
    let still = assert_status(app.get(&path, program_key).await, StatusCode::OK).await;
    assert_eq!(still["status"], "open");

    // Under "accept", the deadline accepts it as claimed.
    set(7, "accept").await;
    let later = open(
        &app,
        &f.program,
        &f.partner,
        json!({"kind": "untracked", "order_id": "D-3", "occurred_at": chrono::Utc::now(),
               "amount_minor": 12_000}),
    )
    .await;
    sqlx::query(
        "update claims set deadline_at = now() - interval '1 minute' where order_id = 'D-3'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let worker = app.workers.overdue_claims();
    // It decided one: a step that did work (it wakes outgoing webhooks).
    assert_eq!(worker.step().await.unwrap(), Step::Drained);
    let done = assert_status(
        app.get(&format!("/v1/claims/{}", s(&later["id"])), program_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&done["status"], &done["decided_by"]),
        (&json!("accepted"), &json!("deadline"))
    );
    assert_eq!(
        app.order(&f.program, "D-3")
            .await
            .of(&f.partner)
            .amount_minor,
        1_200
    );
    // D-1 stays open and overdue; D-2 is not due yet.
    assert_eq!(metric(&app.metrics().await, &series), 1.0);
    assert_eq!(balance(&app, &f.partner).await, (1_200, 0, 0));
    statement_reconciles(&app, &f.program, &f.partner).await;
}

#[tokio::test]
async fn a_program_takes_claims_only_of_sales_within_its_window() {
    // Arrange: a booked sale that happened 40 days ago, and a 30-day window.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, chrono::Duration::minutes(1));
    assert_status(
        app.post_conversion(&f.program, &sale("W-1", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let commission = app.order(&f.program, "W-1").await.of(&f.partner).id.clone();
    sqlx::query(
        "update conversions set occurred_at = now() - interval '40 days' where order_id = 'W-1'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let program_key = s(&f.program["api_key"]);
    let policy = format!("/v1/programs/{}/claim-policy", s(&f.program["id"]));
    let set = |window: Value| {
        let (app, policy) = (&app, policy.clone());
        async move {
            let body =
                json!({"deadline_days": 30, "overdue_action": "accept", "window_days": window});
            app.put(&policy, program_key, &body).await
        }
    };
    for out_of_range in [json!(0), json!(401)] {
        let refused =
            assert_problem(set(out_of_range).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(invalid_fields(&refused), ["window_days"]);
    }
    assert_eq!(
        assert_status(set(json!(30)).await, StatusCode::OK).await,
        json!({"deadline_days": 30, "overdue_action": "accept", "window_days": 30})
    );
    let path = format!("/v1/programs/{}/claims", s(&f.program["id"]));
    let partner_key = s(&f.partner["api_key"]);
    let days_ago = |d: i64| chrono::Utc::now() - chrono::Duration::days(d);

    // Act and assert: a sale older than the window is refused, naming what
    // dates it: the claimed date, or the disputed commission.
    let old_sale = json!({"kind": "untracked", "order_id": "W-2", "occurred_at": days_ago(40),
                          "amount_minor": 5_000});
    let refused = assert_problem(
        app.post(&path, partner_key, &old_sale).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(invalid_fields(&refused), ["occurred_at"]);
    assert!(
        s(&refused["errors"][0]["message"]).contains("30 days"),
        "{refused}"
    );
    let dispute = json!({"kind": "incorrect", "commission_id": commission,
                         "expected_commission_minor": 1_500});
    let refused = assert_problem(
        app.post(&path, partner_key, &dispute).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(invalid_fields(&refused), ["commission_id"]);
    // Within the window: taken.
    let recent = json!({"kind": "untracked", "order_id": "W-3", "occurred_at": days_ago(29),
                        "amount_minor": 5_000});
    assert_status(
        app.post(&path, partner_key, &recent).await,
        StatusCode::CREATED,
    )
    .await;
    // No window: any sale mitra takes.
    assert_eq!(
        assert_status(set(Value::Null).await, StatusCode::OK).await["window_days"],
        Value::Null
    );
    assert_status(
        app.post(&path, partner_key, &dispute).await,
        StatusCode::CREATED,
    )
    .await;
    assert_status(
        app.post(&path, partner_key, &old_sale).await,
        StatusCode::CREATED,
    )
    .await;
}

#[tokio::test]
async fn an_accepted_renewal_is_priced_as_one_through_its_first_payment() {
    // Arrange: 20% of sales, renewals paid for 2 months. The shop reported a
    // subscription's first payment and two renewals with no click, so
    // none was attributed; Ayu and Budi each have an agreement.
    let app = spawn_app().await;
    let program = app.create_program().await;
    let rule = json!({"commission": {"sale": {"percent_bps": 2000, "recurring": {"months": 2}}}});
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    let to_ayu = app
        .create_agreement(&program, &[(&ayu, 10_000)], rule.clone())
        .await;
    app.create_agreement(&program, &[(&budi, 10_000)], rule)
        .await;
    let first_at = chrono::Utc::now() - chrono::Duration::days(70);
    let at = |days| first_at + chrono::Duration::days(days);
    for (order, days) in [("S-1", 0), ("S-2", 40), ("S-4", 65)] {
        let body = json!({"order_id": order, "event": "sale", "amount_minor": 5_000,
                          "currency": "EUR", "subscription_id": "sub-1", "occurred_at": at(days)});
        assert_status(
            app.post_conversion(&program, &body).await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    app.attribute().await;
    assert_eq!(
        app.conversion(&program, "S-4").await["reason"],
        "subscription_not_attributed"
    );
    let program_key = s(&program["api_key"]);
    let claim = |partner: &Value, order: &str, days: i64| {
        let body = json!({"kind": "untracked", "order_id": order, "occurred_at": at(days),
                          "amount_minor": 5_000});
        let (app, program, partner) = (&app, &program, partner.clone());
        async move { open(app, program, &partner, body).await }
    };

    // A renewal past the rule's 2 months earns nothing, claimed or not (it
    // was booked as a first payment, at 20%, before).
    let late = try_act(
        &app,
        program_key,
        &claim(&ayu, "S-4", 65).await,
        "accept",
        None,
    )
    .await;
    let problem = assert_problem(late, StatusCode::CONFLICT).await;
    assert!(
        s(&problem["detail"]).contains("past the months"),
        "{problem}"
    );
    assert_eq!(
        app.conversion(&program, "S-4").await["commissions"],
        json!([])
    );

    // The first payment, claimed by Ayu: her agreement's from now on.
    act(
        &app,
        program_key,
        &claim(&ayu, "S-1", 0).await,
        "accept",
        None,
    )
    .await;
    // Budi's claim of a renewal goes against where attribution sends it.
    let theirs = try_act(
        &app,
        program_key,
        &claim(&budi, "S-2", 40).await,
        "accept",
        None,
    )
    .await;
    let problem = assert_problem(theirs, StatusCode::CONFLICT).await;
    assert!(
        s(&problem["detail"]).contains("another agreement"),
        "{problem}"
    );
    // Ayu's claim of a renewal within the months: booked as a renewal.
    act(
        &app,
        program_key,
        &claim(&ayu, "S-2", 40).await,
        "accept",
        None,
    )
    .await;
    let s2 = app.conversion(&program, "S-2").await;
    assert_eq!(
        (&s2["status"], &s2["attributed_via"], &s2["agreement_id"]),
        (&json!("attributed"), &json!("claim"), &to_ayu["id"])
    );
    let commission = &s2["commissions"][0];
    assert_eq!(commission["amount_minor"], 1_000);
    let renewal = &commission["rule"]["renewal"];
    assert_eq!(
        (&renewal["subscription_id"], &renewal["months"]),
        (&json!("sub-1"), &json!(2))
    );
    assert_eq!(
        renewal["first_conversion_id"],
        app.conversion(&program, "S-1").await["id"]
    );
}
