//! Pages for the clinical core: the protocol library with every value's source, site settings,
//! eligibility screening, and dose orders with override and second-person verification.

use crate::AppState;
use crate::auth::Principal;
use crate::clinical::{self, SimpleDose, StoredOrder, StoredScreening, provenance_text};
use crate::error::{AppError, PageError};
use crate::pages::PagePath;
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ketcare_clinical::OrderState;
use ketcare_clinical::eligibility::{Condition, MedicationClass, PregnancyStatus};
use ketcare_clinical::protocol::{Drug, Indication};
use ketcare_core::patient::Patient;
use ketcare_core::{PatientId, Permission, RecordId};
use ketcare_store::{ProposalState, RecordKind};
use serde::Serialize;
use serde_json::{Value, json};

/// The serde name of an enum value (`trd`, `racemic_ketamine`, …).
fn code<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn codes<T: Serialize>(all: &[T]) -> Vec<String> {
    all.iter().map(code).collect()
}

pub(crate) fn form_pairs(body: &Bytes) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_bytes(body).map_err(|e| AppError::invalid("form", e.to_string()))
}

pub(crate) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .unwrap_or("")
}

pub(crate) fn number(pairs: &[(String, String)], name: &str) -> Result<Option<f64>, AppError> {
    match field(pairs, name) {
        "" => Ok(None),
        v => v
            .parse::<f64>()
            .map(Some)
            .map_err(|_| AppError::invalid(name, format!("`{v}` is not a number"))),
    }
}

/// One line of a "value and where it came from" table.
pub struct Row {
    pub label: String,
    pub value: String,
    pub source: String,
}

// ---- Protocol library -----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "protocols.html")]
pub struct ProtocolsPage {
    nav: Option<Nav>,
    settings_version: i64,
    rows: Vec<(String, String, String, String)>,
}

/// Whose protocol `site` makes it, in words: `None` for the organisation's (used at every
/// site), else the owning site's name and whether the reader works there.
async fn owner_words(
    s: &AppState,
    p: &Principal,
    site: Option<i64>,
) -> Result<Option<String>, AppError> {
    let Some(site) = site else {
        return Ok(None);
    };
    let name = s
        .store
        .organisation_sites()
        .await?
        .into_iter()
        .find(|(id, _)| *id == site)
        .map_or_else(|| format!("site {site}"), |(_, n)| n);
    Ok(Some(if p.sites.iter().any(|(id, _)| *id == site) {
        format!("{name}'s own protocol, used only there")
    } else {
        format!("{name}'s own protocol, used only there (not at your sites)")
    }))
}

