//! Cited values in the operations data files: a value with its source IDs and status, or (for
//! values the reference leaves unconfirmed) the name of the site setting that supplies it.

use ketcare_core::data::{DataFileError, from_toml_error};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A value from `data/ops/`, as the file states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = OpsCited)]
#[serde(untagged)]
pub enum Cited<T> {
    Value {
        value: T,
        source: Vec<String>,
        status: String,
        #[serde(default)]
        note: Option<String>,
    },
    SiteSetting {
        site_setting: String,
        status: String,
        #[serde(default)]
        note: Option<String>,
    },
}

/// Where a number used in a decision came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = OpsProvenance)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance {
    /// A row of the clinical reference.
    Reference { source: Vec<String>, status: String },
    /// A value the site set (the reference does not confirm one).
    SiteSetting { key: String },
}

/// A value the site must set before this can be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, utoipa::ToSchema)]
#[schema(as = OpsMissingSetting)]
#[error("site setting `{key}` is not set ({why})")]
pub struct MissingSetting {
    pub key: String,
    pub why: String,
}

/// A value as a site setting holds it. Site settings are positive numbers, so a yes/no setting
/// is 1 for yes and 2 for no.
pub trait FromSetting: Sized {
    fn from_setting(raw: &str) -> Option<Self>;
}

impl FromSetting for u32 {
    fn from_setting(raw: &str) -> Option<Self> {
        let v: f64 = raw.trim().parse().ok()?;
        (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX))
            .then_some(v as u32)
    }
}

impl FromSetting for bool {
    fn from_setting(raw: &str) -> Option<Self> {
        match raw.trim() {
            "1" | "1.0" | "true" => Some(true),
            "2" | "2.0" | "0" | "false" => Some(false),
            _ => None,
        }
    }
}

impl FromSetting for f64 {
    fn from_setting(raw: &str) -> Option<Self> {
        raw.trim().parse().ok().filter(|v: &f64| v.is_finite())
    }
}

impl<T: Clone + FromSetting> Cited<T> {
    /// The value and its provenance; a site setting is looked up with `settings`.
    pub fn resolve(
        &self,
        what: &str,
        settings: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(T, Provenance), MissingSetting> {
        match self {
            Cited::Value {
                value,
                source,
                status,
                ..
            } => Ok((
                value.clone(),
                Provenance::Reference {
                    source: source.clone(),
                    status: status.clone(),
                },
            )),
            Cited::SiteSetting { site_setting, .. } => {
                let raw = settings(site_setting).ok_or_else(|| MissingSetting {
                    key: site_setting.clone(),
                    why: format!("{what} is not confirmed by the clinical reference"),
                })?;
                let v = T::from_setting(&raw).ok_or_else(|| MissingSetting {
                    key: site_setting.clone(),
                    why: format!("{what}: the stored value `{raw}` is not valid"),
                })?;
                Ok((
                    v,
                    Provenance::SiteSetting {
                        key: site_setting.clone(),
                    },
                ))
            }
        }
    }
}

impl<T> Cited<T> {
    /// Checks the status rules: a value is V or S and names a source; a site setting is U.
    pub fn check(&self, field: &str) -> Result<(), (String, String)> {
        match self {
            Cited::Value { source, status, .. } => {
                if !matches!(status.as_str(), "V" | "S") {
                    return Err((
                        field.to_owned(),
                        format!(
                            "status must be V or S for a value; got `{status}` (a U value must be a site_setting)"
                        ),
                    ));
                }
                if source.is_empty() {
                    return Err((field.to_owned(), "a value must name its source".to_owned()));
                }
                Ok(())
            }
            Cited::SiteSetting {
                site_setting,
                status,
                ..
            } => {
                if status != "U" {
                    return Err((
                        field.to_owned(),
                        format!("a site_setting has status U; got `{status}`"),
                    ));
                }
                if site_setting.trim().is_empty() {
                    return Err((field.to_owned(), "site_setting is empty".to_owned()));
                }
                Ok(())
            }
        }
    }
}

/// Parses a TOML data file, naming file, line and field on error.
pub(crate) fn parse_toml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, DataFileError> {
    toml::from_str(text).map_err(|e| from_toml_error(file, text, &e))
}

/// The 1-based line where `needle` first occurs after the line of `anchor` (best effort; 0 if
/// not found), used to point semantic errors at the right place.
pub(crate) fn line_near(text: &str, anchor: &str, needle: &str) -> usize {
    let start = text.find(anchor).unwrap_or(0);
    let at = text[start..]
        .find(needle)
        .map(|i| i + start)
        .or_else(|| text.find(anchor));
    at.map(|o| ketcare_core::data::line_of(text, o))
        .unwrap_or(0)
}

pub(crate) fn data_error(file: &str, line: usize, field: &str, message: String) -> DataFileError {
    DataFileError {
        file: file.to_owned(),
        line,
        field: field.to_owned(),
        message,
    }
}
