//! A patient's opioid list entries.

use super::*;

const OPIOID_COLS: &str =
    "id, patient_id, drug, dose, unit, per_day, route, started_on, stopped_on, recorded_by";
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

impl SqlStore {
    pub(crate) async fn add_opioid(
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
        audit(&mut tx, "opioid.add", patient, format!("opioid {id}")).await?;
        let r = opioid_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(r)
    }

    pub(crate) async fn stop_opioid(
        &self,
        actor: &Actor,
        patient: PatientId,
        id: i64,
        stopped_on: &str,
    ) -> Result<OpioidRow> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        let before = opioid_by_id(&mut tx, id).await?;
        if before.patient_id != patient {
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

    pub(crate) async fn patient_opioids(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<OpioidRow>> {
        self.patient_rows(
            Permission::ClinicalRead,
            actor,
            patient,
            format!("SELECT {OPIOID_COLS} FROM opioid_entries WHERE patient_id = $1 ORDER BY started_on, id"),
            Ok,
            "opioid.read",
            "entries",
        )
        .await
    }
}
