//! Virtual populations: log-normal IIV and covariate distributions, reproducible from a seed;
//! bands, Cmax, Tmax, AUC, time above a concentration and probability of target attainment.

use crate::error::{PkError, non_negative};
use crate::sim::{Prepared, Regimen};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::Serialize;

/// The RNG of subject `i` of a run with `seed`: independent of thread count and order.
pub fn subject_rng(seed: u64, i: u64) -> ChaCha8Rng {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

/// `q`-quantile (nearest rank) by selection; reorders `v`.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    *v.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
}

/// 5th, 50th and 95th percentiles by three nested selections (no full sort).
pub fn bands3(v: &mut [f64]) -> [f64; 3] {
    let n = v.len();
    if n == 0 {
        return [f64::NAN; 3];
    }
    let k = |q: f64| ((n - 1) as f64 * q).round() as usize;
    let (k5, k50, k95) = (k(0.05), k(0.5), k(0.95));
    let (lo, med, hi) = v.select_nth_unstable_by(k50, |a, b| a.total_cmp(b));
    let med = *med;
    let p5 = if k5 < k50 {
        *lo.select_nth_unstable_by(k5, |a, b| a.total_cmp(b)).1
    } else {
        med
    };
    let p95 = if k95 > k50 {
        *hi.select_nth_unstable_by(k95 - k50 - 1, |a, b| a.total_cmp(b))
            .1
    } else {
        med
    };
    [p5, med, p95]
}

