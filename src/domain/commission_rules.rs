//! Commission rules, per event: `{"sale": {"percent_bps": 1000}, "lead": {"flat_minor": 200}}`.

use super::BasisPoints;
use super::text_enum::text_enum;
use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;

/// The largest flat commission accepted: a billion major units of a
/// two-decimal currency. Anything above is a typo, not a deal.
pub const MAX_FLAT_MINOR: i64 = 100_000_000_000;

/// How one event earns a commission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A share of the conversion's amount.
    PercentBps(BasisPoints),
    /// A fixed amount in the program's currency, whatever the order's amount.
    FlatMinor(i64),
}

text_enum! {
    /// The events a shop reports that can earn a commission.
    pub enum EarningEvent("earning event") {
        Sale = "sale",
        Lead = "lead",
    }
}

/// The rule a commission was computed under, and the event it applied to:
/// kept with each commission so a partner can recompute its amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedRule {
    pub event: EarningEvent,
    pub rule: Rule,
}

/// A complete, validated rule set. An event without a rule earns nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommissionRules {
    sale: Option<Rule>,
    lead: Option<Rule>,
}

/// What is wrong with a rule set, with the JSON path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RulesError {
    pub path: String,
    pub message: String,
}

impl CommissionRules {
    /// Parses the JSON shape of the contract. Unknown events and unknown rule
    /// kinds are refused rather than ignored: a typo must not silently pay nothing.
    pub fn parse(value: &Value) -> Result<Self, RulesError> {
        let err = |path: String, message: &str| RulesError {
            path,
            message: message.to_owned(),
        };
        let object = value
            .as_object()
            .ok_or_else(|| err(String::new(), "must be an object keyed by event"))?;
        let mut rules = CommissionRules::default();
        for (event, rule) in object {
            let slot = match event.as_str() {
                "sale" => &mut rules.sale,
                "lead" => &mut rules.lead,
                _ => return Err(err(event.clone(), "unknown event (expected sale or lead)")),
            };
            *slot = Some(parse_rule(rule).map_err(|m| err(event.clone(), m))?);
        }
        Ok(rules)
    }

    pub fn get(&self, event: EarningEvent) -> Option<Rule> {
        match event {
            EarningEvent::Sale => self.sale,
            EarningEvent::Lead => self.lead,
        }
    }

    /// These rules over `base`, event by event: an agreement's override
    /// replaces the program's rule only for the events it names.
    pub fn overriding(&self, base: &CommissionRules) -> CommissionRules {
        CommissionRules {
            sale: self.sale.or(base.sale),
            lead: self.lead.or(base.lead),
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("rules serialize to JSON")
    }
}

fn parse_rule(value: &Value) -> Result<Rule, &'static str> {
    let object = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or("must be an object with exactly one of percent_bps or flat_minor")?;
    let (kind, amount) = object.iter().next().expect("one entry");
    let amount = amount
        .as_i64()
        .ok_or("the rule's value must be a whole number")?;
    match kind.as_str() {
        "percent_bps" => BasisPoints::new(amount)
            .map(Rule::PercentBps)
            .map_err(|_| "percent_bps must be from 0 to 10000"),
        "flat_minor" if (0..=MAX_FLAT_MINOR).contains(&amount) => Ok(Rule::FlatMinor(amount)),
        "flat_minor" => Err("flat_minor must be from 0 to 100000000000"),
        _ => Err("unknown rule kind (expected percent_bps or flat_minor)"),
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Rule::PercentBps(bps) => map.serialize_entry("percent_bps", &bps.get())?,
            Rule::FlatMinor(minor) => map.serialize_entry("flat_minor", minor)?,
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        parse_rule(&value).map_err(serde::de::Error::custom)
    }
}

impl Serialize for CommissionRules {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for &event in EarningEvent::ALL {
            if let Some(rule) = self.get(event) {
                map.serialize_entry(event.as_str(), &rule)?;
            }
        }
        map.end()
    }
}

