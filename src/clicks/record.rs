//! The click stream's record format, shared by its producer (the click log
//! the redirect writes to) and its consumer (the worker that rolls clicks
//! up): one stream entry per batch (one HTTP thread's events of one flush),
//! holding its batch id as `b`, `n` events as `d`, one JSON event per line.
//!
//! The stream is sharded: shard `i` of `n` is the stream `clicks:{<tag>}`,
//! whose hash tag puts it on its own Redis Cluster slot (see
//! `redis_client::spread_tags`). Producers name the shards they write to in
//! the set `clicks:shards`, so consumers find every shard even when
//! processes disagree on `n` (in the middle of a rolling change of
//! `MITRA_CLICK_SHARDS`). A batch id is unique per batch and kept when a
//! batch is written again (to the same or another shard, after a failed or
//! unconfirmed write), so the consumer applies each batch once.

use super::bots::BotReason;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One redirect, as written to the click stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickEvent {
    pub click_id: String,
    pub link_id: i64,
    pub program_id: i64,
    /// The partners of the link's agreement at click time.
    pub partner_ids: Vec<i64>,
    /// Unix time of the click in milliseconds.
    pub at_ms: i64,
    /// Keyed hash of the client address; the address itself is never stored.
    pub ip_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sub_ids: BTreeMap<String, String>,
    /// Set when the redirect looked like a bot or link preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<BotReason>,
}

/// The same event, borrowing everything: what a redirect serializes, with
/// no allocation, straight into the click log's buffer.
#[derive(Debug, Serialize)]
pub struct ClickEventRef<'a> {
    pub click_id: &'a str,
    pub link_id: i64,
    pub program_id: i64,
    pub partner_ids: &'a [i64],
    pub at_ms: i64,
    pub ip_hash: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<&'a str>,
    #[serde(skip_serializing_if = "crate::domain::SubIds::is_empty")]
    pub sub_ids: &'a crate::domain::SubIds,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot: Option<BotReason>,
}

/// The one stream of versions before sharding: consumers still drain it
/// while it exists, so a rolling upgrade loses nothing.
pub const LEGACY_STREAM: &str = "clicks";
/// The set naming every shard stream a producer writes to.
pub const SHARD_REGISTRY: &str = "clicks:shards";
/// The entry field holding the batch id.
pub const FIELD_BATCH: &str = "b";
/// The entry field holding how many events it carries.
pub const FIELD_COUNT: &str = "n";
/// The entry field holding the events, one JSON object per line.
pub const FIELD_DATA: &str = "d";

/// The names of the `n` shard streams (before the deployment's prefix).
pub fn shard_streams(n: usize) -> Vec<String> {
    crate::redis_client::spread_tags(n)
        .into_iter()
        .map(|tag| format!("clicks:{{{tag}}}"))
        .collect()
}

/// Reads an entry's events. An unreadable line is skipped (and reported to
/// `bad`), so one bad event cannot block the stream.
pub fn decode_events(data: &[u8], mut bad: impl FnMut(serde_json::Error)) -> Vec<ClickEvent> {
    data.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|line| serde_json::from_slice(line).map_err(&mut bad).ok())
        .collect()
}

/// Longest user agent or referrer kept in an event; the rest is cut.
pub const MAX_HEADER_LEN: usize = 512;

/// A header value cut to `MAX_HEADER_LEN` bytes on a character boundary.
pub fn truncate_header(value: &str) -> &str {
    if value.len() <= MAX_HEADER_LEN {
        return value;
    }
    let mut end = MAX_HEADER_LEN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SubIds;

    #[test]
    fn a_borrowed_event_reads_back_as_the_owned_one() {
        let subs = SubIds::parse(&[("sub1".to_owned(), "ig".to_owned())].into()).unwrap();
        let event = ClickEventRef {
            click_id: "abc",
            link_id: 7,
            program_id: 3,
            partner_ids: &[1, 2],
            at_ms: 1_795_000_000_000,
            ip_hash: "00ff",
            user_agent: Some("Mozilla/5.0 \"quoted\"\nnewline"),
            referrer: None,
            sub_ids: &subs,
            bot: Some(BotReason::UserAgent),
        };
        let mut data = serde_json::to_vec(&event).unwrap();
        assert!(!data.contains(&b'\n'), "one event, one line");
        data.extend_from_slice(b"\nnot json\n");
        data.extend_from_slice(&serde_json::to_vec(&event).unwrap());
        let mut errors = 0;
        let events = decode_events(&data, |_| errors += 1);
        assert_eq!((events.len(), errors), (2, 1), "the bad line is skipped");
        let back = events[0].clone();
        assert_eq!(back.click_id, "abc");
        assert_eq!(back.partner_ids, vec![1, 2]);
        assert_eq!(
            back.user_agent.as_deref(),
            Some("Mozilla/5.0 \"quoted\"\nnewline")
        );
        assert_eq!(back.referrer, None);
        assert_eq!(back.sub_ids["sub1"], "ig");
        assert_eq!(back.bot, Some(BotReason::UserAgent));
    }

    #[test]
    fn shards_have_distinct_hash_tags_and_slots() {
        let shards = shard_streams(6);
        let slots: std::collections::BTreeSet<u16> = shards
            .iter()
            .map(|s| crate::redis_client::key_slot(format!("mitra:{s}").as_bytes()))
            .collect();
        assert_eq!(slots.len(), 6);
        assert!(shards.iter().all(|s| s.starts_with("clicks:{")));
        assert!(!shards.contains(&LEGACY_STREAM.to_owned()));
    }

    #[test]
    fn long_headers_are_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let cut = truncate_header(&long);
        assert!(cut.len() <= MAX_HEADER_LEN);
        assert!(long.starts_with(cut));
    }
}
