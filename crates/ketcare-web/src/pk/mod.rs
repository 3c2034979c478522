//! Pharmacokinetic simulation: the `/simulate` page (compare regimens side by side, optionally
//! for a patient whose weight and age fill in), and the JSON API (`POST /api/v1/simulate`,
//! `POST /api/v1/pk/tci`, `GET /api/v1/pk/models`). Advisory only: ketcare never drives a pump.

use crate::AppState;
use crate::api::JsonBody;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody, PageError};
use crate::pages::{Nav, render_html};
use crate::routes::{Entry, r};
use askama::Template;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use ketcare_core::PatientId;
use ketcare_pk::{
    Covariates, Library, ModelInfo, Options, PkError, PopulationSpec, Route, SimRequest, SimResult,
};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

pub mod exposure;
pub mod tci;

/// Most virtual subjects per regimen through the web.
pub const MAX_WEB_SUBJECTS: usize = 20_000;

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    use crate::routes::Verb::{Get, Post};
    use ketcare_core::Access::{Requires, SignedIn};
    use ketcare_core::Permission::RunSession;
    vec![
        r(Get, "/simulate", SignedIn, simulate_page),
        r(Post, "/simulate/tci", SignedIn, tci::tci_page),
        r(Get, "/pk/exposure", Requires(RunSession), exposure::exposure_page),
        r(Get, "/api/v1/pk/exposure-response", Requires(RunSession), exposure::exposure_api),
        r(Get, "/api/v1/pk/models", SignedIn, models),
        r(Post, "/api/v1/simulate", SignedIn, simulate_api),
        r(Post, "/api/v1/pk/tci", SignedIn, tci_api),
    ]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(models, simulate_api, tci_api, exposure::exposure_api))]
pub struct PkApiDoc;

pub(crate) fn library(s: &AppState) -> Result<&Library, AppError> {
    Ok(ketcare_app::pk::library(&s.pk)?)
}

/// Per regimen at most [`MAX_WEB_SUBJECTS`]; the whole request within the application's bounds
/// ([`ketcare_app::pk::MAX_REGIMENS`] regimens, [`ketcare_app::pk::MAX_CELLS`] values).
fn check_size(reqs: &[SimRequest]) -> Result<(), AppError> {
    for (i, q) in reqs.iter().enumerate() {
        if q.population
            .as_ref()
            .is_some_and(|p| p.subjects > MAX_WEB_SUBJECTS)
        {
            return Err(AppError::invalid(
                &format!("regimens[{i}].population.subjects"),
                format!(
                    "at most {MAX_WEB_SUBJECTS} through the web; use `ketcare simulate` for more"
                ),
            ));
        }
    }
    Ok(())
}

/// The model library: drug, structure, population, validity, sources, what is not published.
#[utoipa::path(get, path = "/api/v1/pk/models", responses((status = 200, description = "every PK model with its sources, population and validity range", body = [ModelInfo]), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn models(
    State(s): State<AppState>,
    _p: Principal,
) -> Result<Json<Vec<ModelInfo>>, AppError> {
    Ok(Json(
        library(&s)?.models.iter().map(ModelInfo::of).collect(),
    ))
}

/// One or more regimens to simulate side by side.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SimulateBody {
    /// At most 3 (`ketcare_app::pk::MAX_REGIMENS`); each population at most 20,000 subjects
    /// through the web.
    #[schema(max_items = 3)]
    pub regimens: Vec<SimRequest>,
}

/// One result per regimen, in the order asked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SimulateResponse {
    pub results: Vec<SimResult>,
}

