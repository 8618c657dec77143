//! Webhook endpoints: where a program or a partner receives events, their
//! deliveries with every attempt, test-fires and replays.

use crate::domain::{
    DeliveryId, DeliveryStatus, EndpointKind, EventId, PartnerId, ProgramId, WebhookEndpointId,
    WebhookEvent, new_webhook_secret,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// Who an endpoint belongs to, and so which events it may receive: a
/// program's own, or those that concern a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Program(ProgramId),
    Partner(PartnerId),
}

impl Owner {
    fn ids(self) -> (Option<i64>, Option<i64>) {
        match self {
            Owner::Program(p) => (Some(p.get()), None),
            Owner::Partner(p) => (None, Some(p.get())),
        }
    }
}

/// An endpoint as shown (never its secret, after creation).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub id: WebhookEndpointId,
    /// `webhook` (signed JSON events) or `postback` (a GET of a URL template).
    pub kind: EndpointKind,
    /// The owning program, for a program's webhook endpoint; the program a
    /// partner's postback fires for.
    pub program_id: Option<ProgramId>,
    /// The owning partner, for a partner's endpoint or postback.
    pub partner_id: Option<PartnerId>,
    /// The URL; for a postback, its template with `{macros}`.
    #[schema(examples("https://hooks.partner.example/mitra"))]
    pub url: String,
    pub events: Vec<WebhookEvent>,
    /// False once disabled after consecutive failures (or by its owner).
    pub enabled: bool,
    pub consecutive_failures: i32,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Endpoint {
    pub fn owner(&self) -> Owner {
        if let (Some(p), EndpointKind::Postback) = (self.partner_id, self.kind) {
            return Owner::Partner(p);
        }
        match (self.program_id, self.partner_id) {
            (Some(p), _) => Owner::Program(p),
            (None, Some(p)) => Owner::Partner(p),
            (None, None) => unreachable!("the table requires an owner"),
        }
    }
}

/// What is registered: a webhook URL, or a partner's postback template
/// for one program. Both checked by the caller.
pub enum Target<'a> {
    Webhook(&'a crate::domain::TargetUrl),
    Postback {
        program: ProgramId,
        template: &'a crate::domain::PostbackTemplate,
    },
}

/// Registers an endpoint. Answers it and its secret (shown once).
pub async fn create(
    db: &PgPool,
    owner: Owner,
    target: Target<'_>,
    events: &[WebhookEvent],
) -> Result<(Endpoint, String), sqlx::Error> {
    let secret = new_webhook_secret();
    let (program, partner) = owner.ids();
    let (kind, scope, url) = match target {
        Target::Webhook(url) => (EndpointKind::Webhook, None, url.as_str()),
        Target::Postback { program, template } => (
            EndpointKind::Postback,
            Some(program.get()),
            template.as_str(),
        ),
    };
    let id = sqlx::query_scalar!(
        r#"insert into webhook_endpoints (program_id, partner_id, url, events, secret, kind, scope_program_id)
           values ($1, $2, $3, $4, $5, $6, $7) returning id as "id: WebhookEndpointId""#,
        program,
        partner,
        url,
        &events.iter().map(|e| e.as_str()).collect::<Vec<_>>() as &[&str],
        secret,
        kind.as_str(),
        scope
    )
    .fetch_one(db)
    .await?;
    let endpoint = get(db, id).await?.ok_or(sqlx::Error::RowNotFound)?;
    Ok((endpoint, secret))
}

/// An endpoint that has not been deleted.
pub async fn get(db: &PgPool, id: WebhookEndpointId) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"select id as "id: WebhookEndpointId", kind as "kind: EndpointKind",
                  coalesce(program_id, scope_program_id) as "program_id?: ProgramId",
                  partner_id as "partner_id: PartnerId", url,
                  events as "events: Vec<WebhookEvent>", enabled, consecutive_failures,
                  disabled_at, disabled_reason, created_at
           from webhook_endpoints where id = $1 and deleted_at is null"#,
        id.get()
    )
    .fetch_optional(db)
    .await
}

/// An owner's endpoints (every one for `None`), oldest first.
pub async fn list(
    db: &PgPool,
    owner: Option<Owner>,
    after: i64,
    limit: i64,
) -> Result<Vec<Endpoint>, sqlx::Error> {
    let (program, partner) = owner.map(Owner::ids).unwrap_or((None, None));
    sqlx::query_as!(
        Endpoint,
        r#"select id as "id: WebhookEndpointId", kind as "kind: EndpointKind",
                  coalesce(program_id, scope_program_id) as "program_id?: ProgramId",
                  partner_id as "partner_id: PartnerId", url,
                  events as "events: Vec<WebhookEvent>", enabled, consecutive_failures,
                  disabled_at, disabled_reason, created_at
           from webhook_endpoints
           where deleted_at is null and id > $1
             and ($2::bigint is null or program_id = $2)
             and ($3::bigint is null or partner_id = $3)
             and ($4 or $2::bigint is not null or $3::bigint is not null)
           order by id limit $5"#,
        after,
        program,
        partner,
        owner.is_none(),
        limit
    )
    .fetch_all(db)
    .await
}

