//! Conversions: what a shop reports (sale, lead, refund), stored in Postgres
//! before the shop hears back, then attributed by the attribution worker.

pub mod aliases;
pub mod signature;
pub mod webhook_context;
pub mod writer;

pub use crate::domain::Event;
use crate::domain::{
    AgreementId, AppliedRule, AttributionSource, CommissionId, CommissionKind, CommissionStatus,
    ConversionId, ConversionReason, ConversionStatus, Currency, FraudSignal, Item, LinkId,
    PartnerId, ProgramId, RuleSource,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use sqlx::types::Json;

/// The largest amount a conversion may carry: ten billion major units of a
/// two-decimal currency. Anything above is a bug in the shop, not an order.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;
pub const MAX_ID_LEN: usize = 128;

/// Longest click id, coupon or subscription id stored.
pub const MAX_CODE_LEN: usize = 64;

/// A shop's reference (order id, event id): 1 to 128 characters, no control
/// characters.
pub fn check_reference(s: &str) -> Result<&str, String> {
    if !crate::domain::is_plain(s, MAX_ID_LEN) {
        Err(format!(
            "must be 1 to {MAX_ID_LEN} characters without control characters"
        ))
    } else {
        Ok(s)
    }
}

/// A click id, coupon or subscription id as a shop sends it: 1 to 64
/// characters, no control characters.
pub fn check_code(s: &str) -> Result<&str, String> {
    if !crate::domain::is_plain(s, MAX_CODE_LEN) {
        Err(format!(
            "must be 1 to {MAX_CODE_LEN} characters without control characters"
        ))
    } else {
        Ok(s)
    }
}

/// An amount for `event` (unknown: `None`): 0 to `MAX_AMOUNT_MINOR`, and a
/// refund must refund something.
pub fn check_amount(event: Option<Event>, amount_minor: i64) -> Result<i64, String> {
    if !(0..=MAX_AMOUNT_MINOR).contains(&amount_minor) {
        Err(format!("must be from 0 to {MAX_AMOUNT_MINOR} minor units"))
    } else if event == Some(Event::Refund) && amount_minor == 0 {
        Err("a refund must refund something".into())
    } else {
        Ok(amount_minor)
    }
}

/// How many days back a conversion (or a claimed sale) may have happened.
pub const MAX_AGE_DAYS: i64 = 400;

/// When a conversion happened, seen at `now`: not in the future (five
/// minutes of clock skew allowed), not more than 400 days ago.
pub fn check_occurred_at(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if at > now + chrono::Duration::minutes(5) {
        Err("is in the future".into())
    } else if at < now - chrono::Duration::days(MAX_AGE_DAYS) {
        Err(format!("is more than {MAX_AGE_DAYS} days ago"))
    } else {
        Ok(at)
    }
}

/// A conversion as validated at the edge.
#[derive(Debug, Clone)]
pub struct NewConversion {
    pub program: ProgramId,
    pub event_id: Option<String>,
    pub order_id: String,
    pub event: Event,
    pub amount_minor: i64,
    pub currency: Currency,
    pub click_id: Option<String>,
    pub coupon: Option<String>,
    /// The payment platform's subscription a recurring payment belongs to.
    pub subscription_id: Option<String>,
    /// `None`: when it was received.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The webhook's request id, kept for tracing.
    pub request_id: Option<String>,
    /// The order's lines (a sale), or the lines refunded (a refund); they
    /// sum to `amount_minor`.
    pub items: Option<Vec<Item>>,
}

impl NewConversion {
    /// Every rule above its types that a stored conversion satisfies, as
    /// (field, message); empty when it may be stored. Each webhook's parser
    /// applies the same rules, field by field, through the `check_` functions.
    pub fn problems(&self, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut note = |field, result: Result<(), String>| {
            if let Err(e) = result {
                out.push((field, e));
            }
        };
        note("order_id", check_reference(&self.order_id).map(drop));
        if let Some(id) = &self.event_id {
            note("event_id", check_reference(id).map(drop));
        }
        note(
            "amount_minor",
            check_amount(Some(self.event), self.amount_minor).map(drop),
        );
        for (field, value) in [
            ("click_id", &self.click_id),
            ("coupon", &self.coupon),
            ("subscription_id", &self.subscription_id),
        ] {
            if let Some(v) = value {
                note(field, check_code(v).map(drop));
            }
        }
        if let Some(at) = self.occurred_at {
            note("occurred_at", check_occurred_at(at, now).map(drop));
        }
        out
    }

    /// `event_id` when the shop sends one, else the order id and event.
    pub fn idempotency_key(&self) -> String {
        match &self.event_id {
            Some(id) => format!("event:{id}"),
            None => format!("order:{}:{}", self.event.as_str(), self.order_id),
        }
    }
}

#[derive(Debug)]
pub enum Stored {
    /// Stored now.
    New(ConversionId),
    /// The same conversion was stored before: the shop is retrying.
    Repeat {
        id: ConversionId,
        status: ConversionStatus,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key was used before for a different conversion, or the order
    /// already has a sale (or lead) under another event id.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The batch this conversion was written with failed; nothing was stored.
    #[error("{message}")]
    Batch { unavailable: bool, message: String },
}

/// Stores several conversions in one statement and one commit (the
/// webhook group commit), each exactly once per idempotency key. The outer
/// error is a database failure: none of them was stored.
pub async fn store_many(
    db: &mut sqlx::PgConnection,
    batch: &[NewConversion],
) -> Result<Vec<Result<Stored, StoreError>>, sqlx::Error> {
    let keys: Vec<String> = batch.iter().map(NewConversion::idempotency_key).collect();
    // Any conflict (a repeated key, or a second sale for an order) skips the
    // row instead of failing the others; skipped rows are sorted out below.
    let inserted = sqlx::query!(
        r#"
        insert into conversions
            (program_id, idempotency_key, event_id, order_id, event, amount_minor, currency,
             click_id, coupon, occurred_at, request_id, items, subscription_id)
        select p, k, e, o, ev, a, cur, cl, cp, coalesce(at, now()), r, it, sub
        from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                    $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[],
                    $12::jsonb[], $13::text[])
             as u(p, k, e, o, ev, a, cur, cl, cp, at, r, it, sub)
        on conflict do nothing
        returning id as "id: ConversionId", program_id, idempotency_key
        "#,
        &batch.iter().map(|c| c.program.get()).collect::<Vec<_>>(),
        &keys,
        &batch.iter().map(|c| c.event_id.clone()).collect::<Vec<_>>() as &[Option<String>],
        &batch.iter().map(|c| c.order_id.clone()).collect::<Vec<_>>(),
        &batch
            .iter()
            .map(|c| c.event.as_str().to_owned())
            .collect::<Vec<_>>(),
        &batch.iter().map(|c| c.amount_minor).collect::<Vec<_>>(),
        &batch
            .iter()
            .map(|c| c.currency.code().to_owned())
            .collect::<Vec<_>>(),
        &batch.iter().map(|c| c.click_id.clone()).collect::<Vec<_>>() as &[Option<String>],
        &batch.iter().map(|c| c.coupon.clone()).collect::<Vec<_>>() as &[Option<String>],
        &batch.iter().map(|c| c.occurred_at).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
        &batch
            .iter()
            .map(|c| c.request_id.clone())
            .collect::<Vec<_>>() as &[Option<String>],
        &batch
            .iter()
            .map(|c| c.items.as_ref().map(Json))
            .collect::<Vec<_>>() as &[Option<Json<&Vec<Item>>>],
        &batch
            .iter()
            .map(|c| c.subscription_id.as_deref())
            .collect::<Vec<_>>() as &[Option<&str>],
    )
    .fetch_all(&mut *db)
    .await?;
    let mut new: std::collections::HashMap<(i64, &str), ConversionId> = inserted
        .iter()
        .map(|r| ((r.program_id, r.idempotency_key.as_str()), r.id))
        .collect();
    // The first of the batch with a key is new; a later one repeats it.
    let mut results: Vec<Option<Result<Stored, StoreError>>> = batch
        .iter()
        .zip(&keys)
        .map(|(c, k)| {
            new.remove(&(c.program.get(), k.as_str()))
                .map(|id| Ok(Stored::New(id)))
        })
        .collect();
    let missing: Vec<usize> = (0..batch.len()).filter(|i| results[*i].is_none()).collect();
    if !missing.is_empty() {
        let earlier = sqlx::query!(
            r#"select c.id as "id: ConversionId", c.program_id, c.idempotency_key, c.order_id,
                      c.event as "event: Event", c.amount_minor, c.currency as "currency: Currency",
                      c.status as "status: ConversionStatus"
               from conversions c
               join unnest($1::bigint[], $2::text[]) as q(program_id, key)
                 on c.program_id = q.program_id and c.idempotency_key = q.key"#,
            &missing
                .iter()
                .map(|i| batch[*i].program.get())
                .collect::<Vec<_>>(),
            &missing.iter().map(|i| keys[*i].clone()).collect::<Vec<_>>(),
        )
        .fetch_all(&mut *db)
        .await?;
        for i in missing {
            let c = &batch[i];
            let found = earlier
                .iter()
                .find(|e| e.program_id == c.program.get() && e.idempotency_key == keys[i]);
            results[i] = Some(match found {
                None => Err(StoreError::Conflict(format!(
                    "order {} already has a {} under another event_id",
                    c.order_id,
                    c.event.as_str()
                ))),
                Some(e)
                    if e.order_id != c.order_id
                        || e.event != c.event
                        || e.amount_minor != c.amount_minor
                        || e.currency != c.currency =>
                {
                    Err(StoreError::Conflict(format!(
                        "this idempotency key was used for {} {} of {} {}",
                        e.event, e.order_id, e.amount_minor, e.currency
                    )))
                }
                Some(e) => Ok(Stored::Repeat {
                    id: e.id,
                    status: e.status,
                }),
            });
        }
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StoreError::Batch {
                    unavailable: false,
                    message: "a conversion of the batch got no result".into(),
                })
            })
        })
        .collect())
}

