//! One person: the model prepared for a regimen's routes, the linear system it defines, and its
//! exact solution between dosing events (matrix exponential of the system; no fixed-step
//! integration).
//!
//! A model parameter that changes with time (a `[[time_effect]]`, e.g. Flint 2017's CL_snk
//! +0.870 %/h) is held constant on steps of [`TIME_EFFECT_STEP_MIN`] at its mid-step value and each
//! step is solved exactly: for a linear change of `a`/h the parameter is off by at most
//! `a × step/2` relative (4.4e-4 for Flint's 0.0087/h), and the concentrations it drives by no
//! more than that (tested against an RK4 solution: relative error < 5e-4).

use crate::data::{CitedValue, Status};
use crate::error::{PkError, non_negative, positive};
use crate::linalg;
use crate::model::{Covariates, Library, Model};
use serde::{Deserialize, Serialize};

/// How a dose is given.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[schema(as = PkRoute)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    IvBolus,
    IvInfusion,
    Intramuscular,
    Intranasal,
    Oral,
    Sublingual,
    Subcutaneous,
    Rectal,
}

impl Route {
    pub const ALL: [Route; 8] = [
        Route::IvBolus,
        Route::IvInfusion,
        Route::Intramuscular,
        Route::Intranasal,
        Route::Oral,
        Route::Sublingual,
        Route::Subcutaneous,
        Route::Rectal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Route::IvBolus => "iv_bolus",
            Route::IvInfusion => "iv_infusion",
            Route::Intramuscular => "intramuscular",
            Route::Intranasal => "intranasal",
            Route::Oral => "oral",
            Route::Sublingual => "sublingual",
            Route::Subcutaneous => "subcutaneous",
            Route::Rectal => "rectal",
        }
    }

    pub fn is_iv(self) -> bool {
        matches!(self, Route::IvBolus | Route::IvInfusion)
    }
}

impl std::str::FromStr for Route {
    type Err = PkError;
    fn from_str(s: &str) -> Result<Route, PkError> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Ok(match s.as_str() {
            "iv_bolus" | "bolus" => Route::IvBolus,
            "iv_infusion" | "iv" | "infusion" => Route::IvInfusion,
            "intramuscular" | "im" => Route::Intramuscular,
            "intranasal" | "in" | "nasal" => Route::Intranasal,
            "oral" | "po" => Route::Oral,
            "sublingual" | "sl" => Route::Sublingual,
            "subcutaneous" | "sc" => Route::Subcutaneous,
            "rectal" | "pr" => Route::Rectal,
            _ => {
                let all: Vec<&str> = Route::ALL.iter().map(|r| r.as_str()).collect();
                return Err(PkError::input(
                    "route",
                    format!("unknown route {s:?}; expected one of {}", all.join(", ")),
                ));
            }
        })
    }
}

/// One dose. `duration_min` is the length of an IV infusion (required for `iv_infusion`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dose {
    pub time_min: f64,
    pub amount_mg: f64,
    pub route: Route,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_min: Option<f64>,
}

/// From `time_min` on, the IV infusion runs at `rate_mg_per_min` (until the next step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateStep {
    pub time_min: f64,
    pub rate_mg_per_min: f64,
}

/// What is given: doses by any route, and an IV infusion with any sequence of rate changes
/// (also the form of a dose history).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Regimen {
    #[serde(default)]
    pub doses: Vec<Dose>,
    #[serde(default)]
    pub iv_rates: Vec<RateStep>,
}

impl Regimen {
    /// The routes used.
    pub fn routes(&self) -> Vec<Route> {
        let mut r: Vec<Route> = self.doses.iter().map(|d| d.route).collect();
        if !self.iv_rates.is_empty() {
            r.push(Route::IvInfusion);
        }
        r.sort();
        r.dedup();
        r
    }

    /// Total mg given up to `until_min` (infusions pro rata).
    pub fn total_mg(&self, until_min: f64) -> f64 {
        let mut total: f64 = self
            .doses
            .iter()
            .filter(|d| d.time_min <= until_min)
            .map(|d| match d.duration_min {
                Some(t) if t > 0.0 => d.amount_mg * ((until_min - d.time_min) / t).min(1.0),
                _ => d.amount_mg,
            })
            .sum();
        for (i, s) in self.iv_rates.iter().enumerate() {
            let end = self
                .iv_rates
                .get(i + 1)
                .map_or(until_min, |n| n.time_min)
                .min(until_min);
            total += s.rate_mg_per_min * (end - s.time_min).max(0.0);
        }
        total
    }

