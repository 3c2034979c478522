//! The cited protocol library: indication × drug × route × population.

pub(crate) mod library;
mod validate;

pub use library::{
    BUILTIN_PROTOCOLS, EffectiveLimit, Library, LookupError, MissingSetting, ProtocolSummary,
    ProtocolView, RULES, Readiness, VialProduct,
};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::source::{Cited, CitedText, Status};

/// A cited value with its position in the data file.
pub type SCited = Spanned<Cited>;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Indication {
    /// Treatment-resistant depression.
    Trd,
    /// Major depressive disorder with acute suicidal ideation or behaviour.
    Mdsi,
    /// Depression (unipolar or bipolar) outside the TRD label definition.
    Depression,
    BipolarDepressionSuicidalIdeation,
    Ptsd,
    GeneralisedAnxiety,
    SocialAnxiety,
    Crps,
    ChronicPain,
    AcutePain,
    EdAnalgesia,
    PaediatricAcutePain,
    ProceduralSedation,
}

impl Indication {
    /// Every variant, in declaration order (for forms and documentation).
    pub const ALL: &'static [Indication] = &[
        Indication::Trd,
        Indication::Mdsi,
        Indication::Depression,
        Indication::BipolarDepressionSuicidalIdeation,
        Indication::Ptsd,
        Indication::GeneralisedAnxiety,
        Indication::SocialAnxiety,
        Indication::Crps,
        Indication::ChronicPain,
        Indication::AcutePain,
        Indication::EdAnalgesia,
        Indication::PaediatricAcutePain,
        Indication::ProceduralSedation,
    ];
}

/// Broad clinical context of an indication (selects contraindication rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    Psychiatric,
    Pain,
    Sedation,
}

impl Indication {
    pub fn context(self) -> Context {
        use Indication::*;
        match self {
            Trd
            | Mdsi
            | Depression
            | BipolarDepressionSuicidalIdeation
            | Ptsd
            | GeneralisedAnxiety
            | SocialAnxiety => Context::Psychiatric,
            Crps | ChronicPain | AcutePain | EdAnalgesia | PaediatricAcutePain => Context::Pain,
            ProceduralSedation => Context::Sedation,
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Drug {
    RacemicKetamine,
    Esketamine,
}

impl Drug {
    /// Every variant, in declaration order (for forms and documentation).
    pub const ALL: &'static [Drug] = &[Drug::RacemicKetamine, Drug::Esketamine];
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    IvInfusion,
    IvBolus,
    Im,
    Intranasal,
    Oral,
    Sublingual,
    Subcutaneous,
}

impl Route {
    pub fn is_iv(self) -> bool {
        matches!(self, Route::IvInfusion | Route::IvBolus)
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Population {
    Adult,
    Adolescent,
    Child,
}

impl Population {
    /// The age bands (`data/age_bands.toml`: ICH E11 and the esketamine label's 18 years) a
    /// protocol's population admits. `child` protocols are the paediatric ones (ICH E11's
    /// paediatric population: every band below adult); their own age limits narrow it further.
    pub fn admits(self, band: ketcare_core::AgeBand) -> bool {
        use ketcare_core::AgeBand as B;
        match self {
            Population::Adult => band == B::Adult,
            Population::Adolescent => band == B::Adolescent,
            Population::Child => band != B::Adult,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Population::Adult => "adult",
            Population::Adolescent => "adolescent",
            Population::Child => "child",
        }
    }
}

/// Which body weight a weight-based dose uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeightBasis {
    Actual,
    Ideal,
    Adjusted,
}

/// How a component's amount is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DoseBasis {
    /// mg/kg for the whole administration.
    PerKg,
    /// A fixed amount in mg.
    FixedMg,
    /// mg/kg/h for the duration.
    PerKgPerHour,
    /// mg/h for the duration.
    MgPerHour,
}

impl DoseBasis {
    pub fn unit(self) -> &'static str {
        match self {
            DoseBasis::PerKg => "mg/kg",
            DoseBasis::FixedMg => "mg",
            DoseBasis::PerKgPerHour => "mg/kg/h",
            DoseBasis::MgPerHour => "mg/h",
        }
    }
    pub fn is_weight_based(self) -> bool {
        matches!(self, DoseBasis::PerKg | DoseBasis::PerKgPerHour)
    }
    pub fn is_rate(self) -> bool {
        matches!(self, DoseBasis::PerKgPerHour | DoseBasis::MgPerHour)
    }
}

/// Part of an administration.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[schema(as = ComponentRole)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// IV loading or push dose.
    Bolus,
    /// IV infusion over a duration.
    Infusion,
    /// Single non-IV administration (IM, SC, IN, oral, sublingual).
    Dose,
    /// Repeat dose during the same session (e.g. procedural sedation top-up).
    Repeat,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Bolus, Role::Infusion, Role::Dose, Role::Repeat];

