//! Site settings: values the reference leaves unconfirmed (status U), site-configured S
//! defaults, and administrator limit overrides.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ids::Username;

/// Key → value settings of one site, plus limit overrides. Read from JSON or TOML by the edges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteSettings {
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
    /// Settings that are text, not numbers (a telephone number: its leading zero and `+` are
    /// part of it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub texts: BTreeMap<String, String>,
    #[serde(default)]
    pub limit_overrides: Vec<LimitOverride>,
}

/// An administrator's change to one limit of one protocol.
///
/// Narrowing is always allowed. Widening a hard limit past the cited value needs a
/// `second_approver` who is not `set_by`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOverride {
    pub protocol_id: String,
    pub limit_id: String,
    pub value: f64,
    pub set_by: Username,
    #[serde(default)]
    pub second_approver: Option<Username>,
    pub reason: String,
}

impl SiteSettings {
    /// Empty settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A text setting, if set and not blank.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.texts
            .get(key)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    /// Sets a key (builder style).
    pub fn with(mut self, key: &str, value: f64) -> Self {
        self.values.insert(key.to_string(), value);
        self
    }

    /// The value of a key, if set to a usable number (finite and within the representable
    /// range of [`crate::units`]; every setting here is a positive quantity). Unusable values
    /// read as unset and are reported by `Library::check_settings` and readiness.
    pub fn value(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied().filter(|v| usable(*v))
    }

    /// The override of a protocol limit, if any.
    pub fn limit_override(&self, protocol_id: &str, limit_id: &str) -> Option<&LimitOverride> {
        self.limit_overrides
            .iter()
            .find(|o| o.protocol_id == protocol_id && o.limit_id == limit_id)
    }
}

/// Whether a settings value is a usable positive quantity.
pub(crate) fn usable(v: f64) -> bool {
    v.is_finite() && (crate::units::MIN_MAGNITUDE..=crate::units::MAX_MAGNITUDE).contains(&v)
}

/// Keys of the rounding rules (the reference gives no syringe or pump increments).
pub mod keys {
    /// Dose rounding increment in mg for weight-based doses.
    pub const DOSE_MG_INCREMENT: &str = "rounding.dose_mg_increment";
    /// Smallest volume step a syringe can measure, in mL.
    pub const SYRINGE_ML_INCREMENT: &str = "rounding.syringe_ml_increment";
    /// Pump rate step, in mL/h.
    pub const PUMP_ML_PER_H_INCREMENT: &str = "rounding.pump_ml_per_h_increment";
}

/// A problem with the site settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, utoipa::ToSchema)]
pub enum SettingsError {
    #[error("setting {key}: expected a finite number between 1e-9 and 1e9, got {value}")]
    BadValue { key: String, value: f64 },
    #[error("limit override {protocol_id}/{limit_id}: no such protocol limit")]
    UnknownLimit {
        protocol_id: String,
        limit_id: String,
    },
    #[error(
        "limit override {protocol_id}/{limit_id}: {value} widens the hard limit past the cited {cited}; expected a second approver different from {set_by}"
    )]
    WideningNeedsSecondApprover {
        protocol_id: String,
        limit_id: String,
        value: f64,
        cited: f64,
        set_by: String,
    },
    #[error(
        "limit override {protocol_id}/{limit_id}: the second approver must be a different person from {set_by}"
    )]
    ApproverIsAuthor {
        protocol_id: String,
        limit_id: String,
        set_by: String,
    },
    #[error("limit override {protocol_id}/{limit_id}: expected a non-empty reason")]
    MissingReason {
        protocol_id: String,
        limit_id: String,
    },
}
