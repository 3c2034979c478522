//! Pages: the care plan of a patient (staff), and the patient's own view through their link.

use crate::AppState;
use crate::auth::{MaybePrincipal, Principal, client_address};
use crate::chart::PatientHeader;
use crate::clinical_pages::{field, form_pairs};
use crate::error::{AppError, PageError};
use crate::measures::pages::message;
use crate::pages::{Nav, PagePath, render_html, render_with};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Extensions, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ketcare_app::care_plan::{ItemView, OwnView, PlanView};
use ketcare_core::{PatientId, Permission, PlanItemId};
use ketcare_measures::care_plan::{
    AdjunctCategory, Effort, GoalCategory, ItemStatus, PlanItemInput, ProgressInput, TargetState,
};

/// Words for a symptom target's state (the staff page and the patient's view).
pub fn target_text(i: &ItemView) -> String {
    let (Some(t), Some(target), Some(name)) =
        (&i.target, i.item.target_at_most, &i.instrument_name)
    else {
        return String::new();
    };
    match t {
        TargetState::NoScore => format!("target {name} {target} or less; no score yet"),
        TargetState::Met { score, on } => {
            format!("target {name} {target} or less: met ({score} on {on})")
        }
        TargetState::NotYet { score, on } => {
            format!("target {name} {target} or less: not yet ({score} on {on})")
        }
    }
}

fn category_label(i: &ItemView) -> &'static str {
    GoalCategory::parse(&i.item.category)
        .map(GoalCategory::label)
        .or_else(|| AdjunctCategory::parse(&i.item.category).map(AdjunctCategory::label))
        .unwrap_or("other")
}

#[derive(Template)]
#[template(path = "care_plan.html")]
pub struct CarePlanPage {
    nav: Option<Nav>,
    header: Option<PatientHeader>,
    patient_id: i64,
    plan: PlanView,
    can_write: bool,
    goal_categories: Vec<(&'static str, &'static str)>,
    adjunct_categories: Vec<(&'static str, &'static str)>,
    statuses: Vec<&'static str>,
    efforts: Vec<(&'static str, &'static str)>,
    /// Instruments with a total: (id, name).
    instruments: Vec<(String, String)>,
    form: Vec<(String, String)>,
    error: String,
}

impl CarePlanPage {
    fn value(&self, name: &str) -> &str {
        field(&self.form, name)
    }
    fn target(&self, i: &ItemView) -> String {
        target_text(i)
    }
    fn category(&self, i: &ItemView) -> &'static str {
        category_label(i)
    }
}

