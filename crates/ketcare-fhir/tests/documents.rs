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
        intake: Default::default(),
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

#[test]
fn consent_booking_staff_audit_group_and_questionnaires() {
    use ketcare_core::{BookingId, ConsentDocumentId, ConsentId, Role};
    use ketcare_fhir::{questionnaire, workflow};
    use ketcare_ops::consent::{Assent, ConsentSignature, Signer};
    use ketcare_ops::schedule::{Booking, BookingStatus, PhaseKind};

    let consent = ConsentSignature {
        id: ConsentId::new(3),
        patient_id: 12,
        document_id: ConsentDocumentId::new(2),
        protocol_id: "trd-adolescent-iv-ketamine-yale".into(),
        document_version: 1,
        protocol_version: 1,
        signer: Signer::Guardian {
            guardian_id: 4,
            name: "Ada Quill".into(),
            relationship: "mother".into(),
        },
        assent: Some(Assent::Given { obtained_by: 5 }),
        signed_at: at("2026-11-30T09:00:00Z"),
        expires_at: Some(at("2027-11-30T09:00:00Z")),
        withdrawn_at: None,
        withdrawn_by: None,
        withdrawal_reason: None,
        recorded_by: 5,
    };
    insta::assert_json_snapshot!(
        "consent",
        workflow::consent(&consent, at("2026-12-06T00:00:00Z"))
    );
    let booking = Booking {
        id: BookingId::new(8),
        course_id: Some(2),
        patient_id: 12,
        chair_id: 1,
        nurse_id: 5,
        prescriber_required: true,
        start: jiff::civil::date(2026, 12, 7).at(9, 0, 0, 0),
        end: jiff::civil::date(2026, 12, 7).at(11, 40, 0, 0),
        status: BookingStatus::Booked,
        phase: PhaseKind::Induction,
    };
    insta::assert_json_snapshot!(
        "appointment",
        workflow::appointment(
            &booking,
            at("2026-12-07T09:00:00Z"),
            at("2026-12-07T11:40:00Z"),
            "Chair 1"
        )
    );
    insta::assert_json_snapshot!(
        "practitioner",
        workflow::practitioner(5, "nina", "Nina Patel, RN", true)
    );
    insta::assert_json_snapshot!(
        "practitioner_role",
        workflow::practitioner_role(5, Role::Nurse, true)
    );
    let record = ketcare_core::audit::AuditRecord {
        seq: 41,
        at: "2026-12-06T10:15:00.123Z".into(),
        user_id: Some(5),
        username: "nina".into(),
        role: "nurse".into(),
        address: "10.0.0.8".into(),
        action: "patient.read".into(),
        patient_id: Some(12),
        detail: "Robin Quill, KC-1001".into(),
        prev_hash: "a".into(),
        hash: "b".into(),
    };
    let event = workflow::audit_event(&record);
    assert!(!event.to_string().contains("Quill"), "no free text");
    insta::assert_json_snapshot!("audit_event", event);
    insta::assert_json_snapshot!(
        "group",
        workflow::group("trd-adult-iv-ketamine", "IV ketamine for TRD", &[12, 14])
    );
    let catalogue = ketcare_measures::Catalogue::builtin().unwrap_or_else(|e| panic!("{e}"));
    let phq9 = catalogue
        .instrument("phq9")
        .unwrap_or_else(|| panic!("phq9"));
    insta::assert_json_snapshot!("questionnaire", questionnaire::questionnaire(phq9));
    insta::assert_json_snapshot!(
        "questionnaire_response",
        questionnaire::questionnaire_response(questionnaire::ResponseOf {
            response_id: 31,
            patient: 12,
            instrument: "phq9",
            answers: "[1,1,1,1,1,1,1,1,0,null]",
            taken_on: "2026-11-20",
            recorded_by: "nina",
            recorded_at: at("2026-11-20T10:00:00Z"),
        })
    );
}

