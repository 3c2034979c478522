//! Typed identifiers: a patient id can never be passed where a user id is expected.
//!
//! Each is an `i64` database key, serialized as the bare number (`serde(transparent)`), so the
//! JSON is the same as a raw integer's. With the `sqlx` feature (the store's) each also binds and
//! reads as its integer column, so rows decode straight into the typed id.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Wraps a database key. Keys are assigned by the store, never typed by a user.
            pub const fn new(raw: i64) -> Self {
                Self(raw)
            }
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            /// Reads the key from text (a path or form field), as the integer it is.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

typed_id!(
    /// A patient in the registry.
    PatientId
);
typed_id!(
    /// A staff account.
    UserId
);
typed_id!(
    /// A guardian linked to a minor.
    GuardianId
);
typed_id!(
    /// A machine client's API token.
    ApiTokenId
);
typed_id!(
    /// A treatment session (the session workflow's record).
    SessionId
);
typed_id!(
    /// A clinical record: a screening or a dose order.
    RecordId
);
typed_id!(
    /// A safety alert raised by a questionnaire answer.
    AlertId
);
typed_id!(
    /// A questionnaire link sent to a patient or guardian.
    LinkId
);
typed_id!(
    /// A message in the outbox (a link sent by email or text message).
    MessageId
);
typed_id!(
    /// A recorded contact preference (channel and consent to be contacted).
    ContactPreferenceId
);
typed_id!(
    /// A stored questionnaire response.
    ResponseId
);
typed_id!(
    /// A booked session on a chair (the calendar's booking).
    BookingId
);
typed_id!(
    /// A version of a protocol's consent document.
    ConsentDocumentId
);
typed_id!(
    /// A signed consent (one signature under one document version).
    ConsentId
);
typed_id!(
    /// A therapy encounter (preparation, integration or ongoing psychotherapy).
    EncounterId
);
typed_id!(
    /// A psychotherapy note (HIPAA §164.501), kept apart from the encounter it belongs to.
    TherapyNoteId
);
typed_id!(
    /// A care plan item (a goal or an agreed adjunct) of a treatment course.
    PlanItemId
);