/// Simulate and compare regimens (typical person, and a population when `population` is given):
/// curves, bands, Cmax/Tmax/AUC, time above and target attainment, with every assumption and the
/// model's validity. Nothing is stored; no patient data is read. Bounded: at most 3 regimens,
/// 20,000 subjects per regimen and 50,000,000 values (subjects × grid points × outputs) per
/// request — over the bound, 422 naming the field.
#[utoipa::path(post, path = "/api/v1/simulate", request_body = SimulateBody, responses((status = 200, description = "one result per regimen", body = SimulateResponse), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn simulate_api(
    State(s): State<AppState>,
    _p: Principal,
    JsonBody(body): JsonBody<SimulateBody>,
) -> Result<Json<SimulateResponse>, AppError> {
    check_size(&body.regimens)?;
    ketcare_app::pk::check_bounds(library(&s)?, &body.regimens)?;
    let state = s.clone();
    let results = tokio::task::spawn_blocking(move || {
        let lib = library(&state)?;
        Ok::<_, AppError>(ketcare_app::pk::simulate(lib, &body.regimens)?)
    })
    .await
    .map_err(|_| AppError::Internal)??;
    Ok(Json(SimulateResponse { results }))
}

/// Advisory target-controlled infusion schedule (STANPUMP-style) for a plasma or (with an assumed
/// ke0) effect-site target, bounded by a maximum rate.
#[utoipa::path(post, path = "/api/v1/pk/tci", request_body = ketcare_pk::tci::TciRequest, responses((status = 200, description = "rate schedule and predicted curves", body = ketcare_pk::tci::TciResult), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn tci_api(
    State(s): State<AppState>,
    _p: Principal,
    JsonBody(req): JsonBody<ketcare_pk::tci::TciRequest>,
) -> Result<Json<ketcare_pk::tci::TciResult>, AppError> {
    let state = s.clone();
    let r = tokio::task::spawn_blocking(move || {
        Ok::<_, AppError>(ketcare_app::pk::tci(library(&state)?, &req)?)
    })
    .await
    .map_err(|_| AppError::Internal)??;
    Ok(Json(r))
}

// ---- The page ----------------------------------------------------------------------------------

/// One regimen row of the form.
pub struct RegimenRow {
    pub i: usize,
    pub model: String,
    pub route: String,
    pub dose: String,
    pub duration: String,
}

/// One regimen's outcome on the page.
pub struct Outcome {
    pub label: String,
    pub error: Option<String>,
    pub key: Vec<(String, String)>,
    pub assumptions: Vec<String>,
    pub warnings: Vec<String>,
    pub model: Option<ModelInfo>,
    pub validity: String,
}

#[derive(Template)]
#[template(path = "pk_simulate.html")]
pub struct SimulatePage {
    nav: Option<Nav>,
    models: Vec<(String, String)>,
    routes: Vec<String>,
    model: String,
    patient: String,
    patient_note: String,
    weight: String,
    age: String,
    subjects: String,
    seed: String,
    iiv: String,
    target: String,
    ke0: String,
    rows: Vec<RegimenRow>,
    error: String,
    chart: String,
    outcomes: Vec<Outcome>,
    tci: tci::TciPanel,
    advisory: &'static str,
}

fn pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn num(p: &[(String, String)], k: &str) -> Result<Option<f64>, AppError> {
    get(p, k)
        .map(|v| {
            v.parse::<f64>()
                .map_err(|_| AppError::invalid(k, format!("`{v}` is not a number")))
        })
        .transpose()
}

/// `v1=30, k10=30` (percent) → [(v1, 0.30), …].
fn parse_iiv(text: &str) -> Result<Vec<(String, f64)>, AppError> {
    let mut out = Vec::new();
    for part in text
        .split([',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| AppError::invalid("iiv", format!("`{part}`: expected name=CV%")))?;
        let v: f64 = v
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| AppError::invalid("iiv", format!("`{part}`: CV is not a number")))?;
        out.push((k.trim().to_owned(), v / 100.0));
    }
    Ok(out)
}

