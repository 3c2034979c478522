//! Contact preferences and the outbox in the store, on SQLite and PostgreSQL: a message is
//! queued only in the unit of its link and only under the preference in force; a claimed message
//! is held from other workers; retries keep the error and the next try; sent and failed messages
//! lose their text; preferences are never rewritten.

use ketcare_core::patient::{GuardianInput, NewGuardian, NewPatient, PatientInput};
use ketcare_core::{Actor, PatientId, Role};
use ketcare_ops::outreach::{Channel, MessageState, Next};
use ketcare_store::outreach::{NewContactPreference, NewLink, NewMessage};
use ketcare_store::testing::{BACKENDS, fresh_store};
use ketcare_store::{Store, StoreError};

async fn patient(store: &dyn Store, mrn: &str) -> PatientId {
    let input = PatientInput {
        mrn: mrn.into(),
        given_name: "Pat".into(),
        family_name: "Test".into(),
        date_of_birth: "1980-01-01".into(),
        sex: "female".into(),
        email: Some("pat@example.org".into()),
        ..Default::default()
    };
    let p = NewPatient::parse(&input, jiff::civil::date(2026, 6, 1)).unwrap();
    store
        .create_patient(&Actor::system(Role::Nurse), &p)
        .await
        .unwrap()
        .id
}

/// Records the patient's email preference with (or without) consent, as a nurse.
async fn email_preference(
    s: &dyn Store,
    pid: PatientId,
    consented: bool,
) -> ketcare_store::outreach::ContactPreference {
    s.record_contact_preference(
        &Actor::system(Role::Nurse),
        pid,
        &NewContactPreference {
            guardian_id: None,
            channel: Channel::Email,
            consented,
        },
    )
    .await
    .unwrap()
}

fn message(pref: ketcare_core::ContactPreferenceId, at: i64) -> NewMessage {
    NewMessage {
        preference_id: pref,
        channel: Channel::Email,
        recipient: "pat@example.org".into(),
        subject: "A form is waiting for you".into(),
        body: "Hello https://x/q/tok".into(),
        first_attempt_at: at,
        reminder: false,
    }
}

fn link<'a>(hash: &'a str, set: &'a [String]) -> NewLink<'a> {
    NewLink {
        token_hash: hash,
        instruments: set,
        expires_at: 10_000_000,
        guardian: None,
    }
}

#[tokio::test]
async fn messages_go_with_their_link_under_the_preference_in_force() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let nurse = Actor::system(Role::Nurse);
        let pid = patient(s, "O-1").await;
        let other = patient(s, "O-2").await;
        let set = vec!["phq9".to_string()];

        // A guardian of another patient is refused by name.
        let g = NewGuardian::parse(&GuardianInput {
            name: "Ann Parent".into(),
            relationship: "legal_guardian".into(),
            email: "ann@example.org".into(),
            ..Default::default()
        })
        .unwrap();
        let theirs = s.add_guardian(&nurse, other, &g).await.unwrap();
        let e = s
            .record_contact_preference(
                &nurse,
                pid,
                &NewContactPreference {
                    guardian_id: Some(theirs.id),
                    channel: Channel::Email,
                    consented: true,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid(ref f) if f.get("guardian_id").is_some()),
            "{e:?}"
        );

        let first = email_preference(s, pid, true).await;
        assert!(first.consented && first.recorded_by == "system");
        let (l, m) = s
            .create_link_with_message(&nurse, pid, &link("h1", &set), &message(first.id, 100))
            .await
            .unwrap();
        assert_eq!(m.link_id, Some(l.id));
        assert_eq!(m.status, MessageState::Queued);
        assert_eq!((m.attempts, m.next_attempt_at), (0, 100));

        // Consent withdrawn: a message routed by the earlier preference is refused, and its
        // link is not kept either (one unit).
        let withdrawn = email_preference(s, pid, false).await;
        let e = s
            .create_link_with_message(&nurse, pid, &link("h2", &set), &message(first.id, 100))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict(ref m) if m.starts_with("consent")),
            "{e:?}"
        );
        let e = s
            .create_link_with_message(&nurse, pid, &link("h3", &set), &message(withdrawn.id, 100))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
        assert_eq!(s.patient_links(&nurse, pid).await.unwrap().len(), 1);
        let history = s.contact_preferences(&nurse, pid).await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].id, withdrawn.id, "newest first");

        // Preferences are never rewritten.
        assert!(
            s.execute_raw("UPDATE contact_preferences SET consented = 1")
                .await
                .is_err()
        );
        assert!(
            s.execute_raw("DELETE FROM contact_preferences")
                .await
                .is_err()
        );

        // A role without the write right cannot record one; the scheduler reads them.
        let pharmacist = Actor::system(Role::Pharmacist);
        assert!(
            s.record_contact_preference(
                &pharmacist,
                pid,
                &NewContactPreference {
                    guardian_id: None,
                    channel: Channel::Sms,
                    consented: true
                }
            )
            .await
            .is_err()
        );
    }
}

