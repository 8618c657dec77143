//! Order lines a shop may send with a sale (what was bought, in which
//! product category, for how much) or with a refund (which lines it gives
//! back). Parsed at the edge: stored lines always sum to their order's amount.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// Most lines one order may carry.
pub const MAX_ITEMS: usize = 100;
pub const MAX_CATEGORY_LEN: usize = 64;
pub const MAX_SKU_LEN: usize = 128;
pub const MAX_QUANTITY: i64 = 1_000_000;

/// A product category: 1 to 64 characters, trimmed and lower-cased, so a
/// shop's `Shoes` and a rule's `shoes` are the same category. Shared, not
/// copied: every commission of an order records its lines' categories.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Category(Arc<str>);

const CATEGORY_TEXT: super::TextRule = super::TextRule::line(MAX_CATEGORY_LEN);

impl Category {
    /// One line of at most 64 characters as sent, not only whitespace,
    /// kept trimmed (the rule `TextRule` states in the document).
    pub fn parse(raw: &str) -> Result<Self, String> {
        match CATEGORY_TEXT.parse(raw) {
            Ok(Some(s)) => Ok(Self(s.to_lowercase().into())),
            _ => Err(format!(
                "a category is 1 to {MAX_CATEGORY_LEN} characters without control characters"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Category {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        Self::schema_object().into()
    }
}

impl Category {
    /// The category's schema, as an object builder (a rule's category
    /// names take it as `propertyNames`).
    pub fn schema_object() -> utoipa::openapi::schema::ObjectBuilder {
        CATEGORY_TEXT
            .schema(true)
            .description(Some(
                "A product category, compared without case (`Shoes` is `shoes`).",
            ))
            .examples(["shoes"])
    }
}

impl utoipa::ToSchema for Category {}

/// One order line: on a sale, what was bought; on a refund, what was given
/// back (naming the sale's line by `sku`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = OrderItem)]
pub struct Item {
    /// The shop's product reference, 1 to 128 characters, unique within the order.
    #[schema(schema_with = sku_schema)]
    pub sku: String,
    /// The product category; absent, or one the rule does not name: the
    /// default rate applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// The line's total (price times quantity), in minor units; the lines
    /// sum to the conversion's `amount_minor` (so none is above its maximum).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, examples(4500))]
    pub amount_minor: i64,
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1_000_000, default = 1)]
    pub quantity: i64,
}

fn sku_schema() -> utoipa::openapi::schema::ObjectBuilder {
    super::plain_schema(MAX_SKU_LEN, false).examples(["SKU-1001"])
}

fn one() -> i64 {
    1
}

/// What is wrong with a list of lines: the JSON path under `items` and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemsError {
    /// `items`, or `items[3].sku`.
    pub path: String,
    pub message: String,
}

/// Checks order lines against their order's amount: at most 100 lines, each
/// sku 1 to 128 characters and once only, amounts from 0, quantities from 1,
/// and amounts that sum to exactly `total_minor`.
pub fn check_items(items: &[Item], total_minor: i64) -> Result<(), ItemsError> {
    let err = |path: String, message: String| ItemsError { path, message };
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(err(
            "items".into(),
            format!("must have 1 to {MAX_ITEMS} lines when given"),
        ));
    }
    let mut skus = HashSet::new();
    let mut sum: i128 = 0;
    for (i, item) in items.iter().enumerate() {
        let at = |field: &str| format!("items[{i}].{field}");
        if item.sku.is_empty()
            || item.sku.chars().count() > MAX_SKU_LEN
            || item.sku.chars().any(char::is_control)
        {
            return Err(err(
                at("sku"),
                format!("must be 1 to {MAX_SKU_LEN} characters without control characters"),
            ));
        }
        if !skus.insert(item.sku.as_str()) {
            return Err(err(at("sku"), "appears twice in the order".into()));
        }
        if item.amount_minor < 0 {
            return Err(err(at("amount_minor"), "must not be negative".into()));
        }
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(err(
                at("quantity"),
                format!("must be from 1 to {MAX_QUANTITY}"),
            ));
        }
        sum += i128::from(item.amount_minor);
    }
    if sum != i128::from(total_minor) {
        return Err(err(
            "items".into(),
            format!("the lines sum to {sum}, not to amount_minor {total_minor}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, category: Option<&str>, amount: i64) -> Item {
        Item {
            sku: sku.into(),
            category: category.map(|c| Category::parse(c).unwrap()),
            amount_minor: amount,
            quantity: 1,
        }
    }

    #[test]
    fn categories_compare_without_case_or_surrounding_spaces() {
        assert_eq!(Category::parse(" Shoes ").unwrap().as_str(), "shoes");
        assert_eq!(
            Category::parse("SHOES").unwrap(),
            Category::parse("shoes").unwrap()
        );
        assert!(Category::parse("  ").is_err());
        assert!(Category::parse(&"x".repeat(65)).is_err());
        assert!(Category::parse("a\nb").is_err());
        // 64 characters as sent, as the document's `maxLength` counts them.
        assert!(Category::parse(&format!(" {} ", "x".repeat(63))).is_err());
    }

    proptest::proptest! {
        /// The documented schema (pattern and `maxLength`) takes exactly
        /// the categories that parse.
        #[test]
        fn the_documented_category_is_what_parses(
            s in "[ a\\t\\u{85}\\u{a0}\\u{0}é]{0,3}|[ a]{62,66}",
        ) {
            let schema = serde_json::to_value(Category::schema_object().build()).unwrap();
            let pattern = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
            let max = schema["maxLength"].as_u64().unwrap() as usize;
            let documented = s.chars().count() <= max && pattern.is_match(&s);
            proptest::prop_assert_eq!(documented, Category::parse(&s).is_ok(), "{:?}", s);
        }
    }

    #[test]
    fn lines_must_sum_to_the_order_amount() {
        let lines = [item("a", Some("shoes"), 6_000), item("b", None, 4_000)];
        assert_eq!(check_items(&lines, 10_000), Ok(()));
        let e = check_items(&lines, 10_001).unwrap_err();
        assert_eq!(e.path, "items");
        assert_eq!(
            e.message,
            "the lines sum to 10000, not to amount_minor 10001"
        );
    }

    #[test]
    fn each_bad_line_is_named_by_its_path() {
        let cases = [
            (vec![], "items"),
            (vec![item("", None, 1)], "items[0].sku"),
            (vec![item("a", None, 1), item("a", None, 0)], "items[1].sku"),
            (vec![item("a", None, -1)], "items[0].amount_minor"),
            (
                vec![Item {
                    quantity: 0,
                    ..item("a", None, 1)
                }],
                "items[0].quantity",
            ),
        ];
        for (lines, path) in cases {
            let total = lines.iter().map(|i| i.amount_minor).sum();
            assert_eq!(check_items(&lines, total).unwrap_err().path, path);
        }
        let many: Vec<Item> = (0..=MAX_ITEMS)
            .map(|i| item(&i.to_string(), None, 1))
            .collect();
        assert_eq!(
            check_items(&many, many.len() as i64).unwrap_err().path,
            "items"
        );
    }

    #[test]
    fn stored_lines_read_back_as_written() {
        let line = item("sku-1", Some("Books"), 1_500);
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"sku": "sku-1", "category": "books", "amount_minor": 1500, "quantity": 1})
        );
        assert_eq!(serde_json::from_value::<Item>(json).unwrap(), line);
    }
}
