//! Measurement-based care: questionnaire responses, patient links, safety alerts, opioid lists,
//! per-course settings.
//!
//! Responses are stored once per submission key (a reload or double submit returns the stored
//! row). Links keep only a hash of their token, belong to one patient and one set of
//! instruments, expire, and are used once. A safety alert stays open until a clinician with
//! `ResolveSafetyAlert` documents the follow-up; every action on it is recorded.

use crate::sql::{Tx, Unit, corrupt, load_patient, now_rfc3339};
use crate::{Result, SqlStore, StoreError, require};
use async_trait::async_trait;
use ketcare_core::audit::AuditEvent;
use ketcare_core::{Actor, FieldErrors, GuardianId, PatientId, Permission};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A response to store (scored by the caller with the pure core).
#[derive(Debug, Clone)]
pub struct NewResponse {
    pub instrument: String,
    /// JSON array of answers (`null` = unanswered).
    pub answers: String,
    pub total: Option<i64>,
    /// JSON of the scored result.
    pub result: String,
    /// YYYY-MM-DD.
    pub taken_on: String,
    /// Makes the write idempotent: the same key stores nothing new.
    pub submission_key: String,
    /// Positive suicide-risk answers: one alert each, in the same transaction.
    pub alerts: Vec<NewAlert>,
}

