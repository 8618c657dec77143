//! The webhook signature scheme: `Mitra-Signature: t=<unix seconds>,v1=<hex>`,
//! where hex is HMAC-SHA256 over `"{t}.{raw body}"` with the program's secret.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The hex HMAC for one timestamp and body.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
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
