//! Shop integrations: each platform's own webhooks, one endpoint per
//! platform per program, and how a program sets them up (the secrets, the
//! URLs to paste, the landing-page snippet's tag).
//!
//! A platform's webhook is verified with its own scheme and the secret the
//! program set for it, mapped by `crate::integrations`, and stored through
//! `conversions::store`, the path of mitra's own webhook: answered only once
//! committed. Whatever the platform sends that books nothing is answered
//! 200, so the platform never retries it; a conflict with what is stored
//! (an order edited after it was booked) is answered 200 too, logged and
//! counted (`outcome="conflict"`), since no retry could resolve it.

use super::conversions::{read_body, request_id, store, store_error};
use crate::conversions::aliases;
use crate::conversions::signature::{self, SignatureError};
use crate::conversions::webhook_context::{self, WebhookContext};
use crate::conversions::{Event, StoreError, Stored};
use crate::domain::{ConversionId, ConversionStatus, Platform, ProgramId};
use crate::http::auth::Principal;
use crate::http::error::{ApiError, FieldError};
use crate::http::state::AppState;
use crate::integrations::{self, Context, MapError, Mapped, shopify, stripe, woocommerce};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What became of a platform's webhook.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationReceipt {
    /// `stored` when it brought conversions (new or repeated) or named an
    /// order by another reference (Stripe's `invoice_payment.paid`), else
    /// `ignored`.
    #[schema(examples("stored"))]
    status: &'static str,
    /// Why nothing was stored, or why some of it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    conversions: Vec<IntegrationConversion>,
}

/// One conversion a platform's webhook stored.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationConversion {
    conversion_id: ConversionId,
    order_id: String,
    event: Event,
    /// `received` when new; a repeat answers the earlier conversion's status.
    status: ConversionStatus,
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The detail a platform's merchant reads in its webhook log.
fn signature_detail(platform: Platform, e: SignatureError) -> &'static str {
    use Platform as P;
    use SignatureError as E;
    match (platform, e) {
        (P::Shopify, E::Missing) => "the X-Shopify-Hmac-Sha256 header is missing",
        (P::Shopify, E::Malformed) => {
            "the X-Shopify-Hmac-Sha256 header is not a base64 HMAC-SHA256"
        }
        (P::Shopify, _) => "X-Shopify-Hmac-Sha256 matches none of the program's Shopify secrets",
        (P::WooCommerce, E::Missing) => "the X-WC-Webhook-Signature header is missing",
        (P::WooCommerce, E::Malformed) => {
            "the X-WC-Webhook-Signature header is not a base64 HMAC-SHA256"
        }
        (P::WooCommerce, _) => {
            "X-WC-Webhook-Signature matches none of the program's WooCommerce secrets"
        }
        (P::Stripe, E::Missing) => "the Stripe-Signature header is missing",
        (P::Stripe, E::Malformed) => {
            "the Stripe-Signature header is malformed (expected t=<unix seconds>,v1=<hex>)"
        }
        (P::Stripe, E::Stale) => "the Stripe-Signature timestamp is more than 300 s away from now",
        (P::Stripe, E::Mismatch) => "no v1 signature matches under the program's Stripe secrets",
    }
}

fn verify(
    platform: Platform,
    req: &HttpRequest,
    body: &[u8],
    now: i64,
    secrets: &[String],
) -> Result<(), SignatureError> {
    match platform {
        Platform::Shopify => {
            integrations::signature::verify_body(header(req, shopify::SIGNATURE), body, secrets)
        }
        Platform::WooCommerce => {
            integrations::signature::verify_body(header(req, woocommerce::SIGNATURE), body, secrets)
        }
        Platform::Stripe => signature::verify(header(req, stripe::SIGNATURE), body, now, secrets),
    }
}

fn map(
    platform: Platform,
    req: &HttpRequest,
    body: &[u8],
    ctx: &Context,
) -> Result<Mapped, ApiError> {
    let mapped = match platform {
        Platform::Shopify => {
            let topic = header(req, shopify::TOPIC).ok_or_else(|| {
                ApiError::BadRequest("the X-Shopify-Topic header is missing".into())
            })?;
            shopify::map(topic, body, ctx)
        }
        Platform::WooCommerce => woocommerce::map(header(req, woocommerce::TOPIC), body, ctx),
        Platform::Stripe => stripe::map(body, ctx),
    };
    mapped.map_err(|e| match e {
        MapError::Malformed(detail) => ApiError::BadRequest(detail),
        MapError::Invalid(errors) => ApiError::Validation(
            errors
                .into_iter()
                .map(|(field, message)| FieldError { field, message })
                .collect(),
        ),
    })
}

