//! What a FHIR client writes: a `Patient` (create, and update of the demographics with
//! `If-Match`), a vital-sign `Observation` for a session, a `QuestionnaireResponse`. Each is read
//! into ketcare's own input and goes through the same validation and store calls as the pages and
//! the JSON API; a refusal names the element by its FHIRPath.

use super::{read_patient, time_of};
use crate::error::{Error, Result};
use jiff::Timestamp;
use jiff::civil::Date;
use ketcare_clinical::Library;
use ketcare_core::patient::NewPatient;
use ketcare_core::{Actor, FieldErrors, PatientId, SessionId};
use ketcare_fhir::write as fhir_in;
use ketcare_session::vitals::{VitalReading, VitalSource};
use ketcare_store::Store;
use serde_json::Value;

/// A patient's field errors with each field named by its FHIRPath.
fn patient_errors(e: FieldErrors) -> Error {
    let mut out = FieldErrors::new();
    for f in e.0 {
        out.push(fhir_in::patient_path(&f.field), f.message);
    }
    Error::Invalid(out)
}

/// A store refusal of a patient (a taken MRN) with its field named by FHIRPath.
fn fhir_paths(e: Error) -> Error {
    match e {
        Error::Invalid(f) => patient_errors(f),
        other => other,
    }
}

fn patient_record(library: &Library, resource: &Value, today: Date) -> Result<NewPatient> {
    let input = fhir_in::patient_input(resource)?;
    crate::patients::parse(library, &input, today).map_err(patient_errors)
}

/// `POST Patient`: registers a patient from their demographics (the clinical record is added in
/// ketcare). Returns the stored `Patient`.
pub async fn create_patient(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    resource: &Value,
    today: Date,
) -> Result<Value> {
    let record = patient_record(library, resource, today)?;
    let created = store
        .create_patient(actor, &record)
        .await
        .map_err(|e| fhir_paths(e.into()))?;
    read_patient(store, actor, created.id).await
}

/// The version a client names in `If-Match` (`W/"v"` or `"v"` or `v`).
fn etag_version(text: &str) -> &str {
    text.trim().trim_start_matches("W/").trim_matches('"')
}

/// `PUT Patient/{id}`: replaces the demographics, keeping the clinical record as it is. With
/// `If-Match`, only if the record is still that version (else 412); a change by someone else
/// between this read and the write is a conflict (409). Nothing is written on either.
pub async fn update_patient(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    id: PatientId,
    resource: &Value,
    if_match: Option<&str>,
    today: Date,
) -> Result<Value> {
    if let Some(given) = resource["id"].as_str()
        && given != id.to_string()
    {
        return Err(Error::invalid(
            "Patient.id",
            format!("the body is Patient/{given}, the address Patient/{id}"),
        ));
    }
    let record = patient_record(library, resource, today)?;
    let current = super::demographics(store.patient_view(actor, id).await?);
    let version = ketcare_fhir::resources::version_of(time_of(&current.updated_at));
    if let Some(m) = if_match
        && etag_version(m) != version
    {
        return Err(Error::PreconditionFailed(format!(
            "Patient/{id} is at version {version}, not {}",
            etag_version(m)
        )));
    }
    store
        .update_demographics(actor, id, &record, &current.updated_at)
        .await
        .map_err(|e| fhir_paths(e.into()))?;
    read_patient(store, actor, id).await
}

/// `POST Observation`: a vital sign (or the blood-pressure panel) of a session, as the reading
/// the session edge stores — after checking that the session is the patient's the observation
/// names (a contradiction is refused, never guessed). The caller stores it through the same
/// `record_vital` as every other edge.
pub async fn vital_reading(
    store: &dyn Store,
    actor: &Actor,
    resource: &Value,
    now: Timestamp,
) -> Result<(SessionId, VitalReading)> {
    let v = fhir_in::vital_in(resource)?;
    let sid = SessionId::new(v.session);
    let session = store
        .session_record(actor, sid)
        .await
        .map_err(|e| match e {
            ketcare_store::StoreError::NotFound { .. } => Error::invalid(
                "Observation.encounter",
                format!("there is no session Encounter/{}", v.session),
            ),
            other => other.into(),
        })?;
    if session.patient_id.get() != v.patient {
        return Err(Error::invalid(
            "Observation.subject",
            format!(
                "Encounter/{} is a session of another patient, not Patient/{}",
                v.session, v.patient
            ),
        ));
    }
    Ok((
        sid,
        VitalReading {
            at: v.at.unwrap_or(now),
            vitals: v.vitals,
            source: VitalSource::Api,
            by: actor.username.clone(),
            control_id: None,
        },
    ))
}

/// `POST QuestionnaireResponse`: scored and stored by the same function as a form entered by
/// staff (a positive suicide-risk answer raises the same urgent alert, even on an incomplete
/// form). A repeat of the same response (same `identifier`, or the same answers for the same
/// patient, questionnaire and day) stores nothing new. Returns the stored response and whether
/// it is new.
pub async fn create_response(
    store: &dyn Store,
    actor: &Actor,
    resource: &Value,
    today: Date,
) -> Result<(Value, bool)> {
    let r = fhir_in::response_in(resource)?;
    let instrument = crate::measures::catalogue()
        .and_then(|c| {
            c.instruments
                .iter()
                .find(|i| ketcare_fhir::questionnaire::names(&r.instrument, &i.id))
        })
        .ok_or_else(|| {
            Error::invalid(
                "QuestionnaireResponse.questionnaire",
                format!("{} is not a questionnaire ketcare scores", r.instrument),
            )
        })?;
    let mut answers: Vec<Option<i32>> = vec![None; instrument.items.len()];
    for (n, a) in &r.answers {
        let slot = answers.get_mut(n - 1).ok_or_else(|| {
            Error::invalid(
                "QuestionnaireResponse.item.linkId",
                format!(
                    "{} has items 1 to {}",
                    instrument.name,
                    instrument.items.len()
                ),
            )
        })?;
        *slot = Some(*a);
    }
    let taken_on = match &r.taken_on {
        Some(d) => d.parse::<Date>().map_err(|_| {
            Error::invalid(
                "QuestionnaireResponse.authored",
                "give a date or an instant",
            )
        })?,
        None => today,
    };
    let key = match &r.identifier {
        Some(id) => format!("fhir:{id}"),
        None => format!(
            "fhir:{}:{}:{taken_on}:{}",
            r.patient,
            instrument.id,
            serde_json::to_string(&answers).map_err(|_| Error::Internal)?
        ),
    };
    let pid = PatientId::new(r.patient);
    let (stored, _, new) =
        crate::measures::record(store, actor, pid, &r.instrument, &answers, taken_on, &key).await?;
    let v = ketcare_fhir::questionnaire::questionnaire_response(
        ketcare_fhir::questionnaire::ResponseOf {
            response_id: stored.id.get(),
            patient: pid.get(),
            instrument: &stored.instrument,
            answers: &stored.answers,
            taken_on: &stored.taken_on,
            recorded_by: &stored.recorded_by,
            recorded_at: time_of(&stored.recorded_at),
        },
    );
    Ok((v, new))
}
