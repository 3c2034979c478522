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
