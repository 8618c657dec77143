//! The click stream's record format, shared by its producer (the click log
//! the redirect writes to) and its consumer (the worker that rolls clicks
//! up): one stream entry per batch (one HTTP thread's events of one flush),
//! holding its batch id as `b`, its format as `f` and `n` events as `d`
//! (see the binary format below; entries of earlier versions, without `f`,
//! hold one JSON event per line).
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

/// The same event, borrowing everything: what a redirect encodes, with no
/// allocation, straight into the click log's buffer.
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

/// The entry field naming how `d` is encoded: `b1` for the binary format
/// below. Entries without it (written by versions before it) hold JSON, one
/// event per line.
pub const FIELD_FORMAT: &str = "f";
/// The binary event format, version 1.
pub const FORMAT_BINARY: &str = "b1";

// Binary format, version 1. An entry's `d` is a sequence of events, each a
// little-endian u16 length followed by that many bytes:
//
//   flags          u8: bits 0-1 the bot reason (0 none, 1 no user agent,
//                  2 user agent, 3 HEAD), bit 2 user agent present, bit 3
//                  referrer present
//   link_id, program_id, at_ms          varints (LEB128)
//   click_id, ip_hash                   strings (varint length, UTF-8)
//   partner count, partner ids          varints
//   user_agent, referrer                strings, when their flag is set
//   sub id count, (key, value) pairs    varint, strings
//
// Half the size of the JSON it replaces (no field names, no quoting, no
// decimal numbers), so Redis holds, copies and persists less per click, and
// written with no formatting at all. A malformed event is skipped on its
// own: its length says where the next one starts.

const BOT_MASK: u8 = 0b11;
const HAS_USER_AGENT: u8 = 0b100;
const HAS_REFERRER: u8 = 0b1000;

fn bot_code(bot: Option<BotReason>) -> u8 {
    match bot {
        None => 0,
        Some(BotReason::NoUserAgent) => 1,
        Some(BotReason::UserAgent) => 2,
        Some(BotReason::HeadRequest) => 3,
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

impl ClickEventRef<'_> {
    /// Appends the event to `buf` in the binary format. An event too large
    /// for its length prefix (impossible with the header and sub id limits)
    /// is not written: false.
    pub fn encode(&self, buf: &mut Vec<u8>) -> bool {
        let start = buf.len();
        buf.extend_from_slice(&[0, 0]);
        let mut flags = bot_code(self.bot);
        if self.user_agent.is_some() {
            flags |= HAS_USER_AGENT;
        }
        if self.referrer.is_some() {
            flags |= HAS_REFERRER;
        }
        buf.push(flags);
        put_varint(buf, self.link_id as u64);
        put_varint(buf, self.program_id as u64);
        put_varint(buf, self.at_ms as u64);
        put_str(buf, self.click_id);
        put_str(buf, self.ip_hash);
        put_varint(buf, self.partner_ids.len() as u64);
        for p in self.partner_ids {
            put_varint(buf, *p as u64);
        }
        if let Some(ua) = self.user_agent {
            put_str(buf, ua);
        }
        if let Some(referrer) = self.referrer {
            put_str(buf, referrer);
        }
        put_varint(buf, self.sub_ids.iter().count() as u64);
        for (k, v) in self.sub_ids.iter() {
            put_str(buf, k);
            put_str(buf, v);
        }
        let Ok(len) = u16::try_from(buf.len() - start - 2) else {
            buf.truncate(start);
            return false;
        };
        buf[start..start + 2].copy_from_slice(&len.to_le_bytes());
        true
    }
}

/// Why an event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the event is cut short")]
    Truncated,
    #[error("a number is malformed")]
    BadNumber,
    #[error("a text is not UTF-8")]
    BadText,
    #[error("the event has bytes left over")]
    TrailingBytes,
    #[error("unreadable JSON: {0}")]
    Json(String),
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (first, rest) = self.data.split_first().ok_or(DecodeError::Truncated)?;
        self.data = rest;
        Ok(*first)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::BadNumber)
    }

    fn int(&mut self) -> Result<i64, DecodeError> {
        i64::try_from(self.varint()?).map_err(|_| DecodeError::BadNumber)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.data.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(taken)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = usize::try_from(self.varint()?).map_err(|_| DecodeError::BadNumber)?;
        let bytes = self.bytes(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::BadText)
    }

    /// A count of items that each take at least one byte: never more than
    /// the bytes left, so a forged count cannot make a huge allocation.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n > self.data.len() as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }
}

