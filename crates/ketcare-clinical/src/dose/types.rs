//! Request and result types of the dose calculator (all serde, for the API and the CLI).

use serde::{Deserialize, Serialize};

use super::round::Direction;
use crate::eligibility::Age;
use crate::ids::{Timestamp, Username};
use crate::protocol::{
    Bound, DoseBasis, LimitQuantity, LimitSeverity, MissingSetting, Role, WeightBasis,
};
use crate::settings::SettingsError;
use crate::source::{CitedText, Provenance, Status};
use crate::units::{
    ConcentrationMgPerMl, DoseMg, HeightCm, MgPerHour, MgPerKg, MgPerKgPerHour, Minutes, VolumeMl,
    WeightKg,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DoseSex)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
}

/// The patient's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientMeasures {
    pub weight_kg: WeightKg,
    #[serde(default)]
    pub height_cm: Option<HeightCm>,
    #[serde(default)]
    pub sex: Option<Sex>,
    #[serde(default)]
    pub age: Option<Age>,
}

/// A prescriber-chosen amount, typed by unit so a rate cannot land in a dose field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    MgPerKg(MgPerKg),
    Mg(DoseMg),
    MgPerKgPerHour(MgPerKgPerHour),
    MgPerHour(MgPerHour),
}

impl Amount {
    pub fn basis(self) -> DoseBasis {
        match self {
            Amount::MgPerKg(_) => DoseBasis::PerKg,
            Amount::Mg(_) => DoseBasis::FixedMg,
            Amount::MgPerKgPerHour(_) => DoseBasis::PerKgPerHour,
            Amount::MgPerHour(_) => DoseBasis::MgPerHour,
        }
    }
    pub fn value(self) -> f64 {
        match self {
            Amount::MgPerKg(v) => v.value(),
            Amount::Mg(v) => v.value(),
            Amount::MgPerKgPerHour(v) => v.value(),
            Amount::MgPerHour(v) => v.value(),
        }
    }
}

/// The prescriber's choices for one component; everything left out takes the protocol default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoseChoice {
    #[serde(default)]
    pub amount: Option<Amount>,
    /// Titration step (index into the protocol's steps, or number of increments above default).
    #[serde(default)]
    pub step: Option<u32>,
    #[serde(default)]
    pub duration_minutes: Option<Minutes>,
    /// Leave this component out (only a bolus that precedes an infusion may be omitted).
    #[serde(default)]
    pub omit: bool,
}

/// Vial strength and optional dilution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preparation {
    pub concentration_mg_per_ml: ConcentrationMgPerMl,
    #[serde(default)]
    pub final_volume_ml: Option<VolumeMl>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Administration {
    /// The protocol's bolus / infusion / dose.
    #[default]
    Initial,
    /// A repeat dose in the same session (protocols with a `[repeat]` table).
    Repeat,
}

/// Everything the calculator reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoseRequest {
    pub protocol_id: String,
    pub patient: PatientMeasures,
    #[serde(default)]
    pub administration: Administration,
    #[serde(default)]
    pub bolus: DoseChoice,
    #[serde(default)]
    pub infusion: DoseChoice,
    #[serde(default)]
    pub dose: DoseChoice,
    #[serde(default)]
    pub repeat: DoseChoice,
    /// Esketamine: the dose in mg (a multiple of the device strength).
    #[serde(default)]
    pub esketamine_dose_mg: Option<DoseMg>,
    /// Esketamine: whether this is the first dose of the course.
    #[serde(default)]
    pub first_dose_of_course: bool,
    /// Preparation of the main component (the infusion if there is one).
    #[serde(default)]
    pub preparation: Option<Preparation>,
    /// Preparation of the bolus when the protocol has both a bolus and an infusion.
    #[serde(default)]
    pub bolus_preparation: Option<Preparation>,
    /// Ketamine already given in this session, in mg (for session totals).
    #[serde(default)]
    pub given_this_session_mg: Option<DoseMg>,
    pub author: Username,
    pub created_at: Timestamp,
}

