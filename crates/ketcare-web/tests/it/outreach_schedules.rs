//! Course schedules on both backends: the runner sends each occurrence once at its time, and a
//! second runner on its own connection to the same database (a restart, or two servers) finds it
//! sent; after a pause only the newest due occurrence goes; consent decides whether a message
//! goes with the link. The API adds a schedule and refuses a bad one by field.

use crate::common;
use crate::outreach::{consenting_patient, delivery_settings_with, prefer};

use axum::http::{Method, StatusCode};
use common::{START, TestApp};
use ketcare_core::{Actor, BookingId, Role};
use ketcare_store::testing::BACKENDS;
use serde_json::json;

const DAY: i64 = 86_400;

/// A PHQ-9 course starting on the test clock's day (in `zone`), made through the API.
async fn course_today(
    app: &TestApp,
    pid: i64,
    nurse: &common::Auth,
    zone: &jiff::tz::TimeZone,
) -> i64 {
    let today = jiff::Timestamp::from_second(START)
        .unwrap()
        .to_zoned(zone.clone())
        .date()
        .to_string();
    let c = app
        .json(
            Method::POST,
            &format!("/api/v1/patients/{pid}/courses"),
            nurse,
            &json!({"label": "Induction", "instrument": "phq9", "started_on": today}),
        )
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.body);
    c.json()["id"].as_i64().unwrap()
}

#[tokio::test]
async fn occurrences_go_once_at_their_time_across_runners() {
    let utc = jiff::tz::TimeZone::UTC;
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, nurse) = consenting_patient(&app).await;
        let cid = course_today(&app, pid, &nurse, &utc).await;

        let bad = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/courses/{cid}/schedules"),
                &nurse,
                &json!({"schedule": {"kind": "every_days", "days": 0}}),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.fields(), vec!["days"]);
        let other = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/courses/{}/schedules", cid + 1000),
                &nurse,
                &json!({"schedule": {"kind": "every_days", "days": 14}}),
            )
            .await;
        assert_eq!(other.fields(), vec!["course_id"]);
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/courses/{cid}/schedules"),
                &nurse,
                &json!({"schedule": {"kind": "every_days", "days": 14, "restart_at_treatment": true}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        let s = app.store.as_ref();
        let run = |at: i64| ketcare_app::outreach::run_schedules(s, at, &utc);
        assert!(run(START).await.unwrap().is_empty(), "nothing due on day 0");
        assert!(run(START + 13 * DAY).await.unwrap().is_empty());
        // Day 14 (from midnight): one link, its message queued with it.
        let made = run(START + 14 * DAY).await.unwrap();
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].instruments, vec!["phq9".to_string()]);
        assert!(
            run(START + 14 * DAY + 60).await.unwrap().is_empty(),
            "not twice"
        );

        // A second runner with its own store on the same database finds it sent, and two
        // runners at once send the next occurrence once between them.
        let second = ketcare_store::open(&app.url).await.unwrap();
        assert!(
            ketcare_app::outreach::run_schedules(second.as_ref(), START + 15 * DAY, &utc)
                .await
                .unwrap()
                .is_empty()
        );
        let (a, b) = tokio::join!(
            ketcare_app::outreach::run_schedules(s, START + 28 * DAY, &utc),
            ketcare_app::outreach::run_schedules(second.as_ref(), START + 28 * DAY, &utc),
        );
        assert_eq!(a.unwrap().len() + b.unwrap().len(), 1);

        // After a pause of six weeks only the newest due occurrence is sent.
        let made = run(START + 70 * DAY).await.unwrap();
        assert_eq!(made.len(), 1);
        assert!(run(START + 70 * DAY).await.unwrap().is_empty());

        let links = app
            .get(&format!("/api/v1/patients/{pid}/links"), &nurse)
            .await
            .json();
        assert_eq!(links.as_array().unwrap().len(), 3);
        let messages = app
            .get(&format!("/api/v1/patients/{pid}/messages"), &nurse)
            .await
            .json();
        assert_eq!(messages.as_array().unwrap().len(), 3);
        assert!(
            messages
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["status"] == "queued")
        );

        // Consent withdrawn: the next occurrence still makes its link, with no message.
        prefer(
            &app,
            pid,
            &nurse,
            json!({"channel": "email", "consented": false}),
        )
        .await;
        assert_eq!(run(START + 84 * DAY).await.unwrap().len(), 1);
        let messages = app
            .get(&format!("/api/v1/patients/{pid}/messages"), &nurse)
            .await
            .json();
        assert_eq!(messages.as_array().unwrap().len(), 3);
    }
}

