//! Session records on SQLite and PostgreSQL: commands through the store, vitals stored once per
//! message key, alarms raised in the same transaction, signed records locked (also by the
//! database), addenda, every change audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jiff::Timestamp;
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::patient::{NewPatient, PatientInput};
use ketcare_core::{Actor, PatientId, Role, SessionId};
use ketcare_ops::ledger::{LedgerEvent, Witness};
use ketcare_session::session::{
    ChecklistUpdate, DischargeConfirmations, Pregnancy, RiskScreen, ScoreKind, VerifiedDose,
};
use ketcare_session::{Command, Phase, RulesFile, Session, VitalReading, VitalSource, Vitals};
use ketcare_store::testing::{BACKENDS, consent_on_file, fresh_store, ledger_staff, receive_vial};
use ketcare_store::{MessageKey, MonitorMatch, Store, StoreError, VitalOutcome};

const T0: i64 = 1_767_258_000;
fn at(min: i64) -> Timestamp {
    Timestamp::from_second(T0 + min * 60).unwrap()
}

async fn patient(store: &dyn Store, mrn: &str) -> PatientId {
    let input: PatientInput = serde_json::from_value(serde_json::json!({
        "mrn": mrn, "given_name": "Ada", "family_name": "Test", "date_of_birth": "1980-02-03",
        "sex": "female"
    }))
    .unwrap();
    let p = NewPatient::parse(&input, jiff::civil::date(2026, 1, 1)).unwrap();
    let id = store
        .create_patient(&Actor::system(Role::Nurse), &p)
        .await
        .unwrap()
        .id;
    // Consent on file for the protocol the sessions here give.
    let plan = &session("-").plan;
    consent_on_file(store, id, &plan.protocol_id, plan.protocol_version, at(-60)).await;
    id
}

fn session(chair: &str) -> Session {
    let lib = Library::builtin().unwrap();
    let rules = RulesFile::builtin(lib.sources()).unwrap();
    let settings = SiteSettings::new()
        .with("observation.ketamine_psychiatric_minutes", 60.0)
        .with("session.ketamine.bp_gate_systolic_mmhg", 140.0)
        .with("session.ketamine.bp_gate_diastolic_mmhg", 90.0)
        .with("session.alarm.spo2_low_percent", 92.0);
    let plan = rules.plan(lib.get("trd-adult-iv-ketamine").unwrap(), &settings, 0);
    Session::new(plan, chair, at(0))
}

fn nurse() -> Actor {
    Actor::system(Role::Nurse)
}

fn reading(min: i64, spo2: f64, control: Option<&str>) -> VitalReading {
    VitalReading {
        at: at(min),
        vitals: Vitals {
            systolic: Some(125.0),
            diastolic: Some(80.0),
            spo2: Some(spo2),
            ..Vitals::default()
        },
        source: if control.is_some() {
            VitalSource::Monitor
        } else {
            VitalSource::Manual
        },
        by: "nurse".into(),
        control_id: control.map(str::to_owned),
    }
}

