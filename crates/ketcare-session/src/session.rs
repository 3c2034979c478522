//! The session record and its state machine.
//!
//! scheduled → checked in → pre-assessment → dose verified → running ⇄ paused → observation →
//! ready for discharge → discharged; running/paused/observation/ready → escalated → transferred
//! (or back to observation); scheduled…dose verified → cancelled with a reason. Every command is
//! checked against the phase and the record; a refused one says what is missing. A signed
//! record is locked: corrections are addenda with who and when.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alarms::{self, Alarm, AlarmState, Finding, Stamp};
use crate::delivery::{GivenConfirmation, OrderedDelivery, RateDeviation};
use crate::rules::{Mode, Plan};
use crate::vitals::{FieldError, VitalReading, Vitals};
use ketcare_clinical::protocol::LimitSeverity;
use ketcare_clinical::units::RateMlPerH;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Scheduled,
    CheckedIn,
    PreAssessment,
    DoseVerified,
    Running,
    Paused,
    Observation,
    ReadyForDischarge,
    Discharged,
    Escalated,
    Transferred,
    Cancelled,
}

impl Phase {
    pub const ALL: [Phase; 12] = [
        Phase::Scheduled,
        Phase::CheckedIn,
        Phase::PreAssessment,
        Phase::DoseVerified,
        Phase::Running,
        Phase::Paused,
        Phase::Observation,
        Phase::ReadyForDischarge,
        Phase::Discharged,
        Phase::Escalated,
        Phase::Transferred,
        Phase::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Scheduled => "scheduled",
            Phase::CheckedIn => "checked_in",
            Phase::PreAssessment => "pre_assessment",
            Phase::DoseVerified => "dose_verified",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Observation => "observation",
            Phase::ReadyForDischarge => "ready_for_discharge",
            Phase::Discharged => "discharged",
            Phase::Escalated => "escalated",
            Phase::Transferred => "transferred",
            Phase::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Phase::Scheduled => "Scheduled",
            Phase::CheckedIn => "Checked in",
            Phase::PreAssessment => "Pre-assessment",
            Phase::DoseVerified => "Dose verified",
            Phase::Running => "Running",
            Phase::Paused => "Paused",
            Phase::Observation => "Observation",
            Phase::ReadyForDischarge => "Ready for discharge",
            Phase::Discharged => "Discharged",
            Phase::Escalated => "Escalated",
            Phase::Transferred => "Transferred",
            Phase::Cancelled => "Cancelled",
        }
    }

    /// The patient is in the chair (vitals are accepted and shown on the suite dashboard).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::CheckedIn
                | Phase::PreAssessment
                | Phase::DoseVerified
                | Phase::Running
                | Phase::Paused
                | Phase::Observation
                | Phase::ReadyForDischarge
                | Phase::Escalated
        )
    }

    /// The session has ended (it can be signed).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Phase::Discharged | Phase::Transferred | Phase::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pregnancy {
    NotPregnant,
    Pregnant,
    /// Not relevant for this patient (recorded by the clinician, not assumed).
    NotApplicable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskScreen {
    /// Screen done, no current risk found.
    Negative,
    /// Screen positive; the prescriber reviewed it and the session may go ahead.
    PositiveReviewed,
    /// Screen positive and not yet reviewed: blocks the dose.
    PositiveNotReviewed,
}

/// A relative finding accepted by a clinician, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    pub by: String,
    pub at: Timestamp,
    pub reason: String,
}

/// The verified dose order the session gives (from the clinical core's dose orders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifiedDose {
    pub order_id: i64,
    /// "0.5 mg/kg = 35 mg over 40 min at 8.75 mL/h" or "56 mg = 2 devices".
    pub summary: String,
    pub author: String,
    pub verified_by: String,
    /// Devices to give (esketamine), else 0.
    pub devices: u32,
    /// The total mg the order gives (all components, or the esketamine dose), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose_mg: Option<f64>,
    /// What the order says about delivery: pump rate, prepared concentration, bolus, single
    /// dose, device strength and the protocol's limits as the order applied them.
    #[serde(default)]
    pub delivery: OrderedDelivery,
}

/// Esketamine REMS setting items (§4a) confirmed before dosing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemsSetting {
    pub setting_certified: Option<bool>,
    pub patient_enrolled: Option<bool>,
    pub prescriber_on_site: Option<bool>,
    pub pulse_oximeter_on_site: Option<bool>,
    /// Concomitant sedating medicines (or "none").
    pub concomitant_sedating: Option<String>,
    /// Concomitant BP-raising medicines (or "none").
    pub concomitant_bp_raising: Option<String>,
}

/// The pre-assessment checklist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checklist {
    /// Consent as the operations consent record answered it (never ticked by hand).
    #[serde(default)]
    pub consent: Option<ConsentCheck>,
    pub fasting_confirmed: Option<bool>,
    pub baseline: Option<VitalReading>,
    pub bp_gate_accepted: Option<Accepted>,
    pub pregnancy: Option<Pregnancy>,
    pub escort_home: Option<bool>,
    pub eligibility_reconfirmed: Option<bool>,
    pub suicide_risk: Option<RiskScreen>,
    pub dose: Option<VerifiedDose>,
    #[serde(default)]
    pub rems: RemsSetting,
}

/// What the consent record said for this patient, the session's protocol and version, at `at`.
/// The store fills it in from the operations consent record before every command until dosing
/// starts; the session only reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentCheck {
    pub valid: bool,
    /// `none`, `expired`, `old_document_version`, `protocol_changed`, `minor_without_assent`,
    /// `withdrawn`, … when not valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub message: String,
    pub at: Timestamp,
}

/// What the controlled-substance ledger said for this session when it was signed (or when the
/// signature was refused): drawn = given + wasted, with the numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerCheck {
    pub balanced: bool,
    pub message: String,
    pub at: Timestamp,
}

/// A change to the checklist: fields present are set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistUpdate {
    /// Refused when present: consent comes from the consent record, not from a tick.
    #[serde(default)]
    pub consent_valid: Option<bool>,
    #[serde(default)]
    pub fasting_confirmed: Option<bool>,
    #[serde(default)]
    pub pregnancy: Option<Pregnancy>,
    #[serde(default)]
    pub escort_home: Option<bool>,
    #[serde(default)]
    pub eligibility_reconfirmed: Option<bool>,
    #[serde(default)]
    pub suicide_risk: Option<RiskScreen>,
    /// Reason for going ahead with a baseline BP above the site gate (a relative finding).
    #[serde(default)]
    pub bp_gate_reason: Option<String>,
    #[serde(default)]
    pub rems: Option<RemsSetting>,
}

/// The discharge checklist items a clinician confirms (the rest is computed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeConfirmations {
    #[serde(default)]
    pub dissociation_resolved: Option<bool>,
    #[serde(default)]
    pub respiratory_depression_resolved: Option<bool>,
    #[serde(default)]
    pub clinically_stable: Option<bool>,
    #[serde(default)]
    pub escort_present: Option<bool>,
    /// Transport arranged; no driving or machinery until the next day after restful sleep.
    #[serde(default)]
    pub transport_advice_given: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdminEvent {
    Start {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate_ml_per_h: Option<f64>,
        /// Set when the rate is not the verified order's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deviation: Option<RateDeviation>,
    },
    RateChange {
        rate_ml_per_h: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deviation: Option<RateDeviation>,
    },
    Pause {
        reason: String,
    },
    Resume,
    Stop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Esketamine device `number` (1-based) self-administered under supervision.
    Device {
        number: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SessionAdministration)]
