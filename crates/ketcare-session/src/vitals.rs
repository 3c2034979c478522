//! Vital signs: one reading (any subset of BP, HR, SpO2, RR, EtCO2, temperature), where it came
//! from, and input checks that name the field.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One set of vital signs. Every value is optional: a monitor may send only some.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    /// Systolic blood pressure, mmHg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systolic: Option<f64>,
    /// Diastolic blood pressure, mmHg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diastolic: Option<f64>,
    /// Heart rate, /min.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heart_rate: Option<f64>,
    /// Peripheral oxygen saturation, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spo2: Option<f64>,
    /// Respiratory rate, /min.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp_rate: Option<f64>,
    /// End-tidal CO2, mmHg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etco2: Option<f64>,
    /// Body temperature, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
}

/// A bad input field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Vitals {
    /// The fields as (name, value).
    pub fn fields(&self) -> [(&'static str, Option<f64>); 7] {
        [
            ("systolic", self.systolic),
            ("diastolic", self.diastolic),
            ("heart_rate", self.heart_rate),
            ("spo2", self.spo2),
            ("resp_rate", self.resp_rate),
            ("etco2", self.etco2),
            ("temperature_c", self.temperature_c),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, v)| v.is_none())
    }

    pub fn has_bp(&self) -> bool {
        self.systolic.is_some() && self.diastolic.is_some()
    }

    /// Every bad field at once; at least one value is required. Physiologically impossible
    /// values are refused by [`crate::limits::check_reading`] against the cited ranges of
    /// `data/sessions/plausibility.toml`.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = match crate::limits::Plausibility::builtin() {
            Ok(p) => crate::limits::check_reading(p, self)
                .err()
                .unwrap_or_default(),
            // The embedded file is checked by a unit test; refuse rather than accept unchecked.
            Err(e) => vec![FieldError::new(
                "vitals",
                format!("plausibility ranges: {e}"),
            )],
        };
        if self.systolic.is_some() != self.diastolic.is_some() {
            errs.push(FieldError::new(
                if self.systolic.is_some() {
                    "diastolic"
                } else {
                    "systolic"
                },
                "blood pressure needs both systolic and diastolic",
            ));
        }
        if let (Some(s), Some(d)) = (self.systolic, self.diastolic)
            && d > s
        {
            errs.push(FieldError::new(
                "diastolic",
                format!("{d} is above the systolic {s}"),
            ));
        }
        if self.is_empty() {
            errs.push(FieldError::new("vitals", "enter at least one value"));
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// "BP 120/80 · HR 72 · SpO2 98 % · RR 14".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let (Some(s), Some(d)) = (self.systolic, self.diastolic) {
            parts.push(format!("BP {s}/{d}"));
        }
        if let Some(v) = self.heart_rate {
            parts.push(format!("HR {v}"));
        }
        if let Some(v) = self.spo2 {
            parts.push(format!("SpO2 {v} %"));
        }
        if let Some(v) = self.resp_rate {
            parts.push(format!("RR {v}"));
        }
        if let Some(v) = self.etco2 {
            parts.push(format!("EtCO2 {v}"));
        }
        if let Some(v) = self.temperature_c {
            parts.push(format!("T {v} °C"));
        }
        parts.join(" · ")
    }
}

/// Where a reading came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VitalSource {
    /// Entered on the session page.
    Manual,
    /// Posted through the JSON API.
    Api,
    /// A bedside monitor over HL7 v2 / MLLP.
    Monitor,
}

impl VitalSource {
    pub fn as_str(self) -> &'static str {
        match self {
            VitalSource::Manual => "manual",
            VitalSource::Api => "api",
            VitalSource::Monitor => "monitor",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "manual" => Some(VitalSource::Manual),
            "api" => Some(VitalSource::Api),
            "monitor" => Some(VitalSource::Monitor),
            _ => None,
        }
    }
}

/// One reading with its time and origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VitalReading {
    pub at: Timestamp,
    pub vitals: Vitals,
    pub source: VitalSource,
    /// The user who entered it, or the sending device.
    pub by: String,
    /// HL7 message control id (monitor readings), unique per sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_each_field() {
        let v = Vitals {
            systolic: Some(120.0),
            spo2: Some(101.0),
            ..Vitals::default()
        };
        let errs = v.validate().unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["spo2", "diastolic"]);
        assert!(Vitals::default().validate().is_err());
        let bad = Vitals {
            systolic: Some(80.0),
            diastolic: Some(90.0),
            ..Vitals::default()
        };
        assert_eq!(bad.validate().unwrap_err()[0].field, "diastolic");
        let nan = Vitals {
            heart_rate: Some(f64::NAN),
            ..Vitals::default()
        };
        assert_eq!(nan.validate().unwrap_err()[0].field, "heart_rate");
        // The examples of issue 12: SpO2 150 and HR 700 are impossible; the bounds are cited.
        let impossible = Vitals {
            systolic: Some(500.0),
            diastolic: Some(90.0),
            heart_rate: Some(700.0),
            spo2: Some(150.0),
            ..Vitals::default()
        };
        let errs = impossible.validate().unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["systolic", "heart_rate", "spo2"]);
        assert!(
            errs.iter()
                .all(|e| e.message.contains("physiologically impossible"))
        );
    }

    #[test]
    fn summary_lists_what_is_there() {
        let v = Vitals {
            systolic: Some(120.0),
            diastolic: Some(80.0),
            spo2: Some(97.0),
            ..Vitals::default()
        };
        assert_eq!(v.summary(), "BP 120/80 · SpO2 97 %");
    }
}
