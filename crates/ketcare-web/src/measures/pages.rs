//! Pages for measurement-based care: the patient's measures page, questionnaire entry, links,
//! the alerts dashboard, and the public, phone-friendly questionnaire at `/q/{token}`.

use super::{CRISIS_TEXT, Overview};
use crate::AppState;
use crate::auth::{MaybePrincipal, Principal, client_address};
use crate::clinical_pages::{field, form_pairs};
use crate::error::{AppError, PageError};
use crate::pages::PagePath;
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Extensions, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ketcare_core::{AlertId, PatientId, Permission};
use ketcare_measures::{Instrument, Score};
use ketcare_store::measures::{MeasureLink, NewResponse, SafetyAlert, TextVersion};
use serde::Deserialize;

fn opt_number<T: std::str::FromStr>(
    pairs: &[(String, String)],
    name: &str,
) -> Result<Option<T>, AppError> {
    match field(pairs, name) {
        "" => Ok(None),
        v => v
            .parse()
            .map(Some)
            .map_err(|_| AppError::invalid(name, format!("expected a number, got {v:?}"))),
    }
}

/// A refusal as one line for a page (each field and its message).
pub(crate) fn message(e: &AppError) -> String {
    match e {
        AppError::Invalid(f) => {
            f.0.iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        }
        other => other.to_string(),
    }
}

/// One item as a form shows it.
pub struct ItemView {
    pub name: String,
    pub n: u8,
    pub label: String,
    pub text: Option<String>,
    pub required: bool,
    /// (value, label, checked)
    pub options: Vec<(i32, String, bool)>,
    pub safety: bool,
    /// The text is the clinic's licensed wording (not shipped with ketcare).
    pub clinic_text: bool,
}

/// One instrument as a form shows it.
pub struct FormView {
    pub id: String,
    pub name: String,
    pub stem: Option<String>,
    pub notice: Option<String>,
    pub labels_only: bool,
    /// Version of the clinic's licensed wording shown, if the clinic supplied it.
    pub clinic_version: Option<i64>,
    pub items: Vec<ItemView>,
}

fn form_view(
    inst: &Instrument,
    values: &[(String, String)],
    settings: &ketcare_measures::SiteSettings,
    clinic: &[TextVersion],
) -> FormView {
    let labels_only = inst.wording == ketcare_measures::Wording::LabelsOnly;
    let supplied = clinic
        .iter()
        .find(|v| labels_only && v.instrument == inst.id);
    FormView {
        id: inst.id.clone(),
        name: inst.name.clone(),
        stem: inst.stem.clone(),
        notice: inst.notice.clone(),
        labels_only,
        clinic_version: supplied.map(|v| v.version),
        items: inst
            .items
            .iter()
            .map(|item| {
                let name = format!("{}.{}", inst.id, item.n);
                let chosen = field(values, &name).to_string();
                let (min, max) = inst.item_range(item, settings);
                let opts = inst.options_for(item);
                let options = if opts.is_empty() {
                    (min..=max.unwrap_or(min))
                        .map(|v| (v, v.to_string(), chosen == v.to_string()))
                        .collect()
                } else {
                    opts.iter()
                        .map(|o| (o.value, o.label.clone(), chosen == o.value.to_string()))
                        .collect()
                };
                let clinic = supplied.and_then(|v| {
                    v.items
                        .iter()
                        .find(|t| t.item == i64::from(item.n))
                        .map(|t| t.text.clone())
                });
                ItemView {
                    name,
                    n: item.n,
                    label: item.label.clone(),
                    clinic_text: clinic.is_some(),
                    text: clinic.or_else(|| item.text.clone()),
                    required: item.required,
                    options,
                    safety: item.safety.is_some(),
                }
            })
            .collect(),
    }
}

fn answers_of(inst: &Instrument, pairs: &[(String, String)]) -> Result<Vec<Option<i32>>, AppError> {
    inst.items
        .iter()
        .map(|item| {
            let name = format!("{}.{}", inst.id, item.n);
            opt_number::<i32>(pairs, &name)
        })
        .collect()
}