const DEFAULT_ROWS: [(&str, &str, &str); 3] = [
    ("iv_infusion", "0.5", "40"),
    ("intranasal", "0.5", ""),
    ("oral", "0.5", ""),
];

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn outcome_of(label: String, r: Result<SimResult, PkError>) -> Outcome {
    match r {
        Err(e) => Outcome {
            label,
            error: Some(e.to_string()),
            key: vec![],
            assumptions: vec![],
            warnings: vec![],
            model: None,
            validity: String::new(),
        },
        Ok(r) => {
            let k = &r.key;
            let mut key = vec![
                ("Dose".into(), format!("{} mg", fmt(k.total_dose_mg))),
                (
                    "Cmax (typical)".into(),
                    format!("{} ng/mL at {} min", fmt(k.cmax_ng_ml), fmt(k.tmax_min)),
                ),
                (
                    "AUC 0–6 h (typical)".into(),
                    format!("{} ng·h/mL", fmt(k.auc_ng_min_ml / 60.0)),
                ),
            ];
            if let Some(p) = &r.population {
                key.push((
                    "Cmax, population median (5–95%)".into(),
                    format!(
                        "{} ({}–{}) ng/mL, n = {}",
                        fmt(p.cmax_ng_ml.median),
                        fmt(p.cmax_ng_ml.p5),
                        fmt(p.cmax_ng_ml.p95),
                        p.subjects
                    ),
                ));
                if let (Some(tc), Some(pta), Some(ta)) =
                    (p.target_ng_ml, p.target_attainment, p.time_above_min)
                {
                    key.push((
                        format!("Reaching {tc} ng/mL"),
                        format!(
                            "{:.0}% of subjects; median {} min above",
                            pta * 100.0,
                            fmt(ta.median)
                        ),
                    ));
                }
            }
            let assumptions = r
                .assumptions
                .iter()
                .map(|a| {
                    let status = a
                        .status
                        .map_or("your choice".to_owned(), |s| format!("status {s:?}"));
                    let value = a
                        .value
                        .map_or(String::new(), |v| format!(" = {v:.4} {}", a.unit));
                    let src = if a.source.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", a.source.join(", "))
                    };
                    let alts = if a.alternatives.is_empty() {
                        String::new()
                    } else {
                        format!(" Alternatives: {}.", a.alternatives.join("; "))
                    };
                    format!("{}{value} ({status}{src}) — {}.{alts}", a.name, a.note)
                })
                .collect();
            let m = &r.model;
            let range = |x: Option<[f64; 2]>, u: &str| {
                x.map_or("not stated".to_owned(), |[a, b]| format!("{a}–{b} {u}"))
            };
            let validity = format!(
                "age {}, weight {}",
                range(m.age_range_years, "y"),
                range(m.weight_range_kg, "kg")
            );
            Outcome {
                label,
                error: None,
                key,
                assumptions,
                warnings: r.warnings.clone(),
                model: Some(r.model.clone()),
                validity,
            }
        }
    }
}

