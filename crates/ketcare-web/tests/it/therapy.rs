//! Psychotherapy integration through the real router on both backends: the psychotherapy note's
//! privacy for every role (page, API, FHIR, `$export`, the audit), a positive risk assessment
//! raising the safety alert, the session link refused for another patient's session, and the
//! missed-integration flag.

use crate::common;

use axum::http::{Method, StatusCode, header};
use common::{Auth, START, TestApp, adult_form, patient_born};
use ketcare_core::{Actor, EncounterId, PatientId, Role};
use ketcare_store::testing::{BACKENDS, dosed_session};
use serde_json::json;

const SECRET: &str = "PSYCHOTHERAPY-NOTE-dreamt of the lake again";

/// A patient made by a nurse through the intake page, and a session dosed `days_ago` days before
/// the test clock.
async fn patient_with_dose(app: &TestApp, days_ago: i64) -> (i64, i64) {
    app.add_user("intake", Role::Nurse).await;
    let page = app.login("intake").await;
    let created = app.post_form("/patients", &page, &adult_form()).await;
    let pid: i64 = created
        .location()
        .trim_start_matches("/patients/")
        .parse()
        .unwrap();
    let sid = dose(app, pid, days_ago).await;
    (pid, sid)
}

async fn dose(app: &TestApp, pid: i64, days_ago: i64) -> i64 {
    dosed_session(
        app.store.as_ref(),
        &Actor::system(Role::Nurse),
        PatientId::new(pid),
        jiff::Timestamp::from_second(START - days_ago * 86_400).unwrap(),
    )
    .await
    .get()
}

fn day(days_ago: i64) -> String {
    jiff::Timestamp::from_second(START - days_ago * 86_400)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::system())
        .date()
        .to_string()
}

fn integration(sid: i64, on: &str) -> serde_json::Value {
    json!({"kind": "integration", "at": format!("{on}T15:00"), "duration_minutes": 50,
           "modality": "individual", "session_id": sid, "themes": "grief", "intentions": "",
           "homework": "journal daily", "suicide_risk": "negative"})
}

