//! What every request handler and worker shares.

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use sqlx::PgPool;
use std::sync::Arc;

pub struct AppState {
    pub db: PgPool,
    pub redis: RedisClient,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
}
