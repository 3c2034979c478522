//! JSON API of the research registry.

use crate::AppState;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::{Query, State};
use ketcare_app::registry::CohortQuery;

/// A cohort's outcome table from the de-identified registry: counts (suppressed under the
/// site's small-cell count), response and remission with 95 % Wilson intervals, durability
/// (Kaplan-Meier), predictors (logistic and Cox regression). Audited by study id.
#[utoipa::path(get, path = "/api/v1/registry/outcomes", params(CohortQuery), responses((status = 200, description = "the outcome table", body = Object), (status = 409, description = "the site has not set the small-cell count", body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn outcomes(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<CohortQuery>,
) -> Result<Json<ketcare_app::registry::OutcomeTable>, AppError> {
    let library = s.library();
    let (_, table) =
        ketcare_app::registry::cohort(s.store.as_ref(), &library, &p.actor, &q).await?;
    Ok(Json(table))
}
