//! Evaluating a patient against the rule set.

use serde::{Deserialize, Serialize};

use super::rules::{RuleSet, StatusTrigger};
use crate::ids::{Timestamp, Username};
use crate::protocol::{Context, Drug, Indication, MissingSetting};
use crate::settings::SiteSettings;
use crate::source::{Cited, Status};
use crate::units::WeightKg;

/// Severity of a finding.
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
pub enum Severity {
    /// Not eligible; can never be overridden.
    Absolute,
    /// Needs prescriber review; a prescriber may override with a recorded reason.
    Relative,
    /// Eligible; shown so the team takes care (monitoring, timing).
    Caution,
    /// For information.
    Information,
}

/// History items the rules know.
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
pub enum Condition {
    AneurysmalVascularDisease,
    ArteriovenousMalformation,
    IntracerebralHaemorrhage,
    HypersensitivityToKetamineOrEsketamine,
    PoorlyControlledCardiovascularDisease,
    IschaemicHeartDisease,
    Hypertension,
    HeartFailure,
    ActivePsychosis,
    Schizophrenia,
    SevereHepaticDisease,
    ModerateHepaticDisease,
    RenalDialysis,
    RaisedIntracranialPressure,
    IntracranialMass,
    Hydrocephalus,
    RaisedIntraocularPressure,
    Glaucoma,
    OpenGlobeInjury,
    ActiveSubstanceUseDisorder,
    HistoryOfSubstanceUseDisorder,
    AirwayInstability,
    TrachealStenosisOrSurgery,
    ActivePulmonaryInfection,
    Asthma,
    PosteriorPharynxProcedure,
    ThyroidDisorder,
}

impl Condition {
    /// Every variant, in declaration order (for forms and documentation).
    pub const ALL: &'static [Condition] = &[
        Condition::AneurysmalVascularDisease,
        Condition::ArteriovenousMalformation,
        Condition::IntracerebralHaemorrhage,
        Condition::HypersensitivityToKetamineOrEsketamine,
        Condition::PoorlyControlledCardiovascularDisease,
        Condition::IschaemicHeartDisease,
        Condition::Hypertension,
        Condition::HeartFailure,
        Condition::ActivePsychosis,
        Condition::Schizophrenia,
        Condition::SevereHepaticDisease,
        Condition::ModerateHepaticDisease,
        Condition::RenalDialysis,
        Condition::RaisedIntracranialPressure,
        Condition::IntracranialMass,
        Condition::Hydrocephalus,
        Condition::RaisedIntraocularPressure,
        Condition::Glaucoma,
        Condition::OpenGlobeInjury,
        Condition::ActiveSubstanceUseDisorder,
        Condition::HistoryOfSubstanceUseDisorder,
        Condition::AirwayInstability,
        Condition::TrachealStenosisOrSurgery,
        Condition::ActivePulmonaryInfection,
        Condition::Asthma,
        Condition::PosteriorPharynxProcedure,
        Condition::ThyroidDisorder,
    ];
}

/// Medication classes the rules know.
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
pub enum MedicationClass {
    Benzodiazepine,
    Opioid,
    CnsDepressant,
    Alcohol,
    Maoi,
    Psychostimulant,
    Cyp3a4Inhibitor,
    Cyp2b6Inhibitor,
    Cyp3a4Inducer,
    Cyp2b6Inducer,
    Theophylline,
    Lamotrigine,
    Sympathomimetic,
    Vasopressin,
    Ssri,
    Antidepressant,
    NasalCorticosteroid,
    NasalDecongestant,
    ThyroidMedication,
}

impl MedicationClass {
    /// Every variant, in declaration order (for forms and documentation).
    pub const ALL: &'static [MedicationClass] = &[
        MedicationClass::Benzodiazepine,
        MedicationClass::Opioid,
        MedicationClass::CnsDepressant,
        MedicationClass::Alcohol,
        MedicationClass::Maoi,
        MedicationClass::Psychostimulant,
        MedicationClass::Cyp3a4Inhibitor,
        MedicationClass::Cyp2b6Inhibitor,
        MedicationClass::Cyp3a4Inducer,
        MedicationClass::Cyp2b6Inducer,
        MedicationClass::Theophylline,
        MedicationClass::Lamotrigine,
        MedicationClass::Sympathomimetic,
        MedicationClass::Vasopressin,
        MedicationClass::Ssri,
        MedicationClass::Antidepressant,
        MedicationClass::NasalCorticosteroid,
        MedicationClass::NasalDecongestant,
        MedicationClass::ThyroidMedication,
    ];
}