async fn plan_page(
    s: &AppState,
    p: &Principal,
    id: i64,
    form: Vec<(String, String)>,
    error: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    let plan =
        ketcare_app::care_plan::plan(s.store.as_ref(), &p.actor, PatientId::new(id), s.today())
            .await?;
    let header = crate::chart::header(s, p, PatientId::new(id), "care-plan")
        .await
        .ok();
    let instruments = ketcare_app::measures::catalogue()
        .map(|c| {
            c.instruments
                .iter()
                .filter(|i| {
                    !matches!(
                        i.scoring,
                        ketcare_measures::ScoringKind::AnyYes
                            | ketcare_measures::ScoringKind::ItemsOnly
                    )
                })
                .map(|i| (i.id.clone(), i.name.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(render_with(
        status,
        &CarePlanPage {
            nav: Nav::of(p),
            header,
            patient_id: id,
            plan,
            can_write: p.user.role.allows(Permission::RecordMeasures),
            goal_categories: GoalCategory::ALL
                .iter()
                .map(|c| (c.as_str(), c.label()))
                .collect(),
            adjunct_categories: AdjunctCategory::ALL
                .iter()
                .map(|c| (c.as_str(), c.label()))
                .collect(),
            statuses: ItemStatus::ALL.iter().map(|c| c.as_str()).collect(),
            efforts: Effort::ALL
                .iter()
                .map(|c| (c.as_str(), c.label()))
                .collect(),
            instruments,
            form,
            error,
        },
    ))
}

pub async fn care_plan(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    plan_page(&s, &p, id, Vec::new(), String::new(), StatusCode::OK).await
}

fn opt(pairs: &[(String, String)], name: &str) -> Option<String> {
    Some(field(pairs, name).trim().to_owned()).filter(|v| !v.is_empty())
}

fn item_input(pairs: &[(String, String)]) -> Result<PlanItemInput, AppError> {
    let item = field(pairs, "item").to_owned();
    // The form has one category list per kind; the kind chosen says which one counts.
    let category = if item == "adjunct" {
        field(pairs, "adjunct_category")
    } else {
        field(pairs, "goal_category")
    };
    let symptom = item == "goal" && category == "symptom";
    let target_at_most = match (symptom, opt(pairs, "target_at_most")) {
        (true, Some(v)) => Some(v.parse().map_err(|_| {
            AppError::invalid(
                "target_at_most",
                format!("expected a whole number, got {v:?}"),
            )
        })?),
        _ => None,
    };
    Ok(PlanItemInput {
        item,
        category: category.into(),
        description: field(pairs, "description").into(),
        instrument: if symptom {
            opt(pairs, "instrument")
        } else {
            None
        },
        target_at_most,
        owner: field(pairs, "owner").into(),
        review_on: opt(pairs, "review_on"),
        course_id: None,
    })
}

pub async fn add_item(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let r = async {
        let input = item_input(&pairs)?;
        let item = ketcare_app::care_plan::add_item(
            s.store.as_ref(),
            &p.actor,
            PatientId::new(id),
            &input,
        )
        .await?;
        Ok::<_, AppError>(
            Redirect::to(&format!("/patients/{id}/care-plan#item-{}", item.id)).into_response(),
        )
    }
    .await;
    match r {
        Ok(resp) => Ok(resp),
        Err(e @ AppError::Invalid(_)) => {
            plan_page(&s, &p, id, pairs, message(&e), e.status()).await
        }
        Err(e) => Err(PageError(e)),
    }
}

fn progress_input(pairs: &[(String, String)]) -> ProgressInput {
    ProgressInput {
        note: field(pairs, "note").into(),
        effort: opt(pairs, "effort"),
        status: opt(pairs, "status"),
        review_on: opt(pairs, "review_on"),
    }
}

pub async fn add_progress(
    State(s): State<AppState>,
    p: Principal,
    PagePath((id, iid)): PagePath<(i64, i64)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let r = ketcare_app::care_plan::add_progress(
        s.store.as_ref(),
        &p.actor,
        PatientId::new(id),
        PlanItemId::new(iid),
        &progress_input(&pairs),
    )
    .await
    .map_err(AppError::from);
    match r {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/care-plan#item-{iid}")).into_response()),
        Err(e @ AppError::Invalid(_)) => {
            plan_page(&s, &p, id, Vec::new(), message(&e), e.status()).await
        }
        Err(e) => Err(PageError(e)),
    }
}

pub async fn set_sharing(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let shares = match field(&pairs, "shares") {
        "yes" => true,
        "no" => false,
        other => {
            let e = AppError::invalid("shares", format!("expected yes or no, got {other:?}"));
            return plan_page(&s, &p, id, Vec::new(), message(&e), e.status()).await;
        }
    };
    ketcare_app::care_plan::set_sharing(s.store.as_ref(), &p.actor, PatientId::new(id), shares)
        .await
        .map_err(AppError::from)?;
    Ok(Redirect::to(&format!("/patients/{id}/care-plan#sharing")).into_response())
}

// ---- The patient's own view ---------------------------------------------------------------

#[derive(Template)]
#[template(path = "own_view.html")]
pub struct OwnViewPage {
    nav: Option<Nav>,
    token: String,
    v: OwnView,
    crisis_line: String,
    efforts: Vec<(&'static str, &'static str)>,
    csrf: String,
    error: String,
    saved: bool,
}

impl OwnViewPage {
    fn answerable_here(&self) -> bool {
        self.v.due.iter().any(|d| d.on_this_link)
    }
    fn target(&self, i: &ItemView) -> String {
        target_text(i)
    }
    fn category(&self, i: &ItemView) -> &'static str {
        category_label(i)
    }
    fn when(&self, a: &ketcare_app::care_plan::Appointment) -> String {
        format!(
            "{} from {} to {}",
            a.start.strftime("%A %-d %B %Y"),
            a.start.strftime("%H:%M"),
            a.end.strftime("%H:%M")
        )
    }
}

fn own_error(e: AppError) -> Response {
    crate::measures::pages::link_refused(e, "Your page")
}

async fn own_page(
    s: &AppState,
    mp: &MaybePrincipal,
    token: String,
    ext: &Extensions,
    error: String,
    saved: bool,
) -> Result<Response, PageError> {
    let hash = crate::password::token_hash(&token);
    let library = s.library();
    let now = s.now();
    let now_local = jiff::Timestamp::from_second(now)
        .map(|t| t.to_zoned(ketcare_app::zones::here()).datetime())
        .unwrap_or_default();
    let v = match ketcare_app::care_plan::own_view(
        s.store.as_ref(),
        &library,
        &hash,
        now,
        now_local,
        &client_address(ext),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return Ok(own_error(e.into())),
    };
    let crisis_line = crate::measures::pages::site_crisis_line(s).await;
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut r = render_html(&OwnViewPage {
        nav: None,
        token,
        v,
        crisis_line,
        efforts: Effort::ALL
            .iter()
            .map(|c| (c.as_str(), c.label()))
            .collect(),
        csrf: mp
            .0
            .as_ref()
            .map(|p| p.csrf().to_string())
            .unwrap_or_default(),
        error,
        saved,
    });
    *r.status_mut() = status;
    Ok(r)
}

#[derive(serde::Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn own_view(
    State(s): State<AppState>,
    mp: MaybePrincipal,
    PagePath(token): PagePath<String>,
    Query(q): Query<SavedQuery>,
    ext: Extensions,
) -> Result<Response, PageError> {
    let saved = q.saved.is_some();
    own_page(&s, &mp, token, &ext, String::new(), saved).await
}

pub async fn own_chart(
    State(s): State<AppState>,
    PagePath(token): PagePath<String>,
    ext: Extensions,
) -> Result<Response, PageError> {
    let hash = crate::password::token_hash(&token);
    let library = s.library();
    let now = s.now();
    let now_local = jiff::Timestamp::from_second(now)
        .map(|t| t.to_zoned(ketcare_app::zones::here()).datetime())
        .unwrap_or_default();
    let v = ketcare_app::care_plan::own_view(
        s.store.as_ref(),
        &library,
        &hash,
        now,
        now_local,
        &client_address(&ext),
    )
    .await
    .map_err(AppError::from)?;
    // Read on a phone: the narrow layout with larger letters.
    let (series, markers) = if v.shows_patient_answers {
        (&v.series[..], &v.markers[..])
    } else {
        (&[][..], &[][..])
    };
    let svg = ketcare_app::charts::measures::trajectory_svg_in(
        ketcare_app::charts::measures::PHONE,
        series,
        markers,
        &[],
        ketcare_app::measures::instrument_name,
    );
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

pub async fn own_progress(
    State(s): State<AppState>,
    mp: MaybePrincipal,
    PagePath((token, iid)): PagePath<(String, i64)>,
    ext: Extensions,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let hash = crate::password::token_hash(&token);
    let input = ProgressInput {
        note: field(&pairs, "note").into(),
        effort: opt(&pairs, "effort"),
        status: None,
        review_on: None,
    };
    match ketcare_app::care_plan::link_progress(
        s.store.as_ref(),
        &hash,
        s.now(),
        &client_address(&ext),
        PlanItemId::new(iid),
        &input,
    )
    .await
    .map_err(AppError::from)
    {
        Ok(_) => Ok(Redirect::to(&format!("/q/{token}/me?saved=1#item-{iid}")).into_response()),
        Err(e @ AppError::Invalid(_)) => own_page(&s, &mp, token, &ext, message(&e), false).await,
        Err(e) => Ok(own_error(e)),
    }
}
