//! Commission lifecycle: approval after the hold, a person's decisions,
//! payouts with thresholds and carried refunds, and partner statements.

use crate::helpers::*;
use chrono::Duration;
use mitra::background::Step;
use mitra::startup::Roles;
use reqwest::StatusCode;
use serde_json::{Value, json};

const MINUTE: Duration = Duration::minutes(1);

async fn book_sale(app: &TestApp, f: &Fixture, order: &str, amount: i64) -> Value {
    let click = app.click_id_ago(&f.link, MINUTE);
    assert_status(
        app.post_conversion(&f.program, &sale(order, amount, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    app.conversion(&f.program, order).await
}

async fn approve_due(app: &TestApp) {
    let worker = app.workers.lifecycle();
    while worker.step().await.unwrap() != Step::Idle {}
}

async fn balance(app: &TestApp, partner: &Value) -> Value {
    let path = format!("/v1/partners/{}/balance", s(&partner["id"]));
    let b = assert_status(app.get(&path, s(&partner["api_key"])).await, StatusCode::OK).await;
    b["balances"]
        .get(0)
        .cloned()
        .unwrap_or(json!({"pending_minor": 0, "approved_minor": 0, "paid_minor": 0}))
}

fn amounts(b: &Value) -> (i64, i64, i64) {
    (
        b["pending_minor"].as_i64().unwrap(),
        b["approved_minor"].as_i64().unwrap(),
        b["paid_minor"].as_i64().unwrap(),
    )
}

async fn payout(app: &TestApp, program: &Value, min: i64) -> Value {
    let path = format!("/v1/programs/{}/payouts", s(&program["id"]));
    let res = app
        .post(
            &path,
            s(&program["api_key"]),
            &json!({"min_amount_minor": min}),
        )
        .await;
    assert_status(res, StatusCode::CREATED).await
}

async fn fixture_with_hold(app: &TestApp, hold_days: i64) -> Fixture {
    let program = app
        .create_program_with(json!({"hold_days": hold_days}))
        .await;
    let partner = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&partner, 10000)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    Fixture {
        program,
        partner,
        agreement,
        link,
    }
}

#[tokio::test]
async fn with_no_hold_the_running_worker_approves_within_a_minute() {
    let app = spawn_app_with(Roles::ALL, &[]).await;
    let f = fixture_with_hold(&app, 0).await;
    let click = app.click_id_ago(&f.link, MINUTE);
    assert_status(
        app.post_conversion(&f.program, &sale("H-0", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let started = std::time::Instant::now();
    loop {
        let c = app.conversion(&f.program, "H-0").await;
        if c["commissions"]
            .get(0)
            .is_some_and(|c| c["status"] == "approved")
        {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "not approved within a minute: {c}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(amounts(&balance(&app, &f.partner).await), (0, 1_000, 0));
}

#[tokio::test]
async fn during_the_hold_commissions_stay_pending_until_a_person_decides() {
    let app = spawn_app().await;
    let f = fixture_with_hold(&app, 30).await;
    let a = book_sale(&app, &f, "H-1", 10_000).await;
    let b = book_sale(&app, &f, "H-2", 20_000).await;
    approve_due(&app).await;
    assert_eq!(
        amounts(&balance(&app, &f.partner).await),
        (3_000, 0, 0),
        "still in the hold"
    );

    let approve = |c: &Value| format!("/v1/commissions/{}/approve", s(&c["commissions"][0]["id"]));
    let reject = |c: &Value| format!("/v1/commissions/{}/reject", s(&c["commissions"][0]["id"]));
    // Not the partner's decision, nor another program's.
    let other = app.create_program().await;
    assert_problem(
        app.post(&approve(&a), s(&f.partner["api_key"]), &json!({}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.post(&approve(&a), s(&other["api_key"]), &json!({}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The program approves one early, and rejects the other with a reason.
    assert_status(
        app.post(
            &approve(&a),
            s(&f.program["api_key"]),
            &json!({"reason": "trusted partner"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let problem = assert_problem(
        app.post(&reject(&b), s(&f.program["api_key"]), &json!({}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(invalid_fields(&problem), vec!["reason"]);
    assert_status(
        app.post(
            &reject(&b),
            s(&f.program["api_key"]),
            &json!({"reason": "order cancelled"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // Decisions are final: a second one conflicts.
    assert_problem(
        app.post(&reject(&a), &app.admin_token, &json!({"reason": "x"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(amounts(&balance(&app, &f.partner).await), (0, 1_000, 0));
    assert_eq!(
        app.conversion(&f.program, "H-2").await["commissions"][0]["status"],
        "reversed"
    );

    // Both decisions are in the ledger, with who and why.
    let decisions: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "select kind, actor, reason from ledger_entries where kind in ('approved', 'rejected') and bucket <> 'approved' order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let program_id = s(&f.program["id"]).to_owned();
    assert_eq!(
        decisions,
        vec![
            (
                "approved".into(),
                program_id.clone(),
                Some("trusted partner".into())
            ),
            (
                "rejected".into(),
                program_id,
                Some("order cancelled".into())
            ),
        ]
    );
}

#[tokio::test]
async fn a_commission_held_for_review_is_never_approved_by_the_clock() {
    let app = spawn_app().await;
    let f = fixture_with_hold(&app, 0).await;
    // Converted half a second after the click: too fast, held for review.
    let click = app.click_id_ago(&f.link, Duration::milliseconds(500));
    assert_status(
        app.post_conversion(&f.program, &sale("V-1", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    approve_due(&app).await;
    let c = app.conversion(&f.program, "V-1").await;
    assert_eq!(
        (
            c["commissions"][0]["status"].clone(),
            c["commissions"][0]["review"].clone()
        ),
        (json!("pending"), json!(true))
    );
    let path = format!("/v1/commissions/{}/approve", s(&c["commissions"][0]["id"]));
    assert_status(
        app.post(
            &path,
            &app.admin_token,
            &json!({"reason": "checked the order"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let c = app.conversion(&f.program, "V-1").await;
    assert_eq!(
        (
            c["commissions"][0]["status"].clone(),
            c["commissions"][0]["review"].clone()
        ),
        (json!("approved"), json!(false))
    );
}

#[tokio::test]
async fn a_payout_pays_balances_above_the_threshold_and_exports_csv() {
    let app = spawn_app().await;
    let program = app.create_program_with(json!({"hold_days": 0})).await;
    let ayu = app.create_partner("Ayu, \"the\" Partner").await;
    let budi = app.create_partner("Budi").await;
    let a_link = app
        .create_link(
            &app.create_agreement(&program, &[(&ayu, 10000)], json!({}))
                .await,
            json!({}),
        )
        .await;
    let b_link = app
        .create_link(
            &app.create_agreement(&program, &[(&budi, 10000)], json!({}))
                .await,
            json!({}),
        )
        .await;
    for (i, (link, amount)) in [(&a_link, 50_000), (&a_link, 30_000), (&b_link, 4_000)]
        .into_iter()
        .enumerate()
    {
        let click = app.click_id_ago(link, MINUTE);
        assert_status(
            app.post_conversion(&program, &sale(&format!("P-{i}"), amount, &click))
                .await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    app.attribute().await;
    approve_due(&app).await;
    // Ayu has 8,000 approved, Budi 400: with a threshold of 1,000 only Ayu is paid.
    let p = payout(&app, &program, 1_000).await;
    assert!(s(&p["id"]).starts_with("pay_"));
    assert_eq!(p["items"].as_array().unwrap().len(), 1);
    assert_eq!(p["items"][0]["partner_id"], ayu["id"]);
    assert_eq!(
        (
            p["items"][0]["amount_minor"].clone(),
            p["items"][0]["commission_count"].clone()
        ),
        (json!(8_000), json!(2))
    );
    assert_eq!(amounts(&balance(&app, &ayu).await), (0, 0, 8_000));
    assert_eq!(
        amounts(&balance(&app, &budi).await),
        (0, 400, 0),
        "below the threshold: carried"
    );

    let path = format!("/v1/payouts/{}", s(&p["id"]));
    let again = assert_status(app.get(&path, s(&program["api_key"])).await, StatusCode::OK).await;
    assert_eq!(again["items"], p["items"]);
    let csv = app
        .client
        .get(app.url(&path))
        .bearer_auth(s(&program["api_key"]))
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
    assert_eq!(
        text,
        format!(
            "payout_id,partner_id,partner_name,currency,amount_minor,amount,commission_count\n{},{},\"Ayu, \"\"the\"\" Partner\",EUR,8000,80.00,2\n",
            s(&p["id"]),
            s(&ayu["id"])
        )
    );
    // Nothing is paid twice: a second payout finds nothing above the threshold.
    let second = payout(&app, &program, 1_000).await;
    assert_eq!(second["items"], json!([]));
    // Another tenant sees no such payout.
    let other = app.create_program().await;
    assert_problem(
        app.get(&path, s(&other["api_key"])).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.get(&path, s(&ayu["api_key"])).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let other_path = format!("/v1/programs/{}/payouts", s(&program["id"]));
    assert_problem(
        app.post(&other_path, s(&other["api_key"]), &json!({}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_refund_after_payout_is_carried_into_the_next_payout() {
    let app = spawn_app().await;
    let f = fixture_with_hold(&app, 0).await;
    book_sale(&app, &f, "D-1", 100_000).await; // 10,000 commission
    approve_due(&app).await;
    payout(&app, &f.program, 1).await;
    assert_eq!(amounts(&balance(&app, &f.partner).await), (0, 0, 10_000));

    // The order is refunded in full after the money went out.
    let refund =
        json!({"order_id": "D-1", "event": "refund", "amount_minor": 100_000, "currency": "EUR"});
    assert_status(
        app.post_conversion(&f.program, &refund).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let c = app.conversion(&f.program, "D-1").await;
    assert_eq!(c["commissions"][0]["status"], "reversed");
    assert_eq!(
        amounts(&balance(&app, &f.partner).await),
        (0, -10_000, 10_000),
        "a debt against the next payout"
    );

    // A smaller new commission does not cover the debt: nothing is paid.
    book_sale(&app, &f, "D-2", 40_000).await; // 4,000
    approve_due(&app).await;
    assert_eq!(payout(&app, &f.program, 1).await["items"], json!([]));
    assert_eq!(
        amounts(&balance(&app, &f.partner).await),
        (0, -6_000, 10_000)
    );
    // Once it does, the payout nets it.
    book_sale(&app, &f, "D-3", 90_000).await; // 9,000
    approve_due(&app).await;
    let p = payout(&app, &f.program, 1).await;
    assert_eq!(
        (
            p["items"][0]["amount_minor"].clone(),
            p["items"][0]["commission_count"].clone()
        ),
        (json!(3_000), json!(2))
    );
    assert_eq!(amounts(&balance(&app, &f.partner).await), (0, 0, 13_000));
}

#[tokio::test]
async fn a_partial_refund_of_an_approved_commission_reduces_its_approved_balance() {
    let app = spawn_app().await;
    let f = fixture_with_hold(&app, 0).await;
    book_sale(&app, &f, "Q-1", 10_000).await;
    approve_due(&app).await;
    let refund =
        json!({"order_id": "Q-1", "event": "refund", "amount_minor": 2_500, "currency": "EUR"});
    assert_status(
        app.post_conversion(&f.program, &refund).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    assert_eq!(amounts(&balance(&app, &f.partner).await), (0, 750, 0));
    let c = app.conversion(&f.program, "Q-1").await;
    assert_eq!(
        (
            c["commissions"][0]["amount_minor"].clone(),
            c["commissions"][0]["status"].clone()
        ),
        (json!(750), json!("approved"))
    );
}

#[tokio::test]
async fn concurrent_payouts_never_pay_a_commission_twice() {
    let app = spawn_app().await;
    let f = fixture_with_hold(&app, 0).await;
    for i in 0..20 {
        let click = app.click_id_ago(&f.link, MINUTE);
        assert_status(
            app.post_conversion(&f.program, &sale(&format!("C-{i}"), 1_000, &click))
                .await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    app.attribute().await;
    approve_due(&app).await;
    let payouts = futures::future::join_all((0..4).map(|_| payout(&app, &f.program, 1))).await;
    let paid: i64 = payouts
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter())
        .map(|i| i["amount_minor"].as_i64().unwrap())
        .sum();
    assert_eq!(paid, 2_000, "20 commissions of 100, paid once");
    let with_items = payouts
        .iter()
        .filter(|p| !p["items"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(with_items, 1);
    let entries: i64 =
        sqlx::query_scalar("select count(*) from ledger_entries where kind = 'paid'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(entries, 40, "one pair of entries per commission");
}

#[tokio::test]
async fn commissions_list_with_filters_and_pages_for_the_partner_only() {
    let app = spawn_app().await;
    let f = fixture_with_hold(&app, 30).await;
    for i in 0..5 {
        book_sale(&app, &f, &format!("L-{i}"), 1_000 * (i + 1)).await;
    }
    let first = app.conversion(&f.program, "L-0").await;
    let reject = format!(
        "/v1/commissions/{}/reject",
        s(&first["commissions"][0]["id"])
    );
    assert_status(
        app.post(&reject, &app.admin_token, &json!({"reason": "test order"}))
            .await,
        StatusCode::OK,
    )
    .await;
    let base = format!("/v1/partners/{}/commissions", s(&f.partner["id"]));
    let key = s(&f.partner["api_key"]);
    let page = assert_status(
        app.get(&format!("{base}?limit=2"), key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let next = s(&page["next_cursor"]).to_owned();
    let page2 = assert_status(
        app.get(&format!("{base}?limit=2&cursor={next}"), key).await,
        StatusCode::OK,
    )
    .await;
    assert_ne!(page2["data"][0]["id"], page["data"][0]["id"]);
    let pending = assert_status(
        app.get(&format!("{base}?status=pending"), key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(pending["data"].as_array().unwrap().len(), 4);
    let c = &pending["data"][0];
    for field in [
        "id",
        "conversion_id",
        "program_id",
        "partner_id",
        "agreement_id",
        "agreement_version",
        "amount_minor",
        "currency",
        "status",
        "order_id",
        "rule",
    ] {
        assert!(!c[field].is_null(), "{field} in {c}");
    }
    let reversed = assert_status(
        app.get(&format!("{base}?status=reversed"), key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reversed["data"].as_array().unwrap().len(), 1);
    assert_problem(
        app.get(&format!("{base}?status=nonsense"), key).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Nobody else reads them.
    let other = app.create_partner("Eve").await;
    for token in [s(&other["api_key"]), s(&f.program["api_key"])] {
        for path in [
            base.clone(),
            format!("/v1/partners/{}/balance", s(&f.partner["id"])),
            format!("/v1/partners/{}/statement", s(&f.partner["id"])),
        ] {
            assert_problem(app.get(&path, token).await, StatusCode::NOT_FOUND).await;
        }
    }
}

/// Sum of entries per bucket, from a statement's lines.
fn entry_sums(lines: &[Value]) -> (i64, i64, i64) {
    let mut sums = (0, 0, 0);
    for l in lines {
        let a = l["amount_minor"].as_i64().unwrap();
        match s(&l["bucket"]) {
            "pending" => sums.0 += a,
            "approved" => sums.1 += a,
            _ => sums.2 += a,
        }
    }
    sums
}

#[tokio::test]
async fn after_a_random_run_every_statement_reconciles_to_the_balance() {
    let app = spawn_app().await;
    let program = app.create_program_with(json!({"hold_days": 0})).await;
    let partners = [
        app.create_partner("Ayu").await,
        app.create_partner("Budi").await,
        app.create_partner("Citra").await,
    ];
    let solo = app
        .create_link(
            &app.create_agreement(&program, &[(&partners[0], 10000)], json!({}))
                .await,
            json!({}),
        )
        .await;
    let joint = app
        .create_link(
            &app.create_agreement(
                &program,
                &[(&partners[1], 3333), (&partners[2], 6667)],
                json!({}),
            )
            .await,
            json!({}),
        )
        .await;
    // A small deterministic generator: the run is random but repeatable.
    let mut seed: u64 = 0x5eed_1234;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..6 {
        for i in 0..8 {
            let link = if next(2) == 0 { &solo } else { &joint };
            let order = format!("R{round}-{i}");
            let amount = 1_000 + next(90_000) as i64;
            let click = app.click_id_ago(link, MINUTE);
            assert_status(
                app.post_conversion(&program, &sale(&order, amount, &click))
                    .await,
                StatusCode::ACCEPTED,
            )
            .await;
            if next(3) == 0 {
                let refund = json!({"order_id": order, "event": "refund", "amount_minor": 1 + next(amount as u64) as i64,
                                    "currency": "EUR", "event_id": format!("{order}-r")});
                assert_status(
                    app.post_conversion(&program, &refund).await,
                    StatusCode::ACCEPTED,
                )
                .await;
            }
        }
        app.attribute().await;
        if next(2) == 0 {
            approve_due(&app).await;
        }
        app.attribute().await; // refunds that waited for their sale
        if next(2) == 0 {
            payout(&app, &program, 1 + next(5_000) as i64).await;
        }
    }
    for partner in &partners {
        let base = format!("/v1/partners/{}", s(&partner["id"]));
        let balance = amounts(&balance(&app, partner).await);
        let st = assert_status(
            app.get(
                &format!("{base}/statement?from=2000-01-01T00:00:00Z"),
                s(&partner["api_key"]),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let lines = st["entries"].as_array().unwrap();
        assert!(!lines.is_empty());
        assert_eq!(
            entry_sums(lines),
            balance,
            "statement entries sum to the balance"
        );
        assert_eq!(amounts(&st["closing"][0]), balance);
        assert_eq!(st["opening"], json!([]));
        // Every commission line carries what explains it.
        for l in lines.iter().filter(|l| !l["commission_id"].is_null()) {
            for field in [
                "conversion_id",
                "order_id",
                "agreement_id",
                "agreement_version",
                "rule",
                "base_minor",
                "share_bps",
            ] {
                assert!(!l[field].is_null(), "{field} missing in {l}");
            }
        }
        // The commissions' amounts are what the pending and approved buckets
        // hold, plus what was paid, less the debts carried.
        let held: i64 = sqlx::query_scalar(
            "select coalesce(sum(amount_minor), 0)::bigint from commissions where partner_id = $1 and status in ('pending', 'approved')",
        )
        .bind(mitra::domain::PartnerId::parse(s(&partner["id"])).unwrap().get())
        .fetch_one(&app.db)
        .await
        .unwrap();
        let carried: i64 = lines
            .iter()
            .filter(|l| l["kind"] == "carried" || l["kind"] == "settled")
            .filter(|l| l["bucket"] == "approved")
            .map(|l| l["amount_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(
            balance.0 + balance.1,
            held + carried,
            "buckets match the commissions"
        );
    }
}

#[tokio::test]
async fn a_statement_of_a_period_opens_and_closes_on_the_balances() {
    let app = spawn_app().await;
    let f = fixture_with_hold(&app, 0).await;
    book_sale(&app, &f, "S-1", 10_000).await;
    let middle = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    approve_due(&app).await;
    let base = format!("/v1/partners/{}/statement", s(&f.partner["id"]));
    let q = |from: &str, to: &str| format!("{base}?from={}&to={}", urlenc(from), urlenc(to));
    let later = (chrono::Utc::now() + Duration::seconds(1)).to_rfc3339();
    let st = assert_status(
        app.get(&q(&middle.to_rfc3339(), &later), s(&f.partner["api_key"]))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(amounts(&st["opening"][0]), (1_000, 0, 0));
    assert_eq!(
        st["entries"].as_array().unwrap().len(),
        2,
        "the approval: out of pending, into approved"
    );
    assert_eq!(amounts(&st["closing"][0]), (0, 1_000, 0));
    assert_problem(
        app.get(&q(&later, &middle.to_rfc3339()), s(&f.partner["api_key"]))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Balances read from a checkpoint plus the entries after it must equal the
/// sum of the whole ledger, whenever the checkpoint is taken, including one
/// taken while a transaction that writes an entry is still open.
#[tokio::test]
async fn balances_and_statements_read_through_checkpoints_unchanged() {
    use mitra::commissions::checkpoints;
    let app = spawn_app().await;
    let f = fixture_with_hold(&app, 0).await;
    let before_all = chrono::Utc::now();
    book_sale(&app, &f, "S-1", 10_000).await;
    approve_due(&app).await;
    let first = checkpoints::take(&app.db, Some(chrono::Utc::now()))
        .await
        .unwrap()
        .expect("the first checkpoint is taken");
    assert_eq!(
        checkpoints::take(&app.db, Some(first)).await.unwrap(),
        None,
        "not twice at one instant"
    );
    assert_eq!(amounts(&balance(&app, &f.partner).await), (0, 1_000, 0));

    book_sale(&app, &f, "S-2", 20_000).await;
    assert_eq!(amounts(&balance(&app, &f.partner).await), (2_000, 1_000, 0));

    // A transaction that started before the next checkpoint and commits
    // after it: its entry is older than the checkpoint's instant, so the
    // checkpoint must not claim to cover that instant.
    let mut open = app.db.begin().await.unwrap();
    sqlx::query(
        "insert into ledger_entries (program_id, partner_id, currency, bucket, amount_minor, kind, actor)
         values ($1, $2, 'EUR', 'approved', -300, 'carried', 'test')",
    )
    .bind(mitra::domain::ProgramId::parse(s(&f.program["id"])).unwrap().get())
    .bind(mitra::domain::PartnerId::parse(s(&f.partner["id"])).unwrap().get())
    .execute(&mut *open)
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = checkpoints::take(&app.db, Some(chrono::Utc::now()))
        .await
        .unwrap()
        .expect("a later checkpoint is taken");
    assert!(second > first);
    open.commit().await.unwrap();
    assert_eq!(
        amounts(&balance(&app, &f.partner).await),
        (2_000, 700, 0),
        "the entry committed after the checkpoint counts once"
    );

    let (pending, approved, paid): (i64, i64, i64) = sqlx::query_as(
        "select coalesce(sum(amount_minor) filter (where bucket = 'pending'), 0)::bigint,
                coalesce(sum(amount_minor) filter (where bucket = 'approved'), 0)::bigint,
                coalesce(sum(amount_minor) filter (where bucket = 'paid'), 0)::bigint
         from ledger_entries where partner_id = $1",
    )
    .bind(
        mitra::domain::PartnerId::parse(s(&f.partner["id"]))
            .unwrap()
            .get(),
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((pending, approved, paid), (2_000, 700, 0));

    // A statement opening between the two checkpoints opens on the first
    // one plus what followed, and closes on the balance.
    let path = format!(
        "/v1/partners/{}/statement?from={}&to={}",
        s(&f.partner["id"]),
        urlenc(&second.to_rfc3339()),
        urlenc(&(chrono::Utc::now() + Duration::seconds(1)).to_rfc3339())
    );
    let st = assert_status(
        app.get(&path, s(&f.partner["api_key"])).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(amounts(&st["closing"][0]), (2_000, 700, 0));
    let whole = format!(
        "/v1/partners/{}/statement?from={}&to={}",
        s(&f.partner["id"]),
        urlenc(&before_all.to_rfc3339()),
        urlenc(&(chrono::Utc::now() + Duration::seconds(1)).to_rfc3339())
    );
    let st = assert_status(
        app.get(&whole, s(&f.partner["api_key"])).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(st["opening"], json!([]), "nothing before the first sale");
    assert_eq!(amounts(&st["closing"][0]), (2_000, 700, 0));
}

/// Runs `statements` in one transaction (rolled back) and answers the
/// SQLSTATE and message of the first that fails, or None if none fails.
async fn first_refusal(db: &sqlx::PgPool, statements: &[&'static str]) -> Option<(String, String)> {
    let mut tx = db.begin().await.unwrap();
    for sql in statements {
        if let Err(e) = sqlx::query(*sql).execute(&mut *tx).await {
            let d = e.as_database_error().expect("a database error");
            return Some((d.code().unwrap().into_owned(), d.message().to_owned()));
        }
    }
    tx.rollback().await.unwrap();
    None
}

/// The references between money rows (commission -> conversion, ledger
/// entry -> conversion and commission) hold as foreign keys would, checked
/// once per statement: a row referring to nothing is refused with the
/// foreign key's SQLSTATE, a row referring to what exists is stored, and
/// the rows referred to are never deleted, truncated or given new keys.
#[tokio::test]
async fn money_rows_refer_to_rows_that_exist_and_those_are_never_deleted() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    book_sale(&app, &f, "refers-1", 10_000).await;
    let db = &app.db;
    let copy_commission =
        "create temporary table c on commit drop as select * from commissions limit 1";
    let copy_entry =
        "create temporary table e on commit drop as select * from ledger_entries limit 1";
    let cases: [(&[&'static str], Option<&str>); 8] = [
        (
            &[
                copy_commission,
                "update c set id = id + 1000000, conversion_id = conversion_id + 1000000",
                "insert into commissions overriding system value select * from c",
            ],
            Some("23503"),
        ),
        (
            // The same row for a conversion that exists (as a bonus, so it
            // is not the commission already booked) is stored.
            &[
                copy_commission,
                "update c set id = id + 1000000, kind = 'bonus', once_key = 'refers'",
                "insert into commissions overriding system value select * from c",
            ],
            None,
        ),
        (
            &[
                copy_entry,
                "update e set id = id + 1000000, commission_id = commission_id + 1000000",
                "insert into ledger_entries overriding system value select * from e",
            ],
            Some("23503"),
        ),
        (
            &[
                copy_entry,
                "update e set id = id + 1000000, conversion_id = conversion_id + 1000000",
                "insert into ledger_entries overriding system value select * from e",
            ],
            Some("23503"),
        ),
        (&["delete from conversions"], Some("23001")),
        (&["truncate commissions cascade"], Some("23001")),
        (
            &["update commissions set conversion_id = conversion_id + 1"],
            Some("23001"),
        ),
        (&["update conversions set id = default"], Some("23001")),
    ];
    for (statements, expected) in cases {
        let refused = first_refusal(db, statements).await;
        assert_eq!(
            refused.as_ref().map(|(code, _)| code.as_str()),
            expected,
            "{statements:?}: {refused:?}"
        );
    }
    // Nothing above was kept; the booking is whole.
    let (commissions, entries): (i64, i64) = sqlx::query_as(
        "select (select count(*) from commissions), (select count(*) from ledger_entries)",
    )
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!((commissions, entries), (1, 1));
}
