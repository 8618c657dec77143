//! Commission rules, per event: `{"sale": {"percent_bps": 1000}, "lead": {"flat_minor": 200}}`.
//!
//! A rule is a rate (`percent_bps` or `flat_minor`). A sale rule may add the
//! options real programs use, each next to the rate and each optional, so a
//! plain rate keeps exactly its old meaning:
//!
//! - `tiers`: the rate steps up with the agreement's sales in the calendar
//!   month, by count or by revenue, optionally re-rating the month's earlier
//!   sales when a step is reached;
//! - `categories`: rates per product category, for orders sent with lines;
//! - `recurring`: how many months of subscription renewals earn;
//! - `bonuses`: a flat amount once a month's sales reach a milestone.
//!
//! The pricing itself (which rate applies to which part of an order, in
//! which order) is in `attribution::pricing`; this module only says what a
//! valid rule is.

use super::text_enum::text_enum;
use super::{BasisPoints, Category, RuleSource};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The largest flat commission accepted: a billion major units of a
/// two-decimal currency. Anything above is a typo, not a deal.
pub const MAX_FLAT_MINOR: i64 = 100_000_000_000;
/// Most steps one tier ladder may have.
pub const MAX_TIER_STEPS: usize = 20;
/// Most categories one rule may name.
pub const MAX_CATEGORIES: usize = 200;
/// Most milestone bonuses one rule may have.
pub const MAX_BONUSES: usize = 20;
/// The longest renewal period a rule may pay for: ten years.
pub const MAX_RECURRING_MONTHS: u32 = 120;
/// The largest tier or milestone threshold: far beyond any month's sales
/// count or revenue, and small enough that sums of them never overflow.
pub const MAX_THRESHOLD: i64 = 1_000_000_000_000_000;

/// A rate: how an amount earns a commission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A share of the amount.
    PercentBps(BasisPoints),
    /// A fixed amount in the program's currency, whatever the amount.
    FlatMinor(i64),
}

text_enum! {
    /// The events a shop reports that can earn a commission.
    pub enum EarningEvent("earning event") {
        Sale = "sale",
        Lead = "lead",
    }
}

text_enum! {
    /// What a month's tier or milestone counts.
    pub enum TierBasis("tier basis") {
        /// The agreement's sales in the month, this one included.
        Count = "count",
        /// The agreement's revenue in the month in minor units, this sale included.
        Revenue = "revenue",
    }
}

/// One step of a tier ladder: from this sale (count) or this revenue on,
/// the default rate is `rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierStep {
    pub from: i64,
    pub rate: Rule,
}

/// A ladder of rates over the calendar month (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers {
    pub by: TierBasis,
    /// Reaching a step also raises the month's earlier sales to its rate
    /// (one adjustment commission); otherwise only this and later sales earn it.
    pub rerate: bool,
    /// Strictly increasing `from`.
    pub steps: Vec<TierStep>,
}

impl Tiers {
    /// The step reached at `position` (the month's count or revenue with
    /// this sale): 0 below the first step, n for the n-th step.
    pub fn index_at(&self, position: i64) -> usize {
        self.steps.iter().take_while(|s| s.from <= position).count()
    }
}

/// A flat amount paid once when the month's count or revenue reaches `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bonus {
    pub by: TierBasis,
    pub at: i64,
    pub flat_minor: i64,
}

/// How long a subscription's renewals earn: renewals within `months` of
/// the first payment; 0 is the first payment only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recurring {
    pub months: u32,
}

/// How one event earns: a default rate and, for sales, options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRule {
    /// The default rate, below the first tier step.
    pub rate: Rule,
    pub tiers: Option<Tiers>,
    /// Rates of the categories that do not earn the default rate.
    pub categories: BTreeMap<Category, Rule>,
    pub recurring: Option<Recurring>,
    pub bonuses: Vec<Bonus>,
}

impl EventRule {
    /// A rate without options: the rule shape every version of mitra knew.
    pub fn plain(rate: Rule) -> Self {
        Self {
            rate,
            tiers: None,
            categories: BTreeMap::new(),
            recurring: None,
            bonuses: Vec::new(),
        }
    }

    /// Whether pricing needs the month's sales so far (tiers or bonuses).
    pub fn needs_month(&self) -> bool {
        self.tiers.is_some() || !self.bonuses.is_empty()
    }

