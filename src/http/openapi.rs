//! The OpenAPI 3.1 document served at `GET /openapi.json`, generated from
//! the handlers' `#[utoipa::path]` attributes and the types' `ToSchema`
//! derives, built once per process.

use crate::http::error::ApiError;
use crate::http::{
    agreements, balances, claims, commissions, conversions, enrollments, integrations, links, ops,
    partners, payouts, programs, redirect, reports, simulations, snippet, statements, users,
    webhook_endpoints, webhook_secrets,
};
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Ref, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Header, RefOr};

mod bodies;
mod operation_links;

use bodies::RequestBodies;
use operation_links::Links;

/// Every operation of a path.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// One reusable error response: problem details, with an example made by
/// the error itself, so the documented `type` and `title` are the served ones.
fn problem_response(description: &str, example: ApiError) -> ResponseBuilder {
    let example = serde_json::to_value(example.problem()).expect("a problem serializes");
    ResponseBuilder::new().description(description).content(
        crate::http::error::PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .example(Some(example))
            .build(),
    )
}

fn string_header(description: &str) -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
    header.description = Some(description.to_owned());
    header
}

/// Declares the reusable error responses (`#/components/responses/...`)
/// the operations refer to, each a unit type for `response = ...`.
macro_rules! problem_responses {
    ($( $(#[doc = $doc:literal])+ $name:ident => $build:expr ),* $(,)?) => {
        $(
            $(#[doc = $doc])+
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    let build: fn() -> ResponseBuilder = $build;
                    (stringify!($name), build().build().into())
                }
            }
        )*
    };
}

problem_responses! {
    /// 400: the body is not JSON of the expected shape, or a query parameter is malformed or unknown.
    BadRequest => || problem_response(
        "The body is not JSON of the expected shape, or a query parameter is malformed or unknown.",
        ApiError::BadRequest("malformed JSON body: missing field `name` at line 1 column 2".into()),
    ),
    /// 401: no bearer token, or one nobody issued.
    Unauthorized => || problem_response(
        "No `Authorization: Bearer` token, or one nobody issued.",
        ApiError::Unauthorized,
    )
    .header("WWW-Authenticate", string_header("`Bearer`.")),
    /// 401: the webhook's signature is missing, malformed, stale or wrong.
    BadSignature => || problem_response(
        "The signature (`Mitra-Signature`, Standard Webhooks' `webhook-signature`, or the \
         platform's own) is missing, malformed, more than 300 s away from now, or matches \
         none of the program's secrets.",
        ApiError::BadSignature("the Mitra-Signature header is missing"),
    ),
    /// 403: the caller is known but may not do this.
    Forbidden => || problem_response(
        "The caller is known but may not do this.",
        ApiError::Forbidden("only the admin token may do this"),
    ),
    /// 404: no such object, or another tenant's (indistinguishable on purpose).
    NotFound => || problem_response(
        "No such object, or one that belongs to another tenant (indistinguishable on purpose).",
        ApiError::NotFound("program"),
    ),
    /// 409: the request conflicts with the current state.
    Conflict => || problem_response(
        "The request conflicts with the current state.",
        ApiError::Conflict("the agreement is at version 3, not 2".into()),
    ),
    /// 408: the body did not arrive in time.
    RequestTimeout => || problem_response(
        "The body did not arrive within `MITRA_BODY_TIMEOUT_MS` (10 s by default).",
        ApiError::RequestTimeout,
    ),
    /// 413: the body is over 64 KiB.
    PayloadTooLarge => || problem_response(
        "The body is over 64 KiB.",
        ApiError::PayloadTooLarge(crate::http::JSON_LIMIT),
    ),
    /// 415: the body is not `application/json`.
    UnsupportedMediaType => || problem_response(
        "The body is not `application/json`.",
        ApiError::UnsupportedMediaType,
    ),
    /// 422: well-formed JSON with invalid values, each listed in `errors`.
    ValidationFailed => || problem_response(
        "Well-formed JSON whose values are invalid; `errors` lists every invalid field.",
        ApiError::invalid("currency", "`EURO` is not an active ISO 4217 currency code"),
    ),
    /// 503: Postgres or Redis did not answer; retry later.
    Unavailable => || problem_response(
        "A back end (Postgres, Redis) did not answer; retry after the `Retry-After` seconds.",
        ApiError::Unavailable(anyhow::anyhow!("example")),
    )
    .header("Retry-After", string_header("Seconds to wait before retrying.")),
    /// 500: anything else; logged on the server with its context.
    Internal => || problem_response(
        "An unexpected error, logged on the server; the answer says nothing more.",
        ApiError::Internal(anyhow::anyhow!("example")),
    ),
}

/// The security schemes operations name in their `security`.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer = |description: &str, format: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(format)
                    .description(Some(description))
                    .build(),
            )
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            bearer(
                "`Authorization: Bearer <MITRA_ADMIN_TOKEN>`: the admin token may do everything.",
                "admin token",
            ),
        );
        components.add_security_scheme(
            "program_key",
            bearer(
                "`Authorization: Bearer mitra_prg_...`: a program's API key, shown once when the \
                 program is created; it acts on its own program only.",
                "mitra_prg_...",
            ),
        );
        components.add_security_scheme(
            "partner_key",
            bearer(
                "`Authorization: Bearer mitra_ptn_...`: a partner's API key, shown once when the \
                 partner is created; it acts on its own links, commissions and reports.",
                "mitra_ptn_...",
            ),
        );
        components.add_security_scheme(
            "webhook_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Mitra-Signature",
                "`Mitra-Signature: t=<unix seconds>,v1=<hex>`, where hex is HMAC-SHA256 over \
                 `\"{t}.{raw body}\"` with the program's webhook secret (`whsec_...`). `t` must be \
                 within 300 s of now; several `v1=` values may be given (secret rotation), and \
                 one matching is enough.",
            ))),
        );
        let platform = |header: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                header,
                description,
            )))
        };
        components.add_security_scheme(
            "shopify_hmac",
            platform(
                "X-Shopify-Hmac-Sha256",
                "Shopify's signature: the base64 of HMAC-SHA256 over the raw body, keyed with \
                 the program's Shopify secret (`PUT /v1/programs/{id}/integrations/shopify/secret`).",
            ),
        );
        components.add_security_scheme(
            "woocommerce_signature",
            platform(
                "X-WC-Webhook-Signature",
                "WooCommerce's signature: the base64 of HMAC-SHA256 over the raw body, keyed \
                 with the program's WooCommerce secret \
                 (`PUT /v1/programs/{id}/integrations/woocommerce/secret`).",
            ),
        );
        components.add_security_scheme(
            "stripe_signature",
            platform(
                "Stripe-Signature",
                "Stripe's signature: `t=<unix seconds>,v1=<hex>`, HMAC-SHA256 over \
                 `\"{t}.{raw body}\"` keyed with the program's Stripe endpoint secret \
                 (`PUT /v1/programs/{id}/integrations/stripe/secret`); `t` within 300 s of now.",
            ),
        );
        components.add_security_scheme(
            "standard_webhooks",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "webhook-signature",
                "Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp` \
                 (unix seconds, within 300 s of now) and `webhook-signature: v1,<base64>` \
                 (several may be given, space-separated), the base64 of HMAC-SHA256 over \
                 `\"{webhook-id}.{webhook-timestamp}.{raw body}\"` keyed with the base64-decoded \
                 part of the program's webhook secret after `whsec_`.",
            ))),
        );
    }
}

