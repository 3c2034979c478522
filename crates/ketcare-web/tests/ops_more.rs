//! Operations pages beyond the main story, on SQLite and PostgreSQL: the settings page lists
//! every setting booking and billing need, consent withdrawal from the patient's consent page,
//! the printable inventory and theft/loss documents, and the count per shift.

mod common;

use axum::http::StatusCode;
use common::TestApp;
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;

/// The row of the operations settings table for `key`.
fn ops_row<'a>(html: &'a str, key: &str) -> &'a str {
    let start = html
        .find(&format!("<tr data-key=\"{key}\">"))
        .unwrap_or_else(|| panic!("no row for {key}"));
    let rest = &html[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

#[tokio::test]
async fn the_settings_page_lists_what_blocks_booking_and_billing_and_sets_it() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("alex", Role::Administrator).await;
        app.set_test_site_settings().await;
        let admin = app.login("alex").await;
        let page = app.get("/settings", &admin).await;
        assert_eq!(page.status, StatusCode::OK, "{backend:?}");
        let b = &page.body;
        assert!(b.contains("this site sets them"), "{b}");
        let row = ops_row(b, "schedule.ketamine_prescriber_on_site");
        assert!(row.contains("Not set: booking is refused"), "{row}");
        assert!(row.contains("iv-ketamine-induction-6"), "{row}");
        let row = ops_row(b, "observation.ketamine_psychiatric_minutes");
        assert!(row.contains("120"), "{row}");
        assert!(!row.contains("Not set"), "{row}");
        for key in [
            "billing.em_codes_enabled",
            "billing.code_96372_enabled",
            "billing.esketamine_drug_line",
        ] {
            assert!(
                ops_row(b, key).contains("left off every superbill"),
                "{key}"
            );
        }
        assert!(ops_row(b, "schedule.nurse_max_concurrent_patients").contains("strictest"));
        // Offered in the form's list of keys to set.
        assert!(b.contains("<option value=\"schedule.ketamine_prescriber_on_site\">"));

        // The administrator sets it; the page shows the value as set by the site.
        let r = app
            .post_form(
                "/settings",
                &admin,
                &[
                    ("key", "schedule.ketamine_prescriber_on_site"),
                    ("value", "1"),
                    ("reason", "policy 12"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{backend:?} {}", r.body);
        let page = app.get("/settings", &admin).await;
        let row = ops_row(&page.body, "schedule.ketamine_prescriber_on_site");
        assert!(!row.contains("Not set"), "{row}");
        assert!(row.contains(">1<"), "{row}");
        assert!(
            !page
                .body
                .contains("<option value=\"schedule.ketamine_prescriber_on_site\">")
        );
    }
}

/// An adult patient created through the intake page; returns the patient number.
async fn adult(app: &TestApp, auth: &common::Auth) -> i64 {
    let mut form = common::minor_form();
    for (k, v) in form.iter_mut() {
        if *k == "date_of_birth" {
            *v = "1980-05-01";
        }
        if *k == "mrn" {
            *v = "A-200";
        }
    }
    let created = app.post_form("/patients", auth, &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    created
        .location()
        .trim_start_matches("/patients/")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_consent_is_withdrawn_from_the_consent_page_with_who_when_and_why() {
    use ketcare_ops::consent::{Section, SectionKind};
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("sam", Role::Scheduler).await;
        let nurse = app.login("nina").await;
        let sched = app.login("sam").await;
        let pid = adult(&app, &nurse).await;
        app.store
            .add_consent_document(
                &ketcare_core::Actor::system(Role::Nurse),
                &ketcare_store::NewConsentDocument {
                    protocol_id: "trd-adult-iv-ketamine".into(),
                    protocol_version: 1,
                    off_label: true,
                    title: "IV ketamine".into(),
                    sections: SectionKind::ALL
                        .into_iter()
                        .map(|kind| Section {
                            kind,
                            text: kind.label().to_owned(),
                        })
                        .collect(),
                    valid_days: None,
                },
            )
            .await
            .unwrap();
        let page_url = format!("/patients/{pid}/consent");
        let r = app
            .post_form(
                &page_url,
                &nurse,
                &[
                    ("protocol_id", "trd-adult-iv-ketamine"),
                    ("signer", "patient"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{backend:?} {}", r.body);
        let page = app.get(&page_url, &nurse).await;
        assert!(page.body.contains("Valid"), "{}", page.body);
        let sid: i64 = page
            .body
            .split("data-signature=\"")
            .nth(1)
            .and_then(|x| x.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        let withdraw = format!("/patients/{pid}/consent/{sid}/withdraw");
        assert!(page.body.contains(&withdraw));

        // No reason: refused, naming the field.
        let r = app.post_form(&withdraw, &nurse, &[("reason", "")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("reason"), "{}", r.body);
        // A scheduler may not withdraw consent.
        let r = app.post_form(&withdraw, &sched, &[("reason", "x")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        let r = app
            .post_form(&withdraw, &nurse, &[("reason", "moving away")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let page = app.get(&page_url, &nurse).await;
        let b = &page.body;
        assert!(b.contains("Not valid: consent was withdrawn"), "{b}");
        assert!(b.contains("by nina: moving away"), "{b}");
        assert!(!b.contains(&withdraw), "no withdraw button once withdrawn");
        // Twice: not found, shown on the page.
        let r = app
            .post_form(&withdraw, &nurse, &[("reason", "again")])
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
}
