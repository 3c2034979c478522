//! Validated models, the route table, and the resolution of a model's parameters for one
//! person (covariates, allometry, validity warnings).

use crate::Route;
use crate::data::{self, Ctx, Drug, ModelFile, RoutePopulation, RoutesFile, Status, WeightScaling};
use crate::error::{PkError, non_negative, positive};
use serde::Serialize;

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$((concat!("data/pk/", $name), include_str!(concat!("../../../data/pk/", $name)))),*]
    };
}

/// The built-in model files (path, text).
pub const MODEL_FILES: &[(&str, &str)] = builtin!(
    "domino.toml",
    "clements.toml",
    "hijazi.toml",
    "herd.toml",
    "hornik.toml",
    "flint.toml",
    "simons.toml",
    "perez_ruixo.toml",
);
/// The built-in route table.
pub const ROUTES_FILE: (&str, &str) = (
    "data/pk/routes.toml",
    include_str!("../../../data/pk/routes.toml"),
);

/// How a parameter's unit converts to base units (mg, L, min) and scales with weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scale {
    None,
    PerKg,
    AlloVolume,
    AlloClearance,
}

/// Factor to base units and the weight scaling of a unit.
pub(crate) fn unit(u: &str) -> Option<(f64, Scale)> {
    Some(match u {
        "L" | "L/min" | "1/min" | "min" | "fraction" => (1.0, Scale::None),
        "L/h" | "1/h" => (1.0 / 60.0, Scale::None),
        "h" => (60.0, Scale::None),
        "L/kg" => (1.0, Scale::PerKg),
        "L/70kg" => (1.0, Scale::AlloVolume),
        "L/h/70kg" => (1.0 / 60.0, Scale::AlloClearance),
        _ => return None,
    })
}

/// A validated model.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    #[serde(flatten)]
    pub file: ModelFile,
    /// Path of the data file.
    pub path: String,
    /// Parameter names, in the order of every parameter vector.
    #[serde(skip)]
    pub(crate) names: Vec<String>,
}

impl Model {
    pub fn id(&self) -> &str {
        &self.file.id
    }

    /// Parse and validate one model file.
    pub fn parse(path: &str, text: &str) -> Result<Model, PkError> {
        let f: ModelFile = data::parse(path, text)?;
        let ctx = Ctx { file: path, text };
        validate(&ctx, &f)?;
        let names = f.param.keys().cloned().collect();
        Ok(Model {
            file: f,
            path: path.into(),
            names,
        })
    }

    /// Index of a compartment by id.
    pub(crate) fn cmt(&self, id: &str) -> Option<usize> {
        self.file.compartment.iter().position(|c| c.id == id)
    }

    pub(crate) fn param_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Weight exponent of a parameter (1 per kg, the allometric exponent, or 0).
    pub fn weight_exponent(&self, name: &str) -> f64 {
        let Some(p) = self.file.param.get(name) else {
            return 0.0;
        };
        let allo = self.file.allometry.as_ref();
        match unit(&p.unit).map_or(Scale::None, |u| u.1) {
            Scale::None => 0.0,
            Scale::PerKg => 1.0,
            Scale::AlloVolume => allo.map_or(0.0, |a| a.volume),
            Scale::AlloClearance => allo.map_or(0.0, |a| a.clearance),
        }
    }

    /// Routes this model can simulate by its own scheme.
    pub fn own_routes(&self) -> Vec<Route> {
        self.file.route_scheme.iter().map(|s| s.route).collect()
    }

