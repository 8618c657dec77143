//! The verifiable statement, pure: the canonical form of a ledger entry, the
//! chain's hashes, the text a statement's signature covers, and the checks
//! `mitra verify-statement` runs offline. Nothing here does I/O, so the
//! verifier a partner runs is exactly the code that built what it verifies.
//!
//! The chain (per program): link n has `digest = SHA-256(canonical(entry))`
//! and `hash = SHA-256(prev_hash || digest)`, where `prev_hash` is link
//! n-1's hash (32 zero bytes before link 1). The canonical form is compact
//! JSON with the keys in the order of `Canonical` below, ids as the API
//! shows them, `created_at` as RFC 3339 UTC with exactly six decimals, and
//! absent values as `null`; any language's JSON encoder that keeps key order
//! and escapes like serde_json (only `"`, `\` and control characters)
//! reproduces it.

use crate::domain::{
    Bucket, CommissionId, ConversionId, Currency, LedgerEntryId, LedgerKind, PartnerId, PayoutId,
    ProgramId,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The statement format this code writes and verifies.
pub const FORMAT: &str = "mitra-statement-v1";
/// The hash before a program's first link.
pub const GENESIS: [u8; 32] = [0; 32];

/// One ledger entry at its place in its program's chain: what the chain
/// hashes, and what a statement lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainedEntry {
    /// Its place in the program's chain, from 1.
    pub seq: i64,
    pub entry_id: LedgerEntryId,
    pub program_id: ProgramId,
    pub partner_id: PartnerId,
    pub currency: Currency,
    pub bucket: Bucket,
    pub kind: LedgerKind,
    /// Signed: what the entry adds to (or takes from) its bucket.
    pub amount_minor: i64,
    pub commission_id: Option<CommissionId>,
    pub conversion_id: Option<ConversionId>,
    pub payout_id: Option<PayoutId>,
    /// Who: `worker`, `admin`, or the program's id.
    pub actor: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The canonical form's fields, in their order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    entry_id: String,
    program_id: String,
    partner_id: String,
    currency: &'a str,
    bucket: &'a str,
    kind: &'a str,
    amount_minor: i64,
    commission_id: Option<String>,
    conversion_id: Option<String>,
    payout_id: Option<String>,
    actor: &'a str,
    reason: Option<&'a str>,
    created_at: String,
}

/// A time as the canonical form writes it: microseconds, what Postgres keeps.
pub fn canonical_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl ChainedEntry {
    /// The bytes the digest covers.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&Canonical {
            seq: self.seq,
            entry_id: self.entry_id.to_string(),
            program_id: self.program_id.to_string(),
            partner_id: self.partner_id.to_string(),
            currency: self.currency.code(),
            bucket: self.bucket.as_str(),
            kind: self.kind.as_str(),
            amount_minor: self.amount_minor,
            commission_id: self.commission_id.map(|i| i.to_string()),
            conversion_id: self.conversion_id.map(|i| i.to_string()),
            payout_id: self.payout_id.map(|i| i.to_string()),
            actor: &self.actor,
            reason: self.reason.as_deref(),
            created_at: canonical_time(self.created_at),
        })
        .expect("the canonical form serializes")
    }

    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.canonical()).into()
    }
}

/// A link's hash: SHA-256 of the previous link's hash and this entry's digest.
pub fn link_hash(prev: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(digest);
    h.finalize().into()
}

pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn from_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        out[i] = digit(pair[0]) * 16 + digit(pair[1]);
    }
    Some(out)
}

/// A place in a program's chain: the link's number and hash (seq 0 and
/// zeros before the first link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainPoint {
    pub seq: i64,
    /// Hex SHA-256.
    #[schema(examples("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"))]
    pub hash: String,
}

impl ChainPoint {
    pub fn new(seq: i64, hash: &[u8; 32]) -> Self {
        Self {
            seq,
            hash: to_hex(hash),
        }
    }
}

/// One entry of a statement: the entry, and its link in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatementEntry {
    #[serde(flatten)]
    pub entry: ChainedEntry,
    /// Hex hash of the link before this one.
    pub prev_hash: String,
    /// Hex SHA-256(prev_hash || SHA-256(canonical form)).
    pub hash: String,
}

/// Bucket sums in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StatementBalance)]
pub struct Balance {
    pub currency: Currency,
    pub pending_minor: i64,
    pub approved_minor: i64,
    pub paid_minor: i64,
}

