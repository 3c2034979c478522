//! The SQL implementation of [`Store`], over sqlx's `Any` driver so that one body of queries
//! serves SQLite and PostgreSQL. Only the DDL differs (`migrations/sqlite`, `migrations/postgres`);
//! every query here uses `$n` placeholders, `RETURNING` and types both backends share
//! (integers, floats, text). Times are RFC 3339 text; instants compared in SQL are epoch seconds.
//!
//! This module holds the store itself, its units of work and the audit chain's writer; each
//! aggregate's queries and row types are in its own file (`users`, `patients`, `audit`,
//! `settings`, `records`) as `impl SqlStore` functions, which `impl Store` below calls.

use crate::{AccountChange, Chain, RecordChange, SettingsProposal, SiteProtocol};
use crate::{
    ApiToken, AuditFilter, AuditVerification, Backend, ClinicalRecord, NewUser, OwnedRow,
    RecordKind, Result, SiteSettingsVersion, Store, StoreError, User, WebSession, require,
};
use crate::{FhirClient, FhirGrant, GrantOutcome, NewFhirClient, StoreOptions};
use crate::{SecondFactorProof, SecondFactorState, SecretText};
use async_trait::async_trait;
use ketcare_core::audit::{AuditEvent, AuditRecord, HashInput, record_hash, verify_chain};
use ketcare_core::patient::{
    Guardian, Measured, NewGuardian, NewPatient, Patient, PatientSummary, Relationship, Sex,
    VisiblePatient,
};
use ketcare_core::units::{HeightCm, WeightKg};
use ketcare_core::{Actor, ApiTokenId, GuardianId, PatientId, Permission, RecordId, Role, UserId};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

mod audit;
mod fhir_clients;
mod patients;
mod records;
mod settings;
mod users;

pub(crate) use patients::{BindPatient, INSERT_PATIENT, load_patient};
pub(crate) use settings::setting_is_on;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Whether every migration of `migrator` is recorded as applied (false when the history table
/// does not exist yet).
async fn migrations_applied(pool: &AnyPool, migrator: &sqlx::migrate::Migrator) -> bool {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(v) => v,
            Err(_) => return false,
        };
    migrator.iter().all(|m| applied.contains(&m.version))
}

pub struct SqlStore {
    pub(crate) pool: AnyPool,
    /// A read-only replica for the registry's reads (`--read-database-url`), when configured.
    pub(crate) read_pool: Option<AnyPool>,
    pub(crate) backend: Backend,
    /// The vitals writer: a bounded queue in front of one task with its own connection, which
    /// commits the queued readings in batches (`sessions/vitals.rs`).
    pub(crate) vitals: crate::sessions::VitalsWriter,
    /// What the session ticker read last, so each tick reads only what changed.
    pub(crate) tick_cache: tokio::sync::Mutex<crate::sessions::TickCache>,
    /// SQLite: whose turn it is to write (see [`Writers`]).
    pub(crate) writers: Writers,
    /// The registry's subjects as last loaded, by registry version (`registry.rs`).
    pub(crate) registry_memo: std::sync::Mutex<crate::registry::Memo>,
}

/// The write connections of one store: on SQLite each unit first takes its turn in this
/// process's queue, first come first served, and only then SQLite's write lock. Without it,
/// writers waiting for SQLite's lock would retry in its busy handler's growing sleeps, and one
/// could miss every short gap between two vitals batches; with it, a write waits for at most the
/// writes queued before it. PostgreSQL queues waiters on the audit head's row lock itself.
#[derive(Clone)]
pub(crate) struct Writers {
    turn: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

impl Writers {
    /// SQLite: waits for this process's write turn (first come, first served); PostgreSQL: none.
    async fn take_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.turn {
            Some(t) => Some(t.clone().lock_owned().await),
            None => None,
        }
    }

    fn new(backend: Backend) -> Self {
        Self {
            turn: (backend == Backend::Sqlite)
                .then(|| std::sync::Arc::new(tokio::sync::Mutex::new(()))),
        }
    }
}

