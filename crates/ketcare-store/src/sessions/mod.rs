//! Treatment sessions: the session record, vitals, alarms, addenda.
//!
//! The session is a JSON document ([`ketcare_session::Session`]) with a revision; every command
//! is applied by the pure core inside the write transaction that stores it with its audit
//! record, so two clinicians cannot overwrite each other and a refused command changes nothing.
//! Vitals are rows (source, who, and for monitor messages a UNIQUE message key: a repeated
//! message is acknowledged but stored once). A signed record is locked by the database too.
//!
//! This module holds the `SessionStore` trait, its public types and the session document's
//! loading and writing; `records` holds scheduling and commands, `vitals` the readings, monitor
//! matching and the time rules.

use crate::sql::{Tx, corrupt, now_rfc3339};
use crate::{Result, SqlStore, StoreError, require};
use async_trait::async_trait;
use jiff::Timestamp;
use ketcare_core::audit::AuditEvent;
use ketcare_core::validation::FieldErrors;
use ketcare_core::{Actor, PatientId, Permission, SessionId};
use ketcare_session::alarms::Alarm;
use ketcare_session::session::Note;
use ketcare_session::{Command, Phase, Session, VitalReading, VitalSource, Vitals};
use sqlx::Row;

mod records;
mod vitals;
mod writer;

pub(crate) use records::session_site_for_chair;
pub(crate) use vitals::TickCache;
pub(crate) use writer::VitalsWriter;

/// A stored session.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SessionRecord {
    pub id: SessionId,
    pub patient_id: PatientId,
    /// The site the session is held at (its chair's).
    pub site_id: i64,
    pub revision: i64,
    pub session: Session,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A stored reading.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct StoredVital {
    pub id: i64,
    pub session_id: SessionId,
    pub reading: VitalReading,
    pub received_at: String,
}

/// What storing a reading did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum VitalOutcome {
    /// Stored (and committed); alarms it raised.
    Stored {
        vital: Box<StoredVital>,
        alarms: Vec<Alarm>,
        patient_id: PatientId,
    },
    /// The message key was stored before: nothing new.
    Duplicate {
        vital_id: i64,
        session_id: SessionId,
    },
}

/// Identifies one monitor message: MSH-3 sending application, MSH-4 sending facility and
/// MSH-10 control id, stored as three columns with one unique index (migration 0009).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageKey {
    pub sending_application: String,
    pub sending_facility: String,
    pub control_id: String,
}

impl MessageKey {
    pub fn new(
        sending_application: impl Into<String>,
        sending_facility: impl Into<String>,
        control_id: impl Into<String>,
    ) -> Self {
        Self {
            sending_application: sending_application.into(),
            sending_facility: sending_facility.into(),
            control_id: control_id.into(),
        }
    }

    /// The key as rows stored before migration 0009 hold it (joined with `|`).
    fn legacy(&self) -> String {
        format!(
            "{}|{}|{}",
            self.sending_application, self.sending_facility, self.control_id
        )
    }
}

/// Which session a monitor message belongs to, or why none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "match", rename_all = "snake_case")]
pub enum MonitorMatch {
    /// The active session of the patient PID-3 names, or, with PID-3 empty, of the patient in
    /// the chair PV1-3 names.
    Session {
        session_id: SessionId,
        patient_id: PatientId,
    },
    /// PID-3 names no patient ketcare knows.
    UnknownPatient { ids: Vec<String> },
    /// PID-3's identifiers name more than one patient.
    SeveralPatients { mrns: Vec<String> },
    /// The patient PID-3 names has no session in a chair.
    NoActiveSession { mrn: String },
    /// PID-3's patient is not the patient seated in the chair PV1-3 names.
    ChairMismatch {
        mrn: String,
        patient_chair: String,
        location: String,
        seated_chair: String,
    },
    /// PID-3 is empty and no patient is in the chair PV1-3 names (or PV1-3 is empty too).
    NoSessionAtLocation { location: Vec<String> },
}

impl MonitorMatch {
    /// The session, when the message matched one.
    pub fn session(&self) -> Option<SessionId> {
        match self {
            MonitorMatch::Session { session_id, .. } => Some(*session_id),
            _ => None,
        }
    }

