//! The eligibility rule file.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::screen::{Condition, MedicationClass, Severity};
use crate::data::{DataError, FileCtx, parse_toml};
use crate::protocol::{Context, Drug, SCited};
use crate::source::{SourceCatalogue, Status};

/// Numeric thresholds of the eligibility rules, each cited (or a site setting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub esketamine_min_age_years: SCited,
    pub sedation_min_age_months: SCited,
    /// Body weight outside this range is not a human weight (hard, every calculation).
    pub weight_min_kg: SCited,
    pub weight_max_kg: SCited,
    /// The site's plausible range inside it (soft; optional settings).
    pub weight_soft_min_kg: SCited,
    pub weight_soft_max_kg: SCited,
    pub esketamine_bp_systolic_max_mmhg: SCited,
    pub esketamine_bp_diastolic_max_mmhg: SCited,
    pub ketamine_bp_systolic_max_mmhg: SCited,
    pub ketamine_bp_diastolic_max_mmhg: SCited,
    pub baseline_spo2_min_percent: SCited,
    pub baseline_heart_rate_max_bpm: SCited,
    pub benzodiazepine_max_diazepam_eq_mg_per_day: SCited,
    pub trd_min_failed_trials: SCited,
    pub trd_adequate_trial_min_weeks: SCited,
    /// Prefix of site settings holding diazepam-equivalence factors (`<prefix>.<drug name>`).
    pub diazepam_factor_setting_prefix: String,
}

/// A history item that triggers a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionRule {
    pub id: String,
    pub conditions: Vec<Condition>,
    #[serde(default = "both_drugs")]
    pub drugs: Vec<Drug>,
    #[serde(default = "all_contexts")]
    pub contexts: Vec<Context>,
    pub severity: Severity,
    pub reason: String,
    pub source: Vec<String>,
    pub status: Status,
}

/// A medication class that triggers a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationRule {
    pub id: String,
    pub classes: Vec<MedicationClass>,
    #[serde(default = "both_drugs")]
    pub drugs: Vec<Drug>,
    #[serde(default = "all_contexts")]
    pub contexts: Vec<Context>,
    pub severity: Severity,
    pub reason: String,
    pub source: Vec<String>,
    pub status: Status,
}

/// What a status rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusTrigger {
    Pregnant,
    PregnancyStatusUnknown,
    Breastfeeding,
}

/// A rule on pregnancy or breastfeeding status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRule {
    pub id: String,
    pub when: StatusTrigger,
    #[serde(default = "both_drugs")]
    pub drugs: Vec<Drug>,
    pub severity: Severity,
    pub reason: String,
    pub source: Vec<String>,
    pub status: Status,
}

/// A drug name the reference itself places in a class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationName {
    pub name: String,
    pub class: MedicationClass,
    pub source: Vec<String>,
    pub status: Status,
}

fn both_drugs() -> Vec<Drug> {
    vec![Drug::RacemicKetamine, Drug::Esketamine]
}
fn all_contexts() -> Vec<Context> {
    vec![Context::Psychiatric, Context::Pain, Context::Sedation]
}

/// The whole rule set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub version: u32,
    pub thresholds: Thresholds,
    #[serde(default)]
    pub condition_rule: Vec<Spanned<ConditionRule>>,
    #[serde(default)]
    pub medication_rule: Vec<Spanned<MedicationRule>>,
    #[serde(default)]
    pub status_rule: Vec<Spanned<StatusRule>>,
    #[serde(default)]
    pub medication_name: Vec<Spanned<MedicationName>>,
}

