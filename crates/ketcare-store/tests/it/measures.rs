//! Measurement-based care in the store, on SQLite and PostgreSQL: responses stored once, links
//! (hash only, one patient, one set, expiry, single use), alerts closed only with a documented
//! follow-up, opioid entries and courses — every change audited and role-checked.

use ketcare_core::patient::{NewPatient, PatientInput};
use ketcare_core::{Actor, PatientId, Role, UserId};
use ketcare_store::measures::{NewAlert, NewCourse, NewOpioid, NewResponse};
use ketcare_store::testing::{BACKENDS, fresh_store};
use ketcare_store::{AlertStatus, LinkStatus, Store, StoreError};

fn nurse() -> Actor {
    Actor::user(UserId::new(1), "nurse", Role::Nurse, "test")
}

async fn patient(store: &dyn Store, mrn: &str) -> PatientId {
    let today = jiff::civil::date(2026, 6, 1);
    let input = PatientInput {
        mrn: mrn.into(),
        given_name: "Pat".into(),
        family_name: "Test".into(),
        date_of_birth: "1980-01-01".into(),
        sex: "female".into(),
        ..Default::default()
    };
    let p = NewPatient::parse(&input, today).unwrap();
    store
        .create_patient(&Actor::system(Role::Nurse), &p)
        .await
        .unwrap()
        .id
}

fn response(instrument: &str, key: &str, item9: i64) -> NewResponse {
    NewResponse {
        instrument: instrument.into(),
        answers: "[0,0,0,0,0,0,0,0,1]".into(),
        total: Some(1),
        result: "{}".into(),
        taken_on: "2026-06-01".into(),
        submission_key: key.into(),
        alerts: if item9 > 0 {
            vec![NewAlert {
                item: 9,
                answer: item9,
                detail: "PHQ-9 item 9".into(),
            }]
        } else {
            vec![]
        },
    }
}

