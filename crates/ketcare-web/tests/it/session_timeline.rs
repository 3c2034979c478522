//! The session timeline, on SQLite and PostgreSQL: one axis from check-in with the predicted
//! concentration of what was given (the same prediction as `/predicted`), the projections while
//! the infusion runs, the vitals (API and page entries, the checklist's baseline), scores,
//! administrations and alarms; the session page and the printable record draw it as SVG with its
//! accessible name.
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
        ("measures.cadss.item_max", 4.0),
        ("session.alarm.spo2_low_percent", 92.0),
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

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_timeline_carries_what_was_recorded_and_the_engines_curve() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::new(backend).await;
        settings(&app).await;
        app.add_user("writer", Role::Nurse).await;
        let writer = app.login("writer").await;
        let mut form = minor_form();
        form.retain(|(k, _)| *k != "date_of_birth" && *k != "mrn");
        form.push(("date_of_birth", "1980-05-01"));
        form.push(("mrn", "H-310"));
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
        let (_, sid) = app
            .verified_order_session(
                &pid,
                (&doc, &pharm, &nurse),
                &json!({"protocol_id": "trd-adult-iv-ketamine",
                    "preparation": {"concentration_mg_per_ml": 50, "final_volume_ml": 100}}),
                "Chair 3",
            )
            .await;
        let tl = |q: &'static str| {
            let app = &app;
            let nurse = nurse.clone();
            async move {
                let r = app
                    .get(&format!("/api/v1/sessions/{sid}/timeline{q}"), &nurse)
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
                r.json()
            }
        };
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
        let vitals = |v: serde_json::Value| {
            let app = &app;
            let nurse = nurse.clone();
            async move {
                let r = app
                    .json(
                        Method::POST,
                        &format!("/api/v1/sessions/{sid}/vitals"),
                        &nurse,
                        &v,
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{v}: {}", r.body);
                r.json()
            }
        };

        // Nothing given yet: the timeline says why there is no curve.
        let t = tl("").await;
        assert!(t["concentration"].is_null(), "{t}");
        assert!(
            t["concentration_note"]
                .as_str()
                .unwrap()
                .contains("given nothing yet")
        );
        assert!(t["advisory"].as_str().unwrap().contains("never drives"));

        app.consent_for(&pid, "trd-adult-iv-ketamine").await;
        for c in [
            json!({"command": "check_in"}),
            json!({"command": "begin_pre_assessment"}),
            json!({"command": "update_checklist", "fasting_confirmed": true, "pregnancy": "not_pregnant",
                   "escort_home": true, "eligibility_reconfirmed": true, "suicide_risk": "negative"}),
            json!({"command": "set_baseline", "vitals": {"systolic": 128, "diastolic": 82, "heart_rate": 70, "spo2": 98}}),
            json!({"command": "verify_dose"}),
        ] {
            cmd(c).await;
        }
        app.advance(5 * 60);
        cmd(json!({"command": "start", "rate_ml_per_h": 8.75, "rate_reason": "slow start (test)"}))
            .await;
        app.advance(5 * 60);
        vitals(json!({"systolic": 130, "diastolic": 80, "heart_rate": 75, "spo2": 97, "resp_rate": 14}))
            .await;
        cmd(json!({"command": "score", "kind": "moaas", "value": 4})).await;
        app.advance(5 * 60);

        // While the infusion runs: both projections depart from now, on the check-in axis.
        let t = tl("").await;
        assert_eq!(t["end_is"], "now");
        assert_eq!(t["end_min"].as_f64().unwrap(), 15.0, "{t}");
        let c = &t["concentration"];
        assert_eq!(c["offset_min"].as_f64().unwrap(), 5.0);
        assert_eq!(c["model"], "domino");
        for p in ["as_ordered", "if_stopped_now"] {
            assert!(
                (c[p]["from_min"].as_f64().unwrap() - 15.0).abs() < 1e-9,
                "{p}: {c}"
            );
        }
        assert!(
            c["as_ordered"]["assumes"]
                .as_str()
                .unwrap()
                .contains("ordered")
        );
        // As ordered: the order's rate from now until the order's mg is given, counting what
        // the running pump gave up to now (10 min at 8.75 mL/h).
        let got = app
            .get(&format!("/api/v1/sessions/{sid}"), &nurse)
            .await
            .json();
        let inf = &got["session"]["checklist"]["dose"]["delivery"]["infusion"];
        let conc = inf["concentration_mg_per_ml"].as_f64().unwrap();
        let ordered = inf["rate_ml_per_h"].as_f64().unwrap() * conc / 60.0;
        let left = inf["dose_mg"].as_f64().unwrap() - 8.75 * conc / 60.0 * 10.0;
        let ao = &c["as_ordered"];
        assert!(
            (ao["dosing_end_min"].as_f64().unwrap() - 15.0 - left / ordered).abs() < 1e-6,
            "{ao} {inf}"
        );
        // Stopping now gives less than running on as ordered.
        let at = |p: &str, min: f64| {
            let s = &c[p]["series"][0];
            let i = floats(&s["t_min"])
                .iter()
                .position(|x| (x - min).abs() < 1e-9)
                .unwrap();
            s["ng_ml"][i].as_f64().unwrap()
        };
        assert!(at("if_stopped_now", 40.0) < at("as_ordered", 40.0));

        cmd(json!({"command": "change_rate", "rate_ml_per_h": 17.5, "rate_reason": "test"})).await;
        app.advance(5 * 60);
        let alarm = vitals(json!({"spo2": 89, "heart_rate": 88})).await;
        assert_eq!(alarm["alarms"][0]["kind"], "spo2_low");
        let r = app
            .post_form(
                &format!("/sessions/{sid}/vitals"),
                &writer,
                &[("systolic", "132"), ("diastolic", "84"), ("spo2", "97")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        app.advance(5 * 60);
        cmd(json!({"command": "stop", "reason": "test"})).await;
        cmd(json!({"command": "score", "kind": "cadss", "value": 12})).await;
        app.advance(5 * 60);

        let t = tl("").await;
        // Vitals: the baseline, the API reading, the alarm's reading, the page entry.
        let v = t["vitals"].as_array().unwrap();
        assert_eq!(v.len(), 4, "{v:?}");
        assert_eq!(v[0]["baseline"], true);
        assert_eq!(v[0]["systolic"].as_f64().unwrap(), 128.0);
        assert_eq!(v[1]["resp_rate"].as_f64().unwrap(), 14.0);
        assert_eq!(v[1]["source"], "api");
        assert_eq!(v[1]["t_min"].as_f64().unwrap(), 10.0);
        assert_eq!(v[2]["spo2"].as_f64().unwrap(), 89.0);
        assert_eq!(v[3]["source"], "manual");
        assert_eq!(v[3]["diastolic"].as_f64().unwrap(), 84.0);
        // Scores, administrations and alarms as markers.
        let s = t["scores"].as_array().unwrap();
        assert_eq!(
            s.iter()
                .map(|x| (x["kind"].as_str().unwrap(), x["value"].as_u64().unwrap()))
                .collect::<Vec<_>>(),
            vec![("moaas", 4), ("cadss", 12)]
        );
        assert_eq!(s[0]["t_min"].as_f64().unwrap(), 10.0);
        let a = t["administrations"].as_array().unwrap();
        assert_eq!(
            a.iter()
                .map(|x| (x["kind"].as_str().unwrap(), x["t_min"].as_f64().unwrap()))
                .collect::<Vec<_>>(),
            vec![("start", 5.0), ("rate_change", 15.0), ("stop", 25.0)]
        );
        let al = t["alarms"].as_array().unwrap();
        let spo2 = al
            .iter()
            .find(|a| a["label"] == "SpO2 low")
            .expect("the alarm");
        assert_eq!(spo2["t_min"].as_f64().unwrap(), 20.0);
        // Dosing is over: no projections.
        let c = &t["concentration"];
        assert!(
            c["as_ordered"].is_null() && c["if_stopped_now"].is_null(),
            "{c}"
        );

        // The curve is the engine's prediction for the same dose history (`/predicted`), on the
        // axis from check-in.
        let p = app
            .get(&format!("/api/v1/sessions/{sid}/predicted"), &nurse)
            .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        let p = p.json();
        let res = &p["result"];
        let typical = res["typical"].as_array().unwrap();
        let given = c["given"].as_array().unwrap();
        assert_eq!(given.len(), typical.len());
        for (g, ty) in given.iter().zip(typical) {
            assert_eq!(g["output"], ty[0]);
            assert_eq!(g["ng_ml"], ty[1], "{backend:?}: the curves differ");
        }
        let offset = c["offset_min"].as_f64().unwrap();
        let times = floats(&res["times_min"]);
        let axis = floats(&given[0]["t_min"]);
        assert_eq!(axis.len(), times.len());
        assert!(
            axis.iter()
                .zip(&times)
                .all(|(a, t)| (a - offset - t).abs() < 1e-9)
        );
        assert_eq!(c["weight_kg"], p["weight_kg"]);
        // Another model by name, the same as `/predicted` with it.
        let t2 = tl("?model=hijazi_2003").await;
        let p2 = app
            .get(
                &format!("/api/v1/sessions/{sid}/predicted?model=hijazi_2003"),
                &nurse,
            )
            .await
            .json();
        assert_eq!(
            t2["concentration"]["given"][0]["ng_ml"],
            p2["result"]["typical"][0][1]
        );

        // The page and the printable record draw it, with its accessible name; the fragment
        // the page's script re-fetches is the same chart.
        let name = "aria-label=\"Session timeline: predicted plasma concentration";
        let page = app.get(&format!("/sessions/{sid}"), &writer).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains("<section id=\"timeline\"")
                && page.body.contains(name)
                && page.body.contains("/static/timeline.js"),
            "{}",
            page.body
        );
        let rec = app.get(&format!("/sessions/{sid}/record"), &writer).await;
        assert_eq!(rec.status, StatusCode::OK);
        assert!(
            rec.body.contains("id=\"record-timeline\"") && rec.body.contains(name),
            "{}",
            rec.body
        );
        let frag = app.get(&format!("/sessions/{sid}/timeline"), &writer).await;
        assert_eq!(frag.status, StatusCode::OK);
        assert!(frag.body.contains(name) && !frag.body.contains("<html"));
        let js = app.get("/static/timeline.js", &writer).await;
        assert_eq!(js.status, StatusCode::OK);
    }
}
