//! The chainer: links committed ledger entries into their programs' chains.
//!
//! Booking only queues its entries (a statement-level trigger adds one row
//! of their ids to `ledger_chain_queue` in the booking's own transaction);
//! this worker takes the queue in order, gives each entry the next seq of
//! its program's chain, and writes the links and the new heads in one
//! transaction. One chainer runs at a time across every process (a
//! transaction-scoped advisory lock; the others find it taken and wait for
//! the next poll), so the chain never forks, and booking never waits for it.
//!
//! Chain order is commit order as the chainer sees it, not id order: an
//! entry whose transaction commits late is chained when it arrives, so none
//! is skipped. How far behind: an idle chainer polls every
//! `MITRA_WORKER_POLL_MS` (500 ms) and a busy one links the entries of
//! `BATCH` queued statements per step back to back;
//! `mitra_queue_depth{queue="chain"}` and
//! `mitra_queue_oldest_age_seconds{queue="chain"}` show the backlog. A
//! statement covers the chain up to its head, so an entry is on statements
//! once it is chained.

use super::format::{ChainedEntry, GENESIS, link_hash};
use crate::background::{Every, Step};
use crate::domain::{
    Bucket, CommissionId, ConversionId, Currency, LedgerEntryId, LedgerKind, PartnerId, PayoutId,
    ProgramId,
};
use crate::metrics::Metrics;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;

/// Queued statements (each a booking's, an approval's, a payout's entries)
/// linked per transaction.
pub const BATCH: i64 = 20;
/// The advisory lock only one chainer holds.
const LOCK: i64 = 0x6d69_7472_6163_6831; // "mitrach1"

/// One link to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub entry: ChainedEntry,
    pub digest: [u8; 32],
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// Each program's last link: its seq and hash.
pub type Heads = HashMap<ProgramId, (i64, [u8; 32])>;

/// Links `entries` (in the order given) after each program's current head;
/// answers the links and the new heads. Pure.
pub fn link(entries: Vec<ChainedEntry>, heads: &Heads) -> (Vec<Link>, Heads) {
    let mut heads = heads.clone();
    let mut links = Vec::with_capacity(entries.len());
    for mut entry in entries {
        let head = heads.entry(entry.program_id).or_insert((0, GENESIS));
        entry.seq = head.0 + 1;
        let digest = entry.digest();
        let hash = link_hash(&head.1, &digest);
        links.push(Link {
            prev_hash: head.1,
            digest,
            hash,
            entry,
        });
        *head = (head.0 + 1, hash);
    }
    (links, heads)
}

pub struct Chainer {
    db: PgPool,
    metrics: Arc<Metrics>,
    gauges: Every,
}

impl Chainer {
    pub fn new(db: PgPool, metrics: Arc<Metrics>) -> Self {
        Self {
            db,
            metrics,
            gauges: Every::new(std::time::Duration::from_secs(5)),
        }
    }

