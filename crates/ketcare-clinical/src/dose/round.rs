//! Rounding to what a syringe or pump can deliver.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Nearest multiple; halves go up.
    Nearest,
    Down,
    Up,
}

/// Removes binary noise (e.g. 0.1 × 3 = 0.30000000000000004) by keeping 12 significant
/// digits: relative error ≤ 5e-12, far below any clinical resolution.
pub(crate) fn clean(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = 11 - v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// `x` rounded to a multiple of `increment` (both > 0).
pub fn round_to(x: f64, increment: f64, direction: Direction) -> f64 {
    // Clean the quotient first so that 0.15 / 0.05 counts as exactly 3.
    let q = (x / increment * 1e6).round() / 1e6;
    let n = match direction {
        Direction::Nearest => q.round(),
        Direction::Down => q.floor(),
        Direction::Up => q.ceil(),
    };
    clean(n * increment)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rounding() {
        assert_eq!(round_to(35.15, 0.5, Direction::Nearest), 35.0);
        assert_eq!(round_to(35.25, 0.5, Direction::Nearest), 35.5);
        assert_eq!(round_to(0.15, 0.1, Direction::Nearest), 0.2);
        assert_eq!(round_to(3.5149, 0.01, Direction::Nearest), 3.51);
        assert_eq!(round_to(40.9, 1.0, Direction::Down), 40.0);
        assert_eq!(round_to(40.1, 1.0, Direction::Up), 41.0);
        assert_eq!(round_to(0.3, 0.1, Direction::Down), 0.3);
    }
}
