//! Link codes: base62 of (link id, key id, truncated HMAC tag).
//!
//! The code packs into one u128: the link id above bit 72, the key id in bits
//! 64..72 and a 64-bit HMAC-SHA256 tag below. Small link ids make short
//! codes (13 characters for the first links, never more than 22). A code is
//! verified with nothing but the key ring, so a forged, altered, truncated or
//! padded code is refused before any cache, database or Redis work.

use crate::domain::LinkId;
use crate::domain::signing::KeyRing;
use subtle::ConstantTimeEq;

const PURPOSE: &[u8] = b"mitra/link-code/v1:";
/// Link ids must fit the 56 bits left above the key id and tag.
pub const MAX_LINK_ID: i64 = (1 << 56) - 1;
pub const MAX_CODE_LEN: usize = 22;

fn message(key_id: u8, link: i64) -> [u8; 9] {
    let mut m = [0u8; 9];
    m[0] = key_id;
    m[1..].copy_from_slice(&link.to_be_bytes());
    m
}

/// The code for `link`, signed with the ring's first key; `None` for an id
/// beyond `MAX_LINK_ID` (72 quadrillion links from now).
pub fn sign(keys: &KeyRing, link: LinkId) -> Option<String> {
    let key = keys.signer();
    let id = link.get();
    if !(1..=MAX_LINK_ID).contains(&id) {
        return None;
    }
    let tag = key.tag64(PURPOSE, &message(key.id(), id));
    let packed = (u128::from(id as u64) << 72) | (u128::from(key.id()) << 64) | u128::from(tag);
    Some(base62::encode(packed))
}

/// A code taken apart, its signature not yet checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub link: LinkId,
    pub key_id: u8,
    pub tag: u64,
}

impl Decoded {
    /// Whether `other` is the very same code, compared in constant time
    /// in the tag (a caller holding a code that verified asks whether
    /// this one is it, without telling a prober how close a guess came).
    pub fn same_code(&self, other: &Decoded) -> bool {
        self.link == other.link
            && self.key_id == other.key_id
            && bool::from(self.tag.to_be_bytes().ct_eq(&other.tag.to_be_bytes()))
    }
}

/// Takes a code apart: canonical base62 (no leading zero, that would be a
/// padded copy; nothing but base62 digits, at most 22 of them) naming a
/// link id in range. Says nothing about its signature: see `check`.
pub fn decode(code: &str) -> Option<Decoded> {
    if code.is_empty() || code.len() > MAX_CODE_LEN || code.starts_with('0') {
        return None;
    }
    if !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let packed = base62::decode(code).ok()?;
    let id = i64::try_from(packed >> 72).ok()?;
    if !(1..=MAX_LINK_ID).contains(&id) {
        return None;
    }
    Some(Decoded {
        link: LinkId::from_db(id),
        key_id: (packed >> 64) as u8,
        tag: packed as u64,
    })
}

/// Whether one of the ring's keys signed the decoded code.
pub fn check(keys: &KeyRing, code: &Decoded) -> bool {
    let Some(key) = keys.get(code.key_id) else {
        return false;
    };
    let expected = key.tag64(PURPOSE, &message(code.key_id, code.link.get()));
    bool::from(expected.to_be_bytes().ct_eq(&code.tag.to_be_bytes()))
}