#[tokio::test]
async fn a_session_from_check_in_to_signed_record() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let pid = patient(s, "MRN-S1").await;
        let rec = s
            .create_treatment_session(&nurse(), pid, &session("Chair 1"))
            .await
            .unwrap();
        let id = rec.id;
        assert_eq!(rec.session.phase, Phase::Scheduled);
        // Nothing in the chair yet: monitors cannot match, vitals refused.
        assert_eq!(
            s.match_active_session(&["MRN-S1".into()], &[])
                .await
                .unwrap(),
            MonitorMatch::NoActiveSession {
                mrn: "MRN-S1".into()
            }
        );
        assert!(matches!(
            s.record_vital(&nurse(), id, &reading(0, 98.0, None), None)
                .await,
            Err(StoreError::Conflict(_))
        ));
        let steps = [
            Command::CheckIn,
            Command::BeginPreAssessment,
            Command::UpdateChecklist(ChecklistUpdate {
                fasting_confirmed: Some(true),
                pregnancy: Some(Pregnancy::NotPregnant),
                escort_home: Some(true),
                eligibility_reconfirmed: Some(true),
                suicide_risk: Some(RiskScreen::Negative),
                ..Default::default()
            }),
            Command::SetBaseline {
                vitals: reading(0, 98.0, None).vitals,
            },
            Command::AttachDose {
                dose: VerifiedDose {
                    order_id: 7,
                    summary: "0.5 mg/kg".into(),
                    author: "prescriber".into(),
                    verified_by: "pharmacist".into(),
                    devices: 0,
                    dose_mg: Some(35.0),
                    delivery: Default::default(),
                },
            },
        ];
        for (i, c) in steps.iter().enumerate() {
            s.apply_session_command(&nurse(), id, c, at(i as i64))
                .await
                .unwrap();
        }
        // Illegal transition refused and nothing changes.
        let rev = s.session_record(&nurse(), id).await.unwrap().revision;
        let e = s
            .apply_session_command(&nurse(), id, &Command::Discharge, at(6))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict(m) if m.contains("cannot discharge")),
            "{e}"
        );
        assert_eq!(s.session_record(&nurse(), id).await.unwrap().revision, rev);
        s.apply_session_command(&nurse(), id, &Command::VerifyDose, at(8))
            .await
            .unwrap();
        s.apply_session_command(
            &nurse(),
            id,
            &Command::Start {
                rate_ml_per_h: None,
                rate_reason: None,
            },
            at(10),
        )
        .await
        .unwrap();
        assert_eq!(
            s.match_active_session(&["nope".into(), "MRN-S1".into()], &[])
                .await
                .unwrap()
                .session(),
            Some(id)
        );
        assert_eq!(
            s.match_active_session(&[], &["SUITE".into(), "chair 1".into()])
                .await
                .unwrap()
                .session(),
            Some(id)
        );

        // The registry's facts of the session: derived on the first read, and derived again after
        // a write (the alarm below), not served stale.
        let alarms_in_registry = || async {
            let subjects = s.registry(&Actor::system(Role::Researcher)).await.unwrap();
            assert_eq!(subjects.len(), 1, "{backend:?}");
            subjects[0].sessions[0].alarms
        };
        assert_eq!(alarms_in_registry().await, 0);
        assert_eq!(alarms_in_registry().await, 0, "read again from the facts");

        // A monitor message stored once; a low SpO2 raises an alarm in the same transaction.
        let out = s
            .record_vital(
                &nurse(),
                id,
                &reading(12, 90.0, Some("C1")),
                Some(&MessageKey::new("MON", "", "C1")),
            )
            .await
            .unwrap();
        match &out {
            VitalOutcome::Stored { alarms, .. } => assert_eq!(alarms.len(), 1, "{backend:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            alarms_in_registry().await,
            1,
            "{backend:?}: the facts follow the write"
        );
        let dup = s
            .record_vital(
                &nurse(),
                id,
                &reading(12, 90.0, Some("C1")),
                Some(&MessageKey::new("MON", "", "C1")),
            )
            .await
            .unwrap();
        assert!(matches!(dup, VitalOutcome::Duplicate { session_id, .. } if session_id == id));
        s.record_vital(&nurse(), id, &reading(13, 97.0, None), None)
            .await
            .unwrap();
        let vitals = s.session_vitals(&nurse(), id).await.unwrap();
        assert_eq!(vitals.len(), 2);
        assert_eq!(vitals[0].reading.control_id.as_deref(), Some("C1"));
        assert_eq!(vitals[0].reading.source, VitalSource::Monitor);
        assert_eq!(s.count("session_vitals").await.unwrap(), 2);
        // Bad input names the field.
        let mut bad = reading(14, 97.0, None);
        bad.vitals.spo2 = Some(120.0);
        assert!(
            matches!(s.record_vital(&nurse(), id, &bad, None).await, Err(StoreError::Invalid(f)) if f.get("spo2").is_some())
        );

        let rec = s.session_record(&nurse(), id).await.unwrap();
        assert_eq!(rec.session.alarms.len(), 1);
        s.apply_session_command(
            &nurse(),
            id,
            &Command::AcknowledgeAlarm { alarm: 1 },
            at(15),
        )
        .await
        .unwrap();
        s.apply_session_command(
            &nurse(),
            id,
            &Command::ResolveAlarm {
                alarm: 1,
                note: "repositioned".into(),
            },
            at(16),
        )
        .await
        .unwrap();
        for (m, c) in [
            (50, Command::Stop { reason: None }),
            (
                60,
                Command::Score {
                    kind: ScoreKind::Moaas,
                    value: 5,
                },
            ),
            (
                60,
                Command::Score {
                    kind: ScoreKind::Cadss,
                    value: 0,
                },
            ),
            (
                61,
                Command::ConfirmDischarge(DischargeConfirmations {
                    dissociation_resolved: Some(true),
                    escort_present: Some(true),
                    ..Default::default()
                }),
            ),
            (111, Command::ReadyForDischarge),
            (112, Command::Discharge),
        ] {
            s.apply_session_command(&nurse(), id, &c, at(m))
                .await
                .unwrap();
        }
        // A nurse may not sign? Nurses and prescribers may; a therapist may not.
        let therapist = Actor::system(Role::Therapist);
        assert!(matches!(
            s.apply_session_command(&therapist, id, &Command::Sign, at(113))
                .await,
            Err(StoreError::Forbidden { .. })
        ));
        // The ledger balances: 50 mg drawn = 35 mg given + 15 mg wasted before a witness.
        let [pharm, drawer, witness] = ledger_staff(s).await;
        let vial = receive_vial(s, &pharm).await;
        for e in [
            LedgerEvent::Draw {
                container: vial,
                session_id: id.get(),
                patient_id: pid.get(),
                volume_ul: 1_000,
            },
            LedgerEvent::Waste {
                session_id: id.get(),
                amount_ug: 15_000,
                witness: Some(Witness {
                    user_id: witness.user_id.unwrap().get(),
                    username: witness.username.clone(),
                    role: Role::Nurse,
                }),
                note: String::new(),
            },
        ] {
            s.ledger_append(&drawer, &e).await.unwrap();
        }
        // This order names no pump rate, so the record cannot compute the mg given: the nurse
        // documents it with a reason before signing.
        s.apply_session_command(
            &nurse(),
            id,
            &Command::RecordGiven {
                given_mg: 35.0,
                reason: Some("whole syringe given, per the pump's log".into()),
            },
            at(113),
        )
        .await
        .unwrap();
        // The signature and the exposure predicted from the record are one unit, and only onto
        // the revision that was read: a record changed since is refused with nothing written.
        let prescriber = Actor::system(Role::Prescriber);
        let read = s.session_record(&prescriber, id).await.unwrap();
        let exposure = ketcare_store::registry::PredictedExposure {
            model: "test-model".into(),
            weight_kg: 70.0,
            cmax_ng_ml: 180.0,
            auc_ng_min_ml: 9_000.0,
            auc_horizon_min: 240.0,
        };
        let stale = s
            .sign_session(&prescriber, id, at(113), read.revision - 1, Some(&exposure))
            .await;
        assert!(
            matches!(&stale, Err(StoreError::Conflict(m)) if m.contains("changed while it was being signed")),
            "{stale:?}"
        );
        let unsigned = s.session_record(&prescriber, id).await.unwrap();
        assert_eq!(unsigned.revision, read.revision);
        assert!(unsigned.session.signature.is_none());
        s.sign_session(&prescriber, id, at(113), read.revision, Some(&exposure))
            .await
            .unwrap();
        assert!(
            !s.signed_sessions_without_exposure(0, 100)
                .await
                .unwrap()
                .contains(&id),
            "the figure is stored with the signature"
        );
        // Locked: commands refused, vitals refused, the database refuses a direct change.
        assert!(
            s.apply_session_command(
                &nurse(),
                id,
                &Command::Score {
                    kind: ScoreKind::Moaas,
                    value: 5
                },
                at(114)
            )
            .await
            .is_err()
        );
        assert!(
            s.record_vital(&nurse(), id, &reading(115, 97.0, None), None)
                .await
                .is_err()
        );
        assert!(
            s.execute_raw(&format!(
                "UPDATE treatment_sessions SET chair = 'x' WHERE id = {id}"
            ))
            .await
            .is_err(),
            "{backend:?}"
        );
        assert!(s.execute_raw(&format!("INSERT INTO session_vitals (session_id, at, at_epoch, received_at, source, recorded_by) VALUES ({id}, 'x', 0, 'x', 'manual', 'x')")).await.is_err(), "{backend:?}");
        assert!(
            s.execute_raw("UPDATE session_vitals SET spo2 = 50")
                .await
                .is_err(),
            "{backend:?}"
        );
        // Addenda with who and when.
        s.apply_session_command(
            &nurse(),
            id,
            &Command::Addendum {
                text: "called patient next day: well".into(),
            },
            at(2000),
        )
        .await
        .unwrap();
        let rec = s.session_record(&nurse(), id).await.unwrap();
        assert_eq!(rec.session.addenda.len(), 1);
        assert_eq!(rec.session.addenda[0].at, at(2000));
        assert!(rec.session.signature.is_some());
        assert_eq!(s.patient_sessions(&nurse(), pid).await.unwrap().len(), 1);
        // Every change audited, chain intact.
        let v = s.verify_audit().await.unwrap();
        assert_eq!(v.broken, None);
    }
}