fn decode_binary_event(data: &[u8]) -> Result<ClickEvent, DecodeError> {
    let mut r = Reader { data };
    let flags = r.byte()?;
    let bot = match flags & BOT_MASK {
        0 => None,
        1 => Some(BotReason::NoUserAgent),
        2 => Some(BotReason::UserAgent),
        _ => Some(BotReason::HeadRequest),
    };
    let link_id = r.int()?;
    let program_id = r.int()?;
    let at_ms = r.int()?;
    let click_id = r.string()?;
    let ip_hash = r.string()?;
    let partners = r.count()?;
    let partner_ids = (0..partners).map(|_| r.int()).collect::<Result<_, _>>()?;
    let user_agent = (flags & HAS_USER_AGENT != 0)
        .then(|| r.string())
        .transpose()?;
    let referrer = (flags & HAS_REFERRER != 0)
        .then(|| r.string())
        .transpose()?;
    let subs = r.count()?;
    let mut sub_ids = BTreeMap::new();
    for _ in 0..subs {
        let k = r.string()?;
        sub_ids.insert(k, r.string()?);
    }
    if !r.data.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(ClickEvent {
        click_id,
        link_id,
        program_id,
        partner_ids,
        at_ms,
        ip_hash,
        user_agent,
        referrer,
        sub_ids,
        bot,
    })
}

/// A stream entry id ("ms-seq") as its two numbers.
pub fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Reads an entry's events, in the format its `f` field names (`None`:
/// JSON lines). An unreadable event is skipped (and reported to `bad`), so
/// one bad event cannot block the stream; a cut-short tail is one bad event.
pub fn decode_entry(
    format: Option<&str>,
    data: &[u8],
    mut bad: impl FnMut(DecodeError),
) -> Vec<ClickEvent> {
    if format != Some(FORMAT_BINARY) {
        return decode_events(data, |e| bad(DecodeError::Json(e.to_string())));
    }
    let mut events = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some((len, body)) = rest.split_first_chunk::<2>() else {
            bad(DecodeError::Truncated);
            break;
        };
        let len = usize::from(u16::from_le_bytes(*len));
        if body.len() < len {
            bad(DecodeError::Truncated);
            break;
        }
        let (event, next) = body.split_at(len);
        match decode_binary_event(event) {
            Ok(e) => events.push(e),
            Err(e) => bad(e),
        }
        rest = next;
    }
    events
}

