//! Model data files (`data/pk/*.toml`): shape, parsing and validation. A bad file is refused
//! naming file, line and field.

use crate::error::PkError;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;

/// Status of a reference row (pkpd.md "How to read this file").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = PkStatus)]
pub enum Status {
    /// Read in the primary paper, label or primary source code.
    V,
    /// Read only in a secondary source (third-party implementation, review).
    S,
    /// Computed from V/S values; never shown as a literature value.
    C,
    /// Unconfirmed: never a built-in number.
    U,
}

/// Which drug a model describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = PkDrug)]
#[serde(rename_all = "kebab-case")]
pub enum Drug {
    Racemic,
    SKetamine,
    Esketamine,
}

/// How weight enters the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightScaling {
    /// Units `L/kg` scale with total body weight.
    PerKg,
    /// Units `…/70kg` scale as (WT/ref)^exponent.
    Allometric,
    /// No weight covariate.
    None,
}

/// A statement with its sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = PkCitedText)]
#[serde(deny_unknown_fields)]
pub struct CitedText {
    pub text: String,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
}

/// A number with its sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitedValue {
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allometry {
    pub volume: f64,
    pub clearance: f64,
    pub reference_kg: f64,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The ranges of the studied population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_years: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_kg: Option<[f64; 2]>,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompartmentDef {
    pub id: String,
    /// Parameter giving the volume (needed for outputs and clearance flows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

/// A first-order transfer `from → to`: rate constant `k`, or clearance `cl` over the volume of
/// `from`; optionally times `fraction` or (1 − `complement`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDef {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complement: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputDef {
    pub id: String,
    pub name: String,
    pub compartment: String,
}

/// One part of a dose given by a model's own absorption scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemeInput {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complement: Option<String>,
    /// Zero-order input over this parameter's duration (else a bolus into `to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteScheme {
    pub route: crate::Route,
    pub description: String,
    pub inputs: Vec<SchemeInput>,
}

/// A model's own value for the generic first-order absorption of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDefault {
    pub route: crate::Route,
    pub f: CitedValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ka: Option<CitedValue>,
}