    /// Plausibility against the person's weight: no dose, rate step or whole regimen up to
    /// `until_min` may give more drug than the body weighs (1,000,000 mg per kg). The reference
    /// gives no maximum dose in mg/kg (pkpd.md; clinical.md lists maximum single-dose caps as not
    /// confirmed), so only this bound, true by definition, and the finite/non-negative checks of
    /// every number are applied: a 1e308-mg bolus is refused instead of giving inf/NaN.
    pub fn check_plausible(&self, weight_kg: f64, until_min: f64) -> Result<(), PkError> {
        self.validate()?;
        positive("weight_kg", weight_kg)?;
        let body_mg = weight_kg * 1.0e6;
        let too_much = |field: String, mg: f64| {
            PkError::input(
                field,
                format!(
                    "{mg} mg is more drug than a {weight_kg} kg body weighs ({body_mg} mg): not a possible regimen"
                ),
            )
        };
        for (i, d) in self.doses.iter().enumerate() {
            if d.amount_mg > body_mg {
                return Err(too_much(format!("doses[{i}].amount_mg"), d.amount_mg));
            }
        }
        for (i, s) in self.iv_rates.iter().enumerate() {
            let end = self
                .iv_rates
                .get(i + 1)
                .map_or(until_min, |n| n.time_min)
                .min(until_min);
            let mg = s.rate_mg_per_min * (end - s.time_min).max(0.0);
            if s.rate_mg_per_min > body_mg || mg > body_mg {
                return Err(too_much(
                    format!("iv_rates[{i}].rate_mg_per_min"),
                    mg.max(s.rate_mg_per_min),
                ));
            }
        }
        let total = self.total_mg(until_min);
        if !(total.is_finite() && total <= body_mg) {
            return Err(too_much("regimen".into(), total));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), PkError> {
        // Field names are written out only for an error (a population validates per subject).
        let nn = |v: f64, field: &dyn Fn() -> String| {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                non_negative(&field(), v)
            }
        };
        for (i, d) in self.doses.iter().enumerate() {
            nn(d.time_min, &|| format!("doses[{i}].time_min"))?;
            if !(d.amount_mg.is_finite() && d.amount_mg > 0.0) {
                positive(&format!("doses[{i}].amount_mg"), d.amount_mg)?;
            }
            match (d.route, d.duration_min) {
                (Route::IvInfusion, Some(t)) if !(t.is_finite() && t > 0.0) => {
                    positive(&format!("doses[{i}].duration_min"), t)?;
                }
                (Route::IvInfusion, Some(_)) => {}
                (Route::IvInfusion, None) => {
                    return Err(PkError::input(
                        format!("doses[{i}].duration_min"),
                        "an IV infusion needs a duration",
                    ));
                }
                (_, Some(_)) => {
                    return Err(PkError::input(
                        format!("doses[{i}].duration_min"),
                        "a duration applies to IV infusions only",
                    ));
                }
                _ => {}
            }
        }
        let mut last = -1.0;
        for (i, s) in self.iv_rates.iter().enumerate() {
            nn(s.time_min, &|| format!("iv_rates[{i}].time_min"))?;
            nn(s.rate_mg_per_min, &|| {
                format!("iv_rates[{i}].rate_mg_per_min")
            })?;
            if s.time_min <= last {
                return Err(PkError::input(
                    format!("iv_rates[{i}].time_min"),
                    "rate steps must be in increasing time order",
                ));
            }
            last = s.time_min;
        }
        Ok(())
    }
}

/// Changeable assumptions for a route without the model's own absorption scheme.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RouteAssumption {
    pub route: Route,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ka_per_min: Option<f64>,
}

/// Options of one simulation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Options {
    /// Effect-site rate constant: no value is published for ketamine; when given, the effect-site
    /// curve is drawn and labelled as resting on this assumption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ke0_per_min: Option<f64>,
    /// Bioavailability and absorption rate used instead of the defaults.
    #[serde(default)]
    pub route_assumptions: Vec<RouteAssumption>,
}

/// A value a result depends on that is not a plain model parameter: shown beside the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Assumption {
    pub name: String,
    pub value: Option<f64>,
    pub unit: String,
    /// V/S/C from the reference, or None for a value the user chose.
    pub status: Option<Status>,
    pub source: Vec<String>,
    pub note: String,
    #[serde(default)]
    pub alternatives: Vec<String>,
}

