//! Errors: a refused data file names file, line and field; a refused input names the field.

use serde::Serialize;

/// Why a model file or a simulation request was refused. Never a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PkError {
    /// A model data file is malformed or breaks a rule.
    #[error("{file}:{line}: field `{field}`: {message}")]
    Data {
        file: String,
        line: usize,
        field: String,
        message: String,
    },
    /// A simulation input is nonsensical (negative weight, zero volume, unknown route, ...).
    #[error("{field}: {message}")]
    Input { field: String, message: String },
}

impl PkError {
    pub(crate) fn input(field: impl Into<String>, message: impl Into<String>) -> Self {
        PkError::Input {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field the error names.
    pub fn field(&self) -> &str {
        match self {
            PkError::Data { field, .. } | PkError::Input { field, .. } => field,
        }
    }
}

/// A finite, positive number, or an input error naming the field.
pub(crate) fn positive(field: &str, v: f64) -> Result<f64, PkError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(PkError::input(
            field,
            format!("must be a positive number, got {v}"),
        ))
    }
}

/// A finite number ≥ 0, or an input error naming the field.
pub(crate) fn non_negative(field: &str, v: f64) -> Result<f64, PkError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(PkError::input(
            field,
            format!("must be a number ≥ 0, got {v}"),
        ))
    }
}
