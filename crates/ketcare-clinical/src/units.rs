//! Clinical units as newtypes.
//!
//! Every quantity is created through a checked constructor (finite, strictly positive, and
//! inside the representable range [`MIN_MAGNITUDE`, `MAX_MAGNITUDE`] — a numeric-safety bound,
//! not a clinical one). Arithmetic exists only where it is dimensionally right, so mixing mg
//! with mL, per-kg with total, or mg/h with mL/h does not compile:
//!
//! ```compile_fail
//! use ketcare_clinical::units::{DoseMg, VolumeMl};
//! let dose = DoseMg::new(10.0).unwrap();
//! let volume = VolumeMl::new(2.0).unwrap();
//! let _nonsense = dose + volume; // mg + mL: no such operator
//! ```
//!
//! ```compile_fail
//! use ketcare_clinical::units::{MgPerHour, RateMlPerH};
//! // the "mg/h typed into the mL/h field" pump error
//! let rate: RateMlPerH = MgPerHour::new(22.0).unwrap();
//! ```
//!
//! ```compile_fail
//! use ketcare_clinical::units::{DoseMg, MgPerKg};
//! fn give(_total: DoseMg) {}
//! give(MgPerKg::new(0.5).unwrap()); // a per-kg dose is not a total dose
//! ```
//!
//! ```
//! use ketcare_clinical::units::*;
//! let dose = MgPerKg::new(0.5).unwrap() * WeightKg::new(70.0).unwrap();
//! assert_eq!(dose.value(), 35.0);
//! let volume = dose / ConcentrationMgPerMl::new(10.0).unwrap();
//! let rate = volume / Minutes::new(40.0).unwrap();
//! assert!((rate.value() - 5.25).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};
use std::ops::{Add, Div, Mul};

/// Smallest magnitude a quantity may hold (numeric safety, not a clinical bound).
pub const MIN_MAGNITUDE: f64 = 1e-9;
/// Largest magnitude a quantity may hold (numeric safety, not a clinical bound).
pub const MAX_MAGNITUDE: f64 = 1e9;

/// A quantity could not be created.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum UnitError {
    #[error("{unit}: expected a finite number, got {value}")]
    NotFinite { unit: &'static str, value: f64 },
    #[error("{unit}: expected a value greater than 0, got {value}")]
    NotPositive { unit: &'static str, value: f64 },
    #[error("{unit}: expected a value between {min} and {max}, got {value}")]
    OutOfRange {
        unit: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
}

fn check(unit: &'static str, value: f64) -> Result<f64, UnitError> {
    if !value.is_finite() {
        return Err(UnitError::NotFinite { unit, value });
    }
    if value <= 0.0 {
        return Err(UnitError::NotPositive { unit, value });
    }
    if !(MIN_MAGNITUDE..=MAX_MAGNITUDE).contains(&value) {
        return Err(UnitError::OutOfRange {
            unit,
            value,
            min: MIN_MAGNITUDE,
            max: MAX_MAGNITUDE,
        });
    }
    Ok(value)
}

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $unit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
        #[serde(try_from = "f64", into = "f64")]
        pub struct $name(f64);

        impl $name {
            /// Unit symbol.
            pub const UNIT: &'static str = $unit;
            /// Checked constructor: finite, > 0, within the representable range.
            pub fn new(value: f64) -> Result<Self, UnitError> {
                check($unit, value).map(Self)
            }
            /// The number, in this type's unit.
            pub fn value(self) -> f64 {
                self.0
            }
            /// Result of dimensionally correct arithmetic on checked values.
            #[allow(dead_code)]
            pub(crate) fn derived(value: f64) -> Self {
                Self(value)
            }
        }

        impl TryFrom<f64> for $name {
            type Error = UnitError;
            fn try_from(value: f64) -> Result<Self, UnitError> {
                Self::new(value)
            }
        }

        impl From<$name> for f64 {
            fn from(q: $name) -> f64 {
                q.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} {}", self.0, $unit)
            }
        }
    };
}

quantity!(/// Body weight in kilograms.
    WeightKg, "kg");
quantity!(/// Height in centimetres.
    HeightCm, "cm");
quantity!(/// An amount of drug in milligrams (a total, not per kg).
    DoseMg, "mg");
