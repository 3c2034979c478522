//! The SQL implementation of [`Store`], over sqlx's `Any` driver so that one body of queries
//! serves SQLite and PostgreSQL. Only the DDL differs (`migrations/sqlite`, `migrations/postgres`);
//! every query here uses `$n` placeholders, `RETURNING` and types both backends share
//! (integers, floats, text). Times are RFC 3339 text; instants compared in SQL are epoch seconds.

use crate::{
    ApiToken, AuditFilter, AuditVerification, Backend, ClinicalRecord, NewUser, RecordKind, Result,
    SiteSettingsVersion, Store, StoreError, User, WebSession, require,
};
use crate::{RecordChange, SettingsProposal, SiteProtocol};
use async_trait::async_trait;
use ketcare_core::audit::{AuditEvent, AuditRecord, HashInput, record_hash, verify_chain};
use ketcare_core::patient::{
    Guardian, Measured, NewGuardian, NewPatient, Patient, PatientSummary, Relationship, Sex,
};
use ketcare_core::units::{HeightCm, WeightKg};
use ketcare_core::{Actor, ApiTokenId, GuardianId, PatientId, Permission, Role, UserId};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// Queues this store's vital-sign writes on SQLite (see `record_vital`): one queue per
    /// store, so two stores in one process (tests, tools) do not wait on each other.
    pub(crate) vital_writes: tokio::sync::Mutex<()>,
}

pub(crate) type Tx = Transaction<'static, Any>;

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

impl SqlStore {
    /// Connects, applies pending migrations, and returns the store.
    pub async fn open(url: &str) -> Result<Self> {
        let backend = Backend::from_url(url)?;
        sqlx::any::install_default_drivers();
        let mut options = AnyPoolOptions::new();
        if backend == Backend::Sqlite {
            options = options
                .max_connections(4)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
                        )
                        .await?;
                        Ok(())
                    })
                });
        } else {
            options = options.max_connections(8);
        }
        let pool = options.connect(url).await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self {
            pool,
            backend,
            vital_writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Starts a write transaction. Its first statement locks the audit head row, so writers are
    /// serialised on both backends (SQLite takes its write lock here, PostgreSQL a row lock).
    async fn begin_write(&self) -> Result<Tx> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// One audited unit of work: the role was checked, the write transaction holds the audit-chain
/// lock, and it commits only after at least one audit record was appended to it. Dropping it
/// rolls back. Every change of the foundation goes through [`SqlStore::write`]; every audited
/// read through [`SqlStore::read_audited`] (the same unit, so a read is recorded or not done).
pub(crate) struct Unit<'a> {
    tx: Tx,
    actor: &'a Actor,
    audited: bool,
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
        append_audit(&mut self.tx, self.actor, event).await?;
        self.audited = true;
        Ok(())
    }

    /// Commits; a unit that wrote no audit record is refused (and rolled back).
    pub(crate) async fn commit(self) -> Result<()> {
        if !self.audited {
            return Err(StoreError::Corrupt(
                "a unit of work without an audit record was not committed".into(),
            ));
        }
        self.tx.commit().await?;
        Ok(())
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
        Ok(Unit {
            tx: self.begin_write().await?,
            actor,
            audited: false,
        })
    }
}

/// Appends one audit record inside `tx` (which must have come from `begin_write`); only a
/// [`Unit`] calls it, so a record is never appended outside one.
async fn append_audit(tx: &mut Tx, actor: &Actor, event: &AuditEvent) -> Result<()> {
    let (prev_seq, prev_hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
    let seq = prev_seq + 1;
    let at = now_rfc3339();
    let role = actor.role.map(Role::as_str).unwrap_or("");
    let user_id = actor.user_id.map(UserId::get);
    let hash = record_hash(&HashInput {
        seq,
        at: &at,
        user_id,
        username: &actor.username,
        role,
        address: &actor.address,
        action: &event.action,
        patient_id: event.patient_id,
        detail: &event.detail,
        prev_hash: &prev_hash,
    });
    sqlx::query(
        "INSERT INTO audit_log (seq, at, user_id, username, role, address, action, patient_id, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(seq)
    .bind(&at)
    .bind(user_id)
    .bind(&actor.username)
    .bind(role)
    .bind(&actor.address)
    .bind(&event.action)
    .bind(event.patient_id)
    .bind(&event.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} `{value}`"))
}

/// A `users` row as stored.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    role: String,
    password_hash: String,
    failed_logins: i64,
    locked_until: Option<i64>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(User {
            id: UserId::new(r.id),
            username: r.username,
            display_name: r.display_name,
            role: Role::parse(&r.role).ok_or_else(|| corrupt("role", &r.role))?,
            password_hash: r.password_hash,
            failed_logins: r.failed_logins,
            locked_until: r.locked_until,
        })
    }
}

