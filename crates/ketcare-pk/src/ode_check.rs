//! Independent checks of the engine: the Perez-Ruixo 2021 and Flint 2017 models written out
//! by hand as ODEs (values from pkpd.md §2.12 [P15] and §2.8 [P9]) and integrated with a
//! classical fourth-order Runge–Kutta method at a small fixed step, then compared with the
//! engine's exact (matrix-exponential) solution. Also the plausibility bounds and the grid.

use crate::tci::{TciRequest, TciSite, tci};
use crate::{Covariates, Dose, Library, Options, Regimen, Route, SimRequest, simulate};

fn lib() -> Library {
    Library::builtin().unwrap()
}

/// Right-hand side `f(t, interval midpoint, x)`.
type Rhs<'a> = &'a dyn Fn(f64, f64, &[f64]) -> Vec<f64>;

/// RK4 over `[t_a, t_b]` in sub-steps of at most `h` for `dx/dt = f(t, m, x)`, where `m` is the
/// interval's midpoint (for inputs constant between breakpoints: a stage evaluated at `t_b`
/// must not see the next interval's input).
fn rk4(f: Rhs, x: &mut [f64], t_a: f64, t_b: f64, h: f64) {
    if t_b <= t_a {
        return;
    }
    let n = ((t_b - t_a) / h).ceil().max(1.0) as usize;
    let h = (t_b - t_a) / n as f64;
    let add = |x: &[f64], k: &[f64], s: f64| -> Vec<f64> {
        x.iter().zip(k).map(|(a, b)| a + s * b).collect()
    };
    let m = (t_a + t_b) / 2.0;
    for i in 0..n {
        let t = t_a + i as f64 * h;
        let k1 = f(t, m, x);
        let k2 = f(t + h / 2.0, m, &add(x, &k1, h / 2.0));
        let k3 = f(t + h / 2.0, m, &add(x, &k2, h / 2.0));
        let k4 = f(t + h, m, &add(x, &k3, h));
        for j in 0..x.len() {
            x[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
        }
    }
}

/// Devices of 28 mg esketamine at 0, 5, 10 … min; `frn_of(i)` is device i's nasal fraction.
/// Returns esketamine plasma (ng/mL) at every minute 0..=horizon.
fn perez_ruixo_rk4(devices: usize, frn_of: &dyn Fn(usize) -> f64, horizon: usize) -> Vec<f64> {
    // pkpd.md §2.12 (per hour), typical non-Asian adult ≤ 60 y.
    let (ka_n, dsw, ka_sw, fgut) = (2.93 / 60.0, 0.53 * 60.0, 1.45 / 60.0, 0.64);
    let (vc, vp1, vp2, vh) = (192.0, 143.0, 417.0, 101.0);
    let (q1, q2, qh) = (84.3 / 60.0, 37.6 / 60.0, 151.0 / 60.0);
    let (kel, kmet) = (1.11 / 60.0, 2.77 / 60.0);
    let (vcn, vpn, cln, q3) = (70.0, 115.0, 38.0 / 60.0, 26.1 / 60.0);
    let times: Vec<f64> = (0..devices).map(|i| 5.0 * i as f64).collect();
    let swallow: Vec<f64> = (0..devices).map(|i| 28.0 * (1.0 - frn_of(i))).collect();
    // States: nasal, gut (swallowed), liver, central, p1, p2, noresketamine, its periphery.
    let f = |_t: f64, m: f64, x: &[f64]| -> Vec<f64> {
        let sw: f64 = (0..devices)
            .filter(|&i| m >= times[i] && m < times[i] + dsw)
            .map(|i| swallow[i] / dsw)
            .sum();
        let (nas, gut, liv, c, p1, p2, nc, np) = (x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]);
        vec![
            -ka_n * nas,
            sw - ka_sw * gut,
            ka_sw * fgut * gut + qh / vc * c - qh / vh * liv - (kel + kmet) * liv,
            ka_n * nas - qh / vc * c + qh / vh * liv - q1 / vc * c + q1 / vp1 * p1 - q2 / vc * c
                + q2 / vp2 * p2,
            q1 / vc * c - q1 / vp1 * p1,
            q2 / vc * c - q2 / vp2 * p2,
            kmet * liv - cln / vcn * nc - q3 / vcn * nc + q3 / vpn * np,
            q3 / vcn * nc - q3 / vpn * np,
        ]
    };
    let mut breaks: Vec<f64> = (0..=horizon).map(|t| t as f64).collect();
    for &t in &times {
        breaks.push(t + dsw);
    }
    breaks.sort_by(f64::total_cmp);
    breaks.dedup();
    let mut x = vec![0.0; 8];
    let mut out = Vec::new();
    let mut t = 0.0;
    for &b in &breaks {
        rk4(&f, &mut x, t, b, 0.01);
        t = b;
        for (i, &td) in times.iter().enumerate() {
            if td == b {
                x[0] += 28.0 * frn_of(i);
            }
        }
        if b.fract() == 0.0 && b <= horizon as f64 {
            out.push(x[3] / vc * 1000.0);
        }
    }
    out
}