/// The link a code names, if one of the ring's keys signed it.
pub fn verify(keys: &KeyRing, code: &str) -> Option<LinkId> {
    let decoded = decode(code)?;
    check(keys, &decoded).then_some(decoded.link)
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

    #[test]
    fn codes_are_short_and_verify() {
        let keys = ring(K1);
        let code = sign(&keys, LinkId::from_db(1)).unwrap();
        assert!(code.len() <= 13, "{code}");
        assert_eq!(verify(&keys, &code), Some(LinkId::from_db(1)));
        let last = sign(&keys, LinkId::from_db(MAX_LINK_ID)).unwrap();
        assert_eq!(sign(&keys, LinkId::from_db(MAX_LINK_ID + 1)), None);
        assert!(last.len() <= MAX_CODE_LEN);
        assert_eq!(verify(&keys, &last), Some(LinkId::from_db(MAX_LINK_ID)));
    }

    #[test]
    fn rotation_keeps_old_codes_working() {
        let old = sign(&ring(K1), LinkId::from_db(42)).unwrap();
        let rotated = ring(&format!("{K2},{K1}"));
        assert_eq!(verify(&rotated, &old), Some(LinkId::from_db(42)));
        let new = sign(&rotated, LinkId::from_db(42)).unwrap();
        assert_ne!(new, old);
        assert_eq!(verify(&rotated, &new), Some(LinkId::from_db(42)));
        // Once the old key is dropped, its codes stop working.
        assert_eq!(verify(&ring(K2), &old), None);
    }

    #[test]
    fn tampered_codes_are_refused() {
        let keys = ring(K1);
        let code = sign(&keys, LinkId::from_db(1234)).unwrap();
        let mut cases = vec![
            String::new(),
            format!("0{code}"),
            format!("{code}0"),
            code[..code.len() - 1].to_owned(),
            code[1..].to_owned(),
            format!("{code} "),
            format!("{code}%00"),
            code.to_uppercase(),
            "z".repeat(23),
            "zzzzzzzzzzzzzzzzzzzzzz".to_owned(),
        ];
        for i in 0..code.len() {
            let mut bytes = code.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            cases.push(String::from_utf8(bytes).unwrap());
        }
        for bad in cases {
            if bad != code {
                assert_eq!(verify(&keys, &bad), None, "{bad}");
            }
        }
        // A code signed by an unknown key id.
        assert_eq!(
            verify(&keys, &sign(&ring(K2), LinkId::from_db(1234)).unwrap()),
            None
        );
    }

    #[test]
    fn a_decoded_code_is_only_ever_the_same_as_itself() {
        let keys = ring(K1);
        let code = sign(&keys, LinkId::from_db(1234)).unwrap();
        let good = decode(&code).unwrap();
        assert!(check(&keys, &good));
        assert!(good.same_code(&decode(&code).unwrap()));
        for i in 0..code.len() {
            let mut bytes = code.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let bad = String::from_utf8(bytes).unwrap();
            if let Some(d) = decode(&bad).filter(|_| bad != code) {
                assert!(!good.same_code(&d), "{bad}");
                assert!(!check(&keys, &d), "{bad}");
            }
        }
        let other_key = decode(&sign(&ring(K2), LinkId::from_db(1234)).unwrap()).unwrap();
        assert!(!good.same_code(&other_key));
        assert!(!check(&keys, &other_key));
    }

    proptest! {
        #[test]
        fn every_link_id_round_trips(id in 1..=MAX_LINK_ID) {
            let keys = ring(K1);
            let code = sign(&keys, LinkId::from_db(id)).unwrap();
            prop_assert!(code.len() <= MAX_CODE_LEN);
            prop_assert_eq!(verify(&keys, &code), Some(LinkId::from_db(id)));
        }

        #[test]
        fn random_strings_never_verify(s in "[0-9A-Za-z]{1,22}") {
            prop_assert_eq!(verify(&ring(K1), &s), None);
        }
    }

    proptest! {
        /// Any text at all: no panic, and nothing verifies that we did not sign.
        #[test]
        fn arbitrary_text_as_a_link_code_never_panics(text in "\\PC{0,40}", bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let keys = ring(K1);
            prop_assert_eq!(verify(&keys, &text), None);
            prop_assert_eq!(verify(&keys, &String::from_utf8_lossy(&bytes)), None);
        }

        #[test]
        fn base62_text_as_a_link_code_never_panics(text in "[0-9A-Za-z]{1,24}") {
            let keys = ring(K1);
            if let Some(id) = verify(&keys, &text) {
                prop_assert_eq!(sign(&keys, id), Some(text));
            }
        }
    }
}