    /// Typical parameter values in base units (mg, L, min) for one person, with warnings.
    pub fn typical(&self, cov: &Covariates) -> Result<(Vec<f64>, Vec<String>), PkError> {
        let wt = positive("weight_kg", cov.weight_kg)?;
        if wt > 500.0 {
            return Err(PkError::input(
                "weight_kg",
                format!("{wt} kg is not a plausible body weight"),
            ));
        }
        if let Some(a) = cov.age_years {
            non_negative("age_years", a)?;
            if a > 130.0 {
                return Err(PkError::input(
                    "age_years",
                    format!("{a} years is not a plausible age"),
                ));
            }
        }
        let mut warnings = Vec::new();
        let f = &self.file;
        if let Some(v) = &f.validity {
            if let Some([lo, hi]) = v.weight_kg
                && !(lo..=hi).contains(&wt)
            {
                warnings.push(format!(
                    "weight {wt} kg is outside the {} model's studied range {lo}–{hi} kg",
                    f.id
                ));
            }
            if let Some([lo, hi]) = v.age_years {
                match cov.age_years {
                    Some(a) if !(lo..=hi).contains(&a) => warnings.push(format!(
                        "age {a} y is outside the {} model's studied range {lo}–{hi} y",
                        f.id
                    )),
                    None => warnings.push(format!(
                        "age not given: the {} model's studied range {lo}–{hi} y was not checked",
                        f.id
                    )),
                    _ => {}
                }
            }
        }
        if f.adults_only && cov.age_years.is_some_and(|a| a < 18.0) {
            warnings.push(format!("the {} model was derived in adults", f.id));
        }
        if let Some(c) = &f.caution {
            warnings.push(c.clone());
        }
        if let Some(n) = &f.weight_scaling_note {
            warnings.push(n.clone());
        }
        let mut out = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let p = &f.param[name];
            let (factor, scale) = unit(&p.unit).unwrap_or((1.0, Scale::None));
            let mut v = p.value * factor;
            let allo = f.allometry.as_ref();
            v *= match scale {
                Scale::None => 1.0,
                Scale::PerKg => wt,
                Scale::AlloVolume => allo.map_or(1.0, |a| (wt / a.reference_kg).powf(a.volume)),
                Scale::AlloClearance => {
                    allo.map_or(1.0, |a| (wt / a.reference_kg).powf(a.clearance))
                }
            };
            for c in f.covariate.iter().filter(|c| &c.param == name) {
                let x = match c.covariate.as_str() {
                    "age_years" => cov.age_years,
                    "weight_kg" => Some(wt),
                    _ => None,
                };
                match x {
                    Some(x) => {
                        let cf = unit(&c.unit).map_or(1.0, |u| u.0);
                        v += c.slope * cf * (x - c.above).max(0.0);
                    }
                    None => warnings.push(format!(
                        "{} not given: its effect on {} (above {}) was not applied",
                        c.covariate, c.param, c.above
                    )),
                }
            }
            if !(v.is_finite() && v > 0.0) {
                return Err(PkError::input(
                    format!("param.{name}"),
                    format!("is {v} for these covariates; a parameter must stay positive"),
                ));
            }
            out.push(v);
        }
        Ok((out, warnings))
    }
}

/// Covariates of one person.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Covariates {
    pub weight_kg: f64,
    #[serde(default)]
    pub age_years: Option<f64>,
}

