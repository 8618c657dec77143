//! The delivery worker: fans outbox events out to the endpoints subscribed
//! to them, and sends each delivery the Standard Webhooks way.
//!
//! At least once, never lost: a delivery is claimed (`FOR UPDATE SKIP
//! LOCKED`) in a transaction that stays open while it is sent, and its
//! attempt is recorded in that transaction. A process killed mid-send rolls
//! back, and the delivery is claimed again by the next worker, at once. A
//! receiver may therefore see one event twice: `webhook-id` (the event's
//! id) is its idempotency key.
//!
//! Retries: after n failed attempts the next waits `retry_base` * 2^(n-1)
//! (30 s, 1 min, 2 min, ... with the default base), at most 12 h, until the
//! delivery is 3 days old; then it is `failed` (it can still be replayed).
//! An endpoint that fails `DISABLE_AFTER` attempts in a row is disabled,
//! its waiting deliveries kept for when it is enabled again, and its owner
//! told with a `webhook_endpoint.disabled` event to its other endpoints (and
//! in the endpoint's own `disabled_reason`).

use super::client::Client;
use crate::background::{Every, Step};
use crate::config::WebhookSettings;
use crate::conversions::signature::standard;
use crate::domain::{EndpointKind, EventId, PostbackTemplate, TargetUrl, WebhookEvent};
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Queued statements expanded into events per step.
pub const EXPAND_BATCH: i32 = 50;
/// Events fanned out per step.
pub const DISPATCH_BATCH: i64 = 500;
/// Deliveries sent at once, per step.
pub const BATCH: i64 = 20;
/// Failed attempts in a row that disable an endpoint (as Everflow does).
pub const DISABLE_AFTER: i32 = 10;
/// How long a delivery is retried.
pub const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::days(3);
/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);

/// The wait after `failed` attempts: `base` doubled per attempt after the
/// first, at most `MAX_DELAY`.
pub fn retry_delay(base: Duration, failed: i32) -> Duration {
    let doublings = (failed.max(1) - 1).min(20) as u32;
    base.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Succeeded,
    RetryAt(DateTime<Utc>),
    GiveUp,
}

/// Decides, without I/O, after the attempt numbered `attempts`.
pub fn next(
    ok: bool,
    attempts: i32,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    base: Duration,
) -> Next {
    if ok {
        return Next::Succeeded;
    }
    let delay = chrono::Duration::from_std(retry_delay(base, attempts))
        .unwrap_or(chrono::Duration::hours(12));
    let at = now + delay;
    if at > created_at + GIVE_UP_AFTER {
        Next::GiveUp
    } else {
        Next::RetryAt(at)
    }
}

/// A delivery claimed for an attempt.
struct Due {
    id: i64,
    attempts: i32,
    created_at: DateTime<Utc>,
    endpoint_id: i64,
    url: String,
    secret: String,
    event_id: EventId,
    kind: WebhookEvent,
    data: serde_json::Value,
    event_at: DateTime<Utc>,
    /// A postback: its URL, macros filled in.
    postback: Option<String>,
}

/// What one attempt got.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    took: Duration,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

pub struct Deliverer {
    db: PgPool,
    client: Client,
    metrics: Arc<Metrics>,
    settings: WebhookSettings,
    gauges: Every,
}

