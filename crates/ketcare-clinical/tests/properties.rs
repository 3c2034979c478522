//! Property tests: monotone in weight, never above a hard limit, exact unit round trips.

mod common;
use common::*;

use ketcare_clinical::dose::{Administration, DoseOrder, DoseRequest, calculate};
use ketcare_clinical::protocol::{Bound, LimitQuantity, LimitScope, LimitSeverity, Role};
use ketcare_clinical::units::*;
use ketcare_clinical::{Library, SiteSettings};
use proptest::prelude::*;
use std::sync::OnceLock;

fn shared() -> &'static Library {
    static LIB: OnceLock<Library> = OnceLock::new();
    LIB.get_or_init(lib)
}

fn settings(rule: bool) -> SiteSettings {
    let s = if rule { settings_a() } else { settings_b() };
    s.with("paediatric-pain-in-ketamine.cap_mg_per_dose", 50.0)
        .with("bipolar-si-adult-iv-ketamine.duration_minutes", 40.0)
}

/// Weight-based protocols and the choices they need; ages inside each protocol's range.
fn weight_based(id: usize, w: f64) -> DoseRequest {
    let mut r = req("trd-adult-iv-ketamine", w);
    match id {
        0 => {}
        1 => {
            r = req("trd-adolescent-iv-ketamine-dwyer", w);
            r.patient.age = age(15, 0);
        }
        2 => {
            r = req("trd-adolescent-iv-ketamine-yale", w);
            r.patient.age = age(16, 0);
        }
        3 => r = req("ptsd-adult-iv-ketamine", w),
        4 => r = req("social-anxiety-adult-iv-ketamine", w),
        5 => r = req("anxiety-adult-sc-ketamine", w),
        6 => r = req("ed-analgesia-adult-iv-ketamine", w),
        7 => {
            r = req("paediatric-pain-in-ketamine", w);
            r.patient.age = age(10, 0);
        }
        8 => r = req("sedation-adult-iv-ketamine", w),
        9 => r = req("crps-adult-iv-ketamine-035mgkgh", w),
        10 => {
            r = req("sedation-child-iv-ketamine", w);
            r.patient.age = age(6, 0);
            r.bolus.amount = per_kg(1.5);
        }
        11 => {
            r = req("sedation-child-im-ketamine", w);
            r.patient.age = age(6, 0);
            r.dose.amount = per_kg(4.0);
        }
        12 => {
            r = req("trd-adult-oral-ketamine-weight", w);
            r.dose.amount = per_kg(2.0);
        }
        13 => r = req("bipolar-si-adult-iv-ketamine", w),
        _ => {
            r = req("chronic-pain-adult-iv-ketamine", w);
            r.bolus.amount = per_kg(0.3);
            r.infusion.amount = per_kg_h(1.0);
            r.infusion.duration_minutes = minutes(120.0);
        }
    }
    r
}
const N_WEIGHT_BASED: usize = 15;

fn total(o: &DoseOrder) -> f64 {
    o.calculation
        .components
        .iter()
        .map(|c| c.dose_mg.value)
        .sum()
}

