//! Sessions joined with measurement-based care and PK, on SQLite and PostgreSQL: the doses a
//! session actually gave (start, rate change, stop) become its dose history; the API and the
//! page predict its curve with the PK engine, and the patient's score chart marks the session
//! (date, drug, route, dose given) instead of its dose order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use ketcare_core::{Actor, Role};
use ketcare_store::Backend;
use serde_json::json;

async fn settings(app: &TestApp) {
    let mut values = serde_json::Map::new();
    for (k, v) in TEST_SITE_SETTINGS {
        values.insert(k.into(), v.into());
    }
    for (k, v) in [
        ("session.ketamine.bp_gate_systolic_mmhg", 140.0),
        ("session.ketamine.bp_gate_diastolic_mmhg", 90.0),
        ("measures.link_before_session", 1.0),
        ("measures.cadss.item_max", 4.0),
    ] {
        values.insert(k.into(), v.into());
    }
    app.store
        .save_site_settings(
            &Actor::system(Role::Administrator),
            &json!({ "values": values }).to_string(),
            "test clinic policy",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_session_gives_its_dose_history_to_the_chart_and_the_pk_engine() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::new(backend).await;
        settings(&app).await;
        app.add_user("writer", Role::Nurse).await;
        let writer = app.login("writer").await;
        let mut form = minor_form();
        form.retain(|(k, _)| *k != "date_of_birth" && *k != "mrn");
        form.push(("date_of_birth", "1980-05-01"));
        form.push(("mrn", "H-300"));
        let created = app.post_form("/patients", &writer, &form).await;
        let pid = created
            .location()
            .trim_start_matches("/patients/")
            .to_owned();
        app.add_user("doc", Role::Prescriber).await;
        app.add_user("pharm", Role::Pharmacist).await;
        app.add_user("nurse", Role::Nurse).await;
        let doc = app.bearer("doc").await;
        let pharm = app.bearer("pharm").await;
        let nurse = app.bearer("nurse").await;
        let order = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/orders"),
                &doc,
                &json!({
                "protocol_id": "trd-adult-iv-ketamine",
                "preparation": {"concentration_mg_per_ml": 50, "final_volume_ml": 100}}),
            )
            .await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        let oid = order.json()["id"].as_i64().unwrap();
        // Before any session, the chart marks the dose order.
        let t = app
            .get(&format!("/api/v1/patients/{pid}/trajectory"), &nurse)
            .await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.body);
        assert_eq!(t.json()["markers"].as_array().unwrap().len(), 1);
        assert!(t.json()["markers"][0]["session_id"].is_null());
        let v = app
            .json(
                Method::POST,
                &format!("/api/v1/orders/{oid}/verify"),
                &pharm,
                &json!({}),
            )
            .await;
        assert_eq!(v.status, StatusCode::OK, "{}", v.body);
        let s = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/sessions"),
                &nurse,
                &json!({"order_id": oid, "chair": "Chair 7"}),
            )
            .await;
        assert_eq!(s.status, StatusCode::CREATED, "{backend:?}: {}", s.body);
        let sid = s.json()["id"].as_i64().unwrap();

        // Questionnaires before the session: the open course's set is asked for by the site.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/courses"),
                &nurse,
                &json!({"label": "Induction", "instrument": "phq9", "started_on": "2026-10-01"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let m = app
            .get(&format!("/api/v1/sessions/{sid}/measures"), &nurse)
            .await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.body);
        let m = m.json();
        assert_eq!(m["courses"][0]["instrument"], "phq9");
        assert!(m["courses"][0]["latest_score"].is_null());
        assert_eq!(m["link_set"], json!(["phq9"]));
        assert_eq!(m["link_due"], true);
        let page = app.get(&format!("/sessions/{sid}"), &writer).await;
        assert!(
            page.body.contains("Questionnaires before this session")
                && page.body.contains("send-pre-link"),
            "{}",
            page.body
        );
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/links"),
                &nurse,
                &json!({"instruments": ["phq9"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let m = app
            .get(&format!("/api/v1/sessions/{sid}/measures"), &nurse)
            .await
            .json();
        assert_eq!(m["link_due"], false);
        assert_eq!(m["open_links"][0][1], "sent");
        let cmd = |c: serde_json::Value| {
            let app = &app;
            let nurse = nurse.clone();
            async move {
                let r = app
                    .json(
                        Method::POST,
                        &format!("/api/v1/sessions/{sid}/commands"),
                        &nurse,
                        &c,
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{c}: {}", r.body);
            }
        };
        // Nothing given yet: no history to predict from.
        let r = app
            .get(&format!("/api/v1/sessions/{sid}/predicted"), &nurse)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body.contains("given nothing yet"), "{}", r.body);
        // Consent on file for the protocol (the session reads the consent record).
        app.consent_for(&pid, "trd-adult-iv-ketamine").await;
        for c in [
            json!({"command": "check_in"}),
            json!({"command": "begin_pre_assessment"}),
            json!({"command": "update_checklist", "fasting_confirmed": true, "pregnancy": "not_pregnant",
                   "escort_home": true, "eligibility_reconfirmed": true, "suicide_risk": "negative"}),
            json!({"command": "set_baseline", "vitals": {"systolic": 128, "diastolic": 82, "heart_rate": 70, "spo2": 98}}),
            json!({"command": "verify_dose"}),
            json!({"command": "start", "rate_ml_per_h": 8.75, "rate_reason": "slow start (test)"}),
        ] {
            cmd(c).await;
        }
        app.advance(10 * 60);
        cmd(json!({"command": "change_rate", "rate_ml_per_h": 17.5, "rate_reason": "test"})).await;
        app.advance(10 * 60);
        cmd(json!({"command": "stop", "reason": "test"})).await;
        // Session scores are checked with the measures instruments' scoring: CADSS's total is at
        // most 23 items × the site's highest item score (4 here).
        for (c, ok) in [
            (
                json!({"command": "score", "kind": "cadss", "value": 93}),
                false,
            ),
            (
                json!({"command": "score", "kind": "moaas", "value": 6}),
                false,
            ),
            (
                json!({"command": "score", "kind": "cadss", "value": 92}),
                true,
            ),
            (
                json!({"command": "score", "kind": "moaas", "value": 5}),
                true,
            ),
        ] {
            let r = app
                .json(
                    Method::POST,
                    &format!("/api/v1/sessions/{sid}/commands"),
                    &nurse,
                    &c,
                )
                .await;
            if ok {
                assert_eq!(r.status, StatusCode::OK, "{c}: {}", r.body);
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{c}: {}",
                    r.body
                );
                assert_eq!(r.fields(), vec!["value"], "{}", r.body);
            }
        }

        // The API: the rate steps the session gave, in mg/min, from the first administration.
        let r = app
            .get(&format!("/api/v1/sessions/{sid}/predicted"), &nurse)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
        let p = r.json();
        let h = &p["history"];
        assert_eq!(h["drug"], "ketamine");
        assert_eq!(h["route"], "iv_infusion");
        let steps = h["regimen"]["iv_rates"].as_array().unwrap();
        assert_eq!(steps.len(), 3, "{steps:?}");
        let t: Vec<f64> = steps
            .iter()
            .map(|s| s["time_min"].as_f64().unwrap())
            .collect();
        let rate: Vec<f64> = steps
            .iter()
            .map(|s| s["rate_mg_per_min"].as_f64().unwrap())
            .collect();
        assert_eq!(t, vec![0.0, 10.0, 20.0]);
        assert!(rate[0] > 0.0 && (rate[1] - 2.0 * rate[0]).abs() < 1e-9 && rate[2] == 0.0);
        let total = h["total_mg"].as_f64().unwrap();
        assert!(
            (total - (rate[0] * 10.0 + rate[1] * 10.0)).abs() < 1e-3,
            "{total}"
        );
        // The same mg as the session's own computation (signing, ledger and billing read it).
        let got = app.get(&format!("/api/v1/sessions/{sid}"), &nurse).await;
        assert_eq!(got.json()["delivered"]["mg"].as_f64().unwrap(), total);
        assert_eq!(
            got.json()["delivered"]["running_minutes"].as_f64().unwrap(),
            20.0
        );
        // The patient's recorded weight, and a curve peaking when the infusion stopped.
        assert_eq!(p["weight_kg"].as_f64().unwrap(), 41.5);
        assert_eq!(p["result"]["model"]["id"], "domino");
        let key = &p["result"]["key"];
        assert!(key["cmax_ng_ml"].as_f64().unwrap() > 0.0);
        assert_eq!(key["tmax_min"].as_f64().unwrap(), 20.0);
        assert!((key["total_dose_mg"].as_f64().unwrap() - total).abs() < 1e-3);
        // Another model by name; an unknown one is refused naming the field.
        let r = app
            .get(
                &format!("/api/v1/sessions/{sid}/predicted?model=nope"),
                &nurse,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), vec!["model"]);

        // The page: linked from the session, with the chart and the dose history.
        let page = app.get(&format!("/sessions/{sid}"), &writer).await;
        assert!(
            page.body.contains("Predicted concentration"),
            "{}",
            page.body
        );
        let page = app
            .get(&format!("/sessions/{sid}/predicted"), &writer)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains("<svg") && page.body.contains("+10 min: IV rate"),
            "{}",
            page.body
        );

        // The chart marks the session (not the order it gave).
        let t = app
            .get(&format!("/api/v1/patients/{pid}/trajectory"), &nurse)
            .await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.body);
        let m = t.json()["markers"].as_array().unwrap().clone();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0]["session_id"].as_i64().unwrap(), sid);
        assert_eq!(m[0]["drug"], "ketamine");
        assert_eq!(m[0]["route"], "iv_infusion");
        assert!((m[0]["dose_mg"].as_f64().unwrap() - total).abs() < 1e-3);
        assert!(
            m[0]["label"]
                .as_str()
                .unwrap()
                .starts_with(&format!("session {sid}: ketamine"))
        );
        let svg = app
            .get(&format!("/patients/{pid}/measures/chart.svg"), &writer)
            .await;
        assert_eq!(svg.status, StatusCode::OK);
    }
}
