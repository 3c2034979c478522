//! Server-rendered pages for staff. They work without JavaScript; every form carries its CSRF
//! token and shows each bad field's message beside the field.

use crate::AppState;
use crate::api::AuditQuery;
use crate::auth::{
    self, Credential, LOGIN_CSRF_COOKIE, MAX_BODY_BYTES, MaybePrincipal, Principal, SESSION_COOKIE,
};
use crate::error::{AppError, PageError};
use crate::password::{random_token, token_hash, verify_dummy, verify_password};
use askama::Template;
use axum::body::to_bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use ketcare_core::audit::{AuditEvent, AuditRecord};
use ketcare_core::patient::{
    GuardianInput, ListInput, NewGuardian, NewPatient, NumberInput, Patient, PatientDemographics,
    PatientInput, PatientSummary, Relationship, Sex, VisiblePatient,
};
use ketcare_core::units::trim_float;
use ketcare_core::{Actor, FieldErrors, GuardianId, PatientId, Permission, Role};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Renders a template, or a plain 500 if the template fails (it is compiled, so it should not).
pub fn render_html<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

pub(crate) fn render_with<T: Template>(status: StatusCode, t: &T) -> Response {
    let mut r = render_html(t);
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}

/// A form body; decoding problems become a 422 naming the field.
pub struct FormBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for FormBody<T> {
    type Rejection = PageError;
    async fn from_request(req: Request, _: &S) -> Result<Self, PageError> {
        let bytes = to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| AppError::invalid("body", "the form is too large"))?;
        serde_urlencoded::from_bytes(&bytes)
            .map(FormBody)
            .map_err(|e| PageError(AppError::invalid("form", e.to_string())))
    }
}

/// What the header shows: who is signed in and what their role may open.
pub struct Nav {
    pub username: String,
    pub role: String,
    pub csrf: String,
    pub patients: bool,
    /// May read the clinical record (alerts, the suite), not only demographics.
    pub clinical: bool,
    /// May register and update patients (not every role that reads them may).
    pub patient_write: bool,
    pub audit: bool,
    pub users: bool,
    /// May read the de-identified research registry.
    pub research: bool,
    /// May read the program dashboard (identified outcomes).
    pub program: bool,
    /// The user's sites in the role they act in now (id, name).
    pub sites: Vec<(i64, String)>,
    /// Every site of the user's (with the role held there when they hold several): a chooser
    /// is shown when there are several.
    pub choices: Vec<(i64, String)>,
    /// The site the user works at now.
    pub site: Option<i64>,
}

impl Nav {
    /// Whether `site` is the one the user works at now.
    pub fn is_site(&self, site: &i64) -> bool {
        self.site == Some(*site)
    }

    pub fn of(p: &Principal) -> Option<Nav> {
        Some(Nav {
            username: p.user.display_name.clone(),
            role: p.user.role.to_string(),
            csrf: p.csrf().to_owned(),
            patients: p.user.role.allows(Permission::PatientRead),
            clinical: p.user.role.allows(Permission::ClinicalRead),
            patient_write: p.user.role.allows(Permission::PatientWrite),
            audit: p.user.role.allows(Permission::AuditRead),
            users: p.user.role.allows(Permission::UserAdmin),
            research: p.user.role.allows(Permission::RegistryRead),
            program: p.user.role.allows(Permission::ProgramOutcomes),
            sites: p.sites.clone(),
            choices: p.choices.clone(),
            site: p.site,
        })
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub nav: Option<Nav>,
    pub status: u16,
    pub message: String,
}

/// The banner every page of a demo database carries.
pub const DEMO_BANNER: &str = "<div class=\"demo-banner\" id=\"demo-banner\" role=\"note\">Demo clinic — everyone in it is fictional, and its site values are the demo clinic's choices, not recommendations. Not for clinical use.</div>";

/// Puts the demo banner at the top of every HTML page while the database is a demo clinic.
pub async fn demo_banner(
    axum::extract::State(s): axum::extract::State<crate::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html || !s.is_demo() {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response body").into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let out = match text.find("<body>") {
        Some(i) => format!("{}{DEMO_BANNER}{}", &text[..i + 6], &text[i + 6..]),
        None => text.into_owned(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(out))
}

/// The same-origin script that asks before a destructive action (`data-confirm`).
pub async fn confirm_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/confirm.js"),
    )
        .into_response()
}

/// The same-origin type-ahead for fields that name a patient (`data-patient-picker`).
pub async fn patient_picker_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/patient-picker.js"),
    )
        .into_response()
}

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/app.css"),
    )
        .into_response()
}

// ---- Sign in and out ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    nav: Option<Nav>,
    csrf: String,
    next: String,
    username: String,
    error: String,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

/// Only plain same-site paths are followed after sign-in. Browsers drop tab, CR and LF from a
/// URL, so control characters are removed before the check: `/\t/evil.example/` would otherwise
/// pass as a path and land on `//evil.example/`, another origin.
pub fn safe_next(next: &str) -> String {
    let path: String = next.chars().filter(|c| !c.is_control()).collect();
    let plain = path.starts_with('/') && !path.starts_with("//") && !path.contains('\\');
    if plain { path } else { "/".to_owned() }
}

#[cfg(test)]
mod next_tests {
    use super::safe_next;

    #[test]
    fn only_plain_same_site_paths_are_followed() {
        assert_eq!(safe_next("/patients/3?q=a"), "/patients/3?q=a");
        for evil in [
            "//evil.example/",
            "/\t/evil.example/",
            "/\n/evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "/\r\n/evil.example",
            "javascript:alert(1)",
            "/x/../\t/evil.example",
        ] {
            let got = safe_next(evil);
            assert!(
                got == "/" || (got.starts_with('/') && !got.starts_with("//")),
                "{evil:?} → {got:?}"
            );
            assert!(!got.chars().any(char::is_control), "{evil:?} → {got:?}");
        }
        assert_eq!(safe_next("/\t/evil.example/"), "/");
        // No header can be injected: what is left is one line.
        assert_eq!(safe_next("/ok\r\nSet-Cookie: x=1"), "/okSet-Cookie: x=1");
    }
}

fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    next: &str,
    username: &str,
    error: &str,
    status: StatusCode,
) -> Response {
    let csrf = random_token();
    let page = LoginPage {
        nav: None,
        csrf: csrf.clone(),
        next: safe_next(next),
        username: username.to_owned(),
        error: error.to_owned(),
    };
    let mut r = render_with(status, &page);
    let cookie = auth::set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, auth::is_tls(state, headers));
    if let Ok(v) = cookie.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub async fn login_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    MaybePrincipal(p): MaybePrincipal,
    Query(q): Query<NextQuery>,
) -> Response {
    if p.is_some() {
        return Redirect::to(&safe_next(&q.next)).into_response();
    }
    login_page(&s, &headers, &q.next, "", "", StatusCode::OK)
}

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: String,
}

/// The one answer to every refused sign-in.
pub const SIGN_IN_REFUSED: &str = "Wrong username or password, or too many attempts from here: \
     wait a few minutes and try again, or ask an administrator.";

pub async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, PageError> {
    let address = auth::client_address(req.extensions());
    let FormBody(form): FormBody<LoginForm> = FormBody::from_request(req, &()).await?;
    // Double-submit check: the form's token must match the cookie set with the form.
    let cookie_token = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if cookie_token.is_empty() || cookie_token != form.csrf_token {
        return Ok(login_page(
            &s,
            &headers,
            &form.next,
            &form.username,
            "The sign-in form expired. Please try again.",
            StatusCode::FORBIDDEN,
        ));
    }
    let refuse = |msg: &str| {
        login_page(
            &s,
            &headers,
            &form.next,
            &form.username,
            msg,
            StatusCode::UNAUTHORIZED,
        )
    };
    let now = s.now();
    let username = form.username.trim();
    let window = s.config.lockout_minutes * 60;
    // One answer for an unknown username, a wrong password and a paused sign-in, so the page
    // tells no one which accounts exist.
    match s.throttle.check(&address, username, now) {
        crate::throttle::Verdict::Allowed => {}
        crate::throttle::Verdict::AccountPaused(_) => {
            let who = Actor {
                user_id: None,
                username: username.to_owned(),
                role: None,
                address: address.clone(),
            };
            s.store
                .audit(
                    &who,
                    AuditEvent::new("login.paused", None, "attempt while paused"),
                )
                .await?;
            return Ok(refuse(SIGN_IN_REFUSED));
        }
        crate::throttle::Verdict::AddressPaused(wait) => {
            let mut r = login_page(
                &s,
                &headers,
                &form.next,
                &form.username,
                SIGN_IN_REFUSED,
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(v) = wait.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(r);
        }
    }
    let Some(user) = s.store.user_by_username(username).await? else {
        verify_dummy(&form.password);
        s.throttle
            .failed(&address, username, now, s.config.lockout_attempts, window);
        let who = Actor {
            user_id: None,
            username: username.to_owned(),
            role: None,
            address,
        };
        s.store
            .audit(
                &who,
                AuditEvent::new("login.failed", None, "unknown username"),
            )
            .await?;
        return Ok(refuse(SIGN_IN_REFUSED));
    };
    if user.disabled || !verify_password(&form.password, &user.password_hash) {
        s.throttle
            .failed(&address, username, now, s.config.lockout_attempts, window);
        s.store.login_failed(&user, &address, None).await?;
        return Ok(refuse(SIGN_IN_REFUSED));
    }
    if user.second_factor {
        // The password was right; the second step waits under a challenge of its own, which
        // no page but the second step reads: it is not a session. The throttle is not reset
        // until the second step succeeds, so wrong codes count with wrong passwords.
        let token = random_token();
        s.store
            .create_sign_in_challenge(
                &user,
                &address,
                &token_hash(&token),
                now + ketcare_app::second_factor::CHALLENGE_SECONDS,
            )
            .await?;
        let mut r = second_step_page(&form.csrf_token, &form.next, "", StatusCode::OK);
        let c = auth::set_cookie(
            SIGN_IN_COOKIE,
            &token,
            ketcare_app::second_factor::CHALLENGE_SECONDS,
            auth::is_tls(&s, &headers),
        );
        if let Ok(v) = c.parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        return Ok(r);
    }
    s.throttle.succeeded(&address, username);
    start_session(&s, &headers, &user, &address, &form.next).await
}

/// The cookie that carries a sign-in's second-step challenge (not a session).
pub const SIGN_IN_COOKIE: &str = "ketcare_sign_in";

/// Signs `user` in: the sign-in is audited, a session is created, and the sign-in cookies are
/// cleared.
async fn start_session(
    s: &AppState,
    headers: &HeaderMap,
    user: &ketcare_store::User,
    address: &str,
    next: &str,
) -> Result<Response, PageError> {
    let now = s.now();
    s.store.login_succeeded(user, address).await?;
    let token = random_token();
    let expires = now + s.config.session_minutes * 60;
    s.store
        .create_session(&token_hash(&token), user.id, &random_token(), now, expires)
        .await?;
    let secure = auth::is_tls(s, headers);
    let mut r = Redirect::to(&safe_next(next)).into_response();
    for c in [
        auth::set_cookie(
            SESSION_COOKIE,
            &token,
            s.config.session_minutes * 60,
            secure,
        ),
        auth::set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure),
        auth::set_cookie(SIGN_IN_COOKIE, "", 0, secure),
    ] {
        if let Ok(v) = c.parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

#[derive(Template)]
#[template(path = "login_second_factor.html")]
pub struct SecondStepPage {
    nav: Option<Nav>,
    csrf: String,
    next: String,
    error: String,
}

/// The sign-in's second step; `csrf` is the sign-in form's double-submit token, still in its
/// cookie.
fn second_step_page(csrf: &str, next: &str, error: &str, status: StatusCode) -> Response {
    render_with(
        status,
        &SecondStepPage {
            nav: None,
            csrf: csrf.to_owned(),
            next: safe_next(next),
            error: error.to_owned(),
        },
    )
}

#[derive(Deserialize, Default)]
pub struct SecondStepForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: String,
}

/// The second step of a sign-in: a code from the authenticator app or a recovery code, for the
/// account whose password was right (named by the challenge cookie, never by the form).
pub async fn login_second_factor(
    State(s): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, PageError> {
    let address = auth::client_address(req.extensions());
    let FormBody(form): FormBody<SecondStepForm> = FormBody::from_request(req, &()).await?;
    let cookie_token = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if cookie_token.is_empty() || cookie_token != form.csrf_token {
        return Ok(login_page(
            &s,
            &headers,
            &form.next,
            "",
            "The sign-in form expired. Please try again.",
            StatusCode::FORBIDDEN,
        ));
    }
    let now = s.now();
    let challenge = auth::cookie(&headers, SIGN_IN_COOKIE)
        .filter(|t| !t.is_empty())
        .map(token_hash);
    let user = match &challenge {
        Some(hash) => s.store.sign_in_challenge(hash, now).await?,
        None => None,
    };
    let (Some(hash), Some(user)) = (challenge, user) else {
        return Ok(login_page(
            &s,
            &headers,
            &form.next,
            "",
            "The sign-in took too long (or was finished already): sign in again.",
            StatusCode::UNAUTHORIZED,
        ));
    };
    let username = user.username.clone();
    // Paused as the password step would be: the same answer, and the challenge ends with it.
    let paused = match s.throttle.check(&address, &username, now) {
        crate::throttle::Verdict::Allowed => None,
        crate::throttle::Verdict::AccountPaused(_) => Some((StatusCode::UNAUTHORIZED, None)),
        crate::throttle::Verdict::AddressPaused(wait) => {
            Some((StatusCode::TOO_MANY_REQUESTS, Some(wait)))
        }
    };
    if let Some((status, wait)) = paused {
        s.store.end_sign_in_challenge(&hash, now).await?;
        s.store
            .audit(
                &Actor::user(user.id, &user.username, user.role, &address),
                AuditEvent::new("login.paused", None, "second step while paused"),
            )
            .await?;
        let mut r = login_page(&s, &headers, &form.next, &username, SIGN_IN_REFUSED, status);
        if let Some(v) = wait.and_then(|w| w.to_string().parse().ok()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let accepted =
        ketcare_app::second_factor::second_step(s.store.as_ref(), &user, &address, &form.code, now)
            .await
            .map_err(AppError::from)?;
    if !accepted {
        s.throttle.failed(
            &address,
            &username,
            now,
            s.config.lockout_attempts,
            s.config.lockout_minutes * 60,
        );
        return Ok(second_step_page(
            &form.csrf_token,
            &form.next,
            "That code is not right, or it was used already: enter the app's current code, or \
             an unused recovery code.",
            StatusCode::UNAUTHORIZED,
        ));
    }
    s.store.end_sign_in_challenge(&hash, now).await?;
    s.throttle.succeeded(&address, &username);
    start_session(&s, &headers, &user, &address, &form.next).await
}

pub async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Principal,
) -> Result<Response, PageError> {
    if let Credential::Session { token_hash, .. } = &p.credential {
        s.store.end_session(token_hash, &p.actor).await?;
    }
    let mut r = Redirect::to("/login").into_response();
    let c = auth::set_cookie(SESSION_COOKIE, "", 0, auth::is_tls(&s, &headers));
    if let Ok(v) = c.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// For a user of several sites who has not chosen one, a page that asks for the site (the
/// header's chooser brings them back here): `None` when the site is known.
pub fn site_needed(p: &Principal, what: &str) -> Option<Response> {
    (p.site.is_none() && p.sites.len() > 1).then(|| {
        render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ErrorPage {
                nav: Nav::of(p),
                status: 422,
                message: format!(
                    "You work at several sites: choose the site whose {what} to open in the \
                     \"Site\" list at the top of the page."
                ),
            },
        )
    })
}

/// Chooses the site the user works at (one of theirs), kept in a cookie; back to the page
/// the choice was made on.
pub async fn choose_site(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Principal,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let f = crate::clinical_pages::form_pairs(&body)?;
    let field = |k| crate::clinical_pages::field(&f, k);
    let id: i64 = field("site")
        .parse()
        .ok()
        .filter(|id| p.choices.iter().any(|(s, _)| s == id))
        .ok_or_else(|| AppError::invalid("site", "choose one of your sites"))?;
    // Back to a page of this server only (the same check as after sign-in).
    let mut r = Redirect::to(&safe_next(field("back"))).into_response();
    let c = auth::set_cookie(
        auth::SITE_COOKIE,
        &id.to_string(),
        400 * 24 * 3600,
        auth::is_tls(&s, &headers),
    );
    if let Ok(v) = c.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

// ---- Home ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    nav: Option<Nav>,
    display_name: String,
    role: String,
    /// Open suicide-risk alerts with the patient's name and MRN.
    safety_alerts: Vec<(ketcare_store::measures::SafetyAlert, String)>,
    /// The role's work queues.
    queues: Vec<ketcare_app::worklists::Queue>,
    /// A queue could not be read (the page still shows what it could).
    queue_error: String,
}

pub async fn home(State(s): State<AppState>, p: Principal) -> Response {
    let alerts = ketcare_app::measures::open_alerts(s.store.as_ref(), &p.actor).await;
    let mut ids: Vec<PatientId> = alerts.iter().map(|a| a.patient_id).collect();
    ids.sort();
    ids.dedup();
    let names: std::collections::BTreeMap<PatientId, String> = if ids.is_empty() {
        Default::default()
    } else {
        s.store
            .patient_summaries(&p.actor, &ids)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|x| {
                (
                    x.id,
                    format!("{}, {} ({})", x.family_name, x.given_name, x.mrn),
                )
            })
            .collect()
    };
    let safety_alerts = alerts
        .into_iter()
        .map(|a| {
            let who = names
                .get(&a.patient_id)
                .cloned()
                .unwrap_or_else(|| format!("Patient {}", a.patient_id));
            (a, who)
        })
        .collect();
    let (queues, queue_error) = match ketcare_app::worklists::home(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        jiff::Timestamp::from_second(s.now()).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        &ketcare_app::zones::here(),
    )
    .await
    {
        Ok(q) => (q, String::new()),
        Err(e) => {
            tracing::error!(error = %e, "reading the work queues");
            (
                Vec::new(),
                "The work queues could not be read; try again.".into(),
            )
        }
    };
    render_html(&HomePage {
        nav: Nav::of(&p),
        display_name: p.user.display_name.clone(),
        role: p.user.role.to_string(),
        safety_alerts,
        queues,
        queue_error,
    })
}

// ---- Patients -----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "patients.html")]
pub struct PatientsPage {
    nav: Option<Nav>,
    q: String,
    can_write: bool,
    results: Vec<PatientSummary>,
}

#[derive(Deserialize, Default)]
pub struct SearchForm {
    #[serde(default)]
    q: String,
}

pub async fn patients(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<SearchForm>,
) -> Result<Response, PageError> {
    let results = s.store.search_patients(&p.actor, &q.q, 50).await?;
    Ok(render_html(&PatientsPage {
        nav: Nav::of(&p),
        q: q.q,
        can_write: p.user.role.allows(Permission::PatientWrite),
        results,
    }))
}

/// A page's path parameter: one that does not decode (`/patients/abc`) is a page that does not
/// exist, answered with the 404 page rather than axum's plain-text 400.
pub struct PagePath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for PagePath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = PageError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, PageError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PagePath(v))
            .map_err(|_| PageError(AppError::NotFound("this page".into())))
    }
}

