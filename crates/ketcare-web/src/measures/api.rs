//! JSON API for measurement-based care (same service and numbers as the pages and the CLI).

use super::{CourseView, OpioidView, Overview, ResponseView};
use crate::AppState;
use crate::api::{ApiPath, ApiQuery, JsonBody};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ketcare_core::{AlertId, GuardianId, PatientId};
use ketcare_measures::mme::MmeLine;
use ketcare_measures::{DoseUnit, Instrument, OpioidEntry, Score};
use ketcare_store::measures::{AlertAction, MeasureCourse, MeasureLink, SafetyAlert, TextVersion};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// Instrument id (see /api/v1/instruments).
    pub instrument: String,
    /// Item answers in order; `null` for an unanswered item.
    pub answers: Vec<Option<i32>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MmeRequest {
    pub drug: String,
    pub dose: f64,
    /// `mg` or `mcg/h`.
    pub unit: String,
    #[serde(default)]
    pub per_day: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The documented follow-up (required).
    pub follow_up: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseRequest {
    pub instrument: String,
    pub answers: Vec<Option<i32>>,
    /// YYYY-MM-DD; today when absent.
    #[serde(default)]
    pub taken_on: Option<String>,
    /// Any client-chosen key: the same key stores nothing new.
    pub submission_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct Recorded {
    pub response: ResponseView,
    pub score: Score,
    /// False when the submission key was already stored.
    pub created: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Self-report instrument ids, e.g. ["phq9", "gad7"].
    pub instruments: Vec<String>,
    /// Hours until the link expires (1–720; default 72).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 720)]
    pub expires_in_hours: Option<i64>,
    /// Send to this guardian of record of the patient instead of the patient.
    #[serde(default)]
    pub guardian_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct LinkCreated {
    pub link: MeasureLink,
    /// The path to send to the patient (shown once; only a hash is stored).
    pub path: String,
    /// The message queued with the link, when its recipient consents to be contacted on a
    /// channel the site has set up.
    pub message: Option<ketcare_store::outreach::OutboxMessage>,
    /// Why no message was queued (the link is to be handed over).
    pub not_sent: Option<String>,
}

pub use ketcare_app::measures::{CourseRequest, OpioidRequest};

/// Every instrument: items (wording only where the licence allows), scoring, bands, cut-offs,
/// LOINC codes, response and remission rules, each with its source.
#[utoipa::path(get, path = "/api/v1/instruments", responses((status = 200, description = "the instrument catalogue", body = [Instrument]), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn instruments(_p: Principal) -> Result<Json<&'static [Instrument]>, AppError> {
    Ok(Json(
        &super::catalogue().ok_or(AppError::Internal)?.instruments,
    ))
}

/// Scores answers (nothing is stored).
#[utoipa::path(post, path = "/api/v1/score", request_body = ScoreRequest, responses((status = 200, description = "total, band, cut-offs, safety flags", body = Score), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn score(
    State(s): State<AppState>,
    _p: Principal,
    JsonBody(req): JsonBody<ScoreRequest>,
) -> Result<Json<Score>, AppError> {
    let (settings, _) = crate::clinical::settings(s.store.as_ref()).await?;
    Ok(Json(super::score_answers(
        &req.instrument,
        &req.answers,
        &settings,
    )?))
}

/// Morphine milligram equivalents per day of one opioid (CDC 2022 factors).
#[utoipa::path(post, path = "/api/v1/mme", request_body = MmeRequest, responses((status = 200, description = "MME per day with factor, formula and notes", body = MmeLine), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn mme(
    _p: Principal,
    JsonBody(req): JsonBody<MmeRequest>,
) -> Result<Json<MmeLine>, AppError> {
    let unit = DoseUnit::parse(&req.unit).ok_or_else(|| {
        AppError::invalid("unit", format!("expected mg or mcg/h, got {:?}", req.unit))
    })?;
    let table = &super::catalogue().ok_or(AppError::Internal)?.opioids;
    ketcare_measures::mme::mme(
        table,
        &OpioidEntry {
            drug: req.drug,
            dose: req.dose,
            unit,
            per_day: req.per_day,
            route: None,
        },
    )
    .map(Json)
    .map_err(|e| AppError::invalid(e.field(), e.to_string()))
}

/// A clinic text file: one line per item, `instrument,item,text`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextsUpload {
    /// e.g. "instrument,item,text\nasq,1,\"…licensed wording…\"".
    pub file: String,
}

/// The clinic's current licensed item wording (newest version per instrument), for the
/// questionnaires shipped as labels only.
#[utoipa::path(get, path = "/api/v1/measures/texts", responses((status = 200, description = "newest version per instrument", body = [TextVersion]), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn texts(
    State(s): State<AppState>,
    _p: Principal,
) -> Result<Json<Vec<TextVersion>>, AppError> {
    Ok(Json(super::clinic_texts(s.store.as_ref()).await?))
}