pub async fn protocols(State(s): State<AppState>, p: Principal) -> Result<Response, PageError> {
    let (settings, version) = clinical::settings(s.store.as_ref()).await?;
    let mut rows = Vec::new();
    for summary in s.library().list() {
        let r = s
            .library()
            .readiness(&summary.id, &settings)
            .map_err(|e| AppError::NotFound(e.to_string()))?;
        let state = if r.ready {
            "ready".to_owned()
        } else {
            format!(
                "blocked until the site sets {}",
                r.missing
                    .iter()
                    .map(|m| m.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let state = match owner_words(&s, &p, summary.site).await? {
            Some(owner) => format!("{owner}; {state}"),
            None => state,
        };
        rows.push((
            summary.id,
            format!("v{}", summary.version),
            summary.title,
            state,
        ));
    }
    Ok(render_html(&ProtocolsPage {
        nav: Nav::of(&p),
        settings_version: version,
        rows,
    }))
}

#[derive(Template)]
#[template(path = "protocol.html")]
pub struct ProtocolPage {
    nav: Option<Nav>,
    id: String,
    title: String,
    version: u32,
    file: String,
    /// Whose protocol it is, when one site's own.
    owner: Option<String>,
    ready: bool,
    missing: Vec<String>,
    values: Vec<Row>,
    limits: Vec<Row>,
    citations: Vec<(String, String)>,
}

pub async fn protocol(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<String>,
) -> Result<Response, PageError> {
    let (settings, _) = clinical::settings(s.store.as_ref()).await?;
    let view = s
        .library()
        .show(&id, &settings)
        .map_err(|e| AppError::NotFound(e.to_string()))?;
    let values = view
        .protocol
        .cited_values()
        .into_iter()
        .map(|(path, c)| {
            let value = match (c.value, &c.site_setting) {
                (Some(v), _) => v.to_string(),
                (None, Some(key)) => match settings.value(key) {
                    Some(v) => format!("{v} — set by the site ({key})"),
                    None => format!("not set — the site must set {key}"),
                },
                (None, None) => "—".into(),
            };
            let mut source = format!("{} ({:?})", c.source.join(", "), c.status);
            if let Some(n) = &c.note {
                source.push_str(&format!(" — {n}"));
            }
            Row {
                label: path,
                value,
                source,
            }
        })
        .collect();
    let limits = view
        .effective_limits
        .iter()
        .map(|l| Row {
            label: format!(
                "{} ({:?}, {:?} {:?})",
                l.label, l.severity, l.bound, l.quantity
            ),
            value: l
                .value
                .map(|v| format!("{v} {}", l.quantity.unit()))
                .unwrap_or_else(|| "not set (inactive)".into()),
            source: l
                .provenance
                .as_ref()
                .map(provenance_text)
                .unwrap_or_else(|| format!("{:?}", l.status)),
        })
        .collect();
    Ok(render_html(&ProtocolPage {
        nav: Nav::of(&p),
        id: view.protocol.id.clone(),
        title: view.protocol.title.clone(),
        version: view.protocol.version,
        file: view.file.clone(),
        owner: owner_words(&s, &p, view.site).await?,
        ready: view.readiness.ready,
        missing: view
            .readiness
            .missing
            .iter()
            .map(|m| format!("{} (for {})", m.key, m.used_for))
            .collect(),
        values,
        limits,
        citations: view.citations.into_iter().collect(),
    }))
}

// ---- Site settings --------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    nav: Option<Nav>,
    version: i64,
    /// Every setting the code reads, grouped: (group title, rows).
    groups: Vec<(String, Vec<SettingRow>)>,
    /// Settings that refuse something while unset and are unset: (key, what waits).
    needed: Vec<(String, String)>,
    /// Stored values no part of ketcare reads (set before the registry refused unknown keys).
    unread: Vec<(String, String)>,
    /// The benzodiazepine factor family: (prefix, what the name is, values set).
    families: Vec<Family>,
    demo: bool,
    error: String,
    message: String,
    can_edit: bool,
    /// (protocol/limit, value, set by, approved by, reason)
    overrides: Vec<(String, String, String, String, String)>,
    /// (id, what, proposed by, reason, state, may approve)
    proposals: Vec<(i64, String, String, String, ProposalState, bool)>,
    /// File, whose (the organisation's, or a site's own), added by, added at.
    site_protocols: Vec<(String, String, String, String)>,
}

/// A key family on the settings page: (prefix, what the name is, (name, value) set).
type Family = (String, String, Vec<(String, String)>);

/// One row of the settings page.
pub struct SettingRow {
    pub(crate) key: String,
    pub(crate) purpose: String,
    /// "number", "yesno", "phone" or "text".
    pub(crate) kind: &'static str,
    pub(crate) unit: String,
    pub(crate) min: String,
    pub(crate) max: String,
    pub(crate) step: String,
    /// The allowed range in words, with where it comes from.
    pub(crate) range: String,
    pub(crate) when_unset: String,
    /// Something is refused while it is unset.
    pub(crate) blocks: bool,
    pub(crate) sources: String,
    pub(crate) used_by: String,
    /// The value as set ("" when unset), and in words for yes/no.
    pub(crate) value: String,
    pub(crate) value_words: String,
}

fn group_title(key: &str) -> &'static str {
    match key.split('.').next().unwrap_or_default() {
        "eligibility" => "Screening",
        "session" => "Sessions: gates, alarms and checks",
        "observation" | "fasting" => "Observation and fasting",
        "rounding" => "Dose rounding",
        "schedule" => "Scheduling",
        "billing" => "Billing",
        "measures" => "Questionnaires and outcomes",
        "patient" => "Patient chart",
        "site" => "This site",
        _ => "One protocol",
    }
}

pub(crate) fn setting_row(
    spec: &ketcare_app::settings_registry::SettingSpec,
    value: Option<f64>,
    text: Option<&str>,
) -> SettingRow {
    use ketcare_app::settings_registry::Input;
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let (kind, unit, min, max, step, range) = match &spec.input {
        Input::YesNo => (
            "yesno",
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            "yes or no".to_owned(),
        ),
        Input::SenderList => (
            "text",
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            spec.input.range_words(),
        ),
        Input::Text { .. } => (
            "text",
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            spec.input.range_words(),
        ),
        Input::Phone => (
            "phone",
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            spec.input.range_words(),
        ),
        Input::Number {
            unit,
            min,
            above,
            max,
            step,
            ..
        } => (
            "number",
            unit.clone(),
            num(min.or(*above)),
            num(*max),
            step.map(|x| x.to_string()).unwrap_or_else(|| "any".into()),
            spec.input.range_words(),
        ),
    };
    if let Some(t) = text {
        return SettingRow {
            key: spec.key.clone(),
            purpose: spec.purpose.clone(),
            kind,
            unit,
            min,
            max,
            step,
            range,
            when_unset: spec.when_unset.clone(),
            blocks: spec.blocks,
            sources: spec.sources.join(", "),
            used_by: spec.used_by.join("; "),
            value: t.to_owned(),
            value_words: t.to_owned(),
        };
    }
    let value_words = match (kind, value) {
        ("yesno", Some(1.0)) => "yes".to_owned(),
        ("yesno", Some(2.0)) => "no".to_owned(),
        (_, Some(v)) if unit.is_empty() => v.to_string(),
        (_, Some(v)) => format!("{v} {unit}"),
        (_, None) => String::new(),
    };
    SettingRow {
        key: spec.key.clone(),
        purpose: spec.purpose.clone(),
        kind,
        unit,
        min,
        max,
        step,
        range,
        when_unset: spec.when_unset.clone(),
        blocks: spec.blocks,
        sources: spec.sources.join(", "),
        used_by: spec.used_by.join("; "),
        value: num(value),
        value_words,
    }
}

async fn settings_page(
    s: &AppState,
    p: &Principal,
    error: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    settings_page_with(s, p, error, String::new(), status).await
}

async fn settings_page_with(
    s: &AppState,
    p: &Principal,
    error: String,
    message: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    let (settings, version) = clinical::settings(s.store.as_ref()).await?;
    let overrides = settings
        .limit_overrides
        .iter()
        .map(|o| {
            (
                format!("{}/{}", o.protocol_id, o.limit_id),
                o.value.to_string(),
                o.set_by.as_str().to_owned(),
                o.second_approver
                    .as_ref()
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_default(),
                o.reason.clone(),
            )
        })
        .collect();
    let proposals = s
        .store
        .settings_proposals()
        .await?
        .into_iter()
        .map(|x| {
            let what = serde_json::from_str::<ketcare_clinical::LimitOverride>(&x.body)
                .map(|o| format!("{}/{} → {}", o.protocol_id, o.limit_id, o.value))
                .unwrap_or_else(|_| x.body.clone());
            let may = x.state == ProposalState::Pending
                && x.proposed_by != p.actor.username
                && p.user.role.allows(Permission::SiteSettingsWrite);
            (x.id, what, x.proposed_by, x.reason, x.state, may)
        })
        .collect();
    let site_names = s.store.organisation_sites().await?;
    let site_protocols = s
        .store
        .site_protocols()
        .await?
        .into_iter()
        .map(|x| {
            let owner = x.site_id.map_or_else(
                || "the organisation's".to_owned(),
                |id| {
                    let name = site_names
                        .iter()
                        .find(|(s, _)| *s == id)
                        .map_or_else(|| format!("site {id}"), |(_, n)| n.clone());
                    format!("{name}'s own")
                },
            );
            (x.file_name, owner, x.added_by, x.added_at)
        })
        .collect();
    let registry = ketcare_app::settings_registry::load(s.store.as_ref(), &s.library()).await?;
    let mut groups: Vec<(String, Vec<SettingRow>)> = Vec::new();
    let mut needed = Vec::new();
    for spec in &registry.settings {
        let value = settings.value(&spec.key);
        let text = settings.text(&spec.key);
        if spec.blocks && value.is_none() && text.is_none() {
            needed.push((spec.key.clone(), spec.when_unset.clone()));
        }
        let title = group_title(&spec.key);
        let row = setting_row(spec, value, text);
        match groups.iter_mut().find(|(t, _)| t == title) {
            Some((_, rows)) => rows.push(row),
            None => groups.push((title.to_owned(), vec![row])),
        }
    }
    groups.sort_by_key(|(t, _)| t == "One protocol");
    let families = registry
        .families
        .iter()
        .map(|f| {
            let set = settings
                .values
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(&f.prefix)
                        .and_then(|n| n.strip_prefix('.'))
                        .map(|n| (n.to_owned(), v.to_string()))
                })
                .collect();
            (f.prefix.clone(), f.name_is.clone(), set)
        })
        .collect();
    let unread = settings
        .values
        .iter()
        .filter(|(k, _)| registry.get(k).is_none())
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let demo = settings.value(ketcare_app::settings_registry::DEMO_CLINIC) == Some(1.0);
    let mut r = render_html(&SettingsPage {
        nav: Nav::of(p),
        version,
        groups,
        needed,
        unread,
        families,
        demo,
        error,
        message,
        can_edit: p.user.role.allows(Permission::SiteSettingsWrite),
        overrides,
        proposals,
        site_protocols,
    });
    *r.status_mut() = status;
    Ok(r)
}

