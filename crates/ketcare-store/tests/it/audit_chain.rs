//! Tampering with stored audit records is detected, on SQLite and on PostgreSQL.

use ketcare_core::audit::AuditEvent;
use ketcare_core::{Actor, Role};
use ketcare_store::testing::{BACKENDS, fresh_store};
use ketcare_store::{Backend, Store};
use std::sync::Arc;

async fn store_with_records(backend: Backend, n: usize) -> Arc<dyn Store> {
    let store = fresh_store(backend).await;
    let actor = Actor::system(Role::Nurse);
    for i in 0..n {
        store
            .audit(
                &actor,
                AuditEvent::new("test.event", Some(i as i64), format!("event {i}")),
            )
            .await
            .unwrap();
    }
    let v = store.verify_audit().await.unwrap();
    assert_eq!((v.records, v.broken), (n as u64, None), "{backend:?}");
    store
}

async fn drop_guard(store: &dyn Store) {
    // An attacker with database access can remove the append-only triggers; the chain still tells.
    match store.backend() {
        Backend::Sqlite => {
            store
                .execute_raw("DROP TRIGGER audit_log_no_update")
                .await
                .unwrap();
            store
                .execute_raw("DROP TRIGGER audit_log_no_delete")
                .await
                .unwrap();
        }
        Backend::Postgres => {
            store
                .execute_raw("DROP TRIGGER audit_log_no_change ON audit_log")
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn append_only_triggers_refuse_changes() {
    for backend in BACKENDS {
        let store = store_with_records(backend, 3).await;
        assert!(
            store
                .execute_raw("UPDATE audit_log SET detail = 'x' WHERE seq = 2")
                .await
                .is_err(),
            "{backend:?}"
        );
        assert!(
            store
                .execute_raw("DELETE FROM audit_log WHERE seq = 2")
                .await
                .is_err(),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn an_edited_record_is_named() {
    for backend in BACKENDS {
        let store = store_with_records(backend, 6).await;
        drop_guard(store.as_ref()).await;
        store
            .execute_raw("UPDATE audit_log SET username = 'someone-else' WHERE seq = 4")
            .await
            .unwrap();
        let broken = store
            .verify_audit()
            .await
            .unwrap()
            .broken
            .expect("edit detected");
        assert_eq!(broken.seq, 4, "{backend:?}: {broken}");
    }
}

#[tokio::test]
async fn a_deleted_record_is_named() {
    for backend in BACKENDS {
        let store = store_with_records(backend, 6).await;
        drop_guard(store.as_ref()).await;
        store
            .execute_raw("DELETE FROM audit_log WHERE seq = 3")
            .await
            .unwrap();
        let broken = store
            .verify_audit()
            .await
            .unwrap()
            .broken
            .expect("deletion detected");
        assert_eq!(broken.seq, 3, "{backend:?}: {broken}");
    }
}

#[tokio::test]
async fn dropping_the_newest_records_is_detected() {
    for backend in BACKENDS {
        let store = store_with_records(backend, 5).await;
        drop_guard(store.as_ref()).await;
        store
            .execute_raw("DELETE FROM audit_log WHERE seq >= 4")
            .await
            .unwrap();
        let broken = store
            .verify_audit()
            .await
            .unwrap()
            .broken
            .expect("truncation detected");
        assert_eq!(broken.seq, 4, "{backend:?}: {broken}");
    }
}

#[tokio::test]
async fn concurrent_writers_keep_one_linear_chain() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let mut tasks = Vec::new();
        for t in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let actor = Actor::system(Role::Nurse);
                for i in 0..10 {
                    store
                        .audit(
                            &actor,
                            AuditEvent::new("test.concurrent", None, format!("{t}/{i}")),
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let v = store.verify_audit().await.unwrap();
        assert_eq!((v.records, v.broken), (80, None), "{backend:?}");
    }
}