/// Age in whole years plus months (0–11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ScreeningAge)]
#[serde(deny_unknown_fields)]
pub struct Age {
    pub years: u32,
    #[serde(default)]
    pub months: u32,
}

impl Age {
    pub fn total_months(self) -> u64 {
        u64::from(self.years) * 12 + u64::from(self.months)
    }
    /// Age in years as a decimal (months / 12 added).
    pub fn years_f64(self) -> f64 {
        f64::from(self.years) + f64::from(self.months) / 12.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PregnancyStatus {
    Pregnant,
    NotPregnant,
    Unknown,
    NotApplicable,
}

impl PregnancyStatus {
    /// Every variant, in declaration order (for forms and documentation).
    pub const ALL: &'static [PregnancyStatus] = &[
        PregnancyStatus::Pregnant,
        PregnancyStatus::NotPregnant,
        PregnancyStatus::Unknown,
        PregnancyStatus::NotApplicable,
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Medication {
    pub name: String,
    #[serde(default)]
    pub classes: Vec<MedicationClass>,
    #[serde(default)]
    pub daily_dose_mg: Option<f64>,
    /// Diazepam-equivalent daily dose, if the prescriber or pharmacy supplied it.
    #[serde(default)]
    pub diazepam_equivalent_mg_per_day: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub systolic_mmhg: f64,
    pub diastolic_mmhg: f64,
    #[serde(default)]
    pub heart_rate_bpm: Option<f64>,
    #[serde(default)]
    pub spo2_percent: Option<f64>,
}

/// An antidepressant trial in the patient's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AntidepressantTrial {
    pub drug: String,
    pub daily_dose_mg: f64,
    pub weeks: f64,
    pub in_current_episode: bool,
    /// Prescriber's judgement that the dose was adequate (no numeric rule in the reference).
    pub adequate_dose: bool,
    /// Inadequate response.
    pub failed: bool,
}

/// Everything screening reads. Deserializable from the JSON the CLI and API receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreeningInput {
    pub indication: Indication,
    pub drug: Drug,
    pub age: Age,
    pub weight_kg: WeightKg,
    #[serde(default)]
    pub history: Vec<Condition>,
    #[serde(default)]
    pub medications: Vec<Medication>,
    pub pregnancy: PregnancyStatus,
    #[serde(default)]
    pub breastfeeding: bool,
    #[serde(default)]
    pub baseline: Option<Baseline>,
    #[serde(default)]
    pub antidepressant_trials: Vec<AntidepressantTrial>,
}

/// One reason in the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    /// Rule id (stable; used to override).
    pub id: String,
    pub severity: Severity,
    pub reason: String,
    pub source: Vec<String>,
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Eligible,
    NeedsPrescriberReview,
    NotEligible,
}

/// A prescriber's override of a relative finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FindingOverride {
    pub finding_id: String,
    pub by: Username,
    pub reason: String,
    pub at: Timestamp,
}