async fn encounter(app: &TestApp, pid: i64, auth: &Auth, body: &serde_json::Value) -> i64 {
    let r = app
        .json(
            Method::POST,
            &format!("/api/v1/patients/{pid}/therapy/encounters"),
            auth,
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()["id"].as_i64().unwrap()
}

/// Every NDJSON file of a whole-clinic `$export` run by `auth`, joined.
async fn export_everything(app: &TestApp, auth: &Auth) -> String {
    let headers = [
        ("prefer", "respond-async"),
        ("accept", "application/fhir+json"),
    ];
    let r = app
        .send(
            Method::GET,
            "/fhir/r4/$export",
            auth,
            None,
            String::new(),
            &headers,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let local = |url: &str| {
        url.split_once("/fhir/r4")
            .map(|(_, p)| format!("/fhir/r4{p}"))
            .unwrap_or_default()
    };
    let status = local(r.headers[header::CONTENT_LOCATION].to_str().unwrap());
    let mut manifest = serde_json::Value::Null;
    for _ in 0..300 {
        let r = app.get(&status, auth).await;
        if r.status == StatusCode::OK {
            manifest = r.json();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut all = String::new();
    for f in manifest["output"].as_array().expect("a finished export") {
        let r = app.get(&local(f["url"].as_str().unwrap()), auth).await;
        assert_eq!(r.status, StatusCode::OK);
        all.push_str(&r.body);
    }
    assert!(!all.is_empty(), "the export holds the clinic's records");
    all
}

#[tokio::test]
async fn the_psychotherapy_note_is_read_by_its_author_and_no_other_role() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, sid) = patient_with_dose(&app, 1).await;
        let mut users = Vec::new();
        for (name, role) in [
            ("thea", Role::Therapist),
            ("theo", Role::Therapist),
            ("tess", Role::Therapist),
            ("doc", Role::Prescriber),
            ("nina", Role::Nurse),
            ("phil", Role::Pharmacist),
            ("sue", Role::Scheduler),
            ("rae", Role::Researcher),
            ("alex", Role::Administrator),
        ] {
            let u = app.add_user(name, role).await;
            users.push((name, role, u, app.bearer(name).await));
        }
        let api = |name: &str| users.iter().find(|u| u.0 == name).unwrap().3.clone();
        let thea = api("thea");
        let eid = encounter(&app, pid, &thea, &integration(sid, &day(0))).await;
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/therapy/encounters/{eid}/notes"),
                &thea,
                &json!({"text": SECRET}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
        let nid = r.json()["id"].as_i64().unwrap();
        // An amendment is a new note; the first stays as written.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/therapy/encounters/{eid}/notes"),
                &thea,
                &json!({"text": "amended: the lake was a river", "amends_id": nid}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let notes_path = format!("/api/v1/therapy/encounters/{eid}/notes");
        let notes = app.get(&notes_path, &thea).await.json();
        assert_eq!(notes.as_array().unwrap().len(), 2, "{notes}");
        assert_eq!(notes[0]["text"], SECRET);
        assert_eq!(notes[1]["amends_id"], nid);

        // Theo treats the patient too (his own encounter); Tess does not.
        encounter(&app, pid, &api("theo"), &integration(sid, &day(0))).await;
        let count = |who: &'static str| {
            let (app, path, auth) = (&app, notes_path.clone(), api(who));
            async move {
                let r = app.get(&path, &auth).await;
                assert_eq!(r.status, StatusCode::OK, "{who}: {}", r.body);
                r.json().as_array().unwrap().len()
            }
        };
        assert_eq!(
            count("theo").await,
            0,
            "{backend:?}: the site has not allowed it"
        );
        assert_eq!(count("tess").await, 0);
        // Another therapist may not amend the author's note.
        let r = app
            .json(
                Method::POST,
                &notes_path,
                &api("theo"),
                &json!({"text": "x", "amends_id": nid}),
            )
            .await;
        assert_eq!(r.fields(), ["amends_id"], "{}", r.body);
        app.set_test_site_settings_with(&[("therapy.notes_to_treating_therapists_enabled", 1.0)])
            .await;
        assert_eq!(
            count("theo").await,
            2,
            "{backend:?}: a treating therapist, with the site's yes"
        );
        assert_eq!(
            count("tess").await,
            0,
            "{backend:?}: not treating this patient"
        );

        // The store itself refuses every other role, whatever the edge.
        for (name, role, user, auth) in &users {
            if *role == Role::Therapist {
                continue;
            }
            let actor = Actor::user(user.id, name, *role, "test");
            assert!(
                app.store
                    .therapy_notes(&actor, EncounterId::new(eid))
                    .await
                    .is_err(),
                "{backend:?}: {role} read a note through the store"
            );
            let r = app.get(&notes_path, auth).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}: {}", r.body);
            let r = app
                .json(Method::POST, &notes_path, auth, &json!({"text": "x"}))
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
            // The encounter's page: the structured part for the care team, never the note.
            let page = app.login(name).await;
            let r = app.get(&format!("/therapy/encounters/{eid}"), &page).await;
            assert!(!r.body.contains("dreamt of the lake"), "{role}: {}", r.body);
            if role == &Role::Prescriber || role == &Role::Nurse || role == &Role::Pharmacist {
                assert_eq!(r.status, StatusCode::OK, "{role}");
                assert!(r.body.contains("journal daily"), "{role}");
                assert!(r.body.contains("id=\"notes-closed\""), "{role}");
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
            }
            let r = app
                .post_form(
                    &format!("/therapy/encounters/{eid}/notes"),
                    &page,
                    &[("text", "x")],
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
        }

        // Not in the patient's JSON record, the therapy API, FHIR or a bulk export — even the
        // author's own.
        for who in ["thea", "nina"] {
            for path in [
                format!("/api/v1/patients/{pid}"),
                format!("/api/v1/patients/{pid}/therapy"),
                format!("/api/v1/therapy/encounters/{eid}"),
                format!("/fhir/r4/Patient/{pid}"),
                format!("/fhir/r4/Encounter?patient={pid}"),
                format!("/fhir/r4/Flag?patient={pid}"),
            ] {
                let r = app.get(&path, &api(who)).await;
                assert!(!r.body.contains("lake"), "{who} {path}: {}", r.body);
            }
            let all = export_everything(&app, &api(who)).await;
            assert!(!all.contains("lake"), "{backend:?}: {who}'s export");
        }

        // Every read audited as therapy_note.read, and no audit record holds the text.
        let admin = api("alex");
        let log = app
            .get("/api/v1/audit?action=therapy_note.read&limit=500", &admin)
            .await
            .json();
        let reads = log.as_array().unwrap();
        assert!(reads.iter().any(|r| r["username"] == "thea"), "{log}");
        assert!(reads.iter().any(|r| r["username"] == "tess"), "{log}");
        let therapy = app
            .get("/api/v1/audit?action=therapy&limit=500", &admin)
            .await;
        assert!(
            therapy.body.contains("therapy_note.write"),
            "{}",
            therapy.body
        );
        for path in [
            "/api/v1/audit?action=therapy&limit=500".to_owned(),
            format!("/api/v1/audit?patient_id={pid}&limit=500"),
            "/api/v1/audit?limit=500".to_owned(),
        ] {
            let r = app.get(&path, &admin).await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(
                !r.body.contains("lake"),
                "{backend:?}: the audit holds no note text"
            );
        }
    }
}

#[tokio::test]
async fn a_positive_risk_assessment_raises_the_safety_alert() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, sid) = patient_with_dose(&app, 1).await;
        app.add_user("thea", Role::Therapist).await;
        let thea = app.bearer("thea").await;
        let mut body = integration(sid, &day(0));
        body["suicide_risk"] = json!("positive");
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/therapy/encounters"),
                &thea,
                &body,
            )
            .await;
        assert_eq!(r.fields(), ["risk_note"], "{backend:?}: {}", r.body);
        body["risk_note"] = json!("passive ideation; safety plan reviewed; prescriber told");
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/therapy/encounters"),
                &thea,
                &body,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let aid = r.json()["alert_id"].as_i64().expect("an alert");
        let alerts = app.get("/api/v1/alerts", &thea).await.json();
        let a = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == aid)
            .unwrap_or_else(|| panic!("{alerts}"));
        assert_eq!(a["patient_id"], pid);
        assert_eq!(a["status"], "open");
        assert_eq!(a["instrument"], "therapy_risk_assessment");
        // The same queue a questionnaire's alert is in, and the same Flag over FHIR.
        let flags = app
            .get(&format!("/fhir/r4/Flag?patient={pid}"), &thea)
            .await;
        assert_eq!(flags.json()["total"], 1, "{}", flags.body);
    }
}