impl Deliverer {
    pub fn new(
        db: PgPool,
        metrics: Arc<Metrics>,
        settings: &WebhookSettings,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            db,
            client: Client::new(settings.allow_private, settings.timeout)?,
            metrics,
            settings: settings.clone(),
            gauges: Every::new(Duration::from_secs(5)),
        })
    }

    /// Fans out new events, then sends one batch of due deliveries.
    pub async fn step(&self) -> anyhow::Result<Step> {
        if self.gauges.due() {
            self.measure().await?;
        }
        let more_events = self.dispatch().await?;
        let sent = self.deliver().await?;
        Ok(if more_events || sent == BATCH as usize {
            Step::Busy
        } else {
            Step::Idle
        })
    }

    /// Expands what the triggers queued into events, then makes one
    /// delivery per event and subscribed endpoint (disabled ones included:
    /// their deliveries wait for them). Both judge who subscribes with
    /// `outbox_endpoint_wants` (migrations/20261201170001_*): the expansion
    /// writes no event that no endpoint wants. Answers whether a full batch was
    /// taken at either stage, so more may be waiting.
    ///
    /// The taken events are marked by `id = any(array(...))`, an index
    /// condition: as `id in (select ...)` the planner, its statistics behind
    /// the table's growth, hashed a scan of every event ever written.
    async fn dispatch(&self) -> anyhow::Result<bool> {
        let expanded = sqlx::query_scalar!(r#"select outbox_expand($1) as "taken!""#, EXPAND_BATCH)
            .fetch_one(&self.db)
            .await?;
        let done = sqlx::query!(
            r#"
            with events as (
                select id, type, program_id, partner_ids from outbox_events
                where not dispatched order by id limit $1 for update skip locked
            ), fanned as (
                insert into webhook_deliveries (endpoint_id, event_id)
                select w.id, e.id from events e join webhook_endpoints w
                  on outbox_endpoint_wants(w, e.type, e.program_id, e.partner_ids)
                returning 1
            )
            update outbox_events set dispatched = true where id = any(array(select id from events))
            "#,
            DISPATCH_BATCH
        )
        .execute(&self.db)
        .await?;
        Ok(expanded == EXPAND_BATCH || done.rows_affected() == DISPATCH_BATCH as u64)
    }

    async fn deliver(&self) -> anyhow::Result<usize> {
        let mut tx = self.db.begin().await?;
        let due = claim_due(&mut tx).await?;
        if due.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let outcomes = futures::future::join_all(due.iter().map(|d| self.send(d))).await;
        let now = Utc::now();
        let settled = settle(&due, &outcomes, now, self.settings.retry_base);
        for label in &settled.labels {
            self.metrics
                .webhook_attempts
                .with_label_values(&[label])
                .inc();
        }
        let disabled = record(&mut tx, &due, &outcomes, &settled, now).await?;
        tx.commit().await?;
        for w in &disabled {
            self.metrics.webhook_endpoints_disabled.inc();
            tracing::warn!(
                endpoint = %crate::domain::WebhookEndpointId::from_db(w.id),
                failures = w.consecutive_failures,
                "webhook endpoint disabled after failing in a row"
            );
        }
        Ok(due.len())
    }

    /// One attempt: the event signed for now, posted, the answer kept.
    async fn send(&self, d: &Due) -> Outcome {
        let started = Instant::now();
        let fail = |error: String| Outcome {
            status: None,
            error: Some(error),
            took: started.elapsed(),
        };
        // Judged again at each attempt: the operator may have changed the rule.
        let url = d.postback.as_deref().unwrap_or(&d.url);
        let target = match TargetUrl::parse(url, self.settings.allow_private) {
            Ok(t) => t,
            Err(e) => return fail(format!("the URL {e}")),
        };
        let sent = if d.postback.is_some() {
            // Classic postbacks: a GET, what partners' trackers expect.
            self.client
                .send(hyper::Method::GET, target.url(), &[], Vec::new())
                .await
        } else {
            let id = d.event_id.to_string();
            let body = super::body(d.event_id, d.kind, d.event_at, &d.data);
            let t = Utc::now().timestamp();
            let signature = standard::signature(&d.secret, &id, t, &body);
            let headers = [
                ("content-type", "application/json".to_owned()),
                (standard::ID, id),
                (standard::TIMESTAMP, t.to_string()),
                (standard::SIGNATURE, signature),
            ];
            self.client
                .send(hyper::Method::POST, target.url(), &headers, body)
                .await
        };
        match sent {
            Ok(status) => Outcome {
                status: Some(status),
                error: None,
                took: started.elapsed(),
            },
            Err(e) => fail(e.to_string().chars().take(500).collect()),
        }
    }

    /// Sets the webhook queue gauges: deliveries due now, and the oldest's wait.
    pub async fn measure(&self) -> anyhow::Result<()> {
        let row = sqlx::query!(
            r#"select count(*) as "depth!",
                      extract(epoch from now() - min(d.next_attempt_at))::float8 as age
               from webhook_deliveries d join webhook_endpoints w on w.id = d.endpoint_id
               where d.status = 'pending' and d.next_attempt_at <= now() and w.enabled"#
        )
        .fetch_one(&self.db)
        .await?;
        self.metrics.queue("webhooks", row.depth, row.age);
        Ok(())
    }
}

