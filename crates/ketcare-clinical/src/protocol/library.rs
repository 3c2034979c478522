//! Loading the library and answering list / show / readiness.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::parse_protocol;
use super::{
    Bound, Drug, Indication, LimitQuantity, LimitScope, LimitSeverity, LimitSpec, Population,
    Protocol, Route,
};
use crate::data::{DataError, FileCtx, parse_toml};
use crate::eligibility::RuleSet;
use crate::settings::{SettingsError, SiteSettings, keys};
use crate::source::{Provenance, SourceCatalogue, Status};

const SOURCES: (&str, &str) = ("data/sources.toml", include_str!("../../data/sources.toml"));
const PRODUCTS: (&str, &str) = (
    "data/products.toml",
    include_str!("../../data/products.toml"),
);
/// The eligibility rules file (thresholds, condition rules), embedded at compile time.
pub const RULES: (&str, &str) = (
    "data/eligibility/rules.toml",
    include_str!("../../data/eligibility/rules.toml"),
);

macro_rules! protocol_files {
    ($($name:literal),* $(,)?) => {
        &[$((concat!("data/protocols/", $name), include_str!(concat!("../../data/protocols/", $name)))),*]
    };
}

/// The built-in protocol files, embedded at compile time.
pub const BUILTIN_PROTOCOLS: &[(&str, &str)] = protocol_files!(
    "trd-adult-iv-ketamine.toml",
    "trd-adolescent-iv-ketamine-dwyer.toml",
    "trd-adolescent-iv-ketamine-yale.toml",
    "trd-adult-esketamine.toml",
    "mdsi-adult-esketamine.toml",
    "ptsd-adult-iv-ketamine.toml",
    "social-anxiety-adult-iv-ketamine.toml",
    "anxiety-adult-sc-ketamine.toml",
    "bipolar-si-adult-iv-ketamine.toml",
    "crps-adult-iv-ketamine-22mgh.toml",
    "crps-adult-iv-ketamine-035mgkgh.toml",
    "chronic-pain-adult-iv-ketamine.toml",
    "acute-pain-adult-iv-ketamine.toml",
    "ed-analgesia-adult-iv-ketamine.toml",
    "paediatric-pain-in-ketamine.toml",
    "sedation-child-iv-ketamine.toml",
    "sedation-adult-iv-ketamine.toml",
    "sedation-child-im-ketamine.toml",
    "sedation-adult-im-ketamine.toml",
    "sedation-child-in-ketamine.toml",
    "trd-adult-oral-ketamine-fixed.toml",
    "trd-adult-oral-ketamine-weight.toml",
    "depression-adult-sl-ketamine.toml",
);

/// A ketamine vial strength that the program stocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VialProduct {
    pub label: String,
    pub concentration_mg_per_ml: super::SCited,
    /// For IV use the drawn volume must be diluted to at least this many times its volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iv_min_dilution_factor: Option<super::SCited>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductsFile {
    #[allow(dead_code)]
    version: u32,
    vial: Vec<VialProduct>,
}

/// Short description for `protocol list`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProtocolSummary {
    pub id: String,
    pub version: u32,
    pub title: String,
    pub indication: Indication,
    pub drug: Drug,
    pub route: Route,
    pub population: Population,
    pub file: String,
    /// The site whose own protocol it is, used only there; `None`: the organisation's (every
    /// built-in protocol, and an added file no site owns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<i64>,
}

/// A site setting the protocol (or rule) needs.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct MissingSetting {
    pub key: String,
    /// Which value it supplies (field path).
    pub used_for: String,
}

/// Whether a protocol can be used with these settings.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub protocol_id: String,
    pub version: u32,
    pub ready: bool,
    /// Required settings the site has not set: the protocol is blocked until they are.
    pub missing: Vec<MissingSetting>,
    /// Optional U values left unset (e.g. a per-dose mg cap): shown, not blocking.
    pub optional_unset: Vec<MissingSetting>,
    /// Invalid limit overrides (e.g. a hard limit widened without a second approver).
    pub settings_problems: Vec<SettingsError>,
}

/// A limit as it applies at this site.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EffectiveLimit {
    pub id: String,
    pub label: String,
    pub applies_to: LimitScope,
    pub quantity: LimitQuantity,
    pub bound: Bound,
    pub severity: LimitSeverity,
    /// `None`: an optional U value the site has not set (limit inactive).
    pub value: Option<f64>,
    pub provenance: Option<Provenance>,
    /// The value in the data file (or the site setting), before any administrator override.
    pub cited_value: Option<f64>,
    pub status: Status,
}

