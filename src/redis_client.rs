//! Redis behind one small type: a single server or a Redis Cluster, a
//! self-healing connection, short timeouts, and every key under the
//! deployment's prefix.
//!
//! Callers never see which of the two they talk to: `conn()` hands out a
//! `RedisConn` that runs commands and pipelines on either (the cluster
//! client routes each by its key's slot and follows MOVED and ASK while
//! slots move). What callers must know about a cluster is what Redis itself
//! demands: a pipeline or a multi-key command touches one slot only. Keys
//! that must share a slot carry the same hash tag (`{...}`); keys meant to
//! spread over the cluster get tags on distinct slots (`spread_tags`).

use crate::config::RedisTopology as Topology;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct RedisClient {
    conn: RedisConn,
    prefix: Arc<str>,
}

/// A multiplexed connection to a single Redis or to a Redis Cluster; cheap
/// to clone, and usable from many tasks at once.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// How long one Redis call may take before the caller treats Redis as down.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long connecting to one Redis node may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(500);

impl RedisClient {
    /// Creates the client without connecting: mitra starts, and redirects,
    /// while Redis is down, and connects once it answers. A cluster's slot
    /// map is read on the first call, and again whenever a node answers
    /// MOVED or goes away.
    pub fn new(url: &SecretString, topology: Topology, prefix: &str) -> anyhow::Result<Self> {
        let conn = match topology {
            Topology::Single => RedisConn::Single(single(url.expose_secret().trim())?),
            Topology::Cluster => RedisConn::Cluster(cluster(url.expose_secret())?),
        };
        Ok(Self {
            conn,
            prefix: prefix.into(),
        })
    }

    /// The full key for `name` under this deployment's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn topology(&self) -> Topology {
        match self.conn {
            RedisConn::Single(_) => Topology::Single,
            RedisConn::Cluster(_) => Topology::Cluster,
        }
    }

    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// PING, bounded by the response timeout. On a cluster every primary
    /// must answer: a shard whose primary is gone (and not yet replaced by
    /// its replica) cannot take clicks.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn();
        redis::cmd("PING").query_async::<()>(&mut conn).await
    }
}

fn single(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url)
        .map_err(|e| anyhow::anyhow!("REDIS_URL is not usable: {:?}", e.kind()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| anyhow::anyhow!("cannot set up the Redis client: {:?}", e.kind()))
}

fn cluster(urls: &str) -> anyhow::Result<ClusterConnection> {
    let nodes: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let client = ClusterClientBuilder::new(nodes)
        .connection_timeout(CONNECTION_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        // Redirections and reconnections after a failover or a slot move
        // get a little more than one call's time, so a call that follows
        // one MOVED is not cut short; still bounded, so nobody hangs.
        .overall_response_timeout(Some(RESPONSE_TIMEOUT * 2))
        .retries(4)
        .min_retry_wait(20)
        .max_retry_wait(250)
        .build()
        .map_err(|e| anyhow::anyhow!("REDIS_URL is not usable: {:?}", e.kind()))?;
    Ok(client.get_pending_async_connection_with_config(redis::cluster::ClusterConfig::new()))
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// Redis Cluster's slot count.
pub const SLOTS: u16 = 16384;

/// The cluster slot of `key`: CRC16 (XMODEM) of its hash tag, the part
/// between the first `{` and the next `}` when that is not empty, else of
/// the whole key.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in data {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// `n` hash tags whose slots lie in `n` equal, consecutive ranges of the
/// slot space, the i-th tag in the i-th range. `redis-cli --cluster create`
/// gives each primary one consecutive range, so n keys tagged this way land
/// on n distinct slots and, when n is a multiple of the primaries, spread
/// evenly over them. The same `n` gives the same tags in every process.
pub fn spread_tags(n: usize) -> Vec<String> {
    let n = n.clamp(1, usize::from(SLOTS));
    (0..n)
        .map(|i| {
            let low = i * usize::from(SLOTS) / n;
            let high = (i + 1) * usize::from(SLOTS) / n;
            (0u32..)
                .map(|k| format!("{i}.{k}"))
                .find(|tag| (low..high).contains(&usize::from(crc16(tag.as_bytes()) % SLOTS)))
                .expect("some tag falls in every range")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_what_redis_cluster_computes() {
        // Values from CLUSTER KEYSLOT on a real cluster.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            crc16(b"foo{}{bar}") % SLOTS,
            "an empty tag hashes the whole key"
        );
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn spread_tags_fall_one_per_range_on_distinct_slots() {
        for n in [1, 2, 3, 4, 6, 16, 100] {
            let tags = spread_tags(n);
            assert_eq!(tags.len(), n);
            for (i, tag) in tags.iter().enumerate() {
                let slot = usize::from(key_slot(format!("x:{{{tag}}}").as_bytes()));
                assert!(
                    slot >= i * 16384 / n && slot < (i + 1) * 16384 / n,
                    "{n} {i}"
                );
            }
        }
        assert_eq!(spread_tags(3), spread_tags(3), "the same in every process");
    }
}
