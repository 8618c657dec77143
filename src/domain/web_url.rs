//! Destination URLs and the landing domains a program allows.

use std::fmt;
use url::Url;

pub const MAX_URL_LEN: usize = 2048;
pub const MAX_LANDING_DOMAINS: usize = 50;

/// An absolute http or https URL with a host and no user-info, as parsed by a
/// WHATWG URL parser (the same rules browsers apply to a redirect).
#[derive(Clone, PartialEq, Eq)]
pub struct WebUrl(Url);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must be an absolute http or https URL")]
    NotWeb,
    #[error("must not carry a user name or password")]
    UserInfo,
    #[error("must be at most 2048 characters")]
    TooLong,
    #[error("must be a host name without scheme, port or path")]
    NotAHost,
    #[error("host is not one of the program's landing domains")]
    NotLanding,
}

impl WebUrl {
    /// A URL as the API takes it (a program's default URL, a link's
    /// destination): the documented shape, `http(s)://host[:port]` and then
    /// only RFC 3986 characters (percent-encode the others), at most 2048
    /// characters; so every URL the document admits parses, and nothing else.
    pub fn parse_plain(s: &str) -> Result<Self, UrlError> {
        if s.chars().count() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let authority = s.split_once("://").map_or("", |(_, rest)| {
            rest.split(['/', '?', '#']).next().unwrap_or("")
        });
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        if !plain_url_regex().is_match(s) {
            return Err(UrlError::NotWeb);
        }
        let url = Url::parse(s).map_err(|_| UrlError::NotWeb)?;
        Ok(Self(url))
    }

    /// Any web URL a browser would follow (a deep link's target, as a
    /// shopper's browser sent it): parsed the WHATWG way.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(s).map_err(|_| UrlError::NotWeb)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(UrlError::NotWeb);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        if url.as_str().len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        Ok(Self(url))
    }

    /// The host, normalized (lower case, punycode) as the parser left it.
    pub fn host(&self) -> &str {
        self.0.host_str().expect("a web URL has a host")
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for WebUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for WebUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The regular expression of `WebUrl::parse_plain`'s shape: a scheme, a
/// host as `LandingDomain` takes it (in any case), an optional port, and RFC
/// 3986 characters.
pub fn plain_url_pattern() -> String {
    let port = "(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?";
    let rest = r"(?:[/?#][A-Za-z0-9\-._~!$&'()*+,;=:@/?#%\[\]]*)?";
    format!("^https?://{}{port}{rest}$", host_alternatives())
}

fn plain_url_regex() -> &'static regex::Regex {
    static REGEX: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    REGEX.get_or_init(|| regex::Regex::new(&plain_url_pattern()).expect("the URL pattern compiles"))
}

impl utoipa::PartialSchema for WebUrl {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
            .description(Some(
                "An absolute `http` or `https` URL: a host name (ASCII; `xn--` for international \
                 names) or IPv4 address, an optional port, then only RFC 3986 characters \
                 (percent-encode others); no user name or password; at most 2048 characters.",
            ))
            .max_length(Some(MAX_URL_LEN))
            .pattern(Some(plain_url_pattern()))
            .examples(["https://shop.example/batik"])
            .into()
    }
}

impl utoipa::ToSchema for WebUrl {}

/// A host name a program's shoppers may land on. Matching is exact: listing
/// `shop.example` does not allow `evil.shop.example`.
///
/// An ASCII host name (letters, digits and hyphens in dot-separated labels,
/// the last not all digits; an international name in its `xn--` form), kept
/// in lower case as URL parsers leave hosts, or an IPv4 address in dotted
/// decimal. At most 253 characters.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct LandingDomain(String);

pub const MAX_HOST_LEN: usize = 253;

impl LandingDomain {
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        if s.len() > MAX_HOST_LEN || !(is_host_name(s) || is_dotted_quad(s)) {
            return Err(UrlError::NotAHost);
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_host_name(s: &str) -> bool {
    let label =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let mut labels = s.split('.');
    labels.clone().all(label)
        && labels
            .next_back()
            .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
}

fn is_dotted_quad(s: &str) -> bool {
    let octet = |o: &str| {
        !o.is_empty()
            && o.len() <= 3
            && o.bytes().all(|b| b.is_ascii_digit())
            && (o == "0" || !o.starts_with('0'))
            && o.parse::<u8>().is_ok()
    };
    s.split('.').count() == 4 && s.split('.').all(octet)
}

/// The regular expression of what `LandingDomain::parse` takes (with a
/// `maxLength` of 253).
pub fn host_pattern() -> String {
    format!("^{}$", host_alternatives())
}

/// A host name or a dotted quad, unanchored.
fn host_alternatives() -> String {
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    let name = r"(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]*[A-Za-z-][A-Za-z0-9-]*";
    format!(r"(?:{name}|{octet}(?:\.{octet}){{3}})")
}

impl utoipa::PartialSchema for LandingDomain {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A host name shoppers may land on, matched exactly: ASCII letters, digits and \
                 hyphens in dot-separated labels, the last not all digits (an international \
                 name in its `xn--` form), or an IPv4 address in dotted decimal. Kept in lower \
                 case.",
            ))
            .max_length(Some(MAX_HOST_LEN))
            .pattern(Some(host_pattern()))
            .examples(["shop.example"])
            .into()
    }
}

