//! An independent check of the population path: a 3-compartment mammillary model
//! (micro-constants) given as one constant-rate IV infusion, sampled on a uniform grid, by sums of
//! exponentials instead of the matrix exponential. Tests compare the public path with it; the
//! benchmark ([`bench_report`]) times the public path itself.
//!
//! Per subject the plasma response is a sum of three exponentials (eigenvalues of the cubic,
//! closed form); on a uniform grid each exponential term advances by one multiplication and one
//! addition per step. Subjects run in lanes of 64 (vectorised), on every core
//! (`std::thread::scope`); percentile bands come from per-time-point selections
//! (`select_nth_unstable`) over the concentration matrix, not a full sort.

#![allow(clippy::needless_range_loop)] // indexed loops over fixed-size lane arrays vectorise

use crate::error::{PkError, positive};
use crate::model::Library;
use crate::population::{Stat, subject_rng};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::Serialize;
use std::time::Instant;

const LANES: usize = 64;
/// Subjects per RNG block: results do not depend on the number of threads.
const BLOCK: usize = 1024;

/// Micro-constants of a 3-compartment mammillary model (1/min) and V1 (L).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Micro3 {
    pub v1: f64,
    pub k10: f64,
    pub k12: f64,
    pub k13: f64,
    pub k21: f64,
    pub k31: f64,
}

impl Micro3 {
    /// Exponents λ (1/min, descending) and coefficients A (1/L) of the unit-bolus response
    /// `C(t) = Σ A_i e^{−λ_i t}`.
    pub fn exponentials(&self) -> ([f64; 3], [f64; 3]) {
        let Micro3 {
            v1,
            k10,
            k12,
            k13,
            k21,
            k31,
        } = *self;
        let a2 = k10 + k12 + k13 + k21 + k31;
        let a1 = k10 * k21 + k10 * k31 + k12 * k31 + k13 * k21 + k21 * k31;
        let a0 = k10 * k21 * k31;
        // λ³ − a2 λ² + a1 λ − a0 = 0 with λ = y + a2/3: y³ + p y + q = 0.
        let p = a1 - a2 * a2 / 3.0;
        let q = -2.0 * a2 * a2 * a2 / 27.0 + a1 * a2 / 3.0 - a0;
        let r = (-p / 3.0).max(0.0).sqrt();
        let arg = if r > 0.0 {
            (-q / (2.0 * r * r * r)).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let phi = arg.acos() / 3.0;
        let tau = 2.0 * std::f64::consts::PI / 3.0;
        let mut l = [0.0; 3];
        for (k, lk) in l.iter_mut().enumerate() {
            *lk = 2.0 * r * (phi - tau * k as f64).cos() + a2 / 3.0;
        }
        l.sort_by(|a, b| b.total_cmp(a));
        let mut a = [0.0; 3];
        for i in 0..3 {
            let (j, k) = ((i + 1) % 3, (i + 2) % 3);
            a[i] = (k21 - l[i]) * (k31 - l[i]) / ((l[j] - l[i]) * (l[k] - l[i])) / v1;
        }
        (l, a)
    }
}

/// The benchmark case: a 3-compartment model, infusion, variability, grid and N.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchSpec {
    pub model: String,
    pub weight_kg: f64,
    pub dose_mg_per_kg: f64,
    pub infusion_min: f64,
    pub horizon_min: f64,
    pub step_min: f64,
    /// Log-normal CV on V1, k10 and k12 (an assumption: the model publishes none).
    pub cv: f64,
    pub subjects: usize,
    pub seed: u64,
    pub threads: usize,
}

impl BenchSpec {
    /// Domino, 0.5 mg/kg over 40 min, 70 kg, 30% CV on V1, k10, k12, every minute for 6 h.
    pub fn domino(subjects: usize) -> BenchSpec {
        BenchSpec {
            model: "domino".into(),
            weight_kg: 70.0,
            dose_mg_per_kg: 0.5,
            infusion_min: 40.0,
            horizon_min: 360.0,
            step_min: 1.0,
            cv: 0.3,
            subjects,
            seed: 1,
            threads: std::thread::available_parallelism().map_or(1, |t| t.get()),
        }
    }
}

