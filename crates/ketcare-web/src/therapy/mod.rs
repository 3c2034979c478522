//! Psychotherapy integration on the web: the patient's therapy page (encounters, the
//! integration status of each dose), an encounter's page with its psychotherapy notes for the
//! readers the store allows, and the same through the JSON API.
//!
//! The use cases live in [`ketcare_app::therapy`]. Psychotherapy notes are never part of the
//! patient record's JSON, FHIR or any export: only the note routes here read them, and the store
//! filters those reads by the acting account.

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
        // Pages
        r(Get, "/patients/{id}/therapy", Requires(ClinicalRead), pages::patient_therapy),
        r(Post, "/patients/{id}/therapy/encounters", Requires(RecordTherapy), pages::record_encounter),
        r(Get, "/therapy/encounters/{eid}", Requires(ClinicalRead), pages::encounter),
        r(Post, "/therapy/encounters/{eid}/notes", Requires(PsychotherapyNotes), pages::add_note),
        // API
        r(Get, "/api/v1/patients/{id}/therapy", Requires(ClinicalRead), api::overview),
        r(Post, "/api/v1/patients/{id}/therapy/encounters", Requires(RecordTherapy), api::record_encounter),
        r(Get, "/api/v1/therapy/encounters/{eid}", Requires(ClinicalRead), api::encounter),
        r(Get, "/api/v1/therapy/encounters/{eid}/notes", Requires(PsychotherapyNotes), api::notes),
        r(Post, "/api/v1/therapy/encounters/{eid}/notes", Requires(PsychotherapyNotes), api::add_note),
    ]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        api::overview,
        api::record_encounter,
        api::encounter,
        api::notes,
        api::add_note
    ),
    components(schemas(
        ketcare_core::therapy::EncounterInput,
        ketcare_core::therapy::EncounterKind,
        ketcare_core::therapy::Modality,
        ketcare_core::therapy::SuicideRisk,
        ketcare_core::therapy::IntegrationLine,
        ketcare_core::therapy::IntegrationState,
        ketcare_store::therapy::StoredEncounter,
        ketcare_store::therapy::TherapyNote,
        ketcare_app::therapy::TherapyOverview,
        ketcare_app::therapy::SessionChoice,
        api::NoteRequest
    ))
)]
pub struct TherapyApiDoc;
