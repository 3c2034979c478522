//! Measurement-based care: questionnaire responses, patient links, safety alerts, opioid lists,
//! per-course settings.
//!
//! Responses are stored once per submission key (a reload or double submit returns the stored
//! row). Links keep only a hash of their token, belong to one patient and one set of
//! instruments, expire, and are used once. A safety alert stays open until a clinician with
//! `ResolveSafetyAlert` documents the follow-up; every action on it is recorded.
//!
//! This module holds the `MeasuresStore` trait, its public types and the helpers the aggregates
//! share; each aggregate's queries are in its own file (`responses`, `links`, `alerts`,
//! `opioids`, `courses`, `texts`).

use crate::sql::{Tx, Unit, corrupt, load_patient, now_rfc3339};
use crate::status::{AlertStatus, LinkStatus};
use crate::{Result, SqlStore, StoreError, require};
use async_trait::async_trait;
use ketcare_core::audit::AuditEvent;
use ketcare_core::{
    Actor, AlertId, FieldErrors, GuardianId, LinkId, PatientId, Permission, ResponseId,
};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

mod alerts;
mod courses;
mod links;
mod opioids;
mod responses;
mod texts;
mod view;

use alerts::alert_action;
pub(crate) use alerts::raise_alert_tx;
use links::{check_expiry, link_in_unit};
pub(crate) use links::{insert_link, link_by_id_pool};
use responses::{insert_response, response_by_key};

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
    pub id: ResponseId,
    pub patient_id: PatientId,
    pub instrument: String,
    /// JSON array of answers.
    pub answers: String,
    pub total: Option<i64>,
    /// JSON of the scored result.
    pub result: String,
    pub taken_on: String,
    pub link_id: Option<LinkId>,
    pub recorded_by: String,
    pub recorded_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MeasureLink {
    pub id: LinkId,
    pub patient_id: PatientId,
    pub instruments: Vec<String>,
    pub status: LinkStatus,
    /// Epoch seconds.
    pub expires_at: i64,
    pub created_by: String,
    pub created_at: String,
    pub opened_at: Option<String>,
    pub completed_at: Option<String>,
    /// The guardian of record the link was sent to (`None`: the patient).
    pub guardian_id: Option<GuardianId>,
    /// To whom it was sent: "patient", or the guardian's name and relationship as they were.
    pub sent_to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct SafetyAlert {
    pub id: AlertId,
    pub patient_id: PatientId,
    pub response_id: Option<ResponseId>,
    pub instrument: String,
    pub item: i64,
    pub answer: i64,
    pub detail: String,
    pub status: AlertStatus,
    pub raised_by: String,
    pub raised_at: String,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    pub follow_up: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct AlertAction {
    pub alert_id: AlertId,
    pub action: String,
    pub note: String,
    pub done_by: String,
    pub done_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct OpioidRow {
    pub id: i64,
    pub patient_id: PatientId,
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
    pub patient_id: PatientId,
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
    async fn resolve_alert(
        &self,
        actor: &Actor,
        id: AlertId,
        follow_up: &str,
    ) -> Result<SafetyAlert>;
    /// Records an action on an open alert without closing it (a call attempt, a message left).
    async fn note_alert(&self, actor: &Actor, id: AlertId, note: &str) -> Result<AlertAction>;
    async fn alert_actions(&self, actor: &Actor, id: AlertId) -> Result<Vec<AlertAction>>;

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
    /// Every course still open on `today` (YYYY-MM-DD), with the date of the latest response
    /// to its instrument since it started: what the questionnaires-due list is computed from.
    /// Each listed patient is an audited access.
    async fn open_courses(
        &self,
        actor: &Actor,
        today: &str,
    ) -> Result<Vec<(MeasureCourse, Option<String>)>>;
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

// Responses, alerts, alert actions, opioid entries and courses are stored as they are shown
// (plain columns), so their types derive `FromRow` themselves; a link's instrument set is JSON.

async fn audit(tx: &mut Unit<'_>, action: &str, patient: PatientId, detail: String) -> Result<()> {
    tx.audit(&AuditEvent::new(action, Some(patient.get()), detail))
        .await
}

/// Reads rows of one table for a patient, each converted by `f`.
async fn rows_for<R, T>(
    tx: &mut Tx,
    sql: String,
    patient: PatientId,
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

impl SqlStore {
    /// Reads a patient's rows of one table (`sql` binds the patient as `$1`) for a reader
    /// holding `permission`: role-checked, the patient checked to exist, and audited.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn patient_rows<R, T: Send>(
        &self,
        permission: Permission,
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
        let mut tx = self.read_audited(actor, permission).await?;
        load_patient(&mut tx, patient).await?;
        let rows = rows_for(&mut tx, sql, patient, f).await?;
        audit(&mut tx, action, patient, format!("{} {what}", rows.len())).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// Each method calls the function of the same name in its aggregate's file.
#[async_trait]
impl MeasuresStore for SqlStore {
    async fn record_response(
        &self,
        actor: &Actor,
        patient: PatientId,
        response: &NewResponse,
    ) -> Result<(StoredResponse, bool)> {
        SqlStore::record_response(self, actor, patient, response).await
    }

    async fn patient_responses(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StoredResponse>> {
        SqlStore::patient_responses(self, actor, patient).await
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
        SqlStore::create_link(
            self,
            actor,
            patient,
            token_hash,
            instruments,
            expires_at,
            guardian,
        )
        .await
    }

    async fn patient_links(&self, actor: &Actor, patient: PatientId) -> Result<Vec<MeasureLink>> {
        SqlStore::patient_links(self, actor, patient).await
    }

    async fn open_link(&self, token_hash: &str, now: i64, address: &str) -> Result<MeasureLink> {
        SqlStore::open_link(self, token_hash, now, address).await
    }

    async fn submit_link(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        responses: &[NewResponse],
    ) -> Result<(MeasureLink, Vec<StoredResponse>, bool)> {
        SqlStore::submit_link(self, token_hash, now, address, responses).await
    }

    async fn raise_link_alerts(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        instrument: &str,
        alerts: &[NewAlert],
    ) -> Result<Vec<SafetyAlert>> {
        SqlStore::raise_link_alerts(self, token_hash, now, address, instrument, alerts).await
    }

    async fn raise_incomplete_alerts(
        &self,
        actor: &Actor,
        patient: PatientId,
        instrument: &str,
        alerts: &[NewAlert],
    ) -> Result<Vec<SafetyAlert>> {
        SqlStore::raise_incomplete_alerts(self, actor, patient, instrument, alerts).await
    }

    async fn link_instruments(&self, token_hash: &str) -> Result<Vec<String>> {
        SqlStore::link_instruments(self, token_hash).await
    }

    async fn alert_state(&self, actor: &Actor) -> Result<(i64, i64)> {
        SqlStore::alert_state(self, actor).await
    }

    async fn open_alerts(&self, actor: &Actor) -> Result<Vec<SafetyAlert>> {
        SqlStore::open_alerts(self, actor).await
    }

    async fn patient_alerts(&self, actor: &Actor, patient: PatientId) -> Result<Vec<SafetyAlert>> {
        SqlStore::patient_alerts(self, actor, patient).await
    }

    async fn resolve_alert(
        &self,
        actor: &Actor,
        id: AlertId,
        follow_up: &str,
    ) -> Result<SafetyAlert> {
        SqlStore::resolve_alert(self, actor, id, follow_up).await
    }

    async fn note_alert(&self, actor: &Actor, id: AlertId, note: &str) -> Result<AlertAction> {
        SqlStore::note_alert(self, actor, id, note).await
    }

    async fn alert_actions(&self, actor: &Actor, id: AlertId) -> Result<Vec<AlertAction>> {
        SqlStore::alert_actions(self, actor, id).await
    }

    async fn add_opioid(
        &self,
        actor: &Actor,
        patient: PatientId,
        e: &NewOpioid,
    ) -> Result<OpioidRow> {
        SqlStore::add_opioid(self, actor, patient, e).await
    }

    async fn stop_opioid(
        &self,
        actor: &Actor,
        patient: PatientId,
        id: i64,
        stopped_on: &str,
    ) -> Result<OpioidRow> {
        SqlStore::stop_opioid(self, actor, patient, id, stopped_on).await
    }

    async fn patient_opioids(&self, actor: &Actor, patient: PatientId) -> Result<Vec<OpioidRow>> {
        SqlStore::patient_opioids(self, actor, patient).await
    }

    async fn save_course(
        &self,
        actor: &Actor,
        patient: PatientId,
        c: &NewCourse,
    ) -> Result<MeasureCourse> {
        SqlStore::save_course(self, actor, patient, c).await
    }

    async fn patient_courses(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<MeasureCourse>> {
        SqlStore::patient_courses(self, actor, patient).await
    }

    async fn open_courses(
        &self,
        actor: &Actor,
        today: &str,
    ) -> Result<Vec<(MeasureCourse, Option<String>)>> {
        SqlStore::open_courses(self, actor, today).await
    }

    async fn upload_item_texts(
        &self,
        actor: &Actor,
        instrument: &str,
        items: &[ItemText],
    ) -> Result<TextVersion> {
        SqlStore::upload_item_texts(self, actor, instrument, items).await
    }

    async fn current_item_texts(&self) -> Result<Vec<TextVersion>> {
        SqlStore::current_item_texts(self).await
    }

    async fn item_text_versions(&self, actor: &Actor) -> Result<Vec<TextVersion>> {
        SqlStore::item_text_versions(self, actor).await
    }
}
