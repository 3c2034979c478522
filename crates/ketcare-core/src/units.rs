//! Clinical quantities as checked newtypes — one vocabulary for the whole workspace: body
//! measurements (values from users arrive in the unit they chose and are stored in kg and cm) and
//! the calculator's doses, rates, volumes, concentrations and durations.
//!
//! Every quantity is created through a checked constructor (finite, strictly positive, and
//! inside the representable range [`MIN_MAGNITUDE`, `MAX_MAGNITUDE`] — a numeric-safety bound,
//! not a clinical one). Arithmetic exists only where it is dimensionally right, so mixing mg
//! with mL, per-kg with total, or mg/h with mL/h does not compile (see `ketcare_clinical::units`
//! for the compile-fail examples).
//!
//! Conversion factors are definitions, not clinical values: 1 lb = 0.45359237 kg and
//! 1 in = 2.54 cm exactly (International Yard and Pound Agreement, 1959).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Div, Mul};

const KG_PER_LB: f64 = 0.453_592_37;
const CM_PER_IN: f64 = 2.54;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightUnit {
    Kg,
    Lb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeightUnit {
    Cm,
    In,
}

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
        quantity!(@type $(#[$doc])* $name, $unit);
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} {}", self.0, $unit)
            }
        }
    };
    (@type $(#[$doc:meta])* $name:ident, $unit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize, utoipa::ToSchema)]
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
    };
}

quantity!(@type /// Body weight in kilograms (the chart's and the calculator's: one type).
    WeightKg, "kg");
quantity!(@type /// Body height in centimetres.
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

/// Input sanity bounds for a measurement typed on the patient's record: they catch a value typed
/// in the wrong field or unit. They are not clinical limits; the possible weight range is cited
/// in the protocol library's rules and applied by the application layer.
const MAX_PLAUSIBLE_KG: f64 = 1000.0;
const MAX_PLAUSIBLE_CM: f64 = 300.0;

impl WeightKg {
    /// The weight in kg.
    pub fn kg(self) -> f64 {
        self.0
    }

    /// A weight typed in kg or lb on the patient's record, with a message for the form.
    pub fn from_unit(value: f64, unit: WeightUnit) -> Result<Self, String> {
        let kg = match unit {
            WeightUnit::Kg => value,
            WeightUnit::Lb => value * KG_PER_LB,
        };
        if !kg.is_finite() || kg <= 0.0 {
            return Err("weight must be a positive number".into());
        }
        if kg > MAX_PLAUSIBLE_KG {
            return Err(format!(
                "{kg} kg is not a plausible body weight; check the unit"
            ));
        }
        Self::new(kg).map_err(|e| e.to_string())
    }
}

impl HeightCm {
    /// The height in cm.
    pub fn cm(self) -> f64 {
        self.0
    }

    /// A height typed in cm or in on the patient's record, with a message for the form.
    pub fn from_unit(value: f64, unit: HeightUnit) -> Result<Self, String> {
        let cm = match unit {
            HeightUnit::Cm => value,
            HeightUnit::In => value * CM_PER_IN,
        };
        if !cm.is_finite() || cm <= 0.0 {
            return Err("height must be a positive number".into());
        }
        if cm > MAX_PLAUSIBLE_CM {
            return Err(format!(
                "{cm} cm is not a plausible body height; check the unit"
            ));
        }
        Self::new(cm).map_err(|e| e.to_string())
    }
}

impl fmt::Display for WeightKg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} kg", trim_float(self.0))
    }
}
impl fmt::Display for HeightCm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cm", trim_float(self.0))
    }
}

/// Shows up to two decimals without trailing zeros.
pub fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl WeightUnit {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kg" => Some(Self::Kg),
            "lb" => Some(Self::Lb),
            _ => None,
        }
    }
}
impl HeightUnit {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cm" => Some(Self::Cm),
            "in" => Some(Self::In),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_nonsense() {
        assert!(WeightKg::new(0.0).is_err());
        assert!(WeightKg::new(-3.0).is_err());
        assert!(WeightKg::new(f64::NAN).is_err());
        assert!(HeightCm::new(f64::INFINITY).is_err());
        assert!(WeightKg::new(70.0).is_ok());
    }

    #[test]
    fn pounds_and_inches_are_exact_definitions() {
        assert_eq!(
            WeightKg::from_unit(100.0, WeightUnit::Lb).unwrap().kg(),
            45.359237
        );
        assert_eq!(
            HeightCm::from_unit(10.0, HeightUnit::In).unwrap().cm(),
            25.4
        );
    }

    proptest! {
        #[test]
        fn lb_conversion_is_monotone(a in 1.0f64..1000.0, b in 1.0f64..1000.0) {
            let (wa, wb) = (WeightKg::from_unit(a, WeightUnit::Lb).unwrap(), WeightKg::from_unit(b, WeightUnit::Lb).unwrap());
            prop_assert_eq!(a <= b, wa <= wb);
        }
    }
}

#[cfg(test)]
mod quantity_tests {
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
