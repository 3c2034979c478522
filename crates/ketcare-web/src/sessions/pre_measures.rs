//! Questionnaires before a session, on the web: the session page's panel and
//! `GET /api/v1/sessions/{sid}/measures`, each one call into
//! [`ketcare_app::sessions::pre_measures`].

use crate::AppState;
use crate::api::ApiPath;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use ketcare_core::SessionId;
use ketcare_store::SessionRecord;

pub use ketcare_app::sessions::pre_measures::{LINK_BEFORE_SESSION, PreCourse, PreSession};

/// Builds the panel for a session (reads are audited by the store).
pub async fn panel(s: &AppState, p: &Principal, r: &SessionRecord) -> Result<PreSession, AppError> {
    Ok(ketcare_app::sessions::pre_measures::panel(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        r,
        s.now(),
    )
    .await?)
}

/// Questionnaires before this session: the patient's open courses with their latest score and
/// whether their set is due, open links, and whether the site's set before every session
/// (`measures.link_before_session`) is still to be sent.
#[utoipa::path(get, path = "/api/v1/sessions/{sid}/measures", params(("sid" = i64, Path)), responses((status = 200, description = "courses (latest score, due), open links, link due", body = PreSession), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn measures_api(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(sid): ApiPath<SessionId>,
) -> Result<Json<PreSession>, AppError> {
    let r = s.store.session_record(&p.actor, sid).await?;
    Ok(Json(panel(&s, &p, &r).await?))
}
