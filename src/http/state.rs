//! What every request handler shares. Workers do not see it: startup wires
//! each of them with the back ends it needs.

use crate::background::wakeups::Poke;
use crate::clicks::log::ClickLog;
use crate::config::Settings;
use crate::conversions::webhook_context::WebhookContexts;
use crate::conversions::writer::ConversionWriter;
use crate::db::ReadPool;
use crate::domain::client_ip::IpHasher;
use crate::http::redirect::RedirectCounters;
use crate::links::cache::LinkCache;
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use crate::statements::keys::StatementKeys;
use sqlx::PgPool;
use std::sync::Arc;

pub struct AppState {
    pub db: PgPool,
    /// Reports and statements: the read replica while it is fresh enough.
    pub db_read: ReadPool,
    pub redis: RedisClient,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub redirect_counters: RedirectCounters,
    pub link_cache: LinkCache,
    pub click_log: ClickLog,
    pub ip_hasher: IpHasher,
    pub webhook_contexts: WebhookContexts,
    pub conversion_writer: ConversionWriter,
    pub statement_keys: StatementKeys,
    /// Pokes the workers after a change (`middleware::wake_workers`).
    pub wake_workers: Poke,
}