pub struct Administration {
    pub at: Timestamp,
    pub by: String,
    pub event: AdminEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// MOAA/S, 0–5 version (5 = responds readily to name in a normal tone) — instruments.md §2.12.
    Moaas,
    /// CADSS total (the item scale is not confirmed in the reference, so only a non-negative total).
    Cadss,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SessionScore)]
pub struct Score {
    pub at: Timestamp,
    pub by: String,
    pub kind: ScoreKind,
    pub value: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SessionSeverity)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Mild,
    Moderate,
    Severe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Note {
    pub at: Timestamp,
    pub by: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Intervention {
    pub at: Timestamp,
    pub by: String,
    pub drug: String,
    pub dose: String,
    pub route: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transition {
    pub at: Timestamp,
    pub by: String,
    pub from: Phase,
    pub to: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signature {
    pub by: String,
    pub at: Timestamp,
}

/// Every command a session accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    CheckIn,
    BeginPreAssessment,
    UpdateChecklist(ChecklistUpdate),
    SetBaseline {
        vitals: Vitals,
    },
    /// Attaches the verified order's dose. Built by the application layer from the stored,
    /// verified order; never read from a request, so a caller cannot supply a dose of its own.
    #[serde(skip_deserializing)]
    AttachDose {
        dose: VerifiedDose,
    },
    VerifyDose,
    /// Starts dosing. An infusion runs at the verified order's rate unless another rate is
    /// given; another rate must stay within the protocol's hard limits and needs `rate_reason`.
    Start {
        #[serde(default)]
        rate_ml_per_h: Option<RateMlPerH>,
        #[serde(default)]
        rate_reason: Option<String>,
    },
    GiveDevice,
    /// Changes the pump rate; a rate other than the verified order's needs `rate_reason`.
    ChangeRate {
        rate_ml_per_h: RateMlPerH,
        #[serde(default)]
        rate_reason: Option<String>,
    },
    Pause {
        reason: String,
    },
    Resume,
    Stop {
        #[serde(default)]
        reason: Option<String>,
    },
    ConfirmDischarge(DischargeConfirmations),
    ReadyForDischarge,
    Discharge,
    Escalate {
        reason: String,
    },
    DeEscalate {
        note: String,
    },
    Transfer {
        destination: String,
    },
    Cancel {
        reason: String,
    },
    Score {
        kind: ScoreKind,
        value: u32,
    },
    SideEffect {
        text: String,
        #[serde(default)]
        severity: Option<Severity>,
    },
    Intervene {
        drug: String,
        dose: String,
        route: String,
    },
    AdverseEvent {
        text: String,
        severity: Severity,
    },
    AcknowledgeAlarm {
        alarm: u32,
    },
    ResolveAlarm {
        alarm: u32,
        note: String,
    },
    Sign,
    Addendum {
        text: String,
    },
    /// Confirms the mg given that the administration record computes ([`Session::delivered`]),
    /// or corrects it with a `reason`; signing needs it once dosing started.
    RecordGiven {
        given_mg: f64,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Applies the site's settings of `version` (resolved into `plan` by the application
    /// layer) to the thresholds read at the time of use ([`Session::apply_settings`]). Never
    /// read from a request: a caller cannot send thresholds.
    #[serde(skip_deserializing)]
    ApplySettings {
        version: i64,
        plan: Box<Plan>,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::CheckIn => "check in",
            Command::BeginPreAssessment => "begin the pre-assessment",
            Command::UpdateChecklist(_) => "update the checklist",
            Command::SetBaseline { .. } => "record baseline vitals",
            Command::AttachDose { .. } => "attach the dose order",
            Command::VerifyDose => "confirm the verified dose",
            Command::Start { .. } => "start dosing",
            Command::GiveDevice => "give the next device",
            Command::ChangeRate { .. } => "change the rate",
            Command::Pause { .. } => "pause",
            Command::Resume => "resume",
            Command::Stop { .. } => "stop dosing",
            Command::ConfirmDischarge(_) => "confirm discharge items",
            Command::ReadyForDischarge => "mark ready for discharge",
            Command::Discharge => "discharge",
            Command::Escalate { .. } => "escalate",
            Command::DeEscalate { .. } => "return to observation",
            Command::Transfer { .. } => "transfer",
            Command::Cancel { .. } => "cancel",
            Command::Score { .. } => "record a score",
            Command::SideEffect { .. } => "record a side effect",
            Command::Intervene { .. } => "record an intervention",
            Command::AdverseEvent { .. } => "record an adverse event",
            Command::AcknowledgeAlarm { .. } => "acknowledge an alarm",
            Command::ResolveAlarm { .. } => "resolve an alarm",
            Command::Sign => "sign the record",
            Command::Addendum { .. } => "add an addendum",
            Command::RecordGiven { .. } => "confirm the mg given",
            Command::ApplySettings { .. } => "apply the site's settings",
        }
    }

    /// Whether this command needs the permission to sign (else the permission to run sessions).
    pub fn needs_sign_permission(&self) -> bool {
        matches!(self, Command::Sign)
    }
}

/// A refused command: what was asked, in which phase, and what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("cannot {command} while {phase}: {}", missing.join("; "))]
pub struct Refusal {
    pub command: String,
    pub phase: String,
    pub missing: Vec<String>,
}

/// The session record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Session {
    pub phase: Phase,
    pub plan: Plan,
    /// Chair or bed in the suite (monitors may be matched by it).
    pub chair: String,
    pub scheduled_for: Timestamp,
    /// The dose order this session gives (verified by a second clinician before it is attached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose_order_id: Option<i64>,
    pub checklist: Checklist,
    #[serde(default)]
    pub discharge: DischargeConfirmations,
    #[serde(default)]
    pub administrations: Vec<Administration>,
    #[serde(default)]
    pub scores: Vec<Score>,
    #[serde(default)]
    pub side_effects: Vec<Note>,
    #[serde(default)]
    pub interventions: Vec<Intervention>,
    #[serde(default)]
    pub adverse_events: Vec<Note>,
    #[serde(default)]
    pub alarms: Vec<Alarm>,
    #[serde(default)]
    pub transitions: Vec<Transition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    #[serde(default)]
    pub addenda: Vec<Note>,
    /// The mg given as documented by a clinician before confirmations carried who, when and
    /// why (older records only; see [`Session::given_mg`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_mg: Option<f64>,
    /// The mg given as confirmed (or corrected with a reason) before signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_confirmation: Option<GivenConfirmation>,
    /// The ledger's answer when signing was last asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerCheck>,
    /// Site settings changed while the session was open and applied to it (see
    /// [`Session::apply_settings`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings_applied: Vec<SettingsApplied>,
    /// The site settings version the thresholds were last resolved from (0: before versions
    /// were recorded).
    #[serde(default)]
    pub settings_version: i64,
}

/// A change of the site's settings applied to an open session: what changed, when and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettingsApplied {
    pub at: Timestamp,
    pub by: String,
    /// The settings version now in force.
    pub version: i64,
    /// One line per changed threshold, e.g. "systolic high: not set → 170 (site setting …)".
    pub changes: Vec<String>,
}

/// The one place the session asks whether consent is valid: the answer of the operations
/// consent record, as last checked (see [`Session::set_consent`]).
pub fn consent_valid(checklist: &Checklist) -> Result<(), String> {
    match &checklist.consent {
        Some(c) if c.valid => Ok(()),
        Some(c) => Err(format!("consent is not valid: {}", c.message)),
        None => Err("consent not checked against the consent record".into()),
    }
}