fn devices(n: usize) -> Regimen {
    Regimen {
        doses: (0..n)
            .map(|i| Dose {
                time_min: 5.0 * i as f64,
                amount_mg: 28.0,
                route: Route::Intranasal,
                duration_min: None,
            })
            .collect(),
        iv_rates: vec![],
    }
}

fn request(model: &str, regimen: Regimen, cov: Covariates, horizon: f64, step: f64) -> SimRequest {
    SimRequest {
        model: model.into(),
        regimen,
        covariates: cov,
        options: Options::default(),
        horizon_min: horizon,
        step_min: step,
        population: None,
        label: None,
    }
}

fn adult() -> Covariates {
    Covariates {
        weight_kg: 75.0,
        age_years: Some(45.0),
    }
}

fn auc(c: &[f64]) -> f64 {
    c.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum()
}

fn cmax(c: &[f64]) -> f64 {
    c.iter().copied().fold(0.0, f64::max)
}

/// Engine and RK4 (step 0.01 min) agree within 1e-6 × Cmax at every minute for 28, 56 and
/// 84 mg given as 28-mg devices 5 min apart, with devices after the first at FRn × 0.62.
#[test]
fn perez_ruixo_subsequent_devices_match_an_independent_ode() {
    let lib = lib();
    let horizon = 1440;
    for n in 1..=3 {
        let r = simulate(
            &lib,
            &request("perez_ruixo_2021", devices(n), adult(), horizon as f64, 1.0),
            None,
        )
        .unwrap();
        let engine = &r.typical[0].1;
        let ode = perez_ruixo_rk4(n, &|i| if i == 0 { 0.54 } else { 0.54 * 0.62 }, horizon);
        assert_eq!(engine.len(), ode.len());
        let top = cmax(&ode);
        let worst = engine
            .iter()
            .zip(&ode)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-6 * top,
            "{n} devices: max difference {worst} ng/mL vs Cmax {top}"
        );
        assert!(
            r.assumptions
                .iter()
                .any(|a| a.name == "subsequent devices (intranasal)" && a.value == Some(0.62))
        );
    }
}

/// The old engine gave every device FRn: for 56 mg it overstated Cmax by about 21 % and AUC by
/// about 16 % (84 mg: 30 % and 22 %), the issue's figures.
#[test]
fn perez_ruixo_56_and_84_mg_fall_by_the_issues_figures() {
    let lib = lib();
    let horizon = 1440;
    for (n, cmax_over, auc_over) in [(2usize, 0.21, 0.16), (3, 0.30, 0.22)] {
        let new = simulate(
            &lib,
            &request("perez_ruixo_2021", devices(n), adult(), horizon as f64, 1.0),
            None,
        )
        .unwrap();
        let new_c = &new.typical[0].1;
        let old = perez_ruixo_rk4(n, &|_| 0.54, horizon);
        let c_over = cmax(&old) / cmax(new_c) - 1.0;
        let a_over = auc(&old) / auc(new_c) - 1.0;
        assert!(
            (c_over - cmax_over).abs() < 0.03,
            "{n} devices: old Cmax was {:.1} % higher",
            c_over * 100.0
        );
        assert!(
            (a_over - auc_over).abs() < 0.03,
            "{n} devices: old AUC was {:.1} % higher",
            a_over * 100.0
        );
    }
}

/// A 56-mg dose written as one record counts as two devices (the second at FRn × 0.62); a
/// device 120 min or more after the previous one starts a new dosing occasion.
#[test]
fn one_56_mg_record_is_two_devices_and_a_later_session_is_a_new_occasion() {
    let lib = lib();
    let one = |time_min: f64, amount_mg: f64| Dose {
        time_min,
        amount_mg,
        route: Route::Intranasal,
        duration_min: None,
    };
    let run = |doses: Vec<Dose>| {
        simulate(
            &lib,
            &request(
                "perez_ruixo_2021",
                Regimen {
                    doses,
                    iv_rates: vec![],
                },
                adult(),
                4320.0,
                1.0,
            ),
            None,
        )
        .unwrap()
        .typical[0]
            .1
            .clone()
    };
    let together = run(vec![one(0.0, 56.0)]);
    let split = run(vec![one(0.0, 28.0), one(0.0, 28.0)]);
    for (a, b) in together.iter().zip(&split) {
        assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0));
    }
    // Two sessions two days apart: the second session's first device is a first device again,
    // so the second session's curve equals the first one's plus the remainder of the first.
    let single = run(vec![one(0.0, 28.0)]);
    let two_sessions = run(vec![one(0.0, 28.0), one(2880.0, 28.0)]);
    let k = 2880 + 30;
    let expect = single[k] + single[30];
    assert!(
        (two_sessions[k] - expect).abs() < 1e-6 * expect,
        "{} vs {expect}",
        two_sessions[k]
    );
}