macro_rules! user_columns {
    () => {
        "id, username, display_name, role, password_hash, failed_logins, locked_until"
    };
}

macro_rules! patient_columns {
    () => {
        "id, mrn, given_name, family_name, date_of_birth, sex, weight_kg, weight_measured_on, height_cm, height_measured_on, indications, psychiatric_history, substance_use_history, medications, allergies, phone, email, updated_at"
    };
}

fn parse_date(col: &str, s: &str) -> Result<jiff::civil::Date> {
    s.parse().map_err(|_| corrupt(col, s))
}

fn parse_list(col: &str, s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|_| corrupt(col, s))
}

fn parse_sex(s: &str) -> Result<Sex> {
    Sex::parse(s).ok_or_else(|| corrupt("sex", s))
}

/// A value with the day it was measured, when both are stored.
fn measured<T, E>(
    col: &str,
    value: Option<f64>,
    on_col: &str,
    on: Option<String>,
    make: impl Fn(f64) -> std::result::Result<T, E>,
) -> Result<Option<Measured<T>>> {
    let on = on.map(|d| parse_date(on_col, &d)).transpose()?;
    Ok(match (value, on) {
        (Some(v), Some(on)) => Some(Measured {
            value: make(v).map_err(|_| corrupt(col, &v.to_string()))?,
            measured_on: on,
        }),
        _ => None,
    })
}

/// A `patients` row as stored (`patient_columns!`).
#[derive(sqlx::FromRow)]
struct PatientRow {
    mrn: String,
    given_name: String,
    family_name: String,
    date_of_birth: String,
    sex: String,
    weight_kg: Option<f64>,
    weight_measured_on: Option<String>,
    height_cm: Option<f64>,
    height_measured_on: Option<String>,
    indications: String,
    psychiatric_history: String,
    substance_use_history: String,
    medications: String,
    allergies: String,
    phone: String,
    email: String,
    updated_at: String,
}

impl PatientRow {
    /// The patient's record and when it was last changed.
    fn into_record(self) -> Result<(NewPatient, String)> {
        let record = NewPatient {
            weight: measured(
                "weight_kg",
                self.weight_kg,
                "weight_measured_on",
                self.weight_measured_on,
                WeightKg::new,
            )?,
            height: measured(
                "height_cm",
                self.height_cm,
                "height_measured_on",
                self.height_measured_on,
                HeightCm::new,
            )?,
            date_of_birth: parse_date("date_of_birth", &self.date_of_birth)?,
            sex: parse_sex(&self.sex)?,
            indications: parse_list("indications", &self.indications)?,
            medications: parse_list("medications", &self.medications)?,
            allergies: parse_list("allergies", &self.allergies)?,
            mrn: self.mrn,
            given_name: self.given_name,
            family_name: self.family_name,
            psychiatric_history: self.psychiatric_history,
            substance_use_history: self.substance_use_history,
            phone: self.phone,
            email: self.email,
        };
        Ok((record, self.updated_at))
    }
}

/// A `guardians` row as stored.
#[derive(sqlx::FromRow)]
struct GuardianRow {
    id: i64,
    name: String,
    relationship: String,
    phone: String,
    email: String,
}

impl TryFrom<GuardianRow> for Guardian {
    type Error = StoreError;
    fn try_from(g: GuardianRow) -> Result<Self> {
        Ok(Guardian {
            id: GuardianId::new(g.id),
            record: NewGuardian {
                name: g.name,
                relationship: Relationship::parse(&g.relationship)
                    .ok_or_else(|| corrupt("relationship", &g.relationship))?,
                phone: g.phone,
                email: g.email,
            },
        })
    }
}

/// A patient as a search result lists them.
#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: i64,
    mrn: String,
    given_name: String,
    family_name: String,
    date_of_birth: String,
    sex: String,
}

