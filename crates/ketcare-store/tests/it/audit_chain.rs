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

#[tokio::test]
async fn append_only_tables_refuse_delete_and_truncate() {
    for backend in BACKENDS {
        let store = store_with_records(backend, 3).await;
        assert!(
            store.execute_raw("DELETE FROM audit_log").await.is_err(),
            "{backend:?}: DELETE"
        );
        if backend == Backend::Postgres {
            for table in [
                "audit_log",
                "ops_ledger",
                "session_vitals",
                "session_addenda",
                "therapy_encounters",
                "therapy_notes",
            ] {
                let e = store
                    .execute_raw(&format!("TRUNCATE {table} CASCADE"))
                    .await
                    .unwrap_err();
                assert!(e.to_string().contains("append-only"), "{table}: {e}");
            }
        }
        assert_eq!(store.count("audit_log").await.unwrap(), 3, "{backend:?}");
    }
}

/// The documented least-privilege server role (`sql/postgres_app_role.sql`): ketcare starts and
/// writes as a role that owns no table, and that role can neither rewrite an append-only table
/// nor drop a table or disable a trigger.
#[tokio::test]
async fn the_server_runs_as_a_role_that_owns_nothing() {
    use ketcare_store::SqlStore;
    use ketcare_store::testing::fresh_url;
    let owner_url = fresh_url(Backend::Postgres).await;
    let owner = ketcare_store::open(&owner_url).await.unwrap();
    let suffix = owner_url.rsplit('_').next().unwrap_or("0").to_owned();
    let role = format!("ketcare_app_{}_{suffix}", std::process::id());
    owner
        .execute_raw(&format!("CREATE ROLE {role} LOGIN PASSWORD 'app-test'"))
        .await
        .unwrap();
    for statement in SqlStore::postgres_app_role_grants(&role)
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .filter(|s| !s.trim().is_empty())
    {
        owner.execute_raw(statement).await.unwrap();
    }
    // The same database, signed in as the server role.
    let (_, host_and_db) = owner_url
        .split_once('@')
        .unwrap_or(("", owner_url.trim_start_matches("postgres://")));
    let app_url = format!("postgres://{role}:app-test@{host_and_db}");
    let app = ketcare_store::open(&app_url)
        .await
        .expect("the server starts as the least-privilege role");
    app.audit(
        &Actor::system(Role::Nurse),
        AuditEvent::new("test.event", None, "written as the server role"),
    )
    .await
    .unwrap();
    assert_eq!(app.verify_audit().await.unwrap().broken, None);
    for attack in [
        "UPDATE audit_log SET detail = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "TRUNCATE ops_ledger",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "DROP TABLE audit_log",
        "DELETE FROM _sqlx_migrations",
    ] {
        let e = app.execute_raw(attack).await.unwrap_err();
        assert!(
            e.to_string().contains("permission denied") || e.to_string().contains("must be owner"),
            "{attack}: {e}"
        );
    }
    assert_eq!(owner.count("audit_log").await.unwrap(), 1);
    // Roles belong to the whole server: remove this one (its pool is closed first).
    drop(app);
    owner
        .execute_raw(&format!("DROP OWNED BY {role}"))
        .await
        .unwrap();
    let _ = owner.execute_raw(&format!("DROP ROLE {role}")).await;
}
