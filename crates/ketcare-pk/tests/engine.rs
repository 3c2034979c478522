//! The exact solution against an independent adaptive ODE solver (Dormand–Prince 5(4), written
//! here), superposition, mass balance, determinism and input errors.

use ketcare_pk::*;

/// Dormand–Prince 5(4) with adaptive steps for `dx/dt = A x + u` from `t0` to `t1`.
fn dopri(a: &[f64], u: &[f64], x: &mut [f64], t0: f64, t1: f64) {
    let n = x.len();
    let f = |x: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| (0..n).map(|j| a[i * n + j] * x[j]).sum::<f64>() + u[i])
            .collect()
    };
    const C: [[f64; 6]; 6] = [
        [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
        [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
        [
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
            0.0,
            0.0,
        ],
        [
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
            0.0,
        ],
        [
            35.0 / 384.0,
            0.0,
            500.0 / 1113.0,
            125.0 / 192.0,
            -2187.0 / 6784.0,
            11.0 / 84.0,
        ],
    ];
    const E: [f64; 7] = [
        71.0 / 57600.0,
        0.0,
        -71.0 / 16695.0,
        71.0 / 1920.0,
        -17253.0 / 339200.0,
        22.0 / 525.0,
        -1.0 / 40.0,
    ];
    let (rtol, atol) = (1e-11, 1e-14);
    let mut t = t0;
    let mut h = ((t1 - t0) / 100.0).max(1e-6);
    while t < t1 {
        h = h.min(t1 - t);
        let mut k: Vec<Vec<f64>> = vec![f(x)];
        for row in C.iter() {
            let xs: Vec<f64> = (0..n)
                .map(|i| x[i] + h * (0..k.len()).map(|j| row[j] * k[j][i]).sum::<f64>())
                .collect();
            k.push(f(&xs));
        }
        let x5: Vec<f64> = (0..n)
            .map(|i| x[i] + h * (0..6).map(|j| C[5][j] * k[j][i]).sum::<f64>())
            .collect();
        let err = ((0..n)
            .map(|i| {
                let e = h * (0..7).map(|j| E[j] * k[j][i]).sum::<f64>();
                (e / (atol + rtol * x[i].abs().max(x5[i].abs()))).powi(2)
            })
            .sum::<f64>()
            / n as f64)
            .sqrt();
        if err <= 1.0 {
            t += h;
            x.copy_from_slice(&x5);
        }
        let fac = if err == 0.0 {
            5.0
        } else {
            (0.9 * err.powf(-0.2)).clamp(0.2, 5.0)
        };
        h *= fac;
    }
}

/// ODE solution of a prepared model on `times` (every state), using its matrix and inputs.
fn ode(prep: &Prepared, p: &[f64], reg: &Regimen, times: &[f64]) -> Vec<Vec<f64>> {
    let n = prep.n_states();
    let a = prep.matrix(p);
    let ins = prep.inputs(p, reg).unwrap();
    let mut events: Vec<f64> = ins
        .boluses
        .iter()
        .map(|b| b.0)
        .chain(ins.rates.iter().map(|r| r.0))
        .chain(times.iter().copied())
        .collect();
    events.sort_by(f64::total_cmp);
    events.dedup();
    let mut x = vec![0.0; n];
    let mut u = vec![0.0; n];
    let mut t = 0.0;
    let mut out = Vec::new();
    // Time effects (Flint's CL_snk) count from the first input; the reference integrates them
    // on pieces of at most 0.05 min with the matrix at each piece's midpoint.
    let t0 = ins
        .boluses
        .iter()
        .map(|b| b.0)
        .chain(ins.rates.iter().map(|r| r.0))
        .fold(f64::INFINITY, f64::min);
    for &te in &events {
        if te > t && prep.has_time_effect() {
            let pieces = ((te - t) / 0.05).ceil() as usize;
            let h = (te - t) / pieces as f64;
            for j in 0..pieces {
                let ta = t + j as f64 * h;
                let a = prep.matrix(&prep.params_at(p, ta + h / 2.0 - t0));
                dopri(&a, &u, &mut x, ta, ta + h);
            }
            t = te;
        } else if te > t {
            dopri(&a, &u, &mut x, t, te);
            t = te;
        }
        for b in ins.boluses.iter().filter(|b| b.0 == te) {
            x[b.1] += b.2;
        }
        for r in ins.rates.iter().filter(|r| r.0 == te) {
            u[r.1] += r.2;
        }
        if times.contains(&te) {
            out.push(x.clone());
        }
    }
    out
}

fn lib() -> Library {
    Library::builtin().unwrap()
}

fn cov_for(model: &Model) -> Covariates {
    match model.file.validity.as_ref() {
        Some(v) => Covariates {
            weight_kg: v.weight_kg.map_or(70.0, |[lo, hi]| (lo + hi) / 2.0),
            age_years: v.age_years.map(|[lo, hi]| (lo + hi) / 2.0),
        },
        None => Covariates {
            weight_kg: 70.0,
            age_years: Some(40.0),
        },
    }
}

fn regimen_for(route: Route, weight: f64) -> Regimen {
    let mg = 0.5 * weight;
    match route {
        Route::IvInfusion => Regimen {
            doses: vec![Dose {
                time_min: 0.0,
                amount_mg: mg,
                route,
                duration_min: Some(40.0),
            }],
            iv_rates: vec![
                RateStep {
                    time_min: 60.0,
                    rate_mg_per_min: 0.2,
                },
                RateStep {
                    time_min: 75.5,
                    rate_mg_per_min: 0.05,
                },
                RateStep {
                    time_min: 90.0,
                    rate_mg_per_min: 0.0,
                },
            ],
        },
        _ => Regimen {
            doses: vec![
                Dose {
                    time_min: 0.0,
                    amount_mg: mg,
                    route,
                    duration_min: None,
                },
                Dose {
                    time_min: 100.5,
                    amount_mg: mg / 2.0,
                    route,
                    duration_min: None,
                },
            ],
            iv_rates: vec![],
        },
    }
}

/// Routes without a published ka or F get them as user assumptions.
fn opts_with_assumptions(ke0: bool) -> Options {
    let ra = |route, f, ka| RouteAssumption {
        route,
        f: Some(f),
        ka_per_min: Some(ka),
    };
    Options {
        ke0_per_min: ke0.then_some(0.5),
        route_assumptions: vec![
            ra(Route::Intramuscular, 0.93, 0.05),
            ra(Route::Subcutaneous, 0.8, 0.03),
            ra(Route::Rectal, 0.3, 0.02),
            ra(Route::Oral, 0.2, 0.0117),
            ra(Route::Sublingual, 0.29, 0.04),
        ],
    }
}

#[test]
fn exact_solution_matches_an_adaptive_ode_solver_for_every_model_and_route() {
    let lib = lib();
    let times: Vec<f64> = (0..=48)
        .map(|i| i as f64 * 7.5)
        .chain([0.3, 1.1, 40.0, 100.5])
        .collect::<Vec<_>>();
    let mut times = times;
    times.sort_by(f64::total_cmp);
    times.dedup();
    let mut checked = 0;
    for model in &lib.models {
        let cov = cov_for(model);
        for route in Route::ALL {
            for ke0 in [false, true] {
                let reg = regimen_for(route, cov.weight_kg);
                let opts = if route == Route::Intranasal || model.own_routes().contains(&route) {
                    Options {
                        ke0_per_min: ke0.then_some(0.5),
                        route_assumptions: vec![],
                    }
                } else {
                    opts_with_assumptions(ke0)
                };
                let prep = match Prepared::new(&lib, model, &cov, &reg.routes(), &opts) {
                    Ok(p) => p,
                    Err(e) => panic!("{} {route:?}: {e}", model.id()),
                };
                let exact = prep.simulate(&prep.typical, &reg, &times, true).unwrap();
                let states = exact.states.as_ref().unwrap();
                let reference = ode(&prep, &prep.typical, &reg, &times);
                for (k, (xs, ys)) in states.iter().zip(&reference).enumerate() {
                    let scale = ys.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                        // A time-varying parameter is held at mid-step values on 6-min
                        // steps: relative error below 5e-4 (see sim.rs).
                        let rel = if prep.has_time_effect() { 5e-4 } else { 1e-6 };
                        let tol = rel * y.abs() + 1e-9 * scale + 1e-15;
                        assert!(
                            (x - y).abs() <= tol,
                            "{} {route:?} ke0={ke0} t={} state {i}: exact {x} vs ODE {y}",
                            model.id(),
                            times[k]
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, lib.models.len() * Route::ALL.len() * 2);
}

#[test]
#[allow(clippy::needless_range_loop)]
fn superposition_holds() {
    let lib = lib();
    let times: Vec<f64> = (0..=120).map(|i| i as f64 * 3.0).collect();
    for model in &lib.models {
        let cov = cov_for(model);
        let a = regimen_for(Route::IvInfusion, cov.weight_kg);
        let b = regimen_for(Route::Intranasal, cov.weight_kg);
        let both = Regimen {
            doses: [a.doses.clone(), b.doses.clone()].concat(),
            iv_rates: a.iv_rates.clone(),
        };
        let routes = both.routes();
        let prep = Prepared::new(&lib, model, &cov, &routes, &Options::default()).unwrap();
        let ca = prep.simulate(&prep.typical, &a, &times, false).unwrap();
        let cb = prep.simulate(&prep.typical, &b, &times, false).unwrap();
        let cab = prep.simulate(&prep.typical, &both, &times, false).unwrap();
        for o in 0..ca.conc.len() {
            for k in 0..times.len() {
                let sum = ca.conc[o][k] + cb.conc[o][k];
                assert!(
                    (cab.conc[o][k] - sum).abs() <= 1e-9 * sum.abs() + 1e-12,
                    "{} output {o} t={}",
                    model.id(),
                    times[k]
                );
            }
        }
    }
}

#[test]
fn mass_balance_holds_at_every_time() {
    let lib = lib();
    let times: Vec<f64> = (0..=72).map(|i| i as f64 * 5.0).collect();
    for model in &lib.models {
        let cov = cov_for(model);
        let reg = regimen_for(Route::IvInfusion, cov.weight_kg);
        let prep = Prepared::new(
            &lib,
            model,
            &cov,
            &reg.routes(),
            &Options {
                ke0_per_min: Some(1.0),
                route_assumptions: vec![],
            },
        )
        .unwrap();
        let prof = prep.simulate(&prep.typical, &reg, &times, true).unwrap();
        let mass = prep.mass_states();
        for (k, x) in prof.states.unwrap().iter().enumerate() {
            let total: f64 = mass.iter().map(|&i| x[i]).sum();
            let given = reg.total_mg(times[k]);
            assert!(
                (total - given).abs() <= 1e-9 * given.max(1.0),
                "{} t={}: {total} in the body and eliminated vs {given} given",
                model.id(),
                times[k]
            );
        }
    }
}

#[test]
fn same_seed_gives_the_same_population_and_another_seed_does_not() {
    let lib = lib();
    let mk = |seed| SimRequest {
        model: "herd_2007".into(),
        regimen: simple_regimen(Route::IvBolus, 1.0, 32.5, None).unwrap(),
        covariates: Covariates {
            weight_kg: 32.5,
            age_years: Some(8.0),
        },
        options: Options::default(),
        horizon_min: 60.0,
        step_min: 1.0,
        population: Some(PopulationSpec {
            subjects: 300,
            seed,
            iiv_cv: vec![],
            weight_sd_kg: Some(5.0),
            target_ng_ml: Some(100.0),
        }),
        label: None,
    };
    let a = simulate(&lib, &mk(42), None).unwrap().population.unwrap();
    let b = simulate(&lib, &mk(42), None).unwrap().population.unwrap();
    let c = simulate(&lib, &mk(43), None).unwrap().population.unwrap();
    assert_eq!(a, b);
    assert_ne!(a.bands, c.bands);
}

#[test]
fn nonsense_inputs_are_errors_naming_the_field() {
    let lib = lib();
    let m = lib.model("domino").unwrap();
    let bad = |w: f64| {
        Prepared::new(
            &lib,
            m,
            &Covariates {
                weight_kg: w,
                age_years: None,
            },
            &[Route::IvBolus],
            &Options::default(),
        )
        .unwrap_err()
    };
    assert_eq!(bad(-70.0).field(), "weight_kg");
    assert_eq!(bad(0.0).field(), "weight_kg");
    assert_eq!(bad(f64::NAN).field(), "weight_kg");
    assert_eq!(lib.model("nope").unwrap_err().field(), "model");
    assert_eq!(
        simple_regimen(Route::IvInfusion, 0.5, 70.0, None)
            .unwrap_err()
            .field(),
        "duration_min"
    );
    assert_eq!(
        simple_regimen(Route::IvBolus, -1.0, 70.0, None)
            .unwrap_err()
            .field(),
        "dose_mg_per_kg"
    );
    let prep = Prepared::new(
        &lib,
        m,
        &Covariates {
            weight_kg: 70.0,
            age_years: None,
        },
        &[Route::IvInfusion],
        &Options::default(),
    )
    .unwrap();
    let reg = Regimen {
        doses: vec![Dose {
            time_min: 0.0,
            amount_mg: 10.0,
            route: Route::IvInfusion,
            duration_min: Some(0.0),
        }],
        iv_rates: vec![],
    };
    assert_eq!(
        prep.simulate(&prep.typical, &reg, &[0.0, 1.0], false)
            .unwrap_err()
            .field(),
        "doses[0].duration_min"
    );
    let reg = Regimen {
        doses: vec![],
        iv_rates: vec![
            RateStep {
                time_min: 5.0,
                rate_mg_per_min: 1.0,
            },
            RateStep {
                time_min: 2.0,
                rate_mg_per_min: 0.0,
            },
        ],
    };
    assert_eq!(
        prep.simulate(&prep.typical, &reg, &[0.0, 1.0], false)
            .unwrap_err()
            .field(),
        "iv_rates[1].time_min"
    );
    // IM has no published ka: the user must supply it.
    let e = Prepared::new(
        &lib,
        m,
        &Covariates {
            weight_kg: 70.0,
            age_years: None,
        },
        &[Route::Intramuscular],
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(e.field(), "ka_intramuscular");
    // Effect-site targeting without a ke0 is refused.
    let e = tci::tci(
        &lib,
        &tci::TciRequest {
            model: "domino".into(),
            covariates: Covariates {
                weight_kg: 70.0,
                age_years: None,
            },
            target_ng_ml: 150.0,
            site: tci::TciSite::EffectSite,
            max_rate_mg_per_kg_min: None,
            update_s: None,
            duration_min: 30.0,
            ke0_per_min: None,
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "ke0_per_min");
}

#[test]
fn out_of_range_inputs_warn_naming_the_range() {
    let lib = lib();
    let herd = lib.model("herd_2007").unwrap();
    let (_, w) = herd
        .typical(&Covariates {
            weight_kg: 80.0,
            age_years: Some(30.0),
        })
        .unwrap();
    assert!(w.iter().any(|w| w.contains("10.8–74.8 kg")), "{w:?}");
    assert!(w.iter().any(|w| w.contains("1–14 y")), "{w:?}");
    let (_, w) = herd
        .typical(&Covariates {
            weight_kg: 30.0,
            age_years: None,
        })
        .unwrap();
    assert!(w.iter().any(|w| w.contains("age not given")), "{w:?}");
    let (_, w) = herd
        .typical(&Covariates {
            weight_kg: 30.0,
            age_years: Some(8.0),
        })
        .unwrap();
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn a_bad_model_file_is_refused_naming_file_line_and_field() {
    let (path, text) = ketcare_pk::model::MODEL_FILES[0];
    let check = |text: &str, field: &str, line: usize| match Library::from_files(
        &[(path, text)],
        ketcare_pk::model::ROUTES_FILE,
    )
    .unwrap_err()
    {
        PkError::Data {
            file,
            line: l,
            field: f,
            message,
        } => {
            assert_eq!(file, path);
            assert_eq!(f, field, "{message}");
            assert_eq!(l, line, "{message}");
        }
        e => panic!("{e}"),
    };
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    check(
        &text.replace("value = 0.438", "value = -0.438"),
        "param.k10.value",
        line_of("[param.k10]"),
    );
    check(
        &text.replace("value = 0.438", "value = \"x\""),
        "param.k10.value",
        line_of("value = 0.438"),
    );
    check(
        &text.replacen("unit = \"1/min\"", "unit = \"furlongs\"", 1),
        "param.k10.unit",
        line_of("[param.k10]"),
    );
    check(
        &text.replacen(
            "status = \"S\"\nsource = [\"P1\", \"P2\", \"P3\"]\nnote = \"opentiva 0.4381\"",
            "status = \"U\"\nsource = []\nnote = \"x\"",
            1,
        ),
        "param.k10.status",
        line_of("[param.k10]"),
    );
    check(
        &text.replacen("k = \"k21\"", "k = \"k99\"", 1),
        "flow[1].k",
        line_of("k = \"k21\""),
    );
}

#[test]
fn the_fast_path_agrees_with_the_general_engine() {
    let lib = lib();
    let mut spec = fast::BenchSpec::domino(64);
    spec.cv = 0.0;
    let r = fast::population_3cmt(&lib, &spec).unwrap();
    let reg = simple_regimen(Route::IvInfusion, 0.5, 70.0, Some(40.0)).unwrap();
    let m = lib.model("domino").unwrap();
    let prep = Prepared::new(
        &lib,
        m,
        &Covariates {
            weight_kg: 70.0,
            age_years: None,
        },
        &[Route::IvInfusion],
        &Options::default(),
    )
    .unwrap();
    let exact = prep
        .simulate(&prep.typical, &reg, &r.times_min, false)
        .unwrap();
    for (k, (a, b)) in r.median.iter().zip(&exact.conc[0]).enumerate() {
        assert!(
            (f64::from(*a) - b).abs() <= 1e-4 * b + 1e-6,
            "t={k}: fast {a} vs exact {b}"
        );
    }
    // Different thread counts, same subjects.
    let mut s1 = fast::BenchSpec::domino(5000);
    s1.threads = 1;
    let mut s2 = s1.clone();
    s2.threads = 2;
    let (a, b) = (
        fast::population_3cmt(&lib, &s1).unwrap(),
        fast::population_3cmt(&lib, &s2).unwrap(),
    );
    assert_eq!(
        (a.p5, a.median, a.p95, a.cmax_ng_ml),
        (b.p5, b.median, b.p95, b.cmax_ng_ml)
    );
}

#[test]
fn domino_derived_quantities_regression_only() {
    // pkpd.md §2.1 derived values (C, computed there): half-lives 0.4, 4.6 and 114.6 min.
    let m = fast::Micro3 {
        v1: 0.063 * 70.0,
        k10: 0.438,
        k12: 0.592,
        k13: 0.590,
        k21: 0.247,
        k31: 0.0146,
    };
    let (l, _) = m.exponentials();
    let hl: Vec<f64> = l.iter().map(|l| std::f64::consts::LN_2 / l).collect();
    assert!(
        (hl[0] - 0.4).abs() < 0.05 && (hl[1] - 4.6).abs() < 0.05 && (hl[2] - 114.6).abs() < 0.1,
        "{hl:?}"
    );
}

/// The public population path (matrix exponential per subject, streaming sketches) against the
/// independent closed-form path (sums of exponentials, exact selection over every curve), each
/// with its own random subjects: the bands and Cmax agree within Monte Carlo error.
#[test]
fn the_public_population_agrees_with_an_independent_monte_carlo() {
    let lib = lib();
    let n = 20_000;
    let mut spec = fast::BenchSpec::domino(n);
    spec.seed = 99;
    let indep = fast::population_3cmt(&lib, &spec).unwrap();
    let req = ketcare_pk::SimRequest {
        model: "domino".into(),
        regimen: simple_regimen(Route::IvInfusion, 0.5, 70.0, Some(40.0)).unwrap(),
        covariates: Covariates {
            weight_kg: 70.0,
            age_years: None,
        },
        options: Options::default(),
        horizon_min: 360.0,
        step_min: 1.0,
        population: Some(PopulationSpec {
            subjects: n,
            seed: 7,
            iiv_cv: vec![("v1".into(), 0.3), ("k10".into(), 0.3), ("k12".into(), 0.3)],
            weight_sd_kg: None,
            target_ng_ml: None,
        }),
        label: None,
    };
    let p = simulate(&lib, &req, None).unwrap().population.unwrap();
    let b = &p.bands[0];
    for k in (5..=360).step_by(5) {
        for (name, ours, theirs) in [
            ("p5", b.p5[k], indep.p5[k]),
            ("median", b.median[k], indep.median[k]),
            ("p95", b.p95[k], indep.p95[k]),
        ] {
            let theirs = f64::from(theirs);
            assert!(
                (ours - theirs).abs() <= 0.04 * theirs,
                "t={k} {name}: public {ours} vs independent {theirs}"
            );
        }
    }
    let (a, z) = (p.cmax_ng_ml.median, indep.cmax_ng_ml.median);
    assert!((a - z).abs() <= 0.03 * z, "Cmax median {a} vs {z}");
    assert_eq!(p.subjects, n);
}
