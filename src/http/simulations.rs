//! POST /v1/programs/{id}/simulate: what an order would earn, and why,
//! booking nothing.

use super::body::Body;
use super::conversions::{ItemBody, items};
use super::programs::Readers;
use super::validate::Checker;
use crate::attribution::simulate::{self, Request, SimulateError, Simulation};
use crate::conversions::MAX_AMOUNT_MINOR;
use crate::domain::{AgreementId, Currency, EarningEvent, MAX_THRESHOLD};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

/// An order as the webhook takes it (`event`, `amount_minor`, `currency`,
/// `items`, `subscription_id`, `occurred_at`; other webhook fields are
/// ignored: attribution is not simulated), and what to quote.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SimulationFields)]
pub struct SimulateBody {
    /// `sale` or `lead`.
    #[schema(value_type = EarningEvent)]
    event: String,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, examples(12500))]
    amount_minor: i64,
    /// Must be the program's currency.
    #[schema(value_type = crate::domain::Currency)]
    currency: String,
    /// The order's lines, summing to `amount_minor`, as on the webhook.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::domain::Item>>, min_items = 1, max_items = 100)]
    items: Option<Vec<ItemBody>>,
    /// A renewal of this subscription: quoted for its first payment's
    /// agreement only, as a renewal.
    #[serde(default)]
    #[schema(schema_with = super::conversions::subscription_id_schema)]
    subscription_id: Option<String>,
    /// When the order would happen (default: now): it picks the terms
    /// versions in force and the month; within 400 days of now.
    #[serde(default)]
    #[schema(schema_with = super::conversions::optional_time_schema)]
    occurred_at: Option<DateTime<Utc>>,
    /// Quote only this agreement (default: every agreement of the program
    /// the caller may see, at most 100).
    #[serde(default)]
    #[schema(value_type = Option<AgreementId>)]
    agreement_id: Option<String>,
    /// Price in this month instead of the real one so far: "what if I had
    /// made 20 sales this month". Nothing is re-rated in it.
    #[serde(default)]
    month_to_date: Option<MonthToDateBody>,
}

/// A hypothetical month so far.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = MonthToDateRequest)]
#[serde(deny_unknown_fields)]
pub struct MonthToDateBody {
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64, examples(20))]
    sales: i64,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64, examples(400000))]
    revenue_minor: i64,
}

/// The request as documented: its fields, and what the event requires of
/// them (`SimulateBody::parse` refuses the rest, 422): a lead has no lines.
struct SimulationRequestDoc;

impl utoipa::PartialSchema for SimulationRequestDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Ref, Type};
        let event = |word: EarningEvent| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([word.as_str()]))
        };
        AllOfBuilder::new()
            .description(Some(
                "An order as the webhook takes it (`event`, `amount_minor`, `currency`, \
                 `items`, `subscription_id`, `occurred_at`; other webhook fields are ignored: \
                 attribution is not simulated), and what to quote. A lead has no `items`.",
            ))
            .item(Ref::from_schema_name("SimulationFields"))
            .item(
                OneOfBuilder::new()
                    .item(ObjectBuilder::new().property("event", event(EarningEvent::Sale)))
                    .item(
                        ObjectBuilder::new()
                            .property("event", event(EarningEvent::Lead))
                            .property("items", ObjectBuilder::new().schema_type(Type::Null)),
                    ),
            )
            .into()
    }
}

impl utoipa::ToSchema for SimulationRequestDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "SimulationRequest".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("SimulationFields".into(), SimulateBody::schema()));
        <SimulateBody as utoipa::ToSchema>::schemas(schemas);
    }
}

impl SimulateBody {
    fn parse(
        self,
        program: crate::domain::ProgramId,
        currency: Currency,
        now: DateTime<Utc>,
    ) -> Result<Request, ApiError> {
        let mut c = Checker::new();
        let event = EarningEvent::parse(&self.event).ok();
        if event.is_none() {
            c.fail("event", "a sale or a lead earns (expected sale or lead)");
        }
        if !(0..=MAX_AMOUNT_MINOR).contains(&self.amount_minor) {
            c.fail(
                "amount_minor",
                format!("must be from 0 to {MAX_AMOUNT_MINOR} minor units"),
            );
        }
        match Currency::parse(&self.currency) {
            Ok(cur) if cur == currency => {}
            Ok(_) => c.fail("currency", format!("the program's currency is {currency}")),
            Err(e) => c.fail("currency", e),
        }
        let lines = self.items.map(|lines| {
            items(
                lines,
                event.map(crate::domain::Event::from),
                self.amount_minor,
                &mut c,
            )
        });
        if let Some(sub) = &self.subscription_id {
            c.check("subscription_id", crate::conversions::check_reference(sub));
        }
        let agreement = self
            .agreement_id
            .as_deref()
            .and_then(|a| c.check("agreement_id", AgreementId::parse(a)));
        let occurred_at = self.occurred_at.unwrap_or(now);
        if occurred_at > now + Duration::days(400) || occurred_at < now - Duration::days(400) {
            c.fail("occurred_at", "must be within 400 days of now");
        }
        if let Some(m) = &self.month_to_date {
            for (field, n) in [("sales", m.sales), ("revenue_minor", m.revenue_minor)] {
                if !(0..=MAX_THRESHOLD).contains(&n) {
                    c.fail(
                        format!("month_to_date.{field}"),
                        format!("must be from 0 to {MAX_THRESHOLD}"),
                    );
                }
            }
        }
        c.finish(|| {
            Some(Request {
                program,
                event: event?,
                amount_minor: self.amount_minor,
                currency,
                items: lines.flatten(),
                subscription_id: self.subscription_id,
                occurred_at,
                agreement,
                partner: None,
                month_to_date: self.month_to_date.map(|m| (m.sales, m.revenue_minor)),
                hypothetical_renewal: false,
            })
        })
    }
}

/// Simulate what an order would earn
///
/// Prices an order (as the shop would post it) under the program's terms
/// and each agreement's, as booking would in the same month: every
/// commission it would book (the order's, bonuses it would reach, a tier
/// re-rating), each with the rule, tier, category lines and versions behind
/// it, or why it would earn nothing. Books nothing. A partner key sees its
/// own agreements, while it is an active member of the program; the admin
/// and the program key see every agreement (at most 100; name
/// `agreement_id` for one). Partners who are not members earn nothing, as
/// in booking.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/simulate",
    operation_id = "simulateOrder",
    tag = "programs",
    params(("id" = crate::domain::ProgramId, Path, description = "The program's id.")),
    request_body = SimulationRequestDoc,
    responses(
        (status = 200, description = "What each agreement's partners would earn.", body = Simulation),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn simulate(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::programs::readable(&state, who, &path, Readers::Members).await?;
    let body: SimulateBody = body.json()?;
    let now = Utc::now();
    let mut request = body.parse(program.id, program.currency, now)?;
    request.partner = who.partner();
    let simulation = simulate::simulate(&state.db, &request, now)
        .await
        .map_err(|e| match e {
            SimulateError::NoProgram => ApiError::NotFound("program"),
            SimulateError::Subscription(reason) => ApiError::Conflict(format!(
                "the subscription's first payment earns nothing to renew ({reason})"
            )),
            SimulateError::Other(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(simulation))
}
