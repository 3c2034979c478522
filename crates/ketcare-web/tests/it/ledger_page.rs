//! The ledger page as a pharmacist reads it on a tablet, on SQLite and PostgreSQL: entries in
//! words with volumes in mL and amounts in mg, filters by kind, container, session and date,
//! pages of 25 that keep the filters, and a bad filter named on the page.

use crate::common;
use crate::ops::session_with_order;

use axum::http::{Method, StatusCode};
use common::TestApp;
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use serde_json::json;

/// The entries table of a ledger page.
fn entries_table(html: &str) -> &str {
    let start = html
        .find(r#"<table id="entries">"#)
        .unwrap_or_else(|| panic!("no entries table: {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</table>").unwrap_or(rest.len())]
}

/// The kinds of the rows of the entries table, in order.
fn kinds(html: &str) -> Vec<String> {
    entries_table(html)
        .split(r#"<tr data-kind=""#)
        .skip(1)
        .map(|r| r[..r.find('"').unwrap_or(0)].to_owned())
        .collect()
}

#[tokio::test]
async fn the_ledger_page_reads_in_ml_and_mg_with_filters_and_pages() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("phil", Role::Pharmacist).await;
        app.add_user("nina", Role::Nurse).await;
        let pharm = app.login("phil").await;
        let pharm_api = app.bearer("phil").await;
        let nurse = app.login("nina").await;
        let receive = json!({"event": {"kind": "receive", "product": "ketamine-50", "ndc": "67457-108-10", "lot": "K1",
                             "expiry": "2030-06-30", "quantity": 2, "invoice": "INV-77", "supplier": "Wholesaler"}});
        let r = app
            .json(Method::POST, "/api/v1/ledger/events", &pharm_api, &receive)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?} {}", r.body);
        let pid = common::patient_born(&app, &nurse, "L-100", "1980-05-01").await;
        let sid = session_with_order(&app, pid, "trd-adult-iv-ketamine", 0)
            .await
            .get()
            .to_string();
        let r = app
            .post_form(
                "/ledger",
                &nurse,
                &[
                    ("kind", "draw"),
                    ("container", "1"),
                    ("session_id", &sid),
                    ("volume_ml", "1.5"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

        // Entries in words, volumes in mL and amounts in mg; nothing internal.
        let page = app.get("/ledger", &pharm).await;
        assert_eq!(page.status, StatusCode::OK);
        let b = &page.body;
        let table = entries_table(b);
        assert!(
            table.contains(&format!(
                "Drew 1.5 mL (75 mg) from container #1 (Ketamine 50 mg/mL, 500 mg/10 mL \
                 multiple-dose vial, lot K1) for session {sid}"
            )),
            "{table}"
        );
        assert!(
            table.contains("Received 2 × Ketamine 50 mg/mL")
                && table.contains("(containers #1–#2)")
                && table.contains("invoice INV-77 from Wholesaler"),
            "{table}"
        );
        assert!(
            table.contains(">Receipt") && table.contains(">Draw"),
            "{table}"
        );
        for internal in [
            "volume_ul",
            "_ug",
            "_ul",
            "µL",
            "µg",
            "{&quot;",
            "<td><code>",
        ] {
            assert!(!b.contains(internal), "`{internal}` on the page: {b}");
        }
        // The tables scroll inside their box on a narrow screen; the containers table says
        // its units in the header.
        assert!(b.contains(r#"<div class="table-scroll"><table id="containers">"#));
        assert!(b.contains(r#"<div class="table-scroll"><table id="entries">"#));
        assert!(b.contains("Left (mL)") && b.contains("Left (mg)"), "{b}");
        assert!(b.contains(r#"<td class="num">8.5</td><td class="num">425</td><td>open</td>"#));
        assert!(b.contains("Entries 1–2 of 2"), "{b}");
        let css = app.get("/static/app.css", &pharm).await.body;
        assert!(css.contains(".table-scroll") && css.contains("overflow-x: auto"));

        // Filters: by kind, container, session and date.
        let draws = app.get("/ledger?kind=draw", &pharm).await;
        assert_eq!(kinds(&draws.body), ["draw"]);
        assert!(
            draws
                .body
                .contains(r#"<option value="draw" selected>Draw</option>"#)
        );
        assert!(draws.body.contains("Entries 1–1 of 1 matching"));
        let c2 = app.get("/ledger?container=2", &pharm).await;
        assert_eq!(kinds(&c2.body), ["receive"]);
        let c1 = app.get("/ledger?container=1", &pharm).await;
        assert_eq!(kinds(&c1.body), ["draw", "receive"], "newest first");
        let s = app.get(&format!("/ledger?session={sid}"), &pharm).await;
        assert_eq!(kinds(&s.body), ["draw"]);
        let all = app
            .get("/ledger?from=2000-01-01&to=2099-12-31", &pharm)
            .await;
        assert_eq!(kinds(&all.body).len(), 2);
        let none = app.get("/ledger?from=2099-01-01", &pharm).await;
        assert!(kinds(&none.body).is_empty());
        assert!(none.body.contains("No entries match these filters."));

        // Thirty counts: pages of 25, and the pages keep the filter.
        for i in 0..30 {
            let count = json!({"event": {"kind": "count", "period": format!("shift {i}"),
                               "lines": [{"container": 2, "counted_ul": 10000}]}});
            let r = app
                .json(Method::POST, "/api/v1/ledger/events", &pharm_api, &count)
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let first = app.get("/ledger?kind=count", &pharm).await;
        let k = kinds(&first.body);
        assert_eq!(k.len(), 25);
        assert!(k.iter().all(|k| k == "count"));
        assert!(first.body.contains("Entries 1–25 of 30 matching"));
        assert!(
            first.body.contains(
                "Counted 1 container for shift 29: #2 counted 10 mL (500 mg), as the book"
            )
        );
        let next = r#"href="/ledger?kind=count&#38;page=2#entries" id="entries-next""#;
        assert!(first.body.contains(next), "{}", first.body);
        assert!(!first.body.contains("entries-prev"));
        let second = app.get("/ledger?kind=count&page=2", &pharm).await;
        let k = kinds(&second.body);
        assert_eq!(k.len(), 5);
        assert!(k.iter().all(|k| k == "count"));
        assert!(second.body.contains("Entries 26–30 of 30 matching"));
        assert!(
            second
                .body
                .contains(r#"href="/ledger?kind=count&#38;page=1#entries" id="entries-prev""#)
        );
        assert!(!second.body.contains("entries-next"));
        // Unfiltered: 32 entries over two pages.
        let p2 = app.get("/ledger?page=2", &pharm).await;
        assert!(p2.body.contains("Entries 26–32 of 32"), "{}", p2.body);
        assert_eq!(kinds(&p2.body).last().map(String::as_str), Some("receive"));
        // Past the last page shows the last page.
        let far = app.get("/ledger?kind=count&page=9", &pharm).await;
        assert!(far.body.contains("Entries 26–30 of 30 matching"));
    }
}

#[tokio::test]
async fn a_bad_ledger_filter_is_named_on_the_page() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("phil", Role::Pharmacist).await;
        let pharm = app.login("phil").await;
        for (query, field) in [
            ("container=abc", "container"),
            ("session=-4", "session"),
            ("from=2026-13-40", "from"),
            ("to=tomorrow", "to"),
            ("from=2026-12-02&to=2026-12-01", "to"),
            ("kind=volume_ul", "kind"),
            ("page=0", "page"),
        ] {
            let r = app.get(&format!("/ledger?{query}"), &pharm).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{backend:?} {query}: {}",
                r.body
            );
            let err = r.body[r
                .body
                .find(r#"id="ledger-error""#)
                .unwrap_or_else(|| panic!("{query}: {}", r.body))..]
                .split("</p>")
                .next()
                .unwrap_or_default();
            assert!(err.contains(&format!("{field}: ")), "{query}: {err}");
            // The page still works: the forms are there, and what was typed is kept.
            assert!(r.body.contains(r#"id="entries-filter""#));
            assert!(r.body.contains("Correct the filter to see entries."));
        }
        let r = app.get("/ledger?container=abc", &pharm).await;
        assert!(
            r.body
                .contains(r#"name="container" inputmode="numeric" size="6" value="abc""#)
        );
    }
}