// ---- Public questionnaire -----------------------------------------------------------------

#[derive(Template)]
#[template(path = "measures_q.html")]
pub struct QuestionnairePage {
    nav: Option<Nav>,
    csrf: String,
    action: String,
    instruments: String,
    forms: Vec<FormView>,
    error: String,
    crisis: bool,
    crisis_text: &'static str,
    /// The site's crisis line as set (`measures.crisis_line`), "" when unset.
    crisis_line: String,
}

#[derive(Template)]
#[template(path = "measures_q_done.html")]
pub struct QuestionnaireDone {
    nav: Option<Nav>,
    title: String,
    message: String,
    crisis: bool,
    crisis_text: &'static str,
    /// The site's crisis line as set (`measures.crisis_line`), "" when unset.
    crisis_line: String,
    /// The link's own view (`/q/{token}/me`), "" when not offered.
    own_view: String,
}

fn link_error(e: AppError) -> Response {
    link_refused(e, "Questionnaire")
}

/// The patient-facing page for a link that cannot be used (unknown, expired, used).
pub(crate) fn link_refused(e: AppError, title: &str) -> Response {
    let (status, msg) = match &e {
        AppError::NotFound(_) => (
            StatusCode::NOT_FOUND,
            "This link is not valid. Please contact your care team.".to_string(),
        ),
        AppError::Conflict(m) => (
            StatusCode::GONE,
            format!(
                "{}. Please contact your care team if you need a new one.",
                m.trim_start_matches("link: ")
            ),
        ),
        other => (other.status(), message(other)),
    };
    link_message(status, title, msg)
}

/// A patient-facing page that only says `msg` (a refused or finished link).
pub(crate) fn link_message(status: StatusCode, title: &str, msg: String) -> Response {
    let mut r = render_html(&QuestionnaireDone {
        nav: None,
        title: title.into(),
        message: msg,
        crisis: false,
        crisis_text: CRISIS_TEXT,
        crisis_line: String::new(),
        own_view: String::new(),
    });
    *r.status_mut() = status;
    r
}

fn csrf_of(mp: &MaybePrincipal) -> String {
    mp.0.as_ref()
        .map(|p| p.csrf().to_string())
        .unwrap_or_default()
}

async fn questionnaire_page(
    s: &AppState,
    link: &MeasureLink,
    token: &str,
    csrf: String,
    values: &[(String, String)],
    error: String,
    crisis: bool,
) -> Result<QuestionnairePage, AppError> {
    let (settings, _) = crate::clinical::settings(s.store.as_ref()).await?;
    let clinic = super::clinic_texts(s.store.as_ref()).await?;
    let settings = &settings;
    let clinic = clinic.as_slice();
    let forms = link
        .instruments
        .iter()
        .filter_map(|id| super::catalogue()?.instrument(id))
        .map(|i| form_view(i, values, settings, clinic))
        .collect();
    Ok(QuestionnairePage {
        nav: None,
        csrf,
        action: super::link_path(token),
        instruments: link.instruments.join(","),
        forms,
        error,
        crisis,
        crisis_text: CRISIS_TEXT,
        crisis_line: crisis_line(settings),
    })
}

pub async fn questionnaire(
    State(s): State<AppState>,
    mp: MaybePrincipal,
    PagePath(token): PagePath<String>,
    ext: Extensions,
) -> Result<Response, PageError> {
    let hash = crate::password::token_hash(&token);
    let link = match s
        .store
        .open_link(&hash, (s.clock)(), &client_address(&ext))
        .await
    {
        Ok(l) => l,
        // A used link opens the patient's own view (it refuses the link once it has expired).
        Err(ketcare_store::StoreError::Conflict(m)) if m.contains("already been used") => {
            return Ok(Redirect::to(&format!("/q/{token}/me")).into_response());
        }
        Err(e) => return Ok(link_error(e.into())),
    };
    Ok(render_html(
        &questionnaire_page(&s, &link, &token, csrf_of(&mp), &[], String::new(), false).await?,
    ))
}