pub async fn settings(State(s): State<AppState>, p: Principal) -> Result<Response, PageError> {
    settings_page(&s, &p, String::new(), StatusCode::OK).await
}

pub async fn set_setting(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let key = field(&pairs, "key").to_owned();
    let reason = field(&pairs, "reason").to_owned();
    let (mut next, _) = clinical::settings(s.store.as_ref()).await?;
    // A text setting (a telephone number) is kept as typed; every other setting is a number.
    let is_text = ketcare_app::settings_registry::load(s.store.as_ref(), &s.library())
        .await?
        .get(&key)
        .is_some_and(|spec| spec.input.is_text());
    let value = if is_text {
        next.texts
            .insert(key.clone(), field(&pairs, "value").trim().to_owned());
        0.0
    } else {
        match number(&pairs, "value") {
            Ok(Some(v)) => v,
            Ok(None) => {
                return settings_page(
                    &s,
                    &p,
                    "value: required".into(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            Err(e) => {
                return settings_page(
                    &s,
                    &p,
                    e.body()
                        .fields
                        .first()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .unwrap_or_default(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        }
    };
    if key.is_empty() {
        return settings_page(
            &s,
            &p,
            "key: required".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    if !is_text {
        next.values.insert(key.clone(), value);
    }
    let now = ketcare_app::sessions::service::at(s.now())?;
    match clinical::save_values(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        &next,
        &reason,
        now,
    )
    .await
    .map_err(AppError::from)
    {
        Ok(_) => {
            s.refresh_demo().await?;
            Ok(Redirect::to(&format!("/settings#setting-{}", url_fragment(&key))).into_response())
        }
        Err(AppError::Invalid(f)) => {
            let msg =
                f.0.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
            settings_page(&s, &p, msg, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e.into()),
    }
}

/// A settings key as a URL fragment (keys are letters, digits, `_`, `-` and `.`).
pub(crate) fn url_fragment(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect()
}

pub fn invalid_text(e: &AppError) -> String {
    match e {
        AppError::Invalid(f) => {
            f.0.iter()
                .map(|x| format!("{}: {}", x.field, x.message))
                .collect::<Vec<_>>()
                .join("; ")
        }
        other => other.to_string(),
    }
}

pub async fn change_limit(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let value = match number(&pairs, "limit_value") {
        Ok(Some(v)) => v,
        Ok(None) => {
            return settings_page(
                &s,
                &p,
                "limit_value: required".into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(e) => {
            return settings_page(&s, &p, invalid_text(&e), StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    match clinical::change_limit(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        field(&pairs, "protocol_id"),
        field(&pairs, "limit_id"),
        value,
        field(&pairs, "limit_reason"),
    )
    .await
    .map_err(AppError::from)
    {
        Ok(clinical::LimitChange::Applied { version }) => {
            settings_page_with(
                &s,
                &p,
                String::new(),
                format!("Limit changed (settings version {version})."),
                StatusCode::OK,
            )
            .await
        }
        Ok(clinical::LimitChange::AwaitingSecondApprover {
            proposal_id,
            reason,
        }) => {
            settings_page_with(
                &s,
                &p,
                String::new(),
                format!("Proposal {proposal_id} waits for a second administrator: {reason}"),
                StatusCode::ACCEPTED,
            )
            .await
        }
        Err(e @ AppError::Invalid(_)) => {
            settings_page(&s, &p, invalid_text(&e), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn approve_proposal(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    match clinical::approve_limit(s.store.as_ref(), &s.library(), &p.actor, id)
        .await
        .map_err(AppError::from)
    {
        Ok(version) => {
            settings_page_with(
                &s,
                &p,
                String::new(),
                format!("Approved (settings version {version})."),
                StatusCode::OK,
            )
            .await
        }
        Err(e @ AppError::Invalid(_)) => {
            settings_page(&s, &p, invalid_text(&e), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn add_site_protocol(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let site = match field(&pairs, "site").trim() {
        "" => None,
        v => Some(
            v.parse::<i64>()
                .map_err(|_| AppError::invalid("site", format!("`{v}` is not a site")))?,
        ),
    };
    match clinical::add_site_protocol_in_force(
        &s,
        &p.actor,
        site,
        field(&pairs, "file_name"),
        field(&pairs, "toml"),
    )
    .await
    {
        Ok(()) => {
            settings_page_with(
                &s,
                &p,
                String::new(),
                "Site protocol added.".into(),
                StatusCode::OK,
            )
            .await
        }
        Err(e @ AppError::Invalid(_)) => {
            settings_page(&s, &p, invalid_text(&e), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e.into()),
    }
}

// ---- Eligibility screening ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "screen_form.html")]
pub struct ScreenFormPage {
    nav: Option<Nav>,
    patient: Patient,
    indications: Vec<String>,
    drugs: Vec<String>,
    conditions: Vec<String>,
    classes: Vec<String>,
    pregnancy: Vec<String>,
    error: String,
    /// The patient header (name, MRN, age, weight, allergies, alerts, consent) and tabs.
    header: Option<crate::chart::PatientHeader>,
}

fn screen_form(
    p: &Principal,
    patient: Patient,
    error: String,
    header: Option<crate::chart::PatientHeader>,
) -> ScreenFormPage {
    ScreenFormPage {
        header,
        nav: Nav::of(p),
        patient,
        indications: codes(Indication::ALL),
        drugs: codes(Drug::ALL),
        conditions: codes(Condition::ALL),
        classes: codes(MedicationClass::ALL),
        pregnancy: codes(PregnancyStatus::ALL),
        error,
    }
}

pub async fn screen_form_page(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    let patient = s.store.get_patient(&p.actor, PatientId::new(id)).await?;
    let header = crate::chart::header(&s, &p, patient.id, "screen")
        .await
        .ok();
    Ok(render_html(&screen_form(
        &p,
        patient,
        String::new(),
        header,
    )))
}

/// Decodes the screening form: the answers the record cannot know. Age and weight are not on the
/// form; the application layer takes them from the record.
fn screening_request(
    pairs: &[(String, String)],
) -> Result<ketcare_app::screenings::ScreeningRequest, AppError> {
    let mut medications = Vec::new();
    for i in 0..4 {
        let name = field(pairs, &format!("med{i}_name"));
        if name.is_empty() {
            continue;
        }
        let classes: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| *k == format!("med{i}_class"))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .collect();
        medications.push(json!({
            "name": name,
            "classes": classes,
            "daily_dose_mg": number(pairs, &format!("med{i}_dose"))?,
            "diazepam_equivalent_mg_per_day": number(pairs, &format!("med{i}_dze"))?,
        }));
    }
    let mut trials = Vec::new();
    for i in 0..3 {
        let drug = field(pairs, &format!("trial{i}_drug"));
        if drug.is_empty() {
            continue;
        }
        trials.push(json!({
            "drug": drug,
            "daily_dose_mg": number(pairs, &format!("trial{i}_dose"))?.ok_or_else(|| AppError::invalid(&format!("trial{i}_dose"), "required"))?,
            "weeks": number(pairs, &format!("trial{i}_weeks"))?.ok_or_else(|| AppError::invalid(&format!("trial{i}_weeks"), "required"))?,
            "in_current_episode": field(pairs, &format!("trial{i}_current")) == "on",
            "adequate_dose": field(pairs, &format!("trial{i}_adequate")) == "on",
            "failed": field(pairs, &format!("trial{i}_failed")) == "on",
        }));
    }
    let baseline = match (number(pairs, "systolic")?, number(pairs, "diastolic")?) {
        (Some(sys), Some(dia)) => json!({
            "systolic_mmhg": sys, "diastolic_mmhg": dia,
            "heart_rate_bpm": number(pairs, "heart_rate")?, "spo2_percent": number(pairs, "spo2")?,
        }),
        (None, None) => Value::Null,
        _ => {
            return Err(AppError::invalid(
                "diastolic",
                "give both systolic and diastolic pressure",
            ));
        }
    };
    // Pregnancy status is a required choice: the form starts unanswered.
    if field(pairs, "pregnancy").trim().is_empty() {
        return Err(AppError::invalid(
            "pregnancy",
            "choose the pregnancy status (pregnant, not pregnant, unknown or not applicable)",
        ));
    }
    let history: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "history")
        .map(|(_, v)| v.as_str())
        .collect();
    let input = json!({
        "indication": field(pairs, "indication"),
        "drug": field(pairs, "drug"),
        "history": history,
        "medications": medications,
        "pregnancy": field(pairs, "pregnancy"),
        "breastfeeding": field(pairs, "breastfeeding") == "on",
        "baseline": baseline,
        "antidepressant_trials": trials,
    });
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        AppError::invalid(&path, e.into_inner().to_string())
    })
}

pub async fn screen_patient(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pid = PatientId::new(id);
    let patient = s.store.get_patient(&p.actor, pid).await?;
    let pairs = form_pairs(&body)?;
    let header = crate::chart::header(&s, &p, pid, "screen").await.ok();
    let refuse = |patient: Patient, e: AppError| {
        let msg = match &e {
            AppError::Invalid(f) => {
                f.0.iter()
                    .map(|x| format!("{}: {}", x.field, x.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            other => other.to_string(),
        };
        let mut r = render_html(&screen_form(&p, patient, msg, header.clone()));
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        r
    };
    let request = match screening_request(&pairs) {
        Ok(r) => r,
        Err(e) => return Ok(refuse(patient, e)),
    };
    match ketcare_app::screenings::screen_patient(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        pid,
        request,
        s.now(),
    )
    .await
    .map_err(AppError::from)
    {
        Ok(stored) => Ok(Redirect::to(&format!("/screenings/{}", stored.id)).into_response()),
        Err(e @ AppError::Invalid(_)) => Ok(refuse(patient, e)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "screening.html")]
pub struct ScreeningPage {
    nav: Option<Nav>,
    id: RecordId,
    patient_id: i64,
    decision: String,
    indication: String,
    drug: String,
    ruleset_version: u32,
    created_by: String,
    created_at: String,
    /// (id, severity, reason, sources, overridden by)
    findings: Vec<(String, String, String, String, String)>,
    can_override: bool,
    /// The patient header (name, MRN, age, weight, allergies, alerts, consent) and tabs.
    header: Option<crate::chart::PatientHeader>,
}

fn screening_page(p: &Principal, s: &StoredScreening) -> ScreeningPage {
    let o = &s.doc.outcome;
    ScreeningPage {
        header: None,
        nav: Nav::of(p),
        id: s.id,
        patient_id: s.patient_id.get(),
        decision: code(&o.decision),
        indication: code(&o.indication),
        drug: code(&o.drug),
        ruleset_version: o.ruleset_version,
        created_by: s.created_by.clone(),
        created_at: s.created_at.clone(),
        findings: o
            .findings
            .iter()
            .map(|f| {
                let ov = o
                    .overrides
                    .iter()
                    .find(|x| x.finding_id == f.id)
                    .map(|x| {
                        format!(
                            "overridden by {} at {}: {}",
                            x.by.as_str(),
                            x.at.as_str(),
                            x.reason
                        )
                    })
                    .unwrap_or_default();
                (
                    f.id.clone(),
                    code(&f.severity),
                    f.reason.clone(),
                    format!("{} ({:?})", f.source.join(", "), f.status),
                    ov,
                )
            })
            .collect(),
        can_override: p.user.role.allows(Permission::OverrideClinical),
    }
}

pub async fn screening(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<RecordId>,
) -> Result<Response, PageError> {
    let r = s.store.record(&p.actor, RecordKind::Screening, id).await?;
    let mut page = screening_page(&p, &clinical::screening_of(&r)?);
    page.header = crate::chart::header(&s, &p, PatientId::new(page.patient_id), "")
        .await
        .ok();
    Ok(render_html(&page))
}

pub async fn override_finding(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<RecordId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    clinical::override_finding(
        s.store.as_ref(),
        &p.actor,
        id,
        field(&pairs, "finding_id"),
        field(&pairs, "reason"),
        s.now(),
    )
    .await?;
    Ok(Redirect::to(&format!("/screenings/{id}")).into_response())
}

// ---- Dose orders ----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dose_form.html")]
pub struct DoseFormPage {
    nav: Option<Nav>,
    patient: Patient,
    protocols: Vec<(String, String, bool)>,
    chosen: String,
    weight: String,
    height: String,
    age: String,
    concentrations: Vec<String>,
    error: String,
    refusal: Vec<String>,
    /// What was typed, kept when the page is shown again.
    form: Vec<(String, String)>,
    /// The calculation and every limit check, before signing.
    preview: Option<CalculationView>,
    /// The fingerprint of the previewed calculation, sent back with "Sign".
    digest: String,
    /// The patient header (name, MRN, age, weight, allergies, alerts, consent) and tabs.
    header: Option<crate::chart::PatientHeader>,
}

impl DoseFormPage {
    /// The value typed into `name` ("" when none).
    fn v(&self, name: &str) -> &str {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A dose calculation as the order and preview pages show it.
pub struct CalculationView {
    numbers: Vec<Row>,
    limits: Vec<Row>,
    soft: Vec<Row>,
    roundings: Vec<String>,
    notes: Vec<String>,
}

fn calculation_view(c: &ketcare_clinical::dose::DoseCalculation) -> CalculationView {
    let mut numbers = vec![
        Row {
            label: "Actual weight".into(),
            value: num(&c.weight.actual_kg),
            source: provenance_text(&c.weight.actual_kg.provenance),
        },
        Row {
            label: format!("Dosing weight ({:?})", c.weight.basis),
            value: num(&c.weight.basis_kg),
            source: format!(
                "{} ({:?}); {}",
                c.weight.basis_source.join(", "),
                c.weight.basis_status,
                c.weight.ideal_and_adjusted_weight
            ),
        },
    ];
    for comp in &c.components {
        let role = code(&comp.role);
        numbers.push(Row {
            label: format!("{role}: ordered"),
            value: num(&comp.ordered),
            source: provenance_text(&comp.ordered.provenance),
        });
        if let Some(d) = &comp.duration_minutes {
            numbers.push(Row {
                label: format!("{role}: duration"),
                value: num(d),
                source: provenance_text(&d.provenance),
            });
        }
        numbers.push(Row {
            label: format!("{role}: dose"),
            value: num(&comp.dose_mg),
            source: provenance_text(&comp.dose_mg.provenance),
        });
        if let Some(prep) = &comp.preparation {
            for (label, n) in [
                ("vial", &prep.vial_concentration),
                ("volume to draw", &prep.volume_to_draw),
                ("final concentration", &prep.final_concentration),
            ] {
                numbers.push(Row {
                    label: format!("{role}: {label}"),
                    value: num(n),
                    source: provenance_text(&n.provenance),
                });
            }
            for (label, n) in [
                ("final volume", &prep.final_volume),
                ("pump rate", &prep.rate_ml_per_h),
                ("run time", &prep.run_time_minutes),
            ] {
                if let Some(n) = n {
                    numbers.push(Row {
                        label: format!("{role}: {label}"),
                        value: num(n),
                        source: provenance_text(&n.provenance),
                    });
                }
            }
        }
    }
    if let Some(e) = &c.esketamine {
        numbers.push(Row {
            label: "esketamine dose".into(),
            value: format!(
                "{} = {} devices of {}",
                num(&e.dose_mg),
                e.devices,
                num(&e.device_mg)
            ),
            source: provenance_text(&e.dose_mg.provenance),
        });
        numbers.push(Row {
            label: "between devices".into(),
            value: num(&e.minutes_between_devices),
            source: provenance_text(&e.minutes_between_devices.provenance),
        });
    }
    numbers.push(Row {
        label: "session total".into(),
        value: num(&c.session_total_mg),
        source: provenance_text(&c.session_total_mg.provenance),
    });
    let limit_row = |l: &ketcare_clinical::dose::LimitCheck| Row {
        label: format!("{} ({})", l.label, crate::fmt::words(&l.severity)),
        value: format!(
            "{} vs limit {} {} — {}",
            ketcare_core::units::trim_float(l.computed),
            l.limit,
            l.unit,
            if l.within { "within" } else { "crossed" }
        ),
        source: provenance_text(&l.provenance),
    };
    CalculationView {
        numbers,
        limits: c.limit_checks.iter().map(limit_row).collect(),
        soft: c.soft_limits_crossed.iter().map(limit_row).collect(),
        roundings: c
            .roundings
            .iter()
            .map(|r| {
                format!(
                    "{}: {} → {} {} (increment {} from site setting {}; {})",
                    r.what, r.from, r.to, r.unit, r.increment, r.setting, r.why
                )
            })
            .collect(),
        notes: c.notes.clone(),
    }
}

/// What the dose form shows besides the chart's facts.
#[derive(Default)]
struct DoseFormState {
    chosen: String,
    error: String,
    refusal: Vec<String>,
    form: Vec<(String, String)>,
    preview: Option<CalculationView>,
    digest: String,
}

async fn dose_form(
    s: &AppState,
    p: &Principal,
    patient: Patient,
    state: DoseFormState,
) -> Result<DoseFormPage, AppError> {
    let (settings, _) = clinical::settings(s.store.as_ref()).await?;
    let protocols = s
        .library()
        .list()
        .into_iter()
        .map(|summary| {
            let ready = s
                .library()
                .readiness(&summary.id, &settings)
                .map(|r| r.ready)
                .unwrap_or(false);
            (summary.id, summary.title, ready)
        })
        .collect();
    let day = patient.record.day_of_care(s.today(), &s.bands);
    let header = crate::chart::header(s, p, patient.id, "dose").await.ok();
    Ok(DoseFormPage {
        header,
        nav: Nav::of(p),
        weight: patient
            .record
            .weight
            .map(|w| {
                format!(
                    "{} kg, measured {}",
                    ketcare_core::units::trim_float(w.value.kg()),
                    w.measured_on
                )
            })
            .unwrap_or_default(),
        height: patient
            .record
            .height
            .map(|h| {
                format!(
                    "{} cm, measured {}",
                    ketcare_core::units::trim_float(h.value.cm()),
                    h.measured_on
                )
            })
            .unwrap_or_default(),
        age: day
            .map(|d| format!("{} ({})", d.age, d.band))
            .unwrap_or_default(),
        patient,
        protocols,
        chosen: state.chosen,
        concentrations: s
            .library()
            .vials()
            .iter()
            .filter_map(|v| v.concentration_mg_per_ml.get_ref().value)
            .map(|c| c.to_string())
            .collect(),
        error: state.error,
        refusal: state.refusal,
        form: state.form,
        preview: state.preview,
        digest: state.digest,
    })
}

pub async fn dose_form_page(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    let patient = s.store.get_patient(&p.actor, PatientId::new(id)).await?;
    Ok(render_html(
        &dose_form(&s, &p, patient, DoseFormState::default()).await?,
    ))
}

pub async fn order_dose(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pid = PatientId::new(id);
    let patient = s.store.get_patient(&p.actor, pid).await?;
    let pairs = form_pairs(&body)?;
    let chosen = field(&pairs, "protocol").to_owned();
    let built = (|| -> Result<_, AppError> {
        let simple = SimpleDose {
            protocol: chosen.clone(),
            concentration_mg_per_ml: number(&pairs, "concentration_mg_per_ml")?,
            final_volume_ml: number(&pairs, "final_volume_ml")?,
            step: match number(&pairs, "step")? {
                // A step is a whole number from 0; "-3" or "1.5" is refused, never truncated.
                Some(v) if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) => {
                    Some(v as u32)
                }
                Some(v) => {
                    return Err(AppError::invalid(
                        "step",
                        format!("{v} is not a titration step; expected a whole number from 0"),
                    ));
                }
                None => None,
            },
            amount_mg_per_kg: number(&pairs, "amount_mg_per_kg")?,
            amount_mg_per_kg_per_h: number(&pairs, "amount_mg_per_kg_per_h")?,
            duration_minutes: number(&pairs, "duration_minutes")?,
            bolus_mg_per_kg: number(&pairs, "bolus_mg_per_kg")?,
            omit_bolus: field(&pairs, "omit_bolus") == "on",
            esketamine_dose_mg: number(&pairs, "esketamine_dose_mg")?,
            ..SimpleDose::default()
        };
        Ok(simple.order_request(&s.library())?)
    })();
    let refused = |e: AppError| {
        e.body()
            .fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    // Everything typed comes back with the page, whatever the outcome.
    let typed: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "csrf_token" | "intent" | "preview_digest"))
        .cloned()
        .collect();
    let again = |state: DoseFormState, status: StatusCode| {
        let (s, p, patient) = (&s, &p, patient.clone());
        async move {
            let mut r = render_html(&dose_form(s, p, patient, state).await?);
            *r.status_mut() = status;
            Ok::<Response, PageError>(r)
        }
    };
    let base = || DoseFormState {
        chosen: chosen.clone(),
        form: typed.clone(),
        ..DoseFormState::default()
    };
    let request = match built {
        Ok(r) => r,
        Err(e) => {
            let error = refused(e);
            return again(
                DoseFormState { error, ..base() },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    // First the full calculation and every limit check; signing is a second, explicit action
    // on the calculation shown.
    let previewed = ketcare_app::orders::preview(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        pid,
        &request,
        s.now(),
    )
    .await;
    // A refusal of the calculator or of a field is shown beside what was typed.
    let refusal = |e: ketcare_app::Error| -> Result<DoseFormState, PageError> {
        match e {
            ketcare_app::Error::Dose(e) => Ok(DoseFormState {
                refusal: vec![e.to_string()],
                ..base()
            }),
            e @ ketcare_app::Error::Invalid(_) => Ok(DoseFormState {
                error: refused(e.into()),
                ..base()
            }),
            e => Err(AppError::from(e).into()),
        }
    };
    let order = match previewed {
        Ok(o) => o,
        Err(e) => return again(refusal(e)?, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let digest = ketcare_app::orders::preview_digest(&order);
    let shown = || DoseFormState {
        preview: Some(calculation_view(&order.calculation)),
        digest: digest.clone(),
        ..base()
    };
    if field(&pairs, "intent") != "sign" {
        return again(shown(), StatusCode::OK).await;
    }
    if field(&pairs, "preview_digest") != digest {
        let error = "The calculation is not the one you checked (the form, the record or the site's settings changed since): check it again, then sign.".to_owned();
        return again(DoseFormState { error, ..shown() }, StatusCode::CONFLICT).await;
    }
    match ketcare_app::orders::sign(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        pid,
        &request,
        s.now(),
    )
    .await
    {
        Ok(stored) => Ok(Redirect::to(&format!("/orders/{}", stored.id)).into_response()),
        Err(e) => again(refusal(e)?, StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

#[derive(Template)]
#[template(path = "order.html")]
pub struct OrderPage {
    nav: Option<Nav>,
    id: RecordId,
    patient_id: i64,
    title: String,
    protocol: String,
    state: String,
    author: String,
    created_at: String,
    numbers: Vec<Row>,
    limits: Vec<Row>,
    soft: Vec<Row>,
    roundings: Vec<String>,
    notes: Vec<String>,
    soft_override: String,
    verification: String,
    can_override: bool,
    can_verify: bool,
    /// Who withdrew it, when and why ("" while in force).
    withdrawal: String,
    can_withdraw: bool,
    withdraw_error: String,
    withdraw_reason: String,
    /// May schedule a session from this order (shown once it is verified).
    can_run: bool,
    /// The state in words.
    state_words: String,
    /// The patient header (name, MRN, age, weight, allergies, alerts, consent) and tabs.
    header: Option<crate::chart::PatientHeader>,
}

/// "by USER at TIME: REASON" for an override or a verification record.
fn who_when<T: Serialize>(record: &T) -> String {
    let v = serde_json::to_value(record).unwrap_or_default();
    let text = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    let mut out = format!("by {} at {}", text("by"), text("at"));
    if !text("reason").is_empty() {
        out.push_str(&format!(": {}", text("reason")));
    }
    out
}

fn num(n: &ketcare_clinical::dose::Number) -> String {
    format!("{} {}", ketcare_core::units::trim_float(n.value), n.unit)
}

fn order_page(p: &Principal, o: &StoredOrder) -> OrderPage {
    let c = &o.order.calculation;
    let view = calculation_view(c);
    let state = code(&o.order.state);
    OrderPage {
        header: None,
        state_words: o.order.state.label().to_owned(),
        can_run: p.user.role.allows(Permission::RunSession),
        nav: Nav::of(p),
        id: o.id,
        patient_id: o.patient_id.get(),
        title: c.protocol_title.clone(),
        protocol: format!("{} v{}", c.protocol_id, c.protocol_version),
        author: o.order.author.as_str().to_owned(),
        created_at: crate::fmt::when(o.order.created_at.as_str()),
        numbers: view.numbers,
        limits: view.limits,
        soft: view.soft,
        roundings: view.roundings,
        notes: view.notes,
        soft_override: o
            .order
            .soft_override
            .as_ref()
            .map(who_when)
            .unwrap_or_default(),
        verification: o
            .order
            .verification
            .as_ref()
            .map(who_when)
            .unwrap_or_default(),
        can_override: o.order.state == OrderState::NeedsOverride
            && p.user.role.allows(Permission::OverrideClinical),
        can_verify: o.order.state == OrderState::PendingVerification
            && p.user.role.allows(Permission::VerifyDose)
            && o.order.author.as_str() != p.actor.username,
        withdrawal: o
            .order
            .withdrawal
            .as_ref()
            .map(who_when)
            .unwrap_or_default(),
        can_withdraw: o.order.state != OrderState::Withdrawn
            && p.user.role.allows(Permission::OrderDose),
        withdraw_error: String::new(),
        withdraw_reason: String::new(),
        state,
    }
}

pub async fn order(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<RecordId>,
) -> Result<Response, PageError> {
    let r = s.store.record(&p.actor, RecordKind::DoseOrder, id).await?;
    let mut page = order_page(&p, &clinical::order_of(&r)?);
    page.header = crate::chart::header(&s, &p, PatientId::new(page.patient_id), "")
        .await
        .ok();
    Ok(render_html(&page))
}

pub async fn override_order(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<RecordId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let reason = field(&pairs, "reason").to_owned();
    clinical::transition(
        s.store.as_ref(),
        &p.actor,
        id,
        Permission::OverrideClinical,
        "dose_order.override",
        |o, u, t| o.override_soft_limits(u, &reason, t),
        s.now(),
    )
    .await?;
    Ok(Redirect::to(&format!("/orders/{id}")).into_response())
}

pub async fn verify_order(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<RecordId>,
) -> Result<Response, PageError> {
    clinical::transition(
        s.store.as_ref(),
        &p.actor,
        id,
        Permission::VerifyDose,
        "dose_order.verify",
        |o, u, t| o.verify(u, t),
        s.now(),
    )
    .await?;
    Ok(Redirect::to(&format!("/orders/{id}")).into_response())
}

pub async fn withdraw_order(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<RecordId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let reason = field(&pairs, "withdraw_reason").to_owned();
    match ketcare_app::orders::withdraw(s.store.as_ref(), &p.actor, id, &reason, s.now()).await {
        Ok(_) => Ok(Redirect::to(&format!("/orders/{id}")).into_response()),
        Err(e @ (ketcare_app::Error::Invalid(_) | ketcare_app::Error::Conflict(_))) => {
            let r = s.store.record(&p.actor, RecordKind::DoseOrder, id).await?;
            let mut page = order_page(&p, &clinical::order_of(&r)?);
            page.header = crate::chart::header(&s, &p, PatientId::new(page.patient_id), "")
                .await
                .ok();
            page.withdraw_error = invalid_text(&AppError::from(e));
            page.withdraw_reason = reason;
            let mut resp = render_html(&page);
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
        Err(e) => Err(AppError::from(e).into()),
    }
}

/// The patient's screenings, orders and sessions for the chart, newest first: (link, what, when).
pub struct ChartLinks {
    pub screenings: Vec<(String, String, String)>,
    pub orders: Vec<(String, String, String)>,
    pub sessions: Vec<(String, String, String)>,
}

/// Reads the chart's history (an audited read of each kind).
pub async fn patient_clinical_links(
    s: &AppState,
    p: &Principal,
    id: PatientId,
) -> Result<ChartLinks, AppError> {
    let screenings = s
        .store
        .patient_records(&p.actor, id, RecordKind::Screening)
        .await?
        .into_iter()
        .map(|r| {
            let what = clinical::screening_of(&r)
                .map(|x| {
                    format!(
                        "{} — {}",
                        crate::fmt::words(&x.doc.outcome.indication),
                        r.state.replace('_', " ")
                    )
                })
                .unwrap_or_else(|_| r.state.replace('_', " "));
            (
                format!("/screenings/{}", r.id),
                what,
                crate::fmt::when(&r.created_at),
            )
        })
        .collect();
    let orders = s
        .store
        .patient_records(&p.actor, id, RecordKind::DoseOrder)
        .await?
        .into_iter()
        .map(|r| {
            let what = clinical::order_of(&r)
                .map(|o| {
                    format!(
                        "{} — {}",
                        o.order.calculation.protocol_title,
                        o.order.state.label()
                    )
                })
                .unwrap_or_else(|_| r.state.replace('_', " "));
            (
                format!("/orders/{}", r.id),
                what,
                crate::fmt::when(&r.created_at),
            )
        })
        .collect();
    let sessions = s
        .store
        .patient_sessions(&p.actor, id)
        .await?
        .into_iter()
        .map(|r| {
            (
                format!("/sessions/{}", r.id),
                format!(
                    "{} — {} — {}",
                    r.session.plan.protocol_title,
                    r.session.chair,
                    r.session.phase.label()
                ),
                crate::fmt::when(&r.session.scheduled_for.to_string()),
            )
        })
        .collect();
    Ok(ChartLinks {
        screenings,
        orders,
        sessions,
    })
}
