//! Operations in the store, on SQLite and PostgreSQL: booking with conflicts refused, moves,
//! consent gating, the ledger (rules enforced, append-only, tamper detected), prices.

use jiff::Timestamp;
use jiff::civil::{DateTime, date};
use ketcare_core::patient::{GuardianInput, NewGuardian, NewPatient, PatientInput};
use ketcare_core::{Actor, BookingId, PatientId, Role, SessionId, UserId};
use ketcare_ops::consent::{Assent, ConsentStatus, InvalidReason, Section, SectionKind, Signer};
use ketcare_ops::ledger::{BusinessTime, CountLine, InventoryKind, LedgerEvent, Witness};
use ketcare_ops::schedule::{Booking, BookingStatus, Conflict, MoveMode, PhaseKind, Staffing};
use ketcare_store::testing::{BACKENDS, fresh_store};
use ketcare_store::{
    Backend, BookOutcome, NewConsentDocument, NewCourse, NewSignature, NewUser, Store, StoreError,
};
use std::sync::Arc;

struct Clinic {
    store: Arc<dyn Store>,
    scheduler: Actor,
    nurse: Actor,
    nurse_b: Actor,
    pharmacist: Actor,
    prescriber: Actor,
    admin: Actor,
    adult: PatientId,
    minor: PatientId,
    guardian: i64,
}

async fn user(store: &dyn Store, name: &str, role: Role) -> Actor {
    let u = store
        .create_user(
            &Actor::system(Role::Administrator),
            &NewUser {
                username: name.into(),
                display_name: name.into(),
                role,
                password_hash: "x".into(),
            },
        )
        .await
        .unwrap();
    Actor::user(u.id, name, role, "127.0.0.1")
}

async fn patient(store: &dyn Store, actor: &Actor, mrn: &str, dob: &str) -> PatientId {
    let input = PatientInput {
        mrn: mrn.into(),
        given_name: "Pat".into(),
        family_name: mrn.into(),
        date_of_birth: dob.into(),
        sex: "female".into(),
        ..Default::default()
    };
    let p = NewPatient::parse(&input, date(2026, 12, 1)).unwrap();
    store.create_patient(actor, &p).await.unwrap().id
}

async fn clinic(backend: Backend) -> Clinic {
    let store = fresh_store(backend).await;
    let s = store.as_ref();
    let scheduler = user(s, "sched", Role::Scheduler).await;
    let nurse = user(s, "nurse", Role::Nurse).await;
    let nurse_b = user(s, "nurse2", Role::Nurse).await;
    let pharmacist = user(s, "pharm", Role::Pharmacist).await;
    let prescriber = user(s, "doc", Role::Prescriber).await;
    let admin = user(s, "admin", Role::Administrator).await;
    let adult = patient(s, &scheduler, "A1", "1980-01-01").await;
    let minor = patient(s, &scheduler, "M1", "2011-05-05").await;
    let g = NewGuardian::parse(&GuardianInput {
        name: "Ann Parent".into(),
        relationship: "mother".into(),
        phone: "555-0100".into(),
        ..Default::default()
    })
    .unwrap();
    let guardian = s
        .add_guardian(&scheduler, minor, &g)
        .await
        .unwrap()
        .id
        .get();
    Clinic {
        store,
        scheduler,
        nurse,
        nurse_b,
        pharmacist,
        prescriber,
        admin,
        adult,
        minor,
        guardian,
    }
}

fn uid(a: &Actor) -> i64 {
    a.user_id.map(UserId::get).unwrap()
}

fn at(d: u8, h: i8, m: i8) -> DateTime {
    date(2026, 12, d as i8).at(h, m, 0, 0)
}

fn req(
    _c: &Clinic,
    patient: PatientId,
    chair: i64,
    nurse: &Actor,
    start: DateTime,
    minutes: i64,
) -> Booking {
    Booking {
        id: BookingId::new(0),
        course_id: None,
        patient_id: patient.get(),
        chair_id: chair,
        nurse_id: uid(nurse),
        prescriber_required: false,
        start,
        end: start
            .checked_add(jiff::Span::new().minutes(minutes))
            .unwrap(),
        status: BookingStatus::Booked,
        phase: PhaseKind::Induction,
    }
}