pub async fn submit_questionnaire(
    State(s): State<AppState>,
    mp: MaybePrincipal,
    PagePath(token): PagePath<String>,
    ext: Extensions,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let hash = crate::password::token_hash(&token);
    let (settings, _) = crate::clinical::settings(s.store.as_ref()).await?;
    // The questionnaires are the stored link's; the form's own list may only repeat them.
    let ids: Vec<String> = match s.store.link_instruments(&hash).await {
        Ok(ids) => ids,
        Err(e) => return Ok(link_error(e.into())),
    };
    if let Some(other) = field(&pairs, "instruments")
        .split(',')
        .map(str::trim)
        .find(|x| !x.is_empty() && !ids.iter().any(|i| i == x))
    {
        return Ok(link_error(AppError::invalid(
            "instruments",
            format!("{other} is not one of this link's questionnaires"),
        )));
    }
    let today = s.today();
    let mut rows: Vec<NewResponse> = Vec::new();
    let mut errors = Vec::new();
    let mut crisis = false;
    let mut flagged = Vec::new();
    for id in &ids {
        let Some(inst) = super::catalogue().and_then(|c| c.instrument(id)) else {
            return Ok(link_error(AppError::NotFound("link".into())));
        };
        let answers = match answers_of(inst, &pairs) {
            Ok(a) => a,
            Err(e) => {
                errors.push(message(&e));
                continue;
            }
        };
        let flags = ketcare_measures::safety_flags(inst, &answers);
        crisis |= !flags.is_empty();
        if !flags.is_empty() {
            flagged.push((id.clone(), super::alerts_of(&flags)));
        }
        match ketcare_measures::score(inst, &answers, &settings) {
            Ok(score) => rows.push(super::new_response(
                &score,
                today,
                &format!("link:{}:{id}", &hash[..24]),
            )?),
            Err(e) => {
                errors.push(e.to_string().trim_start_matches("answers: ").to_string());
            }
        }
    }
    let address = client_address(&ext);
    if !errors.is_empty() {
        // The form cannot be stored yet, but a positive suicide-risk answer alerts the team now.
        for (id, alerts) in &flagged {
            if let Err(e) = s
                .store
                .raise_link_alerts(&hash, (s.clock)(), &address, id, alerts)
                .await
            {
                return Ok(link_error(e.into()));
            }
        }
        // Re-show the form; the link must still be usable.
        let link = match s.store.open_link(&hash, (s.clock)(), &address).await {
            Ok(l) => l,
            Err(e) => return Ok(link_error(e.into())),
        };
        let mut r = render_html(
            &questionnaire_page(
                &s,
                &link,
                &token,
                csrf_of(&mp),
                &pairs,
                errors.join(" "),
                crisis,
            )
            .await?,
        );
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    match s
        .store
        .submit_link(&hash, (s.clock)(), &address, &rows)
        .await
    {
        Ok((_, stored, _)) => {
            let crisis = stored.iter().any(|r| {
                serde_json::from_str::<Score>(&r.result).is_ok_and(|s| !s.safety.is_empty())
            });
            Ok(render_html(&QuestionnaireDone {
                nav: None,
                title: "Thank you".into(),
                message: "Your answers have been sent to your care team.".into(),
                crisis,
                crisis_text: CRISIS_TEXT,
                crisis_line: site_crisis_line(&s).await,
                own_view: format!("/q/{token}/me"),
            }))
        }
        Err(e) => {
            let e: AppError = e.into();
            if let AppError::Invalid(_) = e {
                let mut r = render_html(&QuestionnaireDone {
                    nav: None,
                    title: "Questionnaire".into(),
                    message: message(&e),
                    crisis,
                    crisis_text: CRISIS_TEXT,
                    crisis_line: site_crisis_line(&s).await,
                    own_view: String::new(),
                });
                *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                return Ok(r);
            }
            Ok(link_error(e))
        }
    }
}

// ---- Alerts dashboard ---------------------------------------------------------------------

#[derive(Template)]
#[template(path = "measures_alerts.html")]
pub struct AlertsPage {
    nav: Option<Nav>,
    /// The alert state this page was drawn from (see `/api/v1/alerts/state`).
    stamp: String,
    alerts: Vec<AlertRow>,
    can_resolve: bool,
    error: String,
}

/// An open alert with what the clinician needs to act on it: who, how to reach them and their
/// guardians, and what has been done so far.
pub struct AlertRow {
    alert: SafetyAlert,
    name: String,
    mrn: String,
    phone: String,
    /// (name, relationship, phone) of each guardian of record.
    guardians: Vec<(String, String, String)>,
    /// (when, who, what) of each action recorded on the alert, oldest first.
    actions: Vec<(String, String, String)>,
}

/// A phone number as a `tel:` link target (digits and a leading +).
/// The site's crisis line (`measures.crisis_line`), "" when unset.
fn crisis_line(settings: &ketcare_clinical::SiteSettings) -> String {
    settings
        .text(ketcare_app::settings_registry::CRISIS_LINE)
        .unwrap_or_default()
        .to_owned()
}

pub(crate) async fn site_crisis_line(s: &AppState) -> String {
    match crate::clinical::settings(s.store.as_ref()).await {
        Ok((settings, _)) => crisis_line(&settings),
        Err(e) => {
            tracing::error!(error = %e, "reading the crisis line setting");
            String::new()
        }
    }
}

pub fn tel(phone: &str) -> String {
    phone
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect()
}

async fn alert_rows(
    s: &AppState,
    p: &Principal,
    alerts: Vec<SafetyAlert>,
) -> Result<Vec<AlertRow>, AppError> {
    let mut rows = Vec::new();
    for alert in alerts {
        let patient = s.store.get_patient(&p.actor, alert.patient_id).await?;
        let actions = s
            .store
            .alert_actions(&p.actor, alert.id)
            .await?
            .into_iter()
            .map(|a| {
                let what = if a.note.is_empty() {
                    a.action.replace('_', " ")
                } else {
                    format!("{}: {}", a.action.replace('_', " "), a.note)
                };
                (crate::fmt::when(&a.done_at), a.done_by, what)
            })
            .collect();
        rows.push(AlertRow {
            name: format!(
                "{}, {}",
                patient.record.family_name, patient.record.given_name
            ),
            mrn: patient.record.mrn.clone(),
            phone: patient.record.phone.clone(),
            guardians: patient
                .guardians
                .iter()
                .map(|g| {
                    (
                        g.record.name.clone(),
                        g.record.relationship.as_str().to_owned(),
                        g.record.phone.clone(),
                    )
                })
                .collect(),
            actions,
            alert,
        });
    }
    Ok(rows)
}

async fn alerts_page(
    s: &AppState,
    p: &Principal,
    error: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    let (open, latest) = s.store.alert_state(&p.actor).await?;
    let alerts = alert_rows(s, p, s.store.open_alerts(&p.actor).await?).await?;
    let mut r = render_html(&AlertsPage {
        nav: Nav::of(p),
        alerts,
        stamp: format!("{open}:{latest}"),
        can_resolve: p.user.role.allows(Permission::ResolveSafetyAlert),
        error,
    });
    *r.status_mut() = status;
    Ok(r)
}

pub async fn alerts(State(s): State<AppState>, p: Principal) -> Result<Response, PageError> {
    alerts_page(&s, &p, String::new(), StatusCode::OK).await
}

pub async fn resolve_alert(
    State(s): State<AppState>,
    p: Principal,
    PagePath(aid): PagePath<AlertId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    match s
        .store
        .resolve_alert(&p.actor, aid, field(&pairs, "follow_up"))
        .await
    {
        Ok(a) => {
            let back = match field(&pairs, "back") {
                "patient" => format!("/patients/{}/measures", a.patient_id),
                _ => "/alerts".to_string(),
            };
            Ok(Redirect::to(&back).into_response())
        }
        Err(e) => {
            let e: AppError = e.into();
            match e {
                AppError::Invalid(_) | AppError::Conflict(_) => {
                    alerts_page(&s, &p, message(&e), e.status()).await
                }
                other => Err(PageError(other)),
            }
        }
    }
}

pub async fn note_alert(
    State(s): State<AppState>,
    p: Principal,
    PagePath(aid): PagePath<AlertId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    match s
        .store
        .note_alert(&p.actor, aid, field(&pairs, "note"))
        .await
    {
        Ok(_) => Ok(Redirect::to("/alerts").into_response()),
        Err(e) => {
            let e: AppError = e.into();
            match e {
                AppError::Invalid(_) | AppError::Conflict(_) => {
                    alerts_page(&s, &p, message(&e), e.status()).await
                }
                other => Err(PageError(other)),
            }
        }
    }
}

// ---- Patient measures page ----------------------------------------------------------------

#[derive(Template)]
#[template(path = "measures_patient.html")]
pub struct PatientMeasuresPage {
    nav: Option<Nav>,
    patient_id: i64,
    patient_name: String,
    o: Overview,
    chart: String,
    mme_chart: String,
    can_record: bool,
    can_resolve: bool,
    /// (id, name) of every instrument, and of the self-report ones for links.
    instruments: Vec<(String, String)>,
    self_report: Vec<(String, String)>,
    opioid_drugs: Vec<(String, String)>,
    /// (id, "name (relationship)") of the patient's guardians of record.
    guardians: Vec<(i64, String)>,
    /// The opioid chart and change limited to this course (`?course=ID`).
    mme_course: Option<super::MmeOverCourse>,
    new_link: String,
    /// What became of the new link's message: queued (and to whom) or why none was.
    new_link_sent: String,
    /// The patient's messages (the outbox), to show each link's message state.
    messages: Vec<ketcare_store::outreach::OutboxMessage>,
    error: String,
    today: String,
    /// The patient header (name, MRN, age, weight, allergies, alerts, consent) and tabs.
    header: Option<crate::chart::PatientHeader>,
}

impl PatientMeasuresPage {
    /// The state of the message that carried link `link` (empty: none was sent).
    fn message_of(&self, link: &ketcare_core::LinkId) -> String {
        self.messages
            .iter()
            .find(|m| m.link_id == Some(*link))
            .map(|m| {
                let mut t = format!("{} {}", m.channel.as_str(), m.status.label());
                if m.status == ketcare_ops::outreach::MessageState::Queued && m.attempts > 0 {
                    t.push_str(&format!(
                        " (tried {}×, next try {})",
                        m.attempts,
                        self.when(&m.next_attempt_at)
                    ));
                }
                if let Some(e) = &m.last_error {
                    t.push_str(&format!(": {e}"));
                }
                t
            })
            .unwrap_or_default()
    }

    /// An epoch-seconds instant as UTC text.
    fn when(&self, secs: &i64) -> String {
        jiff::Timestamp::from_second(*secs)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    }
}

/// A link just made: its address and what became of its message.
#[derive(Default)]
struct NewLinkNote {
    url: String,
    sent: String,
}

async fn patient_page(
    s: &AppState,
    p: &Principal,
    id: i64,
    new_link: NewLinkNote,
    error: String,
    status: StatusCode,
    course: Option<i64>,
) -> Result<Response, PageError> {
    let patient = s.store.get_patient(&p.actor, PatientId::new(id)).await?;
    let o = super::overview_of(s, &p.actor, id).await?;
    let mme_course = course
        .map(|c| super::mme_over_course(&o, c, s.today()))
        .transpose()?;
    let series = super::series(&o.responses);
    let chart = ketcare_app::charts::trajectory_svg(
        &series,
        &o.markers,
        &o.courses,
        super::instrument_name,
    );
    let mme_chart = match &mme_course {
        Some(c) => ketcare_app::charts::mme_svg(&c.timeline, c.to),
        None => ketcare_app::charts::mme_svg(&o.mme_timeline, s.today()),
    };
    let cat = super::catalogue().ok_or(AppError::Internal)?;
    let messages =
        ketcare_app::outreach::messages(s.store.as_ref(), &p.actor, PatientId::new(id)).await?;
    let header = crate::chart::header(s, p, PatientId::new(id), "measures")
        .await
        .ok();
    let mut r = render_html(&PatientMeasuresPage {
        header,
        mme_course,
        nav: Nav::of(p),
        patient_id: id,
        patient_name: patient.record.full_name(),
        o,
        chart,
        mme_chart,
        can_record: p.user.role.allows(Permission::RecordMeasures),
        can_resolve: p.user.role.allows(Permission::ResolveSafetyAlert),
        instruments: cat
            .instruments
            .iter()
            .map(|i| (i.id.clone(), i.name.clone()))
            .collect(),
        self_report: cat
            .instruments
            .iter()
            .filter(|i| i.rater.is_self_report())
            .map(|i| (i.id.clone(), i.name.clone()))
            .collect(),
        opioid_drugs: cat
            .opioids
            .opioid
            .iter()
            .map(|o| (o.id.clone(), o.name.clone()))
            .collect(),
        guardians: patient
            .guardians
            .iter()
            .map(|g| {
                (
                    g.id.get(),
                    format!(
                        "{} ({})",
                        g.record.name,
                        g.record.relationship.as_str().replace('_', " ")
                    ),
                )
            })
            .collect(),
        new_link: new_link.url,
        new_link_sent: new_link.sent,
        messages,
        error,
        today: s.today().to_string(),
    });
    *r.status_mut() = status;
    Ok(r)
}

pub async fn patient_measures(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    Query(q): Query<super::CourseQuery>,
) -> Result<Response, PageError> {
    patient_page(
        &s,
        &p,
        id,
        NewLinkNote::default(),
        String::new(),
        StatusCode::OK,
        q.course,
    )
    .await
}

fn svg(body: String) -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], body).into_response()
}

