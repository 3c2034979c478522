//! Fresh databases for tests: a new SQLite file, or a new PostgreSQL database on the server named
//! by `KETCARE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! PostgreSQL is required: when it cannot be reached the test fails, it does not skip.

use crate::{Backend, Store};
use sqlx::{Connection, Executor};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn postgres_admin_url() -> String {
    std::env::var("KETCARE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A URL for a new, empty database of the given backend.
pub async fn fresh_url(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("ketcare-tests");
            std::fs::create_dir_all(&dir).expect("temp dir for SQLite tests");
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{}.db", unique("t"))).display()
            )
        }
        Backend::Postgres => {
            sqlx::any::install_default_drivers();
            let admin = postgres_admin_url();
            let mut conn = sqlx::AnyConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL tests are required and {admin} did not answer ({e}). \
                     Start PostgreSQL (bash scripts/test does) or set KETCARE_TEST_POSTGRES_URL."
                    )
                });
            let name = unique("ketcare_test");
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("CREATE DATABASE for a test");
            match admin.rsplit_once('/') {
                Some((base, _)) => format!("{base}/{name}"),
                None => panic!("KETCARE_TEST_POSTGRES_URL must end with a database name"),
            }
        }
    }
}

/// A migrated store on a new, empty database.
pub async fn fresh_store(backend: Backend) -> Arc<dyn Store> {
    let url = fresh_url(backend).await;
    crate::open(&url).await.expect("open a fresh test store")
}

/// Both backends, for tests that run the same story on each.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
