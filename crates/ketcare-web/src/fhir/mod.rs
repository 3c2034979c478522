//! The FHIR R4 edge under `/fhir/r4`: JSON (`application/fhir+json`), errors as
//! `OperationOutcome`. Each handler decodes the search, calls one `ketcare_app::fhir` use case
//! (role-checked and audited like every read) and wraps the result in a searchset `Bundle`. The
//! routes and `/metadata` are both made from `ketcare_fhir::capability::RESOURCES`.

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
pub(crate) use crate::pk::exposure::query_pairs as pairs;
use crate::routes::{Entry, Verb, r};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ketcare_app::fhir as app;
use ketcare_core::{Access, Permission};
use ketcare_fhir::{FHIR_JSON, bundle, capability, outcome};
use serde_json::Value;

pub mod clients;
pub mod export;
pub mod pages;
pub mod smart;
mod write;

/// The FHIR routes, each with its role rule: patients and their guardians need the patient-read
/// right (they carry demographics only), observations the clinical-read right; and the
/// administrators' API and page of SMART backend clients.
#[rustfmt::skip]
pub fn routes() -> Vec<Entry> {
    use Access::{Public, Requires};
    use Permission::*;
    use Verb::{Delete, Get, Post, Put};
    let mut routes = vec![
        r(Get, "/fhir/r4/metadata", Public, metadata),
        // SMART Backend Services: discovery and the token endpoint (the assertion is the credential)
        r(Get, "/fhir/r4/.well-known/smart-configuration", Public, smart::configuration),
        r(Post, "/fhir/r4/auth/token", Public, smart::token),
        // Bulk Data export
        r(Get, "/fhir/r4/$export", Requires(ClinicalRead), export::system_export),
        r(Post, "/fhir/r4/$export", Requires(ClinicalRead), export::system_export),
        r(Get, "/fhir/r4/Patient/$export", Requires(ClinicalRead), export::patient_export),
        r(Post, "/fhir/r4/Patient/$export", Requires(ClinicalRead), export::patient_export),
        r(Get, "/fhir/r4/Group/{id}/$export", Requires(ClinicalRead), export::group_export),
        r(Post, "/fhir/r4/Group/{id}/$export", Requires(ClinicalRead), export::group_export),
        r(Get, "/fhir/r4/$export-status/{id}", Requires(ClinicalRead), export::status),
        r(Delete, "/fhir/r4/$export-status/{id}", Requires(ClinicalRead), export::cancel),
        r(Get, "/fhir/r4/$export-file/{id}/{file}", Requires(ClinicalRead), export::file),
        // SMART backend clients, registered by administrators
        r(Get, "/api/v1/fhir-clients", Requires(UserAdmin), clients::list),
        r(Post, "/api/v1/fhir-clients", Requires(UserAdmin), clients::register),
        r(Post, "/api/v1/fhir-clients/{cid}/disable", Requires(UserAdmin), clients::disable),
        r(Get, "/fhir-clients", Requires(UserAdmin), pages::clients),
        r(Post, "/fhir-clients", Requires(UserAdmin), pages::register),
        r(Post, "/fhir-clients/{cid}/disable", Requires(UserAdmin), pages::disable),
    ];
    // Search and read of every type the capability table lists, each with its role rule.
    for def in capability::RESOURCES {
        let rule = Requires(right(def.kind));
        if def.search {
            routes.push(r(Get, type_path(def.kind), rule, search(def.kind)));
        }
        if def.read {
            routes.push(r(Get, instance_path(def.kind), rule, read(def.kind)));
        }
    }
    // What a client may bring in (the capability table marks each; a test checks they agree).
    routes.extend([
        r(Post, "/fhir/r4/Patient", Requires(PatientWrite), write::create_patient),
        r(Put, "/fhir/r4/Patient/{id}", Requires(PatientWrite), write::update_patient),
        r(Post, "/fhir/r4/Observation", Requires(RunSession), write::create_observation),
        r(Post, "/fhir/r4/QuestionnaireResponse", Requires(RecordMeasures), write::create_response),
    ]);
    routes
}

/// The right a resource type needs: demographics (patients, guardians, bookings and the staff
/// list) the patient-read right; the audit log the audit-read right; questionnaires (no
/// patient data) the patient-read right; everything clinical the clinical-read right.
pub fn right(kind: &str) -> Permission {
    match kind {
        "Patient" | "RelatedPerson" | "Appointment" | "Practitioner" | "PractitionerRole"
        | "Questionnaire" => Permission::PatientRead,
        "AuditEvent" => Permission::AuditRead,
        _ => Permission::ClinicalRead,
    }
}

