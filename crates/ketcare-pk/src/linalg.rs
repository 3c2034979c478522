//! Small dense matrices (row-major) and the matrix exponential (scaling and squaring with a
//! Taylor series carried to machine precision).

/// `c = a · b` for square `n × n` matrices.
pub(crate) fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            let (bk, ci) = (&b[k * n..(k + 1) * n], &mut c[i * n..(i + 1) * n]);
            for j in 0..n {
                ci[j] += aik * bk[j];
            }
        }
    }
    c
}

/// `y = a · x`.
pub(crate) fn matvec_add(a: &[f64], x: &[f64], y: &mut [f64]) {
    let n = x.len();
    for (i, yi) in y.iter_mut().enumerate() {
        let row = &a[i * n..(i + 1) * n];
        *yi += row.iter().zip(x).map(|(r, v)| r * v).sum::<f64>();
    }
}

/// Solves `a · y = b` for an `n × n` matrix by Gaussian elimination with partial pivoting,
/// leaving `y` in `b` (`a` is overwritten); `None` when `a` is singular to working precision.
pub(crate) fn solve_in_place(a: &mut [f64], b: &mut [f64], n: usize) -> Option<()> {
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for col in 0..n {
        let piv =
            (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        let p = a[piv * n + col];
        if p.is_nan() || p.abs() <= scale * 1e-13 {
            return None;
        }
        if piv != col {
            for j in 0..n {
                a.swap(col * n + j, piv * n + j);
            }
            b.swap(col, piv);
        }
        for i in col + 1..n {
            let f = a[i * n + col] / p;
            if f != 0.0 {
                for j in col..n {
                    a[i * n + j] -= f * a[col * n + j];
                }
                b[i] -= f * b[col];
            }
        }
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| a[i * n + j] * b[j]).sum();
        b[i] = (b[i] - s) / a[i * n + i];
    }
    b.iter().all(|v| v.is_finite()).then_some(())
}

fn norm1(a: &[f64], n: usize) -> f64 {
    (0..n)
        .map(|j| (0..n).map(|i| a[i * n + j].abs()).sum::<f64>())
        .fold(0.0, f64::max)
}

/// `exp(a)` for an `n × n` matrix (the independent check of [`propagator`]).
#[cfg(test)]
pub(crate) fn expm(a: &[f64], n: usize) -> Vec<f64> {
    let norm = norm1(a, n);
    let s = if norm > 0.25 {
        (norm / 0.25).log2().ceil() as i32
    } else {
        0
    };
    let scale = 0.5f64.powi(s);
    let x: Vec<f64> = a.iter().map(|v| v * scale).collect();
    // Taylor series: ‖x‖ ≤ 1/4, 20 terms leave < 1e-30.
    let mut result = vec![0.0; n * n];
    let mut term = vec![0.0; n * n];
    for i in 0..n {
        result[i * n + i] = 1.0;
        term[i * n + i] = 1.0;
    }
    for k in 1..=20 {
        term = matmul(&term, &x, n);
        let inv = 1.0 / k as f64;
        term.iter_mut().for_each(|t| *t *= inv);
        let mut small = true;
        for (r, t) in result.iter_mut().zip(&term) {
            *r += t;
            if t.abs() > 1e-18 * r.abs().max(1e-300) {
                small = false;
            }
        }
        if small {
            break;
        }
    }
    for _ in 0..s {
        result = matmul(&result, &result, n);
    }
    result
}

