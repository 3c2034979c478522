//! The population run's solver for [`LANES`] subjects at once: the same exact solution as
//! [`Prepared::solve`] (propagators `Φ = exp(A h)`, `Γ = ∫₀ʰ exp(A s) ds` from the same Taylor
//! series with scaling and squaring, applied at every event and grid time), with every inner loop
//! running over the subjects, so the compiler turns it into vector instructions and the
//! propagators are computed once per chunk of subjects and step length.
//!
//! It applies when the subjects of a chunk share the times of their inputs (the amounts may
//! differ): a model without time-varying parameters and inputs whose durations are not
//! subject parameters with variability. Otherwise the population run solves each subject alone.

use crate::sim::{Inputs, Prepared};

/// Subjects advanced together.
pub(crate) const LANES: usize = 16;

/// One value per subject of a chunk.
pub(crate) type Lane = [f64; LANES];

const ZERO: Lane = [0.0; LANES];

/// Buffers of one worker, reused from chunk to chunk.
#[derive(Debug, Default)]
pub(crate) struct LaneWork {
    /// The system matrix per subject (`n × n`, row-major).
    a: Vec<Lane>,
    /// Propagators per step length met in this chunk: (length bits, Φ, Γ).
    cache: Vec<(u64, Vec<Lane>, Vec<Lane>)>,
    /// Per row, the columns where Φ or Γ is non-zero for some subject (structurally non-zero).
    nz: Vec<Vec<usize>>,
    x: Vec<Lane>,
    y: Vec<Lane>,
    u: Vec<Lane>,
    term: Vec<Lane>,
    tmp: Vec<Lane>,
    /// Each subject's inputs.
    pub(crate) inputs: Vec<Inputs>,
    /// Concentrations (ng/mL) per grid point and output: `conc[k * outputs + o][subject]`.
    pub(crate) conc: Vec<Lane>,
    /// The first output's AUC at the last grid point (ng·min/mL).
    pub(crate) auc: Lane,
    /// Amount that entered each state by the last grid point (mg).
    given: Vec<Lane>,
}

/// Whether the chunk's subjects share their input times and states (then one walk over the
/// events serves them all).
pub(crate) fn same_events(inputs: &[Inputs]) -> bool {
    let Some((first, rest)) = inputs.split_first() else {
        return true;
    };
    let same = |a: &[(f64, usize, f64)], b: &[(f64, usize, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0.to_bits() == y.0.to_bits() && x.1 == y.1)
    };
    rest.iter()
        .all(|i| same(&first.boluses, &i.boluses) && same(&first.rates, &i.rates))
}

/// `c = a · b` for `n × n` matrices of lanes.
#[multiversion::multiversion(targets = "simd")]
fn matmul(a: &[Lane], b: &[Lane], c: &mut [Lane], n: usize) {
    c.iter_mut().for_each(|v| *v = ZERO);
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == ZERO {
                continue;
            }
            let (bk, ci) = (&b[k * n..(k + 1) * n], &mut c[i * n..(i + 1) * n]);
            for (cij, bkj) in ci.iter_mut().zip(bk) {
                for l in 0..LANES {
                    cij[l] = aik[l].mul_add(bkj[l], cij[l]);
                }
            }
        }
    }
}

