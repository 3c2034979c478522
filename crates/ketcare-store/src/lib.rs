//! ketcare's store: the one [`Store`] trait every edge talks to, and [`SqlStore`], which keeps the
//! data in an embedded SQLite file or in PostgreSQL, chosen by the URL's scheme.
//!
//! Invariants:
//! - Every change is one transaction; the audit record describing it commits with it or not at all
//!   (a unit of work, `SqlStore::write`/`read_audited`/`unit`, commits only with its record).
//! - Every read or write of patient data checks the actor's role here too (defence in depth behind
//!   the web's route rules) and appends an audit record.
//! - Every write transaction first locks the audit chain's head row, which serialises writers on
//!   both backends and keeps the chain linear.
#![forbid(unsafe_code)]

pub mod bus;
pub mod care_plan;
pub mod jobs;
pub mod measures;
mod ops;
pub mod outreach;
pub mod registry;
pub mod session_ops;
mod sessions;
pub mod sites;
mod sql;
pub mod status;
pub mod synthetic;
/// Test-only hooks: fresh databases and fixtures (the `testing` feature; always in this crate's
/// own unit tests).
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod therapy;

pub use care_plan::CarePlanStore;
pub use measures::MeasuresStore;
pub use ops::{
    BalanceClaim, BookOutcome, Chair, LedgerVerification, NewConsentDocument, NewCourse,
    NewSignature, OpsStore, TransferDue,
};
pub use outreach::OutreachStore;
pub use registry::{RegistryStore, Researched};
pub use sessions::{
    MessageKey, MonitorMatch, SessionRecord, SessionStore, StoredVital, VitalOutcome,
};
pub use sites::{NewSite, Site, SiteScope, SiteStore};
pub use sql::SqlStore;
pub use status::{AlertStatus, LinkStatus, ProposalState};
pub use therapy::TherapyStore;

use async_trait::async_trait;
use ketcare_core::audit::{AuditEvent, AuditRecord, ChainBreak};
use ketcare_core::patient::{
    Guardian, NewGuardian, NewPatient, Patient, PatientSummary, VisiblePatient,
};
use ketcare_core::{
    Actor, ApiTokenId, FieldErrors, GuardianId, PatientId, Permission, RecordId, Role, UserId,
};

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Chooses the backend from a database URL's scheme.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Config(format!(
                "database URL must start with sqlite: or postgres:, got `{}`",
                url.split(':').next().unwrap_or("")
            )))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("your role may not do this (needs {permission:?})")]
    Forbidden { permission: Permission },
    #[error("{0}")]
    Conflict(String),
    #[error("invalid input: {0}")]
    Invalid(FieldErrors),
    #[error("configuration: {0}")]
    Config(String),
    #[error("stored data is not as ketcare wrote it: {0}")]
    Corrupt(String),
    /// More arrived than the store can commit: the bounded queue is full and nothing was
    /// written (the sender may send again; see [`StoreOptions::vitals_queue`]).
    #[error("{0}")]
    Busy(String),
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    /// A status column whose text is none of its enum's values is corrupt data, not a database
    /// failure.
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::ColumnDecode { source, .. } = &e
            && let Some(unknown) = source.downcast_ref::<status::Unknown>()
        {
            return StoreError::Corrupt(unknown.to_string());
        }
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A staff account as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
    pub failed_logins: i64,
    /// Epoch seconds until which a witness sign-off is refused (repeated wrong witness
    /// passwords); cleared by an administrator's unlock.
    pub locked_until: Option<i64>,
    /// Disabled by an administrator: cannot sign in; its sessions and tokens were ended.
    pub disabled: bool,
    /// Signed in with a temporary password an administrator set: must choose a new one first.
    pub must_change_password: bool,
    /// Has a second factor (TOTP): a sign-in needs a code or a recovery code after the password.
    pub second_factor: bool,
}

/// An administrator's change to an account ([`Store::change_account`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// Cannot sign in; every browser session ends and every API token is revoked.
    Disable,
    Enable,
    /// Clears failed-attempt counts and the witness lock.
    Unlock,
    SetRole(Role),
    /// A new password hash; `temporary` makes the user choose their own at the next sign-in.
    /// Every browser session of the account ends.
    SetPassword {
        hash: String,
        temporary: bool,
    },
    /// Ends every browser session and revokes every API token, leaving the account enabled.
    EndSessions,
    /// Removes the account's second factor and its recovery codes (a lost phone; or the user
    /// turning it off, which the application allows only with a current code).
    ResetSecondFactor,
}

