//! Status columns as enums: each is stored as its `as_str()` text and read back through
//! [`sqlx::Decode`]; text ketcare did not write is refused as [`crate::StoreError::Corrupt`]
//! (see [`Unknown`] and `From<sqlx::Error> for StoreError`). The JSON is the same snake_case
//! text as the column.

use sqlx::decode::Decode;
use sqlx::error::BoxDynError;
use sqlx::{Database, Type};

/// A status column held text that is none of its enum's values.
#[derive(Debug, thiserror::Error)]
#[error("{column} `{value}`")]
pub struct Unknown {
    pub column: &'static str,
    pub value: String,
}

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident, $column:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal / $label:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// The column's (and the JSON's) text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Words for pages ("Open", "Closed").
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<DB: Database> Type<DB> for $name
        where
            str: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $name
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let s = <&'r str as Decode<'r, DB>>::decode(value)?;
                $name::parse(s).ok_or_else(|| {
                    Box::new($crate::status::Unknown {
                        column: $column,
                        value: s.to_owned(),
                    }) as BoxDynError
                })
            }
        }
    };
}

status_enum!(
    /// A safety alert's `status`: open until a clinician documents the follow-up.
    AlertStatus, "safety_alerts.status" {
        Open = "open" / "Open",
        Closed = "closed" / "Closed",
    }
);

status_enum!(
    /// A questionnaire link's `status`.
    LinkStatus, "measure_links.status" {
        Sent = "sent" / "Sent",
        Opened = "opened" / "Opened",
        Completed = "completed" / "Completed",
    }
);

status_enum!(
    /// A settings proposal's `state`: pending until a second administrator decides.
    ProposalState, "settings_proposals.state" {
        Pending = "pending" / "Pending",
        Approved = "approved" / "Approved",
        Rejected = "rejected" / "Rejected",
    }
);