    /// Links one batch of queued entries. Busy when the batch was full.
    pub async fn step(&self) -> anyhow::Result<Step> {
        if self.gauges.due() {
            self.measure().await?;
        }
        let mut tx = self.db.begin().await?;
        let mine = sqlx::query_scalar!(r#"select pg_try_advisory_xact_lock($1) as "got!""#, LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !mine {
            tx.commit().await?;
            return Ok(Step::Idle);
        }
        let mut batches = sqlx::query!(
            "delete from ledger_chain_queue where id in
                (select id from ledger_chain_queue order by id limit $1)
             returning id, entry_ids",
            BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        // Chain order is queue order, then id order within a statement.
        batches.sort_by_key(|b| b.id);
        let ids: Vec<i64> = batches.iter().flat_map(|b| b.entry_ids.clone()).collect();
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Step::Idle);
        }
        let mut entries = sqlx::query_as!(
            ChainedEntry,
            r#"select 0::bigint as "seq!", id as "entry_id: LedgerEntryId",
                      program_id as "program_id: ProgramId", partner_id as "partner_id: PartnerId",
                      currency as "currency: Currency", bucket as "bucket: Bucket",
                      kind as "kind: LedgerKind", amount_minor,
                      commission_id as "commission_id: CommissionId",
                      conversion_id as "conversion_id: ConversionId",
                      payout_id as "payout_id: PayoutId", actor, reason, created_at
               from ledger_entries where id = any($1) order by id"#,
            &ids
        )
        .fetch_all(&mut *tx)
        .await?;
        let position: HashMap<i64, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        entries.sort_by_key(|e| position.get(&e.entry_id.get()).copied());
        let programs: Vec<i64> = entries.iter().map(|e| e.program_id.get()).collect();
        let heads: Heads = sqlx::query!(
            r#"select program_id as "program_id: ProgramId", seq, hash
               from ledger_chain_heads where program_id = any($1)"#,
            &programs
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.program_id, (r.seq, r.hash.try_into().ok()?))))
        .collect();
        let (links, heads) = link(entries, &heads);
        let col = |f: fn(&Link) -> Vec<u8>| links.iter().map(f).collect::<Vec<_>>();
        sqlx::query!(
            "insert into ledger_chain (entry_id, program_id, partner_id, seq, digest, prev_hash, hash)
             select * from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::bytea[], $6::bytea[], $7::bytea[])",
            &links.iter().map(|l| l.entry.entry_id.get()).collect::<Vec<_>>(),
            &links.iter().map(|l| l.entry.program_id.get()).collect::<Vec<_>>(),
            &links.iter().map(|l| l.entry.partner_id.get()).collect::<Vec<_>>(),
            &links.iter().map(|l| l.entry.seq).collect::<Vec<_>>(),
            &col(|l| l.digest.to_vec()),
            &col(|l| l.prev_hash.to_vec()),
            &col(|l| l.hash.to_vec()),
        )
        .execute(&mut *tx)
        .await?;
        let (programs, seqs, hashes): (Vec<i64>, Vec<i64>, Vec<Vec<u8>>) = heads
            .iter()
            .map(|(p, (seq, hash))| (p.get(), *seq, hash.to_vec()))
            .fold((vec![], vec![], vec![]), |mut acc, (p, s, h)| {
                acc.0.push(p);
                acc.1.push(s);
                acc.2.push(h);
                acc
            });
        sqlx::query!(
            "insert into ledger_chain_heads (program_id, seq, hash)
             select * from unnest($1::bigint[], $2::bigint[], $3::bytea[])
             on conflict (program_id) do update set seq = excluded.seq, hash = excluded.hash",
            &programs,
            &seqs,
            &hashes
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if batches.len() as i64 == BATCH {
            Step::Busy
        } else {
            Step::Idle
        })
    }

    /// Sets the chain queue gauges: entries waiting, and the oldest's age.
    pub async fn measure(&self) -> anyhow::Result<()> {
        let row = sqlx::query!(
            r#"select coalesce(sum(cardinality(entry_ids)), 0)::bigint as "depth!",
                      extract(epoch from now() - min(queued_at))::float8 as age
               from ledger_chain_queue"#
        )
        .fetch_one(&self.db)
        .await?;
        self.metrics.queue("chain", row.depth, row.age);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn entry(id: i64, program: i64) -> ChainedEntry {
        ChainedEntry {
            seq: 0,
            entry_id: LedgerEntryId::from_db(id),
            program_id: ProgramId::from_db(program),
            partner_id: PartnerId::from_db(1),
            currency: Currency::parse("EUR").unwrap(),
            bucket: Bucket::Pending,
            kind: LedgerKind::Created,
            amount_minor: 100,
            commission_id: None,
            conversion_id: None,
            payout_id: None,
            actor: "worker".into(),
            reason: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn links_continue_each_programs_chain_from_its_head() {
        let head = [9u8; 32];
        let heads = HashMap::from([(ProgramId::from_db(1), (41, head))]);
        let (links, new_heads) = link(vec![entry(10, 1), entry(11, 2), entry(12, 1)], &heads);
        let seqs: Vec<(i64, i64)> = links
            .iter()
            .map(|l| (l.entry.program_id.get(), l.entry.seq))
            .collect();
        assert_eq!(seqs, vec![(1, 42), (2, 1), (1, 43)]);
        assert_eq!(links[0].prev_hash, head);
        assert_eq!(links[1].prev_hash, GENESIS);
        assert_eq!(links[2].prev_hash, links[0].hash);
        assert_eq!(
            links[2].hash,
            link_hash(&links[0].hash, &links[2].entry.digest())
        );
        assert_eq!(new_heads[&ProgramId::from_db(1)], (43, links[2].hash));
        assert_eq!(new_heads[&ProgramId::from_db(2)], (1, links[1].hash));
    }
}
