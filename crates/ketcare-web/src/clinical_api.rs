//! JSON API for the clinical core: protocols, site settings, eligibility screening, dose orders.

use crate::AppState;
use crate::api::{ApiPath, JsonBody};
use crate::auth::Principal;
use crate::clinical::{self, StoredOrder, StoredScreening};
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ketcare_clinical::protocol::{ProtocolSummary, ProtocolView, Readiness};
use ketcare_clinical::{DoseOrder, DoseRequest, ScreeningInput, ScreeningOutcome, SiteSettings};
use ketcare_core::{PatientId, Permission, RecordId};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

/// A protocol of the library and whether the site's settings let it be used.
#[derive(Serialize, ToSchema)]
pub struct ProtocolListItem {
    #[serde(flatten)]
    pub summary: ProtocolSummary,
    pub readiness: Readiness,
}

/// Every protocol with whether the site's settings let it be used.
#[utoipa::path(get, path = "/api/v1/protocols", responses((status = 200, description = "every protocol with its readiness at this site", body = [ProtocolListItem]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn protocols(
    State(s): State<AppState>,
    _p: Principal,
) -> Result<Json<Vec<ProtocolListItem>>, AppError> {
    let (settings, _) = clinical::settings(s.store.as_ref()).await?;
    let mut out = Vec::new();
    for summary in s.library().list() {
        let readiness = s
            .library()
            .readiness(&summary.id, &settings)
            .map_err(|e| AppError::NotFound(e.to_string()))?;
        out.push(ProtocolListItem { summary, readiness });
    }
    Ok(Json(out))
}

/// One protocol: every value with its source, its readiness, and the limits in force here.
#[utoipa::path(get, path = "/api/v1/protocols/{pid}", params(("pid" = String, Path)), responses((status = 200, description = "the protocol, every value with its source, readiness, limits in force, citations", body = ProtocolView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn protocol(
    State(s): State<AppState>,
    _p: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProtocolView>, AppError> {
    let (settings, _) = clinical::settings(s.store.as_ref()).await?;
    s.library()
        .show(&id, &settings)
        .map(Json)
        .map_err(|e| AppError::NotFound(e.to_string()))
}

/// The site's settings in force and their version.
#[derive(Serialize, ToSchema)]
pub struct SettingsView {
    pub version: i64,
    pub settings: SiteSettings,
}

#[utoipa::path(get, path = "/api/v1/site-settings", responses((status = 200, description = "current version and settings", body = SettingsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn site_settings(
    State(s): State<AppState>,
    _p: Principal,
) -> Result<Json<SettingsView>, AppError> {
    let (settings, version) = clinical::settings(s.store.as_ref()).await?;
    Ok(Json(SettingsView { version, settings }))
}

/// A new version of the site's values, with why.
#[derive(Deserialize, ToSchema)]
pub struct SettingsChange {
    /// Every value and text setting; `limit_overrides` must be the ones in force, unchanged.
    pub settings: SiteSettings,
    pub reason: String,
}

/// Replaces the site's values with a new version (administrators; audited). Limits change only
/// through `/api/v1/site-settings/limits`.
#[utoipa::path(put, path = "/api/v1/site-settings", request_body = SettingsChange, responses((status = 200, description = "the new settings version", body = SettingsView), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn put_site_settings(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(c): JsonBody<SettingsChange>,
) -> Result<Json<SettingsView>, AppError> {
    let version = clinical::save_values(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        &c.settings,
        &c.reason,
        ketcare_app::sessions::service::at(s.now())?,
    )
    .await?;
    s.refresh_demo().await?;
    Ok(Json(SettingsView {
        version,
        settings: c.settings,
    }))
}

/// Screens without storing (for what-if questions; nothing identifies the patient).
#[utoipa::path(post, path = "/api/v1/screen", request_body = ScreeningInput, responses((status = 200, description = "decision and findings, not stored", body = ScreeningOutcome), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn screen(
    State(s): State<AppState>,
    _p: Principal,
    JsonBody(input): JsonBody<ScreeningInput>,
) -> Result<Json<ScreeningOutcome>, AppError> {
    Ok(Json(
        clinical::screen(s.store.as_ref(), &s.library(), &input).await?,
    ))
}

/// Screens a patient and keeps the result in their record.
#[utoipa::path(post, path = "/api/v1/patients/{id}/screenings", params(("id" = i64, Path)), request_body = ketcare_app::screenings::ScreeningRequest, responses((status = 201, description = "the stored screening", body = StoredScreening), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn screen_patient(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<(StatusCode, Json<StoredScreening>), AppError> {
    let request = ketcare_app::screenings::ScreeningRequest::from_json(body)?;
    let stored = ketcare_app::screenings::screen_patient(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        PatientId::new(id),
        request,
        s.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

#[utoipa::path(get, path = "/api/v1/screenings/{sid}", params(("sid" = i64, Path)), responses((status = 200, description = "the stored screening", body = StoredScreening), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_screening(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<RecordId>,
) -> Result<Json<StoredScreening>, AppError> {
    let r = s
        .store
        .record(&p.actor, ketcare_store::RecordKind::Screening, id)
        .await?;
    Ok(Json(clinical::screening_of(&r)?))
}

