//! The simulate page's TCI panel: the form (`GET /simulate` shows it empty) posts to
//! `POST /simulate/tci`, which calls the same application function as `POST /api/v1/pk/tci`
//! ([`ketcare_app::pk::tci`]) and shows the advisory rate schedule and its predicted curve, or
//! each refusal beside its field. Advisory only: ketcare never drives a pump.

use crate::AppState;
use crate::auth::Principal;
use crate::clinical_pages::{field, form_pairs};
use crate::error::{AppError, PageError};
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ketcare_pk::Covariates;
use ketcare_pk::tci::{TciRequest, TciResult, TciSite};

/// One row of the advised schedule (consecutive equal rates joined).
pub struct ScheduleRow {
    pub from_min: String,
    pub to_min: String,
    pub mg_per_min: String,
    pub mg_per_kg_h: String,
    pub at_max: bool,
}

/// The panel: the form as typed, refusals by field, and the result.
#[derive(Default)]
pub struct TciPanel {
    pub models: Vec<(String, String)>,
    pub model: String,
    pub weight: String,
    pub age: String,
    pub target: String,
    pub site: String,
    pub max_rate: String,
    pub duration: String,
    pub ke0: String,
    /// (field, message) of each refusal.
    pub errors: Vec<(String, String)>,
    pub shown: bool,
    pub rows: Vec<ScheduleRow>,
    pub chart: String,
    pub summary: Vec<(String, String)>,
    pub warnings: Vec<String>,
    pub assumptions: Vec<String>,
}

impl TciPanel {
    /// An empty form with the model list.
    pub fn empty(s: &AppState) -> TciPanel {
        TciPanel {
            models: models(s),
            model: "domino".into(),
            weight: "70".into(),
            site: "plasma".into(),
            duration: "30".into(),
            ..TciPanel::default()
        }
    }

    /// The refusal of `f`, if any.
    pub fn error(&self, f: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(k, _)| k == f)
            .map(|(_, m)| m.as_str())
    }

    /// Refusals that name no field of the form.
    pub fn other_errors(&self) -> Vec<String> {
        const FIELDS: [&str; 8] = [
            "model",
            "weight_kg",
            "age_years",
            "target_ng_ml",
            "site",
            "max_rate_mg_per_kg_min",
            "duration_min",
            "ke0_per_min",
        ];
        self.errors
            .iter()
            .filter(|(k, _)| !FIELDS.contains(&k.as_str()))
            .map(|(k, m)| format!("{k}: {m}"))
            .collect()
    }
}

fn models(s: &AppState) -> Vec<(String, String)> {
    match s.pk.as_ref() {
        Ok(l) => l
            .models
            .iter()
            .map(|m| (m.file.id.clone(), m.file.name.clone()))
            .collect(),
        Err(_) => vec![],
    }
}

#[derive(Template)]
#[template(path = "pk_tci.html")]
pub struct TciPage {
    nav: Option<Nav>,
    tci: TciPanel,
    advisory: &'static str,
}

fn num(v: f64) -> String {
    ketcare_core::units::trim_float((v * 1000.0).round() / 1000.0)
}

/// Reads the form into a request, collecting every field that is not a number.
fn request(panel: &TciPanel) -> Result<TciRequest, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let mut number = |name: &str, v: &str, required: bool| -> Option<f64> {
        if v.is_empty() {
            if required {
                errors.push((name.to_owned(), "required".to_owned()));
            }
            return None;
        }
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Some(x),
            _ => {
                errors.push((name.to_owned(), format!("`{v}` is not a number")));
                None
            }
        }
    };
    let weight = number("weight_kg", &panel.weight, true);
    let age = number("age_years", &panel.age, false);
    let target = number("target_ng_ml", &panel.target, true);
    let max_rate = number("max_rate_mg_per_kg_min", &panel.max_rate, false);
    let duration = number("duration_min", &panel.duration, true);
    let ke0 = number("ke0_per_min", &panel.ke0, false);
    let site = match panel.site.as_str() {
        "plasma" => Some(TciSite::Plasma),
        "effect_site" => Some(TciSite::EffectSite),
        other => {
            errors.push((
                "site".to_owned(),
                format!("`{other}`: plasma or effect_site"),
            ));
            None
        }
    };
    match (weight, target, duration, site) {
        (Some(weight_kg), Some(target_ng_ml), Some(duration_min), Some(site))
            if errors.is_empty() =>
        {
            Ok(TciRequest {
                model: panel.model.clone(),
                covariates: Covariates {
                    weight_kg,
                    age_years: age,
                },
                target_ng_ml,
                site,
                max_rate_mg_per_kg_min: max_rate,
                update_s: None,
                duration_min,
                ke0_per_min: ke0,
            })
        }
        _ => Err(errors),
    }
}

