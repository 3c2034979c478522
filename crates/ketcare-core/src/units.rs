//! Body measurements as checked newtypes. Values from users arrive in the unit they chose and are
//! stored in SI-like clinical units (kg, cm).
//!
//! Conversion factors are definitions, not clinical values: 1 lb = 0.45359237 kg and
//! 1 in = 2.54 cm exactly (International Yard and Pound Agreement, 1959).

use serde::{Deserialize, Serialize};
use std::fmt;

const KG_PER_LB: f64 = 0.453_592_37;
const CM_PER_IN: f64 = 2.54;

/// Body weight in kilograms; finite and positive.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "f64", into = "f64")]
pub struct WeightKg(f64);

/// Body height in centimetres; finite and positive.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "f64", into = "f64")]
pub struct HeightCm(f64);

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

/// Input sanity bounds: they catch a value typed in the wrong field or unit. They are not
/// clinical limits; dose limits come from the cited protocol library.
const MAX_PLAUSIBLE_KG: f64 = 1000.0;
const MAX_PLAUSIBLE_CM: f64 = 300.0;

impl WeightKg {
    pub fn new(kg: f64) -> Result<Self, String> {
        if !kg.is_finite() || kg <= 0.0 {
            return Err("weight must be a positive number".into());
        }
        if kg > MAX_PLAUSIBLE_KG {
            return Err(format!(
                "{kg} kg is not a plausible body weight; check the unit"
            ));
        }
        Ok(Self(kg))
    }

    pub fn from_unit(value: f64, unit: WeightUnit) -> Result<Self, String> {
        match unit {
            WeightUnit::Kg => Self::new(value),
            WeightUnit::Lb => Self::new(value * KG_PER_LB),
        }
    }

    pub fn kg(self) -> f64 {
        self.0
    }
}

impl HeightCm {
    pub fn new(cm: f64) -> Result<Self, String> {
        if !cm.is_finite() || cm <= 0.0 {
            return Err("height must be a positive number".into());
        }
        if cm > MAX_PLAUSIBLE_CM {
            return Err(format!(
                "{cm} cm is not a plausible body height; check the unit"
            ));
        }
        Ok(Self(cm))
    }

    pub fn from_unit(value: f64, unit: HeightUnit) -> Result<Self, String> {
        match unit {
            HeightUnit::Cm => Self::new(value),
            HeightUnit::In => Self::new(value * CM_PER_IN),
        }
    }

    pub fn cm(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for WeightKg {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        Self::new(v)
    }
}
impl From<WeightKg> for f64 {
    fn from(v: WeightKg) -> f64 {
        v.0
    }
}
impl TryFrom<f64> for HeightCm {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        Self::new(v)
    }
}
impl From<HeightCm> for f64 {
    fn from(v: HeightCm) -> f64 {
        v.0
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