impl AccountChange {
    /// The audit action name (ids and action names only in the detail, never a password).
    pub fn action(&self) -> &'static str {
        match self {
            Self::Disable => "user.disable",
            Self::Enable => "user.enable",
            Self::Unlock => "user.unlock",
            Self::SetRole(_) => "user.role",
            Self::SetPassword { .. } => "user.password",
            Self::EndSessions => "user.end_sessions",
            Self::ResetSecondFactor => "user.second_factor_reset",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
}

/// A secret kept as text (a TOTP shared secret in base32): `Debug` never prints it, so it cannot
/// reach a log through a derived `Debug` or an error.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for the one place that needs it (a code check, the enrolment page).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(redacted)")
    }
}

/// An account's second factor as stored ([`Store::second_factor`]).
#[derive(Debug, Clone, Default)]
pub struct SecondFactorState {
    /// The confirmed shared secret, if the account has a second factor.
    pub secret: Option<SecretText>,
    /// A secret being set up, shown to the user and not yet confirmed with a code.
    pub pending: Option<SecretText>,
    /// The last TOTP time step a code was accepted for (0: none); only later steps are accepted.
    pub last_step: i64,
    /// Recovery codes not yet used.
    pub recovery_codes_left: i64,
}

/// What the second step of a sign-in offers ([`Store::second_factor_sign_in`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactorProof {
    /// A TOTP code that matched this time step (accepted only if later than the last one).
    Step(i64),
    /// The SHA-256 of a recovery code (accepted once).
    RecoveryCodeHash(String),
    /// A code that matched nothing.
    Wrong,
}

/// A signed-in browser session.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
    /// Epoch seconds of the last request noted (coarsely: at most once a minute).
    pub last_seen: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub user_id: UserId,
    pub label: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// Epoch seconds after which the token is refused (`None`: tokens made before expiry dates).
    pub expires_at: Option<i64>,
}

/// A SMART Backend Services client (`ketcare fhir-client add`, `/api/v1/fhir-clients`): it
/// proves itself with JWTs signed by a key of its JWK Set and acts as the account `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FhirClient {
    pub client_id: String,
    pub name: String,
    /// The account it acts as: its role decides what it reads, and the audit names it.
    pub user_id: UserId,
    pub username: String,
    /// The public JWK Set (JSON) its assertions are checked against.
    pub jwks: String,
    /// The scopes it may be granted, space-separated (`system/*.read`, `system/<Type>.read`).
    pub scopes: String,
    pub created_at: String,
    pub disabled: bool,
}

/// A backend client to register (checked by the application layer).
#[derive(Debug, Clone)]
pub struct NewFhirClient {
    pub client_id: String,
    pub name: String,
    pub user_id: UserId,
    pub jwks: String,
    pub scopes: String,
}

/// An access token to grant a backend client whose assertion was checked
/// ([`Store::grant_fhir_token`]).
#[derive(Debug, Clone, Copy)]
pub struct FhirGrant<'a> {
    pub client_id: &'a str,
    /// The assertion's `jti`, refused if seen before, kept until `jti_expires_at` (its `exp`).
    pub jti: &'a str,
    pub jti_expires_at: i64,
    /// The SHA-256 of the access token (the token itself is never stored).
    pub token_hash: &'a str,
    /// The scopes granted, space-separated.
    pub scopes: &'a str,
    pub expires_at: i64,
    pub now: i64,
}

/// What [`Store::grant_fhir_token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantOutcome {
    Granted,
    /// The assertion's `jti` was used before (a replay): nothing granted.
    Replayed,
    /// The client was disabled (after its assertion was checked): nothing granted.
    Disabled,
}

/// A version of the settings (U values and narrowed limits), as stored: the organisation's, or
/// the keys one site sets for itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SiteSettingsVersion {
    pub version: i64,
    /// The settings as JSON (the clinical crate's `SiteSettings`).
    pub body: String,
    pub set_by: String,
    pub set_at: String,
    pub reason: String,
}

/// A settings change waiting for a second administrator (widening a hard limit).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SettingsProposal {
    pub id: i64,
    /// The override as JSON (the clinical crate's `LimitOverride`).
    pub body: String,
    pub reason: String,
    pub state: ProposalState,
    pub proposed_by: String,
    pub decided_by: Option<String>,
    pub created_at: String,
}