/// Cuts binary-encoded `data` into runs of at most `max` whole events:
/// (bytes, events) each. A torn tail (never written by the click log) ends
/// the last run as it is.
pub fn split_events(data: &[u8], max: usize) -> Vec<(&[u8], usize)> {
    let max = max.max(1);
    let mut runs = Vec::new();
    let (mut start, mut at, mut count) = (0, 0, 0);
    while at < data.len() {
        let Some(len) = data.get(at..at + 2) else {
            break;
        };
        at = (at + 2 + usize::from(u16::from_le_bytes([len[0], len[1]]))).min(data.len());
        count += 1;
        if count == max {
            runs.push((&data[start..at], count));
            (start, count) = (at, 0);
        }
    }
    if start < data.len() {
        runs.push((&data[start..], count.max(1)));
    }
    runs
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

    fn owned(e: &ClickEventRef<'_>) -> ClickEvent {
        ClickEvent {
            click_id: e.click_id.into(),
            link_id: e.link_id,
            program_id: e.program_id,
            partner_ids: e.partner_ids.to_vec(),
            at_ms: e.at_ms,
            ip_hash: e.ip_hash.into(),
            user_agent: e.user_agent.map(Into::into),
            referrer: e.referrer.map(Into::into),
            sub_ids: e
                .sub_ids
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            bot: e.bot,
        }
    }

    #[test]
    fn a_binary_entry_reads_back_event_by_event_and_skips_a_bad_one() {
        let subs = SubIds::parse(
            &[
                ("sub1".to_owned(), "ig".to_owned()),
                ("sub5".to_owned(), "é".to_owned()),
            ]
            .into(),
        )
        .unwrap();
        let event = ClickEventRef {
            click_id: "2bH7kQ9xPz1mV2bH7kQ9xPz1mV2bH7kQ9",
            link_id: 7,
            program_id: 3,
            partner_ids: &[1, 2_000_000_000_000],
            at_ms: 1_795_000_000_000,
            ip_hash: "00ff00ff00ff00ff00ff00ff00ff00ff",
            user_agent: Some("Mozilla/5.0 \"quoted\"\nnewline"),
            referrer: Some("https://t.co/x"),
            sub_ids: &subs,
            bot: Some(BotReason::HeadRequest),
        };
        let mut data = Vec::new();
        assert!(event.encode(&mut data));
        let json_len = serde_json::to_vec(&event).unwrap().len();
        assert!(
            data.len() * 10 < json_len * 7,
            "{} vs {json_len} bytes of JSON",
            data.len()
        );
        // A damaged event between two good ones: its length still frames it.
        data.extend_from_slice(&[3, 0, 0xff, 0xff, 0xff]);
        assert!(event.encode(&mut data));
        let mut errors = Vec::new();
        let events = decode_entry(Some(FORMAT_BINARY), &data, |e| errors.push(e));
        assert_eq!(events, vec![owned(&event), owned(&event)]);
        assert_eq!(errors, vec![DecodeError::Truncated]);
        // A cut-short tail is one bad event, not a panic.
        let mut errors = 0;
        let events = decode_entry(Some(FORMAT_BINARY), &data[..data.len() - 3], |_| {
            errors += 1
        });
        assert_eq!((events.len(), errors), (1, 2));
        // Entries without a format are the JSON lines of earlier versions.
        let json = serde_json::to_vec(&event).unwrap();
        assert_eq!(decode_entry(None, &json, |_| {}), vec![owned(&event)]);
    }

    proptest::proptest! {
        #[test]
        fn every_event_reads_back_as_written(
            click_id in "[0-9A-Za-z]{0,40}",
            link_id in 0i64..i64::MAX,
            program_id in 0i64..i64::MAX,
            partner_ids in proptest::collection::vec(0i64..i64::MAX, 0..5),
            at_ms in 0i64..i64::MAX,
            ip_hash in "[0-9a-f]{32}",
            user_agent in proptest::option::of("\\PC{0,200}"),
            referrer in proptest::option::of("\\PC{0,200}"),
            sub in proptest::option::of("[a-zA-Z0-9_ -]{1,100}"),
            bot in 0u8..4,
        ) {
            let subs: BTreeMap<String, String> =
                sub.into_iter().map(|v| ("sub2".to_owned(), v)).collect();
            let subs = SubIds::parse(&subs).unwrap();
            let bot = [None, Some(BotReason::NoUserAgent), Some(BotReason::UserAgent),
                Some(BotReason::HeadRequest)][usize::from(bot)];
            let event = ClickEventRef {
                click_id: &click_id, link_id, program_id, partner_ids: &partner_ids, at_ms,
                ip_hash: &ip_hash, user_agent: user_agent.as_deref(),
                referrer: referrer.as_deref(), sub_ids: &subs, bot,
            };
            let mut data = vec![];
            proptest::prop_assert!(event.encode(&mut data));
            let mut bad = 0;
            let back = decode_entry(Some(FORMAT_BINARY), &data, |_| bad += 1);
            proptest::prop_assert_eq!(bad, 0);
            proptest::prop_assert_eq!(back, vec![owned(&event)]);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = decode_entry(Some(FORMAT_BINARY), &data, |_| {});
        }
    }

    #[test]
    fn a_long_entry_splits_into_runs_of_whole_events() {
        let subs = SubIds::default();
        let mut data = Vec::new();
        for i in 0..7 {
            let click_id = format!("click-{i}");
            let e = ClickEventRef {
                click_id: &click_id,
                link_id: i,
                program_id: 1,
                partner_ids: &[],
                at_ms: 0,
                ip_hash: "",
                user_agent: None,
                referrer: None,
                sub_ids: &subs,
                bot: None,
            };
            assert!(e.encode(&mut data));
        }
        let runs = split_events(&data, 3);
        assert_eq!(runs.iter().map(|r| r.1).collect::<Vec<_>>(), vec![3, 3, 1]);
        let links: Vec<i64> = runs
            .iter()
            .flat_map(|(bytes, _)| decode_entry(Some(FORMAT_BINARY), bytes, |e| panic!("{e}")))
            .map(|e| e.link_id)
            .collect();
        assert_eq!(links, (0..7).collect::<Vec<_>>());
        assert_eq!(split_events(&data, 10).len(), 1);
        assert!(split_events(&[], 10).is_empty());
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
