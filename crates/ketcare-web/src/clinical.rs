//! The clinical use cases live in the application layer (`ketcare_app::clinical` and
//! `ketcare_app::orders`); this module re-exports them for the pages and the API, and puts a
//! newly added site protocol in force in the running server.

pub use ketcare_app::clinical::*;

use crate::error::AppError;
use ketcare_core::Actor;

/// Adds (or replaces) a site protocol and puts the validated library in force.
pub async fn add_site_protocol_in_force(
    state: &crate::AppState,
    actor: &Actor,
    site: Option<i64>,
    file_name: &str,
    text: &str,
) -> Result<(), AppError> {
    let library = add_site_protocol(state.store.as_ref(), actor, site, file_name, text).await?;
    state.set_library(library);
    Ok(())
}
