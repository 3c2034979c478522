//! The route table: every route ketcare serves, each with the role rule that guards it.
//! [`router`] is built from this table alone, so a route cannot be added without a rule, and the
//! role-matrix test walks the same table.

use crate::{AppState, api, auth, clinical_api as capi, clinical_pages as cpages, pages};
use axum::Router;
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use ketcare_core::{Access, Permission};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One route and who may call it.
#[derive(Debug, Clone, Copy)]
pub struct RouteRule {
    pub verb: Verb,
    pub path: &'static str,
    pub access: Access,
}

pub(crate) type Entry = (RouteRule, MethodRouter<AppState>);

pub(crate) fn r<H, T>(verb: Verb, path: &'static str, access: Access, handler: H) -> Entry
where
    H: Handler<T, AppState>,
    T: 'static,
{
    (RouteRule { verb, path, access }, on(verb.filter(), handler))
}

/// Every route with its rule: the foundation's and clinical core's here, one per line, then each
/// area's own table (PK simulation, measurement-based care, sessions, operations).
pub fn table() -> Vec<Entry> {
    let mut table = core_table();
    table.extend(crate::pk::routes());
    table.extend(crate::measures::routes());
    table.extend(crate::sessions::routes());
    table.extend(crate::ops::routes());
    table.extend(crate::therapy::routes());
    table.extend(crate::care_plan::routes());
    table.extend(crate::research::routes());
    table.extend(crate::outreach::routes());
    table.extend(crate::fhir::routes());
    table
}

#[rustfmt::skip]
fn core_table() -> Vec<Entry> {
    use Access::{Public, Requires, SignedIn};
    use Permission::*;
    use Verb::*;
    vec![
        // Public
        r(Get, "/healthz", Public, api::healthz),
        r(Get, "/static/app.css", Public, pages::stylesheet),
        r(Get, "/static/confirm.js", Public, pages::confirm_script),
        r(Get, "/static/patient-picker.js", Public, pages::patient_picker_script),
        r(Get, "/login", Public, pages::login_form),
        r(Post, "/login", Public, pages::login),
        r(Post, "/login/second-factor", Public, pages::login_second_factor),
        r(Get, "/api/v1/openapi.json", Public, api::openapi_json),
        // Any signed-in user
        r(Get, "/", SignedIn, pages::home),
        r(Post, "/logout", SignedIn, pages::logout),
        r(Post, "/site", SignedIn, pages::choose_site),
        r(Get, "/api/v1/me", SignedIn, api::me),
        // Patient registry: pages
        r(Get, "/patients", Requires(PatientRead), pages::patients),
        r(Get, "/patients/new", Requires(PatientWrite), pages::new_patient_form),
        r(Post, "/patients", Requires(PatientWrite), pages::create_patient),
        r(Get, "/patients/{id}", Requires(PatientRead), pages::patient),
        r(Get, "/patients/{id}/edit", Requires(PatientWrite), pages::edit_patient_form),
        r(Post, "/patients/{id}", Requires(PatientWrite), pages::update_patient),
        r(Post, "/patients/{id}/guardians", Requires(PatientWrite), pages::add_guardian),
        r(Post, "/patients/{id}/guardians/{gid}/remove", Requires(PatientWrite), pages::remove_guardian),
        // Patient registry: API
        r(Get, "/api/v1/patients", Requires(PatientRead), api::search_patients),
        r(Post, "/api/v1/patients", Requires(PatientWrite), api::create_patient),
        r(Get, "/api/v1/patients/{id}", Requires(PatientRead), api::get_patient),
        r(Put, "/api/v1/patients/{id}", Requires(PatientWrite), api::update_patient),
        r(Post, "/api/v1/patients/{id}/guardians", Requires(PatientWrite), api::add_guardian),
        r(Delete, "/api/v1/patients/{id}/guardians/{gid}", Requires(PatientWrite), api::remove_guardian),
        // Clinical core: pages
        r(Get, "/protocols", SignedIn, cpages::protocols),
        r(Get, "/protocols/{pid}", SignedIn, cpages::protocol),
        r(Get, "/settings", SignedIn, cpages::settings),
        r(Post, "/settings", Requires(SiteSettingsWrite), cpages::set_setting),
        r(Post, "/settings/limits", Requires(SiteSettingsWrite), cpages::change_limit),
        r(Post, "/settings/proposals/{prop}/approve", Requires(SiteSettingsWrite), cpages::approve_proposal),
        r(Post, "/settings/protocols", Requires(SiteSettingsWrite), cpages::add_site_protocol),
        r(Get, "/patients/{id}/screen", Requires(Screen), cpages::screen_form_page),
        r(Post, "/patients/{id}/screenings", Requires(Screen), cpages::screen_patient),
        r(Get, "/screenings/{sid}", Requires(ClinicalRead), cpages::screening),
        r(Post, "/screenings/{sid}/overrides", Requires(OverrideClinical), cpages::override_finding),
        r(Get, "/patients/{id}/dose", Requires(OrderDose), cpages::dose_form_page),
        r(Post, "/patients/{id}/orders", Requires(OrderDose), cpages::order_dose),
        r(Get, "/orders/{oid}", Requires(ClinicalRead), cpages::order),
        r(Post, "/orders/{oid}/override", Requires(OverrideClinical), cpages::override_order),
        r(Post, "/orders/{oid}/verify", Requires(VerifyDose), cpages::verify_order),
        r(Post, "/orders/{oid}/withdraw", Requires(OrderDose), cpages::withdraw_order),
        // Clinical core: API
        r(Get, "/api/v1/protocols", SignedIn, capi::protocols),
        r(Get, "/api/v1/protocols/{pid}", SignedIn, capi::protocol),
        r(Get, "/api/v1/site-settings", SignedIn, capi::site_settings),
        r(Put, "/api/v1/site-settings", Requires(SiteSettingsWrite), capi::put_site_settings),
        r(Post, "/api/v1/site-settings/limits", Requires(SiteSettingsWrite), capi::change_limit),
        r(Get, "/api/v1/site-settings/proposals", SignedIn, capi::proposals),
        r(Post, "/api/v1/site-settings/proposals/{prop}/approve", Requires(SiteSettingsWrite), capi::approve_proposal),
        r(Get, "/api/v1/site-protocols", SignedIn, capi::site_protocols),
        r(Post, "/api/v1/site-protocols", Requires(SiteSettingsWrite), capi::add_site_protocol),
        r(Post, "/api/v1/screen", Requires(Screen), capi::screen),
        r(Post, "/api/v1/patients/{id}/screenings", Requires(Screen), capi::screen_patient),
        r(Get, "/api/v1/screenings/{sid}", Requires(ClinicalRead), capi::get_screening),
        r(Post, "/api/v1/screenings/{sid}/overrides", Requires(OverrideClinical), capi::override_finding),
        r(Post, "/api/v1/dose", Requires(VerifyDose), capi::dose),
        r(Post, "/api/v1/patients/{id}/orders", Requires(OrderDose), capi::order),
        r(Get, "/api/v1/orders/{oid}", Requires(ClinicalRead), capi::get_order),
        r(Post, "/api/v1/orders/{oid}/override", Requires(OverrideClinical), capi::override_order),
        r(Post, "/api/v1/orders/{oid}/verify", Requires(VerifyDose), capi::verify_order),
        r(Post, "/api/v1/orders/{oid}/withdraw", Requires(OrderDose), capi::withdraw_order),
        // Administration
        r(Get, "/audit", Requires(AuditRead), pages::audit),
        r(Get, "/api/v1/audit", Requires(AuditRead), api::audit_records),
        r(Get, "/api/v1/audit/verify", Requires(AuditRead), api::verify_audit),
        r(Get, "/users", Requires(UserAdmin), pages::users),
        r(Post, "/users/{id}/account", Requires(UserAdmin), pages::account_action),
        r(Post, "/users/{id}/sites", Requires(UserAdmin), pages::user_sites),
        r(Post, "/sites", Requires(UserAdmin), pages::create_site),
        r(Post, "/sites/{id}", Requires(UserAdmin), pages::update_site),
        r(Get, "/sites/{id}/settings", SignedIn, crate::sites::site_settings_get),
        r(Post, "/sites/{id}/settings", Requires(SiteSettingsWrite), crate::sites::site_settings_post),
        r(Post, "/api/v1/users/{id}/account", Requires(UserAdmin), api::account_action),
        r(Get, "/account/password", SignedIn, pages::password_form),
        r(Post, "/account/password", SignedIn, pages::password_change),
        r(Get, "/account/second-factor", SignedIn, pages::second_factor_form),
        r(Post, "/account/second-factor", SignedIn, pages::second_factor_action),
        r(Get, "/api/v1/users", Requires(UserAdmin), api::users),
        r(Get, "/api/v1/sites", SignedIn, crate::sites::my_sites),
        r(Post, "/api/v1/sites", Requires(UserAdmin), crate::sites::create_site),
        r(Put, "/api/v1/sites/{id}", Requires(UserAdmin), crate::sites::update_site),
        r(Put, "/api/v1/users/{id}/sites", Requires(UserAdmin), crate::sites::set_user_sites),
        r(Get, "/api/v1/sites/{id}/settings", SignedIn, crate::sites::settings_of_site),
        r(Put, "/api/v1/sites/{id}/settings", Requires(SiteSettingsWrite), crate::sites::put_settings_of_site),
    ]
}

/// The rules alone (for the role-matrix test and the docs).
pub fn rules() -> Vec<RouteRule> {
    table().into_iter().map(|(rule, _)| rule).collect()
}

/// Builds the application from the route table.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (rule, method_router) in table() {
        let guard = middleware::from_fn_with_state((state.clone(), rule.access), auth::guard);
        router = router.route(rule.path, method_router.route_layer(guard));
    }
    router
        .fallback(not_found)
        // A fault in a handler answers 500 with the API's error body (and is logged), rather
        // than closing the connection without an answer.
        .layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::pages::demo_banner,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), hsts))
        .layer(RequestBodyLimitLayer::new(auth::MAX_BODY_BYTES))
        .layer(header("x-content-type-options", "nosniff"))
        .layer(header("x-frame-options", "DENY"))
        .layer(header("referrer-policy", "no-referrer"))
        .layer(header(
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ))
        // Patient data must not linger in shared caches or the browser's history cache.
        .layer(header("cache-control", "no-store"))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The answer to a request whose handler panicked: the same 500 as any internal error.
