//! Limits on sign-in (and password-reset) attempts: per account and per
//! client address, per minute.
//!
//! Counted in Redis, so every API process shares one count: an attacker who
//! spreads guesses over N processes behind a load balancer gets no more than
//! one process would allow. Redis keeps a counter per minute for each key
//! (the account's e-mail and the address, both hashed: no address or e-mail
//! is stored), and an attempt is allowed while the last 60 s hold no more
//! than the limit, the previous minute's count weighted by how much of it
//! is still within them (a sliding window, without a timestamp per attempt).
//! Refused attempts count too: guessing on keeps an account closed.
//!
//! Each process also keeps its own count (GCRA, in memory). It applies when
//! Redis does not answer, so an outage of Redis never opens sign-in to
//! unlimited guessing; while Redis answers it changes nothing, because a
//! process never sees more attempts than all of them together.

use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Sign-in attempts allowed per account, and per client address, per minute.
pub const ATTEMPTS_PER_ACCOUNT: u32 = 5;
pub const ATTEMPTS_PER_ADDRESS: u32 = 30;

const WINDOW_SECONDS: u64 = 60;

pub struct Limits {
    shared: Option<Shared>,
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    calls: AtomicU64,
}

struct Shared {
    redis: RedisClient,
    metrics: Arc<Metrics>,
}

impl Limits {
    /// The counts of this process alone, which `shared` keeps beside Redis's.
    fn local() -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            shared: None,
            per_account: RateLimiter::keyed(per_minute(ATTEMPTS_PER_ACCOUNT)),
            per_address: RateLimiter::keyed(per_minute(ATTEMPTS_PER_ADDRESS)),
            calls: AtomicU64::new(0),
        }
    }

    /// Limits every process sharing `redis` counts together.
    pub fn shared(redis: RedisClient, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Some(Shared { redis, metrics }),
            ..Self::local()
        }
    }

    /// Whether one more attempt for `email` from `address` may go ahead;
    /// counts it against both.
    pub async fn allow_sign_in(&self, email: &str, address: Option<IpAddr>) -> bool {
        let email = email.trim().to_lowercase();
        let here = self.allow_here(&email, address);
        let Some(shared) = &self.shared else {
            return here;
        };
        let account_key = format!("a:{email}");
        let account = shared.allow(&account_key, ATTEMPTS_PER_ACCOUNT);
        let address = async {
            match address {
                Some(a) => shared.allow(&format!("ip:{a}"), ATTEMPTS_PER_ADDRESS).await,
                None => Ok(true),
            }
        };
        match futures::future::try_join(account, address).await {
            Ok((account, address)) => account && address,
            Err(e) => {
                shared.metrics.backend_error("redis");
                tracing::warn!(error = %e, "sign-in limits counted in this process alone: Redis did not answer");
                here
            }
        }
    }

    fn allow_here(&self, email: &str, address: Option<IpAddr>) -> bool {
        if self.calls.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            // Forget keys whose limits have fully recovered, so memory stays bounded.
            self.per_account.retain_recent();
            self.per_address.retain_recent();
        }
        let account = self.per_account.check_key(&email.to_owned()).is_ok();
        let address = address.is_none_or(|a| self.per_address.check_key(&a).is_ok());
        account && address
    }
}

impl Shared {
    /// Counts one attempt under `what` and answers whether the last minute
    /// holds at most `limit`.
    async fn allow(&self, what: &str, limit: u32) -> redis::RedisResult<bool> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let window = now.as_secs() / WINDOW_SECONDS;
        let into = (now.as_millis() % (WINDOW_SECONDS as u128 * 1000)) as f64
            / (WINDOW_SECONDS as f64 * 1000.0);
        // Both minutes of a key share a hash tag: one slot on a cluster.
        let tag = URL_SAFE_NO_PAD.encode(&Sha256::digest(what.as_bytes())[..12]);
        let key = |w: u64| self.redis.key(&format!("portal:sign-in:{{{tag}}}:{w}"));
        let (current, previous): (u64, Option<u64>) = redis::pipe()
            .incr(key(window), 1)
            .expire(key(window), (2 * WINDOW_SECONDS) as i64)
            .ignore()
            .get(key(window.saturating_sub(1)))
            .query_async(&mut self.redis.conn())
            .await?;
        let seen = current as f64 + previous.unwrap_or(0) as f64 * (1.0 - into);
        Ok(seen <= limit as f64)
    }
}
