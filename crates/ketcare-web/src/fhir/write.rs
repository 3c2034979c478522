//! FHIR writes: `POST Patient`, `PUT Patient/{id}` (with `If-Match`), `POST Observation` (a
//! session's vital sign, stored through the same `record_vital` as the page, API and monitors,
//! so alarms and the live suite follow) and `POST QuestionnaireResponse`. Each answers with the
//! stored resource, its `Location` and `ETag`.

use super::{Fhir, FhirError, base};
use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ketcare_app::fhir as app;
use ketcare_core::PatientId;
use ketcare_store::VitalOutcome;
use serde_json::Value;

fn body(bytes: &Bytes) -> Result<Value, AppError> {
    serde_json::from_slice(bytes).map_err(|e| AppError::invalid("body", format!("not JSON: {e}")))
}

/// The stored resource with `Location` (its versioned address) and `ETag`.
fn stored(s: &AppState, headers: &HeaderMap, status: StatusCode, r: Value) -> Response {
    let kind = r["resourceType"].as_str().unwrap_or("").to_owned();
    let id = r["id"].as_str().unwrap_or("").to_owned();
    let version = r["meta"]["versionId"].as_str().unwrap_or("1").to_owned();
    let mut out = Fhir(status, r).into_response();
    let location = format!("{}/{kind}/{id}/_history/{version}", base(s, headers));
    for (name, value) in [
        (header::LOCATION, location),
        (header::ETAG, format!("W/\"{version}\"")),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.headers_mut().insert(name, v);
        }
    }
    out
}

pub async fn create_patient(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, FhirError> {
    let r = app::create_patient(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        &body(&bytes)?,
        s.today(),
    )
    .await?;
    Ok(stored(&s, &headers, StatusCode::CREATED, r))
}

pub async fn update_patient(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, FhirError> {
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::NotFound(format!("Patient/{id}")))?;
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let r = app::update_patient(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        PatientId::new(id),
        &body(&bytes)?,
        if_match.as_deref(),
        s.today(),
    )
    .await?;
    Ok(stored(&s, &headers, StatusCode::OK, r))
}

pub async fn create_observation(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, FhirError> {
    let now = crate::sessions::service::now(&s)?;
    let resource = body(&bytes)?;
    let (sid, reading) = app::vital_reading(s.store.as_ref(), &p.actor, &resource, now).await?;
    // An implausible value is refused by the same check as every edge, naming the sign: here
    // by the FHIRPath of the element that carried it.
    let out = crate::sessions::service::record_vital(&s, &p.actor, sid, &reading, None)
        .await
        .map_err(|e| match e {
            AppError::Invalid(f) => {
                let mut named = ketcare_core::FieldErrors::new();
                for x in f.0 {
                    named.push(
                        &ketcare_fhir::write::vital_path(&x.field, &resource),
                        x.message,
                    );
                }
                AppError::Invalid(named)
            }
            other => other,
        })?;
    let VitalOutcome::Stored { vital, .. } = out else {
        return Err(AppError::Conflict("the reading was already stored".into()).into());
    };
    // The stored reading as its observations; the one this body described is the first.
    let r = app::read(
        s.store.as_ref(),
        &p.actor,
        "Observation",
        &first_observation_id(vital.id, &reading.vitals),
    )
    .await?;
    Ok(stored(&s, &headers, StatusCode::CREATED, r))
}

/// The id of the first observation a stored reading makes (the panel when it has a pressure).
fn first_observation_id(vital: i64, v: &ketcare_session::vitals::Vitals) -> String {
    let suffix = if v.systolic.is_some() || v.diastolic.is_some() {
        "bp"
    } else if v.heart_rate.is_some() {
        "hr"
    } else if v.spo2.is_some() {
        "spo2"
    } else if v.resp_rate.is_some() {
        "rr"
    } else if v.temperature_c.is_some() {
        "temp"
    } else {
        "etco2"
    };
    format!("{vital}-{suffix}")
}

pub async fn create_response(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, FhirError> {
    let (r, new) =
        app::create_response(s.store.as_ref(), &p.actor, &body(&bytes)?, s.today()).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(stored(&s, &headers, status, r))
}