/// The decision with every finding and every override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScreeningOutcome {
    pub ruleset_version: u32,
    pub indication: Indication,
    pub drug: Drug,
    pub decision: Decision,
    pub findings: Vec<Finding>,
    pub overrides: Vec<FindingOverride>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum ScreenError {
    #[error("screening blocked: the site has not set {}", .missing.iter().map(|m| m.key.as_str()).collect::<Vec<_>>().join(", "))]
    MissingSiteSettings { missing: Vec<MissingSetting> },
    #[error("input field {field}: expected {expected}, got {got}")]
    BadInput {
        field: String,
        expected: String,
        got: String,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum OverrideError {
    #[error("no finding {id:?}; expected one of: {}", available.join(", "))]
    UnknownFinding { id: String, available: Vec<String> },
    #[error("finding {id:?} is absolute: it can never be overridden")]
    Absolute { id: String },
    #[error("finding {id:?} is {severity:?}: only relative findings need an override")]
    NotRelative { id: String, severity: Severity },
    #[error("finding {id:?} is already overridden")]
    AlreadyOverridden { id: String },
    #[error("override of {id:?}: expected a non-empty reason")]
    EmptyReason { id: String },
}

impl ScreeningOutcome {
    /// A prescriber overrides one relative finding; returns the new outcome (the old one is
    /// unchanged, so the caller can store both).
    pub fn override_finding(
        &self,
        finding_id: &str,
        by: Username,
        reason: &str,
        at: Timestamp,
    ) -> Result<ScreeningOutcome, OverrideError> {
        let f = self
            .findings
            .iter()
            .find(|f| f.id == finding_id)
            .ok_or_else(|| OverrideError::UnknownFinding {
                id: finding_id.to_string(),
                available: self.findings.iter().map(|f| f.id.clone()).collect(),
            })?;
        match f.severity {
            Severity::Absolute => {
                return Err(OverrideError::Absolute {
                    id: finding_id.to_string(),
                });
            }
            Severity::Relative => {}
            s => {
                return Err(OverrideError::NotRelative {
                    id: finding_id.to_string(),
                    severity: s,
                });
            }
        }
        if self.overrides.iter().any(|o| o.finding_id == finding_id) {
            return Err(OverrideError::AlreadyOverridden {
                id: finding_id.to_string(),
            });
        }
        if reason.trim().is_empty() {
            return Err(OverrideError::EmptyReason {
                id: finding_id.to_string(),
            });
        }
        let mut next = self.clone();
        next.overrides.push(FindingOverride {
            finding_id: finding_id.to_string(),
            by,
            reason: reason.trim().to_string(),
            at,
        });
        next.decision = decide(&next.findings, &next.overrides);
        Ok(next)
    }
}

fn decide(findings: &[Finding], overrides: &[FindingOverride]) -> Decision {
    if findings.iter().any(|f| f.severity == Severity::Absolute) {
        Decision::NotEligible
    } else if findings.iter().any(|f| {
        f.severity == Severity::Relative && !overrides.iter().any(|o| o.finding_id == f.id)
    }) {
        Decision::NeedsPrescriberReview
    } else {
        Decision::Eligible
    }
}

struct Ctx<'a> {
    settings: &'a SiteSettings,
    missing: Vec<MissingSetting>,
    findings: Vec<Finding>,
}

impl Ctx<'_> {
    /// Resolves a threshold; a required U value that is unset is recorded as missing.
    fn threshold(&mut self, name: &str, c: &Cited) -> Option<f64> {
        let r = c.resolve(self.settings);
        if r.is_none()
            && c.is_required_setting()
            && let Some(k) = &c.site_setting
        {
            self.missing.push(MissingSetting {
                key: k.clone(),
                used_for: format!("eligibility.thresholds.{name}"),
            });
        }
        r.map(|r| r.value)
    }
    fn add(&mut self, id: &str, severity: Severity, reason: String, c: &Cited) {
        self.findings.push(Finding {
            id: id.to_string(),
            severity,
            reason,
            source: c.source.clone(),
            status: c.status,
        });
    }
    fn add_src(
        &mut self,
        id: &str,
        severity: Severity,
        reason: String,
        source: &[String],
        status: Status,
    ) {
        self.findings.push(Finding {
            id: id.to_string(),
            severity,
            reason,
            source: source.to_vec(),
            status,
        });
    }
}

fn finite_nonneg(field: &str, v: f64) -> Result<(), ScreenError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ScreenError::BadInput {
            field: field.to_string(),
            expected: "a finite number ≥ 0".into(),
            got: v.to_string(),
        })
    }
}