pub(crate) type Tx = Transaction<'static, Any>;

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// The pool options for `backend`: `size` connections, each set up by ketcare itself (SQLite:
/// foreign keys, WAL, `synchronous = FULL`, the busy timeout; PostgreSQL: `read committed`,
/// `synchronous_commit = on`, the lock and statement timeouts), whatever the server's defaults.
///
/// `checkpoints`: whether a SQLite connection copies the write-ahead log back into the database
/// itself after a commit that grew it (the default); the vitals writer's does not — its pool
/// does that beside it (`sessions/writer.rs`), so a checkpoint never delays an acknowledgement.
fn pool_options(
    backend: Backend,
    size: u32,
    o: &StoreOptions,
    checkpoints: bool,
) -> AnyPoolOptions {
    pool_with_setup(size, connection_setup(backend, o, checkpoints))
}

/// The replica's pool for the registry's reads: the primary's settings, and every transaction
/// read-only, so a write sent there by mistake fails instead of diverging.
fn read_pool_options(size: u32, o: &StoreOptions) -> AnyPoolOptions {
    let setup = connection_setup(Backend::Postgres, o, true);
    pool_with_setup(
        size,
        format!("{setup} SET default_transaction_read_only = on;"),
    )
}

/// What ketcare sets on each new connection, whatever the server's defaults.
fn connection_setup(backend: Backend, o: &StoreOptions, checkpoints: bool) -> String {
    match backend {
        Backend::Sqlite => format!(
            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;{}",
            o.lock_timeout_ms,
            if checkpoints {
                ""
            } else {
                " PRAGMA wal_autocheckpoint = 0;"
            }
        ),
        Backend::Postgres => format!(
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED; SET synchronous_commit = on; SET lock_timeout = {}; SET statement_timeout = {};",
            o.lock_timeout_ms, o.statement_timeout_ms
        ),
    }
}

fn pool_with_setup(size: u32, setup: String) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size.max(1))
        .after_connect(move |conn, _meta| {
            let setup = setup.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(setup)).await?;
                Ok(())
            })
        })
}

/// Whether `e` is a failure after which the transaction was rolled back by the database and
/// may be run again as it was: a serialization failure or deadlock (PostgreSQL 40001, 40P01), a
/// lock wait over `lock_timeout` (55P03), SQLite busy or locked (5, 6).
pub(crate) fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => matches!(
            db.code().as_deref(),
            Some("40001" | "40P01" | "55P03" | "5" | "6" | "517")
        ),
        _ => false,
    }
}