pub async fn chart_svg(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    let o = super::overview_of(&s, &p.actor, id).await?;
    Ok(svg(ketcare_app::charts::trajectory_svg(
        &super::series(&o.responses),
        &o.markers,
        &o.courses,
        super::instrument_name,
    )))
}

pub async fn mme_svg(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    Query(q): Query<super::CourseQuery>,
) -> Result<Response, PageError> {
    let o = super::overview_of(&s, &p.actor, id).await?;
    Ok(svg(match q.course {
        Some(c) => {
            let w = super::mme_over_course(&o, c, s.today())?;
            ketcare_app::charts::mme_svg(&w.timeline, w.to)
        }
        None => ketcare_app::charts::mme_svg(&o.mme_timeline, s.today()),
    }))
}

/// Re-shows the patient page with the error of a failed form, or passes other errors on.
async fn or_page(
    s: &AppState,
    p: &Principal,
    id: i64,
    r: Result<Response, AppError>,
) -> Result<Response, PageError> {
    match r {
        Ok(resp) => Ok(resp),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            patient_page(
                s,
                p,
                id,
                NewLinkNote::default(),
                message(&e),
                e.status(),
                None,
            )
            .await
        }
        Err(e) => Err(PageError(e)),
    }
}

/// The link as the patient will open it: absolute when the request says which host it came to.
fn absolute(headers: &axum::http::HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    match host {
        Some(h) => format!("{scheme}://{h}{path}"),
        None => path.to_string(),
    }
}