/// Step (min) on which a time-varying parameter is held at its mid-step value (see the module
/// documentation for the error bound).
pub const TIME_EFFECT_STEP_MIN: f64 = 6.0;

#[derive(Debug, Clone, Copy)]
enum Frac {
    One,
    P(usize),
    OneMinus(usize),
}

impl Frac {
    fn of(self, p: &[f64]) -> f64 {
        match self {
            Frac::One => 1.0,
            Frac::P(i) => p[i],
            Frac::OneMinus(i) => 1.0 - p[i],
        }
    }

    fn uses(self, idx: usize) -> bool {
        matches!(self, Frac::P(i) | Frac::OneMinus(i) if i == idx)
    }

    /// The fraction with parameter `idx` multiplied by `scale`.
    fn scaled(self, p: &[f64], idx: usize, scale: f64) -> f64 {
        match self {
            Frac::P(i) if i == idx => p[i] * scale,
            Frac::OneMinus(i) if i == idx => 1.0 - p[i] * scale,
            _ => self.of(p),
        }
    }
}

/// A prepared `[[device_rule]]`: devices after the first of a dosing occasion.
#[derive(Debug, Clone)]
struct DeviceSplit {
    route: Route,
    frac_param: usize,
    factor_param: usize,
    device_mg: f64,
    gap_min: f64,
}

#[derive(Debug, Clone)]
struct Flow {
    from: usize,
    to: usize,
    k: usize,
    /// Divide by this volume parameter (clearance flows).
    per_volume: Option<usize>,
    frac: Frac,
}

#[derive(Debug, Clone)]
struct Input {
    state: usize,
    frac: Frac,
    duration: Option<usize>,
}

/// A model prepared for a set of routes: parameter vector layout, IIV, states, inputs.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub model_id: String,
    /// Parameter names: the model's, then `f_<route>` and `ka_<route>` for generic absorption.
    pub names: Vec<String>,
    /// Typical values (base units: mg, L, min) for the person.
    pub typical: Vec<f64>,
    /// Log-scale IIV variance per parameter (0 where the source gives none).
    pub omega2: Vec<f64>,
    /// Correlated random effects: (parameter index, parameter index, r).
    pub correlations: Vec<(usize, usize, f64)>,
    pub warnings: Vec<String>,
    pub assumptions: Vec<Assumption>,
    /// Output ids and names.
    pub outputs: Vec<(String, String)>,
    n: usize,
    n_cmt: usize,
    central: usize,
    out_states: Vec<(usize, usize)>,
    flows: Vec<Flow>,
    schemes: Vec<(Route, Vec<Input>)>,
    ce: Option<(usize, f64)>,
    auc: usize,
    weight_exp: Vec<f64>,
    devices: Vec<DeviceSplit>,
    /// Time-varying parameters: (parameter index, fractional change per minute).
    time_effects: Vec<(usize, f64)>,
}

