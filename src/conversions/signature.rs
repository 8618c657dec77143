//! The webhook signature: `Mitra-Signature: t=<unix seconds>,v1=<hex>`,
//! where hex is HMAC-SHA256 over `"{t}.{raw body}"` with the program's
//! webhook secret. Several `v1=` values may appear (a shop signing with the
//! new and the old secret during a rotation); any one matching is enough.
//! Stripe signs its webhooks the same way (`Stripe-Signature`), so its
//! integration verifies with `verify` too.
//!
//! `standard` verifies the other scheme mitra's webhook accepts, Standard
//! Webhooks, with the same secrets.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const HEADER: &str = "mitra-signature";
/// How far `t` may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused. Shops get the reason: it is about their
/// own request, and helps them fix their integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Mitra-Signature header is missing")]
    Missing,
    #[error("the Mitra-Signature header is malformed (expected t=<unix seconds>,v1=<hex>)")]
    Malformed,
    #[error("the signature's timestamp is more than 300 s away from now")]
    Stale,
    #[error("no v1 signature matches the body under the program's webhook secrets")]
    Mismatch,
}

fn mac(secret: &str, t: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The hex HMAC for one timestamp and body.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    hex(&mac(secret, t, body))
}

/// A complete header value, as a shop would send it.
pub fn header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", signature(secret, t, body))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// Checks a header value against a body, the current time and the
/// program's active secrets. Every comparison is constant-time.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    now: i64,
    secrets: &[String],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                t = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            // A value that is not 64 hex digits cannot match; skip it.
            "v1" => candidates.extend(unhex(value)),
            _ => {} // other schemes are for other verifiers
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let mut matched = false;
    for secret in secrets {
        let expected = mac(secret, t, body);
        for candidate in &candidates {
            matched |= bool::from(expected.ct_eq(candidate));
        }
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Standard Webhooks (<https://www.standardwebhooks.com/>): `webhook-id`,
/// `webhook-timestamp` and `webhook-signature: v1,<base64>` (several,
/// space-separated), where the signature is HMAC-SHA256 over
/// `"{id}.{timestamp}.{raw body}"` keyed with the base64-decoded part of the
/// secret after `whsec_`.
///
/// A program's secret is `whsec_` and 44 base62 characters; base62 digits
/// are base64 digits and 44 is a multiple of 4, so every secret decodes to
/// 33 key bytes, and the one secret serves both schemes.
pub mod standard {
    use super::{SignatureError, TOLERANCE_SECS};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;
    use subtle::ConstantTimeEq;

    pub const ID: &str = "webhook-id";
    pub const TIMESTAMP: &str = "webhook-timestamp";
    pub const SIGNATURE: &str = "webhook-signature";

    /// The HMAC key of a `whsec_` secret; `None` when it is not base64.
    fn key(secret: &str) -> Option<Vec<u8>> {
        BASE64
            .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
            .ok()
    }

    fn mac(key: &[u8], id: &str, t: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// A `webhook-signature` value, as a sender makes it, with a secret
    /// mitra issued (`whsec_` and base64).
    pub fn signature(secret: &str, id: &str, t: i64, body: &[u8]) -> String {
        try_signature(secret, id, t, body).expect("a whsec_ secret in base64")
    }

    /// The same, or `None` for a secret that is not base64 after `whsec_`.
    pub fn try_signature(secret: &str, id: &str, t: i64, body: &[u8]) -> Option<String> {
        let key = key(secret)?;
        Some(format!("v1,{}", BASE64.encode(mac(&key, id, t, body))))
    }

    /// Checks the three headers against a body, the current time and the
    /// program's active secrets; every comparison is constant-time.
    pub fn verify(
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
        secrets: &[String],
    ) -> Result<(), SignatureError> {
        let (Some(id), Some(timestamp), Some(signature)) = (id, timestamp, signature) else {
            return Err(SignatureError::Missing);
        };
        let t: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::Malformed)?;
        if id.is_empty() {
            return Err(SignatureError::Malformed);
        }
        let candidates: Vec<Vec<u8>> = signature
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b| BASE64.decode(b).ok())
            .collect();
        if candidates.is_empty() {
            return Err(SignatureError::Malformed);
        }
        if (now - t).abs() > TOLERANCE_SECS {
            return Err(SignatureError::Stale);
        }
        let mut matched = false;
        for key in secrets.iter().filter_map(|s| key(s)) {
            let expected = mac(&key, id, t, body);
            for candidate in &candidates {
                matched |= bool::from(expected.as_slice().ct_eq(candidate));
            }
        }
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;
    const BODY: &[u8] = br#"{"order_id":"A-1"}"#;

    fn secrets() -> Vec<String> {
        vec!["whsec_new".into(), "whsec_old".into()]
    }

    #[test]
    fn a_signature_by_any_active_secret_verifies() {
        for secret in ["whsec_new", "whsec_old"] {
            let h = header(secret, NOW, BODY);
            assert_eq!(verify(Some(&h), BODY, NOW, &secrets()), Ok(()));
        }
        // Several v1 values: one match is enough.
        let h = format!(
            "t={NOW},v1={},v1={}",
            "0".repeat(64),
            signature("whsec_old", NOW, BODY)
        );
        assert_eq!(verify(Some(&h), BODY, NOW, &secrets()), Ok(()));
    }

    #[test]
    fn every_failure_has_its_reason() {
        let good = header("whsec_new", NOW, BODY);
        let cases: Vec<(Option<String>, &[u8], i64, SignatureError)> = vec![
            (None, BODY, NOW, SignatureError::Missing),
            (Some(String::new()), BODY, NOW, SignatureError::Malformed),
            (Some("garbage".into()), BODY, NOW, SignatureError::Malformed),
            (
                Some(format!("v1={}", signature("whsec_new", NOW, BODY))),
                BODY,
                NOW,
                SignatureError::Malformed,
            ),
            (
                Some(format!("t={NOW}")),
                BODY,
                NOW,
                SignatureError::Malformed,
            ),
            (
                Some(format!("t=abc,v1={}", "0".repeat(64))),
                BODY,
                NOW,
                SignatureError::Malformed,
            ),
            (
                Some(format!("t={NOW},v1=xyz")),
                BODY,
                NOW,
                SignatureError::Malformed,
            ),
            (Some(good.clone()), BODY, NOW + 301, SignatureError::Stale),
            (Some(good.clone()), BODY, NOW - 301, SignatureError::Stale),
            (
                Some(good.clone()),
                br#"{"order_id":"A-2"}"#,
                NOW,
                SignatureError::Mismatch,
            ),
            (
                Some(header("whsec_other", NOW, BODY)),
                BODY,
                NOW,
                SignatureError::Mismatch,
            ),
            // The timestamp is signed: changing it breaks the signature.
            (
                Some(good.replace(&NOW.to_string(), &(NOW + 1).to_string())),
                BODY,
                NOW,
                SignatureError::Mismatch,
            ),
        ];
        for (h, body, now, expected) in cases {
            assert_eq!(
                verify(h.as_deref(), body, now, &secrets()),
                Err(expected),
                "{h:?}"
            );
        }
        // At the edge of the tolerance it still verifies.
        assert_eq!(verify(Some(&good), BODY, NOW + 300, &secrets()), Ok(()));
        assert_eq!(verify(Some(&good), BODY, NOW - 300, &secrets()), Ok(()));
    }

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex(&"G".repeat(64)), None);
    }

    #[test]
    fn standard_webhooks_verify_with_the_same_secrets() {
        // The example of the Standard Webhooks specification's test vectors:
        // this secret, id, timestamp and body sign to this value.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
        let body = br#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            standard::signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            expected
        );
        let verify = |id: Option<&str>, t: Option<&str>, sig: Option<&str>, now: i64| {
            standard::verify(id, t, sig, body, now, std::slice::from_ref(&secret))
        };
        let id = Some("msg_p5jXN8AQM9LWM0D4loKWxJek");
        let t = Some("1614265330");
        assert_eq!(verify(id, t, Some(expected), 1614265330), Ok(()));
        // Several signatures, space-separated: one match is enough.
        let several = format!("v1,AAAA {expected} v1a,xyz");
        assert_eq!(verify(id, t, Some(&several), 1614265330 + 300), Ok(()));
        assert_eq!(
            verify(None, t, Some(expected), 1614265330),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(id, Some("soon"), Some(expected), 1614265330),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(id, t, Some("v2,abc"), 1614265330),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(id, t, Some(expected), 1614265330 + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some("msg_other"), t, Some(expected), 1614265330),
            Err(SignatureError::Mismatch)
        );

        // A program's own secret works for both schemes.
        let ours = crate::domain::new_webhook_secret();
        let sig = standard::signature(&ours, "msg_1", NOW, BODY);
        assert_eq!(
            standard::verify(
                Some("msg_1"),
                Some(&NOW.to_string()),
                Some(&sig),
                BODY,
                NOW,
                &[ours]
            ),
            Ok(())
        );
    }

    use proptest::prelude::*;

    proptest! {
        /// Any header and body: no panic, and nothing verifies unsigned.
        #[test]
        fn an_arbitrary_signature_header_never_panics(
            header in "\\PC{0,200}",
            shaped in "(t=-?[0-9]{0,20},)?(v1=[0-9a-fA-F]{0,70},?){0,4}",
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            prop_assert!(verify(Some(&header), &body, NOW, &secrets()).is_err());
            prop_assert!(verify(Some(&shaped), &body, NOW, &secrets()).is_err());
        }
    }
}