/// The patient form's values as typed, so a refused form comes back as the user left it.
#[derive(Default, Clone)]
pub struct PatientFormValues {
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: String,
    pub sex: String,
    pub weight_value: String,
    pub weight_unit: String,
    pub weight_measured_on: String,
    pub height_value: String,
    pub height_unit: String,
    pub height_measured_on: String,
    pub indications: String,
    pub psychiatric_history: String,
    pub substance_use_history: String,
    pub medications: String,
    pub allergies: String,
    pub phone: String,
    pub email: String,
    /// The intake questions: (field, words, "yes" / "no" / "" not asked). Empty for a reader
    /// who may not see the clinical part.
    pub intake: Vec<(&'static str, &'static str, String)>,
}

fn intake_values(
    answers: [(&'static str, &'static str, Option<bool>); 6],
) -> Vec<(&'static str, &'static str, String)> {
    answers
        .into_iter()
        .map(|(f, w, a)| {
            let v = match a {
                Some(true) => "yes",
                Some(false) => "no",
                None => "",
            };
            (f, w, v.to_owned())
        })
        .collect()
}

impl PatientFormValues {
    fn from_input(i: &PatientInput) -> Self {
        let num = |n: &Option<NumberInput>| match n {
            Some(NumberInput::Number(v)) => v.to_string(),
            Some(NumberInput::Text(t)) => t.clone(),
            None => String::new(),
        };
        let lines = |l: &Option<ListInput>| match l {
            Some(ListInput::Items(v)) => v.join("\n"),
            Some(ListInput::Lines(s)) => s.clone(),
            None => String::new(),
        };
        let o = |s: &Option<String>| s.clone().unwrap_or_default();
        let yn = |v: &Option<ketcare_core::patient::YesNoInput>| match v {
            Some(ketcare_core::patient::YesNoInput::Bool(true)) => "yes".to_owned(),
            Some(ketcare_core::patient::YesNoInput::Bool(false)) => "no".to_owned(),
            Some(ketcare_core::patient::YesNoInput::Text(t)) => t.clone(),
            None => String::new(),
        };
        let words = ketcare_core::patient::Intake::default().answers();
        let typed = [
            &i.family_history_alcohol_use_disorder,
            &i.prior_suicide_attempt,
            &i.prior_ect_or_tms,
            &i.comorbid_anxiety,
            &i.ptsd,
            &i.chronic_pain,
        ];
        Self {
            intake: words
                .iter()
                .zip(typed)
                .map(|((f, w, _), v)| (*f, *w, yn(v)))
                .collect(),
            mrn: i.mrn.clone(),
            given_name: i.given_name.clone(),
            family_name: i.family_name.clone(),
            date_of_birth: i.date_of_birth.clone(),
            sex: i.sex.clone(),
            weight_value: num(&i.weight_value),
            weight_unit: o(&i.weight_unit),
            weight_measured_on: o(&i.weight_measured_on),
            height_value: num(&i.height_value),
            height_unit: o(&i.height_unit),
            height_measured_on: o(&i.height_measured_on),
            indications: lines(&i.indications),
            psychiatric_history: o(&i.psychiatric_history),
            substance_use_history: o(&i.substance_use_history),
            medications: lines(&i.medications),
            allergies: lines(&i.allergies),
            phone: o(&i.phone),
            email: o(&i.email),
        }
    }

