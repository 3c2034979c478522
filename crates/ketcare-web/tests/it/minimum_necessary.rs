//! Minimum necessary: a scheduler reads and edits a patient's demographics and nothing of the
//! clinical record, on every edge, on both backends; clinicians see the whole record.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{TestApp, adult_form};
use ketcare_core::Role;
use ketcare_store::AuditFilter;
use ketcare_store::testing::BACKENDS;
use serde_json::json;

#[tokio::test]
async fn a_scheduler_sees_demographics_only() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("sam", Role::Scheduler).await;
        let nurse = app.login("nina").await;
        let sam_page = app.login("sam").await;
        let sam = app.bearer("sam").await;
        let mut form = adult_form();
        form.retain(|(k, _)| *k != "allergies");
        form.push(("allergies", "Penicillin"));
        let created = app.post_form("/patients", &nurse, &form).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
        let pid = created
            .location()
            .trim_start_matches("/patients/")
            .to_owned();

        // The API answers with the demographics, saying so; nothing clinical is in the body.
        let r = app.get(&format!("/api/v1/patients/{pid}"), &sam).await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
        let v = r.json();
        assert_eq!(v["view"], "demographics", "{v}");
        assert_eq!(v["mrn"], "T-200");
        assert!(v["day_of_care"]["age"].is_object(), "{v}");
        for clinical in [
            "allergies",
            "medications",
            "psychiatric_history",
            "substance_use_history",
            "indications",
            "weight",
            "height",
        ] {
            assert!(v.get(clinical).is_none(), "{backend:?}: {clinical} in {v}");
        }
        for text in ["Penicillin", "Fluoxetine", "SSRI", "depression"] {
            assert!(!r.body.contains(text), "{backend:?}: {text} in {}", r.body);
        }
        // A clinician gets the whole record.
        let full = app
            .get(&format!("/api/v1/patients/{pid}"), &nurse)
            .await
            .json();
        assert_eq!(full["view"], "full", "{full}");
        assert_eq!(full["allergies"][0], "Penicillin");

        // The page: identity, contact and guardians, and a word on why there is no more.
        let page = app.get(&format!("/patients/{pid}"), &sam_page).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains("id=\"minimum-necessary\""),
            "{}",
            page.body
        );
        assert!(page.body.contains("T-200"));
        for text in [
            "Penicillin",
            "Fluoxetine",
            "SSRI",
            "depression",
            "Safety alerts",
        ] {
            assert!(!page.body.contains(text), "{backend:?}: {text} on the page");
        }

        // Every clinical read is refused.
        for path in [
            format!("/api/v1/patients/{pid}/responses"),
            format!("/api/v1/patients/{pid}/opioids"),
            format!("/api/v1/patients/{pid}/outcomes"),
            format!("/api/v1/patients/{pid}/consent-status?protocol=trd-adult-iv-ketamine"),
            "/api/v1/alerts".to_owned(),
            "/api/v1/sessions".to_owned(),
        ] {
            let r = app.get(&path, &sam).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{backend:?} {path}: {}",
                r.body
            );
        }
        for path in [
            format!("/patients/{pid}/measures"),
            format!("/patients/{pid}/consent"),
            "/alerts".to_owned(),
            "/suite".to_owned(),
        ] {
            let r = app.get(&path, &sam_page).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{backend:?} {path}");
        }

        // A search by indication finds nobody for the scheduler (it would tell who has which
        // indication); by name it finds the patient, as it does by indication for the nurse.
        let by_indication = app.get("/api/v1/patients?q=depression", &sam).await.json();
        assert_eq!(
            by_indication.as_array().map(Vec::len),
            Some(0),
            "{by_indication}"
        );
        let by_name = app.get("/api/v1/patients?q=sam", &sam).await.json();
        assert_eq!(by_name.as_array().map(Vec::len), Some(1), "{by_name}");
        let nurse_api = app.bearer("nina").await;
        let clinical = app
            .get("/api/v1/patients?q=depression", &nurse_api)
            .await
            .json();
        assert_eq!(clinical.as_array().map(Vec::len), Some(1), "{clinical}");

        // The scheduler's edit form has no clinical field; an edit changes the demographics and
        // keeps the clinical part as stored, whatever the request says about it.
        let edit = app.get(&format!("/patients/{pid}/edit"), &sam_page).await;
        assert_eq!(edit.status, StatusCode::OK, "{}", edit.body);
        assert!(edit.body.contains("id=\"clinical-kept\""));
        assert!(!edit.body.contains("name=\"allergies\""));
        let put = |body: serde_json::Value| {
            let (app, sam, pid) = (&app, &sam, &pid);
            async move {
                app.json(Method::PUT, &format!("/api/v1/patients/{pid}"), sam, &body)
                    .await
            }
        };
        let demographics = json!({"mrn": "T-200", "given_name": "Samuel", "family_name": "Quill",
                                  "date_of_birth": "1986-05-01", "sex": "female",
                                  "phone": "555-0100", "allergies": [], "medications": []});
        let mut with_clinical = demographics.clone();
        with_clinical["medications"] = json!(["Sertraline 50 mg"]);
        let r = put(with_clinical).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}: {}",
            r.body
        );
        assert_eq!(r.json()["fields"][0]["field"], "medications", "{}", r.body);
        let r = put(demographics).await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
        assert_eq!(r.json()["view"], "demographics");
        let full = app
            .get(&format!("/api/v1/patients/{pid}"), &nurse)
            .await
            .json();
        assert_eq!(full["given_name"], "Samuel");
        assert_eq!(full["phone"], "555-0100");
        assert_eq!(full["allergies"][0], "Penicillin", "{full}");
        assert_eq!(full["medications"][0], "Fluoxetine 20 mg daily", "{full}");
        assert_eq!(full["weight"]["value"], 70.0, "{full}");

        // The audit log tells the two reads apart.
        let log = app
            .store
            .audit_records(
                &ketcare_core::Actor::system(Role::Administrator),
                &AuditFilter {
                    username: Some("sam".into()),
                    action: None,
                    patient_id: None,
                    before_seq: None,
                    limit: 10_000,
                },
            )
            .await
            .unwrap();
        assert!(
            log.iter()
                .any(|r| r.action == "patient.demographics.read" && r.username == "sam"),
            "{backend:?}"
        );
        assert!(
            !log.iter()
                .any(|r| r.action == "patient.read" && r.username == "sam"),
            "{backend:?}"
        );
    }
}
