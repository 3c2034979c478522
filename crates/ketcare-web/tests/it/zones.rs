//! A site's time zone, on SQLite and PostgreSQL: a user of a site with a zone of its own reads
//! "today" and every time on a page in that zone, a user of a site without one in the server's,
//! and a booking's wall-clock time is its chair's site's when an integration reads it as an
//! instant (FHIR `Appointment`).

use crate::common::{Auth, START, TestApp, book_one};
use axum::http::StatusCode;
use jiff::civil::date;
use jiff::tz::TimeZone;
use ketcare_core::patient::{NewPatient, PatientInput};
use ketcare_core::{Actor, Role};
use ketcare_store::testing::BACKENDS;
use ketcare_store::{NewSite, SiteScope};

/// A zone whose date at the test clock differs from the server's.
fn other_zone() -> (&'static str, jiff::civil::Date) {
    let now = jiff::Timestamp::from_second(START).unwrap();
    let server = now.to_zoned(TimeZone::system()).date();
    ["Pacific/Kiritimati", "Pacific/Pago_Pago"]
        .into_iter()
        .map(|z| (z, now.to_zoned(TimeZone::get(z).unwrap()).date()))
        .find(|(_, d)| *d != server)
        .expect("one of UTC+14 and UTC-11 is on another date")
}

async fn scheduler(app: &TestApp, name: &str, site: i64) -> (Actor, Auth, Auth) {
    let u = app.add_user(name, Role::Scheduler).await;
    app.store
        .set_user_sites(
            &Actor::system(Role::Administrator),
            u.id,
            &SiteScope::Only(vec![site]),
        )
        .await
        .unwrap();
    let page = app.login(name).await;
    let api = app.bearer(name).await;
    (Actor::user(u.id, name, Role::Scheduler, "test"), page, api)
}

#[tokio::test]
async fn a_sites_zone_decides_its_today_and_its_bookings_instants() {
    let (zone, north_today) = other_zone();
    let server_today = jiff::Timestamp::from_second(START)
        .unwrap()
        .to_zoned(TimeZone::system())
        .date();
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings().await;
        let admin = Actor::system(Role::Administrator);
        let north = app
            .store
            .create_site(
                &admin,
                &NewSite {
                    name: "North".into(),
                    time_zone: zone.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        let (_, main_page, _) = scheduler(&app, "main-sched", 1).await;
        let (north_actor, north_page, north_api) = scheduler(&app, "north-sched", north).await;

        // "Today" is each user's site's: the schedule opens on it.
        let r = app.get("/schedule", &north_page).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains(&format!("Schedule — {north_today}")),
            "{backend:?}: North's schedule opens on North's today ({north_today})"
        );
        let r = app.get("/schedule", &main_page).await;
        assert!(
            r.body.contains(&format!("Schedule — {server_today}")),
            "{backend:?}: a site without a zone keeps the server's today"
        );

        // A booking at 09:00 on a North chair is 09:00 in North's zone, for any reader.
        let s = app.store.as_ref();
        let chair = s
            .add_chair_at(&north_actor, Some(north), "North 1")
            .await
            .unwrap();
        let input = PatientInput {
            mrn: "ZONE-1".into(),
            given_name: "Tia".into(),
            family_name: "Zone".into(),
            date_of_birth: "1980-01-01".into(),
            sex: "female".into(),
            ..Default::default()
        };
        let patient = s
            .create_patient(
                &Actor::system(Role::Nurse),
                &NewPatient::parse(&input, date(2026, 12, 1)).unwrap(),
            )
            .await
            .unwrap()
            .id;
        let nurse = app.add_user("north-nurse", Role::Nurse).await;
        s.set_user_sites(&admin, nurse.id, &SiteScope::Only(vec![north]))
            .await
            .unwrap();
        let start = date(2026, 12, 10).at(9, 0, 0, 0);
        book_one(
            s,
            &north_actor,
            (patient.get(), chair.id, nurse.id.get()),
            start,
        )
        .await;
        let r = app
            .get(
                &format!("/fhir/r4/Appointment?patient={}", patient.get()),
                &north_api,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let shown: jiff::Timestamp = r.json()["entry"][0]["resource"]["start"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let expected = start
            .to_zoned(TimeZone::get(zone).unwrap())
            .unwrap()
            .timestamp();
        assert_eq!(shown, expected, "{backend:?}: 09:00 at North is {expected}");
    }
}

/// A dose order's age is the patient's on the day of care at the prescriber's site: a patient
/// who turns 18 on one site's date but is still 17 on the other's is an adult for the adult
/// protocol at the first site only.
#[tokio::test]
async fn an_orders_age_is_taken_on_the_prescribers_sites_day() {
    let (zone, north_today) = other_zone();
    let server_today = jiff::Timestamp::from_second(START)
        .unwrap()
        .to_zoned(TimeZone::system())
        .date();
    let later = north_today.max(server_today);
    let born: &'static str = Box::leak(
        later
            .checked_sub(jiff::Span::new().years(18))
            .unwrap()
            .to_string()
            .into_boxed_str(),
    );
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings().await;
        let admin = Actor::system(Role::Administrator);
        let north = app
            .store
            .create_site(
                &admin,
                &NewSite {
                    name: "North".into(),
                    time_zone: zone.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        for (name, site) in [("doc-main", 1), ("doc-north", north)] {
            let u = app.add_user(name, Role::Prescriber).await;
            app.store
                .set_user_sites(&admin, u.id, &SiteScope::Only(vec![site]))
                .await
                .unwrap();
        }
        app.add_user("writer", Role::Nurse).await;
        let writer = app.login("writer").await;
        let pid = crate::common::patient_born(&app, &writer, "AGE-18", born).await;
        let body = serde_json::json!({"protocol_id": "trd-adult-iv-ketamine",
            "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}});
        let path = format!("/api/v1/patients/{pid}/orders");
        // The age the order's checks used: the computed age of the 18-year floor.
        let age = |name: &'static str| {
            let (app, body, path) = (&app, &body, &path);
            async move {
                let token = app.bearer(name).await;
                let r = app.json(axum::http::Method::POST, path, &token, body).await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
                let v = r.json();
                let floor = v["order"]["calculation"]["limit_checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["limit_id"] == "age-min-soft")
                    .cloned()
                    .unwrap();
                (
                    floor["computed"].as_f64().unwrap(),
                    v["order"]["state"].clone(),
                )
            }
        };
        let (adult_at, minor_at) = if north_today > server_today {
            ("doc-north", "doc-main")
        } else {
            ("doc-main", "doc-north")
        };
        let (years, state) = age(minor_at).await;
        assert_eq!(years, 17.0, "{backend:?} {minor_at}");
        assert_eq!(state, "needs_override", "{backend:?}: under the floor");
        let (years, state) = age(adult_at).await;
        assert_eq!(years, 18.0, "{backend:?} {adult_at}");
        assert_ne!(state, "needs_override", "{backend:?}");
    }
}