fn validate(ctx: &Ctx, f: &ModelFile) -> Result<(), PkError> {
    if f.id.is_empty()
        || !f
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(ctx.err("id", "id", "must be lower-case letters, digits and _"));
    }
    data::check_sources(ctx, "sources", "sources", Status::S, &f.sources)?;
    data::check_sources(
        ctx,
        "population",
        "population.source",
        f.population.status,
        &f.population.source,
    )?;
    if let Some(v) = &f.validity {
        data::check_sources(ctx, "validity", "validity.source", v.status, &v.source)?;
        for (name, r) in [
            ("validity.age_years", v.age_years),
            ("validity.weight_kg", v.weight_kg),
        ] {
            if let Some([lo, hi]) = r
                && !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo < hi)
            {
                return Err(ctx.err("validity", name, "expected [low, high] with 0 ≤ low < high"));
            }
        }
    }
    match (f.weight_scaling, &f.allometry) {
        (WeightScaling::Allometric, None) => {
            return Err(ctx.err(
                "weight_scaling",
                "allometry",
                "allometric scaling needs an [allometry] table",
            ));
        }
        (_, Some(a)) => {
            data::check_sources(ctx, "allometry", "allometry.source", a.status, &a.source)?;
            if !(a.reference_kg > 0.0 && a.volume.is_finite() && a.clearance.is_finite()) {
                return Err(ctx.err(
                    "allometry",
                    "allometry",
                    "exponents must be numbers and reference_kg > 0",
                ));
            }
        }
        _ => {}
    }
    if f.compartment.is_empty() {
        return Err(ctx.err(
            "[[compartment]]",
            "compartment",
            "a model needs at least one compartment",
        ));
    }
    for (i, c) in f.compartment.iter().enumerate() {
        if f.compartment[..i].iter().any(|d| d.id == c.id) || c.id == "out" {
            return Err(ctx.err(
                &c.id,
                &format!("compartment[{i}].id"),
                format!("duplicate or reserved id {:?}", c.id),
            ));
        }
        if let Some(v) = &c.volume {
            need_param(ctx, f, v, &format!("compartment[{i}].volume"))?;
        }
    }
    let has = |id: &str| f.compartment.iter().any(|c| c.id == id);
    for (i, fl) in f.flow.iter().enumerate() {
        let field = format!("flow[{i}]");
        if !has(&fl.from) {
            return Err(ctx.err(
                &fl.from,
                &format!("{field}.from"),
                format!("unknown compartment {:?}", fl.from),
            ));
        }
        if fl.to != "out" && !has(&fl.to) {
            return Err(ctx.err(
                &fl.to,
                &format!("{field}.to"),
                format!("unknown compartment {:?}", fl.to),
            ));
        }
        match (&fl.k, &fl.cl) {
            (Some(k), None) => need_param(ctx, f, k, &format!("{field}.k"))?,
            (None, Some(cl)) => {
                need_param(ctx, f, cl, &format!("{field}.cl"))?;
                let from = f.compartment.iter().find(|c| c.id == fl.from);
                if from.and_then(|c| c.volume.as_ref()).is_none() {
                    return Err(ctx.err(
                        &fl.from,
                        &format!("{field}.cl"),
                        "a clearance flow needs a volume on its `from` compartment",
                    ));
                }
            }
            _ => return Err(ctx.err("[[flow]]", &field, "give exactly one of k or cl")),
        }
        for p in [&fl.fraction, &fl.complement].into_iter().flatten() {
            need_fraction(ctx, f, p, &format!("{field}.fraction"))?;
        }
    }
    if f.output.is_empty() {
        return Err(ctx.err("[[output]]", "output", "a model needs at least one output"));
    }
    for (i, o) in f.output.iter().enumerate() {
        let c = f.compartment.iter().find(|c| c.id == o.compartment);
        if c.and_then(|c| c.volume.as_ref()).is_none() {
            return Err(ctx.err(
                &o.compartment,
                &format!("output[{i}].compartment"),
                "must be a compartment with a volume",
            ));
        }
    }
    for (i, s) in f.route_scheme.iter().enumerate() {
        for (j, inp) in s.inputs.iter().enumerate() {
            let field = format!("route_scheme[{i}].inputs[{j}]");
            if !has(&inp.to) {
                return Err(ctx.err(
                    &inp.to,
                    &format!("{field}.to"),
                    format!("unknown compartment {:?}", inp.to),
                ));
            }
            for p in [&inp.fraction, &inp.complement].into_iter().flatten() {
                need_fraction(ctx, f, p, &format!("{field}.fraction"))?;
            }
            if let Some(d) = &inp.duration {
                need_param(ctx, f, d, &format!("{field}.duration"))?;
            }
        }
    }
    for (i, r) in f.route_default.iter().enumerate() {
        check_fraction_value(
            ctx,
            "[[route_default]]",
            &format!("route_default[{i}].f"),
            r.f.value,
        )?;
        data::check_sources(
            ctx,
            "[[route_default]]",
            &format!("route_default[{i}].f.source"),
            r.f.status,
            &r.f.source,
        )?;
    }
    for (i, d) in f.device_rule.iter().enumerate() {
        let field = format!("device_rule[{i}]");
        let Some(scheme) = f.route_scheme.iter().find(|s| s.route == d.route) else {
            return Err(ctx.err(
                "[[device_rule]]",
                &format!("{field}.route"),
                "the model has no route_scheme for this route",
            ));
        };
        need_fraction(ctx, f, &d.fraction, &format!("{field}.fraction"))?;
        need_fraction(
            ctx,
            f,
            &d.subsequent_factor,
            &format!("{field}.subsequent_factor"),
        )?;
        let used = scheme.inputs.iter().any(|i| {
            i.fraction.as_deref() == Some(&d.fraction)
                || i.complement.as_deref() == Some(&d.fraction)
        });
        if !used {
            return Err(ctx.err(
                "[[device_rule]]",
                &format!("{field}.fraction"),
                "must be a fraction the route's scheme uses",
            ));
        }
        for (name, v, unit) in [
            ("device_mg", &d.device_mg, "mg"),
            ("occasion_gap_min", &d.occasion_gap_min, "min"),
        ] {
            if !(v.value.is_finite() && v.value > 0.0) || v.unit.as_deref() != Some(unit) {
                return Err(ctx.err(
                    "[[device_rule]]",
                    &format!("{field}.{name}"),
                    format!("needs a positive value in {unit}"),
                ));
            }
            data::check_sources(
                ctx,
                "[[device_rule]]",
                &format!("{field}.{name}.source"),
                v.status,
                &v.source,
            )?;
        }
    }
    for (i, t) in f.time_effect.iter().enumerate() {
        let field = format!("time_effect[{i}]");
        need_param(ctx, f, &t.param, &format!("{field}.param"))?;
        if !(t.per_hour.is_finite() && t.per_hour >= 0.0 && t.per_hour < 1.0) {
            return Err(ctx.err(
                "[[time_effect]]",
                &format!("{field}.per_hour"),
                "a fractional increase per hour in [0, 1)",
            ));
        }
        data::check_sources(
            ctx,
            "[[time_effect]]",
            &format!("{field}.source"),
            t.status,
            &t.source,
        )?;
    }
    for (i, c) in f.covariate.iter().enumerate() {
        need_param(ctx, f, &c.param, &format!("covariate[{i}].param"))?;
        if !matches!(c.covariate.as_str(), "age_years" | "weight_kg") {
            return Err(ctx.err(
                "[[covariate]]",
                &format!("covariate[{i}].covariate"),
                "expected age_years or weight_kg",
            ));
        }
        if unit(&c.unit).is_none() || !c.slope.is_finite() || !c.above.is_finite() {
            return Err(ctx.err(
                "[[covariate]]",
                &format!("covariate[{i}]"),
                "slope, above and unit must be valid",
            ));
        }
        data::check_sources(
            ctx,
            "[[covariate]]",
            &format!("covariate[{i}].source"),
            c.status,
            &c.source,
        )?;
    }
    for (name, p) in &f.param {
        let anchor = format!("[param.{name}]");
        let field = format!("param.{name}");
        if p.status == Status::U {
            return Err(ctx.err(
                &anchor,
                &format!("{field}.status"),
                "U values are never encoded as numbers; describe them under [unpublished]",
            ));
        }
        data::check_sources(
            ctx,
            &anchor,
            &format!("{field}.source"),
            p.status,
            &p.source,
        )?;
        let Some((_, scale)) = unit(&p.unit) else {
            return Err(ctx.err(
                &anchor,
                &format!("{field}.unit"),
                format!("unknown unit {:?}", p.unit),
            ));
        };
        let ok_scale = match scale {
            Scale::None => true,
            Scale::PerKg => f.weight_scaling == WeightScaling::PerKg,
            Scale::AlloVolume | Scale::AlloClearance => {
                f.weight_scaling == WeightScaling::Allometric
            }
        };
        if !ok_scale {
            return Err(ctx.err(
                &anchor,
                &format!("{field}.unit"),
                format!("unit {:?} does not match weight_scaling", p.unit),
            ));
        }
        if !(p.value.is_finite() && p.value > 0.0) {
            return Err(ctx.err(
                &anchor,
                &format!("{field}.value"),
                format!("must be a positive number, got {}", p.value),
            ));
        }
        if let Some(iiv) = &p.iiv {
            data::check_sources(
                ctx,
                &anchor,
                &format!("{field}.iiv.source"),
                iiv.status,
                &iiv.source,
            )?;
            let w = iiv.omega2();
            if !(w.is_finite() && w > 0.0) || (iiv.cv.is_some() == iiv.omega2.is_some()) {
                return Err(ctx.err(
                    &anchor,
                    &format!("{field}.iiv"),
                    "give exactly one of cv or omega2, positive",
                ));
            }
        }
    }
    for (i, c) in f.correlation.iter().enumerate() {
        let field = format!("correlation[{i}]");
        for name in &c.params {
            need_param(ctx, f, name, &format!("{field}.params"))?;
            if f.param[name].iiv.is_none() {
                return Err(ctx.err(
                    "[[correlation]]",
                    &format!("{field}.params"),
                    format!("{name} has no IIV to correlate"),
                ));
            }
        }
        if c.params[0] == c.params[1] || !(c.r.is_finite() && c.r.abs() < 1.0) {
            return Err(ctx.err(
                "[[correlation]]",
                &format!("{field}.r"),
                "two different parameters and -1 < r < 1",
            ));
        }
        data::check_sources(
            ctx,
            "[[correlation]]",
            &format!("{field}.source"),
            c.status,
            &c.source,
        )?;
    }
    for (name, r) in &f.residual {
        if !f.output.iter().any(|o| &o.id == name) {
            return Err(ctx.err(
                "[residual]",
                &format!("residual.{name}"),
                "not an output of this model",
            ));
        }
        data::check_sources(
            ctx,
            "[residual]",
            &format!("residual.{name}.source"),
            r.status,
            &r.source,
        )?;
    }
    Ok(())
}

