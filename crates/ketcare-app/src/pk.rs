//! The pharmacokinetic model library as the application holds it, and its errors in domain
//! words.

use crate::error::{Error, Result};
use ketcare_pk::tci::{TciRequest, TciResult};
use ketcare_pk::{Library, PkError, SimRequest, SimResult};
use std::sync::Arc;

/// The model library, validated at start; an invalid built-in file makes each simulation
/// answer with an error rather than stopping the program.
pub type PkLibrary = Arc<std::result::Result<Library, PkError>>;

/// A simulation refusal: bad input names its field; a bad model file is ours.
pub fn pk_error(e: PkError) -> Error {
    match e {
        PkError::Input { field, message } => Error::invalid(&field, message),
        PkError::Data { .. } => {
            tracing::error!(error = %e, "pk model library");
            Error::Internal
        }
    }
}

/// The library, or an internal error when it did not validate.
pub fn library(pk: &PkLibrary) -> Result<&Library> {
    pk.as_ref().as_ref().map_err(|e| {
        tracing::error!(error = %e, "pk model library");
        Error::Internal
    })
}

/// At most this many regimens per comparison request (the page shows three).
pub const MAX_REGIMENS: usize = 3;

/// At most this many values per request: grid points × model outputs × subjects (1 without a
/// population), summed over its regimens — a bound on the work (about a second on two cores;
/// for more, use `ketcare simulate` from the shell). Memory does not grow with it: a population
/// run keeps no subject's curve, only per-time-point quantile sketches
/// ([`ketcare_pk::population::MAX_BAND_ROWS`] rows at most).
pub const MAX_CELLS: usize = 50_000_000;

/// At most this many population runs at once (one per core); a further request waits its turn
/// instead of sharing the cores with the bedside feed.
fn population_gate() -> &'static (std::sync::Mutex<usize>, std::sync::Condvar) {
    static GATE: std::sync::OnceLock<(std::sync::Mutex<usize>, std::sync::Condvar)> =
        std::sync::OnceLock::new();
    GATE.get_or_init(|| (std::sync::Mutex::new(0), std::sync::Condvar::new()))
}

/// Holds one place in [`population_gate`] until dropped.
struct GatePlace;

impl GatePlace {
    fn take() -> GatePlace {
        let max = std::thread::available_parallelism().map_or(1, |t| t.get());
        let (m, cv) = population_gate();
        let mut running = m.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= max {
            running = cv.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        GatePlace
    }
}

impl Drop for GatePlace {
    fn drop(&mut self) {
        let (m, cv) = population_gate();
        let mut running = m.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        cv.notify_one();
    }
}

/// Refuses a comparison request that could use more memory than [`MAX_CELLS`] allows, or has
/// more than [`MAX_REGIMENS`] regimens, naming the field (`regimens`,
/// `regimens[i].population.subjects`, or `regimens[i].step_min` for the grid).
pub fn check_bounds(lib: &Library, reqs: &[SimRequest]) -> Result<()> {
    if reqs.is_empty() || reqs.len() > MAX_REGIMENS {
        return Err(Error::invalid(
            "regimens",
            format!("give 1 to {MAX_REGIMENS} regimens, got {}", reqs.len()),
        ));
    }
    let mut total: usize = 0;
    for (i, r) in reqs.iter().enumerate() {
        let cells = r.cells(lib).map_err(|e| {
            pk_error(match e {
                PkError::Input { field, message } => PkError::Input {
                    field: format!("regimens[{i}].{field}"),
                    message,
                },
                other => other,
            })
        })?;
        total = total.saturating_add(cells);
        if total > MAX_CELLS {
            let field = if r.population.is_some() {
                format!("regimens[{i}].population.subjects")
            } else {
                format!("regimens[{i}].step_min")
            };
            return Err(Error::invalid(
                &field,
                format!(
                    "the request needs {total} values (subjects × grid points × outputs, over the regimens so far), more than the {MAX_CELLS} one request may hold: use fewer subjects, a coarser step_min or a shorter horizon_min, or `ketcare simulate`"
                ),
            ));
        }
    }
    Ok(())
}

/// Simulate and compare bounded regimens: what `POST /api/v1/simulate` runs.
pub fn simulate(lib: &Library, reqs: &[SimRequest]) -> Result<Vec<SimResult>> {
    check_bounds(lib, reqs)?;
    let _place = reqs
        .iter()
        .any(|r| r.population.is_some())
        .then(GatePlace::take);
    ketcare_pk::compare(lib, reqs).map_err(pk_error)
}

/// One regimen of the simulate page (its bounds checked with [`check_bounds`] beforehand):
/// the engine behind the same one-run-per-core gate as [`simulate`]; the page shows each
/// regimen's refusal beside it, so the engine's error is returned as it is.
pub fn simulate_one(lib: &Library, req: &SimRequest) -> std::result::Result<SimResult, PkError> {
    let _place = req.population.is_some().then(GatePlace::take);
    ketcare_pk::simulate(lib, req, None)
}

/// An advisory target-controlled infusion schedule: what `POST /api/v1/pk/tci` and
/// `ketcare tci` run. The pure engine refuses implausible targets and rates naming the field and
/// warns when the rate is held at its maximum and the target is not reached.
pub fn tci(lib: &Library, req: &TciRequest) -> Result<TciResult> {
    ketcare_pk::tci::tci(lib, req).map_err(pk_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketcare_pk::{Covariates, Options, PopulationSpec, Regimen, Route};

    fn req(subjects: Option<usize>, step_min: f64) -> SimRequest {
        SimRequest {
            model: "perez_ruixo_2021".into(),
            regimen: Regimen {
                doses: vec![ketcare_pk::Dose {
                    time_min: 0.0,
                    amount_mg: 56.0,
                    route: Route::Intranasal,
                    duration_min: None,
                }],
                iv_rates: vec![],
            },
            covariates: Covariates {
                weight_kg: 70.0,
                age_years: Some(40.0),
            },
            options: Options::default(),
            horizon_min: 360.0,
            step_min,
            population: subjects.map(|n| PopulationSpec {
                subjects: n,
                seed: 1,
                iiv_cv: vec![],
                weight_sd_kg: None,
                target_ng_ml: None,
            }),
            label: None,
        }
    }

    fn field(e: Error) -> String {
        let f = e.fields();
        serde_json::to_value(&f).unwrap().to_string()
    }

    #[test]
    fn requests_are_bounded_naming_the_field() {
        let lib = Library::builtin().unwrap();
        // 3 × 25,000 subjects × 361 points × 2 outputs = 54 M values: over.
        let e = check_bounds(&lib, &vec![req(Some(25_000), 1.0); 3]).unwrap_err();
        assert!(field(e).contains("regimens[2].population.subjects"));
        // Two of them fit (36 M).
        check_bounds(&lib, &vec![req(Some(25_000), 1.0); 2]).unwrap();
        // A fine grid without a population: 3 × 90,001 points × 2 outputs fits.
        check_bounds(&lib, &vec![req(None, 0.004); 3]).unwrap();
        let e = check_bounds(&lib, &vec![req(None, 1.0); 4]).unwrap_err();
        assert!(field(e).contains("\"regimens\""));
        let e = check_bounds(&lib, &[req(None, f64::NAN)]).unwrap_err();
        assert!(field(e).contains("regimens[0].step_min"));
    }
}