#[tokio::test]
async fn booking_conflicts_of_each_kind_are_refused_and_nothing_is_written() {
    for backend in BACKENDS {
        let c = clinic(backend).await;
        let s = c.store.as_ref();
        let chair1 = s.add_chair(&c.scheduler, "Chair 1").await.unwrap().id;
        let chair2 = s.add_chair(&c.scheduler, "Chair 2").await.unwrap().id;
        let first = req(&c, c.adult, chair1, &c.nurse, at(7, 9, 0), 100);
        let out = s
            .book(
                &c.scheduler,
                Some(&NewCourse {
                    patient_id: c.adult,
                    template_id: "iv-ketamine-induction-6".into(),
                    protocol_id: "trd-adult-iv-ketamine".into(),
                }),
                &[first],
                Staffing::default(),
            )
            .await
            .unwrap();
        assert!(
            matches!(
                out,
                BookOutcome::Booked {
                    course_id: Some(_),
                    ..
                }
            ),
            "{backend:?}"
        );

        // Chair: same chair, overlapping.
        let out = s
            .book(
                &c.scheduler,
                None,
                &[req(&c, c.minor, chair1, &c.nurse_b, at(7, 10, 0), 60)],
                Staffing::default(),
            )
            .await
            .unwrap();
        let BookOutcome::Refused(r) = out else {
            panic!("{backend:?}")
        };
        assert!(matches!(r[0].1[..], [Conflict::ChairBusy { .. }]), "{r:?}");
        // Nurse: the same nurse at another chair (one patient per nurse by default).
        let out = s
            .book(
                &c.scheduler,
                None,
                &[req(&c, c.minor, chair2, &c.nurse, at(7, 10, 0), 60)],
                Staffing::default(),
            )
            .await
            .unwrap();
        let BookOutcome::Refused(r) = out else {
            panic!()
        };
        assert!(matches!(r[0].1[..], [Conflict::NurseBusy { .. }]), "{r:?}");
        let two = Staffing {
            nurse_max_concurrent: 2,
        };
        // Patient: the same patient elsewhere at the same time.
        let out = s
            .book(
                &c.scheduler,
                None,
                &[req(&c, c.adult, chair2, &c.nurse_b, at(7, 10, 0), 60)],
                two,
            )
            .await
            .unwrap();
        let BookOutcome::Refused(r) = out else {
            panic!()
        };
        assert!(
            matches!(r[0].1[..], [Conflict::PatientDoubleBooked { .. }]),
            "{r:?}"
        );
        // Prescriber on site: required but nobody rostered, then rostered.
        let mut esk = req(&c, c.minor, chair2, &c.nurse_b, at(8, 9, 0), 130);
        esk.prescriber_required = true;
        let out = s
            .book(&c.scheduler, None, &[esk.clone()], two)
            .await
            .unwrap();
        let BookOutcome::Refused(r) = out else {
            panic!()
        };
        assert!(
            matches!(r[0].1[..], [Conflict::NoPrescriberOnSite { .. }]),
            "{r:?}"
        );
        s.add_on_site(
            &c.scheduler,
            c.prescriber.user_id.unwrap(),
            at(8, 8, 0),
            at(8, 17, 0),
        )
        .await
        .unwrap();
        assert!(matches!(
            s.book(&c.scheduler, None, &[esk], two).await.unwrap(),
            BookOutcome::Booked { .. }
        ));
        let all = s
            .bookings(&c.scheduler, at(7, 0, 0), at(9, 0, 0))
            .await
            .unwrap();
        assert_eq!(all.len(), 2, "{backend:?}: refused requests wrote nothing");
        // A therapist may not book.
        let therapist = user(s, "ther", Role::Therapist).await;
        assert!(matches!(
            s.chairs(&therapist).await,
            Err(StoreError::Forbidden { .. })
        ));
    }
}