/// A commission as shown inside a conversion.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ConversionCommission)]
pub struct CommissionView {
    pub id: CommissionId,
    pub partner_id: PartnerId,
    pub agreement_id: AgreementId,
    pub agreement_version: i32,
    /// The program terms version in force when the conversion happened.
    pub program_version: i32,
    /// `conversion`, or a `bonus` or `tier_adjustment` this conversion triggered.
    pub kind: CommissionKind,
    /// Whose rule produced it.
    pub rule_source: RuleSource,
    #[schema(value_type = AppliedRule)]
    pub rule: Json<AppliedRule>,
    pub share_bps: i32,
    /// The amount when booked, before refunds.
    pub original_minor: i64,
    /// Net of refunds.
    pub amount_minor: i64,
    pub currency: Currency,
    pub status: CommissionStatus,
    /// Held for a person's review (fraud signals); not approved automatically.
    pub review: bool,
}

/// A conversion, its attribution and its commissions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Conversion)]
pub struct ConversionView {
    pub id: ConversionId,
    pub program_id: ProgramId,
    pub order_id: String,
    pub event_id: Option<String>,
    pub event: Event,
    pub amount_minor: i64,
    pub currency: Currency,
    pub status: ConversionStatus,
    /// Why it was not attributed, when it was not.
    pub reason: Option<ConversionReason>,
    pub fraud_reasons: Vec<FraudSignal>,
    pub attributed_via: Option<AttributionSource>,
    pub click_id: Option<String>,
    pub coupon: Option<String>,
    /// The payment platform's subscription, for recurring payments.
    pub subscription_id: Option<String>,
    pub link_id: Option<LinkId>,
    pub agreement_id: Option<AgreementId>,
    pub agreement_version: Option<i32>,
    /// The program terms version in force when it happened.
    pub program_version: Option<i32>,
    /// The order's lines (a sale), or the lines refunded (a refund).
    #[schema(value_type = Option<Vec<Item>>)]
    pub items: Option<Json<Vec<Item>>>,
    pub refunded_minor: i64,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    /// The request id of the webhook that brought it.
    pub request_id: Option<String>,
    pub commissions: Vec<CommissionView>,
}

