//! ketcare's web edge: server-rendered pages for staff and the JSON API under `/api/v1/`.
//!
//! Handlers decode, make one call into the application layer ([`ketcare_app`]), and encode. Every route is declared
//! once in [`routes::table`] together with the role rule that guards it; the router is built
//! only from that table, so a route without a role rule cannot exist.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod chart;
pub mod clinical;
pub mod clinical_api;
pub mod clinical_pages;
pub mod error;
pub mod fhir;
pub mod fmt;
pub mod measures;
pub mod openapi;
pub mod ops;
pub mod pages;
pub use ketcare_app::password;
pub mod care_plan;
pub mod outreach;
pub mod pk;
pub mod research;
pub mod routes;
pub mod sessions;
pub mod sites;
pub mod therapy;
pub mod throttle;

use ketcare_core::AgeBands;
use ketcare_store::Store;
use std::sync::Arc;

/// Seconds since the Unix epoch; injected so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Security settings (not clinical values: these are ketcare's own defaults, changeable per site).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// A browser session ends this long after sign-in…
    pub session_minutes: i64,
    /// …or after this long without a request (inactivity time-out).
    pub idle_minutes: i64,
    /// Failed sign-ins for one account from one address before that address is paused for that
    /// account (an address is refused outright after four times as many, whatever the accounts).
    pub lockout_attempts: i64,
    /// The counting window and the first pause; each further pause doubles, up to a day.
    pub lockout_minutes: i64,
    /// Mark cookies `Secure` even when the request did not say it came over TLS.
    pub secure_cookies: bool,
    /// API requests one credential (token, browser session, or an address without either) may
    /// make at once before it is slowed down…
    pub api_burst: f64,
    /// …and per second after that; beyond, 429 with `Retry-After`.
    pub api_per_second: f64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            session_minutes: 8 * 60,
            idle_minutes: 30,
            lockout_attempts: 5,
            lockout_minutes: 15,
            secure_cookies: false,
            api_burst: 300.0,
            api_per_second: 50.0,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: WebConfig,
    pub bands: Arc<AgeBands>,
    /// The cited protocol library (built-in plus the site's own protocol files) and eligibility
    /// rules, validated at start and replaced whole when a site protocol is added.
    library: Arc<std::sync::RwLock<Arc<ketcare_clinical::Library>>>,
    pub clock: Clock,
    pub version: &'static str,
    /// The pharmacokinetic model library (validated at start; an invalid built-in file makes the
    /// simulation routes answer with an error rather than stopping the server).
    pub pk: Arc<Result<ketcare_pk::Library, ketcare_pk::PkError>>,
    /// Live updates of the infusion suite (vitals, alarms, session changes).
    pub live: sessions::Live,
    /// Whether the database is a demo clinic (its settings say so): every page then carries
    /// the demo banner. Read from the settings at start and after every settings change.
    demo: Arc<std::sync::atomic::AtomicBool>,
    /// Failed sign-ins per (address, account) and per address ([`throttle`]).
    pub throttle: Arc<throttle::SignInThrottle>,
    /// API requests per credential ([`throttle::RateLimiter`]).
    pub api_rate: Arc<throttle::RateLimiter>,
    /// Refusals (403) audited as counted summaries ([`throttle::RefusalLog`]).
    pub refusals: Arc<throttle::RefusalLog>,
    /// The monitors allowed to send vitals (`mllp.allowed_senders`; `None`: any), read from the
    /// settings at start and after every settings change.
    pub senders: Arc<std::sync::RwLock<Option<ketcare_app::senders::SenderAllowList>>>,
    /// FHIR bulk exports: their jobs and the private folder of their files.
    pub exports: Arc<fhir::export::Exports>,
    /// The SMS webhook's signing secret: delivery receipts from the gateway are checked with it
    /// (`None`: every receipt is refused).
    pub sms_secret: Option<ketcare_store::SecretText>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        config: WebConfig,
        bands: AgeBands,
        library: ketcare_clinical::Library,
    ) -> Self {
        Self {
            store,
            config,
            bands: Arc::new(bands),
            library: Arc::new(std::sync::RwLock::new(Arc::new(library))),
            clock: Arc::new(|| jiff::Timestamp::now().as_second()),
            version: env!("CARGO_PKG_VERSION"),
            pk: Arc::new(ketcare_pk::Library::builtin()),
            live: sessions::Live::default(),
            demo: Arc::default(),
            throttle: Arc::default(),
            api_rate: Arc::default(),
            refusals: Arc::default(),
            senders: Arc::default(),
            exports: Arc::default(),
            sms_secret: None,
        }
    }

    /// Writes FHIR bulk exports under `dir` (by default a private folder in the system's
    /// temporary directory).
    pub fn with_export_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.exports = Arc::new(fhir::export::Exports::new(dir));
        self
    }

    /// Checks the SMS gateway's delivery receipts with `secret` (the webhook's signing secret).
    pub fn with_sms_secret(mut self, secret: Option<ketcare_store::SecretText>) -> Self {
        self.sms_secret = secret;
        self
    }

    /// Whether this database is a demo clinic.
    pub fn is_demo(&self) -> bool {
        self.demo.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Re-reads whether the database is a demo clinic from the site settings.
    pub async fn refresh_demo(&self) -> Result<(), ketcare_app::Error> {
        let (settings, _) = ketcare_app::clinical::settings(self.store.as_ref()).await?;
        let demo = settings.value(ketcare_app::settings_registry::DEMO_CLINIC) == Some(1.0);
        self.demo.store(demo, std::sync::atomic::Ordering::Relaxed);
        // A stored list was checked when it was saved; one that no longer parses admits nothing.
        let senders = settings
            .text(ketcare_app::senders::MLLP_ALLOWED_SENDERS)
            .map(|t| ketcare_app::senders::parse(t).unwrap_or_default());
        match self.senders.write() {
            Ok(mut g) => *g = senders,
            Err(p) => *p.into_inner() = senders,
        }
        Ok(())
    }

    /// The library in force now.
    pub fn library(&self) -> Arc<ketcare_clinical::Library> {
        match self.library.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts a new, already validated library in force.
    pub fn set_library(&self, library: ketcare_clinical::Library) {
        let next = Arc::new(library);
        match self.library.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Today at the site the request's user works at ([`ketcare_app::zones::here`]: the
    /// server's zone outside a request), from the injected clock.
    pub fn today(&self) -> jiff::civil::Date {
        ketcare_app::today(self.now())
    }
}

pub use routes::router;