    /// The default rate at tier step `index` (0: the base rate).
    pub fn rate_at(&self, index: usize) -> Rule {
        match (&self.tiers, index) {
            (Some(t), i) if i > 0 => t.steps.get(i - 1).map_or(self.rate, |s| s.rate),
            _ => self.rate,
        }
    }

    /// How many months of renewals earn (0: the first payment only).
    pub fn renewal_months(&self) -> u32 {
        self.recurring.map_or(0, |r| r.months)
    }
}

/// A complete, validated rule set. An event without a rule earns nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommissionRules {
    sale: Option<EventRule>,
    lead: Option<EventRule>,
}

/// What is wrong with a rule set, with the JSON path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RulesError {
    pub path: String,
    pub message: String,
}

impl CommissionRules {
    /// Parses the JSON shape of the contract. Unknown events, rule kinds and
    /// options are refused rather than ignored: a typo must not silently pay
    /// nothing.
    pub fn parse(value: &Value) -> Result<Self, RulesError> {
        let object = value.as_object().ok_or_else(|| RulesError {
            path: String::new(),
            message: "must be an object keyed by event".into(),
        })?;
        let mut rules = CommissionRules::default();
        for (event, rule) in object {
            let (slot, event_kind) = match event.as_str() {
                "sale" => (&mut rules.sale, EarningEvent::Sale),
                "lead" => (&mut rules.lead, EarningEvent::Lead),
                _ => {
                    return Err(RulesError {
                        path: event.clone(),
                        message: "unknown event (expected sale or lead)".into(),
                    });
                }
            };
            let parsed =
                parse_event_rule(rule, event_kind).map_err(|(sub, message)| RulesError {
                    path: if sub.is_empty() {
                        event.clone()
                    } else {
                        format!("{event}.{sub}")
                    },
                    message,
                })?;
            *slot = Some(parsed);
        }
        Ok(rules)
    }

    /// The default rate of an event's rule.
    pub fn get(&self, event: EarningEvent) -> Option<Rule> {
        self.rule(event).map(|r| r.rate)
    }

    /// The rule for `event` in force when these (an agreement's own rules)
    /// sit over the `program`'s: the agreement's own when it has one, else
    /// the program's. The one place that order of precedence is decided.
    pub fn rule_over<'a>(
        &'a self,
        program: &'a CommissionRules,
        event: EarningEvent,
    ) -> Option<(&'a EventRule, RuleSource)> {
        match self.rule(event) {
            Some(rule) => Some((rule, RuleSource::Agreement)),
            None => program.rule(event).map(|rule| (rule, RuleSource::Program)),
        }
    }

    /// An event's rule with its options.
    pub fn rule(&self, event: EarningEvent) -> Option<&EventRule> {
        match event {
            EarningEvent::Sale => self.sale.as_ref(),
            EarningEvent::Lead => self.lead.as_ref(),
        }
    }

    /// These rules over `base`, event by event: an agreement's override
    /// replaces the program's rule, options and all, only for the events it
    /// names.
    pub fn overriding(&self, base: &CommissionRules) -> CommissionRules {
        CommissionRules {
            sale: self.sale.clone().or_else(|| base.sale.clone()),
            lead: self.lead.clone().or_else(|| base.lead.clone()),
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("rules serialize to JSON")
    }
}

/// An error under an event: a path relative to it ("" for the event itself).
type RuleError = (String, String);

fn at(path: impl Into<String>, message: impl Into<String>) -> RuleError {
    (path.into(), message.into())
}

const RATE_KEYS: [&str; 2] = ["percent_bps", "flat_minor"];
const SALE_OPTIONS: [&str; 4] = ["tiers", "categories", "recurring", "bonuses"];

