//! ketcare's pharmacokinetic engine (pure: no I/O).
//!
//! Models are cited data files (`data/pk/*.toml`), every parameter with its source IDs and
//! status from the reference. A model and the routes of a regimen define a linear system
//! `dx/dt = A x + u(t)` with piecewise-constant input; it is solved exactly between events with
//! the matrix exponential. Populations draw log-normal variability from a seed; target-controlled
//! infusion is advisory only — ketcare never drives a pump.
#![forbid(unsafe_code)]

pub mod data;
pub mod error;
pub mod fast;
mod lanes;
mod linalg;
pub mod model;
pub mod population;
pub mod sim;
pub mod tci;

#[cfg(test)]
mod ode_check;

pub use data::{Drug, Status};
pub use error::PkError;
pub use model::{Covariates, Library, Model};
pub use population::{PopulationSpec, PopulationSummary, Stat};
pub use sim::{
    Assumption, Dose, Options, Prepared, Profile, RateStep, Regimen, Route, RouteAssumption,
};

use serde::{Deserialize, Serialize};

/// A simulation request: the same for the CLI, the pages and the JSON API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimRequest {
    pub model: String,
    pub regimen: Regimen,
    pub covariates: Covariates,
    #[serde(default)]
    pub options: Options,
    /// Horizon (min), default 360.
    #[serde(default = "default_horizon")]
    pub horizon_min: f64,
    /// Output grid step (min), default 1.
    #[serde(default = "default_step")]
    pub step_min: f64,
    /// Population run (absent: the typical person only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<PopulationSpec>,
    /// A label for comparisons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

fn default_horizon() -> f64 {
    360.0
}
fn default_step() -> f64 {
    1.0
}

/// Key numbers of the typical curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct KeyNumbers {
    pub cmax_ng_ml: f64,
    pub tmax_min: f64,
    /// Exact AUC over the horizon (ng·min/mL).
    pub auc_ng_min_ml: f64,
    /// Concentration at the end of the horizon.
    pub clast_ng_ml: f64,
    pub total_dose_mg: f64,
}

/// What a model is and where it holds.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub id: String,
    pub name: String,
    pub drug: Drug,
    pub structure: String,
    pub sources: Vec<String>,
    pub population: String,
    pub population_status: Status,
    pub age_range_years: Option<[f64; 2]>,
    pub weight_range_kg: Option<[f64; 2]>,
    pub own_routes: Vec<Route>,
    pub outputs: Vec<String>,
    pub has_iiv: bool,
    pub unpublished: Vec<String>,
    pub caution: Option<String>,
    pub not_modelled: Option<String>,
    pub file: String,
}

impl ModelInfo {
    pub fn of(m: &Model) -> ModelInfo {
        let f = &m.file;
        ModelInfo {
            id: f.id.clone(),
            name: f.name.clone(),
            drug: f.drug,
            structure: f.structure.clone(),
            sources: f.sources.clone(),
            population: f.population.text.clone(),
            population_status: f.population.status,
            age_range_years: f.validity.as_ref().and_then(|v| v.age_years),
            weight_range_kg: f.validity.as_ref().and_then(|v| v.weight_kg),
            own_routes: m.own_routes(),
            outputs: f.output.iter().map(|o| o.name.clone()).collect(),
            has_iiv: f.param.values().any(|p| p.iiv.is_some()),
            unpublished: f
                .unpublished
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect(),
            caution: f.caution.clone(),
            not_modelled: f.not_modelled.clone(),
            file: m.path.clone(),
        }
    }
}

/// A simulation result.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SimResult {
    pub label: Option<String>,
    pub model: ModelInfo,
    pub times_min: Vec<f64>,
    /// Typical person, per output: (output id, ng/mL).
    pub typical: Vec<(String, Vec<f64>)>,
    /// Effect-site curve (ng/mL) when a ke0 assumption is given.
    pub effect_site: Option<Vec<f64>>,
    pub key: KeyNumbers,
    pub population: Option<PopulationSummary>,
    pub assumptions: Vec<Assumption>,
    pub warnings: Vec<String>,
    pub advisory: &'static str,
}

/// Shown with every result.
pub const ADVISORY: &str = "Model prediction for decision support only: it does not replace clinical judgement, and ketcare never drives an infusion pump.";

/// Number of points of [`grid`] (validating horizon and step the same way).
pub fn grid_len(horizon_min: f64, step_min: f64) -> Result<usize, PkError> {
    error::positive("horizon_min", horizon_min)?;
    error::positive("step_min", step_min)?;
    if horizon_min > 14.0 * 24.0 * 60.0 {
        return Err(PkError::input("horizon_min", "at most 14 days"));
    }
    let ratio = horizon_min / step_min;
    if ratio > 100_000.0 {
        return Err(PkError::input(
            "step_min",
            "too fine for the horizon (more than 100,000 points)",
        ));
    }
    // Whole steps that fall before the horizon (a step within 1e-9 of it counts as reaching it),
    // then the horizon itself.
    let whole = (ratio * (1.0 + 1e-12)).floor() as usize;
    let n = if (whole as f64 * step_min - horizon_min).abs() <= 1e-9 * horizon_min {
        whole
    } else {
        whole + 1
    };
    Ok(n + 1)
}