#[tokio::test]
async fn tick_raises_missed_vitals_once_and_roles_are_checked() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let pid = patient(s, "MRN-T1").await;
        let mut sess = session("Chair 9");
        for (m, c) in [(0, Command::CheckIn), (1, Command::BeginPreAssessment)] {
            sess.apply(&c, "nurse", at(m)).unwrap();
        }
        let id = s
            .create_treatment_session(&nurse(), pid, &sess)
            .await
            .unwrap()
            .id;
        assert_eq!(s.active_sessions(&nurse()).await.unwrap().len(), 1);
        let therapist = Actor::system(Role::Therapist);
        assert!(matches!(
            s.record_vital(&therapist, id, &reading(1, 98.0, None), None)
                .await,
            Err(StoreError::Forbidden { .. })
        ));
        assert!(matches!(
            s.create_treatment_session(&Actor::system(Role::Scheduler), pid, &sess)
                .await,
            Err(StoreError::Forbidden { .. })
        ));
        // Not dosing: the tick does nothing.
        assert!(s.tick_sessions(&nurse(), at(100)).await.unwrap().is_empty());
        // Drive to running with the pure core, stored as one command each.
        for (m, c) in to_dosing() {
            s.apply_session_command(&nurse(), id, &c, at(m))
                .await
                .unwrap();
        }
        // Ticks in the seconds after the start, before the first new reading: the check at 0
        // min is met by the baseline (it once raised a false "scheduled vitals missed").
        for secs in [1, 5, 10] {
            let t = Timestamp::from_second(at(10).as_second() + secs).unwrap();
            assert!(
                s.tick_sessions(&nurse(), t).await.unwrap().is_empty(),
                "{backend:?} {secs} s"
            );
        }
        s.record_vital(&nurse(), id, &reading(10, 98.0, None), None)
            .await
            .unwrap();
        assert!(s.tick_sessions(&nurse(), at(25)).await.unwrap().is_empty());
        let raised = s.tick_sessions(&nurse(), at(26)).await.unwrap();
        assert_eq!(raised.len(), 1, "{backend:?}");
        assert_eq!(raised[0].0, id);
        assert!(s.tick_sessions(&nurse(), at(27)).await.unwrap().is_empty());
    }
}

