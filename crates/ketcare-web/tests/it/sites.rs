//! Site scoping at every edge, on SQLite and PostgreSQL: every route that names a site-owned
//! record (a session, a booking) is called by a user of every role at site B with site A's
//! record, and refused without showing it or changing it; every list a site-B user opens (the
//! suite, the schedule, the ledger, the worklists) leaves site A out; the medical director, a
//! user of every site, sees both.

use crate::common::{TestApp, book_one};
use axum::http::{Method, StatusCode};
use jiff::civil::date;
use ketcare_core::patient::{NewPatient, PatientInput};
use ketcare_core::{Actor, BookingId, Role, UserId};
use ketcare_ops::ledger::LedgerEvent;
use ketcare_ops::schedule::BookingStatus;
use ketcare_store::SiteScope;
use ketcare_store::testing::BACKENDS;
use ketcare_web::routes::{Verb, rules};

const MRN: &str = "SITE-A-MRN-1";
const LOT: &str = "LOT-SITE-A";
const CHAIR: &str = "Chair A1";

async fn user(app: &TestApp, name: &str, role: Role, scope: SiteScope) -> Actor {
    let u = app.add_user(name, role).await;
    app.store
        .set_user_sites(&Actor::system(Role::Administrator), u.id, &scope)
        .await
        .unwrap();
    Actor::user(u.id, name, role, "test")
}

/// A realistic body for a route, so a refusal is the site's and not the body's.
fn body_for(path: &str, api: bool) -> String {
    let json = if path.ends_with("/commands") {
        r#"{"command": "check_in"}"#
    } else if path.ends_with("/vitals") {
        r#"{"heart_rate": 72}"#
    } else if path.ends_with("/status") {
        r#"{"status": "cancelled", "reason": "walk"}"#
    } else if path.ends_with("/move") {
        r#"{"start": "2026-12-11T09:00", "mode": "only_this", "apply": true}"#
    } else {
        "{}"
    };
    if api {
        json.into()
    } else {
        "command=check_in&heart_rate=72&status=cancelled&reason=walk&start=2026-12-11T09%3A00&mode=only_this&apply=1".into()
    }
}

