//! A proportion with its 95 % Wilson score interval (Wilson 1927, J Am Stat Assoc 22:209–212),
//! which stays inside 0–1 and behaves at small n and at 0 % or 100 %, unlike the Wald interval.

use crate::Z_975;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    pub k: u64,
    pub n: u64,
    pub p: f64,
    pub lower: f64,
    pub upper: f64,
}

/// `k` of `n` with the 95 % Wilson interval; `None` when `n` is 0 or `k > n`.
pub fn wilson(k: u64, n: u64) -> Option<Proportion> {
    if n == 0 || k > n {
        return None;
    }
    let (kf, nf) = (k as f64, n as f64);
    let p = kf / nf;
    let z2 = Z_975 * Z_975;
    let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
    let half = Z_975 / (1.0 + z2 / nf) * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    Some(Proportion {
        k,
        n,
        p,
        // At 0 % and 100 % the bound is exactly the estimate (rounding could put it a hair away).
        lower: if k == 0 {
            0.0
        } else {
            (centre - half).clamp(0.0, p)
        },
        upper: if k == n {
            1.0
        } else {
            (centre + half).clamp(p, 1.0)
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_published_values() {
        // Newcombe 1998 (Stat Med 17:857–872), Table I, method 3 (score interval without
        // continuity correction): 81/263 → 0.2553–0.3662; 15/148 → 0.0624–0.1605;
        // 0/20 → 0–0.1611; 1/29 → 0.0061–0.1718.
        for (k, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let w = wilson(k, n).unwrap();
            assert!((w.lower - lo).abs() < 5e-5, "{k}/{n} lower {}", w.lower);
            assert!((w.upper - hi).abs() < 5e-5, "{k}/{n} upper {}", w.upper);
        }
        assert!(wilson(1, 0).is_none());
        assert!(wilson(3, 2).is_none());
    }

    proptest! {
        #[test]
        fn the_interval_holds_the_estimate_inside_zero_and_one(n in 1u64..5000, f in 0.0f64..=1.0) {
            let k = ((n as f64) * f).floor() as u64;
            let w = wilson(k, n).unwrap();
            prop_assert!(0.0 <= w.lower && w.lower <= w.p && w.p <= w.upper && w.upper <= 1.0);
        }
    }
}