/// Result of a fast population run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchResult {
    pub subjects: usize,
    pub threads: usize,
    pub seconds: f64,
    pub subjects_per_second: f64,
    pub times_min: Vec<f64>,
    pub p5: Vec<f32>,
    pub median: Vec<f32>,
    pub p95: Vec<f32>,
    pub cmax_ng_ml: Stat,
    /// Trapezoidal AUC on the grid (ng·min/mL).
    pub auc_ng_min_ml: Stat,
}

/// Three quantiles (5, 50, 95 %) of non-negative f32 values by selection on their bit patterns.
fn bands_u32(row: &mut [u32]) -> [f32; 3] {
    let n = row.len();
    let k = |q: f64| ((n - 1) as f64 * q).round() as usize;
    let (k5, k50, k95) = (k(0.05), k(0.5), k(0.95));
    let (lo, med, hi) = row.select_nth_unstable(k50);
    let med = *med;
    let p5 = if k5 < k50 {
        *lo.select_nth_unstable(k5).1
    } else {
        med
    };
    let p95 = if k95 > k50 {
        *hi.select_nth_unstable(k95 - k50 - 1).1
    } else {
        med
    };
    [f32::from_bits(p5), f32::from_bits(med), f32::from_bits(p95)]
}

/// Per-subject state of one thread's subjects (structure of arrays).
#[derive(Default)]
struct Lanes {
    e: [Vec<f32>; 3],
    inc: [Vec<f32>; 3],
    s: [Vec<f32>; 3],
    mx: Vec<f32>,
    auc: Vec<f32>,
    prev: Vec<f32>,
}

impl Lanes {
    fn new(lo: usize, hi: usize, seed: u64, sd: f64, base: &Micro3, rate: f64, dt: f64) -> Lanes {
        let len = hi - lo;
        let z = || vec![0.0f32; len];
        let mut l = Lanes {
            e: [z(), z(), z()],
            inc: [z(), z(), z()],
            s: [z(), z(), z()],
            mx: z(),
            auc: z(),
            prev: z(),
        };
        let mut i = 0;
        while i < len {
            let b = (lo + i) / BLOCK;
            let mut rng = subject_rng(seed, b as u64);
            let end = ((b + 1) * BLOCK - lo).min(len);
            for k in i..end {
                let mut eta = [0.0; 3];
                for v in eta.iter_mut() {
                    let z: f64 = rng.sample(StandardNormal);
                    *v = (sd * z).exp();
                }
                let m = Micro3 {
                    v1: base.v1 * eta[0],
                    k10: base.k10 * eta[1],
                    k12: base.k12 * eta[2],
                    ..*base
                };
                let (lam, a) = m.exponentials();
                for j in 0..3 {
                    let e = (-lam[j] * dt).exp();
                    l.e[j][k] = e as f32;
                    // ng/mL added per step at the infusion rate.
                    l.inc[j][k] = (rate * a[j] / lam[j] * (1.0 - e) * 1000.0) as f32;
                }
            }
            i = end;
        }
        l
    }

    /// Advance rows `k0…` (row k is time k·dt) and write them as f32 bit patterns.
    fn advance(&mut self, k0: usize, rows: &mut [&mut [u32]], inf_steps: usize) {
        let len = self.mx.len();
        let mut i = 0;
        while i < len {
            let w = LANES.min(len - i);
            // Local fixed-size lanes (padding lanes stay zero): the loops below vectorise.
            let load = |v: &[f32]| {
                let mut a = [0.0f32; LANES];
                a[..w].copy_from_slice(&v[i..i + w]);
                a
            };
            let e = [load(&self.e[0]), load(&self.e[1]), load(&self.e[2])];
            let inc = [load(&self.inc[0]), load(&self.inc[1]), load(&self.inc[2])];
            let mut s = [load(&self.s[0]), load(&self.s[1]), load(&self.s[2])];
            let (mut mx, mut auc, mut prev) = (load(&self.mx), load(&self.auc), load(&self.prev));
            let mut c = prev;
            for (dk, row) in rows.iter_mut().enumerate() {
                let k = k0 + dk;
                if k > 0 && k <= inf_steps {
                    for j in 0..3 {
                        for l in 0..LANES {
                            s[j][l] = s[j][l] * e[j][l] + inc[j][l];
                        }
                    }
                } else if k > 0 {
                    for j in 0..3 {
                        for l in 0..LANES {
                            s[j][l] *= e[j][l];
                        }
                    }
                }
                // Comparisons written out (not f32::max) so they map to SIMD min/max.
                for l in 0..LANES {
                    let v = s[0][l] + s[1][l] + s[2][l];
                    let v = if v > 0.0 { v } else { 0.0 };
                    mx[l] = if v > mx[l] { v } else { mx[l] };
                    // Running sum; the trapezoid AUC is dt·(Σc − c_last/2) since c(0) = 0.
                    auc[l] += v;
                    c[l] = v;
                }
                match <&mut [u32; LANES]>::try_from(&mut row[i..i + w]) {
                    Ok(out) => {
                        for l in 0..LANES {
                            out[l] = c[l].to_bits();
                        }
                    }
                    Err(_) => {
                        for l in 0..w {
                            row[i + l] = c[l].to_bits();
                        }
                    }
                }
            }
            prev = c;
            let store = |v: &mut [f32], a: &[f32; LANES]| v[i..i + w].copy_from_slice(&a[..w]);
            for j in 0..3 {
                store(&mut self.s[j], &s[j]);
            }
            store(&mut self.mx, &mx);
            store(&mut self.auc, &auc);
            store(&mut self.prev, &prev);
            i += w;
        }
    }
}

