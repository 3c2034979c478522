//! The researcher's pages: build a cohort, read its outcome table, durability curve and
//! predictors, download the CSV export and its data dictionary.

use crate::AppState;
use crate::auth::Principal;
use crate::error::{AppError, PageError};
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ketcare_app::registry::{CohortQuery, OutcomeTable, Rate};
use ketcare_research::deid::Cell;

#[derive(Template)]
#[template(path = "research.html")]
pub struct ResearchPage {
    nav: Option<Nav>,
    q: CohortQuery,
    /// The query string the export and chart links carry.
    query: String,
    table: Option<OutcomeTable>,
    error: String,
    instruments: Vec<(String, String)>,
    indications: Vec<String>,
    drugs: Vec<String>,
    routes: Vec<String>,
    /// (name, version, link to the page with its query)
    saved: Vec<(String, i64, String)>,
}

/// Every route a protocol may have.
const ROUTES: &[ketcare_clinical::protocol::Route] = {
    use ketcare_clinical::protocol::Route::*;
    &[
        IvInfusion,
        IvBolus,
        Im,
        Intranasal,
        Oral,
        Sublingual,
        Subcutaneous,
    ]
};

/// The words a protocol field is stored and filtered by (its serde names).
fn words<T: serde::Serialize>(all: &[T]) -> Vec<String> {
    all.iter()
        .filter_map(|v| serde_json::to_value(v).ok()?.as_str().map(str::to_owned))
        .collect()
}

impl ResearchPage {
    /// The query's fields as the save form carries them.
    fn pairs(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(&self.query).unwrap_or_default()
    }
}

/// How a page with an outcome table (`research_outcomes.html`) writes its figures.
pub trait OutcomeText {
    /// Where the durability chart is served (`/research` or `/program`).
    fn chart_base(&self) -> &'static str;
    fn v<'a>(&self, o: &'a Option<String>) -> &'a str {
        o.as_deref().unwrap_or("")
    }
    fn covariate_names(&self) -> String {
        ketcare_app::registry::COVARIATES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn cell(&self, c: &Cell) -> String {
        match c {
            Cell::Count(n) => n.to_string(),
            Cell::Suppressed { below } => format!("< {below}"),
        }
    }
    fn rate(&self, r: &Option<Rate>) -> String {
        match r {
            None => "not evaluated".into(),
            Some(r) => match &r.estimate {
                Some(p) => format!(
                    "{} of {} — {:.1} % (95 % CI {:.1}–{:.1} %)",
                    p.k,
                    p.n,
                    p.p * 100.0,
                    p.lower * 100.0,
                    p.upper * 100.0
                ),
                None => format!("{} of {} (suppressed)", self.cell(&r.k), self.cell(&r.n)),
            },
        }
    }
    /// The response-by-predicted-exposure tables present: (what, the tertiles).
    fn exposure_tables<'a>(
        &self,
        t: &'a OutcomeTable,
    ) -> Vec<(&'static str, &'a ketcare_app::registry::ExposureTertiles)> {
        [
            ("Cmax", t.response_by_cmax_tertile.as_ref()),
            ("AUC", t.response_by_auc_tertile.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, x)| Some((name, x?)))
        .collect()
    }
    fn models(
        &self,
        t: &OutcomeTable,
    ) -> Vec<(&'static str, Option<ketcare_app::registry::Model>)> {
        vec![
            (
                "Response (logistic regression: odds ratios)",
                t.logistic.clone(),
            ),
            (
                "Time to relapse among responders (Cox regression: hazard ratios)",
                t.cox.clone(),
            ),
        ]
    }
    fn rate_of(&self, r: &Rate) -> String {
        self.rate(&Some(r.clone()))
    }
    fn num(&self, v: &Option<f64>) -> String {
        v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into())
    }
    fn quart(&self, v: &Option<[f64; 3]>) -> String {
        v.map(|q| format!("median {:.1} (IQR {:.1}–{:.1})", q[1], q[0], q[2]))
            .unwrap_or_else(|| "—".into())
    }
    fn opt_day(&self, v: &Option<f64>) -> String {
        v.map(|x| format!("{x:.0}"))
            .unwrap_or_else(|| "not reached".into())
    }
}

impl OutcomeText for ResearchPage {
    fn chart_base(&self) -> &'static str {
        "/research"
    }
}

/// What the cohort form offers.
pub(crate) struct Choices {
    pub instruments: Vec<(String, String)>,
    pub indications: Vec<String>,
    pub drugs: Vec<String>,
    pub routes: Vec<String>,
}