/// Φ and Γ of every subject for a step `h` (as `linalg::propagator`, lane by lane; the scaling
/// is the largest any subject needs, so every subject's series converges as fast or faster).
#[multiversion::multiversion(targets = "simd")]
fn propagator(w: &mut LaneWork, n: usize, h: f64) -> (Vec<Lane>, Vec<Lane>) {
    let mut norm = 0.0f64;
    for l in 0..LANES {
        for j in 0..n {
            let col: f64 = (0..n).map(|i| w.a[i * n + j][l].abs()).sum();
            norm = norm.max(col * h);
        }
    }
    let s = if norm > 0.25 {
        (norm / 0.25).log2().ceil() as i32
    } else {
        0
    };
    let hs = h * 0.5f64.powi(s);
    let x: Vec<Lane> = w.a.iter().map(|v| v.map(|e| e * hs)).collect();
    let mut phi = vec![ZERO; n * n];
    let mut gamma = vec![ZERO; n * n];
    w.term.clear();
    w.term.resize(n * n, ZERO);
    w.tmp.clear();
    w.tmp.resize(n * n, ZERO);
    for i in 0..n {
        phi[i * n + i] = [1.0; LANES];
        gamma[i * n + i] = [hs; LANES];
        w.term[i * n + i] = [1.0; LANES];
    }
    // ‖Xᵏ/k!‖₁ ≤ ‖X‖₁ᵏ/k! (‖X‖₁ ≤ 1/4): the series stops when that bound is below 1e-18 of
    // ‖Φ‖₁ ≥ e^{−1/4}, a term count every subject's series has converged by.
    let xn = norm * 0.5f64.powi(s);
    let mut bound = 1.0;
    for k in 1..=24 {
        matmul(&w.term, &x, &mut w.tmp, n);
        std::mem::swap(&mut w.term, &mut w.tmp);
        let inv = 1.0 / k as f64;
        let g = hs / (k + 1) as f64;
        for e in 0..n * n {
            let (t, p, gm) = (&mut w.term[e], &mut phi[e], &mut gamma[e]);
            for l in 0..LANES {
                t[l] *= inv;
                p[l] += t[l];
                gm[l] = t[l].mul_add(g, gm[l]);
            }
        }
        bound *= xn * inv;
        if bound <= 1e-18 * 0.75 {
            break;
        }
    }
    for _ in 0..s {
        let mut ip = phi.clone();
        for i in 0..n {
            ip[i * n + i].iter_mut().for_each(|v| *v += 1.0);
        }
        matmul(&ip, &gamma, &mut w.tmp, n);
        std::mem::swap(&mut gamma, &mut w.tmp);
        matmul(&phi, &phi, &mut w.tmp, n);
        std::mem::swap(&mut phi, &mut w.tmp);
    }
    (phi, gamma)
}

/// The states a population run observes (its outputs) and every state they can be reached
/// from (`a[i][j]` non-zero: `j` flows into `i`), in index order: the others (the
/// eliminated-amount sink, the AUC state, an unused effect site) never flow back into these, so
/// leaving them out changes nothing. The AUC comes from these states instead ([`solve`]).
fn observed_states(prep: &Prepared, nonzero: &[bool]) -> Vec<usize> {
    let n = prep.n_states();
    let mut keep = vec![false; n];
    let mut stack: Vec<usize> = prep.output_states().iter().map(|o| o.0).collect();
    while let Some(i) = stack.pop() {
        if keep[i] {
            continue;
        }
        keep[i] = true;
        stack.extend((0..n).filter(|&j| j != i && nonzero[i * n + j] && !keep[j]));
    }
    (0..n).filter(|&i| keep[i]).collect()
}

