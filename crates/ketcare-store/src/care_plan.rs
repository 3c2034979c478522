//! A course's care plan: goals and agreed adjuncts, and the progress recorded on them by staff
//! (`RecordMeasures`) or by the patient through their link. Read with `ClinicalRead`, every read
//! audited. Items and progress are append-only: a status or review-date change is a progress
//! entry, so the plan's history is never rewritten.
//!
//! Also here: whether the patient agrees that their guardians' view shows their own answers
//! (the newest record decides; none recorded = not shared).

use crate::sql::{Unit, corrupt, load_patient, now_rfc3339};
use crate::{Result, SqlStore, StoreError};
use async_trait::async_trait;
use ketcare_core::audit::AuditEvent;
use ketcare_core::{Actor, FieldErrors, PatientId, Permission, PlanItemId};
use ketcare_measures::care_plan::{Effort, ItemKind, ItemStatus, NewPlanItem, NewProgress};
use serde::Serialize;

/// One entry of progress on a plan item.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlanProgress {
    pub id: i64,
    #[schema(value_type = i64)]
    pub item_id: PlanItemId,
    /// A status change (staff only).
    pub status: Option<ItemStatus>,
    /// A new review date (staff only), `YYYY-MM-DD`.
    pub review_on: Option<String>,
    pub effort: Option<Effort>,
    pub note: String,
    /// Recorded through the patient's (or guardian's) link.
    pub by_patient: bool,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// A goal or an agreed adjunct, with its progress and where it stands now.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlanItem {
    #[schema(value_type = i64)]
    pub id: PlanItemId,
    #[schema(value_type = i64)]
    pub patient_id: PatientId,
    /// The treatment course it belongs to (none: the patient had no course).
    pub course_id: Option<i64>,
    pub item: ItemKind,
    pub category: String,
    pub description: String,
    pub instrument: Option<String>,
    pub target_at_most: Option<i64>,
    pub owner: String,
    /// The review date now in force (the newest progress entry that set one, else the item's).
    pub review_on: Option<String>,
    /// The status now in force (the newest progress entry that set one, else active).
    pub status: ItemStatus,
    pub created_by: String,
    pub created_at: String,
    /// Oldest first.
    pub progress: Vec<PlanProgress>,
}

/// Whether the patient agreed that their guardians' view shows their own answers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ViewSharing {
    pub shares_scores_with_guardians: bool,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// A patient's care plan.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CarePlan {
    pub items: Vec<PlanItem>,
    /// None: never asked (the guardians' view does not show the patient's answers).
    pub sharing: Option<ViewSharing>,
}

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait CarePlanStore: Send + Sync {
    /// Adds a goal or adjunct to the patient's plan (`RecordMeasures`), in the course named or
    /// else the patient's newest treatment course. A course of another patient is refused
    /// naming `course_id`.
    async fn add_plan_item(
        &self,
        actor: &Actor,
        patient: PatientId,
        item: &NewPlanItem,
    ) -> Result<PlanItem>;
    /// Appends staff progress (`RecordMeasures`) to one of the patient's plan items.
    async fn add_plan_progress(
        &self,
        actor: &Actor,
        patient: PatientId,
        item: PlanItemId,
        progress: &NewProgress,
    ) -> Result<PlanItem>;
    /// The patient's plan (`ClinicalRead`; audited).
    async fn care_plan(&self, actor: &Actor, patient: PatientId) -> Result<CarePlan>;
    /// Records the patient's choice about their guardians' view (`RecordMeasures`; audited).
    async fn set_view_sharing(
        &self,
        actor: &Actor,
        patient: PatientId,
        shares_scores_with_guardians: bool,
    ) -> Result<ViewSharing>;
    /// The patient's own view through a link that has not expired (used links too): audited
    /// under the link's actor. A guardian's link shows the patient's answers, homework and own
    /// progress notes only when the patient agreed ([`ViewSharing`]).
    async fn link_view(&self, token_hash: &str, now: i64, address: &str) -> Result<LinkView>;
    /// Progress recorded through the patient's (or guardian's) link on one of the patient's
    /// plan items (no status or review change: [`NewProgress::parse`] with `by_patient`).
    async fn link_progress(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        item: PlanItemId,
        progress: &NewProgress,
    ) -> Result<PlanItem>;
}

