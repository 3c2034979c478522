//! Who is asking: browser sessions (cookie + CSRF token) and API tokens (`Authorization: Bearer`),
//! and the guard that every route passes through with its role rule.

use crate::AppState;
use crate::error::{AppError, PageError};
use crate::password::token_hash;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, Method, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use ketcare_core::audit::AuditEvent;
use ketcare_core::{Access, Actor};
use ketcare_store::User;
use std::net::SocketAddr;

pub const SESSION_COOKIE: &str = "ketcare_session";
pub const LOGIN_CSRF_COOKIE: &str = "ketcare_login_csrf";
/// The largest form or JSON body ketcare reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A browser session; unsafe requests must carry its CSRF token.
    Session { token_hash: String, csrf: String },
    /// An API token; not sent automatically by browsers, so no CSRF token is needed.
    ApiToken,
    /// A SMART backend client's access token (`/fhir/r4/auth/token`): accepted only on the FHIR
    /// reads and Bulk Data routes ([`smart_token_admits`]), and only for its scopes' types.
    SmartToken { scopes: ketcare_fhir::smart::Scopes },
}

/// The signed-in caller, put in the request by the guard.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub actor: Actor,
    pub credential: Credential,
    /// The sites the user works at in the role they act in now (id, name), from the record.
    pub sites: Vec<(i64, String)>,
    /// Every site the user works at (id, name, with the role held there when they hold
    /// several): what the header's chooser offers. Choosing one acts in its role.
    pub choices: Vec<(i64, String)>,
    /// The site the user is working at: their only site, or the one chosen (the `ketcare_site`
    /// cookie on pages, the `X-Ketcare-Site` header on the API) when it is one of theirs. The
    /// store checks it again; a record's own site (a session's, a booking's) always wins.
    pub site: Option<i64>,
    /// That site's time zone (the server's without a working site, or for a site without one):
    /// the request is answered in it ([`ketcare_app::zones`]).
    pub zone: jiff::tz::TimeZone,
}

impl Principal {
    /// The CSRF token to embed in forms (empty for API tokens, which do not use forms).
    pub fn csrf(&self) -> &str {
        match &self.credential {
            Credential::Session { csrf, .. } => csrf,
            Credential::ApiToken | Credential::SmartToken { .. } => "",
        }
    }

    /// The scopes of a SMART backend client's token (`None` for every other credential, whose
    /// role alone decides).
    pub fn scopes(&self) -> Option<&ketcare_fhir::smart::Scopes> {
        match &self.credential {
            Credential::SmartToken { scopes } => Some(scopes),
            _ => None,
        }
    }

    /// Whether this caller may read resources of type `kind` (a SMART token: its scopes).
    pub fn may_read(&self, kind: &str) -> bool {
        self.scopes().is_none_or(|s| s.allows(kind))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(AppError::Unauthorized)
    }
}

/// The caller if signed in, for public pages that look different when they are.
pub struct MaybePrincipal(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MaybePrincipal {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybePrincipal(parts.extensions.get::<Principal>().cloned()))
    }
}

