//! Conversion webhooks from shops, and reading conversions back.

use super::validate::Checker;
use crate::conversions::signature::{self, SignatureError};
use crate::conversions::{
    self, ConversionView, Event, MAX_AMOUNT_MINOR, NewConversion, StoreError, Stored,
    check_reference,
};
use crate::domain::{
    Category, ConversionId, ConversionStatus, Currency, Item, ProgramId, check_items,
};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Largest webhook body read.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest click id or coupon stored.
const MAX_CODE_LEN: usize = 64;

/// The webhook body. Unknown fields are ignored: shops send what their
/// platform sends, and a new field must not break their integration.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewConversion)]
struct ConversionBody {
    /// The shop's order reference, 1 to 128 characters. A refund names its sale's.
    #[schema(examples("order-1001"))]
    order_id: String,
    #[schema(value_type = Event)]
    event: String,
    /// The order amount (a refund: the amount refunded), in minor units.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, examples(12500))]
    amount_minor: i64,
    /// Must be the program's currency.
    #[schema(value_type = crate::domain::Currency)]
    currency: String,
    /// The `mitra_click` value the shopper landed with.
    #[serde(default)]
    #[schema(max_length = 64)]
    click_id: Option<String>,
    /// A coupon code of one of the program's agreements.
    #[serde(default)]
    #[schema(max_length = 64)]
    coupon: Option<String>,
    /// When it happened; default: when received.
    #[serde(default)]
    occurred_at: Option<DateTime<Utc>>,
    /// The shop's idempotency key; default: (`order_id`, `event`).
    #[serde(default)]
    event_id: Option<String>,
    /// A sale's lines (at most 100, each `sku` once), summing to
    /// `amount_minor`: rules may pay per category. A refund's lines name the
    /// sale's lines given back (by `sku`), summing to the refund's amount.
    /// Without lines, the whole amount earns the default rate.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::domain::Item>>, max_items = 100)]
    items: Option<Vec<ItemBody>>,
    /// Sales only: the subscription this payment belongs to, 1 to 128
    /// characters. The subscription's first sale is attributed as any sale;
    /// later ones (renewals) go to the same agreement without a click, and
    /// earn as the rule's `recurring` says.
    #[serde(default)]
    #[schema(examples("sub_8812"))]
    subscription_id: Option<String>,
}

/// One order line as the shop sends it; checked into a `domain::Item`.
#[derive(Deserialize)]
pub(super) struct ItemBody {
    sku: String,
    #[serde(default)]
    category: Option<String>,
    amount_minor: i64,
    #[serde(default)]
    quantity: Option<i64>,
}

/// A conversion as stored, by id.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Receipt {
    conversion_id: ConversionId,
    /// `received` when new; a repeat answers the earlier conversion's status.
    status: ConversionStatus,
}

impl ConversionBody {
    fn parse(
        self,
        program: ProgramId,
        currency: Currency,
        now: DateTime<Utc>,
        request_id: Option<String>,
    ) -> Result<NewConversion, ApiError> {
        let mut c = Checker::new();
        c.check("order_id", check_reference(&self.order_id));
        if let Some(id) = &self.event_id {
            c.check("event_id", check_reference(id));
        }
        let event = Event::parse(&self.event).ok();
        if event.is_none() {
            c.fail("event", "unknown event (expected sale, lead or refund)");
        }
        if !(0..=MAX_AMOUNT_MINOR).contains(&self.amount_minor) {
            c.fail(
                "amount_minor",
                format!("must be from 0 to {MAX_AMOUNT_MINOR} minor units"),
            );
        } else if event == Some(Event::Refund) && self.amount_minor == 0 {
            c.fail("amount_minor", "a refund must refund something");
        }
        match Currency::parse(&self.currency) {
            Ok(cur) if cur == currency => {}
            Ok(_) => c.fail("currency", format!("the program's currency is {currency}")),
            Err(e) => c.fail("currency", e),
        }
        for (field, value) in [("click_id", &self.click_id), ("coupon", &self.coupon)] {
            if let Some(v) = value
                && (v.is_empty() || v.len() > MAX_CODE_LEN || v.chars().any(char::is_control))
            {
                c.fail(field, format!("must be 1 to {MAX_CODE_LEN} characters"));
            }
        }
        if let Some(sub) = &self.subscription_id {
            if event != Some(Event::Sale) {
                c.fail("subscription_id", "only a sale belongs to a subscription");
            }
            c.check("subscription_id", check_reference(sub));
        }
        let items = self
            .items
            .map(|lines| items(lines, event, self.amount_minor, &mut c));
        if let Some(at) = self.occurred_at {
            if at > now + Duration::minutes(5) {
                c.fail("occurred_at", "is in the future");
            } else if at < now - Duration::days(400) {
                c.fail("occurred_at", "is more than 400 days ago");
            }
        }
        c.finish(|| {
            Some(NewConversion {
                program,
                event_id: self.event_id,
                order_id: self.order_id,
                event: event?,
                amount_minor: self.amount_minor,
                currency,
                click_id: self.click_id,
                coupon: self.coupon,
                occurred_at: self.occurred_at,
                request_id,
                items: items.flatten(),
                subscription_id: self.subscription_id,
            })
        })
    }
}

