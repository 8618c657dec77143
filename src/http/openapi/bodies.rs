//! What every operation that reads a request body answers about it, added
//! to the document once instead of by each handler, so a new endpoint
//! cannot forget a status its body reader gives.

use super::operations_mut;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr, Required};

/// Statuses every body read answers (`body::read`: 408 and 413; parsing: 400).
const ANY_BODY: &[(&str, &str)] = &[
    ("400", "BadRequest"),
    ("408", "RequestTimeout"),
    ("413", "PayloadTooLarge"),
];

/// Operations called with a bearer token read their body with `Body::json`,
/// which also refuses anything not sent as JSON. Signed webhooks read the
/// bytes their signature covers as JSON whatever the content type.
const BEARER_BODY: &[(&str, &str)] = &[("415", "UnsupportedMediaType")];

const BEARER_SCHEMES: &[&str] = &["admin_token", "program_key", "partner_key"];

pub struct RequestBodies;

impl utoipa::Modify for RequestBodies {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in operations_mut(item) {
                let Some(RefOr::T(body)) = &mut op.request_body else {
                    continue;
                };
                optional_means_absent(body);
                let bearer = op.security.iter().flatten().any(|requirement| {
                    serde_json::to_value(requirement)
                        .ok()
                        .and_then(|v| v.as_object().cloned())
                        .is_some_and(|schemes| {
                            schemes.keys().any(|s| BEARER_SCHEMES.contains(&s.as_str()))
                        })
                });
                let extra = if bearer { BEARER_BODY } else { &[] };
                for (status, response) in ANY_BODY.iter().chain(extra) {
                    op.responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*response)));
                }
            }
        }
    }
}

/// `Option<T>` as a request body derives "`T` or `null`", but an optional
/// body is one that may be left out: sent, it must be a `T` (the server
/// refuses a `null`). So the body becomes `T`, not required.
fn optional_means_absent(body: &mut utoipa::openapi::request_body::RequestBody) {
    let mut optional = false;
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
            continue;
        };
        let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
        if one_of.items.len() == 2 && one_of.items.iter().any(is_null) {
            content.schema = one_of.items.iter().find(|s| !is_null(s)).cloned();
            optional = true;
        }
    }
    if optional {
        body.required = Some(Required::False);
    }
}