impl Choices {
    pub(crate) fn new() -> Self {
        Self {
            instruments: ketcare_app::measures::catalogue()
                .map(|c| {
                    c.instruments
                        .iter()
                        .filter(|i| {
                            i.response_fraction(&ketcare_measures::SiteSettings::default())
                                .is_some()
                        })
                        .map(|i| (i.id.clone(), i.name.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            indications: words(ketcare_clinical::protocol::Indication::ALL),
            drugs: words(ketcare_clinical::protocol::Drug::ALL),
            routes: words(ROUTES),
        }
    }
}

/// The Kaplan-Meier chart of a table's durability (empty when there is none to show).
pub(crate) fn durability_chart(t: &OutcomeTable) -> Response {
    let svg = t
        .durability
        .as_ref()
        .map(|km| {
            ketcare_app::charts::km_svg(
                km,
                "days since first response",
                "Durability of response: Kaplan-Meier estimate with its 95 % band",
            )
        })
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
}

/// A page's answer, or the refusal it shows in place of its table (a setting not made, a bad
/// field); any other error is the error page.
pub(crate) fn shown_or_said<T>(
    r: Result<T, ketcare_app::Error>,
) -> Result<(Option<T>, String), PageError> {
    match r {
        Ok(t) => Ok((Some(t), String::new())),
        Err(e) => match AppError::from(e) {
            e @ (AppError::Conflict(_) | AppError::Invalid(_)) => {
                Ok((None, crate::measures::pages::message(&e)))
            }
            other => Err(PageError(other)),
        },
    }
}

pub(crate) fn query_string(q: &CohortQuery) -> String {
    serde_urlencoded::to_string(q).unwrap_or_default()
}

pub async fn research(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<CohortQuery>,
) -> Result<Response, PageError> {
    let library = s.library();
    let (table, error) = shown_or_said(
        ketcare_app::registry::cohort(s.store.as_ref(), &library, &p.actor, &q)
            .await
            .map(|(_, t)| t),
    )?;
    let saved = s
        .store
        .cohorts(&p.actor)
        .await
        .map_err(|e| PageError(AppError::from(ketcare_app::Error::from(e))))?
        .into_iter()
        .map(|c| {
            let link = serde_json::from_str::<CohortQuery>(&c.query)
                .map(|q| format!("/research?{}", query_string(&q)))
                .unwrap_or_default();
            (c.name, c.version, link)
        })
        .collect();
    let c = Choices::new();
    Ok(render_html(&ResearchPage {
        nav: Nav::of(&p),
        query: query_string(&q),
        q,
        table,
        error,
        instruments: c.instruments,
        indications: c.indications,
        drugs: c.drugs,
        routes: c.routes,
        saved,
    }))
}

pub async fn durability_svg(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<CohortQuery>,
) -> Result<Response, PageError> {
    let library = s.library();
    let (_, t) = ketcare_app::registry::cohort(s.store.as_ref(), &library, &p.actor, &q)
        .await
        .map_err(AppError::from)?;
    Ok(durability_chart(&t))
}

pub async fn export_csv(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<CohortQuery>,
) -> Result<Response, PageError> {
    export(&s, &p, &q, false).await
}

pub async fn export_parquet(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<CohortQuery>,
) -> Result<Response, PageError> {
    export(&s, &p, &q, true).await
}

/// The cohort's export as a download: CSV or Parquet, from the same rows.
async fn export(
    s: &AppState,
    p: &Principal,
    q: &CohortQuery,
    parquet: bool,
) -> Result<Response, PageError> {
    let library = s.library();
    let (cohort, t) = ketcare_app::registry::cohort(s.store.as_ref(), &library, &p.actor, q)
        .await
        .map_err(AppError::from)?;
    let (kind, name, format) = if parquet {
        (
            "application/vnd.apache.parquet",
            "attachment; filename=\"registry.parquet\"",
            ketcare_app::registry::Format::Parquet,
        )
    } else {
        (
            "text/csv; charset=utf-8",
            "attachment; filename=\"registry.csv\"",
            ketcare_app::registry::Format::Csv,
        )
    };
    let body = ketcare_app::registry::export(cohort, t.small_cell, format)
        .await
        .map_err(AppError::from)?;
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response())
}

pub async fn dictionary_csv(_p: Principal) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"registry-dictionary.csv\"",
            ),
        ],
        ketcare_app::registry::dictionary_csv(),
    )
        .into_response()
}

pub async fn save_cohort(
    State(s): State<AppState>,
    p: Principal,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let pairs = crate::clinical_pages::form_pairs(&body)?;
    let name = crate::clinical_pages::field(&pairs, "name").to_owned();
    let query: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| k != "name" && k != "csrf_token")
        .collect();
    let q: CohortQuery =
        serde_urlencoded::from_str(&serde_urlencoded::to_string(&query).unwrap_or_default())
            .map_err(|e| AppError::invalid("query", e.to_string()))?;
    ketcare_app::registry::save_cohort(s.store.as_ref(), &p.actor, &name, &q)
        .await
        .map_err(AppError::from)?;
    Ok(
        axum::response::Redirect::to(&format!("/research?{}#saved", query_string(&q)))
            .into_response(),
    )
}