#[tokio::test]
async fn moving_a_course_session_moves_the_later_ones_and_cancellation_frees_the_chair() {
    for backend in BACKENDS {
        let c = clinic(backend).await;
        let s = c.store.as_ref();
        let chair = s.add_chair(&c.scheduler, "Chair 1").await.unwrap().id;
        let reqs: Vec<Booking> = [7u8, 9, 11]
            .iter()
            .map(|d| req(&c, c.adult, chair, &c.nurse, at(*d, 9, 0), 100))
            .collect();
        let course = NewCourse {
            patient_id: c.adult,
            template_id: "iv-ketamine-induction-6".into(),
            protocol_id: "trd-adult-iv-ketamine".into(),
        };
        let BookOutcome::Booked { bookings, .. } = s
            .book(&c.scheduler, Some(&course), &reqs, Staffing::default())
            .await
            .unwrap()
        else {
            panic!()
        };
        let plan = s
            .move_booking(
                &c.scheduler,
                bookings[1].id,
                at(10, 9, 0),
                MoveMode::ThisAndLater,
                Staffing::default(),
                true,
            )
            .await
            .unwrap();
        assert_eq!(plan.moves.len(), 2, "{backend:?}");
        assert!(plan.is_clear());
        let moved = s.booking(&c.scheduler, bookings[2].id).await.unwrap();
        assert_eq!(moved.start, at(12, 9, 0));
        // Cancelling needs a reason, then frees the slot.
        assert!(
            s.set_booking_status(&c.scheduler, bookings[0].id, BookingStatus::Cancelled, " ")
                .await
                .is_err()
        );
        s.set_booking_status(
            &c.scheduler,
            bookings[0].id,
            BookingStatus::Cancelled,
            "patient unwell",
        )
        .await
        .unwrap();
        let again = req(&c, c.minor, chair, &c.nurse, at(7, 9, 0), 100);
        assert!(matches!(
            s.book(&c.scheduler, None, &[again], Staffing::default())
                .await
                .unwrap(),
            BookOutcome::Booked { .. }
        ));
        assert!(matches!(
            s.set_booking_status(&c.scheduler, bookings[0].id, BookingStatus::NoShow, "x")
                .await,
            Err(StoreError::Conflict(_))
        ));
    }
}

/// Version 1 of an off-label consent document for `protocol` with every required section, no
/// expiry.
fn consent_document(protocol: &str, title: &str) -> NewConsentDocument {
    NewConsentDocument {
        protocol_id: protocol.into(),
        protocol_version: 1,
        off_label: true,
        title: title.into(),
        sections: sections(),
        valid_days: None,
    }
}

fn sections() -> Vec<Section> {
    SectionKind::ALL
        .into_iter()
        .map(|kind| Section {
            kind,
            text: format!("{} — text", kind.label()),
        })
        .collect()
}

fn reason(s: ConsentStatus) -> Option<InvalidReason> {
    match s {
        ConsentStatus::Invalid { reason, .. } => Some(reason),
        ConsentStatus::Valid { .. } => None,
    }
}

#[tokio::test]
async fn consent_gating_none_expired_old_version_and_minor_assent() {
    for backend in BACKENDS {
        let c = clinic(backend).await;
        let s = c.store.as_ref();
        let pid = "trd-adolescent-iv-ketamine-yale";
        let now: Timestamp = "2026-12-07T09:00:00Z".parse().unwrap();
        let doc = NewConsentDocument {
            protocol_id: pid.into(),
            protocol_version: 1,
            off_label: true,
            title: "IV ketamine for adolescents".into(),
            sections: sections(),
            valid_days: Some(180),
        };
        // A document missing required content is refused.
        let mut short = doc.clone();
        short
            .sections
            .retain(|s| s.kind != SectionKind::NoDrivingUntilNextDay);
        assert!(matches!(
            s.add_consent_document(&c.nurse, &short).await,
            Err(StoreError::Invalid(_))
        ));
        s.add_consent_document(&c.nurse, &doc).await.unwrap();
        let status = |p| s.consent_status(&c.nurse, p, pid, 1, now);
        assert_eq!(
            reason(status(c.minor).await.unwrap()),
            Some(InvalidReason::NoConsent),
            "{backend:?}"
        );

        // Minor: a guardian without assent is refused at signing.
        let g = Signer::Guardian {
            guardian_id: c.guardian,
            name: "Ann Parent".into(),
            relationship: "mother".into(),
        };
        let sig = NewSignature {
            patient_id: c.minor,
            protocol_id: pid.into(),
            signer: g.clone(),
            assent: None,
            signed_at: "2026-12-01T10:00:00Z".parse().unwrap(),
        };
        assert!(
            matches!(s.record_consent(&c.nurse, &sig).await, Err(StoreError::Invalid(e)) if e.get("assent").is_some())
        );
        let self_signed = NewSignature {
            signer: Signer::Patient,
            ..sig.clone()
        };
        assert!(s.record_consent(&c.nurse, &self_signed).await.is_err());
        let with_assent = NewSignature {
            assent: Some(Assent::Given {
                obtained_by: uid(&c.nurse),
            }),
            ..sig.clone()
        };
        s.record_consent(&c.nurse, &with_assent).await.unwrap();
        assert!(status(c.minor).await.unwrap().is_valid(), "{backend:?}");
        // Expired after 180 days.
        let later: Timestamp = "2027-06-01T10:00:00Z".parse().unwrap();
        assert_eq!(
            reason(
                s.consent_status(&c.nurse, c.minor, pid, 1, later)
                    .await
                    .unwrap()
            ),
            Some(InvalidReason::Expired)
        );
        // A new document version needs re-consent; so does a new protocol version.
        assert_eq!(
            reason(
                s.consent_status(&c.nurse, c.minor, pid, 2, now)
                    .await
                    .unwrap()
            ),
            Some(InvalidReason::ProtocolChanged)
        );
        s.add_consent_document(&c.nurse, &doc).await.unwrap();
        assert_eq!(
            reason(status(c.minor).await.unwrap()),
            Some(InvalidReason::OldDocumentVersion)
        );
        // Roles: a scheduler may not record consent.
        assert!(matches!(
            s.record_consent(&c.scheduler, &with_assent).await,
            Err(StoreError::Forbidden { .. })
        ));
    }
}

