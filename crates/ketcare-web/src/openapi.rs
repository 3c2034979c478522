//! The OpenAPI 3.1 document of the JSON API, served at `/api/v1/openapi.json`.
//!
//! Each area describes its own operations (its `…ApiDoc`); [`document`] joins them and then adds
//! the answers every operation can give whatever its handler does, from the same route table the
//! router is built from: 401 and 403 where the route needs a credential or a role, 429 on every
//! `/api/` route (the pacing guard), 404 where the path names a record, and 422 where the
//! operation takes a parameter or a body (every rejection at the edge is that JSON 422 naming the
//! field). An operation can still document one of these itself, with its own words.

use crate::routes::{RouteRule, Verb};
use ketcare_core::Access;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{
    ContentBuilder, Header, ObjectBuilder, Ref, RefOr, Response, ResponseBuilder, Type,
};

/// The whole document: every area's operations, with the common answers added.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = crate::api::ApiDoc::openapi();
    doc.merge(crate::clinical_api::ClinicalApiDoc::openapi());
    doc.merge(crate::pk::PkApiDoc::openapi());
    doc.merge(crate::measures::MeasuresApiDoc::openapi());
    doc.merge(crate::sessions::SessionsApiDoc::openapi());
    doc.merge(crate::ops::OpsApiDoc::openapi());
    doc.merge(crate::therapy::TherapyApiDoc::openapi());
    doc.merge(crate::care_plan::CarePlanApiDoc::openapi());
    doc.merge(crate::research::ResearchApiDoc::openapi());
    doc.merge(crate::outreach::OutreachApiDoc::openapi());
    doc.merge(crate::sites::SitesApiDoc::openapi());
    doc.merge(crate::fhir::clients::FhirClientsApiDoc::openapi());
    add_common_responses(&mut doc, &crate::routes::rules());
    doc
}

/// The document as JSON, with every tuple (`prefixItems`, as utoipa writes a Rust tuple in
/// OpenAPI 3.1) spelled as a plain array instead: `items` any of the members' schemas, exactly as
/// many items as members (the members' order is left to the field's description). Contract
/// testers and client generators that do not read `prefixItems` (schemathesis rejects the
/// schema) can then use every answer's schema.
pub fn json() -> Result<serde_json::Value, serde_json::Error> {
    let mut doc = serde_json::to_value(document())?;
    spell_tuples_as_arrays(&mut doc);
    describe_path_parameters(&mut doc);
    Ok(doc)
}

/// What a path parameter names, from the path segment before it, and an example value (the
/// demo clinic's first record of that kind, so a contract tester's examples reach real records).
fn path_parameter(collection: &str) -> Option<(&'static str, serde_json::Value)> {
    use serde_json::json;
    Some(match collection {
        "patients" => ("the patient's id", json!(1)),
        "sessions" => ("the treatment session's id", json!(1)),
        "screenings" => ("the screening's id", json!(1)),
        "orders" => ("the dose order's id", json!(1)),
        "alerts" => ("the safety alert's id", json!(1)),
        "bookings" => ("the booking's id", json!(1)),
        "consents" => ("the consent signature's id", json!(1)),
        "guardians" => ("the guardian's id", json!(1)),
        "proposals" => ("the settings proposal's id", json!(1)),
        "users" => ("the account's id", json!(1)),
        "protocols" => ("the protocol's id", json!("trd-adult-iv-ketamine")),
        "prices" => ("the billing code (CPT/HCPCS)", json!("96365")),
        "fhir-clients" => (
            "the backend client's client_id",
            json!("kc-client-000000000000000000000000"),
        ),
        _ => return None,
    })
}

/// Gives every path parameter that has none a description and an example.
fn describe_path_parameters(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let segments: Vec<&str> = path.split('/').collect();
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
                continue;
            };
            for param in params.iter_mut().filter(|p| p["in"] == "path") {
                let Some(name) = param["name"].as_str() else {
                    continue;
                };
                let placeholder = format!("{{{name}}}");
                let before = segments
                    .iter()
                    .position(|s| *s == placeholder)
                    .and_then(|i| i.checked_sub(1))
                    .map(|i| segments[i]);
                let Some((words, example)) = before.and_then(path_parameter) else {
                    continue;
                };
                if param.get("description").is_none() {
                    param["description"] = words.into();
                }
                if param.get("example").is_none() {
                    param["example"] = example;
                }
            }
        }
    }
}

fn spell_tuples_as_arrays(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            if let Some(Value::Array(members)) = o.get("prefixItems").cloned() {
                let n = members.len();
                o.remove("prefixItems");
                o.insert("items".into(), serde_json::json!({ "anyOf": members }));
                o.insert("minItems".into(), n.into());
                o.insert("maxItems".into(), n.into());
            }
            o.values_mut().for_each(spell_tuples_as_arrays);
        }
        Value::Array(a) => a.iter_mut().for_each(spell_tuples_as_arrays),
        _ => {}
    }
}

/// What each common status means, the words every operation's answer carries unless it says more.
fn meaning(status: &str) -> Option<&'static str> {
    Some(match status {
        "400" => "the request could not be read",
        "401" => "no valid credential: send `Authorization: Bearer <token>` or sign in",
        "403" => {
            "the role may not do this, or the account must choose a new password first \
             (the refusal is audited)"
        }
        "404" => "no such record (or route)",
        "409" => "the record's state does not allow this now; the message says what is missing",
        "422" => {
            "a parameter or a field of the body is not valid; `fields` names each one and what was expected"
        }
        "429" => "too many requests from this credential; retry after `Retry-After` seconds",
        "503" => "the database does not answer",
        _ => return None,
    })
}

fn error_response(status: &str) -> Response {
    let mut b = ResponseBuilder::new()
        .description(meaning(status).unwrap_or("an error"))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        );
    if status == "429" {
        b = b.header(
            "Retry-After",
            Header::new(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ),
        );
    }
    b.build()
}

fn operations(item: &mut utoipa::openapi::PathItem) -> [(Verb, Option<&mut Operation>); 4] {
    [
        (Verb::Get, item.get.as_mut()),
        (Verb::Post, item.post.as_mut()),
        (Verb::Put, item.put.as_mut()),
        (Verb::Delete, item.delete.as_mut()),
    ]
}

fn add_common_responses(doc: &mut utoipa::openapi::OpenApi, rules: &[RouteRule]) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (verb, op) in operations(item) {
            let Some(op) = op else { continue };
            let access = rules
                .iter()
                .find(|r| r.path == path && r.verb == verb)
                .map_or(Access::Public, |r| r.access);
            let takes_input =
                op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some();
            let mut statuses = Vec::new();
            if access != Access::Public {
                statuses.extend(["401", "403"]);
            }
            if path.starts_with("/api/") {
                statuses.push("429");
            }
            if path.contains('{') {
                statuses.push("404");
            }
            if takes_input {
                statuses.push("422");
            }
            let responses = &mut op.responses.responses;
            for status in statuses {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::T(error_response(status)));
            }
            // An error an operation documents without words gets the common ones.
            for (status, response) in responses.iter_mut() {
                if let RefOr::T(r) = response
                    && r.description.trim().is_empty()
                    && let Some(words) = meaning(status)
                {
                    r.description = words.to_owned();
                }
            }
        }
    }
}
