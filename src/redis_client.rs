//! Redis behind one small type: a self-healing connection, short timeouts,
//! and every key under the deployment's prefix.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct RedisClient {
    conn: ConnectionManager,
    prefix: Arc<str>,
}

/// How long one Redis call may take before the caller treats Redis as down.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);

impl RedisClient {
    /// Creates the client without connecting: mitra starts, and redirects,
    /// while Redis is down, and connects once it answers.
    pub fn new(url: &SecretString, prefix: &str) -> anyhow::Result<Self> {
        Self::with_response_timeout(url, prefix, RESPONSE_TIMEOUT)
    }

    /// A client for blocking reads (XREADGROUP BLOCK), which must not share
    /// a multiplexed connection with quick commands, and need a longer timeout.
    pub fn with_response_timeout(
        url: &SecretString,
        prefix: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| anyhow::anyhow!("REDIS_URL is not usable: {:?}", e.kind()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("cannot set up the Redis client: {:?}", e.kind()))?;
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

    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// PING, bounded by the response timeout.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn();
        redis::cmd("PING").query_async::<()>(&mut conn).await
    }
}
