//! Verifiable statements: the ledger chained per program (`chain`, the
//! chainer worker), programs' Ed25519 statement keys (`keys`), signed
//! statements and chain proofs read from the chain (this file), and the
//! format with its offline checks (`format`, what `mitra verify-statement`
//! runs).

pub mod chain;
pub mod format;
pub mod keys;

use crate::domain::{
    Bucket, CommissionId, ConversionId, Currency, LedgerEntryId, LedgerKind, PartnerId, PayoutId,
    ProgramId,
};
use chrono::Utc;
use format::{
    Balance, ChainPoint, ChainProof, ChainedEntry, FORMAT, GENESIS, ProofLink, SignedStatement,
    StatementEntry, to_hex,
};
use keys::{KeyError, StatementKeys};
use sqlx::{PgConnection, PgPool};

/// Most entries one statement lists, and links one proof shows.
pub const MAX_ENTRIES: i64 = 50_000;
pub const MAX_PROOF_LINKS: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("{0}")]
    Range(String),
    #[error("the range holds more than {0} entries: ask for a shorter one")]
    TooLong(i64),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The program's chain point at `seq` (seq 0: before the first link).
async fn point(
    tx: &mut PgConnection,
    program: ProgramId,
    seq: i64,
) -> Result<ChainPoint, StatementError> {
    if seq == 0 {
        return Ok(ChainPoint::new(0, &GENESIS));
    }
    let hash = sqlx::query_scalar!(
        "select hash from ledger_chain where program_id = $1 and seq = $2",
        program.get(),
        seq
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StatementError::Range(format!("the chain has no link {seq} yet")))?;
    Ok(ChainPoint {
        seq,
        hash: to_hex(&hash),
    })
}

/// The range (after, to]: `to` defaults to the head; both within the chain.
async fn range(
    tx: &mut PgConnection,
    program: ProgramId,
    after: i64,
    to: Option<i64>,
) -> Result<(ChainPoint, ChainPoint), StatementError> {
    let head = sqlx::query_scalar!(
        "select seq from ledger_chain_heads where program_id = $1",
        program.get()
    )
    .fetch_optional(&mut *tx)
    .await?
    .unwrap_or(0);
    let to = to.unwrap_or(head);
    if after < 0 || to < after || to > head {
        return Err(StatementError::Range(format!(
            "after_seq and to_seq must satisfy 0 <= after_seq <= to_seq <= {head} (the chain's head)"
        )));
    }
    Ok((
        point(tx, program, after).await?,
        point(tx, program, to).await?,
    ))
}

/// The partner's bucket sums in the program up to link `seq`.
async fn balances(
    tx: &mut PgConnection,
    program: ProgramId,
    partner: PartnerId,
    seq: i64,
) -> Result<Vec<Balance>, sqlx::Error> {
    sqlx::query_as!(
        Balance,
        r#"select e.currency as "currency: Currency",
               coalesce(sum(e.amount_minor) filter (where e.bucket = 'pending'), 0)::bigint as "pending_minor!",
               coalesce(sum(e.amount_minor) filter (where e.bucket = 'approved'), 0)::bigint as "approved_minor!",
               coalesce(sum(e.amount_minor) filter (where e.bucket = 'paid'), 0)::bigint as "paid_minor!"
           from ledger_chain c join ledger_entries e on e.id = c.entry_id
           where c.program_id = $1 and c.partner_id = $2 and c.seq <= $3
           group by e.currency order by e.currency"#,
        program.get(),
        partner.get(),
        seq
    )
    .fetch_all(&mut *tx)
    .await
}

