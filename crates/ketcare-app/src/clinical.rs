//! The clinical use cases shared by the pages, the JSON API and the CLI: site settings, screening,
//! the dose calculator and the order transitions. They load the site's settings, call the pure
//! clinical core, and store screenings and dose orders with their audit records. Orders for a
//! stored patient go through [`crate::orders`], which takes the patient's facts from the record.

use crate::error::Error as AppError;
use ketcare_clinical::source::Provenance;
use ketcare_clinical::{
    DoseOrder, DoseRequest, Library, OrderState, ScreeningInput, ScreeningOutcome, SiteSettings,
    Timestamp, Username,
};
use ketcare_core::{Actor, FieldErrors, PatientId, Permission, RecordId};
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

/// The settings in force at one site: the organisation's, with the keys the site sets for
/// itself in their place.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettingsAtSite {
    pub site_id: i64,
    /// What every decision for the site's sessions, bookings and bills reads.
    pub settings: SiteSettings,
    /// The version in force: the newer of the organisation's and the site's own (one sequence
    /// numbers both, so a change to either gives a new number). 0 while neither is set.
    pub version: i64,
    /// The organisation's version under it (0 while it has set nothing).
    pub organisation_version: i64,
    /// Only the keys the site sets for itself.
    pub own: SiteSettings,
    /// The site's own newest version, who set it, when and why (none while it sets nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_version: Option<ketcare_store::SiteSettingsVersion>,
}

impl SettingsAtSite {
    /// Whether the value of `key` in force is the site's own.
    pub fn is_own(&self, key: &str) -> bool {
        self.own.values.contains_key(key) || self.own.texts.contains_key(key)
    }
}

fn parse_settings(v: &ketcare_store::SiteSettingsVersion) -> Result<SiteSettings, AppError> {
    serde_json::from_str(&v.body).map_err(|e| {
        tracing::error!(error = %e, version = v.version, "stored site settings do not parse");
        AppError::Internal
    })
}

/// The organisation's settings with a site's own keys in their place.
pub fn over(organisation: &SiteSettings, own: &SiteSettings) -> SiteSettings {
    let mut s = organisation.clone();
    s.values
        .extend(own.values.iter().map(|(k, v)| (k.clone(), *v)));
    s.texts
        .extend(own.texts.iter().map(|(k, v)| (k.clone(), v.clone())));
    s
}

/// The settings in force at `site` (its own keys over the organisation's); an unknown site is
/// not found.
pub async fn settings_at(store: &dyn Store, site: i64) -> Result<SettingsAtSite, AppError> {
    if !store
        .organisation_sites()
        .await?
        .iter()
        .any(|(id, _)| *id == site)
    {
        return Err(AppError::NotFound(format!("site {site}")));
    }
    let (organisation, organisation_version) = settings(store).await?;
    let own_version = store.settings_of_site(site).await?;
    let own = match &own_version {
        Some(v) => parse_settings(v)?,
        None => SiteSettings::default(),
    };
    Ok(SettingsAtSite {
        site_id: site,
        settings: over(&organisation, &own),
        version: own_version.as_ref().map_or(organisation_version, |v| {
            v.version.max(organisation_version)
        }),
        organisation_version,
        own,
        own_version,
    })
}

