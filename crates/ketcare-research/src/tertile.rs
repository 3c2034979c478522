//! Tertiles of a continuous measure (a subject's predicted exposure, for example) and the
//! count of an outcome in each.
//!
//! The cut points are the 1/3 and 2/3 sample quantiles by linear interpolation between order
//! statistics (Hyndman and Fan 1996, definition 7: R's `quantile` default, numpy's
//! `percentile` and DuckDB's `quantile_cont`), so a reader can reproduce them from the export.
//! A value equal to a cut point belongs to the lower tertile: lowest is `v ≤ c₁`, middle
//! `c₁ < v ≤ c₂`, highest `v > c₂`. With ties at a cut point the three groups are not equal in
//! size; they are reported as they fall, never rebalanced.

use serde::Serialize;

/// The sample quantile `p` (0–1) of sorted, finite `v` (definition 7).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo as f64)
}

/// The two cut points of `values`; `None` with fewer than three values or any that is not
/// finite.
pub fn cut_points(values: &[f64]) -> Option<[f64; 2]> {
    if values.len() < 3 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some([quantile(&v, 1.0 / 3.0), quantile(&v, 2.0 / 3.0)])
}

/// The tertile (0 lowest, 1 middle, 2 highest) of `v` under `cuts` (a cut point belongs to the
/// tertile below it).
pub fn tertile_of(v: f64, cuts: [f64; 2]) -> usize {
    if v <= cuts[0] {
        0
    } else if v <= cuts[1] {
        1
    } else {
        2
    }
}

/// One tertile: its range of values and how many of its subjects had the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TertileCount {
    /// Subjects in the tertile.
    pub n: u64,
    /// Of them, with the outcome.
    pub events: u64,
}

/// A measure's cut points and the outcome counted per tertile (lowest first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tertiles {
    pub cuts: [f64; 2],
    pub counts: [TertileCount; 3],
}

/// Splits `(value, outcome)` pairs into tertiles of the value and counts the outcome in each;
/// `None` under three pairs (or a value not finite).
pub fn tertiles(pairs: &[(f64, bool)]) -> Option<Tertiles> {
    let values: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let cuts = cut_points(&values)?;
    let mut counts = [TertileCount { n: 0, events: 0 }; 3];
    for (v, outcome) in pairs {
        let c = &mut counts[tertile_of(*v, cuts)];
        c.n += 1;
        c.events += u64::from(*outcome);
    }
    Some(Tertiles { cuts, counts })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn cut_points_interpolate_between_order_statistics() {
        // 1..=7: h = 6/3 = 2 and 6·2/3 = 4 fall on order statistics 3 and 5 exactly.
        let v: Vec<f64> = (1..=7).map(f64::from).collect();
        assert_eq!(cut_points(&v), Some([3.0, 5.0]));
        // 10, 20, 30, 40: h = 1 and 2 → 20 and 30; unsorted input gives the same.
        assert_eq!(cut_points(&[40.0, 10.0, 30.0, 20.0]), Some([20.0, 30.0]));
        // 1..=5: h = 4/3 → 2 + 1/3; h = 8/3 → 3 + 2/3 (numpy.percentile(range(1,6), [100/3, 200/3])).
        let [a, b] = cut_points(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert!((a - (2.0 + 1.0 / 3.0)).abs() < 1e-12);
        assert!((b - (3.0 + 2.0 / 3.0)).abs() < 1e-12);
        assert_eq!(cut_points(&[1.0, 2.0]), None, "fewer than three");
        assert_eq!(cut_points(&[1.0, 2.0, f64::NAN]), None, "not finite");
    }

    #[test]
    fn a_value_at_a_cut_point_belongs_to_the_lower_tertile() {
        let cuts = [3.0, 5.0];
        assert_eq!(tertile_of(3.0, cuts), 0);
        assert_eq!(tertile_of(3.0 + 1e-9, cuts), 1);
        assert_eq!(tertile_of(5.0, cuts), 1);
        assert_eq!(tertile_of(5.0 + 1e-9, cuts), 2);
        assert_eq!(tertile_of(-1.0, cuts), 0);
    }

    #[test]
    fn outcomes_are_counted_per_tertile_at_the_boundaries() {
        // 1..=7 cut at 3 and 5: {1,2,3} {4,5} {6,7}; responders 1, 3, 5, 6, 7.
        let pairs: Vec<(f64, bool)> = (1..=7)
            .map(|i| (f64::from(i), [1, 3, 5, 6, 7].contains(&i)))
            .collect();
        let t = tertiles(&pairs).unwrap();
        assert_eq!(t.cuts, [3.0, 5.0]);
        assert_eq!(t.counts.map(|c| (c.n, c.events)), [(3, 2), (2, 1), (2, 2)]);
        // Ties at the cut point stay together in the lower tertile: 1, 2, 2, 2, 3, 4.
        // h = 5/3 → 2; h = 10/3 → 2 + (3 − 2)/3: the middle tertile is empty.
        let tied: Vec<(f64, bool)> = [1.0, 2.0, 2.0, 2.0, 3.0, 4.0]
            .iter()
            .map(|v| (*v, true))
            .collect();
        let t = tertiles(&tied).unwrap();
        assert_eq!(t.cuts[0], 2.0);
        assert!((t.cuts[1] - (2.0 + 1.0 / 3.0)).abs() < 1e-12);
        assert_eq!(t.counts.map(|c| c.n), [4, 0, 2]);
        // Every pair is counted exactly once.
        assert_eq!(t.counts.iter().map(|c| c.n).sum::<u64>(), 6);
        assert_eq!(tertiles(&pairs[..2]), None);
    }
}
