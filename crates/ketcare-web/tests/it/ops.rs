//! Operations through the web edge, on SQLite and PostgreSQL: a scheduler books a course (and a
//! conflicting one is refused with reasons), a guardian and a minor consent, a pharmacist
//! receives stock, a nurse draws and wastes with a witness who signs with their own password,
//! the count holds a discrepancy open, and the superbill follows the infusion time boundaries.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{PASSWORD, TestApp, minor_form};
use ketcare_core::{Actor, Role};
use ketcare_store::testing::BACKENDS;
use serde_json::json;

async fn settings(app: &TestApp, extra: &[(&str, f64)]) {
    let mut values = serde_json::Map::new();
    for (k, v) in common::TEST_SITE_SETTINGS.iter().chain(extra) {
        values.insert((*k).into(), (*v).into());
    }
    app.store
        .save_site_settings(
            &Actor::system(Role::Administrator),
            &json!({ "values": values }).to_string(),
            "test",
        )
        .await
        .unwrap();
}

/// A scheduled session of `protocol` for `patient` with a verified dose order attached (the
/// order itself is not stored: the ledger reads the drug from the session's plan).
pub async fn session_with_order(
    app: &TestApp,
    patient: i64,
    protocol: &str,
    devices: u32,
) -> ketcare_core::SessionId {
    ketcare_store::testing::session_with_order(
        app.store.as_ref(),
        &Actor::system(Role::Nurse),
        ketcare_core::PatientId::new(patient),
        protocol,
        devices,
    )
    .await
}

