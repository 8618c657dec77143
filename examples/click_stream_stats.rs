//! Reads every shard of a deployment's click stream and tells how many
//! events it holds, how many of them the consumer would apply (those of
//! distinct batch ids: a batch written twice, after a write that timed out,
//! is applied once), how many distinct click ids (not while following), and how many bytes they
//! take: the benches' check that every 302 was logged exactly once, and
//! their figure for Redis memory per click.
//!
//!     REDIS_URL=redis://127.0.0.1:6379 MITRA_REDIS_PREFIX=mitra: \
//!         cargo run --release --example click_stream_stats
//!
//! With `--follow` it stands in for the click worker during a load test:
//! every 50 ms it reads the entries written since its last read and trims
//! them off the streams (as the worker does once it has applied them), so
//! Redis holds what a deployment holds instead of every event of the run.
//! It reads in pages the size the worker reads (about 4,000 events, at most
//! 60 entries): when it has fallen behind, catching up then costs Redis many
//! small replies, as the worker would, not a few of megabytes each that hold
//! Redis (and the servers sharing its core) for milliseconds at a time.
//! On SIGTERM it reads (and trims) what is left and prints the same tally over
//! everything it read.

use mitra::clicks::record;
use redis::aio::MultiplexedConnection;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[derive(Default)]
struct Tally {
    entries: u64,
    events: u64,
    /// Events of batches seen for the first time.
    once: u64,
    bytes: u64,
    unreadable: u64,
    /// Distinct click ids; not kept while following (the set would grow
    /// with every click of a long run).
    ids: Option<HashSet<String>>,
    batches: HashSet<String>,
}

impl Tally {
    fn add(&mut self, stream: &str, entry: &redis::streams::StreamId) {
        let data: Vec<u8> = entry.get(record::FIELD_DATA).unwrap_or_default();
        let format: Option<String> = entry.get(record::FIELD_FORMAT);
        let batch: String = entry
            .get(record::FIELD_BATCH)
            .unwrap_or_else(|| format!("{stream}/{}", entry.id));
        let fresh = self.batches.insert(batch);
        self.entries += 1;
        self.bytes += data.len() as u64;
        let mut bad = 0;
        for e in record::decode_entry(format.as_deref(), &data, |_| bad += 1) {
            self.events += 1;
            self.once += u64::from(fresh);
            if let Some(ids) = &mut self.ids {
                ids.insert(e.click_id);
            }
        }
        self.unreadable += bad;
    }
}

/// The shard streams (listed in the registry set) and the legacy stream.
async fn streams(
    conn: &mut MultiplexedConnection,
    prefix: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut streams: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}{}", record::SHARD_REGISTRY))
        .query_async(conn)
        .await?;
    streams.push(format!("{prefix}{}", record::LEGACY_STREAM));
    Ok(streams)
}

/// Entries per page when following: what the click worker reads per step
/// (`clicks::consumer`: about 4,000 events, at most 60 entries).
const FOLLOW_EVENTS: u64 = 4000;
const FOLLOW_ENTRIES: u64 = 60;
/// Entries per page of the final tally, when nothing else runs.
const TALLY_ENTRIES: u64 = 1000;

/// Reads `stream`'s entries after `from` (exclusive; "-": from the start)
/// into the tally; with `trim`, removes them from the stream once read.
/// Returns the last id read.
async fn read(
    conn: &mut MultiplexedConnection,
    stream: &str,
    mut from: String,
    trim: bool,
    tally: &mut Tally,
) -> redis::RedisResult<String> {
    loop {
        let count = if trim {
            let per_entry = (tally.events / tally.entries.max(1)).max(1);
            (FOLLOW_EVENTS / per_entry).clamp(1, FOLLOW_ENTRIES)
        } else {
            TALLY_ENTRIES
        };
        let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(conn)
            .await?;
        for entry in &page.ids {
            tally.add(stream, entry);
        }
        let Some(last) = page.ids.last() else {
            return Ok(from);
        };
        if trim {
            // Everything up to and including the last entry read.
            let _: i64 = redis::cmd("XTRIM")
                .arg(stream)
                .arg("MINID")
                .arg(successor(&last.id))
                .query_async(conn)
                .await?;
        }
        from = format!("({}", last.id);
        if (page.ids.len() as u64) < count {
            return Ok(from);
        }
    }
}

/// The stream id right after `id`.
fn successor(id: &str) -> String {
    match record::parse_stream_id(id) {
        Some((ms, seq)) => format!("{ms}-{}", seq + 1),
        None => id.to_owned(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("REDIS_URL")?;
    let prefix = std::env::var("MITRA_REDIS_PREFIX").unwrap_or_else(|_| "mitra:".into());
    // Following trims what it read, the last pass after SIGTERM included:
    // what that pass read is in its tally, and left in the stream it would
    // be counted a second time by the tally of what stays queued.
    let trim = std::env::args().any(|a| a == "--follow");
    let mut follow = trim;
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut stop = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tally = Tally {
        ids: (!trim).then(HashSet::new),
        ..Tally::default()
    };
    // Where each stream was last read to.
    let mut read_to: HashMap<String, String> = HashMap::new();
    loop {
        for stream in streams(&mut conn, &prefix).await? {
            let from = read_to.remove(&stream).unwrap_or_else(|| "-".into());
            let to = read(&mut conn, &stream, from, trim, &mut tally).await?;
            read_to.insert(stream, to);
        }
        if !follow {
            break;
        }
        tokio::select! {
            // One more pass for what was written since this one, then done.
            _ = stop.recv() => follow = false,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    println!(
        "streams={} entries={} events={} applied_once={}{} unreadable={} event_bytes={}",
        read_to.len(),
        tally.entries,
        tally.events,
        tally.once,
        tally
            .ids
            .map(|ids| format!(" distinct={}", ids.len()))
            .unwrap_or_default(),
        tally.unreadable,
        tally.bytes
    );
    Ok(())
}
