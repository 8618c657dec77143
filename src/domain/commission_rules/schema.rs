//! The rules' OpenAPI schemas, written next to the types they describe: a
//! rate is exactly one of `percent_bps` or `flat_minor`, which derives
//! cannot say, so each schema is built here by hand, with an example.

use super::{
    Bonus, CommissionRules, EarningEvent, MAX_BONUSES, MAX_CATEGORIES, MAX_FLAT_MINOR,
    MAX_RECURRING_MONTHS, MAX_THRESHOLD, MAX_TIER_STEPS, Recurring, Rule, TierStep, Tiers,
};
use crate::domain::Category;
use serde_json::json;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Ref, Schema,
    Type,
};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

fn closed() -> Option<AdditionalProperties<Schema>> {
    Some(AdditionalProperties::FreeForm(false))
}

fn integer(description: &str, min: i64, max: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(description))
}

const PERCENT: &str = "Basis points of the amount (1000 = 10%), rounded half away from zero to a \
                       minor unit.";
const FLAT: &str = "A fixed amount in minor units of the program's currency.";

/// `percent_bps` and `flat_minor` as optional properties of a larger object,
/// with "exactly one of them" beside it.
fn with_rate(object: ObjectBuilder) -> (ObjectBuilder, OneOfBuilder) {
    let object = object
        .property("percent_bps", integer(PERCENT, 0, 10_000))
        .property("flat_minor", integer(FLAT, 0, MAX_FLAT_MINOR));
    let one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().required("percent_bps"))
        .item(ObjectBuilder::new().required("flat_minor"));
    (object, one_of)
}

/// In the OpenAPI document: exactly one of `percent_bps` or `flat_minor`.
impl PartialSchema for Rule {
    fn schema() -> RefOr<Schema> {
        let kind = |name: &str, description: &str, max: i64, example: i64| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(name, integer(description, 0, max))
                .required(name)
                .additional_properties(closed())
                .examples([json!({ name: example })])
        };
        OneOfBuilder::new()
            .description(Some(
                "A rate: a share of the amount in basis points (1000 = 10%, rounded half away \
                 from zero to a minor unit), or a fixed amount in minor units of the program's \
                 currency.",
            ))
            .item(kind(
                "percent_bps",
                "Basis points of the amount.",
                10_000,
                1000,
            ))
            .item(kind(
                "flat_minor",
                "A fixed amount in minor units.",
                MAX_FLAT_MINOR,
                200,
            ))
            .into()
    }
}

impl ToSchema for Rule {}

impl PartialSchema for TierStep {
    fn schema() -> RefOr<Schema> {
        let (object, one_of) = with_rate(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    "from",
                    integer(
                        "From this sale of the month (by count, 21 = the 21st) or this month's \
                         revenue in minor units (by revenue, this sale included) on.",
                        1,
                        MAX_THRESHOLD,
                    ),
                )
                .required("from")
                .additional_properties(closed()),
        );
        AllOfBuilder::new()
            .description(Some(
                "A tier step: the default rate from `from` on, replacing the rate below it.",
            ))
            .item(object)
            .item(one_of)
            .examples([json!({"from": 21, "percent_bps": 1200})])
            .into()
    }
}

impl ToSchema for TierStep {}

impl PartialSchema for Tiers {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The default rate steps up with the agreement's sales in the calendar month \
                 (UTC), counted by `count` or by `revenue`, this sale included. With `rerate`, \
                 reaching a step also raises the month's earlier sales to the new rate, booked \
                 as one `tier_adjustment` commission; without it (the default) only this and \
                 later sales earn it.",
            ))
            .property("by", Ref::from_schema_name("TierBasis"))
            .required("by")
            .property(
                "rerate",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .default(Some(json!(false))),
            )
            .property(
                "steps",
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("TierStep"))
                    .min_items(Some(1))
                    .max_items(Some(MAX_TIER_STEPS))
                    .description(Some("In increasing order of `from`.")),
            )
            .required("steps")
            .additional_properties(closed())
            .examples([json!({"by": "count", "rerate": false, "steps": [
                {"from": 21, "percent_bps": 1200}, {"from": 51, "percent_bps": 1500}
            ]})])
            .into()
    }
}

impl ToSchema for Tiers {}