impl SqlStore {
    /// Connects, applies pending migrations, and returns the store.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &StoreOptions::default()).await
    }

    /// [`SqlStore::open`] with the connection and queue settings of `options`.
    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Self> {
        let backend = Backend::from_url(url)?;
        sqlx::any::install_default_drivers();
        let size = options.pool_size.unwrap_or(match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        });
        let pool = pool_options(backend, size, options, true)
            .connect(url)
            .await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            // A server that runs as the least-privilege role (it owns no table) cannot migrate;
            // when every migration is applied there is nothing to run, so it starts.
            Backend::Postgres if migrations_applied(&pool, &POSTGRES_MIGRATIONS).await => {}
            Backend::Postgres => {
                // Migrations may run longer than any statement the server makes later: on a
                // connection of their own, without the lock and statement timeouts.
                let untimed = StoreOptions {
                    lock_timeout_ms: 0,
                    statement_timeout_ms: 0,
                    ..options.clone()
                };
                let migrating = pool_options(backend, 1, &untimed, true)
                    .connect(url)
                    .await?;
                POSTGRES_MIGRATIONS.run(&migrating).await?;
                migrating.close().await;
            }
        }
        let read_pool = match &options.read_url {
            None => None,
            Some(read) => {
                if backend != Backend::Postgres || Backend::from_url(read)? != Backend::Postgres {
                    return Err(StoreError::Config(
                        "a read replica (--read-database-url) is for a PostgreSQL database, and must be PostgreSQL".into(),
                    ));
                }
                Some(read_pool_options(size, options).connect(read).await?)
            }
        };
        // The vitals writer's own connection: readers keep the whole pool, and the writer never
        // waits for a pooled connection behind them.
        let writer = pool_options(backend, 1, options, false).connect_lazy(url)?;
        let writers = Writers::new(backend);
        let checkpoints = (backend == Backend::Sqlite).then(|| pool.clone());
        let store = Self {
            pool,
            read_pool,
            backend,
            vitals: crate::sessions::VitalsWriter::new(
                writer,
                writers.clone(),
                checkpoints,
                options,
            ),
            tick_cache: tokio::sync::Mutex::new(Default::default()),
            registry_memo: std::sync::Mutex::new(Default::default()),
            writers,
        };
        store.fill_search_text().await?;
        Ok(store)
    }

    /// The grants that make a PostgreSQL role ketcare's least-privilege server role (see
    /// `sql/postgres_app_role.sql`), for the role named `role`.
    pub fn postgres_app_role_grants(role: &str) -> String {
        include_str!("../../sql/postgres_app_role.sql").replace("ketcare_app", role)
    }

    /// Writes the folded search text of patients stored before the column existed (migration
    /// 0010). It is derived from the record itself, so no audit event is written.
    async fn fill_search_text(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM patients WHERE search_text = ''")
            .fetch_all(&mut *tx)
            .await?;
        for id in ids {
            let p = load_patient(&mut tx, ketcare_core::PatientId::new(id)).await?;
            sqlx::query("UPDATE patients SET search_text = $1 WHERE id = $2")
                .bind(p.record.search_text())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The audit chain's head as the unit holding its lock last wrote it: (seq, hash).
type Head = (i64, String);

/// Starts a write transaction on `pool`. Its first statement locks the audit head row and reads
/// it, so writers are serialised on both backends (SQLite takes its write lock here, PostgreSQL a
/// row lock) and the unit knows the head without reading it again.
async fn begin_write_on(pool: &AnyPool) -> Result<(Tx, Head)> {
    let mut tx = pool.begin().await?;
    let head: Head =
        sqlx::query_as("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *tx)
            .await?;
    Ok((tx, head))
}

/// One audited unit of work: the role was checked, the write transaction holds the audit-chain
/// lock, and it commits only after at least one audit record was appended to it. Dropping it
/// rolls back. Every change of the foundation goes through [`SqlStore::write`]; every audited
/// read through [`SqlStore::read_audited`] (the same unit, so a read is recorded or not done).
///
/// The unit keeps the chain's head in memory from the lock it took: each record is one insert,
/// and the head row is written once, at commit.
pub(crate) struct Unit<'a> {
    tx: Tx,
    actor: &'a Actor,
    head: Head,
    audited: bool,
    /// Writes only data derived from the record (caches): the audit head is not locked and no
    /// record may be appended ([`Unit::derived`]).
    derived: bool,
    /// SQLite: this unit's turn, held until it commits or is dropped (after the transaction,
    /// as fields drop in order).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for Unit<'_> {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl std::ops::DerefMut for Unit<'_> {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

impl<'a> Unit<'a> {
    /// A unit on a connection of `pool` (the shared pool, or the vitals writer's own) for
    /// `actor`.
    pub(crate) async fn on(
        pool: &AnyPool,
        writers: &Writers,
        actor: &'a Actor,
    ) -> Result<Unit<'a>> {
        let turn = writers.take_turn().await;
        let (tx, head) = begin_write_on(pool).await?;
        Ok(Unit {
            tx,
            actor,
            head,
            audited: false,
            derived: false,
            _turn: turn,
        })
    }

    /// A unit that writes only data derived from the record (the registry's caches, which the
    /// record's own writes mark stale): it does not lock the audit chain's head, so a long
    /// derivation never holds up the record's writers (the bedside feed) on PostgreSQL; it may
    /// append no audit record, and commits without one. On SQLite it takes its turn like every
    /// writer (one writer at a time is SQLite's rule).
    pub(crate) async fn derived(
        pool: &AnyPool,
        writers: &Writers,
        actor: &'a Actor,
    ) -> Result<Unit<'a>> {
        let turn = writers.take_turn().await;
        Ok(Unit {
            tx: pool.begin().await?,
            actor,
            head: (0, String::new()),
            audited: false,
            derived: true,
            _turn: turn,
        })
    }

    /// The actor whose unit this is (and whose audit records it appends).
    pub(crate) fn actor(&self) -> &'a Actor {
        self.actor
    }

    /// The connection of the transaction, for queries.
    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Appends the audit record of this unit's actor.
    pub(crate) async fn audit(&mut self, event: &AuditEvent) -> Result<()> {
        let actor = self.actor;
        self.audit_each(&[(actor, event)]).await
    }

    /// Appends one record per (actor, event), chained in the order given, with multi-row
    /// inserts (a vitals batch: each reading's record as its monitor's).
    pub(crate) async fn audit_each(&mut self, events: &[(&Actor, &AuditEvent)]) -> Result<()> {
        if self.derived {
            return Err(StoreError::Corrupt(
                "a unit of derived data cannot append to the audit log".into(),
            ));
        }
        // 11 parameters a row; 50 rows stay far below both backends' parameter limits.
        for chunk in events.chunks(50) {
            let mut rows = Vec::with_capacity(chunk.len());
            for (actor, event) in chunk {
                let row = chained(&self.head, actor, event);
                self.head = (row.seq, row.hash.clone());
                rows.push(row);
            }
            let sql = format!(
                "INSERT INTO audit_log (seq, at, user_id, username, role, address, action, patient_id, detail, prev_hash, hash) VALUES {}",
                placeholders(rows.len(), 11)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in &rows {
                q = q
                    .bind(r.seq)
                    .bind(&r.at)
                    .bind(r.user_id())
                    .bind(&r.actor.username)
                    .bind(r.role())
                    .bind(&r.actor.address)
                    .bind(&r.event.action)
                    .bind(r.event.patient_id)
                    .bind(&r.event.detail)
                    .bind(&r.prev_hash)
                    .bind(&r.hash);
            }
            q.execute(&mut *self.tx).await?;
        }
        if !events.is_empty() {
            self.audited = true;
        }
        Ok(())
    }

    /// Commits; a unit that wrote no audit record is refused (and rolled back). The head row
    /// is written here, once, in the same transaction.
    pub(crate) async fn commit(self) -> Result<()> {
        self.commit_seq().await.map(|_| ())
    }

    /// [`Unit::commit`], returning the audit chain's sequence number this unit committed at:
    /// every write is chained through the head, so a database (a replica) whose head is at or
    /// past it holds everything this unit wrote.
    pub(crate) async fn commit_seq(mut self) -> Result<i64> {
        if self.derived {
            self.tx.commit().await?;
            return Ok(0);
        }
        if !self.audited {
            return Err(StoreError::Corrupt(
                "a unit of work without an audit record was not committed".into(),
            ));
        }
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(self.head.0)
            .bind(&self.head.1)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(self.head.0)
    }
}

impl SqlStore {
    /// A write by `actor`, who must hold `permission`.
    pub(crate) async fn write<'a>(
        &self,
        actor: &'a Actor,
        permission: Permission,
    ) -> Result<Unit<'a>> {
        require(actor, permission)?;
        self.unit(actor).await
    }

    /// An audited read by `actor`, who must hold `permission` (the read's record is its write).
    pub(crate) async fn read_audited<'a>(
        &self,
        actor: &'a Actor,
        permission: Permission,
    ) -> Result<Unit<'a>> {
        self.write(actor, permission).await
    }

    /// A unit for an actor whose right was established otherwise (a sign-in attempt, an
    /// actor-specific rule checked by the caller).
    pub(crate) async fn unit<'a>(&self, actor: &'a Actor) -> Result<Unit<'a>> {
        Unit::on(&self.pool, &self.writers, actor).await
    }
}

