//! Reaching patients between sessions on the web: contact preferences and consent to be
//! contacted (a page and the API), and a patient's messages. Sending a link through the outbox
//! is the measures area's "send link" ([`crate::measures`]); the worker that drains the outbox
//! through the real channels runs in the server ([`delivery`]).
//!
//! The use cases live in [`ketcare_app::outreach`].

pub mod api;
pub mod delivery;
pub mod pages;

use crate::routes::{Entry, Verb, r};
use ketcare_core::{Access, Permission};
use utoipa::OpenApi;

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    use Access::{Public, Requires};
    use Permission::*;
    use Verb::*;
    vec![
        // Pages
        r(Get, "/patients/{id}/contact", Requires(PatientRead), pages::contact),
        r(Post, "/patients/{id}/contact", Requires(PatientWrite), pages::record_contact),
        r(Post, "/patients/{id}/schedules/{schid}/stop", Requires(RecordMeasures), pages::stop_schedule),
        // API
        r(Get, "/api/v1/patients/{id}/contact", Requires(PatientRead), api::contacts),
        r(Post, "/api/v1/patients/{id}/contact", Requires(PatientWrite), api::record_contact),
        r(Get, "/api/v1/patients/{id}/messages", Requires(ClinicalRead), api::messages),
        r(Post, "/api/v1/patients/{id}/courses/{cid}/schedules", Requires(RecordMeasures), api::add_schedule),
        r(Get, "/api/v1/patients/{id}/schedules", Requires(ClinicalRead), api::schedules),
        r(Post, "/api/v1/patients/{id}/schedules/{schid}/stop", Requires(RecordMeasures), api::stop_schedule),
        // The SMS gateway's delivery receipts: signed, no account.
        r(Post, "/api/v1/outreach/receipts", Public, api::sms_receipt),
    ]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        api::contacts,
        api::record_contact,
        api::messages,
        api::add_schedule,
        api::schedules,
        api::stop_schedule,
        api::sms_receipt
    ),
    components(schemas(
        ketcare_app::outreach::ContactInput,
        ketcare_app::outreach::Contact,
        ketcare_app::outreach::Contacts,
        ketcare_store::outreach::ContactPreference,
        ketcare_store::outreach::OutboxMessage,
        ketcare_store::outreach::StoredSchedule,
        ketcare_app::outreach::ScheduleView,
        ketcare_measures::sending::SendSchedule,
        api::ScheduleRequest,
        ketcare_ops::outreach::Channel,
        ketcare_ops::outreach::MessageState,
        ketcare_ops::outreach::Receipt,
        ketcare_app::outreach::ReceiptInput,
        ketcare_app::outreach::ReceiptOutcome
    ))
)]
pub struct OutreachApiDoc;