/// The `'static` paths the router wants for each type, `/fhir/r4/{kind}` and
/// `/fhir/r4/{kind}/{id}`, made once per process.
fn paths() -> &'static [(&'static str, String, String)] {
    static PATHS: std::sync::OnceLock<Vec<(&'static str, String, String)>> =
        std::sync::OnceLock::new();
    PATHS.get_or_init(|| {
        capability::RESOURCES
            .iter()
            .map(|d| {
                (
                    d.kind,
                    format!("/fhir/r4/{}", d.kind),
                    format!("/fhir/r4/{}/{{id}}", d.kind),
                )
            })
            .collect()
    })
}

fn type_path(kind: &str) -> &'static str {
    paths()
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, t, _)| t.as_str())
        .unwrap_or("/fhir/r4")
}

fn instance_path(kind: &str) -> &'static str {
    paths()
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, _, i)| i.as_str())
        .unwrap_or("/fhir/r4")
}

/// What a handler made by [`search`] or [`read`] returns.
type Answer =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, FhirError>> + Send>>;

/// The search handler of a resource type: the parameters decoded, one call into
/// `ketcare_app::fhir::search`, the matches as a searchset.
fn search(
    kind: &'static str,
) -> impl Fn(State<AppState>, Principal, HeaderMap, RawQuery) -> Answer + Clone + Send + Sync + 'static
{
    move |State(s): State<AppState>, p: Principal, headers: HeaderMap, RawQuery(q): RawQuery| {
        Box::pin(async move {
            let params = pairs(&q)?;
            let page = app::search(s.store.as_ref(), &p.actor, kind, &params).await?;
            Ok(searchset(&s, &headers, kind, &params, page).into_response())
        })
    }
}

/// A FHIR answer: a resource with the FHIR media type.
pub struct Fhir(pub StatusCode, pub Value);

impl Fhir {
    /// The answer with an `ETag` (the resource's version), when it has one.
    fn with_etag(self, etag: Option<String>) -> Response {
        let mut r = self.into_response();
        if let Some(v) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    }
}

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        let mut r = (self.0, self.1.to_string()).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        r
    }
}

/// Every error as an `OperationOutcome`: a refused search parameter is a 400 with the
/// parameter as its expression.
pub fn error_response(e: AppError) -> Response {
    let (status, code, expression) = match &e {
        AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "login", None),
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
        AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", None),
        AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict", None),
        AppError::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "conflict", None),
        AppError::Invalid(f) => (
            StatusCode::BAD_REQUEST,
            "invalid",
            f.0.first().map(|x| x.field.clone()),
        ),
        AppError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "throttled", None),
        AppError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "exception", None),
    };
    let text = match &e {
        AppError::Invalid(f) if !f.0.is_empty() => {
            f.0.iter()
                .map(|x| format!("{}: {}", x.field, x.message))
                .collect::<Vec<_>>()
                .join("; ")
        }
        other => other.to_string(),
    };
    Fhir(status, outcome::outcome(code, &text, expression.as_deref())).into_response()
}

/// A FHIR handler's error.
pub struct FhirError(AppError);

impl<E: Into<AppError>> From<E> for FhirError {
    fn from(e: E) -> Self {
        FhirError(e.into())
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

/// The server's FHIR base, absolute, on the host the client used.
pub(crate) fn base(s: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let scheme = if crate::auth::is_tls(s, headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/fhir/r4")
}

/// The search's own URL (without paging), for the bundle's links.
fn self_url(base: &str, kind: &str, params: &[(String, String)]) -> String {
    let kept: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "_count" && k != "_offset")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match serde_urlencoded::to_string(&kept) {
        Ok(q) if !q.is_empty() => format!("{base}/{kind}?{q}"),
        _ => format!("{base}/{kind}"),
    }
}

fn searchset(
    s: &AppState,
    headers: &HeaderMap,
    kind: &str,
    params: &[(String, String)],
    page: app::Page,
) -> Fhir {
    let base = base(s, headers);
    Fhir(
        StatusCode::OK,
        bundle::searchset(
            &base,
            &self_url(&base, kind, params),
            page.total,
            page.matches,
            page.included,
            page.paging,
        ),
    )
}

pub async fn metadata(State(s): State<AppState>, headers: HeaderMap) -> Fhir {
    let date = ketcare_fhir::resources::instant(
        jiff::Timestamp::from_second(s.now()).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    );
    Fhir(
        StatusCode::OK,
        capability::statement(&base(&s, &headers), env!("CARGO_PKG_VERSION"), &date),
    )
}

/// The read handler of a resource type: `{kind}/{id}` through `ketcare_app::fhir::read`.
fn read(
    kind: &'static str,
) -> impl Fn(State<AppState>, Principal, Path<String>) -> Answer + Clone + Send + Sync + 'static {
    move |State(s): State<AppState>, p: Principal, Path(id): Path<String>| {
        Box::pin(async move {
            let r = app::read(s.store.as_ref(), &p.actor, kind, &id).await?;
            let etag = r["meta"]["versionId"]
                .as_str()
                .map(|v| format!("W/\"{v}\""));
            Ok(Fhir(StatusCode::OK, r).with_etag(etag))
        })
    }
}
