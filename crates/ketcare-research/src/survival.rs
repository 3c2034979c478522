//! Kaplan-Meier survival with the log(−log) ("exponential Greenwood") 95 % interval
//! (Kalbfleisch & Prentice 2002, The Statistical Analysis of Failure Time Data, §1.4), and the
//! median survival time with its interval read off that band (Brookmeyer & Crowley 1982,
//! Biometrics 38:29–41) — the conventions lifelines uses, against which the tests check it.

use crate::Z_975;
use serde::Serialize;

/// One step of the curve: at time `t`, `at_risk` subjects, `events` and `censored` there, and
/// the survival estimate with its 95 % interval just after `t`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KmRow {
    pub t: f64,
    pub at_risk: u64,
    pub events: u64,
    pub censored: u64,
    pub s: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The fitted curve and its median.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KaplanMeier {
    /// From t = 0 (S = 1), one row per distinct time.
    pub rows: Vec<KmRow>,
    /// The first time the estimate is at or below 0.5 (`None`: not reached).
    pub median: Option<f64>,
    pub median_lower: Option<f64>,
    pub median_upper: Option<f64>,
    pub n: u64,
    pub events: u64,
}

/// Fits the curve to `(time, event)` pairs (`event` false = censored). Times must be finite and
/// not negative; `None` otherwise or when there is no subject.
pub fn kaplan_meier(data: &[(f64, bool)]) -> Option<KaplanMeier> {
    if data.is_empty() || data.iter().any(|(t, _)| !t.is_finite() || *t < 0.0) {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = data.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = sorted.len() as u64;
    let mut rows = vec![KmRow {
        t: 0.0,
        at_risk: n,
        events: 0,
        censored: 0,
        s: 1.0,
        lower: 1.0,
        upper: 1.0,
    }];
    let (mut at_risk, mut s, mut greenwood) = (n, 1.0f64, 0.0f64);
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].0;
        let (mut d, mut c) = (0u64, 0u64);
        while i < sorted.len() && sorted[i].0 == t {
            if sorted[i].1 {
                d += 1
            } else {
                c += 1
            }
            i += 1;
        }
        if d > 0 {
            let (nf, df) = (at_risk as f64, d as f64);
            s *= 1.0 - df / nf;
            if at_risk > d {
                greenwood += df / (nf * (nf - df));
            }
        }
        let (lower, upper) = band(s, greenwood);
        let row = KmRow {
            t,
            at_risk,
            events: d,
            censored: c,
            s,
            lower,
            upper,
        };
        if t == 0.0 {
            rows[0] = KmRow {
                lower: row.lower.min(1.0),
                upper: row.upper.min(1.0),
                ..row
            };
        } else {
            rows.push(row);
        }
        at_risk -= d + c;
    }
    let first_at_or_below = |f: fn(&KmRow) -> f64| rows.iter().find(|r| f(r) <= 0.5).map(|r| r.t);
    Some(KaplanMeier {
        median: first_at_or_below(|r| r.s),
        median_lower: first_at_or_below(|r| r.lower),
        median_upper: first_at_or_below(|r| r.upper),
        n,
        events: rows.iter().map(|r| r.events).sum(),
        rows,
    })
}

/// The log(−log) band around `s` with Greenwood's sum `g` (S = 1 or 0: the band is the point).
fn band(s: f64, g: f64) -> (f64, f64) {
    if s >= 1.0 || s <= 0.0 {
        return (s, s);
    }
    let v = s.ln();
    let w = Z_975 * (g / (v * v)).sqrt();
    let ll = (-v).ln();
    ((-(ll + w).exp()).exp(), (-(ll - w).exp()).exp())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_textbook_curve() {
        // Kleinbaum & Klein, Survival Analysis (3rd ed.), remission data group 1 (6-MP):
        // times 6,6,6,7,10,13,16,22,23 events; 6,9,10,11,17,19,20,25,32,32,34,35 censored.
        let ev = [6.0, 6.0, 6.0, 7.0, 10.0, 13.0, 16.0, 22.0, 23.0];
        let ce = [
            6.0, 9.0, 10.0, 11.0, 17.0, 19.0, 20.0, 25.0, 32.0, 32.0, 34.0, 35.0,
        ];
        let data: Vec<(f64, bool)> = ev
            .iter()
            .map(|t| (*t, true))
            .chain(ce.iter().map(|t| (*t, false)))
            .collect();
        let km = kaplan_meier(&data).unwrap();
        let at = |t: f64| km.rows.iter().rev().find(|r| r.t <= t).unwrap().s;
        // The published estimates: 0.8571, 0.8067, 0.7529, 0.6902, 0.6275, 0.5378, 0.4482.
        for (t, s) in [
            (6.0, 0.8571),
            (7.0, 0.8067),
            (10.0, 0.7529),
            (13.0, 0.6902),
            (16.0, 0.6275),
            (22.0, 0.5378),
            (23.0, 0.4482),
        ] {
            assert!((at(t) - s).abs() < 5e-5, "S({t}) = {}", at(t));
        }
        assert_eq!(km.median, Some(23.0));
        assert_eq!(km.n, 21);
        assert_eq!(km.events, 9);
        assert!(kaplan_meier(&[]).is_none());
        assert!(kaplan_meier(&[(f64::NAN, true)]).is_none());
    }
}
