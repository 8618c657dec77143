//! The webhook signature: `Mitra-Signature: t=<unix seconds>,v1=<hex>`,
//! where hex is HMAC-SHA256 over `"{t}.{raw body}"` with the program's
//! webhook secret. Several `v1=` values may appear (a shop signing with the
//! new and the old secret during a rotation); any one matching is enough.

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