/// Every conversion of an order (its sale or lead, and refunds), oldest first.
/// Sales and leads are indexed by order apart from refunds (the unique
/// `conversions_one_per_order`, the partial `conversions_refund_order`):
/// one index probe for each part.
pub async fn by_order(
    db: &PgPool,
    program: ProgramId,
    order_id: &str,
) -> Result<Vec<ConversionView>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"
        select id as "id: ConversionId", program_id as "program_id: ProgramId", order_id, event_id,
               event as "event: Event", amount_minor, currency as "currency: Currency",
               status as "status: ConversionStatus", reason as "reason: ConversionReason",
               fraud_reasons as "fraud_reasons: Vec<FraudSignal>",
               attributed_via as "attributed_via: AttributionSource",
               click_id, coupon, link_id as "link_id: LinkId",
               agreement_id as "agreement_id: AgreementId", agreement_version, program_version,
               items as "items: Json<Vec<Item>>", subscription_id,
               refunded_minor, occurred_at, received_at, processed_at, request_id
        from conversions
        where id = any(array(
            select id from conversions
            where program_id = $1 and order_id = $2 and event in ('sale', 'lead')
            union all
            select id from conversions
            where program_id = $1 and order_id = $2 and event = 'refund'))
        order by id
        "#,
        program.get(),
        order_id
    )
    .fetch_all(db)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id.get()).collect();
    let commissions = sqlx::query!(
        r#"
        select id as "id: CommissionId", conversion_id,
               partner_id as "partner_id: PartnerId",
               agreement_id as "agreement_id: AgreementId", agreement_version, program_version,
               kind as "kind: CommissionKind", rule_source as "rule_source: RuleSource",
               rule as "rule: Json<AppliedRule>", share_bps, original_minor, amount_minor,
               currency as "currency: Currency", status as "status: CommissionStatus", review
        from commissions where conversion_id = any($1)
        order by partner_id, id
        "#,
        &ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ConversionView {
            commissions: commissions
                .iter()
                .filter(|c| c.conversion_id == r.id.get())
                .map(|c| CommissionView {
                    id: c.id,
                    partner_id: c.partner_id,
                    agreement_id: c.agreement_id,
                    agreement_version: c.agreement_version,
                    program_version: c.program_version,
                    kind: c.kind,
                    rule_source: c.rule_source,
                    rule: c.rule.clone(),
                    share_bps: c.share_bps,
                    original_minor: c.original_minor,
                    amount_minor: c.amount_minor,
                    currency: c.currency,
                    status: c.status,
                    review: c.review,
                })
                .collect(),
            id: r.id,
            program_id: r.program_id,
            order_id: r.order_id,
            event_id: r.event_id,
            event: r.event,
            amount_minor: r.amount_minor,
            currency: r.currency,
            status: r.status,
            reason: r.reason,
            fraud_reasons: r.fraud_reasons,
            attributed_via: r.attributed_via,
            click_id: r.click_id,
            coupon: r.coupon,
            subscription_id: r.subscription_id,
            link_id: r.link_id,
            agreement_id: r.agreement_id,
            agreement_version: r.agreement_version,
            program_version: r.program_version,
            items: r.items,
            refunded_minor: r.refunded_minor,
            occurred_at: r.occurred_at,
            received_at: r.received_at,
            processed_at: r.processed_at,
            request_id: r.request_id,
        })
        .collect())
}
