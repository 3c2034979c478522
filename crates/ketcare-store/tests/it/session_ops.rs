//! Sessions joined to operations, on SQLite and PostgreSQL: the consent record gates the start
//! of a session (each reason it can be invalid, through the session commands) and the
//! controlled-substance ledger gates its signature (drawn = given + wasted).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jiff::Timestamp;
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::patient::{GuardianInput, NewGuardian, NewPatient, PatientInput};
use ketcare_core::{Actor, PatientId, RecordId, Role, SessionId};
use ketcare_ops::consent::{Assent, Signer};
use ketcare_ops::ledger::{LedgerEvent, Witness};
use ketcare_session::session::{ChecklistUpdate, Pregnancy, RiskScreen, VerifiedDose};
use ketcare_session::{Command, Phase, RulesFile, Session, Vitals};
use ketcare_store::testing::{BACKENDS, consent_on_file, fresh_store, ledger_staff, receive_vial};
use ketcare_store::{NewConsentDocument, NewSignature, NewUser, Store, StoreError};

const T0: i64 = 1_767_258_000; // 2026-01-01T09:00:00Z
fn at(min: i64) -> Timestamp {
    Timestamp::from_second(T0 + min * 60).unwrap()
}
fn days_before(d: i64) -> Timestamp {
    Timestamp::from_second(T0 - d * 86_400).unwrap()
}

fn session() -> Session {
    let lib = Library::builtin().unwrap();
    let rules = RulesFile::builtin(lib.sources()).unwrap();
    let settings = SiteSettings::new()
        .with("observation.ketamine_psychiatric_minutes", 60.0)
        .with("session.ketamine.bp_gate_systolic_mmhg", 140.0)
        .with("session.ketamine.bp_gate_diastolic_mmhg", 90.0);
    let plan = rules.plan(lib.get("trd-adult-iv-ketamine").unwrap(), &settings, 0);
    Session::new(plan, "Chair 1", at(0))
}

fn nurse() -> Actor {
    Actor::system(Role::Nurse)
}

async fn patient(store: &dyn Store, mrn: &str, dob: &str) -> PatientId {
    let input = PatientInput {
        mrn: mrn.into(),
        given_name: "Pat".into(),
        family_name: mrn.into(),
        date_of_birth: dob.into(),
        sex: "female".into(),
        ..Default::default()
    };
    let p = NewPatient::parse(&input, jiff::civil::date(2026, 1, 1)).unwrap();
    store.create_patient(&nurse(), &p).await.unwrap().id
}

/// The verified order's delivery facts: 35 mg over 40 min at 8.75 mL/h of 6 mg/mL for 70 kg
/// (52.5 mg/h), with the adult TRD protocol's hard 1.0 mg/kg.
fn delivery() -> ketcare_session::OrderedDelivery {
    use ketcare_clinical::protocol::{Bound, LimitQuantity, LimitSeverity};
    ketcare_session::OrderedDelivery {
        infusion: Some(ketcare_session::delivery::OrderedInfusion {
            rate_ml_per_h: 8.75,
            concentration_mg_per_ml: 6.0,
            dose_mg: 35.0,
            duration_minutes: Some(40.0),
            basis_kg: 70.0,
            other_session_mg: 0.0,
            limits: vec![ketcare_session::delivery::RateLimit {
                limit_id: "max-mg-per-kg-hard".into(),
                label: "highest dose tested".into(),
                applies_to: "infusion".into(),
                severity: LimitSeverity::Hard,
                bound: Bound::Max,
                quantity: LimitQuantity::MgPerKg,
                limit: 1.0,
                unit: "mg/kg".into(),
            }],
        }),
        ..Default::default()
    }
}

