//! The care plan of a treatment course on the web (staff page and JSON API), and the patient's
//! (or guardian's) own view through their link (`/q/{token}/me`).
//!
//! The use cases live in [`ketcare_app::care_plan`]. The own view is public in the route table
//! because the link's token is its credential: the store reads it under the link's own actor,
//! refuses an unknown or expired link, and narrows what a guardian's link shows.

pub mod api;
pub mod pages;

use crate::routes::{Entry, Verb, r};
use ketcare_core::{Access, Permission};
use utoipa::OpenApi;

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    use Access::{Public, Requires};
    use Permission::*;
    use Verb::*;
    vec![
        // The patient's own view (the link's token is the credential)
        r(Get, "/q/{token}/me", Public, pages::own_view),
        r(Get, "/q/{token}/me/chart.svg", Public, pages::own_chart),
        r(Post, "/q/{token}/me/items/{iid}", Public, pages::own_progress),
        // Staff pages
        r(Get, "/patients/{id}/care-plan", Requires(ClinicalRead), pages::care_plan),
        r(Post, "/patients/{id}/care-plan/items", Requires(RecordMeasures), pages::add_item),
        r(Post, "/patients/{id}/care-plan/items/{iid}/progress", Requires(RecordMeasures), pages::add_progress),
        r(Post, "/patients/{id}/care-plan/sharing", Requires(RecordMeasures), pages::set_sharing),
        // API
        r(Get, "/api/v1/patients/{id}/care-plan", Requires(ClinicalRead), api::plan),
        r(Post, "/api/v1/patients/{id}/care-plan/items", Requires(RecordMeasures), api::add_item),
        r(Post, "/api/v1/patients/{id}/care-plan/items/{iid}/progress", Requires(RecordMeasures), api::add_progress),
        r(Put, "/api/v1/patients/{id}/care-plan/sharing", Requires(RecordMeasures), api::set_sharing),
    ]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(api::plan, api::add_item, api::add_progress, api::set_sharing),
    components(schemas(
        ketcare_measures::care_plan::PlanItemInput,
        ketcare_measures::care_plan::ProgressInput,
        ketcare_measures::care_plan::ItemKind,
        ketcare_measures::care_plan::ItemStatus,
        ketcare_measures::care_plan::Effort,
        ketcare_measures::care_plan::TargetState,
        ketcare_store::care_plan::PlanItem,
        ketcare_store::care_plan::PlanProgress,
        ketcare_store::care_plan::ViewSharing,
        ketcare_app::care_plan::ItemView,
        ketcare_app::care_plan::PlanView,
        api::SharingRequest
    ))
)]
pub struct CarePlanApiDoc;