fn parse_event_rule(value: &Value, event: EarningEvent) -> Result<EventRule, RuleError> {
    let object = value.as_object().ok_or_else(|| {
        at(
            "",
            "must be an object with exactly one of percent_bps or flat_minor",
        )
    })?;
    for key in object.keys() {
        let known = RATE_KEYS.contains(&key.as_str())
            || (event == EarningEvent::Sale && SALE_OPTIONS.contains(&key.as_str()));
        if !known {
            let message = if SALE_OPTIONS.contains(&key.as_str()) {
                format!("{key} applies to sales only")
            } else {
                format!(
                    "unknown rule kind `{key}` (expected percent_bps or flat_minor; a sale \
                     rule may add tiers, categories, recurring and bonuses)"
                )
            };
            return Err(at("", message));
        }
    }
    let rate = rate_in(object, &SALE_OPTIONS).map_err(|m| at("", m))?;
    let mut rule = EventRule::plain(rate);
    if let Some(v) = object.get("tiers") {
        rule.tiers = Some(parse_tiers(v)?);
    }
    if let Some(v) = object.get("categories") {
        rule.categories = parse_categories(v)?;
    }
    if let Some(v) = object.get("recurring") {
        rule.recurring = Some(parse_recurring(v)?);
    }
    if let Some(v) = object.get("bonuses") {
        rule.bonuses = parse_bonuses(v)?;
    }
    Ok(rule)
}

/// The one rate among an object's keys; `others` are keys allowed beside it.
fn rate_in(object: &Map<String, Value>, others: &[&str]) -> Result<Rule, String> {
    let mut rates = object
        .iter()
        .filter(|(k, _)| RATE_KEYS.contains(&k.as_str()));
    let (Some((kind, amount)), None) = (rates.next(), rates.next()) else {
        return Err("must have exactly one of percent_bps or flat_minor".into());
    };
    if let Some(k) = object
        .keys()
        .find(|k| !RATE_KEYS.contains(&k.as_str()) && !others.contains(&k.as_str()))
    {
        return Err(format!("unknown key `{k}`"));
    }
    rate(kind, amount).map_err(str::to_owned)
}

fn rate(kind: &str, amount: &Value) -> Result<Rule, &'static str> {
    let amount = amount
        .as_i64()
        .ok_or("the rule's value must be a whole number")?;
    match kind {
        "percent_bps" => BasisPoints::new(amount)
            .map(Rule::PercentBps)
            .map_err(|_| "percent_bps must be from 0 to 10000"),
        "flat_minor" if (0..=MAX_FLAT_MINOR).contains(&amount) => Ok(Rule::FlatMinor(amount)),
        "flat_minor" => Err("flat_minor must be from 0 to 100000000000"),
        _ => Err("unknown rule kind (expected percent_bps or flat_minor)"),
    }
}

/// A plain rate object: exactly one of percent_bps or flat_minor.
fn parse_rule(value: &Value) -> Result<Rule, &'static str> {
    let object = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or("must be an object with exactly one of percent_bps or flat_minor")?;
    let (kind, amount) = object.iter().next().expect("one entry");
    rate(kind, amount)
}

fn threshold(value: Option<&Value>, path: &str) -> Result<i64, RuleError> {
    value
        .and_then(Value::as_i64)
        .filter(|n| (1..=MAX_THRESHOLD).contains(n))
        .ok_or_else(|| {
            at(
                path,
                format!("must be a whole number from 1 to {MAX_THRESHOLD}"),
            )
        })
}

fn basis(value: Option<&Value>, path: &str) -> Result<TierBasis, RuleError> {
    value
        .and_then(Value::as_str)
        .and_then(|s| TierBasis::parse(s).ok())
        .ok_or_else(|| at(path, "must be `count` or `revenue`"))
}

fn only_keys(object: &Map<String, Value>, path: &str, keys: &[&str]) -> Result<(), RuleError> {
    match object.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(at(
            path,
            format!("unknown key `{k}` (expected {})", keys.join(", ")),
        )),
        None => Ok(()),
    }
}

fn parse_tiers(value: &Value) -> Result<Tiers, RuleError> {
    let object = value
        .as_object()
        .ok_or_else(|| at("tiers", "must be an object with by and steps"))?;
    only_keys(object, "tiers", &["by", "rerate", "steps"])?;
    let by = basis(object.get("by"), "tiers.by")?;
    let rerate = match object.get("rerate") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| at("tiers.rerate", "must be true or false"))?,
    };
    let steps = object
        .get("steps")
        .and_then(Value::as_array)
        .filter(|s| (1..=MAX_TIER_STEPS).contains(&s.len()))
        .ok_or_else(|| {
            at(
                "tiers.steps",
                format!("must be a list of 1 to {MAX_TIER_STEPS} steps"),
            )
        })?;
    let mut parsed: Vec<TierStep> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let path = format!("tiers.steps[{i}]");
        let object = step
            .as_object()
            .ok_or_else(|| at(&path, "must be an object with from and a rate"))?;
        let from = threshold(object.get("from"), &format!("{path}.from"))?;
        if parsed.last().is_some_and(|p| p.from >= from) {
            return Err(at(
                format!("{path}.from"),
                "steps must be in increasing order of from",
            ));
        }
        let rate = rate_in(object, &["from"]).map_err(|m| at(&path, m))?;
        parsed.push(TierStep { from, rate });
    }
    Ok(Tiers {
        by,
        rerate,
        steps: parsed,
    })
}

