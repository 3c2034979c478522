//! Logistic regression by Newton-Raphson (iteratively reweighted least squares), with an
//! intercept: coefficients, standard errors from the inverse observed information, Wald z,
//! two-sided p-values, odds ratios with 95 % intervals.

// Index loops read as the matrix algebra they implement.
#![allow(clippy::needless_range_loop)]

use crate::linalg::{Matrix, cholesky, inverse, solve};
use crate::{Coefficient, FitError};
use serde::Serialize;

const MAX_ITER: usize = 100;
const TOL: f64 = 1e-10;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogisticFit {
    /// The intercept first, then one per covariate, in the order named.
    pub coefficients: Vec<Coefficient>,
    pub log_likelihood: f64,
    pub n: usize,
    pub events: usize,
    pub iterations: usize,
}

/// Fits `y` (true = event) on the covariate rows `x` (all the same length as `names`).
pub fn fit(names: &[&str], x: &[Vec<f64>], y: &[bool]) -> Result<LogisticFit, FitError> {
    if x.is_empty() || x.len() != y.len() {
        return Err(FitError::Empty);
    }
    let p = names.len() + 1;
    if let Some(r) = x.iter().find(|r| r.len() + 1 != p) {
        return Err(FitError::Shape {
            expected: p - 1,
            got: r.len(),
        });
    }
    if x.iter().flatten().any(|v| !v.is_finite()) {
        return Err(FitError::NotFinite);
    }
    let events = y.iter().filter(|v| **v).count();
    if events == 0 || events == y.len() {
        return Err(FitError::NoVariation);
    }
    let mut beta = vec![0.0; p];
    let mut ll_prev = f64::NEG_INFINITY;
    for iter in 1..=MAX_ITER {
        let (ll, grad, info) = evaluate(&beta, x, y);
        let l = cholesky(&info).ok_or(FitError::Singular)?;
        let step = solve(&l, &grad);
        for (b, s) in beta.iter_mut().zip(&step) {
            *b += s;
        }
        if (ll - ll_prev).abs() < TOL && step.iter().all(|s| s.abs() < 1e-8) {
            // The log-likelihood and information at the final estimate.
            let (ll, _, info) = evaluate(&beta, x, y);
            let cov = inverse(&cholesky(&info).ok_or(FitError::Singular)?);
            let coefficients = std::iter::once("intercept")
                .chain(names.iter().copied())
                .enumerate()
                .map(|(i, name)| Coefficient::new(name, beta[i], cov[i][i].sqrt()))
                .collect();
            return Ok(LogisticFit {
                coefficients,
                log_likelihood: ll,
                n: y.len(),
                events,
                iterations: iter,
            });
        }
        ll_prev = ll;
    }
    Err(FitError::NoConvergence(MAX_ITER))
}

/// The log-likelihood, its gradient and the information matrix at `beta` (intercept first).
fn evaluate(beta: &[f64], x: &[Vec<f64>], y: &[bool]) -> (f64, Vec<f64>, Matrix) {
    let p = beta.len();
    let mut grad = vec![0.0; p];
    let mut info = vec![vec![0.0; p]; p];
    let mut ll = 0.0;
    for (xr, yi) in x.iter().zip(y) {
        let xi: Vec<f64> = std::iter::once(1.0).chain(xr.iter().copied()).collect();
        let eta: f64 = xi.iter().zip(beta).map(|(a, b)| a * b).sum();
        let mu = 1.0 / (1.0 + (-eta).exp());
        // log(1 + e^eta) computed without overflow.
        let softplus = if eta > 0.0 {
            eta + (-eta).exp().ln_1p()
        } else {
            eta.exp().ln_1p()
        };
        ll += if *yi { eta - softplus } else { -softplus };
        let r = f64::from(u8::from(*yi)) - mu;
        let w = mu * (1.0 - mu);
        for a in 0..p {
            grad[a] += xi[a] * r;
            for b in 0..p {
                info[a][b] += w * xi[a] * xi[b];
            }
        }
    }
    (ll, grad, info)
}