/// Flint 2017, 10-kg child, 1 mg/kg/h S-ketamine for 48 h: CL_snk × (1 + 0.0087/h × t). The
/// engine (CL_snk constant on 6-min steps at its mid-step value) and RK4 (step 0.05 min, CL_snk
/// continuous in time) agree within 5e-4 relative for S-norketamine at every hour, and within
/// 1e-6 for S-ketamine, which CL_snk does not affect. After 48 h CL_snk is 41.8 % higher.
#[test]
fn flint_time_effect_matches_an_independent_ode_over_48_h() {
    let lib = lib();
    let wt = 10.0;
    let rate = wt / 60.0; // mg/min
    let reg = Regimen {
        doses: vec![],
        iv_rates: vec![crate::RateStep {
            time_min: 0.0,
            rate_mg_per_min: rate,
        }],
    };
    let horizon = 48.0 * 60.0;
    let r = simulate(
        &lib,
        &request(
            "flint_2017",
            reg,
            Covariates {
                weight_kg: wt,
                age_years: Some(2.0),
            },
            horizon,
            60.0,
        ),
        None,
    )
    .unwrap();
    let s = wt / 70.0;
    let cl = 112.0 / 60.0 * s.powf(0.75);
    let q = 196.0 / 60.0 * s.powf(0.75);
    let cl_snk = 53.2 / 60.0 * s.powf(0.75);
    let (v1, v2, v_snk) = (7.73 * s, 545.0 * s, 1.0 * s);
    let per_min = 0.0087 / 60.0;
    let f = |t: f64, _m: f64, x: &[f64]| -> Vec<f64> {
        let (c, p, n) = (x[0], x[1], x[2]);
        vec![
            rate - cl / v1 * c - q / v1 * c + q / v2 * p,
            q / v1 * c - q / v2 * p,
            cl / v1 * c - cl_snk * (1.0 + per_min * t) / v_snk * n,
        ]
    };
    let mut x = vec![0.0; 3];
    let (ket, nor) = (&r.typical[0].1, &r.typical[1].1);
    for h in 1..=48 {
        rk4(&f, &mut x, (h - 1) as f64 * 60.0, h as f64 * 60.0, 0.05);
        let (ck, cn) = (x[0] / v1 * 1000.0, x[2] / v_snk * 1000.0);
        assert!(
            (ket[h] - ck).abs() <= 1e-6 * ck,
            "hour {h}: S-ketamine {} vs {ck}",
            ket[h]
        );
        let rel = (nor[h] - cn).abs() / cn;
        assert!(
            rel < 5e-4,
            "hour {h}: S-norketamine {} vs RK4 {cn} (relative {rel:e})",
            nor[h]
        );
    }
    assert!(((1.0 + per_min * horizon) - 1.4176).abs() < 1e-9);
    // Without the time effect S-norketamine at 48 h would be about 42 % higher (quasi-steady
    // state: formation / CL_snk).
    let mut y = vec![0.0; 3];
    let g = |_t: f64, _m: f64, x: &[f64]| -> Vec<f64> { f(0.0, 0.0, x) };
    rk4(&g, &mut y, 0.0, horizon, 0.05);
    let ratio = (y[2] / v_snk * 1000.0) / nor[48];
    assert!((ratio - 1.4176).abs() < 0.02, "{ratio}");
    assert!(
        r.assumptions
            .iter()
            .any(|a| a.name == "time effect on cl_snk" && a.value == Some(0.0087))
    );
}

#[test]
fn implausible_amounts_and_rates_are_refused_naming_the_field() {
    let lib = lib();
    let bolus = |amount_mg: f64| Regimen {
        doses: vec![Dose {
            time_min: 0.0,
            amount_mg,
            route: Route::IvBolus,
            duration_min: None,
        }],
        iv_rates: vec![],
    };
    for (amount, field) in [
        (1e308, "doses[0].amount_mg"),
        (f64::INFINITY, "doses[0].amount_mg"),
        (f64::NAN, "doses[0].amount_mg"),
        (-5.0, "doses[0].amount_mg"),
        // More drug than a 75-kg body weighs.
        (75.0e6 + 1.0, "doses[0].amount_mg"),
    ] {
        let e = simulate(
            &lib,
            &request("domino", bolus(amount), adult(), 60.0, 1.0),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field(), field, "{amount}: {e}");
    }
    let rate = |rate_mg_per_min: f64| Regimen {
        doses: vec![],
        iv_rates: vec![crate::RateStep {
            time_min: 0.0,
            rate_mg_per_min,
        }],
    };
    for r in [f64::INFINITY, f64::NAN, 1e300, -1.0] {
        let e = simulate(&lib, &request("domino", rate(r), adult(), 60.0, 1.0), None).unwrap_err();
        assert_eq!(e.field(), "iv_rates[0].rate_mg_per_min", "{r}: {e}");
    }
    // An ordinary dose passes and gives finite numbers.
    let ok = simulate(
        &lib,
        &request("domino", bolus(35.0), adult(), 60.0, 1.0),
        None,
    )
    .unwrap();
    assert!(ok.key.cmax_ng_ml.is_finite() && ok.key.auc_ng_min_ml.is_finite());
}