/// HEAD /l/{code}: the same operation as GET, under its own operation id.
struct RedirectHead;

impl utoipa::Modify for RedirectHead {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(item) = openapi.paths.paths.get_mut(crate::http::REDIRECT_ROUTE)
            && let Some(get) = &item.get
        {
            let mut head = get.clone();
            head.operation_id = Some("followLinkHead".into());
            head.summary = Some("Check a tracked link without a body (HEAD)".into());
            head.description = Some(
                "As `GET /l/{code}`, without a body. Counted as a click, flagged as a bot's \
                 (link previews and crawlers send HEAD)."
                    .into(),
            );
            item.head = Some(head);
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "mitra",
        description = "Affiliate link tracking and commission service. JSON over HTTP; ids are \
            opaque prefixed strings; times are RFC 3339 UTC; money is integer minor units with an \
            ISO 4217 currency. Every error is an RFC 9457 problem (`application/problem+json`). \
            Lists answer `{\"data\": [...], \"next_cursor\": ...}`; pass `?cursor=` (and \
            `?limit=`, at most 500) for the next page.",
    ),
    paths(
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
        redirect::redirect,
        programs::create,
        programs::list,
        programs::get,
        programs::update,
        programs::versions,
        programs::version,
        simulations::simulate,
        programs::set_listing,
        programs::list_public,
        enrollments::invite,
        enrollments::list_for_program,
        enrollments::apply,
        enrollments::list_for_partner,
        enrollments::get,
        enrollments::accept,
        enrollments::decline,
        enrollments::approve,
        enrollments::reject,
        enrollments::deactivate,
        enrollments::ban,
        enrollments::answer_invitation,
        conversions::receive,
        conversions::by_order,
        webhook_secrets::roll,
        integrations::list,
        integrations::set_secret,
        integrations::shopify,
        integrations::woocommerce,
        integrations::stripe,
        snippet::script,
        agreements::create,
        agreements::list_for_program,
        agreements::get,
        agreements::update,
        agreements::versions,
        agreements::version,
        partners::create,
        partners::list,
        partners::get,
        commissions::list,
        balances::balance,
        balances::statement,
        commissions::approve,
        commissions::reject,
        payouts::create,
        payouts::list,
        payouts::get,
        statements::key,
        statements::statement,
        statements::chain,
        claims::open,
        claims::list,
        claims::set_policy,
        claims::get,
        claims::comment,
        claims::accept,
        claims::decline,
        webhook_endpoints::create,
        webhook_endpoints::list,
        webhook_endpoints::get,
        webhook_endpoints::delete,
        webhook_endpoints::enable,
        webhook_endpoints::test_fire,
        webhook_endpoints::deliveries,
        webhook_endpoints::replay,
        reports::get,
        links::create,
        links::list,
        links::get,
        links::disable,
        users::invite_program_user,
        users::invite_partner_user,
        users::login_link,
        users::password_reset,
    ),
    // Schemas query parameters refer to (responses and bodies register theirs).
    components(schemas(crate::http::pagination::Cursor), responses(
        BadRequest,
        Unauthorized,
        BadSignature,
        Forbidden,
        NotFound,
        Conflict,
        RequestTimeout,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        Unavailable,
        Internal,
    )),
    modifiers(&SecuritySchemes, &RedirectHead, &RequestBodies, &Links),
    tags(
        (name = "ops", description = "Health, readiness, metrics and this document; no credentials."),
        (name = "redirect", description = "The tracked links shoppers follow."),
        (name = "programs", description = "Merchants' affiliate programs."),
        (name = "partners", description = "Affiliates, influencers, resellers and other partners."),
        (name = "enrollments", description = "Partners joining programs: invitations, applications, and the program's decisions."),
        (name = "agreements", description = "Versioned terms between a program and its partners."),
        (name = "links", description = "Tracked links issued under an agreement."),
        (name = "conversions", description = "Sales, leads and refunds reported by shops."),
        (name = "integrations", description = "Shopify, WooCommerce and Stripe webhooks as those \
            platforms send them, and the landing-page snippet."),
        (name = "commissions", description = "What partners earn: commissions, balances, statements."),
        (name = "payouts", description = "Paying approved commissions."),
        (name = "claims", description = "Partners' claims about untracked, incorrect or declined \
            commissions, and the program's answers."),
        (name = "webhooks", description = "Outgoing webhooks: endpoints programs and partners \
            register, deliveries signed the Standard Webhooks way, every attempt, replays."),
        (name = "statements", description = "Statements a partner can verify: the ledger chained \
            per program, signed with the program's Ed25519 statement key."),
        (name = "reports", description = "Daily clicks, conversions, revenue and commission."),
        (name = "accounts", description = "People who sign in to the portal at /portal: invitations, one-time sign-in links, password resets."),
    )
)]
struct ApiDoc;

/// The document, built on first use.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(<ApiDoc as utoipa::OpenApi>::openapi)
}

/// The document as JSON, serialized once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_json()
            .expect("the OpenAPI document serializes")
    })
}
