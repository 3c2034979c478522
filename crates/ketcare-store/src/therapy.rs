//! Psychotherapy integration: therapy encounters and psychotherapy notes.
//!
//! An encounter's structured part (kind, time, duration, modality, themes, intentions, homework,
//! risk assessment) belongs to the medical record: written with `RecordTherapy`, read with
//! `ClinicalRead`, every read audited. A positive risk assessment raises the same urgent safety
//! alert as a questionnaire's suicide-risk item, in the encounter's transaction.
//!
//! A psychotherapy note (HIPAA §164.501) is kept in its own table. Its read is narrowed here, in
//! the query itself: only rows written by the acting account, or — where the site setting
//! [`NOTES_SHARED_SETTING`] is yes — rows of a patient the acting account has itself recorded
//! an encounter for (a treating therapist). Only `PsychotherapyNotes` (therapists) gets that far.
//! Notes are append-only: a correction is an amendment naming the note it amends. The audit
//! records the note's id and counts, never its text.

use crate::SessionRecord;
use crate::measures::{NewAlert, SafetyAlert, raise_alert_tx};
use crate::sql::{Unit, corrupt, load_patient, now_rfc3339};
use crate::{Result, SqlStore, StoreError};
use async_trait::async_trait;
use ketcare_core::audit::AuditEvent;
use ketcare_core::therapy::{EncounterKind, Modality, NewEncounter, SuicideRisk};
use ketcare_core::{
    Actor, AlertId, EncounterId, FieldErrors, PatientId, Permission, SessionId, TherapyNoteId,
};
use serde::Serialize;

/// Site setting (yes/no, unset = no): may the patient's other treating therapists read a
/// psychotherapy note, beside its author? Read by the store itself when it reads notes.
pub const NOTES_SHARED_SETTING: &str = "therapy.notes_to_treating_therapists_enabled";

/// The instrument name a therapy risk assessment's alert carries in the alert queue.
pub const RISK_ALERT_INSTRUMENT: &str = "therapy_risk_assessment";

/// A stored encounter: the structured part, as the medical record shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredEncounter {
    #[schema(value_type = i64)]
    pub id: EncounterId,
    #[schema(value_type = i64)]
    pub patient_id: PatientId,
    /// The patient's treatment course when the encounter was recorded (none: no course).
    pub course_id: Option<i64>,
    /// The dosing session it prepares for or integrates.
    #[schema(value_type = Option<i64>)]
    pub session_id: Option<SessionId>,
    pub kind: EncounterKind,
    /// `YYYY-MM-DDTHH:MM`, the clinic's wall-clock time.
    pub at: String,
    pub duration_minutes: i64,
    pub modality: Modality,
    pub themes: String,
    pub intentions: String,
    pub homework: String,
    pub suicide_risk: SuicideRisk,
    pub risk_note: String,
    /// The safety alert a positive risk assessment raised.
    #[schema(value_type = Option<i64>)]
    pub alert_id: Option<AlertId>,
    pub recorded_by: String,
    pub recorded_at: String,
}

#[derive(sqlx::FromRow)]
struct EncounterRow {
    id: EncounterId,
    patient_id: PatientId,
    course_id: Option<i64>,
    session_id: Option<SessionId>,
    kind: String,
    at: String,
    duration_minutes: i64,
    modality: String,
    themes: String,
    intentions: String,
    homework: String,
    suicide_risk: String,
    risk_note: String,
    alert_id: Option<AlertId>,
    recorded_by: String,
    recorded_at: String,
}

const ENCOUNTER_COLS: &str = "id, patient_id, course_id, session_id, kind, at, duration_minutes, modality, themes, intentions, homework, suicide_risk, risk_note, alert_id, recorded_by, recorded_at";

impl EncounterRow {
    fn into_encounter(self) -> Result<StoredEncounter> {
        Ok(StoredEncounter {
            kind: EncounterKind::parse(&self.kind)
                .ok_or_else(|| corrupt("encounter kind", &self.kind))?,
            modality: Modality::parse(&self.modality)
                .ok_or_else(|| corrupt("encounter modality", &self.modality))?,
            suicide_risk: SuicideRisk::parse(&self.suicide_risk)
                .ok_or_else(|| corrupt("encounter suicide risk", &self.suicide_risk))?,
            id: self.id,
            patient_id: self.patient_id,
            course_id: self.course_id,
            session_id: self.session_id,
            at: self.at,
            duration_minutes: self.duration_minutes,
            themes: self.themes,
            intentions: self.intentions,
            homework: self.homework,
            risk_note: self.risk_note,
            alert_id: self.alert_id,
            recorded_by: self.recorded_by,
            recorded_at: self.recorded_at,
        })
    }
}

