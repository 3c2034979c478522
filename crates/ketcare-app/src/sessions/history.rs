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
use ketcare_session::Session;
use ketcare_store::registry::PredictedExposure;
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
    let label = format!("session {sid}: {} {}", history.drug, history.route);
    let req = request(
        &history,
        weight_kg,
        age_years,
        q.model.as_deref(),
        Some(label),
    );
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

/// The simulation of a dose history for a weight and age: the model asked for (default:
/// [`default_model`]), the horizon of [`horizon_after`], a 1-minute grid, no population.
fn request(
    history: &DoseHistory,
    weight_kg: f64,
    age_years: Option<f64>,
    model: Option<&str>,
    label: Option<String>,
) -> SimRequest {
    SimRequest {
        model: model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| default_model(history))
            .to_owned(),
        regimen: history.regimen.clone(),
        covariates: Covariates {
            weight_kg,
            age_years,
        },
        options: Options::default(),
        horizon_min: horizon_after(history.last_event_min),
        step_min: 1.0,
        population: None,
        label,
    }
}

/// The registry's figures of a prediction: the engine's Cmax (ng/mL) and exact AUC
/// (ng·min/mL) over the prediction's horizon, with the model and weight they used.
pub fn exposure_of(p: &Predicted) -> PredictedExposure {
    PredictedExposure {
        model: p.result.model.id.clone(),
        weight_kg: p.weight_kg,
        cmax_ng_ml: p.result.key.cmax_ng_ml,
        auc_ng_min_ml: p.result.key.auc_ng_min_ml,
        auc_horizon_min: p.result.times_min.last().copied().unwrap_or(0.0),
    }
}

/// The predicted exposure of what a session document gave, for `weight_kg` and `age_years`,
/// with the default model: the request [`predicted_of`] runs, run here on the calling thread
/// (the synthetic clinic's generator calls it from its blocking workers). `Ok(None)` when the
/// session gave nothing.
pub fn session_exposure(
    library: &Library,
    pk: &ketcare_pk::Library,
    session: &Session,
    weight_kg: f64,
    age_years: Option<f64>,
) -> Result<Option<PredictedExposure>> {
    let Some(history) = crate::given::of_session(library, session)? else {
        return Ok(None);
    };
    let req = request(&history, weight_kg, age_years, None, None);
    let result = ketcare_pk::simulate(pk, &req, None).map_err(crate::pk::pk_error)?;
    Ok(Some(PredictedExposure {
        model: result.model.id.clone(),
        weight_kg,
        cmax_ng_ml: result.key.cmax_ng_ml,
        auc_ng_min_ml: result.key.auc_ng_min_ml,
        auc_horizon_min: result.times_min.last().copied().unwrap_or(0.0),
    }))
}

/// Predicts what session `r` gives (the record's doses, the weight charted now, the age on the
/// day of the first administration): the Cmax and AUC a signature stores with it
/// ([`super::service::sign`]). A record the engine cannot read (no weight charted, no dose
/// given) has no prediction: the reason is returned, for the log.
pub async fn predict_exposure(
    store: &dyn Store,
    library: &Library,
    pk: PkLibrary,
    actor: &Actor,
    r: &SessionRecord,
) -> Result<std::result::Result<PredictedExposure, String>> {
    let zone = crate::zones::of_site(store, r.site_id).await?;
    let Some(day) = r.session.dose_start().map(|t| t.to_zoned(zone).date()) else {
        return Ok(Err("the session gave no dose".into()));
    };
    let pt = store.get_patient(actor, r.patient_id).await?;
    predicted_on(library, pk, r, &pt, day).await
}

/// The prediction of session `r` for the patient's record already read, on dose day `day`.
async fn predicted_on(
    library: &Library,
    pk: PkLibrary,
    r: &SessionRecord,
    pt: &Patient,
    day: jiff::civil::Date,
) -> Result<std::result::Result<PredictedExposure, String>> {
    match predicted_of(library, pk, r, pt, &PredictedQuery::default(), day).await {
        Ok(p) => Ok(Ok(exposure_of(&p))),
        Err(e) => unpredictable(e).map(Err),
    }
}

/// What a backfill of predicted exposure did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backfill {
    /// Signed sessions whose Cmax and AUC were predicted and stored.
    pub predicted: usize,
    /// Signed sessions the engine could not read, with why (no weight charted, no dose given…):
    /// they stay without a predicted exposure.
    pub unpredictable: Vec<(SessionId, String)>,
}

/// The account a backfill runs as (it stores what a signature would have stored).
pub fn backfill_actor() -> Actor {
    Actor {
        user_id: None,
        username: "system:exposure-backfill".into(),
        role: Some(ketcare_core::Role::Prescriber),
        address: "local".into(),
    }
}

/// Predicts and stores the exposure of every signed session that has none — a session signed
/// before the registry kept exposure (migration 0025), or one whose figure failed to be
/// stored — with the same [`predict_exposure`] a signature runs, one session at a time (each
/// record read and each figure stored audited). The prediction uses the weight on the chart,
/// so a session is predicted only when that weight was measured on or before its dose day (the
/// weight charted then); otherwise, and when the engine cannot read the record or a session
/// fails, it is reported with why and left as it is. Running it again predicts nothing new.
pub async fn backfill_exposure(
    store: &dyn Store,
    library: &Library,
    pk: PkLibrary,
    actor: &Actor,
) -> Result<Backfill> {
    const BATCH: i64 = 200;
    let mut done = Backfill::default();
    let mut after = 0;
    loop {
        let ids = store.signed_sessions_without_exposure(after, BATCH).await?;
        let Some(last) = ids.last() else {
            return Ok(done);
        };
        after = last.get();
        for sid in ids {
            match backfill_one(store, library, pk.clone(), actor, sid).await {
                Ok(Ok(())) => done.predicted += 1,
                Ok(Err(why)) => done.unpredictable.push((sid, why)),
                Err(e) => done.unpredictable.push((sid, e.to_string())),
            }
        }
    }
}

async fn backfill_one(
    store: &dyn Store,
    library: &Library,
    pk: PkLibrary,
    actor: &Actor,
    sid: SessionId,
) -> Result<std::result::Result<(), String>> {
    let rec = store.session_record(actor, sid).await?;
    let zone = crate::zones::of_site(store, rec.site_id).await?;
    let Some(day) = rec.session.dose_start().map(|t| t.to_zoned(zone).date()) else {
        return Ok(Err("the session gave no dose".into()));
    };
    let pt = store.get_patient(actor, rec.patient_id).await?;
    match pt.record.weight {
        Some(w) if w.measured_on <= day => {}
        Some(w) => {
            return Ok(Err(format!(
                "the chart's weight was measured on {}, after the session's dose day {day}: \
                 the weight charted then is not known",
                w.measured_on
            )));
        }
        None => return Ok(Err("the patient's record has no weight".into())),
    }
    match predicted_on(library, pk, &rec, &pt, day).await? {
        Ok(e) => {
            store.put_session_exposure(actor, rec.id, &e).await?;
            Ok(Ok(()))
        }
        Err(why) => Ok(Err(why)),
    }
}

/// Why a record cannot be predicted (the engine's refusal or what the record lacks, in words),
/// or the error itself when it is not about the record (the store's, an internal one).
pub(crate) fn unpredictable(e: Error) -> Result<String> {
    match e {
        Error::Conflict(m) => Ok(m),
        Error::Invalid(f) => Ok(f
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")),
        e => Err(e),
    }
}
