//! Cursor pagination: `?limit=&cursor=`, answered as `{"data": [...], "next_cursor": ...}`.
//!
//! The cursor is the last row's id in base62: opaque to clients, stable under
//! inserts, and a plain index range scan for Postgres.

use crate::http::error::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Rows to return.
    pub limit: i64,
    /// Return rows with ids above this one.
    pub after: i64,
}

impl Page {
    pub fn parse(limit: Option<i64>, cursor: Option<Cursor>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be from 1 to {MAX_LIMIT}"
            )));
        }
        let after = cursor.map_or(0, |c| c.0);
        Ok(Self { limit, after })
    }

    /// Rows to fetch: one more than the limit tells whether a next page exists.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

/// `?cursor=`: the `next_cursor` of the previous page (empty: the first
/// page). Parsed with the query, so every list refuses a cursor it did not
/// issue the same way (400), and documents the same pattern.
#[derive(Debug, Clone, Copy)]
pub struct Cursor(i64);

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s.is_empty() {
            return Ok(Cursor(0));
        }
        crate::domain::parse_cursor(&s)
            .map(Cursor)
            .map_err(|_| serde::de::Error::custom("cursor is not one this API issued"))
    }
}

/// The cursor's text: base62 of a row id.
fn cursor_pattern() -> String {
    crate::domain::base62_i64_pattern()
}

impl utoipa::PartialSchema for Cursor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The `next_cursor` of the previous page; empty for the first page.",
            ))
            .pattern(Some(format!("^(?:{})?$", cursor_pattern())))
            .into()
    }
}

impl utoipa::ToSchema for Cursor {}

#[derive(Debug, Serialize)]
pub struct List<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// In the OpenAPI document: `<T>List`, its items referring to `T`'s schema
/// (a derive would copy `T`'s schema into every list).
impl<T: utoipa::ToSchema> utoipa::PartialSchema for List<T> {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, Ref};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(format!("A page of {}s.", T::name())))
            .property(
                "data",
                ArrayBuilder::new().items(Ref::from_schema_name(T::name())),
            )
            .required("data")
            .property(
                "next_cursor",
                ObjectBuilder::new()
                    .schema_type(
                        [Type::String, Type::Null]
                            .into_iter()
                            .collect::<SchemaType>(),
                    )
                    .pattern(Some(format!("^{}$", cursor_pattern())))
                    .description(Some(
                        "Pass as `?cursor=` for the next page; null on the last page.",
                    )),
            )
            .required("next_cursor")
            .into()
    }
}

impl<T: utoipa::ToSchema> utoipa::ToSchema for List<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Owned(format!("{}List", T::name()))
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}

impl<T> List<T> {
    /// Trims the extra row fetched by `Page::fetch` and sets the cursor.
    pub fn from_rows(mut rows: Vec<T>, page: Page, id_of: impl Fn(&T) -> i64) -> Self {
        let more = rows.len() as i64 > page.limit;
        rows.truncate(page.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| base62::encode(id_of(r) as u64))
        } else {
            None
        };
        List {
            data: rows,
            next_cursor,
        }
    }
}
