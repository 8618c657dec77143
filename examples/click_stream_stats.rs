//! Reads every shard of a deployment's click stream and tells how many
//! events it holds, how many of them the consumer would apply (those of
//! distinct batch ids: a batch written twice, after a write that timed out,
//! is applied once), how many distinct click ids, and how many bytes they
//! take: the benches' check that every 302 was logged exactly once, and
//! their figure for Redis memory per click.
//!
//!     REDIS_URL=redis://127.0.0.1:6379 MITRA_REDIS_PREFIX=mitra: \
//!         cargo run --release --example click_stream_stats

use mitra::clicks::record;
use std::collections::HashSet;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("REDIS_URL")?;
    let prefix = std::env::var("MITRA_REDIS_PREFIX").unwrap_or_else(|_| "mitra:".into());
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut streams: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}{}", record::SHARD_REGISTRY))
        .query_async(&mut conn)
        .await?;
    streams.push(format!("{prefix}{}", record::LEGACY_STREAM));
    let (mut entries, mut events, mut bytes, mut bad) = (0u64, 0u64, 0u64, 0u64);
    let mut once = 0u64;
    let mut ids = HashSet::new();
    let mut batches = HashSet::new();
    for stream in &streams {
        let mut from = "-".to_owned();
        loop {
            let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(stream)
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            for entry in &page.ids {
                let data: Vec<u8> = entry.get(record::FIELD_DATA).unwrap_or_default();
                let format: Option<String> = entry.get(record::FIELD_FORMAT);
                let batch: String = entry
                    .get(record::FIELD_BATCH)
                    .unwrap_or_else(|| format!("{stream}/{}", entry.id));
                let fresh = batches.insert(batch);
                entries += 1;
                bytes += data.len() as u64;
                for e in record::decode_entry(format.as_deref(), &data, |_| bad += 1) {
                    events += 1;
                    once += u64::from(fresh);
                    ids.insert(e.click_id);
                }
            }
            match page.ids.last() {
                Some(last) if page.ids.len() == 1000 => from = format!("({}", last.id),
                _ => break,
            }
        }
    }
    println!(
        "streams={} entries={entries} events={events} applied_once={once} distinct={} unreadable={bad} event_bytes={bytes}",
        streams.len(),
        ids.len()
    );
    Ok(())
}