#[tokio::test]
async fn responses_alerts_links_opioids_courses() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let a = patient(s, "M-A").await;
        let b = patient(s, "M-B").await;
        let n = nurse();

        // Stored once per submission key.
        let (r1, new1) = s
            .record_response(&n, a, &response("phq9", "k1", 1))
            .await
            .unwrap();
        let (r2, new2) = s
            .record_response(&n, a, &response("phq9", "k1", 1))
            .await
            .unwrap();
        assert!(new1 && !new2, "{backend:?}");
        assert_eq!(r1.id, r2.id);
        assert_eq!(s.patient_responses(&n, a).await.unwrap().len(), 1);
        // The same key for another patient is refused.
        assert!(matches!(
            s.record_response(&n, b, &response("phq9", "k1", 0)).await,
            Err(StoreError::Conflict(_))
        ));
        // Roles: a scheduler may not record, a researcher may not read.
        let sched = Actor::user(UserId::new(2), "sched", Role::Scheduler, "t");
        assert!(matches!(
            s.record_response(&sched, a, &response("phq9", "k2", 0))
                .await,
            Err(StoreError::Forbidden { .. })
        ));

        // One alert, open, on the dashboard; closing needs a documented follow-up and a role.
        let open = s.open_alerts(&n).await.unwrap();
        assert_eq!(open.len(), 1);
        let id = open[0].id;
        assert!(matches!(
            s.resolve_alert(&n, id, "  ").await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.resolve_alert(&sched, id, "x").await,
            Err(StoreError::Forbidden { .. })
        ));
        assert_eq!(s.open_alerts(&n).await.unwrap().len(), 1);
        assert!(matches!(
            s.note_alert(&n, id, "").await,
            Err(StoreError::Invalid(_))
        ));
        s.note_alert(&n, id, "Called, no answer; message left")
            .await
            .unwrap();
        assert_eq!(s.open_alerts(&n).await.unwrap().len(), 1);
        let closed = s
            .resolve_alert(&n, id, "Called the patient; safety plan reviewed")
            .await
            .unwrap();
        assert_eq!(closed.status, AlertStatus::Closed);
        assert_eq!(closed.closed_by.as_deref(), Some("nurse"));
        assert!(s.open_alerts(&n).await.unwrap().is_empty());
        assert!(matches!(
            s.resolve_alert(&n, id, "again").await,
            Err(StoreError::Conflict(_))
        ));
        let actions = s.alert_actions(&n, id).await.unwrap();
        assert_eq!(
            actions
                .iter()
                .map(|x| x.action.as_str())
                .collect::<Vec<_>>(),
            ["raised", "note", "resolved"]
        );
        // A status ketcare did not write is corrupt data, named, not a database failure.
        s.execute_raw(&format!(
            "UPDATE safety_alerts SET status = 'dismissed' WHERE id = {id}"
        ))
        .await
        .unwrap();
        match s.patient_alerts(&n, a).await {
            Err(StoreError::Corrupt(m)) => {
                assert!(m.contains("safety_alerts.status `dismissed`"), "{m}")
            }
            other => panic!("{backend:?}: expected Corrupt, got {other:?}"),
        }
        s.execute_raw(&format!(
            "UPDATE safety_alerts SET status = 'closed' WHERE id = {id}"
        ))
        .await
        .unwrap();

        // Links: hash only; one patient, one set; expiry; single use.
        let link = s
            .create_link(
                &n,
                a,
                "hash-1",
                &["phq9".into(), "gad7".into()],
                1_000,
                None,
            )
            .await
            .unwrap();
        assert_eq!(link.status, LinkStatus::Sent);
        assert!(matches!(
            s.open_link("nope", 10, "x").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.open_link("hash-1", 1_000, "x").await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            s.open_link("hash-1", 10, "x").await.unwrap().status,
            LinkStatus::Opened
        );
        // A questionnaire outside the set is refused; a partial set is refused.
        let err = s
            .submit_link("hash-1", 20, "x", &[response("madrs", "l1:madrs", 0)])
            .await;
        assert!(matches!(err, Err(StoreError::Invalid(_))));
        let err = s
            .submit_link("hash-1", 20, "x", &[response("phq9", "l1:phq9", 0)])
            .await;
        assert!(matches!(err, Err(StoreError::Invalid(_))));
        let twice = [
            response("phq9", "l1:phq9", 0),
            response("phq9", "l1:phq9", 0),
        ];
        let err = s.submit_link("hash-1", 20, "x", &twice).await;
        assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
        let both = [
            response("phq9", "l1:phq9", 2),
            response("gad7", "l1:gad7", 0),
        ];
        let (l, rows, new) = s.submit_link("hash-1", 20, "x", &both).await.unwrap();
        assert!(new);
        assert_eq!(l.status, LinkStatus::Completed);
        assert!(
            rows.iter()
                .all(|r| r.patient_id == a && r.link_id == Some(l.id))
        );
        // A double submit returns the stored rows; nothing is duplicated.
        let (_, again, new) = s.submit_link("hash-1", 21, "x", &both).await.unwrap();
        assert!(!new);
        assert_eq!(
            again.iter().map(|r| r.id).collect::<Vec<_>>(),
            rows.iter().map(|r| r.id).collect::<Vec<_>>()
        );
        assert_eq!(s.patient_responses(&n, a).await.unwrap().len(), 3);
        assert!(s.patient_responses(&n, b).await.unwrap().is_empty());
        // Used: other answers and re-opening are refused.
        let other = [
            response("phq9", "l1b:phq9", 0),
            response("gad7", "l1b:gad7", 0),
        ];
        assert!(matches!(
            s.submit_link("hash-1", 22, "x", &other).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.open_link("hash-1", 22, "x").await,
            Err(StoreError::Conflict(_))
        ));
        // Expired before use.
        s.create_link(&n, b, "hash-2", &["phq9".into()], 100, None)
            .await
            .unwrap();
        assert!(matches!(
            s.submit_link("hash-2", 100, "x", &[response("phq9", "l2", 0)])
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.patient_links(&n, a).await.unwrap().len(), 1);
        assert_eq!(s.patient_alerts(&n, a).await.unwrap().len(), 2);

        // Opioids and courses.
        let e = s
            .add_opioid(
                &n,
                a,
                &NewOpioid {
                    drug: "oxycodone".into(),
                    dose: 10.0,
                    unit: "mg".into(),
                    per_day: Some(2.0),
                    route: Some("oral".into()),
                    started_on: "2026-05-01".into(),
                },
            )
            .await
            .unwrap();
        assert!(matches!(
            s.stop_opioid(&n, a, e.id, "2026-04-01").await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.stop_opioid(&n, b, e.id, "2026-06-01").await,
            Err(StoreError::NotFound { .. })
        ));
        let stopped = s.stop_opioid(&n, a, e.id, "2026-06-01").await.unwrap();
        assert_eq!(stopped.stopped_on.as_deref(), Some("2026-06-01"));
        assert_eq!(s.patient_opioids(&n, a).await.unwrap()[0].dose, 10.0);
        let c = s
            .save_course(
                &n,
                a,
                &NewCourse {
                    label: "Induction".into(),
                    instrument: "phq9".into(),
                    started_on: "2026-05-01".into(),
                    ended_on: None,
                    booster_score_at_least: Some(10),
                    booster_days: Some(28),
                },
            )
            .await
            .unwrap();
        assert_eq!(s.patient_courses(&n, a).await.unwrap(), vec![c]);

        // Every change is in the audit chain, which still verifies.
        let v = store.verify_audit().await.unwrap();
        assert_eq!(v.broken, None);
        assert!(v.records > 20);
    }
}