/// The dose order as calculated and verified by the calculator itself, what a session gave
/// (start, a rate change, stop; the session signed), the session as an Encounter and its
/// MOAA/S and CADSS scores.
#[test]
fn order_administration_encounter_and_scores() {
    use ketcare_clinical::{Library, SiteSettings, Username};
    use ketcare_fhir::medication;
    use ketcare_session::session::{
        AdminEvent, Administration, Phase, Score, ScoreKind, Session, Signature, Transition,
    };

    let library = Library::builtin().unwrap_or_else(|e| panic!("{e}"));
    let settings = SiteSettings::new()
        .with("rounding.dose_mg_increment", 0.5)
        .with("rounding.syringe_ml_increment", 0.1)
        .with("rounding.pump_ml_per_h_increment", 0.1)
        .with("observation.ketamine_psychiatric_minutes", 120.0);
    let request: ketcare_clinical::DoseRequest = serde_json::from_value(serde_json::json!({
        "protocol_id": "trd-adult-iv-ketamine",
        "patient": {"weight_kg": 70, "age": {"years": 40}},
        "preparation": {"concentration_mg_per_ml": 10, "final_volume_ml": 50},
        "author": "doc",
        "created_at": "2026-12-06T09:00:00Z",
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let order = ketcare_clinical::calculate(&library, &settings, &request)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .verify(
            Username::new("pharm").unwrap_or_else(|e| panic!("{e:?}")),
            ketcare_clinical::Timestamp::parse("2026-12-06T09:05:00Z")
                .unwrap_or_else(|e| panic!("{e:?}")),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    let protocol = library
        .get("trd-adult-iv-ketamine")
        .unwrap_or_else(|e| panic!("{e:?}"));
    insta::assert_json_snapshot!(
        "medication_request",
        medication::medication_request(medication::OrderOf {
            order_id: 17,
            patient: 12,
            revision: 2,
            drug: Some(protocol.drug),
            route: Some(protocol.route),
            updated: at("2026-12-06T09:05:00Z"),
            order: &order,
        })
    );

    let rules =
        ketcare_session::RulesFile::builtin(library.sources()).unwrap_or_else(|e| panic!("{e}"));
    let plan = rules.plan(protocol, &settings, 0);
    let mut session = Session::new(plan, "Chair 2", at("2026-12-06T10:00:00Z"));
    session.dose_order_id = Some(17);
    let step = |t: &str, from: Phase, to: Phase| Transition {
        at: at(t),
        by: "nina".into(),
        from,
        to,
        note: None,
    };
    session.transitions = vec![
        step("2026-12-06T09:50:00Z", Phase::Scheduled, Phase::CheckedIn),
        step(
            "2026-12-06T12:45:00Z",
            Phase::ReadyForDischarge,
            Phase::Discharged,
        ),
    ];
    session.phase = Phase::Discharged;
    let given = |t: &str, event: AdminEvent| Administration {
        at: at(t),
        by: "nina".into(),
        event,
    };
    session.administrations = vec![
        given(
            "2026-12-06T10:05:00Z",
            AdminEvent::Start {
                rate_ml_per_h: Some(52.5),
                deviation: None,
            },
        ),
        given(
            "2026-12-06T10:20:00Z",
            AdminEvent::Pause {
                reason: "nausea".into(),
            },
        ),
        given("2026-12-06T10:25:00Z", AdminEvent::Resume),
        given("2026-12-06T10:50:00Z", AdminEvent::Stop { reason: None }),
    ];
    session.given_mg = Some(35.0);
    session.signature = Some(Signature {
        by: "doc".into(),
        at: at("2026-12-06T12:50:00Z"),
    });
    session.scores = vec![
        Score {
            at: at("2026-12-06T10:45:00Z"),
            by: "nina".into(),
            kind: ScoreKind::Moaas,
            value: 4,
        },
        Score {
            at: at("2026-12-06T11:05:00Z"),
            by: "nina".into(),
            kind: ScoreKind::Cadss,
            value: 9,
        },
    ];
    let updated = at("2026-12-06T12:50:00Z");
    insta::assert_json_snapshot!(
        "medication_administration",
        medication::medication_administration(3, 12, 9, &session, Some(protocol.drug), updated)
    );
    insta::assert_json_snapshot!(
        "encounter",
        resources::encounter(3, 12, 9, &session, updated)
    );
    insta::assert_json_snapshot!(
        "score_observations",
        resources::score_observations(3, 12, &session, updated)
    );
}
