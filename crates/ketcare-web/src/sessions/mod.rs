//! Treatment sessions: checklist, administration, vitals, alarms, the live suite, discharge, and
//! bedside monitors over HL7 v2 / MLLP.
//!
//! The use cases (the plan from the verified dose order, commands, vitals, the time rules, the
//! predicted curve, the questionnaire panel) are [`ketcare_app::sessions`]. [`service`] is the
//! web's side of them: the pages, the API and the MLLP listener call it, it makes one call into
//! the app and then publishes every change, vital and alarm on the live channel
//! ([`live::Live`]) that the suite dashboard streams as server-sent events; it also runs the
//! 10-second ticker for the time rules.

pub mod api;
pub mod history;
pub mod live;
pub mod mllp;
pub mod pages;
pub mod pre_measures;
pub mod service;

use crate::routes::{Entry, Verb, r};
use ketcare_core::{Access, Permission};
use utoipa::OpenApi;

pub use live::{Live, LiveEvent};

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    use Access::{Public, Requires};
    use Permission::*;
    use Verb::*;
    vec![
        r(Get, "/static/suite.js", Public, live::script),
        r(Get, "/suite", Requires(ClinicalRead), pages::suite),
        r(Get, "/suite/events", Requires(ClinicalRead), live::events),
        r(Get, "/patients/{id}/sessions/new", Requires(RunSession), pages::new_session_form),
        r(Post, "/patients/{id}/sessions", Requires(RunSession), pages::create_session),
        r(Get, "/sessions/{sid}", Requires(ClinicalRead), pages::session_page),
        r(Get, "/sessions/{sid}/record", Requires(ClinicalRead), pages::record_page),
        r(Post, "/sessions/{sid}/commands", Requires(RunSession), pages::command),
        r(Post, "/sessions/{sid}/vitals", Requires(RunSession), pages::vitals),
        r(Post, "/sessions/{sid}/dose", Requires(RunSession), pages::attach_dose),
        r(Get, "/api/v1/sessions", Requires(ClinicalRead), api::active),
        r(Post, "/api/v1/patients/{id}/sessions", Requires(RunSession), api::create),
        r(Get, "/api/v1/sessions/{sid}", Requires(ClinicalRead), api::get),
        r(Post, "/api/v1/sessions/{sid}/commands", Requires(RunSession), api::command),
        r(Get, "/api/v1/sessions/{sid}/vitals", Requires(ClinicalRead), api::list_vitals),
        r(Post, "/api/v1/sessions/{sid}/vitals", Requires(RunSession), api::post_vitals),
        r(Get, "/api/v1/sessions/{sid}/rems-form", Requires(ClinicalRead), api::rems_form),
        r(Get, "/sessions/{sid}/predicted", Requires(ClinicalRead), history::predicted_page),
        r(Get, "/api/v1/sessions/{sid}/predicted", Requires(ClinicalRead), history::predicted_api),
        r(Get, "/static/timeline.js", Public, history::timeline_script),
        r(Get, "/sessions/{sid}/timeline", Requires(ClinicalRead), history::timeline_fragment),
        r(Get, "/api/v1/sessions/{sid}/timeline", Requires(ClinicalRead), history::timeline_api),
        r(Get, "/api/v1/sessions/{sid}/measures", Requires(ClinicalRead), pre_measures::measures_api),
    ]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    api::active,
    api::create,
    api::get,
    api::command,
    api::list_vitals,
    api::post_vitals,
    api::rems_form,
    history::predicted_api,
    history::timeline_api,
    pre_measures::measures_api
))]
pub struct SessionsApiDoc;
