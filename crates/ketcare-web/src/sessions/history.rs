//! The predicted curve of what a session gave, on the web: `GET /api/v1/sessions/{sid}/predicted`
//! and the page `/sessions/{sid}/predicted`, each one call into
//! [`ketcare_app::sessions::history::predicted`].

use crate::AppState;
use crate::api::{ApiPath, ApiQuery};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody, PageError};
use crate::pages::PagePath;
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::Response;
use ketcare_core::SessionId;

pub use ketcare_app::sessions::history::{
    DoseHistory, Predicted, PredictedQuery, SessionMarker, dose_history,
};

/// Builds the prediction (patient weight and age from the record: reads are audited).
pub async fn predicted(
    s: &AppState,
    p: &Principal,
    sid: SessionId,
    q: &PredictedQuery,
) -> Result<Predicted, AppError> {
    Ok(ketcare_app::sessions::history::predicted(
        s.store.as_ref(),
        &s.library(),
        s.pk.clone(),
        &p.actor,
        sid,
        q,
        s.today(),
    )
    .await?)
}

/// The predicted plasma concentration of the doses and IV rate steps the session actually gave
/// (its administrations with the verified order's concentration or device strength), for this
/// patient's weight and age. Advisory; nothing is stored.
#[utoipa::path(get, path = "/api/v1/sessions/{sid}/predicted", params(("sid" = i64, Path), ("model" = Option<String>, Query, description = "PK model id (default: domino for ketamine, perez_ruixo_2021 for esketamine)")), responses((status = 200, description = "dose history (regimen from the first administration, assumptions) and the predicted curve", body = Predicted), (status = 409, description = "nothing given yet", body = ErrorBody), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn predicted_api(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(sid): ApiPath<SessionId>,
    ApiQuery(q): ApiQuery<PredictedQuery>,
) -> Result<Json<Predicted>, AppError> {
    Ok(Json(predicted(&s, &p, sid, &q).await?))
}

#[derive(Template)]
#[template(path = "sessions_predicted.html")]
pub struct PredictedPage {
    pub nav: Option<Nav>,
    pub id: SessionId,
    pub model: String,
    pub models: Vec<(String, String)>,
    pub summary: String,
    pub events: Vec<String>,
    pub assumptions: Vec<String>,
    pub warnings: Vec<String>,
    pub key: Vec<(String, String)>,
    pub chart: String,
    pub advisory: &'static str,
}

fn f(v: f64) -> String {
    ketcare_core::units::trim_float((v * 100.0).round() / 100.0)
}

/// The session's "Predicted concentration" page.
pub async fn predicted_page(
    State(s): State<AppState>,
    p: Principal,
    PagePath(sid): PagePath<SessionId>,
    Query(q): Query<PredictedQuery>,
) -> Result<Response, PageError> {
    let pr = predicted(&s, &p, sid, &q).await?;
    let h = &pr.history;
    let mut events: Vec<String> = h
        .regimen
        .doses
        .iter()
        .map(|d| {
            format!(
                "+{} min: {} mg {}",
                f(d.time_min),
                f(d.amount_mg),
                d.route.as_str()
            )
        })
        .collect();
    events.extend(h.regimen.iv_rates.iter().map(|r| {
        format!(
            "+{} min: IV rate {} mg/min ({} mg/h)",
            f(r.time_min),
            f(r.rate_mg_per_min),
            f(r.rate_mg_per_min * 60.0)
        )
    }));
    let res = &pr.result;
    let mut assumptions = h.assumptions.clone();
    assumptions.extend(res.assumptions.iter().map(|a| {
        format!(
            "{}{}: {}",
            a.name,
            a.value
                .map(|v| format!(" = {} {}", f(v), a.unit))
                .unwrap_or_default(),
            a.note
        )
    }));
    let lib = crate::pk::library(&s)?;
    Ok(render_html(&PredictedPage {
        nav: Nav::of(&p),
        id: sid,
        model: res.model.id.clone(),
        models: lib
            .models
            .iter()
            .map(|m| (m.file.id.clone(), m.file.name.clone()))
            .collect(),
        summary: format!(
            "{} {}, {} mg given from {} · weight {} kg{}",
            h.drug,
            h.route,
            f(h.total_mg),
            h.started_at,
            f(pr.weight_kg),
            pr.age_years
                .map(|a| format!(", age {a:.1} y"))
                .unwrap_or_default()
        ),
        events,
        assumptions,
        warnings: res.warnings.clone(),
        key: vec![
            ("Cmax (ng/mL)".into(), f(res.key.cmax_ng_ml)),
            ("Tmax (min)".into(), f(res.key.tmax_min)),
            ("AUC (ng·min/mL)".into(), f(res.key.auc_ng_min_ml)),
        ],
        chart: ketcare_app::charts::pk_svg(std::slice::from_ref(res), None, 860, 420),
        advisory: ketcare_pk::ADVISORY,
    }))
}

