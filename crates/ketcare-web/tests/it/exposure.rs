//! Exposure beside response, on SQLite and PostgreSQL: signed IV ketamine sessions run end to
//! end with different infusion lengths; each session's predicted Cmax equals its timeline's
//! curve, the responses are the recorded ones, the least-squares line and band equal an
//! independent computation, too few sessions are listed without a line, bad filters are
//! refused by name, the roles that do not run sessions are refused, and the read is audited.
//! Signing stored each session's predicted Cmax and AUC for the registry — the same figures —
//! and the registry's response by predicted-exposure tertile splits the subjects at the
//! quantiles of those figures (API, page and data dictionary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use ketcare_core::Role;
use ketcare_store::Backend;
use serde_json::{Value, json};

const PROTOCOL: &str = "trd-adult-iv-ketamine";

async fn settings(app: &TestApp) {
    app.set_test_site_settings_with(&[
        ("session.ketamine.bp_gate_systolic_mmhg", 140.0),
        ("session.ketamine.bp_gate_diastolic_mmhg", 90.0),
        ("measures.cadss.item_max", 4.0),
    ])
    .await;
}

struct Staff {
    doc: Auth,
    pharm: Auth,
    nurse: Auth,
}

/// What one session records.
struct Plan {
    infusion_min: i64,
    baseline_systolic: u32,
    max_systolic: u32,
    moaas: u32,
    cadss: u32,
}

