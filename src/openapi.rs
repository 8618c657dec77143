//! The OpenAPI 3.1 document served at `GET /openapi.json`, generated from
//! the handlers' `#[utoipa::path]` attributes and the types' `ToSchema`
//! derives, built once per process.

/// Schemas of text fields that hold one of a fixed set of words.
pub mod enums {
    use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

    fn words(values: &[&str], nullable: bool) -> Object {
        let mut values: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
        let ty = if nullable {
            values.push(serde_json::Value::Null);
            [Type::String, Type::Null].into_iter().collect()
        } else {
            Type::String.into()
        };
        ObjectBuilder::new()
            .schema_type::<utoipa::openapi::schema::SchemaType>(ty)
            .enum_values(Some(values))
            .build()
    }

    /// A conversion's status.
    pub fn conversion_status() -> Object {
        words(
            &[
                "received",
                "waiting",
                "attributed",
                "unattributed",
                "rejected",
            ],
            false,
        )
    }

    /// A commission's status.
    pub fn commission_status() -> Object {
        words(&["pending", "approved", "paid", "reversed"], false)
    }

    /// A conversion's event.
    pub fn event() -> Object {
        words(&["sale", "lead", "refund"], false)
    }

    /// The event of the conversion behind a ledger entry, if any.
    pub fn event_or_null() -> Object {
        words(&["sale", "lead", "refund"], true)
    }

    /// How a conversion was attributed, if it was.
    pub fn attributed_via() -> Object {
        words(&["click", "coupon"], true)
    }

    /// What a ledger entry records.
    pub fn ledger_kind() -> Object {
        words(
            &[
                "created", "adjusted", "reversed", "approved", "paid", "rejected", "carried",
                "settled",
            ],
            false,
        )
    }

    /// The balance bucket a ledger entry moves money in.
    pub fn ledger_bucket() -> Object {
        words(&["pending", "approved", "paid"], false)
    }
}

/// Schemas of JSON values the code handles as `serde_json::Value`.
pub mod schemas {
    use crate::domain::Rule;

    /// The rule a commission was computed under, and the event it applied to.
    #[derive(utoipa::ToSchema)]
    pub struct AppliedRule {
        #[schema(value_type = String, examples("sale"))]
        pub event: &'static str,
        pub rule: Rule,
    }
}
