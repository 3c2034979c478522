//! Operations: scheduling, consent, the Schedule III ledger, billing.
//!
//! `service` is shared by the pages and the API; decisions come from `ketcare_ops`, applied by the
//! store inside its transactions.

pub mod api;
pub mod documents;
pub mod pages;
pub mod service;

use crate::pages::Nav;
use crate::routes::{Entry, Verb, r};
use ketcare_core::{Access, Permission, Role};
use utoipa::OpenApi;

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    use Access::{Public, Requires};
    use Permission::*;
    use Verb::*;
    vec![
        // Pages
        r(Get, "/schedule", Requires(Schedule), pages::schedule),
        r(Post, "/schedule/courses", Requires(Schedule), pages::book_course),
        r(Post, "/schedule/sessions", Requires(Schedule), pages::book_session),
        r(Post, "/schedule/chairs", Requires(Schedule), pages::add_chair),
        r(Post, "/schedule/on-site", Requires(Schedule), pages::add_on_site),
        r(
            Post,
            "/schedule/on-site/{id}/remove",
            Requires(Schedule),
            pages::remove_on_site,
        ),
        r(Post, "/schedule/bookings/{bid}/status", Requires(Schedule), pages::booking_status),
        r(Post, "/schedule/bookings/{bid}/move", Requires(Schedule), pages::move_booking),
        r(Get, "/patients/{id}/consent", Requires(ClinicalRead), pages::consent),
        r(Post, "/patients/{id}/consent", Requires(RecordConsent), pages::sign_consent),
        r(Post, "/patients/{id}/consent/{sid}/withdraw", Requires(RecordConsent), pages::withdraw_consent),
        r(Get, "/consent/documents", Requires(PatientRead), pages::consent_documents),
        r(Post, "/consent/documents", Requires(RecordConsent), pages::add_consent_document),
        r(Get, "/ledger", Requires(LedgerRead), pages::ledger),
        r(Post, "/ledger", Requires(LedgerDraw), pages::ledger_post),
        r(Get, "/static/ops-print.css", Public, documents::print_css),
        r(Get, "/ledger/counts", Requires(LedgerRead), documents::counts),
        r(Get, "/ledger/count", Requires(LedgerManage), pages::count_form),
        r(Get, "/ledger/documents/{seq}", Requires(LedgerRead), documents::document),
        r(Get, "/billing", Requires(BillingRead), pages::billing_page),
        // API
        r(Get, "/api/v1/schedule/bookings", Requires(Schedule), api::bookings),
        r(Post, "/api/v1/schedule/courses", Requires(Schedule), api::book_course),
        r(Post, "/api/v1/schedule/sessions", Requires(Schedule), api::book_session),
        r(Post, "/api/v1/schedule/bookings/{bid}/move", Requires(Schedule), api::move_booking),
        r(Post, "/api/v1/schedule/bookings/{bid}/status", Requires(Schedule), api::booking_status),
        r(Get, "/api/v1/patients/{id}/consent-status", Requires(ClinicalRead), api::consent_status),
        r(Post, "/api/v1/patients/{id}/consents", Requires(RecordConsent), api::sign_consent),
        r(Post, "/api/v1/patients/{id}/consents/{sid}/withdraw", Requires(RecordConsent), api::withdraw_consent),
        r(Get, "/api/v1/ledger", Requires(LedgerRead), api::ledger),
        r(Get, "/api/v1/ledger/transfers", Requires(LedgerRead), api::ledger_transfers),
        r(Post, "/api/v1/ledger/events", Requires(LedgerDraw), api::ledger_event),
        r(Post, "/api/v1/ledger/balance", Requires(LedgerRead), api::balance),
        r(Post, "/api/v1/billing/superbill", Requires(BillingRead), api::superbill),
        r(Get, "/api/v1/sessions/{sid}/superbill", Requires(BillingRead), api::session_superbill),
        r(Post, "/api/v1/billing/estimate", Requires(BillingRead), api::estimate),
        r(Put, "/api/v1/billing/prices/{code}", Requires(SiteSettingsWrite), api::set_price),
    ]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    api::bookings,
    api::book_course,
    api::book_session,
    api::move_booking,
    api::booking_status,
    api::consent_status,
    api::sign_consent,
    api::withdraw_consent,
    api::ledger,
    api::ledger_transfers,
    api::ledger_event,
    api::balance,
    api::superbill,
    api::session_superbill,
    api::estimate,
    api::set_price
))]
pub struct OpsApiDoc;

/// The navigation links of this area.
impl Nav {
    fn role(&self) -> Option<Role> {
        Role::parse(&self.role)
    }
    pub fn ops_schedule(&self) -> bool {
        self.role().is_some_and(|r| r.allows(Permission::Schedule))
    }
    pub fn ops_billing(&self) -> bool {
        self.role()
            .is_some_and(|r| r.allows(Permission::BillingRead))
    }
    pub fn ops_ledger(&self) -> bool {
        self.role()
            .is_some_and(|r| r.allows(Permission::LedgerRead))
    }
}
