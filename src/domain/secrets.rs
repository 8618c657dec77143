//! Random credentials: API keys (stored hashed) and webhook secrets.

use sha2::{Digest, Sha256};

/// 32 random bytes as 44 base62 characters: two u128 halves, zero-padded
/// so every token has the same length.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let (hi, lo) = bytes.split_at(16);
    let hi = u128::from_le_bytes(hi.try_into().expect("16 bytes"));
    let lo = u128::from_le_bytes(lo.try_into().expect("16 bytes"));
    format!("{:0>22}{:0>22}", base62::encode(hi), base62::encode(lo))
}

/// Who an API key belongs to; its prefix says so, which also lets secret
/// scanners recognise a leaked key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner {
    Program,
    Partner,
}

impl KeyOwner {
    pub fn prefix(self) -> &'static str {
        match self {
            KeyOwner::Program => "mitra_prg_",
            KeyOwner::Partner => "mitra_ptn_",
        }
    }

    /// Which kind of key a bearer token claims to be, by its prefix.
    pub fn of_token(token: &str) -> Option<KeyOwner> {
        [KeyOwner::Program, KeyOwner::Partner]
            .into_iter()
            .find(|k| token.starts_with(k.prefix()))
    }
}

/// A freshly made API key: the plaintext is shown once, only the hash is kept.
pub struct NewApiKey {
    pub plaintext: String,
    pub hash: Vec<u8>,
}

impl NewApiKey {
    pub fn generate(owner: KeyOwner) -> Self {
        let plaintext = format!("{}{}", owner.prefix(), random_token());
        let hash = hash_api_key(&plaintext);
        Self { plaintext, hash }
    }
}

/// SHA-256 of the whole key. Keys carry 256 random bits, so a fast hash is
/// enough and lets every request look its key up by index.
pub fn hash_api_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// A webhook signing secret, `whsec_` and 44 base62 characters.
pub fn new_webhook_secret() -> String {
    format!("whsec_{}", random_token())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fixed_length_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 44);
        assert_eq!(b.len(), 44);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn api_keys_name_their_owner_and_hash_stably() {
        let key = NewApiKey::generate(KeyOwner::Partner);
        assert_eq!(KeyOwner::of_token(&key.plaintext), Some(KeyOwner::Partner));
        assert_eq!(hash_api_key(&key.plaintext), key.hash);
        assert_eq!(KeyOwner::of_token("Bearer x"), None);
    }
}