/// A checked-in session for a new patient in `chair`.
async fn seated(store: &dyn Store, mrn: &str, chair: &str) -> SessionId {
    let p = patient(store, mrn).await;
    let id = store
        .create_treatment_session(&nurse(), p, &session(chair))
        .await
        .unwrap()
        .id;
    store
        .apply_session_command(&nurse(), id, &Command::CheckIn, at(1))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn monitors_are_matched_by_patient_identity_first() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let a = seated(s, "MRN-A", "Chair 1").await;
        let b = seated(s, "MRN-B", "Chair 2").await;
        patient(s, "MRN-C").await; // registered, no session
        let m = |ids: &[&str], loc: &[&str]| {
            let ids: Vec<String> = ids.iter().map(|x| x.to_string()).collect();
            let loc: Vec<String> = loc.iter().map(|x| x.to_string()).collect();
            async move { s.match_active_session(&ids, &loc).await.unwrap() }
        };
        // PID-3 and PV1-3 agree; PV1-3 names no occupied chair (PID-3 decides); PID-3 alone.
        assert_eq!(
            m(&["MRN-A"], &["SUITE", "Chair 1"]).await.session(),
            Some(a)
        );
        assert_eq!(m(&["MRN-A"], &["SUITE", "Bed 9"]).await.session(), Some(a));
        assert_eq!(m(&["MRN-B"], &[]).await.session(), Some(b));
        // PID-3 names the patient of another chair: refused, naming both.
        let mismatch = m(&["MRN-B"], &["SUITE", "chair 1"]).await;
        assert_eq!(
            mismatch,
            MonitorMatch::ChairMismatch {
                mrn: "MRN-B".into(),
                patient_chair: "Chair 2".into(),
                location: "SUITE/chair 1".into(),
                seated_chair: "Chair 1".into(),
            },
            "{backend:?}"
        );
        let why = mismatch.reason();
        assert!(
            why.contains("PID-3 and PV1-3 disagree") && why.contains("MRN-B"),
            "{why}"
        );
        // PID-3 naming nobody is refused even though someone sits in the chair PV1-3 names.
        let unknown = m(&["MRN-NOBODY"], &["Chair 1"]).await;
        assert_eq!(
            unknown,
            MonitorMatch::UnknownPatient {
                ids: vec!["MRN-NOBODY".into()]
            }
        );
        assert!(unknown.reason().starts_with("PID-3: no patient"));
        // A registered patient with no session in a chair.
        assert_eq!(
            m(&["MRN-C"], &["Chair 2"]).await,
            MonitorMatch::NoActiveSession {
                mrn: "MRN-C".into()
            }
        );
        // Repetitions naming two patients.
        assert!(matches!(
            m(&["MRN-A", "MRN-B"], &[]).await,
            MonitorMatch::SeveralPatients { mrns } if mrns == ["MRN-A", "MRN-B"]
        ));
        // Only with PID-3 empty does the chair decide.
        assert_eq!(m(&[], &["SUITE", "Chair 2"]).await.session(), Some(b));
        assert_eq!(m(&[" "], &["Chair 1"]).await.session(), Some(a));
        assert_eq!(
            m(&[], &["Chair 7"]).await,
            MonitorMatch::NoSessionAtLocation {
                location: vec!["Chair 7".into()]
            }
        );
        assert!(m(&[], &[]).await.session().is_none());
    }
}