/// What the patient's own view is made from, already narrowed to what its reader may see.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub link: crate::measures::MeasureLink,
    /// For the greeting.
    pub given_name: String,
    /// The link went to a guardian.
    pub by_guardian: bool,
    /// The patient's answers, homework and own notes are shown (always to the patient; to a
    /// guardian only with the patient's agreement).
    pub shows_patient_answers: bool,
    /// Booked appointments (`start_at`, `end_at`, the clinic's wall-clock), oldest first.
    pub bookings: Vec<(String, String)>,
    /// The patient's other links still open: their questionnaires and expiry (epoch seconds).
    pub other_open_links: Vec<(Vec<String>, i64)>,
    /// Empty unless `shows_patient_answers`.
    pub responses: Vec<crate::measures::StoredResponse>,
    /// The patient's sessions (for the chart's markers).
    pub sessions: Vec<crate::SessionRecord>,
    /// The plan; progress narrowed to entries made through a link, and those only when
    /// `shows_patient_answers`.
    pub items: Vec<PlanItem>,
    /// Homework from therapy encounters (`at`, text), newest first; empty unless
    /// `shows_patient_answers`.
    pub homework: Vec<(String, String)>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: PlanItemId,
    patient_id: PatientId,
    course_id: Option<i64>,
    item: String,
    category: String,
    description: String,
    instrument: Option<String>,
    target_at_most: Option<i64>,
    owner: String,
    review_on: Option<String>,
    created_by: String,
    created_at: String,
}

#[derive(sqlx::FromRow)]
struct ProgressRow {
    id: i64,
    item_id: PlanItemId,
    status: Option<String>,
    review_on: Option<String>,
    effort: Option<String>,
    note: String,
    by_patient: i64,
    recorded_by: String,
    recorded_at: String,
}

const ITEM_COLS: &str = "id, patient_id, course_id, item, category, description, instrument, target_at_most, owner, review_on, created_by, created_at";
const PROGRESS_COLS: &str =
    "id, item_id, status, review_on, effort, note, by_patient, recorded_by, recorded_at";

impl ProgressRow {
    fn into_progress(self) -> Result<PlanProgress> {
        let status = match self.status.as_deref() {
            None => None,
            Some(s) => {
                Some(ItemStatus::parse(s).ok_or_else(|| corrupt("care_plan_progress.status", s))?)
            }
        };
        let effort = match self.effort.as_deref() {
            None => None,
            Some(s) => {
                Some(Effort::parse(s).ok_or_else(|| corrupt("care_plan_progress.effort", s))?)
            }
        };
        Ok(PlanProgress {
            id: self.id,
            item_id: self.item_id,
            status,
            review_on: self.review_on,
            effort,
            note: self.note,
            by_patient: self.by_patient != 0,
            recorded_by: self.recorded_by,
            recorded_at: self.recorded_at,
        })
    }
}

fn assemble(r: ItemRow, progress: Vec<PlanProgress>) -> Result<PlanItem> {
    let item = ItemKind::parse(&r.item).ok_or_else(|| corrupt("care_plan_items.item", &r.item))?;
    let status = progress
        .iter()
        .rev()
        .find_map(|p| p.status)
        .unwrap_or(ItemStatus::Active);
    let review_on = progress
        .iter()
        .rev()
        .find_map(|p| p.review_on.clone())
        .or(r.review_on);
    Ok(PlanItem {
        id: r.id,
        patient_id: r.patient_id,
        course_id: r.course_id,
        item,
        category: r.category,
        description: r.description,
        instrument: r.instrument,
        target_at_most: r.target_at_most,
        owner: r.owner,
        review_on,
        status,
        created_by: r.created_by,
        created_at: r.created_at,
        progress,
    })
}