/// Solve the chunk's subjects exactly at `times` (checked by `check_times`): `params[j][l]` is
/// parameter `j` of subject `l`, `w.inputs[l]` its inputs (sharing their times: [`same_events`]);
/// it runs on the observed states ([`observed_states`]) of the chunk's subjects. Leaves in `w.conc[k * outputs + o]` the
/// concentration (ng/mL) of output `o` at `times[k]` for each subject, and in `w.auc` the first
/// output's AUC (ng·min/mL) at the last time `T`, exactly: for `dx/dt = A x + u` on these states,
/// `∫₀ᵀ x dt = A⁻¹ (x(T) − ∫₀ᵀ u dt)` (boluses included in `u`). Returns `false`, leaving the
/// chunk to be solved subject by subject, when a subject's `A` cannot be inverted (a model with
/// no elimination from these states).
#[multiversion::multiversion(targets = "simd")]
pub(crate) fn solve(prep: &Prepared, params: &[Lane], times: &[f64], w: &mut LaneWork) -> bool {
    let full = prep.n_states();
    let mut p = vec![0.0; params.len()];
    let matrices: Vec<Vec<f64>> = (0..LANES)
        .map(|l| {
            for (pj, lane) in p.iter_mut().zip(params) {
                *pj = lane[l];
            }
            prep.matrix(&p)
        })
        .collect();
    let nonzero: Vec<bool> = (0..full * full)
        .map(|e| matrices.iter().any(|a| a[e] != 0.0))
        .collect();
    let states = observed_states(prep, &nonzero);
    let n = states.len();
    let at = |s: usize| states.iter().position(|&x| x == s);
    w.a.clear();
    w.a.resize(n * n, ZERO);
    for (l, a) in matrices.iter().enumerate() {
        for (i, &si) in states.iter().enumerate() {
            for (j, &sj) in states.iter().enumerate() {
                w.a[i * n + j][l] = a[si * full + sj];
            }
        }
    }
    // Per output: its state's row here and 1000 / its volume (mg/L → ng/mL).
    let outs: Vec<(usize, Lane)> = prep
        .output_states()
        .iter()
        .map(|&(s, v)| {
            (
                at(s).unwrap_or(0),
                std::array::from_fn(|l| 1000.0 / params[v][l]),
            )
        })
        .collect();
    let n_out = outs.len();
    let t_end = times.last().copied().unwrap_or(0.0);
    // What entered each state by T (mg): boluses, and each rate change × the time to T.
    w.given.clear();
    w.given.resize(n, ZERO);
    w.conc.clear();
    w.conc.resize(times.len() * n_out, ZERO);
    w.cache.clear();
    w.nz.truncate(n);
    w.nz.iter_mut().for_each(Vec::clear);
    w.nz.resize(n, Vec::new());
    w.x.clear();
    w.x.resize(n, ZERO);
    w.u.clear();
    w.u.resize(n, ZERO);
    w.y.clear();
    w.y.resize(n, ZERO);
    let events = w.inputs[0].clone();
    let (mut t, mut bi, mut ri, mut g) = (0.0, 0, 0, 0);
    // Whether any input rate is running (read again only when a rate changes).
    let mut with_u = false;
    while g < times.len() {
        let te = events
            .boluses
            .get(bi)
            .map_or(f64::INFINITY, |b| b.0)
            .min(events.rates.get(ri).map_or(f64::INFINITY, |r| r.0));
        let target = te.min(times[g]);
        if target > t {
            let h = target - t;
            let key = h.to_bits();
            let ci = match w.cache.iter().position(|c| c.0 == key) {
                Some(i) => i,
                None => {
                    let (phi, gamma) = propagator(w, n, h);
                    for (i, cols) in w.nz.iter_mut().enumerate() {
                        for j in 0..n {
                            let e = i * n + j;
                            if (phi[e] != ZERO || gamma[e] != ZERO) && !cols.contains(&j) {
                                cols.push(j);
                            }
                        }
                        cols.sort_unstable();
                    }
                    w.cache.push((key, phi, gamma));
                    w.cache.len() - 1
                }
            };
            let (_, phi, gamma) = &w.cache[ci];
            // Row by row, each sum kept in registers (not added into memory entry by entry).
            for (i, cols) in w.nz.iter().enumerate() {
                let mut acc = ZERO;
                for &j in cols {
                    let e = i * n + j;
                    let (ph, xj) = (&phi[e], &w.x[j]);
                    for l in 0..LANES {
                        acc[l] = ph[l].mul_add(xj[l], acc[l]);
                    }
                    if with_u {
                        let (gm, uj) = (&gamma[e], &w.u[j]);
                        for l in 0..LANES {
                            acc[l] = gm[l].mul_add(uj[l], acc[l]);
                        }
                    }
                }
                w.y[i] = acc;
            }
            std::mem::swap(&mut w.x, &mut w.y);
            t = target;
        }
        while bi < events.boluses.len() && events.boluses[bi].0 <= t {
            if let Some(s) = at(events.boluses[bi].1) {
                for l in 0..LANES {
                    let amt = w.inputs[l].boluses[bi].2;
                    w.x[s][l] += amt;
                    w.given[s][l] += amt;
                }
            }
            bi += 1;
        }
        while ri < events.rates.len() && events.rates[ri].0 <= t {
            if let Some(s) = at(events.rates[ri].1) {
                for l in 0..LANES {
                    let du = w.inputs[l].rates[ri].2;
                    let u = &mut w.u[s][l];
                    let before = *u;
                    *u += du;
                    if u.abs() < 1e-12 {
                        *u = 0.0;
                    }
                    w.given[s][l] += (*u - before) * (t_end - t);
                }
            }
            ri += 1;
            with_u = w.u.iter().flatten().any(|u| *u != 0.0);
        }
        while g < times.len() && times[g] <= t {
            for (o, (s, scale)) in outs.iter().enumerate() {
                let (x, c) = (&w.x[*s], &mut w.conc[g * n_out + o]);
                for l in 0..LANES {
                    c[l] = x[l] * scale[l];
                }
            }
            g += 1;
        }
    }
    let (c0, scale0) = outs[0];
    let mut m = vec![0.0; n * n];
    let mut rhs = vec![0.0; n];
    for l in 0..LANES {
        for (e, v) in m.iter_mut().zip(&w.a) {
            *e = v[l];
        }
        for (i, r) in rhs.iter_mut().enumerate() {
            *r = w.x[i][l] - w.given[i][l];
        }
        match crate::linalg::solve_in_place(&mut m, &mut rhs, n) {
            Some(()) => w.auc[l] = rhs[c0] * scale0[l],
            None => return false,
        }
    }
    true
}
