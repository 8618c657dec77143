//! Stripe: an event (`Stripe-Signature`, signed like mitra's own webhook)
//! whose `type` says what happened.
//!
//! - `checkout.session.completed` (and `checkout.session.async_payment_succeeded`,
//!   for payment methods that settle later): a paid session is a sale of its
//!   `amount_total` (what the customer paid); a session that took no
//!   payment (a free trial starting) is a lead. It books the first payment
//!   of a subscription too, with the subscription's id.
//! - `invoice.paid`: a subscription's renewal, a sale of `amount_paid` with
//!   the subscription's id. The first invoice of a subscription
//!   (`subscription_create`) is left to its Checkout Session.
//! - `charge.refunded`: a refund of what this event added to the charge's
//!   `amount_refunded` (Stripe gives the running total and, in
//!   `previous_attributes`, the one before).
//! - `invoice_payment.paid` (API versions from 2025-03-31 on, whose charges
//!   no longer name their invoice): the invoice's PaymentIntent becomes an
//!   alias of the invoice, so a refund naming the PaymentIntent is stored
//!   under the invoice, where the subscription's payment is.
//!
//! Order ids: a payment's PaymentIntent (what a charge names, so refunds
//! find their sale), else the invoice, else the session. Click id: the
//! `mitra_click` metadata, else `client_reference_id`; a renewal's, from the
//! subscription's metadata (`subscription_data.metadata` at checkout).
//! Coupon: the `mitra_coupon` metadata. Idempotency: `stripe:<order id>` for
//! a sale or lead (a retried event, or two events about one payment, store
//! one), `stripe:<charge>:refunded:<running total>` for a refund.

use super::{Context, MapError, Mapped, PlatformId, checked, parse_json, present};
use crate::conversions::Event;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::HashMap;

pub const SIGNATURE: &str = "stripe-signature";

#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
    #[serde(default)]
    previous_attributes: Option<serde_json::Value>,
}

type Metadata = HashMap<String, serde_json::Value>;

#[derive(Deserialize)]
struct Session {
    id: String,
    mode: String,
    payment_status: String,
    amount_total: Option<i64>,
    currency: Option<String>,
    #[serde(default)]
    client_reference_id: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    payment_intent: Option<String>,
    #[serde(default)]
    invoice: Option<String>,
    #[serde(default)]
    subscription: Option<String>,
    created: i64,
}

#[derive(Deserialize)]
struct SubscriptionDetails {
    #[serde(default)]
    metadata: Option<Metadata>,
    /// Where the 2025 API versions put the subscription's id.
    #[serde(default)]
    subscription: Option<String>,
}

#[derive(Deserialize)]
struct InvoiceParent {
    #[serde(default)]
    subscription_details: Option<SubscriptionDetails>,
}

#[derive(Deserialize)]
struct StatusTransitions {
    #[serde(default)]
    paid_at: Option<i64>,
}

#[derive(Deserialize)]
struct Invoice {
    id: String,
    amount_paid: i64,
    currency: String,
    #[serde(default)]
    billing_reason: Option<String>,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default)]
    subscription_details: Option<SubscriptionDetails>,
    #[serde(default)]
    parent: Option<InvoiceParent>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    status_transitions: Option<StatusTransitions>,
}

#[derive(Deserialize)]
struct Charge {
    id: String,
    amount_refunded: i64,
    currency: String,
    #[serde(default)]
    payment_intent: Option<String>,
    #[serde(default)]
    invoice: Option<String>,
}

/// What paid an invoice (API versions from 2025-03-31 on).
#[derive(Deserialize)]
struct InvoicePayment {
    id: String,
    invoice: String,
    payment: PaymentOfInvoice,
}

#[derive(Deserialize)]
struct PaymentOfInvoice {
    #[serde(default)]
    payment_intent: Option<String>,
    /// Only for a charge made without a PaymentIntent.
    #[serde(default)]
    charge: Option<String>,
}

fn meta(metadata: Option<&Metadata>, key: &str) -> Option<String> {
    present(metadata?.get(key)?.as_str())
}

fn at(unix: i64) -> Result<DateTime<Utc>, MapError> {
    DateTime::from_timestamp(unix, 0)
        .ok_or_else(|| MapError::Malformed(format!("{unix} is not a time")))
}

fn object<T: for<'de> Deserialize<'de>>(
    what: &str,
    value: serde_json::Value,
) -> Result<T, MapError> {
    serde_json::from_value(value)
        .map_err(|e| MapError::Malformed(format!("malformed Stripe {what}: {e}")))
}

