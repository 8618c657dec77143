//! Building and running the application: the same path for `mitra serve`
//! and for the tests, which bind port 0.
//!
//! `build` connects (lazily), binds the listener and wires each part with
//! what it needs: the HTTP handlers share `AppState`; each worker gets its
//! own back ends from `Workers`. `run_until_stopped` supervises every
//! long-running task as one set (see `background::Supervised`).

use crate::attribution::Attributor;
use crate::background::{Pauses, Step, Supervised, run_loop, wakeups};
use crate::claims::overdue::Overdue;
use crate::clicks::consumer::{ClickConsumer, RECLAIM_IDLE};
use crate::clicks::log::{ClickLog, Flusher};
use crate::commissions::lifecycle::Lifecycle;
use crate::config::Settings;
use crate::conversions::webhook_context::WebhookContexts;
use crate::conversions::writer::{ConversionWriter, WriterTask};
use crate::domain::client_ip::IpHasher;
use crate::http::error::ensure_problem_json;
use crate::http::redirect::RedirectCounters;
use crate::http::state::AppState;
use crate::http::{self, middleware};
use crate::links::cache::{self, LinkCache};
use crate::metrics::Metrics;
use crate::outbox::delivery::Deliverer;
use crate::outbox::retention::Retention;
use crate::redis_client::RedisClient;
use crate::statements::chain::Chainer;
use crate::statements::keys::StatementKeys;
use crate::{db, health, portal};
use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long in-flight requests get to finish after SIGTERM.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// The worker roles one process can host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerRoles {
    pub clicks: bool,
    pub attribution: bool,
    pub lifecycle: bool,
    /// The chainer: links ledger entries into their programs' chains.
    pub chain: bool,
    /// Outgoing webhooks: fan-out and delivery.
    pub webhooks: bool,
    /// Claims past their deadline.
    pub claims: bool,
}

impl WorkerRoles {
    pub const ALL: WorkerRoles = WorkerRoles {
        clicks: true,
        attribution: true,
        lifecycle: true,
        chain: true,
        webhooks: true,
        claims: true,
    };
    pub const NONE: WorkerRoles = WorkerRoles {
        clicks: false,
        attribution: false,
        lifecycle: false,
        chain: false,
        webhooks: false,
        claims: false,
    };

    pub fn any(self) -> bool {
        self.clicks
            || self.attribution
            || self.lifecycle
            || self.chain
            || self.webhooks
            || self.claims
    }
}

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

/// Builds each background worker with the back ends it needs. `mitra
/// serve` and the tests build workers the same way, through this.
#[derive(Clone)]
pub struct Workers {
    db: PgPool,
    redis: RedisClient,
    metrics: Arc<Metrics>,
    settings: Settings,
}

