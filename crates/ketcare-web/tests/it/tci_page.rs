//! The simulate page's TCI panel: the form posts to a page that shows the same schedule as
//! `POST /api/v1/pk/tci` (one application function), its curve as a named chart, each refusal
//! beside its field, and the warning when the rate is held at its maximum.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use ketcare_core::Role;
use ketcare_store::Backend;
use serde_json::json;

#[tokio::test]
async fn the_tci_panel_advises_the_apis_schedule_and_refuses_by_field() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nurse", Role::Nurse).await;
    let page = app.login("nurse").await;
    let token = app.bearer("nurse").await;

    // The panel is on the simulate page.
    let sim = app.get("/simulate", &page).await;
    assert_eq!(sim.status, StatusCode::OK);
    assert!(
        sim.body.contains("id=\"tci-form\"")
            && sim.body.contains("action=\"/simulate/tci#tci-panel\"")
            && sim.body.contains("ketcare never drives a pump"),
        "{}",
        sim.body
    );

    let form = |target: &'static str, max_rate: &'static str| {
        vec![
            ("model", "domino"),
            ("weight_kg", "70"),
            ("age_years", ""),
            ("target_ng_ml", target),
            ("site", "plasma"),
            ("max_rate_mg_per_kg_min", max_rate),
            ("duration_min", "30"),
            ("ke0_per_min", ""),
        ]
    };
    let r = app
        .post_form("/simulate/tci", &page, &form("150", ""))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let api = app
        .json(
            Method::POST,
            "/api/v1/pk/tci",
            &token,
            &json!({"model": "domino", "covariates": {"weight_kg": 70}, "target_ng_ml": 150,
                    "site": "plasma", "duration_min": 30}),
        )
        .await
        .json();
    // The same schedule: the first rate and the total, as the page rounds them.
    let round = |v: f64| ketcare_core::units::trim_float((v * 1000.0).round() / 1000.0);
    let first = api["schedule"][0]["rate_mg_per_min"].as_f64().unwrap();
    let total = api["total_mg"].as_f64().unwrap();
    let b = &r.body;
    assert!(
        b.contains("<tr><td>0</td><td>") && b.contains(&format!("<td>{}</td>", round(first))),
        "first rate {first}: {b}"
    );
    assert!(b.contains(&format!("{} mg", round(total))), "{b}");
    assert!(
        b.contains("role=\"img\" aria-label=\"Advisory TCI: predicted plasma concentration for a 150 ng/mL target over 30 min\"")
            && b.contains("class=\"plasma\"")
            && b.contains("class=\"target\""),
        "{b}"
    );
    assert!(b.contains("id=\"tci-schedule\"") && b.contains("ketcare never drives a pump"));
    let reached = api["target_reached_min"].as_f64().unwrap();
    assert!(b.contains(&format!("at {} min", round(reached))), "{b}");

    // Held at its maximum and not reached: the warning, and the rows marked.
    let r = app
        .post_form("/simulate/tci", &page, &form("5000", "0.001"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("id=\"tci-warnings\"")
            && r.body.contains("target not reached")
            && r.body.contains("held at the maximum rate")
            && r.body.contains("not within the duration"),
        "{}",
        r.body
    );

    // Refusals beside their field.
    for (fields, field) in [
        (form("20000", ""), "target_ng_ml"),
        (form("abc", ""), "target_ng_ml"),
        (form("150", "-1"), "max_rate_mg_per_kg_min"),
        (
            {
                let mut f = form("150", "");
                f.retain(|(k, _)| *k != "site");
                f.push(("site", "effect_site"));
                f
            },
            "ke0_per_min",
        ),
        (
            {
                let mut f = form("150", "");
                f.retain(|(k, _)| *k != "weight_kg");
                f.push(("weight_kg", ""));
                f
            },
            "weight_kg",
        ),
    ] {
        let r = app.post_form("/simulate/tci", &page, &fields).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            r.body
        );
        assert!(
            r.body.contains(&format!("id=\"tci-{field}-error\""))
                && r.body
                    .contains(&format!("aria-describedby=\"tci-{field}-error\"")),
            "{field}: {}",
            r.body
        );
        assert!(!r.body.contains("id=\"tci-schedule\""));
    }
    let r = app
        .post_form("/simulate/tci", &page, &form("20000", ""))
        .await;
    assert!(
        r.body.contains("above the highest accepted target"),
        "{}",
        r.body
    );
    // What was typed stays in the form.
    assert!(r.body.contains("value=\"20000\""));

    // Signed out: no advice.
    let r = app
        .post_form("/simulate/tci", &Auth::None, &form("150", ""))
        .await;
    assert_ne!(r.status, StatusCode::OK);
}
