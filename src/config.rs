//! Settings, read from the environment once at start-up. Every settings
//! struct of the process is declared here, as plain data; the modules that
//! use one take it from here, so this file depends on nothing above the
//! domain types.
//!
//! Every variable is checked here, so a bad value stops the start with one
//! line naming it, instead of failing later on the first request. Secrets are
//! held as `SecretString` and never printed.

use crate::domain::KeyRing;
use crate::domain::client_ip::TrustedProxies;
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: SecretString,
    /// A streaming replica for report and statement reads, if any.
    pub database_read: Option<ReadReplicaSettings>,
    /// One URL, or a comma-separated list of a cluster's nodes.
    pub redis_url: SecretString,
    pub redis_topology: RedisTopology,
    pub listen: SocketAddr,
    /// When set, `/metrics` is served here and not on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Base of issued links, without a trailing slash.
    pub public_url: Url,
    pub admin_token: SecretString,
    pub link_keys: KeyRing,
    /// Every Redis key mitra writes starts with this, so several deployments
    /// (or tests) can share one Redis.
    pub redis_prefix: String,
    pub log_format: LogFormat,
    /// Actix worker threads; `None` uses one per core.
    pub http_workers: Option<usize>,
    pub db_max_connections: u32,
    /// How long a request body may take to arrive (408 after).
    pub body_timeout: Duration,
    /// Master secret of the programs' statement keys; derived from the first
    /// link key when unset.
    pub statement_key: Option<SecretString>,
    pub webhooks: WebhookSettings,
    pub workers: WorkerSettings,
    pub clicks: ClickSettings,
    pub attribution: AttributionSettings,
    pub portal: PortalSettings,
}

/// The portal's sign-in and e-mail.
#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// `smtp://`, `smtps://` (TLS) or `smtp://...?tls=required` (STARTTLS);
    /// none: password-reset links are handed out by the admin API instead.
    pub smtp_url: Option<SecretString>,
    /// The From of portal e-mail.
    pub mail_from: String,
    /// Session cookies are `Secure` when the portal is served over https.
    pub secure_cookies: bool,
}

/// The redirect path and its click log.
#[derive(Debug, Clone)]
pub struct ClickSettings {
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: TrustedProxies,
    /// Key of the client IP hash; derived from the first link key when unset.
    pub ip_hash_key: Option<SecretString>,
    /// Links held in each instance's cache.
    pub link_cache_size: usize,
    pub log: ClickLogSettings,
}

/// The read replica and how stale it may be before reads leave it.
#[derive(Debug, Clone)]
pub struct ReadReplicaSettings {
    pub url: SecretString,
    /// Reads go to the primary while the replica lags more than this.
    pub max_lag: Duration,
}

/// Which kind of Redis `REDIS_URL` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (or a primary behind a fixed address).
    Single,
    /// A Redis Cluster, reached through any of the listed nodes.
    Cluster,
}

/// The click log's buffering between redirects and Redis.
#[derive(Debug, Clone)]
pub struct ClickLogSettings {
    /// Click events held in memory while Redis is away.
    pub capacity: usize,
    /// How long click events gather before they are written to Redis.
    pub flush_interval: Duration,
    /// Streams the click log is sharded over (each on its own cluster slot).
    pub shards: usize,
    /// Replicas each write waits for (WAIT) before it counts as written; 0
    /// trusts the primary's answer.
    pub replicas: u32,
}

/// The attribution worker.
#[derive(Debug, Clone)]
pub struct AttributionSettings {
    /// Conversions claimed per transaction.
    pub batch: i64,
    /// Attribution loops per worker process.
    pub concurrency: usize,
    pub fraud: FraudSettings,
}

/// When a conversion is held for a person's review.
#[derive(Debug, Clone)]
pub struct FraudSettings {
    /// A conversion this soon after its click is suspicious (bots, cookie stuffing).
    pub min_click_seconds: i64,
    /// One click id converting more often than this is suspicious.
    pub max_orders_per_click: i64,
    /// A sale above this many times the program's 30-day average is suspicious...
    pub amount_factor: i64,
    /// ...once the program has at least this many attributed sales to average.
    pub amount_min_samples: i64,
}

impl Default for FraudSettings {
    fn default() -> Self {
        Self {
            min_click_seconds: 3,
            max_orders_per_click: 3,
            amount_factor: 10,
            amount_min_samples: 20,
        }
    }
}