/// One audit record, chained after `head`: the actor's and event's fields, and its own.
struct ChainedRow<'e> {
    actor: &'e Actor,
    event: &'e AuditEvent,
    seq: i64,
    at: String,
    prev_hash: String,
    hash: String,
}

impl ChainedRow<'_> {
    fn role(&self) -> &'static str {
        self.actor.role.map(Role::as_str).unwrap_or("")
    }

    fn user_id(&self) -> Option<i64> {
        self.actor.user_id.map(UserId::get)
    }
}

fn chained<'e>(head: &Head, actor: &'e Actor, event: &'e AuditEvent) -> ChainedRow<'e> {
    let (prev_seq, prev_hash) = head;
    let mut row = ChainedRow {
        actor,
        event,
        seq: prev_seq + 1,
        at: now_rfc3339(),
        prev_hash: prev_hash.clone(),
        hash: String::new(),
    };
    row.hash = record_hash(&HashInput {
        seq: row.seq,
        at: &row.at,
        user_id: row.user_id(),
        username: &actor.username,
        role: row.role(),
        address: &actor.address,
        action: &event.action,
        patient_id: event.patient_id,
        detail: &event.detail,
        prev_hash,
    });
    row
}

/// `rows` × `columns` → "($1, …, $columns), (…)": the placeholders of a multi-row insert, or
/// with one row of `n`, of an `IN` list.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} `{value}`"))
}

