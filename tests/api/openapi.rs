//! The OpenAPI document at /openapi.json, checked against the routes the
//! application actually serves, in both directions, and for its own
//! consistency (OpenAPI 3.1, references, operation ids, tags, errors).

use crate::helpers::*;
use mitra::startup::Roles;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document as the code builds it (the same bytes /openapi.json serves).
fn document() -> Value {
    serde_json::from_str(mitra::http::openapi::json()).expect("the document is JSON")
}

/// Every operation: (method, path, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// The value a local `$ref` (`#/a/b`) points to.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// `value`, or what it refers to when it is a `$ref`.
fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("unresolved $ref {r}")),
        None => value,
    }
}

/// Every `$ref` in the document, with where it was found.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.push((at.to_owned(), r.to_owned()));
                }
                refs(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The properties an object schema requires, following `$ref` and `allOf`.
fn required_properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = deref(doc, schema);
    let mut out: BTreeSet<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            out.extend(required_properties(doc, part));
        }
    }
    out
}

#[test]
fn every_served_route_is_documented_and_every_documented_operation_is_served() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let served: Vec<(String, String)> = mitra::http::served_routes()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    let served_set: BTreeSet<_> = served.iter().cloned().collect();
    assert_eq!(
        served.len(),
        served_set.len(),
        "a route is registered twice"
    );
    let undocumented: Vec<_> = served_set.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served_set).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in the OpenAPI document: {undocumented:?}; \
         documented but not in the route table: {unserved:?}"
    );
}

#[test]
fn the_document_is_consistent_openapi_3_1() {
    let doc = document();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(!found.is_empty());
    for (at, r) in &found {
        assert!(
            resolve(&doc, r).is_some(),
            "{at}: $ref {r} does not resolve"
        );
    }

    let declared_tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags are declared")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let schemes: BTreeSet<&str> = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes are declared")
        .keys()
        .map(String::as_str)
        .collect();
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no operationId"));
        assert!(
            ids.insert(id.to_owned()),
            "{name}: operationId {id} is not unique"
        );

        let tags = op["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no tags"));
        assert!(!tags.is_empty(), "{name}: no tags");
        for tag in tags {
            assert!(
                declared_tags.contains(tag.as_str().unwrap()),
                "{name}: undeclared tag {tag}"
            );
        }

        // Path parameters: exactly the template's, each required.
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(String::from)
            .collect();
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .map(|p| p.iter().map(|p| deref(&doc, p)).collect())
            .unwrap_or_default();
        let in_path: BTreeSet<String> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"], true,
                    "{name}: path parameter {} not required",
                    p["name"]
                );
                p["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(in_template, in_path, "{name}: path parameters");

        if let Some(requirements) = op["security"].as_array() {
            for requirement in requirements {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(
                        schemes.contains(scheme.as_str()),
                        "{name}: unknown scheme {scheme}"
                    );
                }
            }
        } else {
            assert!(
                path.starts_with("/l/") || !path.starts_with("/v1/"),
                "{name}: an API operation without security"
            );
        }

        // Every error is documented as problem details.
        let responses = op["responses"].as_object().unwrap();
        let mut errors = 0;
        for (status, response) in responses {
            let code: u16 = status
                .parse()
                .unwrap_or_else(|_| panic!("{name}: response {status} is not a status code"));
            let response = deref(&doc, response);
            assert!(
                response["description"].is_string(),
                "{name} {status}: no description"
            );
            if code < 400 {
                continue;
            }
            errors += 1;
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{name} {status}: an error response without content"));
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                ["application/problem+json"],
                "{name} {status}"
            );
            let schema = &content["application/problem+json"]["schema"];
            let problem = required_properties(&doc, schema);
            for field in ["type", "title", "status", "detail"] {
                assert!(
                    problem.contains(field),
                    "{name} {status}: problem without {field}"
                );
            }
        }
        assert!(errors > 0, "{name}: no error response documented");
    }

    let problem = &doc["components"]["schemas"]["Problem"];
    assert_eq!(
        problem["properties"]["errors"]["items"]["$ref"],
        "#/components/schemas/FieldError"
    );
}