impl RuleSet {
    pub(crate) fn parse(
        file: &str,
        text: &str,
        sources: &SourceCatalogue,
    ) -> Result<RuleSet, DataError> {
        let r: RuleSet = parse_toml(file, text)?;
        let cx = FileCtx { file, text };
        if r.version == 0 {
            return Err(cx.invalid(0..0, "version", "expected a version number ≥ 1"));
        }
        let t = &r.thresholds;
        for (n, c) in [
            ("esketamine_min_age_years", &t.esketamine_min_age_years),
            ("sedation_min_age_months", &t.sedation_min_age_months),
            ("weight_min_kg", &t.weight_min_kg),
            ("weight_max_kg", &t.weight_max_kg),
            ("weight_soft_min_kg", &t.weight_soft_min_kg),
            ("weight_soft_max_kg", &t.weight_soft_max_kg),
            (
                "esketamine_bp_systolic_max_mmhg",
                &t.esketamine_bp_systolic_max_mmhg,
            ),
            (
                "esketamine_bp_diastolic_max_mmhg",
                &t.esketamine_bp_diastolic_max_mmhg,
            ),
            (
                "ketamine_bp_systolic_max_mmhg",
                &t.ketamine_bp_systolic_max_mmhg,
            ),
            (
                "ketamine_bp_diastolic_max_mmhg",
                &t.ketamine_bp_diastolic_max_mmhg,
            ),
            ("baseline_spo2_min_percent", &t.baseline_spo2_min_percent),
            (
                "baseline_heart_rate_max_bpm",
                &t.baseline_heart_rate_max_bpm,
            ),
            (
                "benzodiazepine_max_diazepam_eq_mg_per_day",
                &t.benzodiazepine_max_diazepam_eq_mg_per_day,
            ),
            ("trd_min_failed_trials", &t.trd_min_failed_trials),
            (
                "trd_adequate_trial_min_weeks",
                &t.trd_adequate_trial_min_weeks,
            ),
        ] {
            if let Some(m) = c.get_ref().shape_problem(sources) {
                return Err(cx.invalid(c.span(), format!("thresholds.{n}"), m));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut check = |span: std::ops::Range<usize>,
                         kind: &str,
                         id: &str,
                         reason: &str,
                         src: &[String],
                         status: Status|
         -> Result<(), DataError> {
            if !crate::source::valid_key(id) || !ids.insert(id.to_string()) {
                return Err(cx.invalid(
                    span,
                    format!("{kind}.id"),
                    format!("expected a unique id, got {id:?}"),
                ));
            }
            if reason.trim().is_empty() {
                return Err(cx.invalid(
                    span,
                    format!("{kind}[{id}].reason"),
                    "expected plain words",
                ));
            }
            if status == Status::U {
                return Err(cx.invalid(
                    span,
                    format!("{kind}[{id}].status"),
                    "U rows are not encoded as rules",
                ));
            }
            if src.is_empty() {
                return Err(cx.invalid(
                    span,
                    format!("{kind}[{id}].source"),
                    "expected at least one source ID",
                ));
            }
            if let Some(bad) = src.iter().find(|s| sources.citation(s).is_none()) {
                return Err(cx.invalid(
                    span,
                    format!("{kind}[{id}].source"),
                    format!("unknown source ID {bad:?}: expected an ID from the References table of clinical.md"),
                ));
            }
            Ok(())
        };
        for c in &r.condition_rule {
            let v = c.get_ref();
            if v.conditions.is_empty() {
                return Err(cx.invalid(
                    c.span(),
                    format!("condition_rule[{}].conditions", v.id),
                    "expected at least one condition",
                ));
            }
            check(
                c.span(),
                "condition_rule",
                &v.id,
                &v.reason,
                &v.source,
                v.status,
            )?;
        }
        for c in &r.medication_rule {
            let v = c.get_ref();
            check(
                c.span(),
                "medication_rule",
                &v.id,
                &v.reason,
                &v.source,
                v.status,
            )?;
        }
        for c in &r.status_rule {
            let v = c.get_ref();
            check(
                c.span(),
                "status_rule",
                &v.id,
                &v.reason,
                &v.source,
                v.status,
            )?;
        }
        for c in &r.medication_name {
            let v = c.get_ref();
            check(
                c.span(),
                "medication_name",
                &format!("name-{}", v.name),
                &v.name,
                &v.source,
                v.status,
            )?;
        }
        Ok(r)
    }
}