/// Map a route's absorption for a model without its own scheme.
fn generic_route(
    lib: &Library,
    model: &Model,
    route: Route,
    cov: &Covariates,
    opts: &Options,
) -> Result<(f64, f64, Vec<Assumption>), PkError> {
    let paed = model.file.paediatric || cov.age_years.is_some_and(|a| a < 18.0);
    let own = model.file.route_default.iter().find(|r| r.route == route);
    let row = lib.route_row(model.file.drug, route, paed);
    let user = opts.route_assumptions.iter().find(|r| r.route == route);
    let f_cited: Option<(&CitedValue, Vec<String>)> = own
        .map(|o| (&o.f, vec![]))
        .or_else(|| row.map(|r| (&r.f, r.alternatives.clone())));
    let ka_cited = own
        .and_then(|o| o.ka.as_ref())
        .or_else(|| row.and_then(|r| r.ka.as_ref()));
    let r = route.as_str();
    let mut out = Vec::new();
    let f = match (user.and_then(|u| u.f), f_cited) {
        (Some(f), cited) => {
            if !(f.is_finite() && f > 0.0 && f <= 1.0) {
                return Err(PkError::input(
                    format!("f_{r}"),
                    format!("bioavailability must be in (0, 1], got {f}"),
                ));
            }
            out.push(Assumption {
                name: format!("bioavailability ({r})"),
                value: Some(f),
                unit: "fraction".into(),
                status: None,
                source: vec![],
                note: "chosen by the user".into(),
                alternatives: cited
                    .map(|(c, _)| {
                        vec![format!(
                            "{} ({:?}, {})",
                            c.value,
                            c.status,
                            c.source.join(", ")
                        )]
                    })
                    .unwrap_or_default(),
            });
            f
        }
        (None, Some((c, alts))) => {
            out.push(Assumption {
                name: format!("bioavailability ({r})"),
                value: Some(c.value),
                unit: "fraction".into(),
                status: Some(c.status),
                source: c.source.clone(),
                note: format!(
                    "sources disagree; changeable assumption{}",
                    c.note
                        .as_ref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                ),
                alternatives: alts,
            });
            c.value
        }
        (None, None) => {
            return Err(PkError::input(
                format!("f_{r}"),
                format!(
                    "the reference gives no bioavailability for {r} {:?}; supply one as an assumption",
                    model.file.drug
                ),
            ));
        }
    };
    let ka = match (user.and_then(|u| u.ka_per_min), ka_cited) {
        (Some(ka), _) => {
            positive(&format!("ka_{r}"), ka)?;
            out.push(Assumption {
                name: format!("absorption rate constant ka ({r})"),
                value: Some(ka),
                unit: "1/min".into(),
                status: None,
                source: vec![],
                note: "chosen by the user".into(),
                alternatives: vec![],
            });
            ka
        }
        (None, Some(c)) => {
            let factor = c
                .unit
                .as_deref()
                .and_then(crate::model::unit)
                .map_or(1.0, |u| u.0);
            out.push(Assumption {
                name: format!("absorption rate constant ka ({r})"),
                value: Some(c.value * factor),
                unit: "1/min".into(),
                status: Some(c.status),
                source: c.source.clone(),
                note: c
                    .note
                    .clone()
                    .unwrap_or_else(|| "first-order absorption".into()),
                alternatives: vec![],
            });
            c.value * factor
        }
        (None, None) => {
            return Err(PkError::input(
                format!("ka_{r}"),
                format!(
                    "no absorption rate constant for {r} is published in the reference (U); supply one as an assumption"
                ),
            ));
        }
    };
    Ok((f, ka, out))
}