#[tokio::test]
async fn another_patients_session_is_refused_naming_session_id() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, _) = patient_with_dose(&app, 1).await;
        let page = app.login("intake").await;
        let other = patient_born(&app, &page, "X-9", "1980-01-01").await;
        let theirs = dose(&app, other, 1).await;
        app.add_user("thea", Role::Therapist).await;
        let thea = app.bearer("thea").await;
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/therapy/encounters"),
                &thea,
                &integration(theirs, &day(0)),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend:?}");
        assert_eq!(r.fields(), ["session_id"], "{}", r.body);
        // On the page too, the form comes back with the reason.
        let tpage = app.login("thea").await;
        let r = app
            .post_form(
                &format!("/patients/{pid}/therapy/encounters"),
                &tpage,
                &[
                    ("kind", "integration"),
                    ("at", &format!("{}T15:00", day(0))),
                    ("duration_minutes", "50"),
                    ("modality", "individual"),
                    ("session_id", &theirs.to_string()),
                    ("suicide_risk", "negative"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("session_id: session"), "{}", r.body);
        assert_eq!(app.store.count("therapy_encounters").await.unwrap(), 0);
    }
}

/// The integration state of the patient's first dose, through the API.
async fn state(app: &TestApp, auth: &Auth, pid: i64, sid: i64) -> String {
    let o = app
        .get(&format!("/api/v1/patients/{pid}/therapy"), auth)
        .await
        .json();
    assert_eq!(o["integration"][0]["session_id"], sid, "{o}");
    o["integration"][0]["integration"]["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_dose_without_integration_in_the_window_is_flagged() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, sid) = patient_with_dose(&app, 5).await;
        app.add_user("thea", Role::Therapist).await;
        let thea = app.bearer("thea").await;
        let tpage = app.login("thea").await;
        // Until the site sets the window, nothing is guessed.
        assert_eq!(
            state(&app, &thea, pid, sid).await,
            "window_unset",
            "{backend:?}"
        );
        let chart = app.get(&format!("/patients/{pid}"), &tpage).await;
        assert!(
            chart.body.contains("has not set the integration window"),
            "{}",
            chart.body
        );
        let home = app.get("/", &tpage).await;
        assert!(
            home.body
                .contains("The site has not set the integration window (setting therapy.integration_window_days)."),
            "{}",
            home.body
        );
        app.set_test_site_settings_with(&[("therapy.integration_window_days", 3.0)])
            .await;
        assert_eq!(state(&app, &thea, pid, sid).await, "missed");
        // The therapist's home queue lists the missed integration, linked to the therapy page.
        let home = app.get("/", &tpage).await;
        let queue = home
            .body
            .split("id=\"integration-due\"")
            .nth(1)
            .unwrap_or_default();
        assert!(
            queue.contains(&format!("(session {sid}) — integration missed")),
            "{backend:?}: {queue}"
        );
        assert!(queue.contains(&format!("/patients/{pid}/therapy")));
        let chart = app.get(&format!("/patients/{pid}"), &tpage).await;
        assert!(
            chart
                .body
                .contains("1 dose without an integration session within the site&#x27;s window")
                || chart
                    .body
                    .contains("1 dose without an integration session within the site's window"),
            "{}",
            chart.body
        );
        // An integration session two days after the dose is within the window.
        encounter(&app, pid, &thea, &integration(sid, &day(3))).await;
        assert_eq!(state(&app, &thea, pid, sid).await, "held");
        // A later dose with nothing yet is due, not missed.
        dose(&app, pid, 0).await;
        let o = app
            .get(&format!("/api/v1/patients/{pid}/therapy"), &thea)
            .await
            .json();
        assert_eq!(o["missed"], 0, "{o}");
    }
}