    /// Why the message matched no session (empty when it matched), for an ACK AE.
    pub fn reason(&self) -> String {
        match self {
            MonitorMatch::Session { .. } => String::new(),
            MonitorMatch::UnknownPatient { ids } => format!(
                "PID-3: no patient with identifier [{}]; nothing stored",
                ids.join(", ")
            ),
            MonitorMatch::SeveralPatients { mrns } => format!(
                "PID-3: the identifiers name more than one patient (MRN {}); nothing stored",
                mrns.join(", ")
            ),
            MonitorMatch::NoActiveSession { mrn } => {
                format!("PID-3: patient {mrn} has no session in a chair; nothing stored")
            }
            MonitorMatch::ChairMismatch {
                mrn,
                patient_chair,
                location,
                seated_chair,
            } => format!(
                "PID-3 and PV1-3 disagree: patient {mrn} is in {patient_chair}, but PV1-3 [{location}] names {seated_chair}, where another patient is seated; nothing stored"
            ),
            MonitorMatch::NoSessionAtLocation { location } => {
                if location.is_empty() {
                    "PID-3 and PV1-3 are empty: no patient to match; nothing stored".into()
                } else {
                    format!(
                        "PID-3 is empty and no patient is in a chair at PV1-3 [{}]; nothing stored",
                        location.join("/")
                    )
                }
            }
        }
    }
}

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a scheduled session for a patient.
    async fn create_treatment_session(
        &self,
        actor: &Actor,
        patient: PatientId,
        session: &Session,
    ) -> Result<SessionRecord>;
    /// One session (an audited read).
    async fn session_record(&self, actor: &Actor, id: SessionId) -> Result<SessionRecord>;
    /// A session's record read for billing (the billing-read right, not the clinical one): the
    /// caller keeps only what a superbill needs. Audited as a billing read.
    async fn session_record_for_billing(
        &self,
        actor: &Actor,
        id: SessionId,
    ) -> Result<SessionRecord>;
    /// Applies a command with the pure core at `now` and stores the result with its audit
    /// record. A refused command is `Conflict` naming what is missing.
    async fn apply_session_command(
        &self,
        actor: &Actor,
        id: SessionId,
        command: &Command,
        now: Timestamp,
    ) -> Result<SessionRecord>;
    /// Signs session `id` at `now` — only as it was at `revision` (the record the caller read
    /// and predicted from; a record changed since is `Conflict`, nothing written) — and, in the
    /// same unit, stores the exposure predicted from that record, when there is one (audited
    /// as `session.exposure`). A signature is never stored without the figure it was given.
    async fn sign_session(
        &self,
        actor: &Actor,
        id: SessionId,
        now: Timestamp,
        revision: i64,
        exposure: Option<&crate::registry::PredictedExposure>,
    ) -> Result<SessionRecord>;
    /// Stores a reading and raises the alarms it triggers, in one transaction. The reading is
    /// checked first ([`Vitals::validate`]: physiologically impossible values are refused
    /// naming the field), whatever edge sent it. With a `message_key`, a repeated key returns
    /// `Duplicate` and stores nothing.
    async fn record_vital(
        &self,
        actor: &Actor,
        id: SessionId,
        reading: &VitalReading,
        message_key: Option<&MessageKey>,
    ) -> Result<VitalOutcome>;
    /// The readings of a session, oldest first.
    async fn session_vitals(&self, actor: &Actor, id: SessionId) -> Result<Vec<StoredVital>>;
    /// Sessions whose patient is in the chair (checked in … ready for discharge, escalated).
    async fn active_sessions(&self, actor: &Actor) -> Result<Vec<SessionRecord>>;
    /// Sessions of one patient, newest first.
    async fn patient_sessions(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<SessionRecord>>;
    /// The active session a monitor message belongs to, by patient identity first: the patient
    /// PID-3 names (MRN) must exist and have a session in a chair, and when PV1-3 names a chair
    /// where another patient is seated the message is refused. Only with PID-3 empty is the
    /// chair/bed (PV1-3) used to find the patient.
    async fn match_active_session(
        &self,
        patient_ids: &[String],
        locations: &[String],
    ) -> Result<MonitorMatch>;
    /// Runs the time rules (missed vitals, esketamine BP check) on every active session at
    /// `now`; returns the alarms raised, by session.
    async fn tick_sessions(
        &self,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<(SessionId, Vec<Alarm>)>>;
    /// The ids of the sessions that can still change (scheduled, or with the patient in the
    /// chair), oldest first. Ids only: no patient data is read.
    async fn open_session_ids(&self) -> Result<Vec<SessionId>>;
    /// The ids of the signed (locked) sessions, oldest first. Ids only: no patient data is read;
    /// each record is then read through [`SessionStore::session_record`], an audited access.
    async fn signed_session_ids(&self) -> Result<Vec<SessionId>>;
}

const ACTIVE: [Phase; 8] = [
    Phase::CheckedIn,
    Phase::PreAssessment,
    Phase::DoseVerified,
    Phase::Running,
    Phase::Paused,
    Phase::Observation,
    Phase::ReadyForDischarge,
    Phase::Escalated,
];

fn active_list() -> String {
    ACTIVE
        .iter()
        .map(|p| format!("'{}'", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) const SESSION_COLUMNS: &str =
    "id, patient_id, site_id, revision, body, created_by, created_at, updated_at";

/// A `treatment_sessions` row as stored (`SESSION_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: SessionId,
    patient_id: PatientId,
    site_id: i64,
    revision: i64,
    body: String,
    created_by: String,
    created_at: String,
    updated_at: String,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self> {
        let session: Session = serde_json::from_str(&r.body)
            .map_err(|e| StoreError::Corrupt(format!("session document: {e}")))?;
        Ok(SessionRecord {
            id: r.id,
            patient_id: r.patient_id,
            site_id: r.site_id,
            revision: r.revision,
            session,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A `session_addenda` row as stored.
#[derive(sqlx::FromRow)]
struct AddendumRow {
    at: String,
    written_by: String,
    text: String,
}

impl TryFrom<AddendumRow> for Note {
    type Error = StoreError;
    fn try_from(a: AddendumRow) -> Result<Self> {
        Ok(Note {
            at: a.at.parse().map_err(|_| corrupt("addendum time", &a.at))?,
            by: a.written_by,
            text: a.text,
            severity: None,
        })
    }
}

/// Every session changed at or after `since` (RFC 3339), oldest first, in the caller's unit
/// (which audits each patient it shows).
pub(crate) async fn sessions_changed_since(tx: &mut Tx, since: &str) -> Result<Vec<SessionRecord>> {
    sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE updated_at >= $1 ORDER BY id"
    )))
    .bind(since)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(SessionRecord::try_from)
    .collect()
}

/// Session `id` as `actor` may see it: not found outside the actor's sites (every read or change
/// of one session on a person's behalf loads it through here).
pub(crate) async fn load_session_for(
    tx: &mut Tx,
    actor: &Actor,
    id: SessionId,
) -> Result<SessionRecord> {
    let rec = load_session(tx, id).await?;
    crate::sites::check_site(tx, actor, rec.site_id, format!("session {id}")).await?;
    Ok(rec)
}

async fn load_session(tx: &mut Tx, id: SessionId) -> Result<SessionRecord> {
    let mut rec: SessionRecord = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("session {id}"),
    })?
    .try_into()?;
    let addenda = sqlx::query_as::<_, AddendumRow>(
        "SELECT at, written_by, text FROM session_addenda WHERE session_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    for a in addenda {
        rec.session.addenda.push(a.try_into()?);
    }
    Ok(rec)
}

pub(crate) fn body_of(session: &Session) -> Result<String> {
    // Addenda live in their own append-only table.
    let mut s = session.clone();
    s.addenda.clear();
    serde_json::to_string(&s).map_err(|e| StoreError::Corrupt(format!("session document: {e}")))
}

async fn write_session(tx: &mut Tx, id: SessionId, session: &Session) -> Result<()> {
    sqlx::query(
        "UPDATE treatment_sessions SET phase = $1, body = $2, revision = revision + 1, signed = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(session.phase.as_str())
    .bind(body_of(session)?)
    .bind(i64::from(session.signature.is_some()))
    .bind(now_rfc3339())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    crate::registry::forget_facts(tx, id.get()).await
}

/// Each method calls the function of the same name in its aggregate's file.
#[async_trait]
impl SessionStore for SqlStore {
    async fn create_treatment_session(
        &self,
        actor: &Actor,
        patient: PatientId,
        session: &Session,
    ) -> Result<SessionRecord> {
        SqlStore::create_treatment_session(self, actor, patient, session).await
    }

    async fn session_record_for_billing(
        &self,
        actor: &Actor,
        id: SessionId,
    ) -> Result<SessionRecord> {
        SqlStore::session_record_as(
            self,
            actor,
            id,
            Permission::BillingRead,
            "session.billing_read",
        )
        .await
    }

    async fn session_record(&self, actor: &Actor, id: SessionId) -> Result<SessionRecord> {
        SqlStore::session_record(self, actor, id).await
    }

    async fn apply_session_command(
        &self,
        actor: &Actor,
        id: SessionId,
        command: &Command,
        now: Timestamp,
    ) -> Result<SessionRecord> {
        SqlStore::apply_session_command(self, actor, id, command, now).await
    }

    async fn sign_session(
        &self,
        actor: &Actor,
        id: SessionId,
        now: Timestamp,
        revision: i64,
        exposure: Option<&crate::registry::PredictedExposure>,
    ) -> Result<SessionRecord> {
        SqlStore::sign_session(self, actor, id, now, revision, exposure).await
    }

    async fn record_vital(
        &self,
        actor: &Actor,
        id: SessionId,
        reading: &VitalReading,
        message_key: Option<&MessageKey>,
    ) -> Result<VitalOutcome> {
        SqlStore::record_vital(self, actor, id, reading, message_key).await
    }

    async fn session_vitals(&self, actor: &Actor, id: SessionId) -> Result<Vec<StoredVital>> {
        SqlStore::session_vitals(self, actor, id).await
    }

    async fn active_sessions(&self, actor: &Actor) -> Result<Vec<SessionRecord>> {
        SqlStore::active_sessions(self, actor).await
    }

    async fn patient_sessions(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<SessionRecord>> {
        SqlStore::patient_sessions(self, actor, patient).await
    }

    async fn match_active_session(
        &self,
        patient_ids: &[String],
        locations: &[String],
    ) -> Result<MonitorMatch> {
        SqlStore::match_active_session(self, patient_ids, locations).await
    }

    async fn tick_sessions(
        &self,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<(SessionId, Vec<Alarm>)>> {
        SqlStore::tick_sessions(self, actor, now).await
    }

    async fn open_session_ids(&self) -> Result<Vec<SessionId>> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM treatment_sessions WHERE phase IN ('{}', {}) ORDER BY id",
            Phase::Scheduled.as_str(),
            active_list()
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn signed_session_ids(&self) -> Result<Vec<SessionId>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM treatment_sessions WHERE signed = 1 ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
