//! The clinical service shared by the pages, the JSON API and the CLI: it loads the site's settings,
//! calls the pure clinical core, and stores screenings and dose orders with their audit records.
//! Every interface goes through these functions, so all three give the same numbers.

use crate::error::AppError;
use ketcare_clinical::source::Provenance;
use ketcare_clinical::{
    DoseOrder, DoseRequest, Library, OrderState, ScreeningInput, ScreeningOutcome, SiteSettings,
    Timestamp, UserId,
};
use ketcare_core::{Actor, FieldErrors, PatientId, Permission};
use ketcare_store::{ClinicalRecord, RecordChange, RecordKind, Store};
use serde::Serialize;

/// The site's current settings and their version (0 when the site has set nothing yet).
pub async fn settings(store: &dyn Store) -> Result<(SiteSettings, i64), AppError> {
    match store.site_settings().await? {
        None => Ok((SiteSettings::default(), 0)),
        Some(v) => serde_json::from_str(&v.body)
            .map(|s| (s, v.version))
            .map_err(|e| {
                tracing::error!(error = %e, version = v.version, "stored site settings do not parse");
                AppError::Internal
            }),
    }
}

/// Validates and stores new site settings as the next version.
pub async fn save_settings(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    new: &SiteSettings,
    reason: &str,
) -> Result<i64, AppError> {
    let problems = library.check_settings(new);
    if !problems.is_empty() {
        let mut errors = FieldErrors::new();
        for p in problems {
            errors.push("settings", p.to_string());
        }
        return Err(AppError::Invalid(errors));
    }
    let body = serde_json::to_string(new).map_err(|_| AppError::Internal)?;
    Ok(store
        .save_site_settings(actor, &body, reason)
        .await?
        .version)
}

pub fn user_id(actor: &Actor) -> Result<UserId, AppError> {
    UserId::new(actor.username.clone()).map_err(|e| AppError::invalid("user", e.to_string()))
}

pub fn timestamp(seconds: i64) -> Result<Timestamp, AppError> {
    let t = jiff::Timestamp::from_second(seconds).map_err(|_| AppError::Internal)?;
    Timestamp::parse(t.to_string()).map_err(|_| AppError::Internal)
}

