//! Dose and pump-rate calculator with guardrails, and the order lifecycle.

mod calc;
mod order;
mod round;
mod types;

pub use calc::{calculate, check_patient_age};
pub use order::{DoseOrder, OrderError, OrderState, SoftLimitOverride, Verification};
pub use round::{Direction, round_to};
pub use types::*;