    /// The demographic fields of a record whose clinical part this reader may not see; the
    /// units stay at their defaults for a form that does not show measurements.
    fn from_demographics(d: &PatientDemographics) -> Self {
        Self {
            mrn: d.mrn.clone(),
            given_name: d.given_name.clone(),
            family_name: d.family_name.clone(),
            date_of_birth: d.date_of_birth.to_string(),
            sex: d.sex.as_str().to_owned(),
            weight_unit: "kg".into(),
            height_unit: "cm".into(),
            phone: d.phone.clone(),
            email: d.email.clone(),
            ..Default::default()
        }
    }

    fn from_patient(p: &NewPatient) -> Self {
        Self {
            mrn: p.mrn.clone(),
            given_name: p.given_name.clone(),
            family_name: p.family_name.clone(),
            date_of_birth: p.date_of_birth.to_string(),
            sex: p.sex.as_str().to_owned(),
            weight_value: p
                .weight
                .map(|w| trim_float(w.value.kg()))
                .unwrap_or_default(),
            weight_unit: "kg".into(),
            weight_measured_on: p
                .weight
                .map(|w| w.measured_on.to_string())
                .unwrap_or_default(),
            height_value: p
                .height
                .map(|h| trim_float(h.value.cm()))
                .unwrap_or_default(),
            height_unit: "cm".into(),
            height_measured_on: p
                .height
                .map(|h| h.measured_on.to_string())
                .unwrap_or_default(),
            indications: p.indications.join("\n"),
            psychiatric_history: p.psychiatric_history.clone(),
            substance_use_history: p.substance_use_history.clone(),
            medications: p.medications.join("\n"),
            allergies: p.allergies.join("\n"),
            phone: p.phone.clone(),
            email: p.email.clone(),
            intake: intake_values(p.intake.answers()),
        }
    }
}

#[derive(Template)]
#[template(path = "patient_form.html")]
pub struct PatientFormPage {
    nav: Option<Nav>,
    title: String,
    action: String,
    cancel: String,
    v: PatientFormValues,
    errors: FieldErrors,
    sexes: Vec<&'static str>,
    /// Whether the form shows the clinical part (measurements and history): not when a reader
    /// who may not see it (a scheduler) edits the record, whose edit keeps that part as stored.
    clinical: bool,
}

impl PatientFormPage {
    fn err(&self, field: &str) -> String {
        self.errors.get(field).unwrap_or("").to_owned()
    }
}

fn sexes() -> Vec<&'static str> {
    Sex::ALL.iter().map(|s| s.as_str()).collect()
}

