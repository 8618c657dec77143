//! ISO 4217 currency codes.

use std::fmt;

/// An active ISO 4217 currency: funds, precious metals, test codes and
/// superseded currencies are refused, since nobody pays commissions in them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an active ISO 4217 currency code")]
pub struct CurrencyError(String);

/// A decimal amount that is not one, or does not fit in minor units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a decimal amount of money")]
pub struct AmountError(String);

impl Currency {
    /// Parses an upper-case three-letter code such as `EUR`.
    pub fn parse(code: &str) -> Result<Self, CurrencyError> {
        let err = || CurrencyError(code.chars().take(8).collect());
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(err());
        }
        let currency = iso_currency::Currency::from_code(code).ok_or_else(err)?;
        if !is_active(currency) {
            return Err(err());
        }
        Ok(Self(currency))
    }

    /// Every code `parse` takes, in alphabetical order: each three
    /// upper-case letters that parse.
    pub fn codes() -> Vec<&'static str> {
        let letters = b'A'..=b'Z';
        letters
            .clone()
            .flat_map(|a| letters.clone().map(move |b| [a, b]))
            .flat_map(|[a, b]| (b'A'..=b'Z').map(move |c| [a, b, c]))
            .filter_map(|code| Currency::parse(std::str::from_utf8(&code).ok()?).ok())
            .map(Currency::code)
            .collect()
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point (2 for EUR, 0 for JPY, 3 for BHD).
    pub fn exponent(self) -> u32 {
        u32::from(self.0.exponent().unwrap_or(0))
    }

    /// An amount in minor units written in major units, e.g. 12345 EUR as
    /// "123.45": exact, from integers, for exports.
    pub fn format_minor(self, amount_minor: i64) -> String {
        let e = self.exponent();
        if e == 0 {
            return amount_minor.to_string();
        }
        let scale = 10u64.pow(e);
        let abs = amount_minor.unsigned_abs();
        let sign = if amount_minor < 0 { "-" } else { "" };
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = e as usize
        )
    }
}

impl Currency {
    /// A decimal amount in major units, as shops write it ("123.45",
    /// "-10.00", "1000" for JPY), in exact minor units. Digits beyond the
    /// currency's exponent (a shop set to four decimals) round half away
    /// from zero, as a shop rounds its totals. No floats on the way.
    pub fn parse_major(self, s: &str) -> Result<i64, AmountError> {
        let err = || AmountError(s.chars().take(32).collect());
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let plain = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !plain(whole) || !plain(fraction) || whole.len() > 19 {
            return Err(err());
        }
        if digits.contains('.') && fraction.is_empty() {
            return Err(err());
        }
        let e = self.exponent() as usize;
        let kept = &fraction[..fraction.len().min(e)];
        let mut minor: i128 = whole.parse().map_err(|_| err())?;
        for i in 0..e {
            let digit = kept.as_bytes().get(i).map_or(0, |b| b - b'0');
            minor = minor * 10 + i128::from(digit);
        }
        // Half away from zero: the first dropped digit decides.
        if fraction.len() > e && fraction.as_bytes()[e] >= b'5' {
            minor += 1;
        }
        let minor = if negative { -minor } else { minor };
        i64::try_from(minor).map_err(|_| err())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// In the OpenAPI document: the ISO 4217 code.
/// Funds, precious metals, test codes and superseded currencies are not
/// money anyone pays commissions in.
fn is_active(currency: iso_currency::Currency) -> bool {
    !(currency.is_fund() || currency.is_special() || currency.is_superseded().is_some())
}

/// In the OpenAPI document: the codes themselves.
impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An active ISO 4217 currency code, upper case."))
            .enum_values(Some(Currency::codes()))
            .examples(["EUR"])
            .into()
    }
}

impl utoipa::ToSchema for Currency {}

impl sqlx::Type<sqlx::Postgres> for Currency {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Currency {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.code(), buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Currency {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let code = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(Self::parse(code)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_codes_are_the_active_currencies_in_order() {
        let codes = Currency::codes();
        for active in ["EUR", "IDR", "JPY", "USD"] {
            assert!(codes.contains(&active), "{active}");
        }
        // A precious metal, a test code, a fund, a superseded currency.
        for inactive in ["XAU", "XTS", "CLF", "DEM"] {
            assert!(!codes.contains(&inactive), "{inactive}");
        }
        assert!(codes.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn active_currencies_parse() {
        for code in ["EUR", "USD", "JPY", "IDR", "CHF", "BHD"] {
            assert_eq!(Currency::parse(code).unwrap().code(), code);
        }
    }

    #[test]
    fn amounts_format_in_major_units_exactly() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(eur.format_minor(12_345), "123.45");
        assert_eq!(eur.format_minor(5), "0.05");
        assert_eq!(eur.format_minor(-105), "-1.05");
        assert_eq!(eur.format_minor(i64::MIN), "-92233720368547758.08");
        assert_eq!(
            Currency::parse("JPY").unwrap().format_minor(12_345),
            "12345"
        );
        assert_eq!(
            Currency::parse("BHD").unwrap().format_minor(12_345),
            "12.345"
        );
    }

    #[test]
    fn decimal_amounts_parse_to_exact_minor_units() {
        let eur = Currency::parse("EUR").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let bhd = Currency::parse("BHD").unwrap();
        for (currency, text, minor) in [
            (eur, "123.45", 12_345),
            (eur, "0.05", 5),
            (eur, "10", 1_000),
            (eur, "10.5", 1_050),
            (eur, "-10.00", -1_000),
            (eur, "0.005", 1),
            (eur, "0.0049", 0),
            (eur, "-0.005", -1),
            (eur, "19.999", 2_000),
            (jpy, "1500", 1_500),
            (jpy, "1500.0", 1_500),
            (jpy, "1500.5", 1_501),
            (bhd, "12.345", 12_345),
            (eur, "92233720368547758.07", i64::MAX),
        ] {
            assert_eq!(currency.parse_major(text), Ok(minor), "{text} {currency}");
        }
        for bad in [
            "",
            "-",
            ".5",
            "5.",
            "1,00",
            "1e3",
            " 1",
            "+1",
            "1.2.3",
            "NaN",
            "92233720368547758.08",
            "9999999999999999999",
        ] {
            assert!(eur.parse_major(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn formatted_amounts_parse_back(minor in proptest::num::i64::ANY) {
            for code in ["EUR", "JPY", "BHD"] {
                let c = Currency::parse(code).unwrap();
                proptest::prop_assert_eq!(c.parse_major(&c.format_minor(minor)), Ok(minor));
            }
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for code in [
            "", "eur", "EURO", "EU", "XXX", "XAU", "XTS", "ZZZ", "€", "E U",
        ] {
            assert!(Currency::parse(code).is_err(), "{code}");
        }
    }
}