#[tokio::test]
async fn consent_signers_come_from_the_records_and_unlinking_the_guardian_voids_the_consent() {
    for backend in BACKENDS {
        let c = clinic(backend).await;
        let s = c.store.as_ref();
        let pid = "trd-adolescent-iv-ketamine-yale";
        s.add_consent_document(
            &c.nurse,
            &consent_document(pid, "IV ketamine for adolescents"),
        )
        .await
        .unwrap();
        let guardian = |name: &str, relationship: &str| Signer::Guardian {
            guardian_id: c.guardian,
            name: name.into(),
            relationship: relationship.into(),
        };
        let sig = |signer, obtained_by| NewSignature {
            patient_id: c.minor,
            protocol_id: pid.into(),
            signer,
            assent: Some(Assent::Given { obtained_by }),
            signed_at: "2026-12-01T10:00:00Z".parse().unwrap(),
        };
        let nurse = uid(&c.nurse);
        // Typed names and relationships that contradict the guardian of record are refused.
        assert_eq!(
            field_of(
                s.record_consent(&c.nurse, &sig(guardian("Someone Else", ""), nurse))
                    .await
            ),
            "signer.name",
            "{backend:?}"
        );
        assert_eq!(
            field_of(
                s.record_consent(&c.nurse, &sig(guardian("", "father"), nurse))
                    .await
            ),
            "signer.relationship",
            "{backend:?}"
        );
        // The assent is obtained by an existing clinician account.
        assert_eq!(
            field_of(
                s.record_consent(&c.nurse, &sig(guardian("", ""), 987_654))
                    .await
            ),
            "assent.obtained_by",
            "{backend:?}: an unknown user"
        );
        assert_eq!(
            field_of(
                s.record_consent(&c.nurse, &sig(guardian("", ""), uid(&c.scheduler)))
                    .await
            ),
            "assent.obtained_by",
            "{backend:?}: a scheduler is not a clinician"
        );
        assert!(
            s.consent_signatures(&c.nurse, c.minor)
                .await
                .unwrap()
                .is_empty(),
            "nothing was stored"
        );
        // The clinician is one at a site where the recorder works in their role: the main
        // site's nurse records, and a nurse of North alone, or an account that is North's nurse
        // but the main site's scheduler, did not obtain it at a site of hers.
        let admin = Actor::system(Role::Administrator);
        let north = ketcare_store::testing::new_site(s, "North").await;
        let main_only = ketcare_store::SiteScope::Only(vec![1]);
        let both = ketcare_store::SiteScope::Only(vec![1, north]);
        s.set_user_sites(&admin, c.nurse.user_id.unwrap(), &main_only)
            .await
            .unwrap();
        s.set_user_sites(
            &admin,
            c.nurse_b.user_id.unwrap(),
            &ketcare_store::SiteScope::Only(vec![north]),
        )
        .await
        .unwrap();
        let float = user(s, "float", Role::Nurse).await;
        s.assign_user_sites(
            &admin,
            float.user_id.unwrap(),
            &both,
            &[(1, Role::Scheduler)],
        )
        .await
        .unwrap();
        for (by, why) in [
            (uid(&c.nurse_b), "North's nurse"),
            (uid(&float), "the main site's scheduler"),
        ] {
            assert_eq!(
                field_of(s.record_consent(&c.nurse, &sig(guardian("", ""), by)).await),
                "assent.obtained_by",
                "{backend:?}: {why}"
            );
        }
        // At North, where she is a nurse, she obtains it for North's nurse.
        s.record_consent(&c.nurse_b, &sig(guardian("", ""), uid(&float)))
            .await
            .unwrap();
        assert_eq!(
            s.consent_signatures(&c.nurse, c.minor).await.unwrap().len(),
            1,
            "{backend:?}"
        );
        s.set_user_sites(
            &admin,
            c.nurse.user_id.unwrap(),
            &ketcare_store::SiteScope::All,
        )
        .await
        .unwrap();
        // Names left out are the record's.
        let stored = s
            .record_consent(&c.nurse, &sig(guardian("", ""), nurse))
            .await
            .unwrap();
        assert_eq!(
            stored.signer,
            guardian("Ann Parent", "mother"),
            "{backend:?}"
        );
        let now: Timestamp = "2026-12-07T09:00:00Z".parse().unwrap();
        assert!(
            s.consent_status(&c.nurse, c.minor, pid, 1, now)
                .await
                .unwrap()
                .is_valid()
        );
        // The signing guardian is unlinked: the consent is no longer valid, and says why.
        s.remove_guardian(
            &c.scheduler,
            c.minor,
            ketcare_core::GuardianId::new(c.guardian),
        )
        .await
        .unwrap();
        let st = s
            .consent_status(&c.nurse, c.minor, pid, 1, now)
            .await
            .unwrap();
        assert!(
            matches!(&st, ConsentStatus::Invalid { reason: InvalidReason::GuardianUnlinked, message } if message.contains("no longer a guardian of record")),
            "{backend:?}: {st:?}"
        );
    }
}

