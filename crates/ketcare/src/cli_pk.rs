//! `ketcare simulate`, `ketcare tci`, `ketcare model list` and `ketcare bench pk`: the PK engine
//! from the shell.

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use ketcare_pk::{
    Covariates, Library, Options, PopulationSpec, Route, RouteAssumption, SimRequest, SimResult,
};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Args)]
pub struct SimulateArgs {
    /// Model id (`ketcare model list`).
    #[arg(long)]
    model: String,
    /// iv_bolus, iv_infusion, intramuscular, intranasal, oral, sublingual, subcutaneous, rectal.
    #[arg(long, required_unless_present = "regimen")]
    route: Option<String>,
    #[arg(long, required_unless_present = "regimen")]
    dose_mg_per_kg: Option<f64>,
    /// A dose history or regimen as JSON instead of one dose:
    /// `{"doses": [{"time_min", "amount_mg", "route", "duration_min"?}], "iv_rates": [{"time_min", "rate_mg_per_min"}]}`.
    #[arg(long, conflicts_with_all = ["route", "dose_mg_per_kg"])]
    regimen: Option<PathBuf>,
    /// Length of an IV infusion (min).
    #[arg(long)]
    duration_min: Option<f64>,
    #[arg(long, default_value_t = 70.0)]
    weight_kg: f64,
    #[arg(long)]
    age_years: Option<f64>,
    /// Virtual subjects (log-normal variability); without it, the typical person only.
    #[arg(long)]
    subjects: Option<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Variability as an assumption where the model publishes none: NAME=CV, e.g. v1=0.3.
    #[arg(long = "iiv-cv", value_parser = parse_pair)]
    iiv_cv: Vec<(String, f64)>,
    /// Spread of weight around --weight-kg in the population (kg).
    #[arg(long)]
    weight_sd_kg: Option<f64>,
    /// Concentration for time above and target attainment (ng/mL).
    #[arg(long)]
    target_ng_ml: Option<f64>,
    /// Bioavailability to use instead of the cited default (an assumption).
    #[arg(long)]
    bioavailability: Option<f64>,
    /// Absorption rate constant (1/min) where none is published (an assumption).
    #[arg(long)]
    ka_per_min: Option<f64>,
    /// Effect-site rate constant (1/min): no value is published; draws an effect-site curve.
    #[arg(long)]
    ke0_per_min: Option<f64>,
    #[arg(long, default_value_t = 360.0)]
    horizon_min: f64,
    #[arg(long, default_value_t = 1.0)]
    step_min: f64,
    /// Write the curves as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write the chart as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the whole result as JSON.
    #[arg(long)]
    json: bool,
}