impl Workers {
    /// Workers on the back ends `settings` name, connecting lazily, with
    /// metrics of their own (a test's view of a separate worker process).
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            db: db::pool(settings)?,
            redis: redis_client(settings)?,
            metrics: Arc::new(Metrics::new()),
            settings: settings.clone(),
        })
    }

    /// A click consumer that takes over entries another consumer left
    /// pending for `reclaim_idle`.
    pub fn click_consumer(&self, reclaim_idle: Duration) -> ClickConsumer {
        ClickConsumer::new(
            self.redis.clone(),
            self.db.clone(),
            self.metrics.clone(),
            self.settings.clicks.log.shards,
            reclaim_idle,
        )
    }

    pub fn attributor(&self) -> Attributor {
        Attributor::new(
            self.db.clone(),
            self.settings.link_keys.clone(),
            self.metrics.clone(),
            self.settings.attribution.clone(),
        )
    }

    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle::new(self.db.clone(), self.metrics.clone())
    }

    pub fn chainer(&self) -> Chainer {
        Chainer::new(self.db.clone(), self.metrics.clone())
    }

    pub fn overdue_claims(&self) -> Overdue {
        Overdue::new(self.db.clone(), self.metrics.clone())
    }

    pub fn deliverer(&self) -> anyhow::Result<Deliverer> {
        Deliverer::new(
            self.db.clone(),
            self.metrics.clone(),
            &self.settings.webhooks,
        )
    }

    /// Purges outgoing webhooks' history past its retention.
    pub fn webhook_history(&self) -> Retention {
        Retention::new(self.db.clone(), self.settings.webhooks.retention)
    }

    /// Adds the loops of `roles` to `tasks`, each running until `shutdown`.
    fn spawn(
        &self,
        tasks: &mut Supervised,
        roles: WorkerRoles,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let idle = Pauses {
            linger: self.settings.workers.linger,
            idle: self.settings.workers.idle_poll,
        };
        if roles.clicks {
            let worker = self.click_consumer(RECLAIM_IDLE);
            let (stop, metrics) = (shutdown.clone(), self.metrics.clone());
            tasks.spawn("clicks", async move {
                run_loop("clicks", stop, idle, None, metrics, || worker.step()).await;
                Ok(())
            });
        }
        // Work arrived: a webhook stored a conversion (the intake pokes the
        // channel after its commit, from whichever process), an API or
        // portal change may have queued outgoing webhooks (poked after the
        // response, `middleware::wake_workers`), or this process's
        // attribution, approvals or claims' deadlines did work (their commits
        // queue outgoing webhooks). It ends the idle wait of the loops that
        // handle them; their poll is the fallback. The chain is not woken:
        // woken after every batch in a burst, it chained in small batches,
        // and booking ran 0.93x as fast (6 runs); a statement may wait for
        // the poll.
        let wake = Arc::new(Notify::new());
        if roles.attribution || roles.webhooks {
            let (db, stop) = (self.db.clone(), shutdown.clone());
            let channels = &[wakeups::CONVERSIONS, wakeups::EVENTS];
            let listener = wakeups::listen(db, channels, wake.clone(), stop);
            tasks.spawn("wake-ups", async move {
                listener.await;
                Ok(())
            });
        }
        if roles.attribution {
            // Several loops per process: while one waits on Postgres another
            // computes; SKIP LOCKED keeps their batches apart.
            for _ in 0..self.settings.attribution.concurrency {
                let worker = self.attributor().waking(wake.clone());
                let (stop, metrics) = (shutdown.clone(), self.metrics.clone());
                let wake = Some(wake.clone());
                tasks.spawn("attribution", async move {
                    run_loop("attribution", stop, idle, wake, metrics, || worker.step()).await;
                    Ok(())
                });
            }
        }
        if roles.lifecycle {
            let worker = self.lifecycle();
            let (stop, metrics, wake) = (shutdown.clone(), self.metrics.clone(), wake.clone());
            tasks.spawn("lifecycle", async move {
                let (worker, wake) = (&worker, &wake);
                run_loop("lifecycle", stop, idle, None, metrics, move || async move {
                    waking(worker.step().await, wake)
                })
                .await;
                Ok(())
            });
        }
        if roles.chain {
            let worker = self.chainer();
            let (stop, metrics) = (shutdown.clone(), self.metrics.clone());
            tasks.spawn("chain", async move {
                run_loop("chain", stop, idle, None, metrics, || worker.step()).await;
                Ok(())
            });
        }
        if roles.claims {
            let worker = self.overdue_claims();
            let (stop, metrics, wake) = (shutdown.clone(), self.metrics.clone(), wake.clone());
            tasks.spawn("claims", async move {
                let (worker, wake) = (&worker, &wake);
                run_loop("claims", stop, idle, None, metrics, move || async move {
                    waking(worker.step().await, wake)
                })
                .await;
                Ok(())
            });
        }
        if roles.webhooks {
            let worker = self.deliverer()?;
            let (stop, metrics) = (shutdown.clone(), self.metrics.clone());
            let wake = Some(wake.clone());
            tasks.spawn("webhooks", async move {
                run_loop("webhooks", stop, idle, wake, metrics, || worker.step()).await;
                Ok(())
            });
            // Beside delivery, so a backlog of history never delays a delivery.
            let history = self.webhook_history();
            let (stop, metrics) = (shutdown.clone(), self.metrics.clone());
            tasks.spawn("webhook history", async move {
                run_loop("webhook_history", stop, idle, None, metrics, || {
                    history.step()
                })
                .await;
                Ok(())
            });
        }
        Ok(())
    }
}

/// A step that did work committed it, and may have queued outgoing
/// webhooks: wakes their loop (and the others idling on `wake`).
fn waking(step: anyhow::Result<Step>, wake: &Notify) -> anyhow::Result<Step> {
    if matches!(step, Ok(Step::Busy | Step::Drained)) {
        wake.notify_waiters();
    }
    step
}