/// A stored screening: the input, the outcome, and the record's revision.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ScreeningDoc {
    pub input: ScreeningInput,
    pub outcome: ScreeningOutcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredScreening {
    pub id: i64,
    pub patient_id: PatientId,
    pub revision: i64,
    pub created_by: String,
    pub created_at: String,
    #[serde(flatten)]
    pub doc: ScreeningDoc,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredOrder {
    pub id: i64,
    pub patient_id: PatientId,
    pub revision: i64,
    pub created_at: String,
    pub order: DoseOrder,
}

fn parse_body<T: serde::de::DeserializeOwned>(r: &ClinicalRecord) -> Result<T, AppError> {
    serde_json::from_str(&r.body).map_err(|e| {
        tracing::error!(error = %e, id = r.id, "stored clinical record does not parse");
        AppError::Internal
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<String, AppError> {
    serde_json::to_string(v).map_err(|_| AppError::Internal)
}

pub fn screening_of(r: &ClinicalRecord) -> Result<StoredScreening, AppError> {
    Ok(StoredScreening {
        id: r.id,
        patient_id: r.patient_id,
        revision: r.revision,
        created_by: r.created_by.clone(),
        created_at: r.created_at.clone(),
        doc: parse_body(r)?,
    })
}

pub fn order_of(r: &ClinicalRecord) -> Result<StoredOrder, AppError> {
    Ok(StoredOrder {
        id: r.id,
        patient_id: r.patient_id,
        revision: r.revision,
        created_at: r.created_at.clone(),
        order: parse_body(r)?,
    })
}

fn decision_str(o: &ScreeningOutcome) -> String {
    serde_json::to_value(o.decision)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn state_str(s: OrderState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Screens (pure) with the site's current settings.
pub async fn screen(
    store: &dyn Store,
    library: &Library,
    input: &ScreeningInput,
) -> Result<ScreeningOutcome, AppError> {
    let (settings, _) = settings(store).await?;
    library
        .screen(input, &settings)
        .map_err(|e| AppError::invalid("screening", e.to_string()))
}

pub async fn screen_and_store(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
    input: ScreeningInput,
) -> Result<StoredScreening, AppError> {
    let outcome = screen(store, library, &input).await?;
    let doc = ScreeningDoc { input, outcome };
    let r = store
        .create_record(
            actor,
            patient,
            &RecordChange {
                permission: Permission::Screen,
                kind: RecordKind::Screening,
                state: &decision_str(&doc.outcome),
                body: &to_json(&doc)?,
                action: "screening.create",
            },
        )
        .await?;
    screening_of(&r)
}

pub async fn override_finding(
    store: &dyn Store,
    actor: &Actor,
    id: i64,
    finding_id: &str,
    reason: &str,
    now: i64,
) -> Result<StoredScreening, AppError> {
    let r = store.record(actor, RecordKind::Screening, id).await?;
    let mut s = screening_of(&r)?;
    s.doc.outcome = s
        .doc
        .outcome
        .override_finding(finding_id, user_id(actor)?, reason, timestamp(now)?)
        .map_err(|e| AppError::invalid("reason", e.to_string()))?;
    let r = store
        .update_record(
            actor,
            id,
            r.revision,
            &RecordChange {
                permission: Permission::OverrideClinical,
                kind: RecordKind::Screening,
                state: &decision_str(&s.doc.outcome),
                body: &to_json(&s.doc)?,
                action: "screening.override",
            },
        )
        .await?;
    screening_of(&r)
}

/// Fills in the author and time of a dose request given as JSON without them.
pub fn dose_request(
    mut body: serde_json::Value,
    actor: &Actor,
    now: i64,
) -> Result<DoseRequest, AppError> {
    let obj = body
        .as_object_mut()
        .ok_or_else(|| AppError::invalid("body", "expected a JSON object"))?;
    obj.insert(
        "author".into(),
        serde_json::to_value(user_id(actor)?).map_err(|_| AppError::Internal)?,
    );
    obj.insert(
        "created_at".into(),
        serde_json::to_value(timestamp(now)?).map_err(|_| AppError::Internal)?,
    );
    serde_path_to_error::deserialize(body).map_err(|e| {
        let field = e.path().to_string();
        AppError::invalid(
            if field == "." { "body" } else { &field },
            e.into_inner().to_string(),
        )
    })
}

/// Calculates (pure) with the site's current settings.
pub async fn calculate(
    store: &dyn Store,
    library: &Library,
    request: &DoseRequest,
) -> Result<DoseOrder, DoseRefusal> {
    let (settings, _) = settings(store).await.map_err(DoseRefusal::App)?;
    library
        .calculate(&settings, request)
        .map_err(DoseRefusal::Dose)
}

/// A calculator refusal (hard limit, blocked protocol, bad choice), shown with its reasons.
#[derive(Debug)]
pub enum DoseRefusal {
    Dose(ketcare_clinical::DoseError),
    App(AppError),
}

impl DoseRefusal {
    pub fn into_app(self) -> AppError {
        match self {
            DoseRefusal::App(e) => e,
            DoseRefusal::Dose(e) => AppError::invalid("dose", e.to_string()),
        }
    }
}

pub async fn order_and_store(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
    request: &DoseRequest,
) -> Result<StoredOrder, DoseRefusal> {
    if !actor.may(Permission::OrderDose) {
        return Err(DoseRefusal::App(AppError::Forbidden(
            "only a prescriber signs a dose order".into(),
        )));
    }
    let order = calculate(store, library, request).await?;
    let body = to_json(&order).map_err(DoseRefusal::App)?;
    let r = store
        .create_record(
            actor,
            patient,
            &RecordChange {
                permission: Permission::OrderDose,
                kind: RecordKind::DoseOrder,
                state: &state_str(order.state),
                body: &body,
                action: "dose_order.create",
            },
        )
        .await
        .map_err(|e| DoseRefusal::App(e.into()))?;
    order_of(&r).map_err(DoseRefusal::App)
}

/// Applies an order transition (override or verification) and stores it.
pub async fn transition(
    store: &dyn Store,
    actor: &Actor,
    id: i64,
    permission: Permission,
    action: &str,
    step: impl FnOnce(&DoseOrder, UserId, Timestamp) -> Result<DoseOrder, ketcare_clinical::OrderError>,
    now: i64,
) -> Result<StoredOrder, AppError> {
    let r = store.record(actor, RecordKind::DoseOrder, id).await?;
    let current = order_of(&r)?;
    let next = step(&current.order, user_id(actor)?, timestamp(now)?).map_err(|e| {
        AppError::invalid(
            if action.ends_with("override") {
                "reason"
            } else {
                "order"
            },
            e.to_string(),
        )
    })?;
    let r = store
        .update_record(
            actor,
            id,
            r.revision,
            &RecordChange {
                permission,
                kind: RecordKind::DoseOrder,
                state: &state_str(next.state),
                body: &to_json(&next)?,
                action,
            },
        )
        .await?;
    order_of(&r)
}

/// Plain words for where a number came from.
pub fn provenance_text(p: &Provenance) -> String {
    match p {
        Provenance::Reference { source, status } => format!("{} ({status:?})", source.join(", ")),
        Provenance::SiteSetting { key } => format!("set by the site: {key}"),
        Provenance::SiteLimitOverride {
            key,
            set_by,
            second_approver,
        } => match second_approver {
            Some(a) => format!("site limit {key}, set by {set_by}, approved by {a}"),
            None => format!("site limit {key}, set by {set_by}"),
        },
        Provenance::Input { field } => format!("entered: {field}"),
        Provenance::Computed { formula } => format!("computed: {formula}"),
    }
}

/// The few choices a form or the command line gives, turned into the calculator's request.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SimpleDose {
    pub protocol: String,
    pub weight_kg: f64,
    pub height_cm: Option<f64>,
    /// `female` or `male` (used only where a formula needs it).
    pub sex: Option<String>,
    pub age_years: Option<u32>,
    pub age_months: Option<u32>,
    /// Vial strength, mg/mL.
    pub concentration_mg_per_ml: Option<f64>,
    /// Dilute to this final volume, mL.
    pub final_volume_ml: Option<f64>,
    /// Titration step of the main component (protocol default when absent).
    pub step: Option<u32>,
    /// A chosen amount for the main component, in mg/kg (instead of a step).
    pub amount_mg_per_kg: Option<f64>,
    /// Esketamine: dose in mg (a multiple of 28).
    pub esketamine_dose_mg: Option<f64>,
    #[serde(default)]
    pub first_dose_of_course: bool,
}

impl SimpleDose {
    /// The request as JSON (author and time are added by [`dose_request`]).
    pub fn to_json(&self, library: &Library) -> Result<serde_json::Value, AppError> {
        let protocol = library
            .get(&self.protocol)
            .map_err(|e| AppError::invalid("protocol", e.to_string()))?;
        let mut patient = serde_json::json!({ "weight_kg": self.weight_kg });
        if let Some(h) = self.height_cm {
            patient["height_cm"] = h.into();
        }
        if let Some(s) = self
            .sex
            .as_deref()
            .filter(|s| matches!(*s, "female" | "male"))
        {
            patient["sex"] = s.into();
        }
        if let Some(y) = self.age_years {
            patient["age"] =
                serde_json::json!({ "years": y, "months": self.age_months.unwrap_or(0) });
        }
        let mut body = serde_json::json!({ "protocol_id": self.protocol, "patient": patient });
        if let Some(c) = self.concentration_mg_per_ml {
            let mut prep = serde_json::json!({ "concentration_mg_per_ml": c });
            if let Some(v) = self.final_volume_ml {
                prep["final_volume_ml"] = v.into();
            }
            body["preparation"] = prep;
        }
        if self.step.is_some() || self.amount_mg_per_kg.is_some() {
            // The choice belongs to the main component: the infusion or the single dose.
            let main = protocol
                .components()
                .into_iter()
                .filter_map(|(role, _)| {
                    serde_json::to_value(role)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                })
                .find(|r| r != "bolus" && r != "repeat")
                .unwrap_or_else(|| "dose".into());
            body[main] = match (self.step, self.amount_mg_per_kg) {
                (_, Some(x)) => serde_json::json!({ "amount": { "mg_per_kg": x } }),
                (step, None) => serde_json::json!({ "step": step }),
            };
        }
        if let Some(mg) = self.esketamine_dose_mg {
            body["esketamine_dose_mg"] = mg.into();
        }
        if self.first_dose_of_course {
            body["first_dose_of_course"] = true.into();
        }
        Ok(body)
    }
}

/// The built-in library plus the site's own protocol files, validated together.
pub async fn load_library(store: &dyn Store) -> Result<Library, String> {
    let site = store.site_protocols().await.map_err(|e| e.to_string())?;
    let files: Vec<(String, String)> = site
        .into_iter()
        .map(|p| (format!("site/{}", p.file_name), p.body))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, b)| (f.as_str(), b.as_str()))
        .collect();
    Library::builtin_with_site(&refs).map_err(|e| e.to_string())
}

/// What happened to a limit change.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LimitChange {
    /// Narrowed (or widened within the cited value): in force as a new settings version.
    Applied { version: i64 },
    /// Widens a hard limit past the cited value: waits for a second administrator.
    AwaitingSecondApprover { proposal_id: i64, reason: String },
}

/// An administrator narrows (or proposes to widen) one limit of one protocol. The person who set
/// it is always the signed-in administrator; a widening of a hard limit past the cited value is
/// stored as a proposal that only a different administrator can approve.
pub async fn change_limit(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    protocol_id: &str,
    limit_id: &str,
    value: f64,
    reason: &str,
) -> Result<LimitChange, AppError> {
    use ketcare_clinical::settings::SettingsError;
    if reason.trim().is_empty() {
        return Err(AppError::invalid("reason", "say why the limit changes"));
    }
    let (current, _) = settings(store).await?;
    let proposed = ketcare_clinical::LimitOverride {
        protocol_id: protocol_id.to_owned(),
        limit_id: limit_id.to_owned(),
        value,
        set_by: user_id(actor)?,
        second_approver: None,
        reason: reason.trim().to_owned(),
    };
    let next = with_override(&current, proposed.clone());
    let problems = library.check_settings(&next);
    let mine = |p: &SettingsError| match p {
        SettingsError::WideningNeedsSecondApprover {
            protocol_id: pid,
            limit_id: lid,
            ..
        }
        | SettingsError::UnknownLimit {
            protocol_id: pid,
            limit_id: lid,
        }
        | SettingsError::ApproverIsAuthor {
            protocol_id: pid,
            limit_id: lid,
            ..
        }
        | SettingsError::MissingReason {
            protocol_id: pid,
            limit_id: lid,
        } => pid == protocol_id && lid == limit_id,
        SettingsError::BadValue { .. } => true,
    };
    let relevant: Vec<&SettingsError> = problems.iter().filter(|p| mine(p)).collect();
    match relevant.as_slice() {
        [] => {
            let body = to_json(&next)?;
            let saved = store.save_site_settings(actor, &body, reason).await?;
            Ok(LimitChange::Applied {
                version: saved.version,
            })
        }
        [SettingsError::WideningNeedsSecondApprover { .. }] => {
            let p = store
                .propose_settings_change(actor, &to_json(&proposed)?, reason)
                .await?;
            Ok(LimitChange::AwaitingSecondApprover {
                proposal_id: p.id,
                reason: relevant[0].to_string(),
            })
        }
        other => {
            let mut errors = FieldErrors::new();
            for p in other {
                errors.push("value", p.to_string());
            }
            Err(AppError::Invalid(errors))
        }
    }
}

fn with_override(current: &SiteSettings, o: ketcare_clinical::LimitOverride) -> SiteSettings {
    let mut next = current.clone();
    next.limit_overrides
        .retain(|x| !(x.protocol_id == o.protocol_id && x.limit_id == o.limit_id));
    next.limit_overrides.push(o);
    next
}

/// A second administrator approves a pending widening; it comes into force as a new version.
pub async fn approve_limit(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    proposal_id: i64,
) -> Result<i64, AppError> {
    let p = store.settings_proposal(proposal_id).await?;
    let mut o: ketcare_clinical::LimitOverride =
        serde_json::from_str(&p.body).map_err(|_| AppError::Internal)?;
    o.second_approver = Some(user_id(actor)?);
    let (current, _) = settings(store).await?;
    let next = with_override(&current, o);
    let problems = library.check_settings(&next);
    if !problems.is_empty() {
        let mut errors = FieldErrors::new();
        for p in problems {
            errors.push("approver", p.to_string());
        }
        return Err(AppError::Invalid(errors));
    }
    Ok(store
        .approve_settings_change(actor, proposal_id, &to_json(&next)?)
        .await?
        .version)
}

/// Values may change through the settings document; limits only through [`change_limit`] and
/// [`approve_limit`], so nobody can write someone else's name as the second approver.
pub async fn save_values(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    new: &SiteSettings,
    reason: &str,
) -> Result<i64, AppError> {
    let (current, _) = settings(store).await?;
    if new.limit_overrides != current.limit_overrides {
        return Err(AppError::invalid(
            "limit_overrides",
            "change limits through /api/v1/site-settings/limits (a widening needs a second administrator)",
        ));
    }
    save_settings(store, library, actor, new, reason).await
}

/// Adds (or replaces, by file name) a site protocol after validating the whole library with it.
pub async fn add_site_protocol(
    state: &crate::AppState,
    actor: &Actor,
    file_name: &str,
    text: &str,
) -> Result<(), AppError> {
    if !actor.may(Permission::SiteSettingsWrite) {
        return Err(AppError::Forbidden(
            "only an administrator adds site protocols".into(),
        ));
    }
    let name_ok = file_name.ends_with(".toml")
        && file_name.len() <= 80
        && file_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        return Err(AppError::invalid(
            "file_name",
            "use letters, digits, '-', '_' and end with .toml",
        ));
    }
    let mut files: Vec<(String, String)> = state
        .store
        .site_protocols()
        .await?
        .into_iter()
        .filter(|p| p.file_name != file_name)
        .map(|p| (format!("site/{}", p.file_name), p.body))
        .collect();
    files.push((format!("site/{file_name}"), text.to_owned()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, b)| (f.as_str(), b.as_str()))
        .collect();
    let library =
        Library::builtin_with_site(&refs).map_err(|e| AppError::invalid("toml", e.to_string()))?;
    state
        .store
        .add_site_protocol(actor, file_name, text)
        .await?;
    state.set_library(library);
    Ok(())
}