fn validate_input(i: &ScreeningInput) -> Result<(), ScreenError> {
    if i.age.months > 11 {
        return Err(ScreenError::BadInput {
            field: "age.months".into(),
            expected: "0 to 11 (whole years go in age.years)".into(),
            got: i.age.months.to_string(),
        });
    }
    if let Some(b) = &i.baseline {
        finite_nonneg("baseline.systolic_mmhg", b.systolic_mmhg)?;
        finite_nonneg("baseline.diastolic_mmhg", b.diastolic_mmhg)?;
        if let Some(h) = b.heart_rate_bpm {
            finite_nonneg("baseline.heart_rate_bpm", h)?;
        }
        if let Some(s) = b.spo2_percent {
            finite_nonneg("baseline.spo2_percent", s)?;
            if s > 100.0 {
                return Err(ScreenError::BadInput {
                    field: "baseline.spo2_percent".into(),
                    expected: "0 to 100".into(),
                    got: s.to_string(),
                });
            }
        }
    }
    for (n, m) in i.medications.iter().enumerate() {
        if let Some(d) = m.daily_dose_mg {
            finite_nonneg(&format!("medications[{n}].daily_dose_mg"), d)?;
        }
        if let Some(d) = m.diazepam_equivalent_mg_per_day {
            finite_nonneg(
                &format!("medications[{n}].diazepam_equivalent_mg_per_day"),
                d,
            )?;
        }
    }
    for (n, t) in i.antidepressant_trials.iter().enumerate() {
        finite_nonneg(
            &format!("antidepressant_trials[{n}].daily_dose_mg"),
            t.daily_dose_mg,
        )?;
        finite_nonneg(&format!("antidepressant_trials[{n}].weeks"), t.weeks)?;
    }
    Ok(())
}

