//! Target-controlled infusion, STANPUMP-style (pkpd.md §8.1): every update interval the rate
//! that brings the predicted plasma concentration to the target at the end of the interval
//! (`(target − Cp without drug) / unit response`), or for effect-site targeting the rate whose
//! effect-site peak reaches the target, iterated on the peak time; bounded by 0 and a maximum
//! rate. Advisory only: ketcare never drives a pump.
//!
//! Plausibility: every number must be finite; the target must be positive and at most
//! `tci_max_target` of `data/pk/routes.toml` (STANPUMP's ketamine `max_concentration`, 10 µg/mL,
//! pkpd.md §2.1 [P1] — the only maximum concentration the reference gives). When the rate is
//! held at its maximum and the predicted concentration has not reached the target (within 1 %)
//! by the end, the result warns.

use crate::error::{PkError, positive};
use crate::linalg;
use crate::model::Library;
use crate::sim::{Assumption, Options, Prepared, RateStep, Regimen, Route};
use crate::{ADVISORY, Covariates};
use serde::{Deserialize, Serialize};

/// What to target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TciSite {
    Plasma,
    /// Needs a ke0 assumption.
    EffectSite,
}

/// A TCI request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TciRequest {
    pub model: String,
    pub covariates: Covariates,
    pub target_ng_ml: f64,
    pub site: TciSite,
    /// Maximum pump rate (mg/kg/min). Default: `tci_max_rate` of `data/pk/routes.toml`.
    #[serde(default)]
    pub max_rate_mg_per_kg_min: Option<f64>,
    /// Update interval in seconds (STANPUMP: 10–60, default 10).
    #[serde(default)]
    pub update_s: Option<f64>,
    pub duration_min: f64,
    /// ke0 (1/min) — required for effect-site targeting; an assumption.
    #[serde(default)]
    pub ke0_per_min: Option<f64>,
}

/// The advised schedule and its predicted curves.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TciResult {
    pub schedule: Vec<RateStep>,
    pub max_rate_mg_per_min: f64,
    /// Minutes during which the advised rate was held at the maximum (the unbounded rate was
    /// higher).
    pub held_at_max_min: f64,
    /// First time the predicted (plasma or effect-site) concentration reached the target
    /// (within 1 %), if it did.
    pub target_reached_min: Option<f64>,
    pub times_min: Vec<f64>,
    pub plasma_ng_ml: Vec<f64>,
    pub effect_ng_ml: Option<Vec<f64>>,
    pub total_mg: f64,
    pub assumptions: Vec<Assumption>,
    pub warnings: Vec<String>,
    pub advisory: &'static str,
}