/// Maps one event.
pub fn map(body: &[u8], ctx: &Context) -> Result<Mapped, MapError> {
    let event: StripeEvent = parse_json("Stripe event", body)?;
    match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            session(object("Checkout Session", event.data.object)?, ctx)
        }
        "invoice.paid" => invoice(object("Invoice", event.data.object)?, ctx),
        "invoice_payment.paid" => invoice_payment(object("Invoice Payment", event.data.object)?),
        "charge.refunded" => {
            let previous = event
                .data
                .previous_attributes
                .as_ref()
                .and_then(|p| p.get("amount_refunded")?.as_i64())
                .unwrap_or(0);
            refund(
                object("Charge", event.data.object)?,
                previous,
                at(event.created)?,
                ctx,
            )
        }
        other => Ok(Mapped::Ignore(format!(
            "the Stripe event type {other} books nothing ({})",
            event.id
        ))),
    }
}

/// Stripe writes currencies in lower case, amounts in the smallest unit.
fn check_currency(ctx: &Context, currency: &str) -> Result<(), MapError> {
    if currency.eq_ignore_ascii_case(ctx.currency.code()) {
        Ok(())
    } else {
        Err(ctx.wrong_currency("currency", &[&currency.to_ascii_uppercase()]))
    }
}

fn session(s: Session, ctx: &Context) -> Result<Mapped, MapError> {
    let amount = s.amount_total.unwrap_or(0);
    let event = match s.payment_status.as_str() {
        "paid" if amount > 0 => Event::Sale,
        "paid" | "no_payment_required" => Event::Lead,
        status => {
            return Ok(Mapped::Ignore(format!(
                "Checkout Session {} is {status}: booked when its payment succeeds",
                s.id
            )));
        }
    };
    if event == Event::Sale {
        check_currency(ctx, s.currency.as_deref().unwrap_or(""))?;
    }
    let order_id = s
        .payment_intent
        .as_ref()
        .or(s.invoice.as_ref())
        .unwrap_or(&s.id);
    let amount = if event == Event::Sale { amount } else { 0 };
    let mut c = ctx.conversion(event, order_id, format!("stripe:{order_id}"), amount);
    c.click_id = meta(s.metadata.as_ref(), "mitra_click")
        .or_else(|| present(s.client_reference_id.as_deref()));
    c.coupon = meta(s.metadata.as_ref(), "mitra_coupon");
    c.subscription_id = s.subscription.filter(|_| s.mode == "subscription");
    c.occurred_at = Some(at(s.created)?);
    checked(ctx, vec![c])
}

fn invoice(i: Invoice, ctx: &Context) -> Result<Mapped, MapError> {
    if i.billing_reason.as_deref() == Some("subscription_create") {
        return Ok(Mapped::Ignore(format!(
            "invoice {} is a subscription's first: its Checkout Session books it",
            i.id
        )));
    }
    if i.amount_paid == 0 {
        return Ok(Mapped::Ignore(format!("invoice {} paid nothing", i.id)));
    }
    check_currency(ctx, &i.currency)?;
    let details = i
        .subscription_details
        .as_ref()
        .or_else(|| i.parent.as_ref()?.subscription_details.as_ref());
    let subscription = i
        .subscription
        .clone()
        .or_else(|| details?.subscription.clone());
    let mut c = ctx.conversion(
        Event::Sale,
        &i.id,
        format!("stripe:{}", i.id),
        i.amount_paid,
    );
    c.click_id = details
        .and_then(|d| meta(d.metadata.as_ref(), "mitra_click"))
        .or_else(|| meta(i.metadata.as_ref(), "mitra_click"));
    c.coupon = details
        .and_then(|d| meta(d.metadata.as_ref(), "mitra_coupon"))
        .or_else(|| meta(i.metadata.as_ref(), "mitra_coupon"));
    c.subscription_id = subscription;
    c.occurred_at = i
        .status_transitions
        .and_then(|t| t.paid_at)
        .map(at)
        .transpose()?;
    checked(ctx, vec![c])
}

/// A subscription's payment is reported under its invoice, but from API
/// version 2025-03-31 on its refund names only the PaymentIntent, or the
/// charge when there is none (a Charge no longer names its invoice): that
/// becomes an alias of the invoice, so the refund finds the sale.
fn invoice_payment(p: InvoicePayment) -> Result<Mapped, MapError> {
    Ok(match p.payment.payment_intent.or(p.payment.charge) {
        Some(paid_by) => Mapped::Alias {
            alias: paid_by,
            order_id: p.invoice,
        },
        None => Mapped::Ignore(format!(
            "invoice payment {} names no PaymentIntent or charge",
            p.id
        )),
    })
}

