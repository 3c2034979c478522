//! `ketcare simulate` and `ketcare model list` end to end: CSV, SVG and JSON outputs, errors
//! naming the field.

use crate::common::text;
use std::process::{Command, Output};

fn ketcare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ketcare"))
        .args(args)
        .env_remove("KETCARE_DATABASE_URL")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn model_list_names_every_model_with_sources_and_validity() {
    let o = ketcare(&["model", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "domino",
        "clements_250",
        "hijazi_2003",
        "herd_2007",
        "hornik_2018",
        "flint_2017",
        "simons_2022",
        "perez_ruixo_2021",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let herd = v
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "herd_2007")
        .unwrap();
    assert_eq!(herd["weight_range_kg"], serde_json::json!([10.8, 74.8]));
    let o = ketcare(&["model", "list"]);
    assert!(
        text(&o).contains("valid for age 1–14 y, weight 10.8–74.8 kg"),
        "{}",
        text(&o)
    );
}

#[test]
fn simulate_writes_csv_svg_and_json() {
    let dir = std::env::temp_dir().join(format!("ketcare-pk-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, svg) = (dir.join("out.csv"), dir.join("out.svg"));
    let o = ketcare(&[
        "simulate",
        "--model",
        "domino",
        "--route",
        "iv_infusion",
        "--dose-mg-per-kg",
        "0.5",
        "--duration-min",
        "40",
        "--weight-kg",
        "70",
        "--age-years",
        "40",
        "--subjects",
        "500",
        "--seed",
        "3",
        "--iiv-cv",
        "v1=0.3",
        "--iiv-cv",
        "k10=0.3",
        "--iiv-cv",
        "k12=0.3",
        "--target-ng-ml",
        "100",
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["population"]["subjects"], 500);
    assert!(v["key"]["cmax_ng_ml"].as_f64().unwrap() > 200.0);
    assert!(
        v["assumptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "IIV of v1")
    );
    let csv = std::fs::read_to_string(&csv).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "time_min,ketamine_typical_ng_ml,ketamine_p5_ng_ml,ketamine_median_ng_ml,ketamine_p95_ng_ml"
    );
    assert_eq!(csv.lines().count(), 362);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("time (min)") && svg.contains("<polygon"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    // Same seed, same numbers.
    let again = ketcare(&[
        "simulate",
        "--model",
        "domino",
        "--route",
        "iv_infusion",
        "--dose-mg-per-kg",
        "0.5",
        "--duration-min",
        "40",
        "--subjects",
        "500",
        "--seed",
        "3",
        "--iiv-cv",
        "v1=0.3",
        "--iiv-cv",
        "k10=0.3",
        "--iiv-cv",
        "k12=0.3",
        "--target-ng-ml",
        "100",
        "--json",
    ]);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["population"], w["population"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn simulate_shows_the_assumptions_and_refuses_what_is_not_published() {
    let o = ketcare(&[
        "simulate",
        "--model",
        "domino",
        "--route",
        "intranasal",
        "--dose-mg-per-kg",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("assumption: bioavailability (intranasal) = 0.45")
            && t.contains("alternative: 0.17 / 0.13 / 0.11"),
        "{t}"
    );
    let o = ketcare(&[
        "simulate",
        "--model",
        "domino",
        "--route",
        "im",
        "--dose-mg-per-kg",
        "1",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("ka_intramuscular"), "{}", text(&o));
    let o = ketcare(&[
        "simulate",
        "--model",
        "domino",
        "--route",
        "iv",
        "--dose-mg-per-kg",
        "0.5",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("duration_min"), "{}", text(&o));
    let o = ketcare(&[
        "simulate",
        "--model",
        "herd_2007",
        "--route",
        "iv_bolus",
        "--dose-mg-per-kg",
        "1",
        "--weight-kg=-3",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("weight_kg"), "{}", text(&o));
    let o = ketcare(&[
        "simulate",
        "--model",
        "herd_2007",
        "--route",
        "iv_bolus",
        "--dose-mg-per-kg",
        "1",
        "--weight-kg",
        "90",
        "--age-years",
        "30",
    ]);
    assert!(o.status.success());
    assert!(
        text(&o).contains("outside the herd_2007 model's studied range 10.8–74.8 kg"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_dose_history_gives_its_predicted_curve() {
    let dir = std::env::temp_dir().join(format!("ketcare-pk-hist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hist = dir.join("history.json");
    // A bolus, then an infusion whose rate was changed twice.
    std::fs::write(
        &hist,
        r#"{"doses": [{"time_min": 0, "amount_mg": 10, "route": "iv_bolus"}],
            "iv_rates": [{"time_min": 5, "rate_mg_per_min": 0.8}, {"time_min": 20, "rate_mg_per_min": 0.4}, {"time_min": 45, "rate_mg_per_min": 0}]}"#,
    )
    .unwrap();
    let o = ketcare(&[
        "simulate",
        "--model",
        "domino",
        "--regimen",
        hist.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // 10 + 0.8 × 15 + 0.4 × 25 = 32 mg.
    assert!((v["key"]["total_dose_mg"].as_f64().unwrap() - 32.0).abs() < 1e-9);
    std::fs::write(
        &hist,
        r#"{"doses": [{"time_min": 0, "amount_mg": "ten", "route": "iv_bolus"}]}"#,
    )
    .unwrap();
    let o = ketcare(&[
        "simulate",
        "--model",
        "domino",
        "--regimen",
        hist.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("doses[0].amount_mg"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ketcare tci`: the rate schedule through the API's function; an unreachable target is warned,
/// an implausible one refused naming the field with a failing exit status.
#[test]
fn tci_prints_the_schedule_and_warns_when_the_target_is_not_reached() {
    let o = ketcare(&[
        "tci",
        "--model",
        "domino",
        "--weight-kg",
        "70",
        "--target-ng-ml",
        "150",
        "--duration-min",
        "30",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("advisory TCI schedule") && t.contains("from    0.00 min"),
        "{t}"
    );
    assert!(
        t.contains("target reached: at") && !t.contains("target not reached"),
        "{t}"
    );
    assert!(t.contains("never drives an infusion pump"), "{t}");
    let o = ketcare(&[
        "tci",
        "--model",
        "domino",
        "--target-ng-ml",
        "5000",
        "--max-rate-mg-per-kg-min",
        "0.001",
        "--duration-min",
        "20",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning: target not reached"),
        "{}",
        text(&o)
    );
    let o = ketcare(&["tci", "--model", "domino", "--target-ng-ml", "20000"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("target_ng_ml"), "{}", text(&o));
    let o = ketcare(&["tci", "--model", "domino", "--target-ng-ml", "NaN"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("target_ng_ml"), "{}", text(&o));
}

/// A 1e308-mg bolus is refused naming the field (it used to print inf/NaN with exit 0).
#[test]
fn simulate_refuses_an_impossible_amount() {
    let dir = std::env::temp_dir().join(format!("ketcare-pk-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("huge.json");
    std::fs::write(
        &path,
        r#"{"doses": [{"time_min": 0, "amount_mg": 1e308, "route": "iv_bolus"}]}"#,
    )
    .unwrap();
    let o = ketcare(&[
        "simulate",
        "--model",
        "domino",
        "--regimen",
        path.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("doses[0].amount_mg"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
