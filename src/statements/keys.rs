//! Programs' statement keys: Ed25519, derived, never stored.
//!
//! Each program's signing key is derived from one master secret
//! (`MITRA_STATEMENT_KEY`): its 32-byte seed is HMAC-SHA256(master,
//! "mitra/statement-key/v1/<program row id>/<key id>"). So no private key is
//! ever written to Postgres or its backups, every process derives the same
//! key, and the secret to guard is one environment variable, like the link
//! keys. The public half is recorded in `statement_keys` when first used and
//! published; if the master secret ever changes, the derived key no longer
//! matches what was published and signing refuses, instead of quietly
//! issuing statements under a key partners do not know.

use crate::domain::ProgramId;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::PgConnection;

/// The key id programs sign with (rotation would add the next).
pub const CURRENT_KEY_ID: i32 = 1;

/// The master secret statement keys are derived from.
#[derive(Clone)]
pub struct StatementKeys {
    master: [u8; 32],
}

/// Never shows the secret.
impl std::fmt::Debug for StatementKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatementKeys(..)")
    }
}

impl StatementKeys {
    /// Keys under `master` (any length; it is hashed to 32 bytes).
    pub fn new(master: &[u8]) -> Self {
        use sha2::Digest;
        Self {
            master: Sha256::digest(master).into(),
        }
    }

    /// A program's signing key.
    pub fn signing_key(&self, program: ProgramId, key_id: i32) -> SigningKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.master).expect("HMAC takes any key");
        mac.update(format!("mitra/statement-key/v1/{}/{key_id}", program.get()).as_bytes());
        let seed: [u8; 32] = mac.finalize().into_bytes().into();
        SigningKey::from_bytes(&seed)
    }
}

/// A program's published statement key.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublishedKey {
    pub program_id: ProgramId,
    pub key_id: i32,
    /// `Ed25519`.
    pub algorithm: &'static str,
    /// The 32-byte public key, base64.
    #[schema(examples("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="))]
    pub public_key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the statement key derived for {0} is not the one published: MITRA_STATEMENT_KEY has changed"
    )]
    Mismatch(ProgramId),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The program's current key, publishing its public half on first use.
/// Refuses when the derived key is not the published one.
pub async fn current(
    db: &mut PgConnection,
    keys: &StatementKeys,
    program: ProgramId,
) -> Result<(SigningKey, PublishedKey), KeyError> {
    let signing = keys.signing_key(program, CURRENT_KEY_ID);
    let public = signing.verifying_key().to_bytes().to_vec();
    sqlx::query!(
        "insert into statement_keys (program_id, key_id, public_key) values ($1, $2, $3)
         on conflict do nothing",
        program.get(),
        CURRENT_KEY_ID,
        &public
    )
    .execute(&mut *db)
    .await?;
    let row = sqlx::query!(
        "select public_key, created_at from statement_keys where program_id = $1 and key_id = $2",
        program.get(),
        CURRENT_KEY_ID
    )
    .fetch_one(&mut *db)
    .await?;
    if row.public_key != public {
        return Err(KeyError::Mismatch(program));
    }
    Ok((
        signing,
        PublishedKey {
            program_id: program,
            key_id: CURRENT_KEY_ID,
            algorithm: "Ed25519",
            public_key: BASE64.encode(&public),
            created_at: row.created_at,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_program_and_master_and_are_stable() {
        let a = StatementKeys::new(b"master-one");
        let b = StatementKeys::new(b"master-two");
        let p1 = ProgramId::from_db(1);
        let p2 = ProgramId::from_db(2);
        let pk = |k: &StatementKeys, p| k.signing_key(p, 1).verifying_key().to_bytes();
        assert_eq!(pk(&a, p1), pk(&StatementKeys::new(b"master-one"), p1));
        assert_ne!(pk(&a, p1), pk(&a, p2));
        assert_ne!(pk(&a, p1), pk(&b, p1));
        assert_ne!(
            a.signing_key(p1, 1).verifying_key(),
            a.signing_key(p1, 2).verifying_key()
        );
        assert_eq!(format!("{a:?}"), "StatementKeys(..)");
    }
}