fn with_prep(mut r: DoseRequest, conc: Option<f64>, final_ml: Option<f64>) -> DoseRequest {
    if let Some(c) = conc {
        r.preparation = prep(c, final_ml);
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dose_never_decreases_as_weight_rises(
        id in 0..N_WEIGHT_BASED,
        w1 in 3.0f64..250.0,
        dw in 0.0f64..60.0,
        conc in prop::sample::select(vec![None, Some(10.0), Some(50.0)]),
        rule in any::<bool>(),
    ) {
        let s = settings(rule);
        let a = calculate(shared(), &s, &with_prep(weight_based(id, w1), conc, None));
        let b = calculate(shared(), &s, &with_prep(weight_based(id, w1 + dw), conc, None));
        if let (Ok(a), Ok(b)) = (a, b) {
            prop_assert!(total(&a) <= total(&b) + 1e-9, "{} kg → {} mg but {} kg → {} mg", w1, total(&a), w1 + dw, total(&b));
        }
    }

    #[test]
    fn nothing_computed_exceeds_a_hard_limit(
        id in 0..N_WEIGHT_BASED,
        w in 2.0f64..260.0,
        factor in 0.2f64..4.0,
        conc in prop::sample::select(vec![None, Some(10.0), Some(50.0), Some(100.0)]),
        final_ml in prop::option::of(1.0f64..500.0),
        rule in any::<bool>(),
        repeat in any::<bool>(),
    ) {
        let s = settings(rule);
        let mut r = with_prep(weight_based(id, w), conc, final_ml);
        // Push the ordered amount around the protocol's value.
        for c in [&mut r.bolus, &mut r.infusion, &mut r.dose] {
            if let Some(ketcare_clinical::dose::Amount::MgPerKg(a)) = c.amount {
                c.amount = per_kg(a.value() * factor);
            }
        }
        if r.bolus.amount.is_none() && r.infusion.amount.is_none() && r.dose.amount.is_none() {
            let p = shared().get(&r.protocol_id).ok().and_then(|p| p.components().first().map(|(role, c)| (*role, c.basis)));
            if let Some((role, ketcare_clinical::protocol::DoseBasis::PerKg)) = p {
                let base = 0.5 * factor;
                match role {
                    Role::Bolus => r.bolus.amount = per_kg(base),
                    Role::Infusion => r.infusion.amount = per_kg(base),
                    _ => r.dose.amount = per_kg(base),
                }
            }
        }
        if repeat && (id == 10 || id == 11) {
            r.administration = Administration::Repeat;
            r.repeat.amount = per_kg(factor);
            r.given_this_session_mg = dose_mg(w * factor);
        }
        let Ok(o) = calculate(shared(), &s, &r) else { return Ok(()); };
        let view = shared().show(&r.protocol_id, &s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let kgs = o.calculation.weight.basis_kg.value;
        for l in view.effective_limits.iter().filter(|l| l.severity != LimitSeverity::Soft) {
            let Some(limit) = l.value else { continue };
            let mut values = Vec::new();
            if l.applies_to == LimitScope::Session {
                let t = o.calculation.session_total_mg.value;
                values.push(if l.quantity == LimitQuantity::MgPerKg { t / kgs } else { t });
            }
            for c in o.calculation.components.iter().filter(|c| covers(l.applies_to, c.role)) {
                let mgh = c.mg_per_hour.as_ref().map(|n| n.value);
                let v = match l.quantity {
                    LimitQuantity::Mg => Some(c.dose_mg.value),
                    LimitQuantity::MgPerKg => Some(c.dose_mg.value / kgs),
                    LimitQuantity::MgPerHour => mgh,
                    LimitQuantity::MgPerKgPerHour => mgh.map(|h| h / kgs),
                    LimitQuantity::Minutes => c.duration_minutes.as_ref().map(|d| d.value),
                    _ => None,
                };
                values.extend(v);
            }
            for v in values {
                match l.bound {
                    Bound::Max => prop_assert!(v <= limit * (1.0 + 1e-9), "{}: {} > {} ({})", r.protocol_id, v, limit, l.id),
                    Bound::Min => prop_assert!(v >= limit * (1.0 - 1e-9), "{}: {} < {} ({})", r.protocol_id, v, limit, l.id),
                }
            }
        }
    }

    #[test]
    fn calculated_volumes_and_rates_round_trip(
        id in 0..N_WEIGHT_BASED,
        w in 20.0f64..150.0,
        conc in prop::sample::select(vec![10.0, 50.0, 100.0]),
        final_ml in prop::option::of(20.0f64..500.0),
        rule in any::<bool>(),
    ) {
        let s = settings(rule);
        let Ok(o) = calculate(shared(), &s, &with_prep(weight_based(id, w), Some(conc), final_ml)) else { return Ok(()); };
        for c in &o.calculation.components {
            let Some(p) = &c.preparation else { continue };
            let rel = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
            // mg ↔ mL
            prop_assert!(rel(p.volume_to_draw.value * p.vial_concentration.value, c.dose_mg.value));
            let given = p.final_volume.as_ref().map_or(p.volume_to_draw.value, |v| v.value);
            prop_assert!(rel(p.final_concentration.value * given, c.dose_mg.value));
            // mL ↔ mL/h ↔ mg/h
            if let (Some(rate), Some(run), Some(mgh)) = (&p.rate_ml_per_h, &p.run_time_minutes, &p.delivered_mg_per_hour) {
                prop_assert!(rel(rate.value * run.value / 60.0, given));
                prop_assert!(rel(rate.value * p.final_concentration.value, mgh.value));
                prop_assert!(rel(mgh.value * run.value / 60.0, c.dose_mg.value));
            }
        }
    }

    #[test]
    fn unit_round_trips_are_exact(
        mg in 0.01f64..5000.0,
        conc in 0.01f64..100.0,
        minutes_v in 0.5f64..10000.0,
    ) {
        let rel = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
        let (Ok(d), Ok(c), Ok(m)) = (DoseMg::new(mg), ConcentrationMgPerMl::new(conc), Minutes::new(minutes_v)) else {
            return Ok(());
        };
        let v = d / c; // mg → mL
        prop_assert!(rel((v * c).value(), mg)); // mL → mg
        let r = v / m; // mL → mL/h
        prop_assert!(rel((v / r).value(), minutes_v)); // mL/h → time
        let mgh = r * c; // mL/h → mg/h
        prop_assert!(rel((mgh / c).value(), r.value())); // mg/h → mL/h
        prop_assert!(rel((mgh * m).value(), mg)); // mg/h × time → mg
        prop_assert!(rel((d / m).value(), mgh.value()));
    }
}

fn covers(scope: LimitScope, role: Role) -> bool {
    matches!(
        (scope, role),
        (LimitScope::EachAdministration, _)
            | (LimitScope::Bolus, Role::Bolus)
            | (LimitScope::Infusion, Role::Infusion)
            | (LimitScope::Dose, Role::Dose)
            | (LimitScope::Repeat, Role::Repeat)
    )
}

#[test]
fn every_weight_based_fixture_computes() {
    // Guards the property tests against vacuous passes: each fixture must succeed at 70 kg.
    for id in 0..N_WEIGHT_BASED {
        for conc in [None, Some(10.0), Some(50.0)] {
            let r = with_prep(weight_based(id, 70.0), conc, None);
            let res = calculate(shared(), &settings(true), &r);
            assert!(res.is_ok(), "{} {conc:?}: {:?}", r.protocol_id, res.err());
        }
    }
}