/// The client's address as the audit log records it.
pub fn client_address(parts_ext: &axum::http::Extensions) -> String {
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, and Secure when served over TLS.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the request reached us over TLS (directly or through a proxy that says so).
pub fn is_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The cookie holding the site a signed-in user chose to work at.
pub const SITE_COOKIE: &str = "ketcare_site";

/// Where and as what a signed-in user acts, from the record.
struct Working {
    /// The sites they act at in `role`.
    sites: Vec<(i64, String)>,
    /// Every site of theirs, labelled with the role held there when they hold several.
    choices: Vec<(i64, String)>,
    site: Option<i64>,
    role: ketcare_core::Role,
    zone: jiff::tz::TimeZone,
}

/// The user's sites, the one they work at now (see [`Principal::site`]), the role they hold
/// there and its time zone. A user who holds different roles at different sites acts in the
/// role of the site they chose; having chosen none, in the account's own role where they hold
/// it (else in the role of their first site), so each request acts in exactly one role, one
/// the account holds at the sites it then reaches.
async fn working_site(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
) -> Result<Working, AppError> {
    let held = state.store.sites_held(user.id).await?;
    let theirs = |v: &str| {
        v.trim()
            .parse::<i64>()
            .ok()
            .filter(|id| held.iter().any(|(s, _)| s.id == *id))
    };
    // A site an integration names must be one of the caller's: anything else is refused rather
    // than dropped. A stale cookie (a site the user no longer works at) is only forgotten.
    let chosen = match headers.get("x-ketcare-site") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(theirs)
                .ok_or_else(|| AppError::invalid("X-Ketcare-Site", "not a site of yours"))?,
        ),
        None => cookie(headers, SITE_COOKIE).and_then(theirs),
    };
    let several_roles = held.windows(2).any(|w| w[0].1 != w[1].1);
    // The role: the chosen site's; with none chosen, the account's own where it holds it
    // somewhere, else the role of its first site (an account listed only where it holds
    // another role acts in that one, never in a role it holds nowhere).
    let role = match chosen.and_then(|id| held.iter().find(|(s, _)| s.id == id)) {
        Some((_, r)) => *r,
        None if held.iter().any(|(_, r)| *r == user.role) => user.role,
        None => held.first().map_or(user.role, |(_, r)| *r),
    };
    let sites: Vec<(i64, String)> = held
        .iter()
        .filter(|(_, r)| *r == role)
        .map(|(s, _)| (s.id, s.name.clone()))
        .collect();
    let choices = held
        .iter()
        .map(|(s, r)| {
            let label = if several_roles {
                format!("{} ({r})", s.name)
            } else {
                s.name.clone()
            };
            (s.id, label)
        })
        .collect();
    // The site: the one chosen, or the only one of the role; never guessed among several (the
    // store then refuses an act that needs one, naming `site`).
    let site = match (chosen, sites.as_slice()) {
        (Some(id), _) => Some(id),
        (None, [(only, _)]) => Some(*only),
        _ => None,
    };
    let zone = held
        .iter()
        .find(|(s, _)| Some(s.id) == site)
        .map_or_else(jiff::tz::TimeZone::system, |(s, _)| {
            ketcare_app::zones::named(&s.time_zone)
        });
    Ok(Working {
        sites,
        choices,
        site,
        role,
        zone,
    })
}

/// The principal of `user` signed in by `credential`, acting in the role of the site they work
/// at.
async fn principal(
    state: &AppState,
    headers: &HeaderMap,
    mut user: User,
    credential: Credential,
    address: &str,
) -> Result<Principal, AppError> {
    let w = working_site(state, headers, &user).await?;
    user.role = w.role;
    let actor = Actor::user(user.id, &user.username, user.role, address);
    Ok(Principal {
        user,
        actor,
        credential,
        sites: w.sites,
        choices: w.choices,
        site: w.site,
        zone: w.zone,
    })
}

async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    address: &str,
) -> Result<Option<Principal>, AppError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AppError::Unauthorized)?;
        let token = token.trim();
        let (user, credential) = match state
            .store
            .api_token_user(&token_hash(token), state.now())
            .await?
        {
            Some(user) => (user, Credential::ApiToken),
            None => {
                let (user, scopes) =
                    ketcare_app::smart::access(state.store.as_ref(), token, state.now())
                        .await?
                        .ok_or(AppError::Unauthorized)?;
                (user, Credential::SmartToken { scopes })
            }
        };
        return principal(state, headers, user, credential, address)
            .await
            .map(Some);
    }
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = token_hash(token);
    let now = state.now();
    let Some(session) = state.store.session(&hash, now).await? else {
        return Ok(None);
    };
    // Idle too long: the session ends, as if signed out (a session from before the time of use
    // was kept has none, and is only noted now).
    if session.last_seen > 0 && now - session.last_seen > state.config.idle_minutes * 60 {
        let actor = Actor::user(
            session.user.id,
            &session.user.username,
            session.user.role,
            address,
        );
        state.store.end_session(&hash, &actor).await?;
        return Ok(None);
    }
    // Noted at most once a minute, so reading pages does not write on every request.
    if now - session.last_seen >= 60 {
        state.store.touch_session(&hash, now).await?;
    }
    principal(
        state,
        headers,
        session.user,
        Credential::Session {
            token_hash: hash,
            csrf: session.csrf_token,
        },
        address,
    )
    .await
    .map(Some)
}