pub async fn send_link(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let set: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "instrument")
        .map(|(_, v)| v.clone())
        .collect();
    let parsed = opt_number::<i64>(&pairs, "expires_in_hours")
        .and_then(|h| Ok((h, opt_number::<i64>(&pairs, "guardian_id")?)));
    let made = match parsed {
        Ok((h, g)) => ketcare_app::outreach::send_link(
            s.store.as_ref(),
            &p.actor,
            PatientId::new(id),
            &set,
            h,
            g.map(ketcare_core::GuardianId::new),
            s.now(),
            &ketcare_app::zones::organisation(s.store.as_ref()).await?,
        )
        .await
        .map_err(AppError::from),
        Err(e) => Err(e),
    };
    match made {
        Ok(sent) => {
            let note = match (&sent.message, &sent.not_sent) {
                (Some(m), _) => format!(
                    "A message with the link was queued by {} to {} ({}); its state is shown below.",
                    m.channel.as_str(),
                    m.recipient,
                    sent.link.sent_to
                ),
                (None, Some(why)) => format!("No message was sent: {why}."),
                (None, None) => String::new(),
            };
            patient_page(
                &s,
                &p,
                id,
                NewLinkNote {
                    url: absolute(&headers, &super::link_path(&sent.token)),
                    sent: note,
                },
                String::new(),
                StatusCode::CREATED,
                None,
            )
            .await
        }
        Err(e) => or_page(&s, &p, id, Err(e)).await,
    }
}

