//! Typed identifiers and timestamps (the library has no clock: times are passed in).

use serde::{Deserialize, Serialize};

/// An identifier or timestamp was malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum IdError {
    #[error("user id: expected non-empty text without surrounding spaces, got {0:?}")]
    BadUserId(String),
    #[error("timestamp: expected RFC 3339 like 2026-11-22T09:30:00Z, got {0:?}")]
    BadTimestamp(String),
}

/// A clinician or administrator, by username (the text `Actor::username` carries): who authored,
/// verified, overrode or approved, as recorded inside clinical documents.
///
/// Not `ketcare_core::UserId`, the staff account's numeric database key: clinical documents are
/// pure and name people as the audit log does, by username, so this one is text. (`IdError`'s
/// `BadUserId` keeps its name: it is part of the error's serialized form.)
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        if id.is_empty() || id.trim() != id {
            return Err(IdError::BadUserId(id));
        }
        Ok(Self(id))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::new(s)
    }
}
impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}
impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An RFC 3339 timestamp supplied by the caller (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(String);

impl Timestamp {
    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if rfc3339_ok(&s) {
            Ok(Self(s))
        } else {
            Err(IdError::BadTimestamp(s))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

fn rfc3339_ok(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let sep_ok = b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':';
    let (Some(_y), Some(mo), Some(d), Some(h), Some(mi), Some(se)) = (
        digits(&b[0..4]),
        digits(&b[5..7]),
        digits(&b[8..10]),
        digits(&b[11..13]),
        digits(&b[14..16]),
        digits(&b[17..19]),
    ) else {
        return false;
    };
    if !sep_ok || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60
    {
        return false;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &rest[1 + n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            matches!((digits(&[*h1, *h2]), digits(&[*m1, *m2])), (Some(h), Some(m)) if h <= 23 && m <= 59)
        }
        _ => false,
    }
}

impl TryFrom<String> for Timestamp {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(s)
    }
}
impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn timestamps() {
        assert!(Timestamp::parse("2026-11-22T09:30:00Z").is_ok());
        assert!(Timestamp::parse("2026-11-22T09:30:00.123+01:00").is_ok());
        assert!(Timestamp::parse("2026-13-22T09:30:00Z").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("2026-11-22T09:30:00").is_err());
        assert!(Username::new("").is_err());
        assert!(Username::new(" a").is_err());
    }
}