    /// The request field of this component (`bolus`, `infusion`, `dose`, `repeat`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Bolus => "bolus",
            Role::Infusion => "infusion",
            Role::Dose => "dose",
            Role::Repeat => "repeat",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightBasisSpec {
    pub basis: WeightBasis,
    pub source: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One administered component (bolus, infusion, single dose or repeat dose).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub basis: DoseBasis,
    /// Default amount in the basis unit; absent when the prescriber must choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<SCited>,
    /// Run time (infusions, slow boluses); absent when the prescriber must choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<SCited>,
    /// Titration steps in the basis unit (chosen by index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<SCited>,
    /// Titration increment in the basis unit (step k = default + k × increment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increment: Option<SCited>,
    /// Range the prescriber may choose from, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub titration: Option<CitedText>,
    /// How to give it (e.g. "over 30–60 s", "hold 5 min").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub administration: Option<CitedText>,
}

/// Esketamine nasal devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsketamineSpec {
    pub device_mg: SCited,
    pub minutes_between_devices: SCited,
    pub dose_options_mg: Vec<SCited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_dose_mg: Option<SCited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_dose_mg: Option<SCited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub administration: Option<CitedText>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    Bolus,
    Infusion,
    Dose,
    Repeat,
    /// Every administered component.
    EachAdministration,
    /// The session total (this order plus what was already given).
    Session,
    /// The patient (age).
    Patient,
}

