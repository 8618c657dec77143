//! Cursor pagination: `?limit=&cursor=`, answered as `{"data": [...], "next_cursor": ...}`.
//!
//! The cursor is the last row's id in base62: opaque to clients, stable under
//! inserts, and a plain index range scan for Postgres.

use crate::domain::IdError;
use crate::http::error::ApiError;
use serde::Serialize;

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
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be from 1 to {MAX_LIMIT}"
            )));
        }
        let after = match cursor {
            None | Some("") => 0,
            Some(c) => crate::domain::parse_cursor(c).map_err(|_: IdError| {
                ApiError::BadRequest("cursor is not one this API issued".into())
            })?,
        };
        Ok(Self { limit, after })
    }

    /// Rows to fetch: one more than the limit tells whether a next page exists.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

#[derive(Debug, Serialize)]
pub struct List<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// In the OpenAPI document: `<T>List`, its items referring to `T`'s schema
/// (a derive would copy `T`'s schema into every list).
impl<T: utoipa::ToSchema> utoipa::PartialSchema for List<T> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Ref, Type};
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
                            .collect::<utoipa::openapi::schema::SchemaType>(),
                    )
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