#[test]
fn every_operation_reading_a_body_documents_what_reading_it_answers() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        let Some(body) = op.get("requestBody") else {
            continue;
        };
        let name = format!("{} {path}", method.to_uppercase());
        for status in ["400", "408", "413"] {
            assert!(
                op["responses"].get(status).is_some(),
                "{name}: reads a body but does not document {status}"
            );
        }
        // An optional body may be left out; sent, it is never `null`.
        for (media, content) in body["content"].as_object().unwrap() {
            let schema = deref(&doc, &content["schema"]);
            let alternatives = schema["oneOf"].as_array().into_iter().flatten();
            for alternative in alternatives {
                assert_ne!(
                    alternative["type"], "null",
                    "{name} {media}: a body documented as possibly null"
                );
            }
        }
    }
}

/// Whether a schema (or one part of an `allOf`) says `additionalProperties: false`.
fn refuses_unknown_properties(doc: &Value, schema: &Value) -> bool {
    let schema = deref(doc, schema);
    schema["additionalProperties"] == false
        || schema["allOf"]
            .as_array()
            .is_some_and(|parts| parts.iter().any(|p| refuses_unknown_properties(doc, p)))
}

#[test]
fn every_body_a_bearer_sends_is_documented_to_refuse_unknown_fields() {
    // The API's own bodies are read with `deny_unknown_fields`; signed
    // webhooks ignore fields they do not know, as platforms add fields.
    let doc = document();
    for (method, path, op) in operations(&doc) {
        let Some(body) = op.get("requestBody") else {
            continue;
        };
        let bearer = op["security"].as_array().into_iter().flatten().any(|r| {
            ["admin_token", "program_key", "partner_key"]
                .iter()
                .any(|s| r.get(*s).is_some())
        });
        // The simulator takes an order as the webhook sends it, so a shop's
        // webhook body can be pasted as it is: it ignores the webhook's other
        // fields (and documents that it does).
        if !bearer || path == "/v1/programs/{id}/simulate" {
            continue;
        }
        for (media, content) in body["content"].as_object().unwrap() {
            assert!(
                refuses_unknown_properties(&doc, &content["schema"]),
                "{} {path} {media}: the body does not refuse unknown fields",
                method.to_uppercase()
            );
        }
    }
}

#[test]
fn creates_link_to_the_operations_that_take_what_they_created() {
    let doc = document();
    let ops = operations(&doc);
    let by_id: BTreeMap<&str, (&String, &Value)> = ops
        .iter()
        .map(|(_, path, op)| (op["operationId"].as_str().unwrap(), (path, op)))
        .collect();
    let mut links = BTreeMap::new();
    for (_, _, op) in &ops {
        for (status, response) in op["responses"].as_object().unwrap() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let from = op["operationId"].as_str().unwrap();
                let to = link["operationId"].as_str().unwrap();
                // The target exists, and every path parameter it has is filled.
                let (path, _) = by_id
                    .get(to)
                    .unwrap_or_else(|| panic!("{from} {status} links to unknown {to}"));
                for param in path
                    .split('/')
                    .filter_map(|p| p.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
                {
                    assert!(
                        link["parameters"].get(format!("path.{param}")).is_some(),
                        "{from} -> {to}: {param} is not filled"
                    );
                }
                links.insert((from.to_owned(), name.clone()), link.clone());
            }
        }
    }
    let link =
        |from: &str, to: &str| links[&(from.to_owned(), to.to_owned())]["parameters"].clone();
    assert_eq!(
        link("createProgram", "getProgram"),
        json!({"path.id": "$response.body#/id"})
    );
    assert_eq!(
        link("createProgram", "listAgreements"),
        json!({"path.id": "$response.body#/id"})
    );
    assert_eq!(
        link("createAgreement", "getAgreementVersion"),
        json!({"path.id": "$response.body#/id", "path.version": "$response.body#/version"})
    );
    assert_eq!(
        link("createLink", "getReport"),
        json!({"query.link_id": "$response.body#/id"})
    );
    assert_eq!(
        link("invitePartner", "acceptInvitation"),
        json!({"path.id": "$response.body#/id"})
    );
    // A partner's id is never passed where a program's is taken.
    assert!(!links.contains_key(&("createProgram".to_owned(), "listCommissions".to_owned())));
}