/// A protocol file a site added to the library (the newest row per file name is in force).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SiteProtocol {
    pub id: i64,
    pub file_name: String,
    pub body: String,
    pub added_by: String,
    pub added_at: String,
    /// The site whose own protocol file it is (used only there); `None`: the organisation's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_id: Option<i64>,
}

/// A kind of row that belongs to one patient, for [`Store::owner_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedRow {
    Guardian,
    Vital,
    Response,
    Alert,
    Consent,
    Session,
    Record,
    Booking,
}

impl OwnedRow {
    /// The query that finds the row's patient.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            OwnedRow::Guardian => "SELECT patient_id FROM guardians WHERE id = $1",
            OwnedRow::Vital => {
                "SELECT s.patient_id FROM session_vitals v JOIN treatment_sessions s ON s.id = v.session_id WHERE v.id = $1"
            }
            OwnedRow::Response => "SELECT patient_id FROM measure_responses WHERE id = $1",
            OwnedRow::Alert => "SELECT patient_id FROM safety_alerts WHERE id = $1",
            OwnedRow::Consent => "SELECT patient_id FROM ops_consent_signatures WHERE id = $1",
            OwnedRow::Session => "SELECT patient_id FROM treatment_sessions WHERE id = $1",
            OwnedRow::Record => "SELECT patient_id FROM clinical_records WHERE id = $1",
            OwnedRow::Booking => "SELECT patient_id FROM ops_bookings WHERE id = $1",
        }
    }
}

/// Kinds of clinical document kept per patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Screening,
    DoseOrder,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Screening => "screening",
            RecordKind::DoseOrder => "dose_order",
        }
    }
}

/// A clinical document (a screening with its outcome, a dose order) stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClinicalRecord {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub kind: RecordKind,
    pub state: String,
    pub body: String,
    /// Bumped on every change; an update names the revision it read.
    pub revision: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A new version of a clinical document, and what the audit log calls the change.
#[derive(Debug, Clone, Copy)]
pub struct RecordChange<'a> {
    /// What the actor's role must allow.
    pub permission: Permission,
    pub kind: RecordKind,
    pub state: &'a str,
    pub body: &'a str,
    /// The audit action (`dose_order.verify`, …).
    pub action: &'a str,
}

/// Which audit records to show.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub username: Option<String>,
    pub action: Option<String>,
    pub patient_id: Option<i64>,
    /// Only records with `seq` below this (for paging backwards).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// The result of checking the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditVerification {
    pub records: u64,
    pub broken: Option<ChainBreak>,
}

/// One of the hash chains ketcare keeps: the audit log, and each site's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chain {
    /// The audit log (`audit_log`, head in `audit_head`).
    Audit,
    /// The controlled-substance ledger of one site (`ops_ledger`, heads in `ops_ledger_heads`).
    Ledger(i64),
}

impl Chain {
    /// The first site's ledger: the single ledger of a database from before sites.
    pub const FIRST_LEDGER: Chain = Chain::Ledger(crate::sites::DEFAULT_SITE);

    /// The chain's name in the anchor file: `audit`, `ledger` (the first site's, as anchored
    /// before sites), `ledger/site-N`.
    pub fn name(self) -> String {
        match self {
            Chain::Audit => "audit".into(),
            Chain::Ledger(crate::sites::DEFAULT_SITE) => "ledger".into(),
            Chain::Ledger(site) => format!("ledger/site-{site}"),
        }
    }

    pub fn parse(s: &str) -> Option<Chain> {
        match s {
            "audit" => Some(Chain::Audit),
            "ledger" => Some(Chain::FIRST_LEDGER),
            _ => s
                .strip_prefix("ledger/site-")?
                .parse()
                .ok()
                .filter(|site| *site > crate::sites::DEFAULT_SITE)
                .map(Chain::Ledger),
        }
    }
}