fn parse_categories(value: &Value) -> Result<BTreeMap<Category, Rule>, RuleError> {
    let object = value
        .as_object()
        .filter(|o| (1..=MAX_CATEGORIES).contains(&o.len()))
        .ok_or_else(|| {
            at(
                "categories",
                format!(
                    "must be an object of 1 to {MAX_CATEGORIES} categories, each with its rate"
                ),
            )
        })?;
    let mut categories = BTreeMap::new();
    for (name, rate) in object {
        let path = format!("categories.{name}");
        let category = Category::parse(name).map_err(|m| at(&path, m))?;
        let rate = parse_rule(rate).map_err(|m| at(&path, m))?;
        if categories.insert(category, rate).is_some() {
            return Err(at(path, "names a category twice (categories ignore case)"));
        }
    }
    Ok(categories)
}

fn parse_recurring(value: &Value) -> Result<Recurring, RuleError> {
    let object = value
        .as_object()
        .ok_or_else(|| at("recurring", "must be an object with months"))?;
    only_keys(object, "recurring", &["months"])?;
    let months = object
        .get("months")
        .and_then(Value::as_u64)
        .filter(|m| *m <= u64::from(MAX_RECURRING_MONTHS))
        .ok_or_else(|| {
            at(
                "recurring.months",
                format!("must be a whole number of months from 0 to {MAX_RECURRING_MONTHS}"),
            )
        })?;
    Ok(Recurring {
        months: months as u32,
    })
}

fn parse_bonuses(value: &Value) -> Result<Vec<Bonus>, RuleError> {
    let list = value
        .as_array()
        .filter(|l| (1..=MAX_BONUSES).contains(&l.len()))
        .ok_or_else(|| {
            at(
                "bonuses",
                format!("must be a list of 1 to {MAX_BONUSES} bonuses"),
            )
        })?;
    let mut bonuses: Vec<Bonus> = Vec::with_capacity(list.len());
    for (i, b) in list.iter().enumerate() {
        let path = format!("bonuses[{i}]");
        let object = b
            .as_object()
            .ok_or_else(|| at(&path, "must be an object with by, at and flat_minor"))?;
        only_keys(object, &path, &["by", "at", "flat_minor"])?;
        let by = basis(object.get("by"), &format!("{path}.by"))?;
        let at_ = threshold(object.get("at"), &format!("{path}.at"))?;
        let flat_minor = object
            .get("flat_minor")
            .and_then(Value::as_i64)
            .filter(|f| (0..=MAX_FLAT_MINOR).contains(f))
            .ok_or_else(|| {
                at(
                    format!("{path}.flat_minor"),
                    "flat_minor must be from 0 to 100000000000",
                )
            })?;
        if bonuses.iter().any(|o| o.by == by && o.at == at_) {
            return Err(at(path, "the same milestone is named twice"));
        }
        bonuses.push(Bonus {
            by,
            at: at_,
            flat_minor,
        });
    }
    Ok(bonuses)
}

