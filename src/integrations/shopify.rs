//! Shopify: `orders/paid` (or `orders/create`) books a sale, `refunds/create`
//! a refund; any other topic is acknowledged and ignored. The topic is the
//! `X-Shopify-Topic` header; the body is the order (or refund) as Shopify's
//! REST Admin API writes it.
//!
//! - Amount: the order's subtotal (line items after discounts, before
//!   shipping; taxes included only when the shop's prices include them);
//!   a refund: the subtotals of its refunded line items, on the same basis.
//!   Taken from the shop currency's figures, or the presentment currency's
//!   (what the customer saw) when that one is the program's.
//! - Click id: the cart attribute `_mitra_click` (or `mitra_click`), which
//!   `mitra.js` sets, else `mitra_click` in the order's landing URL.
//! - Coupon: the first discount code.
//! - Idempotency: `shopify:order:<id>` for the sale, so `orders/create` and
//!   `orders/paid` of one order are one conversion; `shopify:refund:<id>`.
//!   `orders/create` of an order not paid yet books nothing: `orders/paid`
//!   books it when it is.

use super::{Context, MapError, Mapped, PlatformId, checked, click_in_url, parse_json, present};
use crate::conversions::Event;
use chrono::{DateTime, Utc};
use serde::Deserialize;

pub const TOPIC: &str = "x-shopify-topic";
pub const SIGNATURE: &str = "x-shopify-hmac-sha256";

#[derive(Deserialize)]
struct Money {
    amount: String,
    currency_code: String,
}

/// An amount in the shop's currency and in the customer's.
#[derive(Deserialize)]
struct MoneySet {
    shop_money: Money,
    presentment_money: Money,
}

