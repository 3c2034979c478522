//! JSON API for the care plan (the same use cases as the pages).

use crate::AppState;
use crate::api::{ApiPath, JsonBody};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ketcare_app::care_plan::PlanView;
use ketcare_core::{PatientId, PlanItemId};
use ketcare_measures::care_plan::{PlanItemInput, ProgressInput};
use ketcare_store::care_plan::{PlanItem, ViewSharing};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharingRequest {
    /// The patient agrees that their guardians' view shows their own answers, homework and
    /// notes (asked of the patient, recorded by staff).
    pub shares_scores_with_guardians: bool,
}

/// A patient's care plan: goals and agreed adjuncts with their progress, each symptom target's
/// state from the patient's stored scores, and the patient's choice about their guardians' view.
#[utoipa::path(get, path = "/api/v1/patients/{id}/care-plan", params(("id" = i64, Path)), responses((status = 200, description = "the care plan", body = PlanView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn plan(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PlanView>, AppError> {
    Ok(Json(
        ketcare_app::care_plan::plan(s.store.as_ref(), &p.actor, PatientId::new(id), s.today())
            .await?,
    ))
}

/// Adds a goal or an agreed adjunct. A symptom goal names an instrument with a total and a
/// target inside its range; every bad field is named.
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-plan/items", params(("id" = i64, Path)), request_body = PlanItemInput, responses((status = 201, description = "the item", body = PlanItem), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_item(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<PlanItemInput>,
) -> Result<(StatusCode, Json<PlanItem>), AppError> {
    let item =
        ketcare_app::care_plan::add_item(s.store.as_ref(), &p.actor, PatientId::new(id), &req)
            .await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Records progress on a plan item: a note, how far it got, a status change or a new review
/// date (appended; the plan's history is kept).
#[utoipa::path(post, path = "/api/v1/patients/{id}/care-plan/items/{iid}/progress", params(("id" = i64, Path), ("iid" = i64, Path)), request_body = ProgressInput, responses((status = 201, description = "the item with its progress", body = PlanItem), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_progress(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, iid)): ApiPath<(i64, i64)>,
    JsonBody(req): JsonBody<ProgressInput>,
) -> Result<(StatusCode, Json<PlanItem>), AppError> {
    let item = ketcare_app::care_plan::add_progress(
        s.store.as_ref(),
        &p.actor,
        PatientId::new(id),
        PlanItemId::new(iid),
        &req,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Records the patient's choice: may their guardians' view show their own answers?
#[utoipa::path(put, path = "/api/v1/patients/{id}/care-plan/sharing", params(("id" = i64, Path)), request_body = SharingRequest, responses((status = 200, description = "the choice as recorded", body = ViewSharing), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_sharing(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<SharingRequest>,
) -> Result<Json<ViewSharing>, AppError> {
    Ok(Json(
        ketcare_app::care_plan::set_sharing(
            s.store.as_ref(),
            &p.actor,
            PatientId::new(id),
            req.shares_scores_with_guardians,
        )
        .await?,
    ))
}
