//! A site's own settings, on SQLite and PostgreSQL: a key of one site's sessions set at North
//! decides North's sessions only (at scheduling, and at once for a session already open), a key
//! the organisation reads for every site is refused naming it, another site's settings answer
//! 404, and the page shows which values the site set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use axum::http::{Method, StatusCode};
use ketcare_core::{Actor, Role};
use ketcare_store::SiteScope;
use ketcare_store::testing::BACKENDS;
use serde_json::json;

const HR: &str = "session.alarm.heart_rate_high_bpm";

/// The heart-rate alarm threshold a session's plan holds (None while unset).
async fn hr_alarm(app: &TestApp, sid: i64, auth: &Auth) -> Option<f64> {
    let r = app.get(&format!("/api/v1/sessions/{sid}"), auth).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    let plan = v
        .pointer("/session/plan")
        .or_else(|| v.pointer("/plan"))
        .expect("the session carries its plan");
    plan.pointer("/alarms/heart_rate_high/Set/value")
        .and_then(serde_json::Value::as_f64)
}

#[tokio::test]
async fn a_site_sets_its_own_session_keys_and_only_its_sessions_follow() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings_with(&[
            ("session.ketamine.bp_gate_systolic_mmhg", 140.0),
            ("session.ketamine.bp_gate_diastolic_mmhg", 90.0),
            (HR, 120.0),
        ])
        .await;
        let s = app.store.as_ref();
        let system = Actor::system(Role::Administrator);
        let north = app.add_site("North", "").await;
        let scheduler = Actor::system(Role::Scheduler);
        s.add_chair_at(&scheduler, Some(1), "Main 1").await.unwrap();
        s.add_chair_at(&scheduler, Some(north), "North 1")
            .await
            .unwrap();
        for (name, role) in [
            ("doc", Role::Prescriber),
            ("pharm", Role::Pharmacist),
            ("nurse", Role::Nurse),
            ("boss", Role::Administrator),
        ] {
            app.add_user(name, role).await;
        }
        let main_nurse = app.add_user("main-nurse", Role::Nurse).await;
        s.set_user_sites(&system, main_nurse.id, &SiteScope::Only(vec![1]))
            .await
            .unwrap();
        let (doc, pharm, nurse, boss) = (
            app.bearer("doc").await,
            app.bearer("pharm").await,
            app.bearer("nurse").await,
            app.bearer("boss").await,
        );
        let main_nurse = app.bearer("main-nurse").await;
        let writer = app.login("nurse").await;
        let pid = patient_born(&app, &writer, "SS-1", "1980-05-01").await;
        let pid = pid.to_string();
        let order = json!({
            "protocol_id": "trd-adult-iv-ketamine",
            "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}});
        let (_, at_main) = app
            .verified_order_session(&pid, (&doc, &pharm, &nurse), &order, "Main 1")
            .await;
        assert_eq!(hr_alarm(&app, at_main, &nurse).await, Some(120.0));

        // North sets its own threshold: its open sessions follow at once (none yet), the
        // settings in force there say whose each value is.
        let put = |site: i64, own: serde_json::Value, reason: &str| {
            let body = json!({"own": own, "reason": reason});
            let app = &app;
            let boss = &boss;
            async move {
                app.json(
                    Method::PUT,
                    &format!("/api/v1/sites/{site}/settings"),
                    boss,
                    &body,
                )
                .await
            }
        };
        let r = put(
            north,
            json!({"values": {HR: 100}}),
            "North's cardiac policy",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
        let v = r.json();
        assert_eq!(v["settings"]["values"][HR], 100.0, "{v}");
        assert_eq!(v["own"]["values"][HR], 100.0);
        assert!(v["version"].as_i64() > v["organisation_version"].as_i64());
        assert!(
            v["per_site_keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == HR),
            "{v}"
        );
        // The organisation's key the site did not set is the organisation's.
        assert_eq!(
            v["settings"]["values"]["session.ketamine.bp_gate_systolic_mmhg"],
            140.0
        );
        let (_, at_north) = app
            .verified_order_session(&pid, (&doc, &pharm, &nurse), &order, "North 1")
            .await;
        assert_eq!(hr_alarm(&app, at_north, &nurse).await, Some(100.0));
        assert_eq!(hr_alarm(&app, at_main, &nurse).await, Some(120.0));

        // A change at North reaches North's open session at once; the main site's is untouched.
        let r = put(north, json!({"values": {HR: 110}}), "revised").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(hr_alarm(&app, at_north, &nurse).await, Some(110.0));
        assert_eq!(hr_alarm(&app, at_main, &nurse).await, Some(120.0));
        // An organisation change reaches both, except where North set its own.
        app.set_test_site_settings_with(&[
            ("session.ketamine.bp_gate_systolic_mmhg", 140.0),
            ("session.ketamine.bp_gate_diastolic_mmhg", 90.0),
            (HR, 125.0),
        ])
        .await;
        let changed = ketcare_app::sessions::service::apply_settings(
            s,
            &ketcare_clinical::Library::builtin().unwrap(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
        assert_eq!(changed.len(), 1, "only the main site's session changes");
        assert_eq!(hr_alarm(&app, at_main, &nurse).await, Some(125.0));
        assert_eq!(hr_alarm(&app, at_north, &nurse).await, Some(110.0));

        // Wrong inputs: a key the organisation reads for every site (dose rounding), an unknown
        // key and a value out of range are each refused naming the key; nothing is stored.
        let r = put(
            north,
            json!({"values": {"rounding.dose_mg_increment": 5, "session.alarm.no_such": 1, HR: -5}}),
            "try",
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        let mut fields = r.fields();
        fields.sort();
        fields.dedup();
        // The merged set's own check refuses the out-of-range value too ("settings").
        assert_eq!(
            fields,
            vec![
                "rounding.dose_mg_increment",
                HR,
                "session.alarm.no_such",
                "settings"
            ]
        );
        assert!(r.body.contains("the organisation's setting"), "{}", r.body);
        let r = put(north, json!({"values": {HR: 90}}), "  ").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), vec!["reason"]);
        assert_eq!(hr_alarm(&app, at_north, &nurse).await, Some(110.0));
        // An unknown site, and a site that is not the caller's, answer 404; a nurse may read her
        // site's settings but not change them.
        assert_eq!(put(999, json!({}), "x").await.status, StatusCode::NOT_FOUND);
        let r = app
            .get(&format!("/api/v1/sites/{north}/settings"), &main_nurse)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert!(!r.body.contains("110"), "{}", r.body);
        let r = app.get("/api/v1/sites/1/settings", &main_nurse).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["settings"]["values"][HR], 125.0);
        let r = app
            .json(
                Method::PUT,
                "/api/v1/sites/1/settings",
                &main_nurse,
                &json!({"own": {}, "reason": "x"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

        // The page: North's value is marked as the site's; clearing it (a reason required)
        // gives North the organisation's value back, and its open session follows.
        let page_boss = app.login("boss").await;
        let page = app
            .get(&format!("/sites/{north}/settings"), &page_boss)
            .await;
        assert_eq!(page.status, StatusCode::OK);
        let row = page
            .body
            .split(&format!("id=\"setting-{HR}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap()
            .to_owned();
        assert!(
            row.contains("set by this site") && row.contains("110"),
            "{row}"
        );
        assert!(
            !page
                .body
                .contains("id=\"setting-rounding.dose_mg_increment\""),
            "dose rounding is not a site's key"
        );
        let r = app
            .post_form(
                &format!("/sites/{north}/settings"),
                &page_boss,
                &[("key", HR), ("clear", "1"), ("reason", "")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("reason:"), "{}", r.body);
        let r = app
            .post_form(
                &format!("/sites/{north}/settings"),
                &page_boss,
                &[
                    ("key", HR),
                    ("clear", "1"),
                    ("reason", "back to the organisation's"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(hr_alarm(&app, at_north, &nurse).await, Some(125.0));
        // Every change is audited with the site it was for.
        let audit = s
            .audit_records(
                &system,
                &ketcare_store::AuditFilter {
                    action: Some("settings.update".into()),
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let site_changes = audit
            .iter()
            .filter(|a| a.detail.contains(&format!("of site {north}")))
            .count();
        assert_eq!(site_changes, 3, "{backend:?}");
    }
}
