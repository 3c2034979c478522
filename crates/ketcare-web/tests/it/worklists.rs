//! The home page's work queues, on SQLite and PostgreSQL: each role sees the work waiting for
//! it, by patient name and MRN, one click from where it is done.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use serde_json::json;

/// The text of one queue section of the home page.
/// The home page's queue `id`.
pub(crate) fn queue<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section class=\"queue\" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no queue {id} in {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

#[tokio::test]
async fn each_role_sees_its_queue_by_name_and_mrn() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings().await;
        for (u, r) in [
            ("doc", Role::Prescriber),
            ("pharm", Role::Pharmacist),
            ("nurse", Role::Nurse),
            ("alex", Role::Administrator),
            ("sam", Role::Scheduler),
        ] {
            app.add_user(u, r).await;
        }
        let nurse_page = app.login("nurse").await;
        let pid = patient_born(&app, &nurse_page, "WQ-7", "1980-05-01")
            .await
            .to_string();
        let doc = app.bearer("doc").await;
        let order = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/orders"),
                &doc,
                &json!({
                "protocol_id": "trd-adult-iv-ketamine",
                "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}}),
            )
            .await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        let oid = order.json()["id"].as_i64().unwrap();

        // The nurse's queue holds the order to verify, by name and MRN, linking to it.
        let home = app.get("/", &nurse_page).await;
        let q = queue(&home.body, "orders-to-verify");
        assert!(q.contains("Quill, Robin (WQ-7)"), "{backend:?}: {q}");
        assert!(q.contains(&format!("href=\"/orders/{oid}\"")), "{q}");
        assert!(q.contains("aria-label=\"1 waiting\""), "{q}");
        // The author does not see their own order to verify.
        let doc_page = app.login("doc").await;
        let home = app.get("/", &doc_page).await;
        assert!(!queue(&home.body, "orders-to-verify").contains("WQ-7"));
        // A scheduler has no clinical queue; the administrator sees what settings still block.
        let home = app.get("/", &app.login("sam").await).await;
        assert!(!home.body.contains("orders-to-verify"), "{}", home.body);
        let home = app.get("/", &app.login("alex").await).await;
        let q = queue(&home.body, "settings-needed");
        assert!(q.contains("session.ketamine.bp_gate_systolic_mmhg"), "{q}");
        assert!(q.contains("href=\"/settings#setting-"), "{q}");

        // Verified: gone from the queue; scheduled and checked in: in the chairs.
        let pharm = app.bearer("pharm").await;
        let v = app
            .json(
                Method::POST,
                &format!("/api/v1/orders/{oid}/verify"),
                &pharm,
                &json!({}),
            )
            .await;
        assert_eq!(v.status, StatusCode::OK, "{}", v.body);
        let nurse = app.bearer("nurse").await;
        let s = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/sessions"),
                &nurse,
                &json!({"order_id": oid, "chair": "Chair 4"}),
            )
            .await;
        let sid = s.json()["id"].as_i64().unwrap();
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/sessions/{sid}/commands"),
                &nurse,
                &json!({"command": "check_in"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let home = app.get("/", &nurse_page).await;
        assert!(queue(&home.body, "orders-to-verify").contains("No order waits"));
        let q = queue(&home.body, "sessions-now");
        assert!(
            q.contains("Quill, Robin (WQ-7)") && q.contains("Chair 4"),
            "{q}"
        );
        assert!(q.contains(&format!("href=\"/sessions/{sid}\"")), "{q}");
        // The chart lists the patient's orders and sessions, each a link.
        let chart = app.get(&format!("/patients/{pid}"), &nurse_page).await;
        assert!(
            chart
                .body
                .contains(&format!("<a href=\"/orders/{oid}\">Adult TRD")),
            "{}",
            chart.body
        );
        assert!(
            chart
                .body
                .contains(&format!("<a href=\"/sessions/{sid}\">")),
            "{}",
            chart.body
        );
        assert!(
            chart.body.contains("Chair 4 — Checked in"),
            "{}",
            chart.body
        );
    }
}

