//! Typed identifiers: a patient id can never be passed where a user id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
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