impl TryFrom<SummaryRow> for PatientSummary {
    type Error = StoreError;
    fn try_from(r: SummaryRow) -> Result<Self> {
        Ok(PatientSummary {
            id: PatientId::new(r.id),
            date_of_birth: parse_date("date_of_birth", &r.date_of_birth)?,
            sex: parse_sex(&r.sex)?,
            mrn: r.mrn,
            given_name: r.given_name,
            family_name: r.family_name,
        })
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Binds the sixteen patient columns, in table order, shared by insert and update.
trait BindPatient<'q> {
    fn bind_patient(self, p: &'q NewPatient) -> Self;
}

impl<'q> BindPatient<'q> for AnyQuery<'q> {
    fn bind_patient(self, p: &'q NewPatient) -> Self {
        self.bind(&p.mrn)
            .bind(&p.given_name)
            .bind(&p.family_name)
            .bind(p.date_of_birth.to_string())
            .bind(p.sex.as_str())
            .bind(p.weight.map(|w| w.value.kg()))
            .bind(p.weight.map(|w| w.measured_on.to_string()))
            .bind(p.height.map(|h| h.value.cm()))
            .bind(p.height.map(|h| h.measured_on.to_string()))
            .bind(json_list(&p.indications))
            .bind(&p.psychiatric_history)
            .bind(&p.substance_use_history)
            .bind(json_list(&p.medications))
            .bind(json_list(&p.allergies))
            .bind(&p.phone)
            .bind(&p.email)
    }
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(crate) async fn load_patient(tx: &mut Tx, id: PatientId) -> Result<Patient> {
    let (record, updated_at) = sqlx::query_as::<_, PatientRow>(concat!(
        "SELECT ",
        patient_columns!(),
        " FROM patients WHERE id = $1"
    ))
    .bind(id.get())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("patient {id}"),
    })?
    .into_record()?;
    let guardians = sqlx::query_as::<_, GuardianRow>(
        "SELECT id, name, relationship, phone, email FROM guardians WHERE patient_id = $1 ORDER BY id",
    )
    .bind(id.get())
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(Guardian::try_from)
    .collect::<Result<Vec<_>>>()?;
    Ok(Patient {
        id,
        record,
        guardians,
        updated_at,
    })
}

async fn mrn_taken(tx: &mut Tx, mrn: &str, except: Option<PatientId>) -> Result<bool> {
    let row = sqlx::query("SELECT id FROM patients WHERE mrn = $1")
        .bind(mrn)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        None => false,
        Some(r) => Some(PatientId::new(r.try_get("id")?)) != except,
    })
}

fn mrn_conflict() -> StoreError {
    StoreError::Invalid(ketcare_core::FieldErrors::single(
        "mrn",
        "this MRN belongs to another patient",
    ))
}

/// Lists which fields differ, for the audit detail (names only, never values).
fn changed_fields(old: &NewPatient, new: &NewPatient) -> String {
    let mut out = Vec::new();
    macro_rules! cmp {
        ($($f:ident),*) => { $( if old.$f != new.$f { out.push(stringify!($f)); } )* };
    }
    cmp!(
        mrn,
        given_name,
        family_name,
        date_of_birth,
        sex,
        weight,
        height,
        indications,
        psychiatric_history,
        substance_use_history,
        medications,
        allergies,
        phone,
        email
    );
    if out.is_empty() {
        "no change".into()
    } else {
        format!("changed: {}", out.join(", "))
    }
}

macro_rules! record_columns {
    () => {
        "id, patient_id, kind, state, body, revision, created_by, created_at, updated_at"
    };
}

/// A `clinical_records` row as stored (`record_columns!`).
#[derive(sqlx::FromRow)]
struct ClinicalRow {
    id: i64,
    patient_id: i64,
    kind: String,
    state: String,
    body: String,
    revision: i64,
    created_by: String,
    created_at: String,
    updated_at: String,
}