/// The one place signing asks whether the controlled-substance ledger balances for this session:
/// the ledger's answer as the store put it on the record before the signature
/// (see [`Session::set_ledger`]).
pub fn ledger_balances(session: &Session) -> Result<(), String> {
    match &session.ledger {
        Some(l) if l.balanced => Ok(()),
        Some(l) => Err(format!(
            "the controlled-substance ledger does not balance: {}",
            l.message
        )),
        None => Err("the controlled-substance ledger has not been reconciled".into()),
    }
}

fn nonempty(field: &str, s: &str) -> Result<String, FieldError> {
    let t = s.trim();
    if t.is_empty() {
        Err(FieldError::new(field, "required"))
    } else if t.chars().count() > 2000 {
        Err(FieldError::new(field, "at most 2000 characters"))
    } else {
        Ok(t.to_owned())
    }
}

impl Session {
    pub fn new(plan: Plan, chair: &str, scheduled_for: Timestamp) -> Session {
        Session {
            phase: Phase::Scheduled,
            plan,
            chair: chair.trim().to_owned(),
            scheduled_for,
            dose_order_id: None,
            checklist: Checklist::default(),
            discharge: DischargeConfirmations::default(),
            administrations: vec![],
            scores: vec![],
            side_effects: vec![],
            interventions: vec![],
            adverse_events: vec![],
            alarms: vec![],
            transitions: vec![],
            reason: None,
            signature: None,
            addenda: vec![],
            given_mg: None,
            given_confirmation: None,
            ledger: None,
            settings_applied: vec![],
            settings_version: 0,
        }
    }

    /// Whether the session can still change: not ended and not signed.
    pub fn is_open(&self) -> bool {
        self.signature.is_none()
            && !matches!(
                self.phase,
                Phase::Discharged | Phase::Transferred | Phase::Cancelled
            )
    }

    /// Applies the parts of a freshly resolved plan that are read at the time of use — the alarm
    /// thresholds, the vital-sign interval and grace, and the blood-pressure gate before dosing —
    /// so a threshold the site changes applies to an open session from that moment. What must
    /// not change mid-session stays as it was when the session was planned: the protocol, the
    /// devices and the verified dose, the cited vitals schedule and the minimum observation time
    /// (a discharge rule the patient was prepared for). Returns the changes, also kept in
    /// [`Session::settings_applied`]; nothing is recorded when nothing changed or the session is
    /// no longer open.
    pub fn apply_settings(
        &mut self,
        fresh: &Plan,
        version: i64,
        by: &str,
        at: Timestamp,
    ) -> Vec<String> {
        if !self.is_open() || fresh.protocol_id != self.plan.protocol_id {
            return vec![];
        }
        self.settings_version = version;
        let mut changes = Vec::new();
        let mut take =
            |name: &str, old: &mut crate::rules::Setting, new: &crate::rules::Setting| {
                if old != new {
                    let v = |s: &crate::rules::Setting| {
                        s.value()
                            .map(|x| format!("{x} ({})", s.provenance_text()))
                            .unwrap_or_else(|| "not set".into())
                    };
                    changes.push(format!("{name}: {} → {}", v(old), v(new)));
                    *old = new.clone();
                }
            };
        let (a, f) = (&mut self.plan.alarms, &fresh.alarms);
        take(
            "systolic high alarm",
            &mut a.systolic_high,
            &f.systolic_high,
        );
        take(
            "diastolic high alarm",
            &mut a.diastolic_high,
            &f.diastolic_high,
        );
        take("systolic low alarm", &mut a.systolic_low, &f.systolic_low);
        take(
            "heart rate high alarm",
            &mut a.heart_rate_high,
            &f.heart_rate_high,
        );
        take(
            "heart rate low alarm",
            &mut a.heart_rate_low,
            &f.heart_rate_low,
        );
        take("SpO2 low alarm", &mut a.spo2_low, &f.spo2_low);
        take(
            "respiratory rate low alarm",
            &mut a.resp_rate_low,
            &f.resp_rate_low,
        );
        take(
            "respiratory rate high alarm",
            &mut a.resp_rate_high,
            &f.resp_rate_high,
        );
        take("EtCO2 high alarm", &mut a.etco2_high, &f.etco2_high);
        take(
            "systolic rise alarm",
            &mut a.systolic_rise,
            &f.systolic_rise,
        );
        take(
            "diastolic rise alarm",
            &mut a.diastolic_rise,
            &f.diastolic_rise,
        );
        take(
            "vitals interval",
            &mut a.vitals_interval,
            &f.vitals_interval,
        );
        take("vitals grace", &mut a.vitals_grace, &f.vitals_grace);
        // The BP gate is read when dosing starts: it follows the settings until then.
        if matches!(
            self.phase,
            Phase::Scheduled | Phase::CheckedIn | Phase::PreAssessment | Phase::DoseVerified
        ) {
            let p = &mut self.plan;
            take(
                "BP gate (systolic)",
                &mut p.bp_gate_systolic,
                &fresh.bp_gate_systolic,
            );
            take(
                "BP gate (diastolic)",
                &mut p.bp_gate_diastolic,
                &fresh.bp_gate_diastolic,
            );
        }
        if !changes.is_empty() {
            self.settings_applied.push(SettingsApplied {
                at,
                by: by.into(),
                version,
                changes: changes.clone(),
            });
        }
        changes
    }

    /// When dosing started.
    pub fn dose_start(&self) -> Option<Timestamp> {
        self.administrations.iter().find_map(|a| match a.event {
            AdminEvent::Start { .. } | AdminEvent::Device { number: 1 } => Some(a.at),
            _ => None,
        })
    }

    /// The time of the last esketamine device.
    pub fn last_device(&self) -> Option<(u32, Timestamp)> {
        self.administrations
            .iter()
            .rev()
            .find_map(|a| match a.event {
                AdminEvent::Device { number } => Some((number, a.at)),
                _ => None,
            })
    }

    /// When dosing ended (the stop, or the last device): observation is measured from here.
    pub fn dose_end(&self) -> Option<Timestamp> {
        match self.plan.mode {
            Mode::Esketamine => self.last_device().map(|(_, t)| t),
            Mode::Infusion => self
                .administrations
                .iter()
                .rev()
                .find_map(|a| match a.event {
                    AdminEvent::Stop { .. } => Some(a.at),
                    _ => None,
                }),
        }
    }

    pub fn devices_given(&self) -> u32 {
        self.last_device().map(|(n, _)| n).unwrap_or(0)
    }

    /// The current rate (infusion).
    pub fn rate(&self) -> Option<f64> {
        self.administrations
            .iter()
            .rev()
            .find_map(|a| match a.event {
                AdminEvent::Start { rate_ml_per_h, .. } => rate_ml_per_h,
                AdminEvent::RateChange { rate_ml_per_h, .. } => Some(rate_ml_per_h),
                _ => None,
            })
    }

    pub fn open_alarms(&self) -> impl Iterator<Item = &Alarm> {
        self.alarms.iter().filter(|a| a.is_open())
    }

    pub fn latest_score(&self, kind: ScoreKind) -> Option<&Score> {
        self.scores.iter().rev().find(|s| s.kind == kind)
    }

    /// Records the ledger's answer for this session (ignored once signed).
    pub fn set_ledger(&mut self, check: LedgerCheck) {
        if self.signature.is_none() {
            self.ledger = Some(check);
        }
    }