/// Outgoing webhooks and postbacks.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Targets on loopback, private and link-local addresses are allowed.
    pub allow_private: bool,
    /// The wait after a delivery's first failed attempt; it doubles per attempt.
    pub retry_base: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// How long an outgoing webhook event, its deliveries and their attempts
    /// are kept (counted from when each was made; none pending).
    pub retention: chrono::Duration,
}

/// Pacing of the background workers.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long an idle worker waits before looking for work again.
    pub idle_poll: Duration,
    /// How long a worker that emptied its queue with a part batch waits
    /// for more to gather (attribution: fewer, fuller transactions).
    pub linger: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A variable that is missing or malformed. The message names the variable
/// and what it should look like, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        let required = |var: &'static str, hint: &str| {
            get(var).ok_or_else(|| ConfigError {
                var,
                problem: format!("is not set ({hint})"),
            })
        };
        let bad = |var: &'static str, problem: String| ConfigError { var, problem };

        let database_url = required("DATABASE_URL", "e.g. postgres://mitra@127.0.0.1/mitra")?;
        check_url("DATABASE_URL", &database_url, &["postgres", "postgresql"])?;
        let database_read = match get("MITRA_DATABASE_READ_URL") {
            None => None,
            Some(url) => {
                check_url("MITRA_DATABASE_READ_URL", &url, &["postgres", "postgresql"])?;
                let max_lag_ms = match get("MITRA_DATABASE_READ_MAX_LAG_MS") {
                    None => 5_000,
                    Some(v) => {
                        parse_in_range("MITRA_DATABASE_READ_MAX_LAG_MS", &v, 100, 3_600_000)?
                    }
                };
                Some(ReadReplicaSettings {
                    url: url.into(),
                    max_lag: Duration::from_millis(max_lag_ms),
                })
            }
        };
        let redis_url = required("REDIS_URL", "e.g. redis://127.0.0.1:6379")?;
        let redis_nodes: Vec<&str> = redis_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let redis_topology = match get("MITRA_REDIS_CLUSTER").as_deref().map(str::trim) {
            None if redis_nodes.len() > 1 => RedisTopology::Cluster,
            None | Some("false") => RedisTopology::Single,
            Some("true") => RedisTopology::Cluster,
            Some(_) => return Err(bad("MITRA_REDIS_CLUSTER", "must be true or false".into())),
        };
        match redis_topology {
            RedisTopology::Single if redis_nodes.len() > 1 => {
                return Err(bad(
                    "REDIS_URL",
                    "lists several nodes, but MITRA_REDIS_CLUSTER is false".into(),
                ));
            }
            RedisTopology::Single => check_url(
                "REDIS_URL",
                &redis_url,
                &["redis", "rediss", "redis+unix", "unix"],
            )?,
            RedisTopology::Cluster => {
                if redis_nodes.is_empty() {
                    return Err(bad("REDIS_URL", "names no Redis Cluster node".into()));
                }
                for node in &redis_nodes {
                    check_url("REDIS_URL", node, &["redis", "rediss"])?;
                }
            }
        }

        let listen_raw = get("MITRA_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_raw.trim().parse().map_err(|_| {
            bad(
                "MITRA_LISTEN",
                "must be an address and port such as 127.0.0.1:8080".into(),
            )
        })?;

        let metrics_listen = match get("MITRA_METRICS_LISTEN") {
            None => None,
            Some(raw) => Some(raw.trim().parse::<SocketAddr>().map_err(|_| {
                bad(
                    "MITRA_METRICS_LISTEN",
                    "must be an address and port such as 0.0.0.0:9102".into(),
                )
            })?),
        };
        let public_raw = get("MITRA_PUBLIC_URL").unwrap_or_else(|| format!("http://{listen}"));
        let public_url = Url::parse(public_raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .filter(|u| u.query().is_none() && u.fragment().is_none())
            .ok_or_else(|| {
                bad(
                    "MITRA_PUBLIC_URL",
                    "must be an http(s) base URL such as https://go.example.com".into(),
                )
            })?;

        let admin_token = required("MITRA_ADMIN_TOKEN", "a random string for the admin API")?;
        if admin_token.len() < MIN_ADMIN_TOKEN_LEN {
            return Err(bad(
                "MITRA_ADMIN_TOKEN",
                format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters"),
            ));
        }

        let link_keys_raw = SecretString::from(required(
            "MITRA_LINK_KEYS",
            "comma-separated id:secret pairs; `mitra gen-key` prints one",
        )?);
        let link_keys =
            KeyRing::parse(&link_keys_raw).map_err(|problem| bad("MITRA_LINK_KEYS", problem))?;

        let redis_prefix = get("MITRA_REDIS_PREFIX").unwrap_or_else(|| "mitra:".into());
        if redis_prefix.len() > 64 || redis_prefix.chars().any(|c| c.is_whitespace()) {
            return Err(bad(
                "MITRA_REDIS_PREFIX",
                "must be at most 64 characters without spaces".into(),
            ));
        }

        let log_format = match get("MITRA_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(bad("MITRA_LOG_FORMAT", "must be text or json".into())),
        };

        let http_workers = match get("MITRA_HTTP_WORKERS") {
            None => None,
            Some(v) => Some(parse_in_range("MITRA_HTTP_WORKERS", &v, 1, 256)? as usize),
        };
        let db_max_connections = match get("MITRA_DB_MAX_CONNECTIONS") {
            None => 20,
            Some(v) => parse_in_range("MITRA_DB_MAX_CONNECTIONS", &v, 2, 1000)? as u32,
        };
        let body_timeout_ms = match get("MITRA_BODY_TIMEOUT_MS") {
            None => 10_000,
            Some(v) => parse_in_range("MITRA_BODY_TIMEOUT_MS", &v, 100, 600_000)?,
        };
        let idle_poll_ms = match get("MITRA_WORKER_POLL_MS") {
            None => 500,
            Some(v) => parse_in_range("MITRA_WORKER_POLL_MS", &v, 10, 60_000)?,
        };
        let linger_ms = match get("MITRA_WORKER_LINGER_MS") {
            None => 50,
            Some(v) => parse_in_range("MITRA_WORKER_LINGER_MS", &v, 0, 10_000)?,
        };

        let trusted_proxies =
            TrustedProxies::parse(&get("MITRA_TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|problem| bad("MITRA_TRUSTED_PROXIES", problem))?;
        let ip_hash_key = match get("MITRA_IP_HASH_KEY") {
            Some(k) if k.len() < 16 => {
                return Err(bad(
                    "MITRA_IP_HASH_KEY",
                    "must be at least 16 characters".into(),
                ));
            }
            other => other.map(SecretString::from),
        };
        let statement_key = match get("MITRA_STATEMENT_KEY") {
            Some(k) if k.len() < 32 => {
                return Err(bad(
                    "MITRA_STATEMENT_KEY",
                    "must be at least 32 characters".into(),
                ));
            }
            other => other.map(SecretString::from),
        };
        let allow_private = match get("MITRA_WEBHOOK_ALLOW_PRIVATE").as_deref().map(str::trim) {
            None | Some("0" | "false" | "no") => false,
            Some("1" | "true" | "yes") => true,
            Some(_) => {
                return Err(bad(
                    "MITRA_WEBHOOK_ALLOW_PRIVATE",
                    "must be true or false".into(),
                ));
            }
        };
        let webhooks = WebhookSettings {
            allow_private,
            retry_base: Duration::from_millis(match get("MITRA_WEBHOOK_RETRY_BASE_MS") {
                None => 30_000,
                Some(v) => parse_in_range("MITRA_WEBHOOK_RETRY_BASE_MS", &v, 10, 3_600_000)?,
            }),
            timeout: Duration::from_millis(match get("MITRA_WEBHOOK_TIMEOUT_MS") {
                None => 10_000,
                Some(v) => parse_in_range("MITRA_WEBHOOK_TIMEOUT_MS", &v, 100, 60_000)?,
            }),
            retention: chrono::Duration::days(match get("MITRA_WEBHOOK_RETENTION_DAYS") {
                None => 30,
                Some(v) => parse_in_range("MITRA_WEBHOOK_RETENTION_DAYS", &v, 1, 3650)? as i64,
            }),
        };
        let link_cache_size = match get("MITRA_LINK_CACHE_SIZE") {
            None => 100_000,
            Some(v) => parse_in_range("MITRA_LINK_CACHE_SIZE", &v, 16, 100_000_000)? as usize,
        };
        let flush_ms = match get("MITRA_CLICK_FLUSH_MS") {
            None => 2,
            Some(v) => parse_in_range("MITRA_CLICK_FLUSH_MS", &v, 1, 1000)?,
        };
        let log_capacity = match get("MITRA_CLICK_LOG_CAPACITY") {
            None => 200_000,
            Some(v) => parse_in_range("MITRA_CLICK_LOG_CAPACITY", &v, 1, 100_000_000)? as usize,
        };

        let click_shards = match get("MITRA_CLICK_SHARDS") {
            None => 6,
            Some(v) => parse_in_range("MITRA_CLICK_SHARDS", &v, 1, 256)? as usize,
        };
        let click_replicas = match get("MITRA_CLICK_LOG_REPLICAS") {
            None => 0,
            Some(v) => parse_in_range("MITRA_CLICK_LOG_REPLICAS", &v, 0, 16)? as u32,
        };

        let number =
            |var: &'static str, default: i64, min: u64, max: u64| -> Result<i64, ConfigError> {
                match get(var) {
                    None => Ok(default),
                    Some(v) => parse_in_range(var, &v, min, max).map(|n| n as i64),
                }
            };
        let attribution = AttributionSettings {
            batch: number("MITRA_ATTRIBUTION_BATCH", 500, 1, 10_000)?,
            concurrency: number("MITRA_ATTRIBUTION_CONCURRENCY", 2, 1, 64)? as usize,
            fraud: FraudSettings {
                min_click_seconds: number("MITRA_FRAUD_MIN_CLICK_SECONDS", 3, 0, 86_400)?,
                max_orders_per_click: number("MITRA_FRAUD_MAX_ORDERS_PER_CLICK", 3, 1, 1_000_000)?,
                amount_factor: number("MITRA_FRAUD_AMOUNT_FACTOR", 10, 2, 1_000_000)?,
                amount_min_samples: number("MITRA_FRAUD_AMOUNT_MIN_SAMPLES", 20, 1, 1_000_000)?,
            },
        };

        let smtp_url = match get("MITRA_SMTP_URL") {
            None => None,
            Some(raw) => {
                check_url("MITRA_SMTP_URL", &raw, &["smtp", "smtps"])?;
                Some(SecretString::from(raw.trim().to_owned()))
            }
        };
        let mail_from = get("MITRA_MAIL_FROM")
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| {
                format!(
                    "mitra <no-reply@{}>",
                    public_url.host_str().unwrap_or("localhost")
                )
            });
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(bad(
                "MITRA_MAIL_FROM",
                "must be an address such as mitra <no-reply@example.com>".into(),
            ));
        }
        let portal = PortalSettings {
            smtp_url,
            mail_from,
            secure_cookies: public_url.scheme() == "https",
        };

        Ok(Settings {
            database_url: database_url.into(),
            database_read,
            redis_url: redis_url.into(),
            redis_topology,
            listen,
            metrics_listen,
            public_url,
            admin_token: admin_token.into(),
            link_keys,
            redis_prefix,
            log_format,
            http_workers,
            db_max_connections,
            body_timeout: Duration::from_millis(body_timeout_ms),
            statement_key,
            webhooks,
            workers: WorkerSettings {
                idle_poll: Duration::from_millis(idle_poll_ms),
                linger: Duration::from_millis(linger_ms),
            },
            clicks: ClickSettings {
                trusted_proxies,
                ip_hash_key,
                link_cache_size,
                log: ClickLogSettings {
                    capacity: log_capacity,
                    flush_interval: Duration::from_millis(flush_ms),
                    shards: click_shards,
                    replicas: click_replicas,
                },
            },
            attribution,
            portal,
        })
    }

    /// The public base URL as text, without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    pub fn expose_database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