#[tokio::test]
async fn the_message_key_is_three_columns() {
    for backend in BACKENDS {
        let url = ketcare_store::testing::fresh_url(backend).await;
        let store = ketcare_store::open(&url).await.unwrap();
        let s = store.as_ref();
        let id = seated(s, "MRN-K", "Chair 1").await;
        let monitor = |spo2: f64| reading(5, spo2, Some("C"));
        // "A|B" + "C" and "A" + "B|C" joined with '|' were the same key: now two messages.
        let k1 = MessageKey::new("A|B", "C", "77");
        let k2 = MessageKey::new("A", "B|C", "77");
        for (k, spo2) in [(&k1, 97.0), (&k2, 96.0)] {
            assert!(
                matches!(
                    s.record_vital(&nurse(), id, &monitor(spo2), Some(k))
                        .await
                        .unwrap(),
                    VitalOutcome::Stored { .. }
                ),
                "{backend:?} {k:?}"
            );
        }
        // A true repeat is acknowledged once and stored once.
        let again = s
            .record_vital(&nurse(), id, &monitor(97.0), Some(&k1))
            .await
            .unwrap();
        assert!(matches!(again, VitalOutcome::Duplicate { session_id, .. } if session_id == id));
        assert_eq!(s.count("session_vitals").await.unwrap(), 2);
        let stored = s.session_vitals(&nurse(), id).await.unwrap();
        assert_eq!(
            stored
                .iter()
                .map(|v| (v.reading.control_id.clone(), v.reading.vitals.spo2))
                .collect::<Vec<_>>(),
            vec![
                (Some("77".into()), Some(97.0)),
                (Some("77".into()), Some(96.0))
            ]
        );

        // A row stored before migration 0009 (joined key only) is still found by its key.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO session_vitals (session_id, at, at_epoch, received_at, source, recorded_by, message_key, spo2)
             VALUES ($1, $2, $3, $2, 'monitor', 'monitor:OLD', 'OLD|FAC|X1', 95)",
        )
        .bind(id)
        .bind(at(6).to_string())
        .bind(at(6).as_second())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        let old = s
            .record_vital(
                &nurse(),
                id,
                &monitor(95.0),
                Some(&MessageKey::new("OLD", "FAC", "X1")),
            )
            .await
            .unwrap();
        assert!(
            matches!(old, VitalOutcome::Duplicate { .. }),
            "{backend:?}: {old:?}"
        );
        let stored = s.session_vitals(&nurse(), id).await.unwrap();
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[2].reading.control_id.as_deref(), Some("X1"));
    }
}