fn show(panel: &mut TciPanel, req: &TciRequest, r: &TciResult) {
    let kg = req.covariates.weight_kg;
    let mut rows: Vec<ScheduleRow> = Vec::new();
    let end = r.times_min.last().copied().unwrap_or(req.duration_min);
    let at_max = |rate: f64| (rate - r.max_rate_mg_per_min).abs() <= 1e-9 * r.max_rate_mg_per_min;
    for (i, step) in r.schedule.iter().enumerate() {
        let to = r.schedule.get(i + 1).map_or(end, |n| n.time_min);
        if to <= step.time_min {
            // A step at the end of the duration (the pump set to 0) lasts no time here.
            continue;
        }
        let shown = num(step.rate_mg_per_min);
        match rows.last_mut() {
            Some(last)
                if last.mg_per_min == shown && last.at_max == at_max(step.rate_mg_per_min) =>
            {
                last.to_min = num(to);
            }
            _ => rows.push(ScheduleRow {
                from_min: num(step.time_min),
                to_min: num(to),
                mg_per_min: shown,
                mg_per_kg_h: num(step.rate_mg_per_min / kg * 60.0),
                at_max: at_max(step.rate_mg_per_min),
            }),
        }
    }
    panel.rows = rows;
    let site = match req.site {
        TciSite::Plasma => "plasma",
        TciSite::EffectSite => "effect-site",
    };
    panel.chart = ketcare_app::charts::tci_svg(
        r,
        req.target_ng_ml,
        &format!(
            "Advisory TCI: predicted {site} concentration for a {} ng/mL target over {} min",
            num(req.target_ng_ml),
            num(req.duration_min)
        ),
    );
    panel.summary = vec![
        ("Total".into(), format!("{} mg", num(r.total_mg))),
        (
            "Maximum rate".into(),
            format!(
                "{} mg/min ({} mg/kg/h)",
                num(r.max_rate_mg_per_min),
                num(r.max_rate_mg_per_min / kg * 60.0)
            ),
        ),
        (
            "Held at the maximum".into(),
            format!("{} min", num(r.held_at_max_min)),
        ),
        (
            "Target reached".into(),
            r.target_reached_min
                .map_or("not within the duration".into(), |t| {
                    format!("at {} min", num(t))
                }),
        ),
    ];
    panel.warnings = r.warnings.clone();
    panel.assumptions = r
        .assumptions
        .iter()
        .map(|a| {
            let value = a
                .value
                .map_or(String::new(), |v| format!(" = {} {}", num(v), a.unit));
            let src = if a.source.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.source.join(", "))
            };
            format!("{}{value}{src}: {}", a.name, a.note)
        })
        .collect();
    panel.shown = true;
}

/// The TCI panel's form: the advisory schedule and its curve, or each refusal beside its field
/// (422).
pub async fn tci_page(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let mut panel = TciPanel {
        models: models(&s),
        model: field(&pairs, "model").to_owned(),
        weight: field(&pairs, "weight_kg").to_owned(),
        age: field(&pairs, "age_years").to_owned(),
        target: field(&pairs, "target_ng_ml").to_owned(),
        site: field(&pairs, "site").to_owned(),
        max_rate: field(&pairs, "max_rate_mg_per_kg_min").to_owned(),
        duration: field(&pairs, "duration_min").to_owned(),
        ke0: field(&pairs, "ke0_per_min").to_owned(),
        ..TciPanel::default()
    };
    let outcome = match request(&panel) {
        Err(e) => Err(e),
        Ok(req) => {
            let state = s.clone();
            let r2 = req.clone();
            let res = tokio::task::spawn_blocking(move || {
                let lib = ketcare_app::pk::library(&state.pk)?;
                ketcare_app::pk::tci(lib, &r2)
            })
            .await
            .map_err(|_| AppError::Internal)?;
            match res {
                Ok(r) => Ok((req, r)),
                Err(ketcare_app::Error::Invalid(f)) => Err(f
                    .0
                    .iter()
                    .map(|e| {
                        // The engine names the weight inside the covariates.
                        let k = e.field.trim_start_matches("covariates.").to_owned();
                        (k, e.message.clone())
                    })
                    .collect()),
                Err(e) => return Err(AppError::from(e).into()),
            }
        }
    };
    let status = match outcome {
        Ok((req, r)) => {
            show(&mut panel, &req, &r);
            StatusCode::OK
        }
        Err(errors) => {
            panel.errors = errors;
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    let mut resp = render_html(&TciPage {
        nav: Nav::of(&p),
        tci: panel,
        advisory: ketcare_pk::ADVISORY,
    });
    *resp.status_mut() = status;
    Ok(resp)
}