/// A scheduled session of `protocol` for `patient` with a verified dose order attached.
async fn session_with_order(
    c: &Clinic,
    patient: PatientId,
    protocol: &str,
    devices: u32,
) -> SessionId {
    ketcare_store::testing::session_with_order(
        c.store.as_ref(),
        &c.nurse,
        patient,
        protocol,
        devices,
    )
    .await
}

fn field_of<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Invalid(e)) => e.0.first().map(|f| f.field.clone()).unwrap_or_default(),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn a_draw_is_tied_to_a_real_session_of_that_patient_and_the_drug_of_its_order() {
    for backend in BACKENDS {
        let c = clinic(backend).await;
        let s = c.store.as_ref();
        let [pharm, _, _] = ketcare_store::testing::ledger_staff(s).await;
        // Container 1: racemic ketamine 50 mg/mL.
        let vial = ketcare_store::testing::receive_vial(s, &pharm).await;
        let iv = session_with_order(&c, c.adult, "trd-adult-iv-ketamine", 0)
            .await
            .get();
        let esk = session_with_order(&c, c.adult, "trd-adult-esketamine", 2)
            .await
            .get();
        let draw = |session_id, patient_id: i64| LedgerEvent::Draw {
            container: vial,
            session_id,
            patient_id,
            volume_ul: 500,
        };
        let a = c.adult.get();
        // A session that does not exist; another patient's session; a racemic vial for an
        // esketamine session: each refused, naming the field, and nothing is written.
        assert_eq!(
            field_of(s.ledger_append(&c.nurse, &draw(iv + 1000, a)).await),
            "session_id",
            "{backend:?}"
        );
        assert_eq!(
            field_of(s.ledger_append(&c.nurse, &draw(iv + 1000, 0)).await),
            "session_id",
            "{backend:?}: no such session, no patient named"
        );
        assert_eq!(
            field_of(s.ledger_append(&c.nurse, &draw(iv, c.minor.get())).await),
            "patient_id",
            "{backend:?}"
        );
        assert_eq!(
            field_of(s.ledger_append(&c.nurse, &draw(esk, a)).await),
            "container",
            "{backend:?}"
        );
        let state = s.ledger_state(&pharm).await.unwrap();
        assert!(state.sessions.is_empty(), "{backend:?}: nothing was drawn");
        // A session without a verified order attached, and a cancelled one, allow no draw.
        let lib = ketcare_clinical::Library::builtin().unwrap();
        let rules = ketcare_session::RulesFile::builtin(lib.sources()).unwrap();
        let bare = ketcare_session::Session::new(
            rules.plan(
                lib.get("trd-adult-iv-ketamine").unwrap(),
                &ketcare_clinical::SiteSettings::new(),
                0,
            ),
            "Chair 2",
            "2026-12-07T09:00:00Z".parse().unwrap(),
        );
        let unordered = s
            .create_treatment_session(&c.nurse, c.adult, &bare)
            .await
            .unwrap()
            .id;
        let e = s.ledger_append(&c.nurse, &draw(unordered.get(), a)).await;
        assert!(
            matches!(&e, Err(StoreError::Invalid(f)) if f.get("session_id").is_some_and(|m| m.contains("no verified dose order"))),
            "{backend:?}: {e:?}"
        );
        let cancelled = session_with_order(&c, c.adult, "trd-adult-iv-ketamine", 0).await;
        s.apply_session_command(
            &c.nurse,
            cancelled,
            &ketcare_session::Command::Cancel {
                reason: "patient unwell".into(),
            },
            "2026-12-07T09:05:00Z".parse().unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(
            field_of(s.ledger_append(&c.nurse, &draw(cancelled.get(), a)).await),
            "session_id",
            "{backend:?}"
        );
        // A waste for a session that does not exist, or one with no draws, is refused.
        let waste = |session_id| LedgerEvent::Waste {
            session_id,
            amount_ug: 1_000,
            witness: w(&c.nurse_b),
            note: String::new(),
        };
        assert_eq!(
            field_of(s.ledger_append(&c.nurse, &waste(iv + 1000)).await),
            "session_id"
        );
        assert_eq!(
            field_of(s.ledger_append(&c.nurse, &waste(iv)).await),
            "session_id"
        );
        // The session's own patient, the drug of its order: accepted. The patient may be left
        // out (0): the ledger takes it from the session.
        let rec = s.ledger_append(&c.nurse, &draw(iv, 0)).await.unwrap();
        assert!(
            rec.body.contains(&format!("\"patient_id\":{a}")),
            "{backend:?}: {}",
            rec.body
        );
        s.ledger_append(&c.nurse, &waste(iv)).await.unwrap();
        let state = s.ledger_state(&pharm).await.unwrap();
        assert_eq!(state.sessions[&iv].patient_id, a);
        assert_eq!(
            (state.sessions[&iv].drawn_ug, state.sessions[&iv].wasted_ug),
            (25_000, 1_000)
        );
    }
}

fn w(a: &Actor) -> Option<Witness> {
    Some(Witness {
        user_id: uid(a),
        username: "claimed".into(),
        role: Role::Pharmacist,
    })
}

#[tokio::test]
async fn ledger_rules_hold_in_the_store_and_tampering_is_detected() {
    for backend in BACKENDS {
        let c = clinic(backend).await;
        let s = c.store.as_ref();
        let receive = LedgerEvent::Receive {
            product: "ketamine-50".into(),
            ndc: "67457-108-10".into(),
            lot: "L1".into(),
            expiry: date(2030, 1, 31),
            quantity: 2,
            invoice: "INV-9".into(),
            supplier: "Wholesaler".into(),
        };
        assert!(matches!(
            s.ledger_append(&c.nurse, &receive).await,
            Err(StoreError::Forbidden { .. })
        ));
        s.ledger_append(&c.pharmacist, &receive).await.unwrap();
        let sid = session_with_order(&c, c.adult, "trd-adult-iv-ketamine", 0)
            .await
            .get();
        let draw = LedgerEvent::Draw {
            container: 1,
            session_id: sid,
            patient_id: c.adult.get(),
            volume_ul: 1_000,
        };
        s.ledger_append(&c.nurse, &draw).await.unwrap();
        let waste = |witness| LedgerEvent::Waste {
            session_id: sid,
            amount_ug: 15_000,
            witness,
            note: String::new(),
        };
        // No witness; the nurse herself; an administrator (whatever role the request claims).
        for bad in [None, w(&c.nurse), w(&c.admin)] {
            assert!(
                matches!(s.ledger_append(&c.nurse, &waste(bad)).await, Err(StoreError::Invalid(e)) if e.get("witness").is_some()),
                "{backend:?}"
            );
        }
        let rec = s
            .ledger_append(&c.nurse, &waste(w(&c.nurse_b)))
            .await
            .unwrap();
        assert!(
            rec.body.contains("\"username\":\"nurse2\""),
            "witness name comes from the account"
        );
        let state = s.ledger_state(&c.pharmacist).await.unwrap();
        assert_eq!(
            (
                state.sessions[&sid].drawn_ug,
                state.sessions[&sid].wasted_ug
            ),
            (50_000, 15_000)
        );

        // A count that does not match is held open.
        s.ledger_append(
            &c.pharmacist,
            &LedgerEvent::Count {
                period: "2026-12-07 close".into(),
                lines: vec![
                    CountLine {
                        container: 1,
                        counted_ul: 8_900,
                    },
                    CountLine {
                        container: 2,
                        counted_ul: 10_000,
                    },
                ],
            },
        )
        .await
        .unwrap();
        let state = s.ledger_state(&c.pharmacist).await.unwrap();
        assert_eq!(state.open_discrepancies().count(), 1, "{backend:?}");

        // An inventory records what is on hand, whatever the request listed.
        let inv = s
            .ledger_append(
                &c.pharmacist,
                &LedgerEvent::Inventory {
                    inventory: InventoryKind::Biennial,
                    taken: date(2026, 12, 1),
                    time: BusinessTime::Close,
                    registrant_name: "Demo Clinic".into(),
                    registrant_address: "1 Main St".into(),
                    dea_number: "AB1234567".into(),
                    lines: vec![],
                },
            )
            .await
            .unwrap();
        assert!(inv.body.contains("\"containers\":2"), "{}", inv.body);
        assert_eq!(
            s.ledger_state(&c.pharmacist).await.unwrap().last_inventory,
            Some(date(2026, 12, 1))
        );

        let v = s.verify_ledger().await.unwrap();
        assert_eq!((v.entries, v.broken), (5, None), "{backend:?}");
        // Append-only: updates and deletes are refused by the database.
        assert!(
            s.execute_raw("UPDATE ops_ledger SET body = 'x' WHERE seq = 2")
                .await
                .is_err()
        );
        assert!(
            s.execute_raw("DELETE FROM ops_ledger WHERE seq = 2")
                .await
                .is_err()
        );
        // With the guard removed, an edit is named.
        match backend {
            Backend::Sqlite => {
                s.execute_raw("DROP TRIGGER ops_ledger_no_update")
                    .await
                    .unwrap();
            }
            Backend::Postgres => {
                s.execute_raw("DROP TRIGGER ops_ledger_no_change ON ops_ledger")
                    .await
                    .unwrap();
            }
        }
        s.execute_raw("UPDATE ops_ledger SET body = replace(body, '1000', '100') WHERE seq = 2")
            .await
            .unwrap();
        let v = s.verify_ledger().await.unwrap();
        assert_eq!(v.broken.map(|b| b.seq), Some(2), "{backend:?}");
        // Every ledger change left an audit record, and the audit chain is intact.
        assert!(s.verify_audit().await.unwrap().broken.is_none());
    }
}

#[tokio::test]
async fn prices_are_set_by_an_administrator_and_read_for_billing() {
    for backend in BACKENDS {
        let c = clinic(backend).await;
        let s = c.store.as_ref();
        assert!(s.set_price(&c.scheduler, "96365", 30_000).await.is_err());
        assert!(s.set_price(&c.admin, "12345", 30_000).await.is_err());
        s.set_price(&c.admin, "96365", 30_000).await.unwrap();
        s.set_price(&c.admin, "96365", 31_000).await.unwrap();
        let p = s.prices(&c.scheduler).await.unwrap();
        assert_eq!(p.0.get("96365"), Some(&31_000), "{backend:?}");
        assert!(s.prices(&c.nurse).await.is_err());
    }
}

#[tokio::test]
async fn a_withdrawn_consent_is_not_valid_and_the_withdrawal_says_who_when_and_why() {
    for backend in BACKENDS {
        let c = clinic(backend).await;
        let s = c.store.as_ref();
        let pid = "trd-adult-iv-ketamine";
        let doc = NewConsentDocument {
            protocol_id: pid.into(),
            protocol_version: 1,
            off_label: true,
            title: "IV ketamine".into(),
            sections: sections(),
            valid_days: None,
        };
        s.add_consent_document(&c.nurse, &doc).await.unwrap();
        let sig = s
            .record_consent(
                &c.nurse,
                &NewSignature {
                    patient_id: c.adult,
                    protocol_id: pid.into(),
                    signer: Signer::Patient,
                    assent: None,
                    signed_at: "2026-12-01T10:00:00Z".parse().unwrap(),
                },
            )
            .await
            .unwrap();
        let before: Timestamp = "2026-12-04T09:00:00Z".parse().unwrap();
        let when: Timestamp = "2026-12-05T09:00:00Z".parse().unwrap();
        let after: Timestamp = "2026-12-06T09:00:00Z".parse().unwrap();
        let status = |t| s.consent_status(&c.nurse, c.adult, pid, 1, t);
        assert!(status(after).await.unwrap().is_valid(), "{backend:?}");

        // A reason is required; a scheduler may not withdraw; another patient's is not found.
        assert!(matches!(
            s.withdraw_consent(&c.nurse, c.adult, sig.id, when, "  ").await,
            Err(StoreError::Invalid(e)) if e.get("reason").is_some()
        ));
        assert!(matches!(
            s.withdraw_consent(&c.scheduler, c.adult, sig.id, when, "asked")
                .await,
            Err(StoreError::Forbidden { .. })
        ));
        assert!(matches!(
            s.withdraw_consent(&c.nurse, c.minor, sig.id, when, "asked")
                .await,
            Err(StoreError::NotFound { .. })
        ));

        let w = s
            .withdraw_consent(&c.nurse, c.adult, sig.id, when, "patient asked to stop")
            .await
            .unwrap();
        assert_eq!(w.withdrawn_at, Some(when));
        assert_eq!(w.withdrawn_by.as_deref(), Some("nurse"));
        assert_eq!(
            w.withdrawal_reason.as_deref(),
            Some("patient asked to stop")
        );
        // Valid before the withdrawal, not after; the reason is in the message.
        assert!(status(before).await.unwrap().is_valid());
        match status(after).await.unwrap() {
            ConsentStatus::Invalid { reason, message } => {
                assert_eq!(reason, InvalidReason::Withdrawn);
                assert!(message.contains("patient asked to stop"), "{message}");
                assert!(message.contains("nurse"), "{message}");
            }
            v => panic!("{backend:?}: still valid: {v:?}"),
        }
        // Stored: the list shows it; a second withdrawal is refused.
        let listed = s.consent_signatures(&c.nurse, c.adult).await.unwrap();
        assert_eq!(
            listed[0].withdrawal_reason.as_deref(),
            Some("patient asked to stop")
        );
        assert!(matches!(
            s.withdraw_consent(&c.nurse, c.adult, sig.id, after, "again")
                .await,
            Err(StoreError::NotFound { .. })
        ));
        // Audited with the patient, the user and the reason.
        let audit = s
            .audit_records(
                &c.admin,
                &ketcare_store::AuditFilter {
                    action: Some("consent.withdraw".into()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(audit.len(), 1, "{backend:?}");
        assert_eq!(audit[0].username, "nurse");
        assert_eq!(audit[0].patient_id, Some(c.adult.get()));
        assert!(audit[0].detail.contains("patient asked to stop"));
        // Re-consent after a withdrawal makes consent valid again.
        s.record_consent(
            &c.nurse,
            &NewSignature {
                patient_id: c.adult,
                protocol_id: pid.into(),
                signer: Signer::Patient,
                assent: None,
                signed_at: after,
            },
        )
        .await
        .unwrap();
        assert!(status(after).await.unwrap().is_valid());
    }
}

/// Whether a consent's patient is a minor is decided on the organisation's day (its first site's
/// zone), not the server's: at noon UTC on 1 December it is already 2 December at a site in
/// UTC+14, the birthday that makes the patient 18, who then signs for themselves.
#[tokio::test]
async fn a_consents_minor_is_decided_on_the_organisations_day() {
    for backend in BACKENDS {
        let c = clinic(backend).await;
        let s = c.store.as_ref();
        let pid = "trd-adult-iv-ketamine";
        s.add_consent_document(&c.nurse, &consent_document(pid, "IV ketamine"))
            .await
            .unwrap();
        let turning = patient(s, &c.scheduler, "B-18", "2008-12-02").await;
        let adult_signs = NewSignature {
            patient_id: turning,
            protocol_id: pid.into(),
            signer: Signer::Patient,
            assent: None,
            signed_at: "2026-12-01T12:00:00Z".parse().unwrap(),
        };
        let admin = Actor::system(Role::Administrator);
        let main = s.sites(&admin).await.unwrap().remove(0);
        for (zone, adult) in [("Pacific/Pago_Pago", false), ("Pacific/Kiritimati", true)] {
            s.update_site(
                &admin,
                main.id,
                &ketcare_store::NewSite {
                    name: main.name.clone(),
                    time_zone: zone.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            let signed = s.record_consent(&c.nurse, &adult_signs).await;
            assert_eq!(signed.is_ok(), adult, "{backend:?} in {zone}: {signed:?}");
        }
    }
}