impl DoseRequest {
    /// A request with protocol defaults for a patient.
    pub fn new(
        protocol_id: &str,
        weight_kg: WeightKg,
        author: Username,
        created_at: Timestamp,
    ) -> Self {
        DoseRequest {
            protocol_id: protocol_id.to_string(),
            patient: PatientMeasures {
                weight_kg,
                height_cm: None,
                sex: None,
                age: None,
            },
            administration: Administration::Initial,
            bolus: DoseChoice::default(),
            infusion: DoseChoice::default(),
            dose: DoseChoice::default(),
            repeat: DoseChoice::default(),
            esketamine_dose_mg: None,
            first_dose_of_course: false,
            preparation: None,
            bolus_preparation: None,
            given_this_session_mg: None,
            author,
            created_at,
        }
    }

    pub(crate) fn choice(&self, role: Role) -> &DoseChoice {
        match role {
            Role::Bolus => &self.bolus,
            Role::Infusion => &self.infusion,
            Role::Dose => &self.dose,
            Role::Repeat => &self.repeat,
        }
    }
}

/// A number in a result, with its unit and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Number {
    pub value: f64,
    pub unit: String,
    pub provenance: Provenance,
}

/// Weight used and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WeightReport {
    pub actual_kg: Number,
    pub basis: WeightBasis,
    pub basis_kg: Number,
    pub basis_source: Vec<String>,
    pub basis_status: Status,
    /// Body-mass index when height is given (kg / m²; arithmetic, no cut-off applied).
    pub bmi_kg_per_m2: Option<Number>,
    /// Why ideal and adjusted body weight are or are not computed.
    pub ideal_and_adjusted_weight: String,
}

/// Vial, volume and pump settings of one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreparationResult {
    pub vial_concentration: Number,
    pub volume_to_draw: Number,
    pub final_volume: Option<Number>,
    pub final_concentration: Number,
    pub rate_ml_per_h: Option<Number>,
    pub run_time_minutes: Option<Number>,
    pub delivered_mg_per_hour: Option<Number>,
}

/// One computed component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComponentResult {
    pub role: Role,
    pub basis: DoseBasis,
    /// The ordered amount in the basis unit (e.g. 0.5 mg/kg).
    pub ordered: Number,
    pub duration_minutes: Option<Number>,
    /// mg before caps and rounding.
    pub calculated_mg: Number,
    /// mg that will be given (after cap, dose rounding and volume rounding).
    pub dose_mg: Number,
    pub mg_per_kg: Number,
    pub mg_per_hour: Option<Number>,
    pub mg_per_kg_per_hour: Option<Number>,
    pub preparation: Option<PreparationResult>,
    pub administration: Option<CitedText>,
}

/// One esketamine device in the administration schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceStep {
    pub device: u32,
    pub at_minute: f64,
}

/// Esketamine dose in devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceResult {
    pub dose_mg: Number,
    pub device_mg: Number,
    pub devices: u32,
    pub minutes_between_devices: Number,
    pub schedule: Vec<DeviceStep>,
    pub administration: Option<CitedText>,
}

/// A rounding that was applied, stated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rounding {
    pub what: String,
    pub from: f64,
    pub to: f64,
    pub unit: String,
    pub increment: f64,
    pub setting: String,
    pub direction: Direction,
    pub why: String,
}

/// One limit compared with a computed number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitCheck {
    pub limit_id: String,
    pub label: String,
    pub applies_to: String,
    pub severity: LimitSeverity,
    pub bound: Bound,
    pub quantity: LimitQuantity,
    pub limit: f64,
    pub computed: f64,
    pub unit: String,
    pub provenance: Provenance,
    /// `false`: a soft limit crossed (needs override) or a cap applied.
    pub within: bool,
}

