//! Treatment sessions: the session record, vitals, alarms, addenda.
//!
//! The session is a JSON document ([`ketcare_session::Session`]) with a revision; every command
//! is applied by the pure core inside the write transaction that stores it with its audit
//! record, so two clinicians cannot overwrite each other and a refused command changes nothing.
//! Vitals are rows (source, who, and for monitor messages a UNIQUE message key: a repeated
//! message is acknowledged but stored once). A signed record is locked by the database too.

use crate::sql::{Tx, corrupt, now_rfc3339};
use crate::{Result, SqlStore, StoreError, require};
use async_trait::async_trait;
use jiff::Timestamp;
use ketcare_core::audit::AuditEvent;
use ketcare_core::validation::FieldErrors;
use ketcare_core::{Actor, PatientId, Permission};
use ketcare_session::alarms::Alarm;
use ketcare_session::session::Note;
use ketcare_session::{Command, Phase, Session, VitalReading, VitalSource, Vitals};
use sqlx::Row;

/// A stored session.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionRecord {
    pub id: i64,
    pub patient_id: PatientId,
    pub revision: i64,
    pub session: Session,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A stored reading.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredVital {
    pub id: i64,
    pub session_id: i64,
    pub reading: VitalReading,
    pub received_at: String,
}

/// What storing a reading did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum VitalOutcome {
    /// Stored (and committed); alarms it raised.
    Stored {
        vital: Box<StoredVital>,
        alarms: Vec<Alarm>,
        patient_id: PatientId,
    },
    /// The message key was stored before: nothing new.
    Duplicate { vital_id: i64, session_id: i64 },
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
        session_id: i64,
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
    pub fn session(&self) -> Option<i64> {
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
    async fn session_record(&self, actor: &Actor, id: i64) -> Result<SessionRecord>;
    /// Applies a command with the pure core at `now` and stores the result with its audit
    /// record. A refused command is `Conflict` naming what is missing.
    async fn apply_session_command(
        &self,
        actor: &Actor,
        id: i64,
        command: &Command,
        now: Timestamp,
    ) -> Result<SessionRecord>;
    /// Stores a reading and raises the alarms it triggers, in one transaction. The reading is
    /// checked first ([`Vitals::validate`]: physiologically impossible values are refused
    /// naming the field), whatever edge sent it. With a `message_key`, a repeated key returns
    /// `Duplicate` and stores nothing.
    async fn record_vital(
        &self,
        actor: &Actor,
        id: i64,
        reading: &VitalReading,
        message_key: Option<&MessageKey>,
    ) -> Result<VitalOutcome>;
    /// The readings of a session, oldest first.
    async fn session_vitals(&self, actor: &Actor, id: i64) -> Result<Vec<StoredVital>>;
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
    async fn tick_sessions(&self, actor: &Actor, now: Timestamp) -> Result<Vec<(i64, Vec<Alarm>)>>;
}

/// A session is scheduled only for a verified dose order of its own patient: the order's row
/// (not the caller's copy) is read in the creating transaction. Refusals name `order_id` and
/// the order's state.
async fn check_order_for_session(
    tx: &mut crate::sql::Tx,
    patient: PatientId,
    session: &Session,
) -> Result<()> {
    let Some(order_id) = session.dose_order_id else {
        return Ok(());
    };
    let bad = |m: String| StoreError::Invalid(FieldErrors::single("order_id", m));
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT patient_id, state FROM clinical_records WHERE id = $1 AND kind = 'dose_order'",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((owner, state)) = row else {
        return Err(bad(format!("no dose order {order_id}")));
    };
    if owner != patient.get() {
        return Err(bad(format!(
            "dose order {order_id} belongs to another patient"
        )));
    }
    if state != "verified" {
        return Err(bad(format!(
            "dose order {order_id} is {}: a session is scheduled only for an order verified by a second clinician",
            state.replace('_', " ")
        )));
    }
    if session
        .checklist
        .dose
        .as_ref()
        .is_some_and(|d| d.order_id != order_id)
    {
        return Err(bad(format!(
            "the attached dose is not dose order {order_id}"
        )));
    }
    Ok(())
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

