//! The application layer's error: what went wrong in domain words. Each edge maps it (a 422 naming
//! the field, an HL7 AE with the reason, a CLI message); this crate knows no status codes.

use ketcare_clinical::DoseError;
use ketcare_core::FieldErrors;
use ketcare_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The acting user's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The record changed meanwhile, or the step is not allowed in its current state.
    #[error("{0}")]
    Conflict(String),
    /// A conditional write whose condition (`If-Match`) no longer holds: nothing written.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Bad input, or a request that contradicts the record: each field and what was expected.
    #[error("some fields are not valid")]
    Invalid(FieldErrors),
    /// The dose calculator refused (hard limit, blocked protocol, population, bad choice).
    #[error("{0}")]
    Dose(Box<DoseError>),
    /// More arrived than can be committed: refused, nothing written; send again later.
    #[error("{0}")]
    Busy(String),
    /// Something on our side; logged where it happened, never shown.
    #[error("something went wrong on our side; it has been logged")]
    Internal,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid(FieldErrors::single(field, message))
    }

    /// Every refusal as field errors (a dose refusal names its own field).
    pub fn fields(&self) -> FieldErrors {
        match self {
            Error::Invalid(f) => f.clone(),
            Error::Dose(e) => FieldErrors::single(&e.field(), e.to_string()),
            other => FieldErrors::single("request", other.to_string()),
        }
    }
}

/// Decodes a JSON body into a typed request, naming the first bad field by its path.
pub fn decode<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let field = e.path().to_string();
        Error::invalid(
            if field == "." { "body" } else { &field },
            e.into_inner().to_string(),
        )
    })
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => Error::NotFound(what),
            StoreError::Forbidden { .. } => Error::Forbidden(e.to_string()),
            StoreError::Invalid(f) => Error::Invalid(f),
            StoreError::Conflict(m) => Error::Conflict(m),
            StoreError::Busy(m) => Error::Busy(m),
            other => {
                tracing::error!(error = %other, "store error");
                Error::Internal
            }
        }
    }
}

impl From<DoseError> for Error {
    fn from(e: DoseError) -> Self {
        Error::Dose(Box::new(e))
    }
}