/// The 5th, 50th and 95th percentiles (nearest rank) of non-negative f32 bit patterns, exactly,
/// by radix selection: a histogram of the top 16 bits finds the bin holding each rank, one pass
/// collects the few values in those bins, and a selection among them finishes.
fn bands_fr(row: &mut [u32], hist: &mut Vec<u32>, mark: &mut Vec<u8>) -> [f32; 3] {
    let n = row.len();
    let k = |q: f64| ((n - 1) as f64 * q).round() as usize;
    let ks = [k(0.05), k(0.5), k(0.95)];
    if n < 4096 {
        return bands_u32(row);
    }
    if hist.len() != 1 << 16 {
        *hist = vec![0; 1 << 16];
        *mark = vec![0; 1 << 16];
    }
    let (mut lo, mut hi) = (u32::MAX, 0u32);
    for &x in row.iter() {
        let b = x >> 16;
        hist[b as usize] += 1;
        lo = lo.min(b);
        hi = hi.max(b);
    }
    // Bin and rank within the bin of each wanted rank.
    let mut bins = [0u32; 3];
    let mut within = [0usize; 3];
    let mut seen = 0usize;
    let mut j = 0;
    for b in lo..=hi {
        let c = hist[b as usize] as usize;
        while j < 3 && ks[j] < seen + c {
            bins[j] = b;
            within[j] = ks[j] - seen;
            j += 1;
        }
        seen += c;
        if j == 3 {
            break;
        }
    }
    hist[lo as usize..=hi as usize].fill(0);
    for (q, &b) in bins.iter().enumerate() {
        mark[b as usize] |= 1 << q;
    }
    let mut inside: [Vec<u32>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for &x in row.iter() {
        let m = mark[(x >> 16) as usize];
        if m != 0 {
            for (q, v) in inside.iter_mut().enumerate() {
                if m & (1 << q) != 0 {
                    v.push(x);
                }
            }
        }
    }
    for &b in &bins {
        mark[b as usize] = 0;
    }
    let mut out = [0f32; 3];
    for q in 0..3 {
        let v = &mut inside[q];
        let r = within[q].min(v.len().saturating_sub(1));
        out[q] = f32::from_bits(*v.select_nth_unstable(r).1);
    }
    out
}

/// The same three percentiles in one pass when each lies in a narrow window (relative half-width
/// `width`) around a predicted value (extrapolated from the previous time points): the values below each window
/// are counted (vectorised) and those inside collected; `None` when a rank falls outside its
/// window, and the caller falls back to [`bands_fr`]. Exact either way.
fn bands_windowed(
    row: &[u32],
    guess: [f32; 3],
    width: [f32; 3],
    inside: &mut [Vec<u32>; 3],
) -> Option<[f32; 3]> {
    if !guess.iter().all(|g| g.is_finite() && *g > 0.0) {
        return None;
    }
    let n = row.len();
    let k = |q: f64| ((n - 1) as f64 * q).round() as usize;
    let ks = [k(0.05), k(0.5), k(0.95)];
    // Non-negative f32 bit patterns order like i32, which SSE2 compares natively.
    let lo: [i32; 3] = [0, 1, 2].map(|j| (guess[j] * (1.0 - width[j])).to_bits() as i32);
    let hi: [i32; 3] = [0, 1, 2].map(|j| (guess[j] * (1.0 + width[j])).to_bits() as i32);
    for v in inside.iter_mut() {
        v.clear();
    }
    let mut below = [0usize; 3];
    let mut collect = |block: &[u32]| {
        for &x in block {
            for j in 0..3 {
                if (x as i32) >= lo[j] && (x as i32) <= hi[j] {
                    inside[j].push(x);
                }
            }
        }
    };
    let blocks = row.chunks_exact(32);
    let rest = blocks.remainder();
    for b in blocks {
        let Ok(b) = <&[u32; 32]>::try_from(b) else {
            continue;
        };
        // Values below each window, and up to its top: a difference means a value inside.
        let mut hit = false;
        for j in 0..3 {
            let under = b
                .iter()
                .map(|&x| u32::from((x as i32) < lo[j]))
                .sum::<u32>();
            let upto = b
                .iter()
                .map(|&x| u32::from((x as i32) <= hi[j]))
                .sum::<u32>();
            below[j] += under as usize;
            hit |= upto != under;
        }
        if hit {
            collect(b);
        }
    }
    for j in 0..3 {
        below[j] += rest.iter().filter(|&&x| (x as i32) < lo[j]).count();
    }
    collect(rest);
    let mut out = [0f32; 3];
    for j in 0..3 {
        let r = ks[j]
            .checked_sub(below[j])
            .filter(|r| *r < inside[j].len())?;
        out[j] = f32::from_bits(*inside[j].select_nth_unstable(r).1);
    }
    Some(out)
}

/// Simulate N subjects of a 3-compartment micro-constant model from the library, with bands and
/// per-subject Cmax and AUC; timed.
pub fn population_3cmt(lib: &Library, spec: &BenchSpec) -> Result<BenchResult, PkError> {
    let model = lib.model(&spec.model)?;
    let wt = positive("weight_kg", spec.weight_kg)?;
    positive("dose_mg_per_kg", spec.dose_mg_per_kg)?;
    positive("infusion_min", spec.infusion_min)?;
    positive("step_min", spec.step_min)?;
    if !(spec.cv.is_finite() && spec.cv >= 0.0) {
        return Err(PkError::input("cv", "must be ≥ 0"));
    }
    if spec.subjects == 0 || spec.subjects > 10_000_000 {
        return Err(PkError::input(
            "subjects",
            "must be between 1 and 10,000,000",
        ));
    }
    let steps = (spec.horizon_min / spec.step_min).round() as usize;
    let inf_steps = spec.infusion_min / spec.step_min;
    if (inf_steps - inf_steps.round()).abs() > 1e-9 || inf_steps.round() as usize > steps {
        return Err(PkError::input(
            "infusion_min",
            "must be a whole number of steps within the horizon",
        ));
    }
    let inf_steps = inf_steps.round() as usize;
    let (typ, _) = model.typical(&crate::Covariates {
        weight_kg: wt,
        age_years: None,
    })?;
    let get = |n: &str| {
        model.param_index(n).map(|i| typ[i]).ok_or_else(|| {
            PkError::input(
                "model",
                format!(
                    "{} is not a 3-compartment micro-constant model (no {n})",
                    spec.model
                ),
            )
        })
    };
    let base = Micro3 {
        v1: get("v1")?,
        k10: get("k10")?,
        k12: get("k12")?,
        k13: get("k13")?,
        k21: get("k21")?,
        k31: get("k31")?,
    };
    let rate = spec.dose_mg_per_kg * wt / spec.infusion_min;
    let sd = (1.0 + spec.cv * spec.cv).ln().sqrt();
    let n = spec.subjects;
    let nt = steps + 1;
    let threads = spec.threads.clamp(1, 64);
    let dt = spec.step_min;

    let start = Instant::now();
    // Subjects split by RNG blocks among threads.
    let blocks = n.div_ceil(BLOCK);
    let per = blocks.div_ceil(threads);
    let bounds: Vec<usize> = (0..=threads).map(|t| (t * per * BLOCK).min(n)).collect();
    let mut lanes: Vec<Lanes> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (lo, hi) = (bounds[t], bounds[t + 1]);
                s.spawn(move || Lanes::new(lo, hi, spec.seed, sd, &base, rate, dt))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    // Time rows in chunks that stay in cache: simulate the chunk for every subject, then select.
    // Time rows per chunk: few synchronisations, with the chunk's rows near 8 MB.
    let chunk = (2_000_000 / n).clamp(32, 128);
    let mut buf = vec![0u32; chunk * n];
    let mut bands = vec![[0f32; 3]; nt];
    let mut prevs: Vec<[Option<[f32; 3]>; 3]> = vec![[None, None, None]; threads];
    let mut errs: Vec<[f32; 3]> = vec![[0.0; 3]; threads];
    let mut k0 = 0;
    while k0 < nt {
        let k1 = (k0 + chunk).min(nt);
        let rows = k1 - k0;
        let mut segs: Vec<Vec<&mut [u32]>> =
            (0..threads).map(|_| Vec::with_capacity(rows)).collect();
        for row in buf[..rows * n].chunks_mut(n) {
            let mut rest = row;
            for t in 0..threads {
                let (a, b) = rest.split_at_mut(bounds[t + 1] - bounds[t]);
                segs[t].push(a);
                rest = b;
            }
        }
        std::thread::scope(|s| {
            for (ln, mut rows) in lanes.iter_mut().zip(segs) {
                s.spawn(move || ln.advance(k0, &mut rows, inf_steps));
            }
        });
        // Rows are dealt to threads in turn, so each thread sees every `threads`-th time point
        // and can predict its percentiles from its own three previous rows (across chunks too).
        let mut mine: Vec<Vec<(usize, &mut [u32])>> = (0..threads).map(|_| Vec::new()).collect();
        for (r, row) in buf[..rows * n].chunks_mut(n).enumerate() {
            mine[(k0 + r) % threads].push((k0 + r, row));
        }
        let done: Vec<Vec<(usize, [f32; 3])>> = std::thread::scope(|s| {
            let hs: Vec<_> = mine
                .into_iter()
                .zip(prevs.iter_mut().zip(errs.iter_mut()))
                .map(|(rws, (prev, err))| {
                    s.spawn(move || {
                        let (mut hist, mut mark) = (Vec::new(), Vec::new());
                        let mut inside: [Vec<u32>; 3] = Default::default();
                        let mut out = Vec::with_capacity(rws.len());
                        for (k, row) in rws {
                            // Quadratic extrapolation of the log percentiles.
                            let guess = match *prev {
                                [Some(p3), Some(p2), Some(p1)] if n >= 4096 => {
                                    Some([0, 1, 2].map(|j| {
                                        let l = 3.0 * p1[j].ln() - 3.0 * p2[j].ln() + p3[j].ln();
                                        l.exp()
                                    }))
                                }
                                _ => None,
                            };
                            // Window: three times the last prediction error, at least 0.08 %.
                            let width = err.map(|e| (3.0 * e).max(0.0008));
                            let b = guess
                                .filter(|_| width.iter().all(|w| *w < 0.02))
                                .and_then(|g| bands_windowed(row, g, width, &mut inside))
                                .unwrap_or_else(|| bands_fr(row, &mut hist, &mut mark));
                            *err = match guess {
                                Some(g) => [0, 1, 2].map(|j| {
                                    if b[j] > 0.0 {
                                        (g[j] / b[j] - 1.0).abs()
                                    } else {
                                        1.0
                                    }
                                }),
                                None => [0.0; 3],
                            };
                            *prev = [prev[1], prev[2], Some(b)];
                            out.push((k, b));
                        }
                        out
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (k, b) in done.into_iter().flatten() {
            bands[k] = b;
        }
        k0 = k1;
    }
    let cmax: Vec<f64> = lanes
        .iter()
        .flat_map(|l| l.mx.iter().map(|&v| f64::from(v)))
        .collect();
    let auc: Vec<f64> = lanes
        .iter()
        .flat_map(|l| l.auc.iter().map(|&v| f64::from(v)))
        .collect();
    lanes.clear();
    let (cmax_s, auc_s) = std::thread::scope(|s| {
        let h = s.spawn(|| Stat::of(&cmax));
        let a = Stat::of(&auc);
        (h.join().unwrap_or(a), a)
    });
    let seconds = start.elapsed().as_secs_f64();
    Ok(BenchResult {
        subjects: n,
        threads,
        seconds,
        subjects_per_second: n as f64 / seconds,
        times_min: (0..nt).map(|k| k as f64 * dt).collect(),
        p5: bands.iter().map(|b| b[0]).collect(),
        median: bands.iter().map(|b| b[1]).collect(),
        p95: bands.iter().map(|b| b[2]).collect(),
        cmax_ng_ml: cmax_s,
        auc_ng_min_ml: auc_s,
    })
}

/// One timed run of the public path: [`crate::simulate`] — the function `ketcare simulate`,
/// `POST /api/v1/pk/simulate` and the simulate page call — for the benchmark case (Domino,
/// 0.5 mg/kg over 40 min, 70 kg, CV 30 % on V1, 361 points, bands and per-subject summaries).
pub fn public_run(lib: &Library, subjects: usize) -> Result<(f64, crate::SimResult), PkError> {
    let req = crate::SimRequest {
        model: "domino".into(),
        regimen: crate::simple_regimen(crate::Route::IvInfusion, 0.5, 70.0, Some(40.0))?,
        covariates: crate::Covariates {
            weight_kg: 70.0,
            age_years: None,
        },
        options: Default::default(),
        horizon_min: 360.0,
        step_min: 1.0,
        population: Some(crate::PopulationSpec {
            subjects,
            seed: 1,
            iiv_cv: vec![("v1".into(), 0.3)],
            weight_sd_kg: None,
            target_ng_ml: Some(100.0),
        }),
        label: None,
    };
    let start = Instant::now();
    let r = crate::simulate(lib, &req, None)?;
    Ok((start.elapsed().as_secs_f64(), r))
}

/// The benchmark's report lines for N = 10,000 and 100,000 (used by `cargo bench` and
/// `ketcare bench pk`): the public path [`public_run`], best of three.
pub fn bench_report(lib: &Library, sizes: &[usize]) -> Result<Vec<(f64, String)>, PkError> {
    let mut out = Vec::new();
    public_run(lib, 2_000)?; // warm-up (page faults, thread start)
    for &n in sizes {
        let mut best = f64::INFINITY;
        let mut median = 0.0;
        for _ in 0..3 {
            let (secs, r) = public_run(lib, n)?;
            if secs < best {
                best = secs;
                median = r.population.map_or(0.0, |p| p.cmax_ng_ml.median);
            }
        }
        let line = format!(
            "public path (ketcare_pk::simulate): domino 0.5 mg/kg over 40 min, 70 kg, CV 30% on V1, 361 points, bands + Cmax/Tmax/AUC/time above: N = {:>7}  {:>8.1} ms  {:>10.0} subjects/s  ({} threads; median Cmax {:.0} ng/mL)",
            n,
            best * 1000.0,
            n as f64 / best,
            std::thread::available_parallelism().map_or(1, |t| t.get()),
            median
        );
        out.push((best, line));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    fn exact(v: &[u32]) -> [f32; 3] {
        let mut s = v.to_vec();
        s.sort_unstable();
        let k = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
        [k(0.05), k(0.5), k(0.95)].map(f32::from_bits)
    }

    #[test]
    fn histogram_and_windowed_selection_are_exact() {
        let mut rng = subject_rng(11, 0);
        let (mut hist, mut mark) = (Vec::new(), Vec::new());
        let mut inside: [Vec<u32>; 3] = Default::default();
        for n in [10usize, 5000, 20_001, 100_000] {
            let v: Vec<u32> = (0..n)
                .map(|_| {
                    let z: f64 = rng.sample(StandardNormal);
                    ((200.0 * (0.35 * z).exp()) as f32).to_bits()
                })
                .collect();
            let want = exact(&v);
            assert_eq!(
                bands_fr(&mut v.clone(), &mut hist, &mut mark),
                want,
                "n = {n}"
            );
            // A good guess gives the exact answer; a bad one gives none (never a wrong one).
            let near = want.map(|w| w * 1.0004);
            if let Some(got) = bands_windowed(&v, near, [0.002; 3], &mut inside) {
                assert_eq!(got, want, "n = {n}");
            }
            let far = want.map(|w| w * 1.5);
            assert_eq!(bands_windowed(&v, far, [0.002; 3], &mut inside), None);
        }
        // All zeros (the first time point).
        assert_eq!(
            bands_fr(&mut vec![0u32; 50_000], &mut hist, &mut mark),
            [0.0; 3]
        );
    }
}