/// Compute the rate schedule.
pub fn tci(lib: &Library, req: &TciRequest) -> Result<TciResult, PkError> {
    let model = lib.model(&req.model)?;
    let target = positive("target_ng_ml", req.target_ng_ml)?;
    let max_target = &lib.routes.tci_max_target;
    if target > max_target.value {
        return Err(PkError::input(
            "target_ng_ml",
            format!(
                "{target} ng/mL is above the highest accepted target, {} ng/mL ({:?}, {}: {})",
                max_target.value,
                max_target.status,
                max_target.source.join(", "),
                max_target.note.as_deref().unwrap_or("")
            ),
        ));
    }
    positive("duration_min", req.duration_min)?;
    if let Some(k) = req.ke0_per_min {
        positive("ke0_per_min", k)?;
    }
    if req.duration_min > 24.0 * 60.0 {
        return Err(PkError::input("duration_min", "at most 24 h"));
    }
    let update_s = req.update_s.unwrap_or(10.0);
    if !(update_s.is_finite() && (10.0..=60.0).contains(&update_s)) {
        return Err(PkError::input(
            "update_s",
            "must be between 10 and 60 s (STANPUMP's range)",
        ));
    }
    let mut assumptions = Vec::new();
    let cited = &lib.routes.tci_max_rate;
    let max_per_kg = match req.max_rate_mg_per_kg_min {
        Some(m) => {
            positive("max_rate_mg_per_kg_min", m)?;
            assumptions.push(Assumption {
                name: "maximum rate".into(),
                value: Some(m),
                unit: "mg/kg/min".into(),
                status: None,
                source: vec![],
                note: "chosen by the user".into(),
                alternatives: vec![format!(
                    "{} ({:?}, {})",
                    cited.value,
                    cited.status,
                    cited.source.join(", ")
                )],
            });
            m
        }
        None => {
            assumptions.push(Assumption {
                name: "maximum rate".into(),
                value: Some(cited.value),
                unit: "mg/kg/min".into(),
                status: Some(cited.status),
                source: cited.source.clone(),
                note: cited.note.clone().unwrap_or_default(),
                alternatives: vec![],
            });
            cited.value
        }
    };
    if req.site == TciSite::EffectSite && req.ke0_per_min.is_none() {
        return Err(PkError::input(
            "ke0_per_min",
            "effect-site targeting needs a ke0; none is published for ketamine — supply one as an assumption",
        ));
    }
    let opts = Options {
        ke0_per_min: req.ke0_per_min,
        route_assumptions: vec![],
    };
    let prep = Prepared::new(lib, model, &req.covariates, &[Route::IvInfusion], &opts)?;
    assumptions.extend(prep.assumptions.clone());
    let max_rate = max_per_kg * req.covariates.weight_kg;
    let p = &prep.typical;
    let n = prep.n_states();
    let a = prep.matrix(p);
    let dt = update_s / 60.0;
    let (phi, gamma) = linalg::propagator(&a, n, dt);
    let (c, vi) = prep.output_states()[0];
    let v1 = p[vi];
    let ce = if req.site == TciSite::EffectSite {
        prep.effect_state()
    } else {
        None
    };
    // Response after one interval at 1 mg/min from zero.
    let mut unit_in = vec![0.0; n];
    unit_in[prep.central_state()] = 1.0;
    let mut resp = vec![0.0; n];
    linalg::matvec_add(&gamma, &unit_in, &mut resp);
    let p_udf = resp[c] / v1 * 1000.0;
    // Effect-site response to one interval at 1 mg/min, then off, over a horizon of intervals.
    let horizon = ((30.0 / dt).ceil() as usize).max(2);
    let e_udf: Vec<f64> = match ce {
        Some(e) => trajectory(&phi, &resp, horizon)
            .iter()
            .map(|x| x[e] * 1000.0)
            .collect(),
        None => vec![],
    };
    let steps = (req.duration_min / dt).round() as usize;
    let mut x = vec![0.0; n];
    let mut schedule: Vec<RateStep> = Vec::new();
    let mut held_steps = 0usize;
    for k in 0..steps {
        let mut free = vec![0.0; n];
        linalg::matvec_add(&phi, &x, &mut free);
        let rate = match ce {
            None => (target - free[c] / v1 * 1000.0) / p_udf,
            Some(e) => {
                if free[e] * 1000.0 >= target {
                    0.0
                } else {
                    let ce_free: Vec<f64> = std::iter::once(x.clone())
                        .chain(trajectory(&phi, &free, horizon))
                        .skip(1)
                        .map(|s| s[e] * 1000.0)
                        .collect();
                    effect_rate(&ce_free, &e_udf, target)
                }
            }
        };
        if rate.is_finite() && rate > max_rate {
            held_steps += 1;
        }
        let rate = if rate.is_finite() {
            rate.clamp(0.0, max_rate)
        } else {
            0.0
        };
        if schedule
            .last()
            .is_none_or(|s| (s.rate_mg_per_min - rate).abs() > 1e-9 * max_rate)
        {
            schedule.push(RateStep {
                time_min: k as f64 * dt,
                rate_mg_per_min: rate,
            });
        }
        let mut nx = free;
        if rate > 0.0 {
            for (v, r) in nx.iter_mut().zip(&resp) {
                *v += r * rate;
            }
        }
        x = nx;
    }
    schedule.push(RateStep {
        time_min: steps as f64 * dt,
        rate_mg_per_min: 0.0,
    });
    // The predicted curves come from the general exact solver applied to the schedule.
    let reg = Regimen {
        doses: vec![],
        iv_rates: schedule.clone(),
    };
    let times = crate::grid(req.duration_min, dt)?;
    let prof = prep.simulate(p, &reg, &times, false)?;
    let total_mg = reg.total_mg(req.duration_min);
    let watched = match (req.site, &prof.effect) {
        (TciSite::EffectSite, Some(e)) => e,
        _ => &prof.conc[0],
    };
    let target_reached_min = watched
        .iter()
        .position(|&c| c >= 0.99 * target)
        .map(|k| times[k]);
    let held_at_max_min = held_steps as f64 * dt;
    let mut warnings = prep.warnings.clone();
    if held_steps > 0 && target_reached_min.is_none() {
        let peak = watched.iter().copied().fold(0.0, f64::max);
        let site = match req.site {
            TciSite::Plasma => "plasma",
            TciSite::EffectSite => "effect-site",
        };
        warnings.push(format!(
            "target not reached: the rate was held at its maximum {max_rate:.3} mg/min ({max_per_kg} mg/kg/min) for {held_at_max_min:.1} min and the predicted {site} concentration peaks at {peak:.1} ng/mL, below the {target} ng/mL target, within {} min",
            req.duration_min
        ));
    }
    Ok(TciResult {
        schedule,
        max_rate_mg_per_min: max_rate,
        held_at_max_min,
        target_reached_min,
        times_min: times,
        plasma_ng_ml: prof.conc[0].clone(),
        effect_ng_ml: prof.effect,
        total_mg,
        assumptions,
        warnings,
        advisory: ADVISORY,
    })
}

/// States after 1, 2, … `len` further intervals with no input, starting from `x1` (after 1).
fn trajectory(phi: &[f64], x1: &[f64], len: usize) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(len);
    let mut x = x1.to_vec();
    out.push(x.clone());
    for _ in 1..len {
        let mut y = vec![0.0; x.len()];
        linalg::matvec_add(phi, &x, &mut y);
        out.push(y.clone());
        x = y;
    }
    out
}

/// Rate whose effect-site peak equals the target: `rate = (target − Ce_free(tpeak)) / e_udf(tpeak)`,
/// re-finding the peak of `Ce_free + rate·e_udf` until it stops moving (STANPUMP's iteration).
fn effect_rate(ce_free: &[f64], e_udf: &[f64], target: f64) -> f64 {
    let peak = |rate: f64| {
        (0..e_udf.len().min(ce_free.len()))
            .max_by(|&i, &j| {
                (ce_free[i] + rate * e_udf[i]).total_cmp(&(ce_free[j] + rate * e_udf[j]))
            })
            .unwrap_or(0)
    };
    let mut tp = peak(1e6);
    let mut rate = 0.0;
    for _ in 0..50 {
        rate = ((target - ce_free[tp]) / e_udf[tp]).max(0.0);
        let np = peak(rate);
        if np == tp {
            break;
        }
        tp = np;
    }
    // The peak of the combined curve must not exceed the target.
    let top = (0..e_udf.len().min(ce_free.len()))
        .map(|i| ce_free[i] + rate * e_udf[i])
        .fold(0.0, f64::max);
    if top > target && rate > 0.0 {
        let i = peak(rate);
        rate = ((target - ce_free[i]) / e_udf[i]).max(0.0);
    }
    rate
}