/// Everything `protocol show` displays.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProtocolView {
    pub file: String,
    /// The site whose own protocol it is, used only there; `None`: the organisation's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<i64>,
    /// The protocol as its file states it: every value with its source and status (described
    /// field by field in `ketcare-clinical/README.md` and its data files, not here: the loaded
    /// file keeps its TOML spans).
    #[schema(value_type = Object)]
    pub protocol: Protocol,
    pub readiness: Readiness,
    pub effective_limits: Vec<EffectiveLimit>,
    /// Citation text of every source ID the protocol uses.
    pub citations: BTreeMap<String, String>,
}

/// A protocol id was not found.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[error("unknown protocol {id:?}; expected one of: {}", available.join(", "))]
pub struct LookupError {
    pub id: String,
    pub available: Vec<String>,
}

/// The loaded, validated library: protocols, vial products, eligibility rules, sources.
#[derive(Debug, Clone)]
pub struct Library {
    protocols: BTreeMap<String, (String, Protocol)>,
    sources: SourceCatalogue,
    vials: Vec<VialProduct>,
    rules: RuleSet,
    /// The age bands (`data/age_bands.toml`) a protocol's population is checked against.
    age_bands: ketcare_core::AgeBands,
    /// The site owning each protocol file that one site owns (file name → site id); a file not
    /// here is the organisation's.
    owners: BTreeMap<String, i64>,
}

impl Library {
    /// The built-in library.
    pub fn builtin() -> Result<Library, DataError> {
        Self::load_from_strs(BUILTIN_PROTOCOLS)
    }

    /// Built-in protocols plus a site's own protocol files `(file name, TOML text)`.
    pub fn builtin_with_site(site_files: &[(&str, &str)]) -> Result<Library, DataError> {
        let mut all: Vec<(&str, &str)> = BUILTIN_PROTOCOLS.to_vec();
        all.extend_from_slice(site_files);
        Self::load_from_strs(&all)
    }

    /// Exactly these protocol files (with the built-in sources, vials and eligibility rules).
    pub fn load_from_strs(protocol_files: &[(&str, &str)]) -> Result<Library, DataError> {
        let sources = SourceCatalogue::parse(SOURCES.0, SOURCES.1)?;
        let vials = parse_products(PRODUCTS.0, PRODUCTS.1, &sources)?;
        let rules = RuleSet::parse(RULES.0, RULES.1, &sources)?;
        let age_bands = ketcare_core::AgeBands::builtin().map_err(|e| DataError::Invalid {
            file: ketcare_core::age::BUILTIN_FILE.into(),
            line: 0,
            field: "band".into(),
            message: e.to_string(),
        })?;
        let mut protocols: BTreeMap<String, (String, Protocol)> = BTreeMap::new();
        for (file, text) in protocol_files {
            let p = parse_protocol(file, text, &sources)?;
            if let Some((other, _)) = protocols.get(&p.id) {
                return Err(DataError::DuplicateProtocol {
                    file: (*file).to_string(),
                    id: p.id.clone(),
                    other_file: other.clone(),
                });
            }
            protocols.insert(p.id.clone(), ((*file).to_string(), p));
        }
        Ok(Library {
            protocols,
            sources,
            vials,
            rules,
            age_bands,
            owners: BTreeMap::new(),
        })
    }

    /// This library with the files `owners` names (file name → site id) owned by those sites.
    pub fn with_owners(mut self, owners: BTreeMap<String, i64>) -> Library {
        self.owners = owners;
        self
    }

    /// The site whose own protocol `id` is (`None`: the organisation's, or no such protocol).
    pub fn owner(&self, id: &str) -> Option<i64> {
        let (file, _) = self.protocols.get(id)?;
        self.owners.get(file).copied()
    }

    pub fn age_bands(&self) -> &ketcare_core::AgeBands {
        &self.age_bands
    }

    pub fn sources(&self) -> &SourceCatalogue {
        &self.sources
    }
    pub fn vials(&self) -> &[VialProduct] {
        &self.vials
    }
    pub fn eligibility_rules(&self) -> &RuleSet {
        &self.rules
    }

