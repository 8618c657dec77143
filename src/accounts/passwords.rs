//! Portal passwords: argon2id with the crate's defaults (19 MiB, 2 passes,
//! one lane: OWASP's recommended minimum), stored as PHC strings, so the
//! parameters can be raised later without invalidating stored hashes.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::sync::OnceLock;

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 200;

/// Why a new password is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password needs {MIN_LEN} to {MAX_LEN} characters")]
    Length,
}

/// Checks a new password: long enough to resist guessing, short enough to
/// hash quickly (argon2 reads all of it).
pub fn check(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if (MIN_LEN..=MAX_LEN).contains(&n) {
        Ok(())
    } else {
        Err(PasswordError::Length)
    }
}

/// Hashes a password (tens of milliseconds: call it off the async threads).
pub fn hash(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password failed: {e}"))
}

/// Whether `password` matches the stored hash. Without a stored hash the
/// same work is done against a fixed one, so a missing account takes as
/// long to refuse as a wrong password (no probing for addresses).
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not the password of anyone").unwrap_or_default());
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("correct horse batterY", Some(&h)));
        assert!(!verify("correct horse battery", None));
        assert!(!verify("x", Some("not a phc string")));
    }

    #[test]
    fn passwords_need_ten_to_two_hundred_characters() {
        assert_eq!(check("123456789"), Err(PasswordError::Length));
        assert_eq!(check("1234567890"), Ok(()));
        assert_eq!(check(&"x".repeat(201)), Err(PasswordError::Length));
    }
}