#[tokio::test]
async fn a_questionnaire_goes_a_day_before_each_booked_session() {
    let zone = jiff::tz::TimeZone::system();
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, nurse) = consenting_patient(&app).await;
        let cid = course_today(&app, pid, &nurse, &zone).await;
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/courses/{cid}/schedules"),
                &nurse,
                &json!({"schedule": {"kind": "before_each_session", "hours": 24}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        // Booking needs the site's answer on a prescriber on site (test clinic: not required).
        delivery_settings_with(&app, &[], &[("schedule.ketamine_prescriber_on_site", 2.0)]).await;
        app.add_user("sam-sched", Role::Scheduler).await;
        let sched_page = app.login("sam-sched").await;
        let sched = app.bearer("sam-sched").await;
        let nurse_id = app.add_user("nora", Role::Nurse).await.id.get();
        let ids = app
            .book_course_tomorrow((&sched_page, &sched), pid, nurse_id, "Chair 1")
            .await;
        let second = app
            .store
            .booking(&Actor::system(Role::Scheduler), BookingId::new(ids[1]))
            .await
            .unwrap();
        let due = second
            .start
            .to_zoned(zone.clone())
            .unwrap()
            .timestamp()
            .as_second()
            - 24 * 3600;
        let s = app.store.as_ref();
        // Tomorrow's session was due a day before, before the schedule was added: not sent.
        assert!(
            ketcare_app::outreach::run_schedules(s, START, &zone)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            ketcare_app::outreach::run_schedules(s, due - 1, &zone)
                .await
                .unwrap()
                .is_empty()
        );
        let made = ketcare_app::outreach::run_schedules(s, due, &zone)
            .await
            .unwrap();
        assert_eq!(made.len(), 1);
        assert!(
            ketcare_app::outreach::run_schedules(s, due + 60, &zone)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn staff_list_a_courses_schedules_with_the_next_occurrence_and_stop_one() {
    let zone = jiff::tz::TimeZone::system();
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, nurse) = consenting_patient(&app).await;
        let cid = course_today(&app, pid, &nurse, &zone).await;
        let mut ids = Vec::new();
        for rule in [
            json!({"kind": "every_days", "days": 14}),
            json!({"kind": "after_first_dose", "days": [1, 7]}),
        ] {
            let r = app
                .json(
                    Method::POST,
                    &format!("/api/v1/patients/{pid}/courses/{cid}/schedules"),
                    &nurse,
                    &json!({ "schedule": rule }),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            ids.push(r.json()["id"].as_i64().unwrap());
        }
        let list = app
            .get(&format!("/api/v1/patients/{pid}/schedules"), &nurse)
            .await
            .json();
        let day14 = jiff::Timestamp::from_second(START + 14 * DAY)
            .unwrap()
            .to_zoned(zone.clone())
            .date();
        assert_eq!(list[0]["rule"], "every 14 days");
        assert_eq!(list[0]["instrument"], "phq9");
        assert_eq!(list[0]["next_at"], format!("{day14}T00:00:00"));
        assert!(list[0]["stopped_at"].is_null());
        // No dose yet: nothing counted from the first dose is due.
        assert_eq!(list[1]["rule"], "on days 1, 7 after the first dose");
        assert!(list[1]["next_at"].is_null());

        // The nurse stops the first: who and when are kept; a second stop is refused.
        let stop = format!("/api/v1/patients/{pid}/schedules/{}/stop", ids[0]);
        let r = app.json(Method::POST, &stop, &nurse, &json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["stopped_by"], "nina");
        assert!(r.json()["stopped_at"].is_string());
        let again = app.json(Method::POST, &stop, &nurse, &json!({})).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert!(
            again.body.contains("stopped already by nina"),
            "{}",
            again.body
        );
        // Another patient's schedule id under this patient: not found.
        let other = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{}/schedules/{}/stop", pid + 1000, ids[1]),
                &nurse,
                &json!({}),
            )
            .await;
        assert_eq!(other.status, StatusCode::NOT_FOUND);

        // The runner sends nothing for it on its day (nor later).
        let s = app.store.as_ref();
        for at in [START + 14 * DAY, START + 28 * DAY] {
            assert!(
                ketcare_app::outreach::run_schedules(s, at, &zone)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        let list = app
            .get(&format!("/api/v1/patients/{pid}/schedules"), &nurse)
            .await
            .json();
        assert!(list[0]["next_at"].is_null());

        // The contact page lists both, the stopped one with who stopped it; the other is
        // stopped from the page.
        let page = app.login("nina").await;
        let contact = app.get(&format!("/patients/{pid}/contact"), &page).await;
        assert!(contact.body.contains("stopped "), "{}", contact.body);
        assert!(contact.body.contains("by nina"), "{}", contact.body);
        assert!(contact.body.contains("on days 1, 7 after the first dose"));
        let stopped = app
            .post_form(
                &format!("/patients/{pid}/schedules/{}/stop", ids[1]),
                &page,
                &[],
            )
            .await;
        assert_eq!(stopped.status, StatusCode::SEE_OTHER);
        let list = app
            .get(&format!("/api/v1/patients/{pid}/schedules"), &nurse)
            .await
            .json();
        assert!(list[1]["stopped_at"].is_string());

        // Each stop is audited.
        app.add_user("alex", Role::Administrator).await;
        let log = app
            .get(
                "/api/v1/audit?action=measure_schedule.stop&limit=50",
                &app.bearer("alex").await,
            )
            .await
            .json();
        assert_eq!(log.as_array().unwrap().len(), 2, "{log}");
    }
}
