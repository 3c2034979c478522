//! Virtual populations: log-normal IIV and covariate distributions, reproducible from a seed;
//! bands, Cmax, Tmax, AUC, time above a concentration and probability of target attainment.

use crate::error::{PkError, non_negative};
use crate::lanes::{self, LANES, Lane, LaneWork};
use crate::sim::{Prepared, Regimen, Workspace};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bands {
    pub output: String,
    pub p5: Vec<f64>,
    pub median: Vec<f64>,
    pub p95: Vec<f64>,
}

/// Summary of a population run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
    (1..times.len())
        .map(|i| segment_above(times[i - 1], conc[i - 1], times[i], conc[i], c))
        .sum()
}

/// Minutes at or above `c` on the segment from (`t0`, `a`) to (`t1`, `b`).
#[inline]
fn segment_above(t0: f64, a: f64, t1: f64, b: f64, c: f64) -> f64 {
    let dt = t1 - t0;
    match (a >= c, b >= c) {
        (true, true) => dt,
        (false, false) => 0.0,
        (true, false) => dt * (a - c) / (a - b),
        (false, true) => dt * (b - c) / (b - a),
    }
}

/// Bits of mantissa a [`Sketch`] bin keeps: 128 bins per octave, so a bin is at most 2⁻⁷ of its
/// lower edge wide and its midpoint within 2⁻⁸ (0.39 %) of any value in it.
pub const SKETCH_BITS: u32 = 7;
/// Relative error of a quantile read from a [`Sketch`] (half a bin).
pub const SKETCH_REL_ERROR: f64 = 1.0 / 256.0;
/// Values below 2⁻¹⁶ (1.5e-5 ng/mL, ng·min/mL or min) count as 0.
pub const SKETCH_FLOOR: f64 = 1.0 / 65_536.0;
const MIN_EXP: i64 = -16;
const MAX_EXP: i64 = 40;
const SHIFT: u32 = 52 - SKETCH_BITS;
/// The top bits of [`SKETCH_FLOOR`]: bin 0.
const BIN_BASE: u64 = ((MIN_EXP + 1023) as u64) << SKETCH_BITS;

#[inline]
fn bin_of(v: f64) -> Option<u64> {
    if v.is_nan() || v < SKETCH_FLOOR {
        return None;
    }
    let top = (((MAX_EXP + 1023) as u64) << SKETCH_BITS) - 1;
    Some((v.to_bits() >> SHIFT).clamp(BIN_BASE, top) - BIN_BASE)
}

fn bin_mid(i: u64) -> f64 {
    let lo = f64::from_bits((i + BIN_BASE) << SHIFT);
    let hi = f64::from_bits((i + BIN_BASE + 1) << SHIFT);
    (lo + hi) / 2.0
}

/// A quantile sketch of non-negative values with a fixed relative resolution: counts per
/// logarithmic bin (the top bits of the value's floating-point representation), kept only over
/// the range of bins the values reached. Memory depends on the spread of the values, not their
/// number; counts merge by addition, so the result does not depend on the order of insertion or
/// on the number of threads. A quantile is the midpoint of the bin holding the nearest-rank
/// element: within [`SKETCH_REL_ERROR`] of the exact nearest-rank quantile, or 0 when that
/// element is below [`SKETCH_FLOOR`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    n: u64,
    zeros: u64,
    lo: u64,
    counts: Vec<u32>,
}

impl Sketch {
    #[inline]
    pub fn insert(&mut self, v: f64) {
        self.n += 1;
        // A value in a bin already held (the usual case): one subtraction and a bounds check.
        // Values below the floor, negative or not a number fall outside and take the long way.
        let b = (v.to_bits() >> SHIFT).wrapping_sub(BIN_BASE + self.lo);
        if let Some(c) = self.counts.get_mut(b as usize) {
            *c += 1;
            return;
        }
        self.insert_new(v);
    }

