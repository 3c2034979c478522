//! The research registry on the web: the researcher's cohort page (outcome table, durability
//! curve, predictors) and its CSV export with the data dictionary, and the same through the
//! JSON API. Only `RegistryRead` (the researcher) reaches it; the store builds the de-identified
//! subjects, so no identifier reaches these handlers.

pub mod api;
pub mod pages;

use crate::routes::{Entry, Verb, r};
use ketcare_core::{Access, Permission};
use utoipa::OpenApi;

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    use Access::Requires;
    use Permission::*;
    use Verb::*;
    vec![
        r(Get, "/research", Requires(RegistryRead), pages::research),
        r(Get, "/research/durability.svg", Requires(RegistryRead), pages::durability_svg),
        r(Get, "/research/export.csv", Requires(RegistryRead), pages::export_csv),
        r(Get, "/research/dictionary.csv", Requires(RegistryRead), pages::dictionary_csv),
        r(Get, "/api/v1/registry/outcomes", Requires(RegistryRead), api::outcomes),
    ]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(api::outcomes))]
pub struct ResearchApiDoc;
