//! Measurement-based care on the web: questionnaires, patient links, safety alerts,
//! trajectories, opioid MME.
//!
//! The use cases live in [`ketcare_app::measures`] (re-exported here), which the pages
//! ([`pages`]), the JSON API ([`api`]) and the CLI all call, so they give the same numbers. The
//! functions below only take what a use case needs from [`AppState`] and the signed-in user.

pub mod api;
pub mod pages;

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::routes::{Entry, Verb, r};
use jiff::civil::Date;
use ketcare_core::{Access, Actor, GuardianId, PatientId, Permission};
use ketcare_measures::{Score, ScoreError};
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

/// Scores and stores a staff-entered form ([`ketcare_app::measures::record`]).
pub async fn record(
    s: &AppState,
    actor: &Actor,
    patient: PatientId,
    instrument: &str,
    answers: &[Option<i32>],
    taken_on: Date,
    submission_key: &str,
) -> Result<(StoredResponse, Score, bool), AppError> {
    Ok(ketcare_app::measures::record(
        s.store.as_ref(),
        actor,
        patient,
        instrument,
        answers,
        taken_on,
        submission_key,
    )
    .await?)
}

/// A new link: the token is returned once (only its hash is stored).
pub async fn create_link(
    s: &AppState,
    actor: &Actor,
    patient: PatientId,
    instruments: &[String],
    hours: Option<i64>,
    guardian: Option<GuardianId>,
) -> Result<(MeasureLink, String), AppError> {
    Ok(ketcare_app::measures::create_link(
        s.store.as_ref(),
        actor,
        patient,
        instruments,
        hours,
        guardian,
        s.now(),
    )
    .await?)
}

/// Stores a clinic text file ([`ketcare_app::measures::upload_texts`]).
pub async fn upload_texts(
    s: &AppState,
    actor: &Actor,
    file: &str,
) -> Result<Vec<TextVersion>, AppError> {
    Ok(ketcare_app::measures::upload_texts(s.store.as_ref(), actor, file).await?)
}

/// The overview of a patient's measures on today's date.
pub async fn overview(
    s: &AppState,
    p: &Principal,
    patient: PatientId,
) -> Result<Overview, AppError> {
    Ok(ketcare_app::measures::overview(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        patient,
        s.today(),
    )
    .await?)
}

/// Validates and stores an opioid entry.
pub async fn save_opioid(
    s: &AppState,
    actor: &Actor,
    patient: PatientId,
    req: &OpioidRequest,
) -> Result<OpioidView, AppError> {
    Ok(ketcare_app::measures::save_opioid(s.store.as_ref(), actor, patient, req).await?)
}

/// Validates and stores a course with its booster rule.
pub async fn save_course(
    s: &AppState,
    actor: &Actor,
    patient: PatientId,
    req: &CourseRequest,
) -> Result<MeasureCourse, AppError> {
    Ok(ketcare_app::measures::save_course(s.store.as_ref(), actor, patient, req).await?)
}

/// Open alerts for the dashboard (empty for roles that may not read patient data).
pub async fn open_alerts(s: &AppState, p: &Principal) -> Vec<SafetyAlert> {
    ketcare_app::measures::open_alerts(s.store.as_ref(), &p.actor).await
}

/// A patient's open alerts for the patient page.
pub async fn patient_open_alerts(
    s: &AppState,
    p: &Principal,
    patient: PatientId,
) -> Vec<SafetyAlert> {
    ketcare_app::measures::patient_open_alerts(s.store.as_ref(), &p.actor, patient).await
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
        r(Get, "/alerts", Requires(PatientRead), pages::alerts),
        r(Get, "/measures/texts", Requires(SiteSettingsWrite), pages::texts),
        r(Post, "/measures/texts", Requires(SiteSettingsWrite), pages::upload_texts),
        r(Post, "/alerts/{aid}/resolve", Requires(ResolveSafetyAlert), pages::resolve_alert),
        r(Post, "/alerts/{aid}/notes", Requires(ResolveSafetyAlert), pages::note_alert),
        r(Get, "/patients/{id}/measures", Requires(PatientRead), pages::patient_measures),
        r(Get, "/patients/{id}/measures/chart.svg", Requires(PatientRead), pages::chart_svg),
        r(Get, "/patients/{id}/measures/mme.svg", Requires(PatientRead), pages::mme_svg),
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
        r(Get, "/api/v1/alerts", Requires(PatientRead), api::alerts),
        r(Get, "/api/v1/alerts/state", Requires(PatientRead), api::alert_state),
        r(Get, "/static/alerts-live.js", Public, pages::alerts_script),
        r(Post, "/api/v1/alerts/{aid}/resolve", Requires(ResolveSafetyAlert), api::resolve_alert),
        r(Post, "/api/v1/alerts/{aid}/notes", Requires(ResolveSafetyAlert), api::note_alert),
        r(Get, "/api/v1/alerts/{aid}/actions", Requires(PatientRead), api::alert_actions),
        r(Get, "/api/v1/patients/{id}/responses", Requires(PatientRead), api::responses),
        r(Post, "/api/v1/patients/{id}/responses", Requires(RecordMeasures), api::record_response),
        r(Get, "/api/v1/patients/{id}/links", Requires(PatientRead), api::links),
        r(Post, "/api/v1/patients/{id}/links", Requires(RecordMeasures), api::create_link),
        r(Get, "/api/v1/patients/{id}/outcomes", Requires(PatientRead), api::outcomes),
        r(Get, "/api/v1/patients/{id}/trajectory", Requires(PatientRead), api::trajectory),
        r(Get, "/api/v1/patients/{id}/opioids", Requires(PatientRead), api::opioids),
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