/// `ketcare tci`: the advisory rate schedule `POST /api/v1/pk/tci` gives, through the same
/// application function. Advisory only: ketcare never drives a pump.
#[derive(Args)]
pub struct TciArgs {
    /// Model id (`ketcare model list`).
    #[arg(long)]
    model: String,
    #[arg(long, default_value_t = 70.0)]
    weight_kg: f64,
    #[arg(long)]
    age_years: Option<f64>,
    /// Target concentration (ng/mL); at most the cited maximum (routes.toml `tci_max_target`).
    #[arg(long)]
    target_ng_ml: f64,
    /// plasma or effect-site (effect-site needs --ke0-per-min, an assumption).
    #[arg(long, default_value = "plasma")]
    site: String,
    /// Maximum rate (mg/kg/min); default the cited `tci_max_rate`.
    #[arg(long)]
    max_rate_mg_per_kg_min: Option<f64>,
    /// Update interval (s), 10–60.
    #[arg(long)]
    update_s: Option<f64>,
    #[arg(long, default_value_t = 60.0)]
    duration_min: f64,
    #[arg(long)]
    ke0_per_min: Option<f64>,
    /// Print the whole result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn tci(a: &TciArgs) -> Result<()> {
    use ketcare_pk::tci::{TciRequest, TciSite};
    let lib = library()?;
    let site = match a
        .site
        .trim()
        .to_ascii_lowercase()
        .replace('_', "-")
        .as_str()
    {
        "plasma" => TciSite::Plasma,
        "effect-site" | "effect" => TciSite::EffectSite,
        other => {
            return Err(anyhow!(
                "site: expected plasma or effect-site, got `{other}`"
            ));
        }
    };
    let req = TciRequest {
        model: a.model.clone(),
        covariates: Covariates {
            weight_kg: a.weight_kg,
            age_years: a.age_years,
        },
        target_ng_ml: a.target_ng_ml,
        site,
        max_rate_mg_per_kg_min: a.max_rate_mg_per_kg_min,
        update_s: a.update_s,
        duration_min: a.duration_min,
        ke0_per_min: a.ke0_per_min,
    };
    let r = ketcare_app::pk::tci(&lib, &req).map_err(|e| anyhow!("{}", e.fields()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    print!("{}", tci_text(&r, a.weight_kg, a.target_ng_ml));
    Ok(())
}

fn tci_text(r: &ketcare_pk::tci::TciResult, weight_kg: f64, target: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "advisory TCI schedule, target {target} ng/mL (maximum rate {:.3} mg/min):",
        r.max_rate_mg_per_min
    );
    for step in &r.schedule {
        let _ = writeln!(
            s,
            "  from {:>7.2} min: {:>9.4} mg/min ({:.3} mg/kg/h)",
            step.time_min,
            step.rate_mg_per_min,
            step.rate_mg_per_min * 60.0 / weight_kg
        );
    }
    let peak = r.plasma_ng_ml.iter().copied().fold(0.0, f64::max);
    let _ = writeln!(
        s,
        "total {:.1} mg; predicted plasma peak {:.1} ng/mL, at the end {:.1} ng/mL; target reached: {}",
        r.total_mg,
        peak,
        r.plasma_ng_ml.last().copied().unwrap_or(0.0),
        r.target_reached_min
            .map_or("no".to_owned(), |t| format!("at {t:.1} min"))
    );
    for a in &r.assumptions {
        let status = a.status.map_or("user".to_owned(), |st| format!("{st:?}"));
        let value = a
            .value
            .map_or(String::new(), |v| format!(" = {v} {}", a.unit));
        let _ = writeln!(
            s,
            "assumption: {}{value} [{status}; {}] {}",
            a.name,
            a.source.join(", "),
            a.note
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    let _ = writeln!(s, "{}", r.advisory);
    s
}

fn parse_pair(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=CV, got `{s}`"))?;
    let v: f64 = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
    Ok((k.trim().to_owned(), v))
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Every model with its drug, population, validity and sources.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn library() -> Result<Library> {
    Library::builtin().map_err(|e| anyhow!("{e}"))
}

/// The request a set of arguments describes.
fn request(a: &SimulateArgs) -> Result<SimRequest> {
    let (regimen, label) = match (&a.regimen, &a.route, a.dose_mg_per_kg) {
        (Some(path), _, _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let de = &mut serde_json::Deserializer::from_str(&text);
            let reg: ketcare_pk::Regimen = serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow!("{}: field `{}`: {}", path.display(), e.path(), e.inner()))?;
            (reg, format!("{} dose history", a.model))
        }
        (None, Some(route), Some(dose)) => {
            let route: Route = route
                .parse()
                .map_err(|e: ketcare_pk::PkError| anyhow!("{e}"))?;
            let reg = ketcare_pk::simple_regimen(route, dose, a.weight_kg, a.duration_min)
                .map_err(|e| anyhow!("{e}"))?;
            (
                reg,
                format!("{} {} mg/kg {}", a.model, dose, route.as_str()),
            )
        }
        _ => return Err(anyhow!("give --route and --dose-mg-per-kg, or --regimen")),
    };
    // A chosen bioavailability or ka applies to every non-IV route of the regimen.
    let route_assumptions = if a.bioavailability.is_some() || a.ka_per_min.is_some() {
        regimen
            .routes()
            .into_iter()
            .filter(|r| !r.is_iv())
            .map(|route| RouteAssumption {
                route,
                f: a.bioavailability,
                ka_per_min: a.ka_per_min,
            })
            .collect()
    } else {
        vec![]
    };
    Ok(SimRequest {
        model: a.model.clone(),
        regimen,
        covariates: Covariates {
            weight_kg: a.weight_kg,
            age_years: a.age_years,
        },
        options: Options {
            ke0_per_min: a.ke0_per_min,
            route_assumptions,
        },
        horizon_min: a.horizon_min,
        step_min: a.step_min,
        population: a.subjects.map(|n| PopulationSpec {
            subjects: n,
            seed: a.seed,
            iiv_cv: a.iiv_cv.clone(),
            weight_sd_kg: a.weight_sd_kg,
            target_ng_ml: a.target_ng_ml,
        }),
        label: Some(label),
    })
}

pub fn simulate(a: &SimulateArgs) -> Result<()> {
    let lib = library()?;
    let req = request(a)?;
    let n = a.subjects.unwrap_or(0);
    let bar = (n >= 2000).then(|| {
        let b = indicatif::ProgressBar::new(n as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} subjects ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let progress = |d: usize| {
        if let Some(b) = &bar {
            b.set_position(d as u64);
        }
    };
    let result = ketcare_pk::simulate(&lib, &req, Some(&progress)).map_err(|e| anyhow!("{e}"))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(path) = &a.csv {
        std::fs::write(path, csv(&result))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.plot {
        let svg =
            ketcare_app::charts::pk_svg(std::slice::from_ref(&result), a.target_ng_ml, 900, 520);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", text(&result));
    }
    Ok(())
}

/// `time_min`, each output of the typical person, then the population's bands.
pub fn csv(r: &SimResult) -> String {
    let mut s = String::from("time_min");
    for (id, _) in &r.typical {
        let _ = write!(s, ",{id}_typical_ng_ml");
    }
    if r.effect_site.is_some() {
        s.push_str(",effect_site_assumed_ke0_ng_ml");
    }
    if let Some(p) = &r.population {
        for b in &p.bands {
            let _ = write!(s, ",{0}_p5_ng_ml,{0}_median_ng_ml,{0}_p95_ng_ml", b.output);
        }
    }
    s.push('\n');
    for (k, t) in r.times_min.iter().enumerate() {
        let _ = write!(s, "{t}");
        for (_, c) in &r.typical {
            let _ = write!(s, ",{:.4}", c[k]);
        }
        if let Some(ce) = &r.effect_site {
            let _ = write!(s, ",{:.4}", ce[k]);
        }
        if let Some(p) = &r.population {
            for b in &p.bands {
                let _ = write!(s, ",{:.4},{:.4},{:.4}", b.p5[k], b.median[k], b.p95[k]);
            }
        }
        s.push('\n');
    }
    s
}

fn text(r: &SimResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} — {}", r.model.name, r.label.as_deref().unwrap_or(""));
    let k = &r.key;
    let _ = writeln!(
        s,
        "typical: Cmax {:.1} ng/mL at {:.0} min; AUC {:.0} ng·min/mL; at {:.0} min {:.1} ng/mL; dose {:.1} mg",
        k.cmax_ng_ml,
        k.tmax_min,
        k.auc_ng_min_ml,
        r.times_min.last().copied().unwrap_or(0.0),
        k.clast_ng_ml,
        k.total_dose_mg
    );
    if let Some(p) = &r.population {
        let _ = writeln!(
            s,
            "population (n = {}, seed {}): Cmax median {:.1} (5–95%: {:.1}–{:.1}) ng/mL; Tmax median {:.0} min; AUC median {:.0} ng·min/mL",
            p.subjects,
            p.seed,
            p.cmax_ng_ml.median,
            p.cmax_ng_ml.p5,
            p.cmax_ng_ml.p95,
            p.tmax_min.median,
            p.auc_ng_min_ml.median
        );
        if let (Some(tc), Some(pta), Some(ta)) =
            (p.target_ng_ml, p.target_attainment, p.time_above_min)
        {
            let _ = writeln!(
                s,
                "target {tc} ng/mL: reached by {:.1}% of subjects; median time above {:.0} min",
                pta * 100.0,
                ta.median
            );
        }
        for (name, cv, from) in &p.iiv {
            let _ = writeln!(s, "  variability: {name} CV {:.0}% ({from})", cv * 100.0);
        }
    }
    for a in &r.assumptions {
        let status = a.status.map_or("user".to_owned(), |st| format!("{st:?}"));
        let value = a
            .value
            .map_or(String::new(), |v| format!(" = {v} {}", a.unit));
        let _ = writeln!(
            s,
            "assumption: {}{value} [{status}; {}] {}",
            a.name,
            a.source.join(", "),
            a.note
        );
        for alt in &a.alternatives {
            let _ = writeln!(s, "  alternative: {alt}");
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    let _ = writeln!(
        s,
        "model sources: {}; population: {}",
        r.model.sources.join(", "),
        r.model.population
    );
    let _ = writeln!(s, "{}", r.advisory);
    s
}

pub fn model(cmd: ModelCommand) -> Result<()> {
    let lib = library()?;
    let ModelCommand::List { json } = cmd;
    let infos: Vec<ketcare_pk::ModelInfo> =
        lib.models.iter().map(ketcare_pk::ModelInfo::of).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&infos)?);
        return Ok(());
    }
    for m in infos {
        let range = |r: Option<[f64; 2]>, u: &str| {
            r.map_or("not stated".to_owned(), |[a, b]| format!("{a}–{b} {u}"))
        };
        println!("{:<18} {} ({:?})", m.id, m.name, m.drug);
        println!("    {}; sources {}", m.structure, m.sources.join(", "));
        println!(
            "    population [{:?}]: {}",
            m.population_status, m.population
        );
        println!(
            "    valid for age {}, weight {}",
            range(m.age_range_years, "y"),
            range(m.weight_range_kg, "kg")
        );
        if let Some(c) = &m.caution {
            println!("    caution: {c}");
        }
    }
    Ok(())
}

pub fn bench() -> Result<()> {
    let lib = library()?;
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -p ketcare -- bench pk` for real figures"
        );
    }
    for (_, line) in
        ketcare_pk::fast::bench_report(&lib, &[10_000, 100_000]).map_err(|e| anyhow!("{e}"))?
    {
        println!("{line}");
    }
    Ok(())
}