fn check_url(var: &'static str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    match Url::parse(value.trim()) {
        Ok(url) if schemes.contains(&url.scheme()) => Ok(()),
        _ => Err(ConfigError {
            var,
            problem: format!("must be a URL with scheme {}", schemes.join(" or ")),
        }),
    }
}

fn parse_in_range(var: &'static str, value: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| ConfigError {
            var,
            problem: format!("must be a whole number from {min} to {max}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "1:0123456789abcdefghijklmnop";

    fn env(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut map: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:hunter2@127.0.0.1/mitra"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("MITRA_ADMIN_TOKEN", "admin-token-0123456789"),
            ("MITRA_LINK_KEYS", KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in pairs {
            if v.is_empty() {
                map.remove(*k);
            } else {
                map.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_optional_variables_are_absent() {
        let s = env(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_base(), "http://127.0.0.1:8080");
        assert_eq!(s.redis_prefix, "mitra:");
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn each_missing_or_malformed_variable_is_named() {
        let cases: &[(&str, &str)] = &[
            ("DATABASE_URL", ""),
            ("DATABASE_URL", "mysql://x/y"),
            ("MITRA_DATABASE_READ_URL", "replica:5432"),
            ("REDIS_URL", ""),
            ("REDIS_URL", "http://x"),
            ("REDIS_URL", "redis://a:6379,http://b:6379"),
            ("MITRA_REDIS_CLUSTER", "yes"),
            ("MITRA_CLICK_SHARDS", "0"),
            ("MITRA_CLICK_LOG_REPLICAS", "17"),
            ("MITRA_LISTEN", "localhost"),
            ("MITRA_METRICS_LISTEN", "9102"),
            ("MITRA_PUBLIC_URL", "go.example.com"),
            ("MITRA_PUBLIC_URL", "ftp://go.example.com"),
            ("MITRA_ADMIN_TOKEN", ""),
            ("MITRA_ADMIN_TOKEN", "short"),
            ("MITRA_LINK_KEYS", ""),
            ("MITRA_LINK_KEYS", "1:tooshort"),
            ("MITRA_LOG_FORMAT", "xml"),
            ("MITRA_HTTP_WORKERS", "0"),
            ("MITRA_DB_MAX_CONNECTIONS", "many"),
            ("MITRA_WORKER_POLL_MS", "1"),
            ("MITRA_WORKER_LINGER_MS", "10001"),
            ("MITRA_BODY_TIMEOUT_MS", "5"),
            ("MITRA_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("MITRA_IP_HASH_KEY", "short"),
            ("MITRA_STATEMENT_KEY", "not-thirty-two-characters"),
            ("MITRA_WEBHOOK_ALLOW_PRIVATE", "maybe"),
            ("MITRA_WEBHOOK_RETRY_BASE_MS", "1"),
            ("MITRA_WEBHOOK_TIMEOUT_MS", "0"),
            ("MITRA_WEBHOOK_RETENTION_DAYS", "0"),
            ("MITRA_LINK_CACHE_SIZE", "1"),
            ("MITRA_CLICK_FLUSH_MS", "0"),
            ("MITRA_CLICK_LOG_CAPACITY", "0"),
            ("MITRA_ATTRIBUTION_BATCH", "0"),
            ("MITRA_FRAUD_MIN_CLICK_SECONDS", "-1"),
            ("MITRA_FRAUD_AMOUNT_FACTOR", "1"),
            ("MITRA_SMTP_URL", "mail.example.com"),
            ("MITRA_MAIL_FROM", "not an address"),
        ];
        for (var, value) in cases {
            let err = env(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, *var, "{var}={value}");
        }
    }

    #[test]
    fn a_list_of_redis_nodes_means_a_cluster() {
        let one = env(&[]).unwrap();
        assert_eq!(one.redis_topology, RedisTopology::Single);
        let list = env(&[("REDIS_URL", "redis://a:7000, redis://b:7001,redis://c:7002")]).unwrap();
        assert_eq!(list.redis_topology, RedisTopology::Cluster);
        let seed = env(&[("MITRA_REDIS_CLUSTER", "true")]).unwrap();
        assert_eq!(seed.redis_topology, RedisTopology::Cluster);
        let err = env(&[
            ("REDIS_URL", "redis://a:7000,redis://b:7001"),
            ("MITRA_REDIS_CLUSTER", "false"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
        assert_eq!(one.clicks.log.shards, 6);
        assert!(one.database_read.is_none(), "reads go to the primary");
        let read = env(&[("MITRA_DATABASE_READ_URL", "postgres://u:pw@replica/mitra")])
            .unwrap()
            .database_read
            .unwrap();
        assert_eq!(read.max_lag, Duration::from_secs(5));
        assert_eq!(one.clicks.log.replicas, 0);
    }

    #[test]
    fn errors_and_debug_output_never_show_secrets() {
        let err = env(&[("MITRA_LINK_KEYS", "1:tooshort")]).unwrap_err();
        assert!(!err.to_string().contains("tooshort"));
        let debug = format!(
            "{:?}",
            env(&[("MITRA_STATEMENT_KEY", "statement-master-0123456789abcdef")]).unwrap()
        );
        for secret in [
            "statement-master-0123456789abcdef",
            "hunter2",
            "admin-token-0123456789",
            "0123456789abcdefghijklmnop",
        ] {
            assert!(!debug.contains(secret), "Debug shows {secret}");
        }
    }
}