#[derive(Deserialize)]
struct Attribute {
    name: String,
    #[serde(default)]
    value: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct DiscountCode {
    code: String,
}

#[derive(Deserialize)]
struct Order {
    id: PlatformId,
    subtotal_price_set: MoneySet,
    created_at: DateTime<Utc>,
    #[serde(default)]
    processed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    note_attributes: Vec<Attribute>,
    #[serde(default)]
    discount_codes: Vec<DiscountCode>,
    #[serde(default)]
    landing_site: Option<String>,
    #[serde(default)]
    financial_status: Option<String>,
}

#[derive(Deserialize)]
struct RefundLineItem {
    subtotal_set: MoneySet,
}

#[derive(Deserialize)]
struct Transaction {
    amount: String,
    #[serde(default)]
    currency: Option<String>,
    kind: String,
    status: String,
}

#[derive(Deserialize)]
struct Refund {
    id: PlatformId,
    order_id: PlatformId,
    created_at: DateTime<Utc>,
    #[serde(default)]
    processed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    refund_line_items: Vec<RefundLineItem>,
    #[serde(default)]
    transactions: Vec<Transaction>,
}

/// The amount of a money set in the program's currency: the shop's figure
/// when the shop sells in it, else the customer's.
fn amount(ctx: &Context, field: &str, set: &MoneySet) -> Result<i64, MapError> {
    for money in [&set.shop_money, &set.presentment_money] {
        if let Some(minor) = ctx.major(field, &money.amount, &money.currency_code)? {
            return Ok(minor);
        }
    }
    Err(ctx.wrong_currency(
        "currency",
        &[
            &set.shop_money.currency_code,
            &set.presentment_money.currency_code,
        ],
    ))
}

/// Maps one webhook of `topic`.
pub fn map(topic: &str, body: &[u8], ctx: &Context) -> Result<Mapped, MapError> {
    match topic {
        "orders/paid" => sale(parse_json("Shopify order", body)?, ctx),
        "orders/create" => {
            let order: Order = parse_json("Shopify order", body)?;
            // An order paid later (bank transfer, cash on delivery) is
            // booked by orders/paid, when it is paid.
            if matches!(
                order.financial_status.as_deref(),
                Some("pending" | "voided")
            ) {
                return Ok(Mapped::Ignore(format!(
                    "Shopify order {} is not paid yet: orders/paid books it",
                    order.id
                )));
            }
            sale(order, ctx)
        }
        "refunds/create" => refund(parse_json("Shopify refund", body)?, ctx),
        other => {
            // Shopify sends every topic as JSON: anything else is not
            // Shopify's webhook, whatever the topic.
            parse_json::<serde::de::IgnoredAny>("Shopify webhook", body)?;
            Ok(Mapped::Ignore(format!(
                "the Shopify topic {other} books nothing"
            )))
        }
    }
}

fn sale(order: Order, ctx: &Context) -> Result<Mapped, MapError> {
    let amount = amount(ctx, "subtotal_price_set", &order.subtotal_price_set)?;
    let attribute = |names: &[&str]| {
        order
            .note_attributes
            .iter()
            .find(|a| names.contains(&a.name.as_str()))
            .and_then(|a| present(a.value.as_ref()?.as_str()))
    };
    let mut sale = ctx.conversion(
        Event::Sale,
        &order.id.0,
        format!("shopify:order:{}", order.id),
        amount,
    );
    sale.click_id = attribute(&["_mitra_click", "mitra_click"])
        .or_else(|| click_in_url(order.landing_site.as_deref()?));
    sale.coupon = order
        .discount_codes
        .first()
        .and_then(|d| present(Some(&d.code)))
        .or_else(|| attribute(&["_mitra_coupon", "mitra_coupon"]));
    sale.occurred_at = Some(order.processed_at.unwrap_or(order.created_at));
    checked(ctx, vec![sale])
}

fn refund(refund: Refund, ctx: &Context) -> Result<Mapped, MapError> {
    let mut total = 0i64;
    for (i, line) in refund.refund_line_items.iter().enumerate() {
        let field = format!("refund_line_items[{i}].subtotal_set");
        total = total
            .checked_add(amount(ctx, &field, &line.subtotal_set)?)
            .ok_or_else(|| MapError::Malformed("refund amounts overflow".into()))?;
    }
    if refund.refund_line_items.is_empty() {
        // A refund of an amount, not of items: what was paid back.
        for (i, t) in refund.transactions.iter().enumerate() {
            if t.kind != "refund" || t.status != "success" {
                continue;
            }
            let currency = t.currency.as_deref().unwrap_or(ctx.currency.code());
            let field = format!("transactions[{i}].amount");
            let minor = ctx
                .major(&field, &t.amount, currency)?
                .ok_or_else(|| ctx.wrong_currency("currency", &[currency]))?;
            total = total
                .checked_add(minor)
                .ok_or_else(|| MapError::Malformed("refund amounts overflow".into()))?;
        }
    }
    if total == 0 {
        return Ok(Mapped::Ignore(format!(
            "Shopify refund {} returns no merchandise (shipping or nothing)",
            refund.id
        )));
    }
    let mut conversion = ctx.conversion(
        Event::Refund,
        &refund.order_id.0,
        format!("shopify:refund:{}", refund.id),
        total,
    );
    conversion.occurred_at = Some(refund.processed_at.unwrap_or(refund.created_at));
    checked(ctx, vec![conversion])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, ProgramId};

    const ORDER: &[u8] = include_bytes!("../../tests/fixtures/shopify/orders_paid.json");
    const REFUND: &[u8] = include_bytes!("../../tests/fixtures/shopify/refunds_create.json");

    fn ctx(currency: &str) -> Context {
        Context {
            program: ProgramId::from_db(7),
            currency: Currency::parse(currency).unwrap(),
            now: "2026-12-01T12:00:00Z".parse().unwrap(),
            request_id: None,
        }
    }

    fn one(mapped: Mapped) -> crate::conversions::NewConversion {
        match mapped {
            Mapped::Store(mut list) if list.len() == 1 => list.remove(0),
            other => panic!("expected one conversion, got {other:?}"),
        }
    }