/// For `dx/dt = A x + u` with constant `u` over a step `h`: returns (Φ, Γ) with
/// `x(h) = Φ x(0) + Γ u`, i.e. `Φ = exp(A h)` and `Γ = ∫₀ʰ exp(A s) ds`.
///
/// Both come from one Taylor series on `n × n` matrices (the upper blocks of the exponential of
/// `[[A, I], [0, 0]]·h`, without forming the `2n × 2n` matrix): `h` is halved until
/// `‖A h‖₁ ≤ 1/4`, the series `Φ = Σ Xᵏ/k!`, `Γ = h Σ Xᵏ/(k+1)!` (`X = A h`) is carried to
/// machine precision, then each doubling applies `Γ(2t) = (I + Φ(t)) Γ(t)` and `Φ(2t) = Φ(t)²`.
pub(crate) fn propagator(a: &[f64], n: usize, h: f64) -> (Vec<f64>, Vec<f64>) {
    let norm = norm1(a, n) * h;
    let s = if norm > 0.25 {
        (norm / 0.25).log2().ceil() as i32
    } else {
        0
    };
    let hs = h * 0.5f64.powi(s);
    let x: Vec<f64> = a.iter().map(|v| v * hs).collect();
    let mut phi = vec![0.0; n * n];
    let mut gamma = vec![0.0; n * n];
    let mut term = vec![0.0; n * n];
    for i in 0..n {
        phi[i * n + i] = 1.0;
        gamma[i * n + i] = hs;
        term[i * n + i] = 1.0;
    }
    for k in 1..=24 {
        term = matmul(&term, &x, n);
        let inv = 1.0 / k as f64;
        term.iter_mut().for_each(|t| *t *= inv);
        let g = hs / (k + 1) as f64;
        let mut small = true;
        for ((p, gm), t) in phi.iter_mut().zip(gamma.iter_mut()).zip(&term) {
            *p += t;
            *gm += t * g;
            if t.abs() > 1e-18 * p.abs().max(1e-300) {
                small = false;
            }
        }
        if small {
            break;
        }
    }
    for _ in 0..s {
        let mut ip = phi.clone();
        for i in 0..n {
            ip[i * n + i] += 1.0;
        }
        gamma = matmul(&ip, &gamma, n);
        phi = matmul(&phi, &phi, n);
    }
    (phi, gamma)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_of_diagonal_and_of_a_rotation() {
        let e = expm(&[-2.0, 0.0, 0.0, -0.5], 2);
        assert!((e[0] - (-2.0f64).exp()).abs() < 1e-15);
        assert!((e[3] - (-0.5f64).exp()).abs() < 1e-15);
        let t = 3.0f64;
        let r = expm(&[0.0, -t, t, 0.0], 2);
        assert!((r[0] - t.cos()).abs() < 1e-13 && (r[2] - t.sin()).abs() < 1e-13);
    }

    /// The `n × n` series agrees with the exponential of the `2n × 2n` block matrix.
    #[test]
    fn propagator_equals_the_block_exponential() {
        let a = [
            -0.31, 0.02, 0.004, 0.0, 0.2, -0.02, 0.0, 0.0, 0.1, 0.0, -0.004, 0.0, 0.01, 0.0, 0.0,
            -0.6,
        ];
        let n = 4;
        for h in [0.01, 1.0, 7.5, 240.0] {
            let m = 2 * n;
            let mut big = vec![0.0; m * m];
            for i in 0..n {
                for j in 0..n {
                    big[i * m + j] = a[i * n + j] * h;
                }
                big[i * m + n + i] = h;
            }
            let e = expm(&big, m);
            let (phi, gamma) = propagator(&a, n, h);
            for i in 0..n {
                for j in 0..n {
                    let (p, g) = (e[i * m + j], e[i * m + n + j]);
                    assert!(
                        (phi[i * n + j] - p).abs() <= 1e-12 * p.abs().max(1.0),
                        "Φ h={h}"
                    );
                    assert!(
                        (gamma[i * n + j] - g).abs() <= 1e-11 * g.abs().max(1.0),
                        "Γ h={h}"
                    );
                }
            }
        }
    }

    #[test]
    fn propagator_of_one_compartment_infusion() {
        let (phi, gamma) = propagator(&[-0.1], 1, 5.0);
        assert!((phi[0] - (-0.5f64).exp()).abs() < 1e-15);
        assert!((gamma[0] - (1.0 - (-0.5f64).exp()) / 0.1).abs() < 1e-13);
    }
}