impl Rule {
    fn entry(&self) -> (&'static str, Value) {
        match self {
            Rule::PercentBps(bps) => ("percent_bps", json!(bps.get())),
            Rule::FlatMinor(minor) => ("flat_minor", json!(minor)),
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        let (key, value) = self.entry();
        map.serialize_entry(key, &value)?;
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        parse_rule(&value).map_err(serde::de::Error::custom)
    }
}

impl EventRule {
    /// The rule's JSON: the rate's key, then each option given.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        let (key, value) = self.rate.entry();
        map.insert(key.into(), value);
        let with_rate = |mut object: Map<String, Value>, rate: &Rule| {
            let (key, value) = rate.entry();
            object.insert(key.into(), value);
            Value::Object(object)
        };
        if let Some(t) = &self.tiers {
            let steps: Vec<Value> = t
                .steps
                .iter()
                .map(|s| {
                    let mut o = Map::new();
                    o.insert("from".into(), json!(s.from));
                    with_rate(o, &s.rate)
                })
                .collect();
            map.insert(
                "tiers".into(),
                json!({"by": t.by, "rerate": t.rerate, "steps": steps}),
            );
        }
        if !self.categories.is_empty() {
            let categories: Map<String, Value> = self
                .categories
                .iter()
                .map(|(c, r)| (c.as_str().to_owned(), with_rate(Map::new(), r)))
                .collect();
            map.insert("categories".into(), Value::Object(categories));
        }
        if let Some(r) = &self.recurring {
            map.insert("recurring".into(), json!({"months": r.months}));
        }
        if !self.bonuses.is_empty() {
            let bonuses: Vec<Value> = self
                .bonuses
                .iter()
                .map(|b| json!({"by": b.by, "at": b.at, "flat_minor": b.flat_minor}))
                .collect();
            map.insert("bonuses".into(), Value::Array(bonuses));
        }
        Value::Object(map)
    }
}

impl Serialize for EventRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl Serialize for CommissionRules {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for &event in EarningEvent::ALL {
            if let Some(rule) = self.rule(event) {
                map.serialize_entry(event.as_str(), rule)?;
            }
        }
        map.end()
    }
}

