//! Values the reference computed (status C, pkpd.md §5): regression checks only, not literature.

use ketcare_pk::*;

fn typical(model: &str, reg: Regimen, weight: f64, times: &[f64]) -> Vec<f64> {
    let lib = Library::builtin().unwrap();
    let m = lib.model(model).unwrap();
    let cov = Covariates {
        weight_kg: weight,
        age_years: None,
    };
    let prep = Prepared::new(&lib, m, &cov, &reg.routes(), &Options::default()).unwrap();
    prep.simulate(&prep.typical, &reg, times, false)
        .unwrap()
        .conc[0]
        .clone()
}

/// pkpd.md §5 table (C, computed there with RK4 at 0.005 min): 70 kg, 35 mg over 40 min.
#[test]
fn half_mg_per_kg_over_40_min_matches_the_reference_table_regression_only() {
    let times = [10.0, 20.0, 40.0, 60.0, 120.0, 240.0];
    let table: &[(&str, [f64; 6])] = &[
        ("domino", [182.0, 210.0, 240.0, 55.0, 36.0, 17.0]),
        ("herd_2007", [132.0, 187.0, 253.0, 119.0, 68.0, 24.0]),
        ("hijazi_2003", [95.0, 157.0, 225.0, 100.0, 13.0, 5.0]),
        ("clements_250", [62.0, 109.0, 177.0, 115.0, 59.0, 35.0]),
        ("hornik_2018", [213.0, 348.0, 496.0, 223.0, 71.0, 48.0]),
    ];
    let reg = simple_regimen(Route::IvInfusion, 0.5, 70.0, Some(40.0)).unwrap();
    for (model, want) in table {
        let got = typical(model, reg.clone(), 70.0, &times);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 0.01 * w + 1.0,
                "{model} at {} min: got {g:.1}, table {w}",
                times[i]
            );
        }
    }
}
