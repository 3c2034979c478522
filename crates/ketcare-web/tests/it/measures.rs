//! Measurement-based care through the web edge, on SQLite and PostgreSQL: a PHQ-9 + GAD-7 link
//! answered without sign-in, a positive item 9 raising an alert shown on the dashboard and the
//! patient page and closed only with a documented follow-up; links expired, reused or for
//! another patient refused; outcomes and MME; the API, the CLI's function and the page give the
//! same numbers.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{Auth, TestApp};
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use serde_json::json;

async fn new_patient(app: &TestApp, auth: &Auth, mrn: &str) -> i64 {
    let r = app
        .json(
            Method::POST,
            "/api/v1/patients",
            auth,
            &json!({"mrn": mrn, "given_name": "Sam", "family_name": "Lee", "date_of_birth": "1985-03-02", "sex": "female"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()["id"].as_i64().unwrap()
}

fn q_form(phq9: &[&str], gad7: &[&str]) -> Vec<(String, String)> {
    let mut f = vec![("instruments".to_string(), "phq9,gad7".to_string())];
    for (i, v) in phq9.iter().enumerate() {
        if !v.is_empty() {
            f.push((format!("phq9.{}", i + 1), v.to_string()));
        }
    }
    for (i, v) in gad7.iter().enumerate() {
        if !v.is_empty() {
            f.push((format!("gad7.{}", i + 1), v.to_string()));
        }
    }
    f
}

#[tokio::test]
async fn links_alerts_outcomes_and_mme_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("sam", Role::Scheduler).await;
        let nurse = app.bearer("nina").await;
        let sched = app.bearer("sam").await;
        let a = new_patient(&app, &nurse, "MB-1").await;
        let b = new_patient(&app, &nurse, "MB-2").await;
        let session = app.login("nina").await;

        // The clinician sends a PHQ-9 + GAD-7 link from the page: the URL is shown to copy.
        let page = app
            .post_form(
                &format!("/patients/{a}/measures/links"),
                &session,
                &[
                    ("instrument", "phq9"),
                    ("instrument", "gad7"),
                    ("expires_in_hours", "72"),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::CREATED,
            "{backend:?} {}",
            page.body
        );
        let start = page
            .body
            .find("value=\"/q/")
            .unwrap_or_else(|| panic!("{}", page.body))
            + "value=\"".len();
        let path = page.body[start..].split('"').next().unwrap().to_string();
        let links = app
            .get(&format!("/api/v1/patients/{a}/links"), &nurse)
            .await
            .json();
        assert_eq!(links[0]["status"], "sent");
        assert_eq!(links[0]["instruments"], json!(["phq9", "gad7"]));
        // Only a hash is stored.
        let token = path.trim_start_matches("/q/");

        // The patient opens it without signing in.
        let q = app.get(&path, &Auth::None).await;
        assert_eq!(q.status, StatusCode::OK, "{}", q.body);
        assert!(q.body.contains("PHQ-9") && q.body.contains("GAD-7"));
        assert!(
            q.body
                .contains("Thoughts that you would be better off dead")
        );
        assert_eq!(
            app.get(&format!("/api/v1/patients/{a}/links"), &nurse)
                .await
                .json()[0]["status"],
            "opened"
        );

        // An incomplete form with item 9 positive: refused naming the items, crisis resources shown.
        let partial = q_form(
            &["1", "1", "1", "1", "1", "1", "1", "1", "2"],
            &["1", "", "1", "1", "1", "1", "1"],
        );
        let r = app.post_public(&path, &partial).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            r.body.contains("items 2 of GAD-7 are not answered"),
            "{}",
            r.body
        );
        assert!(r.body.contains("id=\"crisis\""));
        // The team is alerted already, once, though nothing could be stored yet.
        assert_eq!(
            app.get("/api/v1/alerts", &nurse)
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let r = app.post_public(&path, &partial).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            app.get("/api/v1/alerts", &nurse)
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // Complete: stored once, crisis resources at once, the alert linked to the response.
        let full = q_form(
            &["1", "1", "1", "1", "1", "1", "1", "1", "2"],
            &["1", "2", "1", "1", "1", "1", "1"],
        );
        let r = app.post_public(&path, &full).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("id=\"crisis\""));
        let alerts = app.get("/api/v1/alerts", &nurse).await.json();
        assert_eq!(alerts.as_array().unwrap().len(), 1, "{backend:?}");
        assert_eq!(alerts[0]["patient_id"], a);
        assert_eq!(alerts[0]["item"], 9);
        assert!(alerts[0]["response_id"].is_i64(), "{alerts}");
        let alert_id = alerts[0]["id"].as_i64().unwrap();
        // A double submit or reload stores nothing new; the link is then used.
        let r = app.post_public(&path, &full).await;
        assert_eq!(r.status, StatusCode::OK);
        let resp = app
            .get(&format!("/api/v1/patients/{a}/responses"), &nurse)
            .await
            .json();
        assert_eq!(resp.as_array().unwrap().len(), 2);
        assert_eq!(
            resp[0]["total"].as_i64().unwrap() + resp[1]["total"].as_i64().unwrap(),
            10 + 8
        );
        // A used link opens the patient's own view instead of the form; new answers are refused.
        let reopened = app.get(&path, &Auth::None).await;
        assert_eq!(reopened.status, StatusCode::SEE_OTHER);
        assert_eq!(reopened.location(), format!("{path}/me"));
        let other = q_form(&["0"; 9], &["0"; 7]);
        assert_eq!(
            app.post_public(&path, &other).await.status,
            StatusCode::GONE
        );
        assert_eq!(
            app.get(&format!("/api/v1/patients/{a}/links"), &nurse)
                .await
                .json()[0]["status"],
            "completed"
        );
        // The answers belong to the link's patient only.
        assert!(
            app.get(&format!("/api/v1/patients/{b}/responses"), &nurse)
                .await
                .json()
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            app.get(&format!("/q/{}x", token), &Auth::None).await.status,
            StatusCode::NOT_FOUND
        );

        // The alert is on the dashboard, the alerts page and the patient pages.
        let home = app.get("/", &session).await;
        assert!(home.body.contains("id=\"home-alerts\""), "{}", home.body);
        assert!(
            app.get(&format!("/patients/{a}"), &session)
                .await
                .body
                .contains("Open safety alert")
        );
        assert!(
            app.get(&format!("/patients/{a}/measures"), &session)
                .await
                .body
                .contains("Open safety alert")
        );
        assert!(
            app.get("/alerts", &session)
                .await
                .body
                .contains(&format!("data-alert=\"{alert_id}\""))
        );
        // Closed only with a documented follow-up, by a role that may.
        let empty = app
            .json(
                Method::POST,
                &format!("/api/v1/alerts/{alert_id}/resolve"),
                &nurse,
                &json!({"follow_up": " "}),
            )
            .await;
        assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(empty.fields(), ["follow_up"]);
        let noted = app
            .json(
                Method::POST,
                &format!("/api/v1/alerts/{alert_id}/notes"),
                &nurse,
                &json!({"note": "Called, no answer; message left"}),
            )
            .await;
        assert_eq!(noted.status, StatusCode::CREATED, "{}", noted.body);
        // The alerts page names the patient with MRN and how to reach them, and lists what has
        // been done so far.
        let page = app.get("/alerts", &session).await;
        assert!(page.body.contains(">Lee, Sam</a>"), "{}", page.body);
        assert!(page.body.contains("No phone on record"), "{}", page.body);
        assert!(
            page.body.contains("Called, no answer; message left"),
            "{}",
            page.body
        );
        assert_eq!(
            app.get("/api/v1/alerts", &nurse)
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let r = app
            .post_form(
                &format!("/alerts/{alert_id}/resolve"),
                &session,
                &[("follow_up", "")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let denied = app
            .json(
                Method::POST,
                &format!("/api/v1/alerts/{alert_id}/resolve"),
                &sched,
                &json!({"follow_up": "x"}),
            )
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(
            app.get("/api/v1/alerts", &nurse)
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let r = app
            .post_form(
                &format!("/alerts/{alert_id}/resolve"),
                &session,
                &[(
                    "follow_up",
                    "Phoned the patient; safety plan reviewed; seen today",
                )],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert!(
            app.get("/api/v1/alerts", &nurse)
                .await
                .json()
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(
            !app.get("/", &session)
                .await
                .body
                .contains("id=\"home-alerts\"")
        );

        // An expired link is refused.
        let made = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{b}/links"),
                &nurse,
                &json!({"instruments": ["phq9"], "expires_in_hours": 1}),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        let p2 = made.json()["path"].as_str().unwrap().to_string();
        app.advance(3601);
        assert_eq!(app.get(&p2, &Auth::None).await.status, StatusCode::GONE);
        // A clinician-rated instrument cannot be sent.
        let bad = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{b}/links"),
                &nurse,
                &json!({"instruments": ["madrs"]}),
            )
            .await;
        assert_eq!(bad.fields(), ["instruments"]);

        // API = CLI function = page: the same total and band.
        let answers = [3, 3, 2, 2, 2, 2, 1, 0, 0];
        let api = app
            .json(
                Method::POST,
                "/api/v1/score",
                &nurse,
                &json!({"instrument": "phq9", "answers": answers}),
            )
            .await
            .json();
        let cli =
            ketcare_web::measures::score_text("phq9", "3,3,2,2,2,2,1,0,0", &Default::default())
                .unwrap();
        assert_eq!(api["total"], json!(cli.total));
        assert_eq!(
            api["band"]["label"],
            json!(cli.band.as_ref().unwrap().label)
        );
        assert_eq!(cli.total, Some(15));
        let missing = app
            .json(
                Method::POST,
                "/api/v1/score",
                &nurse,
                &json!({"instrument": "phq9", "answers": [1, null, 1]}),
            )
            .await;
        assert_eq!(missing.fields(), ["answers"]);
        assert!(
            missing.body.contains("items 2, 4, 5, 6, 7, 8, 9"),
            "{}",
            missing.body
        );

        // A course with a trajectory: baseline 20, response (10), remission (4).
        let course = app.json(Method::POST, &format!("/api/v1/patients/{b}/courses"), &nurse, &json!({"label": "Induction", "instrument": "phq9", "started_on": "2026-10-01", "booster_score_at_least": 10})).await;
        assert_eq!(course.status, StatusCode::CREATED, "{}", course.body);
        for (day, a9) in [
            ("2026-10-01", [3, 3, 3, 3, 2, 2, 2, 2, 0]),
            ("2026-10-08", [2, 2, 2, 1, 1, 1, 1, 0, 0]),
            ("2026-10-15", [1, 1, 1, 1, 0, 0, 0, 0, 0]),
        ] {
            let r = app.json(Method::POST, &format!("/api/v1/patients/{b}/responses"), &nurse, &json!({"instrument": "phq9", "answers": a9, "taken_on": day, "submission_key": format!("k-{day}")})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let again = app.json(Method::POST, &format!("/api/v1/patients/{b}/responses"), &nurse, &json!({"instrument": "phq9", "answers": [0,0,0,0,0,0,0,0,0], "taken_on": "2026-10-15", "submission_key": "k-2026-10-15"})).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json()["created"], false);
        // The same key for another patient is refused.
        let clash = app.json(Method::POST, &format!("/api/v1/patients/{a}/responses"), &nurse, &json!({"instrument": "phq9", "answers": [0,0,0,0,0,0,0,0,0], "submission_key": "k-2026-10-15"})).await;
        assert_eq!(clash.status, StatusCode::CONFLICT);
        let out = app
            .get(&format!("/api/v1/patients/{b}/outcomes"), &nurse)
            .await
            .json();
        assert_eq!(out[0]["outcome"]["baseline"]["score"], 20);
        assert_eq!(out[0]["outcome"]["first_response"], "2026-10-08");
        assert_eq!(out[0]["outcome"]["first_remission"], "2026-10-15");
        assert_eq!(out[0]["booster"]["due"], false);
        assert!(out[0]["assessment"].is_null(), "no schedule set");
        // With the site's schedule, the next set is due 7 days after the last score.
        app.store
            .save_site_settings(
                &ketcare_core::Actor::system(Role::Administrator),
                r#"{"values": {"measures.assessment_every_days": 7}}"#,
                "test schedule",
            )
            .await
            .unwrap();
        let out = app
            .get(&format!("/api/v1/patients/{b}/outcomes"), &nurse)
            .await
            .json();
        assert_eq!(out[0]["assessment"]["due"], true);
        assert_eq!(out[0]["assessment"]["from"], "2026-10-22");

        // Opioids: MME per day with the CDC 2022 factors.
        let ox = app.json(Method::POST, &format!("/api/v1/patients/{b}/opioids"), &nurse, &json!({"drug": "oxycodone", "dose": 10, "unit": "mg", "per_day": 2, "started_on": "2026-09-01"})).await;
        assert_eq!(ox.status, StatusCode::CREATED, "{}", ox.body);
        assert_eq!(ox.json()["mme"]["mme_per_day"], 30.0);
        let patch = app.json(Method::POST, &format!("/api/v1/patients/{b}/opioids"), &nurse, &json!({"drug": "fentanyl_transdermal", "dose": 25, "unit": "mcg/h", "started_on": "2026-10-01"})).await;
        assert_eq!(patch.json()["mme"]["mme_per_day"], 60.0);
        let bad = app.json(Method::POST, &format!("/api/v1/patients/{b}/opioids"), &nurse, &json!({"drug": "heroin", "dose": 10, "unit": "mg", "per_day": 1, "started_on": "2026-10-01"})).await;
        assert_eq!(bad.fields(), ["drug"]);
        let ops = app
            .get(&format!("/api/v1/patients/{b}/opioids"), &nurse)
            .await
            .json();
        assert_eq!(ops["mme_total_now"], 90.0);
        assert_eq!(ops["mme_timeline"].as_array().unwrap().len(), 2);
        assert_eq!(ops["mme_change"], 60.0);
        let mme = app
            .json(
                Method::POST,
                "/api/v1/mme",
                &nurse,
                &json!({"drug": "methadone", "dose": 10, "unit": "mg", "per_day": 2}),
            )
            .await
            .json();
        assert_eq!(mme["mme_per_day"], 94.0);

        // The page shows the same numbers, the chart and the response/remission marks.
        let page = app.get(&format!("/patients/{b}/measures"), &session).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("id=\"mme-total\">90<"), "{}", page.body);
        assert!(page.body.contains("response on 2026-10-08"));
        assert!(page.body.contains("remission on 2026-10-15"));
        assert!(page.body.contains("<svg"));
        assert!(
            page.body.contains(">20<") && page.body.contains(">10<") && page.body.contains(">4<")
        );
        let svg = app
            .get(&format!("/patients/{b}/measures/chart.svg"), &session)
            .await;
        assert!(svg.body.contains("remission"));

        // Staff enter a questionnaire on the page; a reload of the same form stores nothing new.
        let form = app
            .get(
                &format!("/patients/{a}/measures/enter?instrument=gad7"),
                &session,
            )
            .await;
        let marker = "name=\"submission_key\" value=\"";
        let key_at = form.body.find(marker).unwrap() + marker.len();
        let key = form.body[key_at..].split('"').next().unwrap().to_string();
        let mut fields: Vec<(&str, &str)> = vec![
            ("instrument", "gad7"),
            ("submission_key", &key),
            ("taken_on", "2026-11-20"),
        ];
        let names: Vec<String> = (1..=7).map(|n| format!("gad7.{n}")).collect();
        for n in &names {
            fields.push((n.as_str(), "3"));
        }
        for _ in 0..2 {
            let r = app
                .post_form(
                    &format!("/patients/{a}/measures/responses"),
                    &session,
                    &fields,
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        }
        let resp = app
            .get(&format!("/api/v1/patients/{a}/responses"), &nurse)
            .await
            .json();
        assert_eq!(resp.as_array().unwrap().len(), 3);
        let gad = resp
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["taken_on"] == "2026-11-20")
            .unwrap();
        assert_eq!(gad["total"], 21);
        assert_eq!(gad["band"], "severe");
        // The scheduler may not record or read measures.
        let r = app.json(Method::POST, &format!("/api/v1/patients/{a}/responses"), &sched, &json!({"instrument": "phq9", "answers": [0,0,0,0,0,0,0,0,0], "submission_key": "s"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
}

/// The clinic's licensed wording: uploaded by an administrator (validated line by line,
/// versioned, audited), then shown on the staff form and the patient page as the clinic's; a
/// link names its recipient (the patient or a guardian of record).
#[tokio::test]
async fn clinic_wording_and_link_recipient_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("alex", Role::Administrator).await;
        let nurse = app.bearer("nina").await;
        let admin = app.bearer("alex").await;
        let a = new_patient(&app, &nurse, "CW-1").await;
        let b = new_patient(&app, &nurse, "CW-2").await;

        // Before: labels only.
        let session = app.login("nina").await;
        let form = app
            .get(
                &format!("/patients/{a}/measures/enter?instrument=asq"),
                &session,
            )
            .await;
        assert!(form.body.contains("Screening question 1"), "{}", form.body);
        assert!(
            !form
                .body
                .contains("licensed wording supplied by the clinic")
        );

        // A wrong line is refused with its line and field, and nothing is stored.
        let bad = app
            .json(
                Method::POST,
                "/api/v1/measures/texts",
                &admin,
                &json!({"file": "instrument,item,text\nasq,1,Licensed ASQ one\nasq,9,No such item"}),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
        assert!(
            bad.body.contains("\"item\"") && bad.body.contains("line 3"),
            "{}",
            bad.body
        );
        let free = app
            .json(
                Method::POST,
                "/api/v1/measures/texts",
                &admin,
                &json!({"file": "phq9,1,Not needed"}),
            )
            .await;
        assert_eq!(free.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(free.body.contains("\"instrument\""), "{}", free.body);
        // Only administrators upload.
        let denied = app
            .json(
                Method::POST,
                "/api/v1/measures/texts",
                &nurse,
                &json!({"file": "asq,1,x"}),
            )
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(
            app.get("/api/v1/measures/texts", &nurse).await.json(),
            json!([])
        );

        let ok = app
            .json(
                Method::POST,
                "/api/v1/measures/texts",
                &admin,
                &json!({"file": "asq,1,Licensed ASQ one\nqids_sr16,1,\"Licensed QIDS one, as supplied\""}),
            )
            .await;
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
        assert_eq!(ok.json().as_array().unwrap().len(), 2);
        let again = app
            .json(
                Method::POST,
                "/api/v1/measures/texts",
                &admin,
                &json!({"file": "asq,1,Licensed ASQ one (revised)"}),
            )
            .await;
        assert_eq!(again.json()[0]["version"], 2);
        let current = app.get("/api/v1/measures/texts", &nurse).await.json();
        let asq = current
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["instrument"] == "asq")
            .unwrap()
            .clone();
        assert_eq!(asq["version"], 2);
        assert_eq!(asq["items"][0]["text"], "Licensed ASQ one (revised)");

        // The staff form shows the clinic's text, marked as the clinic's; other items keep labels.
        let form = app
            .get(
                &format!("/patients/{a}/measures/enter?instrument=asq"),
                &session,
            )
            .await;
        assert!(
            form.body.contains("Licensed ASQ one (revised)"),
            "{}",
            form.body
        );
        assert!(
            form.body
                .contains("licensed wording supplied by the clinic")
        );
        assert!(
            form.body
                .contains("supplied by the clinic under its licence (version 2)")
        );
        assert!(form.body.contains("Screening question 2"));

        // The administrator's page lists every version, the newest marked as shown.
        let admin_session = app.login("alex").await;
        let page = app.get("/measures/texts", &admin_session).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("data-version=\"2\"") && page.body.contains("(shown)"));
        let refused = app
            .post_form(
                "/measures/texts",
                &admin_session,
                &[("file", "qids_sr16,x,y")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused.body.contains("item: line 1"), "{}", refused.body);
        assert_eq!(
            app.get("/measures/texts", &session).await.status,
            StatusCode::FORBIDDEN
        );

        // A link to a guardian of record: the patient page and the API name the recipient.
        let g = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{a}/guardians"),
                &nurse,
                &json!({"name": "Dana Quill", "relationship": "mother", "phone": "555-0101"}),
            )
            .await;
        assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
        let gid = g.json()["id"].as_i64().unwrap();
        let gid_s = gid.to_string();
        let page = app
            .post_form(
                &format!("/patients/{a}/measures/links"),
                &session,
                &[
                    ("instrument", "qids_sr16"),
                    ("expires_in_hours", "72"),
                    ("guardian_id", &gid_s),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
        assert!(
            page.body.contains("guardian: Dana Quill (mother)"),
            "{}",
            page.body
        );
        let start = page.body.find("value=\"/q/").unwrap() + "value=\"".len();
        let path = page.body[start..].split('"').next().unwrap().to_string();
        let links = app
            .get(&format!("/api/v1/patients/{a}/links"), &nurse)
            .await
            .json();
        assert_eq!(links[0]["guardian_id"], gid);
        assert_eq!(links[0]["sent_to"], "Dana Quill (mother)");
        // The patient-facing page shows the clinic's text too.
        let q = app.get(&path, &Auth::None).await;
        assert!(
            q.body.contains("Licensed QIDS one, as supplied"),
            "{}",
            q.body
        );
        assert!(q.body.contains("licensed wording supplied by the clinic"));
        // To the patient by default; another patient's guardian is refused.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{a}/links"),
                &nurse,
                &json!({"instruments": ["phq9"]}),
            )
            .await;
        assert_eq!(r.json()["link"]["sent_to"], "patient");
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{b}/links"),
                &nurse,
                &json!({"instruments": ["phq9"], "guardian_id": gid}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("guardian_id"));
    }
}

/// The state pages poll for live alerts: it changes when an alert is raised and when it is
/// closed, and reading it is not a patient-data read (no audit entry, no patient ids).
#[tokio::test]
async fn alert_state_changes_when_raised_and_closed_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("pat", Role::Prescriber).await;
        let nurse = app.bearer("nina").await;
        let a = new_patient(&app, &nurse, "LS-1").await;
        let before = app.get("/api/v1/alerts/state", &nurse).await.json();
        assert_eq!(before, json!({"open": 0, "latest": 0, "stamp": "0:0"}));
        assert_eq!(
            app.get("/api/v1/alerts/state", &Auth::None).await.status,
            StatusCode::UNAUTHORIZED
        );
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{a}/responses"),
                &nurse,
                &json!({"instrument": "phq9", "answers": [0,0,0,0,0,0,0,0,2], "taken_on": "2026-06-01", "submission_key": "ls-1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let raised = app.get("/api/v1/alerts/state", &nurse).await.json();
        assert_eq!(raised["open"], 1);
        assert_ne!(raised["stamp"], before["stamp"]);
        let id = raised["latest"].as_i64().unwrap();
        let closed = app
            .json(
                Method::POST,
                &format!("/api/v1/alerts/{id}/resolve"),
                &app.bearer("pat").await,
                &json!({"follow_up": "Called the patient; safety plan reviewed."}),
            )
            .await;
        assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
        let after = app.get("/api/v1/alerts/state", &nurse).await.json();
        assert_eq!(after["open"], 0);
        assert_ne!(after["stamp"], raised["stamp"]);
        // The pages carry the region the script refreshes, and the script is served.
        let session = app.login("nina").await;
        let page = app.get("/alerts", &session).await;
        assert!(
            page.body.contains(&format!("data-stamp=\"0:{id}\"")),
            "{}",
            page.body
        );
        assert!(page.body.contains("src=\"/static/alerts-live.js\""));
        let js = app.get("/static/alerts-live.js", &Auth::None).await;
        assert_eq!(js.status, StatusCode::OK);
        assert!(js.body.contains("/api/v1/alerts/state"));
    }
}

/// MME over a chosen course: the opioid chart and change limited to the course's dates, the
/// same numbers through the API and the page.
#[tokio::test]
async fn mme_over_a_course_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        let nurse = app.bearer("nina").await;
        let a = new_patient(&app, &nurse, "MC-1").await;
        let post = |path: String, body: serde_json::Value| {
            let (app, nurse) = (&app, &nurse);
            async move { app.json(Method::POST, &path, nurse, &body).await }
        };
        let ox = post(format!("/api/v1/patients/{a}/opioids"), json!({"drug": "oxycodone", "dose": 10, "unit": "mg", "per_day": 2, "started_on": "2026-09-01"})).await;
        assert_eq!(ox.status, StatusCode::CREATED, "{}", ox.body);
        post(format!("/api/v1/patients/{a}/opioids"), json!({"drug": "fentanyl_transdermal", "dose": 25, "unit": "mcg/h", "started_on": "2026-10-15"})).await;
        let c = post(format!("/api/v1/patients/{a}/courses"), json!({"label": "Induction", "instrument": "phq9", "started_on": "2026-10-01", "ended_on": "2026-11-30"})).await;
        assert_eq!(c.status, StatusCode::CREATED, "{}", c.body);
        let cid = c.json()["id"].as_i64().unwrap();
        let early = post(format!("/api/v1/patients/{a}/courses"), json!({"label": "Early", "instrument": "phq9", "started_on": "2026-09-05", "ended_on": "2026-09-20"})).await;
        let eid = early.json()["id"].as_i64().unwrap();

        let ops = app
            .get(
                &format!("/api/v1/patients/{a}/opioids?course={cid}"),
                &nurse,
            )
            .await
            .json();
        assert_eq!(ops["course"]["from"], "2026-10-01");
        assert_eq!(ops["course"]["to"], "2026-11-30");
        assert_eq!(
            ops["course"]["timeline"],
            json!([
                ["2026-10-01", 30.0],
                ["2026-10-15", 90.0],
                ["2026-11-30", 90.0]
            ])
        );
        assert_eq!(ops["course"]["change"], 60.0);
        // Without a course the whole history stays as before.
        let all = app
            .get(&format!("/api/v1/patients/{a}/opioids"), &nurse)
            .await
            .json();
        assert_eq!(all["course"], serde_json::Value::Null);
        let e = app
            .get(
                &format!("/api/v1/patients/{a}/opioids?course={eid}"),
                &nurse,
            )
            .await
            .json();
        assert_eq!(e["course"]["change"], 0.0);
        let bad = app
            .get(
                &format!("/api/v1/patients/{a}/opioids?course=999999"),
                &nurse,
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.fields(), ["course"]);

        let session = app.login("nina").await;
        let page = app
            .get(&format!("/patients/{a}/measures?course={cid}"), &session)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains("id=\"mme-course-change\">+60<"),
            "{}",
            page.body
        );
        assert!(page.body.contains("2026-10-01 – 2026-11-30"));
        let svg = app
            .get(
                &format!("/patients/{a}/measures/mme.svg?course={cid}"),
                &session,
            )
            .await;
        assert_eq!(svg.status, StatusCode::OK);
        assert!(svg.body.contains("<svg"));
    }
}

#[tokio::test]
async fn incomplete_staff_forms_alert_and_links_answer_only_their_own_questionnaires() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        let nurse = app.bearer("nina").await;
        let page = app.login("nina").await;
        let a = new_patient(&app, &nurse, "I-1").await;
        let b = new_patient(&app, &nurse, "I-2").await;
        let open_for = |v: &serde_json::Value, p: i64| {
            v.as_array()
                .map(|x| x.iter().filter(|al| al["patient_id"] == p).count())
                .unwrap_or(0)
        };
        // API: item 9 answered 2, the other items blank: refused (nothing stored as a score),
        // and the urgent alert is raised.
        let mut answers = vec![serde_json::Value::Null; 8];
        answers.push(json!(2));
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{a}/responses"),
                &nurse,
                &json!({"instrument": "phq9", "answers": answers, "submission_key": "inc-1"}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}: {}",
            r.body
        );
        assert!(r.body.contains("urgent safety alert"), "{}", r.body);
        let alerts = app.get("/api/v1/alerts", &nurse).await.json();
        assert_eq!(open_for(&alerts, a), 1, "{backend:?}: {alerts}");
        let rows = app
            .get(&format!("/api/v1/patients/{a}/responses"), &nurse)
            .await
            .json();
        assert_eq!(rows.as_array().map(Vec::len), Some(0), "{rows}");
        // The same form again does not raise a second alert.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{a}/responses"),
                &nurse,
                &json!({"instrument": "phq9", "answers": answers, "submission_key": "inc-2"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            open_for(&app.get("/api/v1/alerts", &nurse).await.json(), a),
            1
        );
        // The page: the same.
        let r = app
            .post_form(
                &format!("/patients/{b}/measures/responses"),
                &page,
                &[
                    ("instrument", "phq9"),
                    ("phq9.9", "3"),
                    ("taken_on", "2026-12-01"),
                    ("submission_key", "inc-page"),
                ],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}: {}",
            r.body
        );
        assert!(r.body.contains("urgent safety alert"), "{}", r.body);
        assert_eq!(
            open_for(&app.get("/api/v1/alerts", &nurse).await.json(), b),
            1
        );

        // A GAD-7 link: the form may not add PHQ-9 (its item 9 would raise an alert).
        let made = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{b}/links"),
                &nurse,
                &json!({"instruments": ["gad7"]}),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        let path = made.json()["path"].as_str().unwrap().to_string();
        let mut form = q_form(&["", "", "", "", "", "", "", "", "3"], &["1"]);
        let r = app.post_public(&path, &form).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}: {}",
            r.body
        );
        assert!(r.body.contains("instruments"), "{}", r.body);
        assert_eq!(
            open_for(&app.get("/api/v1/alerts", &nurse).await.json(), b),
            1,
            "no alert from a questionnaire outside the link"
        );
        // Without the field, the stored set is answered: GAD-7 incomplete, re-shown; PHQ-9
        // answers are not read.
        form.retain(|(k, _)| k != "instruments");
        let r = app.post_public(&path, &form).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            open_for(&app.get("/api/v1/alerts", &nurse).await.json(), b),
            1
        );
    }
}
