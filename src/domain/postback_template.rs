//! Classic affiliate postbacks: a URL template with macros, as partners'
//! own trackers expect (`https://track.example/pb?cid={click_id}&amt={amount_minor}`).
//!
//! Each macro is replaced by its value percent-encoded (everything but the
//! unreserved characters `A-Z a-z 0-9 - . _ ~`), so a value can never break
//! out of its query parameter or path segment, whatever a shop or shopper
//! put in it. Macros may stand only in the path, query and fragment: the
//! scheme, host and port are fixed when the template is set, and judged by
//! the same rules as webhook URLs.

use super::target_url::{TargetError, TargetUrl};
use std::collections::BTreeMap;

/// The macros a template may use.
pub const MACROS: &[&str] = &[
    "click_id",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "order_id",
    "event",
    "amount_minor",
    "commission_minor",
    "currency",
    "status",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{0}}}` is not a macro (use {list})", list = MACROS.iter().map(|m| format!("{{{m}}}")).collect::<Vec<_>>().join(", "))]
    UnknownMacro(String),
    #[error("a `{{` is not closed by `}}`")]
    Unclosed,
    #[error("macros may not stand in the scheme, host or port")]
    MacroInHost,
    #[error("{0}")]
    Target(#[from] TargetError),
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostbackTemplate(String);

/// The pieces of a template: text, or a macro's name.
fn pieces(template: &str) -> Result<Vec<(bool, &str)>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push((false, &rest[..open]));
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(TemplateError::Unclosed)?;
        let name = &after[..close];
        if !MACROS.contains(&name) {
            return Err(TemplateError::UnknownMacro(name.chars().take(40).collect()));
        }
        out.push((true, name));
        rest = &after[close + 1..];
    }
    out.push((false, rest));
    Ok(out)
}

impl PostbackTemplate {
    pub fn parse(template: &str, allow_private: bool) -> Result<Self, TemplateError> {
        let template = template.trim();
        pieces(template)?;
        // The scheme, host and port: everything before the first '/' after "://".
        let authority_end = template
            .find("://")
            .map(|i| {
                i + 3
                    + template[i + 3..]
                        .find(['/', '?', '#'])
                        .unwrap_or(template.len() - i - 3)
            })
            .unwrap_or(template.len());
        if template[..authority_end].contains('{') {
            return Err(TemplateError::MacroInHost);
        }
        // With every macro filled, it must be a URL mitra may send to.
        let sample = render_with(template, &|_| Some("x".to_owned()))?;
        TargetUrl::parse(&sample, allow_private)?;
        Ok(Self(template.to_owned()))
    }

    /// Stored templates were parsed when set.
    pub fn from_db(template: String) -> Self {
        Self(template)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL for these values; a macro without a value is left empty.
    pub fn render(&self, values: &BTreeMap<&str, String>) -> String {
        render_with(&self.0, &|name| values.get(name).cloned()).unwrap_or_else(|_| self.0.clone())
    }
}

fn render_with(
    template: &str,
    value: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 64);
    for (is_macro, text) in pieces(template)? {
        if is_macro {
            out.push_str(&encode(&value(text).unwrap_or_default()));
        } else {
            out.push_str(text);
        }
    }
    Ok(out)
}

/// Percent-encodes all but the unreserved characters (RFC 3986).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    #[test]
    fn macros_are_replaced_by_their_values_percent_encoded() {
        let t = PostbackTemplate::parse(
            "https://track.example/pb/{event}?cid={click_id}&s1={sub1}&o={order_id}&amt={amount_minor}&c={commission_minor}{currency}&st={status}#{sub2}",
            false,
        )
        .unwrap();
        let url = t.render(&values(&[
            ("event", "sale"),
            ("click_id", "AbC123"),
            ("sub1", "a&b=c/ d?é#"),
            ("order_id", "ORD 1+2%"),
            ("amount_minor", "12500"),
            ("commission_minor", "1250"),
            ("currency", "EUR"),
            ("status", "pending"),
            ("sub2", "x~y.z_-"),
        ]));
        assert_eq!(
            url,
            "https://track.example/pb/sale?cid=AbC123&s1=a%26b%3Dc%2F%20d%3F%C3%A9%23&o=ORD%201%2B2%25&amt=12500&c=1250EUR&st=pending#x~y.z_-"
        );
        // Missing values are empty, never the macro's text.
        assert_eq!(
            t.render(&values(&[])),
            "https://track.example/pb/?cid=&s1=&o=&amt=&c=&st=#"
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let bad = |t: &str| PostbackTemplate::parse(t, false).unwrap_err();
        assert_eq!(
            bad("https://t.example/?x={clickid}"),
            TemplateError::UnknownMacro("clickid".into())
        );
        assert_eq!(
            bad("https://t.example/?x={click_id"),
            TemplateError::Unclosed
        );
        assert_eq!(bad("https://{sub1}.t.example/"), TemplateError::MacroInHost);
        assert_eq!(bad("https://t.example:{sub1}/"), TemplateError::MacroInHost);
        assert_eq!(bad("{sub1}"), TemplateError::MacroInHost);
        assert_eq!(
            bad("http://127.0.0.1/pb?c={click_id}"),
            TemplateError::Target(TargetError::Internal)
        );
        assert_eq!(
            bad("ftp://t.example/{click_id}"),
            TemplateError::Target(TargetError::NotHttp)
        );
        assert!(PostbackTemplate::parse("http://127.0.0.1/pb?c={click_id}", true).is_ok());
    }

    proptest! {
        /// Whatever the values, they stay inside their parameter: the
        /// rendered URL has exactly the template's parameters.
        #[test]
        fn no_value_escapes_its_parameter(a in "\\PC{0,30}", b in "\\PC{0,30}") {
            let t = PostbackTemplate::parse("https://t.example/pb?a={sub1}&b={sub2}", false).unwrap();
            let url = url::Url::parse(&t.render(&values(&[("sub1", a.as_str()), ("sub2", b.as_str())]))).unwrap();
            let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            prop_assert_eq!(pairs, vec![("a".to_owned(), a.clone()), ("b".to_owned(), b.clone())]);
            prop_assert_eq!(url.host_str(), Some("t.example"));
        }
    }
}