pub async fn new_patient_form(p: Principal) -> Response {
    render_html(&PatientFormPage {
        nav: Nav::of(&p),
        title: "New patient".into(),
        action: "/patients".into(),
        cancel: "/patients".into(),
        v: PatientFormValues {
            weight_unit: "kg".into(),
            height_unit: "cm".into(),
            intake: intake_values(ketcare_core::patient::Intake::default().answers()),
            ..Default::default()
        },
        errors: FieldErrors::new(),
        sexes: sexes(),
        clinical: true,
    })
}

fn refused_form(
    p: &Principal,
    title: &str,
    action: String,
    cancel: String,
    input: &PatientInput,
    errors: FieldErrors,
    clinical: bool,
) -> Response {
    render_with(
        StatusCode::UNPROCESSABLE_ENTITY,
        &PatientFormPage {
            nav: Nav::of(p),
            title: title.into(),
            action,
            cancel,
            v: PatientFormValues::from_input(input),
            errors,
            sexes: sexes(),
            clinical,
        },
    )
}

pub async fn create_patient(
    State(s): State<AppState>,
    p: Principal,
    FormBody(input): FormBody<PatientInput>,
) -> Result<Response, PageError> {
    let record = match ketcare_app::patients::parse(&s.library(), &input, s.today()) {
        Ok(r) => r,
        Err(errors) => {
            return Ok(refused_form(
                &p,
                "New patient",
                "/patients".into(),
                "/patients".into(),
                &input,
                errors,
                true,
            ));
        }
    };
    match s.store.create_patient(&p.actor, &record).await {
        Ok(created) => Ok(Redirect::to(&format!("/patients/{}", created.id)).into_response()),
        Err(ketcare_store::StoreError::Invalid(errors)) => Ok(refused_form(
            &p,
            "New patient",
            "/patients".into(),
            "/patients".into(),
            &input,
            errors,
            true,
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "patient.html")]
pub struct PatientPage {
    nav: Option<Nav>,
    patient: Patient,
    age: String,
    band: String,
    bands_version: u32,
    minor: bool,
    weight: String,
    height: String,
    can_write: bool,
    gf: GuardianForm,
    can_screen: bool,
    can_order: bool,
    /// The chart's history: (link, what, when), newest first.
    screenings: Vec<(String, String, String)>,
    orders: Vec<(String, String, String)>,
    sessions: Vec<(String, String, String)>,
    safety_alerts: Vec<ketcare_store::measures::SafetyAlert>,
    /// The patient header (name, MRN, age, weight, allergies, alerts, consent) and tabs.
    header: Option<crate::chart::PatientHeader>,
    /// Integration after each dose (None: not read).
    therapy: Option<ketcare_app::therapy::TherapyOverview>,
    /// The care plan (clinicians; `None` for other roles or when it cannot be read).
    care_plan: Option<ketcare_app::care_plan::PlanView>,
}

/// The add-a-guardian form of a patient's page, as the user left it.
pub struct GuardianForm {
    input: GuardianInput,
    errors: FieldErrors,
    relationships: Vec<&'static str>,
}

impl GuardianForm {
    fn new(input: GuardianInput, errors: FieldErrors) -> Self {
        Self {
            input,
            errors,
            relationships: Relationship::ALL.iter().map(|r| r.as_str()).collect(),
        }
    }

    fn err(&self, field: &str) -> String {
        self.errors.get(field).unwrap_or("").to_owned()
    }
}

fn patient_page(
    s: &AppState,
    p: &Principal,
    patient: Patient,
    guardian: GuardianInput,
    guardian_errors: FieldErrors,
) -> PatientPage {
    let day = patient.record.day_of_care(s.today(), &s.bands);
    PatientPage {
        nav: Nav::of(p),
        age: day.map(|d| d.age.to_string()).unwrap_or_else(|| "—".into()),
        band: day
            .map(|d| d.band.to_string())
            .unwrap_or_else(|| "—".into()),
        bands_version: s.bands.version,
        minor: day.is_some_and(|d| d.band.is_minor()),
        weight: patient
            .record
            .weight
            .map(|w| format!("{} (measured {})", w.value, w.measured_on))
            .unwrap_or_else(|| "not recorded".into()),
        height: patient
            .record
            .height
            .map(|h| format!("{} (measured {})", h.value, h.measured_on))
            .unwrap_or_else(|| "not recorded".into()),
        can_write: p.user.role.allows(Permission::PatientWrite),
        patient,
        gf: GuardianForm::new(guardian, guardian_errors),
        can_screen: p.user.role.allows(Permission::Screen),
        can_order: p.user.role.allows(Permission::OrderDose),
        screenings: Vec::new(),
        orders: Vec::new(),
        sessions: Vec::new(),
        safety_alerts: Vec::new(),
        header: None,
        therapy: None,
        care_plan: None,
    }
}

/// A patient's page for a role that sees demographics only (minimum necessary): identity,
/// contact and guardians.
#[derive(Template)]
#[template(path = "patient_demographics.html")]
pub struct DemographicsPage {
    nav: Option<Nav>,
    patient: PatientDemographics,
    age: String,
    band: String,
    bands_version: u32,
    minor: bool,
    can_write: bool,
    gf: GuardianForm,
}

fn demographics_page(
    s: &AppState,
    p: &Principal,
    patient: PatientDemographics,
    guardian: GuardianInput,
    guardian_errors: FieldErrors,
) -> DemographicsPage {
    let day = patient.day_of_care(s.today(), &s.bands);
    DemographicsPage {
        nav: Nav::of(p),
        age: day.map(|d| d.age.to_string()).unwrap_or_else(|| "—".into()),
        band: day
            .map(|d| d.band.to_string())
            .unwrap_or_else(|| "—".into()),
        bands_version: s.bands.version,
        minor: day.is_some_and(|d| d.band.is_minor()),
        can_write: p.user.role.allows(Permission::PatientWrite),
        patient,
        gf: GuardianForm::new(guardian, guardian_errors),
    }
}

pub async fn patient(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    let patient = match s.store.patient_view(&p.actor, PatientId::new(id)).await? {
        VisiblePatient::Full(patient) => patient,
        VisiblePatient::Demographics(d) => {
            return Ok(render_html(&demographics_page(
                &s,
                &p,
                d,
                GuardianInput::default(),
                FieldErrors::new(),
            )));
        }
    };
    let mut page = patient_page(
        &s,
        &p,
        patient,
        GuardianInput::default(),
        FieldErrors::new(),
    );
    // Every safety alert, open and closed, with its follow-up: the chart keeps their history.
    page.safety_alerts = s.store.patient_alerts(&p.actor, PatientId::new(id)).await?;
    let links = crate::clinical_pages::patient_clinical_links(&s, &p, PatientId::new(id)).await?;
    page.screenings = links.screenings;
    page.orders = links.orders;
    page.sessions = links.sessions;
    page.therapy =
        ketcare_app::therapy::overview(s.store.as_ref(), &p.actor, PatientId::new(id), s.today())
            .await
            .ok();
    page.care_plan =
        ketcare_app::care_plan::plan(s.store.as_ref(), &p.actor, PatientId::new(id), s.today())
            .await
            .ok();
    page.header = crate::chart::header(&s, &p, PatientId::new(id), "chart")
        .await
        .ok();
    Ok(render_html(&page))
}

pub async fn edit_patient_form(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    let (title, v, clinical) = match s.store.patient_view(&p.actor, PatientId::new(id)).await? {
        VisiblePatient::Full(patient) => (
            patient.record.full_name(),
            PatientFormValues::from_patient(&patient.record),
            true,
        ),
        VisiblePatient::Demographics(d) => (
            format!("{} {}", d.given_name, d.family_name),
            PatientFormValues::from_demographics(&d),
            false,
        ),
    };
    Ok(render_html(&PatientFormPage {
        nav: Nav::of(&p),
        title: format!("Edit {title}"),
        action: format!("/patients/{id}"),
        cancel: format!("/patients/{id}"),
        v,
        errors: FieldErrors::new(),
        sexes: sexes(),
        clinical,
    }))
}

pub async fn update_patient(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    FormBody(input): FormBody<PatientInput>,
) -> Result<Response, PageError> {
    let (action, cancel) = (format!("/patients/{id}"), format!("/patients/{id}"));
    let clinical = p.actor.may(Permission::ClinicalRead);
    let record = match ketcare_app::patients::parse(&s.library(), &input, s.today()) {
        Ok(r) => r,
        Err(errors) => {
            return Ok(refused_form(
                &p,
                "Edit patient",
                action,
                cancel,
                &input,
                errors,
                clinical,
            ));
        }
    };
    match s
        .store
        .update_patient(&p.actor, PatientId::new(id), &record)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}")).into_response()),
        Err(ketcare_store::StoreError::Invalid(errors)) => Ok(refused_form(
            &p,
            "Edit patient",
            action,
            cancel,
            &input,
            errors,
            clinical,
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn add_guardian(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    FormBody(input): FormBody<GuardianInput>,
) -> Result<Response, PageError> {
    let pid = PatientId::new(id);
    match NewGuardian::parse(&input) {
        Ok(g) => {
            s.store.add_guardian(&p.actor, pid, &g).await?;
            Ok(Redirect::to(&format!("/patients/{id}")).into_response())
        }
        Err(errors) => match s.store.patient_view(&p.actor, pid).await? {
            VisiblePatient::Full(patient) => {
                let mut page = patient_page(&s, &p, patient, input, errors);
                page.header = crate::chart::header(&s, &p, pid, "chart").await.ok();
                Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
            }
            VisiblePatient::Demographics(d) => Ok(render_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                &demographics_page(&s, &p, d, input, errors),
            )),
        },
    }
}

pub async fn remove_guardian(
    State(s): State<AppState>,
    p: Principal,
    PagePath((id, gid)): PagePath<(i64, i64)>,
) -> Result<Response, PageError> {
    s.store
        .remove_guardian(&p.actor, PatientId::new(id), GuardianId::new(gid))
        .await?;
    Ok(Redirect::to(&format!("/patients/{id}")).into_response())
}

// ---- Administration -----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    nav: Option<Nav>,
    records: Vec<AuditRecord>,
    username: String,
    action: String,
    patient_id: String,
    intact: bool,
    total: u64,
    broken: String,
    older: String,
}

#[derive(Deserialize, Default)]
pub struct AuditForm {
    username: Option<String>,
    action: Option<String>,
    patient_id: Option<String>,
    before: Option<i64>,
}

pub async fn audit(
    State(s): State<AppState>,
    p: Principal,
    Query(f): Query<AuditForm>,
) -> Result<Response, PageError> {
    let patient_id = match f
        .patient_id
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| AppError::invalid("patient_id", "a patient id is a number"))?,
        ),
    };
    let q = AuditQuery {
        username: f.username.clone(),
        action: f.action.clone(),
        patient_id,
        before: f.before,
        limit: Some(100),
    };
    let filter = q.filter()?;
    let records = s.store.audit_records(&p.actor, &filter).await?;
    s.store
        .audit(&p.actor, AuditEvent::new("audit.read", patient_id, "page"))
        .await?;
    let v = s.store.verify_audit().await?;
    let older = match records.last() {
        Some(last) if records.len() == 100 => serde_urlencoded::to_string([
            ("username", f.username.clone().unwrap_or_default()),
            ("action", f.action.clone().unwrap_or_default()),
            ("patient_id", f.patient_id.clone().unwrap_or_default()),
            ("before", last.seq.to_string()),
        ])
        .map(|q| format!("/audit?{q}"))
        .unwrap_or_default(),
        _ => String::new(),
    };
    Ok(render_html(&AuditPage {
        nav: Nav::of(&p),
        records,
        username: f.username.unwrap_or_default(),
        action: f.action.unwrap_or_default(),
        patient_id: f.patient_id.unwrap_or_default(),
        intact: v.broken.is_none(),
        total: v.records,
        broken: v.broken.map(|b| b.to_string()).unwrap_or_default(),
        older,
    }))
}

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    nav: Option<Nav>,
    users: Vec<UserRow>,
    roles: Vec<&'static str>,
    /// The signed-in administrator (who cannot disable themselves or change their own role).
    me: i64,
    message: String,
    error: String,
    /// Every site of the organisation.
    sites: Vec<ketcare_store::Site>,
}

