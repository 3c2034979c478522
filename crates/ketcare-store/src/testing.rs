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

/// A copy of the PostgreSQL database at `url` as it is now (`CREATE DATABASE … TEMPLATE`, after
/// ending the other connections to it; pools reconnect on their next use): a stand-in for a
/// replica frozen at this moment. Returns the copy's URL.
pub async fn copy_postgres_database(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let (base, source) = url.rsplit_once('/').expect("a database URL");
    let copy = unique("ketcare_copy");
    let mut conn = sqlx::AnyConnection::connect(&postgres_admin_url())
        .await
        .expect("the PostgreSQL administrator's connection");
    conn.execute(sqlx::AssertSqlSafe(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{source}' AND pid <> pg_backend_pid()"
    )))
    .await
    .expect("ending the connections to the source");
    conn.execute(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {copy} TEMPLATE {source}"
    )))
    .await
    .expect("CREATE DATABASE … TEMPLATE");
    format!("{base}/{copy}")
}

/// Runs `sql` on the database at `url` (a test's direct change, outside ketcare's store).
pub async fn run_sql(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .expect("a connection for the test's SQL");
    conn.execute(sqlx::AssertSqlSafe(sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
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

/// The audit chain's write lock, held by a transaction on a connection of its own: every unit of
/// work, the vitals writer's batches included, waits for it (up to the lock timeout). For tests
/// that need the writer to be busy for as long as they choose, not for as long as it happens to
/// take.
pub struct WriteLock {
    conn: sqlx::AnyConnection,
}

/// Takes the write lock of the database at `url`.
pub async fn hold_write_lock(url: &str) -> WriteLock {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .expect("a connection to hold the write lock");
    let begin = if url.starts_with("sqlite:") {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN"
    };
    conn.execute(begin).await.expect("BEGIN");
    conn.execute("UPDATE audit_head SET seq = seq WHERE id = 1")
        .await
        .expect("lock the audit head");
    WriteLock { conn }
}

impl WriteLock {
    /// Lets the writers go on (the holding transaction changed nothing).
    pub async fn release(mut self) {
        self.conn.execute("ROLLBACK").await.expect("ROLLBACK");
    }
}

/// Both backends, for tests that run the same story on each.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A valid consent on file: the protocol's document (added if it has none yet, valid 365 days)
/// signed by the adult patient at `signed_at`, recorded by a nurse account made for it.
pub async fn consent_on_file(
    store: &dyn Store,
    patient: ketcare_core::PatientId,
    protocol_id: &str,
    protocol_version: u32,
    signed_at: jiff::Timestamp,
) -> ketcare_ops::consent::ConsentSignature {
    use ketcare_core::{Actor, Role};
    use ketcare_ops::consent::{Section, Signer, required_sections};
    let username = unique("consent_nurse");
    let user = store
        .create_user(
            &Actor::system(Role::Administrator),
            &crate::NewUser {
                username: username.clone(),
                display_name: "Consent nurse".into(),
                role: Role::Nurse,
                password_hash: "x".into(),
            },
        )
        .await
        .expect("a nurse for consent");
    let nurse = Actor::user(user.id, &username, Role::Nurse, "127.0.0.1");
    let current = store
        .current_consent_document(&nurse, protocol_id)
        .await
        .expect("consent documents");
    if current.is_none_or(|d| d.protocol_version != protocol_version) {
        store
            .add_consent_document(
                &nurse,
                &crate::NewConsentDocument {
                    protocol_id: protocol_id.into(),
                    protocol_version,
                    off_label: true,
                    title: format!("Consent for {protocol_id}"),
                    sections: required_sections(true)
                        .into_iter()
                        .map(|kind| Section {
                            kind,
                            text: format!("{} — text", kind.label()),
                        })
                        .collect(),
                    valid_days: Some(365),
                },
            )
            .await
            .expect("a consent document");
    }
    store
        .record_consent(
            &nurse,
            &crate::NewSignature {
                patient_id: patient,
                protocol_id: protocol_id.into(),
                signer: Signer::Patient,
                assent: None,
                signed_at,
            },
        )
        .await
        .expect("a consent signature")
}

/// Staff with accounts for ledger entries: a pharmacist, a nurse and a second nurse (witness).
pub async fn ledger_staff(store: &dyn Store) -> [ketcare_core::Actor; 3] {
    use ketcare_core::{Actor, Role};
    let mut out = Vec::new();
    for role in [Role::Pharmacist, Role::Nurse, Role::Nurse] {
        let username = unique("ledger_staff");
        let u = store
            .create_user(
                &Actor::system(Role::Administrator),
                &crate::NewUser {
                    username: username.clone(),
                    display_name: username.clone(),
                    role,
                    password_hash: "x".into(),
                },
            )
            .await
            .expect("a ledger user");
        out.push(Actor::user(u.id, &username, role, "127.0.0.1"));
    }
    let [a, b, c]: [Actor; 3] = out.try_into().expect("three users");
    [a, b, c]
}

/// Receives one ketamine 50 mg/mL vial and returns its container id.
pub async fn receive_vial(store: &dyn Store, pharmacist: &ketcare_core::Actor) -> i64 {
    receive_product(store, pharmacist, "ketamine-50").await
}

/// Receives one container of a product (`ketamine-10`, `ketamine-50`, …) and returns its id.
pub async fn receive_product(
    store: &dyn Store,
    pharmacist: &ketcare_core::Actor,
    product: &str,
) -> i64 {
    use ketcare_ops::ledger::LedgerEvent;
    store
        .ledger_append(
            pharmacist,
            &LedgerEvent::Receive {
                product: product.into(),
                ndc: "67457-108-10".into(),
                lot: "T1".into(),
                expiry: jiff::civil::date(2030, 1, 31),
                quantity: 1,
                invoice: "INV-T".into(),
                supplier: "Wholesaler".into(),
            },
        )
        .await
        .expect("receive a vial");
    store
        .ledger_state(pharmacist)
        .await
        .expect("ledger state")
        .containers
        .iter()
        .map(|c| c.id)
        .max()
        .expect("a container")
}

/// A scheduled session of `protocol` for `patient`, created by `actor`, with a verified dose
/// attached whose order is not stored (the ledger then reads the drug from the session's plan).
pub async fn session_with_order(
    store: &dyn Store,
    actor: &ketcare_core::Actor,
    patient: ketcare_core::PatientId,
    protocol: &str,
    devices: u32,
) -> ketcare_core::SessionId {
    let lib = ketcare_clinical::Library::builtin().expect("the built-in library");
    let rules = ketcare_session::RulesFile::builtin(lib.sources()).expect("the monitoring rules");
    let plan = rules.plan(
        lib.get(protocol).expect("a built-in protocol"),
        &ketcare_clinical::SiteSettings::new(),
        devices,
    );
    let mut session = ketcare_session::Session::new(
        plan,
        "Chair 1",
        "2026-12-07T09:00:00Z".parse().expect("a timestamp"),
    );
    session.checklist.dose = Some(ketcare_session::session::VerifiedDose {
        order_id: 900_000 + i64::from(devices),
        summary: "verified".into(),
        author: "doc".into(),
        verified_by: "pharm".into(),
        devices,
        dose_mg: Some(35.0),
        delivery: Default::default(),
    });
    store
        .create_treatment_session(actor, patient, &session)
        .await
        .expect("a scheduled session")
        .id
}

/// A session of `patient` whose record says the first dose was given at `dosed_at` (a fixture
/// for what comes after a dose: integration, follow-up), created by `actor` (who runs sessions).
pub async fn dosed_session(
    store: &dyn Store,
    actor: &ketcare_core::Actor,
    patient: ketcare_core::PatientId,
    dosed_at: jiff::Timestamp,
) -> ketcare_core::SessionId {
    let lib = ketcare_clinical::Library::builtin().expect("the built-in library");
    let rules = ketcare_session::RulesFile::builtin(lib.sources()).expect("the monitoring rules");
    let plan = rules.plan(
        lib.get("trd-adult-iv-ketamine")
            .expect("a built-in protocol"),
        &ketcare_clinical::SiteSettings::new(),
        0,
    );
    let mut session = ketcare_session::Session::new(plan, "Chair 1", dosed_at);
    session
        .administrations
        .push(ketcare_session::session::Administration {
            at: dosed_at,
            by: "nurse".into(),
            event: ketcare_session::session::AdminEvent::Start {
                rate_ml_per_h: None,
                deviation: None,
            },
        });
    store
        .create_treatment_session(actor, patient, &session)
        .await
        .expect("a dosed session")
        .id
}

/// A new site named `name` (no zone, no registration), created by a local administrator: its id.
pub async fn new_site(store: &dyn Store, name: &str) -> i64 {
    store
        .create_site(
            &ketcare_core::Actor::system(ketcare_core::Role::Administrator),
            &crate::NewSite {
                name: name.into(),
                ..Default::default()
            },
        )
        .await
        .expect("a new site")
        .id
}
