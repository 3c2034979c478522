//! A test harness: the real router over a fresh database, a clock the test moves, and helpers
//! that sign in the way a browser does.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use ketcare_core::{Actor, AgeBands, Role};
use ketcare_store::testing::fresh_url;
use ketcare_store::{Backend, NewUser, Store, User};
use ketcare_web::password::{hash_password, new_api_token, token_hash};
use ketcare_web::{AppState, WebConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery";
/// 2026-11-22T12:00:00Z
pub const START: i64 = 1_795_348_800;

/// The registry's definitions as the tests set them: k = 1, the outcome window days 14–31, an
/// induction of at least one session within 28 days.
pub const REGISTRY_SETTINGS: [(&str, f64); 5] = [
    ("research.small_cell_patients", 1.0),
    ("research.response_window_from_days", 14.0),
    ("research.response_window_to_days", 31.0),
    ("research.induction_min_sessions", 1.0),
    ("research.induction_within_days", 28.0),
];

/// The site settings a session needs to run: the blood-pressure gate, the SpO2 alarm and the
/// vitals interval (test values; the reference leaves them to the site).
pub const SESSION_SETTINGS: [(&str, f64); 4] = [
    ("session.ketamine.bp_gate_systolic_mmhg", 140.0),
    ("session.ketamine.bp_gate_diastolic_mmhg", 90.0),
    ("session.alarm.spo2_low_percent", 92.0),
    ("session.alarm.vitals_interval_minutes", 30.0),
];

pub struct TestApp {
    pub router: Router,
    pub store: Arc<dyn Store>,
    /// The database's URL, for a second store on the same database (another server, a restart).
    pub url: String,
    pub now: Arc<AtomicI64>,
    pub config: WebConfig,
}

#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Session { cookie: String, csrf: String },
    Bearer(String),
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    /// The body as sent (binary downloads).
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
    /// Field names of a 422 JSON body.
    pub fn fields(&self) -> Vec<String> {
        self.json()["fields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f["field"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn new(backend: Backend) -> Self {
        Self::with_config(backend, Self::config()).await
    }

    pub fn config() -> WebConfig {
        // Tests fire requests far faster than any clinic: pacing is tested on its own.
        WebConfig {
            api_burst: 1e9,
            // The test clock jumps hours (observation times); idling is tested on its own.
            idle_minutes: 1_000_000,
            ..WebConfig::default()
        }
    }

    pub async fn with_config(backend: Backend, config: WebConfig) -> Self {
        Self::with_state(backend, config, |s| s).await
    }

    /// [`TestApp::new`] whose server checks SMS delivery receipts with `secret`.
    pub async fn with_sms_secret(backend: Backend, secret: &str) -> Self {
        let config = Self::config();
        let secret = ketcare_store::SecretText::new(secret);
        Self::with_state(backend, config, |s| s.with_sms_secret(Some(secret))).await
    }

    /// A test app whose server state `tweak` adjusts before the router is built.
    pub async fn with_state(
        backend: Backend,
        config: WebConfig,
        tweak: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        Self::with_store_options(backend, config, &Default::default(), tweak).await
    }

    /// [`TestApp::with_state`] on a store opened with `options` (a small vitals queue).
    pub async fn with_store_options(
        backend: Backend,
        config: WebConfig,
        options: &ketcare_store::StoreOptions,
        tweak: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let url = fresh_url(backend).await;
        let store = ketcare_store::open_with(&url, options).await.unwrap();
        let now = Arc::new(AtomicI64::new(START));
        let mut state = AppState::new(
            store.clone(),
            config.clone(),
            AgeBands::builtin().unwrap(),
            ketcare_clinical::Library::builtin().unwrap(),
        );
        let clock = now.clone();
        state.clock = Arc::new(move || clock.load(Ordering::SeqCst));
        Self {
            router: ketcare_web::router(tweak(state)),
            store,
            url,
            now,
            config,
        }
    }

    pub fn advance(&self, seconds: i64) {
        self.now.fetch_add(seconds, Ordering::SeqCst);
    }

    /// A new site named `name` with DEA registration `dea` (empty: none on record); its id.
    pub async fn add_site(&self, name: &str, dea: &str) -> i64 {
        self.store
            .create_site(
                &Actor::system(Role::Administrator),
                &ketcare_store::NewSite {
                    name: name.into(),
                    dea_registration: dea.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id
    }

    pub async fn add_user(&self, username: &str, role: Role) -> User {
        self.store
            .create_user(
                &Actor::system(Role::Administrator),
                &NewUser {
                    username: username.into(),
                    display_name: format!("{username} (test)"),
                    role,
                    password_hash: hash_password(PASSWORD).unwrap(),
                },
            )
            .await
            .unwrap()
    }

    pub async fn bearer(&self, username: &str) -> Auth {
        let user = self
            .store
            .user_by_username(username)
            .await
            .unwrap()
            .unwrap();
        let secret = new_api_token();
        self.store
            .create_api_token(
                &Actor::system(Role::Administrator),
                user.id,
                &token_hash(&secret),
                "test",
                None,
            )
            .await
            .unwrap();
        Auth::Bearer(secret)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        content_type: Option<&str>,
        body: String,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(path);
        match auth {
            Auth::None => {}
            Auth::Session { cookie, .. } => b = b.header(header::COOKIE, cookie.as_str()),
            Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
        }
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let resp = self
            .router
            .clone()
            .oneshot(b.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        // An event stream never ends: its headers are the answer.
        let streaming = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let bytes = if streaming {
            Default::default()
        } else {
            resp.into_body().collect().await.unwrap().to_bytes()
        };
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes: bytes.to_vec(),
        }
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> Reply {
        self.send(Method::GET, path, auth, None, String::new(), &[])
            .await
    }

    /// Posts a form the way the page does: with the session's CSRF token added.
    /// A form posted without signing in (a patient's link).
    pub async fn post_public<K: serde::Serialize, V: serde::Serialize>(
        &self,
        path: &str,
        fields: &[(K, V)],
    ) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(
            Method::POST,
            path,
            &Auth::None,
            Some("application/x-www-form-urlencoded"),
            body,
            &[],
        )
        .await
    }

    pub async fn post_form(&self, path: &str, auth: &Auth, fields: &[(&str, &str)]) -> Reply {
        let mut pairs: Vec<(&str, &str)> = fields.to_vec();
        if let Auth::Session { csrf, .. } = auth {
            pairs.push(("csrf_token", csrf.as_str()));
        }
        let body = serde_urlencoded::to_string(&pairs).unwrap();
        self.send(
            Method::POST,
            path,
            auth,
            Some("application/x-www-form-urlencoded"),
            body,
            &[],
        )
        .await
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        value: &serde_json::Value,
    ) -> Reply {
        let extra: Vec<(&str, &str)> = match auth {
            Auth::Session { csrf, .. } => vec![("x-csrf-token", csrf.as_str())],
            _ => vec![],
        };
        self.send(
            method,
            path,
            auth,
            Some("application/json"),
            value.to_string(),
            &extra,
        )
        .await
    }

    /// Signs in through the login form; returns the reply to the POST.
    pub async fn try_login(&self, username: &str, password: &str) -> (Reply, Auth) {
        self.try_login_to(username, password, "/").await
    }

    /// Signs in and reads the form token from `page` (the page the account may open first).
    pub async fn try_login_to(&self, username: &str, password: &str, page: &str) -> (Reply, Auth) {
        let form = self.get("/login", &Auth::None).await;
        assert_eq!(form.status, StatusCode::OK);
        let login_cookie = set_cookie(&form.headers, "ketcare_login_csrf")
            .expect("login form sets its CSRF cookie");
        let csrf = hidden_csrf(&form.body);
        let body = serde_urlencoded::to_string([
            ("username", username),
            ("password", password),
            ("csrf_token", csrf.as_str()),
            ("next", "/"),
        ])
        .unwrap();
        let r = self
            .send(
                Method::POST,
                "/login",
                &Auth::None,
                Some("application/x-www-form-urlencoded"),
                body,
                &[("cookie", &format!("ketcare_login_csrf={login_cookie}"))],
            )
            .await;
        let Some(session) = set_cookie(&r.headers, "ketcare_session").filter(|v| !v.is_empty())
        else {
            return (r, Auth::None);
        };
        let cookie = format!("ketcare_session={session}");
        let home = self
            .get(
                page,
                &Auth::Session {
                    cookie: cookie.clone(),
                    csrf: String::new(),
                },
            )
            .await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        let csrf = hidden_csrf(&home.body);
        (r, Auth::Session { cookie, csrf })
    }

    pub async fn login(&self, username: &str) -> Auth {
        let (r, auth) = self.try_login(username, PASSWORD).await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "login of {username}: {}",
            r.body
        );
        auth
    }
}

/// The site settings a test clinic chooses for the adult IV TRD protocol (values are the test
/// clinic's own policy, as any site's would be; they are not clinical defaults).
pub const TEST_SITE_SETTINGS: [(&str, f64); 7] = [
    ("eligibility.ketamine_bp_systolic_max_mmhg", 160.0),
    ("eligibility.ketamine_bp_diastolic_max_mmhg", 100.0),
    ("eligibility.trd_adequate_trial_min_weeks", 6.0),
    ("observation.ketamine_psychiatric_minutes", 120.0),
    ("rounding.dose_mg_increment", 1.0),
    ("rounding.pump_ml_per_h_increment", 0.1),
    ("rounding.syringe_ml_increment", 0.1),
];

impl TestApp {
    pub async fn set_test_site_settings(&self) {
        self.set_test_site_settings_with(&[]).await;
    }

    /// [`TEST_SITE_SETTINGS`] with further keys set (or overridden), saved as the administrator.
    pub async fn set_test_site_settings_with(&self, extra: &[(&str, f64)]) {
        let mut values = serde_json::Map::new();
        for (k, v) in TEST_SITE_SETTINGS.iter().chain(extra) {
            values.insert((*k).into(), (*v).into());
        }
        let body = serde_json::json!({ "values": values }).to_string();
        self.store
            .save_site_settings(
                &Actor::system(Role::Administrator),
                &body,
                "test clinic policy",
            )
            .await
            .unwrap();
    }
}

impl TestApp {
    /// Orders `body` for patient `pid` as `doc`, verifies it as `pharm` and schedules it in
    /// `chair` as `nurse`, asserting each step; returns (order id, session id).
    pub async fn verified_order_session(
        &self,
        pid: &str,
        (doc, pharm, nurse): (&Auth, &Auth, &Auth),
        body: &serde_json::Value,
        chair: &str,
    ) -> (i64, i64) {
        let order = self
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/orders"),
                doc,
                body,
            )
            .await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        let oid = order.json()["id"].as_i64().unwrap();
        let v = self
            .json(
                Method::POST,
                &format!("/api/v1/orders/{oid}/verify"),
                pharm,
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(v.status, StatusCode::OK, "{}", v.body);
        let s = self
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/sessions"),
                nurse,
                &serde_json::json!({"order_id": oid, "chair": chair}),
            )
            .await;
        assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
        (oid, s.json()["id"].as_i64().unwrap())
    }

    /// Orders a dose on the page as a prescriber does: "Calculate and check" shows the
    /// calculation, then "Sign this order" sends the preview's fingerprint back. A refused
    /// preview is returned as it is.
    pub async fn sign_dose_on_page(
        &self,
        path: &str,
        auth: &Auth,
        fields: &[(&str, &str)],
    ) -> Reply {
        let mut preview: Vec<(&str, &str)> = fields.to_vec();
        preview.push(("intent", "preview"));
        let shown = self.post_form(path, auth, &preview).await;
        if shown.status != StatusCode::OK {
            return shown;
        }
        let marker = "name=\"preview_digest\" value=\"";
        let start = shown
            .body
            .find(marker)
            .expect("a preview carries its fingerprint")
            + marker.len();
        let digest = shown.body[start..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut sign: Vec<(&str, &str)> = fields.to_vec();
        sign.push(("intent", "sign"));
        sign.push(("preview_digest", &digest));
        self.post_form(path, auth, &sign).await
    }

    /// Adds a chair named `chair` (on the scheduler's page) and books the twice-weekly IV
    /// induction course (six sessions) in it for `pid` from tomorrow at 10:00 (the clinic's
    /// local time) with nurse `nurse_id`, through the API; returns the bookings' ids.
    pub async fn book_course_tomorrow(
        &self,
        (sched_page, sched): (&Auth, &Auth),
        pid: i64,
        nurse_id: i64,
        chair: &str,
    ) -> Vec<i64> {
        let r = self
            .post_form("/schedule/chairs", sched_page, &[("name", chair)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let chair_id = self
            .store
            .chairs(&ketcare_core::Actor::system(Role::Scheduler))
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name == chair)
            .unwrap()
            .id;
        let tomorrow = jiff::Timestamp::from_second(START + 86_400)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::system())
            .date();
        let r = self
            .json(
                Method::POST,
                "/api/v1/schedule/courses",
                sched,
                &serde_json::json!({"patient_id": pid, "template_id": "iv-ketamine-induction-6-twice-weekly",
                        "first_day": tomorrow.to_string(), "time": "10:00", "chair_id": chair_id,
                        "nurse_id": nurse_id}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.json()["bookings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_i64().unwrap())
            .collect()
    }

    /// Sends each session command through the API as `auth`, expecting each to be applied.
    pub async fn commands(&self, sid: i64, auth: &Auth, commands: &[serde_json::Value]) {
        for c in commands {
            let r = self
                .json(
                    Method::POST,
                    &format!("/api/v1/sessions/{sid}/commands"),
                    auth,
                    c,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{c}: {}", r.body);
        }
    }

    /// A consent on file for `protocol` (its current version), signed a day before the test
    /// clock.
    pub async fn consent_for(&self, pid: &str, protocol: &str) {
        let version = ketcare_clinical::Library::builtin()
            .unwrap()
            .get(protocol)
            .unwrap()
            .version;
        ketcare_store::testing::consent_on_file(
            self.store.as_ref(),
            ketcare_core::PatientId::new(pid.parse().unwrap()),
            protocol,
            version,
            jiff::Timestamp::from_second(self.now.load(Ordering::SeqCst) - 86_400).unwrap(),
        )
        .await;
    }
}

pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
}

pub fn cookie_attributes(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or("")
        .to_owned()
}

pub fn hidden_csrf(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html
        .find(marker)
        .map(|i| i + marker.len())
        .expect("page has a CSRF field");
    html[start..].split('"').next().unwrap().to_owned()
}

/// An adult's intake form (born 1986-05-01: 40 years old on the test clock's date; 70 kg).
pub fn adult_form() -> Vec<(&'static str, &'static str)> {
    let mut form = minor_form();
    form.retain(|(k, _)| !matches!(*k, "date_of_birth" | "mrn" | "weight_value" | "given_name"));
    form.extend([
        ("mrn", "T-200"),
        ("given_name", "Sam"),
        ("date_of_birth", "1986-05-01"),
        ("weight_value", "70"),
    ]);
    form
}

/// A minor's intake form (born 2012-05-01: 14 years old on the test clock's date).
pub fn minor_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("mrn", "T-100"),
        ("given_name", "Robin"),
        ("family_name", "Quill"),
        ("date_of_birth", "2012-05-01"),
        ("sex", "female"),
        ("weight_value", "41.5"),
        ("weight_unit", "kg"),
        ("weight_measured_on", "2026-11-20"),
        ("height_value", "152"),
        ("height_unit", "cm"),
        ("height_measured_on", "2026-11-20"),
        ("indications", "Treatment-resistant depression"),
        ("psychiatric_history", "MDD; two failed SSRI trials"),
        ("medications", "Fluoxetine 20 mg daily"),
        ("allergies", ""),
    ]
}

/// A patient created through the intake page with another date of birth and MRN.
pub async fn patient_born(app: &TestApp, auth: &Auth, mrn: &'static str, dob: &'static str) -> i64 {
    let mut form = minor_form();
    for (k, v) in form.iter_mut() {
        if *k == "date_of_birth" {
            *v = dob;
        }
        if *k == "mrn" {
            *v = mrn;
        }
    }
    let created = app.post_form("/patients", auth, &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    created
        .location()
        .trim_start_matches("/patients/")
        .parse()
        .unwrap()
}

/// One 90-minute induction booking of `patient` in chair `chair` with nurse `nurse` from
/// `start` (clinic wall-clock time), booked by `actor`; its id.
pub async fn book_one(
    store: &dyn ketcare_store::Store,
    actor: &ketcare_core::Actor,
    (patient, chair, nurse): (i64, i64, i64),
    start: jiff::civil::DateTime,
) -> i64 {
    use ketcare_ops::schedule::{Booking, BookingStatus, PhaseKind, Staffing};
    let ketcare_store::BookOutcome::Booked { bookings, .. } = store
        .book(
            actor,
            None,
            &[Booking {
                id: ketcare_core::BookingId::new(0),
                course_id: None,
                patient_id: patient,
                chair_id: chair,
                nurse_id: nurse,
                prescriber_required: false,
                start,
                end: start.checked_add(jiff::Span::new().minutes(90)).unwrap(),
                status: BookingStatus::Booked,
                phase: PhaseKind::Induction,
            }],
            Staffing::default(),
        )
        .await
        .unwrap()
    else {
        panic!("booked")
    };
    bookings[0].id.get()
}
