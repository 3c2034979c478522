//! Small dense linear algebra for the regressions (a handful of covariates): solving and
//! inverting a symmetric positive-definite matrix by Cholesky decomposition.

// Index loops read as the matrix algebra they implement.
#![allow(clippy::needless_range_loop)]

/// A square matrix, row-major.
pub type Matrix = Vec<Vec<f64>>;

/// The lower-triangular Cholesky factor of `a`, or `None` when `a` is not positive definite.
pub fn cholesky(a: &Matrix) -> Option<Matrix> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves `a x = b` given the Cholesky factor `l` of `a`.
pub fn solve(l: &Matrix, b: &[f64]) -> Vec<f64> {
    let n = l.len();
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i][k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k][i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i][i];
    }
    x
}

/// The inverse of `a` from its Cholesky factor.
pub fn inverse(l: &Matrix) -> Matrix {
    let n = l.len();
    let mut inv = vec![vec![0.0; n]; n];
    for j in 0..n {
        let mut e = vec![0.0; n];
        e[j] = 1.0;
        let col = solve(l, &e);
        for i in 0..n {
            inv[i][j] = col[i];
        }
    }
    inv
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_inverts_a_known_matrix() {
        let a = vec![
            vec![4.0, 12.0, -16.0],
            vec![12.0, 37.0, -43.0],
            vec![-16.0, -43.0, 98.0],
        ];
        let l = cholesky(&a).expect("positive definite");
        // The textbook factor of this matrix.
        assert_eq!(l[0], vec![2.0, 0.0, 0.0]);
        assert_eq!(l[1], vec![6.0, 1.0, 0.0]);
        assert_eq!(l[2], vec![-8.0, 5.0, 3.0]);
        let x = solve(&l, &[1.0, 2.0, 3.0]);
        for (i, row) in a.iter().enumerate() {
            let b: f64 = row.iter().zip(&x).map(|(a, x)| a * x).sum();
            assert!((b - [1.0, 2.0, 3.0][i]).abs() < 1e-9);
        }
        let inv = inverse(&l);
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| a[i][k] * inv[k][j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9);
            }
        }
        assert!(cholesky(&vec![vec![1.0, 2.0], vec![2.0, 1.0]]).is_none());
    }
}