async fn patient(app: &TestApp, mrn: &'static str) -> String {
    let mut form = minor_form();
    form.retain(|(k, _)| !matches!(*k, "date_of_birth" | "mrn" | "weight_value"));
    form.push(("date_of_birth", "1980-05-01"));
    form.push(("mrn", mrn));
    form.push(("weight_value", "70"));
    let writer = app.login("writer").await;
    let created = app.post_form("/patients", &writer, &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let pid = created
        .location()
        .trim_start_matches("/patients/")
        .to_owned();
    app.consent_for(&pid, PROTOCOL).await;
    pid
}

/// Runs an IV ketamine session from the order to the signed record; returns its id.
async fn signed_session(app: &TestApp, st: &Staff, pid: &str, plan: &Plan) -> i64 {
    let (_, sid) = app
        .verified_order_session(
            pid,
            (&st.doc, &st.pharm, &st.nurse),
            &json!({"protocol_id": PROTOCOL,
                "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}}),
            "Chair 1",
        )
        .await;
    let cmd = |c: Value| async move {
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/sessions/{sid}/commands"),
                &st.nurse,
                &c,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{c}: {}", r.body);
    };
    for c in [
        json!({"command": "check_in"}),
        json!({"command": "begin_pre_assessment"}),
        json!({"command": "update_checklist", "fasting_confirmed": true, "pregnancy": "not_pregnant",
               "escort_home": true, "eligibility_reconfirmed": true, "suicide_risk": "negative"}),
        json!({"command": "set_baseline", "vitals": {"systolic": plan.baseline_systolic, "diastolic": 80, "heart_rate": 70, "spo2": 98}}),
        json!({"command": "verify_dose"}),
    ] {
        cmd(c).await;
    }
    app.advance(5 * 60);
    cmd(json!({"command": "start"})).await;
    app.advance(plan.infusion_min / 2 * 60);
    let v = app
        .json(
            Method::POST,
            &format!("/api/v1/sessions/{sid}/vitals"),
            &st.nurse,
            &json!({"systolic": plan.max_systolic, "diastolic": 84, "heart_rate": 80, "spo2": 98}),
        )
        .await;
    assert_eq!(v.status, StatusCode::CREATED, "{}", v.body);
    // A lower reading later: the maximum is the highest, not the last.
    let v = app
        .json(
            Method::POST,
            &format!("/api/v1/sessions/{sid}/vitals"),
            &st.nurse,
            &json!({"systolic": plan.baseline_systolic + 1, "diastolic": 80, "spo2": 98}),
        )
        .await;
    assert_eq!(v.status, StatusCode::CREATED, "{}", v.body);
    cmd(json!({"command": "score", "kind": "moaas", "value": plan.moaas})).await;
    cmd(json!({"command": "score", "kind": "cadss", "value": plan.cadss})).await;
    app.advance((plan.infusion_min - plan.infusion_min / 2) * 60);
    cmd(json!({"command": "stop", "reason": "as planned for the test"})).await;
    // A later, lower CADSS and a higher MOAA/S: the peak and the lowest are kept.
    cmd(json!({"command": "score", "kind": "moaas", "value": 5})).await;
    cmd(json!({"command": "score", "kind": "cadss", "value": 1})).await;
    cmd(json!({"command": "confirm_discharge", "dissociation_resolved": true, "escort_present": true}))
        .await;
    app.advance(121 * 60);
    cmd(json!({"command": "ready_for_discharge"})).await;
    cmd(json!({"command": "discharge"})).await;
    let got = app
        .get(&format!("/api/v1/sessions/{sid}"), &st.nurse)
        .await
        .json();
    let given = got["delivered"]["mg"].as_f64().unwrap();
    cmd(json!({"command": "record_given", "given_mg": given})).await;
    let [ph, drawer, wit] = ketcare_store::testing::ledger_staff(app.store.as_ref()).await;
    let vial =
        ketcare_store::testing::receive_product(app.store.as_ref(), &ph, "ketamine-10").await;
    for e in [
        ketcare_ops::ledger::LedgerEvent::Draw {
            container: vial,
            session_id: sid,
            patient_id: pid.parse().unwrap(),
            volume_ul: 4_000,
        },
        ketcare_ops::ledger::LedgerEvent::Waste {
            session_id: sid,
            amount_ug: ((40.0 - given) * 1000.0).round() as i64,
            witness: Some(ketcare_ops::ledger::Witness {
                user_id: wit.user_id.unwrap().get(),
                username: wit.username.clone(),
                role: Role::Nurse,
            }),
            note: String::new(),
        },
    ] {
        app.store.ledger_append(&drawer, &e).await.unwrap();
    }
    // The balance is the record's: its `given` balances, and another figure is refused.
    let given_ug = (given * 1000.0).round() as i64;
    let facts = |ug: i64| {
        json!({"session_id": sid, "patient_id": 0, "drug": "racemic_ketamine", "route": "iv_infusion",
               "infusion_start": null, "infusion_stop": null, "given": ug, "cancelled": false, "em_level": null})
    };
    let b = app
        .json(
            Method::POST,
            "/api/v1/ledger/balance",
            &st.nurse,
            &facts(given_ug),
        )
        .await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    assert_eq!(
        (&b.json()["balanced"], &b.json()["given_from_record"]),
        (&json!(true), &json!(true)),
        "{}",
        b.body
    );
    let b = app
        .json(
            Method::POST,
            "/api/v1/ledger/balance",
            &st.nurse,
            &facts(given_ug + 1_000),
        )
        .await;
    assert_eq!(b.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", b.body);
    assert_eq!(b.json()["fields"][0]["field"], "given", "{}", b.body);
    let r = app
        .json(
            Method::POST,
            &format!("/api/v1/sessions/{sid}/commands"),
            &st.doc,
            &json!({"command": "sign"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "sign: {}", r.body);
    sid
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        "{what}: {a} vs {b}"
    );
}

/// OLS of y on x written out here, independently of the application's code, with the printed
/// t(0.975, 4) = 2.776445105 (the test has 6 points).
fn independent_ols(pts: &[(f64, f64)], g: &Value) {
    assert_eq!(pts.len(), 6);
    let n = pts.len() as f64;
    let (sx, sy): (f64, f64) = pts.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
    let (sxx_raw, sxy_raw): (f64, f64) = pts
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0 * p.0, b + p.0 * p.1));
    // Normal equations in raw sums.
    let slope = (n * sxy_raw - sx * sy) / (n * sxx_raw - sx * sx);
    let intercept = (sy - slope * sx) / n;
    let sse: f64 = pts
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let s = (sse / (n - 2.0)).sqrt();
    let xbar = sx / n;
    let sxx = sxx_raw - sx * sx / n;
    let o = &g["ols"];
    close(f(&o["slope"]), slope, "slope");
    close(f(&o["intercept"]), intercept, "intercept");
    close(f(&o["residual_se"]), s, "residual SE");
    assert_eq!(o["df"], 4);
    assert!((f(&o["t_975"]) - 2.776_445_105).abs() < 1e-7, "{o}");
    let band = o["band"].as_array().unwrap();
    assert!(band.len() >= 2);
    let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    close(f(&band[0]["cmax_ng_ml"]), lo, "band start");
    close(f(&band[band.len() - 1]["cmax_ng_ml"]), hi, "band end");
    for b in band {
        let x = f(&b["cmax_ng_ml"]);
        let y = intercept + slope * x;
        let h = 2.776_445_105 * s * (1.0 / n + (x - xbar).powi(2) / sxx).sqrt();
        close(f(&b["fitted"]), y, "fitted");
        assert!((f(&b["lower"]) - (y - h)).abs() < 1e-6, "lower at {x}");
        assert!((f(&b["upper"]) - (y + h)).abs() < 1e-6, "upper at {x}");
    }
}

#[tokio::test]
async fn exposure_beside_response_across_signed_sessions() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::new(backend).await;
        settings(&app).await;
        app.add_user("writer", Role::Nurse).await;
        app.add_user("doc", Role::Prescriber).await;
        app.add_user("pharm", Role::Pharmacist).await;
        app.add_user("nurse", Role::Nurse).await;
        let st = Staff {
            doc: app.bearer("doc").await,
            pharm: app.bearer("pharm").await,
            nurse: app.bearer("nurse").await,
        };
        // A signed-in page user (the test clock runs hours between sessions: sign in afresh).
        let writer = || app.login("writer");
        let api = |q: &'static str| {
            let app = &app;
            let auth = st.nurse.clone();
            async move {
                let r = app
                    .get(&format!("/api/v1/pk/exposure-response{q}"), &auth)
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
                r.json()
            }
        };

        // Nothing signed yet: no group.
        let r = api("").await;
        assert_eq!(r["groups"].as_array().unwrap().len(), 0, "{r}");
        assert!(
            r["descriptive"]
                .as_str()
                .unwrap()
                .contains("not a dosing recommendation")
        );

        let plans = [
            (8, 120, 124, 4, 3),
            (16, 118, 127, 4, 9),
            (24, 122, 131, 3, 11),
            (32, 120, 129, 3, 19),
            (40, 116, 133, 2, 22),
            (12, 124, 130, 4, 6),
        ];
        let mrns = ["E-1", "E-2", "E-3", "E-4", "E-5", "E-6"];
        let mut sids = Vec::new();
        let mut pids = Vec::new();
        for (i, (m, b, x, mo, c)) in plans.iter().enumerate() {
            let pid = patient(&app, mrns[i]).await;
            pids.push(pid.clone());
            let plan = Plan {
                infusion_min: *m,
                baseline_systolic: *b,
                max_systolic: *x,
                moaas: *mo,
                cadss: *c,
            };
            sids.push(signed_session(&app, &st, &pid, &plan).await);
            if i == 3 {
                // Four sessions: listed, but too few to fit a line.
                let r = api("").await;
                let g = &r["groups"][0];
                assert_eq!(g["sessions"].as_array().unwrap().len(), 4, "{r}");
                for fit in ["cadss", "systolic_rise"] {
                    assert!(g[fit]["ols"].is_null(), "{fit}: {g}");
                    assert!(g[fit]["note"].as_str().unwrap().contains("too few"), "{g}");
                }
                let page = app.get("/pk/exposure", &writer().await).await;
                assert!(page.body.contains("too few to fit a line"), "{}", page.body);
                assert!(!page.body.contains("class=\"fit\""));
            }
        }
        // A session still open is not part of it.
        let open_pid = patient(&app, "E-7").await;
        app.verified_order_session(
            &open_pid,
            (&st.doc, &st.pharm, &st.nurse),
            &json!({"protocol_id": PROTOCOL,
                "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}}),
            "Chair 2",
        )
        .await;

        let r = api("").await;
        let groups = r["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "{r}");
        let g = &groups[0];
        assert_eq!(g["protocol_id"], PROTOCOL);
        assert_eq!(g["age_band"], "adult");
        let sessions = g["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 6);
        let mut cadss_pts = Vec::new();
        let mut rise_pts = Vec::new();
        // Signing stored each session's predicted Cmax and AUC for the registry.
        let registry = app
            .store
            .registry(&ketcare_core::Actor::system(Role::Researcher))
            .await
            .unwrap();
        assert_eq!(registry.len(), 6, "{backend:?}");
        for (s, ((_, b, x, mo, c), sid)) in sessions.iter().zip(plans.iter().zip(&sids)) {
            assert_eq!(s["session_id"], *sid);
            // The same prediction as the session's timeline.
            let t = app
                .get(&format!("/api/v1/sessions/{sid}/timeline"), &st.nurse)
                .await
                .json();
            let curve = &t["concentration"]["given"][0]["ng_ml"];
            let tmax = curve
                .as_array()
                .unwrap()
                .iter()
                .map(f)
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(f(&s["cmax_ng_ml"]), tmax, "{backend:?} session {sid}");
            let p = app
                .get(&format!("/api/v1/sessions/{sid}/predicted"), &st.nurse)
                .await
                .json();
            assert_eq!(s["auc_ng_min_ml"], p["result"]["key"]["auc_ng_min_ml"]);
            // The registry's figure, computed when the session was signed, is the same
            // prediction (each patient has one session; each session gave a different mg).
            let total = f(&s["total_mg"]);
            let mine: Vec<_> = registry
                .iter()
                .flat_map(|x| &x.sessions)
                .filter(|x| x.given_mg == Some(total))
                .collect();
            assert_eq!(mine.len(), 1, "{backend:?} session {sid}: {total} mg");
            assert_eq!(
                mine[0].predicted_cmax_ng_ml,
                Some(f(&s["cmax_ng_ml"])),
                "{backend:?} session {sid}"
            );
            assert_eq!(
                mine[0].predicted_auc_ng_min_ml,
                Some(f(&s["auc_ng_min_ml"])),
                "{backend:?} session {sid}"
            );
            assert_eq!(s["total_mg"], p["history"]["total_mg"]);
            assert_eq!(s["model"], "domino");
            // The responses as recorded.
            assert_eq!(s["peak_cadss"], *c);
            assert_eq!(s["lowest_moaas"], *mo);
            assert_eq!(f(&s["baseline_systolic"]), f64::from(*b));
            assert_eq!(s["baseline_from"], "checklist");
            assert_eq!(f(&s["max_systolic"]), f64::from(*x));
            assert_eq!(f(&s["systolic_rise"]), f64::from(*x) - f64::from(*b));
            cadss_pts.push((f(&s["cmax_ng_ml"]), f64::from(*c)));
            rise_pts.push((f(&s["cmax_ng_ml"]), f64::from(*x) - f64::from(*b)));
        }
        // Longer infusions of the same rate: higher predicted exposure.
        assert!(cadss_pts[0].0 < cadss_pts[1].0 && cadss_pts[3].0 < cadss_pts[4].0);
        assert!(f(&g["cadss"]["ols"]["slope"]) > 0.0);
        independent_ols(&cadss_pts, &g["cadss"]);
        independent_ols(&rise_pts, &g["systolic_rise"]);

        // Filters, and refusals naming the field.
        let r = api("?protocol=trd-adult-iv-ketamine&age_band=adult").await;
        assert_eq!(r["groups"][0]["sessions"].as_array().unwrap().len(), 6);
        let r = api("?age_band=child").await;
        assert_eq!(r["groups"].as_array().unwrap().len(), 0);
        for (q, field) in [
            ("?protocol=no-such-protocol", "protocol"),
            ("?age_band=elderly", "age_band"),
            ("?dose=1", "dose"),
        ] {
            let r = app
                .get(&format!("/api/v1/pk/exposure-response{q}"), &st.nurse)
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{q}: {}",
                r.body
            );
            assert_eq!(r.fields(), vec![field], "{q}");
        }

        // The page: two named charts with points, line and band, and the table.
        let page = app.get("/pk/exposure", &writer().await).await;
        assert_eq!(page.status, StatusCode::OK);
        let b = &page.body;
        assert!(
            b.contains("role=\"img\" aria-label=\"Peak CADSS against predicted Cmax")
                && b.contains("aria-label=\"Systolic rise over baseline against predicted Cmax"),
            "{b}"
        );
        assert_eq!(b.matches("class=\"point\"").count(), 12);
        assert_eq!(b.matches("class=\"fit\"").count(), 2);
        assert_eq!(b.matches("class=\"band\"").count(), 2);
        for sid in &sids {
            assert!(b.contains(&format!("data-session=\"{sid}\"")));
        }
        assert!(b.contains("not a dosing recommendation"));
        assert!(
            b.contains("href=\"/pk/exposure\""),
            "the navigation links it"
        );
        let sim = app.get("/simulate", &writer().await).await;
        assert!(sim.body.contains("id=\"exposure-link\""));
        let bad = app
            .get("/pk/exposure?age_band=elderly", &writer().await)
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Roles: prescribers and nurses; not the scheduler, pharmacist, therapist, researcher or
        // administrator, and nobody signed out.
        let r = app.get("/api/v1/pk/exposure-response", &st.doc).await;
        assert_eq!(r.status, StatusCode::OK);
        for role in [
            Role::Scheduler,
            Role::Pharmacist,
            Role::Therapist,
            Role::Researcher,
            Role::Administrator,
        ] {
            let name = format!("r-{role}");
            app.add_user(&name, role).await;
            let auth = app.bearer(&name).await;
            let r = app.get("/api/v1/pk/exposure-response", &auth).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
            let r = app.get("/pk/exposure", &auth).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
            let sim = app.get("/simulate", &auth).await;
            assert!(!sim.body.contains("href=\"/pk/exposure\""), "{role}");
        }
        let r = app.get("/api/v1/pk/exposure-response", &Auth::None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);

        // The read is audited: the view, and each session read.
        app.add_user("boss", Role::Administrator).await;
        let boss = app.bearer("boss").await;
        let log = app.get("/api/v1/audit", &boss).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.body);
        let records = log.json();
        let records = records.as_array().unwrap();
        let view = records
            .iter()
            .find(|r| r["action"] == "pk.exposure.read" && r["username"] == "doc")
            .expect("the view is audited");
        assert_eq!(view["detail"], "protocol=* age_band=* sessions=6");
        assert!(
            records
                .iter()
                .any(|r| r["action"] == "session.read" && r["username"] == "doc"),
            "each session read is audited"
        );

        // The registry's response by predicted exposure: a PHQ-9 of 20 on each dose day and,
        // two weeks later, 10 (a response) for the first, third and fifth patients, 15 for the
        // others; each induction is its one session, so each subject's exposure is that
        // session's predicted Cmax and AUC.
        let cmax: Vec<f64> = sessions.iter().map(|s| f(&s["cmax_ng_ml"])).collect();
        let dates: Vec<String> = sessions
            .iter()
            .map(|s| s["date"].as_str().unwrap().to_owned())
            .collect();
        let score = |pid: String, on: String, total: i64, key: String| {
            let app = &app;
            async move {
                let nurse = app.bearer("nurse").await;
                let answers: Vec<i64> = (0..9)
                    .map(|i| {
                        if i < 8 {
                            (total - 3 * i).clamp(0, 3)
                        } else {
                            0
                        }
                    })
                    .collect();
                let r = app
                    .json(
                        Method::POST,
                        &format!("/api/v1/patients/{pid}/responses"),
                        &nurse,
                        &json!({"instrument": "phq9", "answers": answers, "taken_on": on,
                                "submission_key": key}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            }
        };
        for (i, pid) in pids.iter().enumerate() {
            score(pid.clone(), dates[i].clone(), 20, format!("x-{i}-0")).await;
        }
        app.advance(15 * 86_400);
        for (i, pid) in pids.iter().enumerate() {
            let later: jiff::civil::Date = dates[i].parse().unwrap();
            let total = if i % 2 == 0 { 10 } else { 15 };
            score(
                pid.clone(),
                (later + jiff::ToSpan::days(14)).to_string(),
                total,
                format!("x-{i}-14"),
            )
            .await;
        }
        app.set_test_site_settings_with(&REGISTRY_SETTINGS).await;
        app.add_user("rae", Role::Researcher).await;
        let rae = app.bearer("rae").await;
        let r = app.get("/api/v1/registry/outcomes", &rae).await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
        let t = r.json();
        let x = &t["response_by_cmax_tertile"];
        assert_eq!(x["subjects"], 6, "{t}");
        // The cut points: the 1/3 and 2/3 sample quantiles (definition 7) of the six Cmax,
        // computed here from the exposure view's figures.
        let mut sorted = cmax.clone();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let h = 5.0 * p;
            let lo = h.floor() as usize;
            sorted[lo] + (sorted[lo + 1] - sorted[lo]) * (h - lo as f64)
        };
        close(f(&x["cut_points"][0]), q(1.0 / 3.0), "lower cut");
        close(f(&x["cut_points"][1]), q(2.0 / 3.0), "upper cut");
        let in_tertile = |k: usize| {
            (0..6)
                .filter(|i| {
                    let v = cmax[*i];
                    match k {
                        0 => v <= q(1.0 / 3.0),
                        1 => v > q(1.0 / 3.0) && v <= q(2.0 / 3.0),
                        _ => v > q(2.0 / 3.0),
                    }
                })
                .collect::<Vec<_>>()
        };
        for k in 0..3 {
            let members = in_tertile(k);
            let row = &x["tertiles"][k][1];
            assert_eq!(row["n"], members.len(), "{backend:?} tertile {k}: {x}");
            assert_eq!(
                row["k"],
                members.iter().filter(|i| *i % 2 == 0).count(),
                "{backend:?} tertile {k}: {x}"
            );
        }
        assert_eq!(t["response_by_auc_tertile"]["unit"], "ng·min/mL");
        // The page and the export show them.
        let page = app.get("/research", &app.login("rae").await).await;
        assert_eq!(
            page.body.matches("class=\"exposure-tertile\"").count(),
            6,
            "{}",
            page.body
        );
        let dict = app
            .get("/research/dictionary.csv", &app.login("rae").await)
            .await;
        assert!(
            dict.body.contains("induction_cmax_ng_ml,double,ng/mL"),
            "{}",
            dict.body
        );
    }
}

/// A signed session without a predicted exposure (signed before the registry kept it) gets one
/// from the backfill `serve` runs at start and `ketcare registry backfill-exposure` runs on
/// demand: the same figures the signature stores, each read and write audited; a second run
/// finds nothing to do.
#[tokio::test]
async fn signed_sessions_without_exposure_are_backfilled_once() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::new(backend).await;
        settings(&app).await;
        app.add_user("writer", Role::Nurse).await;
        app.add_user("doc", Role::Prescriber).await;
        app.add_user("pharm", Role::Pharmacist).await;
        app.add_user("nurse", Role::Nurse).await;
        let st = Staff {
            doc: app.bearer("doc").await,
            pharm: app.bearer("pharm").await,
            nurse: app.bearer("nurse").await,
        };
        let pid = patient(&app, "B-1").await;
        let plan = Plan {
            infusion_min: 40,
            baseline_systolic: 120,
            max_systolic: 128,
            moaas: 4,
            cadss: 5,
        };
        let sid = signed_session(&app, &st, &pid, &plan).await;
        // The registry's predicted Cmax of the one session (none while none is stored).
        let researcher = ketcare_core::Actor::system(Role::Researcher);
        let cmax = || async {
            app.store
                .registry(&researcher)
                .await
                .unwrap()
                .iter()
                .flat_map(|x| &x.sessions)
                .find_map(|x| x.predicted_cmax_ng_ml)
        };
        let signed_cmax = cmax().await;
        assert!(signed_cmax.is_some(), "the signature stored it");
        // As before migration 0025: the signed session has no predicted exposure.
        app.store
            .execute_raw(&format!(
                "DELETE FROM registry_session_exposure WHERE session_id = {sid}"
            ))
            .await
            .unwrap();
        assert_eq!(cmax().await, None, "{backend:?}");
        let lib = ketcare_clinical::Library::builtin().unwrap();
        let pk = std::sync::Arc::new(ketcare_pk::Library::builtin());
        let actor = ketcare_app::sessions::history::backfill_actor();
        let done = ketcare_app::sessions::history::backfill_exposure(
            app.store.as_ref(),
            &lib,
            pk.clone(),
            &actor,
        )
        .await
        .unwrap();
        assert_eq!(
            (done.predicted, done.unpredictable.len()),
            (1, 0),
            "{backend:?}"
        );
        assert_eq!(
            cmax().await,
            signed_cmax,
            "the same figure the signature stored"
        );
        let again =
            ketcare_app::sessions::history::backfill_exposure(app.store.as_ref(), &lib, pk, &actor)
                .await
                .unwrap();
        assert_eq!(again, Default::default(), "nothing left to do");

        // A weight charted after the session's day: the weight then is not known, so the
        // session is reported and left without a figure.
        app.store
            .execute_raw(&format!(
                "DELETE FROM registry_session_exposure WHERE session_id = {sid}"
            ))
            .await
            .unwrap();
        app.advance(5 * 86_400);
        let today = jiff::Timestamp::from_second(app.now.load(std::sync::atomic::Ordering::SeqCst))
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::system())
            .date()
            .to_string();
        let mut chart: serde_json::Map<String, Value> = minor_form()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        for (k, v) in [
            ("mrn", "B-1"),
            ("date_of_birth", "1980-05-01"),
            ("weight_value", "72"),
            ("weight_measured_on", today.as_str()),
        ] {
            chart.insert(k.into(), json!(v));
        }
        let r = app
            .json(
                Method::PUT,
                &format!("/api/v1/patients/{pid}"),
                &st.nurse,
                &Value::Object(chart),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let later = ketcare_app::sessions::history::backfill_exposure(
            app.store.as_ref(),
            &lib,
            std::sync::Arc::new(ketcare_pk::Library::builtin()),
            &actor,
        )
        .await
        .unwrap();
        assert_eq!(later.predicted, 0, "{backend:?}");
        assert_eq!(later.unpredictable.len(), 1);
        assert!(
            later.unpredictable[0]
                .1
                .contains("after the session's dose day"),
            "{later:?}"
        );
        assert_eq!(cmax().await, None);
    }
}