impl utoipa::ToSchema for LandingDomain {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainsError {
    #[error("must list 1 to 50 host names")]
    Count,
    #[error("{1}")]
    Item(usize, UrlError),
}

/// A program's landing domains: at least one, at most fifty, no repeats.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct LandingDomains(Vec<LandingDomain>);

impl LandingDomains {
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, DomainsError> {
        if items.is_empty() || items.len() > MAX_LANDING_DOMAINS {
            return Err(DomainsError::Count);
        }
        let mut domains: Vec<LandingDomain> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let domain =
                LandingDomain::parse(item.as_ref()).map_err(|e| DomainsError::Item(i, e))?;
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        Ok(Self(domains))
    }

    /// Rebuilds the list from rows written by `parse`.
    pub fn from_db(items: Vec<String>) -> Self {
        Self(items.into_iter().map(LandingDomain).collect())
    }

    pub fn allows(&self, url: &WebUrl) -> bool {
        let host = url.host();
        self.0.iter().any(|d| d.0 == host)
    }

    /// The URL if its host is one of these domains.
    pub fn check(&self, url: WebUrl) -> Result<WebUrl, UrlError> {
        if self.allows(&url) {
            Ok(url)
        } else {
            Err(UrlError::NotLanding)
        }
    }

    pub fn as_strings(&self) -> Vec<String> {
        self.0.iter().map(|d| d.0.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_urls_must_be_absolute_http_without_user_info() {
        assert!(WebUrl::parse("https://shop.example/p?q=1#top").is_ok());
        assert!(WebUrl::parse("http://shop.example").is_ok());
        for bad in [
            "javascript:alert(1)",
            "ftp://shop.example/",
            "//shop.example/",
            "/relative",
            "shop.example",
            "data:text/html,hi",
            "",
        ] {
            assert_eq!(WebUrl::parse(bad), Err(UrlError::NotWeb), "{bad}");
        }
        assert_eq!(
            WebUrl::parse("https://user:pw@shop.example/"),
            Err(UrlError::UserInfo)
        );
        let long = format!("https://shop.example/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(WebUrl::parse(&long), Err(UrlError::TooLong));
    }

    #[test]
    fn api_urls_take_the_documented_shape_only() {
        for ok in [
            "https://shop.example/p?q=1#top",
            "http://Shop.Example:8080",
            "https://10.0.0.1/a%20b",
            "https://shop.example/x?a=[1]&b='2'",
        ] {
            assert!(WebUrl::parse_plain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://shop.example/a b",
            "https://shop.example/bücher",
            "https://bücher.example/",
            "HTTPS://shop.example/",
            "https://shop.example:65536/",
            "https://[::1]/",
            "https://shop.example/<tag>",
        ] {
            assert_eq!(WebUrl::parse_plain(bad), Err(UrlError::NotWeb), "{bad}");
        }
        assert_eq!(
            WebUrl::parse_plain("https://u@shop.example/"),
            Err(UrlError::UserInfo)
        );
    }

    proptest::proptest! {
        /// Whatever the documented pattern admits parses.
        #[test]
        fn every_documented_url_parses(s in "https?://(a|0|1\\.2\\.3\\.4|a-\\.b)(:[0-9]{1,5})?([/?#][a/?#%'.:@\\[\\]~-]{0,8})?") {
            let documented = regex::Regex::new(&plain_url_pattern()).unwrap().is_match(&s);
            if documented {
                proptest::prop_assert!(WebUrl::parse_plain(&s).is_ok(), "{:?}", s);
            } else {
                proptest::prop_assert!(WebUrl::parse_plain(&s).is_err(), "{:?}", s);
            }
        }
    }

    #[test]
    fn landing_domains_are_plain_normalized_hosts() {
        assert_eq!(
            LandingDomain::parse("Shop.Example").unwrap().as_str(),
            "shop.example"
        );
        assert_eq!(
            LandingDomain::parse("XN--BCHER-KVA.example")
                .unwrap()
                .as_str(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            LandingDomain::parse("10.0.0.1").unwrap().as_str(),
            "10.0.0.1"
        );
        for bad in [
            "",
            "bücher.example",
            "010.0.0.1",
            "256.0.0.1",
            "shop.123",
            "shop..example",
            "https://shop.example",
            "shop.example/path",
            "shop.example:8080",
            "user@shop.example",
            "shop example",
            "shop.example.",
            "sh%6fp.example",
            "shop\\example",
            "[::1]",
        ] {
            assert!(LandingDomain::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// The documented pattern takes exactly the hosts that parse.
        #[test]
        fn the_documented_host_pattern_is_what_parses(s in "[a0-9.:é-]{0,10}|[a1]{250,255}") {
            let documented = s.len() <= MAX_HOST_LEN
                && regex::Regex::new(&host_pattern()).unwrap().is_match(&s);
            proptest::prop_assert_eq!(documented, LandingDomain::parse(&s).is_ok(), "{:?}", s);
        }
    }

    #[test]
    fn hosts_match_exactly() {
        let domains = LandingDomains::parse(&["shop.example", "www.shop.example"]).unwrap();
        let ok = |u: &str| domains.allows(&WebUrl::parse(u).unwrap());
        assert!(ok("https://shop.example/a"));
        assert!(ok("http://WWW.Shop.Example/a"));
        assert!(!ok("https://evil.shop.example/"));
        assert!(!ok("https://shop.example.evil/"));
        assert!(!ok("https://evil.example/?shop.example"));
    }

    #[test]
    fn domain_lists_are_bounded_and_deduplicated() {
        assert!(LandingDomains::parse::<&str>(&[]).is_err());
        let many: Vec<String> = (0..51).map(|i| format!("s{i}.example")).collect();
        assert!(LandingDomains::parse(&many).is_err());
        let twice = LandingDomains::parse(&["a.example", "A.example"]).unwrap();
        assert_eq!(twice.as_strings(), vec!["a.example"]);
    }
}
