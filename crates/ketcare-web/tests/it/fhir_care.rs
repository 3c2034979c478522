//! The FHIR resources of care beyond the chart, on both backends: the dose order as a
//! `MedicationRequest`, what the session gave as a `MedicationAdministration`, questionnaire
//! answers and their `Questionnaire`, the signed `Consent`, the booking as an `Appointment`, the
//! staff as `Practitioner`/`PractitionerRole`, the audit log as `AuditEvent`; every one read by
//! id exactly as its search shows it; `_include`, `_revinclude` and `_lastUpdated`; each type
//! behind its role.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use serde_json::{Value, json};

fn entries(b: &Value, mode: &str) -> Vec<Value> {
    b["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["search"]["mode"] == mode)
                .map(|e| e["resource"].clone())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn orders_administrations_answers_consents_bookings_staff_and_audit_over_fhir() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let mut settings = SESSION_SETTINGS.to_vec();
        settings.push(("schedule.ketamine_prescriber_on_site", 2.0));
        app.set_test_site_settings_with(&settings).await;
        for (u, r) in [
            ("doc", Role::Prescriber),
            ("pharm", Role::Pharmacist),
            ("sam", Role::Scheduler),
            ("ada", Role::Administrator),
        ] {
            app.add_user(u, r).await;
        }
        let nina = app.add_user("nina", Role::Nurse).await;
        let nurse_page = app.login("nina").await;
        let sam_page = app.login("sam").await;
        let (doc, pharm, nurse, sam, ada) = (
            app.bearer("doc").await,
            app.bearer("pharm").await,
            app.bearer("nina").await,
            app.bearer("sam").await,
            app.bearer("ada").await,
        );
        let pid = patient_born(&app, &nurse_page, "FC-1", "1980-05-01")
            .await
            .to_string();
        app.consent_for(&pid, "trd-adult-iv-ketamine").await;
        let (oid, sid) = app
            .verified_order_session(
                &pid,
                (&doc, &pharm, &nurse),
                &json!({"protocol_id": "trd-adult-iv-ketamine",
                    "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50}}),
                "Chair 1",
            )
            .await;
        app.commands(
            sid,
            &nurse,
            &[
            json!({"command": "check_in"}),
            json!({"command": "begin_pre_assessment"}),
            json!({"command": "update_checklist", "fasting_confirmed": true, "pregnancy": "not_pregnant",
                   "escort_home": true, "eligibility_reconfirmed": true, "suicide_risk": "negative"}),
            json!({"command": "set_baseline", "vitals": {"systolic": 120, "diastolic": 80, "heart_rate": 70, "spo2": 98}}),
            json!({"command": "verify_dose"}),
            json!({"command": "start"}),
        ],
        )
        .await;
        app.advance(60);
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/sessions/{sid}/vitals"),
                &nurse,
                &json!({"systolic": 126, "diastolic": 82, "heart_rate": 74, "spo2": 98}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/responses"),
                &nurse,
                &json!({"instrument": "phq9", "answers": [1, 1, 1, 1, 1, 1, 1, 1, 0],
                        "taken_on": "2026-11-20", "submission_key": "fhir-care-1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let bookings = app
            .book_course_tomorrow(
                (&sam_page, &sam),
                pid.parse().unwrap_or_default(),
                nina.id.get(),
                "Chair A",
            )
            .await;

        let get = |path: String, auth: &Auth| {
            let app = &app;
            let auth = auth.clone();
            async move {
                let r = app.get(&path, &auth).await;
                assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
                r.json()
            }
        };
        let by = |kind: &str, extra: &str| format!("/fhir/r4/{kind}?patient={pid}{extra}");

        // The verified order: active, its dose in mg and rate in mL/h, the protocol canonical.
        let mr = get(by("MedicationRequest", ""), &nurse).await;
        assert_eq!(mr["total"], 1, "{mr}");
        let m = &mr["entry"][0]["resource"];
        assert_eq!(m["id"], oid.to_string());
        assert_eq!(m["status"], "active");
        assert_eq!(m["intent"], "order");
        assert_eq!(m["medicationCodeableConcept"]["text"], "ketamine (racemic)");
        assert_eq!(
            m["dosageInstruction"][0]["route"]["text"],
            "intravenous infusion"
        );
        assert_eq!(
            m["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["unit"],
            "mg"
        );
        assert_eq!(
            m["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]["unit"],
            "mL/h"
        );
        assert!(
            m["instantiatesCanonical"][0]
                .as_str()
                .is_some_and(|c| c.starts_with("urn:ketcare:protocol:trd-adult-iv-ketamine|")),
            "{m}"
        );
        assert!(
            m["note"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("pharm"))
        );
        assert_eq!(
            get(by("MedicationRequest", "&status=revoked"), &nurse).await["total"],
            0
        );

        // What the session gave, with the order included.
        let ma = get(
            by(
                "MedicationAdministration",
                "&_include=MedicationAdministration:request",
            ),
            &nurse,
        )
        .await;
        assert_eq!(ma["total"], 1, "{ma}");
        let a = &entries(&ma, "match")[0];
        assert_eq!(a["id"], sid.to_string());
        assert_eq!(a["status"], "in-progress");
        assert_eq!(
            a["request"]["reference"],
            format!("MedicationRequest/{oid}")
        );
        assert_eq!(a["context"]["reference"], format!("Encounter/{sid}"));
        assert_eq!(a["extension"][0]["extension"][1]["valueCode"], "start");
        assert_eq!(a["performer"][0]["actor"]["display"], "nina");
        let inc = entries(&ma, "include");
        assert_eq!(inc.len(), 1);
        assert_eq!(inc[0]["resourceType"], "MedicationRequest");

        // The PHQ-9 answers, found by their questionnaire in every form, with it included.
        for q in [
            "urn:ketcare:questionnaire:phq9",
            "Questionnaire/phq9",
            "phq9",
        ] {
            let qr = get(
                by("QuestionnaireResponse", &format!("&questionnaire={q}")),
                &nurse,
            )
            .await;
            assert_eq!(qr["total"], 1, "{q}: {qr}");
        }
        assert_eq!(
            get(by("QuestionnaireResponse", "&questionnaire=gad7"), &nurse).await["total"],
            0
        );
        let qr = get(
            by(
                "QuestionnaireResponse",
                "&_include=QuestionnaireResponse:questionnaire",
            ),
            &nurse,
        )
        .await;
        let r = &entries(&qr, "match")[0];
        assert_eq!(r["questionnaire"], "urn:ketcare:questionnaire:phq9");
        assert_eq!(r["item"][0]["answer"][0]["valueInteger"], 1);
        assert_eq!(r["item"].as_array().map(Vec::len), Some(9));
        let q = &entries(&qr, "include")[0];
        assert_eq!(q["resourceType"], "Questionnaire");
        assert_eq!(q["url"], "urn:ketcare:questionnaire:phq9");
        // Nine scored items and the unscored difficulty item.
        assert_eq!(q["item"].as_array().map(Vec::len), Some(10));

        // Consent, Appointment (which the scheduler also reads), staff.
        let c = get(by("Consent", ""), &nurse).await;
        assert_eq!(c["total"], 1, "{c}");
        assert_eq!(c["entry"][0]["resource"]["status"], "active");
        assert_eq!(
            c["entry"][0]["resource"]["scope"]["coding"][0]["code"],
            "treatment"
        );
        let ap = get(by("Appointment", ""), &sam).await;
        assert_eq!(ap["total"], 6, "{ap}");
        let b = &ap["entry"][0]["resource"];
        assert_eq!(b["id"], bookings[0].to_string());
        assert_eq!(b["status"], "booked");
        assert_eq!(b["participant"][2]["actor"]["display"], "Chair A");
        assert_eq!(
            b["participant"][1]["actor"]["reference"],
            format!("Practitioner/{}", nina.id.get())
        );
        let staff = get("/fhir/r4/Practitioner?role=nurse&name=NINA".into(), &nurse).await;
        assert_eq!(staff["total"], 1, "{staff}");
        assert_eq!(
            staff["entry"][0]["resource"]["identifier"][0]["value"],
            "nina"
        );
        assert!(!staff.to_string().contains("password"));
        let role = get(format!("/fhir/r4/PractitionerRole/{}", nina.id.get()), &sam).await;
        assert_eq!(role["code"][0]["text"], "nurse");

        // Read by id: each resource exactly as its search shows it.
        let mut shown: Vec<Value> = Vec::new();
        for kind in [
            "Observation",
            "Encounter",
            "Condition",
            "MedicationStatement",
            "MedicationRequest",
            "MedicationAdministration",
            "QuestionnaireResponse",
            "Consent",
            "Appointment",
        ] {
            let found = get(by(kind, ""), &nurse).await;
            let list = entries(&found, "match");
            assert!(!list.is_empty(), "{kind}");
            shown.extend(list);
        }
        for r in &shown {
            let path = format!(
                "/fhir/r4/{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            );
            assert_eq!(&get(path, &nurse).await, r);
        }
        for missing in [
            format!("/fhir/r4/MedicationRequest/{sid}999"),
            format!("/fhir/r4/Encounter/{oid}999"),
            "/fhir/r4/Observation/x-hr".to_owned(),
            "/fhir/r4/Condition/nope".to_owned(),
            "/fhir/r4/Questionnaire/nope".to_owned(),
        ] {
            let r = app.get(&missing, &nurse).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}: {}", r.body);
            assert_eq!(r.json()["resourceType"], "OperationOutcome");
        }

        // _revinclude on Patient, _include of the patient, _lastUpdated.
        let p = get(
            format!("/fhir/r4/Patient?_id={pid}&_revinclude=Encounter:patient&_revinclude=MedicationRequest:patient"),
            &nurse,
        )
        .await;
        let kinds: Vec<Value> = entries(&p, "include")
            .iter()
            .map(|r| r["resourceType"].clone())
            .collect();
        assert_eq!(
            kinds,
            [json!("Encounter"), json!("MedicationRequest")],
            "{p}"
        );
        let o = get(by("Observation", "&_include=Observation:patient"), &nurse).await;
        let inc = entries(&o, "include");
        assert_eq!(inc.len(), 1, "the patient once");
        assert_eq!(inc[0]["id"], pid);
        assert_eq!(
            get(by("Encounter", "&_lastUpdated=gt2100-01-01"), &nurse).await["total"],
            0
        );
        assert_eq!(
            get(by("Encounter", "&_lastUpdated=le2100-01-01"), &nurse).await["total"],
            1
        );
        for (q, field) in [
            ("&_include=Patient:link", "_include"),
            ("&_include=*", "_include"),
            ("&_revinclude=Observation:patient", "_revinclude"),
            ("&_lastUpdated=yesterday", "_lastUpdated"),
            ("&status=paused", "status"),
        ] {
            let r = app.get(&by("MedicationRequest", q), &nurse).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
            assert_eq!(r.json()["issue"][0]["expression"][0], field, "{q}");
        }

        // The audit log, for administrators, without its free text.
        let au = get(format!("/fhir/r4/AuditEvent?patient={pid}&_count=5"), &ada).await;
        assert!(au["total"].as_u64().is_some_and(|n| n > 5), "{au}");
        let e = &au["entry"][0]["resource"];
        assert_eq!(
            e["entity"][0]["what"]["reference"],
            format!("Patient/{pid}")
        );
        assert!(
            e.get("detail").is_none() && !au.to_string().contains("Quill"),
            "{au}"
        );
        let one = get(
            format!("/fhir/r4/AuditEvent/{}", e["id"].as_str().unwrap_or("")),
            &ada,
        )
        .await;
        assert_eq!(&one, e);

        // The course's protocol as a Group of its patients.
        let groups = get("/fhir/r4/Group".into(), &nurse).await;
        assert_eq!(groups["total"], 1, "{groups}");
        let g = &groups["entry"][0]["resource"];
        assert_eq!(
            g["member"][0]["entity"]["reference"],
            format!("Patient/{pid}")
        );
        let gid = g["id"].as_str().unwrap_or("").to_owned();
        assert_eq!(&get(format!("/fhir/r4/Group/{gid}"), &nurse).await, g);

        // Each type behind its role.
        for (path, auth, want) in [
            (by("MedicationRequest", ""), &sam, StatusCode::FORBIDDEN),
            (by("QuestionnaireResponse", ""), &sam, StatusCode::FORBIDDEN),
            (
                format!("/fhir/r4/MedicationRequest/{oid}"),
                &sam,
                StatusCode::FORBIDDEN,
            ),
            ("/fhir/r4/AuditEvent".into(), &nurse, StatusCode::FORBIDDEN),
            (by("Appointment", ""), &sam, StatusCode::OK),
            ("/fhir/r4/Group".into(), &sam, StatusCode::FORBIDDEN),
            ("/fhir/r4/Questionnaire/phq9".into(), &sam, StatusCode::OK),
        ] {
            let r = app.get(&path, auth).await;
            assert_eq!(r.status, want, "{path}: {}", r.body);
        }
    }
}

/// What a FHIR client brings in, on both backends: a Patient created and its demographics
/// updated with `If-Match` (a stale version is 412, the clinical record kept), a blood-pressure
/// panel stored as a session's reading (its patient checked against the session, its units
/// against UCUM), a QuestionnaireResponse scored like a form (a positive suicide-risk answer
/// raises the alert; a repeat stores nothing new); every refusal names its FHIRPath.
#[tokio::test]
async fn a_fhir_client_writes_patients_vitals_and_answers() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings_with(&SESSION_SETTINGS).await;
        for (u, r) in [
            ("doc", Role::Prescriber),
            ("pharm", Role::Pharmacist),
            ("nina", Role::Nurse),
            ("sam", Role::Scheduler),
        ] {
            app.add_user(u, r).await;
        }
        let (doc, pharm, nurse, sam) = (
            app.bearer("doc").await,
            app.bearer("pharm").await,
            app.bearer("nina").await,
            app.bearer("sam").await,
        );
        let fhir =
            |method: Method, path: &str, auth: &Auth, body: &Value, headers: &[(&str, &str)]| {
                let (app, path, auth, body) =
                    (&app, path.to_owned(), auth.clone(), body.to_string());
                let headers: Vec<(String, String)> = headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                async move {
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    app.send(
                        method,
                        &path,
                        &auth,
                        Some("application/fhir+json"),
                        body,
                        &h,
                    )
                    .await
                }
            };
        let patient = json!({"resourceType": "Patient",
            "identifier": [{"system": "urn:ketcare:mrn", "value": "FW-1"}],
            "name": [{"use": "official", "family": "Quill", "given": ["Robin"]}],
            "birthDate": "1980-05-01", "gender": "female"});
        let r = fhir(Method::POST, "/fhir/r4/Patient", &sam, &patient, &[]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
        let created = r.json();
        let pid = created["id"].as_str().unwrap_or("").to_owned();
        let version = created["meta"]["versionId"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            r.headers[axum::http::header::LOCATION]
                .to_str()
                .is_ok_and(|l| l.ends_with(&format!("/fhir/r4/Patient/{pid}/_history/{version}")))
        );
        assert_eq!(
            r.headers[axum::http::header::ETAG],
            format!("W/\"{version}\"").as_str()
        );
        let dup = fhir(Method::POST, "/fhir/r4/Patient", &sam, &patient, &[]).await;
        assert_eq!(
            dup.status,
            StatusCode::BAD_REQUEST,
            "the MRN is taken: {}",
            dup.body
        );
        assert_eq!(
            dup.json()["issue"][0]["expression"][0],
            "Patient.identifier"
        );
        let mut bad = patient.clone();
        bad["birthDate"] = json!("1980-13-01");
        bad["identifier"][0]["value"] = json!("FW-2");
        let r = fhir(Method::POST, "/fhir/r4/Patient", &sam, &bad, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.json()["issue"][0]["expression"][0], "Patient.birthDate");
        let r = fhir(
            Method::POST,
            "/fhir/r4/Patient",
            &sam,
            &json!({"resourceType": "Observation"}),
            &[],
        )
        .await;
        assert_eq!(r.json()["issue"][0]["expression"][0], "resourceType");

        // A clinician adds the clinical record; a FHIR update of the demographics keeps it.
        let mut chart: serde_json::Map<String, Value> = adult_form()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        for (k, v) in [
            ("mrn", "FW-1"),
            ("given_name", "Robin"),
            ("family_name", "Quill"),
            ("date_of_birth", "1980-05-01"),
            ("sex", "female"),
        ] {
            chart.insert(k.into(), json!(v));
        }
        let r = app
            .json(
                Method::PUT,
                &format!("/api/v1/patients/{pid}"),
                &nurse,
                &Value::Object(chart),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let version = app
            .get(&format!("/fhir/r4/Patient/{pid}"), &sam)
            .await
            .json()["meta"]["versionId"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let mut edited = patient.clone();
        edited["id"] = json!(pid);
        edited["telecom"] = json!([{"system": "phone", "value": "555-0199"}]);
        let stale = fhir(
            Method::PUT,
            &format!("/fhir/r4/Patient/{pid}"),
            &sam,
            &edited,
            &[("if-match", "W/\"1\"")],
        )
        .await;
        assert_eq!(
            stale.status,
            StatusCode::PRECONDITION_FAILED,
            "{}",
            stale.body
        );
        let etag = format!("W/\"{version}\"");
        let r = fhir(
            Method::PUT,
            &format!("/fhir/r4/Patient/{pid}"),
            &sam,
            &edited,
            &[("if-match", &etag)],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["telecom"][0]["value"], "555-0199");
        assert_ne!(r.json()["meta"]["versionId"], version.as_str());
        let kept = app
            .get(&format!("/api/v1/patients/{pid}"), &nurse)
            .await
            .json();
        assert!(
            kept.to_string().contains("Fluoxetine"),
            "the clinical record is kept: {kept}"
        );
        let again = fhir(
            Method::PUT,
            &format!("/fhir/r4/Patient/{pid}"),
            &sam,
            &edited,
            &[("if-match", &etag)],
        )
        .await;
        assert_eq!(
            again.status,
            StatusCode::PRECONDITION_FAILED,
            "the old version again"
        );
        let mut other = edited.clone();
        other["id"] = json!("999");
        let r = fhir(
            Method::PUT,
            &format!("/fhir/r4/Patient/{pid}"),
            &sam,
            &other,
            &[],
        )
        .await;
        assert_eq!(r.json()["issue"][0]["expression"][0], "Patient.id");

        // A blood-pressure panel for the patient's session.
        app.consent_for(&pid, "trd-adult-iv-ketamine").await;
        let (_, sid) = app
            .verified_order_session(
                &pid,
                (&doc, &pharm, &nurse),
                &json!({"protocol_id": "trd-adult-iv-ketamine", "patient": {"weight_kg": 70}}),
                "Chair 1",
            )
            .await;
        app.commands(sid, &nurse, &[json!({"command": "check_in"})])
            .await;
        let panel = |sys: f64, unit: &str, subject: &str| {
            json!({"resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                "subject": {"reference": subject}, "encounter": {"reference": format!("Encounter/{sid}")},
                "component": [
                    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": sys, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}},
                    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 84, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]})
        };
        let me = format!("Patient/{pid}");
        let r = fhir(
            Method::POST,
            "/fhir/r4/Observation",
            &nurse,
            &panel(131.0, "mm[Hg]", &me),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
        let o = r.json();
        assert_eq!(o["component"][0]["valueQuantity"]["value"], 131.0);
        let vitals = app
            .get(&format!("/api/v1/sessions/{sid}/vitals"), &nurse)
            .await
            .json();
        assert_eq!(
            vitals[0]["reading"]["vitals"]["systolic"], 131.0,
            "{vitals}"
        );
        for (body, field) in [
            (
                panel(131.0, "kPa", &me),
                "Observation.component[0].valueQuantity.code",
            ),
            (panel(131.0, "mm[Hg]", "Patient/999"), "Observation.subject"),
            (
                panel(900.0, "mm[Hg]", &me),
                "Observation.component[0].valueQuantity.value",
            ),
        ] {
            let r = fhir(Method::POST, "/fhir/r4/Observation", &nurse, &body, &[]).await;
            assert!(r.status.is_client_error(), "{field}: {}", r.body);
            assert_eq!(r.json()["issue"][0]["expression"][0], field, "{}", r.body);
        }
        let r = fhir(
            Method::POST,
            "/fhir/r4/Observation",
            &sam,
            &panel(131.0, "mm[Hg]", &me),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // A PHQ-9 with item 9 positive: stored, scored, the safety alert raised; a repeat is 200.
        let items: Vec<Value> = [1, 1, 1, 1, 1, 1, 1, 1, 1]
            .iter()
            .enumerate()
            .map(|(n, a)| json!({"linkId": (n + 1).to_string(), "answer": [{"valueInteger": a}]}))
            .collect();
        let qr = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": "urn:ketcare:questionnaire:phq9", "subject": {"reference": me},
            "authored": "2026-12-01", "identifier": {"value": "ehr-77"}, "item": items});
        let r = fhir(
            Method::POST,
            "/fhir/r4/QuestionnaireResponse",
            &nurse,
            &qr,
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend:?}: {}", r.body);
        let flags = app
            .get(&format!("/fhir/r4/Flag?patient={pid}"), &nurse)
            .await
            .json();
        assert_eq!(flags["total"], 1, "{flags}");
        let total = app
            .get(
                &format!("/fhir/r4/Observation?patient={pid}&code=44261-6"),
                &nurse,
            )
            .await
            .json();
        assert_eq!(total["entry"][0]["resource"]["valueInteger"], 9);
        let r = fhir(
            Method::POST,
            "/fhir/r4/QuestionnaireResponse",
            &nurse,
            &qr,
            &[],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a repeat stores nothing new: {}",
            r.body
        );
        let mut wrong = qr.clone();
        wrong["questionnaire"] = json!("urn:ketcare:questionnaire:nope");
        let r = fhir(
            Method::POST,
            "/fhir/r4/QuestionnaireResponse",
            &nurse,
            &wrong,
            &[],
        )
        .await;
        assert_eq!(
            r.json()["issue"][0]["expression"][0],
            "QuestionnaireResponse.questionnaire"
        );
    }
}
