//! Where outgoing webhooks and postbacks may be sent: absolute http(s)
//! URLs, never to loopback, private, link-local or other internal
//! addresses unless the operator allows it (`MITRA_WEBHOOK_ALLOW_PRIVATE`),
//! so the feature cannot be used to probe the network mitra runs in.
//!
//! A URL naming an address is judged here; a URL naming a host is judged
//! again when it is sent, on every address its name resolves to (the
//! delivery's resolver refuses internal ones), so a name that resolves to
//! an internal address, at once or later, is refused as well.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

pub const MAX_LEN: usize = 2048;

/// Why a target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("must be an absolute http or https URL with a host")]
    NotHttp,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("must not point to a loopback, private, link-local or other internal address")]
    Internal,
    #[error("must be at most 2048 characters")]
    TooLong,
}

/// A URL mitra may send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(Url);

impl TargetUrl {
    pub fn parse(s: &str, allow_private: bool) -> Result<Self, TargetError> {
        if s.len() > MAX_LEN {
            return Err(TargetError::TooLong);
        }
        let url = Url::parse(s.trim()).map_err(|_| TargetError::NotHttp)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetError::NotHttp);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        let internal = match url.host() {
            None => return Err(TargetError::NotHttp),
            Some(Host::Ipv4(ip)) => !address_allowed(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => !address_allowed(IpAddr::V6(ip)),
            Some(Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
        };
        if internal && !allow_private {
            return Err(TargetError::Internal);
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

fn v4_allowed(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn v6_allowed(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Addresses that carry an IPv4 address: judge that one.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_allowed(v4);
    }
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        // IPv4-compatible (deprecated), ::a.b.c.d
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return v4_allowed(v4);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // NAT64
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return v4_allowed(v4);
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
}

/// Whether mitra may connect to `ip` without the operator's permission.
pub fn address_allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4),
        IpAddr::V6(v6) => v6_allowed(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn public_http_and_https_urls_are_accepted() {
        for ok in [
            "https://hooks.partner.example/mitra",
            "http://203.0.114.9:8080/in?x=1", // not documentation space
            "https://[2606:4700:4700::1111]/hook",
        ] {
            assert_eq!(
                TargetUrl::parse(ok, false).map(|t| !t.url().scheme().is_empty()),
                Ok(true),
                "{ok}"
            );
        }
    }

    #[test]
    fn every_internal_address_is_refused_unless_allowed() {
        for internal in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://0x7f000001/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::10.0.0.1]/",
        ] {
            assert_eq!(
                TargetUrl::parse(internal, false),
                Err(TargetError::Internal),
                "{internal}"
            );
            assert!(TargetUrl::parse(internal, true).is_ok(), "{internal}");
        }
    }

    #[test]
    fn other_schemes_credentials_and_relative_urls_are_refused() {
        assert_eq!(
            TargetUrl::parse("ftp://x.example/", true),
            Err(TargetError::NotHttp)
        );
        assert_eq!(
            TargetUrl::parse("file:///etc/passwd", true),
            Err(TargetError::NotHttp)
        );
        assert_eq!(TargetUrl::parse("/hook", true), Err(TargetError::NotHttp));
        assert_eq!(
            TargetUrl::parse("https://u:p@x.example/", true),
            Err(TargetError::Credentials)
        );
        let long = format!("https://x.example/{}", "a".repeat(MAX_LEN));
        assert_eq!(TargetUrl::parse(&long, true), Err(TargetError::TooLong));
    }

    proptest! {
        /// Any text: refused or accepted, never a panic; accepted means http(s).
        #[test]
        fn arbitrary_text_as_a_target_never_panics(s in "\\PC{0,80}", host in "[a-z0-9.:\\[\\]]{0,40}") {
            for t in [s.clone(), format!("http://{host}/")] {
                if let Ok(u) = TargetUrl::parse(&t, false) {
                    prop_assert!(matches!(u.url().scheme(), "http" | "https"));
                }
            }
        }
    }
}
