//! ketcare's application layer. Each use case is one function: it takes typed inputs and the
//! acting user, **loads every clinical fact it depends on from the store** (age on the day of care
//! from the date of birth, the chart's weight, the patient's earlier sessions, …), calls the pure
//! core, and writes the change with its audit record in one transaction. The web pages, the JSON
//! API, the MLLP listener and the CLI are edges over it: they decode, call one function here and
//! encode the answer, so no edge can decide on a fact the request made up.
//!
//! Invariant: every clinical decision is made on facts loaded from the record; a request may only
//! add what the record cannot know (the protocol chosen, an amount, the vial used today), and a
//! request that restates a fact differently from the record is refused naming the field.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod anchors;
pub mod background;
pub mod care_plan;
pub mod charts;
pub mod clinical;
pub mod error;
pub mod exposure;
pub mod facts;
pub mod fhir;
pub mod files;
pub mod given;
pub mod measures;
pub mod ops;
pub mod orders;
pub mod outreach;
pub mod password;
pub mod patients;
pub mod pk;
pub mod registry;
pub mod screenings;
pub mod second_factor;
pub mod senders;
pub mod sessions;
pub mod settings_registry;
pub mod smart;
pub mod therapy;
pub mod worklists;
pub mod zones;

pub use error::{Error, Result};
pub use facts::PatientFacts;

/// The date at the epoch second `now` at the site the acting user works at ([`zones::here`]:
/// the server's zone outside a request, or for a site without a zone of its own).
pub fn today(now: i64) -> jiff::civil::Date {
    today_in(now, &zones::here())
}

/// The date at the epoch second `now` in `zone`.
pub fn today_in(now: i64, zone: &jiff::tz::TimeZone) -> jiff::civil::Date {
    jiff::Timestamp::from_second(now)
        .map(|t| t.to_zoned(zone.clone()).date())
        .unwrap_or(jiff::civil::Date::ZERO)
}