const SESSION_COLUMNS: &str = "id, patient_id, revision, body, created_by, created_at, updated_at";

/// A `treatment_sessions` row as stored (`SESSION_COLUMNS`).
#[derive(sqlx::FromRow)]
struct SessionRow {
    id: i64,
    patient_id: i64,
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
            patient_id: PatientId::new(r.patient_id),
            revision: r.revision,
            session,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const VITAL_COLUMNS: &str = "id, session_id, at, received_at, source, recorded_by, message_key, control_id, systolic, diastolic, heart_rate, spo2, resp_rate, etco2, temperature_c";

/// A `session_vitals` row as stored (`VITAL_COLUMNS`).
#[derive(sqlx::FromRow)]
struct VitalRow {
    id: i64,
    session_id: i64,
    at: String,
    received_at: String,
    source: String,
    recorded_by: String,
    message_key: Option<String>,
    control_id: Option<String>,
    systolic: Option<f64>,
    diastolic: Option<f64>,
    heart_rate: Option<f64>,
    spo2: Option<f64>,
    resp_rate: Option<f64>,
    etco2: Option<f64>,
    temperature_c: Option<f64>,
}

impl TryFrom<VitalRow> for StoredVital {
    type Error = StoreError;
    fn try_from(r: VitalRow) -> Result<Self> {
        Ok(StoredVital {
            id: r.id,
            session_id: r.session_id,
            reading: VitalReading {
                at: r.at.parse().map_err(|_| corrupt("vital time", &r.at))?,
                vitals: Vitals {
                    systolic: r.systolic,
                    diastolic: r.diastolic,
                    heart_rate: r.heart_rate,
                    spo2: r.spo2,
                    resp_rate: r.resp_rate,
                    etco2: r.etco2,
                    temperature_c: r.temperature_c,
                },
                source: VitalSource::parse(&r.source)
                    .ok_or_else(|| corrupt("vital source", &r.source))?,
                by: r.recorded_by,
                // Rows before migration 0009 hold only the joined key.
                control_id: r.control_id.or_else(|| {
                    r.message_key
                        .map(|k| k.rsplit('|').next().unwrap_or_default().to_owned())
                }),
            },
            received_at: r.received_at,
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

async fn load_session(tx: &mut Tx, id: i64) -> Result<SessionRecord> {
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

async fn load_vitals(tx: &mut Tx, id: i64) -> Result<Vec<StoredVital>> {
    sqlx::query_as::<_, VitalRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {VITAL_COLUMNS} FROM session_vitals WHERE session_id = $1 ORDER BY at_epoch, id"
    )))
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(StoredVital::try_from)
    .collect()
}

fn body_of(session: &Session) -> Result<String> {
    // Addenda live in their own append-only table.
    let mut s = session.clone();
    s.addenda.clear();
    serde_json::to_string(&s).map_err(|e| StoreError::Corrupt(format!("session document: {e}")))
}

async fn write_session(tx: &mut Tx, id: i64, session: &Session) -> Result<()> {
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
    Ok(())
}

fn alarm_summary(alarms: &[Alarm]) -> String {
    alarms
        .iter()
        .map(|a| format!("alarm {} {}", a.id, a.kind.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_treatment_session(
        &self,
        actor: &Actor,
        patient: PatientId,
        session: &Session,
    ) -> Result<SessionRecord> {
        require(actor, Permission::RunSession)?;
        if session.chair.is_empty() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "chair", "required",
            )));
        }
        let mut tx = self.unit(actor).await?;
        crate::sql::load_patient(&mut tx, patient).await?;
        check_order_for_session(&mut tx, patient, session).await?;
        let now = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO treatment_sessions (patient_id, chair, phase, body, revision, signed, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 1, 0, $5, $6, $6) RETURNING id",
        )
        .bind(patient.get())
        .bind(&session.chair)
        .bind(session.phase.as_str())
        .bind(body_of(session)?)
        .bind(&actor.username)
        .bind(&now)
        .fetch_one(&mut **tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        tx.audit(&AuditEvent::new(
            "session.create",
            Some(patient.get()),
            format!(
                "session {id}: {} on {}",
                session.plan.protocol_id, session.chair
            ),
        ))
        .await?;
        let rec = load_session(&mut tx, id).await?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn session_record(&self, actor: &Actor, id: i64) -> Result<SessionRecord> {
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let rec = load_session(&mut tx, id).await?;
        tx.audit(&AuditEvent::new(
            "session.read",
            Some(rec.patient_id.get()),
            format!("session {id}"),
        ))
        .await?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn apply_session_command(
        &self,
        actor: &Actor,
        id: i64,
        command: &Command,
        now: Timestamp,
    ) -> Result<SessionRecord> {
        let permission = if command.needs_sign_permission() {
            Permission::SignSession
        } else {
            Permission::RunSession
        };
        let mut tx = self.write(actor, permission).await?;
        let mut rec = load_session(&mut tx, id).await?;
        let before = rec.session.phase;
        let addenda_before = rec.session.addenda.len();
        crate::session_ops::refresh_consent(&mut tx, rec.patient_id, &mut rec.session, now).await?;
        if let Command::Sign = command {
            crate::session_ops::refresh_ledger(&mut tx, id, rec.patient_id, &mut rec.session, now)
                .await?;
        }
        rec.session
            .apply(command, &actor.username, now)
            .map_err(|r| StoreError::Conflict(r.to_string()))?;
        if let Command::Addendum { .. } = command {
            for a in &rec.session.addenda[addenda_before..] {
                sqlx::query(
                    "INSERT INTO session_addenda (session_id, at, written_by, text) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(a.at.to_string())
                .bind(&a.by)
                .bind(&a.text)
                .execute(&mut **tx)
                .await?;
            }
        } else {
            write_session(&mut tx, id, &rec.session).await?;
        }
        let after = rec.session.phase;
        let detail = if before == after {
            format!("session {id}: {}", command.name())
        } else {
            format!(
                "session {id}: {} ({} -> {})",
                command.name(),
                before.as_str(),
                after.as_str()
            )
        };
        let action = match command {
            Command::Sign => "session.sign",
            Command::Addendum { .. } => "session.addendum",
            Command::AcknowledgeAlarm { .. } => "session.alarm.acknowledge",
            Command::ResolveAlarm { .. } => "session.alarm.resolve",
            _ => "session.update",
        };
        tx.audit(&AuditEvent::new(action, Some(rec.patient_id.get()), detail))
            .await?;
        let rec = load_session(&mut tx, id).await?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn record_vital(
        &self,
        actor: &Actor,
        id: i64,
        reading: &VitalReading,
        message_key: Option<&MessageKey>,
    ) -> Result<VitalOutcome> {
        require(actor, Permission::RunSession)?;
        if let Err(errs) = reading.vitals.validate() {
            let mut f = FieldErrors::new();
            for e in errs {
                f.push(&e.field, e.message);
            }
            return Err(StoreError::Invalid(f));
        }
        // Vitals arrive from many monitors at once: queue them here rather than in SQLite's busy
        // handler, whose sleeps would show as latency spikes (PostgreSQL queues on the row lock).
        let _queue = match self.backend {
            crate::Backend::Sqlite => Some(self.vital_writes.lock().await),
            crate::Backend::Postgres => None,
        };
        let mut tx = self.unit(actor).await?;
        if let Some(key) = message_key {
            let dup: Option<(i64, i64)> = sqlx::query_as(
                "SELECT id, session_id FROM session_vitals
                 WHERE (sending_application = $1 AND sending_facility = $2 AND control_id = $3)
                    OR (control_id IS NULL AND message_key = $4)",
            )
            .bind(&key.sending_application)
            .bind(&key.sending_facility)
            .bind(&key.control_id)
            .bind(key.legacy())
            .fetch_optional(&mut **tx)
            .await?;
            if let Some((vital_id, session_id)) = dup {
                // A message already stored: nothing written, nothing to record; the unit is
                // dropped.
                return Ok(VitalOutcome::Duplicate {
                    vital_id,
                    session_id,
                });
            }
        }
        let mut rec = load_session(&mut tx, id).await?;
        rec.session
            .accepts_vitals()
            .map_err(|r| StoreError::Conflict(r.to_string()))?;
        let v = &reading.vitals;
        let received_at = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO session_vitals (session_id, at, at_epoch, received_at, source, recorded_by, sending_application, sending_facility, control_id, systolic, diastolic, heart_rate, spo2, resp_rate, etco2, temperature_c)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
        )
        // Not cached: a statement prepared with an absent (NULL) reading would type that
        // parameter for every later message on PostgreSQL.
        .persistent(false)
        .bind(id)
        .bind(reading.at.to_string())
        .bind(reading.at.as_second())
        .bind(&received_at)
        .bind(reading.source.as_str())
        .bind(&reading.by)
        .bind(message_key.map(|k| k.sending_application.as_str()))
        .bind(message_key.map(|k| k.sending_facility.as_str()))
        .bind(message_key.map(|k| k.control_id.as_str()))
        .bind(v.systolic)
        .bind(v.diastolic)
        .bind(v.heart_rate)
        .bind(v.spo2)
        .bind(v.resp_rate)
        .bind(v.etco2)
        .bind(v.temperature_c)
        .fetch_one(&mut **tx)
        .await?;
        let vital_id: i64 = row.try_get("id")?;
        let alarms = rec.session.on_vital(reading);
        if !alarms.is_empty() {
            write_session(&mut tx, id, &rec.session).await?;
        }
        let mut detail = format!(
            "session {id}: vitals {} ({})",
            reading.vitals.summary(),
            reading.source.as_str()
        );
        if !alarms.is_empty() {
            detail.push_str(&format!("; raised {}", alarm_summary(&alarms)));
        }
        tx.audit(&AuditEvent::new(
            "session.vitals",
            Some(rec.patient_id.get()),
            detail,
        ))
        .await?;
        tx.commit().await?;
        Ok(VitalOutcome::Stored {
            vital: Box::new(StoredVital {
                id: vital_id,
                session_id: id,
                reading: reading.clone(),
                received_at,
            }),
            alarms,
            patient_id: rec.patient_id,
        })
    }

    async fn session_vitals(&self, actor: &Actor, id: i64) -> Result<Vec<StoredVital>> {
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let rec = load_session(&mut tx, id).await?;
        let vitals = load_vitals(&mut tx, id).await?;
        tx.audit(&AuditEvent::new(
            "session.vitals.read",
            Some(rec.patient_id.get()),
            format!("session {id}: {} readings", vitals.len()),
        ))
        .await?;
        tx.commit().await?;
        Ok(vitals)
    }

    async fn active_sessions(&self, actor: &Actor) -> Result<Vec<SessionRecord>> {
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let rows = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE phase IN ({}) ORDER BY chair, id",
            active_list()
        )))
        .fetch_all(&mut **tx)
        .await?;
        let recs: Vec<SessionRecord> = rows
            .into_iter()
            .map(SessionRecord::try_from)
            .collect::<Result<_>>()?;
        if recs.is_empty() {
            // No session, no patient shown: nothing to record, the unit is dropped.
            return Ok(recs);
        }
        for r in &recs {
            tx.audit(&AuditEvent::new(
                "session.read",
                Some(r.patient_id.get()),
                format!("session {} on the suite dashboard", r.id),
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(recs)
    }

    async fn patient_sessions(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<SessionRecord>> {
        require(actor, Permission::PatientRead)?;
        sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE patient_id = $1 ORDER BY id DESC"
        )))
        .bind(patient.get())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(SessionRecord::try_from)
        .collect()
    }

    async fn match_active_session(
        &self,
        patient_ids: &[String],
        locations: &[String],
    ) -> Result<MonitorMatch> {
        let mut ids: Vec<String> = Vec::new();
        for p in patient_ids
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            if !ids.iter().any(|i| i == p) {
                ids.push(p.to_owned());
            }
        }
        let locs: Vec<String> = locations
            .iter()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        if ids.is_empty() {
            // Only without a patient identifier: the patient seated at the location (the most
            // specific part first).
            for loc in locs.iter().rev() {
                if let Some((session_id, patient_id, _)) = self.seated_at(loc).await? {
                    return Ok(MonitorMatch::Session {
                        session_id,
                        patient_id,
                    });
                }
            }
            return Ok(MonitorMatch::NoSessionAtLocation { location: locs });
        }
        let mut patients: Vec<(PatientId, String)> = Vec::new();
        for id in &ids {
            if let Some((pid, mrn)) =
                sqlx::query_as::<_, (i64, String)>("SELECT id, mrn FROM patients WHERE mrn = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
            {
                let pid = PatientId::new(pid);
                if !patients.iter().any(|(p, _)| *p == pid) {
                    patients.push((pid, mrn));
                }
            }
        }
        let (patient_id, mrn) = match patients.as_slice() {
            [] => return Ok(MonitorMatch::UnknownPatient { ids }),
            [one] => one.clone(),
            several => {
                return Ok(MonitorMatch::SeveralPatients {
                    mrns: several.iter().map(|(_, m)| m.clone()).collect(),
                });
            }
        };
        let Some((session_id, patient_chair)) = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT id, chair FROM treatment_sessions WHERE patient_id = $1 AND phase IN ({}) ORDER BY id DESC",
            active_list()
        )))
        .bind(patient_id.get())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(MonitorMatch::NoActiveSession { mrn });
        };
        if !locs.iter().any(|l| l.eq_ignore_ascii_case(&patient_chair)) {
            // PV1-3 names another chair: refused when another patient is seated there.
            for loc in locs.iter().rev() {
                if let Some((other, _, seated_chair)) = self.seated_at(loc).await?
                    && other != session_id
                {
                    return Ok(MonitorMatch::ChairMismatch {
                        mrn,
                        patient_chair,
                        location: locs.join("/"),
                        seated_chair,
                    });
                }
            }
        }
        Ok(MonitorMatch::Session {
            session_id,
            patient_id,
        })
    }

    async fn tick_sessions(&self, actor: &Actor, now: Timestamp) -> Result<Vec<(i64, Vec<Alarm>)>> {
        require(actor, Permission::RunSession)?;
        // Evaluate outside the write lock (vitals keep flowing); only sessions with something to
        // raise are re-read and written, in a write transaction each.
        let rows = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE phase IN ('running', 'paused', 'observation', 'escalated') AND signed = 0"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::new();
        for row in rows {
            let mut rec = SessionRecord::try_from(row)?;
            let readings: Vec<VitalReading> = sqlx::query_as::<_, VitalRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {VITAL_COLUMNS} FROM session_vitals WHERE session_id = $1 ORDER BY at_epoch, id"
            )))
            .bind(rec.id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| StoredVital::try_from(r).map(|v| v.reading))
            .collect::<Result<_>>()?;
            if !rec.session.on_tick(&readings, now).is_empty() {
                due.push(rec.id);
            }
        }
        let mut out = Vec::new();
        for id in due {
            let mut tx = self.unit(actor).await?;
            let mut rec = load_session(&mut tx, id).await?;
            let readings: Vec<VitalReading> = load_vitals(&mut tx, id)
                .await?
                .into_iter()
                .map(|v| v.reading)
                .collect();
            let new = rec.session.on_tick(&readings, now);
            if new.is_empty() {
                // Raised meanwhile (or nothing due any more): nothing written, unit dropped.
                continue;
            }
            write_session(&mut tx, id, &rec.session).await?;
            tx.audit(&AuditEvent::new(
                "session.alarm.raise",
                Some(rec.patient_id.get()),
                format!("session {id}: raised {}", alarm_summary(&new)),
            ))
            .await?;
            tx.commit().await?;
            out.push((id, new));
        }
        Ok(out)
    }
}

impl SqlStore {
    /// The active session seated at a chair named `location` (any case): id, patient, chair.
    async fn seated_at(&self, location: &str) -> Result<Option<(i64, PatientId, String)>> {
        let row: Option<(i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, patient_id, chair FROM treatment_sessions WHERE LOWER(chair) = LOWER($1) AND phase IN ({}) ORDER BY id DESC",
            active_list()
        )))
        .bind(location)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, patient, chair)| (id, PatientId::new(patient), chair)))
    }
}
