//! Prometheus metrics: one registry per running application.
//!
//! Names are part of the external contract (dashboards and alerts use them).
//! Labels stay low-cardinality: program, event, outcome, currency, status,
//! queue, backend, route pattern. Never partner, link, click or raw path;
//! per-partner figures come from the reports API.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Redirects answer in tens to hundreds of microseconds; the buckets resolve that range.
const REDIRECT_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5,
];
/// Webhooks wait for a Postgres commit: around a millisecond, tens under load.
const WEBHOOK_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// General HTTP requests (admin API, reports).
const HTTP_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub struct Metrics {
    registry: Registry,
    /// HTTP requests by method, route pattern and status code.
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    /// Redirects by program and outcome (logged, bot, invalid_code, log_failed, ...).
    pub clicks: IntCounterVec,
    pub redirect_duration: Histogram,
    /// Conversions by program, event and outcome (received, duplicate, attributed, ...).
    pub conversions: IntCounterVec,
    /// Clicks counted into the Postgres roll-ups, by program and kind (clicks, unique, bot).
    pub click_rollup: IntCounterVec,
    /// 1 when the back end answered the last check, else 0.
    pub backend_up: IntGaugeVec,
    /// Commission booked, in minor units, by program, currency and status.
    pub commission_minor: IntCounterVec,
    /// Commissions moved into a status (pending, approved, paid, reversed), by program.
    pub commissions: IntCounterVec,
    /// Payouts made, and their amounts in minor units.
    pub payouts: IntCounterVec,
    pub payout_minor: IntCounterVec,
    /// Revenue of attributed sales, in minor units, by program and currency.
    pub revenue_minor: IntCounterVec,
    pub webhook_duration: Histogram,
    /// Items waiting per queue (clicks, attribution, ...).
    pub queue_depth: IntGaugeVec,
    pub queue_oldest_age: GaugeVec,
    /// Failed calls to a back end (postgres, postgres_replica, redis).
    pub backend_errors: IntCounterVec,
    /// How far behind the primary the read replica is (an upper bound).
    pub replica_lag: prometheus::Gauge,
    /// Report and statement reads, by the pool that served them (replica, primary).
    pub db_reads: IntCounterVec,
    /// Steps run by each background worker, by outcome (busy, idle, failed).
    pub worker_steps: IntCounterVec,
    /// Outgoing webhook attempts by outcome (succeeded, failed, gave_up).
    pub webhook_attempts: IntCounterVec,
    /// Webhook endpoints disabled after failing in a row.
    pub webhook_endpoints_disabled: IntCounter,
    /// Open claims past their program's deadline, by program.
    pub claims_overdue: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Metrics {
            http_requests: IntCounterVec::new(
                Opts::new(
                    "mitra_http_requests_total",
                    "HTTP requests answered, by route pattern and status",
                ),
                &["method", "route", "status"],
            )
            .unwrap(),
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "mitra_http_request_duration_seconds",
                    "Time to answer an HTTP request, by route pattern",
                )
                .buckets(HTTP_BUCKETS.to_vec()),
                &["method", "route"],
            )
            .unwrap(),
            clicks: IntCounterVec::new(
                Opts::new(
                    "mitra_clicks_total",
                    "Redirects served or refused, by program and outcome",
                ),
                &["program", "outcome"],
            )
            .unwrap(),
            redirect_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "mitra_redirect_duration_seconds",
                    "Time to answer GET /l/{code}",
                )
                .buckets(REDIRECT_BUCKETS.to_vec()),
            )
            .unwrap(),
            conversions: IntCounterVec::new(
                Opts::new(
                    "mitra_conversions_total",
                    "Conversions by program, event and outcome",
                ),
                &["program", "event", "outcome"],
            )
            .unwrap(),
            click_rollup: IntCounterVec::new(
                Opts::new(
                    "mitra_click_rollup_total",
                    "Clicks rolled up into Postgres, by program and kind",
                ),
                &["program", "kind"],
            )
            .unwrap(),
            backend_up: IntGaugeVec::new(
                Opts::new(
                    "mitra_backend_up",
                    "1 when the back end answered the last health check",
                ),
                &["backend"],
            )
            .unwrap(),
            commission_minor: IntCounterVec::new(
                Opts::new(
                    "mitra_commission_minor_total",
                    "Commission in minor units moved into a status",
                ),
                &["program", "currency", "status"],
            )
            .unwrap(),
            commissions: IntCounterVec::new(
                Opts::new(
                    "mitra_commissions_total",
                    "Commissions moved into a status, by program",
                ),
                &["program", "status"],
            )
            .unwrap(),
            payouts: IntCounterVec::new(
                Opts::new("mitra_payouts_total", "Payouts made, by program"),
                &["program"],
            )
            .unwrap(),
            payout_minor: IntCounterVec::new(
                Opts::new(
                    "mitra_payout_minor_total",
                    "Amounts paid out in minor units, by program and currency",
                ),
                &["program", "currency"],
            )
            .unwrap(),
            revenue_minor: IntCounterVec::new(
                Opts::new(
                    "mitra_revenue_minor_total",
                    "Revenue of attributed sales in minor units",
                ),
                &["program", "currency"],
            )
            .unwrap(),
            webhook_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "mitra_webhook_duration_seconds",
                    "Time to answer a conversion webhook",
                )
                .buckets(WEBHOOK_BUCKETS.to_vec()),
            )
            .unwrap(),
            queue_depth: IntGaugeVec::new(
                Opts::new(
                    "mitra_queue_depth",
                    "Items waiting to be processed, by queue",
                ),
                &["queue"],
            )
            .unwrap(),
            queue_oldest_age: GaugeVec::new(
                Opts::new(
                    "mitra_queue_oldest_age_seconds",
                    "Age of the oldest unprocessed item, by queue",
                ),
                &["queue"],
            )
            .unwrap(),
            backend_errors: IntCounterVec::new(
                Opts::new("mitra_backend_errors_total", "Failed calls to a back end"),
                &["backend"],
            )
            .unwrap(),
            replica_lag: prometheus::Gauge::new(
                "mitra_db_replica_lag_seconds",
                "How far the read replica is behind the primary, at most",
            )
            .unwrap(),
            db_reads: IntCounterVec::new(
                Opts::new(
                    "mitra_db_reads_total",
                    "Report and statement reads, by the pool that served them",
                ),
                &["pool"],
            )
            .unwrap(),
            worker_steps: IntCounterVec::new(
                Opts::new(
                    "mitra_worker_steps_total",
                    "Background worker steps, by worker and outcome",
                ),
                &["worker", "outcome"],
            )
            .unwrap(),
            webhook_attempts: IntCounterVec::new(
                Opts::new(
                    "mitra_webhook_attempts_total",
                    "Outgoing webhook attempts, by outcome",
                ),
                &["outcome"],
            )
            .unwrap(),
            webhook_endpoints_disabled: IntCounter::new(
                "mitra_webhook_endpoints_disabled_total",
                "Webhook endpoints disabled after failing in a row",
            )
            .unwrap(),
            claims_overdue: IntGaugeVec::new(
                Opts::new(
                    "mitra_claims_overdue",
                    "Open claims past their program's deadline, by program",
                ),
                &["program"],
            )
            .unwrap(),
            registry,
        };
        m.register_all();
        m
    }

    fn register_all(&self) {
        let r = &self.registry;
        r.register(Box::new(self.http_requests.clone())).unwrap();
        r.register(Box::new(self.http_duration.clone())).unwrap();
        r.register(Box::new(self.clicks.clone())).unwrap();
        r.register(Box::new(self.redirect_duration.clone()))
            .unwrap();
        r.register(Box::new(self.conversions.clone())).unwrap();
        r.register(Box::new(self.click_rollup.clone())).unwrap();
        r.register(Box::new(self.backend_up.clone())).unwrap();
        r.register(Box::new(self.commission_minor.clone())).unwrap();
        r.register(Box::new(self.revenue_minor.clone())).unwrap();
        r.register(Box::new(self.commissions.clone())).unwrap();
        r.register(Box::new(self.payouts.clone())).unwrap();
        r.register(Box::new(self.payout_minor.clone())).unwrap();
        r.register(Box::new(self.webhook_duration.clone())).unwrap();
        r.register(Box::new(self.queue_depth.clone())).unwrap();
        r.register(Box::new(self.queue_oldest_age.clone())).unwrap();
        r.register(Box::new(self.backend_errors.clone())).unwrap();
        r.register(Box::new(self.worker_steps.clone())).unwrap();
        r.register(Box::new(self.replica_lag.clone())).unwrap();
        r.register(Box::new(self.db_reads.clone())).unwrap();
        r.register(Box::new(self.webhook_attempts.clone())).unwrap();
        r.register(Box::new(self.webhook_endpoints_disabled.clone()))
            .unwrap();
        r.register(Box::new(self.claims_overdue.clone())).unwrap();
        let build_info = IntGaugeVec::new(
            Opts::new(
                "mitra_build_info",
                "Always 1; labels carry the running version",
            ),
            &["version"],
        )
        .unwrap();
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        r.register(Box::new(build_info)).unwrap();
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .unwrap();
    }

    /// Sets a queue's gauges: its items, and how long the oldest has waited
    /// (`None` when it is empty).
    pub fn queue(&self, queue: &str, depth: i64, oldest_age_seconds: Option<f64>) {
        self.queue_depth.with_label_values(&[queue]).set(depth);
        self.queue_oldest_age
            .with_label_values(&[queue])
            .set(oldest_age_seconds.unwrap_or(0.0).max(0.0));
    }

    /// Counts a failed call to `backend` ("postgres" or "redis").
    pub fn backend_error(&self, backend: &str) {
        self.backend_errors.with_label_values(&[backend]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("metrics are UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
