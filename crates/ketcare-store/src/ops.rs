//! Operations: chairs and bookings, consent, the controlled-substance ledger, billing.
//!
//! Decisions are made by `ketcare_ops` inside the write transaction (conflicts are checked
//! against the bookings as they are while the audit head is locked, and a ledger event is
//! replayed against every earlier entry), so two schedulers or two nurses cannot race past a
//! rule. Counts and discrepancies are ledger entries; their state is the ledger replayed.

use crate::sql::{Tx, Unit, corrupt, load_patient, now_rfc3339};
use crate::{Result, SqlStore, StoreError, require};
use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::DateTime;
use ketcare_core::audit::AuditEvent;
use ketcare_core::{Actor, AgeBands, FieldErrors, PatientId, Permission, Role, UserId};
use ketcare_ops::Drug;
use ketcare_ops::billing::PriceList;
use ketcare_ops::consent::{
    self, Assent, ConsentDocument, ConsentQuery, ConsentSignature, ConsentStatus, Section, Signer,
};
use ketcare_ops::ledger::chain::{self, LedgerBreak, LedgerRecord};
use ketcare_ops::ledger::products::Stock;
use ketcare_ops::ledger::{LedgerActor, LedgerEvent, LedgerState, SessionTarget, Witness};
use ketcare_ops::schedule::{
    Booking, BookingStatus, Conflict, MoveMode, MovePlan, OnSite, PhaseKind, Staffing,
};
use sqlx::Row;

/// A treatment chair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chair {
    pub id: i64,
    pub name: String,
}

/// A course being booked: its patient, template and protocol.
#[derive(Debug, Clone)]
pub struct NewCourse {
    pub patient_id: PatientId,
    pub template_id: String,
    pub protocol_id: String,
}

/// The outcome of a booking request: booked, or refused with each session's conflicts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum BookOutcome {
    Booked {
        course_id: Option<i64>,
        bookings: Vec<Booking>,
    },
    /// (index of the requested session, its conflicts); nothing was written.
    Refused(Vec<(usize, Vec<Conflict>)>),
}

/// A new consent document version (the version number is the next one for the protocol).
#[derive(Debug, Clone)]
pub struct NewConsentDocument {
    pub protocol_id: String,
    pub protocol_version: u32,
    pub off_label: bool,
    pub title: String,
    pub sections: Vec<Section>,
    pub valid_days: Option<u32>,
}

/// A signature to record under the protocol's current document.
#[derive(Debug, Clone)]
pub struct NewSignature {
    pub patient_id: PatientId,
    pub protocol_id: String,
    pub signer: Signer,
    pub assent: Option<Assent>,
    pub signed_at: Timestamp,
}

/// The result of checking the ledger's chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerVerification {
    pub entries: u64,
    pub broken: Option<LedgerBreak>,
}

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait OpsStore: Send + Sync {
    // Chairs and rosters
    async fn add_chair(&self, actor: &Actor, name: &str) -> Result<Chair>;
    async fn chairs(&self, actor: &Actor) -> Result<Vec<Chair>>;
    /// Puts a prescriber on site from `start` to `end` (clinic wall-clock time).
    async fn add_on_site(
        &self,
        actor: &Actor,
        user: UserId,
        start: DateTime,
        end: DateTime,
    ) -> Result<OnSite>;
    async fn on_site(&self, actor: &Actor, from: DateTime, to: DateTime) -> Result<Vec<OnSite>>;
    /// Staff of one role, for choosing a nurse, a prescriber or a witness (id, username, name).
    async fn staff(&self, actor: &Actor, role: Role) -> Result<Vec<(i64, String, String)>>;

    // Bookings
    /// Bookings that start before `to` and end after `from` (every status).
    async fn bookings(&self, actor: &Actor, from: DateTime, to: DateTime) -> Result<Vec<Booking>>;
    async fn booking(&self, actor: &Actor, id: i64) -> Result<Booking>;
    /// Books sessions (a course when `course` is given) if none conflicts; else writes nothing
    /// and returns every conflict. `id`, `course_id` and `status` of the requests are ignored.
    async fn book(
        &self,
        actor: &Actor,
        course: Option<&NewCourse>,
        requests: &[Booking],
        staffing: Staffing,
    ) -> Result<BookOutcome>;
    /// Plans moving a booking; when `apply` and the plan is clear, moves every booking in it.
    async fn move_booking(
        &self,
        actor: &Actor,
        id: i64,
        new_start: DateTime,
        mode: MoveMode,
        staffing: Staffing,
        apply: bool,
    ) -> Result<MovePlan>;
    /// Records attendance, a cancellation or a no-show (with a reason).
    async fn set_booking_status(
        &self,
        actor: &Actor,
        id: i64,
        status: BookingStatus,
        reason: &str,
    ) -> Result<Booking>;

    // Consent
    async fn add_consent_document(
        &self,
        actor: &Actor,
        doc: &NewConsentDocument,
    ) -> Result<ConsentDocument>;
    /// Every version of every document, newest first.
    async fn consent_documents(&self, actor: &Actor) -> Result<Vec<ConsentDocument>>;
    /// The newest document version of a protocol.
    async fn current_consent_document(
        &self,
        actor: &Actor,
        protocol_id: &str,
    ) -> Result<Option<ConsentDocument>>;
    async fn record_consent(&self, actor: &Actor, sig: &NewSignature) -> Result<ConsentSignature>;
    /// Withdraws one of the patient's consents as of `at`, recording who and why; from then on
    /// it is not valid. A consent already withdrawn, or another patient's, is not found.
    async fn withdraw_consent(
        &self,
        actor: &Actor,
        patient: PatientId,
        id: i64,
        at: Timestamp,
        reason: &str,
    ) -> Result<ConsentSignature>;
    async fn consent_signatures(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<ConsentSignature>>;
    /// Is consent valid for this patient under this protocol version at `at`? (audited)
    async fn consent_status(
        &self,
        actor: &Actor,
        patient: PatientId,
        protocol_id: &str,
        protocol_version: u32,
        at: Timestamp,
    ) -> Result<ConsentStatus>;

    // Ledger
    /// Appends an event if the ledger's rules accept it. Witnesses are named by user id; their
    /// name and role are taken from their accounts, never from the request.
    async fn ledger_append(&self, actor: &Actor, event: &LedgerEvent) -> Result<LedgerRecord>;
    async fn ledger_records(&self, actor: &Actor) -> Result<Vec<LedgerRecord>>;
    /// The ledger replayed: containers, sessions, discrepancies, reports.
    async fn ledger_state(&self, actor: &Actor) -> Result<LedgerState>;
    /// Checks the whole chain and names the first broken entry.
    async fn verify_ledger(&self) -> Result<LedgerVerification>;

    // Billing
    async fn set_price(&self, actor: &Actor, code: &str, cents: i64) -> Result<()>;
    async fn prices(&self, actor: &Actor) -> Result<PriceList>;
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::Invalid(FieldErrors::single(field, message))
}

fn parse_datetime(col: &str, s: &str) -> Result<DateTime> {
    s.parse().map_err(|_| corrupt(col, s))
}

fn parse_timestamp(col: &str, s: Option<&str>) -> Result<Option<Timestamp>> {
    s.map(|s| s.parse().map_err(|_| corrupt(col, s)))
        .transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(col: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| corrupt(col, s))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_u32(col: &str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(col, &v.to_string()))
}

const BOOKING_COLUMNS: &str = "id, course_id, patient_id, chair_id, nurse_id, prescriber_required, start_at, end_at, status, phase";

/// An `ops_bookings` row as stored (`BOOKING_COLUMNS`).
#[derive(sqlx::FromRow)]
struct BookingRow {
    id: i64,
    course_id: Option<i64>,
    patient_id: i64,
    chair_id: i64,
    nurse_id: i64,
    prescriber_required: i64,
    start_at: String,
    end_at: String,
    status: String,
    phase: String,
}

impl TryFrom<BookingRow> for Booking {
    type Error = StoreError;
    fn try_from(r: BookingRow) -> Result<Self> {
        Ok(Booking {
            id: r.id,
            course_id: r.course_id,
            patient_id: r.patient_id,
            chair_id: r.chair_id,
            nurse_id: r.nurse_id,
            prescriber_required: r.prescriber_required != 0,
            start: parse_datetime("start_at", &r.start_at)?,
            end: parse_datetime("end_at", &r.end_at)?,
            status: BookingStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            phase: PhaseKind::parse(&r.phase).ok_or_else(|| corrupt("phase", &r.phase))?,
        })
    }
}

const DOC_COLUMNS: &str = "id, protocol_id, protocol_version, version, title, sections, valid_days";

/// An `ops_consent_documents` row as stored (`DOC_COLUMNS`).
#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: i64,
    protocol_id: String,
    protocol_version: i64,
    version: i64,
    title: String,
    sections: String,
    valid_days: Option<i64>,
}

