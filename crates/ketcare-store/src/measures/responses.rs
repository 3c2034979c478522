//! Questionnaire responses, stored once per submission key.

use super::*;

pub(crate) const RESPONSE_COLS: &str = "id, patient_id, instrument, answers, total, result, taken_on, link_id, recorded_by, recorded_at";
pub(super) async fn response_by_key(tx: &mut Tx, key: &str) -> Result<Option<StoredResponse>> {
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
pub(super) async fn insert_response(
    tx: &mut Unit<'_>,
    patient: PatientId,
    link_id: Option<LinkId>,
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
    let id: ResponseId = row.try_get("id")?;
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
            let alert_id: AlertId = e.try_get("id")?;
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
        let alert_id: AlertId = row.try_get("id")?;
        alert_action(tx, alert_id, "raised", &a.detail, &actor.username, &now).await?;
        audit(
            tx,
            "safety_alert.raise",
            patient,
            format!("alert {alert_id}"),
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

impl SqlStore {
    pub(crate) async fn record_response(
        &self,
        actor: &Actor,
        patient: PatientId,
        response: &NewResponse,
    ) -> Result<(StoredResponse, bool)> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        load_patient(&mut tx, patient).await?;
        let out = insert_response(&mut tx, patient, None, response).await?;
        // A repeated submission key returns the stored response and writes nothing: the unit
        // has no record and is dropped (rolled back) rather than committed.
        if out.1 {
            tx.commit().await?;
        }
        Ok(out)
    }

    pub(crate) async fn patient_responses(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StoredResponse>> {
        self.patient_rows(
            Permission::ClinicalRead,
            actor,
            patient,
            format!("SELECT {RESPONSE_COLS} FROM measure_responses WHERE patient_id = $1 ORDER BY taken_on, id"),
            Ok,
            "measure.read",
            "responses",
        )
        .await
    }
}
