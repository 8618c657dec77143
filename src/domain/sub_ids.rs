//! Sub ids (sub1..sub5): a partner's own tracking labels, carried from the
//! link to the landing page and into reports.

use serde::Serialize;
use std::collections::BTreeMap;

pub const SUB_KEYS: [&str; 5] = ["sub1", "sub2", "sub3", "sub4", "sub5"];
pub const MAX_SUB_LEN: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SubIds(BTreeMap<&'static str, String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubIdsError {
    #[error("unknown sub id (expected sub1 to sub5)")]
    UnknownKey(String),
    #[error("must be a string of 1 to 100 characters without control characters")]
    BadValue(&'static str),
}

impl SubIds {
    pub fn parse(map: &BTreeMap<String, String>) -> Result<Self, SubIdsError> {
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let key = SUB_KEYS
                .iter()
                .find(|s| **s == k.as_str())
                .ok_or_else(|| SubIdsError::UnknownKey(k.chars().take(32).collect()))?;
            if !super::is_plain(v, MAX_SUB_LEN) {
                return Err(SubIdsError::BadValue(key));
            }
            out.insert(*key, v.clone());
        }
        Ok(Self(out))
    }

    /// Rebuilds sub ids from the stored JSON object, keeping only known keys.
    pub fn from_json(value: &serde_json::Value) -> Self {
        let mut out = BTreeMap::new();
        if let Some(obj) = value.as_object() {
            for key in SUB_KEYS {
                if let Some(v) = obj.get(key).and_then(|v| v.as_str()) {
                    out.insert(key, v.to_owned());
                }
            }
        }
        Self(out)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).expect("strings serialize")
    }
}

/// In the OpenAPI document: an object with any of `sub1`..`sub5`.
impl utoipa::PartialSchema for SubIds {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A partner's own tracking labels, added to the landing URL's query.",
            ));
        for key in SUB_KEYS {
            object = object.property(
                key,
                super::plain_schema(MAX_SUB_LEN, false)
                    .description(Some("1 to 100 characters, without control characters.")),
            );
        }
        object
            .additional_properties(Some(
                AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
            ))
            .examples([serde_json::json!({"sub1": "newsletter"})])
            .into()
    }
}

impl utoipa::ToSchema for SubIds {}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn known_keys_with_short_values_parse() {
        let s = SubIds::parse(&map(&[("sub1", "newsletter"), ("sub5", "x")])).unwrap();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![("sub1", "newsletter"), ("sub5", "x")]
        );
        assert_eq!(SubIds::from_json(&s.to_json()), s);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(SubIds::parse(&map(&[("sub6", "x")])).is_err());
        assert!(SubIds::parse(&map(&[("sub1", "")])).is_err());
        assert!(SubIds::parse(&map(&[("sub1", &"x".repeat(101))])).is_err());
        assert!(SubIds::parse(&map(&[("sub1", "a\nb")])).is_err());
    }
}
