//! Shop integrations: Shopify, WooCommerce and Stripe webhooks, built from
//! the fixtures in tests/fixtures (bodies as the platforms document them),
//! signed as each platform signs, stored through the same path as mitra's
//! own webhook and booked by the attribution worker.

use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{Duration, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

const MINUTE: Duration = Duration::minutes(1);
pub const SHOPIFY_SECRET: &str = "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";
pub const WOO_SECRET: &str = "wc-secret-3kD9!pQz@Lm2#vX8";
pub const STRIPE_SECRET: &str = "whsec_9aB3cD5eF7gH1jK3mN5pQ7rS9tV1wX3y";

/// A fixture body from tests/fixtures.
pub fn load(path: &str) -> Value {
    let file = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"))).unwrap()
}

/// Base64 HMAC-SHA256 of the body: how Shopify and WooCommerce sign.
fn body_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// A program in `currency`, a partner with all of one agreement, its link,
/// and each platform's secret set by the program's own key.
pub async fn shop(app: &TestApp, currency: &str) -> Fixture {
    let program = app.create_program_with(json!({"currency": currency})).await;
    let partner = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(
            &program,
            &[(&partner, 10000)],
            json!({"coupon_codes": ["AYU10"]}),
        )
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    for (platform, secret) in [
        ("shopify", SHOPIFY_SECRET),
        ("woocommerce", WOO_SECRET),
        ("stripe", STRIPE_SECRET),
    ] {
        let path = format!(
            "/v1/programs/{}/integrations/{platform}/secret",
            s(&program["id"])
        );
        let res = app
            .put(&path, s(&program["api_key"]), &json!({"secret": secret}))
            .await;
        assert_status(res, StatusCode::OK).await;
    }
    Fixture {
        program,
        partner,
        agreement,
        link,
    }
}

impl TestApp {
    /// Posts `body` to a platform's endpoint of `program` with `headers`.
    pub async fn post_platform(
        &self,
        program: &Value,
        platform: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> reqwest::Response {
        let path = format!("/v1/programs/{}/integrations/{platform}", s(&program["id"]));
        let mut req = self
            .client
            .post(self.url(&path))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req.send().await.unwrap()
    }

    /// A Shopify webhook of `topic`, signed with `secret`.
    async fn shopify(
        &self,
        program: &Value,
        topic: &str,
        body: &Value,
        secret: &str,
    ) -> reqwest::Response {
        let raw = serde_json::to_vec(body).unwrap();
        let headers = [
            ("X-Shopify-Topic", topic.to_owned()),
            ("X-Shopify-Hmac-Sha256", body_hmac(secret, &raw)),
            (
                "X-Shopify-Shop-Domain",
                "batik-shop.myshopify.com".to_owned(),
            ),
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".to_owned(),
            ),
            ("X-Shopify-API-Version", "2025-10".to_owned()),
        ];
        self.post_platform(program, "shopify", &headers, raw).await
    }

    /// A WooCommerce webhook of `topic`, signed with `secret`.
    async fn woocommerce(
        &self,
        program: &Value,
        topic: &str,
        body: &Value,
        secret: &str,
    ) -> reqwest::Response {
        let raw = serde_json::to_vec(body).unwrap();
        let (resource, event) = topic.split_once('.').unwrap();
        let headers = [
            ("X-WC-Webhook-Topic", topic.to_owned()),
            ("X-WC-Webhook-Resource", resource.to_owned()),
            ("X-WC-Webhook-Event", event.to_owned()),
            ("X-WC-Webhook-Signature", body_hmac(secret, &raw)),
            ("X-WC-Webhook-ID", "15".to_owned()),
            ("X-WC-Webhook-Delivery-ID", "a8d1c2b3e4f5".to_owned()),
            (
                "X-WC-Webhook-Source",
                "https://batik-shop.example/".to_owned(),
            ),
        ];
        self.post_platform(program, "woocommerce", &headers, raw)
            .await
    }

    /// A Stripe event, signed with `secret` as Stripe signs (now).
    async fn stripe(&self, program: &Value, body: &Value, secret: &str) -> reqwest::Response {
        let raw = serde_json::to_vec(body).unwrap();
        let t = Utc::now().timestamp();
        let header = mitra::conversions::signature::header(secret, t, &raw);
        self.post_platform(program, "stripe", &[("Stripe-Signature", header)], raw)
            .await
    }

    async fn count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from conversions")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

fn rfc3339(at: chrono::DateTime<Utc>) -> Value {
    at.to_rfc3339_opts(SecondsFormat::Secs, true).into()
}

/// The Shopify order of the fixture, paid now, with this click id.
fn shopify_order(click: &str) -> Value {
    let mut order = load("shopify/orders_paid.json");
    order["created_at"] = rfc3339(Utc::now() - Duration::seconds(20));
    order["processed_at"] = rfc3339(Utc::now() - Duration::seconds(10));
    order["note_attributes"][0]["value"] = click.into();
    order
}

fn shopify_refund() -> Value {
    let mut refund = load("shopify/refunds_create.json");
    refund["created_at"] = rfc3339(Utc::now());
    refund["processed_at"] = rfc3339(Utc::now());
    refund
}

/// (amount, status) of each commission of an order.
fn commissions(conversion: &Value) -> Vec<(i64, String)> {
    conversion["commissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["amount_minor"].as_i64().unwrap(),
                s(&c["status"]).to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_shopify_order_is_booked_once_however_often_it_comes_and_its_refund_reduces_it() {
    let app = spawn_app().await;
    let f = shop(&app, "EUR").await;
    let order = shopify_order(&app.click_id_ago(&f.link, MINUTE));

    let first = assert_status(
        app.shopify(&f.program, "orders/paid", &order, SHOPIFY_SECRET)
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    // Committed before the answer.
    assert_eq!(app.count().await, 1);
    assert_eq!(first["status"], "stored");
    assert_eq!(first["conversions"][0]["order_id"], "820982911946154508");
    assert_eq!(first["conversions"][0]["event"], "sale");
    assert_eq!(first["conversions"][0]["status"], "received");
    let id = first["conversions"][0]["conversion_id"].clone();
    // Shopify retries the delivery, and orders/create tells of the same order.
    for topic in ["orders/paid", "orders/create"] {
        let again = assert_status(
            app.shopify(&f.program, topic, &order, SHOPIFY_SECRET).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(again["conversions"][0]["conversion_id"], id, "{topic}");
    }
    assert_eq!(app.count().await, 1);

    app.attribute().await;
    let booked = app.conversion(&f.program, "820982911946154508").await;
    assert_eq!(booked["status"], "attributed");
    assert_eq!(
        booked["attributed_via"], "coupon",
        "the discount code AYU10 is the agreement's"
    );
    assert_eq!(booked["amount_minor"], 18_495);
    assert_eq!(booked["currency"], "EUR");
    assert_eq!(booked["event_id"], "shopify:order:820982911946154508");
    // 10% of 184.95, rounded half away from zero.
    assert_eq!(commissions(&booked), vec![(1_850, "pending".to_owned())]);

    let refund = shopify_refund();
    assert_status(
        app.shopify(&f.program, "refunds/create", &refund, SHOPIFY_SECRET)
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_status(
        app.shopify(&f.program, "refunds/create", &refund, SHOPIFY_SECRET)
            .await,
        StatusCode::OK,
    )
    .await;
    app.attribute().await;
    let after = app.conversion(&f.program, "820982911946154508").await;
    assert_eq!(after["refunds"].as_array().unwrap().len(), 1);
    assert_eq!(after["refunded_minor"], 7_200);
    // floor(1850 × (18495 − 7200) / 18495)
    assert_eq!(commissions(&after), vec![(1_129, "pending".to_owned())]);
}

#[tokio::test]
async fn a_shopify_refund_before_its_order_waits_for_it() {
    let app = spawn_app().await;
    let f = shop(&app, "USD").await;
    assert_status(
        app.shopify(
            &f.program,
            "refunds/create",
            &shopify_refund(),
            SHOPIFY_SECRET,
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let waiting = app.conversion(&f.program, "820982911946154508").await;
    assert_eq!(waiting["status"], "waiting");
    assert_eq!(
        waiting["refunds"][0]["amount_minor"], 7_920,
        "the presentment currency's figure"
    );

    let mut order = shopify_order(&app.click_id_ago(&f.link, MINUTE));
    order["discount_codes"] = json!([]);
    assert_status(
        app.shopify(&f.program, "orders/paid", &order, SHOPIFY_SECRET)
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let booked = app.conversion(&f.program, "820982911946154508").await;
    assert_eq!(booked["status"], "attributed");
    assert_eq!(booked["attributed_via"], "click");
    assert_eq!(booked["amount_minor"], 20_344);
    assert_eq!(booked["refunded_minor"], 7_920);
    // 10% of 203.44 is 20.34; floor(2034 × (20344 − 7920) / 20344)
    assert_eq!(commissions(&booked), vec![(1_242, "pending".to_owned())]);
}

#[tokio::test]
async fn a_woocommerce_order_is_booked_and_its_refund_lines_reduce_it() {
    let app = spawn_app().await;
    let f = shop(&app, "IDR").await;
    let click = app.click_id_ago(&f.link, MINUTE);
    let paid_at = (Utc::now() - Duration::seconds(5))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let prepare = |path: &str| {
        let mut order = load(path);
        order["date_paid_gmt"] = paid_at.clone().into();
        order["date_created_gmt"] = paid_at.clone().into();
        order["coupon_lines"] = json!([]);
        for meta in order["meta_data"].as_array_mut().unwrap() {
            if meta["key"] == "_mitra_click" {
                meta["value"] = click.clone().into();
            }
        }
        order
    };
    let created = prepare("woocommerce/order_processing.json");
    let refunded = prepare("woocommerce/order_refunded_partially.json");

    assert_status(
        app.woocommerce(&f.program, "order.created", &created, WOO_SECRET)
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let booked = app.conversion(&f.program, "727").await;
    assert_eq!(booked["status"], "attributed");
    assert_eq!(booked["attributed_via"], "click");
    assert_eq!(booked["amount_minor"], 112_500_000);
    assert_eq!(
        commissions(&booked),
        vec![(11_250_000, "pending".to_owned())]
    );

    // The update after the refund repeats the sale and adds the refund; its
    // retry adds nothing.
    let update = assert_status(
        app.woocommerce(&f.program, "order.updated", &refunded, WOO_SECRET)
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let events: Vec<(&str, &str)> = update["conversions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (s(&c["event"]), s(&c["status"])))
        .collect();
    assert_eq!(events, vec![("sale", "attributed"), ("refund", "received")]);
    assert_status(
        app.woocommerce(&f.program, "order.updated", &refunded, WOO_SECRET)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(app.count().await, 2);
    app.attribute().await;
    let after = app.conversion(&f.program, "727").await;
    assert_eq!(after["refunded_minor"], 22_106_987);
    // floor(11250000 × (112500000 − 22106987) / 112500000)
    assert_eq!(commissions(&after), vec![(9_039_301, "pending".to_owned())]);
}

/// The Stripe fixture's payment, made now, with this click id.
fn stripe_session(click: &str) -> Value {
    stripe_session_from("stripe/checkout_session_completed.json", click)
}

/// A Checkout Session event from `fixture`, completed now with this click id.
fn stripe_session_from(fixture: &str, click: &str) -> Value {
    let mut event = load(fixture);
    let now = Utc::now().timestamp();
    event["created"] = now.into();
    event["data"]["object"]["created"] = (now - 30).into();
    event["data"]["object"]["client_reference_id"] = click.into();
    event["data"]["object"]["metadata"] = json!({});
    event
}

#[tokio::test]
async fn a_stripe_payment_and_a_renewal_are_booked_and_a_refund_reduces_the_payment() {
    let app = spawn_app().await;
    let f = shop(&app, "USD").await;
    let click = app.click_id_ago(&f.link, MINUTE);
    let session = stripe_session(&click);
    assert_status(
        app.stripe(&f.program, &session, STRIPE_SECRET).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_status(
        app.stripe(&f.program, &session, STRIPE_SECRET).await,
        StatusCode::OK,
    )
    .await;

    let mut renewal = load("stripe/invoice_paid_renewal.json");
    let now = Utc::now().timestamp();
    renewal["data"]["object"]["status_transitions"]["paid_at"] = now.into();
    renewal["data"]["object"]["subscription_details"]["metadata"]["mitra_click"] =
        click.clone().into();
    assert_status(
        app.stripe(&f.program, &renewal, STRIPE_SECRET).await,
        StatusCode::ACCEPTED,
    )
    .await;

    app.attribute().await;
    let payment = app
        .conversion(&f.program, "pi_3QKx7hLkdIwHu7ix0lQ2mZbE")
        .await;
    assert_eq!(payment["status"], "attributed");
    assert_eq!(payment["amount_minor"], 9_504);
    assert_eq!(payment["subscription_id"], Value::Null);
    assert_eq!(commissions(&payment), vec![(950, "pending".to_owned())]);
    let renewed = app
        .conversion(&f.program, "in_1QTe8kLkdIwHu7ixW3cN5yPq")
        .await;
    assert_eq!(renewed["status"], "attributed");
    assert_eq!(renewed["subscription_id"], "sub_1QKy2PLkdIwHu7ixG1b9ZsVn");
    assert_eq!(commissions(&renewed), vec![(290, "pending".to_owned())]);

    let mut refund = load("stripe/charge_refunded.json");
    refund["created"] = Utc::now().timestamp().into();
    assert_status(
        app.stripe(&f.program, &refund, STRIPE_SECRET).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let after = app
        .conversion(&f.program, "pi_3QKx7hLkdIwHu7ix0lQ2mZbE")
        .await;
    assert_eq!(after["refunded_minor"], 3_168);
    // floor(950 × (9504 − 3168) / 9504)
    assert_eq!(commissions(&after), vec![(633, "pending".to_owned())]);
}

/// A refund under Stripe's API from 2025-03-31 on, whose charges no longer
/// name their invoice: it names the payment's PaymentIntent only.
fn stripe_refund_2025(charge: &str, payment_intent: &str, amount: i64) -> Value {
    let mut refund = load("stripe/charge_refunded.json");
    refund["api_version"] = "2025-03-31.basil".into();
    refund["created"] = Utc::now().timestamp().into();
    let object = refund["data"]["object"].as_object_mut().unwrap();
    object.remove("invoice");
    object.insert("id".into(), charge.into());
    object.insert("payment_intent".into(), payment_intent.into());
    for field in ["amount", "amount_captured", "amount_refunded"] {
        object.insert(field.into(), amount.into());
    }
    refund
}

/// Stripe's `invoice_payment.paid`: `payment_intent` paid `invoice`.
fn stripe_invoice_payment(invoice: &str, payment_intent: &str) -> Value {
    let mut paid = load("stripe/invoice_payment_paid.json");
    paid["created"] = Utc::now().timestamp().into();
    paid["data"]["object"]["invoice"] = invoice.into();
    paid["data"]["object"]["payment"]["payment_intent"] = payment_intent.into();
    paid
}

/// A subscription's payments are reported under their invoices; from API
/// version 2025-03-31 on their refunds name only the PaymentIntent. The
/// invoice's `invoice_payment.paid` ties the two, before the refund (it is
/// then stored under the invoice) or after it (the waiting refund moves to
/// the invoice): either way the refund reaches its sale.
#[tokio::test]
async fn refunds_of_subscription_payments_under_stripes_2025_api_find_their_invoices() {
    let app = spawn_app().await;
    let f = shop(&app, "USD").await;
    let click = app.click_id_ago(&f.link, MINUTE);
    let (first, first_pi) = ("in_1QKy2PLkdIwHu7ixRkE6b0aT", "pi_3QKy2QLkdIwHu7ix0Zc4Vb7n");
    let session = stripe_session_from("stripe/checkout_session_subscription.json", &click);
    assert_status(
        app.stripe(&f.program, &session, STRIPE_SECRET).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let (renewal_invoice, renewal_pi) =
        ("in_1QTe8kLkdIwHu7ixW3cN5yPq", "pi_3QTe8lLkdIwHu7ix1uRkP9sQ");
    let mut renewal = load("stripe/invoice_paid_renewal.json");
    renewal["api_version"] = "2025-03-31.basil".into();
    renewal["data"]["object"]["status_transitions"]["paid_at"] = Utc::now().timestamp().into();
    renewal["data"]["object"]["subscription_details"]["metadata"]["mitra_click"] =
        click.clone().into();
    let invoice = renewal["data"]["object"].as_object_mut().unwrap();
    invoice.remove("payment_intent");
    invoice.remove("charge");
    assert_status(
        app.stripe(&f.program, &renewal, STRIPE_SECRET).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let sale = app.conversion(&f.program, first).await;
    assert_eq!(commissions(&sale), vec![(290, "pending".to_owned())]);
    // The program's rules pay a subscription's first payment only.
    let renewed = app.conversion(&f.program, renewal_invoice).await;
    assert_eq!(renewed["status"], "attributed");

    // The first payment's refund comes before its invoice payment: it waits.
    let refund = stripe_refund_2025("ch_3QKy2QLkdIwHu7ix0Lm4Rt6u", first_pi, 2_900);
    assert_status(
        app.stripe(&f.program, &refund, STRIPE_SECRET).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let waiting = app.conversion(&f.program, first_pi).await;
    assert_eq!(waiting["status"], "waiting");
    let receipt = assert_status(
        app.stripe(
            &f.program,
            &stripe_invoice_payment(first, first_pi),
            STRIPE_SECRET,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(receipt["status"], "stored");
    app.attribute().await;
    let refunded = app.conversion(&f.program, first).await;
    assert_eq!(refunded["refunded_minor"], 2_900);
    assert_eq!(commissions(&refunded), vec![(0, "reversed".to_owned())]);

    // The renewal's invoice payment comes first (as Stripe sends it, at
    // payment): the refund is stored under the invoice at once.
    assert_status(
        app.stripe(
            &f.program,
            &stripe_invoice_payment(renewal_invoice, renewal_pi),
            STRIPE_SECRET,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let refund = stripe_refund_2025("ch_3QTe8lLkdIwHu7ix1Xs0RfUd", renewal_pi, 2_900);
    let receipt = assert_status(
        app.stripe(&f.program, &refund, STRIPE_SECRET).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(receipt["conversions"][0]["order_id"], renewal_invoice);
    app.attribute().await;
    let refunded = app.conversion(&f.program, renewal_invoice).await;
    assert_eq!(refunded["refunded_minor"], 2_900);
    assert_eq!(refunded["refunds"][0]["status"], "attributed");
}

#[tokio::test]
async fn wrong_or_missing_signatures_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let f = shop(&app, "EUR").await;
    let bare = app.create_program().await;
    let order = shopify_order("x");
    let raw = serde_json::to_vec(&order).unwrap();
    // (program, platform, headers, the problem's detail)
    type Case<'a> = (&'a Value, &'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            &f.program,
            "shopify",
            vec![("X-Shopify-Topic", "orders/paid".into())],
            "the X-Shopify-Hmac-Sha256 header is missing",
        ),
        (
            &f.program,
            "shopify",
            vec![
                ("X-Shopify-Topic", "orders/paid".into()),
                ("X-Shopify-Hmac-Sha256", body_hmac("another-secret", &raw)),
            ],
            "X-Shopify-Hmac-Sha256 matches none of the program's Shopify secrets",
        ),
        (
            &f.program,
            "woocommerce",
            vec![
                ("X-WC-Webhook-Topic", "order.created".into()),
                ("X-WC-Webhook-Signature", body_hmac(SHOPIFY_SECRET, &raw)),
            ],
            "X-WC-Webhook-Signature matches none of the program's WooCommerce secrets",
        ),
        (
            &f.program,
            "stripe",
            vec![(
                "Stripe-Signature",
                mitra::conversions::signature::header(
                    STRIPE_SECRET,
                    Utc::now().timestamp() - 400,
                    &raw,
                ),
            )],
            "the Stripe-Signature timestamp is more than 300 s away from now",
        ),
        (
            &f.program,
            "stripe",
            vec![(
                "Stripe-Signature",
                mitra::conversions::signature::header(
                    s(&f.program["webhook_secret"]),
                    Utc::now().timestamp(),
                    &raw,
                ),
            )],
            "no v1 signature matches under the program's Stripe secrets",
        ),
        (
            &bare,
            "shopify",
            vec![
                ("X-Shopify-Topic", "orders/paid".into()),
                ("X-Shopify-Hmac-Sha256", body_hmac(SHOPIFY_SECRET, &raw)),
            ],
            "the program has no Shopify secret set (PUT .../integrations/shopify/secret)",
        ),
    ];
    for (program, platform, headers, detail) in cases {
        let res = app
            .post_platform(program, platform, &headers, raw.clone())
            .await;
        let problem = assert_problem(res, StatusCode::UNAUTHORIZED).await;
        assert_eq!(problem["detail"], detail);
    }
    assert_eq!(app.count().await, 0);
    // A program that does not exist is not found.
    let ghost = json!({"id": "prg_zzzzzz"});
    let res = app.post_platform(&ghost, "stripe", &[], raw.clone()).await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn what_books_nothing_is_acknowledged_and_what_cannot_be_booked_is_refused() {
    let app = spawn_app().await;
    let f = shop(&app, "EUR").await;
    let ignored = [
        app.shopify(
            &f.program,
            "customers/create",
            &json!({"id": 706405506930370084u64}),
            SHOPIFY_SECRET,
        )
        .await,
        app.woocommerce(
            &f.program,
            "product.updated",
            &json!({"id": 93}),
            WOO_SECRET,
        )
        .await,
        app.stripe(
            &f.program,
            &load("stripe/customer_created.json"),
            STRIPE_SECRET,
        )
        .await,
        // WooCommerce pings a new webhook with a form body, unsigned.
        app.post_platform(&f.program, "woocommerce", &[], b"webhook_id=15".to_vec())
            .await,
    ];
    let mut reasons = Vec::new();
    for res in ignored {
        let body = assert_status(res, StatusCode::OK).await;
        assert_eq!(body["status"], "ignored", "{body}");
        assert_eq!(body["conversions"], json!([]));
        reasons.push(s(&body["reason"]).to_owned());
    }
    assert_eq!(
        reasons,
        [
            "the Shopify topic customers/create books nothing",
            "the WooCommerce topic product.updated books nothing",
            "the Stripe event type customer.created books nothing (evt_1QKx1aLkdIwHu7ixJm0cYb2R)",
            "a WooCommerce webhook ping",
        ]
    );
    assert_eq!(app.count().await, 0);

    // Shopify sends every topic as JSON: an empty or malformed body is not
    // Shopify's, whatever the topic (even one that books nothing): 400.
    for raw in [Vec::new(), b"webhook_id=15".to_vec()] {
        let headers = [
            ("X-Shopify-Topic", "customers/create".to_owned()),
            ("X-Shopify-Hmac-Sha256", body_hmac(SHOPIFY_SECRET, &raw)),
        ];
        let res = app
            .post_platform(&f.program, "shopify", &headers, raw)
            .await;
        let problem = assert_problem(res, StatusCode::BAD_REQUEST).await;
        assert!(
            s(&problem["detail"]).starts_with("malformed Shopify webhook"),
            "{problem}"
        );
    }
    assert_eq!(app.count().await, 0);

    // An order in a currency the program does not take: 422, nothing stored.
    let res = app
        .woocommerce(
            &f.program,
            "order.created",
            &load("woocommerce/order_processing.json"),
            WOO_SECRET,
        )
        .await;
    let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(invalid_fields(&problem), ["currency"]);
    // A signed body that is not the platform's JSON: 400.
    let res = app
        .shopify(&f.program, "orders/paid", &json!({"id": 1}), SHOPIFY_SECRET)
        .await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn a_program_sets_its_platform_secrets_and_reads_its_setup_without_them() {
    let app = spawn_app().await;
    let f = shop(&app, "EUR").await;
    let other = app.create_program().await;
    let id = s(&f.program["id"]);
    let key = s(&f.program["api_key"]);
    let setup = assert_status(
        app.get(&format!("/v1/programs/{id}/integrations"), key)
            .await,
        StatusCode::OK,
    )
    .await;
    let base = app
        .settings
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let platforms = setup["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 3);
    assert_eq!(platforms[0]["platform"], "shopify");
    assert_eq!(
        platforms[0]["webhook_url"],
        format!("{base}/v1/programs/{id}/integrations/shopify")
    );
    assert_eq!(
        platforms[0]["events"],
        json!(["orders/paid", "refunds/create"])
    );
    assert!(
        platforms
            .iter()
            .all(|p| p["secret_set"] == true && p["secret_set_at"].is_string())
    );
    assert!(
        !setup.to_string().contains(SHOPIFY_SECRET),
        "secrets are never shown"
    );
    let version = mitra::http::snippet_version();
    assert_eq!(
        setup["snippet"]["script_url"],
        format!("{base}/mitra.js?v={version}")
    );
    assert_eq!(
        setup["snippet"]["tag"],
        format!(r#"<script src="{base}/mitra.js?v={version}" data-days="30" async></script>"#)
    );

    // Rotating: the old secret verifies for the grace period, then not at all.
    let path = format!("/v1/programs/{id}/integrations/shopify/secret");
    let new_secret = "shpss_rotated_0123456789abcdef";
    assert_status(
        app.put(&path, key, &json!({"secret": new_secret, "grace_hours": 0}))
            .await,
        StatusCode::OK,
    )
    .await;
    let order = shopify_order("x");
    let res = app
        .shopify(&f.program, "orders/paid", &order, SHOPIFY_SECRET)
        .await;
    assert_problem(res, StatusCode::UNAUTHORIZED).await;
    let res = app
        .shopify(&f.program, "orders/paid", &order, new_secret)
        .await;
    assert_status(res, StatusCode::ACCEPTED).await;

    // Someone else's program, an unknown platform, a bad secret.
    let res = app
        .put(&path, s(&other["api_key"]), &json!({"secret": new_secret}))
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let res = app
        .put(
            &format!("/v1/programs/{id}/integrations/magento/secret"),
            key,
            &json!({"secret": new_secret}),
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let res = app
        .put(&path, key, &json!({"secret": "short", "grace_hours": 721}))
        .await;
    let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(invalid_fields(&problem), ["secret", "grace_hours"]);
}

#[tokio::test]
async fn stripes_own_library_signs_a_webhook_mitra_accepts() {
    let app = spawn_app().await;
    let f = shop(&app, "USD").await;
    let body = serde_json::to_vec(&stripe_session(&app.click_id_ago(&f.link, MINUTE))).unwrap();
    let t = Utc::now().timestamp().to_string();
    let sign = |secret: &'static str, body: Vec<u8>, t: String| {
        tokio::task::spawn_blocking(move || {
            crate::snippet::run_js("stripe-signature.cjs", &[secret, &t], Some(&body))
        })
    };
    let header = sign(STRIPE_SECRET, body.clone(), t.clone()).await.unwrap();
    assert!(header.starts_with(&format!("t={t},v1=")), "{header}");
    let res = app
        .post_platform(
            &f.program,
            "stripe",
            &[("Stripe-Signature", header)],
            body.clone(),
        )
        .await;
    let stored = assert_status(res, StatusCode::ACCEPTED).await;
    assert_eq!(
        stored["conversions"][0]["order_id"],
        "pi_3QKx7hLkdIwHu7ix0lQ2mZbE"
    );
    // Signed by the same library with another secret: refused.
    let header = sign("whsec_someone_elses_secret_000000", body.clone(), t)
        .await
        .unwrap();
    let res = app
        .post_platform(&f.program, "stripe", &[("Stripe-Signature", header)], body)
        .await;
    assert_problem(res, StatusCode::UNAUTHORIZED).await;
}

/// An order's other names (Stripe's PaymentIntents of invoices) are kept as
/// long as mitra takes an event of the payment they name, then purged by
/// the attribution workers.
#[tokio::test]
async fn order_aliases_are_purged_once_older_than_any_event_mitra_takes() {
    let app = spawn_app_with(mitra::startup::Roles::ALL, &[]).await;
    let f = shop(&app, "USD").await;
    for (invoice, payment_intent) in [("in_1Old", "pi_1Old"), ("in_1Kept", "pi_1Kept")] {
        let receipt = assert_status(
            app.stripe(
                &f.program,
                &stripe_invoice_payment(invoice, payment_intent),
                STRIPE_SECRET,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(receipt["status"], "stored");
    }
    // Recorded 401 and 399 days ago: mitra takes events from 400 days back.
    sqlx::query(
        "update order_aliases set created_at = now() - make_interval(days =>
             case alias when 'pi_1Old' then 401 else 399 end)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    eventually(
        std::time::Duration::from_secs(15),
        "the alias past 400 days was never purged",
        || async {
            let left: Vec<String> =
                sqlx::query_scalar("select alias from order_aliases order by alias")
                    .fetch_all(&app.db)
                    .await
                    .unwrap();
            left == ["pi_1Kept"]
        },
    )
    .await;
    // The one kept still names its invoice: a refund under it goes there.
    let refund = stripe_refund_2025("ch_3QKy2QLkdIwHu7ix0Lm4Rt6u", "pi_1Kept", 500);
    let receipt = assert_status(
        app.stripe(&f.program, &refund, STRIPE_SECRET).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(receipt["conversions"][0]["order_id"], "in_1Kept");
}
