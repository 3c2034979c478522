//! # ketcare-measures
//!
//! The pure measurement-based-care core of ketcare: cited instruments with their scoring rules,
//! severity bands, cut-offs and LOINC codes (`data/measures/instruments.toml`), completeness
//! checks, suicide-risk safety flags, course outcomes (baseline, response, remission, relapse,
//! time to relapse), the booster-due rule, and opioid morphine milligram equivalents
//! (`data/measures/opioids.toml`, CDC 2022 factors).
//!
//! No I/O, no clock: data files are embedded (or passed in as text) and dates are passed in, so
//! pages, the JSON API and the CLI give the same numbers.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod care_plan;
pub mod catalogue;
pub mod clinic_text;
pub mod mme;
pub mod outcome;
pub mod score;
pub mod sending;

pub use catalogue::{Catalogue, Instrument, Item, ScoringKind, Wording};
pub use ketcare_clinical::source::{Provenance, Status};
pub use ketcare_clinical::{DataError, SiteSettings};
pub use mme::{DoseUnit, MmeError, MmeLine, OpioidEntry, OpioidTable};
pub use outcome::{BoosterDue, BoosterRule, CourseOutcome, Point, booster_due, course_outcome};
pub use score::{SafetyFlag, Score, ScoreError, parse_answers, safety_flags, score};
