//! WooCommerce: the `order.created` and `order.updated` webhooks (topic in
//! `X-WC-Webhook-Topic`) carry the whole order as its REST API (v3) writes
//! it; each delivery is mapped to what the order now holds.
//!
//! - Sale: an order that is paid (`processing` or `completed`, or any
//!   status with a payment date). Amount: the order's goods after
//!   discounts, without tax and shipping (`total - total_tax -
//!   shipping_total`). A pending or on-hold order books nothing yet.
//! - Refunds: each of the order's refunds (`refunds[]`); and when the order
//!   is `refunded` or `cancelled` after payment, whatever its refunds do not
//!   cover. WooCommerce gives refunds as gross amounts (tax and shipping
//!   included), so each is taken at the same share of the goods: a refund
//!   of a third of what was paid takes back a third of the sale.
//! - Click id: the order meta `_mitra_click` (or `mitra_click`), else
//!   `mitra_click` in WooCommerce's own order attribution landing URL
//!   (`_wc_order_attribution_session_entry`).
//! - Coupon: the first coupon line.
//! - Idempotency: `woocommerce:order:<id>` for the sale, so every later
//!   update of the order repeats it; `woocommerce:refund:<id>` per refund.
//!
//! WooCommerce "pings" a new webhook with the form body `webhook_id=<n>`;
//! it is acknowledged.

use super::{Context, MapError, Mapped, PlatformId, checked, click_in_url, parse_json, present};
use crate::conversions::{Event, NewConversion};
use crate::domain::mul_div_round;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

pub const TOPIC: &str = "x-wc-webhook-topic";
pub const SIGNATURE: &str = "x-wc-webhook-signature";

#[derive(Deserialize)]
struct Meta {
    key: String,
    #[serde(default)]
    value: serde_json::Value,
}

#[derive(Deserialize)]
struct CouponLine {
    code: String,
}

#[derive(Deserialize)]
struct RefundLine {
    id: PlatformId,
    /// Negative: "-249750.00".
    total: String,
}

#[derive(Deserialize)]
struct Order {
    id: PlatformId,
    status: String,
    currency: String,
    total: String,
    total_tax: String,
    shipping_total: String,
    /// WooCommerce writes its `_gmt` times without an offset.
    #[serde(default)]
    date_created_gmt: Option<NaiveDateTime>,
    #[serde(default)]
    date_paid_gmt: Option<NaiveDateTime>,
    #[serde(default)]
    meta_data: Vec<Meta>,
    #[serde(default)]
    coupon_lines: Vec<CouponLine>,
    #[serde(default)]
    refunds: Vec<RefundLine>,
}

/// Maps one webhook of `topic`.
pub fn map(topic: Option<&str>, body: &[u8], ctx: &Context) -> Result<Mapped, MapError> {
    match topic {
        Some("order.created" | "order.updated") => {
            order(parse_json("WooCommerce order", body)?, ctx)
        }
        Some(other) => Ok(Mapped::Ignore(format!(
            "the WooCommerce topic {other} books nothing"
        ))),
        None if is_ping(body) => Ok(Mapped::Ignore("a WooCommerce webhook ping".into())),
        None => Err(MapError::Malformed(
            "the X-WC-Webhook-Topic header is missing".into(),
        )),
    }
}

/// `webhook_id=<digits>`: what WooCommerce sends when a webhook is saved.
pub fn is_ping(body: &[u8]) -> bool {
    body.strip_prefix(b"webhook_id=")
        .is_some_and(|id| !id.is_empty() && id.iter().all(u8::is_ascii_digit))
}

fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

fn order(order: Order, ctx: &Context) -> Result<Mapped, MapError> {
    let paid = order.date_paid_gmt.is_some()
        || matches!(order.status.as_str(), "processing" | "completed");
    if !paid {
        return Ok(Mapped::Ignore(format!(
            "WooCommerce order {} is {} and not paid: nothing to book yet",
            order.id, order.status
        )));
    }
    let major = |field: &str, amount: &str| {
        ctx.major(field, amount, &order.currency)?
            .ok_or_else(|| ctx.wrong_currency("currency", &[&order.currency]))
    };
    let total = major("total", &order.total)?;
    let goods = total
        - major("total_tax", &order.total_tax)?
        - major("shipping_total", &order.shipping_total)?;
    if total <= 0 || goods < 0 {
        return Ok(Mapped::Ignore(format!(
            "WooCommerce order {} was free",
            order.id
        )));
    }
    let meta = |keys: &[&str]| {
        order
            .meta_data
            .iter()
            .find(|m| keys.contains(&m.key.as_str()))
            .and_then(|m| present(m.value.as_str()))
    };
    let order_id = &order.id.0;
    let mut sale = ctx.conversion(
        Event::Sale,
        order_id,
        format!("woocommerce:order:{order_id}"),
        goods,
    );
    sale.click_id = meta(&["_mitra_click", "mitra_click"])
        .or_else(|| click_in_url(&meta(&["_wc_order_attribution_session_entry"])?));
    sale.coupon = order
        .coupon_lines
        .first()
        .and_then(|c| present(Some(&c.code)));
    sale.occurred_at = order.date_paid_gmt.or(order.date_created_gmt).map(utc);

    // Refunds, gross, as the same share of the goods.
    let share = |gross: i64| {
        mul_div_round(gross, goods, total)
            .map_err(|_| MapError::Malformed("refund amounts overflow".into()))
    };
    let mut conversions = vec![sale];
    let mut refunded = 0i64;
    for (i, line) in order.refunds.iter().enumerate() {
        let gross = major(&format!("refunds[{i}].total"), &line.total)?.abs();
        refunded += gross;
        let amount = share(gross)?;
        if amount > 0 {
            conversions.push(refund(
                ctx,
                order_id,
                format!("woocommerce:refund:{}", line.id),
                amount,
            ));
        }
    }
    if matches!(order.status.as_str(), "refunded" | "cancelled") && refunded < total {
        let amount = share(total - refunded)?;
        if amount > 0 {
            let key = format!("woocommerce:order:{order_id}:{}", order.status);
            conversions.push(refund(ctx, order_id, key, amount));
        }
    }
    checked(ctx, conversions)
}