pub async fn add_opioid(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let r = async {
        let req = super::api::OpioidRequest {
            drug: field(&pairs, "drug").to_string(),
            dose: opt_number::<f64>(&pairs, "dose")?
                .ok_or_else(|| AppError::invalid("dose", "required"))?,
            unit: field(&pairs, "unit").to_string(),
            per_day: opt_number::<f64>(&pairs, "per_day")?,
            route: Some(field(&pairs, "route").to_string()),
            started_on: field(&pairs, "started_on").to_string(),
        };
        ketcare_app::measures::save_opioid(s.store.as_ref(), &p.actor, PatientId::new(id), &req)
            .await?;
        Ok(Redirect::to(&format!("/patients/{id}/measures")).into_response())
    }
    .await;
    or_page(&s, &p, id, r).await
}

pub async fn stop_opioid(
    State(s): State<AppState>,
    p: Principal,
    PagePath((id, oid)): PagePath<(i64, i64)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let r = async {
        let on = super::date_field("stopped_on", field(&pairs, "stopped_on"))?;
        s.store
            .stop_opioid(&p.actor, PatientId::new(id), oid, &on.to_string())
            .await?;
        Ok(Redirect::to(&format!("/patients/{id}/measures")).into_response())
    }
    .await;
    or_page(&s, &p, id, r).await
}