pub struct UserRow {
    id: i64,
    username: String,
    name: String,
    role: &'static str,
    /// In words: active, disabled, must change password, witness sign-off locked.
    status: String,
    disabled: bool,
    second_factor: bool,
    /// Works at every site.
    all_sites: bool,
    /// The sites they work at (when not every site).
    sites: Vec<i64>,
    /// Their own role at a listed site where it is not the account's.
    site_roles: Vec<(i64, Role)>,
}

impl UserRow {
    /// Whether the row's account is listed at `site` (not counting "every site").
    pub fn works_at(&self, site: &i64) -> bool {
        !self.all_sites && self.sites.contains(site)
    }

    /// Whether the account holds `role` at `site` as a role of that site's own.
    pub fn is_role_at(&self, site: &i64, role: &str) -> bool {
        self.site_roles
            .iter()
            .any(|(s, r)| s == site && r.as_str() == role)
    }
}

async fn users_page(
    s: &AppState,
    p: &Principal,
    message: String,
    error: String,
    status: StatusCode,
) -> Result<Response, AppError> {
    let now = s.now();
    let listed = s.store.list_users(&p.actor).await?;
    let mut scopes = Vec::with_capacity(listed.len());
    for u in &listed {
        scopes.push((
            s.store.user_sites(&p.actor, u.id).await?,
            s.store.user_site_roles(&p.actor, u.id).await?,
        ));
    }
    let users = listed
        .into_iter()
        .zip(scopes)
        .map(|(u, (scope, site_roles))| {
            let mut status = Vec::new();
            if u.disabled {
                status.push("disabled");
            }
            if u.must_change_password {
                status.push("must choose a new password");
            }
            if u.locked_until.is_some_and(|t| t > now) {
                status.push("witness sign-off locked");
            }
            if status.is_empty() {
                status.push("active");
            }
            if u.second_factor {
                status.push("second factor on");
            }
            UserRow {
                id: u.id.get(),
                status: status.join("; "),
                disabled: u.disabled,
                second_factor: u.second_factor,
                username: u.username,
                name: u.display_name,
                role: u.role.as_str(),
                all_sites: scope == ketcare_store::SiteScope::All,
                sites: match scope {
                    ketcare_store::SiteScope::All => Vec::new(),
                    ketcare_store::SiteScope::Only(v) => v,
                },
                site_roles,
            }
        })
        .collect();
    Ok(render_with(
        status,
        &UsersPage {
            nav: Nav::of(p),
            users,
            roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
            me: p.user.id.get(),
            message,
            error,
            sites: s.store.sites(&p.actor).await?,
        },
    ))
}