#[tokio::test]
async fn the_document_is_served_to_anyone_by_every_role_as_json() {
    for roles in [Roles::API, Roles::WORKER] {
        let app = spawn_app_with(roles, &[]).await;
        let res = app
            .client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        // The document is built once: every answer is the same bytes.
        assert_eq!(res.text().await.unwrap(), mitra::http::openapi::json());
        app.stop().await;
    }
}

/// A value for a path parameter: ids of the fixture's objects where the
/// document says which kind of id it is.
fn sample(doc: &Value, f: &Fixture, param: &Value) -> String {
    let name = param["name"].as_str().unwrap();
    let schema_ref = param["schema"]["$ref"].as_str().unwrap_or("");
    let id = |v: &Value| s(&v["id"]).to_owned();
    match (schema_ref.rsplit('/').next().unwrap_or(""), name) {
        ("ProgramId", _) => id(&f.program),
        ("PartnerId", _) => id(&f.partner),
        ("AgreementId", _) => id(&f.agreement),
        ("LinkId", _) => id(&f.link),
        ("CommissionId", _) => "com_1".into(),
        ("PayoutId", _) => "pay_1".into(),
        ("EnrollmentId", _) => "enr_1".into(),
        (_, "token") => "an-invitation-token".into(),
        (_, "answer") => "accept".into(),
        ("Platform", _) => "shopify".into(),
        (_, "code") => s(&f.link["code"]).to_owned(),
        (_, "order_id") => "order-1".into(),
        (_, "version") => "1".into(),
        _ => {
            let schema = deref(doc, &param["schema"]);
            schema["examples"][0]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| {
                    panic!("no sample value for path parameter {name}: add one here")
                })
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_served_with_a_documented_status() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc: Value = assert_status(res, StatusCode::OK).await;

    // Each operation on a new connection: an operation refused before its
    // body was read may leave its connection closing, and on a loaded
    // machine the next request could be sent on it (IncompleteMessage).
    let client = client_builder().pool_max_idle_per_host(0).build().unwrap();
    let mut ops = operations(&doc);
    // Disabling the link last keeps it redirecting for the other requests.
    ops.sort_by_key(|(method, _, _)| method == "delete");
    let mut seen = BTreeMap::new();
    for (method, template, op) in ops {
        let mut path = template.clone();
        for param in op["parameters"].as_array().into_iter().flatten() {
            let param = deref(&doc, param);
            if param["in"] == "path" {
                let name = param["name"].as_str().unwrap();
                path = path.replace(&format!("{{{name}}}"), &sample(&doc, &f, param));
            }
        }
        let name = format!("{} {template}", method.to_uppercase());
        let mut req = client
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                app.url(&path),
            )
            .bearer_auth(&app.admin_token);
        if op.get("requestBody").is_some() {
            req = req.json(&json!({}));
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = res.text().await.unwrap();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{name} ({path}): {body}"
        );
        if method == "head" {
            // No body to tell the router's 404 from the handler's: the
            // sample is a live link, so anything but its redirect fails.
            assert_eq!(status, StatusCode::FOUND, "{name} ({path})");
        } else if status == StatusCode::NOT_FOUND {
            let problem: Value = serde_json::from_str(&body).unwrap();
            assert!(
                !(problem["type"] == "urn:mitra:problem:not-found"
                    && problem["detail"] == "no such resource"),
                "{name} ({path}) is not routed: {body}"
            );
        }

        let documented = &op["responses"][status.as_str()];
        assert!(
            !documented.is_null(),
            "{name} ({path}) answered {status}, which is not documented: {body}"
        );
        // The documented schema's required properties are in the answer.
        let media = content_type.split(';').next().unwrap().trim();
        let documented = deref(&doc, documented);
        if let Some(schema) = documented["content"].get(media).map(|c| &c["schema"])
            && media.ends_with("json")
            && method != "head"
        {
            let answer: Value = serde_json::from_str(&body).unwrap();
            for field in required_properties(&doc, schema) {
                assert!(
                    answer.get(&field).is_some(),
                    "{name} ({path}) answered {status} without {field}: {body}"
                );
            }
        } else if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                method, "head",
                "{name}: an error that is not problem+json: {body}"
            );
        }
        seen.insert(name, status);
    }
    // With the fixture's ids every operation reaches its handler's success,
    // but these, each for the reason given.
    let refused: BTreeMap<&str, u16> = seen
        .iter()
        .filter(|(_, s)| !(s.is_success() || s.is_redirection()))
        .map(|(name, s)| (name.as_str(), s.as_u16()))
        .collect();
    assert_eq!(refused, expected_refusals(), "{seen:?}");
}

