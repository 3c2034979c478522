//! Exposure beside response across the clinic's signed sessions: the page `/pk/exposure` and
//! `GET /api/v1/pk/exposure-response`, edges over [`ketcare_app::exposure::exposure_response`].
//! Descriptive of this clinic's sessions only, not a dosing recommendation.

use crate::AppState;
use crate::auth::Principal;
use crate::error::{AppError, PageError};
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use ketcare_app::exposure::{ExposureResponse, Filter, Fit, Group, exposure_response};
use ketcare_core::{AgeBand, Permission};

impl Nav {
    /// May read exposure across the clinic's sessions (the clinicians who run sessions).
    pub fn pk_exposure(&self) -> bool {
        ketcare_core::Role::parse(&self.role).is_some_and(|r| r.allows(Permission::RunSession))
    }
}

/// A query string as (name, value) pairs; one that does not decode is refused naming `query`.
pub(crate) fn query_pairs(q: &Option<String>) -> Result<Vec<(String, String)>, AppError> {
    match q.as_deref() {
        None | Some("") => Ok(vec![]),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| AppError::invalid("query", "not a valid query string")),
    }
}

async fn load(
    s: &AppState,
    p: &Principal,
    q: &Option<String>,
) -> Result<ExposureResponse, AppError> {
    let library = s.library();
    let filter = Filter::parse(&query_pairs(q)?, &library)?;
    Ok(exposure_response(
        s.store.as_ref(),
        &library,
        s.pk.clone(),
        &p.actor,
        &filter,
        s.today(),
    )
    .await?)
}

/// Exposure beside response across the clinic's signed sessions, by protocol and age band: per
/// session the predicted Cmax and AUC of what was given (the session page's prediction), the
/// peak CADSS, the lowest MOAA/S and the systolic rise over baseline; per group an ordinary
/// least-squares line of peak CADSS and of systolic rise on predicted Cmax with its 95%
/// confidence band (no line under 5 sessions). Descriptive of this clinic's sessions only, not a
/// dosing recommendation. Each session and patient read is audited, and the view as
/// `pk.exposure.read`.
#[utoipa::path(get, path = "/api/v1/pk/exposure-response", params(("protocol" = Option<String>, Query, description = "a protocol id of the library"), ("age_band" = Option<String>, Query, description = "infant, child, adolescent or adult (on the day of the session)")), responses((status = 200, description = "groups (protocol, age band) with their sessions and fits (cadss, systolic_rise: n, ols {intercept, slope, residual_se, r_squared, df, t_975, band} or note), excluded sessions with the reason, method, baseline_definition, descriptive", body = ExposureResponse), (status = 422, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn exposure_api(
    State(s): State<AppState>,
    p: Principal,
    RawQuery(q): RawQuery,
) -> Result<Json<ExposureResponse>, AppError> {
    Ok(Json(load(&s, &p, &q).await?))
}

/// One chart of a group.
pub struct ChartView {
    pub id: String,
    pub svg: String,
    pub caption: String,
}

/// One session's row of a group's table.
pub struct RowView {
    pub session_id: String,
    pub date: String,
    pub given: String,
    pub cmax: String,
    pub auc: String,
    pub cadss: String,
    pub moaas: String,
    pub baseline: String,
    pub max_systolic: String,
    pub rise: String,
}

pub struct GroupView {
    pub id: String,
    pub title: String,
    pub charts: Vec<ChartView>,
    pub rows: Vec<RowView>,
}

#[derive(Template)]
#[template(path = "pk_exposure.html")]
pub struct ExposurePage {
    nav: Option<Nav>,
    protocols: Vec<(String, String)>,
    bands: Vec<&'static str>,
    protocol: String,
    age_band: String,
    groups: Vec<GroupView>,
    excluded: Vec<String>,
    method: &'static str,
    baseline_definition: &'static str,
    descriptive: &'static str,
    advisory: &'static str,
}

fn num(v: f64) -> String {
    ketcare_core::units::trim_float((v * 10.0).round() / 10.0)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("—".into(), |v| v.to_string())
}