/// The patient's plan items with their progress, oldest first.
pub(crate) async fn items_of(tx: &mut Unit<'_>, patient: PatientId) -> Result<Vec<PlanItem>> {
    let rows = sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ITEM_COLS} FROM care_plan_items WHERE patient_id = $1 ORDER BY id"
    )))
    .bind(patient)
    .fetch_all(tx.conn())
    .await?;
    let mut progress = sqlx::query_as::<_, ProgressRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {PROGRESS_COLS} FROM care_plan_progress WHERE patient_id = $1 ORDER BY id"
    )))
    .bind(patient)
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(ProgressRow::into_progress)
    .collect::<Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|r| {
            let mine: Vec<PlanProgress>;
            (mine, progress) = std::mem::take(&mut progress)
                .into_iter()
                .partition(|p| p.item_id == r.id);
            assemble(r, mine)
        })
        .collect()
}

/// The patient's newest choice about their guardians' view.
pub(crate) async fn sharing_of(
    tx: &mut Unit<'_>,
    patient: PatientId,
) -> Result<Option<ViewSharing>> {
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT shares_scores_with_guardians, recorded_by, recorded_at FROM patient_view_sharing
         WHERE patient_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(patient)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|(s, by, at)| ViewSharing {
        shares_scores_with_guardians: s != 0,
        recorded_by: by,
        recorded_at: at,
    }))
}

async fn item_in(tx: &mut Unit<'_>, patient: PatientId, id: PlanItemId) -> Result<PlanItem> {
    items_of(tx, patient)
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| StoreError::NotFound {
            what: format!("care plan item {id} of this patient"),
        })
}