mod schema;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AppliedRule;
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
        let applied = AppliedRule::plain(
            EarningEvent::Sale,
            Rule::PercentBps(BasisPoints::new(1000).unwrap()),
        );
        let json = serde_json::to_value(&applied).unwrap();
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

    fn bps(n: i64) -> Rule {
        Rule::PercentBps(BasisPoints::new(n).unwrap())
    }

    #[test]
    fn a_sale_rule_with_every_option_parses_and_round_trips() {
        let value = json!({"sale": {
            "percent_bps": 1000,
            "tiers": {"by": "count", "rerate": true, "steps": [
                {"from": 21, "percent_bps": 1200}, {"from": 51, "flat_minor": 2500}
            ]},
            "categories": {"Shoes": {"percent_bps": 800}, "books": {"flat_minor": 100}},
            "recurring": {"months": 12},
            "bonuses": [{"by": "count", "at": 50, "flat_minor": 5000},
                        {"by": "revenue", "at": 1000000, "flat_minor": 20000}]
        }, "lead": {"flat_minor": 200}});
        let rules = CommissionRules::parse(&value).unwrap();
        let sale = rules.rule(EarningEvent::Sale).unwrap();
        assert_eq!(sale.rate, bps(1000));
        let tiers = sale.tiers.as_ref().unwrap();
        assert_eq!((tiers.by, tiers.rerate), (TierBasis::Count, true));
        assert_eq!(
            tiers.steps,
            vec![
                TierStep {
                    from: 21,
                    rate: bps(1200)
                },
                TierStep {
                    from: 51,
                    rate: Rule::FlatMinor(2500)
                }
            ]
        );
        assert_eq!(
            sale.categories.get(&Category::parse("shoes").unwrap()),
            Some(&bps(800))
        );
        assert_eq!(sale.renewal_months(), 12);
        assert_eq!(
            sale.bonuses[1],
            Bonus {
                by: TierBasis::Revenue,
                at: 1_000_000,
                flat_minor: 20_000
            }
        );
        assert!(sale.needs_month());
        assert!(!rules.rule(EarningEvent::Lead).unwrap().needs_month());
        // Written back with the category lower-cased, and read again the same.
        let written = rules.to_json();
        assert_eq!(
            written["sale"]["categories"],
            json!({"books": {"flat_minor": 100}, "shoes": {"percent_bps": 800}})
        );
        assert_eq!(CommissionRules::parse(&written).unwrap(), rules);
    }

    #[test]
    fn the_tier_in_force_is_the_last_step_reached() {
        let rules = CommissionRules::parse(&json!({"sale": {"percent_bps": 1000, "tiers": {
            "by": "count", "steps": [{"from": 21, "percent_bps": 1200}, {"from": 51, "percent_bps": 1500}]
        }}}))
        .unwrap();
        let sale = rules.rule(EarningEvent::Sale).unwrap();
        let tiers = sale.tiers.as_ref().unwrap();
        let at = |n| sale.rate_at(tiers.index_at(n));
        assert_eq!(
            (at(1), at(20), at(21), at(50), at(51), at(10_000)),
            (
                bps(1000),
                bps(1000),
                bps(1200),
                bps(1200),
                bps(1500),
                bps(1500)
            )
        );
        assert!(!tiers.rerate, "re-rating is opt-in");
    }

    #[test]
    fn malformed_options_name_their_path() {
        let cases = [
            (json!({"lead": {"flat_minor": 200, "tiers": {}}}), "lead"),
            (json!({"sale": {"percent_bps": 1, "tier": {}}}), "sale"),
            (
                json!({"sale": {"percent_bps": 1, "tiers": {"by": "week", "steps": [{"from": 2, "percent_bps": 1}]}}}),
                "sale.tiers.by",
            ),
            (
                json!({"sale": {"percent_bps": 1, "tiers": {"by": "count", "steps": []}}}),
                "sale.tiers.steps",
            ),
            (
                json!({"sale": {"percent_bps": 1, "tiers": {"by": "count", "steps": [{"from": 5, "percent_bps": 1}, {"from": 5, "percent_bps": 2}]}}}),
                "sale.tiers.steps[1].from",
            ),
            (
                json!({"sale": {"percent_bps": 1, "tiers": {"by": "count", "steps": [{"from": 0, "percent_bps": 1}]}}}),
                "sale.tiers.steps[0].from",
            ),
            (
                json!({"sale": {"percent_bps": 1, "tiers": {"by": "count", "steps": [{"from": 3, "percent_bps": 1, "flat_minor": 1}]}}}),
                "sale.tiers.steps[0]",
            ),
            (
                json!({"sale": {"percent_bps": 1, "tiers": {"by": "count", "rerate": "yes", "steps": [{"from": 3, "percent_bps": 1}]}}}),
                "sale.tiers.rerate",
            ),
            (
                json!({"sale": {"percent_bps": 1, "categories": {"shoes": {"percent_bps": 10001}}}}),
                "sale.categories.shoes",
            ),
            (
                json!({"sale": {"percent_bps": 1, "categories": {"Shoes": {"percent_bps": 1}, "shoes": {"percent_bps": 2}}}}),
                "sale.categories.shoes",
            ),
            (
                json!({"sale": {"percent_bps": 1, "categories": {}}}),
                "sale.categories",
            ),
            (
                json!({"sale": {"percent_bps": 1, "recurring": {"months": 121}}}),
                "sale.recurring.months",
            ),
            (
                json!({"sale": {"percent_bps": 1, "recurring": {"months": 1, "rate": 2}}}),
                "sale.recurring",
            ),
            (
                json!({"sale": {"percent_bps": 1, "bonuses": [{"by": "count", "flat_minor": 1}]}}),
                "sale.bonuses[0].at",
            ),
            (
                json!({"sale": {"percent_bps": 1, "bonuses": [{"by": "count", "at": 5, "flat_minor": -1}]}}),
                "sale.bonuses[0].flat_minor",
            ),
            (
                json!({"sale": {"percent_bps": 1, "bonuses": [{"by": "count", "at": 5, "flat_minor": 1}, {"by": "count", "at": 5, "flat_minor": 2}]}}),
                "sale.bonuses[1]",
            ),
            (
                json!({"sale": {"tiers": {"by": "count", "steps": [{"from": 3, "percent_bps": 1}]}}}),
                "sale",
            ),
        ];
        for (value, path) in cases {
            let err = CommissionRules::parse(&value).unwrap_err();
            assert_eq!(err.path, path, "{value}: {}", err.message);
        }
    }

    #[test]
    fn an_agreement_rule_replaces_the_programs_with_its_options() {
        let program = CommissionRules::parse(&json!({"sale": {"percent_bps": 1000,
            "categories": {"books": {"percent_bps": 500}}}}))
        .unwrap();
        let agreement = CommissionRules::parse(&json!({"sale": {"percent_bps": 1500}})).unwrap();
        let merged = agreement.overriding(&program);
        assert_eq!(
            merged.rule(EarningEvent::Sale),
            Some(&EventRule::plain(bps(1500)))
        );
    }
}