/// Where a SMART backend client's access token is accepted: the FHIR reads (GET), the Bulk Data
/// kick-off (which the spec makes a POST), and an export's status (GET, DELETE to cancel) and
/// files. Anywhere else it is no credential (401).
pub fn smart_token_admits(method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/fhir/r4/") else {
        return false;
    };
    match *method {
        Method::GET | Method::HEAD => true,
        Method::POST => {
            matches!(rest, "$export" | "Patient/$export")
                || rest
                    .strip_prefix("Group/")
                    .and_then(|g| g.strip_suffix("/$export"))
                    .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        }
        Method::DELETE => rest.starts_with("$export-status/"),
        _ => false,
    }
}

/// The resource type a FHIR read names (`/fhir/r4/Observation?…`, `/fhir/r4/Patient/7`), for a
/// SMART token's scope check; a Bulk Data kick-off checks its `_type` itself.
fn fhir_resource(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/fhir/r4/")?;
    let kind = rest.split('/').next()?;
    ketcare_fhir::capability::resource(kind)?;
    (!rest.ends_with("/$export")).then_some(kind)
}

/// The machine interfaces: the JSON API and FHIR (paced per credential, never redirected).
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/fhir/")
}

fn reject(path: &str, e: AppError) -> Response {
    if path.starts_with("/fhir/") {
        crate::fhir::error_response(e)
    } else if is_api(path) {
        e.into_response()
    } else if matches!(e, AppError::Unauthorized) {
        Redirect::to(&format!("/login?next={}", urlencode(path))).into_response()
    } else {
        PageError(e).into_response()
    }
}

/// Seconds since the process started, from the monotonic clock (pacing must not follow a
/// clock that can be set back).
fn monotonic_seconds() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|v| v.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// Checks the CSRF token of a session-authenticated unsafe request: from the `x-csrf-token`
/// header, or from the `csrf_token` field of a form body (which is buffered and passed on).
async fn check_csrf(req: Request, expected: &str) -> Result<Request, AppError> {
    let (parts, body) = req.into_parts();
    if let Some(h) = parts.headers.get("x-csrf-token") {
        return if h.to_str().ok() == Some(expected) {
            Ok(Request::from_parts(parts, body))
        } else {
            Err(AppError::Forbidden("the form's security token is missing or out of date; reload the page and try again".into()))
        };
    }
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| AppError::invalid("body", "the request body is too large"))?;
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let token = if is_form {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .ok()
            .and_then(|kv| {
                kv.into_iter()
                    .find(|(k, _)| k == "csrf_token")
                    .map(|(_, v)| v)
            })
    } else {
        None
    };
    if token.as_deref() == Some(expected) {
        Ok(Request::from_parts(parts, Body::from(bytes)))
    } else {
        Err(AppError::Forbidden(
            "the form's security token is missing or out of date; reload the page and try again"
                .into(),
        ))
    }
}

/// A signed-in caller refused (403): counted, and written to the audit log at most once a minute
/// per user with the count since.
async fn refuse(
    state: &AppState,
    p: &Principal,
    method: &Method,
    path: &str,
    message: String,
) -> Response {
    if let Some(before) = state.refusals.note(p.user.id.get(), state.now()) {
        let detail = if before == 0 {
            format!("{method} {path}")
        } else {
            format!("{method} {path} (and {before} more refusals counted before it)")
        };
        let event = AuditEvent::new("access.denied", None, detail);
        if let Err(e) = state.store.audit(&p.actor, event).await {
            tracing::error!(error = %e, "could not audit a refusal");
        }
    }
    reject(path, AppError::Forbidden(message))
}