/// A psychotherapy note, as its permitted readers see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct TherapyNote {
    #[schema(value_type = i64)]
    pub id: TherapyNoteId,
    #[schema(value_type = i64)]
    pub encounter_id: EncounterId,
    /// The note this one amends (an amendment never replaces the text it amends).
    #[schema(value_type = Option<i64>)]
    pub amends_id: Option<TherapyNoteId>,
    pub text: String,
    pub written_by: String,
    pub written_at: String,
}

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait TherapyStore: Send + Sync {
    /// Stores an encounter for `patient`, linked to the patient's newest treatment course (if
    /// any). A `session_id` that is not one of this patient's sessions is refused naming
    /// `session_id`. A positive suicide risk raises a safety alert (`alert`) in the same
    /// transaction.
    async fn record_encounter(
        &self,
        actor: &Actor,
        patient: PatientId,
        encounter: &NewEncounter,
        alert: Option<&NewAlert>,
    ) -> Result<StoredEncounter>;
    /// A patient's encounters, newest first (the clinical-read right; audited).
    async fn patient_encounters(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StoredEncounter>>;
    /// One encounter (the clinical-read right; audited).
    async fn encounter(&self, actor: &Actor, id: EncounterId) -> Result<StoredEncounter>;
    /// Minutes of in-person monitoring recorded for dosing session `session` (the sum of its
    /// monitoring encounters' durations; `None` when there is none), for its superbill: the
    /// billing-read right, audited `therapy_encounter.billing_read`. Nothing else of the
    /// encounters is read.
    async fn session_monitoring_minutes(
        &self,
        actor: &Actor,
        session: ketcare_core::SessionId,
    ) -> Result<Option<i64>>;
    /// Appends a psychotherapy note to an encounter, written by `actor` (a therapist), or an
    /// amendment of one of the actor's own notes of that encounter.
    async fn add_therapy_note(
        &self,
        actor: &Actor,
        encounter: EncounterId,
        text: &str,
        amends: Option<TherapyNoteId>,
    ) -> Result<TherapyNote>;
    /// The notes of an encounter that `actor` may read, oldest first: their own and, where the
    /// site allows, those of a patient they treat. Audited as `therapy_note.read` (ids and
    /// counts, never text), also when nothing was shown.
    async fn therapy_notes(
        &self,
        actor: &Actor,
        encounter: EncounterId,
    ) -> Result<Vec<TherapyNote>>;
    /// For the therapists' home queue: the sessions changed since `since` (RFC 3339) that gave
    /// a dose, and every integration encounter of their patients. Each patient shown is an
    /// audited access (`therapy.integration_watch`).
    async fn integration_watch(
        &self,
        actor: &Actor,
        since: &str,
    ) -> Result<(Vec<SessionRecord>, Vec<StoredEncounter>)>;
}

async fn audit(tx: &mut Unit<'_>, action: &str, patient: PatientId, detail: String) -> Result<()> {
    tx.audit(&AuditEvent::new(action, Some(patient.get()), detail))
        .await
}

async fn encounter_in(tx: &mut Unit<'_>, id: EncounterId) -> Result<StoredEncounter> {
    sqlx::query_as::<_, EncounterRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ENCOUNTER_COLS} FROM therapy_encounters WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("therapy encounter {id}"),
    })?
    .into_encounter()
}

/// Whether the site lets treating therapists read each other's notes.
async fn notes_shared(tx: &mut Unit<'_>) -> Result<bool> {
    crate::sql::setting_is_on(tx, NOTES_SHARED_SETTING).await
}

fn user_id(actor: &Actor) -> Result<i64> {
    actor.user_id.map(|u| u.get()).ok_or(StoreError::Forbidden {
        permission: Permission::PsychotherapyNotes,
    })
}