fn caption(f: &Fit, what: &str, unit: &str) -> String {
    match (&f.ols, &f.note) {
        (Some(o), _) => format!(
            "{what} = {} {} {} × Cmax ({unit}; n = {}, residual SE {}{}). Shaded: 95% confidence band of the mean (t = {} on {} df). Descriptive, not a dosing recommendation.",
            num(o.intercept),
            if o.slope < 0.0 { "−" } else { "+" },
            ketcare_core::units::trim_float((o.slope.abs() * 1000.0).round() / 1000.0),
            o.n,
            num(o.residual_se),
            o.r_squared
                .map_or(String::new(), |r| format!(", R² {:.2}", r)),
            ketcare_core::units::trim_float((o.t_975 * 1000.0).round() / 1000.0),
            o.df
        ),
        (None, Some(n)) => format!("{what}: {n}."),
        (None, None) => String::new(),
    }
}

fn group_view(g: &Group) -> GroupView {
    let id = format!("{}-{}", g.protocol_id, g.age_band);
    let title = format!(
        "{} — {} ({} session{})",
        g.protocol_title,
        g.age_band,
        g.sessions.len(),
        if g.sessions.len() == 1 { "" } else { "s" }
    );
    let cadss = g.cadss_points();
    let rise = g.rise_points();
    let name = |what: &str, f: &Fit| {
        format!(
            "{what} against predicted Cmax, {} {}: {} session(s){}",
            g.protocol_title,
            g.age_band,
            f.n,
            if f.ols.is_some() {
                ", with the least-squares line and its 95% confidence band"
            } else {
                ", too few to fit a line"
            }
        )
    };
    let charts = vec![
        ChartView {
            id: format!("{id}-cadss"),
            svg: ketcare_app::charts::exposure_svg(
                &cadss,
                &g.cadss,
                "Peak CADSS",
                &name("Peak CADSS", &g.cadss),
            ),
            caption: caption(&g.cadss, "Peak CADSS", "points"),
        },
        ChartView {
            id: format!("{id}-systolic"),
            svg: ketcare_app::charts::exposure_svg(
                &rise,
                &g.systolic_rise,
                "Systolic rise (mmHg)",
                &name("Systolic rise over baseline", &g.systolic_rise),
            ),
            caption: caption(&g.systolic_rise, "Systolic rise", "mmHg"),
        },
    ];
    let rows = g
        .sessions
        .iter()
        .map(|s| RowView {
            session_id: s.session_id.to_string(),
            date: s.date.to_string(),
            given: format!(
                "{} mg {} {} ({})",
                num(s.total_mg),
                s.drug.replace('_', " "),
                s.route.replace('_', " ").replace("iv ", "IV "),
                s.model
            ),
            cmax: format!("{} at {} min", num(s.cmax_ng_ml), num(s.tmax_min)),
            auc: format!(
                "{} (0–{} min)",
                num(s.auc_ng_min_ml / 60.0),
                num(s.auc_horizon_min)
            ),
            cadss: opt(s.peak_cadss),
            moaas: opt(s.lowest_moaas),
            baseline: s.baseline_systolic.map_or("—".into(), |b| {
                format!(
                    "{}{}",
                    num(b),
                    match s.baseline_from {
                        Some("checklist") => "",
                        _ => " (before dosing)",
                    }
                )
            }),
            max_systolic: s.max_systolic.map_or("—".into(), num),
            rise: s.systolic_rise.map_or("—".into(), num),
        })
        .collect();
    GroupView {
        id,
        title,
        charts,
        rows,
    }
}

/// The page: filters, and per group the two scatters and the table.
pub async fn exposure_page(
    State(s): State<AppState>,
    p: Principal,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let r = load(&s, &p, &q).await?;
    let library = s.library();
    Ok(render_html(&ExposurePage {
        nav: Nav::of(&p),
        protocols: library
            .list()
            .into_iter()
            .map(|x| (x.id, x.title))
            .collect(),
        bands: AgeBand::ALL.iter().map(|b| b.as_str()).collect(),
        protocol: r.protocol.clone().unwrap_or_default(),
        age_band: r.age_band.clone().unwrap_or_default(),
        groups: r.groups.iter().map(group_view).collect(),
        excluded: r
            .excluded
            .iter()
            .map(|e| format!("Session {}: {}", e.session_id, e.reason))
            .collect(),
        method: r.method,
        baseline_definition: r.baseline_definition,
        descriptive: r.descriptive,
        advisory: r.advisory,
    }))
}
