//! The synthetic clinic's bulk path: many generated patients written in one unit per batch —
//! each patient with the same insert as a registered one, their sessions as the same records,
//! their vital signs, questionnaire totals and the registry's session facts in multi-row
//! inserts — and one audit record per batch. Only for a demo database (the command that calls
//! it refuses a clinic's own); it exists so that the registry, exports and benchmarks can be
//! measured on a clinic of 100,000 patients.

use crate::measures::NewResponse;
use crate::registry::{Fact, PredictedExposure, put_exposure, put_fact};
use crate::sql::{BindPatient, INSERT_PATIENT, Unit, now_rfc3339, placeholders};
use crate::{Result, SqlStore, StoreError};
use jiff::Timestamp;
use ketcare_core::audit::AuditEvent;
use ketcare_core::patient::NewPatient;
use ketcare_core::{Actor, Permission};
use ketcare_session::Session;
use sqlx::Row;

/// One vital-sign reading of a synthetic session.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticVital {
    pub at: Timestamp,
    pub systolic: f64,
    pub diastolic: f64,
    pub heart_rate: f64,
    pub spo2: f64,
}

/// A synthetic session: its record, its readings, and (signed) the PK engine's prediction of
/// what it gave, computed by the caller through the application layer.
#[derive(Debug, Clone)]
pub struct SyntheticSession {
    pub session: Session,
    pub vitals: Vec<SyntheticVital>,
    pub exposure: Option<PredictedExposure>,
}

/// A synthetic patient with everything the registry reads.
#[derive(Debug, Clone)]
pub struct SyntheticPatient {
    pub patient: NewPatient,
    pub sessions: Vec<SyntheticSession>,
    pub responses: Vec<NewResponse>,
}

/// The site setting that marks the demo clinic's database (set by its seeding).
const DEMO_CLINIC: &str = "site.demo_clinic";

/// Rows per multi-row insert (within both backends' limits on bound parameters).
const ROWS: usize = 500;

impl SqlStore {
    pub(crate) async fn insert_synthetic_impl(
        &self,
        actor: &Actor,
        batch: &[SyntheticPatient],
    ) -> Result<usize> {
        crate::require(actor, Permission::RunSession)?;
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        // Generated records bypass the session's own commands (their orders, checklists and
        // limits): they may only enter the demo clinic's database, whatever calls this.
        if !crate::sql::setting_is_on(&mut tx, DEMO_CLINIC).await? {
            return Err(StoreError::Conflict(format!(
                "synthetic patients only enter the demo clinic's database (`{DEMO_CLINIC}` = 1); this is a clinic's own"
            )));
        }
        let now = now_rfc3339();
        let mut vitals: Vec<(i64, &SyntheticVital)> = Vec::new();
        let mut responses: Vec<(i64, &NewResponse)> = Vec::new();
        let mut sessions = 0;
        let mut signed: Vec<i64> = Vec::new();
        let mut exposures: Vec<(i64, i64, &PredictedExposure)> = Vec::new();
        for p in batch {
            let id: i64 = sqlx::query(INSERT_PATIENT)
                .bind_patient(&p.patient)
                .bind(&now)
                .bind(p.patient.search_text())
                .fetch_one(tx.conn())
                .await?
                .try_get("id")?;
            for s in &p.sessions {
                let sid: i64 = sqlx::query(
                    "INSERT INTO treatment_sessions (patient_id, chair, phase, body, revision, signed, created_by, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, 1, 0, $5, $6, $6) RETURNING id",
                )
                .bind(id)
                .bind(&s.session.chair)
                .bind(s.session.phase.as_str())
                .bind(crate::sessions::body_of(&s.session)?)
                .bind(&actor.username)
                .bind(&now)
                .fetch_one(tx.conn())
                .await?
                .try_get("id")?;
                let readings: Vec<(i64, f64)> = s
                    .vitals
                    .iter()
                    .map(|v| (v.at.as_second(), v.systolic))
                    .collect();
                let fact = Fact::of(sid, id, &s.session, &readings);
                put_fact(&mut tx, &fact).await?;
                vitals.extend(s.vitals.iter().map(|v| (sid, v)));
                if s.session.signature.is_some() {
                    signed.push(sid);
                    if let Some(e) = &s.exposure {
                        exposures.push((sid, id, e));
                    }
                }
                sessions += 1;
            }
            responses.extend(p.responses.iter().map(|r| (id, r)));
        }
        for chunk in vitals.chunks(ROWS) {
            insert_vitals(&mut tx, chunk, &actor.username, &now).await?;
        }
        for chunk in responses.chunks(ROWS) {
            insert_responses(&mut tx, chunk, &actor.username, &now).await?;
        }
        // Signed last, as at the chair: a signed record takes no more readings.
        for chunk in signed.chunks(ROWS) {
            let ids = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE treatment_sessions SET signed = 1 WHERE id IN ({ids})"
            )))
            .execute(tx.conn())
            .await?;
        }
        for (sid, pid, e) in exposures {
            put_exposure(&mut tx, sid, pid, e, &now).await?;
        }
        tx.audit(&AuditEvent::new(
            "synthetic.insert",
            None,
            format!(
                "{} synthetic patients, {sessions} sessions, {} vital-sign readings, {} questionnaire totals",
                batch.len(),
                vitals.len(),
                responses.len()
            ),
        ))
        .await?;
        tx.commit().await?;
        Ok(batch.len())
    }
}

async fn insert_vitals(
    tx: &mut Unit<'_>,
    rows: &[(i64, &SyntheticVital)],
    by: &str,
    now: &str,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO session_vitals (session_id, at, at_epoch, received_at, source, recorded_by, systolic, diastolic, heart_rate, spo2) VALUES {}",
        placeholders(rows.len(), 10)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
    for (sid, v) in rows {
        q = q
            .bind(*sid)
            .bind(v.at.to_string())
            .bind(v.at.as_second())
            .bind(now.to_owned())
            .bind("synthetic")
            .bind(by.to_owned())
            .bind(v.systolic)
            .bind(v.diastolic)
            .bind(v.heart_rate)
            .bind(v.spo2);
    }
    q.execute(tx.conn()).await?;
    Ok(())
}

async fn insert_responses(
    tx: &mut Unit<'_>,
    rows: &[(i64, &NewResponse)],
    by: &str,
    now: &str,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO measure_responses (patient_id, instrument, answers, total, result, taken_on, submission_key, recorded_by, recorded_at) VALUES {}",
        placeholders(rows.len(), 9)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
    for (pid, r) in rows {
        q = q
            .bind(*pid)
            .bind(r.instrument.clone())
            .bind(r.answers.clone())
            .bind(r.total)
            .bind(r.result.clone())
            .bind(r.taken_on.clone())
            .bind(r.submission_key.clone())
            .bind(by.to_owned())
            .bind(now.to_owned());
    }
    q.execute(tx.conn()).await?;
    Ok(())
}
