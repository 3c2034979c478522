//! The JSON API under `/api/v1/`, described by the OpenAPI 3 document at `/api/v1/openapi.json`.

use crate::AppState;
use crate::auth::{MAX_BODY_BYTES, Principal};
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::body::to_bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use ketcare_core::audit::{AuditEvent, AuditRecord};
use ketcare_core::patient::{
    DayOfCare, Guardian, GuardianInput, NewGuardian, Patient, PatientInput, PatientSummary,
    VisiblePatient,
};
use ketcare_core::{GuardianId, PatientId, Permission, Role};
use ketcare_store::{AuditFilter, AuditVerification};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// A JSON body whose decoding errors become 422 responses naming the field.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, _: &S) -> Result<Self, AppError> {
        let bytes = to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| AppError::invalid("body", "the request body is too large"))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                AppError::invalid(&error_field(&path, &inner, "body"), inner)
            })
    }
}

/// A path parameter whose decoding errors become the documented 422 naming the parameter
/// (axum's own `Path` answers 400 in plain text).
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(rejection) => {
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|raw| raw.iter().map(|(k, _)| k.to_owned()).collect())
                    .unwrap_or_default();
                Err(path_error(rejection, &names))
            }
        }
    }
}

fn path_error(rejection: PathRejection, names: &[String]) -> AppError {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(e) = rejection else {
        tracing::error!(error = %rejection, "path parameters missing from the route");
        return AppError::Internal;
    };
    let kind = e.into_kind();
    let message = kind.to_string();
    let field = match &kind {
        ErrorKind::ParseErrorAtKey { key, .. }
        | ErrorKind::InvalidUtf8InPathParam { key }
        | ErrorKind::DeserializeError { key, .. } => key.clone(),
        ErrorKind::ParseErrorAtIndex { index, .. } => {
            names.get(*index).cloned().unwrap_or_else(|| "path".into())
        }
        ErrorKind::ParseError { .. } if names.len() == 1 => names[0].clone(),
        _ => "path".into(),
    };
    let message = match kind {
        ErrorKind::ParseErrorAtKey { expected_type, .. }
        | ErrorKind::ParseErrorAtIndex { expected_type, .. }
        | ErrorKind::ParseError { expected_type, .. } => expected(expected_type),
        _ => message,
    };
    AppError::invalid(&field, message)
}

/// What a client should send instead, in words rather than Rust type names.
fn expected(rust_type: &str) -> String {
    let what = match rust_type {
        "i64" | "i32" | "u64" | "u32" | "usize" => "a whole number",
        "f64" | "f32" => "a number",
        "bool" => "true or false",
        _ => "a valid value",
    };
    format!("expected {what}")
}

/// A query string whose decoding errors become the documented 422 naming the parameter
/// (axum's own `Query` answers 400 in plain text).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                AppError::invalid(&error_field(&path, &inner, "query"), inner)
            })
    }
}