#[tokio::test]
async fn monitoring_recorded_for_a_dosing_session_reaches_its_billing_facts_only() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, sid) = patient_with_dose(&app, 0).await;
        app.add_user("thea", Role::Therapist).await;
        app.add_user("sue", Role::Scheduler).await;
        let thea = app.bearer("thea").await;
        let monitoring = |minutes: i64, session: Option<i64>| {
            json!({"kind": "monitoring", "at": format!("{}T09:00", day(0)),
                   "duration_minutes": minutes, "modality": "individual", "session_id": session,
                   "themes": "", "intentions": "", "homework": "", "suicide_risk": "negative"})
        };
        // A monitoring encounter names the session it monitored.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/therapy/encounters"),
                &thea,
                &monitoring(90, None),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("session_id"), "{}", r.body);
        let store = app.store.as_ref();
        let billing = Actor::system(Role::Scheduler);
        let session = ketcare_core::SessionId::new(sid);
        assert_eq!(
            store
                .session_monitoring_minutes(&billing, session)
                .await
                .unwrap(),
            None,
            "nothing recorded yet"
        );
        // Two monitoring encounters (90 + 60 min), and an integration that is not
        // monitoring.
        encounter(&app, pid, &thea, &monitoring(90, Some(sid))).await;
        encounter(&app, pid, &thea, &monitoring(60, Some(sid))).await;
        encounter(&app, pid, &thea, &integration(sid, &day(0))).await;
        assert_eq!(
            store
                .session_monitoring_minutes(&billing, session)
                .await
                .unwrap(),
            Some(150)
        );
        // Read under the billing right (a scheduler bills), audited; a researcher may not.
        let refused = store
            .session_monitoring_minutes(&Actor::system(Role::Researcher), session)
            .await;
        assert!(refused.is_err());
        app.add_user("alex", Role::Administrator).await;
        let log = app
            .get(
                "/api/v1/audit?action=therapy_encounter.billing_read&limit=50",
                &app.bearer("alex").await,
            )
            .await
            .json();
        assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    }
}