impl SqlStore {
    async fn record_encounter_impl(
        &self,
        actor: &Actor,
        patient: PatientId,
        e: &NewEncounter,
        alert: Option<&NewAlert>,
    ) -> Result<StoredEncounter> {
        let mut tx = self.write(actor, Permission::RecordTherapy).await?;
        load_patient(&mut tx, patient).await?;
        if let Some(sid) = e.session_id {
            let owner: Option<i64> =
                sqlx::query_scalar("SELECT patient_id FROM treatment_sessions WHERE id = $1")
                    .bind(sid)
                    .fetch_optional(tx.conn())
                    .await?;
            if owner != Some(patient.get()) {
                return Err(StoreError::Invalid(FieldErrors::single(
                    "session_id",
                    format!("session {sid} is not one of this patient's sessions"),
                )));
            }
        }
        let course: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM ops_courses WHERE patient_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(patient)
        .fetch_optional(tx.conn())
        .await?;
        let raised: Option<SafetyAlert> = match alert {
            Some(a) => Some(
                raise_alert_tx(
                    &mut tx,
                    patient,
                    RISK_ALERT_INSTRUMENT,
                    a,
                    "therapy encounter risk assessment",
                )
                .await?,
            ),
            None => None,
        };
        let id: EncounterId = sqlx::query_scalar(
            "INSERT INTO therapy_encounters (patient_id, course_id, session_id, kind, at, duration_minutes, modality, themes, intentions, homework, suicide_risk, risk_note, alert_id, recorded_by, recorded_by_id, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
        )
        .bind(patient)
        .bind(course)
        .bind(e.session_id)
        .bind(e.kind.as_str())
        .bind(e.at_text())
        .bind(e.duration_minutes)
        .bind(e.modality.as_str())
        .bind(&e.themes)
        .bind(&e.intentions)
        .bind(&e.homework)
        .bind(e.suicide_risk.as_str())
        .bind(&e.risk_note)
        .bind(raised.as_ref().map(|a| a.id))
        .bind(&actor.username)
        .bind(actor.user_id.map(|u| u.get()))
        .bind(now_rfc3339())
        .fetch_one(tx.conn())
        .await?;
        audit(
            &mut tx,
            "therapy_encounter.create",
            patient,
            format!("encounter {id}: {}", e.kind.as_str()),
        )
        .await?;
        let stored = encounter_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn patient_encounters_impl(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StoredEncounter>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        load_patient(&mut tx, patient).await?;
        let rows = sqlx::query_as::<_, EncounterRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {ENCOUNTER_COLS} FROM therapy_encounters WHERE patient_id = $1 ORDER BY at DESC, id DESC"
        )))
        .bind(patient)
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(EncounterRow::into_encounter)
        .collect::<Result<Vec<_>>>()?;
        audit(
            &mut tx,
            "therapy_encounter.read",
            patient,
            format!("{} encounters", rows.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn encounter_impl(&self, actor: &Actor, id: EncounterId) -> Result<StoredEncounter> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let e = encounter_in(&mut tx, id).await?;
        audit(
            &mut tx,
            "therapy_encounter.read",
            e.patient_id,
            format!("encounter {id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(e)
    }

    async fn add_therapy_note_impl(
        &self,
        actor: &Actor,
        encounter: EncounterId,
        text: &str,
        amends: Option<TherapyNoteId>,
    ) -> Result<TherapyNote> {
        let mut tx = self.write(actor, Permission::PsychotherapyNotes).await?;
        let me = user_id(actor)?;
        let text = ketcare_core::therapy::parse_note(text).map_err(StoreError::Invalid)?;
        let e = encounter_in(&mut tx, encounter).await?;
        if let Some(n) = amends {
            // Only the author amends, and only a note of this encounter.
            let own: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM therapy_notes WHERE id = $1 AND encounter_id = $2 AND written_by_id = $3",
            )
            .bind(n)
            .bind(encounter)
            .bind(me)
            .fetch_optional(tx.conn())
            .await?;
            if own.is_none() {
                return Err(StoreError::Invalid(FieldErrors::single(
                    "amends_id",
                    format!("note {n} is not one of your notes on encounter {encounter}"),
                )));
            }
        }
        let id: TherapyNoteId = sqlx::query_scalar(
            "INSERT INTO therapy_notes (encounter_id, amends_id, text, written_by, written_by_id, written_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(encounter)
        .bind(amends)
        .bind(&text)
        .bind(&actor.username)
        .bind(me)
        .bind(now_rfc3339())
        .fetch_one(tx.conn())
        .await?;
        let detail = match amends {
            Some(n) => format!("note {id} on encounter {encounter}, amends note {n}"),
            None => format!("note {id} on encounter {encounter}"),
        };
        audit(&mut tx, "therapy_note.write", e.patient_id, detail).await?;
        let note = sqlx::query_as::<_, TherapyNote>(
            "SELECT id, encounter_id, amends_id, text, written_by, written_at FROM therapy_notes WHERE id = $1",
        )
        .bind(id)
        .fetch_one(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(note)
    }

    async fn therapy_notes_impl(
        &self,
        actor: &Actor,
        encounter: EncounterId,
    ) -> Result<Vec<TherapyNote>> {
        let mut tx = self
            .read_audited(actor, Permission::PsychotherapyNotes)
            .await?;
        let me = user_id(actor)?;
        let e = encounter_in(&mut tx, encounter).await?;
        let shared = notes_shared(&mut tx).await?;
        // The query itself decides who reads: the author's own rows, or — with the site's
        // yes — the rows of a patient this account has recorded an encounter for.
        let notes = sqlx::query_as::<_, TherapyNote>(
            "SELECT n.id, n.encounter_id, n.amends_id, n.text, n.written_by, n.written_at
             FROM therapy_notes n JOIN therapy_encounters e ON e.id = n.encounter_id
             WHERE n.encounter_id = $1
               AND (n.written_by_id = $2
                    OR ($3 = 1 AND EXISTS (SELECT 1 FROM therapy_encounters t
                                            WHERE t.patient_id = e.patient_id
                                              AND t.recorded_by_id = $2)))
             ORDER BY n.id",
        )
        .bind(encounter)
        .bind(me)
        .bind(i64::from(shared))
        .fetch_all(tx.conn())
        .await?;
        let ids: Vec<String> = notes.iter().map(|n| n.id.to_string()).collect();
        audit(
            &mut tx,
            "therapy_note.read",
            e.patient_id,
            format!(
                "encounter {encounter}: {} notes shown [{}]",
                notes.len(),
                ids.join(", ")
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(notes)
    }
}

impl SqlStore {
    async fn integration_watch_impl(
        &self,
        actor: &Actor,
        since: &str,
    ) -> Result<(Vec<SessionRecord>, Vec<StoredEncounter>)> {
        let mut tx = self.read_audited(actor, Permission::RecordTherapy).await?;
        let dosed: Vec<SessionRecord> = crate::sessions::sessions_changed_since(&mut tx, since)
            .await?
            .into_iter()
            .filter(|s| s.session.dose_start().is_some())
            .collect();
        let mut patients: Vec<PatientId> = dosed.iter().map(|s| s.patient_id).collect();
        patients.sort();
        patients.dedup();
        let mut encounters = Vec::new();
        for p in &patients {
            let rows = sqlx::query_as::<_, EncounterRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {ENCOUNTER_COLS} FROM therapy_encounters WHERE patient_id = $1 AND kind = 'integration' ORDER BY id"
            )))
            .bind(*p)
            .fetch_all(tx.conn())
            .await?;
            for r in rows {
                encounters.push(r.into_encounter()?);
            }
            audit(
                &mut tx,
                "therapy.integration_watch",
                *p,
                "doses and integration encounters on the home queue".into(),
            )
            .await?;
        }
        if patients.is_empty() {
            // No patient shown: nothing to record, the unit is dropped.
            return Ok((dosed, encounters));
        }
        tx.commit().await?;
        Ok((dosed, encounters))
    }
}

/// Each method calls the function of the same name above.
#[async_trait]
impl TherapyStore for SqlStore {
    async fn session_monitoring_minutes(
        &self,
        actor: &Actor,
        session: ketcare_core::SessionId,
    ) -> Result<Option<i64>> {
        let mut tx = self
            .read_audited(actor, ketcare_core::Permission::BillingRead)
            .await?;
        let row: Option<(PatientId, i64)> = sqlx::query_as(
            "SELECT patient_id, CAST(SUM(duration_minutes) AS BIGINT) FROM therapy_encounters
             WHERE session_id = $1 AND kind = $2 GROUP BY patient_id",
        )
        .bind(session)
        .bind(EncounterKind::Monitoring.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let Some((patient, minutes)) = row else {
            return Ok(None);
        };
        audit(
            &mut tx,
            "therapy_encounter.billing_read",
            patient,
            format!("monitoring minutes of session {session}"),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(minutes))
    }

    async fn record_encounter(
        &self,
        actor: &Actor,
        patient: PatientId,
        encounter: &NewEncounter,
        alert: Option<&NewAlert>,
    ) -> Result<StoredEncounter> {
        self.record_encounter_impl(actor, patient, encounter, alert)
            .await
    }

    async fn patient_encounters(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StoredEncounter>> {
        self.patient_encounters_impl(actor, patient).await
    }

    async fn encounter(&self, actor: &Actor, id: EncounterId) -> Result<StoredEncounter> {
        self.encounter_impl(actor, id).await
    }

    async fn add_therapy_note(
        &self,
        actor: &Actor,
        encounter: EncounterId,
        text: &str,
        amends: Option<TherapyNoteId>,
    ) -> Result<TherapyNote> {
        self.add_therapy_note_impl(actor, encounter, text, amends)
            .await
    }

    async fn therapy_notes(
        &self,
        actor: &Actor,
        encounter: EncounterId,
    ) -> Result<Vec<TherapyNote>> {
        self.therapy_notes_impl(actor, encounter).await
    }

    async fn integration_watch(
        &self,
        actor: &Actor,
        since: &str,
    ) -> Result<(Vec<SessionRecord>, Vec<StoredEncounter>)> {
        self.integration_watch_impl(actor, since).await
    }
}
