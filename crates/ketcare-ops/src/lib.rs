//! # ketcare-ops
//!
//! The pure operations core of ketcare: booking courses onto chairs and staff, consent and
//! assent, the Schedule III ledger and billing codes. No I/O, no clock, no randomness: times
//! are passed in, data files are embedded (or passed in as text) and validated, and every
//! decision is a plain function of its arguments, so pages, the JSON API and the CLI agree.
//!
//! The two questions the session workflow asks before it starts and before it signs are
//! [`consent::consent_valid`] and [`ledger::session_balance`].
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod amount;
pub mod billing;
pub mod cited;
pub mod consent;
pub mod ledger;
pub mod outreach;
pub mod schedule;
pub mod session_facts;

pub use consent::{ConsentStatus, consent_valid};
pub use ledger::{Balance, session_balance};

pub use amount::Micrograms;

pub use session_facts::{Drug, SessionFacts};