impl TryFrom<DocumentRow> for ConsentDocument {
    type Error = StoreError;
    fn try_from(r: DocumentRow) -> Result<Self> {
        Ok(ConsentDocument {
            id: r.id,
            protocol_version: to_u32("protocol_version", r.protocol_version)?,
            version: to_u32("version", r.version)?,
            sections: parse_json("sections", &r.sections)?,
            valid_days: r.valid_days.and_then(|v| u32::try_from(v).ok()),
            protocol_id: r.protocol_id,
            title: r.title,
        })
    }
}

const SIG_COLUMNS: &str = "id, patient_id, document_id, protocol_id, document_version, protocol_version, signer, assent, signed_at, expires_at, withdrawn_at, withdrawn_by, withdrawal_reason, recorded_by";

/// An `ops_consent_signatures` row as stored (`SIG_COLUMNS`).
#[derive(sqlx::FromRow)]
struct SignatureRow {
    id: i64,
    patient_id: i64,
    document_id: i64,
    protocol_id: String,
    document_version: i64,
    protocol_version: i64,
    signer: String,
    assent: Option<String>,
    signed_at: String,
    expires_at: Option<String>,
    withdrawn_at: Option<String>,
    withdrawn_by: Option<String>,
    withdrawal_reason: Option<String>,
    recorded_by: i64,
}

impl TryFrom<SignatureRow> for ConsentSignature {
    type Error = StoreError;
    fn try_from(r: SignatureRow) -> Result<Self> {
        Ok(ConsentSignature {
            id: r.id,
            patient_id: r.patient_id,
            document_id: r.document_id,
            document_version: to_u32("document_version", r.document_version)?,
            protocol_version: to_u32("protocol_version", r.protocol_version)?,
            signer: parse_json("signer", &r.signer)?,
            assent: r
                .assent
                .as_deref()
                .map(|a| parse_json("assent", a))
                .transpose()?,
            signed_at: parse_timestamp("signed_at", Some(&r.signed_at))?
                .ok_or_else(|| corrupt("signed_at", "(empty)"))?,
            expires_at: parse_timestamp("expires_at", r.expires_at.as_deref())?,
            withdrawn_at: parse_timestamp("withdrawn_at", r.withdrawn_at.as_deref())?,
            protocol_id: r.protocol_id,
            withdrawn_by: r.withdrawn_by,
            withdrawal_reason: r.withdrawal_reason,
            recorded_by: r.recorded_by,
        })
    }
}

async fn load_signature(tx: &mut Tx, id: i64) -> Result<ConsentSignature> {
    sqlx::query_as::<_, SignatureRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {SIG_COLUMNS} FROM ops_consent_signatures WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await?
    .try_into()
}