fn refund(
    charge: Charge,
    previous: i64,
    created: DateTime<Utc>,
    ctx: &Context,
) -> Result<Mapped, MapError> {
    let amount = charge.amount_refunded - previous;
    if amount <= 0 {
        return Ok(Mapped::Ignore(format!(
            "charge {} refunded nothing more",
            charge.id
        )));
    }
    check_currency(ctx, &charge.currency)?;
    let order = charge
        .invoice
        .as_ref()
        .or(charge.payment_intent.as_ref())
        .map(|id| PlatformId(id.clone()))
        .unwrap_or_else(|| PlatformId(charge.id.clone()));
    let key = format!("stripe:{}:refunded:{}", charge.id, charge.amount_refunded);
    let mut c = ctx.conversion(Event::Refund, &order.0, key, amount);
    c.occurred_at = Some(created);
    checked(ctx, vec![c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::NewConversion;
    use crate::domain::{Currency, ProgramId};

    const SESSION: &[u8] =
        include_bytes!("../../tests/fixtures/stripe/checkout_session_completed.json");
    const SUBSCRIPTION: &[u8] =
        include_bytes!("../../tests/fixtures/stripe/checkout_session_subscription.json");
    const RENEWAL: &[u8] = include_bytes!("../../tests/fixtures/stripe/invoice_paid_renewal.json");
    const REFUND: &[u8] = include_bytes!("../../tests/fixtures/stripe/charge_refunded.json");
    const CUSTOMER: &[u8] = include_bytes!("../../tests/fixtures/stripe/customer_created.json");
    const INVOICE_PAYMENT: &[u8] =
        include_bytes!("../../tests/fixtures/stripe/invoice_payment_paid.json");

    fn ctx() -> Context {
        Context {
            program: ProgramId::from_db(7),
            currency: Currency::parse("USD").unwrap(),
            now: "2026-12-01T12:00:00Z".parse().unwrap(),
            request_id: None,
        }
    }

    fn one(mapped: Mapped) -> NewConversion {
        match mapped {
            Mapped::Store(mut list) if list.len() == 1 => list.remove(0),
            other => panic!("expected one conversion, got {other:?}"),
        }
    }

    #[test]
    fn a_paid_checkout_session_is_a_sale_of_what_the_customer_paid() {
        let sale = one(map(SESSION, &ctx()).unwrap());
        assert_eq!(sale.event, Event::Sale);
        assert_eq!(sale.order_id, "pi_3QKx7hLkdIwHu7ix0lQ2mZbE");
        assert_eq!(
            sale.event_id.as_deref(),
            Some("stripe:pi_3QKx7hLkdIwHu7ix0lQ2mZbE")
        );
        assert_eq!(sale.amount_minor, 9_504);
        assert_eq!(
            sale.click_id.as_deref(),
            Some("1DrG5oKc0x8S4gQ7RBn7nXgCAyw4kQYqE")
        );
        assert_eq!(sale.coupon.as_deref(), Some("AYU10"));
        assert_eq!(sale.subscription_id, None);
        assert_eq!(sale.occurred_at, Some(at(1_796_034_765).unwrap()));
    }

    #[test]
    fn a_subscription_starts_with_a_sale_and_renews_with_sales_of_the_same_subscription() {
        let first = one(map(SUBSCRIPTION, &ctx()).unwrap());
        assert_eq!(first.order_id, "in_1QKy2PLkdIwHu7ixRkE6b0aT");
        assert_eq!(first.amount_minor, 2_900);
        assert_eq!(
            first.subscription_id.as_deref(),
            Some("sub_1QKy2PLkdIwHu7ixG1b9ZsVn")
        );
        let renewal = one(map(RENEWAL, &ctx()).unwrap());
        assert_eq!(renewal.event, Event::Sale);
        assert_eq!(renewal.order_id, "in_1QTe8kLkdIwHu7ixW3cN5yPq");
        assert_eq!(
            renewal.event_id.as_deref(),
            Some("stripe:in_1QTe8kLkdIwHu7ixW3cN5yPq")
        );
        assert_eq!(renewal.amount_minor, 2_900);
        assert_eq!(
            renewal.subscription_id.as_deref(),
            Some("sub_1QKy2PLkdIwHu7ixG1b9ZsVn")
        );
        assert_eq!(
            renewal.click_id.as_deref(),
            Some("1DrG5oKc0x8S4gQ7RBn7nXgCAyw4kQYqE")
        );
        assert_eq!(renewal.occurred_at, Some(at(1_796_037_415).unwrap()));

        // The first invoice is the session's sale, not a second one.
        let mut first_invoice: serde_json::Value = serde_json::from_slice(RENEWAL).unwrap();
        first_invoice["data"]["object"]["billing_reason"] = "subscription_create".into();
        let body = serde_json::to_vec(&first_invoice).unwrap();
        assert!(matches!(map(&body, &ctx()).unwrap(), Mapped::Ignore(_)));
    }

    #[test]
    fn a_trial_without_payment_is_a_lead() {
        let mut trial: serde_json::Value = serde_json::from_slice(SUBSCRIPTION).unwrap();
        trial["data"]["object"]["payment_status"] = "no_payment_required".into();
        trial["data"]["object"]["amount_total"] = 0.into();
        let body = serde_json::to_vec(&trial).unwrap();
        let lead = one(map(&body, &ctx()).unwrap());
        assert_eq!(lead.event, Event::Lead);
        assert_eq!(lead.amount_minor, 0);
    }

    #[test]
    fn a_refund_is_what_this_event_added_to_the_running_total() {
        let refund = one(map(REFUND, &ctx()).unwrap());
        assert_eq!(refund.event, Event::Refund);
        assert_eq!(refund.order_id, "pi_3QKx7hLkdIwHu7ix0lQ2mZbE");
        assert_eq!(
            refund.event_id.as_deref(),
            Some("stripe:ch_3QKx7hLkdIwHu7ix0Ea6tLhw:refunded:3168")
        );
        assert_eq!(refund.amount_minor, 3_168);
        // A second partial refund of the same charge: only what it added.
        let mut second: serde_json::Value = serde_json::from_slice(REFUND).unwrap();
        second["data"]["object"]["amount_refunded"] = 5_000.into();
        second["data"]["previous_attributes"]["amount_refunded"] = 3_168.into();
        let body = serde_json::to_vec(&second).unwrap();
        let refund = one(map(&body, &ctx()).unwrap());
        assert_eq!(refund.amount_minor, 1_832);
        assert_eq!(
            refund.event_id.as_deref(),
            Some("stripe:ch_3QKx7hLkdIwHu7ix0Ea6tLhw:refunded:5000")
        );
    }

    #[test]
    fn an_invoice_payment_makes_its_payment_intent_an_alias_of_the_invoice() {
        match map(INVOICE_PAYMENT, &ctx()).unwrap() {
            Mapped::Alias { alias, order_id } => {
                assert_eq!(alias, "pi_3QTe8lLkdIwHu7ix1uRkP9sQ");
                assert_eq!(order_id, "in_1QTe8kLkdIwHu7ixW3cN5yPq");
            }
            other => panic!("expected an alias, got {other:?}"),
        }
        // Paid by a charge without a PaymentIntent: its refund names the charge.
        let mut other: serde_json::Value = serde_json::from_slice(INVOICE_PAYMENT).unwrap();
        other["data"]["object"]["payment"] =
            serde_json::json!({"type": "charge", "charge": "ch_1"});
        let body = serde_json::to_vec(&other).unwrap();
        assert!(matches!(
            map(&body, &ctx()).unwrap(),
            Mapped::Alias { alias, .. } if alias == "ch_1"
        ));
        // Recorded elsewhere (a payment record): nothing a refund event names.
        other["data"]["object"]["payment"] =
            serde_json::json!({"type": "payment_record", "payment_record": "pr_1"});
        let body = serde_json::to_vec(&other).unwrap();
        assert!(matches!(map(&body, &ctx()).unwrap(), Mapped::Ignore(_)));
    }

    #[test]
    fn other_events_are_ignored_and_other_currencies_refused() {
        assert!(matches!(
            map(CUSTOMER, &ctx()).unwrap(),
            Mapped::Ignore(r) if r == "the Stripe event type customer.created books nothing (evt_1QKx1aLkdIwHu7ixJm0cYb2R)"
        ));
        let eur = Context {
            currency: Currency::parse("EUR").unwrap(),
            ..ctx()
        };
        assert_eq!(
            map(SESSION, &eur).unwrap_err(),
            MapError::Invalid(vec![(
                "currency".into(),
                "the order is in USD; the program's currency is EUR".into()
            )])
        );
        assert!(matches!(map(b"[]", &ctx()), Err(MapError::Malformed(_))));
    }
}
