//! # ketcare-clinical
//!
//! The pure clinical core of ketcare: the cited protocol library, eligibility screening, and
//! the dose and pump-rate calculator with guardrails. No I/O, no clock, no randomness: data
//! files are embedded at compile time (or passed in as text), times are passed in, and every
//! function is a pure function of its arguments — so pages, the JSON API and the CLI give the
//! same answer.
//!
//! Every clinical number comes from `../shared/reference/clinical.md` and carries its source
//! IDs and status (V/S/U). U values are site settings with no default; a protocol that needs
//! an unset one is blocked ([`protocol::Library::readiness`]).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod data;
pub mod dose;
pub mod eligibility;
pub mod ids;
pub mod protocol;
pub mod settings;
pub mod source;
pub mod units;

pub use data::DataError;
pub use dose::{DoseError, DoseOrder, DoseRequest, OrderError, OrderState, calculate};
pub use eligibility::{ScreenError, ScreeningInput, ScreeningOutcome, screen};
pub use ids::{Timestamp, Username};
pub use protocol::{Library, Protocol, Readiness};
pub use settings::{LimitOverride, SiteSettings};