pub async fn users(State(s): State<AppState>, p: Principal) -> Result<Response, PageError> {
    Ok(users_page(&s, &p, String::new(), String::new(), StatusCode::OK).await?)
}

#[derive(Deserialize, Default)]
pub struct AccountForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    role: String,
}

/// The users page again, saying what an administrator's change did or why it was refused.
async fn users_outcome(
    s: &AppState,
    p: &Principal,
    done: Result<String, ketcare_store::StoreError>,
) -> Result<Response, PageError> {
    Ok(match done {
        Ok(message) => users_page(s, p, message, String::new(), StatusCode::OK).await?,
        Err(e) => {
            let e = AppError::from(e);
            users_page(s, p, String::new(), e.to_string(), e.status()).await?
        }
    })
}

/// An administrator's new site, from the users page.
/// A site's fields from the users page's forms.
fn site_form(body: &axum::body::Bytes) -> Result<ketcare_store::NewSite, AppError> {
    let f = crate::clinical_pages::form_pairs(body)?;
    let field = |k| crate::clinical_pages::field(&f, k).to_owned();
    Ok(ketcare_store::NewSite {
        name: field("name"),
        address: field("address"),
        time_zone: field("time_zone"),
        dea_registration: field("dea_registration"),
    })
}

pub async fn create_site(
    State(s): State<AppState>,
    p: Principal,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let done = s
        .store
        .create_site(&p.actor, &site_form(&body)?)
        .await
        .map(|site| format!("Site {} added (site {})", site.name, site.id));
    users_outcome(&s, &p, done).await
}

/// Changes a site (its registration, name, address, time zone) from the users page.
pub async fn update_site(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let done = s
        .store
        .update_site(&p.actor, id, &site_form(&body)?)
        .await
        .map(|site| format!("Site {} saved (site {})", site.name, site.id));
    users_outcome(&s, &p, done).await
}

/// Sets where an account works, from the users page: every site, or the sites ticked.
pub async fn user_sites(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let f = crate::clinical_pages::form_pairs(&body)?;
    let field = |k: &str| crate::clinical_pages::field(&f, k);
    // The role chosen beside each ticked site (none chosen: the account's own there).
    let mut roles = Vec::new();
    let scope = if field("all") == "1" {
        ketcare_store::SiteScope::All
    } else {
        let mut sites = Vec::new();
        for (_, v) in f.iter().filter(|(k, _)| k == "site") {
            let site: i64 = v
                .trim()
                .parse()
                .map_err(|_| AppError::invalid("sites", format!("`{v}` is not a site")))?;
            let named = field(&format!("role_{site}"));
            if !named.is_empty() {
                let role = Role::parse(named).ok_or_else(|| {
                    AppError::invalid(&format!("role_{site}"), format!("`{named}` is not a role"))
                })?;
                roles.push((site, role));
            }
            sites.push(site);
        }
        // The form lists the administrator's own sites only: the account's other sites, and
        // its roles there, are kept as they are rather than dropped unseen.
        let user = ketcare_core::UserId::new(id);
        if let ketcare_store::SiteScope::Only(before) = s.store.user_sites(&p.actor, user).await? {
            let unseen = |site: &i64| !p.sites.iter().any(|(mine, _)| mine == site);
            sites.extend(before.iter().copied().filter(unseen));
            roles.extend(
                s.store
                    .user_site_roles(&p.actor, user)
                    .await?
                    .into_iter()
                    .filter(|(site, _)| unseen(site)),
            );
        }
        ketcare_store::SiteScope::Only(sites)
    };
    let done = s
        .store
        .assign_user_sites(&p.actor, ketcare_core::UserId::new(id), &scope, &roles)
        .await
        .map(|()| format!("Sites of user {id} saved"));
    users_outcome(&s, &p, done).await
}

