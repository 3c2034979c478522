//! Dose orders for a stored patient. The calculator is given the record's facts — age on the day
//! of care, the chart's weight, height and sex, whether this is the first esketamine dose of
//! the course — and the request adds only what the record cannot know (the protocol, the chosen
//! amount, the vial). A request that restates a fact differently from the record is refused
//! naming the field; one that leaves it out is completed from the record.

use crate::clinical::{StoredOrder, calculate_with_settings, store_order, timestamp, username};
use crate::error::{Error, Result};
use crate::facts::PatientFacts;
use ketcare_clinical::dose::{Administration, DoseChoice, DoseRequest, Preparation};
use ketcare_clinical::eligibility::Age as ClinicalAge;
use ketcare_clinical::protocol::Drug;
use ketcare_clinical::units::DoseMg;
use ketcare_clinical::{DoseOrder, Library};
use ketcare_core::{Actor, FieldErrors, PatientId, Permission};
use ketcare_session::rules::Mode;
use ketcare_store::Store;
use serde::Deserialize;

/// What a caller may say about the patient. Each value is optional and, when given, must agree
/// with the record (it is a confirmation, never a source).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientClaims {
    #[serde(default)]
    pub weight_kg: Option<f64>,
    #[serde(default)]
    pub height_cm: Option<f64>,
    #[serde(default)]
    pub sex: Option<String>,
    #[serde(default)]
    pub age: Option<ClinicalAge>,
}

/// A dose order request for a stored patient: the prescriber's choices. `patient` and
/// `first_dose_of_course` may be omitted; when present they are checked against the record.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub protocol_id: String,
    #[serde(default)]
    pub patient: Option<PatientClaims>,
    #[serde(default)]
    pub administration: Administration,
    #[serde(default)]
    pub bolus: DoseChoice,
    #[serde(default)]
    pub infusion: DoseChoice,
    #[serde(default)]
    pub dose: DoseChoice,
    #[serde(default)]
    pub repeat: DoseChoice,
    #[serde(default)]
    pub esketamine_dose_mg: Option<DoseMg>,
    #[serde(default)]
    pub first_dose_of_course: Option<bool>,
    #[serde(default)]
    pub preparation: Option<Preparation>,
    #[serde(default)]
    pub bolus_preparation: Option<Preparation>,
    #[serde(default)]
    pub given_this_session_mg: Option<DoseMg>,
}

impl OrderRequest {
    /// Decodes a JSON body, naming the first bad field by its path.
    pub fn from_json(body: serde_json::Value) -> Result<Self> {
        crate::error::decode(body)
    }
}

/// Agreement within this many kg counts as the same weight (the chart keeps lb converted to kg).
const WEIGHT_SAME_KG: f64 = 0.005;
/// Likewise for height, in cm.
const HEIGHT_SAME_CM: f64 = 0.05;

/// Every claim that contradicts the record, each naming its field.
pub fn contradictions(facts: &PatientFacts, claims: &PatientClaims) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let record = &facts.patient.record;
    if let Some(w) = claims.weight_kg {
        match facts.weight() {
            Some((kg, _)) if (kg - w).abs() <= WEIGHT_SAME_KG && w.is_finite() => {}
            Some((kg, on)) => errors.push(
                "patient.weight_kg",
                format!(
                    "{w} kg contradicts the chart ({kg} kg, measured {on}); record a new weight on the chart to change it"
                ),
            ),
            None => errors.push(
                "patient.weight_kg",
                "the chart has no weight: record it on the chart (with the date measured) rather than in the order",
            ),
        }
    }
    if let Some(h) = claims.height_cm {
        match record.height {
            Some(m) if (m.value.cm() - h).abs() <= HEIGHT_SAME_CM && h.is_finite() => {}
            Some(m) => errors.push(
                "patient.height_cm",
                format!(
                    "{h} cm contradicts the chart ({} cm, measured {}); record a new height on the chart to change it",
                    m.value.cm(),
                    m.measured_on
                ),
            ),
            None => errors.push(
                "patient.height_cm",
                "the chart has no height: record it on the chart rather than in the order",
            ),
        }
    }
    if let Some(s) = &claims.sex
        && s != record.sex.as_str()
    {
        errors.push(
            "patient.sex",
            format!("{s:?} contradicts the record ({})", record.sex.as_str()),
        );
    }
    if let Some(a) = claims.age {
        let ours = facts.clinical_age();
        // "46 years" (no months) is true of a patient of 46 years and 6 months.
        let same = if a.months == 0 {
            a.years == ours.years
        } else {
            a.total_months() == ours.total_months()
        };
        if !same {
            errors.push(
                "patient.age",
                format!(
                    "{} y {} m contradicts the record: born {}, so {} y {} m on {}",
                    a.years, a.months, record.date_of_birth, ours.years, ours.months, facts.today
                ),
            );
        }
    }
    errors
}