/// The master of the programs' statement keys: `MITRA_STATEMENT_KEY`, or,
/// unset, a key derived from the first link key (set it, so rotating link
/// keys never changes the statement keys).
pub fn statement_keys(settings: &Settings) -> StatementKeys {
    match &settings.statement_key {
        Some(key) => StatementKeys::new(key.expose_secret().as_bytes()),
        None => StatementKeys::new(
            &settings
                .link_keys
                .signer()
                .tag(b"mitra/statement-master/v1:", b""),
        ),
    }
}

/// A Redis client on the deployment's Redis (a single server or a cluster).
fn redis_client(settings: &Settings) -> anyhow::Result<RedisClient> {
    RedisClient::new(
        &settings.redis_url,
        settings.redis_topology,
        &settings.redis_prefix,
    )
}

pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    metrics_server: Option<Server>,
    server: Server,
    state: web::Data<AppState>,
    workers: Workers,
    roles: Roles,
    click_flusher: Flusher,
    conversion_writer: WriterTask,
}

impl Application {
    /// Connects (lazily) to Postgres and Redis, binds the listener and
    /// prepares the HTTP server. Migrations are the caller's choice: `serve`
    /// applies them first.
    pub async fn build(settings: Settings, roles: Roles) -> anyhow::Result<Self> {
        let db = db::pool(&settings)?;
        let redis = redis_client(&settings)?;
        let metrics = Arc::new(Metrics::new());
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let metrics_listener = settings
            .metrics_listen
            .map(|addr| {
                TcpListener::bind(addr)
                    .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for metrics: {e}"))
            })
            .transpose()?;
        let metrics_port = metrics_listener
            .as_ref()
            .map(|l| l.local_addr().map(|a| a.port()))
            .transpose()?;
        let metrics_here = metrics_listener.is_none();
        let http_workers = settings.http_workers;
        let link_cache =
            LinkCache::new(db.clone(), metrics.clone(), settings.clicks.link_cache_size);
        // The click log's writes get connections of their own: a write that
        // waits for replicas (WAIT) never holds up readiness or the workers.
        let (click_log, click_flusher) = ClickLog::new(
            redis_client(&settings)?,
            metrics.clone(),
            &settings.clicks.log,
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
        let (conversion_writer, writer_task) = ConversionWriter::new(db.clone());
        let statement_keys = statement_keys(&settings);
        let workers = Workers {
            db: db.clone(),
            redis: redis.clone(),
            metrics: metrics.clone(),
            settings: settings.clone(),
        };
        let db_read = db::ReadPool::new(&settings, db.clone(), metrics.clone())?;
        let wake_workers = wakeups::Poke::new(db.clone(), wakeups::EVENTS);
        let state = web::Data::new(AppState {
            db,
            db_read,
            redis,
            settings,
            redirect_counters: RedirectCounters::new(&metrics),
            metrics,
            link_cache,
            click_log,
            ip_hasher,
            webhook_contexts: WebhookContexts::new(),
            conversion_writer,
            statement_keys,
            wake_workers,
        });
        let server = {
            let state = state.clone();
            // Sign-in limits are counted in Redis, shared by every process.
            let limits = web::Data::new(portal::Limits::shared(
                state.redis.clone(),
                state.metrics.clone(),
            ));
            let mut server = HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .app_data(limits.clone())
                    .configure(|cfg| {
                        if roles.api {
                            http::redirects(cfg)
                        }
                    })
                    .service(
                        web::scope("")
                            .wrap(ErrorHandlers::new().default_handler(ensure_problem_json))
                            .wrap(from_fn(middleware::wake_workers))
                            .wrap(from_fn(middleware::record_metrics))
                            .wrap(from_fn(middleware::request_id_and_span))
                            .configure(|cfg| http::ops(cfg, metrics_here))
                            .configure(|cfg| {
                                if roles.api {
                                    http::api(cfg);
                                    portal::configure(cfg);
                                }
                            })
                            .default_service(web::to(http::not_found)),
                    )
            })
            .listen(listener)?
            .disable_signals()
            .shutdown_timeout(HTTP_SHUTDOWN_GRACE.as_secs());
            if let Some(n) = http_workers {
                server = server.workers(n);
            }
            server.run()
        };
        // Production keeps revenue per program off the public port: the
        // metrics get a listener of their own, bound privately.
        let metrics_server = match metrics_listener {
            None => None,
            Some(listener) => {
                let state = state.clone();
                Some(
                    HttpServer::new(move || {
                        App::new()
                            .app_data(state.clone())
                            .wrap(ErrorHandlers::new().default_handler(ensure_problem_json))
                            .configure(http::metrics_only)
                            .default_service(web::to(http::not_found))
                    })
                    .listen(listener)?
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .run(),
                )
            }
        };
        Ok(Self {
            port,
            metrics_port,
            metrics_server,
            server,
            state,
            workers,
            roles,
            click_flusher,
            conversion_writer: writer_task,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// What the HTTP handlers share (tests read the click log and Redis through it).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Builds workers on this application's back ends.
    pub fn workers(&self) -> Workers {
        self.workers.clone()
    }

    /// Serves until `shutdown` fires, then stops accepting, lets in-flight
    /// requests and worker batches finish, writes the clicks still queued,
    /// and returns. If any task ends before `shutdown`, the others are
    /// stopped the same way and the error is returned.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            server,
            metrics_server,
            state,
            workers,
            roles,
            click_flusher,
            conversion_writer,
            ..
        } = self;
        let handle = server.handle();
        // Stops what sits behind the HTTP handlers, once they are all answered.
        let drained = CancellationToken::new();
        let mut tasks = Supervised::new();
        tasks.spawn(
            "http",
            async move { server.await.map_err(anyhow::Error::from) },
        );
        let metrics_handle = metrics_server.map(|server| {
            let handle = server.handle();
            tasks.spawn("metrics http", async move {
                server.await.map_err(anyhow::Error::from)
            });
            handle
        });
        let stop = drained.clone();
        tasks.spawn("click log flusher", async move {
            click_flusher.run(stop).await;
            Ok(())
        });
        if roles.api {
            // Only a process that takes webhooks writes them, and holds the
            // writer's connection (elsewhere the task is dropped unstarted).
            let stop = drained.clone();
            tasks.spawn("conversion writer", async move {
                conversion_writer.run(stop).await;
                Ok(())
            });
            let (cache, stop) = (state.link_cache.clone(), shutdown.clone());
            tasks.spawn("link cache invalidation", async move {
                cache::run_invalidation(cache, stop).await;
                Ok(())
            });
            if state.db_read.has_replica() {
                let (reads, stop) = (state.db_read.clone(), shutdown.clone());
                tasks.spawn("read replica lag probe", async move {
                    reads.watch(stop).await;
                    Ok(())
                });
            }
        }
        workers.spawn(&mut tasks, roles.workers, &shutdown)?;
        // Every process reports whether its back ends answer, for alerts.
        let stop = shutdown.clone();
        let (db, redis, metrics) = (state.db.clone(), state.redis.clone(), state.metrics.clone());
        tasks.spawn("back-end probe", async move {
            health::probe(db, redis, metrics, stop).await;
            Ok(())
        });
        let result = tasks
            .run(shutdown, async {
                tracing::info!("shutting down");
                handle.stop(true).await;
                if let Some(metrics) = &metrics_handle {
                    metrics.stop(true).await;
                }
                // Every request has been answered: write what is still queued.
                drained.cancel();
            })
            .await;
        state.db.close().await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_that_did_work_wakes_the_idle_loops_and_one_that_found_none_does_not() {
        let wake = Arc::new(Notify::new());
        for (step, wakes) in [
            (Step::Busy, true),
            (Step::Drained, true),
            (Step::Idle, false),
        ] {
            let waiting = wake.notified();
            tokio::pin!(waiting);
            waiting.as_mut().enable();
            assert_eq!(waking(Ok(step), &wake).unwrap(), step);
            let woken = tokio::time::timeout(Duration::from_millis(10), waiting)
                .await
                .is_ok();
            assert_eq!(woken, wakes, "{step:?}");
        }
        let waiting = wake.notified();
        tokio::pin!(waiting);
        waiting.as_mut().enable();
        assert!(waking(Err(anyhow::anyhow!("down")), &wake).is_err());
        assert!(
            tokio::time::timeout(Duration::from_millis(10), waiting)
                .await
                .is_err()
        );
    }
}