impl PartialSchema for Bonus {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A flat amount booked once per agreement and calendar month, when the month's \
                 sales (`count`) or revenue (`revenue`, minor units) reach `at`; split among \
                 the agreement's partners like any commission, as a `bonus` commission.",
            ))
            .property("by", Ref::from_schema_name("TierBasis"))
            .required("by")
            .property("at", integer("The milestone.", 1, MAX_THRESHOLD))
            .required("at")
            .property("flat_minor", integer(FLAT, 0, MAX_FLAT_MINOR))
            .required("flat_minor")
            .additional_properties(closed())
            .examples([json!({"by": "count", "at": 50, "flat_minor": 5000})])
            .into()
    }
}

impl ToSchema for Bonus {}

impl PartialSchema for Recurring {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Subscription renewals (sales with the `subscription_id` of an earlier sale) \
                 are attributed to the first payment's agreement without a click, and earn \
                 when they happen within `months` of the first payment; 0 (or no `recurring`) \
                 pays the first payment only.",
            ))
            .property(
                "months",
                integer(
                    "Months of renewals that earn.",
                    0,
                    i64::from(MAX_RECURRING_MONTHS),
                ),
            )
            .required("months")
            .additional_properties(closed())
            .examples([json!({"months": 12})])
            .into()
    }
}

impl ToSchema for Recurring {}

/// A sale rule: a rate and the options.
pub(super) struct SaleRule;

impl PartialSchema for SaleRule {
    fn schema() -> RefOr<Schema> {
        let (object, one_of) = with_rate(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("tiers", Ref::from_schema_name("Tiers"))
                .property(
                    "categories",
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .description(Some(
                            "Rates per product category (names compared without case), for \
                             the order's lines of that category; a `flat_minor` category rate \
                             pays per unit (`quantity`). Lines of other categories, lines \
                             without one and orders without lines earn the default rate.",
                        ))
                        .additional_properties(Some(Ref::from_schema_name("Rule")))
                        .property_names(Some(Category::schema_object()))
                        .min_properties(Some(1))
                        .max_properties(Some(MAX_CATEGORIES)),
                )
                .property("recurring", Ref::from_schema_name("Recurring"))
                .property(
                    "bonuses",
                    ArrayBuilder::new()
                        .items(Ref::from_schema_name("Bonus"))
                        .min_items(Some(1))
                        .max_items(Some(MAX_BONUSES)),
                )
                .additional_properties(closed()),
        );
        AllOfBuilder::new()
            .description(Some(
                "How a sale earns: the default rate (exactly one of `percent_bps` or \
                 `flat_minor`; a flat default pays once per order) and optional `tiers`, \
                 `categories`, `recurring` and `bonuses`. Precedence: the agreement's rule \
                 over the program's (whole rule, event by event); a line's category rate over \
                 the default rate; the default rate is the tier in force; bonuses on top.",
            ))
            .item(object)
            .item(one_of)
            .examples([
                json!({"percent_bps": 1000}),
                json!({
                    "percent_bps": 1000,
                    "tiers": {"by": "count", "steps": [
                        {"from": 21, "percent_bps": 1200}, {"from": 51, "percent_bps": 1500}
                    ]},
                    "categories": {"gift-cards": {"percent_bps": 200}, "books": {"flat_minor": 100}},
                    "recurring": {"months": 12},
                    "bonuses": [{"by": "count", "at": 50, "flat_minor": 5000}]
                }),
            ])
            .into()
    }
}

/// In the OpenAPI document: an object keyed by event, each with its rule.
impl PartialSchema for CommissionRules {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Commission rules by event; an event without a rule earns nothing. Unknown \
                 events, rule kinds and options are refused.",
            ));
        for &event in EarningEvent::ALL {
            let schema = match event {
                EarningEvent::Sale => "SaleRule",
                EarningEvent::Lead => "Rule",
            };
            object = object.property(event.as_str(), Ref::from_schema_name(schema));
        }
        object
            .additional_properties(closed())
            .examples([
                json!({"sale": {"percent_bps": 1000}, "lead": {"flat_minor": 200}}),
                json!({"sale": {
                    "percent_bps": 1000,
                    "tiers": {"by": "revenue", "rerate": true, "steps": [
                        {"from": 1_000_000, "percent_bps": 1200}
                    ]},
                    "categories": {"electronics": {"percent_bps": 400}}
                }}),
            ])
            .into()
    }
}

impl ToSchema for CommissionRules {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("Rule".into(), Rule::schema()));
        schemas.push(("SaleRule".into(), SaleRule::schema()));
        schemas.push(("Tiers".into(), Tiers::schema()));
        schemas.push(("TierStep".into(), TierStep::schema()));
        schemas.push(("Bonus".into(), Bonus::schema()));
        schemas.push(("Recurring".into(), Recurring::schema()));
        schemas.push(("TierBasis".into(), super::TierBasis::schema()));
    }
}
