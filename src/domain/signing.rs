//! The key ring behind link codes and click ids (`MITRA_LINK_KEYS`).
//!
//! The first key signs; every listed key verifies what it signed, so a key
//! can be rotated by putting a new one first and keeping the old one listed
//! for as long as its links should work.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted: 128 bits of base62 or hex take at least 22 characters.
pub const MIN_SECRET_LEN: usize = 22;

#[derive(Clone)]
pub struct SigningKey {
    id: u8,
    // Keyed once; cloning the keyed state is cheaper than re-keying per tag.
    mac: HmacSha256,
}

impl SigningKey {
    pub fn id(&self) -> u8 {
        self.id
    }

    /// HMAC-SHA256 over `purpose` and `message`. The purpose separates link
    /// codes from click ids, so a tag made for one is never valid as the other.
    pub fn tag(&self, purpose: &[u8], message: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(purpose);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The first 8 bytes of the tag as a number: the truncated tag carried
    /// in codes and ids.
    pub fn tag64(&self, purpose: &[u8], message: &[u8]) -> u64 {
        let tag = self.tag(purpose, message);
        u64::from_be_bytes(tag[..8].try_into().expect("8 bytes"))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <secret>)", self.id)
    }
}

#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// Parses `id:secret,id:secret`: ids 0..=255 and unique, secrets at least
    /// `MIN_SECRET_LEN` characters.
    pub fn parse(value: &SecretString) -> Result<Self, String> {
        let mut keys: Vec<SigningKey> = Vec::new();
        for (i, pair) in value.expose_secret().split(',').enumerate() {
            let (id, secret) = pair
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("entry {} is not of the form id:secret", i + 1))?;
            let id: u8 = id
                .trim()
                .parse()
                .map_err(|_| format!("entry {}: key id must be a number from 0 to 255", i + 1))?;
            if secret.len() < MIN_SECRET_LEN {
                return Err(format!(
                    "key {id}: secret must be at least {MIN_SECRET_LEN} characters"
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("key id {id} is listed twice"));
            }
            let mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
            keys.push(SigningKey { id, mac });
        }
        Ok(Self { keys })
    }

    /// The key that signs new codes and ids.
    pub fn signer(&self) -> &SigningKey {
        &self.keys[0]
    }

    pub fn get(&self, id: u8) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(s: &str) -> Result<KeyRing, String> {
        KeyRing::parse(&SecretString::from(s.to_owned()))
    }

    #[test]
    fn the_first_key_signs_and_all_verify() {
        let ring = ring("2:bbbbbbbbbbbbbbbbbbbbbbbbbbbb, 1:aaaaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(ring.signer().id(), 2);
        assert!(ring.get(1).is_some());
        assert!(ring.get(3).is_none());
    }

    #[test]
    fn malformed_rings_are_refused_with_a_reason() {
        for bad in [
            "",
            "secretwithoutid",
            "x:aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "256:aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "1:short",
            "1:aaaaaaaaaaaaaaaaaaaaaaaaaaaa,1:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        ] {
            let err = ring(bad).unwrap_err();
            assert!(
                !err.contains("aaaa") && !err.contains("short"),
                "leaks: {err}"
            );
        }
    }

    #[test]
    fn purposes_separate_tags() {
        let ring = ring("1:aaaaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        let k = ring.signer();
        assert_ne!(k.tag64(b"link", b"x"), k.tag64(b"click", b"x"));
        assert_eq!(k.tag64(b"link", b"x"), k.tag64(b"link", b"x"));
    }
}