/// An administrator's action on an account, from the users page. The page is shown again with
/// what was done (a temporary password is shown this once and never stored in clear).
pub async fn account_action(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    FormBody(form): FormBody<AccountForm>,
) -> Result<Response, PageError> {
    let id = ketcare_core::UserId::new(id);
    let done = async {
        match ketcare_app::accounts::parse_change(&form.action, &form.role)? {
            Some(change) => {
                let u =
                    ketcare_app::accounts::change(s.store.as_ref(), &p.actor, id, &change).await?;
                if change == ketcare_store::AccountChange::Unlock {
                    s.throttle.clear_account(&u.username);
                }
                Ok::<_, ketcare_app::Error>(format!(
                    "{}: {}",
                    u.username,
                    crate::fmt::words(&form.action)
                ))
            }
            None => {
                let (u, temporary) =
                    ketcare_app::accounts::reset_password(s.store.as_ref(), &p.actor, id).await?;
                s.throttle.clear_account(&u.username);
                Ok(format!(
                    "Temporary password for {}: {temporary} — give it to them in person; it is \
                     shown only now, and they must choose their own at their next sign-in.",
                    u.username
                ))
            }
        }
    }
    .await;
    Ok(match done {
        Ok(m) => users_page(&s, &p, m, String::new(), StatusCode::OK).await?,
        Err(e) => {
            let e = AppError::from(e);
            let text = crate::clinical_pages::invalid_text(&e);
            users_page(
                &s,
                &p,
                String::new(),
                text,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await?
        }
    })
}

#[derive(Template)]
#[template(path = "account_password.html")]
pub struct PasswordPage {
    nav: Option<Nav>,
    required: bool,
    error: String,
    field: String,
}

/// Any signed-in user chooses a new password (and must, after an administrator's reset).
pub async fn password_form(p: Principal) -> Response {
    render_html(&PasswordPage {
        nav: Nav::of(&p),
        required: p.user.must_change_password,
        error: String::new(),
        field: String::new(),
    })
}

#[derive(Deserialize, Default)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    repeat: String,
}

pub async fn password_change(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Principal,
    FormBody(form): FormBody<PasswordForm>,
) -> Result<Response, PageError> {
    match ketcare_app::accounts::set_own_password(
        s.store.as_ref(),
        &p.actor,
        &form.current,
        &form.new,
        &form.repeat,
    )
    .await
    {
        Ok(_) => {
            // Every session of the account ended with the change, this one too: sign in anew.
            let mut r = Redirect::to("/login").into_response();
            let c = auth::set_cookie(SESSION_COOKIE, "", 0, auth::is_tls(&s, &headers));
            if let Ok(v) = c.parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(r)
        }
        Err(e) => {
            let e = AppError::from(e);
            let field = e
                .body()
                .fields
                .first()
                .map(|f| f.field.clone())
                .unwrap_or_default();
            Ok(render_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                &PasswordPage {
                    nav: Nav::of(&p),
                    required: p.user.must_change_password,
                    error: crate::clinical_pages::invalid_text(&e),
                    field,
                },
            ))
        }
    }
}

// ---- Second factor --------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "account_second_factor.html")]
pub struct SecondFactorPage {
    nav: Option<Nav>,
    /// The site requires one of this account, which has none: nothing else opens until it does.
    required: bool,
    on: bool,
    recovery_codes_left: i64,
    /// A set-up under way: the secret as base32 text and as an `otpauth://` URI.
    secret: String,
    uri: String,
    /// The URI as a QR code: an SVG document ketcare drew (no text of the user's in it).
    qr_svg: String,
    /// Shown once, right after the second factor was turned on.
    recovery_codes: Vec<String>,
    message: String,
    error: String,
}

async fn second_factor_page(
    s: &AppState,
    p: &Principal,
    recovery_codes: Vec<String>,
    message: String,
    error: String,
    status: StatusCode,
) -> Result<Response, AppError> {
    let store = s.store.as_ref();
    let st = ketcare_app::second_factor::status(store, &p.actor).await?;
    let mut user = store.user_by_id(p.user.id).await?.unwrap_or(p.user.clone());
    // Required as the guard decides it: for the role acted in now (the site's, where the
    // account holds another there).
    user.role = p.user.role;
    let required = ketcare_app::second_factor::must_enrol(store, &user).await?;
    let (secret, uri, qr_svg) = st
        .pending
        .map(|e| {
            (
                e.secret.expose().to_owned(),
                e.uri.expose().to_owned(),
                e.qr_svg.expose().to_owned(),
            )
        })
        .unwrap_or_default();
    Ok(render_with(
        status,
        &SecondFactorPage {
            nav: Nav::of(p),
            required,
            on: st.on,
            recovery_codes_left: st.recovery_codes_left,
            secret,
            uri,
            qr_svg,
            recovery_codes,
            message,
            error,
        },
    ))
}

/// The signed-in user's second factor: set it up, see how many recovery codes are left, turn it
/// off with a current code.
pub async fn second_factor_form(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Response, PageError> {
    Ok(second_factor_page(
        &s,
        &p,
        Vec::new(),
        String::new(),
        String::new(),
        StatusCode::OK,
    )
    .await?)
}

#[derive(Deserialize, Default)]
pub struct SecondFactorForm {
    /// begin, confirm or off.
    #[serde(default)]
    action: String,
    #[serde(default)]
    code: String,
}

pub async fn second_factor_action(
    State(s): State<AppState>,
    p: Principal,
    FormBody(form): FormBody<SecondFactorForm>,
) -> Result<Response, PageError> {
    use ketcare_app::second_factor as sf;
    let store = s.store.as_ref();
    let now = s.now();
    let done = match form.action.as_str() {
        "begin" => sf::begin(store, &p.actor).await.map(|_| {
            (
                Vec::new(),
                "Add this account to your authenticator app, then enter the code it shows.".into(),
            )
        }),
        "confirm" => sf::confirm(store, &p.actor, &form.code, now)
            .await
            .map(|(_, codes)| (codes, "Your second factor is on.".to_owned())),
        "off" => sf::turn_off(store, &p.actor, &form.code, now)
            .await
            .map(|_| (Vec::new(), "Your second factor is off.".to_owned())),
        other => Err(ketcare_app::Error::invalid(
            "action",
            format!("`{other}` is not a second-factor action; use begin, confirm or off"),
        )),
    };
    Ok(match done {
        Ok((codes, message)) => {
            second_factor_page(&s, &p, codes, message, String::new(), StatusCode::OK).await?
        }
        Err(e) => {
            let e = AppError::from(e);
            if matches!(e, AppError::Internal) {
                return Err(e.into());
            }
            let status = e.status();
            let text = crate::clinical_pages::invalid_text(&e);
            second_factor_page(&s, &p, Vec::new(), String::new(), text, status).await?
        }
    })
}
