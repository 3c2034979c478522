//! The research core: what a de-identified registry may show (Safe Harbor ages, days since the
//! patient's first treatment, cells under the site's k suppressed), and the statistics its
//! outcome tables and predictors use — proportions with Wilson intervals, Kaplan-Meier survival
//! with its median, tertiles of a measure with the outcome counted in each, logistic regression and Cox proportional hazards (Efron ties), each with
//! standard errors, Wald confidence intervals and p-values.
//!
//! Pure: no I/O, no clock, no randomness. Every estimate is cross-checked in tests against an
//! independent implementation (statsmodels and lifelines; `scripts/research-fixtures.py`).

pub mod cox;
pub mod deid;
pub mod export;
pub mod linalg;
pub mod logistic;
pub mod proportion;
pub mod survival;
pub mod tertile;

/// The two-sided 97.5th percentile of the standard normal distribution (95 % intervals).
pub const Z_975: f64 = 1.959_963_984_540_054;

/// Two-sided p-value of a Wald statistic `z` (standard normal).
pub fn two_sided_p(z: f64) -> f64 {
    libm::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// Why a model could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("no rows to fit")]
    Empty,
    #[error("rows have {got} covariates, expected {expected}")]
    Shape { expected: usize, got: usize },
    #[error("no events (or no non-events): the model cannot be estimated")]
    NoVariation,
    #[error(
        "the covariates are collinear (or separate the outcome): the information matrix is singular"
    )]
    Singular,
    #[error("did not converge in {0} iterations (the outcome may be separated by a covariate)")]
    NoConvergence(usize),
    #[error("a value is not finite")]
    NotFinite,
}

/// One fitted coefficient with its Wald statistics; `ratio` is exp(coef) (odds or hazard ratio).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Coefficient {
    pub name: String,
    pub coef: f64,
    pub se: f64,
    pub z: f64,
    pub p: f64,
    pub ratio: f64,
    pub ratio_lower: f64,
    pub ratio_upper: f64,
}

impl Coefficient {
    pub(crate) fn new(name: &str, coef: f64, se: f64) -> Coefficient {
        let z = coef / se;
        Coefficient {
            name: name.to_owned(),
            coef,
            se,
            z,
            p: two_sided_p(z),
            ratio: coef.exp(),
            ratio_lower: (coef - Z_975 * se).exp(),
            ratio_upper: (coef + Z_975 * se).exp(),
        }
    }
}