quantity!(/// A weight-based dose in mg per kg of body weight.
    MgPerKg, "mg/kg");
quantity!(/// A weight-based infusion rate in mg per kg per hour.
    MgPerKgPerHour, "mg/kg/h");
quantity!(/// A drug delivery rate in mg per hour.
    MgPerHour, "mg/h");
quantity!(/// A drug concentration in mg per mL.
    ConcentrationMgPerMl, "mg/mL");
quantity!(/// A liquid volume in mL.
    VolumeMl, "mL");
quantity!(/// A pump rate in mL per hour.
    RateMlPerH, "mL/h");
quantity!(/// A duration in minutes.
    Minutes, "min");

macro_rules! op {
    ($lhs:ident $tr:ident $method:ident $rhs:ident => $out:ident, |$a:ident, $b:ident| $e:expr) => {
        impl $tr<$rhs> for $lhs {
            type Output = $out;
            fn $method(self, rhs: $rhs) -> $out {
                let $a = self.0;
                let $b = rhs.0;
                $out::derived($e)
            }
        }
    };
}

op!(MgPerKg Mul mul WeightKg => DoseMg, |a, b| a * b);
op!(WeightKg Mul mul MgPerKg => DoseMg, |a, b| a * b);
op!(MgPerKgPerHour Mul mul WeightKg => MgPerHour, |a, b| a * b);
op!(DoseMg Div div WeightKg => MgPerKg, |a, b| a / b);
op!(MgPerHour Div div WeightKg => MgPerKgPerHour, |a, b| a / b);
op!(MgPerHour Mul mul Minutes => DoseMg, |a, b| a * b / 60.0);
op!(DoseMg Div div Minutes => MgPerHour, |a, b| a * 60.0 / b);
op!(MgPerKg Div div Minutes => MgPerKgPerHour, |a, b| a * 60.0 / b);
op!(DoseMg Div div ConcentrationMgPerMl => VolumeMl, |a, b| a / b);
op!(VolumeMl Mul mul ConcentrationMgPerMl => DoseMg, |a, b| a * b);
op!(DoseMg Div div VolumeMl => ConcentrationMgPerMl, |a, b| a / b);
op!(VolumeMl Div div Minutes => RateMlPerH, |a, b| a * 60.0 / b);
op!(VolumeMl Div div RateMlPerH => Minutes, |a, b| a * 60.0 / b);
op!(RateMlPerH Mul mul ConcentrationMgPerMl => MgPerHour, |a, b| a * b);
op!(MgPerHour Div div ConcentrationMgPerMl => RateMlPerH, |a, b| a / b);
op!(DoseMg Add add DoseMg => DoseMg, |a, b| a + b);
op!(MgPerKg Add add MgPerKg => MgPerKg, |a, b| a + b);

impl DoseMg {
    /// Dose in mg of a number of identical devices (e.g. 28 mg esketamine devices).
    pub fn times(self, count: u32) -> DoseMg {
        DoseMg(self.0 * f64::from(count))
    }
}

impl Minutes {
    /// Duration in hours.
    pub fn hours(self) -> f64 {
        self.0 / 60.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_refuse_nonsense() {
        assert!(WeightKg::new(0.0).is_err());
        assert!(WeightKg::new(-3.0).is_err());
        assert!(WeightKg::new(f64::NAN).is_err());
        assert!(WeightKg::new(f64::INFINITY).is_err());
        assert!(DoseMg::new(2e9).is_err());
        assert!(serde_json::from_str::<WeightKg>("-1").is_err());
        assert_eq!(
            serde_json::from_str::<WeightKg>("70.5").ok(),
            WeightKg::new(70.5).ok()
        );
    }

    #[test]
    fn arithmetic_is_dimensional() -> Result<(), UnitError> {
        let dose = MgPerKg::new(0.5)? * WeightKg::new(80.0)?;
        assert_eq!(dose.value(), 40.0);
        let per_hour = dose / Minutes::new(40.0)?;
        assert_eq!(per_hour.value(), 60.0);
        let vol = dose / ConcentrationMgPerMl::new(10.0)?;
        assert_eq!(vol.value(), 4.0);
        let rate = vol / Minutes::new(40.0)?;
        assert_eq!(rate.value(), 6.0);
        assert_eq!((vol / rate).value(), 40.0);
        Ok(())
    }
}