/// Turns an endpoint on again: failures forgotten, waiting deliveries due now.
pub async fn enable(db: &PgPool, id: WebhookEndpointId) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "update webhook_endpoints set enabled = true, consecutive_failures = 0, disabled_at = null,
                disabled_reason = null, updated_at = now() where id = $1",
        id.get()
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update webhook_deliveries set next_attempt_at = now(), updated_at = now()
         where endpoint_id = $1 and status = 'pending'",
        id.get()
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Deletes an endpoint: nothing more is delivered to it.
pub async fn delete(db: &PgPool, id: WebhookEndpointId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update webhook_endpoints set deleted_at = now(), enabled = false, updated_at = now()
         where id = $1",
        id.get()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Sends a sample event to this endpoint alone, through the same outbox,
/// worker and retries as every event. Answers the delivery.
pub async fn test_fire(db: &PgPool, endpoint: &Endpoint) -> Result<DeliveryId, sqlx::Error> {
    let mut tx = db.begin().await?;
    let (program, partner) = endpoint.owner().ids();
    let event = sqlx::query_scalar!(
        r#"insert into outbox_events (type, program_id, partner_ids, data, endpoint_id, dispatched)
           values ('webhook.test', $1,
                   case when $2::bigint is null then '{}'::bigint[] else array[$2::bigint] end,
                   $3, $4, true)
           returning id as "id: EventId""#,
        program,
        partner,
        serde_json::json!({
            "endpoint_id": endpoint.id.to_string(),
            "message": "a test event from mitra: nothing happened",
        }),
        endpoint.id.get()
    )
    .fetch_one(&mut *tx)
    .await?;
    let delivery = sqlx::query_scalar!(
        r#"insert into webhook_deliveries (endpoint_id, event_id) values ($1, $2)
           returning id as "id: DeliveryId""#,
        endpoint.id.get(),
        event.get()
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(delivery)
}

/// Sends a delivery's event again, as a new delivery (same event id, so a
/// receiver that has it already can tell). `None`: no such delivery of the
/// endpoint, or none any more: one purged (`retention`) while it was being
/// replayed fails the replay's reference to it, and is gone all the same.
pub async fn replay(
    db: &PgPool,
    endpoint: WebhookEndpointId,
    delivery: DeliveryId,
) -> Result<Option<DeliveryId>, sqlx::Error> {
    let replayed = sqlx::query_scalar!(
        r#"insert into webhook_deliveries (endpoint_id, event_id, replay_of)
           select endpoint_id, event_id, id from webhook_deliveries where id = $1 and endpoint_id = $2
           returning id as "id: DeliveryId""#,
        delivery.get(),
        endpoint.get()
    )
    .fetch_optional(db)
    .await;
    match replayed {
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Ok(None),
        other => other,
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub attempted_at: DateTime<Utc>,
    pub duration_ms: i32,
    /// The receiver's HTTP status; none when no answer came.
    pub response_status: Option<i32>,
    /// Why no answer came: a timeout, a refused connection, a blocked address.
    pub error: Option<String>,
}

/// One event's delivery to the endpoint, with every attempt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub kind: WebhookEvent,
    pub status: DeliveryStatus,
    /// The last attempt's HTTP status.
    pub response_status: Option<i32>,
    pub attempt_count: i32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The delivery this one replays.
    pub replay_of: Option<DeliveryId>,
    pub created_at: DateTime<Utc>,
    pub attempts: Vec<Attempt>,
}

/// The endpoint's deliveries, newest first, with their attempts.
pub async fn deliveries(
    db: &PgPool,
    endpoint: WebhookEndpointId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select d.id as "id: DeliveryId", d.event_id as "event_id: EventId",
                  e.type as "kind: WebhookEvent", d.status as "status: DeliveryStatus",
                  d.attempts, d.next_attempt_at, d.replay_of as "replay_of: DeliveryId",
                  d.created_at
           from webhook_deliveries d join outbox_events e on e.id = d.event_id
           where d.endpoint_id = $1 and ($2::bigint is null or d.id < $2)
           order by d.id desc limit $3"#,
        endpoint.get(),
        before,
        limit
    )
    .fetch_all(db)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id.get()).collect();
    let attempts = sqlx::query!(
        "select delivery_id, attempted_at, duration_ms, response_status, error
         from webhook_attempts where delivery_id = any($1) order by id",
        &ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mine: Vec<Attempt> = attempts
                .iter()
                .filter(|a| a.delivery_id == r.id.get())
                .map(|a| Attempt {
                    attempted_at: a.attempted_at,
                    duration_ms: a.duration_ms,
                    response_status: a.response_status,
                    error: a.error.clone(),
                })
                .collect();
            Delivery {
                id: r.id,
                event_id: r.event_id,
                kind: r.kind,
                status: r.status,
                response_status: mine.last().and_then(|a| a.response_status),
                attempt_count: r.attempts,
                next_attempt_at: (r.status == DeliveryStatus::Pending).then_some(r.next_attempt_at),
                replay_of: r.replay_of,
                created_at: r.created_at,
                attempts: mine,
            }
        })
        .collect())
}