/// Checks in and completes everything but consent; returns the session id and its consent
/// reason as the pre-assessment shows it.
async fn pre_assessed(store: &dyn Store, pid: PatientId) -> (SessionId, Option<String>) {
    let id = store
        .create_treatment_session(&nurse(), pid, &session())
        .await
        .unwrap()
        .id;
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
            vitals: Vitals {
                systolic: Some(120.0),
                diastolic: Some(80.0),
                ..Vitals::default()
            },
        },
        Command::AttachDose {
            dose: VerifiedDose {
                order_id: 1,
                summary: "0.5 mg/kg".into(),
                author: "prescriber".into(),
                verified_by: "pharmacist".into(),
                devices: 0,
                dose_mg: Some(35.0),
                delivery: delivery(),
            },
        },
    ];
    let mut rec = None;
    for (i, c) in steps.iter().enumerate() {
        rec = Some(
            store
                .apply_session_command(&nurse(), id, c, at(i as i64))
                .await
                .unwrap(),
        );
    }
    let c = rec.unwrap().session.checklist.consent.unwrap();
    (id, c.reason)
}

async fn verify(store: &dyn Store, id: SessionId) -> Result<Phase, String> {
    store
        .apply_session_command(&nurse(), id, &Command::VerifyDose, at(8))
        .await
        .map(|r| r.session.phase)
        .map_err(|e| match e {
            StoreError::Conflict(m) => m,
            e => panic!("{e}"),
        })
}

#[tokio::test]
async fn the_consent_record_gates_the_session_for_each_reason() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let plan = session().plan;
        let (proto, version) = (plan.protocol_id.as_str(), plan.protocol_version);
        let u = s
            .create_user(
                &Actor::system(Role::Administrator),
                &NewUser {
                    username: "consenter".into(),
                    display_name: "Consenter".into(),
                    role: Role::Nurse,
                    password_hash: "x".into(),
                },
            )
            .await
            .unwrap();
        let consenter = Actor::user(u.id, "consenter", Role::Nurse, "127.0.0.1");

        // Valid: the session goes ahead and the record keeps the check.
        let ok = patient(s, "OK-1", "1980-01-01").await;
        consent_on_file(s, ok, proto, version, days_before(10)).await;
        let (ok_id, reason) = pre_assessed(s, ok).await;
        assert_eq!(reason, None, "{backend:?}");
        assert_eq!(verify(s, ok_id).await, Ok(Phase::DoseVerified));

        // None on file.
        let none = patient(s, "NONE-1", "1980-01-01").await;
        let (id, reason) = pre_assessed(s, none).await;
        assert_eq!(reason.as_deref(), Some("no_consent"), "{backend:?}");
        let e = verify(s, id).await.unwrap_err();
        assert!(e.contains("no consent has been signed"), "{e}");

        // Expired (the document is valid 365 days).
        let old = patient(s, "EXP-1", "1980-01-01").await;
        consent_on_file(s, old, proto, version, days_before(400)).await;
        let (id, reason) = pre_assessed(s, old).await;
        assert_eq!(reason.as_deref(), Some("expired"));
        assert!(verify(s, id).await.unwrap_err().contains("consent expired"));

        // Withdrawn.
        let wd = patient(s, "WD-1", "1980-01-01").await;
        let sig = consent_on_file(s, wd, proto, version, days_before(5)).await;
        s.withdraw_consent(
            &consenter,
            wd,
            sig.id,
            days_before(1),
            "patient asked to stop",
        )
        .await
        .unwrap();
        let (id, reason) = pre_assessed(s, wd).await;
        assert_eq!(reason.as_deref(), Some("withdrawn"));
        assert!(verify(s, id).await.unwrap_err().contains("withdrawn"));

        // Minor without assent (a record from before assent was required at signing).
        let minor = patient(s, "MIN-1", "2012-03-03").await;
        let g = s
            .add_guardian(
                &consenter,
                minor,
                &NewGuardian::parse(&GuardianInput {
                    name: "Ann Parent".into(),
                    relationship: "mother".into(),
                    phone: "555-0100".into(),
                    ..Default::default()
                })
                .unwrap(),
            )
            .await
            .unwrap();
        s.record_consent(
            &consenter,
            &NewSignature {
                patient_id: minor,
                protocol_id: proto.into(),
                signer: Signer::Guardian {
                    guardian_id: g.id.get(),
                    name: "Ann Parent".into(),
                    relationship: "mother".into(),
                },
                assent: Some(Assent::Given {
                    obtained_by: u.id.get(),
                }),
                signed_at: days_before(3),
            },
        )
        .await
        .unwrap();
        s.execute_raw(&format!(
            "UPDATE ops_consent_signatures SET assent = NULL WHERE patient_id = {}",
            minor.get()
        ))
        .await
        .unwrap();
        let (id, reason) = pre_assessed(s, minor).await;
        assert_eq!(reason.as_deref(), Some("minor_without_assent"));
        assert!(verify(s, id).await.unwrap_err().contains("assent"));

        // Protocol changed: signed for another protocol version.
        let pc = patient(s, "PC-1", "1980-01-01").await;
        consent_on_file(s, pc, proto, version + 1, days_before(2)).await;
        let (id, reason) = pre_assessed(s, pc).await;
        assert_eq!(reason.as_deref(), Some("protocol_changed"));
        assert!(verify(s, id).await.unwrap_err().contains("re-consent"));

        // Old document version: a new version supersedes what was signed; the patient who was
        // valid above can no longer start (checked again at the start itself).
        let doc = s
            .current_consent_document(&consenter, proto)
            .await
            .unwrap()
            .unwrap();
        s.add_consent_document(
            &consenter,
            &NewConsentDocument {
                protocol_id: proto.into(),
                protocol_version: version,
                off_label: true,
                title: doc.title.clone(),
                sections: doc.sections.clone(),
                valid_days: doc.valid_days,
            },
        )
        .await
        .unwrap();
        let (id2, reason) = pre_assessed(s, ok).await;
        assert_eq!(reason.as_deref(), Some("old_document_version"));
        assert!(verify(s, id2).await.unwrap_err().contains("re-consent"));
        let e = s
            .apply_session_command(
                &nurse(),
                ok_id,
                &Command::Start {
                    rate_ml_per_h: None,
                    rate_reason: None,
                },
                at(9),
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("consent is not valid"),
            "{backend:?}: {e}"
        );
        let rec = s.session_record(&nurse(), ok_id).await.unwrap();
        assert_eq!(rec.session.phase, Phase::DoseVerified);
        // The nurse cannot tick consent by hand.
        let e = s
            .apply_session_command(
                &nurse(),
                id2,
                &Command::UpdateChecklist(ChecklistUpdate {
                    consent_valid: Some(true),
                    ..Default::default()
                }),
                at(9),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("consent_valid"), "{e}");
    }
}