/// Uploads the clinic's licensed item wording (administrators): validated line by line (a
/// wrong line is refused with its line and field, and nothing is stored); one new version per
/// instrument named; audited.
#[utoipa::path(post, path = "/api/v1/measures/texts", request_body = TextsUpload, responses((status = 201, description = "the new versions", body = [TextVersion]), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn upload_texts(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(req): JsonBody<TextsUpload>,
) -> Result<(StatusCode, Json<Vec<TextVersion>>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(ketcare_app::measures::upload_texts(s.store.as_ref(), &p.actor, &req.file).await?),
    ))
}

/// The open-alert state pages poll to refresh their alert list without a reload.
#[derive(Serialize, ToSchema)]
pub struct AlertState {
    /// Open alerts.
    pub open: i64,
    /// Newest alert id ever raised (0: none).
    pub latest: i64,
    /// Changes whenever an alert is raised or closed.
    pub stamp: String,
}

/// Whether the open-alert list changed: counts and ids only (no patient data), for polling.
#[utoipa::path(get, path = "/api/v1/alerts/state", responses((status = 200, description = "open count and newest id", body = AlertState), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn alert_state(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<AlertState>, AppError> {
    let (open, latest) = s.store.alert_state(&p.actor).await?;
    Ok(Json(AlertState {
        open,
        latest,
        stamp: format!("{open}:{latest}"),
    }))
}

/// Open safety alerts (positive suicide-risk answers awaiting a documented follow-up).
#[utoipa::path(get, path = "/api/v1/alerts", responses((status = 200, description = "open alerts", body = [SafetyAlert]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn alerts(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<SafetyAlert>>, AppError> {
    Ok(Json(s.store.open_alerts(&p.actor).await?))
}

/// Closes an alert with the documented follow-up.
#[utoipa::path(post, path = "/api/v1/alerts/{aid}/resolve", params(("aid" = i64, Path)), request_body = ResolveRequest, responses((status = 200, description = "the closed alert", body = SafetyAlert), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn resolve_alert(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(aid): ApiPath<AlertId>,
    JsonBody(req): JsonBody<ResolveRequest>,
) -> Result<Json<SafetyAlert>, AppError> {
    Ok(Json(
        s.store.resolve_alert(&p.actor, aid, &req.follow_up).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// What was done (required).
    pub note: String,
}

/// Records an action on an open alert without closing it.
#[utoipa::path(post, path = "/api/v1/alerts/{aid}/notes", params(("aid" = i64, Path)), request_body = NoteRequest, responses((status = 201, description = "the recorded action", body = AlertAction), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn note_alert(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(aid): ApiPath<AlertId>,
    JsonBody(req): JsonBody<NoteRequest>,
) -> Result<(StatusCode, Json<AlertAction>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(s.store.note_alert(&p.actor, aid, &req.note).await?),
    ))
}

/// Every action on an alert: raised, notes, resolved with the follow-up.
#[utoipa::path(get, path = "/api/v1/alerts/{aid}/actions", params(("aid" = i64, Path)), responses((status = 200, description = "actions in order", body = [AlertAction]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn alert_actions(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(aid): ApiPath<AlertId>,
) -> Result<Json<Vec<AlertAction>>, AppError> {
    Ok(Json(s.store.alert_actions(&p.actor, aid).await?))
}

/// A patient's stored responses with their scores.
#[utoipa::path(get, path = "/api/v1/patients/{id}/responses", params(("id" = i64, Path)), responses((status = 200, description = "responses in date order", body = [ResponseView]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn responses(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<ResponseView>>, AppError> {
    let rows = s
        .store
        .patient_responses(&p.actor, PatientId::new(id))
        .await?;
    Ok(Json(rows.iter().map(super::response_view).collect()))
}

/// Scores and stores a questionnaire (idempotent by `submission_key`); a positive suicide-risk
/// answer raises an alert in the same transaction.
#[utoipa::path(post, path = "/api/v1/patients/{id}/responses", params(("id" = i64, Path)), request_body = ResponseRequest, responses((status = 201, description = "stored", body = Recorded), (status = 200, description = "already stored under this submission key", body = Recorded), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn record_response(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<ResponseRequest>,
) -> Result<(StatusCode, Json<Recorded>), AppError> {
    let taken_on = match req.taken_on.as_deref() {
        Some(v) => super::date_field("taken_on", v)?,
        None => s.today(),
    };
    let (row, score, created) = ketcare_app::measures::record(
        s.store.as_ref(),
        &p.actor,
        PatientId::new(id),
        &req.instrument,
        &req.answers,
        taken_on,
        &req.submission_key,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Recorded {
            response: super::response_view(&row),
            score,
            created,
        }),
    ))
}

