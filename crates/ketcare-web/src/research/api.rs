//! JSON API of the research registry.

use crate::AppState;
use crate::api::{ApiPath, ApiQuery, JsonBody};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ketcare_app::registry::CohortQuery;
use ketcare_store::registry::SavedCohort;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveCohort {
    /// Saving a name again makes its next version.
    pub name: String,
    #[serde(default)]
    pub query: CohortQuery,
}

/// A cohort's outcome table from the de-identified registry: counts (suppressed under the
/// site's small-cell count), response and remission with 95 % Wilson intervals, durability
/// (Kaplan-Meier), predictors (logistic and Cox regression). Audited by study id.
#[utoipa::path(get, path = "/api/v1/registry/outcomes", params(CohortQuery), responses((status = 200, description = "the outcome table", body = ketcare_app::registry::OutcomeTable), (status = 409, description = "the site has not set the small-cell count", body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn registry_outcomes(
    State(s): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<CohortQuery>,
) -> Result<Json<ketcare_app::registry::OutcomeTable>, AppError> {
    let library = s.library();
    let (_, table) =
        ketcare_app::registry::cohort(s.store.as_ref(), &library, &p.actor, &q).await?;
    Ok(Json(table))
}

/// Every saved cohort version, newest version first within each name.
#[utoipa::path(get, path = "/api/v1/registry/cohorts", responses((status = 200, description = "saved cohorts", body = [SavedCohort]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn cohorts(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<SavedCohort>>, AppError> {
    Ok(Json(
        s.store
            .cohorts(&p.actor)
            .await
            .map_err(ketcare_app::Error::from)?,
    ))
}

/// Saves a cohort's query under a name (the name's next version).
#[utoipa::path(post, path = "/api/v1/registry/cohorts", request_body = SaveCohort, responses((status = 201, description = "the saved version", body = SavedCohort), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn save_cohort(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(req): JsonBody<SaveCohort>,
) -> Result<(StatusCode, Json<SavedCohort>), AppError> {
    let c = ketcare_app::registry::save_cohort(s.store.as_ref(), &p.actor, &req.name, &req.query)
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// The outcome table of a saved cohort version.
#[utoipa::path(get, path = "/api/v1/registry/cohorts/{id}/outcomes", params(("id" = i64, Path)), responses((status = 200, description = "the outcome table", body = ketcare_app::registry::OutcomeTable), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn cohort_outcomes(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ketcare_app::registry::OutcomeTable>, AppError> {
    let (_, q) = ketcare_app::registry::saved_query(s.store.as_ref(), &p.actor, id).await?;
    let library = s.library();
    let (_, table) =
        ketcare_app::registry::cohort(s.store.as_ref(), &library, &p.actor, &q).await?;
    Ok(Json(table))
}
