//! The pharmacokinetic model library as the application holds it, and its errors in domain
//! words.

use crate::error::{Error, Result};
use ketcare_pk::{Library, PkError};
use std::sync::Arc;

/// The model library, validated at start; an invalid built-in file makes each simulation
/// answer with an error rather than stopping the program.
pub type PkLibrary = Arc<std::result::Result<Library, PkError>>;

/// A simulation refusal: bad input names its field; a bad model file is ours.
pub fn pk_error(e: PkError) -> Error {
    match e {
        PkError::Input { field, message } => Error::invalid(&field, message),
        PkError::Data { .. } => {
            tracing::error!(error = %e, "pk model library");
            Error::Internal
        }
    }
}

/// The library, or an internal error when it did not validate.
pub fn library(pk: &PkLibrary) -> Result<&Library> {
    pk.as_ref().as_ref().map_err(|e| {
        tracing::error!(error = %e, "pk model library");
        Error::Internal
    })
}