/// Validates and stores the keys a site sets for itself (the whole set: a key left out goes
/// back to the organisation's value), then brings the site's open sessions to it. Only a key
/// whose every use decides for one site may be set ([`crate::settings_registry::SettingSpec::per_site`]);
/// the settings in force must pass the same checks as the organisation's.
pub async fn save_settings_of_site(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    site: i64,
    own: &SiteSettings,
    reason: &str,
    now: jiff::Timestamp,
) -> Result<i64, AppError> {
    if !actor.may(Permission::SiteSettingsWrite) {
        return Err(AppError::Forbidden(
            "only an administrator changes a site's settings".into(),
        ));
    }
    let mut errors = FieldErrors::new();
    if !own.limit_overrides.is_empty() {
        errors.push(
            "limit_overrides",
            "a protocol's limits are the organisation's: change them on the settings page",
        );
    }
    let registry = crate::settings_registry::load(store, library).await?;
    // Every key that changes is checked (a key the site set earlier is not refused again).
    let current = settings_at(store, site).await?.own;
    let keys = own
        .values
        .iter()
        .filter(|(k, v)| current.values.get(*k) != Some(*v))
        .map(|(k, v)| (k, registry.check(k, *v)))
        .chain(
            own.texts
                .iter()
                .filter(|(k, v)| current.texts.get(*k) != Some(*v))
                .map(|(k, v)| (k, registry.check_text(k, v))),
        );
    for (key, checked) in keys {
        match registry.get(key) {
            Some(spec) if !spec.per_site => errors.push(
                key,
                "the organisation's setting, read for every site: change it on the settings page",
            ),
            _ => {
                if let Err(e) = checked {
                    errors.push(key, e);
                }
            }
        }
    }
    let organisation = settings(store).await?.0;
    for p in library.check_settings(&over(&organisation, own)) {
        errors.push("settings", p.to_string());
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let body = serde_json::to_string(own).map_err(|_| AppError::Internal)?;
    let version = store
        .save_settings_of_site(actor, site, &body, reason)
        .await?
        .version;
    crate::sessions::service::apply_settings(store, library, now).await?;
    Ok(version)
}

/// Validates and stores new site settings as the next version.
pub async fn save_settings(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    new: &SiteSettings,
    reason: &str,
    now: jiff::Timestamp,
) -> Result<i64, AppError> {
    let mut errors = FieldErrors::new();
    // Every key that changes must be one the code reads, with a value its input allows.
    let (current, _) = settings(store).await?;
    let registry = crate::settings_registry::load(store, library).await?;
    for (key, value) in &new.values {
        if current.values.get(key) != Some(value)
            && let Err(e) = registry.check(key, *value)
        {
            errors.push(key, e);
        }
    }
    for (key, value) in &new.texts {
        if current.texts.get(key) != Some(value)
            && let Err(e) = registry.check_text(key, value)
        {
            errors.push(key, e);
        }
    }
    for p in library.check_settings(new) {
        errors.push("settings", p.to_string());
    }
    // Every site's own keys over the new settings must pass the same checks (every site of the
    // organisation, not only the saving administrator's).
    for (site, name) in store.organisation_sites().await? {
        let at = settings_at(store, site).await?;
        if at.own_version.is_none() {
            continue;
        }
        for p in library.check_settings(&over(new, &at.own)) {
            errors.push("settings", format!("at {name}: {p}"));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let body = serde_json::to_string(new).map_err(|_| AppError::Internal)?;
    let version = store
        .save_site_settings(actor, &body, reason)
        .await?
        .version;
    // Thresholds read at the time of use follow the new version in every open session at once
    // (each with its site's own keys over these).
    crate::sessions::service::apply_settings(store, library, now).await?;
    Ok(version)
}

pub fn username(actor: &Actor) -> Result<Username, AppError> {
    Username::new(actor.username.clone()).map_err(|e| AppError::invalid("user", e.to_string()))
}

pub fn timestamp(seconds: i64) -> Result<Timestamp, AppError> {
    let t = jiff::Timestamp::from_second(seconds).map_err(|_| AppError::Internal)?;
    Timestamp::parse(t.to_string()).map_err(|_| AppError::Internal)
}

/// A stored screening: the input, the outcome, and the record's revision.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ScreeningDoc {
    pub input: ScreeningInput,
    pub outcome: ScreeningOutcome,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredScreening {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub revision: i64,
    pub created_by: String,
    pub created_at: String,
    #[serde(flatten)]
    pub doc: ScreeningDoc,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredOrder {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub revision: i64,
    pub created_at: String,
    pub order: DoseOrder,
}

fn parse_body<T: serde::de::DeserializeOwned>(r: &ClinicalRecord) -> Result<T, AppError> {
    serde_json::from_str(&r.body).map_err(|e| {
        tracing::error!(error = %e, id = r.id.get(), "stored clinical record does not parse");
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
    id: RecordId,
    finding_id: &str,
    reason: &str,
    now: i64,
) -> Result<StoredScreening, AppError> {
    let r = store.record(actor, RecordKind::Screening, id).await?;
    let mut s = screening_of(&r)?;
    s.doc.outcome = s
        .doc
        .outcome
        .override_finding(finding_id, username(actor)?, reason, timestamp(now)?)
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
        serde_json::to_value(username(actor)?).map_err(|_| AppError::Internal)?,
    );
    obj.insert(
        "created_at".into(),
        serde_json::to_value(timestamp(now)?).map_err(|_| AppError::Internal)?,
    );
    crate::error::decode(body)
}

/// Calculates (pure) with the site's current settings. The request's facts are used as given:
/// this is the calculator without a patient record (`/api/v1/dose`, `ketcare dose`); orders
/// for a stored patient take their facts from the record through [`crate::orders`].
pub async fn calculate(
    store: &dyn Store,
    library: &Library,
    request: &DoseRequest,
) -> Result<DoseOrder, AppError> {
    calculate_with_settings(store, library, request).await
}

pub(crate) async fn calculate_with_settings(
    store: &dyn Store,
    library: &Library,
    request: &DoseRequest,
) -> Result<DoseOrder, AppError> {
    let (settings, _) = settings(store).await?;
    Ok(library.calculate(&settings, request)?)
}

/// Keeps a calculated order for the patient with its audit record.
pub(crate) async fn store_order(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    order: &DoseOrder,
) -> Result<StoredOrder, AppError> {
    let r = store
        .create_record(
            actor,
            patient,
            &RecordChange {
                permission: Permission::OrderDose,
                kind: RecordKind::DoseOrder,
                state: &state_str(order.state),
                body: &to_json(order)?,
                action: "dose_order.create",
            },
        )
        .await?;
    order_of(&r)
}

/// Applies an order transition (override or verification) and stores it.
pub async fn transition(
    store: &dyn Store,
    actor: &Actor,
    id: RecordId,
    permission: Permission,
    action: &str,
    step: impl FnOnce(
        &DoseOrder,
        Username,
        Timestamp,
    ) -> Result<DoseOrder, ketcare_clinical::OrderError>,
    now: i64,
) -> Result<StoredOrder, AppError> {
    let r = store.record(actor, RecordKind::DoseOrder, id).await?;
    let current = order_of(&r)?;
    // A site's own protocol is overridden, verified and withdrawn by someone who works there.
    protocol_is_ours(
        store,
        actor,
        &current.order.calculation.protocol_id,
        "order",
    )
    .await?;
    let next = step(&current.order, username(actor)?, timestamp(now)?).map_err(|e| {
        AppError::invalid(
            if action.ends_with("override") || action.ends_with("withdraw") {
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
/// `weight_kg`, `height_cm`, `sex` and the age are facts: for a stored patient they come from
/// the record (see [`crate::orders`]); only the calculator without a patient reads them here.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SimpleDose {
    pub protocol: String,
    pub weight_kg: Option<f64>,
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
    /// A chosen rate for the main component, in mg/kg/h (infusions dosed per hour).
    pub amount_mg_per_kg_per_h: Option<f64>,
    /// The main component's duration in minutes (protocol default when absent; needed where
    /// the protocol gives none, e.g. an infusion run as long as the prescriber decides).
    pub duration_minutes: Option<f64>,
    /// A chosen bolus, in mg/kg (protocols with a bolus before an infusion).
    pub bolus_mg_per_kg: Option<f64>,
    /// Leave out the bolus that precedes an infusion.
    pub omit_bolus: bool,
    /// Esketamine: dose in mg (a multiple of 28).
    pub esketamine_dose_mg: Option<f64>,
    /// Only for the calculator without a patient: for a stored patient it is derived.
    pub first_dose_of_course: Option<bool>,
}

fn typed<T>(
    field: &str,
    v: Option<f64>,
    new: impl Fn(f64) -> Result<T, ketcare_clinical::units::UnitError>,
) -> Result<Option<T>, AppError> {
    v.map(|x| new(x).map_err(|e| AppError::invalid(field, e.to_string())))
        .transpose()
}

impl SimpleDose {
    /// The prescriber's choices as an order request (no patient facts).
    pub fn order_request(
        &self,
        library: &Library,
    ) -> Result<crate::orders::OrderRequest, AppError> {
        use ketcare_clinical::dose::{Amount, DoseChoice, Preparation};
        use ketcare_clinical::protocol::Role;
        use ketcare_clinical::units::{
            ConcentrationMgPerMl, DoseMg, MgPerKg, MgPerKgPerHour, Minutes, VolumeMl,
        };
        let protocol = library
            .get(&self.protocol)
            .map_err(|e| AppError::invalid("protocol", e.to_string()))?;
        let mut req = crate::orders::OrderRequest {
            protocol_id: self.protocol.clone(),
            first_dose_of_course: self.first_dose_of_course,
            ..Default::default()
        };
        if let Some(c) = typed(
            "concentration_mg_per_ml",
            self.concentration_mg_per_ml,
            ConcentrationMgPerMl::new,
        )? {
            req.preparation = Some(Preparation {
                concentration_mg_per_ml: c,
                final_volume_ml: typed("final_volume_ml", self.final_volume_ml, VolumeMl::new)?,
            });
        } else if self.final_volume_ml.is_some() {
            return Err(AppError::invalid(
                "final_volume_ml",
                "a final volume needs the vial's concentration",
            ));
        }
        // The main component: the infusion, else the single dose, else the bolus (bolus-only
        // protocols such as IV sedation).
        let roles: Vec<Role> = protocol.components().into_iter().map(|(r, _)| r).collect();
        let main = [Role::Infusion, Role::Dose, Role::Bolus]
            .into_iter()
            .find(|r| roles.contains(r));
        let chosen = [
            self.amount_mg_per_kg.is_some(),
            self.amount_mg_per_kg_per_h.is_some(),
            self.step.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if chosen > 1 {
            return Err(AppError::invalid(
                "amount_mg_per_kg",
                "choose one of a titration step, an amount in mg/kg or a rate in mg/kg/h",
            ));
        }
        if chosen == 1 || self.duration_minutes.is_some() {
            let Some(main) = main else {
                return Err(AppError::invalid(
                    "amount_mg_per_kg",
                    format!(
                        "protocol {} has no component to choose an amount for",
                        self.protocol
                    ),
                ));
            };
            let choice = DoseChoice {
                amount: match (
                    typed("amount_mg_per_kg", self.amount_mg_per_kg, MgPerKg::new)?,
                    typed(
                        "amount_mg_per_kg_per_h",
                        self.amount_mg_per_kg_per_h,
                        MgPerKgPerHour::new,
                    )?,
                ) {
                    (Some(a), _) => Some(Amount::MgPerKg(a)),
                    (None, Some(r)) => Some(Amount::MgPerKgPerHour(r)),
                    (None, None) => None,
                },
                step: self.step,
                duration_minutes: typed("duration_minutes", self.duration_minutes, Minutes::new)?,
                ..DoseChoice::default()
            };
            match main {
                Role::Infusion => req.infusion = choice,
                Role::Dose => req.dose = choice,
                _ => req.bolus = choice,
            }
        }
        if self.bolus_mg_per_kg.is_some() || self.omit_bolus {
            if !(roles.contains(&Role::Bolus) && main != Some(Role::Bolus)) {
                return Err(AppError::invalid(
                    "bolus_mg_per_kg",
                    format!(
                        "protocol {} has no bolus before an infusion; choose the amount of its main component instead",
                        self.protocol
                    ),
                ));
            }
            req.bolus = DoseChoice {
                amount: typed("bolus_mg_per_kg", self.bolus_mg_per_kg, MgPerKg::new)?
                    .map(Amount::MgPerKg),
                omit: self.omit_bolus,
                ..DoseChoice::default()
            };
        }
        req.esketamine_dose_mg = typed("esketamine_dose_mg", self.esketamine_dose_mg, DoseMg::new)?;
        Ok(req)
    }

    /// The calculator's request without a patient record: the facts are the ones given here.
    pub fn bare_request(
        &self,
        library: &Library,
        actor: &Actor,
        now: i64,
    ) -> Result<DoseRequest, AppError> {
        use ketcare_clinical::dose::{PatientMeasures, Sex};
        use ketcare_clinical::units::{HeightCm, WeightKg};
        let r = self.order_request(library)?;
        let weight_kg = self.weight_kg.ok_or_else(|| {
            AppError::invalid("weight_kg", "required: the patient's weight in kg")
        })?;
        Ok(DoseRequest {
            protocol_id: r.protocol_id,
            patient: PatientMeasures {
                weight_kg: WeightKg::new(weight_kg)
                    .map_err(|e| AppError::invalid("weight_kg", e.to_string()))?,
                height_cm: typed("height_cm", self.height_cm, HeightCm::new)?,
                sex: match self.sex.as_deref() {
                    Some("female") => Some(Sex::Female),
                    Some("male") => Some(Sex::Male),
                    _ => None,
                },
                age: self
                    .age_years
                    .map(|years| ketcare_clinical::eligibility::Age {
                        years,
                        months: self.age_months.unwrap_or(0),
                    }),
            },
            administration: r.administration,
            bolus: r.bolus,
            infusion: r.infusion,
            dose: r.dose,
            repeat: r.repeat,
            esketamine_dose_mg: r.esketamine_dose_mg,
            first_dose_of_course: r.first_dose_of_course.unwrap_or(false),
            preparation: r.preparation,
            bolus_preparation: r.bolus_preparation,
            given_this_session_mg: None,
            author: username(actor)?,
            created_at: timestamp(now)?,
        })
    }
}

/// The built-in library plus the site's own protocol files, validated together.
pub async fn load_library(store: &dyn Store) -> Result<Library, String> {
    library_of(store.site_protocols().await.map_err(|e| e.to_string())?)
}

fn library_of(site: Vec<ketcare_store::SiteProtocol>) -> Result<Library, String> {
    let owners = owners_of(&site);
    let files: Vec<(String, String)> = site
        .into_iter()
        .map(|p| (format!("site/{}", p.file_name), p.body))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, b)| (f.as_str(), b.as_str()))
        .collect();
    Library::builtin_with_site(&refs)
        .map(|l| l.with_owners(owners))
        .map_err(|e| e.to_string())
}

/// The library's file name of each added file one site owns, with its site.
fn owners_of(files: &[ketcare_store::SiteProtocol]) -> std::collections::BTreeMap<String, i64> {
    files
        .iter()
        .filter_map(|p| p.site_id.map(|s| (format!("site/{}", p.file_name), s)))
        .collect()
}

/// The site whose own protocol `protocol` is, from the protocol files as the database holds
/// them now (not a library a process loaded earlier: another process may have added a file).
async fn owner_of(store: &dyn Store, protocol: &str) -> Result<Option<i64>, AppError> {
    let library = cached_library(store).await.map_err(|e| {
        tracing::error!(error = %e, "protocol library");
        AppError::Internal
    })?;
    Ok(library.owner(protocol))
}

/// Refused, naming `field`, when `protocol` is one site's own and the actor works at no site
/// where it is used (the organisation's protocols are used at every site). The actor's sites
/// and the protocol's owner come from the record.
pub async fn protocol_is_ours(
    store: &dyn Store,
    actor: &Actor,
    protocol: &str,
    field: &str,
) -> Result<(), AppError> {
    let Some(site) = owner_of(store, protocol).await? else {
        return Ok(());
    };
    if store.my_sites(actor).await?.admits(site) {
        Ok(())
    } else {
        Err(AppError::invalid(
            field,
            format!(
                "protocol {protocol} is site {site}'s own, used only there; you do not work at site {site}"
            ),
        ))
    }
}

/// Refused, naming `field`, when `protocol` is one site's own and `site` is another: a local
/// protocol's sessions are held at its site only.
pub async fn protocol_used_at(
    store: &dyn Store,
    protocol: &str,
    site: i64,
    field: &str,
) -> Result<(), AppError> {
    match owner_of(store, protocol).await? {
        Some(owner) if owner != site => Err(AppError::invalid(
            field,
            format!(
                "protocol {protocol} is site {owner}'s own: its sessions are held there, not at site {site}"
            ),
        )),
        _ => Ok(()),
    }
}

/// The library of [`load_library`], rebuilt only when the site's protocol files change (keyed by
/// the ids of their newest versions): for reads that only look protocols up, many times over
/// (a bulk export maps every order and session of every patient).
pub async fn cached_library(store: &dyn Store) -> Result<std::sync::Arc<Library>, String> {
    type Cached = Option<(Vec<i64>, std::sync::Arc<Library>)>;
    static CACHE: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    let site = store.site_protocols().await.map_err(|e| e.to_string())?;
    let key: Vec<i64> = site.iter().map(|p| p.id).collect();
    if let Some((k, lib)) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        && *k == key
    {
        return Ok(lib.clone());
    }
    let lib = std::sync::Arc::new(library_of(site)?);
    *CACHE.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, lib.clone()));
    Ok(lib)
}

/// What happened to a limit change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
        set_by: username(actor)?,
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
    o.second_approver = Some(username(actor)?);
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
    now: jiff::Timestamp,
) -> Result<i64, AppError> {
    let (current, _) = settings(store).await?;
    if new.limit_overrides != current.limit_overrides {
        return Err(AppError::invalid(
            "limit_overrides",
            "change limits through /api/v1/site-settings/limits (a widening needs a second administrator)",
        ));
    }
    save_settings(store, library, actor, new, reason, now).await
}

/// Adds (or replaces, by file name) a protocol file after validating the whole library with it:
/// the organisation's (`site` `None`) or one site's own; returns the new library for the caller
/// to put in force.
pub async fn add_site_protocol(
    store: &dyn Store,
    actor: &Actor,
    site: Option<i64>,
    file_name: &str,
    text: &str,
) -> Result<Library, AppError> {
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
    let mut rows: Vec<ketcare_store::SiteProtocol> = store
        .site_protocols()
        .await?
        .into_iter()
        .filter(|p| p.file_name != file_name)
        .collect();
    rows.push(ketcare_store::SiteProtocol {
        id: 0,
        file_name: file_name.to_owned(),
        body: text.to_owned(),
        added_by: String::new(),
        added_at: String::new(),
        site_id: site,
    });
    let owners = owners_of(&rows);
    let files: Vec<(String, String)> = rows
        .into_iter()
        .map(|p| (format!("site/{}", p.file_name), p.body))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, b)| (f.as_str(), b.as_str()))
        .collect();
    let library = Library::builtin_with_site(&refs)
        .map_err(|e| AppError::invalid("toml", e.to_string()))?
        .with_owners(owners);
    store
        .add_site_protocol(actor, site, file_name, text)
        .await?;
    Ok(library)
}