/// Claims up to `BATCH` due deliveries, locked until `tx` ends; a postback's
/// URL comes with its macros filled in.
async fn claim_due(tx: &mut sqlx::PgConnection) -> anyhow::Result<Vec<Due>> {
    let rows = sqlx::query!(
        r#"select d.id, d.attempts, d.created_at, d.endpoint_id, w.url, w.secret,
                  w.kind as "endpoint_kind: EndpointKind",
                  e.id as "event_id: EventId", e.type as "kind: WebhookEvent", e.data,
                  e.created_at as event_at,
                  v.click_id as "click_id?", l.sub_ids as "sub_ids?", v.order_id as "order_id?",
                  v.event as "conversion_event?", v.amount_minor as "amount_minor?",
                  v.currency as "currency?", c.amount_minor as "commission_minor?"
           from webhook_deliveries d
           join webhook_endpoints w on w.id = d.endpoint_id
           join outbox_events e on e.id = d.event_id
           -- A postback's macros: the event's conversion, its link, the partner's commission.
           left join conversions v
             on w.kind = 'postback' and v.id = (e.data->>'conversion_id')::bigint
           left join links l on l.id = v.link_id
           left join commissions c on c.conversion_id = v.id and c.partner_id = w.partner_id
           where d.status = 'pending' and d.next_attempt_at <= now()
             and w.enabled and w.deleted_at is null
           order by d.next_attempt_at, d.id
           limit $1
           for update of d skip locked"#,
        BATCH
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let postback = (r.endpoint_kind == EndpointKind::Postback).then(|| {
                let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
                let mut put = |k: &'static str, v: Option<String>| {
                    if let Some(v) = v {
                        values.insert(k, v);
                    }
                };
                put("click_id", r.click_id);
                put("order_id", r.order_id);
                put("event", r.conversion_event);
                put("amount_minor", r.amount_minor.map(|a| a.to_string()));
                put(
                    "commission_minor",
                    r.commission_minor.map(|a| a.to_string()),
                );
                put("currency", r.currency);
                put("status", Some(r.kind.postback_status().to_owned()));
                if let Some(serde_json::Value::Object(subs)) = &r.sub_ids {
                    for key in crate::domain::SUB_KEYS {
                        put(
                            key,
                            subs.get(key).and_then(|v| v.as_str()).map(str::to_owned),
                        );
                    }
                }
                PostbackTemplate::from_db(r.url.clone()).render(&values)
            });
            Due {
                id: r.id,
                attempts: r.attempts,
                created_at: r.created_at,
                endpoint_id: r.endpoint_id,
                url: r.url,
                secret: r.secret,
                event_id: r.event_id,
                kind: r.kind,
                data: r.data,
                event_at: r.event_at,
                postback,
            }
        })
        .collect())
}

/// What a batch of attempts decides, in the order of the deliveries: each
/// one's new status, next attempt time and metrics label; and per endpoint
/// whether any attempt succeeded and how many failed.
#[derive(Debug, PartialEq)]
struct Settled {
    statuses: Vec<&'static str>,
    next_at: Vec<DateTime<Utc>>,
    labels: Vec<&'static str>,
    endpoints: Vec<i64>,
    succeeded: Vec<bool>,
    failures: Vec<i32>,
}

/// Decides, without I/O, what the attempts' outcomes mean.
fn settle(due: &[Due], outcomes: &[Outcome], now: DateTime<Utc>, base: Duration) -> Settled {
    let mut settled = Settled {
        statuses: Vec::new(),
        next_at: Vec::new(),
        labels: Vec::new(),
        endpoints: Vec::new(),
        succeeded: Vec::new(),
        failures: Vec::new(),
    };
    let mut per_endpoint: BTreeMap<i64, (bool, i32)> = BTreeMap::new();
    for (d, o) in due.iter().zip(outcomes) {
        let (status, at, label) = match next(o.ok(), d.attempts + 1, d.created_at, now, base) {
            Next::Succeeded => ("succeeded", now, "succeeded"),
            Next::RetryAt(at) => ("pending", at, "failed"),
            Next::GiveUp => ("failed", now, "gave_up"),
        };
        settled.statuses.push(status);
        settled.next_at.push(at);
        settled.labels.push(label);
        let e = per_endpoint.entry(d.endpoint_id).or_insert((false, 0));
        if o.ok() {
            e.0 = true;
        } else {
            e.1 += 1;
        }
    }
    for (id, (ok, failed)) in per_endpoint {
        settled.endpoints.push(id);
        settled.succeeded.push(ok);
        settled.failures.push(failed);
    }
    settled
}

/// An endpoint disabled by this batch.
struct Disabled {
    id: i64,
    consecutive_failures: i32,
}