/// A linear covariate effect above a threshold: `param += slope × max(0, covariate − above)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CovariateDef {
    pub param: String,
    pub covariate: String,
    pub above: f64,
    pub slope: f64,
    pub unit: String,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Log-normal inter-individual variability: give `cv` (fraction) or `omega2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IivDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omega2: Option<f64>,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
}

impl IivDef {
    /// Variance of η on the log scale.
    pub fn omega2(&self) -> f64 {
        match (self.omega2, self.cv) {
            (Some(w), _) => w,
            (None, Some(cv)) => (1.0 + cv * cv).ln(),
            (None, None) => 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDef {
    pub value: f64,
    pub unit: String,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iiv: Option<IivDef>,
}

/// Residual error of one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidualDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proportional: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_sd: Option<f64>,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
}

/// Correlation of two parameters' random effects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationDef {
    pub params: [String; 2],
    pub r: f64,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
}

/// Devices after the first within one dosing occasion absorb a scaled fraction (Perez-Ruixo
/// 2021: "Subsequent 28-mg sprays on FRn × 0.62", pkpd.md §2.12). Within an occasion the first
/// `device_mg` of drug is split by `fraction`; every further mg by `fraction × subsequent_factor`.
/// A dose given `occasion_gap_min` or more after the previous dose of the route starts a new
/// occasion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRule {
    pub route: crate::Route,
    /// The scheme's fraction parameter the rule scales (e.g. `frn`).
    pub fraction: String,
    /// The parameter (unit "fraction") multiplying `fraction` for subsequent devices.
    pub subsequent_factor: String,
    /// Drug per device (mg).
    pub device_mg: CitedValue,
    /// Gap (min) from the previous dose that starts a new dosing occasion.
    pub occasion_gap_min: CitedValue,
}

/// A parameter changing linearly with time since the first dose of the regimen:
/// `param(t) = param × (1 + per_hour × t_h)` (Flint 2017: CL_snk +0.870 %/h of infusion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeEffect {
    pub param: String,
    /// Fractional change per hour (0.0087 = +0.870 %/h).
    pub per_hour: f64,
    pub status: Status,
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub id: String,
    pub name: String,
    pub drug: Drug,
    pub structure: String,
    pub sources: Vec<String>,
    pub weight_scaling: WeightScaling,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_scaling_note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allometry: Option<Allometry>,
    pub population: CitedText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<Validity>,
    #[serde(default)]
    pub adults_only: bool,
    #[serde(default)]
    pub paediatric: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_modelled: Option<String>,
    pub compartment: Vec<CompartmentDef>,
    pub flow: Vec<FlowDef>,
    pub output: Vec<OutputDef>,
    #[serde(default)]
    pub route_scheme: Vec<RouteScheme>,
    #[serde(default)]
    pub route_default: Vec<RouteDefault>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_rule: Vec<DeviceRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_effect: Vec<TimeEffect>,
    #[serde(default)]
    pub covariate: Vec<CovariateDef>,
    pub param: BTreeMap<String, ParamDef>,
    #[serde(default)]
    pub residual: BTreeMap<String, ResidualDef>,
    /// Correlations between the log-scale random effects of two parameters.
    #[serde(default)]
    pub correlation: Vec<CorrelationDef>,
    /// Values the reference does not give (U), as text: never numbers.
    #[serde(default)]
    pub unpublished: BTreeMap<String, String>,
}

/// Population a route-table row applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutePopulation {
    Adult,
    Paediatric,
    Any,
}

/// One row of `routes.toml` (pkpd.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRow {
    pub route: crate::Route,
    pub drug: Drug,
    pub population: RoutePopulation,
    pub f: CitedValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ka: Option<CitedValue>,
    #[serde(default)]
    pub alternatives: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    pub route: Vec<RouteRow>,
    /// Default maximum rate of the advisory target-controlled infusion (mg/kg/min).
    pub tci_max_rate: CitedValue,
    /// Highest TCI target accepted (ng/mL).
    pub tci_max_target: CitedValue,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parse TOML into `T`; errors name file, line and field path.
pub(crate) fn parse<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, PkError> {
    let de = toml::Deserializer::parse(text).map_err(|e| PkError::Data {
        file: file.into(),
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        field: "(syntax)".into(),
        message: e.message().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        let inner = e.inner();
        PkError::Data {
            file: file.into(),
            line: inner.span().map_or(1, |s| line_of(text, s.start)),
            field: if field.is_empty() || field == "." {
                "(file)".into()
            } else {
                field
            },
            message: inner.message().to_string(),
        }
    })
}

/// Builds rule errors for one file, finding the line where the named table or key is written.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Ctx<'_> {
    /// `anchor` is a table header fragment (`[param.k10`) or a key (`id`) searched for the line.
    pub(crate) fn err(&self, anchor: &str, field: &str, message: impl Into<String>) -> PkError {
        let mut off = 0;
        let mut line_off = None;
        for l in self.text.split_inclusive('\n') {
            let t = l.trim_start();
            let hit = if anchor.starts_with('[') {
                t.starts_with(anchor)
            } else {
                t.strip_prefix(anchor)
                    .is_some_and(|r| r.trim_start().starts_with('='))
                    || t.contains(&format!("\"{anchor}\""))
            };
            if hit {
                line_off = Some(off);
                break;
            }
            off += l.len();
        }
        PkError::Data {
            file: self.file.into(),
            line: line_of(self.text, line_off.unwrap_or(0)),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Source IDs look like `P1` … `P40` (pkpd.md References).
pub(crate) fn check_sources(
    ctx: &Ctx,
    anchor: &str,
    field: &str,
    status: Status,
    sources: &[String],
) -> Result<(), PkError> {
    for s in sources {
        let ok = s
            .strip_prefix('P')
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=40).contains(&n));
        if !ok {
            return Err(ctx.err(
                anchor,
                field,
                format!("unknown source ID {s:?}; expected P1 … P40 from pkpd.md"),
            ));
        }
    }
    if matches!(status, Status::V | Status::S) && sources.is_empty() {
        return Err(ctx.err(anchor, field, "a V or S value must name its source"));
    }
    Ok(())
}