// ---- The session timeline --------------------------------------------------------------------

pub use ketcare_app::sessions::Timeline;

/// Builds the session timeline at the server's now (one call into
/// [`ketcare_app::sessions::timeline`], for the API, the session page and the printable record).
pub async fn timeline(
    s: &AppState,
    p: &Principal,
    sid: SessionId,
    q: &PredictedQuery,
) -> Result<Timeline, AppError> {
    let now = super::service::now(s)?;
    Ok(ketcare_app::sessions::timeline(
        s.store.as_ref(),
        &s.library(),
        s.pk.clone(),
        &p.actor,
        sid,
        q,
        s.today(),
        now,
    )
    .await?)
}

/// The session timeline: one axis (minutes from check-in) with the predicted plasma
/// concentration of what was given (the same prediction as `/predicted`; its other outputs, a
/// metabolite where the model has one), while dosing is open the projections "as ordered" and
/// "if stopped now", the vitals (monitor and manual), MOAA/S and CADSS scores, administrations
/// and alarms. The curves are a model prediction, advisory; nothing is stored.
#[utoipa::path(get, path = "/api/v1/sessions/{sid}/timeline", params(("sid" = i64, Path), ("model" = Option<String>, Query, description = "PK model id (default: as /predicted)")), responses((status = 200, description = "the timeline: origin, end, concentration (given, band, as_ordered, if_stopped_now) or concentration_note, vitals, scores, administrations, alarms", body = Timeline), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn timeline_api(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(sid): ApiPath<SessionId>,
    ApiQuery(q): ApiQuery<PredictedQuery>,
) -> Result<Json<Timeline>, AppError> {
    Ok(Json(timeline(&s, &p, sid, &q).await?))
}

/// The timeline's SVG and the lines under it (the page's `#timeline` section shows these).
pub struct TimelineView {
    pub svg: String,
    pub advisory: &'static str,
    pub notes: Vec<String>,
    /// Whether the session is open (the page then refreshes the chart).
    pub live: bool,
}

/// The view of the timeline for the pages (an error becomes a note, the page still renders).
pub async fn timeline_view(s: &AppState, p: &Principal, sid: SessionId) -> TimelineView {
    view_of(timeline(s, p, sid, &PredictedQuery::default()).await)
}

/// The page's view of a timeline, or of why there is none.
fn view_of(t: Result<Timeline, AppError>) -> TimelineView {
    match t {
        Ok(t) => {
            let mut notes = Vec::new();
            if let Some(n) = &t.concentration_note {
                notes.push(format!("No concentration curve: {n}"));
            }
            if let Some(c) = &t.concentration {
                notes.push(format!(
                    "{} {} · model {} · weight {} kg{}",
                    c.drug,
                    c.route,
                    c.model_name,
                    f(c.weight_kg),
                    c.age_years
                        .map(|a| format!(", age {a:.1} y"))
                        .unwrap_or_default()
                ));
                if c.band.is_none() {
                    notes.push("Typical patient for these covariates; the prediction has no population band.".into());
                }
                if let Some(pr) = &c.as_ordered {
                    notes.push(format!("As ordered: {}.", pr.assumes));
                }
                if let Some(pr) = &c.if_stopped_now {
                    notes.push(format!("If stopped now: {}.", pr.assumes));
                }
                notes.extend(c.warnings.iter().cloned());
            }
            TimelineView {
                svg: ketcare_app::charts::timeline_svg(&t, &ketcare_app::zones::here(), 860, 620),
                advisory: t.advisory,
                notes,
                live: t.end_is == "now",
            }
        }
        Err(e) => TimelineView {
            svg: String::new(),
            advisory: ketcare_pk::ADVISORY,
            notes: vec![format!("The timeline is unavailable: {e}")],
            live: false,
        },
    }
}

/// `GET /sessions/{sid}/timeline`: the timeline section's inner HTML, which the session page's
/// script fetches again when the session changes (and every 15 s while it is open).
pub async fn timeline_fragment(
    State(s): State<AppState>,
    p: Principal,
    PagePath(sid): PagePath<SessionId>,
) -> Result<Response, PageError> {
    let t = timeline(&s, &p, sid, &PredictedQuery::default()).await;
    // A session the user may not see (another site's, or none) is not found, not a note.
    if let Err(e @ (AppError::NotFound(_) | AppError::Forbidden(_))) = t {
        return Err(e.into());
    }
    Ok(render_html(&TimelineFragment { tl: view_of(t) }))
}

#[derive(Template)]
#[template(path = "sessions_timeline.html")]
pub struct TimelineFragment {
    pub tl: TimelineView,
}

/// The session page's script: re-fetches the timeline when the live channel reports a change to
/// this session, and every 15 s while it is open (the page works without it).
pub async fn timeline_script() -> Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/timeline.js"),
    )
        .into_response()
}