/// The partner's signed statement of the program: its chained entries
/// after link `after` up to `to` (default: the head), signed with the
/// program's statement key.
pub async fn signed(
    db: &PgPool,
    keys: &StatementKeys,
    program: ProgramId,
    partner: PartnerId,
    after: i64,
    to: Option<i64>,
) -> Result<SignedStatement, StatementError> {
    let mut tx = db.begin().await?;
    // One snapshot: the head, the entries and both balances agree.
    sqlx::query("set transaction isolation level repeatable read")
        .execute(&mut *tx)
        .await?;
    let (previous_head, head) = range(&mut tx, program, after, to).await?;
    let rows = sqlx::query!(
        r#"select c.seq, e.id as "entry_id: LedgerEntryId",
                  e.program_id as "program_id: ProgramId", e.partner_id as "partner_id: PartnerId",
                  e.currency as "currency: Currency", e.bucket as "bucket: Bucket",
                  e.kind as "kind: LedgerKind", e.amount_minor,
                  e.commission_id as "commission_id: CommissionId",
                  e.conversion_id as "conversion_id: ConversionId",
                  e.payout_id as "payout_id: PayoutId", e.actor, e.reason, e.created_at,
                  c.prev_hash, c.hash
           from ledger_chain c join ledger_entries e on e.id = c.entry_id
           where c.program_id = $1 and c.partner_id = $2 and c.seq > $3 and c.seq <= $4
           order by c.seq
           limit $5"#,
        program.get(),
        partner.get(),
        previous_head.seq,
        head.seq,
        MAX_ENTRIES + 1
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.len() as i64 > MAX_ENTRIES {
        return Err(StatementError::TooLong(MAX_ENTRIES));
    }
    let entries = rows
        .into_iter()
        .map(|r| StatementEntry {
            entry: ChainedEntry {
                seq: r.seq,
                entry_id: r.entry_id,
                program_id: r.program_id,
                partner_id: r.partner_id,
                currency: r.currency,
                bucket: r.bucket,
                kind: r.kind,
                amount_minor: r.amount_minor,
                commission_id: r.commission_id,
                conversion_id: r.conversion_id,
                payout_id: r.payout_id,
                actor: r.actor,
                reason: r.reason,
                created_at: r.created_at,
            },
            prev_hash: to_hex(&r.prev_hash),
            hash: to_hex(&r.hash),
        })
        .collect();
    let opening = balances(&mut tx, program, partner, previous_head.seq).await?;
    let closing = balances(&mut tx, program, partner, head.seq).await?;
    let (signing, published) = keys::current(&mut tx, keys, program).await?;
    tx.commit().await?;
    let mut statement = SignedStatement {
        format: FORMAT.into(),
        program_id: program,
        partner_id: partner,
        key_id: published.key_id,
        previous_head,
        head,
        opening,
        entries,
        closing,
        // Microseconds: what the signing text carries.
        issued_at: now_micros(),
        signature: String::new(),
    };
    statement.sign(&signing);
    Ok(statement)
}

/// Now, in whole microseconds (what a signing text carries).
fn now_micros() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Every link of the program's chain after `after` up to `to` (default the
/// head): whose entry each is, its digest and hash, never its content.
pub async fn proof(
    db: &PgPool,
    program: ProgramId,
    after: i64,
    to: Option<i64>,
) -> Result<ChainProof, StatementError> {
    let mut tx = db.begin().await?;
    sqlx::query("set transaction isolation level repeatable read")
        .execute(&mut *tx)
        .await?;
    let (from, to) = range(&mut tx, program, after, to).await?;
    if to.seq - from.seq > MAX_PROOF_LINKS {
        return Err(StatementError::TooLong(MAX_PROOF_LINKS));
    }
    let links = sqlx::query!(
        r#"select seq, partner_id as "partner_id: PartnerId", digest, hash
           from ledger_chain where program_id = $1 and seq > $2 and seq <= $3 order by seq"#,
        program.get(),
        from.seq,
        to.seq
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| ProofLink {
        seq: r.seq,
        partner_id: r.partner_id,
        digest: to_hex(&r.digest),
        hash: to_hex(&r.hash),
    })
    .collect();
    tx.commit().await?;
    Ok(ChainProof {
        program_id: program,
        from,
        to,
        links,
    })
}
