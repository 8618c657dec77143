//! Typed, prefixed public ids.
//!
//! Rows have bigint identities; the API shows them as `prg_` + base62, so a
//! partner id can never be passed where a program id is wanted, and an id of
//! the wrong kind fails to parse instead of reaching the database.

use std::fmt;

/// Why a public id did not parse. Handlers answer 404 for it: an id that cannot
/// exist names nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id")]
pub struct IdError {
    pub kind: &'static str,
}

/// Parses the base62 part of an id: canonical (no leading zeros), positive and
/// within i64.
pub(crate) fn parse_base62_i64(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 11 || s.starts_with('0') {
        return None;
    }
    let n = base62::decode(s).ok()?;
    i64::try_from(n).ok().filter(|n| *n > 0)
}

/// Parses a pagination cursor: the base62 id of the last row of a page.
pub fn parse_cursor(s: &str) -> Result<i64, IdError> {
    parse_base62_i64(s).ok_or(IdError { kind: "cursor" })
}

macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
        #[sqlx(transparent)]
        pub struct $name(i64);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// Wraps a row id read from the database.
            pub const fn from_db(id: i64) -> Self {
                Self(id)
            }

            pub const fn get(self) -> i64 {
                self.0
            }

            pub fn parse(s: &str) -> Result<Self, IdError> {
                s.strip_prefix($prefix)
                    .and_then(parse_base62_i64)
                    .map(Self)
                    .ok_or(IdError { kind: $kind })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, base62::encode(self.0 as u64))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        /// In the OpenAPI document: the prefixed string clients see.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema($prefix, $kind)
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

/// A string schema for a public id: its prefix, then canonical base62.
fn id_schema(prefix: &str, kind: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "A {kind} id: `{prefix}` and a base62 number; opaque to clients."
        )))
        .pattern(Some(format!("^{prefix}{}$", base62_i64_pattern())))
        .examples([format!("{prefix}1a")])
        .into()
}

/// The base62 digits, in the order of their values.
const BASE62: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A regular expression (no anchors) for exactly what `parse_base62_i64`
/// takes: canonical base62 (no leading zero) of 1 to `i64::MAX`. Shorter
/// numbers are any digits; numbers as long as `i64::MAX` share a prefix
/// with it, then have a smaller digit, then any digits (or are it).
pub fn base62_i64_pattern() -> String {
    let max = base62::encode(i64::MAX as u64);
    let mut alternatives = vec![format!("[1-9A-Za-z][0-9A-Za-z]{{0,{}}}", max.len() - 2)];
    for (i, digit) in max.char_indices() {
        let lowest = usize::from(i == 0);
        let below = &BASE62[lowest..BASE62.find(digit).expect("a base62 digit")];
        if !below.is_empty() {
            let rest = max.len() - i - 1;
            alternatives.push(format!(
                "{}[{}][0-9A-Za-z]{{{rest}}}",
                &max[..i],
                digit_class(below)
            ));
        }
    }
    alternatives.push(max);
    format!("(?:{})", alternatives.join("|"))
}

/// A character class body for a run of base62 digits, as ranges.
fn digit_class(digits: &str) -> String {
    [
        "0123456789",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "abcdefghijklmnopqrstuvwxyz",
    ]
    .iter()
    .filter_map(|block| {
        let inside: Vec<char> = digits.chars().filter(|c| block.contains(*c)).collect();
        match inside.as_slice() {
            [] => None,
            [one] => Some(one.to_string()),
            [first, .., last] => Some(format!("{first}-{last}")),
        }
    })
    .collect()
}

