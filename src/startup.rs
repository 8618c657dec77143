//! Building and running the application: the same path for `mitra serve`
//! and for the tests, which bind port 0.

use crate::clicks::client_ip::IpHasher;
use crate::clicks::log::{self as click_log, ClickLog};
use crate::config::Settings;
use crate::conversions::webhook_context::WebhookContexts;
use crate::conversions::writer::ConversionWriter;
use crate::error::ensure_problem_json;
use crate::links::{self, cache::LinkCache};
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;
use crate::state::AppState;
use crate::workers::WorkerRoles;
use crate::{db, middleware, routes};
use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long in-flight requests get to finish after SIGTERM.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// What a process runs: the API and/or some worker roles. A process without
/// the API still serves /healthz, /readyz and /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub workers: WorkerRoles,
}

impl Roles {
    pub const ALL: Roles = Roles {
        api: true,
        workers: WorkerRoles::ALL,
    };
    pub const API: Roles = Roles {
        api: true,
        workers: WorkerRoles::NONE,
    };
    pub const WORKER: Roles = Roles {
        api: false,
        workers: WorkerRoles::ALL,
    };
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    roles: Roles,
    /// Stops the click log's flusher once the HTTP server has drained.
    click_log_stop: CancellationToken,
    click_log_flusher: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connects (lazily) to Postgres and Redis, binds the listener and
    /// prepares the HTTP server. Migrations are the caller's choice: `serve`
    /// applies them first.
    pub async fn build(settings: Settings, roles: Roles) -> anyhow::Result<Self> {
        let db = db::pool(&settings)?;
        let redis = RedisClient::new(&settings.redis_url, &settings.redis_prefix)?;
        let metrics = Arc::new(Metrics::new());
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let http_workers = settings.http_workers;
        let link_cache =
            LinkCache::new(db.clone(), metrics.clone(), settings.clicks.link_cache_size);
        let click_log_stop = CancellationToken::new();
        let (click_log, click_log_flusher) = ClickLog::start(
            redis.clone(),
            metrics.clone(),
            click_log::Settings {
                capacity: settings.clicks.log_capacity,
                flush_interval: settings.clicks.flush_interval,
            },
            click_log_stop.clone(),
        );
        let ip_hasher = match &settings.clicks.ip_hash_key {
            Some(key) => IpHasher::new(key.expose_secret().as_bytes()),
            // Derived, so a deployment that sets no key still never stores raw addresses.
            None => IpHasher::new(
                &settings
                    .link_keys
                    .signer()
                    .tag(b"mitra/ip-hash-key/v1:", b""),
            ),
        };
        let state = web::Data::new(AppState {
            db: db.clone(),
            redis,
            settings,
            metrics,
            link_cache,
            click_log,
            ip_hasher,
            webhook_contexts: WebhookContexts::new(),
            conversion_writer: ConversionWriter::start(db.clone()),
        });
        let server = {
            let state = state.clone();
            let mut server = HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .wrap(ErrorHandlers::new().default_handler(ensure_problem_json))
                    .wrap(from_fn(middleware::record_metrics))
                    .wrap(from_fn(middleware::request_id))
                    .configure(routes::ops)
                    .configure(|cfg| {
                        if roles.api {
                            routes::api(cfg)
                        }
                    })
                    .default_service(web::to(routes::not_found))
            })
            .listen(listener)?
            .disable_signals()
            .shutdown_timeout(HTTP_SHUTDOWN_GRACE.as_secs());
            if let Some(n) = http_workers {
                server = server.workers(n);
            }
            server.run()
        };
        Ok(Self {
            port,
            server,
            state,
            roles,
            click_log_stop,
            click_log_flusher,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` fires, then stops accepting, lets in-flight
    /// requests and worker batches finish, and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move { self.server.await.map_err(anyhow::Error::from) });
        crate::workers::spawn_all(
            &mut tasks,
            &self.state,
            self.roles.workers,
            shutdown.clone(),
        );
        if self.roles.api {
            let cache = self.state.link_cache.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move {
                links::cache::run_invalidation(cache, stop).await;
                Ok(())
            });
        }
        shutdown.cancelled().await;
        tracing::info!("shutting down");
        handle.stop(true).await;
        // Every redirect has been answered: write the clicks still queued.
        self.click_log_stop.cancel();
        let _ = self.click_log_flusher.await;
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(anyhow::anyhow!("a task panicked: {e}")),
            }
        }
        self.state.db.close().await;
        result
    }
}