fn need_param(ctx: &Ctx, f: &ModelFile, name: &str, field: &str) -> Result<(), PkError> {
    if f.param.contains_key(name) {
        Ok(())
    } else {
        Err(ctx.err(name, field, format!("unknown parameter {name:?}")))
    }
}

fn check_fraction_value(ctx: &Ctx, anchor: &str, field: &str, v: f64) -> Result<(), PkError> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(())
    } else {
        Err(ctx.err(
            anchor,
            field,
            format!("a fraction must be in (0, 1], got {v}"),
        ))
    }
}

fn need_fraction(ctx: &Ctx, f: &ModelFile, name: &str, field: &str) -> Result<(), PkError> {
    need_param(ctx, f, name, field)?;
    let p = &f.param[name];
    if p.unit != "fraction" {
        return Err(ctx.err(
            &format!("[param.{name}]"),
            field,
            "must refer to a parameter with unit \"fraction\"",
        ));
    }
    check_fraction_value(
        ctx,
        &format!("[param.{name}]"),
        &format!("param.{name}.value"),
        p.value,
    )
}

/// The model library and the route table.
#[derive(Debug, Clone, Serialize)]
pub struct Library {
    pub models: Vec<Model>,
    pub routes: RoutesFile,
}

impl Library {
    /// Load and validate the built-in files.
    pub fn builtin() -> Result<Library, PkError> {
        Self::from_files(MODEL_FILES, ROUTES_FILE)
    }

