//! Shop and payment platforms' own webhooks (Shopify, WooCommerce, Stripe),
//! verified with each platform's signature scheme and mapped to mitra's
//! conversions. Mapping is pure: bytes and headers in, `NewConversion`s out;
//! the HTTP layer stores them through the same path as mitra's own webhook.
//!
//! Each platform's ids make the idempotency keys (`event_id`), so the
//! platform's retries, and two topics about one order, store one conversion:
//! a sale is keyed by the platform's order, a refund by the platform's
//! refund. What mitra has no use for (other topics, unpaid orders) is
//! `Ignore`d: acknowledged, so the platform does not retry it forever.

pub mod shopify;
pub mod signature;
pub mod stripe;
pub mod woocommerce;

use crate::conversions::{Event, NewConversion};
use crate::domain::{Currency, ProgramId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// What a platform's webhook asks of mitra.
#[derive(Debug)]
pub enum Mapped {
    /// Conversions to store (a WooCommerce order may carry its sale and refunds).
    Store(Vec<NewConversion>),
    /// Nothing to store, and why: acknowledged all the same.
    Ignore(String),
    /// Another name for an order (`alias`): refunds that name the order by
    /// it are stored under `order_id`, where its sale is.
    Alias { alias: String, order_id: String },
}

/// A webhook that is signed by the platform but cannot be mapped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Not the JSON the platform sends for this topic (400).
    #[error("{0}")]
    Malformed(String),
    /// Values mitra cannot store, as (field, message) (422): an order in a
    /// currency other than the program's.
    #[error("invalid fields")]
    Invalid(Vec<(String, String)>),
}

impl MapError {
    fn invalid(field: &str, message: impl ToString) -> Self {
        MapError::Invalid(vec![(field.to_owned(), message.to_string())])
    }
}

/// What mapping needs to know besides the webhook itself.
#[derive(Debug, Clone)]
pub struct Context {
    pub program: ProgramId,
    /// The program's currency: amounts are taken in it or not at all.
    pub currency: Currency,
    pub now: DateTime<Utc>,
    pub request_id: Option<String>,
}

impl Context {
    /// A conversion of this program, with nothing optional set yet.
    fn conversion(
        &self,
        event: Event,
        order_id: &str,
        event_id: String,
        amount_minor: i64,
    ) -> NewConversion {
        NewConversion {
            program: self.program,
            event_id: Some(event_id),
            order_id: order_id.to_owned(),
            event,
            amount_minor,
            currency: self.currency,
            click_id: None,
            coupon: None,
            subscription_id: None,
            occurred_at: None,
            request_id: self.request_id.clone(),
            items: None,
        }
    }

    /// A decimal amount the platform wrote in `currency`, in the program's
    /// minor units; `None` when `currency` is not the program's.
    fn major(&self, field: &str, amount: &str, currency: &str) -> Result<Option<i64>, MapError> {
        if !currency.eq_ignore_ascii_case(self.currency.code()) {
            return Ok(None);
        }
        self.currency
            .parse_major(amount)
            .map(Some)
            .map_err(|e| MapError::Malformed(format!("{field}: {e}")))
    }

    /// The same refusal for every platform: the order is in other currencies.
    fn wrong_currency(&self, field: &str, theirs: &[&str]) -> MapError {
        MapError::invalid(
            field,
            format!(
                "the order is in {}; the program's currency is {}",
                theirs.join(" and "),
                self.currency
            ),
        )
    }
}

/// Applies the rules every stored conversion satisfies; the mapped
/// conversions break none of them unless the platform sent something odd.
fn checked(ctx: &Context, conversions: Vec<NewConversion>) -> Result<Mapped, MapError> {
    let problems: Vec<(String, String)> = conversions
        .iter()
        .flat_map(|c| c.problems(ctx.now))
        .map(|(field, message)| (field.to_owned(), message))
        .collect();
    if !problems.is_empty() {
        return Err(MapError::Invalid(problems));
    }
    Ok(Mapped::Store(conversions))
}

/// A platform id, which platforms write as a JSON number or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformId(pub String);

impl<'de> Deserialize<'de> for PlatformId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        Ok(PlatformId(match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(s) => s,
        }))
    }
}

impl std::fmt::Display for PlatformId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `mitra_click` parameter of a landing URL, absolute or a path.
fn click_in_url(url: &str) -> Option<String> {
    let base = url::Url::parse("https://landing.invalid/").expect("a valid base");
    let url = base.join(url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "mitra_click")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// A non-empty string, trimmed.
fn present(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse_json<'a, T: Deserialize<'a>>(what: &str, body: &'a [u8]) -> Result<T, MapError> {
    serde_json::from_slice(body).map_err(|e| MapError::Malformed(format!("malformed {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn click_ids_are_found_in_landing_urls_and_paths() {
        assert_eq!(
            click_in_url("/products/kain?mitra_click=abc123&utm_source=x").as_deref(),
            Some("abc123")
        );
        assert_eq!(
            click_in_url("https://shop.example/?a=1&mitra_click=Z9").as_deref(),
            Some("Z9")
        );
        assert_eq!(click_in_url("/?mitra_click="), None);
        assert_eq!(click_in_url("/no/query"), None);
    }

    #[test]
    fn platform_ids_take_numbers_and_strings() {
        let ids: Vec<PlatformId> =
            serde_json::from_str(r#"[820982911946154508, "in_1MtHbELkdIwHu7ixl4OzzPMv"]"#).unwrap();
        assert_eq!(ids[0].0, "820982911946154508");
        assert_eq!(ids[1].0, "in_1MtHbELkdIwHu7ixl4OzzPMv");
    }
}
