//! Coupon codes that attribute a sale to an agreement without a click.

use std::fmt;

/// A coupon code, compared case-insensitively: stored upper-case, 2 to 64 of
/// `A-Z 0-9 - _`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct CouponCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 2 to 64 letters, digits, '-' or '_'")]
pub struct CouponError;

impl CouponCode {
    pub fn parse(s: &str) -> Result<Self, CouponError> {
        let s = s.trim();
        let ok = (2..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_ascii_uppercase())).ok_or(CouponError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The regular expression of what `CouponCode::parse` takes.
fn pattern() -> String {
    let spaces = super::text::WHITESPACE;
    format!("^[{spaces}]*[A-Za-z0-9_-]{{2,64}}[{spaces}]*$")
}

impl utoipa::PartialSchema for CouponCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A coupon code: 2 to 64 letters, digits, `-` or `_`, compared without regard \
                 to case (kept upper case); surrounding whitespace is trimmed.",
            ))
            .pattern(Some(pattern()))
            .examples(["AYU10"])
            .into()
    }
}

impl utoipa::ToSchema for CouponCode {}

impl fmt::Debug for CouponCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_documented_pattern_is_what_parses(s in "[ \\ta_ü;-]{0,6}|[a]{63,66}") {
            let documented = regex::Regex::new(&pattern()).unwrap().is_match(&s);
            prop_assert_eq!(documented, CouponCode::parse(&s).is_ok(), "{:?}", s);
        }
    }

    #[test]
    fn codes_are_case_insensitive_and_plain() {
        assert_eq!(CouponCode::parse(" ayu10 ").unwrap().as_str(), "AYU10");
        assert_eq!(
            CouponCode::parse("BLACK_FRIDAY-25").unwrap().as_str(),
            "BLACK_FRIDAY-25"
        );
        for bad in [
            "",
            "a",
            "has space",
            "ümlaut",
            "semi;colon",
            &"x".repeat(65),
        ] {
            assert!(CouponCode::parse(bad).is_err(), "{bad}");
        }
    }
}