/// A patient's questionnaire links and their status (sent, opened, completed).
#[utoipa::path(get, path = "/api/v1/patients/{id}/links", params(("id" = i64, Path)), responses((status = 200, description = "links, newest first", body = [MeasureLink]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn links(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<MeasureLink>>, AppError> {
    Ok(Json(
        s.store.patient_links(&p.actor, PatientId::new(id)).await?,
    ))
}

/// Creates a single-use, expiring link for one patient and one set of questionnaires.
#[utoipa::path(post, path = "/api/v1/patients/{id}/links", params(("id" = i64, Path)), request_body = LinkRequest, responses((status = 201, description = "the link and its path (shown once)", body = LinkCreated), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_link(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<LinkRequest>,
) -> Result<(StatusCode, Json<LinkCreated>), AppError> {
    let sent = ketcare_app::outreach::send_link(
        s.store.as_ref(),
        &p.actor,
        PatientId::new(id),
        &req.instruments,
        req.expires_in_hours,
        req.guardian_id.map(GuardianId::new),
        s.now(),
        &ketcare_app::zones::organisation(s.store.as_ref()).await?,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(LinkCreated {
            link: sent.link,
            path: super::link_path(&sent.token),
            message: sent.message,
            not_sent: sent.not_sent.map(|e| e.to_string()),
        }),
    ))
}

/// Per course: baseline, response, remission, relapse, time to relapse, booster due.
#[utoipa::path(get, path = "/api/v1/patients/{id}/outcomes", params(("id" = i64, Path)), responses((status = 200, description = "courses with outcomes", body = [CourseView]), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn outcomes(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<CourseView>>, AppError> {
    Ok(Json(super::overview_of(&s, &p.actor, id).await?.courses))
}

/// A patient's score series and the chart's markers (sessions given, and dose orders no
/// session has given yet).
#[derive(Serialize, ToSchema)]
pub struct TrajectoryView {
    /// Per instrument: its id and (date, total) points in date order.
    pub series: Vec<(String, Vec<ketcare_measures::Point>)>,
    pub markers: Vec<super::Marker>,
    pub notes: Vec<String>,
}

/// The score chart's data: every score over time, with the sessions marked (date, drug, route,
/// dose given from the session record).
#[utoipa::path(get, path = "/api/v1/patients/{id}/trajectory", params(("id" = i64, Path)), responses((status = 200, description = "score series and markers", body = TrajectoryView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn trajectory(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TrajectoryView>, AppError> {
    let o = super::overview_of(&s, &p.actor, id).await?;
    Ok(Json(TrajectoryView {
        series: super::series(&o.responses),
        markers: o.markers,
        notes: o.notes,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct OpioidsView {
    pub entries: Vec<OpioidView>,
    pub mme_total_now: f64,
    /// (date, MME per day) pairs in date order.
    pub mme_timeline: Vec<(jiff::civil::Date, f64)>,
    /// Change of the total since the first entry.
    pub mme_change: Option<f64>,
    /// With `?course=ID`: the timeline and change over that course's dates.
    pub course: Option<super::MmeOverCourse>,
}

/// A patient's opioid list with MME per day, the current total and its timeline.
#[utoipa::path(get, path = "/api/v1/patients/{id}/opioids", params(("id" = i64, Path), ("course" = Option<i64>, Query, description = "limit the timeline and change to this course's dates")), responses((status = 200, description = "entries with MME", body = OpioidsView), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn opioids(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<super::CourseQuery>,
) -> Result<Json<OpioidsView>, AppError> {
    let o = super::overview_of(&s, &p.actor, id).await?;
    let course = q
        .course
        .map(|c| super::mme_over_course(&o, c, s.today()))
        .transpose()?;
    let Overview {
        opioids,
        mme_total_now,
        mme_timeline,
        mme_change,
        ..
    } = o;
    Ok(Json(OpioidsView {
        entries: opioids,
        mme_total_now,
        mme_timeline,
        mme_change,
        course,
    }))
}

/// Adds an opioid to the patient's list.
#[utoipa::path(post, path = "/api/v1/patients/{id}/opioids", params(("id" = i64, Path)), request_body = OpioidRequest, responses((status = 201, description = "the entry with its MME", body = OpioidView), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_opioid(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<OpioidRequest>,
) -> Result<(StatusCode, Json<OpioidView>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(
            ketcare_app::measures::save_opioid(
                s.store.as_ref(),
                &p.actor,
                PatientId::new(id),
                &req,
            )
            .await?,
        ),
    ))
}

/// Adds a course (instrument, dates, booster rule).
#[utoipa::path(post, path = "/api/v1/patients/{id}/courses", params(("id" = i64, Path)), request_body = CourseRequest, responses((status = 201, description = "the course", body = MeasureCourse), (status = 422, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_course(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(req): JsonBody<CourseRequest>,
) -> Result<(StatusCode, Json<MeasureCourse>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(
            ketcare_app::measures::save_course(
                s.store.as_ref(),
                &p.actor,
                PatientId::new(id),
                &req,
            )
            .await?,
        ),
    ))
}