pub async fn add_course(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let r = async {
        let req = super::api::CourseRequest {
            label: field(&pairs, "label").to_string(),
            instrument: field(&pairs, "instrument").to_string(),
            started_on: field(&pairs, "started_on").to_string(),
            ended_on: Some(field(&pairs, "ended_on").to_string()),
            booster_score_at_least: opt_number(&pairs, "booster_score_at_least")?,
            booster_days: opt_number(&pairs, "booster_days")?,
        };
        ketcare_app::measures::save_course(s.store.as_ref(), &p.actor, PatientId::new(id), &req)
            .await?;
        Ok(Redirect::to(&format!("/patients/{id}/measures")).into_response())
    }
    .await;
    or_page(&s, &p, id, r).await
}

// ---- Staff entry of a questionnaire -------------------------------------------------------

#[derive(Template)]
#[template(path = "measures_enter.html")]
pub struct EnterPage {
    nav: Option<Nav>,
    patient_id: i64,
    patient_name: String,
    form: FormView,
    taken_on: String,
    submission_key: String,
    error: String,
}

#[derive(Deserialize)]
pub struct EnterQuery {
    #[serde(default)]
    instrument: String,
}

pub async fn enter_form(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    Query(q): Query<EnterQuery>,
) -> Result<Response, PageError> {
    let patient = s.store.get_patient(&p.actor, PatientId::new(id)).await?;
    let inst = super::catalogue()
        .and_then(|c| c.instrument(&q.instrument))
        .ok_or_else(|| {
            AppError::invalid(
                "instrument",
                format!("unknown instrument {:?}", q.instrument),
            )
        })?;
    let (settings, _) = crate::clinical::settings(s.store.as_ref()).await?;
    Ok(render_html(&EnterPage {
        nav: Nav::of(&p),
        patient_id: id,
        patient_name: patient.record.full_name(),
        form: form_view(
            inst,
            &[],
            &settings,
            &super::clinic_texts(s.store.as_ref()).await?,
        ),
        taken_on: s.today().to_string(),
        submission_key: crate::password::random_token(),
        error: String::new(),
    }))
}

