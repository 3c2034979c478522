//! ketcare's pure domain core.
//!
//! Everything here is a plain function of its inputs: no database, no network, no clock, no
//! randomness. Storage, HTTP and the CLI are edges that translate to and from these types, so the
//! same decision comes out of every interface.
#![forbid(unsafe_code)]

pub mod age;
pub mod audit;
pub mod data;
pub mod ids;
pub mod patient;
pub mod role;
pub mod therapy;
pub mod units;
pub mod validation;

pub use age::{AgeBand, AgeBands};
pub use ids::{
    AlertId, ApiTokenId, BookingId, ConsentDocumentId, ConsentId, EncounterId, GuardianId, LinkId,
    PatientId, PlanItemId, RecordId, ResponseId, SessionId, TherapyNoteId, UserId,
};
pub use ids::{ContactPreferenceId, MessageId};
pub use role::{Access, Actor, Permission, Role};
pub use validation::{FieldError, FieldErrors};