#[tokio::test]
async fn clinic_texts_are_versioned_and_links_name_their_recipient() {
    use ketcare_core::patient::{GuardianInput, NewGuardian};
    use ketcare_store::measures::ItemText;
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let admin = Actor::user(UserId::new(9), "admin", Role::Administrator, "test");
        let n = nurse();
        let items = vec![ItemText {
            item: 1,
            text: "Licensed wording one".into(),
        }];
        // Only administrators upload; nothing is stored otherwise.
        assert!(matches!(
            s.upload_item_texts(&n, "asq", &items).await,
            Err(StoreError::Forbidden { .. })
        ));
        assert!(s.current_item_texts().await.unwrap().is_empty());
        let v1 = s.upload_item_texts(&admin, "asq", &items).await.unwrap();
        assert_eq!((v1.version, v1.items.len()), (1, 1));
        let items2 = vec![
            ItemText {
                item: 1,
                text: "Wording one, revised".into(),
            },
            ItemText {
                item: 2,
                text: "Wording two".into(),
            },
        ];
        let v2 = s.upload_item_texts(&admin, "asq", &items2).await.unwrap();
        assert_eq!(v2.version, 2);
        s.upload_item_texts(&admin, "madrs", &items).await.unwrap();
        let current = s.current_item_texts().await.unwrap();
        assert_eq!(current.len(), 2);
        let asq = current.iter().find(|v| v.instrument == "asq").unwrap();
        assert_eq!((asq.version, asq.items.clone()), (2, items2));
        let all = s.item_text_versions(&admin).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(s.item_text_versions(&n).await.is_err());
        assert!(
            s.upload_item_texts(&admin, "asq", &[]).await.is_err(),
            "an empty upload is refused"
        );

        // A link goes to the patient or to one of the patient's guardians of record.
        let a = patient(s, "T-A").await;
        let b = patient(s, "T-B").await;
        let g = NewGuardian::parse(&GuardianInput {
            name: "Ann Parent".into(),
            relationship: "legal_guardian".into(),
            phone: "555-0100".into(),
            ..Default::default()
        })
        .unwrap();
        let ga = s
            .add_guardian(&Actor::system(Role::Nurse), a, &g)
            .await
            .unwrap();
        let to_patient = s
            .create_link(&n, a, "h-p", &["phq9".into()], 100, None)
            .await
            .unwrap();
        assert_eq!(
            (to_patient.sent_to.as_str(), to_patient.guardian_id),
            ("patient", None)
        );
        let to_guardian = s
            .create_link(&n, a, "h-g", &["phq9".into()], 100, Some(ga.id))
            .await
            .unwrap();
        assert_eq!(to_guardian.sent_to, "Ann Parent (legal guardian)");
        assert_eq!(to_guardian.guardian_id, Some(ga.id));
        let err = s
            .create_link(&n, b, "h-x", &["phq9".into()], 100, Some(ga.id))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(ref f) if f.0[0].field == "guardian_id"),
            "{err:?}"
        );
        let listed = s.patient_links(&n, a).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(
            listed
                .iter()
                .any(|l| l.sent_to == "Ann Parent (legal guardian)")
        );
        assert_eq!(store.verify_audit().await.unwrap().broken, None);
    }
}

#[tokio::test]
async fn incomplete_forms_alert_from_staff_and_links_only_for_their_own_questionnaires() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let a = patient(s, "I-A").await;
        let n = nurse();
        let item9 = [NewAlert {
            item: 9,
            answer: 2,
            detail: "PHQ-9 item 9 answered 2".into(),
        }];
        // Staff: the incomplete form raises the alert once (not again while it is open), and a
        // role that may not record measures cannot raise one.
        let raised = s
            .raise_incomplete_alerts(&n, a, "phq9", &item9)
            .await
            .unwrap();
        assert_eq!(raised.len(), 1, "{backend:?}");
        assert!(
            s.raise_incomplete_alerts(&n, a, "phq9", &item9)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            s.raise_incomplete_alerts(&Actor::system(Role::Scheduler), a, "phq9", &item9)
                .await,
            Err(StoreError::Forbidden { .. })
        ));
        assert!(s.patient_responses(&n, a).await.unwrap().is_empty());
        assert_eq!(s.patient_alerts(&n, a).await.unwrap().len(), 1);
        // The complete form joins the alert already raised instead of raising another.
        s.record_response(&n, a, &response("phq9", "staff-1", 2))
            .await
            .unwrap();
        assert_eq!(
            s.patient_alerts(&n, a).await.unwrap().len(),
            1,
            "{backend:?}"
        );

        // Links: the set is the stored one; an alert for another questionnaire is refused.
        s.create_link(&n, a, "hash-i", &["gad7".into()], 1_000, None)
            .await
            .unwrap();
        assert_eq!(
            s.link_instruments("hash-i").await.unwrap(),
            vec!["gad7".to_owned()]
        );
        assert!(matches!(
            s.link_instruments("nope").await,
            Err(StoreError::NotFound { .. })
        ));
        let e = s.raise_link_alerts("hash-i", 10, "x", "phq9", &item9).await;
        assert!(
            matches!(&e, Err(StoreError::Invalid(f)) if f.get("instruments").is_some()),
            "{backend:?}: {e:?}"
        );
        assert_eq!(s.patient_alerts(&n, a).await.unwrap().len(), 1);
    }
}
