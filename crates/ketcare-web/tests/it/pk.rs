//! PK simulation through the web edge: the comparison page (with a patient's weight and age
//! filled in from the record, read under PatientRead and audited) and the JSON API.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{Auth, TestApp, minor_form};
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use serde_json::json;

#[tokio::test]
async fn compare_page_with_a_patient_and_the_api_on_both_backends() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("priya", Role::Prescriber).await;
        app.add_user("rex", Role::Researcher).await;
        app.add_user("alex", Role::Administrator).await;
        let session = app.login("priya").await;
        let created = app.post_form("/patients", &session, &minor_form()).await;
        let pid = created
            .location()
            .trim_start_matches("/patients/")
            .to_owned();

        // Defaults: 0.5 mg/kg IV over 40 min, intranasal and oral side by side, with bands when a
        // variability assumption is given.
        let page = app.get("/simulate?model=domino&weight_kg=70&age_years=40&subjects=300&seed=2&iiv=v1%3D30%2C+k10%3D30%2C+k12%3D30&target_ng_ml=100&r0_route=iv_infusion&r0_dose=0.5&r0_duration=40&r1_route=intranasal&r1_dose=0.5&r2_route=oral&r2_dose=0.5", &session).await;
        assert_eq!(page.status, StatusCode::OK, "{backend:?} {}", page.body);
        let html = &page.body;
        assert_eq!(html.matches("class=\"pk-result\"").count(), 3, "{html}");
        assert!(
            html.contains("<svg") && html.contains("<polygon"),
            "chart with bands"
        );
        assert!(
            html.contains("bioavailability (intranasal)")
                && html.contains("bioavailability (oral)")
        );
        assert!(html.contains("IIV of v1") || html.contains("Cmax, population median"));
        assert!(html.contains("Sources: P1, P2, P3"));
        assert!(html.contains("never drives an infusion pump"));
        assert!(html.contains("href=\"/simulate\""), "nav line");

        // A patient's weight and age fill in; reading the record is audited.
        let page = app
            .get(
                &format!("/simulate?patient={pid}&model=herd_2007"),
                &session,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains("value=\"41.5\""),
            "weight from the record"
        );
        assert!(page.body.contains("from the record"));
        // A typed weight that contradicts the record is refused naming the field, never dosed.
        let r = app
            .get(
                &format!("/simulate?patient={pid}&model=herd_2007&weight_kg=90"),
                &session,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body.contains("weight_kg") && r.body.contains("41.5 kg"),
            "{}",
            r.body
        );
        // The record's own value, as the page fills it in, is accepted.
        let r = app
            .get(
                &format!("/simulate?patient={pid}&model=herd_2007&weight_kg=41.5"),
                &session,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let log = app
            .get(
                &format!("/api/v1/audit?patient_id={pid}"),
                &app.bearer("alex").await,
            )
            .await
            .json();
        assert!(
            log.as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == "patient.read" && r["username"] == "priya"),
            "{log}"
        );
        // A role without PatientRead may simulate, but not load a patient.
        let rex = app.login("rex").await;
        assert_eq!(app.get("/simulate", &rex).await.status, StatusCode::OK);
        assert_eq!(
            app.get(&format!("/simulate?patient={pid}"), &rex)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.get("/simulate", &Auth::None).await.status.as_u16() / 100,
            3
        );

        // The API: models, a comparison, errors naming the field, TCI.
        let token = app.bearer("priya").await;
        let models = app.get("/api/v1/pk/models", &token).await.json();
        assert_eq!(models.as_array().unwrap().len(), 8);
        let body = json!({"regimens": [
            {"model": "domino", "regimen": {"doses": [{"time_min": 0, "amount_mg": 35, "route": "iv_infusion", "duration_min": 40}]},
             "covariates": {"weight_kg": 70}, "population": {"subjects": 200, "seed": 1, "iiv_cv": [["v1", 0.3], ["k10", 0.3], ["k12", 0.3]], "target_ng_ml": 100}},
            {"model": "perez_ruixo_2021", "regimen": {"doses": [{"time_min": 0, "amount_mg": 28, "route": "intranasal"}, {"time_min": 5, "amount_mg": 28, "route": "intranasal"}]},
             "covariates": {"weight_kg": 70, "age_years": 45}, "population": {"subjects": 200, "seed": 1}}
        ]});
        let r = app
            .json(Method::POST, "/api/v1/simulate", &token, &body)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = r.json();
        assert_eq!(v["results"].as_array().unwrap().len(), 2);
        let cmax = v["results"][0]["key"]["cmax_ng_ml"].as_f64().unwrap();
        assert!((cmax - 240.0).abs() < 3.0, "{cmax}");
        assert_eq!(
            v["results"][1]["population"]["bands"][1]["output"],
            "noresketamine"
        );
        let bad = json!({"regimens": [{"model": "domino", "regimen": {"doses": [{"time_min": 0, "amount_mg": 35, "route": "iv_bolus"}]}, "covariates": {"weight_kg": -1}}]});
        let r = app
            .json(Method::POST, "/api/v1/simulate", &token, &bad)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.fields(), vec!["regimens[0].weight_kg".to_owned()]);
        let r = app.json(Method::POST, "/api/v1/pk/tci", &token, &json!({"model": "domino", "covariates": {"weight_kg": 70}, "target_ng_ml": 150, "site": "plasma", "duration_min": 30})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.json()["schedule"].as_array().unwrap().len() > 2);
        assert_eq!(
            app.json(Method::POST, "/api/v1/simulate", &Auth::None, &body)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// Requests are bounded and implausible numbers refused, each with a 422 naming the field: more
/// than 3 regimens, subjects × grid points × outputs over the bound (API and page), a bolus of
/// 1e308 mg, a TCI target above the cited maximum; an unreached TCI target is warned.
#[tokio::test]
async fn simulate_and_tci_requests_are_bounded_naming_the_field() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("priya", Role::Prescriber).await;
        let token = app.bearer("priya").await;
        let esk = |subjects: usize| {
            json!({"model": "perez_ruixo_2021", "regimen": {"doses": [{"time_min": 0, "amount_mg": 28, "route": "intranasal"}, {"time_min": 5, "amount_mg": 28, "route": "intranasal"}]},
                   "covariates": {"weight_kg": 70, "age_years": 45}, "population": {"subjects": subjects, "seed": 1}})
        };
        let post = |body: serde_json::Value| {
            let (app, token) = (&app, &token);
            async move {
                app.json(Method::POST, "/api/v1/simulate", token, &body)
                    .await
            }
        };
        // 20,000 subjects × 721 points (every half minute) × 2 outputs = 28.8 M values a
        // regimen: the second passes the 50 M bound and is refused before any work.
        let half = |mut v: serde_json::Value| {
            v["step_min"] = json!(0.5);
            v
        };
        let r =
            post(json!({"regimens": [half(esk(20_000)), half(esk(20_000)), half(esk(20_000))]}))
                .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            r.fields(),
            vec!["regimens[1].population.subjects".to_owned()]
        );
        // A fine grid without a population still counts.
        let fine = json!({"model": "domino", "regimen": {"doses": [{"time_min": 0, "amount_mg": 35, "route": "iv_bolus"}]},
                          "covariates": {"weight_kg": 70}, "horizon_min": 20000, "step_min": 0.2,
                          "population": {"subjects": 2000, "seed": 1, "iiv_cv": [["v1", 0.3]]}});
        let r = post(json!({"regimens": [fine]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            r.fields(),
            vec!["regimens[0].population.subjects".to_owned()]
        );
        let r = post(json!({"regimens": [esk(10), esk(10), esk(10), esk(10)]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), vec!["regimens".to_owned()]);
        // A bolus of 1e308 mg is refused (it used to give inf/NaN with 200).
        let huge = json!({"regimens": [{"model": "domino", "regimen": {"doses": [{"time_min": 0, "amount_mg": 1e308, "route": "iv_bolus"}]}, "covariates": {"weight_kg": 70}}]});
        let r = post(huge).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            r.fields(),
            vec!["regimens[0].doses[0].amount_mg".to_owned()]
        );
        // Within the bounds: 56 mg as two devices, the second at FRn × 0.62.
        let r = post(json!({"regimens": [esk(100)]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = r.json();
        assert!(
            v["results"][0]["assumptions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["name"] == "subsequent devices (intranasal)" && a["value"] == 0.62),
            "{v}"
        );

        // TCI: a target above STANPUMP's 10 µg/mL is refused; an unreachable one is warned.
        let tci = |target: f64, max_rate: f64| json!({"model": "domino", "covariates": {"weight_kg": 70}, "target_ng_ml": target, "site": "plasma", "duration_min": 30, "max_rate_mg_per_kg_min": max_rate});
        let r = app
            .json(Method::POST, "/api/v1/pk/tci", &token, &tci(20_000.0, 0.75))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.fields(), vec!["target_ng_ml".to_owned()]);
        let r = app
            .json(Method::POST, "/api/v1/pk/tci", &token, &tci(5000.0, 0.001))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = r.json();
        assert!(v["target_reached_min"].is_null());
        assert!(
            v["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("target not reached")),
            "{v}"
        );

        // The page: more than 20,000 subjects a row is over the bound.
        let session = app.login("priya").await;
        let r = app
            .get("/simulate?model=perez_ruixo_2021&weight_kg=70&age_years=40&subjects=20001&seed=1&r0_route=intranasal&r0_dose=0.4&r1_route=intranasal&r1_dose=0.8&r2_route=intranasal&r2_dose=1.2", &session)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("subjects"), "{}", r.body);
    }
}