#[tokio::test]
async fn impossible_vitals_are_refused_by_the_store_naming_the_field() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let id = seated(s, "MRN-P", "Chair 1").await;
        for (field, v) in [
            (
                "spo2",
                Vitals {
                    spo2: Some(150.0),
                    ..Vitals::default()
                },
            ),
            (
                "heart_rate",
                Vitals {
                    heart_rate: Some(700.0),
                    ..Vitals::default()
                },
            ),
            (
                "systolic",
                Vitals {
                    systolic: Some(500.0),
                    diastolic: Some(90.0),
                    ..Vitals::default()
                },
            ),
            (
                "temperature_c",
                Vitals {
                    temperature_c: Some(12.0),
                    ..Vitals::default()
                },
            ),
        ] {
            let r = VitalReading {
                vitals: v,
                ..reading(3, 98.0, None)
            };
            match s.record_vital(&nurse(), id, &r, None).await {
                Err(StoreError::Invalid(f)) => {
                    let msg = f.get(field).unwrap_or_else(|| panic!("{field}: {f:?}"));
                    assert!(msg.contains("physiologically impossible"), "{msg}");
                }
                other => panic!("{backend:?} {field}: {other:?}"),
            }
        }
        assert_eq!(s.count("session_vitals").await.unwrap(), 0);
    }
}

#[tokio::test]
async fn synthetic_patients_are_refused_outside_the_demo_clinic() {
    for backend in BACKENDS {
        let s = fresh_store(backend).await;
        let e = s
            .insert_synthetic(&Actor::system(Role::Prescriber), &[])
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict(m) if m.contains("site.demo_clinic")),
            "{backend:?}: {e}"
        );
    }
}