/// The full, explained calculation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DoseCalculation {
    pub protocol_id: String,
    pub protocol_version: u32,
    pub protocol_title: String,
    pub weight: WeightReport,
    pub components: Vec<ComponentResult>,
    pub esketamine: Option<DeviceResult>,
    /// This order plus what was already given in the session.
    pub session_total_mg: Number,
    pub limit_checks: Vec<LimitCheck>,
    pub soft_limits_crossed: Vec<LimitCheck>,
    pub caps_applied: Vec<LimitCheck>,
    pub roundings: Vec<Rounding>,
    pub notes: Vec<String>,
}

/// A refusal by a hard limit (or cap), naming the limit and its source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HardLimitRefusal {
    pub limit_id: String,
    pub label: String,
    pub applies_to: String,
    pub bound: Bound,
    pub limit: f64,
    pub computed: f64,
    pub unit: String,
    pub sources: Vec<String>,
    pub status: Status,
    pub provenance: Provenance,
}

impl std::fmt::Display for HardLimitRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refused by hard limit {} ({}): {} {} is {} the limit {} {} [{}] {:?}",
            self.limit_id,
            self.label,
            self.computed,
            self.unit,
            if self.bound == Bound::Max {
                "above"
            } else {
                "below"
            },
            self.limit,
            self.unit,
            self.sources.join(", "),
            self.status
        )
    }
}

/// Why the calculator refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum DoseError {
    #[error(transparent)]
    UnknownProtocol(#[from] crate::protocol::LookupError),
    #[error("protocol {protocol_id} is blocked until the site sets: {}", .missing.iter().map(|m| m.key.as_str()).collect::<Vec<_>>().join(", "))]
    Blocked {
        protocol_id: String,
        missing: Vec<MissingSetting>,
        settings_problems: Vec<SettingsError>,
    },
    #[error("{0}")]
    HardLimit(Box<HardLimitRefusal>),
    #[error("{role:?}: the protocol has no default {what}; expected a chosen value in {unit}")]
    ChoiceRequired {
        role: Role,
        what: String,
        unit: String,
    },
    #[error("{role:?}: amount given in {got}, expected {expected}")]
    WrongUnit {
        role: Role,
        expected: String,
        got: String,
    },
    #[error("{role:?}: titration step {step} does not exist; expected 0 to {max}")]
    StepOutOfRange { role: Role, step: u32, max: u32 },
    #[error("{role:?}: this protocol has no titration steps or increment")]
    NoTitration { role: Role },
    #[error("limit {limit_id}: the protocol has an age limit; expected the patient's age")]
    AgeRequired { limit_id: String },
    #[error("weight basis {basis:?}: {reason}")]
    WeightBasisUnavailable { basis: WeightBasis, reason: String },
    #[error("vial concentration {given} mg/mL is not stocked; expected one of {available:?} mg/mL")]
    ConcentrationNotStocked { given: f64, available: Vec<f64> },
    #[error("this protocol requires {required} mg/mL [{}], got {given} mg/mL", .sources.join(", "))]
    ConcentrationNotAllowed {
        given: f64,
        required: f64,
        sources: Vec<String>,
    },
    #[error("{concentration} mg/mL must be diluted before IV use: expected a final volume of at least {min_final_volume_ml} mL ({factor}× the drawn volume) [{}]", .sources.join(", "))]
    DilutionRequired {
        concentration: f64,
        min_final_volume_ml: f64,
        factor: f64,
        sources: Vec<String>,
    },
    #[error(
        "final volume {final_volume_ml} mL is smaller than the {drawn_ml} mL drawn; expected at least the drawn volume"
    )]
    FinalVolumeTooSmall { final_volume_ml: f64, drawn_ml: f64 },
    #[error("{what} rounds to zero with increment {increment}; expected a deliverable amount")]
    RoundsToZero { what: String, increment: f64 },
    #[error("{role:?}: expected a duration in minutes (the protocol gives none)")]
    DurationRequired { role: Role },
    #[error("esketamine dose {given} mg is not offered; expected one of {options:?} mg")]
    EsketamineDoseNotOffered { given: f64, options: Vec<f64> },
    #[error("the first esketamine dose of a course is {required} mg [{}]; got {given} mg", .sources.join(", "))]
    EsketamineFirstDose {
        required: f64,
        given: f64,
        sources: Vec<String>,
    },
    #[error("{dose_mg} mg is not a whole number of {device_mg} mg devices")]
    NotWholeDevices { dose_mg: f64, device_mg: f64 },
    #[error("protocol {protocol_id} has no repeat dose")]
    NoRepeatDose { protocol_id: String },
    #[error(transparent)]
    Unit(#[from] crate::units::UnitError),
    #[error("{what} does not apply to {protocol_id}")]
    NotApplicable { protocol_id: String, what: String },
    #[error("{role:?}: protocol {protocol_id} has no {role:?} component; expected a choice for one of: {}", .available.join(", "))]
    NoSuchComponent {
        protocol_id: String,
        role: Role,
        available: Vec<String>,
    },
    #[error("protocol {protocol_id} is for the {population} population; the patient is {age_months} months old ({band}) [{}]", .sources.join(", "))]
    AgeOutsidePopulation {
        protocol_id: String,
        population: String,
        age_months: u64,
        band: String,
        sources: Vec<String>,
    },
    #[error("ketamine sedation is contraindicated under {min_months} months of age; the patient is {age_months} months old [{}]", .sources.join(", "))]
    AgeBelowFloor {
        protocol_id: String,
        min_months: f64,
        age_months: u64,
        sources: Vec<String>,
    },
    #[error("weight {weight_kg} kg is not a possible human weight ({min_kg} to {max_kg} kg) [{}]; expected the weight in kg", .sources.join(", "))]
    WeightImpossible {
        weight_kg: f64,
        min_kg: f64,
        max_kg: f64,
        sources: Vec<String>,
    },
}

