//! The body signature Shopify (`X-Shopify-Hmac-Sha256`) and WooCommerce
//! (`X-WC-Webhook-Signature`) send: the base64 of HMAC-SHA256 over the raw
//! body, keyed with the secret as text. Neither carries a timestamp, so
//! replays are caught by idempotency, not by age. Stripe signs like mitra
//! does (`conversions::signature::verify`).

use crate::conversions::signature::SignatureError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

fn mac(secret: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The header value the platform sends for `body`.
pub fn body_signature(secret: &str, body: &[u8]) -> String {
    BASE64.encode(mac(secret, body))
}

/// Checks a header value against the body under any of `secrets`, in
/// constant time.
pub fn verify_body(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let given = BASE64
        .decode(header.trim())
        .map_err(|_| SignatureError::Malformed)?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut matched = false;
    for secret in secrets {
        matched |= bool::from(mac(secret, body).as_slice().ct_eq(&given));
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

    #[test]
    fn body_signatures_verify_under_any_active_secret() {
        let body = br#"{"id":820982911946154508}"#;
        let secrets = vec!["new-secret".to_owned(), "old-secret".to_owned()];
        // Computed independently: printf '%s' BODY | openssl dgst -sha256 -hmac old-secret -binary | base64
        let expected = "wTlWhAplIJHUacFHdxakXxTTLyVDL0A4as/KQzi7SRQ=";
        assert_eq!(body_signature("old-secret", body), expected);
        assert_eq!(verify_body(Some(expected), body, &secrets), Ok(()));
        assert_eq!(
            verify_body(None, body, &secrets),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_body(Some("not base64!"), body, &secrets),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_body(Some("c2hvcnQ="), body, &secrets),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_body(Some(expected), br#"{"id":820982911946154509}"#, &secrets),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_body(Some(&body_signature("another", body)), body, &secrets),
            Err(SignatureError::Mismatch)
        );
    }
}