    /// The mg this record documents as given: what a clinician confirmed (or corrected with a
    /// reason), else what the administration record computes ([`Session::delivered`]).
    pub fn given_mg(&self) -> Result<f64, String> {
        if let Some(c) = &self.given_confirmation {
            return Ok(c.mg);
        }
        if let Some(mg) = self.given_mg {
            return Ok(mg);
        }
        self.delivered()
            .map(|d| d.mg)
            .map_err(|e| format!("{e}; document the mg given with a reason (record_given)"))
    }

    /// The pump rate a start or rate change asks for, checked against the verified order: the
    /// order's rate needs nothing; another rate is refused if it crosses a hard limit (or a
    /// cap) of the protocol as the order applied it, and otherwise needs a reason (which also
    /// passes the soft limits it crosses). Returns the rate and the deviation to record.
    fn checked_rate(
        &self,
        rate: Option<RateMlPerH>,
        reason: Option<&str>,
        by: &str,
        at: Timestamp,
    ) -> Result<(Option<f64>, Option<RateDeviation>), Vec<String>> {
        let ordered = self
            .checklist
            .dose
            .as_ref()
            .and_then(|d| d.delivery.infusion.as_ref());
        let Some(r) = rate.map(f64::from).or(ordered.map(|o| o.rate_ml_per_h)) else {
            return Ok((None, None));
        };
        if !(r > 0.0 && r <= 2000.0) {
            return Err(vec![format!(
                "rate_ml_per_h: {r} is not a pump rate (0–2000 mL/h)"
            )]);
        }
        let Some(o) = ordered else {
            return Err(vec![format!(
                "rate_ml_per_h: the verified order gives no pump rate (no prepared concentration), so {r} mL/h cannot be checked against it: start without a rate, or have the order recalculated with its preparation"
            )]);
        };
        if o.is_ordered(r) {
            return Ok((Some(r), None));
        }
        let crossed = o.crossed(r);
        let hard: Vec<String> = crossed
            .iter()
            .filter(|c| c.severity != LimitSeverity::Soft)
            .map(|c| format!("rate_ml_per_h: {}", c.text))
            .collect();
        if !hard.is_empty() {
            let mut m = vec![format!(
                "rate_ml_per_h: {r} mL/h is not the verified order's {} mL/h and crosses a hard limit: it is refused, with or without a reason",
                o.rate_ml_per_h
            )];
            m.extend(hard);
            return Err(m);
        }
        let soft: Vec<String> = crossed.into_iter().map(|c| c.text).collect();
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        let Some(reason) = reason else {
            let mut m = vec![format!(
                "rate_reason: {r} mL/h is not the verified order's {} mL/h: confirm it with a reason, or run at the ordered rate",
                o.rate_ml_per_h
            )];
            m.extend(soft.iter().map(|t| format!("rate_ml_per_h: {t}")));
            return Err(m);
        };
        let reason = nonempty("rate_reason", reason).map_err(|e| vec![e.to_string()])?;
        Ok((
            Some(r),
            Some(RateDeviation {
                ordered_ml_per_h: o.rate_ml_per_h,
                given_ml_per_h: r,
                reason,
                by: by.into(),
                at,
                soft_limits_crossed: soft,
            }),
        ))
    }

    /// Whether consent is still checked before each command: until dosing starts.
    pub fn consent_pending(&self) -> bool {
        self.signature.is_none()
            && matches!(
                self.phase,
                Phase::Scheduled | Phase::CheckedIn | Phase::PreAssessment | Phase::DoseVerified
            )
    }

    /// Records the consent record's answer (ignored once dosing has started or the session
    /// ended: the check that let it start stays on the record).
    pub fn set_consent(&mut self, check: ConsentCheck) {
        if self.consent_pending() {
            self.checklist.consent = Some(check);
        }
    }

    /// What the pre-assessment still needs before the dose can be confirmed.
    pub fn checklist_missing(&self) -> Vec<String> {
        let c = &self.checklist;
        let p = &self.plan;
        let mut m = Vec::new();
        if let Err(e) = consent_valid(c) {
            m.push(e);
        }
        match c.fasting_confirmed {
            Some(true) => {}
            _ => m.push(match &p.fasting_rule {
                Some(rule) => format!("fasting not confirmed ({rule})"),
                None => "fasting per the protocol not confirmed".into(),
            }),
        }
        match &c.baseline {
            None => m.push("baseline vitals not recorded".into()),
            Some(b) if !b.vitals.has_bp() => m.push("baseline blood pressure not recorded".into()),
            Some(b) => match (p.bp_gate_systolic.value(), p.bp_gate_diastolic.value()) {
                (Some(gs), Some(gd)) => {
                    let s = b.vitals.systolic.unwrap_or_default();
                    let d = b.vitals.diastolic.unwrap_or_default();
                    if (s > gs || d > gd) && c.bp_gate_accepted.is_none() {
                        m.push(format!(
                            "baseline BP {s}/{d} is above the BP gate {gs}/{gd} [{}]: a clinician must record a reason to go ahead",
                            p.bp_gate_systolic.provenance_text()
                        ));
                    }
                }
                _ => m.push(format!(
                    "the site has not set the baseline BP gate ({}, {})",
                    p.bp_gate_systolic.provenance_text(),
                    p.bp_gate_diastolic.provenance_text()
                )),
            },
        }
        match c.pregnancy {
            None => m.push("pregnancy status not recorded".into()),
            Some(Pregnancy::Pregnant) => m.push(
                "patient is pregnant: the prescriber must decide outside this checklist".into(),
            ),
            Some(_) => {}
        }
        if c.escort_home != Some(true) {
            m.push("escort home not confirmed".into());
        }
        if c.eligibility_reconfirmed != Some(true) {
            m.push("eligibility not re-confirmed".into());
        }
        match c.suicide_risk {
            None => m.push("suicide-risk screen not done".into()),
            Some(RiskScreen::PositiveNotReviewed) => {
                m.push("positive suicide-risk screen not reviewed by the prescriber".into())
            }
            Some(_) => {}
        }
        match &c.dose {
            None => m.push("no verified dose order attached".into()),
            Some(d) if d.verified_by == d.author => {
                m.push("the dose must be verified by a second clinician".into())
            }
            Some(_) => {}
        }
        if p.mode == Mode::Esketamine {
            let r = &c.rems;
            for (v, what) in [
                (r.setting_certified, "REMS-certified setting not confirmed"),
                (r.patient_enrolled, "patient REMS enrolment not confirmed"),
                (r.prescriber_on_site, "prescriber on site not confirmed"),
                (
                    r.pulse_oximeter_on_site,
                    "pulse oximeter on site not confirmed",
                ),
            ] {
                if v != Some(true) {
                    m.push(what.into());
                }
            }
            if r.concomitant_sedating
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            {
                m.push("concomitant sedating medicines not recorded (or \"none\")".into());
            }
            if r.concomitant_bp_raising
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            {
                m.push("concomitant BP-raising medicines not recorded (or \"none\")".into());
            }
        }
        m
    }

    /// Minutes of observation still to run at `now` (0 when elapsed); `Err` when the minimum is
    /// not set by the site or dosing has not ended.
    pub fn observation_remaining(&self, now: Timestamp) -> Result<i64, String> {
        let Some(min) = self.plan.minimum_observation_minutes.value() else {
            return Err(format!(
                "minimum observation time {}",
                self.plan.minimum_observation_minutes.provenance_text()
            ));
        };
        let Some(end) = self.dose_end() else {
            return Err("dosing has not ended".into());
        };
        let due = end.as_second() + (min * 60.0).round() as i64;
        Ok(((due - now.as_second()).max(0) + 59) / 60)
    }

