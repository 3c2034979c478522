//! The clinical core through the web edge, on SQLite and PostgreSQL: site settings unblock a
//! protocol, a prescriber screens and doses a patient, a hard limit refuses, a soft limit passes
//! only with a reason, and only a second clinician verifies. The API, the page and the pure
//! library give the same numbers.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{TestApp, adult_form, minor_form};
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use serde_json::json;

#[tokio::test]
async fn screen_dose_override_verify_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("alex", Role::Administrator).await;
        app.add_user("priya", Role::Prescriber).await;
        app.add_user("nina", Role::Nurse).await;
        let admin = app.bearer("alex").await;
        let doc = app.bearer("priya").await;
        let nurse = app.bearer("nina").await;
        let created = app
            .post_form("/patients", &app.login("nina").await, &adult_form())
            .await;
        let pid = created
            .location()
            .trim_start_matches("/patients/")
            .to_owned();

        // Blocked until the site sets its values; the API says which.
        let p = app
            .get("/api/v1/protocols/trd-adult-iv-ketamine", &doc)
            .await
            .json();
        assert_eq!(p["readiness"]["ready"], false, "{backend:?}");
        let order_body = json!({"protocol_id": "trd-adult-iv-ketamine", "patient": {"weight_kg": 70, "age": {"years": 40}},
                                "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}});
        let blocked = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/orders"),
                &doc,
                &order_body,
            )
            .await;
        assert_eq!(blocked.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            blocked.body.contains("blocked until the site sets"),
            "{}",
            blocked.body
        );

        // The administrator sets them (a new, audited version); a prescriber may not.
        let mut values = serde_json::Map::new();
        for (k, v) in common::TEST_SITE_SETTINGS {
            values.insert(k.into(), v.into());
        }
        let change = json!({"settings": {"values": values}, "reason": "clinic policy 2026-11"});
        assert_eq!(
            app.json(Method::PUT, "/api/v1/site-settings", &doc, &change)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        let saved = app
            .json(Method::PUT, "/api/v1/site-settings", &admin, &change)
            .await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
        assert_eq!(saved.json()["version"], 1);
        let no_reason = app
            .json(
                Method::PUT,
                "/api/v1/site-settings",
                &admin,
                &json!({"settings": {"values": values}, "reason": " "}),
            )
            .await;
        assert_eq!(no_reason.fields(), vec!["reason"]);

        // Screening: stored, with findings and sources; a relative finding overridden with a reason.
        let s = app
            .json(Method::POST, &format!("/api/v1/patients/{pid}/screenings"), &doc, &json!({
                "indication": "trd", "drug": "racemic_ketamine", "age": {"years": 40}, "weight_kg": 70,
                "history": ["history_of_substance_use_disorder"], "pregnancy": "not_pregnant",
                "baseline": {"systolic_mmhg": 128, "diastolic_mmhg": 82}}))
            .await;
        assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
        let sj = s.json();
        let relative = sj["outcome"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["severity"] == "relative")
            .cloned();
        if let Some(f) = relative {
            let sid = sj["id"].as_i64().unwrap();
            let url = format!("/api/v1/screenings/{sid}/overrides");
            let empty = app
                .json(
                    Method::POST,
                    &url,
                    &doc,
                    &json!({"finding_id": f["id"], "reason": ""}),
                )
                .await;
            assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(
                app.json(
                    Method::POST,
                    &url,
                    &nurse,
                    &json!({"finding_id": f["id"], "reason": "x"})
                )
                .await
                .status,
                StatusCode::FORBIDDEN
            );
            let ok = app
                .json(
                    Method::POST,
                    &url,
                    &doc,
                    &json!({"finding_id": f["id"], "reason": "in sustained remission, reviewed"}),
                )
                .await;
            assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
            assert_eq!(ok.json()["outcome"]["overrides"][0]["by"], "priya");
        }
        // Absolute findings cannot be overridden by anyone.
        let abs = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/screenings"),
                &doc,
                &json!({
                "indication": "trd", "drug": "esketamine", "age": {"years": 40}, "weight_kg": 70,
                "history": ["aneurysmal_vascular_disease"], "pregnancy": "not_pregnant"}),
            )
            .await
            .json();
        assert_eq!(abs["outcome"]["decision"], "not_eligible", "{abs}");
        let fid = abs["outcome"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["severity"] == "absolute")
            .unwrap()["id"]
            .clone();
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/screenings/{}/overrides", abs["id"]),
                &doc,
                &json!({"finding_id": fid, "reason": "please"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Dose: 0.5 mg/kg × 70 kg = 35 mg; 3.5 mL of 10 mg/mL in 50 mL over 40 min = 75 mL/h (R17).
        let o = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/orders"),
                &doc,
                &order_body,
            )
            .await;
        assert_eq!(o.status, StatusCode::CREATED, "{}", o.body);
        let oj = o.json();
        let comp = &oj["order"]["calculation"]["components"][0];
        assert_eq!(comp["dose_mg"]["value"], 35.0);
        assert_eq!(comp["preparation"]["volume_to_draw"]["value"], 3.5);
        assert_eq!(comp["preparation"]["rate_ml_per_h"]["value"], 75.0);
        assert_eq!(oj["order"]["state"], "pending_verification");
        let oid = oj["id"].as_i64().unwrap();

        // The same numbers from the pure library, from the preview endpoint, and on the page.
        let preview = app
            .json(Method::POST, "/api/v1/dose", &nurse, &order_body)
            .await
            .json();
        assert_eq!(
            preview["calculation"]["components"][0],
            oj["order"]["calculation"]["components"][0]
        );
        let page = app
            .get(&format!("/orders/{oid}"), &app.login("nina").await)
            .await;
        for text in ["35 mg", "3.5 mL", "75 mL/h", "R17"] {
            assert!(
                page.body.contains(text),
                "{text} missing from the order page"
            );
        }

        // Only a second clinician verifies.
        let own = app
            .send(
                Method::POST,
                &format!("/api/v1/orders/{oid}/verify"),
                &doc,
                Some("application/json"),
                "{}".into(),
                &[],
            )
            .await;
        assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", own.body);
        let v = app
            .send(
                Method::POST,
                &format!("/api/v1/orders/{oid}/verify"),
                &nurse,
                Some("application/json"),
                "{}".into(),
                &[],
            )
            .await;
        assert_eq!(v.status, StatusCode::OK, "{}", v.body);
        assert_eq!(v.json()["order"]["state"], "verified");
        assert_eq!(v.json()["order"]["verification"]["by"], "nina");

        // A soft limit (above the usual 0.75 mg/kg titration ceiling, R20) needs a reason.
        let soft_body = json!({"protocol_id": "trd-adult-iv-ketamine", "patient": {"weight_kg": 70, "age": {"years": 40}}, "infusion": {"step": 4}});
        let soft = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/orders"),
                &doc,
                &soft_body,
            )
            .await
            .json();
        assert_eq!(soft["order"]["state"], "needs_override", "{soft}");
        let sid = soft["id"].as_i64().unwrap();
        let early = app
            .send(
                Method::POST,
                &format!("/api/v1/orders/{sid}/verify"),
                &nurse,
                Some("application/json"),
                "{}".into(),
                &[],
            )
            .await;
        assert_eq!(
            early.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot verify before the override"
        );
        let no_reason = app
            .json(
                Method::POST,
                &format!("/api/v1/orders/{sid}/override"),
                &doc,
                &json!({"reason": ""}),
            )
            .await;
        assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
        let ok = app
            .json(
                Method::POST,
                &format!("/api/v1/orders/{sid}/override"),
                &doc,
                &json!({"reason": "partial response at 0.75 mg/kg"}),
            )
            .await;
        assert_eq!(
            ok.json()["order"]["state"],
            "pending_verification",
            "{}",
            ok.body
        );
        assert_eq!(ok.json()["order"]["soft_override"]["by"], "priya");

        // A hard limit refuses, naming the limit and its source; nothing is stored.
        let before = app.store.count("clinical_records").await.unwrap();
        let hard = app
            .json(Method::POST, &format!("/api/v1/patients/{pid}/orders"), &doc, &json!({
                "protocol_id": "trd-adult-iv-ketamine", "patient": {"weight_kg": 70, "age": {"years": 40}},
                "infusion": {"amount": {"mg_per_kg": 1.5}}}))
            .await;
        assert_eq!(
            hard.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            hard.body
        );
        assert!(hard.body.contains("hard limit"), "{}", hard.body);
        assert_eq!(app.store.count("clinical_records").await.unwrap(), before);

        // Every step is in the audit log.
        let log = app
            .get(&format!("/api/v1/audit?patient_id={pid}&limit=500"), &admin)
            .await
            .json();
        let actions: Vec<&str> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        for a in [
            "screening.create",
            "dose_order.create",
            "dose_order.override",
            "dose_order.verify",
        ] {
            assert!(actions.contains(&a), "{backend:?}: {a} missing");
        }
    }
}