impl Prepared {
    /// Prepare `model` for a person and the routes of a regimen.
    pub fn new(
        lib: &Library,
        model: &Model,
        cov: &Covariates,
        routes: &[Route],
        opts: &Options,
    ) -> Result<Prepared, PkError> {
        let (mut typical, mut warnings) = model.typical(cov)?;
        let mut names = model.names.clone();
        let mut omega2: Vec<f64> = names
            .iter()
            .map(|n| model.file.param[n].iv_omega2())
            .collect();
        let f = &model.file;
        let n_cmt = f.compartment.len();
        let central = model.cmt(&f.output[0].compartment).unwrap_or(0);
        let mut assumptions = Vec::new();
        let mut flows = Vec::new();
        let pidx = |name: &str| model.param_index(name).unwrap_or(0);
        let frac = |fr: &Option<String>, co: &Option<String>| match (fr, co) {
            (Some(p), _) => Frac::P(pidx(p)),
            (None, Some(p)) => Frac::OneMinus(pidx(p)),
            _ => Frac::One,
        };
        let sink = n_cmt;
        for fl in &f.flow {
            let from = model.cmt(&fl.from).unwrap_or(0);
            let to = if fl.to == "out" {
                sink
            } else {
                model.cmt(&fl.to).unwrap_or(0)
            };
            let (k, per_volume) = match (&fl.k, &fl.cl) {
                (Some(k), _) => (pidx(k), None),
                (None, Some(cl)) => (pidx(cl), f.compartment[from].volume.as_deref().map(pidx)),
                _ => (0, None),
            };
            flows.push(Flow {
                from,
                to,
                k,
                per_volume,
                frac: frac(&fl.fraction, &fl.complement),
            });
        }
        let mut n = n_cmt + 1;
        let mut schemes = Vec::new();
        for &route in routes {
            if route.is_iv() {
                schemes.push((
                    route,
                    vec![Input {
                        state: central,
                        frac: Frac::One,
                        duration: None,
                    }],
                ));
            } else if let Some(s) = f.route_scheme.iter().find(|s| s.route == route) {
                let inputs = s
                    .inputs
                    .iter()
                    .map(|i| Input {
                        state: model.cmt(&i.to).unwrap_or(0),
                        frac: frac(&i.fraction, &i.complement),
                        duration: i.duration.as_deref().map(pidx),
                    })
                    .collect();
                assumptions.push(Assumption {
                    name: format!("absorption ({})", route.as_str()),
                    value: None,
                    unit: String::new(),
                    status: Some(Status::S),
                    source: f.sources.clone(),
                    note: format!("the model's own scheme: {}", s.description),
                    alternatives: vec![],
                });
                schemes.push((route, inputs));
            } else {
                let (fv, ka, a) = generic_route(lib, model, route, cov, opts)?;
                assumptions.extend(a);
                let depot = n;
                n += 1;
                let fi = names.len();
                names.push(format!("f_{}", route.as_str()));
                typical.push(fv);
                omega2.push(0.0);
                names.push(format!("ka_{}", route.as_str()));
                typical.push(ka);
                omega2.push(0.0);
                flows.push(Flow {
                    from: depot,
                    to: central,
                    k: fi + 1,
                    per_volume: None,
                    frac: Frac::One,
                });
                schemes.push((
                    route,
                    vec![Input {
                        state: depot,
                        frac: Frac::P(fi),
                        duration: None,
                    }],
                ));
                warnings.push(format!(
                    "{}: first-order absorption into a parent-only model; the swallowed fraction's first-pass metabolite exposure is not modelled",
                    route.as_str()
                ));
            }
        }
        let mut devices = Vec::new();
        for d in &f.device_rule {
            if !routes.contains(&d.route) {
                continue;
            }
            let factor_param = pidx(&d.subsequent_factor);
            let mut source = f.param[&d.subsequent_factor].source.clone();
            source.extend(d.device_mg.source.iter().cloned());
            assumptions.push(Assumption {
                name: format!("subsequent devices ({})", d.route.as_str()),
                value: Some(f.param[&d.subsequent_factor].value),
                unit: format!("× {}", d.fraction),
                status: Some(f.param[&d.subsequent_factor].status),
                source,
                note: format!(
                    "within one dosing occasion the first {} mg (one device) absorbs {} and every further mg {} × {}; a dose {} min or more after the previous one starts a new occasion",
                    d.device_mg.value,
                    d.fraction,
                    d.fraction,
                    f.param[&d.subsequent_factor].value,
                    d.occasion_gap_min.value
                ),
                alternatives: vec![],
            });
            devices.push(DeviceSplit {
                route: d.route,
                frac_param: pidx(&d.fraction),
                factor_param,
                device_mg: d.device_mg.value,
                gap_min: d.occasion_gap_min.value,
            });
        }
        let mut time_effects = Vec::new();
        for te in &f.time_effect {
            time_effects.push((pidx(&te.param), te.per_hour / 60.0));
            assumptions.push(Assumption {
                name: format!("time effect on {}", te.param),
                value: Some(te.per_hour),
                unit: "fraction/h".into(),
                status: Some(te.status),
                source: te.source.clone(),
                note: format!(
                    "{} × (1 + {} × hours since the first dose){}; held at its mid-step value on {TIME_EFFECT_STEP_MIN}-min steps (relative error < 5e-4)",
                    te.param,
                    te.per_hour,
                    te.note
                        .as_ref()
                        .map(|n| format!(" — {n}"))
                        .unwrap_or_default()
                ),
                alternatives: vec![],
            });
        }
        let ce = match opts.ke0_per_min {
            Some(k) => {
                positive("ke0_per_min", k)?;
                assumptions.push(Assumption {
                    name: "ke0 (effect site)".into(),
                    value: Some(k),
                    unit: "1/min".into(),
                    status: Some(Status::U),
                    source: vec![],
                    note: "assumption: no ke0 is published for ketamine; the effect-site curve rests on this value".into(),
                    alternatives: vec![],
                });
                n += 1;
                Some((n - 1, k))
            }
            None => None,
        };
        let auc = n;
        n += 1;
        let out_states = f
            .output
            .iter()
            .map(|o| {
                let c = model.cmt(&o.compartment).unwrap_or(0);
                (c, f.compartment[c].volume.as_deref().map_or(0, pidx))
            })
            .collect();
        let outputs = f
            .output
            .iter()
            .map(|o| (o.id.clone(), o.name.clone()))
            .collect();
        if let Some(nm) = &f.not_modelled {
            warnings.push(format!("not modelled: {nm}"));
        }
        let mut weight_exp: Vec<f64> = model
            .names
            .iter()
            .map(|n| model.weight_exponent(n))
            .collect();
        weight_exp.resize(names.len(), 0.0);
        let correlations = f
            .correlation
            .iter()
            .filter_map(|c| {
                Some((
                    model.param_index(&c.params[0])?,
                    model.param_index(&c.params[1])?,
                    c.r,
                ))
            })
            .collect();
        Ok(Prepared {
            correlations,
            weight_exp,
            model_id: f.id.clone(),
            names,
            typical,
            omega2,
            warnings,
            assumptions,
            outputs,
            n,
            n_cmt,
            central,
            out_states,
            flows,
            schemes,
            ce,
            auc,
            devices,
            time_effects,
        })
    }