    /// What discharge still needs at `now`.
    pub fn discharge_missing(&self, now: Timestamp) -> Vec<String> {
        let mut m = Vec::new();
        match self.observation_remaining(now) {
            Ok(0) => {}
            Ok(left) => m.push(format!(
                "minimum observation not elapsed: {left} min to go [{}]",
                self.plan.minimum_observation_minutes.provenance_text()
            )),
            Err(e) => m.push(e),
        }
        let open: Vec<_> = self
            .open_alarms()
            .map(|a| format!("#{} {}", a.id, a.kind.label()))
            .collect();
        if !open.is_empty() {
            m.push(format!(
                "vitals not within limits: open alarms {}",
                open.join(", ")
            ));
        }
        let end = self.dose_end().map(|t| t.as_second()).unwrap_or(i64::MAX);
        match self.latest_score(ScoreKind::Moaas) {
            Some(s) if s.at.as_second() >= end && s.value == 5 => {}
            Some(s) if s.at.as_second() >= end => m.push(format!(
                "sedation not resolved: latest MOAA/S {} (5 = responds readily to name, instruments.md §2.12)",
                s.value
            )),
            _ => m.push("no MOAA/S recorded after dosing".into()),
        }
        if !self
            .scores
            .iter()
            .any(|s| s.kind == ScoreKind::Cadss && s.at.as_second() >= end)
        {
            m.push("no CADSS recorded after dosing".into());
        }
        let d = &self.discharge;
        if d.dissociation_resolved != Some(true) {
            m.push("dissociation resolved not confirmed".into());
        }
        if d.escort_present != Some(true) {
            m.push("escort not present".into());
        }
        if self.plan.mode == Mode::Esketamine {
            if d.respiratory_depression_resolved != Some(true) {
                m.push("respiratory depression resolved not confirmed".into());
            }
            if d.clinically_stable != Some(true) {
                m.push(
                    "assessment that the patient is clinically stable to leave not recorded".into(),
                );
            }
            if d.transport_advice_given != Some(true) {
                m.push("transport and no-driving-until-next-day advice not given".into());
            }
        }
        m
    }

    fn refuse(&self, cmd: &Command, missing: Vec<String>) -> Refusal {
        Refusal {
            command: cmd.name().into(),
            phase: self.phase.label().to_lowercase(),
            missing,
        }
    }

    fn go(&mut self, to: Phase, by: &str, at: Timestamp, note: Option<String>) {
        self.transitions.push(Transition {
            at,
            by: by.into(),
            from: self.phase,
            to,
            note,
        });
        self.phase = to;
    }

    fn admin(&mut self, by: &str, at: Timestamp, event: AdminEvent) {
        self.administrations.push(Administration {
            at,
            by: by.into(),
            event,
        });
    }

