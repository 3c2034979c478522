//! JSON API for psychotherapy integration (the same use cases as the pages).

use crate::AppState;
use crate::api::{ApiPath, JsonBody};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ketcare_app::therapy::TherapyOverview;
use ketcare_core::therapy::EncounterInput;
use ketcare_core::{EncounterId, PatientId, TherapyNoteId};
use ketcare_store::therapy::{StoredEncounter, TherapyNote};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// The psychotherapy note (required, not empty).
    pub text: String,
    /// One of your own notes on this encounter that this one amends (the amended note stays).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub amends_id: Option<TherapyNoteId>,
}

/// A patient's therapy encounters (the structured part) and, for each dose, whether its
/// integration session was held within the site's window (`window_unset` until the site sets
/// `therapy.integration_window_days`). Never the psychotherapy notes.
#[utoipa::path(get, path = "/api/v1/patients/{id}/therapy", params(("id" = i64, Path)), responses((status = 200, description = "encounters and integration status", body = TherapyOverview), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn overview(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TherapyOverview>, AppError> {
    Ok(Json(
        ketcare_app::therapy::overview(s.store.as_ref(), &p.actor, PatientId::new(id), s.today())
            .await?,
    ))
}

/// Records a therapy encounter's structured part. A `session_id` that is not this patient's is
/// refused naming `session_id`; a positive `suicide_risk` raises the urgent safety alert.
#[utoipa::path(post, path = "/api/v1/patients/{id}/therapy/encounters", params(("id" = i64, Path)), request_body = EncounterInput, responses((status = 201, description = "the encounter", body = StoredEncounter), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn record_encounter(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<EncounterInput>,
) -> Result<(StatusCode, Json<StoredEncounter>), AppError> {
    let e = ketcare_app::therapy::record_encounter(
        s.store.as_ref(),
        &p.actor,
        PatientId::new(id),
        &req,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// One encounter's structured part (never its psychotherapy notes).
#[utoipa::path(get, path = "/api/v1/therapy/encounters/{eid}", params(("eid" = i64, Path)), responses((status = 200, description = "the encounter", body = StoredEncounter), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn encounter(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(eid): ApiPath<i64>,
) -> Result<Json<StoredEncounter>, AppError> {
    Ok(Json(
        ketcare_app::therapy::encounter(s.store.as_ref(), &p.actor, EncounterId::new(eid)).await?,
    ))
}

/// The psychotherapy notes of an encounter that you may read: your own and, where the site
/// allows, those of a patient you treat. Therapists only; every read is audited
/// (`therapy_note.read`, without the text).
#[utoipa::path(get, path = "/api/v1/therapy/encounters/{eid}/notes", params(("eid" = i64, Path)), responses((status = 200, description = "the notes you may read", body = [TherapyNote]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn notes(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(eid): ApiPath<i64>,
) -> Result<Json<Vec<TherapyNote>>, AppError> {
    Ok(Json(
        ketcare_app::therapy::notes(s.store.as_ref(), &p.actor, EncounterId::new(eid)).await?,
    ))
}

/// Appends a psychotherapy note to an encounter (or an amendment of one of your notes; nothing
/// is edited in place). Therapists only.
#[utoipa::path(post, path = "/api/v1/therapy/encounters/{eid}/notes", params(("eid" = i64, Path)), request_body = NoteRequest, responses((status = 201, description = "the note", body = TherapyNote), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_note(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(eid): ApiPath<i64>,
    JsonBody(req): JsonBody<NoteRequest>,
) -> Result<(StatusCode, Json<TherapyNote>), AppError> {
    let n = ketcare_app::therapy::add_note(
        s.store.as_ref(),
        &p.actor,
        EncounterId::new(eid),
        &req.text,
        req.amends_id,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(n)))
}