/// In the OpenAPI document: exactly one of `percent_bps` or `flat_minor`.
impl utoipa::PartialSchema for Rule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let kind = |name: &str, description: &str, max: i64, example: i64| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    name,
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Int64,
                        )))
                        .minimum(Some(0))
                        .maximum(Some(max))
                        .description(Some(description)),
                )
                .required(name)
                .additional_properties(Some(
                    AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
                ))
                .examples([serde_json::json!({ name: example })])
        };
        OneOfBuilder::new()
            .description(Some(
                "How one event earns a commission: a share of the order amount in basis \
                 points (1000 = 10%, rounded half away from zero to a minor unit), or a \
                 fixed amount in minor units of the program's currency.",
            ))
            .item(kind(
                "percent_bps",
                "Basis points of the order amount.",
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

impl utoipa::ToSchema for Rule {}

/// In the OpenAPI document: an object keyed by event, each with its rule.
impl utoipa::PartialSchema for CommissionRules {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Ref, Type};
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Commission rules by event; an event without a rule earns nothing. \
             Unknown events and rule kinds are refused.",
            ));
        for &event in EarningEvent::ALL {
            object = object.property(event.as_str(), Ref::from_schema_name("Rule"));
        }
        object
            .additional_properties(Some(
                AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
            ))
            .examples([serde_json::json!({
                "sale": {"percent_bps": 1000},
                "lead": {"flat_minor": 200}
            })])
            .into()
    }
}

impl utoipa::ToSchema for CommissionRules {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("Rule".into(), Rule::schema()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_contract_example_parses_and_round_trips() {
        let value = json!({"sale": {"percent_bps": 1000}, "lead": {"flat_minor": 200}});
        let rules = CommissionRules::parse(&value).unwrap();
        assert_eq!(
            rules.get(EarningEvent::Sale),
            Some(Rule::PercentBps(BasisPoints::new(1000).unwrap()))
        );
        assert_eq!(rules.get(EarningEvent::Lead), Some(Rule::FlatMinor(200)));
        assert_eq!(rules.to_json(), value);
    }

    #[test]
    fn malformed_rules_name_the_offending_event() {
        let cases = [
            (json!([]), ""),
            (json!({"refund": {"flat_minor": 1}}), "refund"),
            (json!({"sale": {"percent_bps": 10001}}), "sale"),
            (json!({"sale": {"percent_bps": -1}}), "sale"),
            (json!({"sale": {"percent_bps": 10.5}}), "sale"),
            (json!({"sale": {"percent_bps": "10"}}), "sale"),
            (json!({"lead": {"flat_minor": -200}}), "lead"),
            (json!({"lead": {"flat_minor": 100_000_000_001i64}}), "lead"),
            (
                json!({"sale": {"percent_bps": 10, "flat_minor": 1}}),
                "sale",
            ),
            (json!({"sale": {}}), "sale"),
            (json!({"sale": {"percent": 10}}), "sale"),
            (json!({"sale": 10}), "sale"),
        ];
        for (value, path) in cases {
            let err = CommissionRules::parse(&value).unwrap_err();
            assert_eq!(err.path, path, "{value}");
        }
    }

    #[test]
    fn an_override_replaces_only_the_events_it_names() {
        let program = CommissionRules::parse(
            &json!({"sale": {"percent_bps": 1000}, "lead": {"flat_minor": 200}}),
        )
        .unwrap();
        let agreement = CommissionRules::parse(&json!({"sale": {"flat_minor": 500}})).unwrap();
        let merged = agreement.overriding(&program);
        assert_eq!(merged.get(EarningEvent::Sale), Some(Rule::FlatMinor(500)));
        assert_eq!(merged.get(EarningEvent::Lead), Some(Rule::FlatMinor(200)));
    }

    #[test]
    fn an_applied_rule_reads_back_as_written() {
        let applied = AppliedRule {
            event: EarningEvent::Sale,
            rule: Rule::PercentBps(BasisPoints::new(1000).unwrap()),
        };
        let json = serde_json::to_value(applied).unwrap();
        assert_eq!(
            json,
            json!({"event": "sale", "rule": {"percent_bps": 1000}})
        );
        assert_eq!(
            serde_json::from_value::<AppliedRule>(json).unwrap(),
            applied
        );
        assert!(
            serde_json::from_value::<AppliedRule>(
                json!({"event": "refund", "rule": {"flat_minor": 1}})
            )
            .is_err()
        );
    }
}