/// The commands from pre-assessment to the start of dosing at minute 10, each with its minute.
fn to_dosing() -> Vec<(i64, Command)> {
    vec![
        (
            2,
            Command::UpdateChecklist(ChecklistUpdate {
                fasting_confirmed: Some(true),
                pregnancy: Some(Pregnancy::NotApplicable),
                escort_home: Some(true),
                eligibility_reconfirmed: Some(true),
                suicide_risk: Some(RiskScreen::PositiveReviewed),
                ..Default::default()
            }),
        ),
        (
            3,
            Command::SetBaseline {
                vitals: reading(3, 98.0, None).vitals,
            },
        ),
        (
            4,
            Command::AttachDose {
                dose: VerifiedDose {
                    order_id: 1,
                    summary: "x".into(),
                    author: "a".into(),
                    verified_by: "b".into(),
                    devices: 0,
                    dose_mg: Some(35.0),
                    delivery: Default::default(),
                },
            },
        ),
        (5, Command::VerifyDose),
        (
            10,
            Command::Start {
                rate_ml_per_h: None,
                rate_reason: None,
            },
        ),
    ]
}

/// A session with dosing started (the time and reading rules on), for a new patient.
async fn running(store: &dyn Store, mrn: &str, chair: &str) -> SessionId {
    let id = seated(store, mrn, chair).await;
    let steps = std::iter::once((1, Command::BeginPreAssessment)).chain(to_dosing());
    for (m, c) in steps {
        store
            .apply_session_command(&nurse(), id, &c, at(m))
            .await
            .unwrap();
    }
    id
}