    /// Inserts every value of `vs`: the same counts as [`Sketch::insert`] one by one, with the
    /// count of values added once rather than once per value.
    #[inline]
    pub fn insert_all(&mut self, vs: &[f64]) {
        let (lo, len) = (BIN_BASE + self.lo, self.counts.len());
        let bin = |v: f64| ((v.to_bits() >> SHIFT).wrapping_sub(lo)) as usize;
        let mut missed = 0;
        for &v in vs {
            match self.counts.get_mut(bin(v)) {
                Some(c) => *c += 1,
                None => missed += 1,
            }
        }
        self.n += (vs.len() - missed) as u64;
        if missed > 0 {
            // The values outside the bins held before this call, one by one.
            for &v in vs.iter().filter(|&&v| bin(v) >= len) {
                self.insert(v);
            }
        }
    }

    fn insert_new(&mut self, v: f64) {
        let Some(b) = bin_of(v) else {
            self.zeros += 1;
            return;
        };
        if self.counts.is_empty() {
            self.lo = b;
            self.counts.push(0);
        } else if b < self.lo {
            let grow = (self.lo - b) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.lo = b;
        } else if b >= self.lo + self.counts.len() as u64 {
            self.counts.resize((b - self.lo) as usize + 1, 0);
        }
        self.counts[(b - self.lo) as usize] += 1;
    }

    /// Add another sketch's counts to this one.
    pub fn merge(&mut self, o: &Sketch) {
        self.n += o.n;
        self.zeros += o.zeros;
        if o.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.lo = o.lo;
            self.counts = o.counts.clone();
            return;
        }
        let lo = self.lo.min(o.lo);
        let hi = (self.lo + self.counts.len() as u64).max(o.lo + o.counts.len() as u64);
        if lo < self.lo {
            self.counts
                .splice(0..0, std::iter::repeat_n(0, (self.lo - lo) as usize));
            self.lo = lo;
        }
        self.counts.resize((hi - lo) as usize, 0);
        let off = (o.lo - lo) as usize;
        for (c, v) in self.counts[off..].iter_mut().zip(&o.counts) {
            *c += v;
        }
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Nearest-rank quantiles (`q` ascending) read in one pass.
    pub fn quantiles<const K: usize>(&self, qs: [f64; K]) -> [f64; K] {
        let mut out = [f64::NAN; K];
        if self.n == 0 {
            return out;
        }
        let ranks = qs.map(|q| ((self.n - 1) as f64 * q).round() as u64);
        let mut seen = self.zeros;
        let mut j = 0;
        while j < K && ranks[j] < seen {
            out[j] = 0.0;
            j += 1;
        }
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            while j < K && ranks[j] < seen {
                out[j] = bin_mid(self.lo + i as u64);
                j += 1;
            }
        }
        out
    }

    /// Bytes the sketch holds.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Sketch>() + self.counts.capacity() * 4
    }
}

/// At most this many band rows (grid points × model outputs) per population run: each keeps a
/// [`Sketch`] per worker thread (a few kB each).
pub const MAX_BAND_ROWS: usize = 4_000;

/// Subjects per unit of work: a worker takes the next block; results do not depend on the
/// number of workers or their order.
const BLOCK: usize = 512;

/// What one worker gathers: per band row and per summary a sketch, Tmax per grid index,
/// attainment, and the sums of each block for exact means.
struct Gather {
    rows: Vec<Sketch>,
    cmax: Sketch,
    auc: Sketch,
    above: Sketch,
    tmax: Vec<u64>,
    attained: u64,
    sums: Vec<(usize, [f64; 4])>,
}

impl Gather {
    fn new(rows: usize, nt: usize) -> Gather {
        Gather {
            rows: vec![Sketch::default(); rows],
            cmax: Sketch::default(),
            auc: Sketch::default(),
            above: Sketch::default(),
            tmax: vec![0; nt],
            attained: 0,
            sums: Vec::new(),
        }
    }

    /// Bytes held.
    fn bytes(&self) -> usize {
        self.rows.iter().map(Sketch::bytes).sum::<usize>()
            + self.cmax.bytes()
            + self.auc.bytes()
            + self.above.bytes()
            + self.tmax.capacity() * 8
            + self.sums.capacity() * std::mem::size_of::<(usize, [f64; 4])>()
    }

