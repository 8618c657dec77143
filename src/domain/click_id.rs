//! Click ids: signed and self-describing.
//!
//! A click id carries the link id, the click time in milliseconds, 28 random
//! bits and the id of the key that signed it, packed into a u128 and written
//! as 22 base62 digits, followed by a 64-bit HMAC-SHA256 tag as 11 more: 33
//! characters in all. Attribution decodes and verifies a click id with
//! nothing but the key ring, so it does not depend on the click log.

use crate::domain::LinkId;
use crate::domain::signing::KeyRing;
use chrono::{DateTime, TimeZone, Utc};
use std::fmt;
use subtle::ConstantTimeEq;

const PURPOSE: &[u8] = b"mitra/click-id/v1:";
pub const CLICK_ID_LEN: usize = 33;
const PAYLOAD_LEN: usize = 22;
const LINK_BITS: u32 = 48;
const TIME_BITS: u32 = 44;
const RANDOM_BITS: u32 = 28;

/// A verified click id and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickId {
    text: String,
    pub link: LinkId,
    /// Unix time of the click in milliseconds.
    pub clicked_at_ms: i64,
}

impl ClickId {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn clicked_at(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.clicked_at_ms)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl fmt::Display for ClickId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A click id just issued: its 33 base62 digits on the stack, so the
/// redirect that sends it allocates nothing for it.
#[derive(Clone, Copy)]
pub struct IssuedClickId([u8; CLICK_ID_LEN]);

impl IssuedClickId {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base62 digits are ASCII")
    }
}

/// Makes a click id for `link` at `at_ms`, signed with the ring's first key.
/// `None` when the link id or time does not fit (not before the year 2527).
pub fn issue(keys: &KeyRing, link: LinkId, at_ms: i64, random: u32) -> Option<ClickId> {
    let text = issue_text(keys, link, at_ms, random)?;
    Some(ClickId {
        text: text.as_str().to_owned(),
        link,
        clicked_at_ms: at_ms,
    })
}

/// `issue`'s text alone, without allocating: what the redirect sends.
pub fn issue_text(keys: &KeyRing, link: LinkId, at_ms: i64, random: u32) -> Option<IssuedClickId> {
    let key = keys.signer();
    let link_id = u64::try_from(link.get())
        .ok()
        .filter(|l| *l < 1 << LINK_BITS)?;
    let ms = u64::try_from(at_ms).ok().filter(|t| *t < 1 << TIME_BITS)?;
    let payload = (u128::from(link_id) << (TIME_BITS + RANDOM_BITS + 8))
        | (u128::from(ms) << (RANDOM_BITS + 8))
        | (u128::from(random & ((1 << RANDOM_BITS) - 1)) << 8)
        | u128::from(key.id());
    let tag = key.tag64(PURPOSE, &payload.to_be_bytes());
    let mut text = [b'0'; CLICK_ID_LEN];
    put_padded(&mut text[..PAYLOAD_LEN], payload);
    put_padded(&mut text[PAYLOAD_LEN..], u128::from(tag));
    Some(IssuedClickId(text))
}

/// Writes `value` in base62 right-aligned in `out`, which holds '0's.
fn put_padded(out: &mut [u8], value: u128) {
    let mut digits = [0u8; PAYLOAD_LEN];
    let n = base62::encode_bytes(value, &mut digits).expect("22 digits hold any u128");
    let pad = out.len() - n;
    out[pad..].copy_from_slice(&digits[..n]);
}

