//! Forms start unanswered where a default would be unsafe, on SQLite and PostgreSQL: the
//! screening form's pregnancy status is a required choice (no "pregnant" by default), and a
//! submit without one is refused naming the field.

use crate::common;

use axum::http::StatusCode;
use common::{TestApp, minor_form};
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;

#[tokio::test]
async fn the_screening_form_requires_a_pregnancy_choice() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("priya", Role::Prescriber).await;
        app.set_test_site_settings().await;
        let doc = app.login("priya").await;
        let created = app.post_form("/patients", &doc, &minor_form()).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
        let pid = created
            .location()
            .trim_start_matches("/patients/")
            .to_owned();
        let form = app.get(&format!("/patients/{pid}/screen"), &doc).await;
        assert_eq!(form.status, StatusCode::OK, "{backend:?}");
        let select = &form.body[form.body.find("id=\"pregnancy\"").unwrap()..];
        let select = &select[..select.find("</select>").unwrap()];
        assert!(select.contains("required"), "{select}");
        assert!(
            select.contains(r#"<option value="" selected>"#),
            "unanswered by default: {select}"
        );
        assert!(!select.contains(r#"value="pregnant" selected"#), "{select}");
        let fields = |pregnancy: &'static str| {
            vec![
                ("indication", "trd"),
                ("drug", "racemic_ketamine"),
                ("pregnancy", pregnancy),
            ]
        };
        let r = app
            .post_form(&format!("/patients/{pid}/screenings"), &doc, &fields(""))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}: {}",
            r.body
        );
        assert!(r.body.contains("pregnancy: choose"), "{}", r.body);
        let r = app
            .post_form(
                &format!("/patients/{pid}/screenings"),
                &doc,
                &fields("not_pregnant"),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{backend:?}: {}", r.body);
    }
}
