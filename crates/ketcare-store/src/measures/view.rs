//! The patient's (or guardian's) own view through their questionnaire link, and progress on
//! their care plan recorded through it: both under the link's own actor, audited.

use super::*;
use crate::SessionRecord;
use crate::care_plan::{LinkView, PlanItem, insert_progress, items_of, sharing_of};
use crate::sessions::{SESSION_COLUMNS, SessionRow};
use ketcare_core::PlanItemId;
use ketcare_measures::care_plan::NewProgress;
use responses::RESPONSE_COLS;

impl SqlStore {
    pub(crate) async fn link_view_impl(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
    ) -> Result<LinkView> {
        let actor = self.link_actor_for(token_hash, address).await?;
        let mut tx = self.unit(&actor).await?;
        let link = link_in_unit(&mut tx, token_hash, &actor).await?;
        check_expiry(&link, now)?;
        let patient = link.patient_id;
        let record = load_patient(&mut tx, patient).await?;
        let by_guardian = link.guardian_id.is_some();
        let shows = !by_guardian
            || sharing_of(&mut tx, patient)
                .await?
                .is_some_and(|s| s.shares_scores_with_guardians);
        let bookings: Vec<(String, String)> = sqlx::query_as(
            "SELECT start_at, end_at FROM ops_bookings WHERE patient_id = $1 AND status = 'booked' ORDER BY start_at, id",
        )
        .bind(patient)
        .fetch_all(tx.conn())
        .await?;
        let mut other_open_links = Vec::new();
        for (instruments, expires) in sqlx::query_as::<_, (String, i64)>(
            "SELECT instruments, expires_at FROM measure_links
             WHERE patient_id = $1 AND id <> $2 AND status <> 'completed' AND expires_at > $3 ORDER BY expires_at",
        )
        .bind(patient)
        .bind(link.id)
        .bind(now)
        .fetch_all(tx.conn())
        .await?
        {
            let set: Vec<String> = serde_json::from_str(&instruments)
                .map_err(|_| corrupt("measure_links.instruments", &instruments))?;
            other_open_links.push((set, expires));
        }
        let responses = if shows {
            sqlx::query_as::<_, StoredResponse>(sqlx::AssertSqlSafe(format!(
                "SELECT {RESPONSE_COLS} FROM measure_responses WHERE patient_id = $1 ORDER BY taken_on, id"
            )))
            .bind(patient)
            .fetch_all(tx.conn())
            .await?
        } else {
            Vec::new()
        };
        let sessions = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE patient_id = $1 ORDER BY id"
        )))
        .bind(patient)
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(SessionRecord::try_from)
        .collect::<Result<Vec<_>>>()?;
        let items: Vec<PlanItem> = items_of(&mut tx, patient)
            .await?
            .into_iter()
            .map(|mut i| {
                i.progress.retain(|p| shows && p.by_patient);
                i
            })
            .collect();
        let homework: Vec<(String, String)> = if shows {
            sqlx::query_as(
                "SELECT at, homework FROM therapy_encounters WHERE patient_id = $1 AND homework <> '' ORDER BY at DESC, id DESC",
            )
            .bind(patient)
            .fetch_all(tx.conn())
            .await?
        } else {
            Vec::new()
        };
        audit(
            &mut tx,
            "patient_view.read",
            patient,
            format!(
                "link {} ({}): {} scores, {} plan items{}",
                link.id,
                link.sent_to,
                responses.len(),
                items.len(),
                if by_guardian && !shows {
                    ", the patient's answers withheld from the guardian"
                } else {
                    ""
                }
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(LinkView {
            given_name: record.record.given_name.clone(),
            link,
            by_guardian,
            shows_patient_answers: shows,
            bookings,
            other_open_links,
            responses,
            sessions,
            items,
            homework,
        })
    }

    pub(crate) async fn link_progress_impl(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        item: PlanItemId,
        p: &NewProgress,
    ) -> Result<PlanItem> {
        if p.status.is_some() || p.review_on.is_some() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "status",
                "the care team changes a goal's status and review date",
            )));
        }
        let actor = self.link_actor_for(token_hash, address).await?;
        let mut tx = self.unit(&actor).await?;
        let link = link_in_unit(&mut tx, token_hash, &actor).await?;
        check_expiry(&link, now)?;
        let stored = insert_progress(&mut tx, link.patient_id, item, p, true).await?;
        tx.commit().await?;
        Ok(stored)
    }
}