/// Checks a sale's or refund's lines, recording each problem under its path.
pub(super) fn items(
    lines: Vec<ItemBody>,
    event: Option<Event>,
    amount_minor: i64,
    c: &mut Checker,
) -> Option<Vec<Item>> {
    if event == Some(Event::Lead) {
        c.fail("items", "a lead has no lines");
        return None;
    }
    let mut parsed = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        let category = match line.category.as_deref().map(Category::parse) {
            None => None,
            Some(Ok(category)) => Some(category),
            Some(Err(e)) => {
                c.fail(format!("items[{i}].category"), e);
                None
            }
        };
        parsed.push(Item {
            sku: line.sku,
            category,
            amount_minor: line.amount_minor,
            quantity: line.quantity.unwrap_or(1),
        });
    }
    match check_items(&parsed, amount_minor) {
        Ok(()) => Some(parsed),
        Err(e) => {
            c.fail(e.path, e.message);
            None
        }
    }
}

/// Reads the raw body (the signature covers its exact bytes), refusing
/// anything over the limit before reading it all.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(BODY_LIMIT));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Report a conversion (shop webhook)
///
/// POST /v1/programs/{id}/conversions: a shop reports a sale, lead or
/// refund. Answered 202 only after the conversion is committed; a repeat
/// answers 200 with the same id. Signed with `Mitra-Signature`, not with a
/// bearer token; the body is read as JSON whatever its content type.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/conversions",
    operation_id = "receiveConversion",
    tag = "conversions",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body = ConversionBody,
    responses(
        (status = 202, description = "Stored; attribution follows.", body = Receipt),
        (status = 200, description = "A repeat of an earlier conversion: its id and status.",
            body = Receipt),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::BadSignature),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("webhook_signature" = []))
)]
pub async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = receive_inner(&req, &path, payload, &state).await;
    state
        .metrics
        .webhook_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn receive_inner(
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(path, "program")?;
    let body = read_body(req, payload).await?;
    let ctx = state
        .webhook_contexts
        .get(&state.db, program)
        .await?
        .ok_or(ApiError::NotFound("program"))?;
    let header = req
        .headers()
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok());
    let now = Utc::now();
    signature::verify(header, &body, now.timestamp(), &ctx.secrets).map_err(|e| {
        tracing::info!(program = %program, reason = %e, "webhook signature refused");
        ApiError::BadSignature(match e {
            SignatureError::Missing => "the Mitra-Signature header is missing",
            SignatureError::Malformed => {
                "the Mitra-Signature header is malformed (expected t=<unix seconds>,v1=<hex>)"
            }
            SignatureError::Stale => "the signature's timestamp is more than 300 s away from now",
            SignatureError::Mismatch => {
                "no v1 signature matches the body under the program's webhook secrets"
            }
        })
    })?;
    let parsed: ConversionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
    let request_id = req
        .extensions()
        .get::<crate::http::middleware::RequestId>()
        .map(|r| r.0.clone());
    let new = parsed.parse(program, ctx.currency, now, request_id)?;
    let label = program.to_string();
    let event = new.event;
    let stored = state
        .conversion_writer
        .store(new)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(detail) => ApiError::Conflict(detail),
            StoreError::Db(e) => e.into(),
            StoreError::Batch {
                unavailable: true,
                message,
            } => ApiError::Unavailable(anyhow::anyhow!(message)),
            StoreError::Batch { message, .. } => ApiError::Internal(anyhow::anyhow!(message)),
        })?;
    let (status, id, conversion_status, outcome) = match stored {
        Stored::New(id) => (
            actix_web::http::StatusCode::ACCEPTED,
            id,
            ConversionStatus::Received,
            "received",
        ),
        Stored::Repeat { id, status } => (actix_web::http::StatusCode::OK, id, status, "duplicate"),
    };
    state
        .metrics
        .conversions
        .with_label_values(&[&label, event.as_str(), outcome])
        .inc();
    Ok(HttpResponse::build(status).json(Receipt {
        conversion_id: id,
        status: conversion_status,
    }))
}

/// An order's conversion with its refunds, or only refunds while the sale
/// has not arrived.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Order {
    Converted(Box<OrderConversion>),
    Waiting(WaitingOrder),
}

/// The order's sale or lead, its attribution and commissions, and its refunds.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderConversion {
    #[serde(flatten)]
    conversion: ConversionView,
    refunds: Vec<ConversionView>,
}

/// Refunds that arrived before their sale.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WaitingOrder {
    order_id: String,
    /// Always `waiting`.
    status: ConversionStatus,
    refunds: Vec<ConversionView>,
}

/// Read an order's conversions
///
/// GET /v1/programs/{id}/conversions/{order_id}: the order's sale or lead
/// with its attribution and commissions, and its refunds.
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/conversions/{order_id}",
    operation_id = "getConversion",
    tag = "conversions",
    params(
        ("id" = ProgramId, Path, description = "The program's id."),
        ("order_id" = String, Path, description = "The shop's order reference."),
    ),
    responses(
        (status = 200, description = "The order's conversions.", body = Order),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn by_order(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(&path.0, "program")?;
    who.require_program(program)?;
    let all = conversions::by_order(&state.db, program, &path.1).await?;
    let (mut primary, refunds): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|c| c.event != Event::Refund);
    if primary.is_empty() && refunds.is_empty() {
        return Err(ApiError::NotFound("conversion"));
    }
    // An order's refunds may arrive before its sale; then they are all there is.
    let body = match primary.pop() {
        Some(conversion) => Order::Converted(Box::new(OrderConversion {
            conversion,
            refunds,
        })),
        None => Order::Waiting(WaitingOrder {
            order_id: path.1.clone(),
            status: ConversionStatus::Waiting,
            refunds,
        }),
    };
    Ok(HttpResponse::Ok().json(body))
}