pub async fn simulate_page(
    State(s): State<AppState>,
    p: Principal,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let lib = library(&s)?;
    let q = pairs(&q);
    let model = get(&q, "model").unwrap_or("domino").to_owned();
    let mut weight = num(&q, "weight_kg")?;
    let mut age = num(&q, "age_years")?;
    let mut patient_note = String::new();
    let patient = get(&q, "patient").map(str::to_owned).unwrap_or_default();
    if !patient.is_empty() {
        let id: i64 = patient
            .parse()
            .map_err(|_| AppError::invalid("patient", "not a patient number"))?;
        // Reading the record checks PatientRead and is audited by the store.
        let pt = s.store.get_patient(&p.actor, PatientId::new(id)).await?;
        let rec = &pt.record;
        let day = rec.day_of_care(s.today(), &s.bands);
        // The record's facts win: a typed weight or age that contradicts them is refused naming
        // the field; one the record lacks may be entered, and the note says so.
        let rec_weight = rec.weight.map(|w| f64::from(w.value));
        let rec_age = day
            .as_ref()
            .map(|d| f64::from(d.age.completed_months) / 12.0);
        if let (Some(typed), Some(w)) = (weight, rec_weight)
            && (typed - w).abs() > 0.05
        {
            return Err(AppError::invalid(
                "weight_kg",
                format!(
                    "{typed} kg contradicts the record's {w:.1} kg: a patient's simulation uses the record's weight (clear the box, or update the record)"
                ),
            )
            .into());
        }
        if let (Some(typed), Some(a)) = (age, rec_age)
            && (typed - a).abs() >= 1.0
        {
            return Err(AppError::invalid(
                "age_years",
                format!(
                    "{typed} years contradicts the record's age of {a:.1} years: a patient's simulation uses the record's age (clear the box)"
                ),
            )
            .into());
        }
        let weight_from = if rec_weight.is_some() {
            "from the record"
        } else {
            "as entered (the record has none)"
        };
        weight = rec_weight.or(weight);
        age = rec_age.or(age);
        patient_note = format!(
            "{} {} (MRN {}): weight {} {weight_from}, age {} from the record.",
            rec.given_name,
            rec.family_name,
            rec.mrn,
            rec.weight.map_or("not recorded".to_owned(), |w| format!(
                "{:.1} kg measured {}",
                f64::from(w.value),
                w.measured_on
            )),
            day.map_or("unknown".to_owned(), |d| format!(
                "{:.1} y",
                f64::from(d.age.completed_months) / 12.0
            )),
        );
    }
    let weight = match weight {
        Some(w) => w,
        None if !patient.is_empty() => {
            return Err(AppError::invalid(
                "weight_kg",
                "the record has no weight: record it, or enter one here",
            )
            .into());
        }
        None => 70.0,
    };
    let subjects = num(&q, "subjects")?.unwrap_or(500.0);
    if !(0.0..=MAX_WEB_SUBJECTS as f64).contains(&subjects) {
        return Err(
            AppError::invalid("subjects", format!("between 0 and {MAX_WEB_SUBJECTS}")).into(),
        );
    }
    let seed = num(&q, "seed")?.unwrap_or(1.0).max(0.0) as u64;
    let iiv_text = get(&q, "iiv").unwrap_or("").to_owned();
    let iiv = parse_iiv(&iiv_text)?;
    let target = num(&q, "target_ng_ml")?;
    let ke0 = num(&q, "ke0_per_min")?;
    let mut rows = Vec::new();
    let mut reqs = Vec::new();
    let fresh = get(&q, "r0_route").is_none();
    for (i, (dr, dd, dt)) in DEFAULT_ROWS.iter().enumerate() {
        let val = |k: &str, d: &str| {
            if fresh {
                d.to_owned()
            } else {
                get(&q, &format!("r{i}_{k}")).unwrap_or("").to_owned()
            }
        };
        let row = RegimenRow {
            i,
            model: val("model", ""),
            route: val("route", dr),
            dose: val("dose", dd),
            duration: val("duration", dt),
        };
        if !row.route.is_empty() && !row.dose.is_empty() {
            let m = if row.model.is_empty() {
                model.clone()
            } else {
                row.model.clone()
            };
            let label = format!(
                "{} {} mg/kg {}{}",
                m,
                row.dose,
                row.route,
                if row.duration.is_empty() {
                    String::new()
                } else {
                    format!(" over {} min", row.duration)
                }
            );
            let req = (|| -> Result<SimRequest, PkError> {
                let route: Route = row.route.parse()?;
                let dose: f64 = row.dose.parse().map_err(|_| PkError::Input {
                    field: format!("r{i}_dose"),
                    message: "not a number".into(),
                })?;
                let dur = if row.duration.is_empty() {
                    None
                } else {
                    Some(row.duration.parse::<f64>().map_err(|_| PkError::Input {
                        field: format!("r{i}_duration"),
                        message: "not a number".into(),
                    })?)
                };
                let mdl = lib.model(&m)?;
                let has_iiv = ModelInfo::of(mdl).has_iiv || !iiv.is_empty();
                Ok(SimRequest {
                    model: m.clone(),
                    regimen: ketcare_pk::simple_regimen(route, dose, weight, dur)?,
                    covariates: Covariates {
                        weight_kg: weight,
                        age_years: age,
                    },
                    options: Options {
                        ke0_per_min: ke0,
                        route_assumptions: vec![],
                    },
                    horizon_min: 360.0,
                    step_min: 1.0,
                    population: (subjects >= 1.0 && has_iiv).then(|| PopulationSpec {
                        subjects: subjects as usize,
                        seed,
                        // Only the parameters this model has.
                        iiv_cv: iiv
                            .iter()
                            .filter(|(n, _)| mdl.file.param.contains_key(n))
                            .cloned()
                            .collect(),
                        weight_sd_kg: None,
                        target_ng_ml: target,
                    }),
                    label: Some(label.clone()),
                })
            })();
            reqs.push((label, req));
        }
        rows.push(row);
    }
    // The page's regimens within the same bounds as the API; subjects is the page's lever.
    let ok_reqs: Vec<SimRequest> = reqs
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().cloned())
        .collect();
    if !ok_reqs.is_empty()
        && let Err(e) = ketcare_app::pk::check_bounds(lib, &ok_reqs)
    {
        let msg = e.fields().to_string();
        return Err(AppError::invalid(
            "subjects",
            format!(
                "too many subjects for these regimens: at most {} values (subjects × time points × outputs) per request ({msg})",
                ketcare_app::pk::MAX_CELLS
            ),
        )
        .into());
    }
    let work = reqs;
    let pk = s.pk.clone();
    let (results, svg) = tokio::task::spawn_blocking(move || {
        let lib = match pk.as_ref() {
            Ok(l) => l,
            Err(e) => return (vec![(String::new(), Err(e.clone()))], String::new()),
        };
        let results: Vec<(String, Result<SimResult, PkError>)> = work
            .into_iter()
            .map(|(l, r)| (l, r.and_then(|r| ketcare_app::pk::simulate_one(lib, &r))))
            .collect();
        let ok: Vec<SimResult> = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().cloned())
            .collect();
        let svg = if ok.is_empty() {
            String::new()
        } else {
            ketcare_app::charts::pk_svg(&ok, target, 860, 480)
        };
        (results, svg)
    })
    .await
    .map_err(|_| AppError::Internal)?;
    let no_iiv = results
        .iter()
        .any(|(_, r)| r.as_ref().is_ok_and(|r| r.population.is_none()))
        && subjects >= 1.0;
    let outcomes = results.into_iter().map(|(l, r)| outcome_of(l, r)).collect();
    Ok(render_html(&SimulatePage {
        nav: Nav::of(&p),
        models: lib
            .models
            .iter()
            .map(|m| (m.file.id.clone(), m.file.name.clone()))
            .collect(),
        routes: Route::ALL.iter().map(|r| r.as_str().to_owned()).collect(),
        model,
        patient,
        patient_note,
        weight: format!("{weight}"),
        age: age.map_or(String::new(), |a| format!("{a:.1}")),
        subjects: format!("{subjects}"),
        seed: seed.to_string(),
        iiv: iiv_text,
        target: target.map_or(String::new(), |t| t.to_string()),
        ke0: ke0.map_or(String::new(), |k| k.to_string()),
        rows,
        error: if no_iiv {
            "This model publishes no inter-individual variability: enter CVs (an assumption, e.g. v1=30, k10=30, k12=30) to draw population bands.".into()
        } else {
            String::new()
        },
        chart: svg,
        outcomes,
        tci: tci::TciPanel::empty(&s),
        advisory: ketcare_pk::ADVISORY,
    }))
}