impl LimitScope {
    pub(crate) fn covers(self, role: Role) -> bool {
        matches!(
            (self, role),
            (LimitScope::EachAdministration, _)
                | (LimitScope::Bolus, Role::Bolus)
                | (LimitScope::Infusion, Role::Infusion)
                | (LimitScope::Dose, Role::Dose)
                | (LimitScope::Repeat, Role::Repeat)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitQuantity {
    Mg,
    MgPerKg,
    MgPerHour,
    MgPerKgPerHour,
    Minutes,
    AgeYears,
    AgeMonths,
    /// Body weight (the plausibility range; not a protocol limit).
    Kg,
}

impl LimitQuantity {
    pub fn unit(self) -> &'static str {
        match self {
            LimitQuantity::Mg => "mg",
            LimitQuantity::MgPerKg => "mg/kg",
            LimitQuantity::MgPerHour => "mg/h",
            LimitQuantity::MgPerKgPerHour => "mg/kg/h",
            LimitQuantity::Minutes => "min",
            LimitQuantity::AgeYears => "years",
            LimitQuantity::AgeMonths => "months",
            LimitQuantity::Kg => "kg",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Max,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitSeverity {
    /// Crossing it needs an override with a reason.
    Soft,
    /// Crossing it refuses the calculation.
    Hard,
    /// The dose is reduced to it (and the result says so).
    Cap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    pub id: String,
    /// Plain words, e.g. "highest dose tested in the dose-finding RCT".
    pub label: String,
    pub applies_to: LimitScope,
    pub quantity: LimitQuantity,
    pub bound: Bound,
    pub severity: LimitSeverity,
    pub value: SCited,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub induction_sessions: Option<SCited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub induction_sessions_per_week: Option<SCited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub induction_weeks: Option<SCited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub induction_span_days: Option<SCited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub induction: Option<CitedText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<CitedText>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastingSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub food_hours: Option<SCited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_liquid_hours: Option<SCited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<CitedText>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_observation_minutes: Option<SCited>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<CitedText>,
}

/// A protocol as loaded from one data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub id: String,
    pub version: u32,
    pub title: String,
    pub indication: Indication,
    pub drug: Drug,
    pub route: Route,
    pub population: Population,
    /// Evidence and regulatory status in words.
    pub evidence: CitedText,
    pub weight_basis: Spanned<WeightBasisSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bolus: Option<Spanned<Component>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infusion: Option<Spanned<Component>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose: Option<Spanned<Component>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Spanned<Component>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esketamine: Option<Spanned<EsketamineSpec>>,
    /// Concentration the protocol requires (e.g. sublingual from 100 mg/mL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_concentration_mg_per_ml: Option<SCited>,
    #[serde(default)]
    pub limits: Vec<Spanned<LimitSpec>>,
    #[serde(default)]
    pub course: CourseSpec,
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    #[serde(default)]
    pub fasting: FastingSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<CitedText>,
}

impl Protocol {
    /// Which site settings this protocol still needs (same answer as `Library::readiness`).
    pub fn readiness(&self, settings: &crate::settings::SiteSettings) -> Readiness {
        library::readiness(self, settings)
    }

    /// Components in administration order (bolus before infusion).
    pub fn components(&self) -> Vec<(Role, &Component)> {
        let mut v = Vec::new();
        if let Some(c) = &self.bolus {
            v.push((Role::Bolus, c.get_ref()));
        }
        if let Some(c) = &self.infusion {
            v.push((Role::Infusion, c.get_ref()));
        }
        if let Some(c) = &self.dose {
            v.push((Role::Dose, c.get_ref()));
        }
        v
    }

    pub fn component(&self, role: Role) -> Option<&Component> {
        match role {
            Role::Bolus => self.bolus.as_ref(),
            Role::Infusion => self.infusion.as_ref(),
            Role::Dose => self.dose.as_ref(),
            Role::Repeat => self.repeat.as_ref(),
        }
        .map(Spanned::get_ref)
    }

    /// Every cited number of the protocol with a field path (for readiness and display).
    pub fn cited_values(&self) -> Vec<(String, &Cited)> {
        let mut out: Vec<(String, &Cited)> = Vec::new();
        fn comp<'a>(
            out: &mut Vec<(String, &'a Cited)>,
            name: &str,
            c: &'a Option<Spanned<Component>>,
        ) {
            if let Some(c) = c {
                let c = c.get_ref();
                if let Some(d) = &c.default {
                    out.push((format!("{name}.default"), d.get_ref()));
                }
                if let Some(d) = &c.duration_minutes {
                    out.push((format!("{name}.duration_minutes"), d.get_ref()));
                }
                for (i, s) in c.steps.iter().enumerate() {
                    out.push((format!("{name}.steps[{i}]"), s.get_ref()));
                }
                if let Some(d) = &c.increment {
                    out.push((format!("{name}.increment"), d.get_ref()));
                }
            }
        }
        comp(&mut out, "bolus", &self.bolus);
        comp(&mut out, "infusion", &self.infusion);
        comp(&mut out, "dose", &self.dose);
        comp(&mut out, "repeat", &self.repeat);
        if let Some(e) = &self.esketamine {
            let e = e.get_ref();
            out.push(("esketamine.device_mg".into(), e.device_mg.get_ref()));
            out.push((
                "esketamine.minutes_between_devices".into(),
                e.minutes_between_devices.get_ref(),
            ));
            for (i, d) in e.dose_options_mg.iter().enumerate() {
                out.push((format!("esketamine.dose_options_mg[{i}]"), d.get_ref()));
            }
            if let Some(d) = &e.first_dose_mg {
                out.push(("esketamine.first_dose_mg".into(), d.get_ref()));
            }
            if let Some(d) = &e.default_dose_mg {
                out.push(("esketamine.default_dose_mg".into(), d.get_ref()));
            }
        }
        if let Some(c) = &self.required_concentration_mg_per_ml {
            out.push(("required_concentration_mg_per_ml".into(), c.get_ref()));
        }
        for l in &self.limits {
            let l = l.get_ref();
            out.push((format!("limits.{}", l.id), l.value.get_ref()));
        }
        let c = &self.course;
        for (n, v) in [
            ("course.induction_sessions", &c.induction_sessions),
            (
                "course.induction_sessions_per_week",
                &c.induction_sessions_per_week,
            ),
            ("course.induction_weeks", &c.induction_weeks),
            ("course.induction_span_days", &c.induction_span_days),
            (
                "monitoring.minimum_observation_minutes",
                &self.monitoring.minimum_observation_minutes,
            ),
            ("fasting.food_hours", &self.fasting.food_hours),
            (
                "fasting.clear_liquid_hours",
                &self.fasting.clear_liquid_hours,
            ),
        ] {
            if let Some(v) = v {
                out.push((n.to_string(), v.get_ref()));
            }
        }
        out
    }
}
