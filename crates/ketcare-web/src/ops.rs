//! Operations: scheduling, consent, the Schedule III ledger, billing.

use crate::routes::Entry;
use utoipa::OpenApi;

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    vec![]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi()]
pub struct OpsApiDoc;