/// Group commit changes nothing a reading leads to: readings queued together (one batch) are
/// stored in the order they were queued, raise the alarms they raise one at a time, and each
/// has its audit record, chained in the same order; a repeat within the batch is stored once.
#[tokio::test]
async fn vitals_written_together_keep_their_order_alarms_and_audit_chain() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let one = running(s, "MRN-B1", "Chair B1").await;
        let many = running(s, "MRN-B2", "Chair B2").await;
        let readings: Vec<VitalReading> = (0..40)
            .map(|i| {
                // Every third reading below the SpO2 threshold (92 %); systolic tells them apart.
                let spo2 = if i % 3 == 1 { 85.0 } else { 98.0 };
                let mut r = reading(20 + i, spo2, Some("m"));
                r.vitals.systolic = Some(100.0 + i as f64);
                r
            })
            .collect();
        let key = |side: &str, i: usize| MessageKey::new("MON", "SITE", format!("{side}-{i}"));
        // One at a time: each its own batch.
        let mut serial = Vec::new();
        for (i, r) in readings.iter().enumerate() {
            serial.push(
                s.record_vital(&nurse(), one, r, Some(&key("S", i)))
                    .await
                    .unwrap(),
            );
        }
        // All at once: each call queues its reading when first polled, in order, before the
        // writer task runs (this test's runtime has one thread), so the writer takes them
        // together. The last one repeats the first message.
        let keys: Vec<MessageKey> = (0..40).map(|i| key("B", i)).chain([key("B", 0)]).collect();
        let monitor = nurse();
        let calls = readings
            .iter()
            .chain([&readings[0]])
            .zip(&keys)
            .map(|(r, k)| s.record_vital(&monitor, many, r, Some(k)));
        let together: Vec<VitalOutcome> = futures_util::future::join_all(calls)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let kinds = |o: &VitalOutcome| match o {
            VitalOutcome::Stored { alarms, .. } => {
                alarms.iter().map(|a| a.kind.label()).collect::<Vec<_>>()
            }
            VitalOutcome::Duplicate { .. } => panic!("{backend:?}: not a repeat"),
        };
        let mut raised = 0;
        let mut last_id = 0;
        for (i, (a, b)) in serial.iter().zip(&together).enumerate() {
            assert_eq!(kinds(a), kinds(b), "{backend:?} reading {i}");
            raised += kinds(b).len();
            let VitalOutcome::Stored { vital, .. } = b else {
                unreachable!()
            };
            assert!(vital.id > last_id, "{backend:?}: stored in queue order");
            last_id = vital.id;
        }
        assert!(raised > 0, "{backend:?}: the readings raise alarms");
        let VitalOutcome::Stored { vital: first, .. } = &together[0] else {
            unreachable!()
        };
        assert_eq!(
            together[40],
            VitalOutcome::Duplicate {
                vital_id: first.id,
                session_id: many
            },
            "{backend:?}"
        );
        assert_eq!(s.session_vitals(&nurse(), many).await.unwrap().len(), 40);
        let alarms = |id| async move {
            s.session_record(&nurse(), id)
                .await
                .unwrap()
                .session
                .alarms
                .iter()
                .map(|a| (a.kind.label(), a.raised_at, a.detail.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(alarms(one).await, alarms(many).await, "{backend:?}");
        // One audit record per stored reading, chained in the order they were queued.
        let patient = s.session_record(&nurse(), many).await.unwrap().patient_id;
        let mut records = s
            .audit_records(
                &Actor::system(Role::Administrator),
                &ketcare_store::AuditFilter {
                    username: None,
                    action: Some("session.vitals".into()),
                    patient_id: Some(patient.get()),
                    before_seq: None,
                    limit: 1000,
                },
            )
            .await
            .unwrap();
        records.retain(|r| r.action == "session.vitals");
        records.sort_by_key(|r| r.seq);
        assert_eq!(records.len(), 40, "{backend:?}");
        for (r, reading) in records.iter().zip(&readings) {
            assert!(
                r.detail.contains(&reading.vitals.summary()),
                "{backend:?}: {} for {}",
                r.detail,
                reading.vitals.summary()
            );
        }
        assert_eq!(s.verify_audit().await.unwrap().broken, None);
    }
}

/// The ticker reads only what changed since its last tick, and misses nothing: readings stored
/// between ticks meet their checks (no false "vitals missed"), a session that starts while it
/// runs is picked up, and a check no reading met is raised, once.
#[tokio::test]
async fn the_ticker_reads_what_changed_between_ticks() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let first = running(s, "MRN-K1", "Chair K1").await;
        let mut second = None;
        // Dosing started at minute 10: checks at 10, 25, 40, 55, 70 and 100 (the schedule at
        // 0, 15, 30, 45, 60 and 90 min); a check is met by a reading after the previous one.
        for m in 11..100 {
            if m == 20 {
                // Started after the ticker's first ticks; its first reading meets the check
                // at 25.
                let id = running(s, "MRN-K2", "Chair K2").await;
                s.record_vital(&nurse(), id, &reading(m, 98.0, None), None)
                    .await
                    .unwrap();
                second = Some(id);
            }
            if [12, 27, 42, 57].contains(&m) {
                for id in [Some(first), second].into_iter().flatten() {
                    s.record_vital(&nurse(), id, &reading(m, 98.0, None), None)
                        .await
                        .unwrap();
                }
            }
            let t = Timestamp::from_second(at(m).as_second() + 30).unwrap();
            assert_eq!(
                s.tick_sessions(&nurse(), t).await.unwrap(),
                vec![],
                "{backend:?} minute {m}"
            );
        }
        // No reading after minute 70: the check at 100 is missed, in both sessions, once.
        let mut raised: Vec<SessionId> = Vec::new();
        for _ in 0..2 {
            raised.extend(
                s.tick_sessions(&nurse(), at(101))
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(id, _)| id),
            );
        }
        raised.sort();
        let mut expected = vec![first, second.unwrap()];
        expected.sort();
        assert_eq!(raised, expected, "{backend:?}");
    }
}
