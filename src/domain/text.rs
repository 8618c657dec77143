//! Free text as the API takes it (names, notes, descriptions, reasons), and
//! the OpenAPI schema that states exactly that, built from the same rule.
//!
//! A text field is at most `max` characters as sent, has no control
//! characters (multi-line text may have line feeds), and is kept trimmed;
//! text that is only whitespace is absent (or, where text is required,
//! refused). Lengths are counted in characters (Unicode scalar values), as
//! JSON Schema's `maxLength` counts them.

use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

/// `char::is_control` (general category Cc), as a regex class body.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// `char::is_control` but the line feed.
const CONTROL_BUT_LINE_FEED: &str = r"\u0000-\u0009\u000B-\u001F\u007F-\u009F";
/// `char::is_whitespace` (Unicode White_Space) that is not a control character.
const SPACES: &str = r"\u0020\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// All of `char::is_whitespace` (what `str::trim` removes).
pub const WHITESPACE: &str =
    r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// How long a text field may be and whether it may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    pub max: usize,
    pub multiline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must not contain control characters")]
    Control,
    #[error("must not contain control characters other than line feeds")]
    ControlBesidesLineFeed,
}

impl TextRule {
    /// One line of at most `max` characters.
    pub const fn line(max: usize) -> Self {
        Self {
            max,
            multiline: false,
        }
    }

    /// Text of at most `max` characters that may span lines (`\n`).
    pub const fn lines(max: usize) -> Self {
        Self {
            max,
            multiline: true,
        }
    }

    /// The text, trimmed; `None` when nothing but whitespace was sent.
    pub fn parse(self, s: &str) -> Result<Option<&str>, TextError> {
        if s.chars().count() > self.max {
            return Err(TextError::TooLong(self.max));
        }
        if s.chars()
            .any(|c| c.is_control() && !(self.multiline && c == '\n'))
        {
            return Err(if self.multiline {
                TextError::ControlBesidesLineFeed
            } else {
                TextError::Control
            });
        }
        let s = s.trim();
        Ok((!s.is_empty()).then_some(s))
    }

    /// The regular expression of what `parse` takes, apart from the length
    /// (`maxLength`); `required`: with something besides whitespace. Written
    /// so that no two parts can match the same character (no backtracking).
    pub fn pattern(self, required: bool) -> String {
        let (forbidden, spaces) = if self.multiline {
            (CONTROL_BUT_LINE_FEED, format!("{SPACES}\\u000A"))
        } else {
            (CONTROL, SPACES.to_owned())
        };
        if required {
            format!("^[{spaces}]*[^{CONTROL}{WHITESPACE}][^{forbidden}]*$")
        } else {
            format!("^[^{forbidden}]*$")
        }
    }

    /// A string schema stating the rule; `required`: text with something
    /// besides whitespace, else also `null` (absent).
    pub fn schema(self, required: bool) -> ObjectBuilder {
        let schema_type = if required {
            SchemaType::Type(Type::String)
        } else {
            [Type::String, Type::Null].into_iter().collect()
        };
        ObjectBuilder::new()
            .schema_type(schema_type)
            .max_length(Some(self.max))
            .pattern(Some(self.pattern(required)))
    }
}

/// A reference kept exactly as sent (an order id, a click id, a sub id):
/// 1 to `max` characters, no control characters.
pub fn is_plain(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// The schema of what `is_plain` takes (`nullable`: or `null`, absent).
pub fn plain_schema(max: usize, nullable: bool) -> ObjectBuilder {
    let schema_type = if nullable {
        [Type::String, Type::Null].into_iter().collect()
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(format!("^[^{CONTROL}]*$")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(rule: TextRule, required: bool, s: &str) -> bool {
        s.chars().count() <= rule.max
            && regex::Regex::new(&rule.pattern(required))
                .unwrap()
                .is_match(s)
    }

    #[test]
    fn text_is_trimmed_bounded_and_without_control_characters() {
        let name = TextRule::line(10);
        assert_eq!(name.parse("  Ayu "), Ok(Some("Ayu")));
        assert_eq!(name.parse(" \u{a0} "), Ok(None));
        assert_eq!(name.parse("12345678901"), Err(TextError::TooLong(10)));
        assert_eq!(name.parse("\tAyu"), Err(TextError::Control));
        let note = TextRule::lines(10);
        assert_eq!(note.parse("a\nb\n"), Ok(Some("a\nb")));
        assert_eq!(note.parse("a\r\nb"), Err(TextError::ControlBesidesLineFeed));
    }

    proptest! {
        #[test]
        fn the_plain_schema_is_what_is_plain(s in "[ a\\t\\u{85}\\u{0}é]{0,5}") {
            let pattern = regex::Regex::new(&format!("^[^{CONTROL}]*$")).unwrap();
            let count = s.chars().count();
            prop_assert_eq!((1..=4).contains(&count) && pattern.is_match(&s), is_plain(&s, 4));
        }

        /// The documented pattern (with `maxLength`) takes exactly what
        /// `parse` takes, required or not, on one line or several.
        #[test]
        fn the_documented_schema_is_what_parses(
            s in "[ a\\t\\n\\r\\u{85}\\u{a0}\\u{2028}\\u{3000}\\u{0}\\u{7f}\\u{9f}é]{0,8}",
            multiline: bool,
        ) {
            let rule = TextRule { max: 6, multiline };
            let parsed = rule.parse(&s);
            prop_assert_eq!(matches(rule, false, &s), parsed.is_ok(), "{:?}", s);
            prop_assert_eq!(matches(rule, true, &s), matches!(parsed, Ok(Some(_))), "{:?}", s);
        }
    }
}