    /// Applies a command by `by` at `at`. On refusal the session is unchanged.
    pub fn apply(&mut self, cmd: &Command, by: &str, at: Timestamp) -> Result<(), Refusal> {
        use Phase::*;
        let phase = self.phase;
        let wrong_phase =
            |s: &Session, needed: &str| s.refuse(cmd, vec![format!("needs {needed}")]);
        let field = |s: &Session, e: FieldError| s.refuse(cmd, vec![e.to_string()]);
        if self.signature.is_some() && !matches!(cmd, Command::Addendum { .. }) {
            return Err(self.refuse(
                cmd,
                vec!["the record is signed and locked; add an addendum".into()],
            ));
        }
        let in_chair = matches!(
            phase,
            Running | Paused | Observation | ReadyForDischarge | Escalated
        );
        match cmd {
            Command::CheckIn => {
                if phase != Scheduled {
                    return Err(wrong_phase(self, "a scheduled session"));
                }
                self.go(CheckedIn, by, at, None);
            }
            Command::BeginPreAssessment => {
                if phase != CheckedIn {
                    return Err(wrong_phase(self, "a checked-in patient"));
                }
                self.go(PreAssessment, by, at, None);
            }
            Command::UpdateChecklist(u) => {
                if !matches!(phase, CheckedIn | PreAssessment) {
                    return Err(wrong_phase(self, "check-in or pre-assessment"));
                }
                if u.consent_valid.is_some() {
                    return Err(self.refuse(
                        cmd,
                        vec!["consent_valid: consent comes from the consent record (record it under Operations), it is not ticked".into()],
                    ));
                }
                let mut c = self.checklist.clone();
                if let Some(v) = u.fasting_confirmed {
                    c.fasting_confirmed = Some(v);
                }
                if let Some(v) = u.pregnancy {
                    c.pregnancy = Some(v);
                }
                if let Some(v) = u.escort_home {
                    c.escort_home = Some(v);
                }
                if let Some(v) = u.eligibility_reconfirmed {
                    c.eligibility_reconfirmed = Some(v);
                }
                if let Some(v) = u.suicide_risk {
                    c.suicide_risk = Some(v);
                }
                if let Some(r) = &u.rems {
                    c.rems = r.clone();
                }
                if let Some(reason) = &u.bp_gate_reason {
                    if c.baseline.is_none() {
                        return Err(self.refuse(
                            cmd,
                            vec!["bp_gate_reason: record baseline vitals first".into()],
                        ));
                    }
                    let reason = nonempty("bp_gate_reason", reason).map_err(|e| field(self, e))?;
                    c.bp_gate_accepted = Some(Accepted {
                        by: by.into(),
                        at,
                        reason,
                    });
                }
                self.checklist = c;
            }
            Command::SetBaseline { vitals } => {
                if !matches!(phase, CheckedIn | PreAssessment) {
                    return Err(wrong_phase(self, "check-in or pre-assessment"));
                }
                if let Err(errs) = vitals.validate() {
                    return Err(self.refuse(cmd, errs.iter().map(ToString::to_string).collect()));
                }
                self.checklist.baseline = Some(VitalReading {
                    at,
                    vitals: vitals.clone(),
                    source: crate::vitals::VitalSource::Manual,
                    by: by.into(),
                    control_id: None,
                });
                self.checklist.bp_gate_accepted = None;
            }
            Command::AttachDose { dose } => {
                if !matches!(phase, Scheduled | CheckedIn | PreAssessment) {
                    return Err(wrong_phase(self, "a session not yet verified"));
                }
                if dose.verified_by == dose.author {
                    return Err(self.refuse(
                        cmd,
                        vec!["the dose must be verified by a second clinician".into()],
                    ));
                }
                if self.plan.mode == Mode::Esketamine && dose.devices == 0 {
                    return Err(self.refuse(
                        cmd,
                        vec!["devices: an esketamine order names its devices".into()],
                    ));
                }
                if self.plan.mode == Mode::Esketamine {
                    self.plan.devices_planned = dose.devices;
                }
                self.checklist.dose = Some(dose.clone());
            }
            Command::VerifyDose => {
                if phase != PreAssessment {
                    return Err(wrong_phase(self, "the pre-assessment"));
                }
                let missing = self.checklist_missing();
                if !missing.is_empty() {
                    return Err(self.refuse(cmd, missing));
                }
                self.go(DoseVerified, by, at, None);
            }
            Command::Start {
                rate_ml_per_h,
                rate_reason,
            } => {
                if phase != DoseVerified {
                    return Err(wrong_phase(self, "a verified dose"));
                }
                if let Err(e) = consent_valid(&self.checklist) {
                    return Err(self.refuse(cmd, vec![e]));
                }
                match self.plan.mode {
                    Mode::Esketamine => {
                        if rate_ml_per_h.is_some() || rate_reason.is_some() {
                            return Err(self.refuse(
                                cmd,
                                vec!["rate_ml_per_h: esketamine is given device by device".into()],
                            ));
                        }
                        self.admin(by, at, AdminEvent::Device { number: 1 });
                    }
                    Mode::Infusion => {
                        let (rate, deviation) = self
                            .checked_rate(*rate_ml_per_h, rate_reason.as_deref(), by, at)
                            .map_err(|m| self.refuse(cmd, m))?;
                        self.admin(
                            by,
                            at,
                            AdminEvent::Start {
                                rate_ml_per_h: rate,
                                deviation,
                            },
                        );
                    }
                }
                self.go(Running, by, at, None);
            }
            Command::GiveDevice => {
                if phase != Running {
                    return Err(wrong_phase(self, "running dosing"));
                }
                if self.plan.mode != Mode::Esketamine {
                    return Err(self.refuse(
                        cmd,
                        vec!["only esketamine is given device by device".into()],
                    ));
                }
                let (n, last) = self.last_device().unwrap_or((0, at));
                if n >= self.plan.devices_planned {
                    return Err(self.refuse(
                        cmd,
                        vec![format!(
                            "all {} planned devices are given",
                            self.plan.devices_planned
                        )],
                    ));
                }
                let Some(gap) = self.plan.minutes_between_devices.value() else {
                    return Err(self.refuse(
                        cmd,
                        vec![format!(
                            "wait between devices {}",
                            self.plan.minutes_between_devices.provenance_text()
                        )],
                    ));
                };
                let wait = (gap * 60.0).round() as i64;
                let since = at.as_second() - last.as_second();
                if since < wait {
                    let left = wait - since;
                    return Err(self.refuse(
                        cmd,
                        vec![format!(
                            "wait {gap} min between devices [{}]: {}:{:02} to go",
                            self.plan.minutes_between_devices.provenance_text(),
                            left / 60,
                            left % 60
                        )],
                    ));
                }
                self.admin(by, at, AdminEvent::Device { number: n + 1 });
            }
            Command::ChangeRate {
                rate_ml_per_h,
                rate_reason,
            } => {
                if phase != Running {
                    return Err(wrong_phase(self, "a running infusion"));
                }
                if self.plan.mode != Mode::Infusion {
                    return Err(self.refuse(cmd, vec!["esketamine has no rate".into()]));
                }
                let (rate, deviation) = self
                    .checked_rate(Some(*rate_ml_per_h), rate_reason.as_deref(), by, at)
                    .map_err(|m| self.refuse(cmd, m))?;
                let Some(rate) = rate else {
                    return Err(self.refuse(cmd, vec!["rate_ml_per_h: required".into()]));
                };
                self.admin(
                    by,
                    at,
                    AdminEvent::RateChange {
                        rate_ml_per_h: rate,
                        deviation,
                    },
                );
            }
            Command::Pause { reason } => {
                if phase != Running {
                    return Err(wrong_phase(self, "running dosing"));
                }
                let reason = nonempty("reason", reason).map_err(|e| field(self, e))?;
                self.admin(
                    by,
                    at,
                    AdminEvent::Pause {
                        reason: reason.clone(),
                    },
                );
                self.go(Paused, by, at, Some(reason));
            }
            Command::Resume => {
                if phase != Paused {
                    return Err(wrong_phase(self, "paused dosing"));
                }
                self.admin(by, at, AdminEvent::Resume);
                self.go(Running, by, at, None);
            }
            Command::Stop { reason } => {
                if !matches!(phase, Running | Paused) {
                    return Err(wrong_phase(self, "running or paused dosing"));
                }
                let early = self.plan.mode == Mode::Esketamine
                    && self.devices_given() < self.plan.devices_planned;
                let reason =
                    match reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
                        Some(r) => Some(nonempty("reason", r).map_err(|e| field(self, e))?),
                        None if early => {
                            return Err(self.refuse(cmd, vec![format!(
                            "reason: only {} of {} devices given; say why dosing stops early",
                            self.devices_given(),
                            self.plan.devices_planned
                        )]));
                        }
                        None => None,
                    };
                if self.plan.mode == Mode::Infusion {
                    self.admin(
                        by,
                        at,
                        AdminEvent::Stop {
                            reason: reason.clone(),
                        },
                    );
                }
                self.go(Observation, by, at, reason);
            }
            Command::ConfirmDischarge(d) => {
                if !matches!(phase, Observation | ReadyForDischarge) {
                    return Err(wrong_phase(self, "observation"));
                }
                let c = &mut self.discharge;
                for (slot, v) in [
                    (&mut c.dissociation_resolved, d.dissociation_resolved),
                    (
                        &mut c.respiratory_depression_resolved,
                        d.respiratory_depression_resolved,
                    ),
                    (&mut c.clinically_stable, d.clinically_stable),
                    (&mut c.escort_present, d.escort_present),
                    (&mut c.transport_advice_given, d.transport_advice_given),
                ] {
                    if v.is_some() {
                        *slot = v;
                    }
                }
            }
            Command::ReadyForDischarge => {
                if phase != Observation {
                    return Err(wrong_phase(self, "observation"));
                }
                let missing = self.discharge_missing(at);
                if !missing.is_empty() {
                    return Err(self.refuse(cmd, missing));
                }
                self.go(ReadyForDischarge, by, at, None);
            }
            Command::Discharge => {
                if phase != ReadyForDischarge {
                    return Err(wrong_phase(self, "ready for discharge"));
                }
                let missing = self.discharge_missing(at);
                if !missing.is_empty() {
                    return Err(self.refuse(cmd, missing));
                }
                self.go(Discharged, by, at, None);
            }
            Command::Escalate { reason } => {
                if !matches!(phase, Running | Paused | Observation | ReadyForDischarge) {
                    return Err(wrong_phase(self, "a patient in dosing or observation"));
                }
                let reason = nonempty("reason", reason).map_err(|e| field(self, e))?;
                if phase == Running && self.plan.mode == Mode::Infusion {
                    self.admin(
                        by,
                        at,
                        AdminEvent::Stop {
                            reason: Some(format!("escalated: {reason}")),
                        },
                    );
                }
                self.go(Escalated, by, at, Some(reason));
            }
            Command::DeEscalate { note } => {
                if phase != Escalated {
                    return Err(wrong_phase(self, "an escalated session"));
                }
                let note = nonempty("note", note).map_err(|e| field(self, e))?;
                if self.dose_end().is_none() && self.plan.mode == Mode::Infusion {
                    self.admin(
                        by,
                        at,
                        AdminEvent::Stop {
                            reason: Some("escalation".into()),
                        },
                    );
                }
                self.go(Observation, by, at, Some(note));
            }
            Command::Transfer { destination } => {
                if phase != Escalated {
                    return Err(wrong_phase(self, "an escalated session"));
                }
                let d = nonempty("destination", destination).map_err(|e| field(self, e))?;
                self.reason = Some(format!("transferred to {d}"));
                self.go(Transferred, by, at, Some(d));
            }
            Command::Cancel { reason } => {
                if !matches!(phase, Scheduled | CheckedIn | PreAssessment | DoseVerified) {
                    return Err(wrong_phase(
                        self,
                        "a session not yet dosed (escalate instead)",
                    ));
                }
                let reason = nonempty("reason", reason).map_err(|e| field(self, e))?;
                self.reason = Some(reason.clone());
                self.go(Cancelled, by, at, Some(reason));
            }
            Command::Score { kind, value } => {
                if !(in_chair || phase == PreAssessment || phase == DoseVerified) {
                    return Err(wrong_phase(self, "a patient in the chair"));
                }
                let max = match kind {
                    ScoreKind::Moaas => 5,
                    ScoreKind::Cadss => 200,
                };
                if *value > max {
                    return Err(self.refuse(
                        cmd,
                        vec![format!("value: {value} is above the scale's top ({max})")],
                    ));
                }
                self.scores.push(Score {
                    at,
                    by: by.into(),
                    kind: *kind,
                    value: *value,
                });
            }
            Command::SideEffect { text, severity } => {
                if !in_chair {
                    return Err(wrong_phase(self, "dosing or observation"));
                }
                let text = nonempty("text", text).map_err(|e| field(self, e))?;
                self.side_effects.push(Note {
                    at,
                    by: by.into(),
                    text,
                    severity: *severity,
                });
            }
            Command::Intervene { drug, dose, route } => {
                if !in_chair {
                    return Err(wrong_phase(self, "dosing or observation"));
                }
                let drug = nonempty("drug", drug).map_err(|e| field(self, e))?;
                let dose = nonempty("dose", dose).map_err(|e| field(self, e))?;
                let route = nonempty("route", route).map_err(|e| field(self, e))?;
                self.interventions.push(Intervention {
                    at,
                    by: by.into(),
                    drug,
                    dose,
                    route,
                });
            }
            Command::AdverseEvent { text, severity } => {
                if !in_chair {
                    return Err(wrong_phase(self, "dosing or observation"));
                }
                let text = nonempty("text", text).map_err(|e| field(self, e))?;
                self.adverse_events.push(Note {
                    at,
                    by: by.into(),
                    text,
                    severity: Some(*severity),
                });
            }
            Command::AcknowledgeAlarm { alarm } => {
                let id = *alarm;
                let a = self.alarms.iter_mut().find(|a| a.id == id);
                match a {
                    None => {
                        return Err(
                            self.refuse(cmd, vec![format!("alarm: no alarm {id} in this session")])
                        );
                    }
                    Some(a) => {
                        if let Err(e) = a.acknowledge(by, at) {
                            return Err(self.refuse(cmd, vec![e]));
                        }
                    }
                }
            }
            Command::ResolveAlarm { alarm, note } => {
                let id = *alarm;
                let mut alarms = self.alarms.clone();
                match alarms.iter_mut().find(|a| a.id == id) {
                    None => {
                        return Err(
                            self.refuse(cmd, vec![format!("alarm: no alarm {id} in this session")])
                        );
                    }
                    Some(a) => {
                        if let Err(e) = a.resolve(by, at, note) {
                            return Err(self.refuse(cmd, vec![e]));
                        }
                    }
                }
                self.alarms = alarms;
            }
            Command::Sign => {
                if !phase.is_final() {
                    return Err(wrong_phase(
                        self,
                        "a discharged, transferred or cancelled session",
                    ));
                }
                let mut missing = Vec::new();
                if self.dose_start().is_some() && self.given_confirmation.is_none() {
                    missing.push(match self.delivered() {
                        Ok(d) => format!(
                            "the mg given is not confirmed: the administration record computes {} mg (infusion running {} min); confirm it or correct it with a reason (record_given)",
                            d.mg,
                            (d.running_minutes * 10.0).round() / 10.0
                        ),
                        Err(e) => format!(
                            "the mg given is not confirmed ({e}): document it with a reason (record_given)"
                        ),
                    });
                }
                if let Err(e) = ledger_balances(self) {
                    missing.push(e);
                }
                let open: Vec<_> = self.open_alarms().map(|a| a.id.to_string()).collect();
                if !open.is_empty() {
                    missing.push(format!(
                        "open alarms {}: resolve them first",
                        open.join(", ")
                    ));
                }
                if !missing.is_empty() {
                    return Err(self.refuse(cmd, missing));
                }
                self.signature = Some(Signature { by: by.into(), at });
            }
            Command::RecordGiven { given_mg, reason } => {
                if !matches!(
                    phase,
                    Observation | ReadyForDischarge | Escalated | Discharged | Transferred
                ) || self.dose_start().is_none()
                {
                    return Err(wrong_phase(self, "dosing that has ended"));
                }
                if !(given_mg.is_finite() && *given_mg >= 0.0 && *given_mg <= 10_000.0) {
                    return Err(self.refuse(
                        cmd,
                        vec![format!(
                            "given_mg: {given_mg} is not an amount in mg (0–10000)"
                        )],
                    ));
                }
                let computed = self.delivered();
                let reason = reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
                let reason = match reason {
                    Some(r) => Some(nonempty("reason", r).map_err(|e| field(self, e))?),
                    None => None,
                };
                match (&computed, &reason) {
                    (Ok(d), None) if (d.mg - given_mg).abs() > 0.0005 => {
                        return Err(self.refuse(
                            cmd,
                            vec![format!(
                                "reason: {given_mg} mg differs from the {} mg the administration record computes: give a reason to correct it",
                                d.mg
                            )],
                        ));
                    }
                    (Err(e), None) => {
                        return Err(self.refuse(
                            cmd,
                            vec![format!(
                                "reason: the administration record cannot compute the mg given ({e}): say how {given_mg} mg was established"
                            )],
                        ));
                    }
                    _ => {}
                }
                self.given_confirmation = Some(GivenConfirmation {
                    mg: *given_mg,
                    computed_mg: computed.ok().map(|d| d.mg),
                    reason,
                    by: by.into(),
                    at,
                });
            }
            Command::ApplySettings { version, plan } => {
                if !self.is_open() {
                    return Err(wrong_phase(self, "an open session"));
                }
                self.apply_settings(plan, *version, by, at);
            }
            Command::Addendum { text } => {
                if self.signature.is_none() {
                    return Err(self.refuse(
                        cmd,
                        vec!["the record is not signed yet: edit it directly".into()],
                    ));
                }
                let text = nonempty("text", text).map_err(|e| field(self, e))?;
                self.addenda.push(Note {
                    at,
                    by: by.into(),
                    text,
                    severity: None,
                });
            }
        }
        Ok(())
    }

    /// Raises alarms for findings whose kind is not already open; returns the new ones.
    pub fn raise(&mut self, findings: Vec<Finding>, at: Timestamp) -> Vec<Alarm> {
        let mut new = Vec::new();
        for f in findings {
            if self.alarms.iter().any(|a| a.is_open() && a.kind == f.kind) {
                continue;
            }
            let alarm = Alarm {
                id: self.alarms.len() as u32 + 1,
                kind: f.kind,
                raised_at: at,
                detail: f.detail,
                action: f.action,
                state: AlarmState::Raised,
                acknowledged: None,
                resolved: None,
                resolution_note: None,
            };
            self.alarms.push(alarm.clone());
            new.push(alarm);
        }
        new
    }

    /// Whether vitals are accepted now.
    pub fn accepts_vitals(&self) -> Result<(), Refusal> {
        if self.signature.is_some() {
            return Err(Refusal {
                command: "record vitals".into(),
                phase: self.phase.label().to_lowercase(),
                missing: vec!["the record is signed and locked".into()],
            });
        }
        if !self.phase.is_active() {
            return Err(Refusal {
                command: "record vitals".into(),
                phase: self.phase.label().to_lowercase(),
                missing: vec!["needs a patient in the chair".into()],
            });
        }
        Ok(())
    }

    /// Checks a new reading against the rules and raises alarms (thresholds and rise over
    /// baseline only once dosing has started; before that the BP gate applies).
    pub fn on_vital(&mut self, reading: &VitalReading) -> Vec<Alarm> {
        if self.dose_start().is_none() {
            return vec![];
        }
        let baseline = self.checklist.baseline.as_ref().map(|b| b.vitals.clone());
        let findings = alarms::check_reading(&self.plan, baseline.as_ref(), &reading.vitals);
        self.raise(findings, reading.at)
    }

    /// Time rules (missed vitals, esketamine BP check) at `now`, given the session's readings (the
    /// baseline on the checklist counts as one).
    pub fn on_tick(&mut self, readings: &[VitalReading], now: Timestamp) -> Vec<Alarm> {
        if !self.on_the_clock() {
            return vec![];
        }
        let last = if self.plan.mode == Mode::Esketamine {
            self.last_device().map(|(_, t)| t)
        } else {
            None
        };
        // The check at 0 min is due the moment dosing starts and is met by the vitals taken for
        // it before dosing (the checklist's baseline, which dosing needs); they are kept on the
        // session, not among the stored readings.
        let readings: Vec<VitalReading> = self
            .checklist
            .baseline
            .iter()
            .chain(readings)
            .cloned()
            .collect();
        let findings = alarms::check_time(&self.plan, self.dose_start(), last, &readings, now);
        self.raise(findings, now)
    }

    /// Whether the time rules run: from the start of dosing through observation (or an
    /// escalation), unsigned; not once the session is ready for discharge or has ended.
    fn on_the_clock(&self) -> bool {
        matches!(
            self.phase,
            Phase::Running | Phase::Paused | Phase::Observation | Phase::Escalated
        ) && self.signature.is_none()
    }

    /// The next scheduled check at or after `now`, while the time rules run (none once the
    /// session is ready for discharge, discharged, transferred or cancelled).
    pub fn next_check(&self, now: Timestamp) -> Option<Timestamp> {
        if !self.on_the_clock() {
            return None;
        }
        let start = self.dose_start()?;
        let horizon = Timestamp::from_second(now.as_second() + 24 * 3600).ok()?;
        let mut due = alarms::schedule(&self.plan, start, horizon);
        if let (Mode::Esketamine, Some((_, t)), Some(m)) = (
            self.plan.mode,
            self.last_device(),
            self.plan.bp_check_minutes_after_dose.value(),
        ) {
            due.push(t.as_second() + (m * 60.0).round() as i64);
        }
        due.into_iter()
            .filter(|t| *t >= now.as_second())
            .min()
            .and_then(|t| Timestamp::from_second(t).ok())
    }
}

