//! The FHIR R4 edge on both backends: the capability statement made from the same table as the
//! routes, Patient read and search (identifier, name, birthdate with prefixes, paging with
//! absolute next links), RelatedPerson, vital-sign Observations from a session's readings, and
//! every error as an OperationOutcome naming the parameter.

use crate::common;

use axum::http::{Method, StatusCode, header};
use common::*;
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use ketcare_web::routes::{Verb, rules};
use serde_json::json;

#[tokio::test]
async fn the_capability_statement_and_the_routes_are_one_table() {
    let rules = rules();
    for def in ketcare_fhir::capability::RESOURCES {
        let search = format!("/fhir/r4/{}", def.kind);
        let read = format!("/fhir/r4/{}/{{id}}", def.kind);
        let has = |v: Verb, p: &str| rules.iter().any(|r| r.verb == v && r.path == p);
        assert_eq!(has(Verb::Get, &search), def.search, "{}", def.kind);
        assert_eq!(has(Verb::Get, &read), def.read, "{}", def.kind);
        assert_eq!(has(Verb::Post, &search), def.create, "{}", def.kind);
        assert_eq!(has(Verb::Put, &read), def.update, "{}", def.kind);
    }
    let app = TestApp::new(ketcare_store::Backend::Sqlite).await;
    let r = app.get("/fhir/r4/metadata", &Auth::None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/fhir+json");
    let c = r.json();
    assert_eq!(c["resourceType"], "CapabilityStatement");
    assert_eq!(c["fhirVersion"], "4.0.1");
    assert_eq!(
        c["rest"][0]["resource"].as_array().map(Vec::len),
        Some(ketcare_fhir::capability::RESOURCES.len())
    );
}

#[tokio::test]
async fn patients_guardians_and_vital_signs_over_fhir() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings_with(&SESSION_SETTINGS).await;
        for (u, r) in [
            ("doc", Role::Prescriber),
            ("pharm", Role::Pharmacist),
            ("nina", Role::Nurse),
            ("sam", Role::Scheduler),
            ("rita", Role::Researcher),
        ] {
            app.add_user(u, r).await;
        }
        let nurse_page = app.login("nina").await;
        let (doc, pharm, nurse) = (
            app.bearer("doc").await,
            app.bearer("pharm").await,
            app.bearer("nina").await,
        );
        let minor = patient_born(&app, &nurse_page, "F-1", "2012-05-01").await;
        let g = app
            .post_form(
                &format!("/patients/{minor}/guardians"),
                &nurse_page,
                &[
                    ("name", "Ada Quill"),
                    ("relationship", "mother"),
                    ("phone", "555-0101"),
                ],
            )
            .await;
        assert_eq!(g.status, StatusCode::SEE_OTHER);
        let adult = app.post_form("/patients", &nurse_page, &adult_form()).await;
        let adult = adult.location().trim_start_matches("/patients/").to_owned();

        // Read: the demographics as a Patient, with the MRN as identifier.
        let r = app.get(&format!("/fhir/r4/Patient/{minor}"), &nurse).await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/fhir+json");
        let p = r.json();
        assert_eq!(p["resourceType"], "Patient");
        assert_eq!(p["identifier"][0]["system"], "urn:ketcare:mrn");
        assert_eq!(p["identifier"][0]["value"], "F-1");
        assert_eq!(p["birthDate"], "2012-05-01");
        assert_eq!(p["gender"], "female");
        assert!(
            p["meta"]["lastUpdated"]
                .as_str()
                .is_some_and(|s| s.ends_with('Z'))
        );
        assert!(
            !r.body.contains("Fluoxetine"),
            "no clinical content in a Patient"
        );

        // Search: by identifier (with or without its system), name, birth date prefixes.
        let ids = |b: &serde_json::Value| -> Vec<String> {
            b["entry"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| e["resource"]["id"].as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let search = |q: &str| {
            let (app, nurse) = (&app, &nurse);
            let q = q.to_owned();
            async move { app.get(&format!("/fhir/r4/Patient?{q}"), nurse).await }
        };
        let minor_id = minor.to_string();
        for (q, want) in [
            ("identifier=F-1", vec![minor_id.clone()]),
            (&format!("_id={minor}"), vec![minor_id.clone()]),
            (&format!("_id={minor}&birthdate=lt2000"), vec![]),
            ("_id=999999", vec![]),
            ("identifier=urn:ketcare:mrn%7CT-200", vec![adult.clone()]),
            ("name=robin", vec![minor_id.clone()]),
            ("name=QUILL", vec![minor_id.clone(), adult.clone()]),
            ("name=quill&identifier=F-1", vec![minor_id.clone()]),
            ("name=sam", vec![adult.clone()]),
            ("name=depression", vec![]),
            ("birthdate=2012-05-01", vec![minor_id.clone()]),
            ("birthdate=lt2012-05-01", vec![adult.clone()]),
            ("birthdate=ge2012-05-01", vec![minor_id.clone()]),
            ("birthdate=gt2012-05-01", vec![]),
            ("birthdate=le1986-05-01", vec![adult.clone()]),
            ("birthdate=1986", vec![adult.clone()]),
        ] {
            let r = search(q).await;
            assert_eq!(r.status, StatusCode::OK, "{backend:?} {q}: {}", r.body);
            let b = r.json();
            assert_eq!(b["resourceType"], "Bundle");
            assert_eq!(b["type"], "searchset");
            let mut got = ids(&b);
            got.sort();
            let mut want = want;
            want.sort();
            assert_eq!(got, want, "{backend:?} {q}");
            assert_eq!(b["total"], want.len(), "{q}");
        }
        // Paging: one per page, an absolute next link on the same host, the last page without.
        let first = search("_count=1").await.json();
        assert_eq!(first["total"], 2);
        let next = first["link"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["relation"] == "next"))
            .and_then(|x| x["url"].as_str())
            .expect("a next link")
            .to_owned();
        assert!(next.starts_with("http://"), "{next}");
        let path = next.split_once("/fhir/r4").map(|(_, p)| p).unwrap_or("");
        let second = app.get(&format!("/fhir/r4{path}"), &nurse).await.json();
        assert_eq!(ids(&second).len(), 1);
        assert_ne!(ids(&second), ids(&first));
        assert!(
            !second["link"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x["relation"] == "next"))
        );

        // Errors: an OperationOutcome naming the parameter; a missing patient is not-found.
        for (q, param) in [
            ("birthdate=yesterday", "birthdate"),
            ("birthdate=ap2012", "birthdate"),
            ("_count=0", "_count"),
            ("gender=female", "gender"),
            ("identifier=http://other%7CF-1", "identifier"),
        ] {
            let r = search(q).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
            let o = r.json();
            assert_eq!(o["resourceType"], "OperationOutcome", "{q}");
            assert_eq!(o["issue"][0]["expression"][0], param, "{q}");
        }
        let r = app.get("/fhir/r4/Patient/999999", &nurse).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.json()["issue"][0]["code"], "not-found");

        // Roles: none signed in is told to log in; the researcher is refused; the scheduler
        // reads patients but not observations.
        let r = app.get("/fhir/r4/Patient", &Auth::None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.json()["issue"][0]["code"], "login");
        let r = app.get("/fhir/r4/Patient", &app.bearer("rita").await).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        let sam = app.bearer("sam").await;
        assert_eq!(
            app.get(&format!("/fhir/r4/Patient/{minor}"), &sam)
                .await
                .status,
            StatusCode::OK
        );
        let r = app
            .get(&format!("/fhir/r4/Observation?patient={adult}"), &sam)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // RelatedPerson: the minor's guardian.
        let r = app
            .get(
                &format!("/fhir/r4/RelatedPerson?patient=Patient/{minor}"),
                &nurse,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let rp = &r.json()["entry"][0]["resource"];
        assert_eq!(rp["patient"]["reference"], format!("Patient/{minor}"));
        assert_eq!(rp["relationship"][0]["text"], "mother");
        assert_eq!(rp["telecom"][0]["value"], "555-0101");

        // Observations: a session's readings as vital signs, searchable by code and date.
        app.consent_for(&adult, "trd-adult-iv-ketamine").await;
        let (_, sid) = app
            .verified_order_session(
                &adult,
                (&doc, &pharm, &nurse),
                &json!({"protocol_id": "trd-adult-iv-ketamine"}),
                "Chair 1",
            )
            .await;
        app.commands(sid, &nurse, &[json!({"command": "check_in"})])
            .await;
        for body in [
            json!({"systolic": 128, "diastolic": 82, "heart_rate": 70, "spo2": 98}),
            json!({"heart_rate": 88, "resp_rate": 14}),
        ] {
            let r = app
                .json(
                    Method::POST,
                    &format!("/api/v1/sessions/{sid}/vitals"),
                    &nurse,
                    &body,
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
            app.advance(60);
        }
        let obs = |q: &str| {
            let (app, nurse, adult) = (&app, &nurse, &adult);
            let q = q.to_owned();
            async move {
                app.get(&format!("/fhir/r4/Observation?patient={adult}{q}"), nurse)
                    .await
            }
        };
        let all = obs("&category=vital-signs").await;
        assert_eq!(all.status, StatusCode::OK, "{backend:?}: {}", all.body);
        let all = all.json();
        assert_eq!(all["total"], 5, "{all}");
        let bp = &all["entry"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|e| e["resource"]["code"]["coding"][0]["code"] == "85354-9")
            })
            .expect("the blood pressure panel")["resource"];
        assert_eq!(bp["component"][0]["code"]["coding"][0]["code"], "8480-6");
        assert_eq!(bp["component"][0]["valueQuantity"]["value"], 128.0);
        assert_eq!(bp["component"][1]["valueQuantity"]["code"], "mm[Hg]");
        assert_eq!(bp["subject"]["reference"], format!("Patient/{adult}"));
        assert_eq!(bp["encounter"]["reference"], format!("Encounter/{sid}"));
        assert_eq!(bp["performer"][0]["display"], "nina");
        // Newest first: the second reading's heart rate leads.
        let hr = obs("&code=http://loinc.org%7C8867-4").await.json();
        assert_eq!(hr["total"], 2);
        assert_eq!(hr["entry"][0]["resource"]["valueQuantity"]["value"], 88.0);
        let oldest_first = obs("&code=8867-4&_sort=date").await.json();
        assert_eq!(
            oldest_first["entry"][0]["resource"]["valueQuantity"]["value"],
            70.0
        );
        // Date prefixes at the second reading's instant.
        let second_at = hr["entry"][0]["resource"]["effectiveDateTime"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        for (prefix, want) in [
            ("ge", 2),
            ("gt", 0),
            ("lt", 3),
            ("le", 5),
            ("eq", 2),
            ("ne", 3),
        ] {
            let b = obs(&format!("&date={prefix}{}", second_at.replace('+', "%2B"))).await;
            assert_eq!(b.status, StatusCode::OK, "{prefix}: {}", b.body);
            assert_eq!(
                b.json()["total"],
                want,
                "{backend:?} date={prefix}{second_at}"
            );
        }
        let none = obs("&category=laboratory").await.json();
        assert_eq!(none["total"], 0);
        let r = obs("&code=http://snomed.info/sct%7C1").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = app.get("/fhir/r4/Observation", &nurse).await;
        assert_eq!(r.json()["issue"][0]["expression"][0], "patient");
        assert_eq!(obs("&category=survey").await.json()["total"], 0);
        // A PHQ-9 total as a survey Observation coded with the instrument's LOINC total.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{adult}/responses"),
                &nurse,
                &json!({"instrument": "phq9", "answers": [1, 1, 1, 1, 1, 1, 1, 1, 0],
                        "taken_on": "2026-11-20", "submission_key": "fhir-1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let survey = obs("&category=survey").await.json();
        assert_eq!(survey["total"], 1, "{survey}");
        let q = &survey["entry"][0]["resource"];
        assert_eq!(q["code"]["coding"][0]["code"], "44261-6");
        assert_eq!(q["valueInteger"], 8);
        assert_eq!(q["effectiveDateTime"], "2026-11-20");
        assert_eq!(obs("&code=44261-6").await.json()["total"], 1);
        assert_eq!(
            obs("&code=44261-6&date=lt2026-11-20").await.json()["total"],
            0
        );
        assert_eq!(obs("&category=vital-signs").await.json()["total"], 5);

        // The session as an Encounter; the record's clinical part as Conditions and
        // MedicationStatements (no allergy recorded: no AllergyIntolerance, which would claim
        // one); no safety alert: no Flag.
        let by = |kind: &str| {
            let (app, nurse, adult) = (&app, &nurse, &adult);
            let kind = kind.to_owned();
            async move {
                let r = app
                    .get(&format!("/fhir/r4/{kind}?patient={adult}"), nurse)
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{kind}: {}", r.body);
                r.json()
            }
        };
        let enc = by("Encounter").await;
        assert_eq!(enc["total"], 1, "{enc}");
        let e = &enc["entry"][0]["resource"];
        assert_eq!(e["id"], sid.to_string());
        assert_eq!(e["status"], "in-progress");
        assert_eq!(e["class"]["code"], "AMB");
        assert_eq!(e["location"][0]["location"]["display"], "Chair 1");
        assert!(e["period"]["start"].as_str().is_some(), "{e}");
        let cond = by("Condition").await;
        assert_eq!(
            cond["entry"][0]["resource"]["code"]["text"],
            "Treatment-resistant depression"
        );
        let meds = by("MedicationStatement").await;
        assert_eq!(
            meds["entry"][0]["resource"]["medicationCodeableConcept"]["text"],
            "Fluoxetine 20 mg daily"
        );
        assert_eq!(by("AllergyIntolerance").await["total"], 0);
        assert_eq!(by("Flag").await["total"], 0);
        // The scheduler reads none of them.
        for kind in [
            "Encounter",
            "Condition",
            "AllergyIntolerance",
            "MedicationStatement",
            "Flag",
        ] {
            let r = app
                .get(&format!("/fhir/r4/{kind}?patient={adult}"), &sam)
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{kind}");
        }
    }
}

/// Bulk Data `$export`: kick-off (GET and POST), status polling, the manifest, NDJSON files for
/// the owner only, `_type` and `_since`, cancellation, and the refusals, on both backends.
#[tokio::test]
async fn a_bulk_export_of_the_clinic() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        for (u, r) in [
            ("nina", Role::Nurse),
            ("nora", Role::Nurse),
            ("rita", Role::Researcher),
        ] {
            app.add_user(u, r).await;
        }
        let page = app.login("nina").await;
        let nurse = app.bearer("nina").await;
        let minor = patient_born(&app, &page, "X-1", "2012-05-01").await;
        app.post_form(
            &format!("/patients/{minor}/guardians"),
            &page,
            &[
                ("name", "Ada Quill"),
                ("relationship", "mother"),
                ("phone", "555-0101"),
            ],
        )
        .await;
        app.post_form("/patients", &page, &adult_form()).await;
        let async_ = [
            ("prefer", "respond-async"),
            ("accept", "application/fhir+json"),
        ];
        let kick = |path: &str, auth: &Auth, method: Method, body: &str| {
            let (app, path, auth, body) = (&app, path.to_owned(), auth.clone(), body.to_owned());
            async move {
                let ct = (!body.is_empty()).then_some("application/fhir+json");
                app.send(method, &path, &auth, ct, body, &async_).await
            }
        };
        // Without Prefer: respond-async, refused naming it.
        let r = app.get("/fhir/r4/$export", &nurse).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{backend:?}: {}", r.body);
        assert_eq!(r.json()["issue"][0]["expression"][0], "Prefer");
        let r = kick("/fhir/r4/$export?_type=Claim", &nurse, Method::GET, "").await;
        assert_eq!(r.json()["issue"][0]["expression"][0], "_type");
        let r = kick(
            "/fhir/r4/$export",
            &app.bearer("rita").await,
            Method::GET,
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        let wait = |location: String| {
            let (app, nurse) = (&app, &nurse);
            async move {
                let path = location
                    .split_once("/fhir/r4")
                    .map(|(_, p)| format!("/fhir/r4{p}"))
                    .unwrap_or_default();
                for _ in 0..200 {
                    let r = app.get(&path, nurse).await;
                    if r.status == StatusCode::OK {
                        return r.json();
                    }
                    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
                    assert!(r.headers.contains_key("x-progress"));
                    assert!(r.headers.contains_key(header::RETRY_AFTER));
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                panic!("the export did not finish");
            }
        };
        let r = kick("/fhir/r4/$export", &nurse, Method::GET, "").await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{backend:?}: {}", r.body);
        let location = r.headers[header::CONTENT_LOCATION]
            .to_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            location.starts_with("http://") && location.contains("/$export-status/"),
            "{location}"
        );
        let manifest = wait(location.clone()).await;
        assert_eq!(manifest["requiresAccessToken"], true);
        let count = |kind: &str| {
            manifest["output"]
                .as_array()
                .and_then(|o| o.iter().find(|x| x["type"] == kind))
                .map(|x| x["count"].as_u64().unwrap_or(0))
                .unwrap_or(0)
        };
        assert_eq!(count("Patient"), 2, "{manifest}");
        assert_eq!(count("RelatedPerson"), 1);
        assert_eq!(count("Condition"), 2);
        assert_eq!(count("MedicationStatement"), 2);
        // Each file: NDJSON of its type, to the owner only.
        let url = manifest["output"][0]["url"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let path = url
            .split_once("/fhir/r4")
            .map(|(_, p)| format!("/fhir/r4{p}"))
            .unwrap_or_default();
        let f = app.get(&path, &nurse).await;
        assert_eq!(f.status, StatusCode::OK);
        assert_eq!(f.headers[header::CONTENT_TYPE], "application/fhir+ndjson");
        let lines: Vec<serde_json::Value> = f
            .body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_default())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l["resourceType"] == "Patient"));
        let nora = app.bearer("nora").await;
        assert_eq!(app.get(&path, &nora).await.status, StatusCode::NOT_FOUND);
        let status_path = location
            .split_once("/fhir/r4")
            .map(|(_, p)| format!("/fhir/r4{p}"))
            .unwrap_or_default();
        assert_eq!(
            app.get(&status_path, &nora).await.status,
            StatusCode::NOT_FOUND
        );

        // POST with Parameters: one type; _since in the future: nothing changed since.
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "_type", "valueString": "Patient,RelatedPerson"}]})
        .to_string();
        let r = kick("/fhir/r4/Patient/$export", &nurse, Method::POST, &body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let m = wait(
            r.headers[header::CONTENT_LOCATION]
                .to_str()
                .unwrap_or("")
                .to_owned(),
        )
        .await;
        let types: Vec<_> = m["output"]
            .as_array()
            .map(|o| o.iter().map(|x| x["type"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(types, vec![json!("Patient"), json!("RelatedPerson")]);
        let r = kick(
            "/fhir/r4/$export?_since=2999-01-01T00:00:00Z",
            &nurse,
            Method::GET,
            "",
        )
        .await;
        let m = wait(
            r.headers[header::CONTENT_LOCATION]
                .to_str()
                .unwrap_or("")
                .to_owned(),
        )
        .await;
        assert_eq!(m["output"].as_array().map(Vec::len), Some(0), "{m}");

        // A group export: the members of a protocol's course group only.
        app.set_test_site_settings_with(&[("schedule.ketamine_prescriber_on_site", 2.0)])
            .await;
        app.add_user("sam", Role::Scheduler).await;
        let sam = (app.login("sam").await, app.bearer("sam").await);
        let nina_id = app
            .store
            .user_by_username("nina")
            .await
            .ok()
            .flatten()
            .map(|u| u.id.get())
            .unwrap_or_default();
        app.book_course_tomorrow((&sam.0, &sam.1), minor, nina_id, "Chair A")
            .await;
        let groups = app.get("/fhir/r4/Group", &nurse).await.json();
        let gid = groups["entry"][0]["resource"]["id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let r = kick(
            &format!("/fhir/r4/Group/{gid}/$export"),
            &nurse,
            Method::GET,
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{gid}: {}", r.body);
        let m = wait(
            r.headers[header::CONTENT_LOCATION]
                .to_str()
                .unwrap_or("")
                .to_owned(),
        )
        .await;
        let patients = m["output"]
            .as_array()
            .and_then(|o| o.iter().find(|x| x["type"] == "Patient"))
            .map(|x| x["count"].clone());
        assert_eq!(patients, Some(json!(1)), "{m}");
        assert!(m["request"].as_str().is_some_and(|r| r.contains("/Group/")));
        let r = kick(
            "/fhir/r4/Group/protocol-nope/$export",
            &nurse,
            Method::GET,
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        // Cancelled: the status is gone.
        let d = app
            .send(
                Method::DELETE,
                &status_path,
                &nurse,
                None,
                String::new(),
                &[],
            )
            .await;
        assert_eq!(d.status, StatusCode::ACCEPTED);
        assert_eq!(
            app.get(&status_path, &nurse).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

/// A FHIR client that asks too fast is paced with an `OperationOutcome` and `Retry-After`, like
/// every other FHIR refusal.
#[tokio::test]
async fn a_paced_fhir_client_gets_an_operation_outcome() {
    let app = TestApp::with_config(
        ketcare_store::Backend::Sqlite,
        ketcare_web::WebConfig {
            api_burst: 1.0,
            api_per_second: 0.001,
            idle_minutes: 1_000_000,
            ..ketcare_web::WebConfig::default()
        },
    )
    .await;
    app.add_user("nina", Role::Nurse).await;
    let nurse = app.bearer("nina").await;
    let first = app.get("/fhir/r4/Patient", &nurse).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let paced = app.get("/fhir/r4/Patient", &nurse).await;
    assert_eq!(paced.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(paced.headers[header::CONTENT_TYPE], "application/fhir+json");
    assert!(paced.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(paced.json()["resourceType"], "OperationOutcome");
}