/// The guard every route passes through: resolves the caller, applies the route's role rule,
/// checks CSRF on unsafe session requests, and records refusals in the audit log.
pub async fn guard(
    State((state, access)): State<(AppState, Access)>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let address = client_address(req.extensions());
    let headers = req.headers().clone();
    // The API is paced per credential (a token, a browser session, or the address of a caller
    // with neither), before the credential is even looked up.
    if is_api(&path) {
        let key = match (
            headers.get(header::AUTHORIZATION),
            cookie(&headers, SESSION_COOKIE),
        ) {
            (Some(a), _) => format!("t:{}", token_hash(a.to_str().unwrap_or(""))),
            (None, Some(c)) => format!("c:{}", token_hash(c)),
            (None, None) => format!("a:{address}"),
        };
        let now = monotonic_seconds();
        if let Err(wait) = state.api_rate.take(
            &key,
            now,
            state.config.api_burst,
            state.config.api_per_second,
        ) {
            // FHIR clients get an OperationOutcome, like every other FHIR refusal.
            let mut r = reject(
                &path,
                AppError::TooManyRequests(format!(
                    "too many requests from this credential: try again in {wait} s"
                )),
            );
            if let Ok(v) = wait.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
    }
    let principal = match resolve(&state, &headers, &address).await {
        Ok(p) => p,
        Err(e) => return reject(&path, e),
    };
    if let Some(p) = &principal
        && p.scopes().is_some()
        && !smart_token_admits(&method, &path)
    {
        return reject(&path, AppError::Unauthorized);
    }
    if !access.admits(principal.as_ref().map(|p| p.user.role)) {
        return match principal {
            None => reject(&path, AppError::Unauthorized),
            Some(p) => {
                let message = format!("the {} role may not open this page", p.user.role);
                refuse(&state, &p, &method, &path, message).await
            }
        };
    }
    if let Some(p) = &principal
        && let Some(kind) = fhir_resource(&path)
        && !p.may_read(kind)
    {
        let message = format!("the token's scopes do not include system/{kind}.read");
        return refuse(&state, p, &method, &path, message).await;
    }
    // After an administrator's reset, nothing but choosing a new password (or signing out).
    if let Some(p) = &principal
        && p.user.must_change_password
        && !matches!(path.as_str(), "/account/password" | "/logout")
        && !path.starts_with("/static/")
    {
        if is_api(&path) {
            return reject(
                &path,
                AppError::Forbidden(
                    "this account must choose a new password first (sign in on the web)".into(),
                ),
            );
        }
        return axum::response::Redirect::to("/account/password").into_response();
    }
    // The site requires a second factor of this role and the account has none: nothing but
    // setting one up (a browser session only: API tokens are machine credentials).
    if let Some(p) = &principal
        && matches!(p.credential, Credential::Session { .. })
        && !p.user.second_factor
        && ketcare_app::second_factor::REQUIRED_FOR.contains(&p.user.role)
        && !matches!(
            path.as_str(),
            "/account/second-factor" | "/account/password" | "/logout"
        )
        && !path.starts_with("/static/")
    {
        match ketcare_app::second_factor::must_enrol(state.store.as_ref(), &p.user).await {
            Ok(false) => {}
            Ok(true) if path.starts_with("/api/") => {
                return reject(
                    &path,
                    AppError::Forbidden(
                        "this account must set up a second factor first (on the web)".into(),
                    ),
                );
            }
            Ok(true) => return Redirect::to("/account/second-factor").into_response(),
            Err(e) => return reject(&path, e.into()),
        }
    }
    let mut req = req;
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if let Some(Principal {
        credential: Credential::Session { csrf, .. },
        ..
    }) = &principal
        && unsafe_method
    {
        req = match check_csrf(req, csrf).await {
            Ok(r) => r,
            Err(e) => return reject(&path, e),
        };
    }
    let zone = principal
        .as_ref()
        .map_or_else(jiff::tz::TimeZone::system, |p| p.zone.clone());
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    ketcare_app::zones::within(zone, next.run(req)).await
}

#[cfg(test)]
mod smart_tests {
    use super::*;

    #[test]
    fn a_backend_token_reads_and_exports_and_never_writes() {
        for (method, path, admitted) in [
            (Method::GET, "/fhir/r4/Patient", true),
            (Method::GET, "/fhir/r4/Group/protocol-x", true),
            (Method::POST, "/fhir/r4/$export", true),
            (Method::POST, "/fhir/r4/Patient/$export", true),
            (Method::POST, "/fhir/r4/Group/protocol-x/$export", true),
            (Method::POST, "/fhir/r4/Group//$export", false),
            (Method::POST, "/fhir/r4/Patient", false),
            (Method::POST, "/fhir/r4/Observation", false),
            (Method::PUT, "/fhir/r4/Patient/3", false),
            (Method::DELETE, "/fhir/r4/$export-status/abc", true),
            (Method::GET, "/api/v1/patients", false),
        ] {
            assert_eq!(
                smart_token_admits(&method, path),
                admitted,
                "{method} {path}"
            );
        }
        assert_eq!(fhir_resource("/fhir/r4/Group/protocol-x/$export"), None);
        assert_eq!(fhir_resource("/fhir/r4/Group/protocol-x"), Some("Group"));
        assert_eq!(fhir_resource("/fhir/r4/Observation"), Some("Observation"));
    }
}
