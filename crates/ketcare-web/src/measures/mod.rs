//! Measurement-based care on the web: questionnaires, patient links, safety alerts,
//! trajectories, opioid MME.
//!
//! The use cases live in [`ketcare_app::measures`] (re-exported here), which the pages
//! ([`pages`]), the JSON API ([`api`]) and the CLI all call, so they give the same numbers; this
//! module holds the area's routes and its part of the OpenAPI document.

pub mod api;
pub mod pages;

use crate::error::AppError;
use crate::routes::{Entry, Verb, r};
use ketcare_core::{Access, Permission};
use ketcare_measures::ScoreError;
use ketcare_store::measures::{
    ItemText, MeasureCourse, MeasureLink, OpioidRow, SafetyAlert, StoredResponse, TextVersion,
};
use utoipa::OpenApi;

pub use ketcare_app::measures::*;

impl From<ScoreError> for AppError {
    fn from(e: ScoreError) -> Self {
        AppError::invalid(e.field(), e.to_string())
    }
}

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    use Access::{Public, Requires, SignedIn};
    use Permission::*;
    use Verb::*;
    vec![
        // Patient self-report: no sign-in; the unguessable token is the key.
        r(Get, "/q/{token}", Public, pages::questionnaire),
        r(Post, "/q/{token}", Public, pages::submit_questionnaire),
        // Pages
        r(Get, "/alerts", Requires(ClinicalRead), pages::alerts),
        r(Get, "/measures/texts", Requires(SiteSettingsWrite), pages::texts),
        r(Post, "/measures/texts", Requires(SiteSettingsWrite), pages::upload_texts),
        r(Post, "/alerts/{aid}/resolve", Requires(ResolveSafetyAlert), pages::resolve_alert),
        r(Post, "/alerts/{aid}/notes", Requires(ResolveSafetyAlert), pages::note_alert),
        r(Get, "/patients/{id}/measures", Requires(ClinicalRead), pages::patient_measures),
        r(Get, "/patients/{id}/measures/chart.svg", Requires(ClinicalRead), pages::chart_svg),
        r(Get, "/patients/{id}/measures/mme.svg", Requires(ClinicalRead), pages::mme_svg),
        r(Get, "/patients/{id}/measures/enter", Requires(RecordMeasures), pages::enter_form),
        r(Post, "/patients/{id}/measures/responses", Requires(RecordMeasures), pages::enter),
        r(Post, "/patients/{id}/measures/links", Requires(RecordMeasures), pages::send_link),
        r(Post, "/patients/{id}/measures/opioids", Requires(RecordMeasures), pages::add_opioid),
        r(Post, "/patients/{id}/measures/opioids/{oid}/stop", Requires(RecordMeasures), pages::stop_opioid),
        r(Post, "/patients/{id}/measures/courses", Requires(RecordMeasures), pages::add_course),
        // API
        r(Get, "/api/v1/instruments", SignedIn, api::instruments),
        r(Post, "/api/v1/score", SignedIn, api::score),
        r(Post, "/api/v1/mme", SignedIn, api::mme),
        r(Get, "/api/v1/measures/texts", SignedIn, api::texts),
        r(Post, "/api/v1/measures/texts", Requires(SiteSettingsWrite), api::upload_texts),
        r(Get, "/api/v1/alerts", Requires(ClinicalRead), api::alerts),
        r(Get, "/api/v1/alerts/state", Requires(ClinicalRead), api::alert_state),
        r(Get, "/static/alerts-live.js", Public, pages::alerts_script),
        r(Post, "/api/v1/alerts/{aid}/resolve", Requires(ResolveSafetyAlert), api::resolve_alert),
        r(Post, "/api/v1/alerts/{aid}/notes", Requires(ResolveSafetyAlert), api::note_alert),
        r(Get, "/api/v1/alerts/{aid}/actions", Requires(ClinicalRead), api::alert_actions),
        r(Get, "/api/v1/patients/{id}/responses", Requires(ClinicalRead), api::responses),
        r(Post, "/api/v1/patients/{id}/responses", Requires(RecordMeasures), api::record_response),
        r(Get, "/api/v1/patients/{id}/links", Requires(ClinicalRead), api::links),
        r(Post, "/api/v1/patients/{id}/links", Requires(RecordMeasures), api::create_link),
        r(Get, "/api/v1/patients/{id}/outcomes", Requires(ClinicalRead), api::outcomes),
        r(Get, "/api/v1/patients/{id}/trajectory", Requires(ClinicalRead), api::trajectory),
        r(Get, "/api/v1/patients/{id}/opioids", Requires(ClinicalRead), api::opioids),
        r(Post, "/api/v1/patients/{id}/opioids", Requires(RecordMeasures), api::add_opioid),
        r(Post, "/api/v1/patients/{id}/courses", Requires(RecordMeasures), api::add_course),
    ]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        api::instruments,
        api::score,
        api::mme,
        api::texts,
        api::upload_texts,
        api::alert_state,
        api::alerts,
        api::resolve_alert,
        api::note_alert,
        api::alert_actions,
        api::responses,
        api::record_response,
        api::links,
        api::create_link,
        api::outcomes,
        api::trajectory,
        api::opioids,
        api::add_opioid,
        api::add_course
    ),
    components(schemas(
        api::ScoreRequest,
        api::MmeRequest,
        api::TextsUpload,
        api::AlertState,
        TextVersion,
        ItemText,
        api::ResolveRequest,
        api::NoteRequest,
        ketcare_store::measures::AlertAction,
        api::ResponseRequest,
        api::LinkRequest,
        api::LinkCreated,
        api::OpioidRequest,
        api::CourseRequest,
        api::Recorded,
        api::OpioidsView,
        api::TrajectoryView,
        ResponseView,
        OpioidView,
        Marker,
        CourseView,
        AssessmentDue,
        MmeOverCourse,
        Overview,
        SafetyAlert,
        MeasureLink,
        MeasureCourse,
        OpioidRow,
        StoredResponse
    ))
)]
pub struct MeasuresApiDoc;

/// The patient's measurement overview for a page or API handler (one audited read).
pub(crate) async fn overview_of(
    s: &crate::AppState,
    actor: &ketcare_core::Actor,
    id: i64,
) -> Result<ketcare_app::measures::Overview, AppError> {
    Ok(ketcare_app::measures::overview(
        s.store.as_ref(),
        &s.library(),
        actor,
        ketcare_core::PatientId::new(id),
        s.today(),
    )
    .await?)
}
