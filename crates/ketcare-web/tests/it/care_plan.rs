//! The care plan and the patient's own view through the real router on both backends: goals
//! checked against the instrument, progress by staff and through the link, a symptom target
//! read from the stored scores, the guardian's view narrowed until the patient agrees, another
//! patient's plan item refused, an expired link refused, and the roles that may not read it.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{Auth, TestApp, adult_form};
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use serde_json::json;

async fn intake(app: &TestApp, page: &Auth, mrn: &str) -> i64 {
    let form: Vec<(&str, &str)> = adult_form()
        .into_iter()
        .map(|(k, v)| (k, if k == "mrn" { mrn } else { v }))
        .collect();
    let created = app.post_form("/patients", page, &form).await;
    created
        .location()
        .trim_start_matches("/patients/")
        .parse()
        .unwrap()
}

async fn link(app: &TestApp, pid: i64, auth: &Auth, guardian: Option<i64>) -> String {
    let mut body = json!({"instruments": ["phq9"]});
    if let Some(g) = guardian {
        body["guardian_id"] = json!(g);
    }
    let r = app
        .json(
            Method::POST,
            &format!("/api/v1/patients/{pid}/links"),
            auth,
            &body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()["path"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_care_plan_and_the_patients_own_view_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let nina = app.add_user("nina", Role::Nurse).await;
        app.add_user("sam", Role::Scheduler).await;
        app.add_user("rae", Role::Researcher).await;
        app.add_user("thea", Role::Therapist).await;
        let page = app.login("nina").await;
        let nurse = app.bearer("nina").await;
        let pid = intake(&app, &page, "CP-1").await;
        let other = intake(&app, &page, "CP-2").await;
        let sam = (app.login("sam").await, app.bearer("sam").await);
        app.set_test_site_settings_with(&[("schedule.ketamine_prescriber_on_site", 2.0)])
            .await;
        app.book_course_tomorrow((&sam.0, &sam.1), pid, nina.id.get(), "Chair A")
            .await;

        // Goals and adjuncts: every bad field named at once; a target outside PHQ-9's 0–27.
        let items = format!("/api/v1/patients/{pid}/care-plan/items");
        let r = app
            .json(
                Method::POST,
                &items,
                &nurse,
                &json!({"item": "goal", "category": "symptom", "description": "",
                        "instrument": "phq9", "target_at_most": 28, "owner": "the patient"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), ["description", "target_at_most"], "{}", r.body);
        let r = app
            .json(
                Method::POST,
                &items,
                &nurse,
                &json!({"item": "goal", "category": "symptom", "description": "x",
                        "owner": "y", "extra": 1}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        let r = app
            .json(
                Method::POST,
                &items,
                &nurse,
                &json!({"item": "goal", "category": "symptom",
                        "description": "Mood back in the mild range", "instrument": "phq9",
                        "target_at_most": 4, "owner": "the patient and Dr Adams",
                        "review_on": "2030-01-01"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
        let goal = r.json()["id"].as_i64().unwrap();
        assert_eq!(r.json()["status"], "active");
        assert!(
            r.json()["course_id"].as_i64().is_some(),
            "in the patient's newest course: {}",
            r.body
        );
        let r = app
            .json(
                Method::POST,
                &items,
                &app.bearer("thea").await,
                &json!({"item": "adjunct", "category": "lifestyle",
                        "description": "A 20-minute walk on most days", "owner": "the patient"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        // A course of another patient is refused.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{other}/care-plan/items"),
                &nurse,
                &json!({"item": "goal", "category": "sleep", "description": "Sleep",
                        "owner": "p", "course_id": 1}),
            )
            .await;
        assert_eq!(r.fields(), ["course_id"], "{}", r.body);
        let other_item = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{other}/care-plan/items"),
                &nurse,
                &json!({"item": "goal", "category": "sleep", "description": "Sleep",
                        "owner": "p"}),
            )
            .await
            .json()["id"]
            .as_i64()
            .unwrap();

        // The patient answers their link (PHQ-9 total 8), then sees their own page.
        let path = link(&app, pid, &nurse, None).await;
        let answers: Vec<(String, String)> = (1..=9)
            .map(|i| {
                (
                    format!("phq9.{i}"),
                    if i == 9 { "0" } else { "1" }.to_string(),
                )
            })
            .chain([("instruments".to_string(), "phq9".to_string())])
            .collect();
        let fields: Vec<(&str, &str)> = answers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let r = app.post_public(&path, &fields).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let me = format!("{path}/me");
        assert!(r.body.contains(&format!("href=\"{me}\"")), "{}", r.body);
        let r = app.get(&path, &Auth::None).await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "a used link opens the view"
        );
        assert_eq!(r.location(), me);
        let v = app.get(&me, &Auth::None).await;
        assert_eq!(v.status, StatusCode::OK, "{backend:?}: {}", v.body);
        for shown in [
            "Hello, ",
            "Mood back in the mild range",
            "target PHQ-9 4 or less: not yet (8 on",
            "A 20-minute walk on most days",
            "class=\"appointment\"",
            "10:00",
            "If you need help now",
            "Nothing to answer now.",
        ] {
            assert!(v.body.contains(shown), "{backend:?} {shown:?}: {}", v.body);
        }
        for hidden in ["MRN", "Sleep", "nina"] {
            assert!(!v.body.contains(hidden), "{hidden:?} shown: {}", v.body);
        }
        let chart = app.get(&format!("{me}/chart.svg"), &Auth::None).await;
        assert_eq!(chart.status, StatusCode::OK);
        assert!(chart.body.contains("<svg"));

        // Progress through the link: a note and an effort; nothing said is refused; another
        // patient's item is not found; status is the team's.
        let r = app
            .post_public(
                &format!("{me}/items/{goal}"),
                &[("effort", "partly"), ("note", "walked twice this week")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let v = app.get(&me, &Auth::None).await;
        assert!(v.body.contains("walked twice this week"), "{}", v.body);
        let r = app
            .post_public(&format!("{me}/items/{goal}"), &[("note", " ")])
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("say how it is going"), "{}", r.body);
        let r = app
            .post_public(&format!("{me}/items/{other_item}"), &[("note", "not mine")])
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);

        // Staff see the patient's entry, the target's state from the stored score, and change
        // the status (appended).
        let plan = app
            .get(&format!("/api/v1/patients/{pid}/care-plan"), &nurse)
            .await;
        assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
        let plan = plan.json();
        let g = &plan["items"][0];
        assert_eq!(g["target"]["state"], "not_yet", "{plan}");
        assert_eq!(g["target"]["score"], 8);
        assert_eq!(g["progress"][0]["by_patient"], true);
        assert_eq!(g["progress"][0]["effort"], "partly");
        let r = app
            .json(
                Method::POST,
                &format!("{items}/{goal}/progress"),
                &nurse,
                &json!({"status": "stopped", "note": "replaced by a sleep goal"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.json()["status"], "stopped");
        let r = app
            .json(
                Method::POST,
                &format!("{items}/{goal}/progress"),
                &nurse,
                &json!({"status": "finished"}),
            )
            .await;
        assert_eq!(r.fields(), ["status"]);
        let page_html = app.get(&format!("/patients/{pid}/care-plan"), &page).await;
        assert_eq!(page_html.status, StatusCode::OK);
        assert!(
            page_html.body.contains("through the patient&#39;s link")
                || page_html.body.contains("through the patient's link"),
            "{}",
            page_html.body
        );
        let chart_page = app.get(&format!("/patients/{pid}"), &page).await;
        assert!(chart_page.body.contains("id=\"chart-care-plan\""));

        // Roles that do not treat the patient read nothing of the plan.
        for who in ["sam", "rae"] {
            let auth = app.bearer(who).await;
            let r = app
                .get(&format!("/api/v1/patients/{pid}/care-plan"), &auth)
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}");
        }

        // A guardian's link: the plan and appointments, not the patient's answers, until the
        // patient agrees.
        let g = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/guardians"),
                &nurse,
                &json!({"name": "Dana Quill", "relationship": "mother", "phone": "555-0101"}),
            )
            .await;
        assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
        let gpath = link(&app, pid, &nurse, g.json()["id"].as_i64()).await;
        let gme = format!("{gpath}/me");
        let v = app.get(&gme, &Auth::None).await;
        assert_eq!(v.status, StatusCode::OK, "{}", v.body);
        assert!(v.body.contains("id=\"not-shared\""), "{}", v.body);
        assert!(!v.body.contains("walked twice this week"));
        assert!(!v.body.contains("not yet (8"));
        assert!(v.body.contains("A 20-minute walk on most days"));
        assert!(v.body.contains("Answer now"));
        let r = app
            .json(
                Method::PUT,
                &format!("/api/v1/patients/{pid}/care-plan/sharing"),
                &nurse,
                &json!({"shares_scores_with_guardians": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = app.get(&gme, &Auth::None).await;
        assert!(!v.body.contains("id=\"not-shared\""), "{}", v.body);
        assert!(v.body.contains("walked twice this week"));

        // Every view is audited under the link's actor.
        app.add_user("alex", Role::Administrator).await;
        let audit = app.get("/api/v1/audit", &app.bearer("alex").await).await;
        assert!(audit.body.contains("patient_view.read"), "{}", audit.body);

        // Once the link has expired, the view is refused.
        app.advance(8 * 24 * 3600);
        let v = app.get(&me, &Auth::None).await;
        assert_eq!(v.status, StatusCode::GONE, "{}", v.body);
    }
}
