//! Measurement courses (booster rule per course).

use super::*;
use sqlx::{FromRow, Row};

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
            format!("course {id}"),
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

    pub(crate) async fn open_courses(
        &self,
        actor: &Actor,
        today: &str,
    ) -> Result<Vec<(MeasureCourse, Option<String>)>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {cols}, (SELECT MAX(r.taken_on) FROM measure_responses r
                 WHERE r.patient_id = c.patient_id AND r.instrument = c.instrument
                   AND r.taken_on >= c.started_on) AS latest
             FROM measure_courses c WHERE c.ended_on IS NULL OR c.ended_on >= $1
             ORDER BY c.started_on, c.id",
            cols = COURSE_COLS
                .split(", ")
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(today)
        .fetch_all(&mut **tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let course = MeasureCourse::from_row(row)?;
            let latest: Option<String> = row.try_get("latest")?;
            out.push((course, latest));
        }
        let mut patients: Vec<PatientId> = out.iter().map(|(c, _)| c.patient_id).collect();
        patients.sort();
        patients.dedup();
        for p in patients {
            audit(
                &mut tx,
                "measure_course.listed",
                p,
                "questionnaires due".into(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn patient_courses(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<MeasureCourse>> {
        self.patient_rows(
            Permission::ClinicalRead,
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