/// Writes the attempts, the deliveries' new states and the endpoints'
/// failure counts; disables the endpoints that failed too often in a row
/// and tells their owners. Answers the endpoints disabled.
async fn record(
    tx: &mut sqlx::PgConnection,
    due: &[Due],
    outcomes: &[Outcome],
    settled: &Settled,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Disabled>> {
    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
    sqlx::query!(
        "insert into webhook_attempts (delivery_id, attempted_at, duration_ms, response_status, error)
         select * from unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::int[], $5::text[])",
        &ids,
        &outcomes
            .iter()
            .map(|o| now - chrono::Duration::from_std(o.took).unwrap_or_default())
            .collect::<Vec<_>>(),
        &outcomes
            .iter()
            .map(|o| o.took.as_millis().min(i32::MAX as u128) as i32)
            .collect::<Vec<_>>(),
        &outcomes
            .iter()
            .map(|o| o.status.map(i32::from))
            .collect::<Vec<_>>() as &[Option<i32>],
        &outcomes.iter().map(|o| o.error.clone()).collect::<Vec<_>>() as &[Option<String>],
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update webhook_deliveries d set status = u.status, attempts = d.attempts + 1,
                next_attempt_at = u.at, updated_at = now()
         from unnest($1::bigint[], $2::text[], $3::timestamptz[]) as u(id, status, at)
         where d.id = u.id",
        &ids,
        &settled.statuses as &[&str],
        &settled.next_at
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update webhook_endpoints w
         set consecutive_failures = case when u.ok then 0 else w.consecutive_failures + u.n end
         from unnest($1::bigint[], $2::bool[], $3::int[]) as u(id, ok, n)
         where w.id = u.id",
        &settled.endpoints,
        &settled.succeeded,
        &settled.failures
    )
    .execute(&mut *tx)
    .await?;
    let disabled = sqlx::query!(
        r#"update webhook_endpoints
           set enabled = false, disabled_at = now(), updated_at = now(),
               disabled_reason = consecutive_failures || ' attempts in a row failed'
           where id = any($1) and enabled and consecutive_failures >= $2
           returning id, program_id, partner_id, url, consecutive_failures"#,
        &settled.endpoints,
        DISABLE_AFTER
    )
    .fetch_all(&mut *tx)
    .await?;
    for w in &disabled {
        // The owner hears of it through its other endpoints.
        sqlx::query!(
            "insert into outbox_events (type, program_id, partner_ids, data)
             values ('webhook_endpoint.disabled', $1,
                     case when $2::bigint is null then '{}'::bigint[] else array[$2::bigint] end,
                     $3)",
            w.program_id,
            w.partner_id,
            serde_json::json!({
                "endpoint_id": crate::domain::WebhookEndpointId::from_db(w.id).to_string(),
                "url": w.url,
                "consecutive_failures": w.consecutive_failures,
            }),
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(disabled
        .into_iter()
        .map(|w| Disabled {
            id: w.id,
            consecutive_failures: w.consecutive_failures,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_base_up_to_twelve_hours() {
        let base = Duration::from_secs(30);
        let waits: Vec<u64> = (1..=13).map(|n| retry_delay(base, n).as_secs()).collect();
        assert_eq!(
            waits,
            vec![
                30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 30720, 43200, 43200
            ]
        );
    }

    #[test]
    fn a_delivery_is_retried_for_three_days_then_given_up() {
        let base = Duration::from_secs(30);
        let created = Utc::now();
        assert_eq!(next(true, 1, created, created, base), Next::Succeeded);
        assert_eq!(
            next(false, 1, created, created, base),
            Next::RetryAt(created + chrono::Duration::seconds(30))
        );
        // Follow the schedule: attempts until the next would fall past 3 days.
        let mut now = created;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match next(false, attempts, created, now, base) {
                Next::RetryAt(at) => now = at,
                Next::GiveUp => break,
                Next::Succeeded => unreachable!(),
            }
        }
        assert_eq!(attempts, 16);
        assert!(now <= created + GIVE_UP_AFTER);
        assert!(now + chrono::Duration::hours(12) > created + GIVE_UP_AFTER);
    }

    fn due(id: i64, endpoint_id: i64, attempts: i32, created_at: DateTime<Utc>) -> Due {
        Due {
            id,
            attempts,
            created_at,
            endpoint_id,
            url: "https://example.com/hook".into(),
            secret: "whsec_x".into(),
            event_id: EventId::from_db(id),
            kind: WebhookEvent::ConversionReceived,
            data: serde_json::json!({}),
            event_at: created_at,
            postback: None,
        }
    }

    fn answered(status: Option<u16>) -> Outcome {
        Outcome {
            status,
            error: status.is_none().then(|| "connection refused".into()),
            took: Duration::from_millis(5),
        }
    }

    #[test]
    fn a_batch_settles_each_delivery_and_counts_failures_per_endpoint() {
        let base = Duration::from_secs(30);
        let now = Utc::now();
        let old = now - chrono::Duration::days(3);
        let batch = [
            due(1, 10, 0, now),  // endpoint 10 answers 204
            due(2, 10, 2, now),  // and 500: it still answered once
            due(3, 20, 0, now),  // endpoint 20 cannot be reached
            due(4, 20, 15, old), // and a delivery 3 days old is given up
        ];
        let outcomes = [
            answered(Some(204)),
            answered(Some(500)),
            answered(None),
            answered(Some(503)),
        ];
        assert_eq!(
            settle(&batch, &outcomes, now, base),
            Settled {
                statuses: vec!["succeeded", "pending", "pending", "failed"],
                next_at: vec![
                    now,
                    now + chrono::Duration::seconds(120),
                    now + chrono::Duration::seconds(30),
                    now
                ],
                labels: vec!["succeeded", "failed", "failed", "gave_up"],
                endpoints: vec![10, 20],
                succeeded: vec![true, false],
                failures: vec![1, 2],
            }
        );
    }
}
