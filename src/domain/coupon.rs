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

impl fmt::Debug for CouponCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
