//! Destination URLs and the landing domains a program allows.

use std::fmt;
use url::{Host, Url};

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

/// A host name a program's shoppers may land on. Matching is exact: listing
/// `shop.example` does not allow `evil.shop.example`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct LandingDomain(String);

impl LandingDomain {
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let plain = !s.is_empty()
            && s.len() <= 253
            && !s.chars().any(|c| {
                matches!(c, '/' | '\\' | ':' | '@' | '?' | '#' | '%') || c.is_whitespace()
            });
        if !plain {
            return Err(UrlError::NotAHost);
        }
        let url = Url::parse(&format!("https://{s}/")).map_err(|_| UrlError::NotAHost)?;
        match url.host() {
            Some(Host::Domain(d)) if !d.is_empty() && !d.ends_with('.') => Ok(Self(d.to_owned())),
            Some(Host::Ipv4(ip)) => Ok(Self(ip.to_string())),
            _ => Err(UrlError::NotAHost),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    fn landing_domains_are_plain_normalized_hosts() {
        assert_eq!(
            LandingDomain::parse("Shop.Example").unwrap().as_str(),
            "shop.example"
        );
        assert_eq!(
            LandingDomain::parse("bücher.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
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