/// Which relative finding to override, and why.
#[derive(Deserialize, ToSchema)]
pub struct FindingOverrideBody {
    pub finding_id: String,
    pub reason: String,
}

/// A prescriber overrides a relative finding with a reason; absolute findings cannot be.
#[utoipa::path(post, path = "/api/v1/screenings/{sid}/overrides", params(("sid" = i64, Path)), request_body = FindingOverrideBody, responses((status = 200, description = "the screening with the override", body = StoredScreening), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn override_finding(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<RecordId>,
    JsonBody(b): JsonBody<FindingOverrideBody>,
) -> Result<Json<StoredScreening>, AppError> {
    Ok(Json(
        clinical::override_finding(
            s.store.as_ref(),
            &p.actor,
            id,
            &b.finding_id,
            &b.reason,
            s.now(),
        )
        .await?,
    ))
}

/// The calculator's input through the API: a [`DoseRequest`] without `author` and
/// `created_at`, which the server fills in (the signed-in user, now). Its schema is
/// `DoseRequest`'s with those two left out, so the two cannot drift apart.
pub struct DoseCalculation;

impl PartialSchema for DoseCalculation {
    fn schema() -> RefOr<Schema> {
        let mut schema = DoseRequest::schema();
        if let RefOr::T(Schema::Object(o)) = &mut schema {
            for server_side in ["author", "created_at"] {
                o.properties.remove(server_side);
                o.required.retain(|r| r != server_side);
            }
            o.description = Some(
                "The prescriber's choices and the patient's measurements; the author and time \
                 are the signed-in user and now."
                    .into(),
            );
        }
        schema
    }
}

impl ToSchema for DoseCalculation {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DoseCalculationRequest")
    }
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <DoseRequest as ToSchema>::schemas(schemas);
    }
}

/// Calculates a dose without storing it.
#[utoipa::path(post, path = "/api/v1/dose", request_body = DoseCalculation, responses((status = 200, description = "the calculated order, not stored", body = DoseOrder), (status = 422, description = "hard limit, blocked protocol or bad choice", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn dose(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Json<DoseOrder>, AppError> {
    let request = clinical::dose_request(body, &p.actor, s.now())?;
    Ok(Json(
        clinical::calculate(s.store.as_ref(), &s.library(), &request).await?,
    ))
}

/// Calculates a dose for a patient and keeps the order, pending verification (or override).
/// The patient's age, weight, height, sex and whether this is the first esketamine dose of the
/// course come from the record; the body may leave them out, and one that contradicts the
/// record is refused naming the field.
#[utoipa::path(post, path = "/api/v1/patients/{id}/orders", params(("id" = i64, Path)), request_body = ketcare_app::orders::OrderRequest, responses((status = 201, description = "stored order: needs_override or pending_verification", body = StoredOrder), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn order(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<(StatusCode, Json<StoredOrder>), AppError> {
    let request = ketcare_app::orders::OrderRequest::from_json(body)?;
    let stored = ketcare_app::orders::sign(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        PatientId::new(id),
        &request,
        s.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

#[utoipa::path(get, path = "/api/v1/orders/{oid}", params(("oid" = i64, Path)), responses((status = 200, description = "the stored order with its state", body = StoredOrder), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_order(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<RecordId>,
) -> Result<Json<StoredOrder>, AppError> {
    let r = s
        .store
        .record(&p.actor, ketcare_store::RecordKind::DoseOrder, id)
        .await?;
    Ok(Json(clinical::order_of(&r)?))
}

/// Why (kept on the order and in the audit log).
#[derive(Deserialize, ToSchema)]
pub struct ReasonBody {
    pub reason: String,
}

/// The prescriber passes the order's soft limits with a reason.
#[utoipa::path(post, path = "/api/v1/orders/{oid}/override", params(("oid" = i64, Path)), request_body = ReasonBody, responses((status = 200, description = "the order after the override", body = StoredOrder), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn override_order(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<RecordId>,
    JsonBody(b): JsonBody<ReasonBody>,
) -> Result<Json<StoredOrder>, AppError> {
    let reason = b.reason;
    Ok(Json(
        clinical::transition(
            s.store.as_ref(),
            &p.actor,
            id,
            Permission::OverrideClinical,
            "dose_order.override",
            |o, u, t| o.override_soft_limits(u, &reason, t),
            s.now(),
        )
        .await?,
    ))
}