/// The output grid `0, step, 2·step, …, horizon`: it always ends exactly at the horizon, also when
/// the step does not divide it (the last interval is then shorter).
pub fn grid(horizon_min: f64, step_min: f64) -> Result<Vec<f64>, PkError> {
    let len = grid_len(horizon_min, step_min)?;
    let mut g: Vec<f64> = (0..len - 1).map(|i| i as f64 * step_min).collect();
    g.push(horizon_min);
    Ok(g)
}

impl SimRequest {
    /// Values the request keeps while it runs: grid points × model outputs × subjects (1 without
    /// a population). A population run holds every subject's curves (8 bytes each) and merges
    /// them once (about 16 bytes per value at the peak).
    pub fn cells(&self, lib: &Library) -> Result<usize, PkError> {
        let points = grid_len(self.horizon_min, self.step_min)?;
        let outputs = lib.model(&self.model)?.file.output.len();
        let subjects = self.population.as_ref().map_or(1, |p| p.subjects.max(1));
        Ok(points.saturating_mul(outputs).saturating_mul(subjects))
    }
}

/// Run one request (typical person, and the population if asked).
pub fn simulate(
    lib: &Library,
    req: &SimRequest,
    progress: Option<&(dyn Fn(usize) + Sync)>,
) -> Result<SimResult, PkError> {
    let model = lib.model(&req.model)?;
    if req.regimen.doses.is_empty() && req.regimen.iv_rates.is_empty() {
        return Err(PkError::input(
            "regimen",
            "give at least one dose or IV rate",
        ));
    }
    let times = grid(req.horizon_min, req.step_min)?;
    req.regimen
        .check_plausible(req.covariates.weight_kg, req.horizon_min)?;
    let prep = Prepared::new(
        lib,
        model,
        &req.covariates,
        &req.regimen.routes(),
        &req.options,
    )?;
    let prof = prep.simulate(&prep.typical, &req.regimen, &times, false)?;
    if prof
        .conc
        .iter()
        .chain(prof.effect.iter())
        .any(|c| c.iter().any(|v| !v.is_finite()))
    {
        return Err(PkError::input(
            "regimen",
            "the prediction is not a finite number for this regimen",
        ));
    }
    let c = &prof.conc[0];
    let (mut cmax, mut tmax) = (0.0, 0.0);
    for (k, &v) in c.iter().enumerate() {
        if v > cmax {
            cmax = v;
            tmax = times[k];
        }
    }
    let key = KeyNumbers {
        cmax_ng_ml: cmax,
        tmax_min: tmax,
        auc_ng_min_ml: prof.auc.last().copied().unwrap_or(0.0),
        clast_ng_ml: c.last().copied().unwrap_or(0.0),
        total_dose_mg: req.regimen.total_mg(req.horizon_min),
    };
    let population = match &req.population {
        Some(spec) => Some(population::run(
            &prep,
            &req.regimen,
            &times,
            spec,
            req.covariates.weight_kg,
            progress,
        )?),
        None => None,
    };
    let mut assumptions = prep.assumptions.clone();
    if let Some(spec) = &req.population {
        for (name, cv) in &spec.iiv_cv {
            assumptions.push(Assumption {
                name: format!("IIV of {name}"),
                value: Some(*cv),
                unit: "CV".into(),
                status: None,
                source: vec![],
                note: "log-normal variability chosen by the user".into(),
                alternatives: vec![],
            });
        }
    }
    Ok(SimResult {
        label: req.label.clone(),
        model: ModelInfo::of(model),
        typical: prep
            .outputs
            .iter()
            .map(|o| o.0.clone())
            .zip(prof.conc)
            .collect(),
        effect_site: prof.effect,
        times_min: times,
        key,
        population,
        assumptions,
        warnings: prep.warnings.clone(),
        advisory: ADVISORY,
    })
}

/// Run several regimens side by side (same seed: the same virtual subjects where the models match).
pub fn compare(lib: &Library, reqs: &[SimRequest]) -> Result<Vec<SimResult>, PkError> {
    if reqs.is_empty() || reqs.len() > 6 {
        return Err(PkError::input("regimens", "compare 1 to 6 regimens"));
    }
    reqs.iter()
        .enumerate()
        .map(|(i, r)| {
            simulate(lib, r, None).map_err(|e| match e {
                PkError::Input { field, message } => PkError::Input {
                    field: format!("regimens[{i}].{field}"),
                    message,
                },
                other => other,
            })
        })
        .collect()
}

/// A simple regimen: `mg_per_kg × weight` by `route` at time 0 (IV infusion over `duration_min`).
/// No clinical ceiling is applied here (the reference gives none for a simulation): the
/// regimen meets the same physical check as every other when it is simulated
/// ([`Regimen::check_plausible`]: never more drug than the body weighs, never a non-finite
/// amount).
pub fn simple_regimen(
    route: Route,
    mg_per_kg: f64,
    weight_kg: f64,
    duration_min: Option<f64>,
) -> Result<Regimen, PkError> {
    error::positive("dose_mg_per_kg", mg_per_kg)?;
    error::positive("weight_kg", weight_kg)?;
    let duration_min = match (route, duration_min) {
        (Route::IvInfusion, None) => {
            return Err(PkError::input(
                "duration_min",
                "an IV infusion needs a duration",
            ));
        }
        (Route::IvInfusion, d) => d,
        _ => None,
    };
    Ok(Regimen {
        doses: vec![Dose {
            time_min: 0.0,
            amount_mg: mg_per_kg * weight_kg,
            route,
            duration_min,
        }],
        iv_rates: vec![],
    })
}