impl DoseError {
    /// The request field a refusal is about, for an edge to show the message beside it.
    pub fn field(&self) -> String {
        match self {
            DoseError::UnknownProtocol(_) | DoseError::Blocked { .. } => "protocol_id".into(),
            DoseError::AgeRequired { .. }
            | DoseError::AgeOutsidePopulation { .. }
            | DoseError::AgeBelowFloor { .. } => "patient.age".into(),
            DoseError::WeightImpossible { .. } | DoseError::WeightBasisUnavailable { .. } => {
                "patient.weight_kg".into()
            }
            DoseError::NoSuchComponent { role, .. }
            | DoseError::ChoiceRequired { role, .. }
            | DoseError::WrongUnit { role, .. }
            | DoseError::StepOutOfRange { role, .. }
            | DoseError::NoTitration { role }
            | DoseError::DurationRequired { role } => role.as_str().into(),
            DoseError::ConcentrationNotStocked { .. }
            | DoseError::ConcentrationNotAllowed { .. } => {
                "preparation.concentration_mg_per_ml".into()
            }
            DoseError::DilutionRequired { .. } | DoseError::FinalVolumeTooSmall { .. } => {
                "preparation.final_volume_ml".into()
            }
            DoseError::EsketamineDoseNotOffered { .. }
            | DoseError::EsketamineFirstDose { .. }
            | DoseError::NotWholeDevices { .. } => "esketamine_dose_mg".into(),
            DoseError::NoRepeatDose { .. } => "administration".into(),
            DoseError::HardLimit(h) if h.applies_to == "patient" => "patient.age".into(),
            DoseError::HardLimit(_) | DoseError::RoundsToZero { .. } | DoseError::Unit(_) => {
                "dose".into()
            }
            DoseError::NotApplicable { .. } => "request".into(),
        }
    }
}