#[test]
fn mitra_openapi_prints_the_served_document_without_configuration() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mitra"))
        .arg("openapi")
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.trim_end(), mitra::http::openapi::json());
}

/// The operations that do not succeed when called as the admin with an
/// empty JSON object as body and the fixture's ids, and what they answer.
fn expected_refusals() -> BTreeMap<&'static str, u16> {
    BTreeMap::from([
        // No such object in the fixture.
        ("GET /v1/payouts/{id}", 404),
        ("GET /v1/programs/{id}/conversions/{order_id}", 404),
        ("POST /v1/commissions/{id}/approve", 404),
        ("POST /v1/commissions/{id}/reject", 404),
        ("POST /v1/invitations/{token}/{answer}", 403), // a partner's, not the admin's
        ("POST /v1/programs/{id}/applications", 403),   // likewise
        // The fixture's partner is active already: nothing to accept or decide.
        ("POST /v1/enrollments/{id}/accept", 409),
        ("POST /v1/enrollments/{id}/approve", 409),
        ("POST /v1/enrollments/{id}/decline", 409),
        // These need a reason code, which the empty body lacks.
        ("POST /v1/enrollments/{id}/ban", 422),
        ("POST /v1/enrollments/{id}/deactivate", 422),
        ("POST /v1/enrollments/{id}/reject", 422),
        ("POST /v1/programs/{id}/enrollments", 422), // partner_id or email
        ("PATCH /v1/programs/{id}", 422),            // nothing to change
        // Required fields missing from the empty body.
        ("POST /v1/links", 400),
        ("POST /v1/partners", 400),
        ("POST /v1/programs", 400),
        ("POST /v1/programs/{id}/agreements", 400),
        ("PUT /v1/agreements/{id}", 400),
        ("PUT /v1/programs/{id}/integrations/{platform}/secret", 400),
        ("PUT /v1/programs/{id}/listing", 400),
        ("POST /v1/programs/{id}/simulate", 400),
        // No claim in the fixture; opening one needs a kind (and, as the admin, a partner).
        ("GET /v1/claims/{id}", 404),
        ("POST /v1/claims/{id}/accept", 404),
        ("POST /v1/claims/{id}/comments", 404),
        ("POST /v1/claims/{id}/decline", 404),
        ("POST /v1/programs/{id}/claims", 400),
        ("PUT /v1/programs/{id}/claim-policy", 400),
        // No webhook endpoint in the fixture (the admin must also name an owner).
        ("DELETE /v1/webhook-endpoints/{id}", 404),
        ("GET /v1/webhook-endpoints/{id}", 404),
        ("GET /v1/webhook-endpoints/{id}/deliveries", 404),
        ("POST /v1/webhook-endpoints", 400),
        (
            "POST /v1/webhook-endpoints/{id}/deliveries/{delivery_id}/replay",
            404,
        ),
        ("POST /v1/webhook-endpoints/{id}/enable", 404),
        ("POST /v1/webhook-endpoints/{id}/test", 404),
        ("POST /v1/partners/{id}/users", 400), // email
        ("POST /v1/programs/{id}/users", 400), // email
        ("POST /v1/password-resets", 400),     // email
        // Signed, not bearer-authenticated: an unsigned request is refused.
        ("POST /v1/programs/{id}/conversions", 401),
        ("POST /v1/programs/{id}/integrations/shopify", 401),
        ("POST /v1/programs/{id}/integrations/stripe", 401),
        ("POST /v1/programs/{id}/integrations/woocommerce", 401),
    ])
}