    /// How a parameter scales with weight (exponent; 0 when it does not).
    pub fn weight_exponent(&self, name: &str) -> f64 {
        self.names
            .iter()
            .position(|n| n == name)
            .map_or(0.0, |i| self.weight_exp[i])
    }

    /// Number of states (compartments, sink, effect site, AUC).
    pub fn n_states(&self) -> usize {
        self.n
    }

    /// States holding drug amounts (compartments, depots and the eliminated-amount sink):
    /// their sum equals the bioavailable amount given.
    pub fn mass_states(&self) -> Vec<usize> {
        (0..self.n)
            .filter(|&i| Some(i) != self.ce.map(|c| c.0) && i != self.auc)
            .collect()
    }

    /// Central-compartment state index and the output states (state, volume-parameter index).
    pub fn output_states(&self) -> &[(usize, usize)] {
        &self.out_states
    }

    /// The system matrix `A` (row-major, `dx/dt = A x + u`) for a parameter vector.
    pub fn matrix(&self, p: &[f64]) -> Vec<f64> {
        let n = self.n;
        let mut a = vec![0.0; n * n];
        for fl in &self.flows {
            let mut k = p[fl.k] * fl.frac.of(p);
            if let Some(v) = fl.per_volume {
                k /= p[v];
            }
            a[fl.from * n + fl.from] -= k;
            a[fl.to * n + fl.from] += k;
        }
        let (c, v) = self.out_states[0];
        let v1 = p[v];
        if let Some((ce, k)) = self.ce {
            a[ce * n + c] += k / v1;
            a[ce * n + ce] -= k;
        }
        a[self.auc * n + c] += 1.0 / v1;
        a
    }

    /// Boluses (time, state, mg) and rate changes (time, state, Δ mg/min) of a regimen.
    pub fn inputs(&self, p: &[f64], reg: &Regimen) -> Result<Inputs, PkError> {
        reg.validate()?;
        let mut ins = Inputs::default();
        let splits = self.device_splits(reg);
        for (di, d) in reg.doses.iter().enumerate() {
            let Some((_, inputs)) = self.schemes.iter().find(|s| s.0 == d.route) else {
                return Err(PkError::input(
                    "route",
                    format!("route {} was not prepared", d.route.as_str()),
                ));
            };
            let rule = self.devices.iter().find(|r| r.route == d.route);
            for i in inputs {
                let amt = match rule {
                    Some(r) if i.frac.uses(r.frac_param) => {
                        let (first, rest) = splits[di];
                        first * i.frac.of(p)
                            + rest * i.frac.scaled(p, r.frac_param, p[r.factor_param])
                    }
                    _ => d.amount_mg * i.frac.of(p),
                };
                let dur = match (d.route, i.duration) {
                    (Route::IvInfusion, _) => d.duration_min,
                    (_, Some(di)) => Some(p[di]),
                    _ => None,
                };
                match dur {
                    Some(t) if t > 0.0 => {
                        ins.rates.push((d.time_min, i.state, amt / t));
                        ins.rates.push((d.time_min + t, i.state, -amt / t));
                    }
                    _ => ins.boluses.push((d.time_min, i.state, amt)),
                }
            }
        }
        let mut prev = 0.0;
        for s in &reg.iv_rates {
            ins.rates
                .push((s.time_min, self.central, s.rate_mg_per_min - prev));
            prev = s.rate_mg_per_min;
        }
        ins.boluses.sort_by(|a, b| a.0.total_cmp(&b.0));
        ins.rates.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(ins)
    }