    fn merge(&mut self, o: Gather) {
        for (a, b) in self.rows.iter_mut().zip(&o.rows) {
            a.merge(b);
        }
        self.cmax.merge(&o.cmax);
        self.auc.merge(&o.auc);
        self.above.merge(&o.above);
        for (a, b) in self.tmax.iter_mut().zip(&o.tmax) {
            *a += b;
        }
        self.attained += o.attained;
        self.sums.extend(o.sums);
    }
}

fn stat_of(s: &Sketch, mean: f64) -> Stat {
    let [p5, median, p95] = s.quantiles([0.05, 0.5, 0.95]);
    Stat {
        p5,
        median,
        p95,
        mean,
    }
}

/// Draws subject `i`'s parameters: log-normal IIV with the model's correlations, and weight.
struct Draw<'a> {
    prep: &'a Prepared,
    spec: &'a PopulationSpec,
    sds: &'a [f64],
    chol: &'a [f64],
    weight_kg: f64,
}

impl Draw<'_> {
    fn params(&self, i: usize, p: &mut [f64], z: &mut [f64]) {
        let np = p.len();
        let mut rng = subject_rng(self.spec.seed, i as u64);
        p.copy_from_slice(&self.prep.typical);
        z.iter_mut().for_each(|v| *v = rng.sample(StandardNormal));
        for (k, (pi, sd)) in p.iter_mut().zip(self.sds).enumerate() {
            // Correlated standard normals: row k of the Cholesky factor times z.
            let zk: f64 = (0..=k).map(|j| self.chol[k * np + j] * z[j]).sum();
            if *sd > 0.0 {
                *pi *= (sd * zk).exp();
            }
        }
        if let Some(sd) = self.spec.weight_sd_kg.filter(|s| *s > 0.0) {
            let z: f64 = rng.sample(StandardNormal);
            let w = (self.weight_kg + sd * z).clamp(self.weight_kg * 0.5, self.weight_kg * 1.5);
            // Weight-proportional parameters follow the sampled weight.
            let r = w / self.weight_kg;
            for (pi, name) in p.iter_mut().zip(&self.prep.names) {
                let e = self.prep.weight_exponent(name);
                if e != 0.0 {
                    *pi *= r.powf(e);
                }
            }
        }
    }
}

/// One subject's summaries, gathered point by point.
#[derive(Debug, Clone, Copy)]
struct Acc {
    cmax: f64,
    kmax: usize,
    auc: f64,
    above: f64,
    prev: Option<(f64, f64)>,
    finite: bool,
}

impl Acc {
    const NEW: Acc = Acc {
        cmax: f64::MIN,
        kmax: 0,
        auc: 0.0,
        above: 0.0,
        prev: None,
        finite: true,
    };

    /// The first output's concentration `c` at grid point `k` (time `t`).
    #[inline]
    fn point(&mut self, k: usize, t: f64, c: f64, target: Option<f64>) {
        if c > self.cmax {
            self.cmax = c;
            self.kmax = k;
        }
        if let (Some(tc), Some((t0, c0))) = (target, self.prev) {
            self.above += segment_above(t0, c0, t, c, tc);
        }
        self.prev = Some((t, c));
    }
}

/// Folds a chunk solved in lanes into the sketches and the first `m` subjects' summaries (the
/// same summaries as [`Acc::point`], computed across the lanes at once).
#[multiversion::multiversion(targets = "simd")]
fn fold_lanes(
    lw: &LaneWork,
    times: &[f64],
    n_out: usize,
    m: usize,
    target: Option<f64>,
    rows: &mut [Sketch],
    acc: &mut [Acc; LANES],
) {
    let nt = times.len();
    let mut finite = [true; LANES];
    for k in 0..nt {
        for o in 0..n_out {
            let c = &lw.conc[k * n_out + o];
            let row = &mut rows[o * nt + k];
            row.insert_all(&c[..m]);
            for l in 0..LANES {
                finite[l] &= c[l].is_finite();
            }
        }
    }
    let (mut cmax, mut kmax) = ([f64::MIN; LANES], [0usize; LANES]);
    for k in 0..nt {
        let c = &lw.conc[k * n_out];
        for l in 0..LANES {
            let gt = c[l] > cmax[l];
            cmax[l] = if gt { c[l] } else { cmax[l] };
            kmax[l] = if gt { k } else { kmax[l] };
        }
    }
    let mut above = [0.0; LANES];
    if let Some(tc) = target {
        for k in 1..nt {
            let (a, b) = (&lw.conc[(k - 1) * n_out], &lw.conc[k * n_out]);
            for l in 0..LANES {
                above[l] += segment_above(times[k - 1], a[l], times[k], b[l], tc);
            }
        }
    }
    for (l, a) in acc.iter_mut().enumerate() {
        a.cmax = cmax[l];
        a.kmax = kmax[l];
        a.above = above[l];
        a.finite = finite[l];
        a.auc = lw.auc[l];
    }
}