/// Screens one patient. Pure: same input, rules and settings → same outcome.
pub fn screen(
    rules: &RuleSet,
    input: &ScreeningInput,
    settings: &SiteSettings,
) -> Result<ScreeningOutcome, ScreenError> {
    validate_input(input)?;
    let context = input.indication.context();
    let drug = input.drug;
    let t = &rules.thresholds;
    let mut cx = Ctx {
        settings,
        missing: Vec::new(),
        findings: Vec::new(),
    };

    // Thresholds needed for this drug / indication (resolved first so that every missing
    // required setting is reported at once).
    let bp = match drug {
        Drug::Esketamine => (
            cx.threshold(
                "esketamine_bp_systolic_max_mmhg",
                t.esketamine_bp_systolic_max_mmhg.get_ref(),
            ),
            cx.threshold(
                "esketamine_bp_diastolic_max_mmhg",
                t.esketamine_bp_diastolic_max_mmhg.get_ref(),
            ),
            t.esketamine_bp_systolic_max_mmhg.get_ref(),
        ),
        Drug::RacemicKetamine => (
            cx.threshold(
                "ketamine_bp_systolic_max_mmhg",
                t.ketamine_bp_systolic_max_mmhg.get_ref(),
            ),
            cx.threshold(
                "ketamine_bp_diastolic_max_mmhg",
                t.ketamine_bp_diastolic_max_mmhg.get_ref(),
            ),
            t.ketamine_bp_systolic_max_mmhg.get_ref(),
        ),
    };
    let trd = if input.indication == Indication::Trd {
        Some((
            cx.threshold("trd_min_failed_trials", t.trd_min_failed_trials.get_ref()),
            cx.threshold(
                "trd_adequate_trial_min_weeks",
                t.trd_adequate_trial_min_weeks.get_ref(),
            ),
        ))
    } else {
        None
    };
    if !cx.missing.is_empty() {
        let mut missing = cx.missing;
        missing.sort();
        missing.dedup();
        return Err(ScreenError::MissingSiteSettings { missing });
    }

    // Age limits.
    if drug == Drug::Esketamine {
        let c = t.esketamine_min_age_years.get_ref();
        if let Some(min) = cx.threshold("esketamine_min_age_years", c)
            && input.age.years_f64() < min
        {
            cx.add(
                "esketamine-age",
                Severity::Absolute,
                format!("Esketamine is not approved under {min} years; safety and efficacy are not established (patient is {} y {} m).", input.age.years, input.age.months),
                c,
            );
        }
    }
    if drug == Drug::RacemicKetamine && context == Context::Sedation {
        let c = t.sedation_min_age_months.get_ref();
        if let Some(min) = cx.threshold("sedation_min_age_months", c)
            && (input.age.total_months() as f64) < min
        {
            cx.add(
                "sedation-age",
                Severity::Absolute,
                format!("Ketamine sedation is contraindicated under {min} months of age (patient is {} months).", input.age.total_months()),
                c,
            );
        }
    }

    // History.
    for r in &rules.condition_rule {
        let r = r.get_ref();
        if r.drugs.contains(&drug)
            && r.contexts.contains(&context)
            && r.conditions.iter().any(|c| input.history.contains(c))
        {
            cx.add_src(&r.id, r.severity, r.reason.clone(), &r.source, r.status);
        }
    }

    // Pregnancy and breastfeeding.
    for r in &rules.status_rule {
        let r = r.get_ref();
        let hit = match r.when {
            StatusTrigger::Pregnant => input.pregnancy == PregnancyStatus::Pregnant,
            StatusTrigger::PregnancyStatusUnknown => input.pregnancy == PregnancyStatus::Unknown,
            StatusTrigger::Breastfeeding => input.breastfeeding,
        };
        if hit && r.drugs.contains(&drug) {
            cx.add_src(&r.id, r.severity, r.reason.clone(), &r.source, r.status);
        }
    }

    // Medications.
    let classes_of = |m: &Medication| -> Vec<MedicationClass> {
        let mut v = m.classes.clone();
        let name = m.name.trim().to_lowercase();
        for n in &rules.medication_name {
            let n = n.get_ref();
            if n.name == name && !v.contains(&n.class) {
                v.push(n.class);
            }
        }
        v
    };
    for r in &rules.medication_rule {
        let r = r.get_ref();
        if !(r.drugs.contains(&drug) && r.contexts.contains(&context)) {
            continue;
        }
        let hits: Vec<&str> = input
            .medications
            .iter()
            .filter(|m| classes_of(m).iter().any(|c| r.classes.contains(c)))
            .map(|m| m.name.as_str())
            .collect();
        if !hits.is_empty() {
            cx.add_src(
                &r.id,
                r.severity,
                format!("{} ({})", r.reason, hits.join(", ")),
                &r.source,
                r.status,
            );
        }
    }

    // Benzodiazepine load in diazepam equivalents (psychiatric context: blunted response).
    if context == Context::Psychiatric {
        benzodiazepine_load(&mut cx, rules, input, &classes_of);
    }

    // Baseline gates.
    baseline(&mut cx, rules, input, bp);

    // TRD definition.
    if let Some((Some(min_trials), Some(min_weeks))) = trd {
        let c = t.trd_min_failed_trials.get_ref();
        let count = input
            .antidepressant_trials
            .iter()
            .filter(|tr| {
                tr.in_current_episode && tr.failed && tr.adequate_dose && tr.weeks >= min_weeks
            })
            .count();
        let reason = format!(
            "{count} failed adequate antidepressant trial(s) in the current episode (adequate = dose judged adequate and ≥ {min_weeks} weeks, site setting); the TRD definition needs ≥ {min_trials}."
        );
        if (count as f64) < min_trials {
            cx.add(
                "trd-definition",
                Severity::Relative,
                format!("Does not meet the TRD definition: {reason}"),
                c,
            );
        } else {
            cx.add(
                "trd-definition",
                Severity::Information,
                format!("Meets the TRD definition: {reason}"),
                c,
            );
        }
    }

    let findings = cx.findings;
    Ok(ScreeningOutcome {
        ruleset_version: rules.version,
        indication: input.indication,
        drug,
        decision: decide(&findings, &[]),
        findings,
        overrides: Vec::new(),
    })
}