async fn receive(
    platform: Platform,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = receive_inner(platform, &req, &path, payload, &state).await;
    state
        .metrics
        .webhook_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn receive_inner(
    platform: Platform,
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(path, "program")?;
    let body = read_body(req, payload, state).await?;
    let ctx: std::sync::Arc<WebhookContext> = state
        .webhook_contexts
        .get(&state.db, program)
        .await?
        .ok_or(ApiError::NotFound("program"))?;
    // WooCommerce pings a webhook when it is saved, unsigned; it stores
    // nothing, so it is answered before any secret is needed.
    if platform == Platform::WooCommerce && woocommerce::is_ping(&body) {
        return Ok(HttpResponse::Ok().json(IntegrationReceipt {
            status: "ignored",
            reason: Some("a WooCommerce webhook ping".into()),
            conversions: vec![],
        }));
    }
    let now = Utc::now();
    let secrets = ctx.secrets_of(platform);
    if secrets.is_empty() {
        tracing::info!(program = %program, %platform, "webhook of a platform with no secret set");
        return Err(ApiError::BadSignature(match platform {
            Platform::Shopify => {
                "the program has no Shopify secret set (PUT .../integrations/shopify/secret)"
            }
            Platform::WooCommerce => {
                "the program has no WooCommerce secret set (PUT .../integrations/woocommerce/secret)"
            }
            Platform::Stripe => {
                "the program has no Stripe secret set (PUT .../integrations/stripe/secret)"
            }
        }));
    }
    verify(platform, req, &body, now.timestamp(), &secrets).map_err(|e| {
        tracing::info!(program = %program, %platform, reason = %e, "platform webhook signature refused");
        ApiError::BadSignature(signature_detail(platform, e))
    })?;
    let mapping = Context {
        program,
        currency: ctx.currency,
        now,
        request_id: request_id(req),
    };
    let mut conversions = match map(platform, req, &body, &mapping)? {
        Mapped::Ignore(reason) => {
            tracing::info!(program = %program, %platform, %reason, "platform webhook ignored");
            return Ok(HttpResponse::Ok().json(IntegrationReceipt {
                status: "ignored",
                reason: Some(reason),
                conversions: vec![],
            }));
        }
        Mapped::Alias { alias, order_id } => {
            aliases::remember(&state.db, program, &alias, &order_id).await?;
            return Ok(HttpResponse::Ok().json(IntegrationReceipt {
                status: "stored",
                reason: Some(format!(
                    "{alias} names order {order_id}: its refunds go to that order"
                )),
                conversions: vec![],
            }));
        }
        Mapped::Store(conversions) => conversions,
    };
    // A refund naming its order by an alias goes to the order itself.
    let refunded: Vec<String> = conversions
        .iter()
        .filter(|c| c.event == Event::Refund)
        .map(|c| c.order_id.clone())
        .collect();
    let orders = aliases::resolve(&state.db, program, &refunded).await?;
    for c in conversions.iter_mut().filter(|c| c.event == Event::Refund) {
        if let Some(order_id) = orders.get(&c.order_id) {
            c.order_id.clone_from(order_id);
        }
    }
    // Together, so they ride one group commit.
    let described: Vec<(String, Event)> = conversions
        .iter()
        .map(|c| (c.order_id.clone(), c.event))
        .collect();
    let results = futures::future::join_all(conversions.into_iter().map(|c| store(state, c))).await;
    let mut receipt = IntegrationReceipt {
        status: "stored",
        reason: None,
        conversions: vec![],
    };
    let mut any_new = false;
    for ((order_id, event), result) in described.into_iter().zip(results) {
        let (conversion_id, status) = match result {
            Ok(Stored::New(id)) => {
                any_new = true;
                (id, ConversionStatus::Received)
            }
            Ok(Stored::Repeat { id, status }) => (id, status),
            Err(StoreError::Conflict(detail)) => {
                tracing::warn!(program = %program, %platform, %order_id, %detail,
                    "platform webhook conflicts with a stored conversion; acknowledged");
                receipt.reason = Some(detail);
                continue;
            }
            Err(e) => return Err(store_error(e)),
        };
        receipt.conversions.push(IntegrationConversion {
            conversion_id,
            order_id,
            event,
            status,
        });
    }
    if receipt.conversions.is_empty() {
        receipt.status = "ignored";
    }
    let status = if any_new {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(receipt))
}

/// Receive a Shopify webhook
///
/// POST /v1/programs/{id}/integrations/shopify: Shopify's `orders/paid`
/// (or `orders/create`) and `refunds/create` webhooks, as Shopify sends them.
/// Verified with `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body)
/// under the program's Shopify secret; the topic is `X-Shopify-Topic`. A paid
/// order is a sale of its subtotal, a refund takes back its lines'
/// subtotals; other topics are answered 200 and ignored.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/integrations/shopify",
    operation_id = "receiveShopifyWebhook",
    tag = "integrations",
    params(
        ("id" = ProgramId, Path, description = "The program's id."),
        ("X-Shopify-Topic" = String, Header, description = "`orders/paid`, `orders/create`, `refunds/create`; others are ignored."),
    ),
    request_body(content = serde_json::Value, description = "The order or refund, as Shopify's REST Admin API writes it."),
    responses(
        (status = 202, description = "Stored; attribution follows.", body = IntegrationReceipt),
        (status = 200, description = "A repeat of what was stored, or nothing to book (ignored).", body = IntegrationReceipt),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::BadSignature),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("shopify_hmac" = []))
)]
pub async fn shopify(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    receive(Platform::Shopify, req, path, payload, state).await
}

