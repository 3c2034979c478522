//! Exact amounts of drug. Milligrams are kept as integer micrograms and volumes as integer
//! microlitres, so that "drawn = given + wasted" is an equality, not a tolerance.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of drug in micrograms (1 mg = 1000 µg).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Micrograms(pub i64);

/// A volume in microlitres (1 mL = 1000 µL).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Microlitres(pub i64);

/// Why a typed-in amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AmountError {
    pub field: String,
    pub message: String,
}

fn parse_thousandths(field: &str, text: &str, unit: &str) -> Result<i64, AmountError> {
    let err = |message: String| AmountError {
        field: field.to_owned(),
        message,
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(err(format!("enter an amount in {unit}")));
    }
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(err(format!("`{t}` is not a non-negative number of {unit}")));
    }
    if frac.len() > 3 {
        return Err(err(format!(
            "at most three decimals of {unit} are recorded; got `{t}`"
        )));
    }
    let w: i64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| err(format!("`{t}` is too large")))?
    };
    let f: i64 = format!("{frac:0<3}")
        .parse()
        .map_err(|_| err(format!("`{t}` is not a number")))?;
    w.checked_mul(1000)
        .and_then(|w| w.checked_add(f))
        .filter(|v| *v <= 1_000_000_000_000)
        .ok_or_else(|| err(format!("`{t}` is too large")))
}

fn fmt_thousandths(v: i64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let (w, r) = (a / 1000, a % 1000);
    if r == 0 {
        write!(f, "{sign}{w}")
    } else {
        let s = format!("{r:03}");
        write!(f, "{sign}{w}.{}", s.trim_end_matches('0'))
    }
}

impl Micrograms {
    pub fn from_mg(mg: i64) -> Self {
        Self(mg.saturating_mul(1000))
    }
    /// Parses "12.5" (mg) into micrograms, exactly; at most three decimals.
    pub fn parse_mg(field: &str, text: &str) -> Result<Self, AmountError> {
        parse_thousandths(field, text, "mg").map(Self)
    }
    /// The amount in mg as a display string (no trailing zeros).
    pub fn mg(self) -> String {
        self.to_string()
    }
    pub fn as_mg_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl fmt::Display for Micrograms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_thousandths(self.0, f)
    }
}

impl Microlitres {
    /// Parses "0.25" (mL) into microlitres, exactly; at most three decimals.
    pub fn parse_ml(field: &str, text: &str) -> Result<Self, AmountError> {
        parse_thousandths(field, text, "mL").map(Self)
    }
    pub fn from_ml(ml: i64) -> Self {
        Self(ml.saturating_mul(1000))
    }
}

impl fmt::Display for Microlitres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_thousandths(self.0, f)
    }
}

impl std::ops::Add for Micrograms {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self(self.0.saturating_add(o.0))
    }
}
impl std::ops::Sub for Micrograms {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self(self.0.saturating_sub(o.0))
    }
}
impl std::iter::Sum for Micrograms {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self(0), |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        assert_eq!(Micrograms::parse_mg("mg", "12.5"), Ok(Micrograms(12_500)));
        assert_eq!(Micrograms::parse_mg("mg", "0.001"), Ok(Micrograms(1)));
        assert_eq!(Micrograms::parse_mg("mg", "35"), Ok(Micrograms(35_000)));
        assert_eq!(Micrograms(12_500).to_string(), "12.5");
        assert_eq!(Micrograms(35_000).to_string(), "35");
        assert!(Micrograms::parse_mg("mg", "-1").is_err());
        assert!(Micrograms::parse_mg("mg", "1.0001").is_err());
        assert!(Micrograms::parse_mg("mg", "abc").is_err());
        assert!(Micrograms::parse_mg("mg", ".").is_err());
        assert!(Micrograms::parse_mg("mg", "99999999999999999999").is_err());
        assert_eq!(Microlitres::parse_ml("ml", "0.7"), Ok(Microlitres(700)));
    }

    proptest::proptest! {
        #[test]
        fn round_trip(v in 0i64..1_000_000_000) {
            let s = Micrograms(v).to_string();
            proptest::prop_assert_eq!(Micrograms::parse_mg("mg", &s), Ok(Micrograms(v)));
        }
    }
}
