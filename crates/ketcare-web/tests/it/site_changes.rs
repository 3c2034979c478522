//! Administrators narrow limits at once; widening a hard limit past the cited value waits for a
//! second administrator; nobody can write another's name as approver; site protocols are validated
//! with the whole library and a malformed one is refused naming line and field.

use crate::common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use ketcare_core::Role;
use ketcare_store::Backend;
use serde_json::json;

#[tokio::test]
async fn narrowing_applies_widening_needs_a_second_administrator() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.set_test_site_settings().await;
    app.add_user("ann", Role::Administrator).await;
    app.add_user("bob", Role::Administrator).await;
    app.add_user("priya", Role::Prescriber).await;
    let (ann, bob, doc) = (
        app.bearer("ann").await,
        app.bearer("bob").await,
        app.bearer("priya").await,
    );
    let url = "/api/v1/site-settings/limits";

    // Narrow the hard limit from the cited 1.0 mg/kg (R19) to 0.8 mg/kg: in force at once.
    let r = app.json(Method::POST, url, &ann, &json!({"protocol_id": "trd-adult-iv-ketamine", "limit_id": "max-mg-per-kg-hard", "value": 0.8, "reason": "clinic ceiling"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["outcome"], "applied");
    let order = json!({"protocol_id": "trd-adult-iv-ketamine", "patient": {"weight_kg": 70, "age": {"years": 40}}, "infusion": {"step": 4}});
    let refused = app.json(Method::POST, "/api/v1/dose", &doc, &order).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("max-mg-per-kg-hard"),
        "{}",
        refused.body
    );

    // Widen past the cited value: a proposal, not a change.
    let r = app.json(Method::POST, url, &ann, &json!({"protocol_id": "trd-adult-iv-ketamine", "limit_id": "max-mg-per-kg-hard", "value": 1.2, "reason": "research arm"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let pid = r.json()["proposal_id"].as_i64().unwrap();
    assert!(
        app.json(Method::POST, "/api/v1/dose", &doc, &order)
            .await
            .body
            .contains("max-mg-per-kg-hard"),
        "still 0.8"
    );

    // The proposer cannot approve; a prescriber cannot; a second administrator can.
    let approve = format!("/api/v1/site-settings/proposals/{pid}/approve");
    let own = app
        .send(
            Method::POST,
            &approve,
            &ann,
            Some("application/json"),
            "{}".into(),
            &[],
        )
        .await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", own.body);
    assert_eq!(
        app.send(
            Method::POST,
            &approve,
            &doc,
            Some("application/json"),
            "{}".into(),
            &[]
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let ok = app
        .send(
            Method::POST,
            &approve,
            &bob,
            Some("application/json"),
            "{}".into(),
            &[],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let o = &ok.json()["settings"]["limit_overrides"][0];
    assert_eq!(
        (
            o["value"].as_f64(),
            o["set_by"].as_str(),
            o["second_approver"].as_str()
        ),
        (Some(1.2), Some("ann"), Some("bob"))
    );
    let again = app
        .send(
            Method::POST,
            &approve,
            &bob,
            Some("application/json"),
            "{}".into(),
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let calc = app.json(Method::POST, "/api/v1/dose", &doc, &order).await;
    assert_eq!(
        calc.status,
        StatusCode::OK,
        "1.0 mg/kg is within the approved 1.2: {}",
        calc.body
    );

    // The settings document cannot carry a forged approver.
    let current = app.get("/api/v1/site-settings", &ann).await.json()["settings"].clone();
    let mut forged = current.clone();
    forged["limit_overrides"][0]["value"] = json!(5.0);
    let r = app
        .json(
            Method::PUT,
            "/api/v1/site-settings",
            &ann,
            &json!({"settings": forged, "reason": "x"}),
        )
        .await;
    assert_eq!(
        r.fields(),
        vec!["limit_overrides"],
        "{} {}",
        r.status,
        r.body
    );

    let log = app.get("/api/v1/audit?action=settings.", &ann).await.json();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in ["settings.update", "settings.propose", "settings.approve"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[tokio::test]
async fn site_protocols_are_validated_with_the_library() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("ann", Role::Administrator).await;
    app.add_user("priya", Role::Prescriber).await;
    let ann = app.bearer("ann").await;
    let builtin =
        include_str!("../../../ketcare-clinical/data/protocols/trd-adult-iv-ketamine.toml");
    let mine = builtin
        .replace("id = \"trd-adult-iv-ketamine\"", "id = \"site-trd-adult-iv-ketamine-60min\"")
        .replace("duration_minutes = { value = 40, source = [\"R17\", \"R19\"], status = \"V\" }", "duration_minutes = { value = 60, source = [\"R20\"], status = \"V\", note = \"site: 60 min sessions (R20: 2-100 min shown safe)\" }");
    assert_ne!(mine, builtin);

    // A malformed file names the line and the field.
    let bad = mine.replace("bound = \"max\"", "bound = \"sideways\"");
    let r = app
        .json(
            Method::POST,
            "/api/v1/site-protocols",
            &ann,
            &json!({"file_name": "site-trd-60.toml", "toml": bad}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("site/site-trd-60.toml") && r.body.contains("bound"),
        "{}",
        r.body
    );
    // So does a value without a known source.
    let unsourced = mine.replace(
        "source = [\"R20\"], status = \"V\", note",
        "source = [\"R999\"], status = \"V\", note",
    );
    let r = app
        .json(
            Method::POST,
            "/api/v1/site-protocols",
            &ann,
            &json!({"file_name": "site-trd-60.toml", "toml": unsourced}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    let doc = app.bearer("priya").await;
    let r = app
        .json(
            Method::POST,
            "/api/v1/site-protocols",
            &doc,
            &json!({"file_name": "site-trd-60.toml", "toml": mine}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .json(
            Method::POST,
            "/api/v1/site-protocols",
            &ann,
            &json!({"file_name": "site-trd-60.toml", "toml": mine}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let p = app
        .get("/api/v1/protocols/site-trd-adult-iv-ketamine-60min", &doc)
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.json()["file"], "site/site-trd-60.toml");
    assert_eq!(
        app.get("/api/v1/site-protocols", &doc)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A site's own protocol (North's 60-minute infusion): listed with its site, ordered only by
/// North's prescribers, its sessions held only in North's chairs; a new version keeps its owner.
#[tokio::test]
async fn a_sites_own_protocol_is_ordered_and_given_at_that_site_only() {
    for backend in ketcare_store::testing::BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings().await;
        let north = app.add_site("North", "").await;
        let system = ketcare_core::Actor::system(Role::Administrator);
        let scope = |id| ketcare_store::SiteScope::Only(vec![id]);
        let mut ids = std::collections::HashMap::new();
        for (name, role, site) in [
            ("doc-main", Role::Prescriber, Some(1)),
            ("doc-north", Role::Prescriber, Some(north)),
            ("ann", Role::Administrator, None),
            ("pharm", Role::Pharmacist, None),
            ("pharm-main", Role::Pharmacist, Some(1)),
            ("nurse", Role::Nurse, None),
            ("writer", Role::Nurse, None),
        ] {
            let u = app.add_user(name, role).await;
            ids.insert(name, u.id.get());
            if let Some(site) = site {
                app.store
                    .set_user_sites(&system, u.id, &scope(site))
                    .await
                    .unwrap();
            }
        }
        let chairs = ketcare_core::Actor::system(Role::Scheduler);
        app.store
            .add_chair_at(&chairs, Some(1), "Chair 1")
            .await
            .unwrap();
        app.store
            .add_chair_at(&chairs, Some(north), "North 1")
            .await
            .unwrap();
        let builtin =
            include_str!("../../../ketcare-clinical/data/protocols/trd-adult-iv-ketamine.toml");
        let id = "north-trd-adult-iv-ketamine-60min";
        let mine = builtin
            .replace("id = \"trd-adult-iv-ketamine\"", &format!("id = \"{id}\""))
            .replace("duration_minutes = { value = 40, source = [\"R17\", \"R19\"], status = \"V\" }", "duration_minutes = { value = 60, source = [\"R20\"], status = \"V\", note = \"site: 60 min sessions (R20: 2-100 min shown safe)\" }");
        let ann = app.bearer("ann").await;
        let r = app
            .json(
                Method::POST,
                "/api/v1/site-protocols",
                &ann,
                &json!({"file_name": "north-trd-60.toml", "toml": mine, "site": north}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        // A new version keeps its owner: as the organisation's it is refused, naming `site`.
        let r = app
            .json(
                Method::POST,
                "/api/v1/site-protocols",
                &ann,
                &json!({"file_name": "north-trd-60.toml", "toml": mine}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), ["site"], "{}", r.body);
        let (doc_main, doc_north) = (app.bearer("doc-main").await, app.bearer("doc-north").await);
        let (pharm, nurse) = (app.bearer("pharm").await, app.bearer("nurse").await);
        let p = app
            .get(&format!("/api/v1/protocols/{id}"), &doc_north)
            .await;
        assert_eq!(p.json()["site"], north, "{}", p.body);

        let writer = app.login("writer").await;
        let pid = common::patient_born(&app, &writer, "T-100", "1980-05-01").await;
        ketcare_store::testing::consent_on_file(
            app.store.as_ref(),
            ketcare_core::PatientId::new(pid),
            id,
            1,
            jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24),
        )
        .await;
        let body = json!({"protocol_id": id,
            "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}});
        let orders = format!("/api/v1/patients/{pid}/orders");
        // The main site's prescriber cannot order North's protocol.
        let r = app.json(Method::POST, &orders, &doc_main, &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), ["protocol_id"], "{}", r.body);
        // North's does; its session is refused in a main-site chair and held in North's.
        let r = app.json(Method::POST, &orders, &doc_north, &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let oid = r.json()["id"].as_i64().unwrap();
        // Verified only by someone who works at North.
        let v = app
            .json(
                Method::POST,
                &format!("/api/v1/orders/{oid}/verify"),
                &app.bearer("pharm-main").await,
                &json!({}),
            )
            .await;
        assert_eq!(v.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", v.body);
        assert_eq!(v.fields(), ["order"], "{}", v.body);
        let v = app
            .json(
                Method::POST,
                &format!("/api/v1/orders/{oid}/verify"),
                &pharm,
                &json!({}),
            )
            .await;
        assert_eq!(v.status, StatusCode::OK, "{}", v.body);
        let sessions = format!("/api/v1/patients/{pid}/sessions");
        let r = app
            .json(
                Method::POST,
                &sessions,
                &nurse,
                &json!({"order_id": oid, "chair": "Chair 1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), ["order_id"], "{}", r.body);
        let r = app
            .json(
                Method::POST,
                &sessions,
                &nurse,
                &json!({"order_id": oid, "chair": "North 1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        // The store holds the rule itself, for code that skips the application layer: the same
        // session in a main-site chair, and a course of the protocol booked there, are refused.
        let sid = ketcare_core::SessionId::new(r.json()["id"].as_i64().unwrap());
        let everywhere = ketcare_core::Actor::system(Role::Nurse);
        let mut moved = app
            .store
            .session_record(&everywhere, sid)
            .await
            .unwrap()
            .session;
        moved.chair = "Chair 1".into();
        let refused = app
            .store
            .create_treatment_session(&everywhere, ketcare_core::PatientId::new(pid), &moved)
            .await;
        assert!(
            matches!(&refused, Err(ketcare_store::StoreError::Invalid(e)) if e.0[0].field == "order_id"),
            "{backend:?}: {refused:?}"
        );
        let chair = app
            .store
            .chairs(&chairs)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name == "Chair 1")
            .unwrap();
        let nurse_id = ids["nurse"];
        let start = jiff::civil::date(2030, 1, 7).at(9, 0, 0, 0);
        let booking = ketcare_ops::schedule::Booking {
            id: ketcare_core::BookingId::new(0),
            course_id: None,
            patient_id: pid,
            chair_id: chair.id,
            nurse_id,
            prescriber_required: false,
            start,
            end: start + jiff::Span::new().hours(2),
            status: ketcare_ops::schedule::BookingStatus::Booked,
            phase: ketcare_ops::schedule::PhaseKind::Induction,
        };
        let course = ketcare_store::NewCourse {
            patient_id: ketcare_core::PatientId::new(pid),
            template_id: "induction".into(),
            protocol_id: id.into(),
        };
        let refused = app
            .store
            .book(&chairs, Some(&course), &[booking], Default::default())
            .await;
        assert!(
            matches!(&refused, Err(ketcare_store::StoreError::Invalid(e)) if e.0[0].field == "protocol_id"),
            "{backend:?}: {refused:?}"
        );
    }
}