/// The field a serde error is about: its path, or for a missing field the name serde puts only
/// in its message.
fn error_field(path: &str, message: &str, whole: &str) -> String {
    match path {
        "." | "" => message
            .split('`')
            .nth(1)
            .filter(|_| message.starts_with("missing field"))
            .unwrap_or(whole)
            .to_owned(),
        p => p.to_owned(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the database answers.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub version: &'static str,
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, description = "the server and its database answer", body = Health), (status = 503, description = "the database does not answer", body = Health)))]
pub async fn healthz(State(s): State<AppState>) -> Response {
    let ok = s.store.ping().await.is_ok();
    let body = Health {
        status: if ok { "ok" } else { "unavailable" },
        database: s.store.backend().as_str(),
        version: s.version,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", responses(
    (status = 200, description = "the signed-in user", body = Me), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn me(p: Principal) -> Json<Me> {
    Json(Me {
        username: p.user.username,
        display_name: p.user.display_name,
        role: p.user.role,
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of a name, an MRN, or a date of birth (YYYY-MM-DD). Empty lists everyone.
    #[serde(default)]
    pub q: String,
    /// At most this many results (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// Searches the registry; every patient returned is recorded in the audit log.
#[utoipa::path(get, path = "/api/v1/patients", params(SearchQuery), responses(
    (status = 200, description = "matching patients (each read is audited)", body = [PatientSummary]), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn search_patients(
    State(s): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<Vec<PatientSummary>>, AppError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::invalid("limit", "use a number from 1 to 200"));
    }
    Ok(Json(s.store.search_patients(&p.actor, &q.q, limit).await?))
}

/// A patient with what applies on the day of care: the whole record for a clinician
/// (`view` = `full`), the demographics for a role that only books (`view` = `demographics`).
#[derive(Serialize, ToSchema)]
pub struct PatientView {
    #[serde(flatten)]
    pub patient: VisiblePatient,
    /// Age and age band today (the clinic's date).
    pub day_of_care: Option<DayOfCare>,
}

fn view(s: &AppState, p: &Principal, patient: Patient) -> PatientView {
    let day_of_care = patient.record.day_of_care(s.today(), &s.bands);
    PatientView {
        day_of_care,
        patient: VisiblePatient::of(patient, p.actor.may(Permission::ClinicalRead)),
    }
}

/// Registers a patient.
#[utoipa::path(post, path = "/api/v1/patients", request_body = PatientInput, responses(
    (status = 201, description = "the registered patient", body = PatientView), (status = 422, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_patient(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(input): JsonBody<PatientInput>,
) -> Result<(StatusCode, Json<PatientView>), AppError> {
    let record =
        ketcare_app::patients::parse(&s.library(), &input, s.today()).map_err(AppError::Invalid)?;
    let created = s.store.create_patient(&p.actor, &record).await?;
    Ok((StatusCode::CREATED, Json(view(&s, &p, created))))
}

/// One patient, with guardians.
#[utoipa::path(get, path = "/api/v1/patients/{id}", params(("id" = i64, Path)), responses(
    (status = 200, description = "the patient with guardians and the day of care", body = PatientView), (status = 404, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_patient(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PatientView>, AppError> {
    let patient = s.store.patient_view(&p.actor, PatientId::new(id)).await?;
    let day_of_care = patient.day_of_care(s.today(), &s.bands);
    Ok(Json(PatientView {
        patient,
        day_of_care,
    }))
}

/// Replaces a patient's record (guardians are changed through their own routes).
#[utoipa::path(put, path = "/api/v1/patients/{id}", params(("id" = i64, Path)),
    request_body = PatientInput, responses(
    (status = 200, description = "the patient as now recorded", body = PatientView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update_patient(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(input): JsonBody<PatientInput>,
) -> Result<Json<PatientView>, AppError> {
    let record =
        ketcare_app::patients::parse(&s.library(), &input, s.today()).map_err(AppError::Invalid)?;
    let updated = s
        .store
        .update_patient(&p.actor, PatientId::new(id), &record)
        .await?;
    Ok(Json(view(&s, &p, updated)))
}

/// Links a guardian to a patient.
#[utoipa::path(post, path = "/api/v1/patients/{id}/guardians", params(("id" = i64, Path)),
    request_body = GuardianInput, responses(
    (status = 201, description = "the linked guardian", body = Guardian), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_guardian(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(input): JsonBody<GuardianInput>,
) -> Result<(StatusCode, Json<Guardian>), AppError> {
    let g = NewGuardian::parse(&input).map_err(AppError::Invalid)?;
    let created = s
        .store
        .add_guardian(&p.actor, PatientId::new(id), &g)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Unlinks a guardian.
#[utoipa::path(delete, path = "/api/v1/patients/{id}/guardians/{gid}",
    params(("id" = i64, Path), ("gid" = i64, Path)), responses(
    (status = 204, description = "the guardian is unlinked"), (status = 404, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove_guardian(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, gid)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, AppError> {
    s.store
        .remove_guardian(&p.actor, PatientId::new(id), GuardianId::new(gid))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub username: Option<String>,
    /// Action, or its prefix (`patient.` for all patient actions).
    pub action: Option<String>,
    pub patient_id: Option<i64>,
    /// Records older than this sequence number.
    pub before: Option<i64>,
    /// At most this many (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

impl AuditQuery {
    pub fn filter(&self) -> Result<AuditFilter, AppError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(AppError::invalid("limit", "use a number from 1 to 500"));
        }
        let nonempty = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(AuditFilter {
            username: nonempty(&self.username),
            action: nonempty(&self.action),
            patient_id: self.patient_id,
            before_seq: self.before,
            limit,
        })
    }
}

/// Browses the audit log, newest first. Viewing it is itself audited.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses(
    (status = 200, description = "audit records, newest first", body = [AuditRecord]), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn audit_records(
    State(s): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditRecord>>, AppError> {
    let f = q.filter()?;
    let records = s.store.audit_records(&p.actor, &f).await?;
    s.store
        .audit(&p.actor, AuditEvent::new("audit.read", f.patient_id, "api"))
        .await?;
    Ok(Json(records))
}

#[derive(Serialize, ToSchema)]
pub struct VerifyBody {
    pub records: u64,
    pub intact: bool,
    /// The first broken record, if any.
    pub broken_at: Option<i64>,
    pub reason: Option<String>,
}

/// Checks the audit log's hash chain.
#[utoipa::path(get, path = "/api/v1/audit/verify", responses(
    (status = 200, description = "the result of checking the hash chain", body = VerifyBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn verify_audit(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<VerifyBody>, AppError> {
    let v: AuditVerification = s.store.verify_audit().await?;
    s.store
        .audit(&p.actor, AuditEvent::new("audit.verify", None, ""))
        .await?;
    Ok(Json(VerifyBody {
        records: v.records,
        intact: v.broken.is_none(),
        broken_at: v.broken.as_ref().map(|b| b.seq),
        reason: v.broken.map(|b| b.reason),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Witness sign-off locked after repeated wrong witness passwords.
    pub locked: bool,
    pub disabled: bool,
    /// Must choose a new password at the next sign-in (after an administrator's reset).
    pub must_change_password: bool,
    /// Sign-in asks for a code from an authenticator app (or a recovery code).
    pub second_factor: bool,
}

fn user_view(u: ketcare_store::User, now: i64) -> UserView {
    UserView {
        id: u.id.get(),
        locked: u.locked_until.is_some_and(|t| t > now),
        disabled: u.disabled,
        must_change_password: u.must_change_password,
        second_factor: u.second_factor,
        username: u.username,
        display_name: u.display_name,
        role: u.role,
    }
}

/// An administrator's action on an account.
#[derive(Deserialize, ToSchema)]
pub struct AccountAction {
    /// disable, enable, unlock, role, reset_password, end_sessions or reset_second_factor.
    pub action: String,
    /// The new role (for `role`).
    #[serde(default)]
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccountResult {
    pub user: UserView,
    /// Only for `reset_password`: shown this once; the user must replace it at the next sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
}

/// Disables, re-enables, unlocks, changes the role of, resets the password of, ends the
/// sessions and tokens of, or removes the second factor of an account (audited).
#[utoipa::path(post, path = "/api/v1/users/{id}/account", params(("id" = i64, Path)), request_body = AccountAction, responses(
    (status = 200, description = "the account after the action", body = AccountResult), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn account_action(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(body): JsonBody<AccountAction>,
) -> Result<Json<AccountResult>, AppError> {
    let id = ketcare_core::UserId::new(id);
    let (user, temporary_password) =
        match ketcare_app::accounts::parse_change(&body.action, &body.role)? {
            Some(change) => {
                let u =
                    ketcare_app::accounts::change(s.store.as_ref(), &p.actor, id, &change).await?;
                if change == ketcare_store::AccountChange::Unlock {
                    s.throttle.clear_account(&u.username);
                }
                (u, None)
            }
            None => {
                let (u, t) =
                    ketcare_app::accounts::reset_password(s.store.as_ref(), &p.actor, id).await?;
                s.throttle.clear_account(&u.username);
                (u, Some(t))
            }
        };
    Ok(Json(AccountResult {
        user: user_view(user, s.now()),
        temporary_password,
    }))
}

/// Staff accounts.
#[utoipa::path(get, path = "/api/v1/users", responses(
    (status = 200, description = "staff accounts", body = [UserView]), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn users(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<UserView>>, AppError> {
    let now = s.now();
    let users = s.store.list_users(&p.actor).await?;
    Ok(Json(users.into_iter().map(|u| user_view(u, now)).collect()))
}

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ketcare API",
        description = "ketcare's JSON API. ketcare supports clinicians; it does not replace their judgement. \
            Authenticate with `Authorization: Bearer <token>` (tokens from `ketcare token create`), \
            or with a browser session plus an `x-csrf-token` header on unsafe requests."
    ),
    paths(healthz, me, search_patients, create_patient, get_patient, update_patient, add_guardian,
          remove_guardian, audit_records, verify_audit, users, account_action),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document ([`crate::openapi::document`]).
pub async fn openapi_json() -> Response {
    match crate::openapi::json().and_then(|doc| serde_json::to_string_pretty(&doc)) {
        Ok(json) => ([("content-type", "application/json")], json).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "openapi");
            AppError::Internal.into_response()
        }
    }
}