/// Everything ketcare persists, behind one interface. Each later area (measurement-based care,
/// sessions, operations) declares its part in its own trait, which `Store` includes.
#[async_trait]
pub trait Store:
    Send
    + Sync
    + MeasuresStore
    + SessionStore
    + OpsStore
    + TherapyStore
    + CarePlanStore
    + RegistryStore
    + OutreachStore
    + SiteStore
{
    fn backend(&self) -> Backend;
    async fn ping(&self) -> Result<()>;
    /// Takes `job`'s lock for one pass, or `None` when another process sharing the database
    /// runs it now ([`jobs`]).
    async fn try_job_lock(&self, job: jobs::Job) -> Result<Option<jobs::JobLock>>;

    // Accounts
    async fn create_user(&self, actor: &Actor, user: &NewUser) -> Result<User>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>>;
    async fn list_users(&self, actor: &Actor) -> Result<Vec<User>>;
    /// Records a failed login; locks the account until `lock_until` when given.
    async fn login_failed(&self, user: &User, address: &str, lock_until: Option<i64>)
    -> Result<()>;
    async fn login_succeeded(&self, user: &User, address: &str) -> Result<()>;
    /// The second factor of account `id` as stored (its secrets are for the application's
    /// checks and the owner's enrolment page only).
    async fn second_factor(&self, id: UserId) -> Result<SecondFactorState>;
    /// The actor sets up a second factor for their own account: `secret` waits, unconfirmed,
    /// in place of any earlier one being set up (audited, without the secret).
    async fn begin_second_factor(&self, actor: &Actor, secret: &SecretText) -> Result<()>;
    /// Confirms the actor's pending `secret` (checked by the caller with a code of time step
    /// `step`): it becomes the account's second factor, `step` the last accepted, and
    /// `recovery_code_hashes` its only recovery codes. Refused if the pending secret changed.
    async fn confirm_second_factor(
        &self,
        actor: &Actor,
        secret: &SecretText,
        step: i64,
        recovery_code_hashes: &[String],
    ) -> Result<User>;
    /// The second step of a sign-in: accepts a later time step or an unused recovery code
    /// (which is used up), or records the failure (audited and counted like a wrong password).
    /// True when accepted.
    async fn second_factor_sign_in(
        &self,
        user: &User,
        address: &str,
        proof: &SecondFactorProof,
    ) -> Result<bool>;
    /// A sign-in whose password was right waits for its second step: a challenge (not a
    /// session) for `user`, by its token's hash, until `expires_at` (audited).
    async fn create_sign_in_challenge(
        &self,
        user: &User,
        address: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<()>;
    /// The challenge's account, if the challenge exists, has not expired at `now` and the
    /// account is enabled.
    async fn sign_in_challenge(&self, token_hash: &str, now: i64) -> Result<Option<User>>;
    /// Ends a challenge (its sign-in completed), and any that expired before `now`.
    async fn end_sign_in_challenge(&self, token_hash: &str, now: i64) -> Result<()>;
    /// An administrator's change to account `id`, audited (the actor needs `UserAdmin`, except
    /// that a user may set their own password: `SetPassword` with `actor` = the account).
    async fn change_account(
        &self,
        actor: &Actor,
        id: UserId,
        change: &AccountChange,
    ) -> Result<User>;

    // Browser sessions (tokens are stored hashed)
    async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The session if it exists and has not expired at `now`.
    async fn session(&self, token_hash: &str, now: i64) -> Result<Option<WebSession>>;
    async fn end_session(&self, token_hash: &str, actor: &Actor) -> Result<()>;
    /// Notes that the session was used at `now` (for the inactivity time-out).
    async fn touch_session(&self, token_hash: &str, now: i64) -> Result<()>;

    // API tokens (stored hashed)
    async fn create_api_token(
        &self,
        actor: &Actor,
        user: UserId,
        token_hash: &str,
        label: &str,
        expires_at: Option<i64>,
    ) -> Result<ApiToken>;
    /// The token's user, if the token exists, is not revoked and has not expired at `now`.
    async fn api_token_user(&self, token_hash: &str, now: i64) -> Result<Option<User>>;
    async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>>;
    async fn revoke_api_token(&self, actor: &Actor, id: ApiTokenId) -> Result<()>;

    // SMART Backend Services clients (tokens stored hashed)
    /// Registers a backend client acting as `client.user_id` (`UserAdmin`; audited).
    async fn register_fhir_client(
        &self,
        actor: &Actor,
        client: &NewFhirClient,
    ) -> Result<FhirClient>;
    /// Every backend client (`UserAdmin`).
    async fn list_fhir_clients(&self, actor: &Actor) -> Result<Vec<FhirClient>>;
    /// One backend client, for the token endpoint.
    async fn fhir_client(&self, client_id: &str) -> Result<Option<FhirClient>>;
    /// Disables a backend client and ends its access tokens (`UserAdmin`; audited).
    async fn disable_fhir_client(&self, actor: &Actor, client_id: &str) -> Result<FhirClient>;
    /// In one unit of work, audited as `actor` (the client's account): records the assertion's
    /// `jti` (refusing one seen before) and stores the access token, unless the client is
    /// disabled.
    async fn grant_fhir_token(&self, actor: &Actor, grant: &FhirGrant<'_>) -> Result<GrantOutcome>;
    /// The account and granted scopes of a backend client's access token, if it exists, has not
    /// expired at `now`, and neither the client nor the account is disabled.
    async fn fhir_token(&self, token_hash: &str, now: i64) -> Result<Option<(User, String)>>;

    // Patients
    async fn create_patient(&self, actor: &Actor, patient: &NewPatient) -> Result<Patient>;
    async fn update_patient(
        &self,
        actor: &Actor,
        id: PatientId,
        patient: &NewPatient,
    ) -> Result<Patient>;
    /// Every patient's id, in id order, for a whole-clinic export (the clinical-read right; one
    /// audited read — each record read after it is audited on its own).
    async fn all_patient_ids(&self, actor: &Actor) -> Result<Vec<PatientId>>;
    /// Changes the demographics only (the clinical part is kept as stored, whatever the role),
    /// if the record's `updated_at` is still `read_at` — else a conflict, nothing written.
    /// Audited as any update.
    async fn update_demographics(
        &self,
        actor: &Actor,
        id: PatientId,
        patient: &NewPatient,
        read_at: &str,
    ) -> Result<Patient>;
    /// The patient a row belongs to (a FHIR read by id finds its patient this way, then reads
    /// the record through the usual audited calls); `None` when there is no such row. Needs the
    /// patient-read right; reads ids only, so nothing is audited here.
    async fn owner_of(&self, actor: &Actor, row: OwnedRow, id: i64) -> Result<Option<PatientId>>;
    /// The whole record; needs the clinical-read right. Audited.
    async fn get_patient(&self, actor: &Actor, id: PatientId) -> Result<Patient>;
    /// The record as this reader may see it (demographics only without the clinical-read
    /// right). Audited.
    async fn patient_view(&self, actor: &Actor, id: PatientId) -> Result<VisiblePatient>;
    /// Matches name, MRN or ISO date of birth; at most `limit` results, each access audited.
    async fn search_patients(
        &self,
        actor: &Actor,
        query: &str,
        limit: i64,
    ) -> Result<Vec<PatientSummary>>;
    async fn add_guardian(
        &self,
        actor: &Actor,
        patient: PatientId,
        guardian: &NewGuardian,
    ) -> Result<Guardian>;
    async fn remove_guardian(
        &self,
        actor: &Actor,
        patient: PatientId,
        guardian: GuardianId,
    ) -> Result<()>;

    // Audit
    /// Appends an event that is not part of another change (a login, a page of the log viewed).
    async fn audit(&self, actor: &Actor, event: AuditEvent) -> Result<()>;
    async fn audit_records(&self, actor: &Actor, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;
    /// Checks the whole chain and names the first broken record.
    async fn verify_audit(&self) -> Result<AuditVerification>;
    /// The chain's head: the newest record's seq and hash (seq 0 while it is empty).
    async fn chain_head(&self, chain: Chain) -> Result<(i64, String)>;
    /// The stored hash of record `seq` of the chain, if that record exists.
    async fn chain_hash_at(&self, chain: Chain, seq: i64) -> Result<Option<String>>;

    // Site settings
    /// The organisation's newest settings version.
    async fn site_settings(&self) -> Result<Option<SiteSettingsVersion>>;
    async fn save_site_settings(
        &self,
        actor: &Actor,
        body: &str,
        reason: &str,
    ) -> Result<SiteSettingsVersion>;
    /// The newest version one site set for itself: only the keys it sets over the
    /// organisation's (none while it has set nothing).
    async fn settings_of_site(&self, site: i64) -> Result<Option<SiteSettingsVersion>>;
    /// Stores the keys a site sets for itself as its next version (administrator of that site;
    /// another site answers not found; audited).
    async fn save_settings_of_site(
        &self,
        actor: &Actor,
        site: i64,
        body: &str,
        reason: &str,
    ) -> Result<SiteSettingsVersion>;

    async fn propose_settings_change(
        &self,
        actor: &Actor,
        body: &str,
        reason: &str,
    ) -> Result<SettingsProposal>;
    async fn settings_proposals(&self) -> Result<Vec<SettingsProposal>>;
    async fn settings_proposal(&self, id: i64) -> Result<SettingsProposal>;
    /// Approves a pending proposal by a different administrator and stores `new_settings` as the
    /// next settings version, in one transaction.
    async fn approve_settings_change(
        &self,
        actor: &Actor,
        id: i64,
        new_settings: &str,
    ) -> Result<SiteSettingsVersion>;
    /// The newest version of every site protocol file.
    async fn site_protocols(&self) -> Result<Vec<SiteProtocol>>;
    /// Adds a protocol file, or a new version of one (by file name): the organisation's
    /// (`site` `None`) or one site's own, which must be one of the actor's. A file keeps its
    /// owner across versions (refused naming `site` otherwise). Administrator; audited.
    async fn add_site_protocol(
        &self,
        actor: &Actor,
        site: Option<i64>,
        file_name: &str,
        body: &str,
    ) -> Result<SiteProtocol>;

    // Clinical documents
    /// Stores a new document for a patient.
    async fn create_record(
        &self,
        actor: &Actor,
        patient: PatientId,
        change: &RecordChange<'_>,
    ) -> Result<ClinicalRecord>;
    async fn record(&self, actor: &Actor, kind: RecordKind, id: RecordId)
    -> Result<ClinicalRecord>;
    /// Replaces a document if it is still at `revision` (else `Conflict`).
    async fn update_record(
        &self,
        actor: &Actor,
        id: RecordId,
        revision: i64,
        change: &RecordChange<'_>,
    ) -> Result<ClinicalRecord>;
    async fn patient_records(
        &self,
        actor: &Actor,
        patient: PatientId,
        kind: RecordKind,
    ) -> Result<Vec<ClinicalRecord>>;

    /// Raw access for tests that tamper with stored data on purpose.
    async fn execute_raw(&self, sql: &str) -> Result<u64>;
    /// Records of `kind` in one of `states` (worklists), oldest first; each an audited access.
    async fn records_in_states(
        &self,
        actor: &Actor,
        kind: RecordKind,
        states: &[&str],
    ) -> Result<Vec<ClinicalRecord>>;
    /// Name, MRN and date of birth of these patients (worklists); each an audited access.
    async fn patient_summaries(
        &self,
        actor: &Actor,
        ids: &[PatientId],
    ) -> Result<Vec<PatientSummary>>;
    /// Rows in one of ketcare's tables (for tests and `ketcare status`).
    async fn count(&self, table: &str) -> Result<i64>;
    /// Writes one consistent copy of the whole database to `path` while it is in use (SQLite's
    /// `VACUUM INTO`: a single read transaction, so the copy is a snapshot of one moment).
    /// PostgreSQL is backed up with `pg_dump` instead (refused here, naming `to`).
    async fn backup_into(&self, path: &std::path::Path) -> Result<()>;
}

/// Refuses an actor whose role lacks `p`.
pub fn require(actor: &Actor, p: Permission) -> Result<()> {
    if actor.may(p) {
        Ok(())
    } else {
        Err(StoreError::Forbidden { permission: p })
    }
}

/// Opens the store for a URL (`sqlite://path` or `postgres://…`) and runs migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    open_with(url, &StoreOptions::default()).await
}

/// [`open`] with the connection and queue settings of `options`.
pub async fn open_with(url: &str, options: &StoreOptions) -> Result<std::sync::Arc<dyn Store>> {
    Ok(std::sync::Arc::new(
        SqlStore::open_with(url, options).await?,
    ))
}

/// The settings ketcare gives the database connections and the vitals writer; the defaults suit
/// a clinic of a few hundred chairs (README, "Database connections").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Connections of the shared pool (reads and every write other than vitals); `None`: 16 on
    /// PostgreSQL, 4 on SQLite. The vitals writer has its own connection besides.
    pub pool_size: Option<u32>,
    /// PostgreSQL `lock_timeout` (SQLite: `busy_timeout`), milliseconds: how long a statement
    /// waits for a lock before it fails (a vitals batch then is retried).
    pub lock_timeout_ms: u64,
    /// PostgreSQL `statement_timeout`, milliseconds (0: none).
    pub statement_timeout_ms: u64,
    /// Vitals waiting for the writer at most; one more is refused with [`StoreError::Busy`]
    /// rather than queued, so a flood cannot grow a backlog.
    pub vitals_queue: usize,
    /// Vitals committed in one transaction at most.
    pub vitals_batch: usize,
    /// A read-only replica of a PostgreSQL primary for the research registry's reads (`None`:
    /// every read on the primary).
    pub read_url: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: None,
            lock_timeout_ms: 10_000,
            statement_timeout_ms: 60_000,
            vitals_queue: 1024,
            vitals_batch: 256,
            read_url: None,
        }
    }
}