#[tokio::test]
async fn a_user_of_site_b_walks_every_route_against_site_a_records() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings().await;
        let s = app.store.as_ref();
        let north = app.add_site("North", "").await;
        let main = 1;
        let a = |id| SiteScope::Only(vec![id]);
        let nurse_a = user(&app, "nurse-a", Role::Nurse, a(main)).await;
        let pharm_a = user(&app, "pharm-a", Role::Pharmacist, a(main)).await;
        user(&app, "director", Role::Prescriber, SiteScope::All).await;
        let mut site_b = Vec::new();
        for role in Role::ALL {
            let name = format!("b-{role}");
            user(&app, &name, role, a(north)).await;
            site_b.push((role, name));
        }
        // Site A's records: a chair, a patient's session in it, a booking, stock.
        s.add_chair_at(&Actor::system(Role::Scheduler), Some(main), CHAIR)
            .await
            .unwrap();
        s.add_chair_at(&Actor::system(Role::Scheduler), Some(north), "North 1")
            .await
            .unwrap();
        let input = PatientInput {
            mrn: MRN.into(),
            given_name: "Walker".into(),
            family_name: "Sitea".into(),
            date_of_birth: "1980-01-01".into(),
            sex: "female".into(),
            ..Default::default()
        };
        let patient = s
            .create_patient(
                &nurse_a,
                &NewPatient::parse(&input, date(2026, 12, 1)).unwrap(),
            )
            .await
            .unwrap()
            .id;
        let lib = ketcare_clinical::Library::builtin().unwrap();
        let rules_file = ketcare_session::RulesFile::builtin(lib.sources()).unwrap();
        let plan = rules_file.plan(
            lib.get("trd-adult-iv-ketamine").unwrap(),
            &ketcare_clinical::SiteSettings::new(),
            0,
        );
        ketcare_store::testing::consent_on_file(
            s,
            patient,
            &plan.protocol_id,
            plan.protocol_version,
            jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24),
        )
        .await;
        let session = ketcare_session::Session::new(plan, CHAIR, jiff::Timestamp::now());
        let sid = s
            .create_treatment_session(&nurse_a, patient, &session)
            .await
            .unwrap();
        assert_eq!(sid.site_id, main);
        let sid = sid.id;
        // Checked in: on site A's suite.
        s.apply_session_command(
            &nurse_a,
            sid,
            &ketcare_session::Command::CheckIn,
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
        let chair_a = s
            .chairs(&nurse_a)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name == CHAIR)
            .unwrap()
            .id;
        let start = date(2026, 12, 10).at(9, 0, 0, 0);
        let bid = BookingId::new(
            book_one(
                s,
                &nurse_a,
                (
                    patient.get(),
                    chair_a,
                    nurse_a.user_id.map(UserId::get).unwrap(),
                ),
                start,
            )
            .await,
        );
        s.ledger_append(
            &pharm_a,
            &LedgerEvent::Receive {
                product: "ketamine-50".into(),
                ndc: "67457-108-10".into(),
                lot: LOT.into(),
                expiry: date(2030, 1, 31),
                quantity: 1,
                invoice: "INV-A".into(),
                supplier: "Wholesaler".into(),
            },
        )
        .await
        .unwrap();
        let before = s.session_record(&nurse_a, sid).await.unwrap();

        // Every route naming a session or a booking, by every role of site B, API and page.
        let mut walked = 0;
        for (role, name) in &site_b {
            let bearer = app.bearer(name).await;
            let page = app.login(name).await;
            for rule in rules() {
                if !(rule.path.contains("/sessions/{sid}") || rule.path.contains("{bid}")) {
                    continue;
                }
                let path = rule
                    .path
                    .replace("{sid}", &sid.to_string())
                    .replace("{bid}", &bid.to_string())
                    .replace("{section}", "");
                let api = path.starts_with("/api/");
                let auth = if api { &bearer } else { &page };
                let method = Method::from_bytes(rule.verb.as_str().as_bytes()).unwrap();
                let (ct, body) = match rule.verb {
                    Verb::Get | Verb::Delete => (None, String::new()),
                    _ if api => (Some("application/json"), body_for(&path, true)),
                    _ => (
                        Some("application/x-www-form-urlencoded"),
                        body_for(&path, false),
                    ),
                };
                let r = app.send(method, &path, auth, ct, body, &[]).await;
                let label = format!("{} {} as site B's {role}", rule.verb.as_str(), path);
                assert!(
                    [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&r.status),
                    "{label}: {} {}",
                    r.status,
                    r.body
                );
                assert!(!r.body.contains(MRN), "{label} shows site A's patient");
                walked += 1;
            }
            // Every list leaves site A out.
            for path in [
                "/",
                "/suite",
                "/schedule?date=2026-12-10",
                "/api/v1/schedule/bookings?from=2026-12-10T00:00&to=2026-12-11T00:00",
                "/ledger",
                "/api/v1/ledger",
                "/api/v1/sites",
            ] {
                let auth = if path.starts_with("/api/") {
                    &bearer
                } else {
                    &page
                };
                let r = app.get(path, auth).await;
                let label = format!("GET {path} as site B's {role}");
                assert!(
                    [StatusCode::OK, StatusCode::FORBIDDEN].contains(&r.status),
                    "{label}: {} {}",
                    r.status,
                    r.body
                );
                for secret in [MRN, LOT, CHAIR, "INV-A"] {
                    assert!(!r.body.contains(secret), "{label} shows {secret}");
                }
            }
        }
        assert!(walked >= 30, "the walk reached {walked} route calls");
        // Nothing of site A changed.
        let after = s.session_record(&nurse_a, sid).await.unwrap();
        assert_eq!(after.revision, before.revision);
        assert!(s.session_vitals(&nurse_a, sid).await.unwrap().is_empty());
        assert_eq!(
            s.booking(&nurse_a, bid).await.unwrap().status,
            BookingStatus::Booked
        );
        assert_eq!(s.ledger_records(&pharm_a).await.unwrap().len(), 1);

        // The medical director, of every site, sees both; the ledger is one site's at a time.
        let director = app.bearer("director").await;
        let r = app.get(&format!("/api/v1/sessions/{sid}"), &director).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = app.get("/api/v1/ledger", &director).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("site"), "{}", r.body);
        let r = app.get("/api/v1/ledger?site=1", &director).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains(LOT));
        let r = app
            .send(
                Method::GET,
                "/api/v1/ledger",
                &director,
                None,
                String::new(),
                &[("x-ketcare-site", "1")],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // A site the caller does not work at, named by an integration, is refused.
        let r = app
            .send(
                Method::GET,
                "/api/v1/ledger",
                &app.bearer("b-nurse").await,
                None,
                String::new(),
                &[("x-ketcare-site", "1")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("X-Ketcare-Site"), "{}", r.body);
        let page = app.login("director").await;
        let r = app.get("/suite", &page).await;
        assert!(r.body.contains(CHAIR), "the director's suite shows site A");
        assert!(
            r.body.contains("site-choice"),
            "a user of two sites chooses one"
        );
    }
}