    #[test]
    fn a_paid_order_is_a_sale_of_its_subtotal_in_the_shop_currency() {
        let sale = one(map("orders/paid", ORDER, &ctx("EUR")).unwrap());
        assert_eq!(sale.event, Event::Sale);
        assert_eq!(sale.order_id, "820982911946154508");
        assert_eq!(
            sale.event_id.as_deref(),
            Some("shopify:order:820982911946154508")
        );
        // 205.50 of items less the 20.55 discount; shipping and tax are not sold goods.
        assert_eq!(sale.amount_minor, 18_495);
        assert_eq!(
            sale.click_id.as_deref(),
            Some("1DrG5oKc0x8S4gQ7RBn7nXgCAyw4kQYqE")
        );
        assert_eq!(sale.coupon.as_deref(), Some("AYU10"));
        assert_eq!(
            sale.occurred_at,
            Some("2026-11-30T09:12:44Z".parse().unwrap()),
            "processed_at, converted from the shop's -05:00"
        );
        // orders/create of the same order is the same conversion...
        let created = one(map("orders/create", ORDER, &ctx("EUR")).unwrap());
        assert_eq!(created.idempotency_key(), sale.idempotency_key());
        // ...unless it is not paid yet: then orders/paid books it.
        let mut pending: serde_json::Value = serde_json::from_slice(ORDER).unwrap();
        pending["financial_status"] = "pending".into();
        let body = serde_json::to_vec(&pending).unwrap();
        assert!(matches!(
            map("orders/create", &body, &ctx("EUR")).unwrap(),
            Mapped::Ignore(r) if r == "Shopify order 820982911946154508 is not paid yet: orders/paid books it"
        ));
    }

    #[test]
    fn the_presentment_currency_serves_a_program_in_it_and_no_other_does() {
        let sale = one(map("orders/paid", ORDER, &ctx("USD")).unwrap());
        assert_eq!(sale.amount_minor, 20_344);
        assert_eq!(
            map("orders/paid", ORDER, &ctx("JPY")).unwrap_err(),
            MapError::Invalid(vec![(
                "currency".into(),
                "the order is in EUR and USD; the program's currency is JPY".into()
            )])
        );
    }

    #[test]
    fn the_landing_url_gives_the_click_when_no_cart_attribute_does() {
        let mut order: serde_json::Value = serde_json::from_slice(ORDER).unwrap();
        order["note_attributes"] = serde_json::json!([]);
        order["landing_site"] = "/collections/batik?utm_source=ayu&mitra_click=FromLanding".into();
        let body = serde_json::to_vec(&order).unwrap();
        let sale = one(map("orders/paid", &body, &ctx("EUR")).unwrap());
        assert_eq!(sale.click_id.as_deref(), Some("FromLanding"));
    }

    #[test]
    fn a_refund_takes_back_the_subtotal_of_its_lines() {
        let refund = one(map("refunds/create", REFUND, &ctx("EUR")).unwrap());
        assert_eq!(refund.event, Event::Refund);
        assert_eq!(refund.order_id, "820982911946154508");
        assert_eq!(refund.event_id.as_deref(), Some("shopify:refund:929361462"));
        assert_eq!(refund.amount_minor, 7_200);
        assert_eq!(
            refund.occurred_at,
            Some("2026-12-01T10:05:09Z".parse().unwrap())
        );
        let in_usd = one(map("refunds/create", REFUND, &ctx("USD")).unwrap());
        assert_eq!(in_usd.amount_minor, 7_920);
    }

    #[test]
    fn a_refund_without_lines_takes_back_its_successful_transactions() {
        let mut refund: serde_json::Value = serde_json::from_slice(REFUND).unwrap();
        refund["refund_line_items"] = serde_json::json!([]);
        let body = serde_json::to_vec(&refund).unwrap();
        let mapped = one(map("refunds/create", &body, &ctx("USD")).unwrap());
        assert_eq!(mapped.amount_minor, 9_425);
        match map("refunds/create", &body, &ctx("EUR")).unwrap_err() {
            MapError::Invalid(errors) => assert_eq!(errors[0].0, "currency"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_topics_are_ignored_and_bad_bodies_refused() {
        assert!(matches!(
            map("customers/create", b"{}", &ctx("EUR")).unwrap(),
            Mapped::Ignore(reason) if reason == "the Shopify topic customers/create books nothing"
        ));
        assert!(matches!(
            map("orders/paid", br#"{"id": 1}"#, &ctx("EUR")),
            Err(MapError::Malformed(_))
        ));
    }
}
