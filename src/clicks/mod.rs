//! Clicks: ids, bot detection, the Redis click log and the daily roll-ups.

pub mod bots;
pub mod click_id;
pub mod client_ip;
pub mod log;
pub mod rollup;

use bots::BotReason;
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

/// Longest user agent or referrer kept in an event; the rest is cut.
pub const MAX_HEADER_LEN: usize = 512;

/// A header value cut to `MAX_HEADER_LEN` bytes on a character boundary.
pub fn truncate_header(value: &str) -> String {
    if value.len() <= MAX_HEADER_LEN {
        return value.to_owned();
    }
    let mut end = MAX_HEADER_LEN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}