fn witness(a: &Actor) -> Option<Witness> {
    Some(Witness {
        user_id: a.user_id.unwrap().get(),
        username: a.username.clone(),
        role: Role::Nurse,
    })
}

async fn sign(store: &dyn Store, id: SessionId, m: i64) -> Result<(), String> {
    store
        .apply_session_command(&Actor::system(Role::Prescriber), id, &Command::Sign, at(m))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A session dosed and transferred (the infusion interrupted: 10 min at 8.75 mL/h, 8.75 mg by
/// the record), with `given_mg` documented as a correction with a reason.
async fn transferred(store: &dyn Store, pid: PatientId, given_mg: f64) -> SessionId {
    let (id, _) = pre_assessed(store, pid).await;
    for (m, c) in [
        (8, Command::VerifyDose),
        (
            10,
            Command::Start {
                rate_ml_per_h: None,
                rate_reason: None,
            },
        ),
        (
            20,
            Command::Escalate {
                reason: "hypertension".into(),
            },
        ),
        (
            30,
            Command::Transfer {
                destination: "ED".into(),
            },
        ),
    ] {
        store
            .apply_session_command(&nurse(), id, &c, at(m))
            .await
            .unwrap();
    }
    // Signing needs the mg given confirmed first; the record computes 8.75 mg.
    let e = sign(store, id, 31).await.unwrap_err();
    assert!(e.contains("mg given is not confirmed"), "{e}");
    assert!(e.contains("computes 8.75 mg"), "{e}");
    store
        .apply_session_command(
            &nurse(),
            id,
            &Command::RecordGiven {
                given_mg,
                reason: Some("pump history read after the transfer".into()),
            },
            at(32),
        )
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn the_ledger_gates_signing_on_every_path_that_could_lose_a_milligram() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let plan = session().plan;
        let [pharm, drawer, wit] = ledger_staff(s).await;
        let draw = |container, id: SessionId, pid: PatientId, volume_ul| LedgerEvent::Draw {
            container,
            session_id: id.get(),
            patient_id: pid.get(),
            volume_ul,
        };
        let waste = |id: SessionId, amount_ug| LedgerEvent::Waste {
            session_id: id.get(),
            amount_ug,
            witness: witness(&wit),
            note: String::new(),
        };

        // Balance: 50 mg drawn = 35 mg given + 15 mg wasted.
        let p1 = patient(s, "L-1", "1980-01-01").await;
        consent_on_file(
            s,
            p1,
            &plan.protocol_id,
            plan.protocol_version,
            days_before(1),
        )
        .await;
        let id = transferred(s, p1, 35.0).await;
        // No draw at all for a session that gave ketamine: refused, naming the numbers.
        let e = sign(s, id, 33).await.unwrap_err();
        assert!(
            e.contains("35 mg more given and wasted than drawn"),
            "{backend:?}: {e}"
        );
        let vial = receive_vial(s, &pharm).await;
        s.ledger_append(&drawer, &draw(vial, id, p1, 1_000))
            .await
            .unwrap();
        // Waste missing: 15 mg unaccounted for.
        let e = sign(s, id, 34).await.unwrap_err();
        assert!(
            e.contains("15 mg drawn is not accounted for (drawn 50 mg, given 35 mg, wasted 0 mg)"),
            "{e}"
        );
        s.ledger_append(&drawer, &waste(id, 15_000)).await.unwrap();
        sign(s, id, 35).await.unwrap();
        let rec = s.session_record(&nurse(), id).await.unwrap();
        let l = rec.session.ledger.unwrap();
        assert!(
            l.balanced && l.message.starts_with("balanced: 50 mg drawn"),
            "{}",
            l.message
        );
        // Signed: its ledger is closed to draws and waste alike.
        for e in [draw(vial, id, p1, 100), waste(id, 1_000)] {
            let r = s.ledger_append(&drawer, &e).await;
            assert!(
                matches!(&r, Err(StoreError::Invalid(f)) if f.get("session_id").is_some_and(|m| m.contains("signed"))),
                "{backend:?}: {r:?}"
            );
        }

        // Partial vial: 0.4 mL (20 mg) drawn from the opened vial, 20 mg given.
        let p2 = patient(s, "L-2", "1980-01-01").await;
        consent_on_file(
            s,
            p2,
            &plan.protocol_id,
            plan.protocol_version,
            days_before(1),
        )
        .await;
        let id = transferred(s, p2, 20.0).await;
        s.ledger_append(&drawer, &draw(vial, id, p2, 400))
            .await
            .unwrap();
        sign(s, id, 35).await.unwrap();
        let state = s.ledger_state(&pharm).await.unwrap();
        let c = state.container(vial).unwrap();
        assert_eq!(c.remaining_ul, 10_000 - 1_000 - 400, "{backend:?}");

        // Cancelled after a draw: nothing given, all drawn must be wasted before signing.
        let p3 = patient(s, "L-3", "1980-01-01").await;
        consent_on_file(
            s,
            p3,
            &plan.protocol_id,
            plan.protocol_version,
            days_before(1),
        )
        .await;
        let (id, _) = pre_assessed(s, p3).await;
        s.ledger_append(&drawer, &draw(vial, id, p3, 700))
            .await
            .unwrap();
        s.apply_session_command(
            &nurse(),
            id,
            &Command::Cancel {
                reason: "BP above the gate".into(),
            },
            at(9),
        )
        .await
        .unwrap();
        let e = sign(s, id, 10).await.unwrap_err();
        assert!(e.contains("35 mg drawn is not accounted for"), "{e}");
        s.ledger_append(&drawer, &waste(id, 35_000)).await.unwrap();
        sign(s, id, 11).await.unwrap();

        // Cancelled before anything was drawn: nothing to reconcile.
        let (id, _) = pre_assessed(s, p3).await;
        s.apply_session_command(
            &nurse(),
            id,
            &Command::Cancel {
                reason: "no escort".into(),
            },
            at(9),
        )
        .await
        .unwrap();
        sign(s, id, 10).await.unwrap();
    }
}

#[tokio::test]
async fn billing_reads_infusion_time_from_the_session_record_at_the_96365_96366_boundaries() {
    use ketcare_ops::billing::{CodeBook, PriceList, SiteBilling, superbill};
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let plan = session().plan;
        let pid = patient(s, "B-1", "1980-01-01").await;
        consent_on_file(
            s,
            pid,
            &plan.protocol_id,
            plan.protocol_version,
            days_before(1),
        )
        .await;
        for (minutes, expected) in [
            (15, vec![("96374", 1)]),
            (16, vec![("96365", 1)]),
            (90, vec![("96365", 1)]),
            (91, vec![("96365", 1), ("96366", 1)]),
        ] {
            let (id, _) = pre_assessed(s, pid).await;
            for (m, c) in [
                (8, Command::VerifyDose),
                (
                    10,
                    Command::Start {
                        rate_ml_per_h: None,
                        rate_reason: None,
                    },
                ),
                (10 + minutes, Command::Stop { reason: None }),
            ] {
                s.apply_session_command(&nurse(), id, &c, at(m))
                    .await
                    .unwrap();
            }
            let rec = s.session_record(&nurse(), id).await.unwrap();
            let facts = ketcare_store::session_ops::session_facts(id, rec.patient_id, &rec.session)
                .unwrap();
            // What ran: 8.75 mL/h × 6 mg/mL for the minutes it ran, not the whole order.
            assert_eq!(
                facts.given.0,
                (52.5 * minutes as f64 / 60.0 * 1000.0).round() as i64,
                "{backend:?}: {minutes} min"
            );
            assert_eq!(facts.infusion_minutes, Some(minutes));
            let bill = superbill(
                &facts,
                &CodeBook::builtin().unwrap(),
                &PriceList::default(),
                SiteBilling::from_settings(&|_| None),
            )
            .unwrap();
            let infusion: Vec<(&str, u32)> = bill
                .lines
                .iter()
                .filter(|l| l.code.starts_with("963"))
                .map(|l| (l.code.as_str(), l.units))
                .collect();
            assert_eq!(infusion, expected, "{backend:?}: {minutes} min");
        }
    }
}