#[test]
fn the_grid_ends_exactly_at_the_horizon() {
    assert_eq!(
        crate::grid(10.0, 3.0).unwrap(),
        vec![0.0, 3.0, 6.0, 9.0, 10.0]
    );
    assert_eq!(crate::grid(360.0, 1.0).unwrap().len(), 361);
    for (h, s) in [
        (0.3, 0.1),
        (100.0, 7.0),
        (360.0, 0.7),
        (1.0, 2.0),
        (59.9, 0.5),
    ] {
        let g = crate::grid(h, s).unwrap();
        assert_eq!(*g.last().unwrap(), h, "{h}/{s}");
        assert!(g.windows(2).all(|w| w[1] > w[0]), "{h}/{s}: {g:?}");
        assert_eq!(g.len(), crate::grid_len(h, s).unwrap());
    }
    let lib = lib();
    let r = simulate(
        &lib,
        &request(
            "domino",
            Regimen {
                doses: vec![Dose {
                    time_min: 0.0,
                    amount_mg: 35.0,
                    route: Route::IvBolus,
                    duration_min: None,
                }],
                iv_rates: vec![],
            },
            adult(),
            100.0,
            7.0,
        ),
        None,
    )
    .unwrap();
    assert_eq!(*r.times_min.last().unwrap(), 100.0);
    assert_eq!(r.typical[0].1.len(), r.times_min.len());
}

fn tci_req(target: f64, max_rate: Option<f64>) -> TciRequest {
    TciRequest {
        model: "domino".into(),
        covariates: Covariates {
            weight_kg: 70.0,
            age_years: Some(40.0),
        },
        target_ng_ml: target,
        site: TciSite::Plasma,
        max_rate_mg_per_kg_min: max_rate,
        update_s: None,
        duration_min: 30.0,
        ke0_per_min: None,
    }
}

#[test]
fn tci_targets_are_bounded_and_an_unreached_target_is_warned() {
    let lib = lib();
    for t in [f64::NAN, f64::INFINITY, -1.0, 0.0, 10_001.0, 1e300] {
        let e = tci(&lib, &tci_req(t, None)).unwrap_err();
        assert_eq!(e.field(), "target_ng_ml", "{t}: {e}");
    }
    for m in [f64::NAN, f64::INFINITY, -0.1] {
        let e = tci(&lib, &tci_req(200.0, Some(m))).unwrap_err();
        assert_eq!(e.field(), "max_rate_mg_per_kg_min", "{m}: {e}");
    }
    let ok = tci(&lib, &tci_req(200.0, None)).unwrap();
    assert!(ok.target_reached_min.is_some_and(|t| t < 5.0), "{ok:?}");
    assert!(!ok.warnings.iter().any(|w| w.contains("target not reached")));
    assert_eq!(*ok.times_min.last().unwrap(), 30.0);
    // The highest accepted target with a tiny maximum rate: held at the maximum, never reached.
    let capped = tci(&lib, &tci_req(10_000.0, Some(0.001))).unwrap();
    assert!(capped.target_reached_min.is_none());
    assert!(capped.held_at_max_min > 29.0, "{}", capped.held_at_max_min);
    assert!(
        capped
            .warnings
            .iter()
            .any(|w| w.contains("target not reached") && w.contains("10000 ng/mL")),
        "{:?}",
        capped.warnings
    );
}

/// Cells of a request: grid points × outputs × subjects.
#[test]
fn request_cells_count_points_outputs_and_subjects() {
    let lib = lib();
    let mut r = request("perez_ruixo_2021", devices(2), adult(), 360.0, 1.0);
    assert_eq!(r.cells(&lib).unwrap(), 361 * 2);
    r.population = Some(crate::PopulationSpec {
        subjects: 1000,
        seed: 1,
        iiv_cv: vec![],
        weight_sd_kg: None,
        target_ng_ml: None,
    });
    assert_eq!(r.cells(&lib).unwrap(), 361 * 2 * 1000);
}
