//! Operations pages beyond the main story, on SQLite and PostgreSQL: the settings page lists
//! every setting booking and billing need, consent withdrawal from the patient's consent page,
//! the printable inventory and theft/loss documents, and the count per shift.

use crate::common;

use axum::http::StatusCode;
use common::TestApp;
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;

/// The row of the operations settings table for `key`.
fn ops_row<'a>(html: &'a str, key: &str) -> &'a str {
    let start = html
        .find(&format!("<tr id=\"setting-{key}\" data-key=\"{key}\">"))
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
        let row = ops_row(b, "schedule.ketamine_prescriber_on_site");
        assert!(
            row.contains("Not set: booking this course is refused"),
            "{row}"
        );
        assert!(row.contains("courses.toml"), "{row}");
        assert!(
            row.contains("<select id=\"v-schedule.ketamine_prescriber_on_site\""),
            "{row}"
        );
        let row = ops_row(b, "observation.ketamine_psychiatric_minutes");
        assert!(row.contains("120 min"), "{row}");
        assert!(row.contains("set by this site"), "{row}");
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
        // The keys the walk of the data files finds, with typed inputs and their cited ranges.
        let gate = ops_row(b, "session.ketamine.bp_gate_systolic_mmhg");
        assert!(gate.contains("cannot start"), "{gate}");
        assert!(gate.contains("type=\"number\""), "{gate}");
        assert!(gate.contains("max=\"480\""), "{gate}");
        assert!(ops_row(b, "eligibility.trd_min_failed_trials").contains("R56 (S)"));
        // Listed as needed and not set, with a link to its row.
        assert!(b.contains("<a href=\"#setting-schedule.ketamine_prescriber_on_site\">"));

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
        assert!(row.contains(">yes<"), "{row}");
        assert!(
            !page
                .body
                .contains("<a href=\"#setting-schedule.ketamine_prescriber_on_site\">")
        );

        // A misspelt key, or a value outside the input, is refused naming the key; nothing is saved.
        for (key, value, says) in [
            (
                "session.alarm.systolc_high_mmhg",
                "170",
                "not a setting ketcare reads",
            ),
            ("session.alarm.systolic_high_mmhg", "900", "at most 480"),
            (
                "schedule.ketamine_prescriber_on_site",
                "3",
                "1 (yes) or 2 (no)",
            ),
        ] {
            let r = app
                .post_form(
                    "/settings",
                    &admin,
                    &[("key", key), ("value", value), ("reason", "typo")],
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{key}: {}",
                r.body
            );
            assert!(
                r.body.contains(key) && r.body.contains(says),
                "{key}: {}",
                r.body
            );
        }
        let bearer = app.bearer("alex").await;
        let current = app.get("/api/v1/site-settings", &bearer).await.json();
        let mut values = current["settings"]["values"].clone();
        values["eligibility.bp_systolc_max_mmhg"] = serde_json::json!(150);
        let r = app
            .json(
                axum::http::Method::PUT,
                "/api/v1/site-settings",
                &bearer,
                &serde_json::json!({"settings": {"values": values}, "reason": "typo"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body.contains("eligibility.bp_systolc_max_mmhg"),
            "{}",
            r.body
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
        // The API: a new consent, withdrawn with a reason; the status says why.
        let api = app.bearer("nina").await;
        let r = app
            .json(
                axum::http::Method::POST,
                &format!("/api/v1/patients/{pid}/consents"),
                &api,
                &serde_json::json!({"protocol_id": "trd-adult-iv-ketamine", "signer": {"kind": "patient"}, "assent": null}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let sid2 = r.json()["id"].as_i64().unwrap();
        let r = app
            .json(
                axum::http::Method::POST,
                &format!("/api/v1/patients/{pid}/consents/{sid2}/withdraw"),
                &api,
                &serde_json::json!({"reason": "changed her mind"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["withdrawal_reason"], "changed her mind");
        assert_eq!(r.json()["withdrawn_by"], "nina");
        let st = app
            .get(
                &format!("/api/v1/patients/{pid}/consent-status?protocol=trd-adult-iv-ketamine"),
                &api,
            )
            .await
            .json();
        assert_eq!(st["reason"], "withdrawn", "{st}");
    }
}

#[tokio::test]
async fn counts_per_shift_and_printable_inventory_and_theft_loss_documents() {
    use axum::http::Method;
    use serde_json::json;
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("phil", Role::Pharmacist).await;
        app.add_user("sam", Role::Scheduler).await;
        let pharm = app.login("phil").await;
        let pharm_api = app.bearer("phil").await;
        let receive = json!({"event": {"kind": "receive", "product": "ketamine-50", "ndc": "67457-108-10", "lot": "K1",
                             "expiry": "2030-06-30", "quantity": 2, "invoice": "INV-77", "supplier": "Wholesaler"}});
        let r = app
            .json(Method::POST, "/api/v1/ledger/events", &pharm_api, &receive)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?} {}", r.body);
        let counts = app.get("/ledger/counts", &pharm).await;
        assert_eq!(counts.status, StatusCode::OK);
        assert!(counts.body.contains("No count recorded yet"));
        // The count is blind: the ledger page links to the form, whose boxes are empty and which
        // shows no book amount (two 10 mL vials here).
        let ledger = app.get("/ledger", &pharm).await;
        assert!(ledger.body.contains(r#"href="/ledger/count""#));
        assert!(!ledger.body.contains("counted_"), "{}", ledger.body);
        let form = app.get("/ledger/count", &pharm).await;
        assert_eq!(form.status, StatusCode::OK);
        for id in [1, 2] {
            assert!(
                form.body
                    .contains(&format!(r#"name="counted_{id}" value="""#)),
                "{}",
                form.body
            );
        }
        assert!(!form.body.contains("10 mL"), "{}", form.body);
        // A refused count returns to the blind form with what was typed, still without the book.
        let r = app
            .post_form(
                "/ledger",
                &pharm,
                &[
                    ("kind", "count"),
                    ("period", "day shift"),
                    ("counted_1", "ten"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body.contains(r#"id="count-form""#)
                && r.body.contains(r#"name="counted_1" value="ten""#)
                && r.body.contains(r#"name="period" value="day shift""#)
                && r.body.contains(r#"id="ledger-error""#)
                && !r.body.contains("10 mL"),
            "{}",
            r.body
        );

        // Two shifts: the day shift balances, the night shift is short on container 1.
        for (period, c1) in [("day shift", "10"), ("night shift", "9.5")] {
            let r = app
                .post_form(
                    "/ledger",
                    &pharm,
                    &[
                        ("kind", "count"),
                        ("period", period),
                        ("counted_1", c1),
                        ("counted_2", "10"),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        }
        let ledger = app.get("/ledger", &pharm).await;
        assert!(ledger.body.contains("href=\"/ledger/counts\""));
        let b = app.get("/ledger/counts", &pharm).await.body;
        let night = b.find("night shift").unwrap();
        let day = b.find("day shift").unwrap();
        assert!(night < day, "newest first");
        let night_sheet = &b[night..day];
        assert!(night_sheet.contains("does not balance"), "{night_sheet}");
        assert!(
            night_sheet.contains("<td>10 mL</td><td>9.5 mL</td><td>-0.5 mL</td>"),
            "{night_sheet}"
        );
        assert!(b[day..].contains("balances"));
        assert!(b[day..].contains("<td>10 mL</td><td>10 mL</td><td>—</td>"));

        // A biennial inventory and a theft report, each with a printable document.
        let r = app
            .post_form(
                "/ledger",
                &pharm,
                &[
                    ("kind", "inventory"),
                    ("inventory", "biennial"),
                    ("taken", "2026-11-23"),
                    ("time", "close"),
                    ("registrant_name", "Hill Clinic"),
                    ("registrant_address", "1 Main St"),
                    ("dea_number", "AB1234563"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = app
            .post_form(
                "/ledger",
                &pharm,
                &[
                    ("kind", "theft_loss"),
                    ("discovered", "2026-11-20"),
                    ("theft", "1"),
                    ("containers", "2"),
                    ("description", "vial missing from the safe"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let records = app
            .store
            .ledger_records(&ketcare_core::Actor::system(Role::Pharmacist))
            .await
            .unwrap();
        let seq_of = |kind: &str| records.iter().find(|r| r.kind == kind).unwrap().seq;
        let ledger = app.get("/ledger", &pharm).await.body;
        let inv_url = format!("/ledger/documents/{}", seq_of("inventory"));
        let theft_url = format!("/ledger/documents/{}", seq_of("theft_loss"));
        assert!(ledger.contains(&inv_url) && ledger.contains(&theft_url));

        let inv = app.get(&inv_url, &pharm).await;
        assert_eq!(inv.status, StatusCode::OK, "{}", inv.body);
        let d = &inv.body;
        for text in [
            "Biennial inventory",
            "2026-11-23",
            "close of business",
            "Hill Clinic",
            "1 Main St",
            "AB1234563",
            "Drug name",
            "Strength",
            "Total quantity",
            "2028-11-23",
            "/static/ops-print.css",
        ] {
            assert!(d.contains(text), "{text} missing: {d}");
        }
        let t = app.get(&theft_url, &pharm).await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.body);
        let d = &t.body;
        // Discovered on a Friday: notice by Monday; Form 106 within 45 days.
        assert!(
            d.contains("<strong id=\"notice-due\">2026-11-23</strong>"),
            "{d}"
        );
        assert!(
            d.contains("<strong id=\"form-106-due\">2027-01-04</strong>"),
            "{d}"
        );
        assert!(d.contains("vial missing from the safe") && d.contains("67457-108-10"));
        assert!(d.contains("R44"));
        // Other entries have no document; a scheduler may not read the ledger.
        let r = app.get("/ledger/documents/1", &pharm).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let sched = app.login("sam").await;
        assert_eq!(
            app.get(&inv_url, &sched).await.status,
            StatusCode::FORBIDDEN
        );
        let css = app.get("/static/ops-print.css", &sched).await;
        assert!(css.body.contains("@media print"));
    }
}