    /// All protocols, sorted by id.
    pub fn list(&self) -> Vec<ProtocolSummary> {
        self.protocols
            .values()
            .map(|(file, p)| ProtocolSummary {
                id: p.id.clone(),
                version: p.version,
                title: p.title.clone(),
                indication: p.indication,
                drug: p.drug,
                route: p.route,
                population: p.population,
                file: file.clone(),
                site: self.owners.get(file).copied(),
            })
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<&Protocol, LookupError> {
        self.protocols
            .get(id)
            .map(|(_, p)| p)
            .ok_or_else(|| LookupError {
                id: id.to_string(),
                available: self.protocols.keys().cloned().collect(),
            })
    }

    /// Protocol, readiness, effective limits and citations.
    pub fn show(&self, id: &str, settings: &SiteSettings) -> Result<ProtocolView, LookupError> {
        let p = self.get(id)?;
        let file = self
            .protocols
            .get(id)
            .map(|(f, _)| f.clone())
            .unwrap_or_default();
        let mut citations = BTreeMap::new();
        let mut add = |ids: &[String]| {
            for i in ids {
                if let Some(c) = self.sources.citation(i) {
                    citations.insert(i.clone(), c.to_string());
                }
            }
        };
        for (_, c) in p.cited_values() {
            add(&c.source);
        }
        add(&p.evidence.source);
        add(&p.weight_basis.get_ref().source);
        for t in p.monitoring.items.iter().chain(p.notes.iter()) {
            add(&t.source);
        }
        Ok(ProtocolView {
            site: self.owners.get(&file).copied(),
            file,
            protocol: p.clone(),
            readiness: readiness(p, settings),
            effective_limits: p
                .limits
                .iter()
                .map(|l| {
                    effective_limit(p, l.get_ref(), settings)
                        .unwrap_or_else(|_| inactive(l.get_ref()))
                })
                .collect(),
            citations,
        })
    }

    /// Which site settings the protocol still needs.
    pub fn readiness(&self, id: &str, settings: &SiteSettings) -> Result<Readiness, LookupError> {
        self.get(id).map(|p| readiness(p, settings))
    }

    /// Screens a patient with this library's eligibility rules (same as [`crate::screen`]).
    pub fn screen(
        &self,
        input: &crate::eligibility::ScreeningInput,
        settings: &SiteSettings,
    ) -> Result<crate::eligibility::ScreeningOutcome, crate::eligibility::ScreenError> {
        crate::eligibility::screen(&self.rules, input, settings)
    }

    /// Calculates a dose order (same as [`crate::calculate`]).
    pub fn calculate(
        &self,
        settings: &SiteSettings,
        request: &crate::dose::DoseRequest,
    ) -> Result<crate::dose::DoseOrder, crate::dose::DoseError> {
        crate::dose::calculate(self, settings, request)
    }

    /// Checks every value and limit override in the settings against the library.
    pub fn check_settings(&self, settings: &SiteSettings) -> Vec<SettingsError> {
        let mut out = Vec::new();
        for (k, v) in &settings.values {
            if !crate::settings::usable(*v) {
                out.push(SettingsError::BadValue {
                    key: k.clone(),
                    value: *v,
                });
            }
        }
        for o in &settings.limit_overrides {
            let found = self.get(&o.protocol_id).ok().and_then(|p| {
                p.limits
                    .iter()
                    .find(|l| l.get_ref().id == o.limit_id)
                    .map(|l| (p, l.get_ref()))
            });
            match found {
                None => out.push(SettingsError::UnknownLimit {
                    protocol_id: o.protocol_id.clone(),
                    limit_id: o.limit_id.clone(),
                }),
                Some((p, l)) => {
                    if let Err(e) = effective_limit(p, l, settings) {
                        out.push(e);
                    }
                }
            }
        }
        out
    }
}

fn parse_products(
    file: &str,
    text: &str,
    sources: &SourceCatalogue,
) -> Result<Vec<VialProduct>, DataError> {
    let f: ProductsFile = parse_toml(file, text)?;
    let cx = FileCtx { file, text };
    for (i, v) in f.vial.iter().enumerate() {
        for (n, c) in [
            ("concentration_mg_per_ml", Some(&v.concentration_mg_per_ml)),
            ("iv_min_dilution_factor", v.iv_min_dilution_factor.as_ref()),
        ] {
            if let Some(c) = c {
                if let Some(m) = c.get_ref().shape_problem(sources) {
                    return Err(cx.invalid(c.span(), format!("vial[{i}].{n}"), m));
                }
                if c.get_ref().status == Status::U {
                    return Err(cx.invalid(
                        c.span(),
                        format!("vial[{i}].{n}"),
                        "vial data must be cited (V or S)",
                    ));
                }
            }
        }
    }
    Ok(f.vial)
}

fn inactive(l: &LimitSpec) -> EffectiveLimit {
    EffectiveLimit {
        id: l.id.clone(),
        label: l.label.clone(),
        applies_to: l.applies_to,
        quantity: l.quantity,
        bound: l.bound,
        severity: l.severity,
        value: None,
        provenance: None,
        cited_value: None,
        status: l.value.get_ref().status,
    }
}

/// The limit as it applies at this site, or why the site's override is refused.
pub(crate) fn effective_limit(
    p: &Protocol,
    l: &LimitSpec,
    settings: &SiteSettings,
) -> Result<EffectiveLimit, SettingsError> {
    let base = l.value.get_ref().resolve(settings);
    let mut eff = inactive(l);
    eff.cited_value = base.as_ref().map(|r| r.value);
    eff.value = eff.cited_value;
    eff.provenance = base.map(|r| r.provenance);
    let Some(o) = settings.limit_override(&p.id, &l.id) else {
        return Ok(eff);
    };
    if !crate::settings::usable(o.value) {
        return Err(SettingsError::BadValue {
            key: format!("{}/{}", p.id, l.id),
            value: o.value,
        });
    }
    if o.reason.trim().is_empty() {
        return Err(SettingsError::MissingReason {
            protocol_id: p.id.clone(),
            limit_id: l.id.clone(),
        });
    }
    if o.second_approver.as_ref() == Some(&o.set_by) {
        return Err(SettingsError::ApproverIsAuthor {
            protocol_id: p.id.clone(),
            limit_id: l.id.clone(),
            set_by: o.set_by.to_string(),
        });
    }
    let widens = match (eff.cited_value, l.bound) {
        (Some(c), Bound::Max) => o.value > c,
        (Some(c), Bound::Min) => o.value < c,
        (None, _) => false,
    };
    if widens && l.severity != LimitSeverity::Soft && o.second_approver.is_none() {
        return Err(SettingsError::WideningNeedsSecondApprover {
            protocol_id: p.id.clone(),
            limit_id: l.id.clone(),
            value: o.value,
            cited: eff.cited_value.unwrap_or(o.value),
            set_by: o.set_by.to_string(),
        });
    }
    eff.value = Some(o.value);
    eff.provenance = Some(Provenance::SiteLimitOverride {
        key: format!("{}/{}", p.id, l.id),
        set_by: o.set_by.to_string(),
        second_approver: o.second_approver.as_ref().map(ToString::to_string),
    });
    Ok(eff)
}

pub(crate) fn readiness(p: &Protocol, settings: &SiteSettings) -> Readiness {
    let mut missing = Vec::new();
    let mut optional_unset = Vec::new();
    for (path, c) in p.cited_values() {
        if let Some(key) = c.missing_setting(settings) {
            let m = MissingSetting {
                key: key.to_string(),
                used_for: path,
            };
            if c.is_required_setting() {
                missing.push(m);
            } else {
                optional_unset.push(m);
            }
        }
    }
    if p.drug == Drug::RacemicKetamine {
        let weight_based = [&p.bolus, &p.infusion, &p.dose, &p.repeat]
            .iter()
            .filter_map(|c| c.as_ref())
            .any(|c| c.get_ref().basis.is_weight_based());
        let mut need = vec![(keys::SYRINGE_ML_INCREMENT, "rounding of volumes to draw")];
        if weight_based {
            need.push((keys::DOSE_MG_INCREMENT, "rounding of weight-based doses"));
        }
        if p.infusion.is_some() {
            need.push((keys::PUMP_ML_PER_H_INCREMENT, "rounding of pump rates"));
        }
        for (k, what) in need {
            if settings.value(k).is_none() {
                missing.push(MissingSetting {
                    key: k.to_string(),
                    used_for: what.to_string(),
                });
            }
        }
    }
    let mut settings_problems = Vec::new();
    // A key that is present but unusable (≤ 0, NaN, absurd) is a problem, not a silent gap.
    let mut used: Vec<&str> = p
        .cited_values()
        .into_iter()
        .filter_map(|(_, c)| c.site_setting.as_deref())
        .collect();
    if p.drug == Drug::RacemicKetamine {
        used.extend([
            keys::SYRINGE_ML_INCREMENT,
            keys::DOSE_MG_INCREMENT,
            keys::PUMP_ML_PER_H_INCREMENT,
        ]);
    }
    for k in used {
        if let Some(v) = settings.values.get(k)
            && !crate::settings::usable(*v)
        {
            settings_problems.push(SettingsError::BadValue {
                key: k.to_string(),
                value: *v,
            });
        }
    }
    for l in &p.limits {
        if let Err(e) = effective_limit(p, l.get_ref(), settings) {
            settings_problems.push(e);
        }
    }
    missing.sort();
    missing.dedup();
    Readiness {
        protocol_id: p.id.clone(),
        version: p.version,
        ready: missing.is_empty() && settings_problems.is_empty(),
        missing,
        optional_unset,
        settings_problems,
    }
}