/// The field names a 422 body refuses, for asserting that every refusal names its field.
fn refused_fields(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Orders are calculated on the record's facts, through the API and the page: a body that
/// contradicts the chart is refused naming the field, one that leaves the facts out is completed
/// from the chart, the protocol's population is checked against the age from the date of birth,
/// a choice aimed at a component the protocol lacks is refused, and the first esketamine dose of
/// a course is derived from the patient's sessions.
#[tokio::test]
async fn orders_take_their_facts_from_the_record() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings().await;
        app.add_user("priya", Role::Prescriber).await;
        app.add_user("nina", Role::Nurse).await;
        let doc = app.bearer("priya").await;
        let nina = app.login("nina").await;
        let adult = app.post_form("/patients", &nina, &adult_form()).await;
        let adult = adult.location().trim_start_matches("/patients/").to_owned();
        let minor = app.post_form("/patients", &nina, &minor_form()).await;
        let minor = minor.location().trim_start_matches("/patients/").to_owned();
        let order = |pid: &str, body: serde_json::Value| {
            let path = format!("/api/v1/patients/{pid}/orders");
            let doc = doc.clone();
            let app = &app;
            async move { app.json(Method::POST, &path, &doc, &body).await }
        };

        // A 14-year-old stated to be 40 and 70 kg: refused naming both facts.
        let r = order(
            &minor,
            json!({"protocol_id": "trd-adult-esketamine",
            "patient": {"weight_kg": 70, "age": {"years": 40}}, "esketamine_dose_mg": 56}),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?} {}",
            r.body
        );
        let fields = refused_fields(&r.body);
        assert!(fields.contains(&"patient.age".to_owned()), "{}", r.body);
        assert!(
            fields.contains(&"patient.weight_kg".to_owned()),
            "{}",
            r.body
        );
        assert!(r.body.contains("born 2012-05-01"), "{}", r.body);
        // Without the claims, the record's age refuses esketamine under 18 by its hard limit.
        let r = order(
            &minor,
            json!({"protocol_id": "trd-adult-esketamine", "esketamine_dose_mg": 56}),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(refused_fields(&r.body), vec!["patient.age"], "{}", r.body);
        // An adult protocol without an age limit of its own refuses the minor by population.
        let r = order(&minor, json!({"protocol_id": "ptsd-adult-iv-ketamine"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(refused_fields(&r.body), vec!["patient.age"], "{}", r.body);
        assert!(r.body.contains("adult population"), "{}", r.body);

        // The adult with the facts left out: 0.5 mg/kg × the chart's 70 kg = 35 mg.
        let r = order(&adult, json!({"protocol_id": "trd-adult-iv-ketamine"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let o = r.json();
        assert_eq!(
            o["order"]["calculation"]["weight"]["actual_kg"]["value"],
            70.0
        );
        assert_eq!(
            o["order"]["calculation"]["components"][0]["dose_mg"]["value"],
            35.0
        );
        // Facts that agree with the record are accepted ("40 years" of a 40-year-old).
        let r = order(
            &adult,
            json!({"protocol_id": "trd-adult-iv-ketamine",
            "patient": {"weight_kg": 70, "age": {"years": 40}, "sex": "female"}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = order(
            &adult,
            json!({"protocol_id": "trd-adult-iv-ketamine",
            "patient": {"weight_kg": 700}}),
        )
        .await;
        assert_eq!(
            refused_fields(&r.body),
            vec!["patient.weight_kg"],
            "{}",
            r.body
        );
        assert!(
            r.body.contains("contradicts the chart (70 kg"),
            "{}",
            r.body
        );

        // A choice for a component the protocol lacks is refused naming it; the bolus of a
        // bolus-only protocol takes the chosen amount; above its hard limit it is refused.
        let r = order(
            &adult,
            json!({"protocol_id": "sedation-adult-iv-ketamine",
            "infusion": {"amount": {"mg_per_kg": 0.5}}}),
        )
        .await;
        assert_eq!(refused_fields(&r.body), vec!["infusion"], "{}", r.body);
        let r = order(
            &adult,
            json!({"protocol_id": "sedation-adult-iv-ketamine",
            "bolus": {"amount": {"mg_per_kg": 0.5}}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(
            r.json()["order"]["calculation"]["components"][0]["dose_mg"]["value"],
            35.0
        );
        let r = order(
            &adult,
            json!({"protocol_id": "sedation-adult-iv-ketamine",
            "bolus": {"amount": {"mg_per_kg": 5}}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("4.5"), "{}", r.body);

        // What was given in the session comes from the session record: with no session in a
        // chair it is nothing, and a body claiming otherwise is refused.
        let r = order(
            &adult,
            json!({"protocol_id": "sedation-adult-iv-ketamine",
            "given_this_session_mg": 20}),
        )
        .await;
        assert_eq!(
            refused_fields(&r.body),
            vec!["given_this_session_mg"],
            "{}",
            r.body
        );

        // Esketamine: with no session given yet, this is the first dose of the course, whatever
        // the body leaves out: 84 mg is refused (day 1 is 56 mg), and claiming otherwise is too.
        let r = order(
            &adult,
            json!({"protocol_id": "trd-adult-esketamine", "esketamine_dose_mg": 84}),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            refused_fields(&r.body),
            vec!["esketamine_dose_mg"],
            "{}",
            r.body
        );
        let r = order(
            &adult,
            json!({"protocol_id": "trd-adult-esketamine", "esketamine_dose_mg": 84,
            "first_dose_of_course": false}),
        )
        .await;
        assert_eq!(
            refused_fields(&r.body),
            vec!["first_dose_of_course"],
            "{}",
            r.body
        );
        let r = order(
            &adult,
            json!({"protocol_id": "trd-adult-esketamine", "esketamine_dose_mg": 56}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        // The chart itself refuses an impossible weight (700 kg on the page, 1600 lb = 726 kg on
        // the API), so no dose is ever calculated from one.
        let mut heavy: Vec<(&str, &str)> = adult_form()
            .into_iter()
            .filter(|(k, _)| !matches!(*k, "weight_value" | "mrn"))
            .collect();
        heavy.extend([("weight_value", "700"), ("mrn", "T-700")]);
        let r = app.post_form("/patients", &nina, &heavy).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("not a possible human weight"), "{}", r.body);
        let nurse_token = app.bearer("nina").await;
        let r = app
            .json(Method::POST, "/api/v1/patients", &nurse_token, &json!({
                "mrn": "T-701", "given_name": "Al", "family_name": "Heavy", "date_of_birth": "1980-01-01",
                "sex": "male", "weight_value": 1600, "weight_unit": "lb", "weight_measured_on": "2026-11-20"}))
            .await;
        assert_eq!(refused_fields(&r.body), vec!["weight_value"], "{}", r.body);

        // Screening, likewise: the record's age and weight, a contradiction refused by field.
        let path = format!("/api/v1/patients/{minor}/screenings");
        let r = app
            .json(
                Method::POST,
                &path,
                &doc,
                &json!({"indication": "trd", "drug": "esketamine",
                "age": {"years": 40}, "weight_kg": 41.5, "pregnancy": "not_pregnant"}),
            )
            .await;
        assert_eq!(refused_fields(&r.body), vec!["age"], "{}", r.body);
        let r = app
            .json(
                Method::POST,
                &path,
                &doc,
                &json!({"indication": "trd", "drug": "esketamine",
                "pregnancy": "not_pregnant"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let s = r.json();
        assert_eq!(s["input"]["age"]["years"], 14, "{s}");
        assert_eq!(s["outcome"]["decision"], "not_eligible", "{s}");

        // The page: the chart's facts are shown, not typed; a chosen mg/kg reaches the bolus.
        let form = app
            .get(
                &format!("/patients/{adult}/dose"),
                &app.login("priya").await,
            )
            .await;
        assert!(
            form.body.contains("70 kg, measured 2026-11-20"),
            "{}",
            form.body
        );
        assert!(!form.body.contains("name=\"weight_kg\""), "{}", form.body);
        let prescriber = app.login("priya").await;
        // "Calculate and check" shows the calculation and stores nothing; signing is a second
        // action on that calculation.
        let records = app.store.count("clinical_records").await.unwrap();
        let shown = app
            .post_form(
                &format!("/patients/{adult}/orders"),
                &prescriber,
                &[
                    ("protocol", "sedation-adult-iv-ketamine"),
                    ("amount_mg_per_kg", "0.5"),
                    ("intent", "preview"),
                ],
            )
            .await;
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
        assert!(shown.body.contains("id=\"preview-numbers\"") && shown.body.contains("35 mg"));
        assert!(shown.body.contains("Sign this order"));
        // What was typed stays in the form.
        assert!(
            shown
                .body
                .contains("name=\"amount_mg_per_kg\" inputmode=\"decimal\" value=\"0.5\"")
        );
        assert_eq!(app.store.count("clinical_records").await.unwrap(), records);
        // A stale fingerprint (the form changed after the preview) signs nothing.
        let stale = app
            .post_form(
                &format!("/patients/{adult}/orders"),
                &prescriber,
                &[
                    ("protocol", "sedation-adult-iv-ketamine"),
                    ("amount_mg_per_kg", "0.6"),
                    ("intent", "sign"),
                    ("preview_digest", "not-the-preview"),
                ],
            )
            .await;
        assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
        assert!(
            stale.body.contains("not the one you checked"),
            "{}",
            stale.body
        );
        assert_eq!(app.store.count("clinical_records").await.unwrap(), records);
        let r = app
            .sign_dose_on_page(
                &format!("/patients/{adult}/orders"),
                &prescriber,
                &[
                    ("protocol", "sedation-adult-iv-ketamine"),
                    ("amount_mg_per_kg", "0.5"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let page = app.get(&r.location(), &prescriber).await;
        assert!(page.body.contains("35 mg"), "{}", page.body);
        let r = app
            .post_form(
                &format!("/patients/{adult}/orders"),
                &prescriber,
                &[
                    ("protocol", "sedation-adult-iv-ketamine"),
                    ("amount_mg_per_kg", "5"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("4.5"), "{}", r.body);
        // A negative or fractional step is refused by name, never truncated to step 0.
        let r = app
            .post_form(
                &format!("/patients/{adult}/orders"),
                &prescriber,
                &[("protocol", "trd-adult-iv-ketamine"), ("step", "-3")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("not a titration step"), "{}", r.body);
        let r = app
            .post_form(
                &format!("/patients/{minor}/orders"),
                &prescriber,
                &[("protocol", "ptsd-adult-iv-ketamine")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("adult population"), "{}", r.body);
    }
}

mod adversarial {
    //! Generated order requests, through the JSON API and the dose page, with facts that
    //! contradict the record, out-of-range and non-finite values, choices for components a
    //! protocol lacks, and other patients' ids. Whatever is sent, the answer is a stored order
    //! that keeps every hard limit of its protocol computed from the record, or a 422 naming a
    //! field — never anything else.

    use super::*;
    use ketcare_clinical::protocol::{Bound, LimitQuantity, LimitScope, LimitSeverity};
    use ketcare_clinical::{Library, SiteSettings};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    fn number() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            (0.0f64..10.0).prop_map(|x| json!(x)),
            (-100.0f64..0.0).prop_map(|x| json!(x)),
            (10.0f64..5000.0).prop_map(|x| json!(x)),
            Just(json!(0)),
            Just(json!(1e300)),
            Just(json!("12")),
            Just(json!(null)),
        ]
    }

    fn choice() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            6 => Just(json!({})),
            1 => (0u32..12).prop_map(|s| json!({ "step": s })),
            2 => (
                prop::sample::select(vec!["mg_per_kg", "mg", "mg_per_kg_per_hour", "mg_per_hour"]),
                number()
            )
                .prop_map(|(u, v)| json!({ "amount": { u: v } })),
            1 => Just(json!({"omit": true})),
        ]
    }

    fn claims() -> impl Strategy<Value = Option<serde_json::Value>> {
        prop_oneof![
            4 => Just(None),
            1 => number().prop_map(|w| Some(json!({ "weight_kg": w }))),
            1 => (0u32..90, 0u32..12).prop_map(|(y, m)| Some(json!({"age": {"years": y, "months": m}}))),
            1 => Just(Some(json!({"weight_kg": 70, "age": {"years": 40}}))),
        ]
    }

    /// (which patient, protocol, body)
    fn request(protocols: Vec<String>) -> impl Strategy<Value = (usize, serde_json::Value)> {
        (
            0usize..3,
            prop::sample::select(protocols),
            claims(),
            prop::sample::select(vec!["bolus", "infusion", "dose", "repeat"]),
            choice(),
            prop::option::of(prop::sample::select(vec![28.0, 56.0, 84.0, 112.0, 30.0])),
            prop::option::weighted(0.2, any::<bool>()),
            prop::option::of((
                prop::sample::select(vec![10.0, 50.0, 100.0, 7.0]),
                prop::option::of(number()),
            )),
        )
            .prop_map(|(who, protocol, claims, role, choice, esk, first, prep)| {
                let mut body = json!({ "protocol_id": protocol });
                if let Some(c) = claims {
                    body["patient"] = c;
                }
                body[role] = choice;
                if let Some(mg) = esk {
                    body["esketamine_dose_mg"] = json!(mg);
                }
                if let Some(f) = first {
                    body["first_dose_of_course"] = json!(f);
                }
                if let Some((c, v)) = prep {
                    body["preparation"] = json!({ "concentration_mg_per_ml": c });
                    if let Some(v) = v {
                        body["preparation"]["final_volume_ml"] = v;
                    }
                }
                (who, body)
            })
    }

    fn settings() -> SiteSettings {
        common::TEST_SITE_SETTINGS
            .iter()
            .fold(SiteSettings::new(), |s, (k, v)| s.with(k, *v))
    }

    /// Every hard dose limit of the protocol, resolved from the data file and the settings,
    /// checked against a stored order's components independently of the calculator.
    fn keeps_hard_limits(
        library: &Library,
        order: &serde_json::Value,
        chart_kg: f64,
    ) -> Result<(), String> {
        let c = &order["calculation"];
        let pid = c["protocol_id"].as_str().unwrap_or_default();
        let p = library.get(pid).map_err(|e| e.to_string())?;
        let actual = c["weight"]["actual_kg"]["value"]
            .as_f64()
            .unwrap_or(f64::NAN);
        if (actual - chart_kg).abs() > 1e-9 {
            return Err(format!(
                "ordered on {actual} kg, the chart says {chart_kg} kg"
            ));
        }
        let basis = c["weight"]["basis_kg"]["value"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let settings = settings();
        for comp in c["components"].as_array().into_iter().flatten() {
            let role = comp["role"].as_str().unwrap_or_default();
            let mg = comp["dose_mg"]["value"].as_f64().unwrap_or(f64::NAN);
            for l in &p.limits {
                let l = l.get_ref();
                let scope_ok = match l.applies_to {
                    LimitScope::EachAdministration => true,
                    LimitScope::Bolus => role == "bolus",
                    LimitScope::Infusion => role == "infusion",
                    LimitScope::Dose => role == "dose",
                    LimitScope::Repeat => role == "repeat",
                    _ => false,
                };
                if !scope_ok || l.severity == LimitSeverity::Soft || l.bound != Bound::Max {
                    continue;
                }
                let Some(v) = l.value.get_ref().resolve(&settings) else {
                    continue;
                };
                let x = match l.quantity {
                    LimitQuantity::Mg => mg,
                    LimitQuantity::MgPerKg => mg / basis,
                    _ => continue,
                };
                if x > v.value * (1.0 + 1e-9) {
                    return Err(format!(
                        "{pid} {role}: {x} above hard limit {} = {}",
                        l.id, v.value
                    ));
                }
            }
        }
        Ok(())
    }

    #[tokio::test]
    async fn generated_orders_never_pass_a_hard_limit_and_every_refusal_names_a_field() {
        let library = Library::builtin().unwrap();
        // Mostly protocols the test settings make ready, some still blocked.
        let ready: Vec<String> = library
            .list()
            .into_iter()
            .map(|p| p.id)
            .filter(|id| library.readiness(id, &settings()).is_ok_and(|r| r.ready))
            .collect();
        let mut protocols: Vec<String> = library.list().into_iter().map(|p| p.id).collect();
        for _ in 0..3 {
            protocols.extend(ready.iter().cloned());
        }
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let strategy = request(protocols);
        let cases: Vec<(usize, serde_json::Value)> = (0..200)
            .map(|_| strategy.new_tree(&mut runner).unwrap().current())
            .collect();
        for backend in BACKENDS {
            let app = TestApp::new(backend).await;
            app.set_test_site_settings().await;
            app.add_user("priya", Role::Prescriber).await;
            app.add_user("nina", Role::Nurse).await;
            let doc = app.bearer("priya").await;
            let nina = app.login("nina").await;
            let page_auth = app.login("priya").await;
            let mut pids = Vec::new();
            for form in [adult_form(), minor_form()] {
                let r = app.post_form("/patients", &nina, &form).await;
                pids.push(r.location().trim_start_matches("/patients/").to_owned());
            }
            let charts = [70.0, 41.5];
            let (mut stored, mut refused) = (0, 0);
            for (i, (who, body)) in cases.iter().enumerate() {
                // The third "patient" is an id no patient has.
                let pid = pids.get(*who).cloned().unwrap_or_else(|| "999999".into());
                let path = format!("/api/v1/patients/{pid}/orders");
                let r = app.json(Method::POST, &path, &doc, body).await;
                match r.status {
                    StatusCode::CREATED => {
                        stored += 1;
                        let o = r.json();
                        keeps_hard_limits(&library, &o["order"], charts[*who])
                            .unwrap_or_else(|e| panic!("{backend:?} case {i} {body}: {e}"));
                    }
                    StatusCode::UNPROCESSABLE_ENTITY => {
                        refused += 1;
                        let fields = refused_fields(&r.body);
                        assert!(
                            !fields.is_empty() && fields.iter().all(|f| !f.is_empty()),
                            "{backend:?} case {i} {body}: a refusal without a field: {}",
                            r.body
                        );
                    }
                    StatusCode::NOT_FOUND if *who == 2 => {}
                    other => panic!("{backend:?} case {i} {body}: {other} {}", r.body),
                }
                // The page form with the same protocol and a chosen amount.
                if *who < 2 && i % 4 == 0 {
                    let amount = body[["bolus", "infusion", "dose", "repeat"]
                        .into_iter()
                        .find(|k| body[*k]["amount"]["mg_per_kg"].is_number())
                        .unwrap_or("none")]["amount"]["mg_per_kg"]
                        .to_string();
                    let r = app
                        .sign_dose_on_page(
                            &format!("/patients/{pid}/orders"),
                            &page_auth,
                            &[
                                ("protocol", body["protocol_id"].as_str().unwrap_or_default()),
                                ("amount_mg_per_kg", amount.trim_matches('"')),
                            ],
                        )
                        .await;
                    assert!(
                        matches!(
                            r.status,
                            StatusCode::SEE_OTHER | StatusCode::UNPROCESSABLE_ENTITY
                        ),
                        "{backend:?} page case {i}: {} {}",
                        r.status,
                        r.body
                    );
                }
            }
            // The generator reaches both outcomes (a vacuous pass would hide a broken edge).
            eprintln!("{backend:?}: {stored} stored, {refused} refused");
            assert!(
                stored > 5 && refused > 5,
                "{backend:?}: {stored} stored, {refused} refused"
            );
            // Nothing stored for another patient id, and every stored order is the record's.
            let orders: i64 = app.store.count("clinical_records").await.unwrap();
            assert!(orders >= stored, "{orders} records for {stored} orders");
        }
    }
}