#[tokio::test]
async fn a_claimed_message_is_held_retried_with_its_error_then_sent_or_failed() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let nurse = Actor::system(Role::Nurse);
        let pid = patient(s, "O-3").await;
        let set = vec!["phq9".to_string()];
        let pref = email_preference(s, pid, true).await;
        let (_, m) = s
            .create_link_with_message(&nurse, pid, &link("c1", &set), &message(pref.id, 1000))
            .await
            .unwrap();

        assert!(
            s.claim_due_message(999, 2000).await.unwrap().is_none(),
            "not due yet"
        );
        let c = s.claim_due_message(1000, 1120).await.unwrap().unwrap();
        assert_eq!((c.id, c.attempts, c.next_attempt_at), (m.id, 1, 1120));
        assert_eq!(c.body, "Hello https://x/q/tok");
        assert!(
            s.claim_due_message(1000, 1120).await.unwrap().is_none(),
            "held from another worker"
        );

        let r = s
            .finish_attempt(
                &c,
                &Next::Retry {
                    at: 1300,
                    error: "connection refused".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.status, MessageState::Queued);
        assert_eq!(r.next_attempt_at, 1300);
        assert_eq!(r.last_error.as_deref(), Some("connection refused"));
        // The same try cannot be finished twice.
        assert!(matches!(
            s.finish_attempt(&c, &Next::Sent).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(s.claim_due_message(1299, 1400).await.unwrap().is_none());
        let c2 = s.claim_due_message(1300, 1420).await.unwrap().unwrap();
        assert_eq!(c2.attempts, 2);
        let sent = s.finish_attempt(&c2, &Next::Sent).await.unwrap();
        assert_eq!(sent.status, MessageState::Sent);
        assert!(sent.sent_at.is_some() && sent.body.is_empty() && sent.subject.is_empty());
        assert!(sent.last_error.is_none());
        assert!(
            s.claim_due_message(100_000, 100_120)
                .await
                .unwrap()
                .is_none()
        );

        // A permanent failure ends the message and erases its text.
        let (_, m2) = s
            .create_link_with_message(&nurse, pid, &link("c2", &set), &message(pref.id, 5000))
            .await
            .unwrap();
        let c3 = s.claim_due_message(5000, 5120).await.unwrap().unwrap();
        assert_eq!(c3.id, m2.id);
        let failed = s
            .finish_attempt(
                &c3,
                &Next::Failed {
                    error: "550 no such user".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(failed.status, MessageState::Failed);
        assert!(failed.body.is_empty() && failed.finished_at.is_some());

        let listed = s.patient_messages(&nurse, pid).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].id, m2.id, "newest first");
        // The scheduler sees demographics, not the messages about questionnaires.
        assert!(
            s.patient_messages(&Actor::system(Role::Scheduler), pid)
                .await
                .is_err()
        );
    }
}
