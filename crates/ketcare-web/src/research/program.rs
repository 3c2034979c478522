//! The program dashboard: the research registry's outcome table, durability curve and predictors
//! over the clinic's whole program, for its medical director (`ProgramOutcomes`, the prescriber).
//! Identified — each patient is listed by name and MRN beside their outcome, linked to their
//! chart — and never the registry's study ids. Every read is audited (`program.read`).

use super::pages::{Choices, OutcomeText, durability_chart, query_string, shown_or_said};
use crate::AppState;
use crate::api::ApiQuery;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody, PageError};
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::Response;
use ketcare_app::registry::{CohortQuery, OutcomeTable, ProgramRow};
use serde::Serialize;

#[derive(Template)]
#[template(path = "program.html")]
pub struct ProgramPage {
    nav: Option<Nav>,
    q: CohortQuery,
    query: String,
    table: Option<OutcomeTable>,
    rows: Vec<ProgramRow>,
    error: String,
    instruments: Vec<(String, String)>,
    indications: Vec<String>,
    drugs: Vec<String>,
    routes: Vec<String>,
}

impl OutcomeText for ProgramPage {
    fn chart_base(&self) -> &'static str {
        "/program"
    }
}

impl ProgramPage {
    fn yes_no(&self, v: &Option<bool>) -> &'static str {
        match v {
            Some(true) => "yes",
            Some(false) => "no",
            None => "—",
        }
    }
    fn int(&self, v: &Option<i64>) -> String {
        v.map(|x| x.to_string()).unwrap_or_else(|| "—".into())
    }
}

pub async fn program(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<CohortQuery>,
) -> Result<Response, PageError> {
    let library = s.library();
    let (shown, error) = shown_or_said(
        ketcare_app::registry::program(s.store.as_ref(), &library, &p.actor, &q).await,
    )?;
    let (rows, table) = match shown {
        Some((rows, t)) => (rows, Some(t)),
        None => (Vec::new(), None),
    };
    let c = Choices::new();
    Ok(render_html(&ProgramPage {
        nav: Nav::of(&p),
        query: query_string(&q),
        q,
        table,
        rows,
        error,
        instruments: c.instruments,
        indications: c.indications,
        drugs: c.drugs,
        routes: c.routes,
    }))
}

pub async fn durability_svg(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<CohortQuery>,
) -> Result<Response, PageError> {
    let library = s.library();
    let (_, t) = ketcare_app::registry::program(s.store.as_ref(), &library, &p.actor, &q)
        .await
        .map_err(AppError::from)?;
    Ok(durability_chart(&t))
}

/// The program dashboard's answer: the outcome table and each patient beside their outcome.
#[derive(Serialize)]
pub struct ProgramOutcomes {
    pub table: OutcomeTable,
    pub patients: Vec<ProgramRow>,
}

/// The program's outcome table over the clinic's own patients, identified (the medical
/// director's; no count suppressed, no study id). Audited `program.read` with the patient ids.
#[utoipa::path(get, path = "/api/v1/program/outcomes", params(CohortQuery), responses((status = 200, description = "the outcome table and the patients in it", body = Object), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn program_outcomes(
    State(s): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<CohortQuery>,
) -> Result<Json<ProgramOutcomes>, AppError> {
    let library = s.library();
    let (patients, table) =
        ketcare_app::registry::program(s.store.as_ref(), &library, &p.actor, &q).await?;
    Ok(Json(ProgramOutcomes { table, patients }))
}