fn benzodiazepine_load(
    cx: &mut Ctx<'_>,
    rules: &RuleSet,
    input: &ScreeningInput,
    classes_of: &dyn Fn(&Medication) -> Vec<MedicationClass>,
) {
    let t = &rules.thresholds;
    let c = t.benzodiazepine_max_diazepam_eq_mg_per_day.get_ref();
    let Some(max) = c.resolve(cx.settings).map(|r| r.value) else {
        return;
    };
    let mut total = 0.0;
    let mut unknown: Vec<String> = Vec::new();
    let mut any = false;
    for m in &input.medications {
        if !classes_of(m).contains(&MedicationClass::Benzodiazepine) {
            continue;
        }
        any = true;
        let name = m.name.trim().to_lowercase();
        let key = format!("{}.{}", t.diazepam_factor_setting_prefix, name);
        let de = match (m.diazepam_equivalent_mg_per_day, m.daily_dose_mg) {
            (Some(de), _) => Some(de),
            // Diazepam is its own equivalent by definition.
            (None, Some(d)) if name == "diazepam" => Some(d),
            (None, Some(d)) => cx.settings.value(&key).map(|f| d * f),
            (None, None) => None,
        };
        match de {
            Some(v) => total += v,
            None => unknown.push(format!(
                "{} (no diazepam equivalent given and no site setting {key})",
                m.name
            )),
        }
    }
    if !any {
        return;
    }
    if !unknown.is_empty() {
        cx.add(
            "benzodiazepine-load-unknown",
            Severity::Relative,
            format!(
                "Benzodiazepine load cannot be computed in diazepam equivalents for: {}. The reference gives no equivalence table; enter the equivalent or set the site factor.",
                unknown.join("; ")
            ),
            c,
        );
    }
    if total > max {
        cx.add(
            "benzodiazepine-load",
            Severity::Relative,
            format!("Benzodiazepine load {total} mg/day diazepam equivalents is above {max} mg/day, which separated ketamine non-responders; consider the plan with the prescriber."),
            c,
        );
    } else if unknown.is_empty() {
        cx.add(
            "benzodiazepine-load",
            Severity::Information,
            format!(
                "Benzodiazepine load {total} mg/day diazepam equivalents (flag above {max} mg/day)."
            ),
            c,
        );
    }
}

fn baseline(
    cx: &mut Ctx<'_>,
    rules: &RuleSet,
    input: &ScreeningInput,
    (sys_max, dia_max, bp_cite): (Option<f64>, Option<f64>, &Cited),
) {
    let t = &rules.thresholds;
    let Some(b) = input.baseline else {
        cx.add(
            "baseline-bp-missing",
            Severity::Relative,
            "Baseline blood pressure is not recorded, so the blood-pressure gate cannot be checked.".into(),
            bp_cite,
        );
        return;
    };
    if let (Some(smax), Some(dmax)) = (sys_max, dia_max)
        && (b.systolic_mmhg > smax || b.diastolic_mmhg > dmax)
    {
        cx.add(
            "baseline-bp",
            Severity::Relative,
            format!(
                "Baseline BP {}/{} mmHg is above {smax}/{dmax} mmHg: weigh the expected short-term BP rise against benefit; do not give if a BP or intracranial-pressure rise poses a serious risk.",
                b.systolic_mmhg, b.diastolic_mmhg
            ),
            bp_cite,
        );
    }
    let spo2 = t.baseline_spo2_min_percent.get_ref();
    match (b.spo2_percent, spo2.resolve(cx.settings)) {
        (Some(s), Some(min)) if s < min.value => cx.add(
            "baseline-spo2",
            Severity::Relative,
            format!("Baseline SpO2 {s}% is below the site threshold {}%.", min.value),
            spo2,
        ),
        (Some(_), None) => cx.add(
            "baseline-spo2",
            Severity::Information,
            "Baseline SpO2 recorded but not gated: the reference gives no threshold and the site has not set one.".into(),
            spo2,
        ),
        _ => {}
    }
    let hr = t.baseline_heart_rate_max_bpm.get_ref();
    match (b.heart_rate_bpm, hr.resolve(cx.settings)) {
        (Some(h), Some(max)) if h > max.value => cx.add(
            "baseline-heart-rate",
            Severity::Relative,
            format!("Baseline heart rate {h}/min is above the site threshold {}/min.", max.value),
            hr,
        ),
        (Some(_), None) => cx.add(
            "baseline-heart-rate",
            Severity::Information,
            "Baseline heart rate recorded but not gated: the reference gives no threshold and the site has not set one.".into(),
            hr,
        ),
        _ => {}
    }
}
