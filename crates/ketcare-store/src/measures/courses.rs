//! Measurement courses (booster rule per course).

use super::*;

const COURSE_COLS: &str =
    "id, patient_id, label, instrument, started_on, ended_on, booster_score_at_least, booster_days";

impl SqlStore {
    pub(crate) async fn save_course(
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
            patient,
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

    pub(crate) async fn patient_courses(
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
}
