//! The research registry on the web: the researcher's cohort page (outcome table, durability
//! curve, predictors) and its CSV export with the data dictionary, and the same through the
//! JSON API. Only `RegistryRead` (the researcher) reaches it; the store builds the de-identified
//! subjects, so no identifier reaches these handlers. The program dashboard (`/program`,
//! `ProgramOutcomes`: the medical director) shows the same tables over the clinic's own
//! patients, identified.

pub mod api;
pub mod pages;
pub mod program;

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
        r(Get, "/research/export.parquet", Requires(RegistryRead), pages::export_parquet),
        r(Get, "/research/dictionary.csv", Requires(RegistryRead), pages::dictionary_csv),
        r(Post, "/research/cohorts", Requires(RegistryRead), pages::save_cohort),
        r(Get, "/api/v1/registry/outcomes", Requires(RegistryRead), api::registry_outcomes),
        r(Get, "/api/v1/registry/cohorts", Requires(RegistryRead), api::cohorts),
        r(Post, "/api/v1/registry/cohorts", Requires(RegistryRead), api::save_cohort),
        r(Get, "/api/v1/registry/cohorts/{id}/outcomes", Requires(RegistryRead), api::cohort_outcomes),
        r(Get, "/program", Requires(ProgramOutcomes), program::program),
        r(Get, "/program/durability.svg", Requires(ProgramOutcomes), program::durability_svg),
        r(Get, "/api/v1/program/outcomes", Requires(ProgramOutcomes), program::program_outcomes),
    ]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        api::registry_outcomes,
        api::cohorts,
        api::save_cohort,
        api::cohort_outcomes,
        program::program_outcomes
    ),
    components(schemas(
        ketcare_store::registry::SavedCohort,
        api::SaveCohort,
        ketcare_app::registry::OutcomeTable,
        ketcare_app::registry::ExposureTertiles,
        ketcare_app::registry::Rate,
        ketcare_app::registry::Model
    ))
)]
pub struct ResearchApiDoc;
