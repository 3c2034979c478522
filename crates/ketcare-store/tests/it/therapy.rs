//! Therapy encounters and psychotherapy notes in the store, on SQLite and PostgreSQL: the note
//! query filters by the acting account whatever the caller, notes and encounters are
//! append-only, and a session of another patient is refused naming `session_id`.

use ketcare_core::patient::{NewPatient, PatientInput};
use ketcare_core::therapy::{EncounterInput, NewEncounter};
use ketcare_core::{Actor, PatientId, Role, SessionId};
use ketcare_store::testing::{BACKENDS, dosed_session, fresh_store};
use ketcare_store::{NewUser, Store, StoreError};

async fn patient(store: &dyn Store, mrn: &str) -> PatientId {
    let input = PatientInput {
        mrn: mrn.into(),
        given_name: "Pat".into(),
        family_name: "Test".into(),
        date_of_birth: "1980-01-01".into(),
        sex: "female".into(),
        ..Default::default()
    };
    let p = NewPatient::parse(&input, jiff::civil::date(2026, 6, 1)).unwrap();
    store
        .create_patient(&Actor::system(Role::Nurse), &p)
        .await
        .unwrap()
        .id
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
    Actor::user(u.id, name, role, "test")
}

fn integration(session: Option<SessionId>) -> NewEncounter {
    NewEncounter::parse(&EncounterInput {
        kind: "integration".into(),
        at: "2026-06-02T10:00".into(),
        duration_minutes: 50,
        modality: "individual".into(),
        session_id: session,
        suicide_risk: "negative".into(),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn notes_are_filtered_by_their_reader_and_never_rewritten() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let store = store.as_ref();
        let pid = patient(store, "T-1").await;
        let other = patient(store, "T-2").await;
        let nurse = Actor::system(Role::Nurse);
        let theirs = dosed_session(
            store,
            &nurse,
            other,
            "2026-06-01T10:00:00Z".parse().unwrap(),
        )
        .await;
        let thea = user(store, "thea", Role::Therapist).await;
        let theo = user(store, "theo", Role::Therapist).await;
        let nina = user(store, "nina", Role::Nurse).await;

        let e = store
            .record_encounter(&thea, pid, &integration(Some(theirs)), None)
            .await;
        match e {
            Err(StoreError::Invalid(f)) => assert!(f.get("session_id").is_some(), "{f:?}"),
            other => panic!("{backend:?}: {other:?}"),
        }
        let e = store
            .record_encounter(&thea, pid, &integration(None), None)
            .await
            .unwrap();
        store
            .record_encounter(&theo, pid, &integration(None), None)
            .await
            .unwrap();
        let n = store
            .add_therapy_note(&thea, e.id, "the lake", None)
            .await
            .unwrap();
        assert_eq!(store.therapy_notes(&thea, e.id).await.unwrap().len(), 1);
        // Another therapist of the same patient: nothing, until the site says yes.
        assert!(store.therapy_notes(&theo, e.id).await.unwrap().is_empty());
        assert!(matches!(
            store.therapy_notes(&nina, e.id).await,
            Err(StoreError::Forbidden { .. })
        ));
        assert!(matches!(
            store.add_therapy_note(&nina, e.id, "x", None).await,
            Err(StoreError::Forbidden { .. })
        ));
        store
            .save_site_settings(
                &Actor::system(Role::Administrator),
                r#"{"values": {"therapy.notes_to_treating_therapists_enabled": 1}}"#,
                "test",
            )
            .await
            .unwrap();
        assert_eq!(store.therapy_notes(&theo, e.id).await.unwrap().len(), 1);
        // Append-only, whatever SQL is sent.
        for sql in [
            format!("UPDATE therapy_notes SET text = 'x' WHERE id = {}", n.id),
            format!("DELETE FROM therapy_notes WHERE id = {}", n.id),
            format!(
                "UPDATE therapy_encounters SET themes = 'x' WHERE id = {}",
                e.id
            ),
            format!("DELETE FROM therapy_encounters WHERE id = {}", e.id),
        ] {
            assert!(store.execute_raw(&sql).await.is_err(), "{backend:?}: {sql}");
        }
        assert_eq!(store.count("therapy_notes").await.unwrap(), 1);
    }
}