/// Paused from minute 8 to 17 and stopped at 19: 10 minutes ran (96374, not 96365) and 8.75 mg
/// was given (not the order's 35 mg); signing balances against that once the nurse confirms it.
#[tokio::test]
async fn a_paused_early_stop_bills_and_balances_what_actually_ran() {
    use ketcare_ops::billing::{CodeBook, PriceList, SiteBilling, superbill};
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let plan = session().plan;
        let [pharm, drawer, _wit] = ledger_staff(s).await;
        let pid = patient(s, "P-1", "1980-01-01").await;
        consent_on_file(
            s,
            pid,
            &plan.protocol_id,
            plan.protocol_version,
            days_before(1),
        )
        .await;
        let (id, _) = pre_assessed(s, pid).await;
        for (m, c) in [
            (9, Command::VerifyDose),
            (
                10,
                Command::Start {
                    rate_ml_per_h: None,
                    rate_reason: None,
                },
            ),
            (
                18,
                Command::Pause {
                    reason: "BP".into(),
                },
            ),
            (27, Command::Resume),
            (
                29,
                Command::Stop {
                    reason: Some("patient asked to stop".into()),
                },
            ),
            (
                30,
                Command::Escalate {
                    reason: "agitation".into(),
                },
            ),
            (
                31,
                Command::Transfer {
                    destination: "ED".into(),
                },
            ),
        ] {
            s.apply_session_command(&nurse(), id, &c, at(m))
                .await
                .unwrap();
        }
        let rec = s.session_record(&nurse(), id).await.unwrap();
        let facts =
            ketcare_store::session_ops::session_facts(id, rec.patient_id, &rec.session).unwrap();
        assert_eq!(facts.infusion_minutes, Some(10), "{backend:?}");
        assert_eq!(facts.given.0, 8_750, "{backend:?}");
        let bill = superbill(
            &facts,
            &CodeBook::builtin().unwrap(),
            &PriceList::default(),
            SiteBilling::from_settings(&|_| None),
        )
        .unwrap();
        let codes: Vec<&str> = bill
            .lines
            .iter()
            .filter(|l| l.code.starts_with("963"))
            .map(|l| l.code.as_str())
            .collect();
        assert_eq!(codes, vec!["96374"], "{backend:?}");
        // 175 µL of 50 mg/mL = 8.75 mg drawn, all given.
        let vial = receive_vial(s, &pharm).await;
        s.ledger_append(
            &drawer,
            &LedgerEvent::Draw {
                container: vial,
                session_id: id.get(),
                patient_id: pid.get(),
                volume_ul: 175,
            },
        )
        .await
        .unwrap();
        let e = sign(s, id, 32).await.unwrap_err();
        assert!(e.contains("computes 8.75 mg"), "{backend:?}: {e}");
        // Correcting to the whole order without a reason is refused.
        let e = s
            .apply_session_command(
                &nurse(),
                id,
                &Command::RecordGiven {
                    given_mg: 35.0,
                    reason: None,
                },
                at(33),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("reason: 35 mg differs"), "{e}");
        s.apply_session_command(
            &nurse(),
            id,
            &Command::RecordGiven {
                given_mg: 8.75,
                reason: None,
            },
            at(34),
        )
        .await
        .unwrap();
        sign(s, id, 35).await.unwrap();
        let rec = s.session_record(&nurse(), id).await.unwrap();
        let c = rec.session.given_confirmation.unwrap();
        assert_eq!(
            (c.mg, c.by.as_str()),
            (8.75, nurse().username.as_str()),
            "{backend:?}"
        );
        assert!(rec.session.ledger.unwrap().balanced);
    }
}