const KNOWN_TABLES: [&str; 20] = [
    "therapy_encounters",
    "therapy_notes",
    "treatment_sessions",
    "session_vitals",
    "session_addenda",
    "settings_proposals",
    "site_protocols",
    "site_settings",
    "clinical_records",
    "users",
    "web_sessions",
    "api_tokens",
    "patients",
    "guardians",
    "audit_log",
    "audit_head",
    "ops_ledger",
    "fhir_clients",
    "fhir_client_jtis",
    "fhir_access_tokens",
];

/// Each method calls the function of the same name in its aggregate's file.
#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    async fn try_job_lock(&self, job: crate::jobs::Job) -> Result<Option<crate::jobs::JobLock>> {
        match self.backend {
            Backend::Sqlite => Ok(Some(crate::jobs::JobLock::granted())),
            Backend::Postgres => crate::jobs::JobLock::try_take(&self.pool, job).await,
        }
    }

    async fn create_user(&self, actor: &Actor, user: &NewUser) -> Result<User> {
        SqlStore::create_user(self, actor, user).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        SqlStore::user_by_username(self, username).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        SqlStore::user_by_id(self, id).await
    }

    async fn change_account(
        &self,
        actor: &Actor,
        id: UserId,
        change: &AccountChange,
    ) -> Result<User> {
        SqlStore::change_account(self, actor, id, change).await
    }

    async fn list_users(&self, actor: &Actor) -> Result<Vec<User>> {
        SqlStore::list_users(self, actor).await
    }

    async fn login_failed(
        &self,
        user: &User,
        address: &str,
        lock_until: Option<i64>,
    ) -> Result<()> {
        SqlStore::login_failed(self, user, address, lock_until).await
    }

    async fn login_succeeded(&self, user: &User, address: &str) -> Result<()> {
        SqlStore::login_succeeded(self, user, address).await
    }

    async fn second_factor(&self, id: UserId) -> Result<SecondFactorState> {
        SqlStore::second_factor(self, id).await
    }

    async fn begin_second_factor(&self, actor: &Actor, secret: &SecretText) -> Result<()> {
        SqlStore::begin_second_factor(self, actor, secret).await
    }

    async fn confirm_second_factor(
        &self,
        actor: &Actor,
        secret: &SecretText,
        step: i64,
        recovery_code_hashes: &[String],
    ) -> Result<User> {
        SqlStore::confirm_second_factor(self, actor, secret, step, recovery_code_hashes).await
    }

    async fn second_factor_sign_in(
        &self,
        user: &User,
        address: &str,
        proof: &SecondFactorProof,
    ) -> Result<bool> {
        SqlStore::second_factor_sign_in(self, user, address, proof).await
    }

    async fn create_sign_in_challenge(
        &self,
        user: &User,
        address: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<()> {
        SqlStore::create_sign_in_challenge(self, user, address, token_hash, expires_at).await
    }

    async fn sign_in_challenge(&self, token_hash: &str, now: i64) -> Result<Option<User>> {
        SqlStore::sign_in_challenge(self, token_hash, now).await
    }

    async fn end_sign_in_challenge(&self, token_hash: &str, now: i64) -> Result<()> {
        SqlStore::end_sign_in_challenge(self, token_hash, now).await
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        SqlStore::create_session(self, token_hash, user, csrf, now, expires_at).await
    }

    async fn session(&self, token_hash: &str, now: i64) -> Result<Option<WebSession>> {
        SqlStore::session(self, token_hash, now).await
    }

    async fn end_session(&self, token_hash: &str, actor: &Actor) -> Result<()> {
        SqlStore::end_session(self, token_hash, actor).await
    }

    async fn create_api_token(
        &self,
        actor: &Actor,
        user: UserId,
        token_hash: &str,
        label: &str,
        expires_at: Option<i64>,
    ) -> Result<ApiToken> {
        SqlStore::create_api_token(self, actor, user, token_hash, label, expires_at).await
    }

    async fn api_token_user(&self, token_hash: &str, now: i64) -> Result<Option<User>> {
        SqlStore::api_token_user(self, token_hash, now).await
    }

    async fn touch_session(&self, token_hash: &str, now: i64) -> Result<()> {
        SqlStore::touch_session(self, token_hash, now).await
    }

    async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>> {
        SqlStore::list_api_tokens(self, user).await
    }

    async fn revoke_api_token(&self, actor: &Actor, id: ApiTokenId) -> Result<()> {
        SqlStore::revoke_api_token(self, actor, id).await
    }

    async fn register_fhir_client(
        &self,
        actor: &Actor,
        client: &NewFhirClient,
    ) -> Result<FhirClient> {
        SqlStore::register_fhir_client(self, actor, client).await
    }

    async fn list_fhir_clients(&self, actor: &Actor) -> Result<Vec<FhirClient>> {
        SqlStore::list_fhir_clients(self, actor).await
    }

    async fn fhir_client(&self, client_id: &str) -> Result<Option<FhirClient>> {
        SqlStore::fhir_client(self, client_id).await
    }

    async fn disable_fhir_client(&self, actor: &Actor, client_id: &str) -> Result<FhirClient> {
        SqlStore::disable_fhir_client(self, actor, client_id).await
    }

    async fn grant_fhir_token(&self, actor: &Actor, grant: &FhirGrant<'_>) -> Result<GrantOutcome> {
        SqlStore::grant_fhir_token(self, actor, grant).await
    }

    async fn fhir_token(&self, token_hash: &str, now: i64) -> Result<Option<(User, String)>> {
        SqlStore::fhir_token(self, token_hash, now).await
    }

    async fn create_patient(&self, actor: &Actor, p: &NewPatient) -> Result<Patient> {
        SqlStore::create_patient(self, actor, p).await
    }

    async fn update_patient(
        &self,
        actor: &Actor,
        id: PatientId,
        p: &NewPatient,
    ) -> Result<Patient> {
        SqlStore::update_patient(self, actor, id, p).await
    }

    async fn get_patient(&self, actor: &Actor, id: PatientId) -> Result<Patient> {
        SqlStore::get_patient(self, actor, id).await
    }

    async fn all_patient_ids(&self, actor: &Actor) -> Result<Vec<PatientId>> {
        SqlStore::all_patient_ids(self, actor).await
    }

    async fn update_demographics(
        &self,
        actor: &Actor,
        id: PatientId,
        p: &NewPatient,
        read_at: &str,
    ) -> Result<Patient> {
        SqlStore::update_demographics(self, actor, id, p, read_at).await
    }

    async fn owner_of(&self, actor: &Actor, row: OwnedRow, id: i64) -> Result<Option<PatientId>> {
        SqlStore::owner_of(self, actor, row, id).await
    }

    async fn patient_view(&self, actor: &Actor, id: PatientId) -> Result<VisiblePatient> {
        SqlStore::patient_view(self, actor, id).await
    }

    async fn search_patients(
        &self,
        actor: &Actor,
        query: &str,
        limit: i64,
    ) -> Result<Vec<PatientSummary>> {
        SqlStore::search_patients(self, actor, query, limit).await
    }

    async fn add_guardian(
        &self,
        actor: &Actor,
        patient: PatientId,
        g: &NewGuardian,
    ) -> Result<Guardian> {
        SqlStore::add_guardian(self, actor, patient, g).await
    }

    async fn remove_guardian(
        &self,
        actor: &Actor,
        patient: PatientId,
        guardian: GuardianId,
    ) -> Result<()> {
        SqlStore::remove_guardian(self, actor, patient, guardian).await
    }

    async fn audit(&self, actor: &Actor, event: AuditEvent) -> Result<()> {
        SqlStore::audit(self, actor, event).await
    }

    async fn audit_records(&self, actor: &Actor, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        SqlStore::audit_records(self, actor, f).await
    }

    async fn verify_audit(&self) -> Result<AuditVerification> {
        SqlStore::verify_audit(self).await
    }

    async fn chain_head(&self, chain: Chain) -> Result<(i64, String)> {
        // The audit chain's head row has id 1; each site's ledger has its own head row.
        let row = match chain {
            Chain::Audit => {
                sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?
            }
            Chain::Ledger(site) => {
                sqlx::query("SELECT seq, hash FROM ops_ledger_heads WHERE site_id = $1")
                    .bind(site)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        what: format!("site {site}'s ledger"),
                    })?
            }
        };
        Ok((row.try_get("seq")?, row.try_get("hash")?))
    }

    async fn chain_hash_at(&self, chain: Chain, seq: i64) -> Result<Option<String>> {
        let row = match chain {
            Chain::Audit => {
                sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
                    .bind(seq)
                    .fetch_optional(&self.pool)
                    .await?
            }
            Chain::Ledger(site) => {
                sqlx::query("SELECT hash FROM ops_ledger WHERE site_id = $1 AND site_seq = $2")
                    .bind(site)
                    .bind(seq)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        row.map(|r| r.try_get("hash").map_err(StoreError::from))
            .transpose()
    }

    async fn site_settings(&self) -> Result<Option<SiteSettingsVersion>> {
        SqlStore::site_settings(self).await
    }

    async fn save_site_settings(
        &self,
        actor: &Actor,
        body: &str,
        reason: &str,
    ) -> Result<SiteSettingsVersion> {
        SqlStore::save_site_settings(self, actor, body, reason).await
    }

    async fn settings_of_site(&self, site: i64) -> Result<Option<SiteSettingsVersion>> {
        SqlStore::settings_of_site(self, site).await
    }

    async fn save_settings_of_site(
        &self,
        actor: &Actor,
        site: i64,
        body: &str,
        reason: &str,
    ) -> Result<SiteSettingsVersion> {
        SqlStore::save_settings_of_site(self, actor, site, body, reason).await
    }

    async fn propose_settings_change(
        &self,
        actor: &Actor,
        body: &str,
        reason: &str,
    ) -> Result<SettingsProposal> {
        SqlStore::propose_settings_change(self, actor, body, reason).await
    }

    async fn settings_proposals(&self) -> Result<Vec<SettingsProposal>> {
        SqlStore::settings_proposals(self).await
    }

    async fn settings_proposal(&self, id: i64) -> Result<SettingsProposal> {
        SqlStore::settings_proposal(self, id).await
    }

    async fn approve_settings_change(
        &self,
        actor: &Actor,
        id: i64,
        new_settings: &str,
    ) -> Result<SiteSettingsVersion> {
        SqlStore::approve_settings_change(self, actor, id, new_settings).await
    }

    async fn site_protocols(&self) -> Result<Vec<SiteProtocol>> {
        SqlStore::site_protocols(self).await
    }

    async fn add_site_protocol(
        &self,
        actor: &Actor,
        site: Option<i64>,
        file_name: &str,
        body: &str,
    ) -> Result<SiteProtocol> {
        SqlStore::add_site_protocol(self, actor, site, file_name, body).await
    }

    async fn create_record(
        &self,
        actor: &Actor,
        patient: PatientId,
        change: &RecordChange<'_>,
    ) -> Result<ClinicalRecord> {
        SqlStore::create_record(self, actor, patient, change).await
    }

    async fn record(
        &self,
        actor: &Actor,
        kind: RecordKind,
        id: RecordId,
    ) -> Result<ClinicalRecord> {
        SqlStore::record(self, actor, kind, id).await
    }

    async fn update_record(
        &self,
        actor: &Actor,
        id: RecordId,
        revision: i64,
        change: &RecordChange<'_>,
    ) -> Result<ClinicalRecord> {
        SqlStore::update_record(self, actor, id, revision, change).await
    }

    async fn patient_records(
        &self,
        actor: &Actor,
        patient: PatientId,
        kind: RecordKind,
    ) -> Result<Vec<ClinicalRecord>> {
        SqlStore::patient_records(self, actor, patient, kind).await
    }

    async fn backup_into(&self, path: &std::path::Path) -> Result<()> {
        match self.backend() {
            Backend::Sqlite => {
                if path.exists() {
                    return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                        "to",
                        format!(
                            "{} exists: a backup never overwrites a file",
                            path.display()
                        ),
                    )));
                }
                let p = path.to_string_lossy().replace('\'', "''");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM INTO '{p}'")))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            Backend::Postgres => Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "to",
                "a PostgreSQL database is backed up with pg_dump (see the README's backup section)",
            ))),
        }
    }

    async fn execute_raw(&self, sql: &str) -> Result<u64> {
        Ok(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn records_in_states(
        &self,
        actor: &Actor,
        kind: RecordKind,
        states: &[&str],
    ) -> Result<Vec<ClinicalRecord>> {
        SqlStore::records_in_states(self, actor, kind, states).await
    }

    async fn patient_summaries(
        &self,
        actor: &Actor,
        ids: &[PatientId],
    ) -> Result<Vec<PatientSummary>> {
        SqlStore::patient_summaries(self, actor, ids).await
    }

    async fn count(&self, table: &str) -> Result<i64> {
        if !KNOWN_TABLES.contains(&table) {
            return Err(StoreError::NotFound {
                what: format!("table {table}"),
            });
        }
        // The table name was checked against KNOWN_TABLES above.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {table}"
        )))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }
}

#[cfg(test)]
mod unit_of_work {
    use super::*;

    #[tokio::test]
    async fn a_unit_commits_only_with_its_audit_record() {
        let url = crate::testing::fresh_url(Backend::Sqlite).await;
        let store = SqlStore::open(&url).await.unwrap();
        let nurse = Actor::system(Role::Nurse);
        // The role is checked before anything starts.
        assert!(matches!(
            store.write(&nurse, Permission::UserAdmin).await,
            Err(StoreError::Forbidden { .. })
        ));
        // A unit that changed something but recorded nothing is refused and rolled back.
        let admin = Actor::system(Role::Administrator);
        let mut tx = store.write(&admin, Permission::UserAdmin).await.unwrap();
        sqlx::query("DELETE FROM web_sessions")
            .execute(tx.conn())
            .await
            .unwrap();
        assert!(matches!(tx.commit().await, Err(StoreError::Corrupt(_))));
        // With its record it commits, and the chain holds.
        let mut tx = store.write(&admin, Permission::UserAdmin).await.unwrap();
        tx.audit(&AuditEvent::new("test.unit", None, ""))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(store.verify_audit().await.unwrap().broken.is_none());
    }
}