/// Lower Cholesky factor of the correlation matrix (identity plus the given pairs), row-major;
/// `None` when it is not positive definite.
pub fn cholesky(n: usize, pairs: &[(usize, usize, f64)]) -> Option<Vec<f64>> {
    let mut r = vec![0.0; n * n];
    for i in 0..n {
        r[i * n + i] = 1.0;
    }
    for &(a, b, c) in pairs {
        if a < n && b < n {
            r[a * n + b] = c;
            r[b * n + a] = c;
        }
    }
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = r[i * n + i] - s;
                if d <= 0.0 {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (r[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Summary of one quantity across subjects.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub p5: f64,
    pub median: f64,
    pub p95: f64,
    pub mean: f64,
}

impl Stat {
    pub fn of(v: &[f64]) -> Stat {
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        let [p5, median, p95] = bands3(&mut v.to_vec());
        Stat {
            p5,
            median,
            p95,
            mean,
        }
    }
}

/// Population settings.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
pub struct PopulationSpec {
    pub subjects: usize,
    pub seed: u64,
    /// CVs (fractions) used instead of, or in the absence of, the model's IIV: an assumption.
    #[serde(default)]
    pub iiv_cv: Vec<(String, f64)>,
    /// Normal spread of weight around the person's weight (kg): a covariate distribution.
    #[serde(default)]
    pub weight_sd_kg: Option<f64>,
    /// Concentration for time-above and target attainment (ng/mL).
    #[serde(default)]
    pub target_ng_ml: Option<f64>,
}

/// Bands over time of one output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bands {
    pub output: String,
    pub p5: Vec<f64>,
    pub median: Vec<f64>,
    pub p95: Vec<f64>,
}

/// Summary of a population run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PopulationSummary {
    pub subjects: usize,
    pub seed: u64,
    pub bands: Vec<Bands>,
    pub cmax_ng_ml: Stat,
    pub tmax_min: Stat,
    pub auc_ng_min_ml: Stat,
    /// Minutes above `target_ng_ml` (linear interpolation between grid points).
    pub time_above_min: Option<Stat>,
    /// Fraction of subjects whose Cmax reaches `target_ng_ml`.
    pub target_attainment: Option<f64>,
    pub target_ng_ml: Option<f64>,
    /// Variability applied: (parameter, CV, where it comes from).
    pub iiv: Vec<(String, f64, String)>,
}

/// Minutes a curve spends at or above `c` (linear interpolation).
pub fn time_above(times: &[f64], conc: &[f64], c: f64) -> f64 {
    let mut total = 0.0;
    for i in 1..times.len() {
        let (a, b, dt) = (conc[i - 1], conc[i], times[i] - times[i - 1]);
        total += match (a >= c, b >= c) {
            (true, true) => dt,
            (false, false) => 0.0,
            (true, false) => dt * (a - c) / (a - b),
            (false, true) => dt * (b - c) / (b - a),
        };
    }
    total
}

/// Run N subjects. `progress` is called with the number of subjects done so far.
pub fn run(
    prep: &Prepared,
    reg: &Regimen,
    times: &[f64],
    spec: &PopulationSpec,
    weight_kg: f64,
    progress: Option<&(dyn Fn(usize) + Sync)>,
) -> Result<PopulationSummary, PkError> {
    if spec.subjects == 0 || spec.subjects > 1_000_000 {
        return Err(PkError::input(
            "subjects",
            "must be between 1 and 1,000,000",
        ));
    }
    let mut omega = prep.omega2.clone();
    let mut iiv = Vec::new();
    for (name, cv) in &spec.iiv_cv {
        let Some(i) = prep.names.iter().position(|n| n == name) else {
            return Err(PkError::input(
                format!("iiv_cv.{name}"),
                format!("not a parameter of {}", prep.model_id),
            ));
        };
        non_negative(&format!("iiv_cv.{name}"), *cv)?;
        omega[i] = (1.0 + cv * cv).ln();
    }
    for (i, w) in omega.iter().enumerate() {
        if *w > 0.0 {
            let user = spec.iiv_cv.iter().any(|(n, _)| n == &prep.names[i]);
            let from = if user {
                "assumption (user)"
            } else {
                "model file"
            };
            iiv.push((
                prep.names[i].clone(),
                (w.exp() - 1.0).sqrt(),
                from.to_string(),
            ));
        }
    }
    if let Some(sd) = spec.weight_sd_kg {
        non_negative("weight_sd_kg", sd)?;
    }
    if iiv.is_empty() && spec.weight_sd_kg.unwrap_or(0.0) == 0.0 && spec.subjects > 1 {
        return Err(PkError::input(
            "iiv_cv",
            format!(
                "the {} model has no published variability; give CVs as an assumption",
                prep.model_id
            ),
        ));
    }
    let sds: Vec<f64> = omega.iter().map(|w| w.sqrt()).collect();
    let chol = cholesky(prep.names.len(), &prep.correlations).ok_or_else(|| {
        PkError::input(
            "correlation",
            format!(
                "the {} model's correlations are not a valid correlation matrix",
                prep.model_id
            ),
        )
    })?;
    let n = spec.subjects;
    let nt = times.len();
    let n_out = prep.outputs.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n);
    let chunk = n.div_ceil(threads);
    let done = std::sync::atomic::AtomicUsize::new(0);
    // Per subject: outputs × times, then (cmax, tmax, auc, time above).
    type Part = (Vec<f64>, Vec<[f64; 4]>);
    let parts: Vec<Result<Part, PkError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (sds, done, chol) = (&sds, &done, &chol);
                s.spawn(move || -> Result<Part, PkError> {
                    let lo = t * chunk;
                    let hi = ((t + 1) * chunk).min(n);
                    let mut curves = Vec::with_capacity((hi - lo) * nt * n_out);
                    let mut stats = Vec::with_capacity(hi - lo);
                    for i in lo..hi {
                        let mut rng = subject_rng(spec.seed, i as u64);
                        let mut p = prep.typical.clone();
                        let z: Vec<f64> =
                            (0..p.len()).map(|_| rng.sample(StandardNormal)).collect();
                        for (k, (pi, sd)) in p.iter_mut().zip(sds).enumerate() {
                            // Correlated standard normals: row k of the Cholesky factor times z.
                            let zk: f64 = (0..=k).map(|j| chol[k * z.len() + j] * z[j]).sum();
                            if *sd > 0.0 {
                                *pi *= (sd * zk).exp();
                            }
                        }
                        if let Some(sd) = spec.weight_sd_kg.filter(|s| *s > 0.0) {
                            let z: f64 = rng.sample(StandardNormal);
                            let w = (weight_kg + sd * z).clamp(weight_kg * 0.5, weight_kg * 1.5);
                            // Weight-proportional parameters follow the sampled weight.
                            let r = w / weight_kg;
                            for (pi, name) in p.iter_mut().zip(&prep.names) {
                                if prep.weight_exponent(name) != 0.0 {
                                    *pi *= r.powf(prep.weight_exponent(name));
                                }
                            }
                        }
                        let prof = prep.simulate(&p, reg, times, false)?;
                        let c = &prof.conc[0];
                        let (mut cmax, mut tmax) = (f64::MIN, 0.0);
                        for (k, &v) in c.iter().enumerate() {
                            if v > cmax {
                                cmax = v;
                                tmax = times[k];
                            }
                        }
                        let auc = prof.auc.last().copied().unwrap_or(0.0);
                        let ta = spec.target_ng_ml.map_or(0.0, |tc| time_above(times, c, tc));
                        stats.push([cmax, tmax, auc, ta]);
                        for o in &prof.conc {
                            curves.extend_from_slice(o);
                        }
                        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if let Some(f) = progress
                            && d % 256 == 0
                        {
                            f(d);
                        }
                    }
                    Ok((curves, stats))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(PkError::input("subjects", "a worker failed")))
            })
            .collect()
    });
    let mut curves = Vec::with_capacity(n * nt * n_out);
    let mut stats = Vec::with_capacity(n);
    for p in parts {
        let (c, s) = p?;
        curves.extend(c);
        stats.extend(s);
    }
    if let Some(f) = progress {
        f(n);
    }
    let mut bands = Vec::new();
    let mut col = vec![0.0; n];
    for (o, (id, _)) in prep.outputs.iter().enumerate() {
        let mut b = Bands {
            output: id.clone(),
            p5: vec![],
            median: vec![],
            p95: vec![],
        };
        for k in 0..nt {
            for (i, c) in col.iter_mut().enumerate() {
                *c = curves[(i * n_out + o) * nt + k];
            }
            let [a, m, z] = bands3(&mut col);
            b.p5.push(a);
            b.median.push(m);
            b.p95.push(z);
        }
        bands.push(b);
    }
    let pick = |j: usize| stats.iter().map(|s| s[j]).collect::<Vec<f64>>();
    Ok(PopulationSummary {
        subjects: n,
        seed: spec.seed,
        bands,
        cmax_ng_ml: Stat::of(&pick(0)),
        tmax_min: Stat::of(&pick(1)),
        auc_ng_min_ml: Stat::of(&pick(2)),
        time_above_min: spec.target_ng_ml.map(|_| Stat::of(&pick(3))),
        target_attainment: spec
            .target_ng_ml
            .map(|tc| stats.iter().filter(|s| s[0] >= tc).count() as f64 / n as f64),
        target_ng_ml: spec.target_ng_ml,
        iiv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_match_a_full_sort() {
        let mut rng = subject_rng(7, 0);
        for n in [1usize, 2, 3, 20, 101, 1000] {
            let v: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let k = |q: f64| sorted[((n - 1) as f64 * q).round() as usize];
            assert_eq!(
                bands3(&mut v.clone()),
                [k(0.05), k(0.5), k(0.95)],
                "n = {n}"
            );
        }
    }

    #[test]
    fn correlated_draws_have_the_correlation() {
        let l = cholesky(3, &[(0, 2, 0.5)]).unwrap();
        let mut rng = subject_rng(3, 0);
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for _ in 0..20_000 {
            let z: Vec<f64> = (0..3).map(|_| rng.sample(StandardNormal)).collect();
            let x = l[0] * z[0];
            let y: f64 = (0..3).map(|j| l[6 + j] * z[j]).sum();
            sxy += x * y;
            sxx += x * x;
            syy += y * y;
        }
        let r = sxy / (sxx * syy).sqrt();
        assert!((r - 0.5).abs() < 0.03, "{r}");
        assert!(cholesky(2, &[(0, 1, 1.5)]).is_none());
    }

    #[test]
    fn time_above_interpolates() {
        assert_eq!(time_above(&[0.0, 1.0, 2.0], &[0.0, 2.0, 0.0], 1.0), 1.0);
    }
}