/// A wrong order is withdrawn with a reason, on the page and the API, and can then no longer be
/// verified or scheduled; while a session uses it, the session must be cancelled first.
#[tokio::test]
async fn a_wrong_order_is_withdrawn_with_a_reason_before_it_is_given() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings().await;
        for (u, r) in [
            ("doc", Role::Prescriber),
            ("pharm", Role::Pharmacist),
            ("nurse", Role::Nurse),
        ] {
            app.add_user(u, r).await;
        }
        let nurse_page = app.login("nurse").await;
        let pid = patient_born(&app, &nurse_page, "WD-1", "1980-05-01")
            .await
            .to_string();
        let (doc, pharm, nurse) = (
            app.bearer("doc").await,
            app.bearer("pharm").await,
            app.bearer("nurse").await,
        );
        let body = json!({"protocol_id": "trd-adult-iv-ketamine",
            "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}});
        let (oid, sid) = app
            .verified_order_session(&pid, (&doc, &pharm, &nurse), &body, "Chair 1")
            .await;
        let withdraw = |reason: &'static str| {
            let (app, doc) = (&app, doc.clone());
            async move {
                app.json(
                    Method::POST,
                    &format!("/api/v1/orders/{oid}/withdraw"),
                    &doc,
                    &json!({"reason": reason}),
                )
                .await
            }
        };
        // A nurse may not withdraw; a session that uses the order must be cancelled first.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/orders/{oid}/withdraw"),
                &nurse,
                &json!({"reason": "x"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = withdraw("wrong patient weight").await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{backend:?}: {}", r.body);
        assert!(r.body.contains(&format!("session {sid}")), "{}", r.body);
        let c = app
            .json(
                Method::POST,
                &format!("/api/v1/sessions/{sid}/commands"),
                &nurse,
                &json!({"command": "cancel", "reason": "order to be withdrawn"}),
            )
            .await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.body);
        // The page asks for a reason, keeping the form.
        let doc_page = app.login("doc").await;
        let r = app
            .post_form(
                &format!("/orders/{oid}/withdraw"),
                &doc_page,
                &[("withdraw_reason", " ")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body.contains("id=\"withdraw-error\"") && r.body.contains("reason"),
            "{}",
            r.body
        );
        let r = app
            .post_form(
                &format!("/orders/{oid}/withdraw"),
                &doc_page,
                &[("withdraw_reason", "wrong patient weight")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let page = app.get(&format!("/orders/{oid}"), &doc_page).await;
        assert!(
            page.body.contains("id=\"withdrawal\"") && page.body.contains("wrong patient weight")
        );
        assert!(!page.body.contains("id=\"withdraw-form\""));
        let o = app.get(&format!("/api/v1/orders/{oid}"), &doc).await.json();
        assert_eq!(o["order"]["state"], "withdrawn", "{o}");
        assert_eq!(o["order"]["withdrawal"]["by"], "doc");
        // Withdrawn: not scheduled again, not withdrawn twice.
        let s = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/sessions"),
                &nurse,
                &json!({"order_id": oid, "chair": "Chair 2"}),
            )
            .await;
        assert_eq!(s.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", s.body);
        assert!(s.body.contains("withdrawn"), "{}", s.body);
        assert_eq!(
            withdraw("again").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}

/// A booking of the coming days waits in the bookings-not-ready queue until its patient has a
/// verified order no session has used and a consent in force at the booking's start; the
/// schedule names the patient, and every patient page carries the patient header.
#[tokio::test]
async fn bookings_wait_until_an_order_and_consent_are_ready() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let mut values = serde_json::Map::new();
        for (k, v) in TEST_SITE_SETTINGS {
            values.insert(k.into(), v.into());
        }
        values.insert("schedule.ketamine_prescriber_on_site".into(), 2.0.into());
        app.store
            .save_site_settings(
                &ketcare_core::Actor::system(Role::Administrator),
                &json!({ "values": values }).to_string(),
                "test clinic policy",
            )
            .await
            .unwrap();
        for (u, r) in [
            ("doc", Role::Prescriber),
            ("pharm", Role::Pharmacist),
            ("sam", Role::Scheduler),
        ] {
            app.add_user(u, r).await;
        }
        let nina = app.add_user("nurse", Role::Nurse).await;
        let nurse_page = app.login("nurse").await;
        let sam = app.login("sam").await;
        let pid = patient_born(&app, &nurse_page, "WQ-8", "1980-05-01")
            .await
            .to_string();
        let r = app
            .post_form("/schedule/chairs", &sam, &[("name", "Chair A")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let chair_id = app
            .store
            .chairs(&ketcare_core::Actor::system(Role::Scheduler))
            .await
            .unwrap()[0]
            .id;
        // Tomorrow at 10:00, the clinic's local time.
        let tomorrow = jiff::Timestamp::from_second(START + 86_400)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::system())
            .date();
        let start = format!("{tomorrow}T10:00");
        let r = app
            .json(
                Method::POST,
                "/api/v1/schedule/sessions",
                &sam,
                &json!({"patient_id": pid.parse::<i64>().unwrap(), "template_id": "iv-ketamine-induction-6",
                        "phase": "booster", "start": start, "chair_id": chair_id,
                        "nurse_id": nina.id.get()}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?} {}", r.body);

        // No order yet: the nurse's queue says so, by name and MRN, linking to the chart. The
        // scheduler, who may not read the clinical record readiness rests on, has no such queue.
        let home = app.get("/", &sam).await;
        assert!(!home.body.contains("bookings-not-ready"), "{}", home.body);
        let home = app.get("/", &nurse_page).await;
        let q = queue(&home.body, "bookings-not-ready");
        assert!(q.contains("Quill, Robin (WQ-8)"), "{backend:?}: {q}");
        assert!(q.contains("no verified dose order waiting"), "{q}");
        assert!(q.contains(&format!("href=\"/patients/{pid}\"")), "{q}");
        // The schedule names the patient, not a number.
        let week = app
            .get(&format!("/schedule?date={tomorrow}&view=week"), &sam)
            .await;
        assert!(week.body.contains("Quill, Robin (WQ-8)"), "{}", week.body);
        assert!(!week.body.contains("patient #"), "{}", week.body);

        // A verified order: now the consent is what is missing at the booking's start.
        let doc = app.bearer("doc").await;
        let order = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/orders"),
                &doc,
                &json!({"protocol_id": "trd-adult-iv-ketamine",
                        "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}}),
            )
            .await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        let oid = order.json()["id"].as_i64().unwrap();
        let v = app
            .json(
                Method::POST,
                &format!("/api/v1/orders/{oid}/verify"),
                &app.bearer("pharm").await,
                &json!({}),
            )
            .await;
        assert_eq!(v.status, StatusCode::OK, "{}", v.body);
        let home = app.get("/", &nurse_page).await;
        let q = queue(&home.body, "bookings-not-ready");
        assert!(q.contains("consent not in force then"), "{backend:?}: {q}");

        // Consent on file: the booking is ready and leaves the queue.
        app.consent_for(&pid, "trd-adult-iv-ketamine").await;
        let home = app.get("/", &nurse_page).await;
        let q = queue(&home.body, "bookings-not-ready");
        assert!(!q.contains("WQ-8"), "{backend:?}: {q}");
        assert!(q.contains("Every booking of the coming days"), "{q}");

        // The patient header: on the chart, the order and the session form, with the consent.
        for path in [
            format!("/patients/{pid}"),
            format!("/orders/{oid}"),
            format!("/patients/{pid}/consent"),
            format!("/patients/{pid}/measures"),
            format!("/patients/{pid}/sessions/new?order_id={oid}"),
        ] {
            let page = app.get(&path, &nurse_page).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
            assert!(
                page.body.contains("id=\"patient-header\"")
                    && page.body.contains("<strong id=\"ph-mrn\">WQ-8</strong>"),
                "{path}: {}",
                page.body
            );
            assert!(page.body.contains("valid until"), "{path}: {}", page.body);
        }
        // From the verified order, one click schedules a session with the order chosen.
        let page = app.get(&format!("/orders/{oid}"), &nurse_page).await;
        assert!(
            page.body.contains(&format!(
                "href=\"/patients/{pid}/sessions/new?order_id={oid}\""
            )),
            "{}",
            page.body
        );
        let form = app
            .get(
                &format!("/patients/{pid}/sessions/new?order_id={oid}"),
                &nurse_page,
            )
            .await;
        assert!(
            form.body
                .contains(&format!("<option value=\"{oid}\" selected>")),
            "{}",
            form.body
        );
    }
}

/// A course's questionnaire set waits in the questionnaires-due queue once the site has a
/// schedule; the crisis line is a text setting, checked, and offered as a tap-to-call link on the
/// patient's questionnaire page.
#[tokio::test]
async fn questionnaires_due_and_the_crisis_line() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings().await;
        app.add_user("alex", Role::Administrator).await;
        app.add_user("nurse", Role::Nurse).await;
        let admin = app.login("alex").await;
        let nurse_page = app.login("nurse").await;
        let nurse = app.bearer("nurse").await;
        let pid = patient_born(&app, &nurse_page, "QD-1", "1980-05-01").await;

        // No schedule yet: the queue says which setting it waits for.
        let today = jiff::Timestamp::from_second(START)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::system())
            .date();
        let c = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/courses"),
                &nurse,
                &json!({"label": "Induction", "instrument": "phq9",
                        "started_on": today.to_string()}),
            )
            .await;
        assert_eq!(c.status, StatusCode::CREATED, "{backend:?} {}", c.body);
        let home = app.get("/", &nurse_page).await;
        assert!(
            queue(&home.body, "questionnaires-due").contains("measures.assessment_every_days"),
            "{}",
            home.body
        );
        // The administrator sets the schedule and the crisis line on the settings page.
        for (key, value) in [
            ("measures.assessment_every_days", "14"),
            ("measures.crisis_line", "+1 (555) 0199"),
        ] {
            let r = app
                .post_form(
                    "/settings",
                    &admin,
                    &[("key", key), ("value", value), ("reason", "clinic policy")],
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::SEE_OTHER,
                "{backend:?} {key}: {}",
                r.body
            );
        }
        let r = app
            .post_form(
                "/settings",
                &admin,
                &[
                    ("key", "measures.crisis_line"),
                    ("value", "call Dr Who"),
                    ("reason", "typo"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("measures.crisis_line"), "{}", r.body);
        let page = app.get("/settings", &admin).await;
        assert!(page.body.contains("+1 (555) 0199"), "{}", page.body);

        // A new course with no answers yet is due from its first day.
        let home = app.get("/", &nurse_page).await;
        let q = queue(&home.body, "questionnaires-due");
        assert!(
            q.contains("Quill, Robin (QD-1)") && q.contains("PHQ-9"),
            "{backend:?}: {q}"
        );
        assert!(
            q.contains(&format!("href=\"/patients/{pid}/measures\"")),
            "{q}"
        );

        // The patient's questionnaire page offers the crisis line to call.
        let link = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/links"),
                &nurse,
                &json!({"instruments": ["phq9"], "expires_in_hours": 24}),
            )
            .await;
        assert_eq!(link.status, StatusCode::CREATED, "{}", link.body);
        let path = link.json()["path"].as_str().unwrap().to_owned();
        let form = app.get(&path, &Auth::None).await;
        assert!(
            form.body.contains("href=\"tel:+15550199\""),
            "{backend:?}: {}",
            form.body
        );
        // Answered: the set is no longer due.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/responses"),
                &nurse,
                &json!({"instrument": "phq9", "answers": [0, 0, 0, 0, 0, 0, 0, 0, 0],
                        "taken_on": today.to_string(), "submission_key": "qd-1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let home = app.get("/", &nurse_page).await;
        assert!(
            !queue(&home.body, "questionnaires-due").contains("QD-1"),
            "{backend:?}"
        );
    }
}
