//! JSON API for contact preferences and messages (the same use cases as the pages).

use crate::AppState;
use crate::api::{ApiPath, JsonBody};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::outreach::delivery::verify;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use ketcare_app::outreach::{ContactInput, Contacts, ReceiptInput, ReceiptOutcome, ScheduleView};
use ketcare_core::FieldErrors;
use ketcare_core::GuardianId;
use ketcare_core::PatientId;
use ketcare_measures::sending::SendSchedule;
use ketcare_store::outreach::{ContactPreference, OutboxMessage, StoredSchedule};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// When the course's questionnaire is sent: `{"kind": "every_days", "days": 14,
    /// "restart_at_treatment": true}`, `{"kind": "after_first_dose", "days": [1, 7, 14]}` or
    /// `{"kind": "before_each_session", "hours": 24}`.
    pub schedule: SendSchedule,
    /// Send to this guardian of record instead of the patient.
    #[serde(default)]
    pub guardian_id: Option<i64>,
}

/// The patient's and guardians' contacts: addresses on the record, the preference in force
/// (channel, consent to be contacted, who recorded it and when), and why a link would not be
/// sent now; then every preference recorded, newest first.
#[utoipa::path(get, path = "/api/v1/patients/{id}/contact", params(("id" = i64, Path)), responses((status = 200, description = "contacts and preference history", body = Contacts), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn contacts(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Contacts>, AppError> {
    Ok(Json(
        ketcare_app::outreach::contacts(s.store.as_ref(), &p.actor, PatientId::new(id)).await?,
    ))
}

/// Records the contact preference of the patient or of one of their guardians of record
/// (`guardian_id`): the channel and consent to be contacted. It replaces the one in force; the
/// earlier ones stay in the history.
#[utoipa::path(post, path = "/api/v1/patients/{id}/contact", params(("id" = i64, Path)), request_body = ContactInput, responses((status = 201, description = "the preference recorded", body = ContactPreference), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn record_contact(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<ContactInput>,
) -> Result<(StatusCode, Json<ContactPreference>), AppError> {
    let saved =
        ketcare_app::outreach::record_contact(s.store.as_ref(), &p.actor, PatientId::new(id), &req)
            .await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// The patient's messages (links sent by email or text message), newest first, with their
/// state: queued, sent, delivered or failed, tries, the next try and the last error. Never the
/// message's text.
#[utoipa::path(get, path = "/api/v1/patients/{id}/messages", params(("id" = i64, Path)), responses((status = 200, description = "messages, newest first", body = [OutboxMessage]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn messages(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<OutboxMessage>>, AppError> {
    Ok(Json(
        ketcare_app::outreach::messages(s.store.as_ref(), &p.actor, PatientId::new(id)).await?,
    ))
}

/// Adds a schedule to one of the patient's courses: the course's questionnaire is then sent by
/// itself (a link, and a message where the recipient has consented), each occurrence once.
#[utoipa::path(post, path = "/api/v1/patients/{id}/courses/{cid}/schedules", params(("id" = i64, Path), ("cid" = i64, Path)), request_body = ScheduleRequest, responses((status = 201, description = "the schedule", body = StoredSchedule), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_schedule(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
    JsonBody(req): JsonBody<ScheduleRequest>,
) -> Result<(StatusCode, Json<StoredSchedule>), AppError> {
    let saved = ketcare_app::outreach::add_schedule(
        s.store.as_ref(),
        &p.actor,
        PatientId::new(id),
        cid,
        &req.schedule,
        req.guardian_id.map(GuardianId::new),
        s.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// The patient's course schedules, running and stopped (who stopped each and when), each with
/// its rule in words and its next occurrence as the record stands now.
#[utoipa::path(get, path = "/api/v1/patients/{id}/schedules", params(("id" = i64, Path)), responses((status = 200, description = "schedules, oldest first", body = [ScheduleView]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn schedules(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<ScheduleView>>, AppError> {
    Ok(Json(
        ketcare_app::outreach::schedules(
            s.store.as_ref(),
            &p.actor,
            PatientId::new(id),
            s.now(),
            &ketcare_app::zones::organisation(s.store.as_ref()).await?,
        )
        .await?,
    ))
}

/// Stops one of the patient's course schedules: nothing more is sent for it. Who stopped it and
/// when are recorded (audited); a schedule stopped already is a conflict naming who stopped it.
#[utoipa::path(post, path = "/api/v1/patients/{id}/schedules/{schid}/stop", params(("id" = i64, Path), ("schid" = i64, Path)), responses((status = 200, description = "the schedule, stopped", body = StoredSchedule), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop_schedule(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, schid)): ApiPath<(i64, i64)>,
) -> Result<Json<StoredSchedule>, AppError> {
    Ok(Json(
        ketcare_app::outreach::stop_schedule(s.store.as_ref(), &p.actor, PatientId::new(id), schid)
            .await?,
    ))
}

/// The SMS gateway's delivery receipt for a message ketcare sent it: `{"message_id": 12,
/// "status": "delivered"}` or `{"message_id": 12, "status": "failed", "error": "…"}`, signed
/// like the outgoing webhook (`X-Ketcare-Timestamp`, `X-Ketcare-Signature: sha256=<hex
/// HMAC-SHA256(secret, "<timestamp>.<body>")>`, the timestamp within 5 minutes). No account: the
/// signature is the credential. A repeated receipt changes nothing (`changed: false`).
#[utoipa::path(post, path = "/api/v1/outreach/receipts", request_body = ReceiptInput, responses((status = 200, description = "the message's state after the receipt", body = ReceiptOutcome), (status = 401, description = "missing or bad signature, or a timestamp out of the window", body = ErrorBody), (status = 404, description = "no such message", body = ErrorBody), (status = 409, description = "not a sent text message, or already final the other way", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn sms_receipt(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ReceiptOutcome>, AppError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let signed = s.sms_secret.as_ref().is_some_and(|secret| {
        verify(
            secret.expose().as_bytes(),
            header("x-ketcare-timestamp"),
            &body,
            header("x-ketcare-signature"),
            s.now(),
        )
    });
    if !signed {
        return Err(AppError::Unauthorized);
    }
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::Invalid(FieldErrors::single("body", e.to_string())))?;
    let input: ReceiptInput = ketcare_app::error::decode(value)?;
    Ok(Json(
        ketcare_app::outreach::record_receipt(s.store.as_ref(), &input).await?,
    ))
}