    /// Per dose: mg given at the first device's fraction and mg given as subsequent devices of
    /// its dosing occasion (a route without a device rule: all at the first).
    fn device_splits(&self, reg: &Regimen) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = reg.doses.iter().map(|d| (d.amount_mg, 0.0)).collect();
        for r in &self.devices {
            let mut idx: Vec<usize> = (0..reg.doses.len())
                .filter(|&i| reg.doses[i].route == r.route)
                .collect();
            idx.sort_by(|&a, &b| reg.doses[a].time_min.total_cmp(&reg.doses[b].time_min));
            let mut used = 0.0;
            let mut last: Option<f64> = None;
            for i in idx {
                let d = &reg.doses[i];
                if last.is_none_or(|l| d.time_min - l >= r.gap_min) {
                    used = 0.0;
                }
                let first = d.amount_mg.min((r.device_mg - used).max(0.0));
                out[i] = (first, d.amount_mg - first);
                used += d.amount_mg;
                last = Some(d.time_min);
            }
        }
        out
    }

    /// The parameter vector on time-effect step `j` (mid-step values).
    fn params_on_step(&self, p: &[f64], j: usize) -> Vec<f64> {
        self.params_at(p, (j as f64 + 0.5) * TIME_EFFECT_STEP_MIN)
    }

    /// The parameter vector `minutes` after the first input (time effects applied exactly).
    pub fn params_at(&self, p: &[f64], minutes: f64) -> Vec<f64> {
        let mut q = p.to_vec();
        for &(i, per_min) in &self.time_effects {
            q[i] *= 1.0 + per_min * minutes.max(0.0);
        }
        q
    }

    /// Whether a parameter of the model changes with time (`[[time_effect]]`).
    pub fn has_time_effect(&self) -> bool {
        !self.time_effects.is_empty()
    }

    /// Solve exactly for one parameter vector; concentrations at `times` (ascending, ≥ 0).
    pub fn simulate(
        &self,
        p: &[f64],
        reg: &Regimen,
        times: &[f64],
        keep_states: bool,
    ) -> Result<Profile, PkError> {
        check_times(times)?;
        let mut prof = Profile {
            times: times.to_vec(),
            conc: vec![Vec::with_capacity(times.len()); self.out_states.len()],
            effect: self.ce.map(|_| Vec::with_capacity(times.len())),
            auc: Vec::with_capacity(times.len()),
            states: keep_states.then(Vec::new),
        };
        self.solve(p, reg, times, &mut Workspace::default(), |_, x| {
            for (o, &(s, v)) in self.out_states.iter().enumerate() {
                prof.conc[o].push(x[s] / p[v] * 1000.0);
            }
            if let (Some(e), Some((ce, _))) = (prof.effect.as_mut(), self.ce) {
                e.push(x[ce] * 1000.0);
            }
            prof.auc.push(x[self.auc] * 1000.0);
            if let Some(st) = prof.states.as_mut() {
                st.push(x.to_vec());
            }
        })?;
        Ok(prof)
    }

    /// Concentration (ng/mL) of output `o` in state vector `x` for parameters `p`.
    pub fn conc_of(&self, p: &[f64], x: &[f64], o: usize) -> f64 {
        let (s, v) = self.out_states[o];
        x[s] / p[v] * 1000.0
    }

    /// Exact AUC of the first output (ng·min/mL) in state vector `x`.
    pub fn auc_of(&self, x: &[f64]) -> f64 {
        x[self.auc] * 1000.0
    }

    /// The exact solution for one parameter vector at `times` (already checked by
    /// [`check_times`]): `at(k, x)` receives the state vector at `times[k]`, in order. The one
    /// solver of the engine: [`Prepared::simulate`] and the population run both call it; a
    /// [`Workspace`] carries its buffers from subject to subject.
    pub fn solve(
        &self,
        p: &[f64],
        reg: &Regimen,
        times: &[f64],
        ws: &mut Workspace,
        mut at: impl FnMut(usize, &[f64]),
    ) -> Result<(), PkError> {
        for (i, v) in p.iter().enumerate() {
            if !(v.is_finite() && *v > 0.0) {
                return Err(PkError::input(
                    format!("param.{}", self.names[i]),
                    format!("must be positive, got {v}"),
                ));
            }
        }
        let ins = self.inputs(p, reg)?;
        let n = self.n;
        // Time effects count from the first input; before it nothing is in the body.
        let t0 = ins
            .boluses
            .first()
            .map_or(f64::INFINITY, |b| b.0)
            .min(ins.rates.first().map_or(f64::INFINITY, |r| r.0));
        let varying = !self.time_effects.is_empty() && t0.is_finite();
        let mut step_j = 0usize;
        let mut step_end = if varying {
            t0 + TIME_EFFECT_STEP_MIN
        } else {
            f64::INFINITY
        };
        let mut a = if varying {
            self.matrix(&self.params_on_step(p, 0))
        } else {
            self.matrix(p)
        };
        ws.cache.clear();
        ws.x.clear();
        ws.x.resize(n, 0.0);
        ws.u.clear();
        ws.u.resize(n, 0.0);
        ws.y.resize(n, 0.0);
        let mut t = 0.0;
        let (mut bi, mut ri) = (0, 0);
        let mut g = 0;
        while g < times.len() {
            let te = ins
                .boluses
                .get(bi)
                .map_or(f64::INFINITY, |b| b.0)
                .min(ins.rates.get(ri).map_or(f64::INFINITY, |r| r.0));
            if t >= step_end {
                step_j += 1;
                step_end = t0 + (step_j + 1) as f64 * TIME_EFFECT_STEP_MIN;
                a = self.matrix(&self.params_on_step(p, step_j));
                ws.cache.clear();
            }
            let target = te.min(times[g]).min(step_end);
            if target > t {
                let h = target - t;
                let key = h.to_bits();
                let ci = match ws.cache.iter().position(|c| c.0 == key) {
                    Some(i) => i,
                    None => {
                        if ws.cache.len() >= 16 {
                            ws.cache.clear(); // an irregular grid: keep the search short
                        }
                        let (phi, gamma) = linalg::propagator(&a, n, h);
                        ws.cache.push((key, phi, gamma));
                        ws.cache.len() - 1
                    }
                };
                let (_, phi, gamma) = &ws.cache[ci];
                ws.y.iter_mut().for_each(|v| *v = 0.0);
                linalg::matvec_add(phi, &ws.x, &mut ws.y);
                if ws.u.iter().any(|&v| v != 0.0) {
                    linalg::matvec_add(gamma, &ws.u, &mut ws.y);
                }
                std::mem::swap(&mut ws.x, &mut ws.y);
                t = target;
            }
            while bi < ins.boluses.len() && ins.boluses[bi].0 <= t {
                ws.x[ins.boluses[bi].1] += ins.boluses[bi].2;
                bi += 1;
            }
            while ri < ins.rates.len() && ins.rates[ri].0 <= t {
                let s = ins.rates[ri].1;
                ws.u[s] += ins.rates[ri].2;
                if ws.u[s].abs() < 1e-12 {
                    ws.u[s] = 0.0;
                }
                ri += 1;
            }
            while g < times.len() && times[g] <= t {
                at(g, &ws.x);
                g += 1;
            }
        }
        Ok(())
    }

    /// State of the effect site (with a ke0 assumption).
    pub fn effect_state(&self) -> Option<usize> {
        self.ce.map(|c| c.0)
    }

    /// Index of the compartment receiving IV doses.
    pub fn central_state(&self) -> usize {
        self.central
    }

    /// Number of model compartments (before the sink).
    pub fn n_compartments(&self) -> usize {
        self.n_cmt
    }
}