/// An `ops_ledger` row as stored (`LEDGER_COLUMNS`).
#[derive(sqlx::FromRow)]
struct LedgerRow {
    seq: i64,
    at: String,
    user_id: i64,
    username: String,
    role: String,
    kind: String,
    session_id: Option<i64>,
    body: String,
    prev_hash: String,
    hash: String,
}

impl From<LedgerRow> for LedgerRecord {
    fn from(r: LedgerRow) -> Self {
        LedgerRecord {
            seq: r.seq,
            at: r.at,
            user_id: r.user_id,
            username: r.username,
            role: r.role,
            kind: r.kind,
            session_id: r.session_id,
            body: r.body,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

const LEDGER_COLUMNS: &str =
    "seq, at, user_id, username, role, kind, session_id, body, prev_hash, hash";

async fn audit(
    tx: &mut Unit<'_>,
    action: &str,
    patient: Option<i64>,
    detail: String,
) -> Result<()> {
    tx.audit(&AuditEvent::new(action, patient, detail)).await
}

async fn load_booking(tx: &mut Tx, id: i64) -> Result<Booking> {
    let row = sqlx::query_as::<_, BookingRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM ops_bookings WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("booking {id}"),
    })?;
    Booking::try_from(row)
}

async fn bookings_in(tx: &mut Tx, from: DateTime, to: DateTime) -> Result<Vec<Booking>> {
    sqlx::query_as::<_, BookingRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM ops_bookings WHERE start_at < $1 AND end_at > $2 ORDER BY start_at, id"
    )))
    .bind(to.to_string())
    .bind(from.to_string())
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(Booking::try_from)
    .collect()
}

async fn on_site_in(tx: &mut Tx, from: DateTime, to: DateTime) -> Result<Vec<OnSite>> {
    sqlx::query_as::<_, (i64, String, String)>(
        "SELECT user_id, start_at, end_at FROM ops_on_site WHERE start_at < $1 AND end_at > $2 ORDER BY start_at",
    )
    .bind(to.to_string())
    .bind(from.to_string())
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(user_id, start, end)| {
        Ok(OnSite {
            user_id,
            start: parse_datetime("start_at", &start)?,
            end: parse_datetime("end_at", &end)?,
        })
    })
    .collect()
}

/// The window a set of bookings spans (for loading what they could conflict with).
fn span(bs: &[Booking]) -> Option<(DateTime, DateTime)> {
    let from = bs.iter().map(|b| b.start).min()?;
    let to = bs.iter().map(|b| b.end).max()?;
    Some((from, to))
}

async fn user_exists(tx: &mut Tx, id: i64) -> Result<Option<(String, Role)>> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT username, role FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    row.map(|(username, role)| {
        Ok((
            username,
            Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        ))
    })
    .transpose()
}

pub(crate) async fn ledger_records_tx(tx: &mut Tx) -> Result<Vec<LedgerRecord>> {
    Ok(sqlx::query_as::<_, LedgerRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LEDGER_COLUMNS} FROM ops_ledger ORDER BY seq"
    )))
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(LedgerRecord::from)
    .collect())
}

fn stock() -> Result<Stock> {
    Stock::builtin().map_err(|e| StoreError::Config(e.to_string()))
}

pub(crate) fn replay(records: &[LedgerRecord]) -> Result<LedgerState> {
    chain::replay(records, LedgerState::new(stock()?))
        .map_err(|b| StoreError::Corrupt(b.to_string()))
}

/// The consent record's answer inside a transaction (the session gate calls it in its own).
pub(crate) async fn consent_status_tx(
    tx: &mut Tx,
    patient: PatientId,
    protocol_id: &str,
    protocol_version: u32,
    at: Timestamp,
) -> Result<ConsentStatus> {
    let p = load_patient(tx, patient).await?;
    let bands = AgeBands::builtin().map_err(|e| StoreError::Config(e.to_string()))?;
    let day = at.to_zoned(jiff::tz::TimeZone::UTC).date();
    let is_minor = p
        .record
        .day_of_care(day, &bands)
        .map(|d| d.band.is_minor())
        .unwrap_or(true);
    let doc = sqlx::query_as::<_, DocumentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM ops_consent_documents WHERE protocol_id = $1 ORDER BY version DESC LIMIT 1"
        )))
        .bind(protocol_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(ConsentDocument::try_from)
        .transpose()?;
    let guardians: Vec<(i64, String)> = p
        .guardians
        .iter()
        .map(|g| (g.id.get(), g.record.name.clone()))
        .collect();
    let sigs = sqlx::query_as::<_, SignatureRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SIG_COLUMNS} FROM ops_consent_signatures WHERE patient_id = $1 AND protocol_id = $2"
        )))
        .bind(patient.get())
        .bind(protocol_id)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(ConsentSignature::try_from)
        .collect::<Result<Vec<_>>>()?;
    let status = consent::consent_valid(
        &ConsentQuery {
            patient_id: patient.get(),
            is_minor,
            protocol_id,
            protocol_version,
            current_document: doc.as_ref(),
            guardians: &guardians,
            at,
        },
        &sigs,
    );
    Ok(status)
}

