//! Eligibility screening: contraindications, interactions, the baseline gates and the TRD
//! definition, as cited data (`data/eligibility/rules.toml`) evaluated by pure functions.

mod rules;
mod screen;

pub use rules::{
    ConditionRule, MedicationName, MedicationRule, RuleSet, StatusRule, StatusTrigger, Thresholds,
};
pub use screen::{
    Age, AntidepressantTrial, Baseline, Condition, Decision, Finding, FindingOverride, Medication,
    MedicationClass, OverrideError, PregnancyStatus, ScreenError, ScreeningInput, ScreeningOutcome,
    Severity, screen,
};
