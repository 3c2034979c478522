//! The sessions JSON API.

use super::service;
use crate::AppState;
use crate::api::{ApiPath, JsonBody};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ketcare_core::{PatientId, RecordId, SessionId};
use ketcare_session::{Command, VitalReading, VitalSource, Vitals};
use ketcare_store::{SessionRecord, VitalOutcome};
use serde::{Deserialize, Serialize};

/// A session with what it still needs.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    #[serde(flatten)]
    pub record: SessionRecord,
    /// What the pre-assessment still needs before the dose can be confirmed.
    pub checklist_missing: Vec<String>,
    /// What discharge still needs now.
    pub discharge_missing: Vec<String>,
    /// The next scheduled vital check (RFC 3339), if any.
    pub next_check: Option<String>,
    /// Alarm rules inactive because the site has not set their threshold: (rule, setting key).
    #[schema(value_type = Vec<Vec<String>>)]
    pub inactive_rules: Vec<(String, String)>,
    /// The verified order's pump rate (mL/h), the rate a start without one runs at.
    pub ordered_rate_ml_per_h: Option<f64>,
    /// Pump rates other than the verified order's: who, when, why, ordered and given.
    pub rate_deviations: Vec<ketcare_session::RateDeviation>,
    /// The mg given and the infusion's running minutes, computed from the administration
    /// record (the figure signing, the ledger, billing and the predicted curve use).
    pub delivered: Option<ketcare_session::Delivered>,
    /// Why `delivered` cannot be computed, when it cannot.
    pub delivered_error: Option<String>,
}

pub fn view(s: &AppState, record: SessionRecord) -> Result<SessionView, AppError> {
    let now = service::now(s)?;
    let delivered = record.session.delivered();
    Ok(SessionView {
        ordered_rate_ml_per_h: record
            .session
            .checklist
            .dose
            .as_ref()
            .and_then(|d| d.delivery.infusion.as_ref())
            .map(|i| i.rate_ml_per_h),
        rate_deviations: record
            .session
            .rate_deviations()
            .into_iter()
            .cloned()
            .collect(),
        delivered_error: delivered.as_ref().err().cloned(),
        delivered: delivered.ok(),
        checklist_missing: record.session.checklist_missing(),
        discharge_missing: record.session.discharge_missing(now),
        next_check: record.session.next_check(now).map(|t| t.to_string()),
        inactive_rules: ketcare_session::alarms::inactive_rules(&record.session.plan),
        record,
    })
}

/// Sessions whose patient is in the chair now.
#[utoipa::path(get, path = "/api/v1/sessions", responses((status = 200, description = "active sessions", body = [SessionRecord]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn active(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<SessionRecord>>, AppError> {
    Ok(Json(s.store.active_sessions(&p.actor).await?))
}

/// A session to schedule from one of the patient's verified dose orders.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// The patient's dose order this session gives.
    pub order_id: RecordId,
    /// Chair or bed in the suite (at most 60 characters).
    #[schema(max_length = 60)]
    pub chair: String,
    /// RFC 3339; now when absent.
    #[serde(default)]
    pub scheduled_for: Option<String>,
}

/// Schedules a session from a dose order.
#[utoipa::path(post, path = "/api/v1/patients/{id}/sessions", params(("id" = i64, Path)), request_body = NewSession, responses((status = 201, description = "the session", body = SessionView), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(body): JsonBody<NewSession>,
) -> Result<Response, AppError> {
    let at = match body.scheduled_for.as_deref() {
        Some(t) => t
            .parse()
            .map_err(|_| AppError::invalid("scheduled_for", "expected an RFC 3339 time"))?,
        None => service::now(&s)?,
    };
    let rec = service::create(
        &s,
        &p.actor,
        PatientId::new(id),
        body.order_id,
        &body.chair,
        at,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&s, rec)?)).into_response())
}

/// One session with its checklist and discharge status.
#[utoipa::path(get, path = "/api/v1/sessions/{sid}", params(("sid" = i64, Path)), responses((status = 200, description = "the session", body = SessionView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(sid): ApiPath<SessionId>,
) -> Result<Json<SessionView>, AppError> {
    let rec = s.store.session_record(&p.actor, sid).await?;
    Ok(Json(view(&s, rec)?))
}

/// Applies one command (`{"command": "check_in"}`, `{"command": "start"}` (at the verified
/// order's rate; another needs `"rate_ml_per_h"` and `"rate_reason"`),
/// `{"command": "acknowledge_alarm", "alarm": 1}`, …). A command the phase or the record does not
/// allow is refused with 409 naming what is missing.
#[utoipa::path(post, path = "/api/v1/sessions/{sid}/commands", params(("sid" = i64, Path)), request_body = Command, responses((status = 200, description = "the session after the command", body = SessionView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn command(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(sid): ApiPath<SessionId>,
    JsonBody(cmd): JsonBody<Command>,
) -> Result<Json<SessionView>, AppError> {
    let rec = service::command(&s, &p.actor, sid, &cmd).await?;
    Ok(Json(view(&s, rec)?))
}