/// The store itself schedules a session only for a verified dose order of that patient and of the
/// session plan's protocol: it reads the order's row in the creating transaction, whatever the
/// caller's copy says.
#[tokio::test]
async fn a_session_is_created_only_for_a_verified_order_of_its_patient() {
    use ketcare_store::{RecordChange, RecordKind};
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let pid = patient(s, "O-1", "1980-01-01").await;
        let other = patient(s, "O-2", "1980-01-01").await;
        let prescriber = Actor::system(Role::Prescriber);
        // The order's protocol, as stored, is the session plan's (another's is refused).
        let ordered = r#"{"calculation": {"protocol_id": "trd-adult-iv-ketamine"}}"#;
        let order_of = |state: &'static str, body: &'static str| RecordChange {
            permission: ketcare_core::Permission::OrderDose,
            kind: RecordKind::DoseOrder,
            state,
            body,
            action: "dose_order.create",
        };
        let order = |state: &'static str| order_of(state, ordered);
        let elsewhere = s
            .create_record(
                &prescriber,
                pid,
                &order_of(
                    "verified",
                    r#"{"calculation": {"protocol_id": "north-trd-adult-iv-ketamine-60min"}}"#,
                ),
            )
            .await
            .unwrap()
            .id;
        let pending = s
            .create_record(&prescriber, pid, &order("pending_verification"))
            .await
            .unwrap()
            .id;
        let verified = s
            .create_record(&prescriber, pid, &order("verified"))
            .await
            .unwrap()
            .id;
        let with_order = |id: RecordId| {
            let mut sess = session();
            sess.dose_order_id = Some(id.get());
            sess
        };
        for (who, id, needle) in [
            (pid, pending, "is pending verification"),
            (other, verified, "belongs to another patient"),
            (pid, RecordId::new(9_999), "no dose order 9999"),
            (
                pid,
                elsewhere,
                "is for protocol north-trd-adult-iv-ketamine-60min, not the session plan's trd-adult-iv-ketamine",
            ),
        ] {
            match s
                .create_treatment_session(&nurse(), who, &with_order(id))
                .await
            {
                Err(StoreError::Invalid(f)) => {
                    let e = &f.0[0];
                    assert_eq!(e.field, "order_id", "{backend:?}");
                    assert!(e.message.contains(needle), "{backend:?}: {}", e.message);
                }
                other => panic!("{backend:?}: expected a refusal naming order_id, got {other:?}"),
            }
        }
        let rec = s
            .create_treatment_session(&nurse(), pid, &with_order(verified))
            .await
            .unwrap();
        assert_eq!(rec.session.dose_order_id, Some(verified.get()));
    }
}
