//! The registry's statistics against an independent implementation of the same data:
//! statsmodels (logistic regression) and lifelines (Kaplan-Meier with its log(-log) band and
//! median; Cox proportional hazards with Efron ties), fixtures written by
//! `scripts/research-fixtures.py` (the command is in the file's `generated_by`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ketcare_research::{cox, logistic, survival};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/independent.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-6 * b.abs().max(1.0),
        "{what}: ours {a}, independent {b}"
    );
}

#[test]
fn logistic_regression_matches_statsmodels() {
    let f = fixture();
    let (x1, x2) = (floats(&f["x1"]), floats(&f["x2"]));
    let y: Vec<bool> = floats(&f["y"]).iter().map(|v| *v == 1.0).collect();
    let x: Vec<Vec<f64>> = x1.iter().zip(&x2).map(|(a, b)| vec![*a, *b]).collect();
    let fit = logistic::fit(&["x1", "x2"], &x, &y).unwrap();
    let l = &f["logistic"];
    for (i, c) in fit.coefficients.iter().enumerate() {
        close(c.coef, floats(&l["coef"])[i], &format!("coef {}", c.name));
        close(c.se, floats(&l["se"])[i], &format!("se {}", c.name));
        close(c.p, floats(&l["p"])[i], &format!("p {}", c.name));
        close(c.ratio, c.coef.exp(), "odds ratio");
    }
    close(
        fit.log_likelihood,
        l["llf"].as_f64().unwrap(),
        "log-likelihood",
    );
    assert_eq!(fit.n, 240);
}

#[test]
fn cox_regression_matches_lifelines_with_efron_ties() {
    let f = fixture();
    let (x1, x2) = (floats(&f["x1"]), floats(&f["x2"]));
    let rows: Vec<[f64; 2]> = x1.iter().zip(&x2).map(|(a, b)| [*a, *b]).collect();
    let time = floats(&f["time"]);
    let event = floats(&f["event"]);
    let subjects: Vec<cox::Subject<'_>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| cox::Subject {
            time: time[i],
            event: event[i] == 1.0,
            x: r,
        })
        .collect();
    let fit = cox::fit(&["x1", "x2"], &subjects).unwrap();
    let c = &f["cox"];
    for (i, k) in fit.coefficients.iter().enumerate() {
        close(k.coef, floats(&c["coef"])[i], &format!("coef {}", k.name));
        close(k.se, floats(&c["se"])[i], &format!("se {}", k.name));
        close(k.p, floats(&c["p"])[i], &format!("p {}", k.name));
    }
    close(
        fit.log_likelihood,
        c["loglik"].as_f64().unwrap(),
        "partial log-likelihood",
    );
}

#[test]
fn kaplan_meier_matches_lifelines() {
    let f = fixture();
    let time = floats(&f["time"]);
    let event = floats(&f["event"]);
    let data: Vec<(f64, bool)> = time
        .iter()
        .zip(&event)
        .map(|(t, e)| (*t, *e == 1.0))
        .collect();
    let km = survival::kaplan_meier(&data).unwrap();
    let rows = f["km"]["rows"].as_array().unwrap();
    assert_eq!(km.rows.len(), rows.len());
    for (ours, theirs) in km.rows.iter().zip(rows) {
        close(ours.t, theirs["t"].as_f64().unwrap(), "time");
        close(
            ours.s,
            theirs["s"].as_f64().unwrap(),
            &format!("S({})", ours.t),
        );
        close(
            ours.lower,
            theirs["lower"].as_f64().unwrap(),
            &format!("lower({})", ours.t),
        );
        close(
            ours.upper,
            theirs["upper"].as_f64().unwrap(),
            &format!("upper({})", ours.t),
        );
    }
    assert_eq!(km.median, f["km"]["median"].as_f64());
    assert_eq!(km.median_lower, f["km"]["median_lower"].as_f64());
    assert_eq!(km.median_upper, f["km"]["median_upper"].as_f64());
}
