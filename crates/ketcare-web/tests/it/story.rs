//! The foundation's story, told the same way against SQLite and against PostgreSQL: staff created,
//! sign-in, a minor with a guardian registered, edited, searched, and the audit chain verified.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{Auth, TestApp, minor_form};
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;

#[tokio::test]
async fn foundation_story_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("priya", Role::Prescriber).await;
        app.add_user("alex", Role::Administrator).await;

        // The nurse signs in and registers a minor.
        let nurse = app.login("nina").await;
        let r = app.post_form("/patients", &nurse, &minor_form()).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{backend:?}: {}", r.body);
        let page = r.location();
        let id: i64 = page.trim_start_matches("/patients/").parse().unwrap();

        // The page shows the age band derived from the date of birth on the day of care.
        let view = app.get(&page, &nurse).await;
        assert_eq!(view.status, StatusCode::OK);
        assert!(
            view.body.contains("id=\"band\">adolescent<"),
            "{}",
            view.body
        );
        assert!(view.body.contains("minor and has no guardian"));

        // Guardian linked.
        let g = app
            .post_form(
                &format!("{page}/guardians"),
                &nurse,
                &[
                    ("name", "Jo Quill"),
                    ("relationship", "mother"),
                    ("phone", "+1 555 0199"),
                    ("email", ""),
                ],
            )
            .await;
        assert_eq!(g.status, StatusCode::SEE_OTHER, "{}", g.body);

        // Edited: a new weight.
        let mut edited = minor_form();
        for f in edited.iter_mut() {
            if f.0 == "weight_value" {
                f.1 = "43";
            }
        }
        let e = app.post_form(&page, &nurse, &edited).await;
        assert_eq!(e.status, StatusCode::SEE_OTHER, "{}", e.body);

        // Searched: by name on the page, by MRN and date of birth through the API.
        let found = app.get("/patients?q=quill", &nurse).await;
        assert!(
            found.body.contains(&format!("href=\"/patients/{id}\"")),
            "{}",
            found.body
        );
        let prescriber = app.bearer("priya").await;
        for q in ["T-100", "2012-05-01", "robin"] {
            let r = app
                .get(&format!("/api/v1/patients?q={q}"), &prescriber)
                .await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(
                r.json().as_array().unwrap().len(),
                1,
                "{backend:?} q={q}: {}",
                r.body
            );
        }
        let p = app
            .get(&format!("/api/v1/patients/{id}"), &prescriber)
            .await
            .json();
        assert_eq!(p["guardians"][0]["name"], "Jo Quill");
        assert_eq!(p["guardians"][0]["relationship"], "mother");
        assert_eq!(p["weight"]["value"], 43.0);
        assert_eq!(p["day_of_care"]["band"], "adolescent");

        // The administrator sees every access in the audit log, and the chain verifies.
        let admin = app.bearer("alex").await;
        let log = app
            .get(&format!("/api/v1/audit?patient_id={id}"), &admin)
            .await
            .json();
        let actions: Vec<(String, String)> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["action"].as_str().unwrap().to_owned(),
                    r["username"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for (action, who) in [
            ("patient.create", "nina"),
            ("guardian.add", "nina"),
            ("patient.update", "nina"),
            ("patient.read", "nina"),
            ("patient.listed", "nina"),
            ("patient.read", "priya"),
        ] {
            assert!(
                actions.contains(&(action.into(), who.into())),
                "{backend:?}: {action} by {who} missing from {actions:?}"
            );
        }
        let v = app.get("/api/v1/audit/verify", &admin).await.json();
        assert_eq!(v["intact"], true, "{v}");
        assert!(v["records"].as_u64().unwrap() > 10);

        // A researcher never reads an identified record.
        app.add_user("rae", Role::Researcher).await;
        let researcher = app.bearer("rae").await;
        assert_eq!(
            app.get(&format!("/api/v1/patients/{id}"), &researcher)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.json(
                Method::GET,
                "/api/v1/me",
                &researcher,
                &serde_json::json!({})
            )
            .await
            .json()["role"],
            "researcher"
        );

        // Health names the backend.
        let h = app.get("/healthz", &Auth::None).await.json();
        assert_eq!(h["status"], "ok");
        assert_eq!(h["database"], backend.as_str());
    }
}

#[tokio::test]
async fn names_with_accents_mrn_fragments_and_indications_are_found_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        let nurse = app.bearer("nina").await;
        for (mrn, given, family, indication) in [
            (
                "ACC-0101",
                "Élodie",
                "Émond",
                "treatment-resistant depression",
            ),
            ("ACC-0202", "Søren", "Ødegaard", "chronic pain"),
            ("ACC-0303", "Ümit", "Öztürk", "PTSD"),
        ] {
            let r = app
                .json(
                    Method::POST,
                    "/api/v1/patients",
                    &nurse,
                    &serde_json::json!({"mrn": mrn, "given_name": given, "family_name": family,
                        "date_of_birth": "1980-01-01", "sex": "female", "indications": [indication]}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
        }
        for (q, want) in [
            ("Émond", "ACC-0101"),
            ("émond", "ACC-0101"),
            ("EMOND", "ACC-0101"),
            ("elodie emond", "ACC-0101"),
            ("Ødegaard", "ACC-0202"),
            ("ødegaard", "ACC-0202"),
            ("ÖZTÜRK", "ACC-0303"),
            ("oztürk", "ACC-0303"),
            ("0202", "ACC-0202"),
            ("acc-03", "ACC-0303"),
            ("Depression", "ACC-0101"),
            ("ptsd", "ACC-0303"),
        ] {
            let r = app
                .get(&format!("/api/v1/patients?q={}", urlencoding(q)), &nurse)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{backend:?} q={q}: {}", r.body);
            let mrns: Vec<String> = r
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["mrn"].as_str().unwrap_or_default().to_owned())
                .collect();
            assert_eq!(mrns, vec![want.to_owned()], "{backend:?} q={q}");
        }
    }
}

fn urlencoding(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