    /// Load and validate the given files (path, text).
    pub fn from_files(models: &[(&str, &str)], routes: (&str, &str)) -> Result<Library, PkError> {
        let mut out: Vec<Model> = Vec::new();
        for (path, text) in models {
            let m = Model::parse(path, text)?;
            if let Some(other) = out.iter().find(|o| o.id() == m.id()) {
                let ctx = Ctx { file: path, text };
                return Err(ctx.err(
                    "id",
                    "id",
                    format!("model id {:?} is already defined in {}", m.id(), other.path),
                ));
            }
            out.push(m);
        }
        let rf: RoutesFile = data::parse(routes.0, routes.1)?;
        let ctx = Ctx {
            file: routes.0,
            text: routes.1,
        };
        for (i, r) in rf.route.iter().enumerate() {
            check_fraction_value(&ctx, "[[route]]", &format!("route[{i}].f.value"), r.f.value)?;
            data::check_sources(
                &ctx,
                "[[route]]",
                &format!("route[{i}].f.source"),
                r.f.status,
                &r.f.source,
            )?;
            if let Some(ka) = &r.ka {
                let ok = ka
                    .unit
                    .as_deref()
                    .and_then(unit)
                    .is_some_and(|u| u.1 == Scale::None);
                if !(ok && ka.value.is_finite() && ka.value > 0.0) {
                    return Err(ctx.err(
                        "[[route]]",
                        &format!("route[{i}].ka"),
                        "ka needs a positive value and a unit 1/min or 1/h",
                    ));
                }
                data::check_sources(
                    &ctx,
                    "[[route]]",
                    &format!("route[{i}].ka.source"),
                    ka.status,
                    &ka.source,
                )?;
            }
            if matches!(r.route, Route::IvBolus | Route::IvInfusion) {
                return Err(ctx.err(
                    "[[route]]",
                    &format!("route[{i}].route"),
                    "IV routes need no row",
                ));
            }
        }
        Ok(Library {
            models: out,
            routes: rf,
        })
    }

    /// A model by id, or an input error naming `model`.
    pub fn model(&self, id: &str) -> Result<&Model, PkError> {
        self.models.iter().find(|m| m.id() == id).ok_or_else(|| {
            let ids: Vec<&str> = self.models.iter().map(|m| m.id()).collect();
            PkError::input(
                "model",
                format!("unknown model {id:?}; expected one of {}", ids.join(", ")),
            )
        })
    }

    /// The route-table row for a drug, route and age (paediatric < 18 y).
    pub fn route_row(&self, drug: Drug, route: Route, paediatric: bool) -> Option<&data::RouteRow> {
        let want = if paediatric {
            RoutePopulation::Paediatric
        } else {
            RoutePopulation::Adult
        };
        let rows = || {
            self.routes
                .route
                .iter()
                .filter(|r| r.drug == drug && r.route == route)
        };
        rows()
            .find(|r| r.population == want)
            .or_else(|| rows().find(|r| r.population == RoutePopulation::Any))
    }
}
