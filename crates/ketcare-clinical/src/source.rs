//! Cited values: every clinical number carries the source IDs and status of its row in
//! `../shared/reference/clinical.md`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::settings::SiteSettings;

/// Status of a reference row (see "How to read the tables" in clinical.md).
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
pub enum Status {
    /// Read in the primary document (or its official abstract / faithful summary).
    V,
    /// Read only in a secondary source: a configurable default, flagged for clinical verification.
    S,
    /// Unconfirmed: never a built-in default; a site setting the clinic must fill.
    U,
}

/// A number from the reference, or (status U) the site setting that supplies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cited {
    /// The value (V and S rows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Site-setting key: required for U rows; for S rows an optional key that replaces the
    /// configurable default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_setting: Option<String>,
    /// For U rows: whether the protocol or rule is blocked until the site sets it (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Source IDs (`R17`, `R1a`, ...). May be empty only for U rows.
    #[serde(default)]
    pub source: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A non-numeric statement from the reference (course text, monitoring item, fasting rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CitedText {
    pub text: String,
    #[serde(default)]
    pub source: Vec<String>,
    pub status: Status,
}

/// Where a number in a result came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance {
    /// A reference row.
    Reference { source: Vec<String>, status: Status },
    /// A site setting (U rows, or a site-configured S default).
    SiteSetting { key: String },
    /// A limit narrowed or (with second approval) widened by an administrator.
    SiteLimitOverride {
        key: String,
        set_by: String,
        second_approver: Option<String>,
    },
    /// Supplied in the request.
    Input { field: String },
    /// Computed from other numbers; `formula` says how.
    Computed { formula: String },
}

/// A resolved number with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resolved {
    pub value: f64,
    pub provenance: Provenance,
}

impl Cited {
    /// Whether the site must set this value before use.
    pub fn is_required_setting(&self) -> bool {
        self.status == Status::U && self.required.unwrap_or(true)
    }

    /// The value to use: the site setting if set (U, or S with a key), else the cited default.
    /// `None` when a U value has not been set.
    pub fn resolve(&self, settings: &SiteSettings) -> Option<Resolved> {
        if let Some(key) = &self.site_setting
            && let Some(v) = settings.value(key)
        {
            return Some(Resolved {
                value: v,
                provenance: Provenance::SiteSetting { key: key.clone() },
            });
        }
        match (self.status, self.value) {
            (Status::V | Status::S, Some(v)) => Some(Resolved {
                value: v,
                provenance: Provenance::Reference {
                    source: self.source.clone(),
                    status: self.status,
                },
            }),
            _ => None,
        }
    }

    /// The site setting key of a U value that is unset (if any).
    pub fn missing_setting(&self, settings: &SiteSettings) -> Option<&str> {
        match (&self.site_setting, self.status) {
            (Some(key), Status::U) if settings.value(key).is_none() => Some(key.as_str()),
            _ => None,
        }
    }

    /// Checks the shape rules for a cited value; returns a message naming what was expected.
    pub(crate) fn shape_problem(&self, known: &SourceCatalogue) -> Option<String> {
        match self.status {
            Status::V | Status::S => {
                let Some(v) = self.value else {
                    return Some(format!(
                        "status {:?} needs `value` (a number read in the source)",
                        self.status
                    ));
                };
                if !v.is_finite() || v <= 0.0 {
                    return Some(format!("`value` must be a finite number > 0, got {v}"));
                }
                if self.source.is_empty() {
                    return Some("`source` must list at least one source ID".into());
                }
                if self.status == Status::V && self.site_setting.is_some() {
                    return Some(
                        "status V values are not site-configurable; remove `site_setting`".into(),
                    );
                }
            }
            Status::U => {
                if self.value.is_some() {
                    return Some(
                        "status U values are never hard-coded: remove `value` and name a `site_setting`"
                            .into(),
                    );
                }
                match &self.site_setting {
                    Some(k) if valid_key(k) => {}
                    Some(k) => {
                        return Some(format!(
                            "`site_setting` {k:?} must be non-empty [a-z0-9._-] text"
                        ));
                    }
                    None => return Some("status U needs a `site_setting` key".into()),
                }
            }
        }
        known.unknown_in(&self.source)
    }
}

impl CitedText {
    pub(crate) fn shape_problem(&self, known: &SourceCatalogue) -> Option<String> {
        if self.text.trim().is_empty() {
            return Some("`text` must not be empty".into());
        }
        if self.status != Status::U && self.source.is_empty() {
            return Some("`source` must list at least one source ID".into());
        }
        known.unknown_in(&self.source)
    }
}

pub(crate) fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// The source IDs of the reference's References table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceCatalogue {
    pub sources: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesFile {
    #[allow(dead_code)]
    version: u32,
    source: Vec<SourceRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceRow {
    id: String,
    citation: String,
}

impl SourceCatalogue {
    pub fn parse(name: &str, text: &str) -> Result<Self, crate::DataError> {
        let file: SourcesFile = crate::data::parse_toml(name, text)?;
        let sources = file
            .source
            .into_iter()
            .map(|r| (r.id, r.citation))
            .collect();
        Ok(Self { sources })
    }

    /// Citation text of a source ID.
    pub fn citation(&self, id: &str) -> Option<&str> {
        self.sources.get(id).map(String::as_str)
    }

    fn unknown_in(&self, ids: &[String]) -> Option<String> {
        ids.iter()
            .find(|id| !self.sources.contains_key(id.as_str()))
            .map(|id| format!("unknown source ID {id:?}: expected an ID from the References table of clinical.md"))
    }
}
