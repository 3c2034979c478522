//! The predicted plasma concentration of what a session gave
//! (`GET /api/v1/sessions/{sid}/predicted`, the page `/sessions/{sid}/predicted`): the dose
//! history of [`crate::given`] simulated for the patient's weight and age from the record.

use crate::error::{Error, Result};
use crate::pk::PkLibrary;
use jiff::civil::Date;
use ketcare_clinical::Library;
use ketcare_core::patient::Patient;
use ketcare_core::{Actor, PatientId, SessionId};
use ketcare_pk::{Covariates, Options, SimRequest, SimResult};
use ketcare_store::{SessionRecord, Store};
use serde::{Deserialize, Serialize};

pub use crate::given::{DoseHistory, SessionMarker, dose_history, of_record, patient_markers};

/// Default PK model for what the session gave (overridable with `?model=`).
fn default_model(h: &DoseHistory) -> &'static str {
    if h.drug == "esketamine" {
        "perez_ruixo_2021"
    } else {
        "domino"
    }
}

/// The prediction's horizon after the last dosing event at `end_min` (minutes from the first
/// administration): the curve's fall after dosing is part of the picture.
pub fn horizon_after(end_min: f64) -> f64 {
    (end_min + 240.0).max(360.0).ceil()
}

/// Runs one simulation off the async runtime.
pub(crate) async fn run(pk: PkLibrary, req: SimRequest) -> Result<SimResult> {
    tokio::task::spawn_blocking(move || {
        let lib = crate::pk::library(&pk)?;
        ketcare_pk::simulate(lib, &req, None).map_err(crate::pk::pk_error)
    })
    .await
    .map_err(|_| Error::Internal)?
}

#[derive(Debug, Default, Deserialize)]
pub struct PredictedQuery {
    /// A PK model id (default: Domino for ketamine, Perez-Ruixo 2021 for esketamine).
    pub model: Option<String>,
}

/// The predicted curve of what a session gave.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Predicted {
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub history: DoseHistory,
    pub weight_kg: f64,
    pub age_years: Option<f64>,
    pub result: SimResult,
}

/// Builds the prediction: the patient's weight and age on `today` come from the record (reads
/// are audited), the doses from what the session gave.
pub async fn predicted(
    store: &dyn Store,
    library: &Library,
    pk: PkLibrary,
    actor: &Actor,
    sid: SessionId,
    q: &PredictedQuery,
    today: Date,
) -> Result<Predicted> {
    let r = store.session_record(actor, sid).await?;
    let pt = store.get_patient(actor, r.patient_id).await?;
    predicted_of(library, pk, &r, &pt, q, today).await
}

/// The prediction of a session record already read with its patient: what [`predicted`] runs
/// (callers that read the record themselves, such as [`crate::exposure`], get the same curve).
pub async fn predicted_of(
    library: &Library,
    pk: PkLibrary,
    r: &SessionRecord,
    pt: &Patient,
    q: &PredictedQuery,
    today: Date,
) -> Result<Predicted> {
    let sid = r.id;
    let Some(history) = of_record(library, r)? else {
        return Err(Error::Conflict(
            "this session has given nothing yet: there is no dose history to predict from".into(),
        ));
    };
    let rec = &pt.record;
    let weight_kg = rec.weight.map(|w| f64::from(w.value)).ok_or_else(|| {
        Error::invalid(
            "weight_kg",
            "the patient's record has no weight: record it to predict a curve",
        )
    })?;
    let age_years = rec
        .day_of_care(today, library.age_bands())
        .map(|d| f64::from(d.age.completed_months) / 12.0);
    let end = history.last_event_min;
    let req = SimRequest {
        model: q
            .model
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| default_model(&history).to_owned()),
        regimen: history.regimen.clone(),
        covariates: Covariates {
            weight_kg,
            age_years,
        },
        options: Options::default(),
        horizon_min: horizon_after(end),
        step_min: 1.0,
        population: None,
        label: Some(format!("session {sid}: {} {}", history.drug, history.route)),
    };
    let result = run(pk, req).await?;
    Ok(Predicted {
        session_id: sid,
        patient_id: r.patient_id,
        history,
        weight_kg,
        age_years,
        result,
    })
}