/// Decodes and verifies a click id: the one function attribution trusts.
/// Anything not made by `issue` with a listed key is `None`.
pub fn verify(keys: &KeyRing, text: &str) -> Option<ClickId> {
    if text.len() != CLICK_ID_LEN || !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let payload = base62::decode(&text[..PAYLOAD_LEN]).ok()?;
    let tag = u64::try_from(base62::decode(&text[PAYLOAD_LEN..]).ok()?).ok()?;
    let key = keys.get(payload as u8)?;
    let expected = key.tag64(PURPOSE, &payload.to_be_bytes());
    if !bool::from(expected.to_be_bytes().ct_eq(&tag.to_be_bytes())) {
        return None;
    }
    let link_id = (payload >> (TIME_BITS + RANDOM_BITS + 8)) as i64;
    let ms = ((payload >> (RANDOM_BITS + 8)) & ((1 << TIME_BITS) - 1)) as i64;
    (link_id > 0).then(|| ClickId {
        text: text.to_owned(),
        link: LinkId::from_db(link_id),
        clicked_at_ms: ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secrecy::SecretString;

    fn ring(s: &str) -> KeyRing {
        KeyRing::parse(&SecretString::from(s.to_owned())).unwrap()
    }

    const K1: &str = "1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const K2: &str = "2:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const NOW: i64 = 1_795_000_000_000;

    #[test]
    fn a_click_id_says_which_link_and_when() {
        let keys = ring(K1);
        let id = issue(&keys, LinkId::from_db(77), NOW, 12345).unwrap();
        assert_eq!(id.as_str().len(), CLICK_ID_LEN);
        let back = verify(&keys, id.as_str()).unwrap();
        assert_eq!(back.link, LinkId::from_db(77));
        assert_eq!(back.clicked_at_ms, NOW);
        assert_eq!(back, id);
    }

    proptest! {
        #[test]
        fn digits_are_padded_base62_as_before(link in 1i64..(1 << LINK_BITS), ms in 0i64..(1 << TIME_BITS), random in any::<u32>()) {
            let keys = ring(K1);
            let id = issue(&keys, LinkId::from_db(link), ms, random).unwrap();
            let text = id.as_str();
            prop_assert_eq!(text.len(), CLICK_ID_LEN);
            let payload = base62::decode(&text[..PAYLOAD_LEN]).unwrap();
            let tag = base62::decode(&text[PAYLOAD_LEN..]).unwrap();
            prop_assert_eq!(format!("{:0>22}{:0>11}", base62::encode(payload), base62::encode(tag)), text);
            prop_assert_eq!(verify(&keys, text), Some(id));
        }
    }

    #[test]
    fn randomness_makes_ids_distinct() {
        let keys = ring(K1);
        let a = issue(&keys, LinkId::from_db(1), NOW, 1).unwrap();
        let b = issue(&keys, LinkId::from_db(1), NOW, 2).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn old_keys_verify_and_unknown_keys_do_not() {
        let old = issue(&ring(K1), LinkId::from_db(5), NOW, 0).unwrap();
        assert!(verify(&ring(&format!("{K2},{K1}")), old.as_str()).is_some());
        assert!(verify(&ring(K2), old.as_str()).is_none());
    }

    #[test]
    fn a_link_code_is_not_a_click_id() {
        let keys = ring(K1);
        let code = crate::domain::link_code::sign(&keys, LinkId::from_db(5)).unwrap();
        assert!(verify(&keys, &code).is_none());
        let padded = format!("{code:0>33}");
        assert!(verify(&keys, &padded).is_none());
    }

    #[test]
    fn tampered_ids_are_refused() {
        let keys = ring(K1);
        let id = issue(&keys, LinkId::from_db(999), NOW, 42).unwrap();
        let text = id.as_str();
        for i in 0..text.len() {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'z' { b'y' } else { b'z' };
            let bad = String::from_utf8(bytes).unwrap();
            assert!(verify(&keys, &bad).is_none(), "position {i}");
        }
        for bad in [
            "",
            &text[1..],
            &format!("{text}0"),
            &format!(" {}", &text[1..]),
            &"z".repeat(33),
        ] {
            assert!(verify(&keys, bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn ids_round_trip(link in 1i64..(1 << 48), ms in 0i64..(1 << 44), r in any::<u32>()) {
            let keys = ring(K1);
            let id = issue(&keys, LinkId::from_db(link), ms, r).unwrap();
            let back = verify(&keys, id.as_str()).unwrap();
            prop_assert_eq!(back.link.get(), link);
            prop_assert_eq!(back.clicked_at_ms, ms);
        }

        #[test]
        fn random_strings_never_verify(s in "[0-9A-Za-z]{33}") {
            prop_assert!(verify(&ring(K1), &s).is_none());
        }
    }

    proptest! {
        /// Any text at all: no panic, and nothing verifies that we did not issue.
        #[test]
        fn arbitrary_text_as_a_click_id_never_panics(text in "\\PC{0,40}", alnum in "[0-9A-Za-z]{33}") {
            let keys = ring(K1);
            prop_assert!(verify(&keys, &text).is_none());
            prop_assert!(verify(&keys, &alnum).is_none());
        }
    }
}