pub async fn enter(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let instrument = field(&pairs, "instrument").to_string();
    let inst = super::catalogue()
        .and_then(|c| c.instrument(&instrument))
        .ok_or_else(|| {
            AppError::invalid("instrument", format!("unknown instrument {instrument:?}"))
        })?;
    let r = async {
        let answers = answers_of(inst, &pairs)?;
        let taken_on = super::date_field("taken_on", field(&pairs, "taken_on"))?;
        ketcare_app::measures::record(
            s.store.as_ref(),
            &p.actor,
            PatientId::new(id),
            &instrument,
            &answers,
            taken_on,
            field(&pairs, "submission_key"),
        )
        .await
        .map_err(AppError::from)
    }
    .await;
    match r {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/measures")).into_response()),
        Err(e @ AppError::Invalid(_)) => {
            let patient = s.store.get_patient(&p.actor, PatientId::new(id)).await?;
            let (settings, _) = crate::clinical::settings(s.store.as_ref()).await?;
            let mut r = render_html(&EnterPage {
                nav: Nav::of(&p),
                patient_id: id,
                patient_name: patient.record.full_name(),
                form: form_view(
                    inst,
                    &pairs,
                    &settings,
                    &super::clinic_texts(s.store.as_ref()).await?,
                ),
                taken_on: field(&pairs, "taken_on").to_string(),
                submission_key: field(&pairs, "submission_key").to_string(),
                error: message(&e),
            });
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(PageError(e)),
    }
}

// ---- The clinic's licensed item wording ------------------------------------------------------

#[derive(Template)]
#[template(path = "measures_texts.html")]
pub struct TextsPage {
    nav: Option<Nav>,
    /// Every version, newest first within each instrument.
    versions: Vec<TextVersion>,
    /// (id, name) of the instruments shipped as labels only.
    labels_only: Vec<(String, String)>,
    file: String,
    error: String,
    saved: String,
}

impl TextsPage {
    /// Whether this version is the one shown (the newest of its instrument).
    fn current(&self, v: &TextVersion) -> bool {
        !self
            .versions
            .iter()
            .any(|w| w.instrument == v.instrument && w.version > v.version)
    }
}

async fn texts_page(
    s: &AppState,
    p: &Principal,
    file: String,
    error: String,
    saved: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    let cat = super::catalogue().ok_or(AppError::Internal)?;
    let mut r = render_html(&TextsPage {
        nav: Nav::of(p),
        versions: s.store.item_text_versions(&p.actor).await?,
        labels_only: cat
            .instruments
            .iter()
            .filter(|i| i.wording == ketcare_measures::Wording::LabelsOnly)
            .map(|i| (i.id.clone(), i.name.clone()))
            .collect(),
        file,
        error,
        saved,
    });
    *r.status_mut() = status;
    Ok(r)
}

pub async fn texts(State(s): State<AppState>, p: Principal) -> Result<Response, PageError> {
    texts_page(
        &s,
        &p,
        String::new(),
        String::new(),
        String::new(),
        StatusCode::OK,
    )
    .await
}

pub async fn upload_texts(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let file = field(&pairs, "file").to_string();
    match ketcare_app::measures::upload_texts(s.store.as_ref(), &p.actor, &file)
        .await
        .map_err(AppError::from)
    {
        Ok(v) => {
            let saved = v
                .iter()
                .map(|v| {
                    format!(
                        "{} version {}",
                        super::instrument_name(&v.instrument),
                        v.version
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            texts_page(
                &s,
                &p,
                String::new(),
                String::new(),
                saved,
                StatusCode::CREATED,
            )
            .await
        }
        Err(e @ AppError::Invalid(_)) => {
            texts_page(
                &s,
                &p,
                file,
                message(&e),
                String::new(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(PageError(e)),
    }
}

/// The small script that refreshes a page's open-alert list (`#live-alerts`) without a reload.
pub async fn alerts_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/alerts-live.js"),
    )
        .into_response()
}

#[cfg(test)]
mod tel_tests {
    #[test]
    fn a_phone_number_becomes_a_tel_target() {
        assert_eq!(super::tel("+1 555 0100"), "+15550100");
        assert_eq!(super::tel("(020) 7946-0958"), "02079460958");
    }
}