/// A safety alert to raise.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub item: i64,
    pub answer: i64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct StoredResponse {
    pub id: i64,
    pub patient_id: i64,
    pub instrument: String,
    /// JSON array of answers.
    pub answers: String,
    pub total: Option<i64>,
    /// JSON of the scored result.
    pub result: String,
    pub taken_on: String,
    pub link_id: Option<i64>,
    pub recorded_by: String,
    pub recorded_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MeasureLink {
    pub id: i64,
    pub patient_id: i64,
    pub instruments: Vec<String>,
    /// sent, opened or completed.
    pub status: String,
    /// Epoch seconds.
    pub expires_at: i64,
    pub created_by: String,
    pub created_at: String,
    pub opened_at: Option<String>,
    pub completed_at: Option<String>,
    /// The guardian of record the link was sent to (`None`: the patient).
    pub guardian_id: Option<i64>,
    /// To whom it was sent: "patient", or the guardian's name and relationship as they were.
    pub sent_to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct SafetyAlert {
    pub id: i64,
    pub patient_id: i64,
    pub response_id: Option<i64>,
    pub instrument: String,
    pub item: i64,
    pub answer: i64,
    pub detail: String,
    /// open or closed.
    pub status: String,
    pub raised_by: String,
    pub raised_at: String,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    pub follow_up: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct AlertAction {
    pub alert_id: i64,
    pub action: String,
    pub note: String,
    pub done_by: String,
    pub done_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct OpioidRow {
    pub id: i64,
    pub patient_id: i64,
    pub drug: String,
    pub dose: f64,
    pub unit: String,
    pub per_day: Option<f64>,
    pub route: Option<String>,
    pub started_on: String,
    pub stopped_on: Option<String>,
    pub recorded_by: String,
}

#[derive(Debug, Clone)]
pub struct NewOpioid {
    pub drug: String,
    pub dose: f64,
    pub unit: String,
    pub per_day: Option<f64>,
    pub route: Option<String>,
    pub started_on: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct MeasureCourse {
    pub id: i64,
    pub patient_id: i64,
    pub label: String,
    pub instrument: String,
    pub started_on: String,
    pub ended_on: Option<String>,
    pub booster_score_at_least: Option<i64>,
    pub booster_days: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewCourse {
    pub label: String,
    pub instrument: String,
    pub started_on: String,
    pub ended_on: Option<String>,
    pub booster_score_at_least: Option<i64>,
    pub booster_days: Option<i64>,
}

/// One version of the clinic's licensed wording for one instrument.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TextVersion {
    pub id: i64,
    pub instrument: String,
    /// 1, 2, … per instrument; the highest is the one shown.
    pub version: i64,
    pub uploaded_by: String,
    pub uploaded_at: String,
    pub items: Vec<ItemText>,
}

/// One item's licensed wording.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ItemText {
    pub item: i64,
    pub text: String,
}

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait MeasuresStore: Send + Sync {
    /// Stores a response entered by staff (and its alerts). Returns the row and whether it is
    /// new (false: the submission key was already stored for this patient).
    async fn record_response(
        &self,
        actor: &Actor,
        patient: PatientId,
        response: &NewResponse,
    ) -> Result<(StoredResponse, bool)>;
    async fn patient_responses(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StoredResponse>>;

    /// Creates a link for one patient and one set; only the token's hash is stored.
    async fn create_link(
        &self,
        actor: &Actor,
        patient: PatientId,
        token_hash: &str,
        instruments: &[String],
        expires_at: i64,
        guardian: Option<GuardianId>,
    ) -> Result<MeasureLink>;
    async fn patient_links(&self, actor: &Actor, patient: PatientId) -> Result<Vec<MeasureLink>>;
    /// Opens a link (no sign-in): refuses an unknown, expired or used link; marks it opened.
    async fn open_link(&self, token_hash: &str, now: i64, address: &str) -> Result<MeasureLink>;
    /// Stores a link's answers once, for the link's patient and set only. A repeat of a
    /// completed submission returns the stored rows (`false`); a link used once is closed.
    async fn submit_link(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        responses: &[NewResponse],
    ) -> Result<(MeasureLink, Vec<StoredResponse>, bool)>;

    /// Raises alerts from a link form that could not be stored yet (incomplete answers): a
    /// positive suicide-risk answer alerts the team at once. An alert already open for the same
    /// link, questionnaire and item is not raised twice. Refuses an unknown, expired or used link.
    async fn raise_link_alerts(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        instrument: &str,
        alerts: &[NewAlert],
    ) -> Result<Vec<SafetyAlert>>;

    /// Raises alerts from a staff-entered form that could not be stored yet (incomplete
    /// answers), as the link path does: a positive suicide-risk answer alerts the team at once,
    /// and nothing is stored as a score. Not raised twice while open.
    async fn raise_incomplete_alerts(
        &self,
        actor: &Actor,
        patient: PatientId,
        instrument: &str,
        alerts: &[NewAlert],
    ) -> Result<Vec<SafetyAlert>>;

    /// The questionnaires of a link, as stored (no sign-in: the token is the key; nothing is
    /// written). Refuses an unknown link.
    async fn link_instruments(&self, token_hash: &str) -> Result<Vec<String>>;

    async fn open_alerts(&self, actor: &Actor) -> Result<Vec<SafetyAlert>>;
    /// How many alerts are open and the newest alert id ever raised: changes whenever an alert
    /// is raised or closed. Holds no patient data, so pages may poll it without an audit entry.
    async fn alert_state(&self, actor: &Actor) -> Result<(i64, i64)>;
    async fn patient_alerts(&self, actor: &Actor, patient: PatientId) -> Result<Vec<SafetyAlert>>;
    /// Closes an alert with the documented follow-up (required, non-empty).
    async fn resolve_alert(&self, actor: &Actor, id: i64, follow_up: &str) -> Result<SafetyAlert>;
    /// Records an action on an open alert without closing it (a call attempt, a message left).
    async fn note_alert(&self, actor: &Actor, id: i64, note: &str) -> Result<AlertAction>;
    async fn alert_actions(&self, actor: &Actor, id: i64) -> Result<Vec<AlertAction>>;

    async fn add_opioid(
        &self,
        actor: &Actor,
        patient: PatientId,
        entry: &NewOpioid,
    ) -> Result<OpioidRow>;
    /// Stops an entry of this patient's list (another patient's entry is not found).
    async fn stop_opioid(
        &self,
        actor: &Actor,
        patient: PatientId,
        id: i64,
        stopped_on: &str,
    ) -> Result<OpioidRow>;
    async fn patient_opioids(&self, actor: &Actor, patient: PatientId) -> Result<Vec<OpioidRow>>;

    async fn save_course(
        &self,
        actor: &Actor,
        patient: PatientId,
        course: &NewCourse,
    ) -> Result<MeasureCourse>;
    async fn patient_courses(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<MeasureCourse>>;
    /// Stores a new version of the clinic's licensed wording for one instrument (administrators,
    /// `SiteSettingsWrite`; audited). The caller validates the text against the catalogue.
    async fn upload_item_texts(
        &self,
        actor: &Actor,
        instrument: &str,
        items: &[ItemText],
    ) -> Result<TextVersion>;
    /// The newest version per instrument: not patient data, read by the public questionnaire.
    async fn current_item_texts(&self) -> Result<Vec<TextVersion>>;
    /// Every version, newest first (administrators).
    async fn item_text_versions(&self, actor: &Actor) -> Result<Vec<TextVersion>>;
}

const RESPONSE_COLS: &str = "id, patient_id, instrument, answers, total, result, taken_on, link_id, recorded_by, recorded_at";
const LINK_COLS: &str = "id, patient_id, instruments, status, expires_at, created_by, created_at, opened_at, completed_at, guardian_id, sent_to";
const ALERT_COLS: &str = "id, patient_id, response_id, instrument, item, answer, detail, status, raised_by, raised_at, closed_by, closed_at, follow_up";
const OPIOID_COLS: &str =
    "id, patient_id, drug, dose, unit, per_day, route, started_on, stopped_on, recorded_by";
const COURSE_COLS: &str =
    "id, patient_id, label, instrument, started_on, ended_on, booster_score_at_least, booster_days";

// Responses, alerts, alert actions, opioid entries and courses are stored as they are shown
// (plain columns), so their types derive `FromRow` themselves; a link's instrument set is JSON.

/// A `measure_links` row as stored (`LINK_COLS`).
#[derive(sqlx::FromRow)]
struct LinkRow {
    id: i64,
    patient_id: i64,
    instruments: String,
    status: String,
    expires_at: i64,
    created_by: String,
    created_at: String,
    opened_at: Option<String>,
    completed_at: Option<String>,
    guardian_id: Option<i64>,
    sent_to: String,
}

impl TryFrom<LinkRow> for MeasureLink {
    type Error = StoreError;
    fn try_from(r: LinkRow) -> Result<Self> {
        Ok(MeasureLink {
            instruments: serde_json::from_str(&r.instruments)
                .map_err(|_| corrupt("measure_links.instruments", &r.instruments))?,
            id: r.id,
            patient_id: r.patient_id,
            status: r.status,
            expires_at: r.expires_at,
            created_by: r.created_by,
            created_at: r.created_at,
            opened_at: r.opened_at,
            completed_at: r.completed_at,
            guardian_id: r.guardian_id,
            sent_to: r.sent_to,
        })
    }
}

fn link_actor(link_id: i64, address: &str) -> Actor {
    Actor {
        user_id: None,
        username: format!("patient-link:{link_id}"),
        role: None,
        address: address.to_owned(),
    }
}

async fn audit(tx: &mut Unit<'_>, action: &str, patient: i64, detail: String) -> Result<()> {
    tx.audit(&AuditEvent::new(action, Some(patient), detail))
        .await
}

/// Reads rows of one table for a patient, each converted by `f`.
async fn rows_for<R, T>(
    tx: &mut Tx,
    sql: String,
    patient: i64,
    f: fn(R) -> Result<T>,
) -> Result<Vec<T>>
where
    R: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
{
    sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql))
        .bind(patient)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(f)
        .collect()
}

async fn response_by_key(tx: &mut Tx, key: &str) -> Result<Option<StoredResponse>> {
    Ok(
        sqlx::query_as::<_, StoredResponse>(sqlx::AssertSqlSafe(format!(
            "SELECT {RESPONSE_COLS} FROM measure_responses WHERE submission_key = $1"
        )))
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?,
    )
}

/// Inserts a response and its alerts (with their "raised" actions), or returns the stored one.
async fn insert_response(
    tx: &mut Unit<'_>,
    patient: i64,
    link_id: Option<i64>,
    r: &NewResponse,
) -> Result<(StoredResponse, bool)> {
    if r.submission_key.trim().is_empty() {
        return Err(StoreError::Invalid(FieldErrors::single(
            "submission_key",
            "required: a key that makes the submission idempotent",
        )));
    }
    if let Some(existing) = response_by_key(tx, &r.submission_key).await? {
        if existing.patient_id != patient {
            return Err(StoreError::Conflict(
                "submission_key: already used for another patient".into(),
            ));
        }
        return Ok((existing, false));
    }
    let actor = tx.actor();
    let now = now_rfc3339();
    let row = sqlx::query(
        "INSERT INTO measure_responses (patient_id, instrument, answers, total, result, taken_on, link_id, submission_key, recorded_by, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(patient)
    .bind(&r.instrument)
    .bind(&r.answers)
    .bind(r.total)
    .bind(&r.result)
    .bind(&r.taken_on)
    .bind(link_id)
    .bind(&r.submission_key)
    .bind(&actor.username)
    .bind(&now)
    .fetch_one(tx.conn())
    .await?;
    let id: i64 = row.try_get("id")?;
    audit(
        tx,
        "measure.record",
        patient,
        format!("response {id}: {}", r.instrument),
    )
    .await?;
    for a in &r.alerts {
        // An alert the incomplete form already raised is linked to the response, not repeated.
        let earlier = sqlx::query(
            "SELECT id FROM safety_alerts WHERE patient_id = $1 AND instrument = $2 AND item = $3 AND raised_by = $4 AND response_id IS NULL",
        )
        .bind(patient)
        .bind(&r.instrument)
        .bind(a.item)
        .bind(&actor.username)
        .fetch_optional(tx.conn())
        .await?;
        if let Some(e) = earlier {
            let alert_id: i64 = e.try_get("id")?;
            sqlx::query("UPDATE safety_alerts SET response_id = $1 WHERE id = $2")
                .bind(id)
                .bind(alert_id)
                .execute(tx.conn())
                .await?;
            continue;
        }
        let row = sqlx::query(
            "INSERT INTO safety_alerts (patient_id, response_id, instrument, item, answer, detail, status, raised_by, raised_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8) RETURNING id",
        )
        .bind(patient)
        .bind(id)
        .bind(&r.instrument)
        .bind(a.item)
        .bind(a.answer)
        .bind(&a.detail)
        .bind(&actor.username)
        .bind(&now)
        .fetch_one(tx.conn())
        .await?;
        let alert_id: i64 = row.try_get("id")?;
        alert_action(tx, alert_id, "raised", &a.detail, &actor.username, &now).await?;
        audit(
            tx,
            "safety_alert.raise",
            patient,
            format!("alert {alert_id}: {} item {}", r.instrument, a.item),
        )
        .await?;
    }
    let stored = sqlx::query_as::<_, StoredResponse>(sqlx::AssertSqlSafe(format!(
        "SELECT {RESPONSE_COLS} FROM measure_responses WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(tx.conn())
    .await?;
    Ok((stored, true))
}

async fn alert_action(
    tx: &mut Tx,
    alert: i64,
    action: &str,
    note: &str,
    by: &str,
    at: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO safety_alert_actions (alert_id, action, note, done_by, done_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(alert)
        .bind(action)
        .bind(note)
        .bind(by)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Raises alerts from a form that could not be stored yet (incomplete answers), by whoever
/// entered it; an alert already open for the same patient, questionnaire, item and author is not
/// raised twice (and is joined to the response once the complete form is stored).
async fn raise_alerts_tx(
    tx: &mut Unit<'_>,
    patient: i64,
    instrument: &str,
    alerts: &[NewAlert],
) -> Result<Vec<SafetyAlert>> {
    let actor = tx.actor();
    let mut raised = Vec::new();
    for a in alerts {
        let existing = sqlx::query(
            "SELECT id FROM safety_alerts WHERE patient_id = $1 AND instrument = $2 AND item = $3 AND raised_by = $4 AND status = 'open'",
        )
        .bind(patient)
        .bind(instrument)
        .bind(a.item)
        .bind(&actor.username)
        .fetch_optional(tx.conn())
        .await?;
        if existing.is_some() {
            continue;
        }
        let at = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO safety_alerts (patient_id, instrument, item, answer, detail, status, raised_by, raised_at)
             VALUES ($1, $2, $3, $4, $5, 'open', $6, $7) RETURNING id",
        )
        .bind(patient)
        .bind(instrument)
        .bind(a.item)
        .bind(a.answer)
        .bind(&a.detail)
        .bind(&actor.username)
        .bind(&at)
        .fetch_one(tx.conn())
        .await?;
        let id: i64 = row.try_get("id")?;
        alert_action(tx, id, "raised", &a.detail, &actor.username, &at).await?;
        audit(
            tx,
            "safety_alert.raise",
            patient,
            format!(
                "alert {id}: {instrument} item {} (form not complete)",
                a.item
            ),
        )
        .await?;
        raised.push(alert_by_id(tx, id).await?);
    }
    Ok(raised)
}

async fn link_by_hash(tx: &mut Tx, token_hash: &str) -> Result<MeasureLink> {
    sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINK_COLS} FROM measure_links WHERE token_hash = $1"
    )))
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await?
    .map(MeasureLink::try_from)
    .transpose()?
    .ok_or_else(|| StoreError::NotFound {
        what: "questionnaire link".into(),
    })
}

async fn link_by_id(tx: &mut Tx, id: i64) -> Result<MeasureLink> {
    let r = sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINK_COLS} FROM measure_links WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    MeasureLink::try_from(r)
}

async fn alert_by_id(tx: &mut Tx, id: i64) -> Result<SafetyAlert> {
    sqlx::query_as::<_, SafetyAlert>(sqlx::AssertSqlSafe(format!(
        "SELECT {ALERT_COLS} FROM safety_alerts WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("safety alert {id}"),
    })
}

impl SqlStore {
    /// The link's own actor (`patient-link:{id}`), from the stored link, for the unit its action
    /// runs in; `NotFound` when no link has this token.
    async fn link_actor_for(&self, token_hash: &str, address: &str) -> Result<Actor> {
        let row = sqlx::query("SELECT id FROM measure_links WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "questionnaire link".into(),
            })?;
        Ok(link_actor(row.try_get("id")?, address))
    }
}

/// The link, read again inside the unit of its actor (the token names the same link).
async fn link_in_unit(tx: &mut Unit<'_>, token_hash: &str, actor: &Actor) -> Result<MeasureLink> {
    let link = link_by_hash(tx, token_hash).await?;
    if actor.username != format!("patient-link:{}", link.id) {
        return Err(StoreError::NotFound {
            what: "questionnaire link".into(),
        });
    }
    Ok(link)
}

/// Commits a unit that raised alerts; one that raised none (all already open, or none given)
/// wrote nothing and has no record, so it is dropped.
async fn commit_if_raised(tx: Unit<'_>, raised: &[SafetyAlert]) -> Result<()> {
    if !raised.is_empty() {
        tx.commit().await?;
    }
    Ok(())
}

/// Refuses an expired link (used links are handled by the caller).
fn check_expiry(link: &MeasureLink, now: i64) -> Result<()> {
    if now >= link.expires_at {
        return Err(StoreError::Conflict("link: this link has expired".into()));
    }
    Ok(())
}

impl SqlStore {
    /// Reads a patient's rows of one table: role-checked and audited.
    async fn patient_rows<R, T: Send>(
        &self,
        actor: &Actor,
        patient: PatientId,
        sql: String,
        f: fn(R) -> Result<T>,
        action: &str,
        what: &str,
    ) -> Result<Vec<T>>
    where
        R: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
    {
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        load_patient(&mut tx, patient).await?;
        let rows = rows_for(&mut tx, sql, patient.get(), f).await?;
        audit(
            &mut tx,
            action,
            patient.get(),
            format!("{} {what}", rows.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(rows)
    }
}

#[async_trait]
impl MeasuresStore for SqlStore {
    async fn record_response(
        &self,
        actor: &Actor,
        patient: PatientId,
        response: &NewResponse,
    ) -> Result<(StoredResponse, bool)> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        load_patient(&mut tx, patient).await?;
        let out = insert_response(&mut tx, patient.get(), None, response).await?;
        // A repeated submission key returns the stored response and writes nothing: the unit
        // has no record and is dropped (rolled back) rather than committed.
        if out.1 {
            tx.commit().await?;
        }
        Ok(out)
    }

    async fn patient_responses(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StoredResponse>> {
        self.patient_rows(
            actor,
            patient,
            format!("SELECT {RESPONSE_COLS} FROM measure_responses WHERE patient_id = $1 ORDER BY taken_on, id"),
            Ok,
            "measure.read",
            "responses",
        )
        .await
    }

    async fn create_link(
        &self,
        actor: &Actor,
        patient: PatientId,
        token_hash: &str,
        instruments: &[String],
        expires_at: i64,
        guardian: Option<GuardianId>,
    ) -> Result<MeasureLink> {
        require(actor, Permission::RecordMeasures)?;
        if instruments.is_empty() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "instruments",
                "choose at least one questionnaire",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let record = load_patient(&mut tx, patient).await?;
        let sent_to = match guardian {
            None => "patient".to_string(),
            Some(g) => {
                let Some(found) = record.guardians.iter().find(|x| x.id == g) else {
                    return Err(StoreError::Invalid(FieldErrors::single(
                        "guardian_id",
                        "not a guardian of record of this patient",
                    )));
                };
                format!(
                    "{} ({})",
                    found.record.name,
                    found.record.relationship.as_str().replace('_', " ")
                )
            }
        };
        let set = serde_json::to_string(instruments)
            .map_err(|e| StoreError::Corrupt(format!("instruments: {e}")))?;
        let row = sqlx::query(
            "INSERT INTO measure_links (patient_id, token_hash, instruments, status, expires_at, created_by, created_at, guardian_id, sent_to)
             VALUES ($1, $2, $3, 'sent', $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(patient.get())
        .bind(token_hash)
        .bind(&set)
        .bind(expires_at)
        .bind(&actor.username)
        .bind(now_rfc3339())
        .bind(guardian.map(GuardianId::get))
        .bind(&sent_to)
        .fetch_one(&mut **tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        audit(
            &mut tx,
            "measure_link.create",
            patient.get(),
            format!("link {id} to {sent_to}: {}", instruments.join(", ")),
        )
        .await?;
        let link = link_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(link)
    }

    async fn patient_links(&self, actor: &Actor, patient: PatientId) -> Result<Vec<MeasureLink>> {
        self.patient_rows(
            actor,
            patient,
            format!("SELECT {LINK_COLS} FROM measure_links WHERE patient_id = $1 ORDER BY id DESC"),
            <MeasureLink as TryFrom<LinkRow>>::try_from,
            "measure_link.read",
            "links",
        )
        .await
    }

    async fn open_link(&self, token_hash: &str, now: i64, address: &str) -> Result<MeasureLink> {
        let actor = self.link_actor_for(token_hash, address).await?;
        let mut tx = self.unit(&actor).await?;
        let link = link_in_unit(&mut tx, token_hash, &actor).await?;
        if link.status == "completed" {
            return Err(StoreError::Conflict(
                "link: this link has already been used".into(),
            ));
        }
        check_expiry(&link, now)?;
        if link.status == "sent" {
            sqlx::query("UPDATE measure_links SET status = 'opened', opened_at = $1 WHERE id = $2")
                .bind(now_rfc3339())
                .bind(link.id)
                .execute(&mut **tx)
                .await?;
        }
        audit(
            &mut tx,
            "measure_link.open",
            link.patient_id,
            format!("link {}", link.id),
        )
        .await?;
        let link = link_by_id(&mut tx, link.id).await?;
        tx.commit().await?;
        Ok(link)
    }

    async fn submit_link(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        responses: &[NewResponse],
    ) -> Result<(MeasureLink, Vec<StoredResponse>, bool)> {
        let actor = self.link_actor_for(token_hash, address).await?;
        let mut tx = self.unit(&actor).await?;
        let link = link_in_unit(&mut tx, token_hash, &actor).await?;
        if link.status == "completed" {
            // A reload or double submit of the same answers: the stored rows, nothing new;
            // other answers on a used link are refused.
            let mut stored = Vec::new();
            for r in responses {
                match response_by_key(&mut tx, &r.submission_key).await? {
                    Some(s) if s.link_id == Some(link.id) && s.answers == r.answers => {
                        stored.push(s)
                    }
                    _ => {
                        return Err(StoreError::Conflict(
                            "link: this link has already been used".into(),
                        ));
                    }
                }
            }
            // Nothing was written or newly shown: the unit is dropped, not committed.
            return Ok((link, stored, false));
        }
        check_expiry(&link, now)?;
        let mut stored = Vec::new();
        for r in responses {
            if !link.instruments.contains(&r.instrument) {
                return Err(StoreError::Invalid(FieldErrors::single(
                    "instrument",
                    format!("{} is not part of this link's set", r.instrument),
                )));
            }
            stored.push(
                insert_response(&mut tx, link.patient_id, Some(link.id), r)
                    .await?
                    .0,
            );
        }
        let mut sent: Vec<&str> = responses.iter().map(|r| r.instrument.as_str()).collect();
        let mut set: Vec<&str> = link.instruments.iter().map(String::as_str).collect();
        sent.sort_unstable();
        set.sort_unstable();
        if sent != set {
            return Err(StoreError::Invalid(FieldErrors::single(
                "instruments",
                "every questionnaire of the link must be answered together",
            )));
        }
        sqlx::query(
            "UPDATE measure_links SET status = 'completed', completed_at = $1 WHERE id = $2",
        )
        .bind(now_rfc3339())
        .bind(link.id)
        .execute(&mut **tx)
        .await?;
        audit(
            &mut tx,
            "measure_link.complete",
            link.patient_id,
            format!("link {}", link.id),
        )
        .await?;
        let link = link_by_id(&mut tx, link.id).await?;
        tx.commit().await?;
        Ok((link, stored, true))
    }

    async fn raise_link_alerts(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        instrument: &str,
        alerts: &[NewAlert],
    ) -> Result<Vec<SafetyAlert>> {
        let actor = self.link_actor_for(token_hash, address).await?;
        let mut tx = self.unit(&actor).await?;
        let link = link_in_unit(&mut tx, token_hash, &actor).await?;
        if link.status == "completed" {
            return Err(StoreError::Conflict(
                "link: this link has already been used".into(),
            ));
        }
        check_expiry(&link, now)?;
        // Only the link's own questionnaires raise alerts through it.
        if !link.instruments.iter().any(|i| i == instrument) {
            return Err(StoreError::Invalid(FieldErrors::single(
                "instruments",
                format!("{instrument} is not part of this link's set"),
            )));
        }
        let raised = raise_alerts_tx(&mut tx, link.patient_id, instrument, alerts).await?;
        commit_if_raised(tx, &raised).await?;
        Ok(raised)
    }

    async fn raise_incomplete_alerts(
        &self,
        actor: &Actor,
        patient: PatientId,
        instrument: &str,
        alerts: &[NewAlert],
    ) -> Result<Vec<SafetyAlert>> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        load_patient(&mut tx, patient).await?;
        let raised = raise_alerts_tx(&mut tx, patient.get(), instrument, alerts).await?;
        commit_if_raised(tx, &raised).await?;
        Ok(raised)
    }

    async fn link_instruments(&self, token_hash: &str) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let link = link_by_hash(&mut tx, token_hash).await?;
        tx.commit().await?;
        Ok(link.instruments)
    }

    async fn alert_state(&self, actor: &Actor) -> Result<(i64, i64)> {
        require(actor, Permission::PatientRead)?;
        // Counts only, no patient's data: polled without an audit record, so no unit either.
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM safety_alerts WHERE status = 'open') AS n,
                    (SELECT COALESCE(MAX(id), 0) FROM safety_alerts) AS latest",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("latest")?))
    }

    async fn open_alerts(&self, actor: &Actor) -> Result<Vec<SafetyAlert>> {
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let rows: Vec<SafetyAlert> = sqlx::query_as::<_, SafetyAlert>(sqlx::AssertSqlSafe(
            format!("SELECT {ALERT_COLS} FROM safety_alerts WHERE status = 'open' ORDER BY id"),
        ))
        .fetch_all(&mut **tx)
        .await?;
        if rows.is_empty() {
            // No alert, no patient shown: nothing to record, the unit is dropped.
            return Ok(rows);
        }
        for a in &rows {
            audit(
                &mut tx,
                "safety_alert.read",
                a.patient_id,
                format!("alert {}", a.id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    async fn patient_alerts(&self, actor: &Actor, patient: PatientId) -> Result<Vec<SafetyAlert>> {
        self.patient_rows(
            actor,
            patient,
            format!(
                "SELECT {ALERT_COLS} FROM safety_alerts WHERE patient_id = $1 ORDER BY id DESC"
            ),
            Ok,
            "safety_alert.read",
            "alerts",
        )
        .await
    }

    async fn resolve_alert(&self, actor: &Actor, id: i64, follow_up: &str) -> Result<SafetyAlert> {
        require(actor, Permission::ResolveSafetyAlert)?;
        let follow_up = follow_up.trim();
        if follow_up.is_empty() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "follow_up",
                "required: document the follow-up (who assessed the patient, what was decided)",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let alert = alert_by_id(&mut tx, id).await?;
        if alert.status != "open" {
            return Err(StoreError::Conflict(format!(
                "safety alert {id} is already closed"
            )));
        }
        let now = now_rfc3339();
        sqlx::query("UPDATE safety_alerts SET status = 'closed', closed_by = $1, closed_at = $2, follow_up = $3 WHERE id = $4")
            .bind(&actor.username)
            .bind(&now)
            .bind(follow_up)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        alert_action(&mut tx, id, "resolved", follow_up, &actor.username, &now).await?;
        audit(
            &mut tx,
            "safety_alert.resolve",
            alert.patient_id,
            format!("alert {id}"),
        )
        .await?;
        let alert = alert_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(alert)
    }

    async fn note_alert(&self, actor: &Actor, id: i64, note: &str) -> Result<AlertAction> {
        require(actor, Permission::ResolveSafetyAlert)?;
        let note = note.trim();
        if note.is_empty() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "note",
                "required: what was done",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let alert = alert_by_id(&mut tx, id).await?;
        if alert.status != "open" {
            return Err(StoreError::Conflict(format!(
                "safety alert {id} is already closed"
            )));
        }
        let now = now_rfc3339();
        alert_action(&mut tx, id, "note", note, &actor.username, &now).await?;
        audit(
            &mut tx,
            "safety_alert.note",
            alert.patient_id,
            format!("alert {id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(AlertAction {
            alert_id: id,
            action: "note".into(),
            note: note.into(),
            done_by: actor.username.clone(),
            done_at: now,
        })
    }

    async fn alert_actions(&self, actor: &Actor, id: i64) -> Result<Vec<AlertAction>> {
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let alert = alert_by_id(&mut tx, id).await?;
        let rows = sqlx::query_as::<_, AlertAction>("SELECT alert_id, action, note, done_by, done_at FROM safety_alert_actions WHERE alert_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&mut **tx)
            .await?;
        audit(
            &mut tx,
            "safety_alert.read",
            alert.patient_id,
            format!("alert {id} actions"),
        )
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn add_opioid(
        &self,
        actor: &Actor,
        patient: PatientId,
        e: &NewOpioid,
    ) -> Result<OpioidRow> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        load_patient(&mut tx, patient).await?;
        let row = sqlx::query(
            "INSERT INTO opioid_entries (patient_id, drug, dose, unit, per_day, route, started_on, recorded_by, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(patient.get())
        .bind(&e.drug)
        .bind(e.dose)
        .bind(&e.unit)
        .bind(e.per_day)
        .bind(e.route.as_deref())
        .bind(&e.started_on)
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        audit(
            &mut tx,
            "opioid.add",
            patient.get(),
            format!("opioid {id}: {}", e.drug),
        )
        .await?;
        let r = opioid_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn stop_opioid(
        &self,
        actor: &Actor,
        patient: PatientId,
        id: i64,
        stopped_on: &str,
    ) -> Result<OpioidRow> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        let before = opioid_by_id(&mut tx, id).await?;
        if before.patient_id != patient.get() {
            return Err(StoreError::NotFound {
                what: format!("opioid entry {id}"),
            });
        }
        if stopped_on < before.started_on.as_str() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "stopped_on",
                format!("must be on or after the start date {}", before.started_on),
            )));
        }
        sqlx::query("UPDATE opioid_entries SET stopped_on = $1 WHERE id = $2")
            .bind(stopped_on)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        audit(
            &mut tx,
            "opioid.stop",
            before.patient_id,
            format!("opioid {id}"),
        )
        .await?;
        let r = opioid_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn patient_opioids(&self, actor: &Actor, patient: PatientId) -> Result<Vec<OpioidRow>> {
        self.patient_rows(
            actor,
            patient,
            format!("SELECT {OPIOID_COLS} FROM opioid_entries WHERE patient_id = $1 ORDER BY started_on, id"),
            Ok,
            "opioid.read",
            "entries",
        )
        .await
    }

    async fn save_course(
        &self,
        actor: &Actor,
        patient: PatientId,
        c: &NewCourse,
    ) -> Result<MeasureCourse> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        load_patient(&mut tx, patient).await?;
        let row = sqlx::query(
            "INSERT INTO measure_courses (patient_id, label, instrument, started_on, ended_on, booster_score_at_least, booster_days, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(patient.get())
        .bind(&c.label)
        .bind(&c.instrument)
        .bind(&c.started_on)
        .bind(c.ended_on.as_deref())
        .bind(c.booster_score_at_least)
        .bind(c.booster_days)
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        audit(
            &mut tx,
            "measure_course.save",
            patient.get(),
            format!("course {id}: {}", c.instrument),
        )
        .await?;
        let r = sqlx::query_as::<_, MeasureCourse>(sqlx::AssertSqlSafe(format!(
            "SELECT {COURSE_COLS} FROM measure_courses WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
        let course = r;
        tx.commit().await?;
        Ok(course)
    }

    async fn patient_courses(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<MeasureCourse>> {
        self.patient_rows(
            actor,
            patient,
            format!("SELECT {COURSE_COLS} FROM measure_courses WHERE patient_id = $1 ORDER BY started_on, id"),
            Ok,
            "measure_course.read",
            "courses",
        )
        .await
    }

    async fn upload_item_texts(
        &self,
        actor: &Actor,
        instrument: &str,
        items: &[ItemText],
    ) -> Result<TextVersion> {
        require(actor, Permission::SiteSettingsWrite)?;
        if items.is_empty() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "items",
                "at least one item text is required",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let last: Option<i64> = sqlx::query(
            "SELECT MAX(version) AS v FROM measure_text_versions WHERE instrument = $1",
        )
        .bind(instrument)
        .fetch_one(&mut **tx)
        .await?
        .try_get("v")?;
        let version = last.unwrap_or(0) + 1;
        let id: i64 = sqlx::query(
            "INSERT INTO measure_text_versions (instrument, version, uploaded_by, uploaded_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(instrument)
        .bind(version)
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        for it in items {
            sqlx::query(
                "INSERT INTO measure_item_texts (version_id, item, text) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(it.item)
            .bind(&it.text)
            .execute(&mut **tx)
            .await?;
        }
        tx.audit(&AuditEvent::new(
            "measure_text.upload",
            None,
            format!("{instrument} version {version}: {} items", items.len()),
        ))
        .await?;
        let stored = text_versions(&mut tx, false)
            .await?
            .into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| StoreError::Corrupt("measure_text_versions: row vanished".into()))?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn current_item_texts(&self) -> Result<Vec<TextVersion>> {
        // Not patient data, read without an actor: no audit record, and a read transaction only.
        let mut tx = self.pool.begin().await?;
        let out = text_versions(&mut tx, true).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn item_text_versions(&self, actor: &Actor) -> Result<Vec<TextVersion>> {
        require(actor, Permission::SiteSettingsWrite)?;
        // The clinic's wording, not patient data: not audited, so a read transaction only.
        let mut tx = self.pool.begin().await?;
        let out = text_versions(&mut tx, false).await?;
        tx.commit().await?;
        Ok(out)
    }
}

async fn text_versions(tx: &mut Tx, only_current: bool) -> Result<Vec<TextVersion>> {
    let sql = if only_current {
        "SELECT id, instrument, version, uploaded_by, uploaded_at FROM measure_text_versions v
         WHERE version = (SELECT MAX(version) FROM measure_text_versions w WHERE w.instrument = v.instrument)
         ORDER BY instrument"
    } else {
        "SELECT id, instrument, version, uploaded_by, uploaded_at FROM measure_text_versions
         ORDER BY instrument, version DESC"
    };
    let heads: Vec<(i64, String, i64, String, String)> =
        sqlx::query_as(sql).fetch_all(&mut **tx).await?;
    let mut out = Vec::with_capacity(heads.len());
    for (id, instrument, version, uploaded_by, uploaded_at) in heads {
        let items = sqlx::query_as::<_, ItemText>(
            "SELECT item, text FROM measure_item_texts WHERE version_id = $1 ORDER BY item",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
        out.push(TextVersion {
            id,
            instrument,
            version,
            uploaded_by,
            uploaded_at,
            items,
        });
    }
    Ok(out)
}

async fn opioid_by_id(tx: &mut Tx, id: i64) -> Result<OpioidRow> {
    sqlx::query_as::<_, OpioidRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {OPIOID_COLS} FROM opioid_entries WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("opioid entry {id}"),
    })
}
