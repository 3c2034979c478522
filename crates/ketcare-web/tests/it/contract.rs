//! The API contract, in the rules Rust can check on the document itself: OpenAPI 3.1, every
//! answer described, every request body a real schema, every route of the table documented, the
//! common refusals on every operation; and path and query rejections answered with the
//! documented JSON 422 naming the parameter. (`scripts/contract-test` then runs a contract
//! tester against a live server for every role.)

use crate::common;

use axum::http::{Method, StatusCode, header};
use common::{Auth, Reply, TestApp};
use ketcare_core::{Access, Role};
use ketcare_store::Backend;
use ketcare_web::routes::rules;
use serde_json::Value;
use std::collections::BTreeSet;

const VERBS: [&str; 4] = ["get", "put", "post", "delete"];

async fn document(app: &TestApp) -> Value {
    let r = app.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()
}

/// Follows a local `$ref` into the components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            let target = &doc["components"]["schemas"][name];
            assert!(!target.is_null(), "dangling reference {r}");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// A schema a client generator and a contract tester can build a value from: not `{}` and not
/// a bare `{"type": "object"}` with nothing inside.
fn is_described(doc: &Value, schema: &Value) -> bool {
    let s = resolve(doc, schema);
    let Some(o) = s.as_object() else { return false };
    if o.contains_key("oneOf") || o.contains_key("anyOf") || o.contains_key("allOf") {
        return true;
    }
    match o.get("type").and_then(Value::as_str) {
        Some("object") => o.contains_key("properties") || o.contains_key("additionalProperties"),
        Some(_) => true,
        None => false,
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for verb in VERBS {
            if let Some(op) = item.get(verb) {
                ops.push((verb.to_owned(), path.clone(), op));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_every_answer_and_body_described() {
    let app = TestApp::new(Backend::Sqlite).await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let ops = operations(&doc);
    assert!(ops.len() > 70, "only {} operations", ops.len());
    let mut problems = Vec::new();
    let mut ids = std::collections::BTreeMap::new();
    for (verb, path, op) in &ops {
        if let Some(id) = op["operationId"].as_str()
            && let Some(first) = ids.insert(id.to_owned(), format!("{verb} {path}"))
        {
            problems.push(format!(
                "{verb} {path}: operation id {id:?} is also {first}'s"
            ));
        }
        let responses = op["responses"].as_object().expect("responses");
        if !responses.keys().any(|s| s.starts_with('2')) {
            problems.push(format!("{verb} {path}: no success answer"));
        }
        for (status, response) in responses {
            if response["description"]
                .as_str()
                .is_none_or(|d| d.trim().is_empty())
            {
                problems.push(format!("{verb} {path} {status}: no description"));
            }
            if let Some(schema) = response.pointer("/content/application~1json/schema")
                && resolve(&doc, schema)
                    .as_object()
                    .is_none_or(|o| o.is_empty())
            {
                problems.push(format!("{verb} {path} {status}: empty schema"));
            }
        }
        if let Some(body) = op.get("requestBody") {
            match body.pointer("/content/application~1json/schema") {
                Some(schema) if is_described(&doc, schema) => {}
                other => problems.push(format!(
                    "{verb} {path}: request body is not described by a real schema: {other:?}"
                )),
            }
        }
        // Every `{name}` of the path is a declared path parameter.
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            if !declared.contains(name) {
                problems.push(format!("{verb} {path}: path parameter {name} not declared"));
            }
        }
        // A parameter or a body can be refused: the refusal is documented.
        let takes_input = !declared.is_empty()
            || op["parameters"].as_array().is_some_and(|p| !p.is_empty())
            || op.get("requestBody").is_some();
        if takes_input && !responses.contains_key("422") {
            problems.push(format!("{verb} {path}: 422 not documented"));
        }
        if path.starts_with("/api/") && !responses.contains_key("429") {
            problems.push(format!("{verb} {path}: 429 not documented"));
        }
    }
    // Tuples are spelled as plain arrays (the contract tester does not read `prefixItems`), and
    // every reference resolves.
    let text = doc.to_string();
    if text.contains("\"prefixItems\"") {
        problems.push("a tuple is still written with prefixItems".into());
    }
    for name in text
        .split("\"#/components/schemas/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
    {
        if doc["components"]["schemas"][name].is_null() {
            problems.push(format!("dangling reference to {name}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn every_api_route_is_documented_with_its_refusals() {
    let app = TestApp::new(Backend::Sqlite).await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(verb, path, _)| (verb, path))
        .collect();
    let mut problems = Vec::new();
    for rule in rules() {
        if !rule.path.starts_with("/api/v1/") || rule.path == "/api/v1/openapi.json" {
            continue;
        }
        let verb = rule.verb.as_str().to_lowercase();
        if !documented.contains(&(verb.clone(), rule.path.to_owned())) {
            problems.push(format!(
                "{} {}: route not in the document",
                rule.verb.as_str(),
                rule.path
            ));
            continue;
        }
        let responses = &doc["paths"][rule.path][&verb]["responses"];
        if rule.access != Access::Public {
            for status in ["401", "403"] {
                if responses.get(status).is_none() {
                    problems.push(format!("{verb} {}: {status} not documented", rule.path));
                }
            }
            if doc["paths"][rule.path][&verb]["security"].is_null() {
                problems.push(format!("{verb} {}: no security requirement", rule.path));
            }
        }
        if rule.path.contains('{') && responses.get("404").is_none() {
            problems.push(format!("{verb} {}: 404 not documented", rule.path));
        }
    }
    for (verb, path) in &documented {
        if !rules()
            .iter()
            .any(|r| r.path == path && r.verb.as_str().eq_ignore_ascii_case(verb))
        {
            problems.push(format!("{verb} {path}: documented but not routed"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn assert_json_422(r: &Reply, field: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let ct = r
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(ct.starts_with("application/json"), "{ct}: {}", r.body);
    assert_eq!(r.json()["error"], "invalid", "{}", r.body);
    assert_eq!(r.fields(), vec![field.to_owned()], "{}", r.body);
}

#[tokio::test]
async fn path_and_query_rejections_are_the_documented_json_422_naming_the_parameter() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nina", Role::Nurse).await;
    let nurse = app.bearer("nina").await;
    app.add_user("boss", Role::Administrator).await;
    let boss = app.bearer("boss").await;

    // The example: a session id that is not a number.
    assert_json_422(&app.get("/api/v1/sessions/abc", &nurse).await, "sid");
    assert_json_422(&app.get("/api/v1/patients/1.5", &nurse).await, "id");
    assert_json_422(
        &app.get("/api/v1/sessions/abc/timeline?model=domino", &nurse)
            .await,
        "sid",
    );
    // Two parameters: the bad one is named.
    let r = app
        .send(
            Method::DELETE,
            "/api/v1/patients/1/guardians/x",
            &nurse,
            None,
            String::new(),
            &[],
        )
        .await;
    assert_json_422(&r, "gid");
    assert_json_422(
        &app.json(
            Method::POST,
            "/api/v1/orders/nope/verify",
            &nurse,
            &serde_json::json!({}),
        )
        .await,
        "oid",
    );
    // Query strings: a wrong type, and a value outside the declared range.
    assert_json_422(
        &app.get("/api/v1/patients?limit=many", &nurse).await,
        "limit",
    );
    assert_json_422(&app.get("/api/v1/patients?limit=0", &nurse).await, "limit");
    assert_json_422(
        &app.get("/api/v1/audit?patient_id=x", &boss).await,
        "patient_id",
    );
    assert_json_422(
        &app.get("/api/v1/schedule/bookings?from=2026-01-01T08:00", &nurse)
            .await,
        "to",
    );
    // A well-formed request still works.
    let ok = app.get("/api/v1/patients?limit=5", &nurse).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn the_documented_limits_are_the_ones_the_server_keeps() {
    let app = TestApp::new(Backend::Sqlite).await;
    let doc = document(&app).await;
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .map(|p| p["schema"].clone())
            .unwrap_or(Value::Null)
    };
    let limit = param("/api/v1/patients", "limit");
    assert_eq!(
        (limit["minimum"].as_f64(), limit["maximum"].as_f64()),
        (Some(1.0), Some(200.0))
    );
    let limit = param("/api/v1/audit", "limit");
    assert_eq!(
        (limit["minimum"].as_f64(), limit["maximum"].as_f64()),
        (Some(1.0), Some(500.0))
    );
    app.add_user("nina", Role::Nurse).await;
    let nurse = app.bearer("nina").await;
    assert_eq!(
        app.get("/api/v1/patients?limit=200", &nurse).await.status,
        StatusCode::OK
    );
    assert_json_422(
        &app.get("/api/v1/patients?limit=201", &nurse).await,
        "limit",
    );
}