/// Receive a WooCommerce webhook
///
/// POST /v1/programs/{id}/integrations/woocommerce: WooCommerce's
/// `order.created` and `order.updated` webhooks, as WooCommerce sends them.
/// Verified with `X-WC-Webhook-Signature` (base64 HMAC-SHA256 of the raw
/// body) under the program's WooCommerce secret; the topic is
/// `X-WC-Webhook-Topic`. A paid order is a sale of its goods, its refunds
/// take back their share; unpaid orders, pings and other topics are
/// answered 200 and ignored.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/integrations/woocommerce",
    operation_id = "receiveWooCommerceWebhook",
    tag = "integrations",
    params(
        ("id" = ProgramId, Path, description = "The program's id."),
        ("X-WC-Webhook-Topic" = Option<String>, Header, description = "`order.created`, `order.updated`; others are ignored."),
    ),
    request_body(
        content = Option<serde_json::Value>,
        description = "The order, as WooCommerce's REST API (v3) writes it, for the \
            `order.created` and `order.updated` topics. Other topics book nothing and are \
            answered 200 whatever they carry, with or without a body; so is the ping \
            WooCommerce sends when a webhook is saved (`webhook_id=<n>`, form-encoded)."
    ),
    responses(
        (status = 202, description = "Stored; attribution follows.", body = IntegrationReceipt),
        (status = 200, description = "A repeat of what was stored, or nothing to book (ignored).", body = IntegrationReceipt),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::BadSignature),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("woocommerce_signature" = []))
)]
pub async fn woocommerce(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    receive(Platform::WooCommerce, req, path, payload, state).await
}

/// Receive a Stripe webhook
///
/// POST /v1/programs/{id}/integrations/stripe: Stripe's
/// `checkout.session.completed`, `invoice.paid`, `charge.refunded` and
/// `invoice_payment.paid` events, as Stripe sends them. Verified with
/// `Stripe-Signature` (`t=...,v1=...`, within 300 s) under the program's
/// Stripe endpoint secret. Other event types are answered 200 and ignored.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/integrations/stripe",
    operation_id = "receiveStripeWebhook",
    tag = "integrations",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body(content = serde_json::Value, description = "A Stripe event."),
    responses(
        (status = 202, description = "Stored; attribution follows.", body = IntegrationReceipt),
        (status = 200, description = "A repeat of what was stored, or nothing to book (ignored).", body = IntegrationReceipt),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::BadSignature),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("stripe_signature" = []))
)]
pub async fn stripe(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    receive(Platform::Stripe, req, path, payload, state).await
}

/// Setting a platform's secret.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SetPlatformSecret)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    /// The secret the platform signs with: Shopify's app client secret (or
    /// the secret its webhook settings show), WooCommerce's webhook secret,
    /// Stripe's endpoint signing secret (`whsec_...`). 8 to 256 printable
    /// characters.
    #[schema(pattern = "^[!-~]{8,256}$", examples("whsec_8Qm2vR..."))]
    secret: String,
    /// How long the secret set before keeps verifying (default 24 h, at most 30 days).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 720, default = 24)]
    grace_hours: Option<i64>,
}

/// One platform's integration with a program.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlatformIntegration {
    platform: Platform,
    /// Where the platform sends its webhooks.
    #[schema(format = "uri")]
    webhook_url: String,
    /// What to subscribe the webhook to at the platform.
    #[schema(examples(json!(["orders/paid", "refunds/create"])))]
    events: Vec<&'static str>,
    /// Whether a secret is set: the endpoint refuses everything until one is.
    secret_set: bool,
    secret_set_at: Option<DateTime<Utc>>,
}

