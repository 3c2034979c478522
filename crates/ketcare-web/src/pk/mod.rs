//! Pharmacokinetic simulation: pages and API (issue: PK engine).

use crate::routes::Entry;
use utoipa::OpenApi;

pub mod chart;

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    vec![]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi()]
pub struct PkApiDoc;