/// Stock moves from the main site to North as a pair of entries: the main site's pharmacist
/// sends sealed containers through the API (the ledger fills the lines and North's
/// registration), North's pharmacist sees the transfer due on the ledger page and receives it
/// there; each site's ledger shows its side, and the users page sets a site's registration.
#[tokio::test]
async fn stock_moves_between_sites_as_a_documented_pair_of_entries() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let s = app.store.as_ref();
        let admin = Actor::system(Role::Administrator);
        let north = app.add_site("North", "FN1234563").await;
        let main_pharm = user(
            &app,
            "main-pharm",
            Role::Pharmacist,
            SiteScope::Only(vec![1]),
        )
        .await;
        user(
            &app,
            "north-pharm",
            Role::Pharmacist,
            SiteScope::Only(vec![north]),
        )
        .await;
        app.add_user("boss", Role::Administrator).await;
        s.ledger_append(
            &main_pharm,
            &LedgerEvent::Receive {
                product: "ketamine-50".into(),
                ndc: "67457-108-10".into(),
                lot: LOT.into(),
                expiry: date(2030, 1, 31),
                quantity: 3,
                invoice: "INV-1".into(),
                supplier: "Wholesaler".into(),
            },
        )
        .await
        .unwrap();
        let api = app.bearer("main-pharm").await;
        let send = |containers: serde_json::Value| {
            serde_json::json!({"event": {"kind": "transfer_out", "to_site": north,
                "containers": containers, "invoice": "TR-1"}})
        };
        // The main site has no registration on record: refused naming to_site.
        let r = app
            .json(
                Method::POST,
                "/api/v1/ledger/events",
                &api,
                &send(serde_json::json!([1, 2])),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), vec!["to_site"]);
        assert!(r.body.contains("no DEA registration"), "{}", r.body);
        // The administrator enters it on the users page (a bad one is refused naming it).
        let boss = app.login("boss").await;
        let r = app
            .post_form(
                "/sites/1",
                &boss,
                &[("name", "Main site"), ("dea_registration", "AB1234560")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("dea_registration"), "{}", r.body);
        let r = app
            .post_form(
                "/sites/1",
                &boss,
                &[("name", "Main site"), ("dea_registration", "AB1234563")],
            )
            .await;
        assert!(
            r.status.is_success() || r.status.is_redirection(),
            "{}",
            r.body
        );
        assert_eq!(
            s.sites(&admin).await.unwrap()[0].dea_registration,
            "AB1234563"
        );
        // Sent through the API: the entry carries the lines and North's registration.
        let r = app
            .json(
                Method::POST,
                "/api/v1/ledger/events",
                &api,
                &send(serde_json::json!([1, 2])),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
        let sent = r.json();
        let body: serde_json::Value = serde_json::from_str(sent["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["to_registration"], "FN1234563");
        assert_eq!(body["lines"][0]["lot"], LOT);
        let r = app.get("/api/v1/ledger", &api).await;
        let on_hand = r.json()["on_hand"].as_array().unwrap().clone();
        let ketamine = on_hand
            .iter()
            .find(|l| l["product"] == "ketamine-50")
            .unwrap();
        assert_eq!(ketamine["containers"], 1, "three received, two sent");
        // North's pharmacist sees it due (API and page) and receives it on the page.
        let north_api = app.bearer("north-pharm").await;
        let r = app.get("/api/v1/ledger/transfers", &north_api).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json().as_array().unwrap().len(), 1);
        assert_eq!(r.json()[0]["from_entry"], sent["seq"]);
        let north_page = app.login("north-pharm").await;
        let page = app.get("/ledger", &north_page).await;
        assert!(
            page.body.contains("Transfers to receive") && page.body.contains("TR-1"),
            "{}",
            page.body
        );
        let from_entry = sent["seq"].as_i64().unwrap().to_string();
        let r = app
            .post_form(
                "/ledger",
                &north_page,
                &[
                    ("kind", "transfer_in"),
                    ("from_site", "1"),
                    ("from_entry", &from_entry),
                ],
            )
            .await;
        assert!(r.status.is_redirection(), "{}", r.body);
        let page = app.get("/ledger", &north_page).await;
        assert!(!page.body.contains("Transfers to receive"), "received once");
        assert!(
            page.body.contains("Transfer from another site"),
            "its side is an entry"
        );
        assert!(page.body.contains(LOT), "the lot is North's stock now");
        // Received once: a second receipt through the API is refused naming from_entry.
        let r = app
            .json(
                Method::POST,
                "/api/v1/ledger/events",
                &north_api,
                &serde_json::json!({"event": {"kind": "transfer_in", "from_site": 1, "from_entry": sent["seq"]}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), vec!["from_entry"]);
        // The main site's ledger shows its side; North's lot is not on the main site's page.
        let main_page = app.login("main-pharm").await;
        let page = app.get("/ledger", &main_page).await;
        assert!(
            page.body.contains("Transfer to another site")
                && page.body.contains("Sent 2 sealed containers to site"),
            "{}",
            page.body
        );
        assert!(s.verify_ledger().await.unwrap().broken.is_none());
    }
}

/// One account, a nurse at the main site and the pharmacist at North: each request acts in the
/// role of the site it is made at (the API's `X-Ketcare-Site`, the page's chooser), reaches only
/// that role's sites, and the administrator sets the roles on the users page.
#[tokio::test]
async fn an_account_acts_in_the_role_it_holds_at_the_site_it_works_at() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let north = app.add_site("North", "").await;
        let float = app.add_user("float", Role::Nurse).await;
        app.add_user("admin", Role::Administrator).await;
        let north_s = north.to_string();
        // The administrator sets the sites and the role at North on the users page.
        let admin = app.login("admin").await;
        let role_field = format!("role_{north}");
        let r = app
            .post_form(
                &format!("/users/{}/sites", float.id),
                &admin,
                &[
                    ("site", "1"),
                    ("site", &north_s),
                    ("role_1", ""),
                    (&role_field, "pharmacist"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains("pharmacist here\" selected")
                || r.body.contains("selected>pharmacist here"),
            "{}",
            r.body
        );
        // A role that is not one is refused, naming its field; nothing changes.
        let r = app
            .post_form(
                &format!("/users/{}/sites", float.id),
                &admin,
                &[("site", "1"), ("site", &north_s), (&role_field, "chief")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains(&role_field), "{}", r.body);

        let token = app.bearer("float").await;
        let sites = |r: &crate::common::Reply| r.json();
        // No site named: the account's own role, at the site where it holds it.
        let r = app.get("/api/v1/sites", &token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = sites(&r);
        assert_eq!(v["role"], "nurse", "{v}");
        assert_eq!(v["working_site"], 1, "{v}");
        assert_eq!(v["sites"].as_array().unwrap().len(), 1, "{v}");
        // Receiving stock is the pharmacist's alone: refused as the main site's nurse, and
        // entered in North's ledger as North's pharmacist.
        let receive = serde_json::json!({"event": {"kind": "receive", "product": "ketamine-50",
            "ndc": "67457-108-10", "lot": "K-FLOAT", "expiry": "2030-06-30", "quantity": 1,
            "invoice": "INV-F", "supplier": "Wholesaler"}})
        .to_string();
        for (site, want) in [
            ("1".to_string(), StatusCode::FORBIDDEN),
            (north_s.clone(), StatusCode::CREATED),
        ] {
            let r = app
                .send(
                    Method::POST,
                    "/api/v1/ledger/events",
                    &token,
                    Some("application/json"),
                    receive.clone(),
                    &[("x-ketcare-site", site.as_str())],
                )
                .await;
            assert_eq!(r.status, want, "site {site}: {}", r.body);
        }
        let r = app
            .send(
                Method::GET,
                "/api/v1/sites",
                &token,
                None,
                String::new(),
                &[("x-ketcare-site", north_s.as_str())],
            )
            .await;
        let v = sites(&r);
        assert_eq!(v["role"], "pharmacist", "{v}");
        assert_eq!(v["sites"][0]["id"], north, "{v}");
        // The API shows and keeps the roles; a role at a site not listed is refused.
        let admin_token = app.bearer("admin").await;
        let path = format!("/api/v1/users/{}/sites", float.id);
        let r = app
            .json(
                Method::PUT,
                &path,
                &admin_token,
                &serde_json::json!({"sites": [1], "roles": [{"site": north, "role": "pharmacist"}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("roles"), "{}", r.body);
        let r = app
            .json(
                Method::PUT,
                &path,
                &admin_token,
                &serde_json::json!({"sites": [1, north]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            r.json()["roles"],
            serde_json::json!([{"site": north, "role": "pharmacist"}])
        );
        // An account listed only where it holds another role acts in that one, never in the
        // account's own role it holds nowhere.
        let solo = app.add_user("solo", Role::Nurse).await;
        let r = app
            .json(
                Method::PUT,
                &format!("/api/v1/users/{}/sites", solo.id),
                &admin_token,
                &serde_json::json!({"sites": [north], "roles": [{"site": north, "role": "pharmacist"}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = app
            .get("/api/v1/sites", &app.bearer("solo").await)
            .await
            .json();
        assert_eq!(v["role"], "pharmacist", "{v}");
        assert_eq!(v["working_site"], north, "{v}");
        // An administrator does not change their own sites or roles.
        let me = app.store.user_by_username("admin").await.unwrap().unwrap();
        let r = app
            .json(
                Method::PUT,
                &format!("/api/v1/users/{}/sites", me.id),
                &admin_token,
                &serde_json::json!({"sites": [1], "roles": [{"site": 1, "role": "prescriber"}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), ["user"], "{}", r.body);
        // The page's chooser names the role held at each site.
        let page = app.login("float").await;
        let r = app.get("/", &page).await;
        assert!(r.body.contains("North (pharmacist)"), "{}", r.body);
        assert!(r.body.contains("Main site (nurse)"), "{}", r.body);
    }
}
