//! Every route in the table, called by every role and by nobody: the answer matches the route's
//! role rule. The router is built only from the same table, so a route cannot exist without a rule.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{Auth, TestApp, adult_form};
use ketcare_core::{Access, Role};
use ketcare_store::Backend;
use ketcare_web::routes::{Verb, rules};
use std::collections::HashSet;

/// Routes no account opens, authenticated by an HMAC signature instead (the SMS gateway's
/// delivery receipts).
const SIGNED: &[&str] = &["/api/v1/outreach/receipts"];

#[tokio::test]
async fn every_route_obeys_its_role_rule() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("writer", Role::Nurse).await;
    let writer = app.login("writer").await;
    let created = app.post_form("/patients", &writer, &adult_form()).await;
    let pid = created
        .location()
        .trim_start_matches("/patients/")
        .to_owned();
    app.set_test_site_settings().await;
    app.add_user("doc", Role::Prescriber).await;
    let doc = app.bearer("doc").await;
    let screening = app
        .json(Method::POST, &format!("/api/v1/patients/{pid}/screenings"), &doc, &serde_json::json!({
            "indication": "trd", "drug": "racemic_ketamine", "age": {"years": 40}, "weight_kg": 70, "pregnancy": "not_pregnant"}))
        .await;
    assert_eq!(screening.status, StatusCode::CREATED, "{}", screening.body);
    let sid = screening.json()["id"].to_string();
    let order = app
        .json(Method::POST, &format!("/api/v1/patients/{pid}/orders"), &doc, &serde_json::json!({
            "protocol_id": "trd-adult-iv-ketamine", "patient": {"weight_kg": 70, "age": {"years": 40}}}))
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let oid = order.json()["id"].to_string();
    app.add_user("boss", Role::Administrator).await;
    let boss = app.bearer("boss").await;
    let proposal = app
        .json(Method::POST, "/api/v1/site-settings/limits", &boss, &serde_json::json!({
            "protocol_id": "trd-adult-iv-ketamine", "limit_id": "max-mg-per-kg-hard", "value": 1.2, "reason": "test"}))
        .await;
    assert_eq!(proposal.status, StatusCode::ACCEPTED, "{}", proposal.body);
    let prop = proposal.json()["proposal_id"].to_string();
    app.add_user("thera", Role::Therapist).await;
    let encounter = app
        .json(Method::POST, &format!("/api/v1/patients/{pid}/therapy/encounters"), &app.bearer("thera").await, &serde_json::json!({
            "kind": "ongoing", "at": "2026-11-22T09:00", "duration_minutes": 50, "modality": "individual", "suicide_risk": "negative"}))
        .await;
    assert_eq!(encounter.status, StatusCode::CREATED, "{}", encounter.body);
    let eid = encounter.json()["id"].to_string();
    let mut tokens = Vec::new();
    for role in Role::ALL {
        let name = format!("u-{role}");
        app.add_user(&name, role).await;
        tokens.push((role, app.bearer(&name).await));
    }
    let rules = rules();
    assert!(rules.len() >= 20, "the table lists every route");
    for rule in &rules {
        for (who, auth) in std::iter::once((None, Auth::None))
            .chain(tokens.iter().map(|(r, a)| (Some(*r), a.clone())))
        {
            // A fresh guardian for each call, so a DELETE by one role does not hide the next one's answer.
            let g = app
                .post_form(
                    &format!("/patients/{pid}/guardians"),
                    &writer,
                    &[("name", "G"), ("relationship", "parent"), ("phone", "1")],
                )
                .await;
            assert_eq!(g.status, StatusCode::SEE_OTHER);
            let gid = app
                .get(&format!("/api/v1/patients/{pid}"), &tokens[2].1)
                .await
                .json()["guardians"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()["id"]
                .to_string();
            let path = rule
                .path
                .replace("{id}", &pid)
                .replace("{gid}", &gid)
                .replace("{pid}", "trd-adult-iv-ketamine")
                .replace("{sid}", &sid)
                .replace("{oid}", &oid)
                .replace("{prop}", &prop)
                .replace("{eid}", &eid);
            let method = Method::from_bytes(rule.verb.as_str().as_bytes()).unwrap();
            let body = if matches!(rule.verb, Verb::Post | Verb::Put) && path.starts_with("/api/") {
                "{}"
            } else {
                ""
            };
            let ct = if path.starts_with("/api/") {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            let r = app
                .send(method, &path, &auth, Some(ct), body.into(), &[])
                .await;
            let label = format!("{} {} as {:?}", rule.verb.as_str(), rule.path, who);
            match (rule.access, who) {
                // Open to no account, but its credential is the request's signature: an unsigned
                // request is refused whoever sends it.
                (Access::Public, _) if SIGNED.contains(&rule.path) => {
                    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{label}")
                }
                (Access::Public, _) => assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{label}"),
                (_, None) if path.starts_with("/api/") || path.starts_with("/fhir/") => {
                    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{label}")
                }
                (_, None) => {
                    assert_eq!(r.status, StatusCode::SEE_OTHER, "{label}");
                    assert!(r.location().starts_with("/login"), "{label}");
                }
                (access, Some(role)) if access.admits(Some(role)) => {
                    assert!(
                        ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&r.status),
                        "{label}: {} {}",
                        r.status,
                        r.body
                    )
                }
                (_, Some(_)) => assert_eq!(r.status, StatusCode::FORBIDDEN, "{label}: {}", r.body),
            }
        }
    }
}

#[tokio::test]
async fn each_route_is_declared_once_and_documented_api_routes_have_rules() {
    let rules = rules();
    let mut seen = HashSet::new();
    for r in &rules {
        assert!(
            seen.insert((r.verb.as_str(), r.path)),
            "{} {} declared twice",
            r.verb.as_str(),
            r.path
        );
    }
    let app = TestApp::new(Backend::Sqlite).await;
    let doc = app.get("/api/v1/openapi.json", &Auth::None).await.json();
    for r in &rules {
        if r.path.starts_with("/api/v1/") && r.path != "/api/v1/openapi.json" {
            let op = &doc["paths"][r.path][r.verb.as_str().to_lowercase()];
            assert!(
                op.is_object(),
                "{} {} has no OpenAPI description",
                r.verb.as_str(),
                r.path
            );
        }
    }
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let verb = method.to_uppercase();
            assert!(
                seen.contains(&(verb.as_str(), path.as_str())),
                "{verb} {path} is documented but has no role rule"
            );
        }
    }
}

#[tokio::test]
async fn refusals_are_audited_and_unknown_routes_are_404() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("rae", Role::Researcher).await;
    app.add_user("alex", Role::Administrator).await;
    let rae = app.bearer("rae").await;
    assert_eq!(
        app.get("/api/v1/patients", &rae).await.status,
        StatusCode::FORBIDDEN
    );
    let admin = app.bearer("alex").await;
    let log = app
        .get("/api/v1/audit?action=access.denied", &admin)
        .await
        .json();
    assert_eq!(log[0]["username"], "rae");
    assert_eq!(
        app.get("/api/v1/nothing-here", &admin).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/nothing-here", &admin).await.status,
        StatusCode::NOT_FOUND
    );
}