/// Appends progress on `item` (which must be the patient's), by the unit's actor.
pub(crate) async fn insert_progress(
    tx: &mut Unit<'_>,
    patient: PatientId,
    item: PlanItemId,
    p: &NewProgress,
    by_patient: bool,
) -> Result<PlanItem> {
    item_in(tx, patient, item).await?;
    let actor = tx.actor();
    sqlx::query(
        "INSERT INTO care_plan_progress (item_id, patient_id, status, review_on, effort, note, by_patient, recorded_by, recorded_by_id, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(item)
    .bind(patient)
    .bind(p.status.map(ItemStatus::as_str))
    .bind(p.review_on.map(|d| d.to_string()))
    .bind(p.effort.map(Effort::as_str))
    .bind(&p.note)
    .bind(i64::from(by_patient))
    .bind(&actor.username)
    .bind(actor.user_id.map(|u| u.get()))
    .bind(now_rfc3339())
    .execute(tx.conn())
    .await?;
    let mut what = Vec::new();
    if let Some(s) = p.status {
        what.push(format!("status {}", s.as_str()));
    }
    if let Some(d) = p.review_on {
        what.push(format!("review {d}"));
    }
    if let Some(e) = p.effort {
        what.push(format!("effort {}", e.as_str()));
    }
    if !p.note.is_empty() {
        what.push("a note".into());
    }
    tx.audit(&AuditEvent::new(
        "care_plan.progress",
        Some(patient.get()),
        format!(
            "item {item}{}: {}",
            if by_patient { " (patient link)" } else { "" },
            what.join(", ")
        ),
    ))
    .await?;
    item_in(tx, patient, item).await
}

impl SqlStore {
    async fn add_plan_item_impl(
        &self,
        actor: &Actor,
        patient: PatientId,
        i: &NewPlanItem,
    ) -> Result<PlanItem> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        load_patient(&mut tx, patient).await?;
        let course: Option<i64> = match i.course_id {
            Some(c) => {
                let owner: Option<i64> =
                    sqlx::query_scalar("SELECT patient_id FROM ops_courses WHERE id = $1")
                        .bind(c)
                        .fetch_optional(tx.conn())
                        .await?;
                if owner != Some(patient.get()) {
                    return Err(StoreError::Invalid(FieldErrors::single(
                        "course_id",
                        format!("course {c} is not one of this patient's treatment courses"),
                    )));
                }
                Some(c)
            }
            None => {
                sqlx::query_scalar(
                    "SELECT id FROM ops_courses WHERE patient_id = $1 ORDER BY id DESC LIMIT 1",
                )
                .bind(patient)
                .fetch_optional(tx.conn())
                .await?
            }
        };
        let id: PlanItemId = sqlx::query_scalar(
            "INSERT INTO care_plan_items (patient_id, course_id, item, category, description, instrument, target_at_most, owner, review_on, created_by, created_by_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(patient)
        .bind(course)
        .bind(i.item.as_str())
        .bind(&i.category)
        .bind(&i.description)
        .bind(i.instrument.as_deref())
        .bind(i.target_at_most)
        .bind(&i.owner)
        .bind(i.review_on.map(|d| d.to_string()))
        .bind(&actor.username)
        .bind(actor.user_id.map(|u| u.get()))
        .bind(now_rfc3339())
        .fetch_one(tx.conn())
        .await?;
        tx.audit(&AuditEvent::new(
            "care_plan.item_add",
            Some(patient.get()),
            format!("item {id}: {} {}", i.item.as_str(), i.category),
        ))
        .await?;
        let stored = item_in(&mut tx, patient, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn add_plan_progress_impl(
        &self,
        actor: &Actor,
        patient: PatientId,
        item: PlanItemId,
        p: &NewProgress,
    ) -> Result<PlanItem> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        load_patient(&mut tx, patient).await?;
        let stored = insert_progress(&mut tx, patient, item, p, false).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn care_plan_impl(&self, actor: &Actor, patient: PatientId) -> Result<CarePlan> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        load_patient(&mut tx, patient).await?;
        let items = items_of(&mut tx, patient).await?;
        let sharing = sharing_of(&mut tx, patient).await?;
        tx.audit(&AuditEvent::new(
            "care_plan.read",
            Some(patient.get()),
            format!("{} items", items.len()),
        ))
        .await?;
        tx.commit().await?;
        Ok(CarePlan { items, sharing })
    }

    async fn set_view_sharing_impl(
        &self,
        actor: &Actor,
        patient: PatientId,
        shares: bool,
    ) -> Result<ViewSharing> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        load_patient(&mut tx, patient).await?;
        sqlx::query(
            "INSERT INTO patient_view_sharing (patient_id, shares_scores_with_guardians, recorded_by, recorded_by_id, recorded_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(patient)
        .bind(i64::from(shares))
        .bind(&actor.username)
        .bind(actor.user_id.map(|u| u.get()))
        .bind(now_rfc3339())
        .execute(tx.conn())
        .await?;
        tx.audit(&AuditEvent::new(
            "patient_view.sharing",
            Some(patient.get()),
            format!(
                "guardians' view {} the patient's answers",
                if shares { "shows" } else { "does not show" }
            ),
        ))
        .await?;
        let s = sharing_of(&mut tx, patient)
            .await?
            .ok_or_else(|| StoreError::Corrupt("view sharing just written is missing".into()))?;
        tx.commit().await?;
        Ok(s)
    }
}

#[async_trait]
impl CarePlanStore for SqlStore {
    async fn add_plan_item(
        &self,
        actor: &Actor,
        patient: PatientId,
        item: &NewPlanItem,
    ) -> Result<PlanItem> {
        self.add_plan_item_impl(actor, patient, item).await
    }
    async fn add_plan_progress(
        &self,
        actor: &Actor,
        patient: PatientId,
        item: PlanItemId,
        progress: &NewProgress,
    ) -> Result<PlanItem> {
        self.add_plan_progress_impl(actor, patient, item, progress)
            .await
    }
    async fn care_plan(&self, actor: &Actor, patient: PatientId) -> Result<CarePlan> {
        self.care_plan_impl(actor, patient).await
    }
    async fn set_view_sharing(
        &self,
        actor: &Actor,
        patient: PatientId,
        shares: bool,
    ) -> Result<ViewSharing> {
        self.set_view_sharing_impl(actor, patient, shares).await
    }
    async fn link_view(&self, token_hash: &str, now: i64, address: &str) -> Result<LinkView> {
        self.link_view_impl(token_hash, now, address).await
    }
    async fn link_progress(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        item: PlanItemId,
        progress: &NewProgress,
    ) -> Result<PlanItem> {
        self.link_progress_impl(token_hash, now, address, item, progress)
            .await
    }
}