fn panicked(what: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let message = what
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| what.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "a request's handler panicked");
    axum::response::IntoResponse::into_response(crate::error::AppError::Internal)
}

/// Strict-Transport-Security (RFC 6797) on every answer to a request that arrived over TLS, or
/// through a proxy that says it did (`X-Forwarded-Proto: https`): the browser then refuses plain
/// HTTP to this host for a year. Never on plain HTTP, where the header means nothing.
async fn hsts(
    axum::extract::State(s): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let tls = auth::is_tls(&s, req.headers());
    let mut res = next.run(req).await;
    if tls {
        res.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

fn header(name: &'static str, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

async fn not_found(uri: Uri) -> Response {
    let e = crate::error::AppError::NotFound(format!("page {}", uri.path()));
    if uri.path().starts_with("/api/") {
        e.into_response()
    } else {
        (StatusCode::NOT_FOUND, crate::error::PageError(e)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A handler that panics gets the API's 500, not a connection closed without an answer.
    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_the_error_body() {
        let app = Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    let v: Vec<i64> = Vec::new();
                    v[0].to_string()
                }),
            )
            .layer(CatchPanicLayer::custom(panicked));
        let r = tower::ServiceExt::oneshot(
            app,
            axum::http::Request::get("/boom")
                .body(axum::body::Body::empty())
                .unwrap_or_default(),
        )
        .await;
        let Ok(r) = r;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = r.into_body().collect().await.map(|b| b.to_bytes());
        let body = String::from_utf8_lossy(body.as_deref().unwrap_or_default()).into_owned();
        assert!(body.contains("\"error\":\"internal\""), "{body}");
    }
}
