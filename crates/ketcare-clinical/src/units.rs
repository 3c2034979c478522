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

//! The quantities live in `ketcare-core` (one `WeightKg` for the chart and the calculator); this
//! module re-exports them under the clinical core's name.

pub use ketcare_core::units::{
    ConcentrationMgPerMl, DoseMg, HeightCm, MAX_MAGNITUDE, MIN_MAGNITUDE, MgPerHour, MgPerKg,
    MgPerKgPerHour, Minutes, RateMlPerH, UnitError, VolumeMl, WeightKg,
};