#[tokio::test]
async fn the_operations_story_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("alex", Role::Administrator).await;
        app.add_user("sam", Role::Scheduler).await;
        let nina = app.add_user("nina", Role::Nurse).await;
        app.add_user("nell", Role::Nurse).await;
        app.add_user("phil", Role::Pharmacist).await;
        app.add_user("priya", Role::Prescriber).await;
        let sched = app.login("sam").await;
        let nurse = app.login("nina").await;
        let pharm = app.bearer("phil").await;
        let admin = app.bearer("alex").await;

        // A chair, and a minor patient.
        let r = app
            .post_form("/schedule/chairs", &sched, &[("name", "Chair A")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{backend:?} {}", r.body);
        let created = app.post_form("/patients", &nurse, &minor_form()).await;
        let pid: i64 = created
            .location()
            .trim_start_matches("/patients/")
            .parse()
            .unwrap();
        let chair_id = app
            .store
            .chairs(&Actor::system(Role::Scheduler))
            .await
            .unwrap()[0]
            .id;
        let course = json!({"patient_id": pid, "template_id": "iv-ketamine-induction-6-twice-weekly",
                            "first_day": "2026-12-07", "time": "09:00", "chair_id": chair_id, "nurse_id": nina.id.get()});

        // Blocked until the site says whether a prescriber must be on site; the reply names it.
        settings(&app, &[]).await;
        let r = app
            .json(Method::POST, "/api/v1/schedule/courses", &sched, &course)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(
            r.body.contains("schedule.ketamine_prescriber_on_site"),
            "{}",
            r.body
        );
        settings(&app, &[("schedule.ketamine_prescriber_on_site", 2.0)]).await;

        // The induction series: six sessions, each 40 min + 120 min observation.
        let r = app
            .json(Method::POST, "/api/v1/schedule/courses", &sched, &course)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?} {}", r.body);
        let booked = r.json();
        let bookings = booked["bookings"].as_array().unwrap();
        assert_eq!(bookings.len(), 6);
        assert_eq!(bookings[0]["start"], "2026-12-07T09:00:00");
        assert_eq!(bookings[0]["end"], "2026-12-07T11:40:00");

        // The same course again conflicts on every session: chair, nurse and patient.
        let r = app
            .json(Method::POST, "/api/v1/schedule/courses", &sched, &course)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        let refused = r.json();
        assert_eq!(refused["sessions"].as_array().unwrap().len(), 6);
        let kinds: Vec<&str> = refused["sessions"][0]["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            vec!["chair_busy", "patient_double_booked", "nurse_busy"]
        );
        // The page shows the reasons too, and books nothing.
        let r = app
            .post_form(
                "/schedule/courses",
                &sched,
                &[
                    ("patient_id", &pid.to_string()),
                    ("template_id", "iv-ketamine-induction-6-twice-weekly"),
                    ("first_day", "2026-12-07"),
                    ("time", "10:00"),
                    ("chair_id", &chair_id.to_string()),
                    ("nurse_id", &nina.id.get().to_string()),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(
            r.body.contains("chair") && r.body.contains("is taken by booking"),
            "{}",
            r.body
        );
        // The scheduler names the patient by MRN, or as a picker writes it; an unknown one is
        // refused naming the field.
        for (who, status) in [
            ("T-100", StatusCode::CONFLICT),
            ("Quill, Robin (T-100)", StatusCode::CONFLICT),
            ("T-999", StatusCode::UNPROCESSABLE_ENTITY),
            // A name (or an MRN fragment) that matches one patient today is not an MRN.
            ("Quill", StatusCode::UNPROCESSABLE_ENTITY),
            ("T-10", StatusCode::UNPROCESSABLE_ENTITY),
            // The right MRN with another person's name is a contradiction.
            ("Smith, Jo (T-100)", StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let r = app
                .post_form(
                    "/schedule/courses",
                    &sched,
                    &[
                        ("patient_id", who),
                        ("template_id", "iv-ketamine-induction-6-twice-weekly"),
                        ("first_day", "2026-12-07"),
                        ("time", "10:00"),
                        ("chair_id", &chair_id.to_string()),
                        ("nurse_id", &nina.id.get().to_string()),
                    ],
                )
                .await;
            assert_eq!(r.status, status, "{who}: {}", r.body);
        }
        let week = app.get("/schedule?date=2026-12-07&view=week", &sched).await;
        assert_eq!(week.status, StatusCode::OK);
        assert_eq!(
            week.body.matches("data-booking=").count(),
            2,
            "two sessions in the first week"
        );

        // A booster outside the plan: its length from the template; a clash is refused.
        let booster = json!({"patient_id": pid, "template_id": "iv-ketamine-induction-6", "phase": "booster",
                             "start": "2026-12-08T09:00", "chair_id": chair_id, "nurse_id": nina.id.get()});
        let r = app
            .json(Method::POST, "/api/v1/schedule/sessions", &sched, &booster)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.json()["end"], "2026-12-08T11:40:00");
        let r = app
            .json(Method::POST, "/api/v1/schedule/sessions", &sched, &booster)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

        // Moving the second session shows that the later ones move with it.
        let second = bookings[1]["id"].as_i64().unwrap();
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/schedule/bookings/{second}/move"),
                &sched,
                &json!({"start": "2026-12-11T13:00", "mode": "this_and_later"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["moves"].as_array().unwrap().len(), 5);

        // Consent: a document, then a guardian signs; without the minor's assent it is refused.
        let doc: Vec<(&str, &str)> = vec![
            ("protocol_id", "trd-adolescent-iv-ketamine-yale"),
            ("title", "IV ketamine for adolescents"),
            (
                "off_label_use",
                "Ketamine is not approved for depression; this use is off-label.",
            ),
            ("abuse_potential", "Ketamine can be misused."),
            (
                "side_effects",
                "Dissociation, raised blood pressure, nausea.",
            ),
            ("alternatives", "Other treatments exist."),
            ("not_standalone", "Ketamine is not a standalone treatment."),
            (
                "no_driving_until_next_day",
                "No driving until the next day.",
            ),
        ];
        let r = app.post_form("/consent/documents", &nurse, &doc).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let patient = app
            .get(
                &format!("/api/v1/patients/{pid}"),
                &app.bearer("nina").await,
            )
            .await
            .json();
        assert!(patient["guardians"].as_array().is_none_or(|g| g.is_empty()));
        let g = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/guardians"),
                &app.bearer("nina").await,
                &json!({"name": "Dana Quill", "relationship": "mother", "phone": "555-0101"}),
            )
            .await;
        assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
        let gid = g.json()["id"].as_i64().unwrap();
        let status_url = format!(
            "/api/v1/patients/{pid}/consent-status?protocol=trd-adolescent-iv-ketamine-yale"
        );
        let nurse_api = app.bearer("nina").await;
        assert_eq!(
            app.get(&status_url, &nurse_api).await.json()["reason"],
            "no_consent"
        );
        let r = app
            .post_form(
                &format!("/patients/{pid}/consent"),
                &nurse,
                &[
                    ("protocol_id", "trd-adolescent-iv-ketamine-yale"),
                    ("signer", &gid.to_string()),
                    ("assent", ""),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("assent"), "{}", r.body);
        let r = app
            .post_form(
                &format!("/patients/{pid}/consent"),
                &nurse,
                &[
                    ("protocol_id", "trd-adolescent-iv-ketamine-yale"),
                    ("signer", &gid.to_string()),
                    ("assent", "given"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(
            app.get(&status_url, &nurse_api).await.json()["status"],
            "valid"
        );

        // The pharmacist receives stock against an invoice.
        let receive = json!({"event": {"kind": "receive", "product": "ketamine-50", "ndc": "67457-108-10", "lot": "K1",
                             "expiry": "2030-06-30", "quantity": 2, "invoice": "INV-77", "supplier": "Wholesaler"}});
        assert_eq!(
            app.json(Method::POST, "/api/v1/ledger/events", &nurse_api, &receive)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        let r = app
            .json(Method::POST, "/api/v1/ledger/events", &pharm, &receive)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        // The nurse draws 1 mL (50 mg) for the patient's session and gives 35 mg.
        let sid = session_with_order(&app, pid, "trd-adolescent-iv-ketamine-yale", 0).await;
        let sid_text = sid.to_string();
        let r = app
            .post_form(
                "/ledger",
                &nurse,
                &[
                    ("kind", "draw"),
                    ("container", "1"),
                    ("session_id", &sid_text),
                    ("patient_id", &pid.to_string()),
                    ("volume_ml", "1"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let facts = json!({"session_id": sid, "patient_id": pid, "drug": "racemic_ketamine", "route": "iv_infusion",
                           "infusion_start": "2026-12-07T09:00:00Z", "infusion_stop": "2026-12-07T09:40:00Z",
                           "given": 35000, "cancelled": false, "em_level": null});
        let r = app
            .json(Method::POST, "/api/v1/ledger/balance", &nurse_api, &facts)
            .await;
        let b = r.json();
        assert_eq!(
            (b["balanced"].as_bool(), b["unaccounted_ug"].as_i64()),
            (Some(false), Some(15_000)),
            "{}",
            r.body
        );
        // The record documents no mg given yet: the figure sent is a preview, and says so.
        assert_eq!(b["given_from_record"], false, "{b}");
        assert!(b["message"].as_str().unwrap().starts_with("Preview"), "{b}");
        // A figure the record contradicts is refused, naming it.
        let mut other = facts.clone();
        other["patient_id"] = json!(pid + 1000);
        let r = app
            .json(Method::POST, "/api/v1/ledger/balance", &nurse_api, &other)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.json()["fields"][0]["field"], "patient_id", "{}", r.body);
        // A negative or absurd `given` is refused naming the field (it once overflowed).
        let mut wrong = facts.clone();
        wrong["given"] = json!(i64::MIN);
        let r = app
            .json(Method::POST, "/api/v1/ledger/balance", &nurse_api, &wrong)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.json()["fields"][0]["field"], "given", "{}", r.body);
        // Waste: a wrong witness password, the nurse herself, an administrator — all refused.
        for (who, pw) in [("nell", "wrong"), ("nina", PASSWORD), ("alex", PASSWORD)] {
            let r = app
                .post_form(
                    "/ledger",
                    &nurse,
                    &[
                        ("kind", "waste"),
                        ("session_id", &sid_text),
                        ("amount_mg", "15"),
                        ("witness_username", who),
                        ("witness_password", pw),
                    ],
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{who}: {}",
                r.body
            );
            assert!(r.body.contains("witness"), "{}", r.body);
        }
        let r = app
            .post_form(
                "/ledger",
                &nurse,
                &[
                    ("kind", "waste"),
                    ("session_id", &sid_text),
                    ("amount_mg", "15"),
                    ("witness_username", "nell"),
                    ("witness_password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let b = app
            .json(Method::POST, "/api/v1/ledger/balance", &nurse_api, &facts)
            .await
            .json();
        assert_eq!(b["balanced"], true, "{b}");
        // Guessing a witness's password locks the witness's account like failed sign-ins do.
        app.add_user("wendy", Role::Nurse).await;
        for _ in 0..app.config.lockout_attempts {
            let r = app
                .post_form(
                    "/ledger",
                    &nurse,
                    &[
                        ("kind", "waste"),
                        ("session_id", &sid_text),
                        ("amount_mg", "1"),
                        ("witness_username", "wendy"),
                        ("witness_password", "guess"),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        }
        let r = app
            .post_form(
                "/ledger",
                &nurse,
                &[
                    ("kind", "waste"),
                    ("session_id", &sid_text),
                    ("amount_mg", "1"),
                    ("witness_username", "wendy"),
                    ("witness_password", PASSWORD),
                ],
            )
            .await;
        assert!(r.body.contains("locked"), "{}", r.body);

        // The day's count: container 1 counted short, held open until resolved with a reason.
        let count = json!({"event": {"kind": "count", "period": "2026-12-07 close",
                           "lines": [{"container": 1, "counted_ul": 8800}, {"container": 2, "counted_ul": 10000}]}});
        assert_eq!(
            app.json(Method::POST, "/api/v1/ledger/events", &pharm, &count)
                .await
                .status,
            StatusCode::CREATED
        );
        let l = app.get("/api/v1/ledger", &pharm).await.json();
        let open = l["open_discrepancies"].as_array().unwrap();
        assert_eq!(open.len(), 1);
        let page = app.get("/ledger", &app.login("phil").await).await;
        assert!(page.body.contains("id=\"discrepancies\""), "{}", page.body);
        let resolve = json!({"event": {"kind": "resolve", "discrepancy": open[0]["id"], "reason": "recount: 9.0 mL, misread", "adjust": false}});
        assert_eq!(
            app.json(Method::POST, "/api/v1/ledger/events", &pharm, &resolve)
                .await
                .status,
            StatusCode::CREATED
        );
        assert!(
            app.get("/api/v1/ledger", &pharm).await.json()["open_discrepancies"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(app.store.verify_ledger().await.unwrap().broken.is_none());

        // Billing: the superbill follows the infusion time; prices are the site's.
        let prescriber = app.bearer("priya").await;
        let bill = |minutes: i64| {
            let mut f = facts.clone();
            f["infusion_stop"] = json!(
                jiff::Timestamp::from_second(1_796_634_000 + minutes * 60)
                    .unwrap()
                    .to_string()
            );
            f["infusion_start"] = json!("2026-12-07T09:00:00Z");
            f
        };
        for (minutes, codes) in [
            (15, vec!["96374", "J3490"]),
            (16, vec!["96365", "J3490"]),
            (90, vec!["96365", "J3490"]),
            (91, vec!["96365", "96366", "J3490"]),
        ] {
            let s = app
                .json(
                    Method::POST,
                    "/api/v1/billing/superbill",
                    &prescriber,
                    &bill(minutes),
                )
                .await
                .json();
            let got: Vec<&str> = s["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["code"].as_str().unwrap())
                .collect();
            assert_eq!(got, codes, "{minutes} min");
        }
        app.store
            .set_price(&Actor::system(Role::Administrator), "96365", 40_000)
            .await
            .unwrap();
        app.store
            .set_price(&Actor::system(Role::Administrator), "J3490", 1_500)
            .await
            .unwrap();
        let e = app
            .json(
                Method::POST,
                "/api/v1/billing/estimate",
                &prescriber,
                &json!({"template_id": "iv-ketamine-induction-6", "typical": bill(40)}),
            )
            .await
            .json();
        assert_eq!(e["total_cents"], 6 * 41_500, "{e}");
        let page = app.get("/billing?drug=racemic_ketamine&route=iv_infusion&minutes=40&given_mg=35&template_id=iv-ketamine-induction-6", &app.login("priya").await).await;
        assert!(
            page.body.contains("96365") && page.body.contains("2490.00"),
            "{}",
            page.body
        );
        // Administrators set prices through the API; a prescriber may not.
        let price = json!({"cents": 15000});
        for (who, status) in [
            (&prescriber, StatusCode::FORBIDDEN),
            (&admin, StatusCode::NO_CONTENT),
        ] {
            let r = app
                .json(Method::PUT, "/api/v1/billing/prices/96366", who, &price)
                .await;
            assert_eq!(r.status, status, "{}", r.body);
        }
        let bad = app
            .json(
                Method::PUT,
                "/api/v1/billing/prices/ABCDE",
                &admin,
                &json!({"cents": 1}),
            )
            .await;
        assert_eq!(bad.fields(), vec!["code"]);
    }
}

#[tokio::test]
async fn draws_are_tied_to_the_session_record_through_the_api_and_the_page() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("nell", Role::Nurse).await;
        app.add_user("phil", Role::Pharmacist).await;
        let nurse = app.login("nina").await;
        let nurse_api = app.bearer("nina").await;
        let pharm = app.bearer("phil").await;
        let adult = common::patient_born(&app, &nurse, "A-300", "1980-05-01").await;
        let other = common::patient_born(&app, &nurse, "A-301", "1981-05-01").await;
        let receive = json!({"event": {"kind": "receive", "product": "ketamine-50", "ndc": "67457-108-10", "lot": "K1",
                             "expiry": "2030-06-30", "quantity": 1, "invoice": "INV-78", "supplier": "Wholesaler"}});
        let r = app
            .json(Method::POST, "/api/v1/ledger/events", &pharm, &receive)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let iv = session_with_order(&app, adult, "trd-adult-iv-ketamine", 0)
            .await
            .get();
        let esk = session_with_order(&app, adult, "trd-adult-esketamine", 2)
            .await
            .get();
        let others = session_with_order(&app, other, "trd-adult-iv-ketamine", 0)
            .await
            .get();
        let draw = |session: i64, patient: i64| json!({"event": {"kind": "draw", "container": 1, "session_id": session, "patient_id": patient, "volume_ul": 500}});
        // API: no such session; another patient's session; a racemic vial for esketamine.
        for (body, field) in [
            (draw(iv + 1000, adult), "session_id"),
            (draw(others, adult), "patient_id"),
            (draw(esk, adult), "container"),
        ] {
            let r = app
                .json(Method::POST, "/api/v1/ledger/events", &nurse_api, &body)
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{backend:?} {body}: {}",
                r.body
            );
            assert!(
                r.body.contains(&format!("\"{field}\"")),
                "{field}: {}",
                r.body
            );
        }
        // The page: the same refusals, naming the field.
        for (session, patient, field) in [
            (iv + 1000, adult.to_string(), "session_id"),
            (others, adult.to_string(), "patient_id"),
            // Named by MRN, as staff know the patient: still not that session's patient.
            (others, "A-300".to_owned(), "patient_id"),
            (others, "A-999".to_owned(), "patient_id"),
            (esk, String::new(), "container"),
        ] {
            let r = app
                .post_form(
                    "/ledger",
                    &nurse,
                    &[
                        ("kind", "draw"),
                        ("container", "1"),
                        ("session_id", &session.to_string()),
                        ("patient_id", &patient),
                        ("volume_ml", "0.5"),
                    ],
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{backend:?} {field}: {}",
                r.body
            );
            assert!(r.body.contains(field), "{field}: {}", r.body);
        }
        // A waste for a session that does not exist is refused too.
        let waste = json!({"event": {"kind": "waste", "session_id": iv + 1000, "amount_ug": 1000, "note": "", "witness": null},
                           "witnesses": [{"username": "nell", "password": PASSWORD}]});
        let r = app
            .json(Method::POST, "/api/v1/ledger/events", &nurse_api, &waste)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("\"session_id\""), "{}", r.body);
        let ledger = app.get("/api/v1/ledger", &pharm).await.json();
        assert_eq!(
            ledger["containers"][0]["status"], "sealed",
            "nothing was drawn: {ledger}"
        );
        // The session's own patient (taken from the session when left out) and drug: accepted.
        let r = app
            .post_form(
                "/ledger",
                &nurse,
                &[
                    ("kind", "draw"),
                    ("container", "1"),
                    ("session_id", &iv.to_string()),
                    ("patient_id", ""),
                    ("volume_ml", "0.5"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{backend:?}: {}", r.body);
        let r = app
            .json(
                Method::POST,
                "/api/v1/ledger/events",
                &nurse_api,
                &draw(iv, adult),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        // A session from a stored, verified order prepared from a 10 mg/mL vial: a 50 mg/mL
        // vial is refused, a 10 mg/mL one accepted.
        app.add_user("priya", Role::Prescriber).await;
        app.set_test_site_settings().await;
        let doc = app.bearer("priya").await;
        let order = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{adult}/orders"),
                &doc,
                &json!({"protocol_id": "trd-adult-iv-ketamine", "patient": {"weight_kg": 41.5, "age": {"years": 46}},
                        "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}}),
            )
            .await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        let oid = order.json()["id"].as_i64().unwrap();
        let v = app
            .json(
                Method::POST,
                &format!("/api/v1/orders/{oid}/verify"),
                &pharm,
                &json!({}),
            )
            .await;
        assert_eq!(v.status, StatusCode::OK, "{}", v.body);
        let created = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{adult}/sessions"),
                &nurse_api,
                &json!({"order_id": oid, "chair": "Chair 3"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let ordered = created.json()["id"].as_i64().unwrap();
        let r = app
            .json(
                Method::POST,
                "/api/v1/ledger/events",
                &nurse_api,
                &draw(ordered, adult),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}: {}",
            r.body
        );
        assert!(
            r.body.contains("\"container\"") && r.body.contains("10 mg/mL"),
            "{}",
            r.body
        );
        let receive10 = json!({"event": {"kind": "receive", "product": "ketamine-10", "ndc": "67457-108-10", "lot": "K10",
                               "expiry": "2030-06-30", "quantity": 1, "invoice": "INV-79", "supplier": "Wholesaler"}});
        let r = app
            .json(Method::POST, "/api/v1/ledger/events", &pharm, &receive10)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let ten = json!({"event": {"kind": "draw", "container": 2, "session_id": ordered, "volume_ul": 2000}});
        let r = app
            .json(Method::POST, "/api/v1/ledger/events", &nurse_api, &ten)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
    }
}

#[tokio::test]
async fn consent_signers_come_from_the_records_through_the_api_and_the_page() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let nina = app.add_user("nina", Role::Nurse).await;
        let sam = app.add_user("sam", Role::Scheduler).await;
        let nurse = app.login("nina").await;
        let nurse_api = app.bearer("nina").await;
        let proto = "trd-adolescent-iv-ketamine-yale";
        app.store
            .add_consent_document(
                &Actor::system(Role::Nurse),
                &ketcare_store::NewConsentDocument {
                    protocol_id: proto.into(),
                    protocol_version: 1,
                    off_label: true,
                    title: "IV ketamine for adolescents".into(),
                    sections: ketcare_ops::consent::SectionKind::ALL
                        .into_iter()
                        .map(|kind| ketcare_ops::consent::Section {
                            kind,
                            text: kind.label().into(),
                        })
                        .collect(),
                    valid_days: None,
                },
            )
            .await
            .unwrap();
        let minor = common::patient_born(&app, &nurse, "M-300", "2012-05-01").await;
        let adult = common::patient_born(&app, &nurse, "A-302", "1980-05-01").await;
        let g = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{minor}/guardians"),
                &nurse_api,
                &json!({"name": "Dana Quill", "relationship": "mother", "phone": "555-0101"}),
            )
            .await;
        assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
        let gid = g.json()["id"].as_i64().unwrap();
        let url = format!("/api/v1/patients/{minor}/consents");
        let sign = |signer: serde_json::Value, obtained_by: i64| {
            json!({"protocol_id": proto, "signer": signer,
                   "assent": {"kind": "given", "obtained_by": obtained_by}})
        };
        let me = nina.id.get();
        for (body, field) in [
            (
                sign(
                    json!({"kind": "guardian", "guardian_id": gid, "name": "Someone Else", "relationship": "mother"}),
                    me,
                ),
                "signer.name",
            ),
            (
                sign(
                    json!({"kind": "guardian", "guardian_id": gid, "relationship": "father"}),
                    me,
                ),
                "signer.relationship",
            ),
            (
                sign(json!({"kind": "guardian", "guardian_id": gid}), 987_654),
                "assent.obtained_by",
            ),
            (
                sign(
                    json!({"kind": "guardian", "guardian_id": gid}),
                    sam.id.get(),
                ),
                "assent.obtained_by",
            ),
        ] {
            let r = app.json(Method::POST, &url, &nurse_api, &body).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{backend:?} {body}: {}",
                r.body
            );
            assert!(r.body.contains(field), "{field}: {}", r.body);
        }
        // Name and relationship left out: the guardian record's are stored.
        let r = app
            .json(
                Method::POST,
                &url,
                &nurse_api,
                &sign(json!({"kind": "guardian", "guardian_id": gid}), me),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
        assert_eq!(r.json()["signer"]["name"], "Dana Quill");
        assert_eq!(r.json()["signer"]["relationship"], "mother");
        let status_url = format!("/api/v1/patients/{minor}/consent-status?protocol={proto}");
        assert_eq!(
            app.get(&status_url, &nurse_api).await.json()["status"],
            "valid"
        );
        // The guardian is unlinked: the consent is no longer valid, and the status says why.
        let r = app
            .json(
                Method::DELETE,
                &format!("/api/v1/patients/{minor}/guardians/{gid}"),
                &nurse_api,
                &json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let st = app.get(&status_url, &nurse_api).await.json();
        assert_eq!(st["reason"], "guardian_unlinked", "{backend:?}: {st}");
        let page = app.get(&format!("/patients/{minor}/consent"), &nurse).await;
        assert!(
            page.body.contains("no longer a guardian of record"),
            "{}",
            page.body
        );

        // The consent page names no protocol by default; a submit without one is refused.
        let page = app.get(&format!("/patients/{adult}/consent"), &nurse).await;
        assert!(
            page.body.contains(r#"<option value="" selected>"#),
            "{}",
            page.body
        );
        let r = app
            .post_form(
                &format!("/patients/{adult}/consent"),
                &nurse,
                &[("protocol_id", ""), ("signer", "patient")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("protocol_id"), "{}", r.body);

        // A protocol whose population does not fit the patient's age from the record is
        // refused, naming the protocol: the adult cannot consent to the adolescent protocol.
        let r = app
            .post_form(
                &format!("/patients/{adult}/consent"),
                &nurse,
                &[("protocol_id", proto), ("signer", "patient")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("adolescent population"), "{}", r.body);
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{adult}/consents"),
                &nurse_api,
                &json!({"protocol_id": proto, "signer": {"kind": "patient"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.json()["fields"][0]["field"], "protocol_id", "{}", r.body);
    }
}