/// Whether the next esketamine dose is the first of the course: no earlier session of this
/// patient has given esketamine (conservative: an order never given does not count).
pub async fn first_esketamine_dose(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
) -> Result<bool> {
    let sessions = store.patient_sessions(actor, patient).await?;
    Ok(!sessions
        .iter()
        .any(|r| r.session.plan.mode == Mode::Esketamine && r.session.devices_given() > 0))
}

/// What the patient has been given in the session now in a chair (none when no session is
/// active): `Ok(None)` when the record cannot compute it (an infusion without a prepared
/// concentration), for the caller to state.
async fn given_in_active_session(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
) -> Result<Option<f64>> {
    let sessions = store.patient_sessions(actor, patient).await?;
    match sessions.iter().find(|r| r.session.phase.is_active()) {
        None => Ok(Some(0.0)),
        Some(r) => Ok(r.session.delivered().ok().map(|d| d.mg)),
    }
}

/// The calculator's request for this patient: the record's facts plus the caller's choices.
pub async fn dose_request(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    facts: &PatientFacts,
    req: &OrderRequest,
    now: i64,
) -> Result<DoseRequest> {
    let protocol = library
        .get(&req.protocol_id)
        .map_err(|e| Error::invalid("protocol_id", e.to_string()))?;
    // A site's own protocol is ordered only by its staff.
    crate::clinical::protocol_is_ours(store, actor, &req.protocol_id, "protocol_id").await?;
    let mut errors = req
        .patient
        .as_ref()
        .map(|c| contradictions(facts, c))
        .unwrap_or_default();
    let first_dose_of_course = if protocol.drug == Drug::Esketamine {
        let derived = first_esketamine_dose(store, actor, facts.patient.id).await?;
        if let Some(claimed) = req.first_dose_of_course
            && claimed != derived
        {
            errors.push(
                "first_dose_of_course",
                format!(
                    "the record says this is {}the first esketamine dose of the course (from the patient's sessions); leave the field out",
                    if derived { "" } else { "not " }
                ),
            );
        }
        derived
    } else {
        if req.first_dose_of_course == Some(true) {
            errors.push(
                "first_dose_of_course",
                "only esketamine protocols have a first dose of the course",
            );
        }
        false
    };
    let claimed = req.given_this_session_mg.map(|d| d.value());
    let given_this_session_mg = match (
        given_in_active_session(store, actor, facts.patient.id).await?,
        claimed,
    ) {
        (Some(ours), Some(c)) if (ours - c).abs() > 0.001 => {
            errors.push(
                "given_this_session_mg",
                format!(
                    "{c} mg contradicts the record: {ours} mg given in the patient's current session; leave the field out"
                ),
            );
            None
        }
        (Some(ours), _) => (ours > 0.0).then_some(ours),
        (None, Some(c)) => Some(c),
        (None, None) => {
            errors.push(
                "given_this_session_mg",
                "the current session's record cannot compute what was given (no prepared concentration): state the mg given",
            );
            None
        }
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    Ok(DoseRequest {
        protocol_id: req.protocol_id.clone(),
        patient: facts.measures()?,
        administration: req.administration,
        bolus: req.bolus.clone(),
        infusion: req.infusion.clone(),
        dose: req.dose.clone(),
        repeat: req.repeat.clone(),
        esketamine_dose_mg: req.esketamine_dose_mg,
        first_dose_of_course,
        preparation: req.preparation.clone(),
        bolus_preparation: req.bolus_preparation.clone(),
        given_this_session_mg: given_this_session_mg
            .map(DoseMg::new)
            .transpose()
            .map_err(|e| Error::invalid("given_this_session_mg", e.to_string()))?,
        author: username(actor)?,
        created_at: timestamp(now)?,
    })
}

/// Calculates (without storing) an order for a stored patient from the record's facts.
pub async fn preview(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
    req: &OrderRequest,
    now: i64,
) -> Result<DoseOrder> {
    let facts = load(store, library, actor, patient, now).await?;
    let request = dose_request(store, library, actor, &facts, req, now).await?;
    calculate_with_settings(store, library, &request).await
}

/// Calculates an order for a stored patient from the record's facts and keeps it, pending
/// verification (or needing an override of a soft limit). Only a prescriber signs.
/// A short fingerprint of a previewed calculation. The page that shows a preview carries it, and
/// signing from that page is refused if the calculation made now differs (the record or the
/// settings changed since, or the form was edited after the preview).
pub fn preview_digest(order: &DoseOrder) -> String {
    use sha2::{Digest, Sha256};
    let body = serde_json::to_vec(&order.calculation).unwrap_or_default();
    hex::encode(&Sha256::digest(&body)[..12])
}

pub async fn sign(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
    req: &OrderRequest,
    now: i64,
) -> Result<StoredOrder> {
    if !actor.may(Permission::OrderDose) {
        return Err(Error::Forbidden(
            "only a prescriber signs a dose order".into(),
        ));
    }
    let facts = load(store, library, actor, patient, now).await?;
    let request = dose_request(store, library, actor, &facts, req, now).await?;
    let order = calculate_with_settings(store, library, &request).await?;
    store_order(store, actor, patient, &order).await
}

async fn load(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
    now: i64,
) -> Result<PatientFacts> {
    let today = crate::today(now);
    PatientFacts::load(store, actor, patient, today, library.age_bands()).await
}

/// Withdraws a dose order with a reason, before anything of it is given. Refused while a session
/// that uses it is still open (cancel the session first), and once a session has given any of it.
pub async fn withdraw(
    store: &dyn Store,
    actor: &Actor,
    id: ketcare_core::RecordId,
    reason: &str,
    now: i64,
) -> Result<StoredOrder> {
    if !actor.may(Permission::OrderDose) {
        return Err(Error::Forbidden(
            "only a prescriber withdraws a dose order".into(),
        ));
    }
    if reason.trim().is_empty() {
        return Err(Error::invalid(
            "reason",
            "say why the order is withdrawn (recorded with your name and the time)",
        ));
    }
    let current = crate::clinical::order_of(
        &store
            .record(actor, ketcare_store::RecordKind::DoseOrder, id)
            .await?,
    )?;
    for s in store.patient_sessions(actor, current.patient_id).await? {
        if s.session.dose_order_id != Some(id.get()) {
            continue;
        }
        if !s.session.administrations.is_empty() {
            return Err(Error::Conflict(format!(
                "session {} has given this order: it cannot be withdrawn; record what happened in the session",
                s.id
            )));
        }
        if s.session.is_open() {
            return Err(Error::Conflict(format!(
                "session {} ({}) uses this order: cancel the session first, then withdraw the order",
                s.id,
                s.session.phase.label()
            )));
        }
    }
    crate::clinical::transition(
        store,
        actor,
        id,
        Permission::OrderDose,
        "dose_order.withdraw",
        |o, u, t| o.withdraw(u, reason, t),
        now,
    )
    .await
}