impl TryFrom<ClinicalRow> for ClinicalRecord {
    type Error = StoreError;
    fn try_from(r: ClinicalRow) -> Result<Self> {
        Ok(ClinicalRecord {
            id: r.id,
            patient_id: PatientId::new(r.patient_id),
            kind: match r.kind.as_str() {
                "screening" => RecordKind::Screening,
                "dose_order" => RecordKind::DoseOrder,
                other => return Err(corrupt("kind", other)),
            },
            state: r.state,
            body: r.body,
            revision: r.revision,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

async fn load_record(tx: &mut Tx, kind: RecordKind, id: i64) -> Result<ClinicalRecord> {
    sqlx::query_as::<_, ClinicalRow>(concat!(
        "SELECT ",
        record_columns!(),
        " FROM clinical_records WHERE id = $1 AND kind = $2"
    ))
    .bind(id)
    .bind(kind.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .map(ClinicalRecord::try_from)
    .transpose()?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("{} {id}", kind.as_str().replace('_', " ")),
    })
}

/// A `settings_proposals` row as stored.
#[derive(sqlx::FromRow)]
struct ProposalRow {
    id: i64,
    body: String,
    reason: String,
    state: String,
    proposed_by: String,
    decided_by: Option<String>,
    created_at: String,
}

impl From<ProposalRow> for SettingsProposal {
    fn from(r: ProposalRow) -> Self {
        SettingsProposal {
            id: r.id,
            body: r.body,
            reason: r.reason,
            state: r.state,
            proposed_by: r.proposed_by,
            decided_by: r.decided_by,
            created_at: r.created_at,
        }
    }
}

const PROPOSAL_SELECT: &str =
    "SELECT id, body, reason, state, proposed_by, decided_by, created_at FROM settings_proposals";

async fn insert_settings_version(
    tx: &mut Unit<'_>,
    body: &str,
    reason: &str,
) -> Result<SiteSettingsVersion> {
    let actor = tx.actor;
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM site_settings")
        .fetch_one(tx.conn())
        .await?;
    let version: i64 = row.try_get::<i64, _>("v")? + 1;
    let saved = SiteSettingsVersion {
        version,
        body: body.to_owned(),
        set_by: actor.username.clone(),
        set_at: now_rfc3339(),
        reason: reason.trim().to_owned(),
    };
    sqlx::query("INSERT INTO site_settings (version, body, set_by, set_at, reason) VALUES ($1, $2, $3, $4, $5)")
        .bind(saved.version)
        .bind(&saved.body)
        .bind(&saved.set_by)
        .bind(&saved.set_at)
        .bind(&saved.reason)
        .execute(tx.conn())
        .await?;
    tx.audit(&AuditEvent::new(
        "settings.update",
        None,
        format!("version {version}: {}", saved.reason),
    ))
    .await?;
    Ok(saved)
}

const KNOWN_TABLES: [&str; 14] = [
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
];

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    async fn create_user(&self, actor: &Actor, user: &NewUser) -> Result<User> {
        require(actor, Permission::UserAdmin)?;
        let mut errors = ketcare_core::FieldErrors::new();
        let username = user.username.trim();
        if username.is_empty()
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            errors.push("username", "use letters, digits, '.', '_' or '-'");
        }
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        let mut tx = self.unit(actor).await?;
        let exists = sqlx::query("SELECT id FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "username",
                "this username is taken",
            )));
        }
        let row = sqlx::query_as::<_, UserRow>(concat!(
            "INSERT INTO users (username, display_name, role, password_hash, failed_logins, created_at)
             VALUES ($1, $2, $3, $4, 0, $5) RETURNING ",
            user_columns!()
        ))
        .bind(username)
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        let created = User::try_from(row)?;
        tx.audit(&AuditEvent::new(
            "user.create",
            None,
            format!("user {} ({})", created.username, created.role),
        ))
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        .map(User::try_from)
        .transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?
        .map(User::try_from)
        .transpose()
    }

    async fn list_users(&self, actor: &Actor) -> Result<Vec<User>> {
        require(actor, Permission::UserAdmin)?;
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(User::try_from)
        .collect()
    }

    async fn login_failed(
        &self,
        user: &User,
        address: &str,
        lock_until: Option<i64>,
    ) -> Result<()> {
        let actor = Actor::user(user.id, &user.username, user.role, address);
        let mut tx = self.unit(&actor).await?;
        sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1, locked_until = COALESCE($1, locked_until) WHERE id = $2",
        )
        .bind(lock_until)
        .bind(user.id.get())
        .execute(&mut **tx)
        .await?;
        let detail = match lock_until {
            Some(_) => "wrong password; account locked",
            None => "wrong password",
        };
        tx.audit(&AuditEvent::new("login.failed", None, detail))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn login_succeeded(&self, user: &User, address: &str) -> Result<()> {
        let actor = Actor::user(user.id, &user.username, user.role, address);
        let mut tx = self.unit(&actor).await?;
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user.id.get())
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new("login.ok", None, "")).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        // Not a unit of work: sign-in cookie bookkeeping, audited by the sign-in itself
        // (`login_succeeded`, `login.ok`); the sign-out that ends a session is audited.
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user.get())
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        // Expired sessions are of no use to anyone; drop them while we are here.
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: i64) -> Result<Option<WebSession>> {
        let Some((user_id, csrf_token, expires_at)) = sqlx::query_as::<_, (i64, String, i64)>(
            "SELECT user_id, csrf_token, expires_at FROM web_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let user = self.user_by_id(UserId::new(user_id)).await?;
        Ok(user.map(|user| WebSession {
            user,
            csrf_token,
            expires_at,
        }))
    }

    async fn end_session(&self, token_hash: &str, actor: &Actor) -> Result<()> {
        let mut tx = self.unit(actor).await?;
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new("logout", None, "")).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_api_token(
        &self,
        actor: &Actor,
        user: UserId,
        token_hash: &str,
        label: &str,
    ) -> Result<ApiToken> {
        let mut tx = self.write(actor, Permission::UserAdmin).await?;
        let owner = sqlx::query("SELECT username FROM users WHERE id = $1")
            .bind(user.get())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("user {user}"),
            })?;
        let owner: String = owner.try_get("username")?;
        let created_at = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user.get())
        .bind(token_hash)
        .bind(label)
        .bind(&created_at)
        .fetch_one(&mut **tx)
        .await?;
        let id = ApiTokenId::new(row.try_get("id")?);
        tx.audit(&AuditEvent::new(
            "token.create",
            None,
            format!("token {id} for {owner}: {label}"),
        ))
        .await?;
        tx.commit().await?;
        Ok(ApiToken {
            id,
            user_id: user,
            label: label.to_owned(),
            created_at,
            revoked_at: None,
        })
    }

    async fn api_token_user(&self, token_hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT user_id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => self.user_by_id(UserId::new(r.try_get("user_id")?)).await,
            None => Ok(None),
        }
    }

    async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>> {
        Ok(sqlx::query_as::<_, TokenRow>("SELECT id, user_id, label, created_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id")
            .bind(user.get())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(ApiToken::from)
            .collect())
    }

    async fn revoke_api_token(&self, actor: &Actor, id: ApiTokenId) -> Result<()> {
        let mut tx = self.write(actor, Permission::UserAdmin).await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_rfc3339())
        .bind(id.get())
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: format!("active API token {id}"),
            });
        }
        tx.audit(&AuditEvent::new(
            "token.revoke",
            None,
            format!("token {id}"),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_patient(&self, actor: &Actor, p: &NewPatient) -> Result<Patient> {
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        if mrn_taken(&mut tx, &p.mrn, None).await? {
            return Err(mrn_conflict());
        }
        let now = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO patients (mrn, given_name, family_name, date_of_birth, sex, weight_kg, weight_measured_on,
                height_cm, height_measured_on, indications, psychiatric_history, substance_use_history, medications,
                allergies, phone, email, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) RETURNING id",
        )
        .bind_patient(p)
        .bind(&now)
        .fetch_one(&mut **tx)
        .await?;
        let id = PatientId::new(row.try_get("id")?);
        tx.audit(&AuditEvent::new(
            "patient.create",
            Some(id.get()),
            format!("MRN {}", p.mrn),
        ))
        .await?;
        let created = load_patient(&mut tx, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn update_patient(
        &self,
        actor: &Actor,
        id: PatientId,
        p: &NewPatient,
    ) -> Result<Patient> {
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        let old = load_patient(&mut tx, id).await?;
        if mrn_taken(&mut tx, &p.mrn, Some(id)).await? {
            return Err(mrn_conflict());
        }
        sqlx::query(
            "UPDATE patients SET mrn = $1, given_name = $2, family_name = $3, date_of_birth = $4, sex = $5,
                weight_kg = $6, weight_measured_on = $7, height_cm = $8, height_measured_on = $9, indications = $10,
                psychiatric_history = $11, substance_use_history = $12, medications = $13, allergies = $14,
                phone = $15, email = $16, updated_at = $17
             WHERE id = $18",
        )
        .bind_patient(p)
        .bind(now_rfc3339())
        .bind(id.get())
        .execute(&mut **tx)
        .await?;
        tx.audit(&AuditEvent::new(
            "patient.update",
            Some(id.get()),
            changed_fields(&old.record, p),
        ))
        .await?;
        let updated = load_patient(&mut tx, id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn get_patient(&self, actor: &Actor, id: PatientId) -> Result<Patient> {
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let patient = load_patient(&mut tx, id).await?;
        tx.audit(&AuditEvent::new("patient.read", Some(id.get()), ""))
            .await?;
        tx.commit().await?;
        Ok(patient)
    }

    async fn search_patients(
        &self,
        actor: &Actor,
        query: &str,
        limit: i64,
    ) -> Result<Vec<PatientSummary>> {
        let q = query.trim().to_lowercase();
        let like = format!("%{}%", q.replace(['\\', '%', '_'], ""));
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let found = sqlx::query_as::<_, SummaryRow>(
            "SELECT id, mrn, given_name, family_name, date_of_birth, sex FROM patients
             WHERE $1 = '' OR lower(family_name) LIKE $2 OR lower(given_name) LIKE $2
                OR lower(given_name || ' ' || family_name) LIKE $2 OR lower(mrn) = $1 OR date_of_birth = $1
             ORDER BY family_name, given_name, id LIMIT $3",
        )
        .bind(&q)
        .bind(&like)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(PatientSummary::try_from)
        .collect::<Result<Vec<_>>>()?;
        tx.audit(&AuditEvent::new(
            "patient.search",
            None,
            format!("query `{}`: {} found", query.trim(), found.len()),
        ))
        .await?;
        // Each patient shown in a result list is an access to that patient's record.
        for p in &found {
            tx.audit(&AuditEvent::new(
                "patient.listed",
                Some(p.id.get()),
                "search result",
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn add_guardian(
        &self,
        actor: &Actor,
        patient: PatientId,
        g: &NewGuardian,
    ) -> Result<Guardian> {
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        load_patient(&mut tx, patient).await?;
        let row = sqlx::query(
            "INSERT INTO guardians (patient_id, name, relationship, phone, email, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(patient.get())
        .bind(&g.name)
        .bind(g.relationship.as_str())
        .bind(&g.phone)
        .bind(&g.email)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        let id = GuardianId::new(row.try_get("id")?);
        tx.audit(&AuditEvent::new(
            "guardian.add",
            Some(patient.get()),
            format!("guardian {id} ({})", g.relationship.as_str()),
        ))
        .await?;
        tx.commit().await?;
        Ok(Guardian {
            id,
            record: g.clone(),
        })
    }

    async fn remove_guardian(
        &self,
        actor: &Actor,
        patient: PatientId,
        guardian: GuardianId,
    ) -> Result<()> {
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        let done = sqlx::query("DELETE FROM guardians WHERE id = $1 AND patient_id = $2")
            .bind(guardian.get())
            .bind(patient.get())
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: format!("guardian {guardian} of patient {patient}"),
            });
        }
        tx.audit(&AuditEvent::new(
            "guardian.remove",
            Some(patient.get()),
            format!("guardian {guardian}"),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit(&self, actor: &Actor, event: AuditEvent) -> Result<()> {
        let mut tx = self.unit(actor).await?;
        tx.audit(&event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_records(&self, actor: &Actor, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        require(actor, Permission::AuditRead)?;
        let rows = sqlx::query_as::<_, AuditRow>(
            "SELECT seq, at, user_id, username, role, address, action, patient_id, detail, prev_hash, hash
             FROM audit_log
             WHERE ($1 = '' OR username = $1) AND ($2 = '' OR action LIKE $3)
               AND ($4 = 0 OR patient_id = $5) AND seq < $6
             ORDER BY seq DESC LIMIT $7",
        )
        .bind(f.username.as_deref().unwrap_or(""))
        .bind(f.action.as_deref().unwrap_or(""))
        .bind(format!("{}%", f.action.as_deref().unwrap_or("")))
        .bind(i64::from(f.patient_id.is_some()))
        .bind(f.patient_id.unwrap_or(0))
        .bind(f.before_seq.unwrap_or(i64::MAX))
        .bind(if f.limit > 0 { f.limit } else { 100 })
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AuditRecord::from).collect())
    }

    async fn verify_audit(&self) -> Result<AuditVerification> {
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        let records: Vec<AuditRecord> = sqlx::query_as::<_, AuditRow>(
            "SELECT seq, at, user_id, username, role, address, action, patient_id, detail, prev_hash, hash
             FROM audit_log ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(AuditRecord::from)
        .collect();
        let head_ref = head.as_ref().map(|(s, h)| (*s, h.as_str()));
        // An empty chain has the genesis head (seq 0); treat that as "no head".
        let head_ref = head_ref.filter(|(s, _)| *s > 0);
        Ok(match verify_chain(&records, head_ref) {
            Ok(n) => AuditVerification {
                records: n,
                broken: None,
            },
            Err(b) => AuditVerification {
                records: records.len() as u64,
                broken: Some(b),
            },
        })
    }

    async fn site_settings(&self) -> Result<Option<SiteSettingsVersion>> {
        Ok(sqlx::query_as::<_, SettingsRow>("SELECT version, body, set_by, set_at, reason FROM site_settings ORDER BY version DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .map(SiteSettingsVersion::from))
    }

    async fn save_site_settings(
        &self,
        actor: &Actor,
        body: &str,
        reason: &str,
    ) -> Result<SiteSettingsVersion> {
        require(actor, Permission::SiteSettingsWrite)?;
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "reason",
                "say why the settings change",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let saved = insert_settings_version(&mut tx, body, reason).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn propose_settings_change(
        &self,
        actor: &Actor,
        body: &str,
        reason: &str,
    ) -> Result<SettingsProposal> {
        require(actor, Permission::SiteSettingsWrite)?;
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "reason",
                "say why the limit changes",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let row = sqlx::query(
            "INSERT INTO settings_proposals (body, reason, state, proposed_by, created_at) VALUES ($1, $2, 'pending', $3, $4) RETURNING id",
        )
        .bind(body)
        .bind(reason.trim())
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        tx.audit(&AuditEvent::new(
            "settings.propose",
            None,
            format!("proposal {id}: {}", reason.trim()),
        ))
        .await?;
        let p: SettingsProposal = sqlx::query_as::<_, ProposalRow>(sqlx::AssertSqlSafe(format!(
            "{PROPOSAL_SELECT} WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .into();
        tx.commit().await?;
        Ok(p)
    }

    async fn settings_proposals(&self) -> Result<Vec<SettingsProposal>> {
        Ok(
            sqlx::query_as::<_, ProposalRow>(sqlx::AssertSqlSafe(format!(
                "{PROPOSAL_SELECT} ORDER BY id DESC"
            )))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(SettingsProposal::from)
            .collect(),
        )
    }

    async fn settings_proposal(&self, id: i64) -> Result<SettingsProposal> {
        sqlx::query_as::<_, ProposalRow>(sqlx::AssertSqlSafe(format!(
            "{PROPOSAL_SELECT} WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(SettingsProposal::from)
        .ok_or_else(|| StoreError::NotFound {
            what: format!("settings proposal {id}"),
        })
    }

    async fn approve_settings_change(
        &self,
        actor: &Actor,
        id: i64,
        new_settings: &str,
    ) -> Result<SiteSettingsVersion> {
        let mut tx = self.write(actor, Permission::SiteSettingsWrite).await?;
        let p = sqlx::query_as::<_, ProposalRow>(sqlx::AssertSqlSafe(format!(
            "{PROPOSAL_SELECT} WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(SettingsProposal::from)
        .ok_or_else(|| StoreError::NotFound {
            what: format!("settings proposal {id}"),
        })?;
        if p.state != "pending" {
            return Err(StoreError::Conflict(format!(
                "proposal {id} is already {}",
                p.state
            )));
        }
        if p.proposed_by == actor.username {
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "approver",
                "a second administrator, not the one who proposed it, must approve",
            )));
        }
        sqlx::query("UPDATE settings_proposals SET state = 'approved', decided_by = $1, decided_at = $2 WHERE id = $3")
            .bind(&actor.username)
            .bind(now_rfc3339())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new(
            "settings.approve",
            None,
            format!("proposal {id} by {}", p.proposed_by),
        ))
        .await?;
        let saved = insert_settings_version(
            &mut tx,
            new_settings,
            &format!("approved proposal {id}: {}", p.reason),
        )
        .await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn site_protocols(&self) -> Result<Vec<SiteProtocol>> {
        Ok(sqlx::query_as::<_, ProtocolRow>(
            "SELECT id, file_name, body, added_by, added_at FROM site_protocols s
             WHERE id = (SELECT MAX(id) FROM site_protocols t WHERE t.file_name = s.file_name) ORDER BY file_name",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(SiteProtocol::from)
        .collect())
    }

    async fn add_site_protocol(
        &self,
        actor: &Actor,
        file_name: &str,
        body: &str,
    ) -> Result<SiteProtocol> {
        let mut tx = self.write(actor, Permission::SiteSettingsWrite).await?;
        let added_at = now_rfc3339();
        let row = sqlx::query("INSERT INTO site_protocols (file_name, body, added_by, added_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(file_name)
            .bind(body)
            .bind(&actor.username)
            .bind(&added_at)
            .fetch_one(&mut **tx)
            .await?;
        let id: i64 = row.try_get("id")?;
        tx.audit(&AuditEvent::new(
            "protocol.add",
            None,
            format!("site protocol file {file_name} (row {id})"),
        ))
        .await?;
        tx.commit().await?;
        Ok(SiteProtocol {
            id,
            file_name: file_name.to_owned(),
            body: body.to_owned(),
            added_by: actor.username.clone(),
            added_at,
        })
    }

    async fn create_record(
        &self,
        actor: &Actor,
        patient: PatientId,
        change: &RecordChange<'_>,
    ) -> Result<ClinicalRecord> {
        let RecordChange {
            permission,
            kind,
            state,
            body,
            action,
        } = *change;
        let mut tx = self.write(actor, permission).await?;
        load_patient(&mut tx, patient).await?;
        let now = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO clinical_records (patient_id, kind, state, body, revision, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 1, $5, $6, $6) RETURNING id",
        )
        .bind(patient.get())
        .bind(kind.as_str())
        .bind(state)
        .bind(body)
        .bind(&actor.username)
        .bind(&now)
        .fetch_one(&mut **tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        tx.audit(&AuditEvent::new(
            action,
            Some(patient.get()),
            format!("{} {id}: {state}", kind.as_str()),
        ))
        .await?;
        let created = load_record(&mut tx, kind, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn record(&self, actor: &Actor, kind: RecordKind, id: i64) -> Result<ClinicalRecord> {
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let r = load_record(&mut tx, kind, id).await?;
        tx.audit(&AuditEvent::new(
            &format!("{}.read", kind.as_str()),
            Some(r.patient_id.get()),
            format!("{} {id}", kind.as_str()),
        ))
        .await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn update_record(
        &self,
        actor: &Actor,
        id: i64,
        revision: i64,
        change: &RecordChange<'_>,
    ) -> Result<ClinicalRecord> {
        let RecordChange {
            permission,
            kind,
            state,
            body,
            action,
        } = *change;
        let mut tx = self.write(actor, permission).await?;
        let current = load_record(&mut tx, kind, id).await?;
        if current.revision != revision {
            return Err(StoreError::Conflict(format!(
                "{} {id} changed since it was read (revision {revision}, now {}); reload it",
                kind.as_str(),
                current.revision
            )));
        }
        sqlx::query("UPDATE clinical_records SET state = $1, body = $2, revision = revision + 1, updated_at = $3 WHERE id = $4")
            .bind(state)
            .bind(body)
            .bind(now_rfc3339())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new(
            action,
            Some(current.patient_id.get()),
            format!("{} {id}: {} -> {state}", kind.as_str(), current.state),
        ))
        .await?;
        let updated = load_record(&mut tx, kind, id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn patient_records(
        &self,
        actor: &Actor,
        patient: PatientId,
        kind: RecordKind,
    ) -> Result<Vec<ClinicalRecord>> {
        require(actor, Permission::PatientRead)?;
        sqlx::query_as::<_, ClinicalRow>(concat!(
            "SELECT ",
            record_columns!(),
            " FROM clinical_records WHERE patient_id = $1 AND kind = $2 ORDER BY id DESC"
        ))
        .bind(patient.get())
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(ClinicalRecord::try_from)
        .collect()
    }

    async fn execute_raw(&self, sql: &str) -> Result<u64> {
        Ok(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await?
            .rows_affected())
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

/// An `audit_log` row as stored.
#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: String,
    user_id: Option<i64>,
    username: String,
    role: String,
    address: String,
    action: String,
    patient_id: Option<i64>,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        AuditRecord {
            seq: r.seq,
            at: r.at,
            user_id: r.user_id,
            username: r.username,
            role: r.role,
            address: r.address,
            action: r.action,
            patient_id: r.patient_id,
            detail: r.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// An `api_tokens` row as listed (never the hash).
#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    user_id: i64,
    label: String,
    created_at: String,
    revoked_at: Option<String>,
}

impl From<TokenRow> for ApiToken {
    fn from(r: TokenRow) -> Self {
        ApiToken {
            id: ApiTokenId::new(r.id),
            user_id: UserId::new(r.user_id),
            label: r.label,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A `site_settings` row as stored.
#[derive(sqlx::FromRow)]
struct SettingsRow {
    version: i64,
    body: String,
    set_by: String,
    set_at: String,
    reason: String,
}

impl From<SettingsRow> for SiteSettingsVersion {
    fn from(r: SettingsRow) -> Self {
        SiteSettingsVersion {
            version: r.version,
            body: r.body,
            set_by: r.set_by,
            set_at: r.set_at,
            reason: r.reason,
        }
    }
}

/// A `site_protocols` row as stored.
#[derive(sqlx::FromRow)]
struct ProtocolRow {
    id: i64,
    file_name: String,
    body: String,
    added_by: String,
    added_at: String,
}

impl From<ProtocolRow> for SiteProtocol {
    fn from(r: ProtocolRow) -> Self {
        SiteProtocol {
            id: r.id,
            file_name: r.file_name,
            body: r.body,
            added_by: r.added_by,
            added_at: r.added_at,
        }
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