fn refund(ctx: &Context, order_id: &str, event_id: String, amount: i64) -> NewConversion {
    ctx.conversion(Event::Refund, order_id, event_id, amount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, ProgramId};

    const PAID: &[u8] = include_bytes!("../../tests/fixtures/woocommerce/order_processing.json");
    const REFUNDED: &[u8] =
        include_bytes!("../../tests/fixtures/woocommerce/order_refunded_partially.json");

    fn ctx() -> Context {
        Context {
            program: ProgramId::from_db(7),
            currency: Currency::parse("IDR").unwrap(),
            now: "2026-12-01T12:00:00Z".parse().unwrap(),
            request_id: None,
        }
    }

    fn stored(mapped: Mapped) -> Vec<NewConversion> {
        match mapped {
            Mapped::Store(list) => list,
            other => panic!("expected conversions, got {other:?}"),
        }
    }

    #[test]
    fn a_paid_order_is_a_sale_of_its_goods_without_tax_and_shipping() {
        let list = stored(map(Some("order.created"), PAID, &ctx()).unwrap());
        assert_eq!(list.len(), 1);
        let sale = &list[0];
        assert_eq!(sale.event, Event::Sale);
        assert_eq!(sale.order_id, "727");
        assert_eq!(sale.event_id.as_deref(), Some("woocommerce:order:727"));
        // Rp 1,270,950 paid, less Rp 125,950 tax and Rp 20,000 shipping; IDR has two minor digits.
        assert_eq!(sale.amount_minor, 112_500_000);
        assert_eq!(
            sale.click_id.as_deref(),
            Some("1DrG5oKc0x8S4gQ7RBn7nXgCAyw4kQYqE")
        );
        assert_eq!(sale.coupon.as_deref(), Some("ayu10"));
        assert_eq!(
            sale.occurred_at,
            Some("2026-11-30T10:21:37Z".parse().unwrap())
        );
    }

    #[test]
    fn the_order_attribution_landing_url_gives_the_click_when_no_meta_does() {
        let mut order: serde_json::Value = serde_json::from_slice(PAID).unwrap();
        let meta = order["meta_data"].as_array_mut().unwrap();
        meta.retain(|m| m["key"] != "_mitra_click");
        let body = serde_json::to_vec(&order).unwrap();
        let list = stored(map(Some("order.updated"), &body, &ctx()).unwrap());
        assert_eq!(list[0].click_id.as_deref(), Some("FromTheLandingUrl"));
    }

    #[test]
    fn refund_lines_are_refunds_at_the_goods_share() {
        let list = stored(map(Some("order.updated"), REFUNDED, &ctx()).unwrap());
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].event_id.as_deref(), Some("woocommerce:order:727"));
        let refund = &list[1];
        assert_eq!(refund.event, Event::Refund);
        assert_eq!(refund.order_id, "727");
        assert_eq!(refund.event_id.as_deref(), Some("woocommerce:refund:731"));
        // Rp 249,750 of Rp 1,270,950 paid: that share of Rp 1,125,000 of goods, to the sen.
        assert_eq!(refund.amount_minor, 22_106_987);
    }

    #[test]
    fn a_refunded_order_takes_back_what_its_refund_lines_do_not() {
        let mut order: serde_json::Value = serde_json::from_slice(REFUNDED).unwrap();
        order["status"] = "refunded".into();
        let body = serde_json::to_vec(&order).unwrap();
        let list = stored(map(Some("order.updated"), &body, &ctx()).unwrap());
        assert_eq!(list.len(), 3);
        assert_eq!(
            list[2].event_id.as_deref(),
            Some("woocommerce:order:727:refunded")
        );
        // Both refunds together take back the whole sale, to the sen.
        assert_eq!(list[1].amount_minor + list[2].amount_minor, 112_500_000);
    }

    #[test]
    fn unpaid_orders_pings_and_other_topics_book_nothing() {
        let mut order: serde_json::Value = serde_json::from_slice(PAID).unwrap();
        order["status"] = "on-hold".into();
        order["date_paid_gmt"] = serde_json::Value::Null;
        let body = serde_json::to_vec(&order).unwrap();
        assert!(matches!(
            map(Some("order.created"), &body, &ctx()).unwrap(),
            Mapped::Ignore(r) if r == "WooCommerce order 727 is on-hold and not paid: nothing to book yet"
        ));
        assert!(matches!(
            map(None, b"webhook_id=15", &ctx()).unwrap(),
            Mapped::Ignore(_)
        ));
        assert!(matches!(
            map(Some("product.updated"), b"{}", &ctx()).unwrap(),
            Mapped::Ignore(_)
        ));
        assert!(matches!(
            map(None, b"{}", &ctx()),
            Err(MapError::Malformed(_))
        ));
        assert!(!is_ping(b"webhook_id=15&x=1"));
    }

    #[test]
    fn an_order_in_another_currency_is_refused() {
        let ctx = Context {
            currency: Currency::parse("EUR").unwrap(),
            ..ctx()
        };
        assert_eq!(
            map(Some("order.created"), PAID, &ctx).unwrap_err(),
            MapError::Invalid(vec![(
                "currency".into(),
                "the order is in IDR; the program's currency is EUR".into()
            )])
        );
    }
}