/// A partner's signed statement of one program: its entries from the chain
/// after `previous_head` up to `head`, between opening and closing balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedStatement {
    /// `mitra-statement-v1`.
    pub format: String,
    pub program_id: ProgramId,
    pub partner_id: PartnerId,
    /// Which of the program's statement keys signed it.
    pub key_id: i32,
    /// Where the previous statement ended (seq 0 for the first).
    pub previous_head: ChainPoint,
    /// The chain's head when the statement was closed.
    pub head: ChainPoint,
    /// Balances of the partner's entries up to `previous_head`.
    pub opening: Vec<Balance>,
    /// The partner's entries after `previous_head` up to `head`, in chain order.
    pub entries: Vec<StatementEntry>,
    /// Balances up to `head`: `opening` plus every entry.
    pub closing: Vec<Balance>,
    pub issued_at: DateTime<Utc>,
    /// Base64 Ed25519 signature over the statement's signing text.
    pub signature: String,
}

fn balance_lines(out: &mut String, word: &str, balances: &[Balance]) {
    for b in balances {
        out.push_str(&format!(
            "{word} {} {} {} {}\n",
            b.currency, b.pending_minor, b.approved_minor, b.paid_minor
        ));
    }
}

impl SignedStatement {
    /// The text the signature covers: every field but the signature, one
    /// per line, each entry by its seq and hash (which cover its content).
    pub fn signing_text(&self) -> String {
        let mut out = format!(
            "{}\nprogram {}\npartner {}\nkey {}\nprevious {} {}\nhead {} {}\nissued {}\n",
            self.format,
            self.program_id,
            self.partner_id,
            self.key_id,
            self.previous_head.seq,
            self.previous_head.hash,
            self.head.seq,
            self.head.hash,
            canonical_time(self.issued_at)
        );
        balance_lines(&mut out, "opening", &self.opening);
        for e in &self.entries {
            out.push_str(&format!("entry {} {}\n", e.entry.seq, e.hash));
        }
        balance_lines(&mut out, "closing", &self.closing);
        out
    }

    pub fn sign(&mut self, key: &SigningKey) {
        self.signature = BASE64.encode(key.sign(self.signing_text().as_bytes()).to_bytes());
    }
}

/// Something a verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("not a {FORMAT} statement")]
    Format,
    #[error("the signature does not verify under the program's statement key")]
    Signature,
    #[error("entry {seq}: its hash does not match its content")]
    EntryHash { seq: i64 },
    #[error("entry {seq}: it belongs to another program or partner")]
    Party { seq: i64 },
    #[error("entry {seq}: entries are not in chain order, or lie outside the statement's range")]
    Order { seq: i64 },
    #[error("entry {seq}: it does not link to the link before it")]
    Link { seq: i64 },
    #[error("{currency}: opening plus entries is not the closing balance")]
    Arithmetic { currency: String },
    #[error("the proof does not link the two statements: {0}")]
    Continuity(String),
}

/// Bucket sums per currency, as a map.
fn sums(balances: &[Balance]) -> BTreeMap<Currency, [i64; 3]> {
    balances
        .iter()
        .map(|b| {
            (
                b.currency,
                [b.pending_minor, b.approved_minor, b.paid_minor],
            )
        })
        .collect()
}

fn bucket_index(b: Bucket) -> usize {
    match b {
        Bucket::Pending => 0,
        Bucket::Approved => 1,
        Bucket::Paid => 2,
    }
}

/// Parses a base64 Ed25519 public key.
pub fn public_key(b64: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = BASE64.decode(b64.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Checks a statement: its signature under `key`, every entry's hash, the
/// entries' order and links, and the balance arithmetic. Answers every
/// problem found (none: the statement is what the program signed).
pub fn verify(s: &SignedStatement, key: &VerifyingKey) -> Vec<Problem> {
    let mut problems = Vec::new();
    if s.format != FORMAT {
        problems.push(Problem::Format);
    }
    let signature = BASE64
        .decode(&s.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b));
    if signature.is_none_or(|sig| key.verify(s.signing_text().as_bytes(), &sig).is_err()) {
        problems.push(Problem::Signature);
    }
    let mut last_seq = s.previous_head.seq;
    let mut last_hash = from_hex(&s.previous_head.hash);
    for e in &s.entries {
        let seq = e.entry.seq;
        if e.entry.program_id != s.program_id || e.entry.partner_id != s.partner_id {
            problems.push(Problem::Party { seq });
        }
        if seq <= last_seq || seq > s.head.seq {
            problems.push(Problem::Order { seq });
        }
        let prev = from_hex(&e.prev_hash);
        let recomputed = prev.map(|p| link_hash(&p, &e.entry.digest()));
        if recomputed.is_none() || recomputed != from_hex(&e.hash) {
            problems.push(Problem::EntryHash { seq });
        }
        // Consecutive links of the chain must join; between them lie other
        // partners' entries, which the chain proof covers.
        if seq == last_seq + 1 && prev != last_hash {
            problems.push(Problem::Link { seq });
        }
        if seq > last_seq {
            last_seq = seq;
            last_hash = from_hex(&e.hash);
        }
    }
    if let Some(e) = s.entries.last()
        && e.entry.seq == s.head.seq
        && e.hash != s.head.hash
    {
        problems.push(Problem::Link { seq: e.entry.seq });
    }
    let mut running = sums(&s.opening);
    for e in &s.entries {
        let row = running.entry(e.entry.currency).or_insert([0; 3]);
        row[bucket_index(e.entry.bucket)] += e.entry.amount_minor;
    }
    let closing = sums(&s.closing);
    let currencies: std::collections::BTreeSet<&Currency> =
        running.keys().chain(closing.keys()).collect();
    for c in currencies {
        let zero = [0; 3];
        if running.get(c).unwrap_or(&zero) != closing.get(c).unwrap_or(&zero) {
            problems.push(Problem::Arithmetic {
                currency: c.to_string(),
            });
        }
    }
    problems
}

/// One link of a program's chain, as a chain proof shows it: whose entry it
/// is and its digest, never its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProofLink {
    pub seq: i64,
    pub partner_id: PartnerId,
    /// Hex SHA-256 of the entry's canonical form.
    pub digest: String,
    /// Hex SHA-256(previous hash || digest).
    pub hash: String,
}