/// A second clinician, not the author, verifies the order.
#[utoipa::path(post, path = "/api/v1/orders/{oid}/verify", params(("oid" = i64, Path)), responses((status = 200, description = "the verified order", body = StoredOrder), (status = 422, description = "the author cannot verify; wrong state", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn verify_order(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<RecordId>,
) -> Result<Json<StoredOrder>, AppError> {
    Ok(Json(
        clinical::transition(
            s.store.as_ref(),
            &p.actor,
            id,
            Permission::VerifyDose,
            "dose_order.verify",
            |o, u, t| o.verify(u, t),
            s.now(),
        )
        .await?,
    ))
}

/// A prescriber withdraws a wrong order with a reason, before anything of it is given.
#[utoipa::path(post, path = "/api/v1/orders/{oid}/withdraw", params(("oid" = i64, Path)), request_body = ReasonBody, responses((status = 200, description = "the withdrawn order", body = StoredOrder), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn withdraw_order(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<RecordId>,
    JsonBody(b): JsonBody<ReasonBody>,
) -> Result<Json<StoredOrder>, AppError> {
    Ok(Json(
        ketcare_app::orders::withdraw(s.store.as_ref(), &p.actor, id, &b.reason, s.now()).await?,
    ))
}

/// One limit of one protocol, its new value and why.
#[derive(Deserialize, ToSchema)]
pub struct LimitChangeBody {
    pub protocol_id: String,
    pub limit_id: String,
    pub value: f64,
    pub reason: String,
}

/// Narrows a limit at once; a widening of a hard limit waits for a second administrator (202).
#[utoipa::path(post, path = "/api/v1/site-settings/limits", request_body = LimitChangeBody, responses((status = 200, description = "applied", body = clinical::LimitChange), (status = 202, description = "widening: waits for a second administrator", body = clinical::LimitChange), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn change_limit(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<LimitChangeBody>,
) -> Result<(StatusCode, Json<clinical::LimitChange>), AppError> {
    let outcome = clinical::change_limit(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        &b.protocol_id,
        &b.limit_id,
        b.value,
        &b.reason,
    )
    .await?;
    let status = match outcome {
        clinical::LimitChange::Applied { .. } => StatusCode::OK,
        clinical::LimitChange::AwaitingSecondApprover { .. } => StatusCode::ACCEPTED,
    };
    Ok((status, Json(outcome)))
}

#[utoipa::path(get, path = "/api/v1/site-settings/proposals", responses((status = 200, description = "limit widenings and their approvals", body = [ketcare_store::SettingsProposal]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn proposals(
    State(s): State<AppState>,
    _p: Principal,
) -> Result<Json<Vec<ketcare_store::SettingsProposal>>, AppError> {
    Ok(Json(s.store.settings_proposals().await?))
}

/// A second administrator approves a widening.
#[utoipa::path(post, path = "/api/v1/site-settings/proposals/{prop}/approve", params(("prop" = i64, Path)), responses((status = 200, description = "the settings version with the widening applied", body = SettingsView), (status = 409, body = ErrorBody), (status = 422, description = "the proposer cannot approve", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn approve_proposal(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SettingsView>, AppError> {
    let version = clinical::approve_limit(s.store.as_ref(), &s.library(), &p.actor, id).await?;
    let (settings, _) = clinical::settings(s.store.as_ref()).await?;
    Ok(Json(SettingsView { version, settings }))
}

#[utoipa::path(get, path = "/api/v1/site-protocols", responses((status = 200, description = "the site's own protocol files", body = [ketcare_store::SiteProtocol]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn site_protocols(
    State(s): State<AppState>,
    _p: Principal,
) -> Result<Json<Vec<ketcare_store::SiteProtocol>>, AppError> {
    Ok(Json(s.store.site_protocols().await?))
}

/// A site protocol file.
#[derive(Deserialize, ToSchema)]
pub struct SiteProtocolBody {
    pub file_name: String,
    /// The protocol file (same format as the built-in ones; every value cited).
    pub toml: String,
    /// The site whose own protocol this is, used only there (one of the caller's); left out:
    /// the organisation's, used at every site. A file keeps its owner across versions.
    #[serde(default)]
    pub site: Option<i64>,
}

/// Adds a site protocol; a malformed file is refused naming file, line and field.
#[utoipa::path(post, path = "/api/v1/site-protocols", request_body = SiteProtocolBody, responses((status = 201, description = "the protocol is added and in force"), (status = 422, description = "names file, line and field", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_site_protocol(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<SiteProtocolBody>,
) -> Result<StatusCode, AppError> {
    clinical::add_site_protocol_in_force(&s, &p.actor, b.site, &b.file_name, &b.toml).await?;
    Ok(StatusCode::CREATED)
}

/// The clinical part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    protocols,
    protocol,
    site_settings,
    put_site_settings,
    change_limit,
    proposals,
    approve_proposal,
    site_protocols,
    add_site_protocol,
    screen,
    screen_patient,
    get_screening,
    override_finding,
    dose,
    order,
    get_order,
    override_order,
    verify_order,
    withdraw_order
))]
pub struct ClinicalApiDoc;