/// The REMS Patient Monitoring Form (clinical.md §4a) for an esketamine session: every item,
/// from the record.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RemsForm {
    pub setting_certified: Option<bool>,
    pub patient_enrolled: Option<bool>,
    pub prescriber_on_site: Option<bool>,
    pub pulse_oximeter_on_site: Option<bool>,
    pub dose: Option<String>,
    /// (device number, time given) pairs.
    pub devices: Vec<(u32, Timestamp)>,
    pub bp_before_dose: Option<String>,
    pub bp_about_40_min: Option<String>,
    pub lowest_spo2: Option<f64>,
    pub deepest_moaas: Option<u32>,
    pub highest_cadss: Option<u32>,
    pub observation_minutes: Option<i64>,
    pub sedation_dissociation_resolved: bool,
    pub clinically_stable: Option<bool>,
    pub concomitant_sedating: Option<String>,
    pub concomitant_bp_raising: Option<String>,
    pub adverse_events: Vec<String>,
    pub transport_advice_given: Option<bool>,
    /// The form is submitted within 7 days of the session [R3b].
    pub submit_by: Option<String>,
}

impl Session {
    /// The REMS form, given the session's readings; `None` for a non-esketamine session.
    pub fn rems_form(&self, readings: &[VitalReading]) -> Option<RemsForm> {
        if self.plan.mode != Mode::Esketamine {
            return None;
        }
        let r = &self.checklist.rems;
        let devices: Vec<(u32, Timestamp)> = self
            .administrations
            .iter()
            .filter_map(|a| match a.event {
                AdminEvent::Device { number } => Some((number, a.at)),
                _ => None,
            })
            .collect();
        let bp = |v: &Vitals| match (v.systolic, v.diastolic) {
            (Some(s), Some(d)) => Some(format!("{s}/{d}")),
            _ => None,
        };
        let bp40 = self.last_device().and_then(|(_, t)| {
            let due = t.as_second() + 40 * 60;
            readings
                .iter()
                .filter(|x| x.vitals.has_bp())
                .min_by_key(|x| (x.at.as_second() - due).abs())
                .and_then(|x| bp(&x.vitals).map(|b| format!("{b} at {}", x.at)))
        });
        let end = self.dose_end();
        let leave = self
            .transitions
            .iter()
            .rev()
            .find(|t| t.to == Phase::Discharged || t.to == Phase::Transferred)
            .map(|t| t.at);
        Some(RemsForm {
            setting_certified: r.setting_certified,
            patient_enrolled: r.patient_enrolled,
            prescriber_on_site: r.prescriber_on_site,
            pulse_oximeter_on_site: r.pulse_oximeter_on_site,
            dose: self.checklist.dose.as_ref().map(|d| d.summary.clone()),
            devices,
            bp_before_dose: self.checklist.baseline.as_ref().and_then(|b| bp(&b.vitals)),
            bp_about_40_min: bp40,
            lowest_spo2: readings
                .iter()
                .filter_map(|x| x.vitals.spo2)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v)))),
            deepest_moaas: self
                .scores
                .iter()
                .filter(|s| s.kind == ScoreKind::Moaas)
                .map(|s| s.value)
                .min(),
            highest_cadss: self
                .scores
                .iter()
                .filter(|s| s.kind == ScoreKind::Cadss)
                .map(|s| s.value)
                .max(),
            observation_minutes: match (end, leave) {
                (Some(e), Some(l)) => Some((l.as_second() - e.as_second()) / 60),
                _ => None,
            },
            sedation_dissociation_resolved: self.discharge.dissociation_resolved == Some(true)
                && self
                    .latest_score(ScoreKind::Moaas)
                    .is_some_and(|s| s.value == 5),
            clinically_stable: self.discharge.clinically_stable,
            concomitant_sedating: r.concomitant_sedating.clone(),
            concomitant_bp_raising: r.concomitant_bp_raising.clone(),
            adverse_events: self.adverse_events.iter().map(|n| n.text.clone()).collect(),
            transport_advice_given: self.discharge.transport_advice_given,
            submit_by: Timestamp::from_second(self.scheduled_for.as_second() + 7 * 86400)
                .ok()
                .map(|t| t.to_string()[..10].to_owned()),
        })
    }
}

/// Checks a reading before it is stored.
pub fn check_reading_input(v: &Vitals) -> Result<(), Vec<FieldError>> {
    v.validate()
}

/// Who acknowledged/resolved: re-exported for the edges.
pub type AlarmStamp = Stamp;