public_id!(
    /// A merchant's affiliate program.
    ProgramId, "prg_", "program"
);
public_id!(
    /// An affiliate, influencer, reseller or other partner.
    PartnerId, "ptn_", "partner"
);
public_id!(
    /// The terms between a program and its partners.
    AgreementId, "agr_", "agreement"
);
public_id!(
    /// A tracked link.
    LinkId, "lnk_", "link"
);
public_id!(
    /// A conversion posted by a shop.
    ConversionId, "cnv_", "conversion"
);
public_id!(
    /// What one partner earns from one conversion.
    CommissionId, "com_", "commission"
);
public_id!(
    /// A batch payment of approved commissions.
    PayoutId, "pay_", "payout"
);
public_id!(
    /// One append-only ledger entry.
    LedgerEntryId, "led_", "ledger entry"
);
public_id!(
    /// A partner's membership of a program.
    EnrollmentId, "enr_", "enrollment"
);
public_id!(
    /// Where a program or partner receives outgoing webhooks.
    WebhookEndpointId, "whe_", "webhook endpoint"
);
public_id!(
    /// An event of the outbox; receivers' idempotency key (`webhook-id`).
    EventId, "evt_", "event"
);
public_id!(
    /// One event's delivery to one endpoint, with its attempts.
    DeliveryId, "dlv_", "delivery"
);
public_id!(
    /// A partner's claim about a sale or commission.
    ClaimId, "clm_", "claim"
);
public_id!(
    /// A person who signs in to the portal, for a partner or a program.
    UserId, "usr_", "user"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_print_with_their_prefix() {
        assert_eq!(ProgramId::from_db(1).to_string(), "prg_1");
        assert_eq!(PartnerId::from_db(62).to_string(), "ptn_10");
    }

    #[test]
    fn an_id_of_another_kind_does_not_parse() {
        assert!(ProgramId::parse("ptn_1").is_err());
        assert!(ProgramId::parse("1").is_err());
    }

    #[test]
    fn non_canonical_or_out_of_range_ids_do_not_parse() {
        let too_big = format!("prg_{}", base62::encode(i64::MAX as u64 + 1));
        for bad in [
            "prg_",
            "prg_0",
            "prg_01",
            "prg_-1",
            "prg_a b",
            "prg_zzzzzzzzzzzz",
            &too_big,
        ] {
            assert!(ProgramId::parse(bad).is_err(), "{bad}");
        }
    }

    fn id_pattern() -> regex::Regex {
        regex::Regex::new(&format!("^prg_{}$", base62_i64_pattern())).unwrap()
    }

    #[test]
    fn the_documented_pattern_takes_the_largest_id_and_nothing_above_it() {
        let pattern = id_pattern();
        let largest = ProgramId::from_db(i64::MAX).to_string();
        assert!(pattern.is_match(&largest), "{largest}");
        let above = format!("prg_{}", base62::encode(i64::MAX as u64 + 1));
        assert!(!pattern.is_match(&above), "{above}");
        assert!(!pattern.is_match("prg_0") && !pattern.is_match("prg_"));
    }

    proptest! {
        /// The OpenAPI pattern and the parser agree on every id-shaped text.
        #[test]
        fn the_documented_pattern_is_what_parses(digits in "[0-9A-Za-z]{0,12}", n in 1..=i64::MAX) {
            let pattern = id_pattern();
            for text in [format!("prg_{digits}"), ProgramId::from_db(n).to_string()] {
                prop_assert_eq!(pattern.is_match(&text), ProgramId::parse(&text).is_ok(), "{}", text);
            }
        }

        #[test]
        fn every_positive_id_round_trips(n in 1..=i64::MAX) {
            let id = LinkId::from_db(n);
            prop_assert_eq!(LinkId::parse(&id.to_string()), Ok(id));
        }
    }

    proptest! {
        /// Any text as an id or a cursor: no panic, and only canonical ids parse.
        #[test]
        fn arbitrary_text_as_an_id_or_cursor_never_panics(text in "\\PC{0,30}", shaped in "(prg_|ptn_|lnk_)?[0-9A-Za-z_]{0,14}") {
            for t in [&text, &shaped] {
                if let Ok(id) = ProgramId::parse(t) {
                    prop_assert_eq!(&id.to_string(), t);
                }
                if let Ok(n) = parse_cursor(t) {
                    prop_assert_eq!(&base62::encode(n as u64), t);
                }
            }
        }
    }
}
