//! Names and e-mail addresses of programs and partners.

use super::text::{TextRule, WHITESPACE};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// A display name: at most 200 characters, no control characters, kept
/// trimmed, and something besides whitespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

const NAME: TextRule = TextRule::line(200);
/// The longest address (RFC 5321's path limit, less the brackets).
const MAX_EMAIL: usize = 254;
/// The longest local part (before the `@`).
const MAX_LOCAL: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("must be 1 to 200 characters without control characters")]
    BadName,
    #[error("must be an e-mail address such as partner@example.com")]
    BadEmail,
}

impl Name {
    pub fn parse(s: &str) -> Result<Self, ContactError> {
        match NAME.parse(s) {
            Ok(Some(name)) => Ok(Self(name.to_owned())),
            _ => Err(ContactError::BadName),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address, checked for shape only (one `@`, a dotted domain, no
/// spaces): whether it receives mail is not ours to know. At most 254
/// characters as sent; kept trimmed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, ContactError> {
        let valid_length = s.chars().count() <= MAX_EMAIL;
        let s = s.trim();
        let valid = valid_length
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.chars().count() <= MAX_LOCAL
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        valid
            .then(|| Self(s.to_owned()))
            .ok_or(ContactError::BadEmail)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl utoipa::PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        NAME.schema(true)
            .description(Some(
                "A display name: at most 200 characters, without control characters; \
                 surrounding whitespace is trimmed, and there must be something else.",
            ))
            .examples(["Batik Shop"])
            .into()
    }
}

impl utoipa::ToSchema for Name {}

/// The regular expression of what `Email::parse` takes, apart from the
/// length: surrounding whitespace, a local part of 1 to 64 characters, `@`,
/// and dot-separated labels, none with `@`, whitespace or control characters.
fn email_pattern() -> String {
    let control = r"\u0000-\u001F\u007F-\u009F";
    let local = format!("[^@{WHITESPACE}{control}]{{1,{MAX_LOCAL}}}");
    let label = format!("[^@.{WHITESPACE}{control}]+");
    format!("^[{WHITESPACE}]*{local}@{label}(?:\\.{label})+[{WHITESPACE}]*$")
}

impl utoipa::PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An e-mail address (checked for shape only: one `@`, at most 64 characters \
                 before it, a dotted domain, no whitespace); at most 254 characters, \
                 surrounding whitespace trimmed.",
            ))
            .max_length(Some(MAX_EMAIL))
            .pattern(Some(email_pattern()))
            .examples(["ayu@example.com"])
            .into()
    }
}

impl utoipa::ToSchema for Email {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("  Ayu's Deals ").unwrap().as_str(),
            "Ayu's Deals"
        );
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(201)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
    }

    #[test]
    fn emails_need_a_plausible_shape() {
        assert!(Email::parse("ayu@example.co.id").is_ok());
        for bad in [
            "",
            "ayu",
            "@example.com",
            "ayu@",
            "ayu@example",
            "a b@example.com",
            "a@b@example.com",
            "ayu@.example.com",
            "ayu@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// The documented pattern and length take exactly what parses.
        #[test]
        fn the_documented_email_schema_is_what_parses(s in "[ \\ta@.é\u{0}\u{85}]{0,12}|[a]{60,70}@b.c") {
            let pattern = regex::Regex::new(&email_pattern()).unwrap();
            let documented = s.chars().count() <= MAX_EMAIL && pattern.is_match(&s);
            prop_assert_eq!(documented, Email::parse(&s).is_ok(), "{:?}", s);
        }
    }
}