/// Run N subjects in one streaming pass. Each subject is solved exactly — 16 at a time in
/// vector lanes (`lanes.rs`), or alone with [`Prepared::solve`] (the typical person's solver)
/// where the chunk's subjects do not share their input times — and folded at once into the
/// per-time-point [`Sketch`]es and per-subject summaries; no subject's curve is kept, so
/// memory does not grow with N. Workers on every core take blocks of subjects; subject `i`
/// draws from [`subject_rng`]`(seed, i)`, so the result depends on the seed alone.
/// Bands and Cmax/AUC/time-above percentiles carry the sketch's stated error
/// ([`SKETCH_REL_ERROR`]); Tmax percentiles, means and target attainment are exact.
/// `progress` is called with the number of subjects done so far.
pub fn run(
    prep: &Prepared,
    reg: &Regimen,
    times: &[f64],
    spec: &PopulationSpec,
    weight_kg: f64,
    progress: Option<&(dyn Fn(usize) + Sync)>,
) -> Result<PopulationSummary, PkError> {
    run_with(prep, reg, times, spec, weight_kg, progress, true).map(|r| r.0)
}

/// [`run`], with `lanes` false solving every subject alone (tests compare the two); also
/// returns the bytes the workers' sketches and counts held.
fn run_with(
    prep: &Prepared,
    reg: &Regimen,
    times: &[f64],
    spec: &PopulationSpec,
    weight_kg: f64,
    progress: Option<&(dyn Fn(usize) + Sync)>,
    lanes: bool,
) -> Result<(PopulationSummary, usize), PkError> {
    if spec.subjects == 0 || spec.subjects > 1_000_000 {
        return Err(PkError::input(
            "subjects",
            "must be between 1 and 1,000,000",
        ));
    }
    crate::sim::check_times(times)?;
    let n_out = prep.outputs.len();
    let nt = times.len();
    if nt.saturating_mul(n_out) > MAX_BAND_ROWS {
        return Err(PkError::input(
            "step_min",
            format!(
                "a population run gives bands at most {MAX_BAND_ROWS} grid points × model outputs; this grid has {nt} points × {n_out} outputs: use a coarser step_min or a shorter horizon_min"
            ),
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
    let blocks = n.div_ceil(BLOCK);
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(blocks);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let np = prep.names.len();
    let draw = Draw {
        prep,
        spec,
        sds: &sds,
        chol: &chol,
        weight_kg,
    };
    // Subjects share their input times unless a model parameter changes with time or an
    // input's duration varies between subjects: then each subject is solved alone.
    let in_lanes = lanes && !prep.has_time_effect();
    let worker = || -> Result<Gather, PkError> {
        let mut g = Gather::new(nt * n_out, nt);
        let mut ws = Workspace::default();
        let mut lw = LaneWork::default();
        let mut p = vec![0.0; np];
        let mut z = vec![0.0; np];
        let mut lp: Vec<Lane> = vec![[0.0; LANES]; np];
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            if b >= blocks || failed.load(Ordering::Relaxed) {
                return Ok(g);
            }
            let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
            let mut sums = [0.0; 4];
            let mut i = lo;
            while i < hi {
                // A chunk of up to LANES subjects; a short last chunk repeats its last subject
                // in the unused lanes, whose results are dropped.
                let m = (hi - i).min(LANES);
                lw.inputs.clear();
                for l in 0..LANES {
                    draw.params(i + l.min(m - 1), &mut p, &mut z);
                    for (lane, v) in lp.iter_mut().zip(&p) {
                        lane[l] = *v;
                    }
                    if in_lanes {
                        lw.inputs.push(prep.inputs(&p, reg)?);
                    }
                }
                let mut acc = [Acc::NEW; LANES];
                if in_lanes
                    && lanes::same_events(&lw.inputs)
                    && lanes::solve(prep, &lp, times, &mut lw)
                {
                    fold_lanes(
                        &lw,
                        times,
                        n_out,
                        m,
                        spec.target_ng_ml,
                        &mut g.rows,
                        &mut acc,
                    );
                } else {
                    for (l, a) in acc.iter_mut().enumerate().take(m) {
                        for (v, lane) in p.iter_mut().zip(&lp) {
                            *v = lane[l];
                        }
                        prep.solve(&p, reg, times, &mut ws, |k, x| {
                            for o in 0..n_out {
                                let c = prep.conc_of(&p, x, o);
                                a.finite &= c.is_finite();
                                g.rows[o * nt + k].insert(c);
                                if o == 0 {
                                    a.point(k, times[k], c, spec.target_ng_ml);
                                }
                            }
                            if k + 1 == nt {
                                a.auc = prep.auc_of(x);
                            }
                        })?;
                    }
                }
                for a in &acc[..m] {
                    if !a.finite || !a.auc.is_finite() {
                        failed.store(true, Ordering::Relaxed);
                        return Err(PkError::input(
                            "regimen",
                            "the prediction is not a finite number for this regimen",
                        ));
                    }
                    g.cmax.insert(a.cmax);
                    g.auc.insert(a.auc);
                    g.tmax[a.kmax] += 1;
                    if let Some(tc) = spec.target_ng_ml {
                        g.above.insert(a.above);
                        g.attained += u64::from(a.cmax >= tc);
                    }
                    sums[0] += a.cmax;
                    sums[1] += times[a.kmax];
                    sums[2] += a.auc;
                    sums[3] += a.above;
                }
                i += m;
            }
            g.sums.push((b, sums));
            let d = done.fetch_add(hi - lo, Ordering::Relaxed);
            if let Some(f) = progress {
                f(d + hi - lo);
            }
        }
    };
    let parts: Vec<Result<Gather, PkError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(PkError::input("subjects", "a worker failed")))
            })
            .collect()
    });
    let mut all = Gather::new(nt * n_out, nt);
    let mut held = 0;
    for part in parts {
        let part = part?;
        held += part.bytes();
        all.merge(part);
    }
    held += all.bytes();
    // Means: block sums added in block order, so they do not depend on the workers either.
    all.sums.sort_by_key(|s| s.0);
    let mut sum = [0.0; 4];
    for (_, s) in &all.sums {
        for j in 0..4 {
            sum[j] += s[j];
        }
    }
    let mean = |j: usize| sum[j] / n as f64;
    let mut bands = Vec::new();
    for (o, (id, _)) in prep.outputs.iter().enumerate() {
        let mut b = Bands {
            output: id.clone(),
            p5: Vec::with_capacity(nt),
            median: Vec::with_capacity(nt),
            p95: Vec::with_capacity(nt),
        };
        for k in 0..nt {
            let [a, m, z] = all.rows[o * nt + k].quantiles([0.05, 0.5, 0.95]);
            b.p5.push(a);
            b.median.push(m);
            b.p95.push(z);
        }
        bands.push(b);
    }
    // Tmax lies on the grid: its percentiles are exact, read from the counts per grid index.
    let tmax_q = |q: f64| {
        let rank = ((n - 1) as f64 * q).round() as u64;
        let mut seen = 0;
        for (k, c) in all.tmax.iter().enumerate() {
            seen += c;
            if rank < seen {
                return times[k];
            }
        }
        f64::NAN
    };
    Ok((
        PopulationSummary {
            subjects: n,
            seed: spec.seed,
            bands,
            cmax_ng_ml: stat_of(&all.cmax, mean(0)),
            tmax_min: Stat {
                p5: tmax_q(0.05),
                median: tmax_q(0.5),
                p95: tmax_q(0.95),
                mean: mean(1),
            },
            auc_ng_min_ml: stat_of(&all.auc, mean(2)),
            time_above_min: spec.target_ng_ml.map(|_| stat_of(&all.above, mean(3))),
            target_attainment: spec.target_ng_ml.map(|_| all.attained as f64 / n as f64),
            target_ng_ml: spec.target_ng_ml,
            iiv,
        },
        held,
    ))
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

    /// Sketch quantiles are within the stated relative error of exact nearest-rank quantiles,
    /// whatever the spread, and merging sketches equals inserting everything into one.
    #[test]
    fn sketch_quantiles_are_within_the_stated_error() {
        let mut rng = subject_rng(5, 0);
        for (n, spread) in [
            (1usize, 0.3),
            (7, 0.3),
            (1000, 0.05),
            (50_000, 0.6),
            (20_001, 3.0),
        ] {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    let z: f64 = rng.sample(StandardNormal);
                    200.0 * (spread * z).exp()
                })
                .collect();
            let (mut one, mut a, mut b) = (Sketch::default(), Sketch::default(), Sketch::default());
            for (i, &x) in v.iter().enumerate() {
                one.insert(x);
                if i % 3 == 0 { a.insert(x) } else { b.insert(x) }
            }
            a.merge(&b);
            assert_eq!(
                a.quantiles([0.05, 0.5, 0.95]),
                one.quantiles([0.05, 0.5, 0.95])
            );
            let exact = bands3(&mut v.clone());
            let got = one.quantiles([0.05, 0.5, 0.95]);
            for (g, e) in got.iter().zip(exact) {
                assert!((g - e).abs() <= SKETCH_REL_ERROR * e, "n {n}: {g} vs {e}");
            }
            // Memory follows the spread of the values, not their number.
            assert!(one.bytes() < 64 * 1024, "{}", one.bytes());
        }
        let mut z = Sketch::default();
        (0..10).for_each(|_| z.insert(0.0));
        z.insert(1e-9);
        assert_eq!(z.quantiles([0.05, 0.5, 0.95]), [0.0; 3]);
    }

    /// Every model prepared for every route it can take (an adult of 70 kg, 40 years), each with
    /// two doses of 17.5 mg, the second at 37.5 min (between grid points); `check(prep, regimen,
    /// "model route")` for each. Returns how many ran.
    fn every_model_and_route(mut check: impl FnMut(&Prepared, &Regimen, &str)) -> usize {
        use crate::sim::{Dose, Options, Route};
        let lib = crate::Library::builtin().unwrap();
        let cov = crate::Covariates {
            weight_kg: 70.0,
            age_years: Some(40.0),
        };
        let mut ran = 0;
        for m in &lib.models {
            for route in Route::ALL {
                let Ok(prep) = Prepared::new(&lib, m, &cov, &[route], &Options::default()) else {
                    continue;
                };
                let dose = |t: f64| Dose {
                    time_min: t,
                    route,
                    amount_mg: 17.5,
                    duration_min: (route == Route::IvInfusion).then_some(20.0),
                };
                let reg = Regimen {
                    doses: vec![dose(0.0), dose(37.5)],
                    iv_rates: vec![],
                };
                check(&prep, &reg, &format!("{} {}", m.id(), route.as_str()));
                ran += 1;
            }
        }
        ran
    }

    /// The run in lanes against the same subjects solved one by one (the typical person's
    /// solver), for every model and route, on a grid with an event between its points: bands
    /// within one sketch bin, Cmax/AUC/time-above means within 1e-9, the same attainment.
    #[test]
    fn lanes_agree_with_subjects_solved_one_by_one_for_every_model_and_route() {
        let times: Vec<f64> = (0..=240).map(|k| f64::from(k) * 2.0).collect();
        let ran = every_model_and_route(|prep, reg, what| {
            let spec = PopulationSpec {
                subjects: 203,
                seed: 5,
                iiv_cv: vec![],
                weight_sd_kg: Some(8.0),
                target_ng_ml: Some(20.0),
            };
            let a = run_with(prep, reg, &times, &spec, 70.0, None, true)
                .unwrap()
                .0;
            let b = run_with(prep, reg, &times, &spec, 70.0, None, false)
                .unwrap()
                .0;
            let close =
                |x: f64, y: f64, rel: f64| (x - y).abs() <= rel * x.abs().max(y.abs()) + 1e-9;
            for (ba, bb) in a.bands.iter().zip(&b.bands) {
                for (va, vb) in [
                    (&ba.p5, &bb.p5),
                    (&ba.median, &bb.median),
                    (&ba.p95, &bb.p95),
                ] {
                    for (k, (x, y)) in va.iter().zip(vb).enumerate() {
                        assert!(
                            close(*x, *y, 1.0 / 100.0),
                            "{what} {} t={}: {x} vs {y}",
                            ba.output,
                            times[k]
                        );
                    }
                }
            }
            assert!(
                close(a.cmax_ng_ml.mean, b.cmax_ng_ml.mean, 1e-9),
                "{what}: Cmax {:?} vs {:?}",
                a.cmax_ng_ml,
                b.cmax_ng_ml
            );
            assert!(
                close(a.auc_ng_min_ml.mean, b.auc_ng_min_ml.mean, 1e-9),
                "{what}: AUC {:?} vs {:?}",
                a.auc_ng_min_ml,
                b.auc_ng_min_ml
            );
            let (ta, tb) = (a.time_above_min.unwrap(), b.time_above_min.unwrap());
            assert!(
                close(ta.mean, tb.mean, 1e-9),
                "{what}: time above {ta:?} vs {tb:?}"
            );
            assert!(
                close(a.tmax_min.mean, b.tmax_min.mean, 1e-9),
                "{what}: Tmax"
            );
            assert_eq!(a.target_attainment, b.target_attainment, "{what}");
        });
        assert!(ran >= 20, "{ran}");
    }

    /// The subjects' curves integrated by a classical Runge–Kutta method (RK4, fixed step of
    /// 0.02 min, on `dx/dt = A x + u`: no matrix exponential, no lanes, no sketch) for the same
    /// subjects `Draw` gives the run; their exact nearest-rank quantiles by a full sort.
    fn rk4_population(
        prep: &Prepared,
        reg: &Regimen,
        times: &[f64],
        spec: &PopulationSpec,
    ) -> (Vec<Vec<f64>>, Vec<f64>) {
        let np = prep.names.len();
        let sds: Vec<f64> = prep.omega2.iter().map(|w| w.sqrt()).collect();
        let chol = cholesky(np, &prep.correlations).unwrap();
        let draw = Draw {
            prep,
            spec,
            sds: &sds,
            chol: &chol,
            weight_kg: 70.0,
        };
        let n = prep.n_states();
        let (mut p, mut z) = (vec![0.0; np], vec![0.0; np]);
        let mut curves = Vec::new();
        let mut aucs = Vec::new();
        for i in 0..spec.subjects {
            draw.params(i, &mut p, &mut z);
            let a = prep.matrix(&p);
            let ins = prep.inputs(&p, reg).unwrap();
            let f = |x: &[f64], u: &[f64]| -> Vec<f64> {
                (0..n)
                    .map(|r| u[r] + (0..n).map(|c| a[r * n + c] * x[c]).sum::<f64>())
                    .collect()
            };
            let (mut x, mut u) = (vec![0.0; n], vec![0.0; n]);
            let mut stops: Vec<f64> = times.to_vec();
            stops.extend(ins.boluses.iter().map(|b| b.0));
            stops.extend(ins.rates.iter().map(|r| r.0));
            stops.sort_by(f64::total_cmp);
            stops.dedup();
            let (mut t, mut curve) = (0.0, Vec::new());
            for &stop in stops.iter().filter(|s| **s <= times[times.len() - 1]) {
                let steps = ((stop - t) / 0.02).ceil().max(1.0) as usize;
                let h = (stop - t) / steps as f64;
                for _ in 0..steps {
                    if h <= 0.0 {
                        break;
                    }
                    let add = |k: &[f64], s: f64| -> Vec<f64> {
                        x.iter().zip(k).map(|(a, b)| a + s * b).collect()
                    };
                    let k1 = f(&x, &u);
                    let k2 = f(&add(&k1, h / 2.0), &u);
                    let k3 = f(&add(&k2, h / 2.0), &u);
                    let k4 = f(&add(&k3, h), &u);
                    for j in 0..n {
                        x[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
                    }
                }
                t = stop;
                for b in ins.boluses.iter().filter(|b| b.0 == t) {
                    x[b.1] += b.2;
                }
                for r in ins.rates.iter().filter(|r| r.0 == t) {
                    u[r.1] += r.2;
                }
                if times.contains(&t) {
                    curve.push(prep.conc_of(&p, &x, 0));
                }
            }
            aucs.push(prep.auc_of(&x));
            curves.push(curve);
        }
        (curves, aucs)
    }

    /// The public population run (lanes, sketches) against an independent Monte Carlo of the
    /// same subjects (RK4, exact quantiles by sorting) for every model and route: each band
    /// point within the sketch's stated error plus 1e-5 (the RK4 step's error), the AUC mean
    /// within 1e-5.
    #[test]
    fn the_population_agrees_with_an_rk4_monte_carlo_for_every_model_and_route() {
        let times: Vec<f64> = (0..=60).map(|k| f64::from(k) * 2.0).collect();
        let mut ran = 0;
        every_model_and_route(|prep, reg, what| {
            if prep.has_time_effect() {
                return; // RK4 of a time-varying A: ode_check's Flint test.
            }
            let spec = PopulationSpec {
                subjects: 41,
                seed: 3,
                iiv_cv: vec![],
                weight_sd_kg: Some(8.0),
                target_ng_ml: None,
            };
            let r = run(prep, reg, &times, &spec, 70.0, None).unwrap();
            let (curves, aucs) = rk4_population(prep, reg, &times, &spec);
            for (k, t) in times.iter().enumerate() {
                let mut col: Vec<f64> = curves.iter().map(|c| c[k]).collect();
                let exact = bands3(&mut col);
                let b = &r.bands[0];
                for (got, want) in [b.p5[k], b.median[k], b.p95[k]].into_iter().zip(exact) {
                    let tol = (SKETCH_REL_ERROR + 1e-5) * want.abs() + SKETCH_FLOOR;
                    assert!(
                        (got - want).abs() <= tol,
                        "{what} t={t}: {got} vs RK4 {want}"
                    );
                }
            }
            let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
            let got = r.auc_ng_min_ml.mean;
            assert!(
                (got - mean).abs() <= 1e-5 * mean,
                "{what}: AUC {got} vs RK4 {mean}"
            );
            ran += 1;
        });
        assert!(ran >= 15, "{ran}");
    }

    /// Memory does not grow with N: the sketches of 40,000 subjects hold about what those of
    /// 4,000 hold, far below what keeping every curve would take (40,000 × 361 × 8 bytes =
    /// 115 MB), and below the 100 MB bound at any N.
    #[test]
    fn memory_does_not_grow_with_subjects() {
        let lib = crate::Library::builtin().unwrap();
        let m = lib.model("domino").unwrap();
        let cov = crate::Covariates {
            weight_kg: 70.0,
            age_years: None,
        };
        let prep = Prepared::new(
            &lib,
            m,
            &cov,
            &[crate::Route::IvInfusion],
            &Default::default(),
        )
        .unwrap();
        let reg = crate::simple_regimen(crate::Route::IvInfusion, 0.5, 70.0, Some(40.0)).unwrap();
        let times: Vec<f64> = (0..=360).map(f64::from).collect();
        let held = |subjects| {
            let spec = PopulationSpec {
                subjects,
                seed: 1,
                iiv_cv: vec![("v1".into(), 0.3)],
                weight_sd_kg: None,
                target_ng_ml: Some(100.0),
            };
            run_with(&prep, &reg, &times, &spec, 70.0, None, true)
                .unwrap()
                .1
        };
        let (small, large) = (held(4_000), held(40_000));
        let curves = 40_000 * times.len() * 8;
        assert!(large < 2 * small, "{small} → {large} bytes");
        assert!(large * 20 < curves && large < 100 << 20, "{large} bytes");
    }

    #[test]
    fn time_above_interpolates() {
        assert_eq!(time_above(&[0.0, 1.0, 2.0], &[0.0, 2.0, 0.0], 1.0), 1.0);
    }
}
