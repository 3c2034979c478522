//! Eligibility screening of a stored patient: age on the day of care and the chart's weight come
//! from the record; the request adds what the record cannot know (the indication and drug
//! considered, history, medications, pregnancy status, the baseline vitals taken now, earlier
//! antidepressant trials). Restated facts must agree with the record.

use crate::clinical::{StoredScreening, screen_and_store};
use crate::error::{Error, Result};
use crate::facts::PatientFacts;
use crate::orders::{PatientClaims, contradictions};
use ketcare_clinical::eligibility::{
    Age, AntidepressantTrial, Baseline, Condition, Medication, PregnancyStatus,
};
use ketcare_clinical::protocol::{Drug, Indication};
use ketcare_clinical::{Library, ScreeningInput};
use ketcare_core::{Actor, PatientId};
use ketcare_store::Store;
use serde::Deserialize;

/// A screening request for a stored patient; `age` and `weight_kg` may be left out.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreeningRequest {
    pub indication: Indication,
    pub drug: Drug,
    #[serde(default)]
    pub age: Option<Age>,
    #[serde(default)]
    pub weight_kg: Option<f64>,
    #[serde(default)]
    pub history: Vec<Condition>,
    #[serde(default)]
    pub medications: Vec<Medication>,
    pub pregnancy: PregnancyStatus,
    #[serde(default)]
    pub breastfeeding: bool,
    #[serde(default)]
    pub baseline: Option<Baseline>,
    #[serde(default)]
    pub antidepressant_trials: Vec<AntidepressantTrial>,
}

impl ScreeningRequest {
    pub fn from_json(body: serde_json::Value) -> Result<Self> {
        crate::error::decode(body)
    }
}

/// The screening input: the record's age and weight with the request's answers.
pub fn input(facts: &PatientFacts, req: ScreeningRequest) -> Result<ScreeningInput> {
    let claims = PatientClaims {
        weight_kg: req.weight_kg,
        age: req.age,
        ..PatientClaims::default()
    };
    let mut errors = contradictions(facts, &claims);
    // The contradiction check speaks of the order's `patient.*`; a screening names its own.
    for e in &mut errors.0 {
        e.field = e.field.trim_start_matches("patient.").to_owned();
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let Some(weight) = facts.patient.record.weight else {
        return Err(Error::invalid(
            "weight_kg",
            "the chart has no weight: record the patient's weight (with the date measured) first",
        ));
    };
    Ok(ScreeningInput {
        indication: req.indication,
        drug: req.drug,
        age: facts.clinical_age(),
        weight_kg: weight.value,
        history: req.history,
        medications: req.medications,
        pregnancy: req.pregnancy,
        breastfeeding: req.breastfeeding,
        baseline: req.baseline,
        antidepressant_trials: req.antidepressant_trials,
    })
}

/// Screens a stored patient on the record's facts and keeps the screening.
pub async fn screen_patient(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
    req: ScreeningRequest,
    now: i64,
) -> Result<StoredScreening> {
    let facts = PatientFacts::load(
        store,
        actor,
        patient,
        crate::today(now),
        library.age_bands(),
    )
    .await?;
    let input = input(&facts, req)?;
    screen_and_store(store, library, actor, patient, input).await
}
