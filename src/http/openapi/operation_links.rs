//! OpenAPI links from each operation that creates an object to every
//! operation that takes that object's id, derived from the document itself:
//! a new endpoint is linked as soon as its parameters name their id type.
//!
//! A created object's `id` is a typed id (`ProgramId`, `AgreementId`, ...),
//! and every path or query parameter that takes one says which by its
//! schema. So the 201 answer of `createProgram` links to `getProgram`,
//! `listAgreements`, `createPayout` and the rest with `$response.body#/id`;
//! a target's other path parameters are filled from the answer's fields of
//! the same name (an agreement's `version`). Clients (and Schemathesis'
//! stateful phase) follow them to chain a create into reads and changes.

use super::operations_mut;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::{OpenApi, RefOr};

pub struct Links;

/// Links a create does not have although the types would allow them: a
/// partner applies only to a program that lists itself (`public`), which a
/// new program does only when it says so.
const NOT_LINKED: &[(&str, &str)] = &[("createProgram", "applyToProgram")];

/// One operation that takes ids, as far as linking to it goes.
struct Target {
    operation_id: String,
    /// (location, name, id schema name) of each parameter typed as an id.
    ids: Vec<(String, String, String)>,
    /// Every path parameter: its name and the component its schema names.
    path: Vec<(String, Option<String>)>,
}

impl utoipa::Modify for Links {
    fn modify(&self, openapi: &mut OpenApi) {
        let Ok(doc) = serde_json::to_value(&*openapi) else {
            return;
        };
        let targets = targets(&doc);
        for item in openapi.paths.paths.values_mut() {
            for op in operations_mut(item) {
                for (status, response) in op.responses.responses.iter_mut() {
                    if status != "201" {
                        continue;
                    }
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    let Some(schema) = response
                        .content
                        .get("application/json")
                        .and_then(|c| serde_json::to_value(c).ok())
                        .map(|c| c["schema"].clone())
                    else {
                        continue;
                    };
                    let fields = properties(&doc, &schema);
                    let Some(created) = fields.get("id").and_then(ref_name) else {
                        continue;
                    };
                    let from = op.operation_id.clone().unwrap_or_default();
                    for target in &targets {
                        if NOT_LINKED.contains(&(from.as_str(), target.operation_id.as_str())) {
                            continue;
                        }
                        if let Some(link) = link_to(target, &created, &fields) {
                            response
                                .links
                                .insert(target.operation_id.clone(), link.into());
                        }
                    }
                }
            }
        }
    }
}

/// The link to `target` from an answer whose `id` is a `created`, when the
/// answer fills every path parameter the target has.
fn link_to(
    target: &Target,
    created: &str,
    fields: &BTreeMap<String, Value>,
) -> Option<utoipa::openapi::link::Link> {
    let (location, name, _) = target.ids.iter().find(|(_, _, kind)| kind == created)?;
    let mut link = LinkBuilder::new()
        .operation_id(target.operation_id.clone())
        .parameter(format!("{location}.{name}"), "$response.body#/id");
    for (other, kind) in target.path.iter().filter(|(p, _)| p != name) {
        // Filled from the answer's field of the same name and type.
        let field = fields.get(other)?;
        if kind.is_some() && ref_name(field) != *kind {
            return None;
        }
        link = link.parameter(format!("path.{other}"), format!("$response.body#/{other}"));
    }
    Some(
        link.description(format!("The created object's `id` as `{name}`."))
            .build(),
    )
}

/// Every operation with an id-typed parameter.
fn targets(doc: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    for item in doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for op in item.as_object().into_iter().flat_map(|i| i.values()) {
            let Some(operation_id) = op["operationId"].as_str() else {
                continue;
            };
            let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut ids = Vec::new();
            let mut path = Vec::new();
            for p in &parameters {
                let (Some(location), Some(name)) = (p["in"].as_str(), p["name"].as_str()) else {
                    continue;
                };
                if location == "path" {
                    path.push((name.to_owned(), ref_name(&p["schema"])));
                }
                if let Some(kind) = ref_name(&p["schema"]).filter(|k| k.ends_with("Id")) {
                    ids.push((location.to_owned(), name.to_owned(), kind));
                }
            }
            if !ids.is_empty() {
                out.push(Target {
                    operation_id: operation_id.to_owned(),
                    ids,
                    path,
                });
            }
        }
    }
    out
}

/// The component a schema refers to, also through a nullable `oneOf`.
fn ref_name(schema: &Value) -> Option<String> {
    if let Some(r) = schema["$ref"].as_str() {
        return r.rsplit('/').next().map(str::to_owned);
    }
    schema["oneOf"]
        .as_array()?
        .iter()
        .find_map(|s| s["$ref"].as_str())
        .and_then(|r| r.rsplit('/').next())
        .map(str::to_owned)
}

/// An object schema's properties, following `$ref` and `allOf`.
fn properties(doc: &Value, schema: &Value) -> BTreeMap<String, Value> {
    let schema = match schema["$ref"].as_str() {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .unwrap_or(&Value::Null),
        None => schema,
    };
    let mut out: BTreeMap<String, Value> = schema["properties"]
        .as_object()
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(properties(doc, part));
    }
    out
}
