//! One document of each kind the FHIR edge returns, as a reviewed snapshot: a change to any
//! mapping shows up as a diff of the JSON a client receives.

use jiff::Timestamp;
use ketcare_core::patient::{Guardian, NewGuardian, PatientDemographics, Relationship, Sex};
use ketcare_core::{GuardianId, PatientId};
use ketcare_fhir::resources::{self, ReadingOf};
use ketcare_fhir::search::Paging;
use ketcare_fhir::{bundle, capability, outcome};
use ketcare_session::vitals::{VitalReading, VitalSource, Vitals};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn guardian() -> Guardian {
    Guardian {
        id: GuardianId::new(4),
        record: NewGuardian {
            name: "Ada Quill".into(),
            relationship: Relationship::Mother,
            phone: "555-0101".into(),
            email: String::new(),
        },
    }
}

fn demographics() -> PatientDemographics {
    PatientDemographics {
        id: PatientId::new(12),
        mrn: "KC-1001".into(),
        given_name: "Robin".into(),
        family_name: "Quill".into(),
        date_of_birth: jiff::civil::date(2012, 5, 1),
        sex: Sex::Female,
        phone: "555-0100".into(),
        email: "robin@example.org".into(),
        guardians: vec![guardian()],
        updated_at: "2026-12-01T09:30:00Z".into(),
    }
}

#[test]
fn patient_and_related_person() {
    let updated = at("2026-12-01T09:30:00Z");
    insta::assert_json_snapshot!("patient", resources::patient(&demographics(), updated));
    insta::assert_json_snapshot!(
        "related_person",
        resources::related_person(&guardian(), 12, updated)
    );
}

#[test]
fn vital_sign_observations() {
    let reading = VitalReading {
        at: at("2026-12-06T10:15:00Z"),
        vitals: Vitals {
            systolic: Some(128.0),
            diastolic: Some(82.0),
            heart_rate: Some(72.0),
            spo2: Some(97.0),
            resp_rate: Some(14.0),
            etco2: Some(38.0),
            temperature_c: Some(36.8),
        },
        source: VitalSource::Monitor,
        by: "MONITOR/SUITE".into(),
        control_id: Some("MSG0001".into()),
    };
    let of = ReadingOf {
        vital_id: 57,
        session_id: 3,
        patient_id: 12,
        stored_at: at("2026-12-06T10:15:01Z"),
    };
    insta::assert_json_snapshot!("observations", resources::vital_observations(of, &reading));
    insta::assert_json_snapshot!(
        "questionnaire_total",
        resources::questionnaire_total(
            31,
            12,
            "PHQ-9",
            Some("44261-6"),
            8,
            "2026-11-20",
            at("2026-11-20T10:00:00Z")
        )
    );
}

#[test]
fn record_session_alert_and_bundle() {
    let record = ketcare_core::patient::NewPatient {
        mrn: "KC-1001".into(),
        given_name: "Robin".into(),
        family_name: "Quill".into(),
        date_of_birth: jiff::civil::date(1986, 5, 1),
        sex: Sex::Female,
        weight: None,
        height: None,
        indications: vec!["Treatment-resistant depression".into()],
        psychiatric_history: String::new(),
        substance_use_history: String::new(),
        medications: vec!["Sertraline 100 mg daily".into()],
        allergies: vec!["Penicillin".into()],
        phone: String::new(),
        email: String::new(),
    };
    let updated = at("2026-12-01T09:30:00Z");
    insta::assert_json_snapshot!(
        "record_resources",
        resources::record_resources(12, &record, updated)
    );
    insta::assert_json_snapshot!(
        "flag",
        resources::flag(
            9,
            12,
            "PHQ-9 item 9 answered 2",
            at("2026-12-02T08:00:00Z"),
            None
        )
    );
    let page = bundle::searchset(
        "https://clinic.example/fhir/r4",
        "https://clinic.example/fhir/r4/Patient?name=quill",
        1,
        vec![resources::patient(&demographics(), updated)],
        Vec::new(),
        Paging {
            count: 50,
            offset: 0,
        },
    );
    insta::assert_json_snapshot!("bundle", page);
    insta::assert_json_snapshot!(
        "operation_outcome",
        outcome::outcome("invalid", "birthdate: use a FHIR date", Some("birthdate"))
    );
    insta::assert_json_snapshot!(
        "capability_statement",
        capability::statement(
            "https://clinic.example/fhir/r4",
            "0.1.0",
            "2026-12-06T00:00:00Z"
        )
    );
}