/// The session a ledger draw or waste names, from its record: its patient, the drug of its
/// verified order (and the vial strength the order was prepared from, where the stored order
/// names one), and whether its state allows a draw or a waste. `None` when there is no such
/// session.
///
/// A draw is allowed once a verified dose order is attached to the session and until the
/// record is signed, except in a cancelled session: the ledger is reconciled before the
/// signature, so a draw made before dosing may still be entered after discharge or transfer,
/// but nothing is drawn for a session that was cancelled or is signed. A waste is allowed
/// until the record is signed (drug drawn for a session later cancelled is wasted).
async fn session_target(tx: &mut Tx, session_id: i64) -> Result<Option<SessionTarget>> {
    use ketcare_session::{Mode, Phase, Session};
    let Some((patient_id, body, signed)) = sqlx::query_as::<_, (i64, String, i64)>(
        "SELECT patient_id, body, signed FROM treatment_sessions WHERE id = $1",
    )
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let session: Session =
        serde_json::from_str(&body).map_err(|_| corrupt("treatment_sessions.body", &body))?;
    let mut drug = match session.plan.mode {
        Mode::Infusion => Drug::RacemicKetamine,
        Mode::Esketamine => Drug::Esketamine,
    };
    let mut vial = None;
    let dose = session.checklist.dose.as_ref();
    if let Some(d) = dose {
        // The stored order, where it is this patient's: its drug and vial strength.
        let order = sqlx::query(
            "SELECT body FROM clinical_records WHERE id = $1 AND patient_id = $2 AND kind = 'dose_order'",
        )
        .bind(d.order_id)
        .bind(patient_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(o) = order {
            let body: String = o.try_get("body")?;
            let v: serde_json::Value =
                serde_json::from_str(&body).map_err(|_| corrupt("clinical_records.body", &body))?;
            let calc = &v["calculation"];
            if !calc["esketamine"].is_null() {
                drug = Drug::Esketamine;
            } else if calc["components"].is_array() {
                drug = Drug::RacemicKetamine;
                vial = calc["components"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["preparation"]["vial_concentration"]["value"].as_f64())
                    .map(|mg_per_ml| (mg_per_ml * 1000.0).round() as i64)
                    .next();
            }
        }
    }
    let signed = signed != 0 || session.signature.is_some();
    let draw_refused = if signed {
        Some(format!(
            "session {session_id} is signed: its ledger is closed"
        ))
    } else if session.phase == Phase::Cancelled {
        Some(format!(
            "session {session_id} was cancelled: nothing is drawn for it"
        ))
    } else if dose.is_none() {
        Some(format!(
            "session {session_id} has no verified dose order attached: attach the verified order before drawing"
        ))
    } else {
        None
    };
    let waste_refused =
        signed.then(|| format!("session {session_id} is signed: its ledger is closed"));
    Ok(Some(SessionTarget {
        session_id,
        patient_id,
        drug,
        vial_milli_mg_per_ml: vial,
        draw_refused,
        waste_refused,
    }))
}

fn ledger_actor(actor: &Actor) -> Result<LedgerActor> {
    match (actor.user_id, actor.role) {
        (Some(id), Some(role)) => Ok(LedgerActor {
            user_id: id.get(),
            username: actor.username.clone(),
            role,
        }),
        _ => Err(StoreError::Forbidden {
            permission: Permission::LedgerDraw,
        }),
    }
}

impl SqlStore {
    /// Replaces each witness's name and role with those of their account.
    async fn resolve_witnesses(&self, tx: &mut Tx, event: &LedgerEvent) -> Result<LedgerEvent> {
        let mut e = event.clone();
        async fn fix(tx: &mut Tx, field: &str, w: &mut Witness) -> Result<()> {
            let (username, role) = user_exists(tx, w.user_id)
                .await?
                .ok_or_else(|| invalid(field, format!("no user {}", w.user_id)))?;
            w.username = username;
            w.role = role;
            Ok(())
        }
        match &mut e {
            LedgerEvent::Waste {
                witness: Some(w), ..
            } => fix(tx, "witness", w).await?,
            LedgerEvent::Destroy { witnesses, .. } => {
                for (i, w) in witnesses.iter_mut().enumerate() {
                    fix(tx, &format!("witnesses[{i}]"), w).await?;
                }
            }
            _ => {}
        }
        Ok(e)
    }
}

#[async_trait]
impl OpsStore for SqlStore {
    async fn add_chair(&self, actor: &Actor, name: &str) -> Result<Chair> {
        require(actor, Permission::Schedule)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(invalid("name", "a chair needs a name of 1–60 characters"));
        }
        let mut tx = self.unit(actor).await?;
        let taken = sqlx::query("SELECT id FROM ops_chairs WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
        if taken.is_some() {
            return Err(invalid("name", "a chair of that name exists"));
        }
        let id: i64 =
            sqlx::query("INSERT INTO ops_chairs (name, created_at) VALUES ($1, $2) RETURNING id")
                .bind(name)
                .bind(now_rfc3339())
                .fetch_one(&mut **tx)
                .await?
                .try_get("id")?;
        audit(&mut tx, "chair.create", None, format!("chair {id}: {name}")).await?;
        tx.commit().await?;
        Ok(Chair {
            id,
            name: name.to_owned(),
        })
    }

    async fn chairs(&self, actor: &Actor) -> Result<Vec<Chair>> {
        require(actor, Permission::Schedule)?;
        Ok(
            sqlx::query_as::<_, (i64, String)>("SELECT id, name FROM ops_chairs ORDER BY id")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|(id, name)| Chair { id, name })
                .collect(),
        )
    }

    async fn add_on_site(
        &self,
        actor: &Actor,
        user: UserId,
        start: DateTime,
        end: DateTime,
    ) -> Result<OnSite> {
        require(actor, Permission::Schedule)?;
        if end <= start {
            return Err(invalid("end", "must be after the start"));
        }
        let mut tx = self.unit(actor).await?;
        let (_, role) = user_exists(&mut tx, user.get())
            .await?
            .ok_or_else(|| invalid("user_id", "no such user"))?;
        if role != Role::Prescriber {
            return Err(invalid("user_id", "only a prescriber is rostered on site"));
        }
        sqlx::query("INSERT INTO ops_on_site (user_id, start_at, end_at) VALUES ($1, $2, $3)")
            .bind(user.get())
            .bind(start.to_string())
            .bind(end.to_string())
            .execute(&mut **tx)
            .await?;
        audit(
            &mut tx,
            "roster.prescriber_on_site",
            None,
            format!("user {user}: {start} – {end}"),
        )
        .await?;
        tx.commit().await?;
        Ok(OnSite {
            user_id: user.get(),
            start,
            end,
        })
    }

    async fn on_site(&self, actor: &Actor, from: DateTime, to: DateTime) -> Result<Vec<OnSite>> {
        require(actor, Permission::Schedule)?;
        let mut tx = self.pool.begin().await?;
        let out = on_site_in(&mut tx, from, to).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn staff(&self, actor: &Actor, role: Role) -> Result<Vec<(i64, String, String)>> {
        if !(actor.may(Permission::Schedule) || actor.may(Permission::LedgerRead)) {
            return Err(StoreError::Forbidden {
                permission: Permission::Schedule,
            });
        }
        Ok(sqlx::query_as(
            "SELECT id, username, display_name FROM users WHERE role = $1 ORDER BY username",
        )
        .bind(role.as_str())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn bookings(&self, actor: &Actor, from: DateTime, to: DateTime) -> Result<Vec<Booking>> {
        let mut tx = self.write(actor, Permission::Schedule).await?;
        let out = bookings_in(&mut tx, from, to).await?;
        // Each patient shown on the calendar is an audited access.
        let mut patients: Vec<i64> = out.iter().map(|b| b.patient_id).collect();
        patients.sort_unstable();
        patients.dedup();
        if patients.is_empty() {
            // No patient shown, nothing to record: the unit is dropped (nothing was written).
            return Ok(out);
        }
        for p in patients {
            audit(&mut tx, "schedule.view", Some(p), format!("{from} – {to}")).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn booking(&self, actor: &Actor, id: i64) -> Result<Booking> {
        let mut tx = self.write(actor, Permission::Schedule).await?;
        let b = load_booking(&mut tx, id).await?;
        audit(
            &mut tx,
            "booking.read",
            Some(b.patient_id),
            format!("booking {id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(b)
    }

    async fn book(
        &self,
        actor: &Actor,
        course: Option<&NewCourse>,
        requests: &[Booking],
        staffing: Staffing,
    ) -> Result<BookOutcome> {
        require(actor, Permission::Schedule)?;
        let Some((from, to)) = span(requests) else {
            return Err(invalid("sessions", "nothing to book"));
        };
        let mut tx = self.unit(actor).await?;
        let mut patients: Vec<i64> = requests.iter().map(|b| b.patient_id).collect();
        patients.dedup();
        for p in &patients {
            load_patient(&mut tx, PatientId::new(*p)).await?;
        }
        for b in requests {
            let chair = sqlx::query("SELECT id FROM ops_chairs WHERE id = $1")
                .bind(b.chair_id)
                .fetch_optional(&mut **tx)
                .await?;
            if chair.is_none() {
                return Err(invalid("chair_id", format!("no chair {}", b.chair_id)));
            }
            match user_exists(&mut tx, b.nurse_id).await? {
                Some((_, Role::Nurse)) => {}
                _ => {
                    return Err(invalid(
                        "nurse_id",
                        format!("user {} is not a nurse", b.nurse_id),
                    ));
                }
            }
        }
        let existing = bookings_in(&mut tx, from, to).await?;
        let prescribers = on_site_in(&mut tx, from, to).await?;
        let refused =
            ketcare_ops::schedule::conflicts_all(&existing, requests, &prescribers, staffing);
        if !refused.is_empty() {
            return Ok(BookOutcome::Refused(refused));
        }
        let now = now_rfc3339();
        let course_id = match course {
            Some(c) => {
                if patients != [c.patient_id.get()] {
                    return Err(invalid("patient_id", "a course is for one patient"));
                }
                Some(
                    sqlx::query(
                        "INSERT INTO ops_courses (patient_id, template_id, protocol_id, created_by, created_at)
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(c.patient_id.get())
                    .bind(&c.template_id)
                    .bind(&c.protocol_id)
                    .bind(&actor.username)
                    .bind(&now)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get::<i64, _>("id")?,
                )
            }
            None => None,
        };
        let mut booked = Vec::new();
        for b in requests {
            let id: i64 = sqlx::query(
                "INSERT INTO ops_bookings (course_id, patient_id, chair_id, nurse_id, prescriber_required, start_at, end_at, status, phase, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'booked', $8, $9) RETURNING id",
            )
            .bind(course_id)
            .bind(b.patient_id)
            .bind(b.chair_id)
            .bind(b.nurse_id)
            .bind(i64::from(b.prescriber_required))
            .bind(b.start.to_string())
            .bind(b.end.to_string())
            .bind(b.phase.as_str())
            .bind(&now)
            .fetch_one(&mut **tx)
            .await?
            .try_get("id")?;
            audit(
                &mut tx,
                "booking.create",
                Some(b.patient_id),
                format!("booking {id}: chair {} {} – {}", b.chair_id, b.start, b.end),
            )
            .await?;
            booked.push(load_booking(&mut tx, id).await?);
        }
        tx.commit().await?;
        Ok(BookOutcome::Booked {
            course_id,
            bookings: booked,
        })
    }

    async fn move_booking(
        &self,
        actor: &Actor,
        id: i64,
        new_start: DateTime,
        mode: MoveMode,
        staffing: Staffing,
        apply: bool,
    ) -> Result<MovePlan> {
        let mut tx = self.write(actor, Permission::Schedule).await?;
        let target = load_booking(&mut tx, id).await?;
        // Everything from the earlier of the two starts onwards may be involved.
        let from = target.start.min(new_start);
        let horizon = from
            .checked_add(jiff::Span::new().days(400))
            .map_err(|_| invalid("start", "out of range"))?;
        let existing = bookings_in(
            &mut tx,
            from.saturating_sub(jiff::Span::new().days(1)),
            horizon,
        )
        .await?;
        let prescribers = on_site_in(&mut tx, from, horizon).await?;
        let plan = ketcare_ops::schedule::plan_move(
            &existing,
            id,
            new_start,
            mode,
            &prescribers,
            staffing,
        )
        .map_err(|e| invalid("start", e.to_string()))?;
        // A clear plan with no move changes nothing (and has nothing to record).
        if apply && plan.is_clear() && !plan.moves.is_empty() {
            let now = now_rfc3339();
            for m in &plan.moves {
                let b = existing
                    .iter()
                    .find(|b| b.id == m.booking_id)
                    .ok_or_else(|| StoreError::Corrupt(format!("booking {}", m.booking_id)))?;
                let len = b
                    .start
                    .until(b.end)
                    .map_err(|_| corrupt("booking", &b.id.to_string()))?;
                let end =
                    m.to.checked_add(len)
                        .map_err(|_| invalid("start", "out of range"))?;
                sqlx::query("UPDATE ops_bookings SET start_at = $1, end_at = $2, updated_at = $3 WHERE id = $4")
                    .bind(m.to.to_string())
                    .bind(end.to_string())
                    .bind(&now)
                    .bind(m.booking_id)
                    .execute(&mut **tx)
                    .await?;
                audit(
                    &mut tx,
                    "booking.move",
                    Some(b.patient_id),
                    format!("booking {}: {} → {}", m.booking_id, m.from, m.to),
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(plan)
    }

    async fn set_booking_status(
        &self,
        actor: &Actor,
        id: i64,
        status: BookingStatus,
        reason: &str,
    ) -> Result<Booking> {
        require(actor, Permission::Schedule)?;
        if matches!(status, BookingStatus::Cancelled | BookingStatus::NoShow)
            && reason.trim().is_empty()
        {
            return Err(invalid("reason", "say why"));
        }
        let mut tx = self.unit(actor).await?;
        let b = load_booking(&mut tx, id).await?;
        let to = b
            .status
            .transition(status)
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        sqlx::query("UPDATE ops_bookings SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(to.as_str())
            .bind(reason.trim())
            .bind(now_rfc3339())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        audit(
            &mut tx,
            &format!("booking.{}", to.as_str()),
            Some(b.patient_id),
            format!("booking {id}: {}", reason.trim()),
        )
        .await?;
        let out = load_booking(&mut tx, id).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn add_consent_document(
        &self,
        actor: &Actor,
        doc: &NewConsentDocument,
    ) -> Result<ConsentDocument> {
        require(actor, Permission::RecordConsent)?;
        if doc.protocol_id.trim().is_empty() {
            return Err(invalid("protocol_id", "required"));
        }
        let mut tx = self.unit(actor).await?;
        let last: Option<i64> = sqlx::query(
            "SELECT MAX(version) AS v FROM ops_consent_documents WHERE protocol_id = $1",
        )
        .bind(&doc.protocol_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("v")?;
        let version =
            u32::try_from(last.unwrap_or(0) + 1).map_err(|_| corrupt("version", "overflow"))?;
        let d = ConsentDocument {
            id: 0,
            protocol_id: doc.protocol_id.clone(),
            protocol_version: doc.protocol_version,
            version,
            title: doc.title.trim().to_owned(),
            sections: doc.sections.clone(),
            valid_days: doc.valid_days,
        };
        d.check(doc.off_label)
            .map_err(|e| invalid(&e.field, e.message))?;
        let id: i64 = sqlx::query(
            "INSERT INTO ops_consent_documents (protocol_id, protocol_version, version, title, sections, valid_days, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&d.protocol_id)
        .bind(i64::from(d.protocol_version))
        .bind(i64::from(version))
        .bind(&d.title)
        .bind(to_json(&d.sections)?)
        .bind(d.valid_days.map(i64::from))
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        audit(
            &mut tx,
            "consent_document.create",
            None,
            format!("{} version {version}", d.protocol_id),
        )
        .await?;
        tx.commit().await?;
        Ok(ConsentDocument { id, ..d })
    }

    async fn consent_documents(&self, actor: &Actor) -> Result<Vec<ConsentDocument>> {
        require(actor, Permission::PatientRead)?;
        sqlx::query_as::<_, DocumentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM ops_consent_documents ORDER BY protocol_id, version DESC"
        )))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(ConsentDocument::try_from)
        .collect()
    }

    async fn current_consent_document(
        &self,
        actor: &Actor,
        protocol_id: &str,
    ) -> Result<Option<ConsentDocument>> {
        require(actor, Permission::PatientRead)?;
        sqlx::query_as::<_, DocumentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM ops_consent_documents WHERE protocol_id = $1 ORDER BY version DESC LIMIT 1"
        )))
        .bind(protocol_id)
        .fetch_optional(&self.pool)
        .await?
        .map(ConsentDocument::try_from)
        .transpose()
    }

    async fn record_consent(&self, actor: &Actor, sig: &NewSignature) -> Result<ConsentSignature> {
        require(actor, Permission::RecordConsent)?;
        let recorded_by = actor
            .user_id
            .ok_or(StoreError::Forbidden {
                permission: Permission::RecordConsent,
            })?
            .get();
        let mut tx = self.unit(actor).await?;
        let patient = load_patient(&mut tx, sig.patient_id).await?;
        let doc = sqlx::query_as::<_, DocumentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM ops_consent_documents WHERE protocol_id = $1 ORDER BY version DESC LIMIT 1"
        )))
        .bind(&sig.protocol_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(ConsentDocument::try_from)
        .transpose()?
        .ok_or_else(|| invalid("protocol_id", "this protocol has no consent document"))?;
        let bands = AgeBands::builtin().map_err(|e| StoreError::Config(e.to_string()))?;
        let day = sig.signed_at.to_zoned(jiff::tz::TimeZone::UTC).date();
        let minor = patient
            .record
            .day_of_care(day, &bands)
            .ok_or_else(|| invalid("signed_at", "before the patient's date of birth"))?
            .band
            .is_minor();
        let guardians: Vec<i64> = patient.guardians.iter().map(|g| g.id.get()).collect();
        consent::check_signer(minor, &sig.signer, sig.assent.as_ref(), &guardians)
            .map_err(|e| invalid(&e.field, e.message))?;
        // The guardian's name and relationship are the guardian record's, never the request's.
        let signer = match &sig.signer {
            Signer::Patient => Signer::Patient,
            Signer::Guardian {
                guardian_id,
                name,
                relationship,
            } => {
                let g = patient
                    .guardians
                    .iter()
                    .find(|g| g.id.get() == *guardian_id)
                    .ok_or_else(|| {
                        invalid(
                            "guardian_id",
                            "this person is not a guardian of record of the patient",
                        )
                    })?;
                let rec_name = g.record.name.trim().to_owned();
                let rec_rel = g.record.relationship.as_str().to_owned();
                let norm = |v: &str| v.trim().replace('_', " ").to_lowercase();
                let differs =
                    |typed: &str, held: &str| !typed.trim().is_empty() && norm(typed) != norm(held);
                if differs(name, &rec_name) {
                    return Err(invalid(
                        "signer.name",
                        format!(
                            "guardian {guardian_id} is {rec_name} on the patient's record, not {:?}",
                            name.trim()
                        ),
                    ));
                }
                if differs(relationship, &rec_rel) {
                    return Err(invalid(
                        "signer.relationship",
                        format!(
                            "guardian {guardian_id} is the patient's {rec_rel} on the record, not {:?}",
                            relationship.trim()
                        ),
                    ));
                }
                Signer::Guardian {
                    guardian_id: *guardian_id,
                    name: rec_name,
                    relationship: rec_rel,
                }
            }
        };
        // Whoever obtained the assent is an existing clinician account.
        if let Some(Assent::Given { obtained_by } | Assent::NotCapable { obtained_by, .. }) =
            &sig.assent
        {
            match user_exists(&mut tx, *obtained_by).await? {
                None => {
                    return Err(invalid(
                        "assent.obtained_by",
                        format!("no user {obtained_by}"),
                    ));
                }
                Some((username, role)) if !role.allows(Permission::RecordConsent) => {
                    return Err(invalid(
                        "assent.obtained_by",
                        format!(
                            "{username} is a {role}; assent is obtained by a clinician (prescriber or nurse)"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let expires = consent::expiry(&doc, sig.signed_at);
        let id: i64 = sqlx::query(
            "INSERT INTO ops_consent_signatures (patient_id, document_id, protocol_id, document_version, protocol_version, signer, assent, signed_at, expires_at, recorded_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(sig.patient_id.get())
        .bind(doc.id)
        .bind(&doc.protocol_id)
        .bind(i64::from(doc.version))
        .bind(i64::from(doc.protocol_version))
        .bind(to_json(&signer)?)
        .bind(sig.assent.as_ref().map(to_json).transpose()?)
        .bind(sig.signed_at.to_string())
        .bind(expires.map(|e| e.to_string()))
        .bind(recorded_by)
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        audit(
            &mut tx,
            "consent.sign",
            Some(sig.patient_id.get()),
            format!("{} document version {}", doc.protocol_id, doc.version),
        )
        .await?;
        let out = load_signature(&mut tx, id).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn withdraw_consent(
        &self,
        actor: &Actor,
        patient: PatientId,
        id: i64,
        at: Timestamp,
        reason: &str,
    ) -> Result<ConsentSignature> {
        require(actor, Permission::RecordConsent)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(invalid("reason", "say why the consent is withdrawn"));
        }
        let mut tx = self.unit(actor).await?;
        load_patient(&mut tx, patient).await?;
        sqlx::query(
            "SELECT id FROM ops_consent_signatures WHERE id = $1 AND patient_id = $2 AND withdrawn_at IS NULL",
        )
        .bind(id)
        .bind(patient.get())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("consent {id} in force for patient {}", patient.get()),
        })?;
        sqlx::query(
            "UPDATE ops_consent_signatures SET withdrawn_at = $1, withdrawn_by = $2, withdrawal_reason = $3 WHERE id = $4",
        )
        .bind(at.to_string())
        .bind(actor.username.as_str())
        .bind(reason)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        let out = load_signature(&mut tx, id).await?;
        audit(
            &mut tx,
            "consent.withdraw",
            Some(patient.get()),
            format!("consent {id} ({}) withdrawn: {reason}", out.protocol_id),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn consent_signatures(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<ConsentSignature>> {
        let mut tx = self.write(actor, Permission::PatientRead).await?;
        load_patient(&mut tx, patient).await?;
        let out = sqlx::query_as::<_, SignatureRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SIG_COLUMNS} FROM ops_consent_signatures WHERE patient_id = $1 ORDER BY signed_at DESC, id DESC"
        )))
        .bind(patient.get())
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(ConsentSignature::try_from)
        .collect::<Result<Vec<_>>>()?;
        audit(&mut tx, "consent.read", Some(patient.get()), String::new()).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn consent_status(
        &self,
        actor: &Actor,
        patient: PatientId,
        protocol_id: &str,
        protocol_version: u32,
        at: Timestamp,
    ) -> Result<ConsentStatus> {
        let mut tx = self.write(actor, Permission::PatientRead).await?;
        let status = consent_status_tx(&mut tx, patient, protocol_id, protocol_version, at).await?;
        audit(
            &mut tx,
            "consent.check",
            Some(patient.get()),
            format!(
                "{protocol_id}: {}",
                if status.is_valid() {
                    "valid"
                } else {
                    "not valid"
                }
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(status)
    }

    async fn ledger_append(&self, actor: &Actor, event: &LedgerEvent) -> Result<LedgerRecord> {
        require(actor, event.permission())?;
        let la = ledger_actor(actor)?;
        let mut tx = self.unit(actor).await?;
        // Lock the ledger's head too: the chain stays linear even if a future writer skips the
        // audit head.
        sqlx::query("UPDATE ops_ledger_head SET seq = seq WHERE id = 1")
            .execute(&mut **tx)
            .await?;
        let mut event = self.resolve_witnesses(&mut tx, event).await?;
        // A draw or a waste is checked against the session it names, as the record has it.
        let target = match event.session_id() {
            Some(sid) => session_target(&mut tx, sid).await?,
            None => None,
        };
        if let (LedgerEvent::Draw { patient_id, .. }, Some(t)) = (&mut event, &target)
            && *patient_id == 0
        {
            *patient_id = t.patient_id;
        }
        let records = ledger_records_tx(&mut tx).await?;
        let mut state = replay(&records)?;
        state
            .check_session(&event, target.as_ref())
            .map_err(|e| invalid(&e.field, e.message))?;
        if let LedgerEvent::Draw { patient_id, .. } = &event {
            load_patient(&mut tx, PatientId::new(*patient_id)).await?;
        }
        // An inventory records what the ledger holds at that moment, whatever the request says.
        let event = match event {
            LedgerEvent::Inventory {
                inventory,
                taken,
                time,
                registrant_name,
                registrant_address,
                dea_number,
                ..
            } => LedgerEvent::Inventory {
                inventory,
                taken,
                time,
                registrant_name,
                registrant_address,
                dea_number,
                lines: state.inventory_lines(),
            },
            other => other,
        };
        let (hseq, hhash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM ops_ledger_head WHERE id = 1")
                .fetch_one(&mut **tx)
                .await?;
        let prev = (hseq > 0).then_some((hseq, hhash.as_str()));
        let now = Timestamp::now();
        let rec =
            LedgerRecord::next(prev, now, &la, &event).map_err(|e| invalid(&e.field, e.message))?;
        state
            .apply(rec.seq, now, &la, &event)
            .map_err(|e| invalid(&e.field, e.message))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO ops_ledger ({LEDGER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )))
        .bind(rec.seq)
        .bind(&rec.at)
        .bind(rec.user_id)
        .bind(&rec.username)
        .bind(&rec.role)
        .bind(&rec.kind)
        .bind(rec.session_id)
        .bind(&rec.body)
        .bind(&rec.prev_hash)
        .bind(&rec.hash)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE ops_ledger_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(rec.seq)
            .bind(&rec.hash)
            .execute(&mut **tx)
            .await?;
        let patient = match &event {
            LedgerEvent::Draw { patient_id, .. } => Some(*patient_id),
            LedgerEvent::Waste { session_id, .. } => {
                state.sessions.get(session_id).map(|s| s.patient_id)
            }
            _ => None,
        };
        audit(
            &mut tx,
            &format!("ledger.{}", rec.kind),
            patient,
            format!("ledger entry {}", rec.seq),
        )
        .await?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn ledger_records(&self, actor: &Actor) -> Result<Vec<LedgerRecord>> {
        let mut tx = self.write(actor, Permission::LedgerRead).await?;
        let out = ledger_records_tx(&mut tx).await?;
        audit(
            &mut tx,
            "ledger.read",
            None,
            format!("{} entries", out.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn ledger_state(&self, actor: &Actor) -> Result<LedgerState> {
        let mut tx = self.write(actor, Permission::LedgerRead).await?;
        let records = ledger_records_tx(&mut tx).await?;
        audit(
            &mut tx,
            "ledger.read",
            None,
            format!("{} entries", records.len()),
        )
        .await?;
        tx.commit().await?;
        replay(&records)
    }

    async fn verify_ledger(&self) -> Result<LedgerVerification> {
        let mut tx = self.pool.begin().await?;
        let records = ledger_records_tx(&mut tx).await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM ops_ledger_head WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let head_ref = head
            .as_ref()
            .map(|(s, h)| (*s, h.as_str()))
            .filter(|(s, _)| *s > 0);
        let n = records.len() as u64;
        Ok(match chain::verify(&records, head_ref) {
            // An intact chain is also replayed: every entry must still obey the ledger's rules.
            Ok(n) => LedgerVerification {
                entries: n,
                broken: chain::replay(&records, LedgerState::new(stock()?)).err(),
            },
            Err(b) => LedgerVerification {
                entries: n,
                broken: Some(b),
            },
        })
    }

    async fn set_price(&self, actor: &Actor, code: &str, cents: i64) -> Result<()> {
        require(actor, Permission::SiteSettingsWrite)?;
        let book = ketcare_ops::billing::CodeBook::builtin()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        if book.get(code).is_none() {
            return Err(invalid("code", format!("unknown billing code `{code}`")));
        }
        if !(0..=100_000_000).contains(&cents) {
            return Err(invalid("price", "between 0 and 1,000,000.00"));
        }
        let mut tx = self.unit(actor).await?;
        let now = now_rfc3339();
        sqlx::query(
            "INSERT INTO ops_billing_prices (code, cents, set_by, set_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (code) DO UPDATE SET cents = excluded.cents, set_by = excluded.set_by, set_at = excluded.set_at",
        )
        .bind(code)
        .bind(cents)
        .bind(&actor.username)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
        audit(
            &mut tx,
            "billing.price",
            None,
            format!("{code}: {cents} cents"),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn prices(&self, actor: &Actor) -> Result<PriceList> {
        if !(actor.may(Permission::BillingRead) || actor.may(Permission::SiteSettingsWrite)) {
            return Err(StoreError::Forbidden {
                permission: Permission::BillingRead,
            });
        }
        let mut out = PriceList::default();
        for (code, cents) in sqlx::query_as::<_, (String, i64)>(
            "SELECT code, cents FROM ops_billing_prices ORDER BY code",
        )
        .fetch_all(&self.pool)
        .await?
        {
            out.0.insert(code, cents);
        }
        Ok(out)
    }
}