/// The session's vitals, oldest first.
#[utoipa::path(get, path = "/api/v1/sessions/{sid}/vitals", params(("sid" = i64, Path)), responses((status = 200, description = "readings", body = [ketcare_store::StoredVital]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_vitals(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(sid): ApiPath<SessionId>,
) -> Result<Response, AppError> {
    Ok(Json(s.store.session_vitals(&p.actor, sid).await?).into_response())
}

/// Records a set of vitals (any of systolic, diastolic, heart_rate, spo2, resp_rate, etco2,
/// temperature_c); alarms it raises are in the answer and on the live suite. A physiologically
/// impossible value (outside the cited ranges of `data/sessions/plausibility.toml`) is a 422
/// naming the field, the bound and its source.
#[utoipa::path(post, path = "/api/v1/sessions/{sid}/vitals", params(("sid" = i64, Path)), request_body = VitalsBody, responses((status = 201, description = "stored, with any alarms raised", body = VitalOutcome), (status = 200, description = "the same reading was already stored (a repeat of the same message)", body = VitalOutcome), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, description = "more vital signs are waiting to be written than the queue holds: nothing stored, send again after Retry-After", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn post_vitals(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(sid): ApiPath<SessionId>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    // `flatten` and `deny_unknown_fields` do not combine: check the keys by hand.
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| AppError::invalid("body", e.to_string()))?;
    let Some(obj) = value.as_object() else {
        return Err(AppError::invalid("body", "expected a JSON object"));
    };
    const KEYS: [&str; 8] = [
        "systolic",
        "diastolic",
        "heart_rate",
        "spo2",
        "resp_rate",
        "etco2",
        "temperature_c",
        "at",
    ];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(AppError::invalid(
            k,
            format!("unknown field; expected one of {}", KEYS.join(", ")),
        ));
    }
    let mut vitals = Vitals::default();
    for (k, slot) in [
        ("systolic", &mut vitals.systolic),
        ("diastolic", &mut vitals.diastolic),
        ("heart_rate", &mut vitals.heart_rate),
        ("spo2", &mut vitals.spo2),
        ("resp_rate", &mut vitals.resp_rate),
        ("etco2", &mut vitals.etco2),
        ("temperature_c", &mut vitals.temperature_c),
    ] {
        match obj.get(k) {
            None | Some(serde_json::Value::Null) => {}
            Some(v) => {
                *slot = Some(
                    v.as_f64()
                        .ok_or_else(|| AppError::invalid(k, "expected a number"))?,
                )
            }
        }
    }
    let at = match obj.get("at").and_then(|v| v.as_str()) {
        Some(t) => t
            .parse()
            .map_err(|_| AppError::invalid("at", "expected an RFC 3339 time"))?,
        None => service::now(&s)?,
    };
    let reading = VitalReading {
        at,
        vitals,
        source: VitalSource::Api,
        by: p.actor.username.clone(),
        control_id: None,
    };
    let out = service::record_vital(&s, &p.actor, sid, &reading, None).await?;
    let status = match out {
        VitalOutcome::Stored { .. } => StatusCode::CREATED,
        VitalOutcome::Duplicate { .. } => StatusCode::OK,
    };
    Ok((status, Json(out)).into_response())
}

/// A set of vitals as the API takes them (read by hand in [`post_vitals`], which names an
/// unknown key; this type only describes the body). Each value is checked against the cited
/// plausibility ranges when stored.
#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct VitalsBody {
    /// Systolic blood pressure, mmHg.
    systolic: Option<f64>,
    /// Diastolic blood pressure, mmHg.
    diastolic: Option<f64>,
    /// Beats per minute.
    heart_rate: Option<f64>,
    /// Oxygen saturation, %.
    spo2: Option<f64>,
    /// Breaths per minute.
    resp_rate: Option<f64>,
    /// End-tidal CO2, mmHg.
    etco2: Option<f64>,
    temperature_c: Option<f64>,
    /// RFC 3339 time of the reading; now when absent.
    at: Option<String>,
}

/// The esketamine REMS Patient Monitoring Form (clinical.md §4a) of a session.
#[utoipa::path(get, path = "/api/v1/sessions/{sid}/rems-form", params(("sid" = i64, Path)), responses((status = 200, description = "every item of the form", body = ketcare_session::session::RemsForm), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn rems_form(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(sid): ApiPath<SessionId>,
) -> Result<Response, AppError> {
    let rec = s.store.session_record(&p.actor, sid).await?;
    let readings: Vec<VitalReading> = s
        .store
        .session_vitals(&p.actor, sid)
        .await?
        .into_iter()
        .map(|v| v.reading)
        .collect();
    match rec.session.rems_form(&readings) {
        Some(f) => Ok(Json(f).into_response()),
        None => Err(AppError::NotFound(format!(
            "REMS form for session {sid} (not an esketamine session)"
        ))),
    }
}