/// Every link of a program's chain after `from` up to `to`: with it, a
/// partner recomputes the chain between two of its statements' heads and
/// sees that each of its entries there is in the later statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainProof {
    pub program_id: ProgramId,
    pub from: ChainPoint,
    pub to: ChainPoint,
    pub links: Vec<ProofLink>,
}

/// Checks that `later` continues `earlier` with nothing removed: both
/// verify, `later` starts where `earlier` ended with its closing balances,
/// the proof's links hash from one head to the other, and the partner's
/// links among them are exactly `later`'s entries.
pub fn verify_continuity(
    earlier: &SignedStatement,
    later: &SignedStatement,
    proof: &ChainProof,
    key: &VerifyingKey,
) -> Vec<Problem> {
    let mut problems = verify(earlier, key);
    problems.extend(verify(later, key));
    let mut fail = |m: String| problems.push(Problem::Continuity(m));
    if (earlier.program_id, earlier.partner_id) != (later.program_id, later.partner_id)
        || proof.program_id != later.program_id
    {
        fail("the statements and the proof are of different programs or partners".into());
    }
    if later.previous_head != earlier.head {
        fail("the later statement does not start at the earlier one's head".into());
    }
    if sums(&later.opening) != sums(&earlier.closing) {
        fail("the later opening balances are not the earlier closing balances".into());
    }
    if proof.from != earlier.head || proof.to != later.head {
        fail("the proof does not run from the earlier head to the later head".into());
    }
    let Some(mut hash) = from_hex(&proof.from.hash) else {
        fail("the proof's starting hash is not hex SHA-256".into());
        return problems;
    };
    let mut expected_seq = proof.from.seq + 1;
    let mut mine = Vec::new();
    for link in &proof.links {
        if link.seq != expected_seq {
            fail(format!("link {} is missing or out of order", expected_seq));
            return problems;
        }
        let Some(digest) = from_hex(&link.digest) else {
            fail(format!("link {}: the digest is not hex SHA-256", link.seq));
            return problems;
        };
        hash = link_hash(&hash, &digest);
        if Some(hash) != from_hex(&link.hash) {
            fail(format!("link {}: its hash does not follow", link.seq));
            return problems;
        }
        if link.partner_id == later.partner_id {
            mine.push((link.seq, digest));
        }
        expected_seq += 1;
    }
    if expected_seq <= proof.to.seq {
        fail(format!("link {expected_seq} is missing or out of order"));
    } else if expected_seq - 1 != proof.to.seq || to_hex(&hash) != proof.to.hash {
        fail("the links do not reach the later head".into());
    }
    let listed: Vec<(i64, [u8; 32])> = later
        .entries
        .iter()
        .map(|e| (e.entry.seq, e.entry.digest()))
        .collect();
    if mine != listed {
        fail("the partner's entries in the chain are not the later statement's entries".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn entry(seq: i64, partner: i64, bucket: Bucket, amount: i64) -> ChainedEntry {
        ChainedEntry {
            seq,
            entry_id: LedgerEntryId::from_db(100 + seq),
            program_id: ProgramId::from_db(1),
            partner_id: PartnerId::from_db(partner),
            currency: eur(),
            bucket,
            kind: LedgerKind::Created,
            amount_minor: amount,
            commission_id: Some(CommissionId::from_db(seq)),
            conversion_id: None,
            payout_id: None,
            actor: "worker".into(),
            reason: Some("a \"quoted\" reason".into()),
            created_at: DateTime::parse_from_rfc3339("2026-12-01T10:00:00.123456Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    /// A chain of entries of partners 7 and 8, and partner 7's statement of it.
    /// Each link: the entry, the hash before it, its hash.
    type Links = Vec<(ChainedEntry, [u8; 32], [u8; 32])>;

    fn chain_and_statement() -> (Links, SignedStatement, SigningKey) {
        let entries = [
            entry(1, 7, Bucket::Pending, 1_000),
            entry(2, 8, Bucket::Pending, 500),
            entry(3, 7, Bucket::Pending, -1_000),
            entry(4, 7, Bucket::Approved, 1_000),
        ];
        let mut prev = GENESIS;
        let mut links = Vec::new();
        for e in entries {
            let hash = link_hash(&prev, &e.digest());
            links.push((e, prev, hash));
            prev = hash;
        }
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut s = SignedStatement {
            format: FORMAT.into(),
            program_id: ProgramId::from_db(1),
            partner_id: PartnerId::from_db(7),
            key_id: 1,
            previous_head: ChainPoint::new(0, &GENESIS),
            head: ChainPoint::new(4, &prev),
            opening: vec![],
            entries: links
                .iter()
                .filter(|(e, _, _)| e.partner_id == PartnerId::from_db(7))
                .map(|(e, p, h)| StatementEntry {
                    entry: e.clone(),
                    prev_hash: to_hex(p),
                    hash: to_hex(h),
                })
                .collect(),
            closing: vec![Balance {
                currency: eur(),
                pending_minor: 0,
                approved_minor: 1_000,
                paid_minor: 0,
            }],
            issued_at: DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            signature: String::new(),
        };
        s.sign(&key);
        (links, s, key)
    }

    #[test]
    fn the_canonical_form_is_compact_json_in_a_fixed_order() {
        let e = entry(1, 7, Bucket::Pending, 1_000);
        assert_eq!(
            String::from_utf8(e.canonical()).unwrap(),
            r#"{"seq":1,"entry_id":"led_1d","program_id":"prg_1","partner_id":"ptn_7","currency":"EUR","bucket":"pending","kind":"created","amount_minor":1000,"commission_id":"com_1","conversion_id":null,"payout_id":null,"actor":"worker","reason":"a \"quoted\" reason","created_at":"2026-12-01T10:00:00.123456Z"}"#
        );
    }

    #[test]
    fn a_statement_as_signed_verifies() {
        let (_, s, key) = chain_and_statement();
        assert_eq!(verify(&s, &key.verifying_key()), vec![]);
    }

    #[test]
    fn each_kind_of_tampering_is_found() {
        let (_, s, key) = chain_and_statement();
        let key = key.verifying_key();

        let mut changed = s.clone();
        changed.entries[0].entry.amount_minor = 2_000;
        assert_eq!(
            verify(&changed, &key),
            vec![
                Problem::EntryHash { seq: 1 },
                Problem::Arithmetic {
                    currency: "EUR".into()
                }
            ]
        );

        let mut removed = s.clone();
        removed.entries.remove(1);
        assert_eq!(
            verify(&removed, &key),
            vec![
                Problem::Signature,
                Problem::Arithmetic {
                    currency: "EUR".into()
                }
            ]
        );

        let mut reordered = s.clone();
        reordered.entries.swap(1, 2);
        assert_eq!(
            verify(&reordered, &key),
            vec![Problem::Signature, Problem::Order { seq: 3 }]
        );

        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(verify(&s, &other), vec![Problem::Signature]);
    }

    #[test]
    fn continuity_holds_across_statements_and_a_dropped_link_breaks_it() {
        let (links, later, key) = chain_and_statement();
        let earlier = SignedStatement {
            head: ChainPoint::new(0, &GENESIS),
            entries: vec![],
            closing: vec![],
            ..later.clone()
        };
        let mut earlier = earlier;
        earlier.sign(&key);
        let proof = ChainProof {
            program_id: ProgramId::from_db(1),
            from: earlier.head.clone(),
            to: later.head.clone(),
            links: links
                .iter()
                .map(|(e, _, h)| ProofLink {
                    seq: e.seq,
                    partner_id: e.partner_id,
                    digest: to_hex(&e.digest()),
                    hash: to_hex(h),
                })
                .collect(),
        };
        let vk = key.verifying_key();
        assert_eq!(verify_continuity(&earlier, &later, &proof, &vk), vec![]);

        let mut dropped = proof.clone();
        dropped.links.remove(1);
        assert_eq!(
            verify_continuity(&earlier, &later, &dropped, &vk),
            vec![Problem::Continuity(
                "link 2 is missing or out of order".into()
            )]
        );
        // A partner entry passed off as another partner's is noticed.
        let mut relabelled = proof;
        relabelled.links[2].partner_id = PartnerId::from_db(8);
        assert_eq!(
            verify_continuity(&earlier, &later, &relabelled, &vk),
            vec![Problem::Continuity(
                "the partner's entries in the chain are not the later statement's entries".into()
            )]
        );
    }
}