trait IivOmega {
    fn iv_omega2(&self) -> f64;
}
impl IivOmega for crate::data::ParamDef {
    fn iv_omega2(&self) -> f64 {
        self.iiv.as_ref().map_or(0.0, |i| i.omega2())
    }
}

/// Buffers of [`Prepared::solve`], reused from one subject to the next: the propagators of the
/// step lengths met so far (a uniform grid needs one or two), and the state and input vectors.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    cache: Vec<(u64, Vec<f64>, Vec<f64>)>,
    x: Vec<f64>,
    y: Vec<f64>,
    u: Vec<f64>,
}

/// Output times must be finite, ≥ 0 and ascending.
pub fn check_times(times: &[f64]) -> Result<(), PkError> {
    match (0..times.len())
        .find(|&i| !times[i].is_finite() || times[i] < 0.0 || (i > 0 && times[i] < times[i - 1]))
    {
        Some(i) => Err(PkError::input(
            format!("times[{i}]"),
            "times must be finite, ≥ 0 and ascending",
        )),
        None => Ok(()),
    }
}

/// Inputs of a regimen, ready for a solver.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    pub boluses: Vec<(f64, usize, f64)>,
    pub rates: Vec<(f64, usize, f64)>,
}

/// A solved curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub times: Vec<f64>,
    /// Per model output, ng/mL.
    pub conc: Vec<Vec<f64>>,
    /// Effect-site concentration (ng/mL), only with an assumed ke0.
    pub effect: Option<Vec<f64>>,
    /// Exact AUC of the first output from 0 (ng·min/mL).
    pub auc: Vec<f64>,
    /// Every state at every time (tests, mass balance).
    #[serde(skip)]
    pub states: Option<Vec<Vec<f64>>>,
}