/// The landing-page snippet to paste into the shop's pages.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SnippetSetup {
    #[schema(format = "uri")]
    script_url: String,
    /// The tag to paste, with the program's attribution window.
    #[schema(examples(r#"<script src="https://go.shop.example/mitra.js?v=1a2b3c4d5e6f" data-days="30" async></script>"#))]
    tag: String,
}

/// Everything a program pastes to set up its shop.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Integrations {
    snippet: SnippetSetup,
    platforms: Vec<PlatformIntegration>,
}

fn events_of(platform: Platform) -> Vec<&'static str> {
    match platform {
        Platform::Shopify => vec!["orders/paid", "refunds/create"],
        Platform::WooCommerce => vec!["order.created", "order.updated"],
        Platform::Stripe => vec![
            "checkout.session.completed",
            "invoice.paid",
            "charge.refunded",
            // API versions from 2025-03-31 on: ties a refund to its invoice.
            "invoice_payment.paid",
        ],
    }
}

fn integration(
    state: &AppState,
    program: ProgramId,
    platform: Platform,
    set_at: Option<DateTime<Utc>>,
) -> PlatformIntegration {
    let base = state.settings.public_url.as_str().trim_end_matches('/');
    PlatformIntegration {
        platform,
        webhook_url: format!("{base}/v1/programs/{program}/integrations/{platform}"),
        events: events_of(platform),
        secret_set: set_at.is_some(),
        secret_set_at: set_at,
    }
}

/// Read a program's integrations
///
/// GET /v1/programs/{id}/integrations: the landing-page snippet's tag, and
/// for each platform its webhook URL, the events to subscribe and whether
/// its secret is set (never the secret).
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/integrations",
    operation_id = "getIntegrations",
    tag = "integrations",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    responses(
        (status = 200, description = "The program's integrations.", body = Integrations),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path).await?;
    let set = webhook_context::platform_secrets(&state.db, program.id).await?;
    let platforms = Platform::ALL
        .iter()
        .map(|p| {
            let at = set.iter().find(|s| s.platform == *p).map(|s| s.set_at);
            integration(&state, program.id, *p, at)
        })
        .collect();
    let script_url = super::snippet::versioned_url(&state.settings.public_url);
    Ok(HttpResponse::Ok().json(Integrations {
        snippet: SnippetSetup {
            tag: format!(
                r#"<script src="{script_url}" data-days="{}" async></script>"#,
                program.attribution_window_days
            ),
            script_url,
        },
        platforms,
    }))
}

/// Set a platform's secret
///
/// PUT /v1/programs/{id}/integrations/{platform}/secret: the secret the
/// platform signs this program's webhooks with. The one set before keeps
/// verifying for `grace_hours`, so a rotation at the platform loses nothing.
#[utoipa::path(
    put,
    path = "/v1/programs/{id}/integrations/{platform}/secret",
    operation_id = "setIntegrationSecret",
    tag = "integrations",
    params(
        ("id" = ProgramId, Path, description = "The program's id."),
        ("platform" = Platform, Path, description = "`shopify`, `woocommerce` or `stripe`."),
    ),
    request_body = SecretBody,
    responses(
        (status = 200, description = "Set; the platform's webhooks verify with it now.", body = PlatformIntegration),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn set_secret(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
    body: super::body::Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path.0).await?.id;
    let platform = Platform::parse(&path.1).map_err(|_| ApiError::NotFound("platform"))?;
    let body: SecretBody = body.json()?;
    let mut c = super::validate::Checker::new();
    let printable = body.secret.chars().all(|ch| ch.is_ascii_graphic());
    if !(8..=256).contains(&body.secret.len()) || !printable {
        c.fail(
            "secret",
            "must be 8 to 256 printable characters without spaces",
        );
    }
    let hours = body.grace_hours.unwrap_or(24);
    if !(0..=720).contains(&hours) {
        c.fail("grace_hours", "must be from 0 to 720");
    }
    c.finish(|| Some(()))?;
    let grace = std::time::Duration::from_secs(hours as u64 * 3600);
    let set =
        webhook_context::set_platform_secret(&state.db, program, platform, &body.secret, grace)
            .await?;
    state.webhook_contexts.forget(program);
    tracing::info!(program = %program, %platform, grace_hours = hours, "platform secret set");
    Ok(HttpResponse::Ok().json(integration(&state, program, platform, Some(set.set_at))))
}
