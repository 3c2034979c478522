//! Dose cases worked out by hand from ../shared/reference/clinical.md. Each case names the
//! row it uses. Rounding rule sets (site settings, the reference gives none):
//! A = dose 0.5 mg, syringe 0.1 mL, pump 0.1 mL/h; B = dose 1 mg, syringe 0.01 mL, pump 1 mL/h.
//! Halves round up ("nearest"); rounding that would cross a hard limit or cap goes the other way.

mod common;
use common::*;

use ketcare_clinical::SiteSettings;
use ketcare_clinical::dose::{Administration, DoseRequest, OrderState, calculate};
use ketcare_clinical::settings::LimitOverride;

#[derive(Default)]
struct Want {
    /// mg per component, in administration order (bolus, infusion | dose | repeat).
    dose_mg: Vec<f64>,
    /// mL to draw per component (when a preparation is given).
    draw_ml: Vec<f64>,
    final_conc: Option<f64>,
    rate_ml_h: Option<f64>,
    run_min: Option<f64>,
    devices: Option<u32>,
    schedule: Vec<f64>,
    session_total: Option<f64>,
    needs_override: bool,
    cap_applied: bool,
    rounded_down: bool,
}

enum Expect {
    Ok(Want),
    /// Error variant name, and a text the error's debug output must contain.
    Err(&'static str, &'static str),
}

struct Case {
    name: &'static str,
    row: &'static str,
    settings: fn() -> SiteSettings,
    req: DoseRequest,
    expect: Expect,
}

fn with(mut r: DoseRequest, f: impl FnOnce(&mut DoseRequest)) -> DoseRequest {
    f(&mut r);
    r
}

fn ok(dose: &[f64]) -> Want {
    Want {
        dose_mg: dose.to_vec(),
        ..Want::default()
    }
}

fn widened() -> SiteSettings {
    let mut s = settings_a();
    s.limit_overrides.push(LimitOverride {
        protocol_id: "trd-adult-iv-ketamine".into(),
        limit_id: "max-mg-per-kg-hard".into(),
        value: 1.2,
        set_by: user("admin.one"),
        second_approver: Some(user("admin.two")),
        reason: "research protocol approved by the medical director".into(),
    });
    s
}
fn widened_alone() -> SiteSettings {
    let mut s = widened();
    s.limit_overrides[0].second_approver = None;
    s
}
fn narrowed() -> SiteSettings {
    let mut s = settings_a();
    s.limit_overrides.push(LimitOverride {
        protocol_id: "trd-adult-iv-ketamine".into(),
        limit_id: "max-mg-per-kg-hard".into(),
        value: 0.6,
        set_by: user("admin.one"),
        second_approver: None,
        reason: "clinic policy".into(),
    });
    s
}
fn trd_cap_50() -> SiteSettings {
    settings_a().with("trd-adult-iv-ketamine.max_mg_per_dose", 50.0)
}
fn bipolar_40() -> SiteSettings {
    settings_a().with("bipolar-si-adult-iv-ketamine.duration_minutes", 40.0)
}
fn prime_cap_50_a() -> SiteSettings {
    settings_a().with("paediatric-pain-in-ketamine.cap_mg_per_dose", 50.0)
}
fn prime_cap_50_b() -> SiteSettings {
    settings_b().with("paediatric-pain-in-ketamine.cap_mg_per_dose", 50.0)
}

const TRD: &str = "clinical.md §2b 'Adult TRD (standard research dose)': 0.5 mg/kg IV over 40 min [R17][R18][R19]";
const TRD_RANGE: &str =
    "clinical.md §2b 'Adult TRD dose range': 0.1–0.75 mg/kg, RCT up to 1.0 mg/kg [R20][R19]";
const VIALS: &str = "clinical.md §6 'Ketamine vial strengths': 10/50/100 mg/mL, 100 mg/mL diluted (equal volume) before IV [R33c][R33]";
const DWYER: &str = "clinical.md §2b 'Adolescent TRD (13–17)': 0.5 mg/kg over 40 min [R15]";
const YALE: &str = "clinical.md §2b 'Adolescent TRD (research protocol)' [R16] + §2b weight-basis row 40 mg cap [R16b]";
const ESK: &str = "clinical.md §2a adult TRD rows + device facts: 28 mg devices, 56/84 mg, day 1 56 mg, 5 min between devices [R1a][R2][R5]";
const MDSI: &str = "clinical.md §2a 'Adult MDSI': 84 mg, may reduce to 56 mg [R2]";
const PTSD: &str = "clinical.md §2b 'PTSD': 0.5 mg/kg over 40 min [R27]; Abdallah 0.2 mg/kg [R28]";
const SAD: &str = "clinical.md §2b 'Social anxiety' IV: 0.5 mg/kg over 40 min [R30]";
const SC: &str = "clinical.md §2b 'GAD / social anxiety' SC: 0.25 → 0.5 → 1 mg/kg [R29]";
const BIP: &str = "clinical.md §2b 'Bipolar depression with SI': 0.5 mg/kg, duration U [R31]";
const CRPS_A: &str = "clinical.md §2c 'CRPS (regimens with evidence)': 22 mg/h × 4 days [R8]";
const CRPS_B: &str = "clinical.md §2c 'CRPS (regimens with evidence)': 0.35 mg/kg/h over 4 h [R8]";
const CHRONIC: &str =
    "clinical.md §2c 'Chronic pain, adults': bolus ≤ 0.35 mg/kg, 0.5–2 mg/kg/h [R8]";
const ACUTE: &str = "clinical.md §2c 'Acute / peri-operative pain, adults': bolus ≤ 0.35 mg/kg, ≤ 1 mg/kg/h, often 0.1–0.5 [R9]";
const ED: &str =
    "clinical.md §2c 'ED analgesia, adults': 0.1–0.5 mg/kg, RCT 0.3 mg/kg [R10c][R57] (S)";
const PRIME: &str = "clinical.md §2c 'Pediatric acute pain (8–17 y)': IN 1.5 mg/kg, mg cap U [R13]";
const SED_C_IV: &str = "clinical.md §2c 'Procedural sedation, children' IV 1.5–2 mg/kg, repeat 0.5–1 [R10]; total ≥ 5 mg/kg [R11]; label IV ≤ 4.5 mg/kg [R33]; < 3 months [R10]";
const SED_A_IV: &str =
    "clinical.md §2c 'Procedural sedation, adults' IV 1 mg/kg [R10]; label IV ≤ 4.5 mg/kg [R33]";
const SED_IM: &str = "clinical.md §2c 'Procedural sedation, children and adults' IM 4–5 mg/kg [R10]; label IM ≤ 13 mg/kg [R33]";
const SED_IN: &str = "clinical.md §2c 'Procedural sedation, children' IN 3–6 mg/kg [R10c] (S)";
const ORAL_F: &str = "clinical.md §2b 'Adult TRD' oral: 50 mg, +25 mg steps [R37]; reported 25–300 mg, ≤ 7.0 mg/kg [R22]";
const ORAL_W: &str =
    "clinical.md §2b 'Adult TRD' oral: ~2.0–2.5 mg/kg; ≤ 7.0 mg/kg, ≤ 300 mg [R22]";
const SL: &str = "clinical.md §2b 'Refractory unipolar/bipolar depression' sublingual 10 mg from 100 mg/mL [R38]";

fn cases() -> Vec<Case> {
    use Expect::*;
    let p = "trd-adult-iv-ketamine";
    vec![
        Case {
            name: "TRD 70 kg, no vial: 0.5 × 70 = 35 mg",
            row: TRD,
            settings: settings_a,
            req: req(p, 70.0),
            expect: Ok(ok(&[35.0])),
        },
        Case {
            name: "TRD 70 kg, 10 mg/mL undiluted: 3.5 mL; 3.5/40×60 = 5.25 → 5.3 mL/h; run 3.5/5.3×60",
            row: TRD,
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.preparation = prep(10.0, None)),
            expect: Ok(Want {
                dose_mg: vec![35.0],
                draw_ml: vec![3.5],
                final_conc: Some(10.0),
                rate_ml_h: Some(5.3),
                run_min: Some(3.5 / 5.3 * 60.0),
                ..Want::default()
            }),
        },
        Case {
            name: "TRD 70 kg, 10 mg/mL to 50 mL: 0.7 mg/mL, 75 mL/h, 40 min",
            row: TRD,
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.preparation = prep(10.0, Some(50.0))),
            expect: Ok(Want {
                dose_mg: vec![35.0],
                draw_ml: vec![3.5],
                final_conc: Some(0.7),
                rate_ml_h: Some(75.0),
                run_min: Some(40.0),
                ..Want::default()
            }),
        },
        Case {
            name: "TRD 83.3 kg: 41.65 → 41.5 mg (0.5 mg); 41.5/50 = 0.83 → 0.8 mL → 40 mg delivered; 0.4 mg/mL; 150 mL/h",
            row: TRD,
            settings: settings_a,
            req: with(req(p, 83.3), |r| r.preparation = prep(50.0, Some(100.0))),
            expect: Ok(Want {
                dose_mg: vec![40.0],
                draw_ml: vec![0.8],
                final_conc: Some(0.4),
                rate_ml_h: Some(150.0),
                run_min: Some(40.0),
                ..Want::default()
            }),
        },
        Case {
            name: "TRD obese 150 kg actual weight: 75 mg, 7.5 mL, 0.75 mg/mL at 150 mL/h",
            row: TRD,
            settings: settings_a,
            req: with(req(p, 150.0), |r| r.preparation = prep(10.0, Some(100.0))),
            expect: Ok(Want {
                dose_mg: vec![75.0],
                draw_ml: vec![7.5],
                final_conc: Some(0.75),
                rate_ml_h: Some(150.0),
                run_min: Some(40.0),
                ..Want::default()
            }),
        },
        Case {
            name: "TRD obese 180 kg step 1.0 mg/kg: 180 mg crosses soft 0.75, equals hard 1.0; 250 mL → 375 mL/h",
            row: TRD_RANGE,
            settings: settings_a,
            req: with(req(p, 180.0), |r| {
                r.infusion.step = Some(4);
                r.preparation = prep(10.0, Some(250.0));
            }),
            expect: Ok(Want {
                dose_mg: vec![180.0],
                draw_ml: vec![18.0],
                rate_ml_h: Some(375.0),
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "TRD 1.1 mg/kg refused by hard 1.0 mg/kg",
            row: TRD_RANGE,
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.infusion.amount = per_kg(1.1)),
            expect: Err("HardLimit", "max-mg-per-kg-hard"),
        },
        Case {
            name: "TRD step 0.1 mg/kg × 70 = 7 mg (soft minimum met exactly)",
            row: TRD_RANGE,
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.infusion.step = Some(0)),
            expect: Ok(ok(&[7.0])),
        },
        Case {
            name: "TRD 0.05 mg/kg × 70 = 3.5 mg below soft 0.1 → needs override",
            row: TRD_RANGE,
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.infusion.amount = per_kg(0.05)),
            expect: Ok(Want {
                dose_mg: vec![3.5],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "TRD 100 mg/mL with no dilution refused (0.35 → 0.4 mL; needs ≥ 0.8 mL)",
            row: VIALS,
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.preparation = prep(100.0, None)),
            expect: Err("DilutionRequired", "min_final_volume_ml: 0.8"),
        },
        Case {
            name: "TRD 100 mg/mL to 20 mL (B): 0.35 mL, 1.75 mg/mL, 30 mL/h",
            row: VIALS,
            settings: settings_b,
            req: with(req(p, 70.0), |r| r.preparation = prep(100.0, Some(20.0))),
            expect: Ok(Want {
                dose_mg: vec![35.0],
                draw_ml: vec![0.35],
                final_conc: Some(1.75),
                rate_ml_h: Some(30.0),
                run_min: Some(40.0),
                ..Want::default()
            }),
        },
        Case {
            name: "TRD age 72 > 70 (dose-finding RCT ages 18–70) → needs override",
            row: "clinical.md §1a 'TRD, adults — dose finding' ages 18–70 [R19]",
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.patient.age = age(72, 0)),
            expect: Ok(Want {
                dose_mg: vec![35.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "TRD 120-min run > 100 min shown safe → needs override; 35 mg",
            row: TRD_RANGE,
            settings: settings_a,
            req: with(req(p, 70.0), |r| {
                r.infusion.duration_minutes = minutes(120.0)
            }),
            expect: Ok(Want {
                dose_mg: vec![35.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "TRD site mg cap 50 (U setting): 120 kg → 60 mg refused",
            row: "clinical.md §9 item 12 (per-dose cap U → site setting)",
            settings: trd_cap_50,
            req: req(p, 120.0),
            expect: Err("HardLimit", "max-mg-per-dose"),
        },
        Case {
            name: "TRD 200.5 kg × 1.0: 200.5 → nearest 201 crosses hard 1.0 mg/kg → rounded down to 200 (B)",
            row: TRD_RANGE,
            settings: settings_b,
            req: with(req(p, 200.5), |r| r.infusion.step = Some(4)),
            expect: Ok(Want {
                dose_mg: vec![200.0],
                needs_override: true,
                rounded_down: true,
                ..Want::default()
            }),
        },
        Case {
            name: "TRD hard limit widened to 1.2 with second approver: 1.1 × 70 = 77 mg",
            row: TRD_RANGE,
            settings: widened,
            req: with(req(p, 70.0), |r| r.infusion.amount = per_kg(1.1)),
            expect: Ok(Want {
                dose_mg: vec![77.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "TRD hard limit widened without second approver → protocol blocked",
            row: TRD_RANGE,
            settings: widened_alone,
            req: req(p, 70.0),
            expect: Err("Blocked", "WideningNeedsSecondApprover"),
        },
        Case {
            name: "TRD hard limit narrowed to 0.6: 0.75 × 70 refused",
            row: TRD_RANGE,
            settings: narrowed,
            req: with(req(p, 70.0), |r| r.infusion.step = Some(3)),
            expect: Err("HardLimit", "SiteLimitOverride"),
        },
        Case {
            name: "TRD final volume 3 mL < 3.5 mL drawn refused",
            row: VIALS,
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.preparation = prep(10.0, Some(3.0))),
            expect: Err("FinalVolumeTooSmall", "3.5"),
        },
        Case {
            name: "TRD amount in mg where mg/kg expected refused",
            row: TRD,
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.infusion.amount = mg(35.0)),
            expect: Err("WrongUnit", "mg/kg"),
        },
        Case {
            name: "TRD 25 mg/mL is not stocked",
            row: VIALS,
            settings: settings_a,
            req: with(req(p, 70.0), |r| r.preparation = prep(25.0, None)),
            expect: Err("ConcentrationNotStocked", "25"),
        },
        Case {
            name: "TRD without site settings: blocked",
            row: "clinical.md 'How to read the tables' (U → site setting)",
            settings: SiteSettings::new,
            req: req(p, 70.0),
            expect: Err("Blocked", "observation.ketamine_psychiatric_minutes"),
        },
        // Adolescents.
        Case {
            name: "Dwyer 15 y 50 kg: 25 mg, 2.5 mL to 50 mL, 0.5 mg/mL, 75 mL/h",
            row: DWYER,
            settings: settings_a,
            req: with(req("trd-adolescent-iv-ketamine-dwyer", 50.0), |r| {
                r.patient.age = age(15, 0);
                r.preparation = prep(10.0, Some(50.0));
            }),
            expect: Ok(Want {
                dose_mg: vec![25.0],
                draw_ml: vec![2.5],
                final_conc: Some(0.5),
                rate_ml_h: Some(75.0),
                run_min: Some(40.0),
                ..Want::default()
            }),
        },
        Case {
            name: "Dwyer 17 y 11 m 60 kg: within 13–17, 30 mg",
            row: DWYER,
            settings: settings_a,
            req: with(req("trd-adolescent-iv-ketamine-dwyer", 60.0), |r| {
                r.patient.age = age(17, 11)
            }),
            expect: Ok(ok(&[30.0])),
        },
        Case {
            name: "Dwyer 18 y: outside 13–17 → needs override",
            row: DWYER,
            settings: settings_a,
            req: with(req("trd-adolescent-iv-ketamine-dwyer", 60.0), |r| {
                r.patient.age = age(18, 0)
            }),
            expect: Ok(Want {
                dose_mg: vec![30.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Dwyer without age refused",
            row: DWYER,
            settings: settings_a,
            req: with(req("trd-adolescent-iv-ketamine-dwyer", 60.0), |r| {
                r.patient.age = None
            }),
            expect: Err("AgeRequired", "age-min"),
        },
        Case {
            name: "Dwyer 0.6 mg/kg refused by hard 0.5",
            row: DWYER,
            settings: settings_a,
            req: with(req("trd-adolescent-iv-ketamine-dwyer", 60.0), |r| {
                r.patient.age = age(15, 0);
                r.infusion.amount = per_kg(0.6);
            }),
            expect: Err("HardLimit", "max-mg-per-kg-hard"),
        },
        Case {
            name: "Yale 90 kg: 45 mg capped at 40 mg",
            row: YALE,
            settings: settings_a,
            req: with(req("trd-adolescent-iv-ketamine-yale", 90.0), |r| {
                r.patient.age = age(16, 0)
            }),
            expect: Ok(Want {
                dose_mg: vec![40.0],
                cap_applied: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Yale 80 kg: 40 mg exactly, no cap",
            row: YALE,
            settings: settings_a,
            req: with(req("trd-adolescent-iv-ketamine-yale", 80.0), |r| {
                r.patient.age = age(16, 0)
            }),
            expect: Ok(ok(&[40.0])),
        },
        Case {
            name: "Yale 61 kg: 30.5 mg",
            row: YALE,
            settings: settings_a,
            req: with(req("trd-adolescent-iv-ketamine-yale", 61.0), |r| {
                r.patient.age = age(16, 0)
            }),
            expect: Ok(ok(&[30.5])),
        },
        Case {
            name: "Yale obese 120 kg: 60 → cap 40 mg; 4 mL to 40 mL, 1 mg/mL, 60 mL/h",
            row: YALE,
            settings: settings_a,
            req: with(req("trd-adolescent-iv-ketamine-yale", 120.0), |r| {
                r.patient.age = age(16, 0);
                r.preparation = prep(10.0, Some(40.0))
            }),
            expect: Ok(Want {
                dose_mg: vec![40.0],
                draw_ml: vec![4.0],
                final_conc: Some(1.0),
                rate_ml_h: Some(60.0),
                run_min: Some(40.0),
                cap_applied: true,
                ..Want::default()
            }),
        },
        // Esketamine.
        Case {
            name: "Esketamine TRD first dose: 56 mg = 2 devices at 0 and 5 min",
            row: ESK,
            settings: SiteSettings::new,
            req: with(req("trd-adult-esketamine", 70.0), |r| {
                r.patient.age = age(30, 0);
                r.first_dose_of_course = true;
            }),
            expect: Ok(Want {
                dose_mg: vec![],
                devices: Some(2),
                schedule: vec![0.0, 5.0],
                session_total: Some(56.0),
                ..Want::default()
            }),
        },
        Case {
            name: "Esketamine TRD first dose 84 mg refused",
            row: ESK,
            settings: SiteSettings::new,
            req: with(req("trd-adult-esketamine", 70.0), |r| {
                r.patient.age = age(30, 0);
                r.first_dose_of_course = true;
                r.esketamine_dose_mg = dose_mg(84.0);
            }),
            expect: Err("EsketamineFirstDose", "56"),
        },
        Case {
            name: "Esketamine TRD later dose 84 mg = 3 devices at 0, 5, 10 min",
            row: ESK,
            settings: SiteSettings::new,
            req: with(req("trd-adult-esketamine", 70.0), |r| {
                r.patient.age = age(30, 0);
                r.esketamine_dose_mg = dose_mg(84.0);
            }),
            expect: Ok(Want {
                devices: Some(3),
                schedule: vec![0.0, 5.0, 10.0],
                session_total: Some(84.0),
                ..Want::default()
            }),
        },
        Case {
            name: "Esketamine 112 mg is not offered",
            row: ESK,
            settings: SiteSettings::new,
            req: with(req("trd-adult-esketamine", 70.0), |r| {
                r.patient.age = age(30, 0);
                r.esketamine_dose_mg = dose_mg(112.0);
            }),
            expect: Err("EsketamineDoseNotOffered", "112"),
        },
        Case {
            name: "Esketamine at 17 y refused (not approved < 18)",
            row: "clinical.md §2a '< 18 years' [R59]",
            settings: SiteSettings::new,
            req: with(req("trd-adult-esketamine", 60.0), |r| {
                r.patient.age = age(17, 11)
            }),
            expect: Err("HardLimit", "age-min"),
        },
        Case {
            name: "Esketamine with a vial preparation refused",
            row: ESK,
            settings: SiteSettings::new,
            req: with(req("trd-adult-esketamine", 60.0), |r| {
                r.patient.age = age(40, 0);
                r.preparation = prep(10.0, None);
            }),
            expect: Err("NotApplicable", "28 mg devices"),
        },
        Case {
            name: "MDSI default 84 mg = 3 devices",
            row: MDSI,
            settings: SiteSettings::new,
            req: with(req("mdsi-adult-esketamine", 70.0), |r| {
                r.patient.age = age(45, 0)
            }),
            expect: Ok(Want {
                devices: Some(3),
                schedule: vec![0.0, 5.0, 10.0],
                session_total: Some(84.0),
                ..Want::default()
            }),
        },
        Case {
            name: "MDSI reduced 56 mg = 2 devices",
            row: MDSI,
            settings: SiteSettings::new,
            req: with(req("mdsi-adult-esketamine", 70.0), |r| {
                r.patient.age = age(45, 0);
                r.esketamine_dose_mg = dose_mg(56.0);
            }),
            expect: Ok(Want {
                devices: Some(2),
                schedule: vec![0.0, 5.0],
                session_total: Some(56.0),
                ..Want::default()
            }),
        },
        // PTSD, anxiety, bipolar SI.
        Case {
            name: "PTSD 80 kg: 40 mg, 4 mL to 100 mL, 0.4 mg/mL, 150 mL/h",
            row: PTSD,
            settings: settings_a,
            req: with(req("ptsd-adult-iv-ketamine", 80.0), |r| {
                r.preparation = prep(10.0, Some(100.0))
            }),
            expect: Ok(Want {
                dose_mg: vec![40.0],
                draw_ml: vec![4.0],
                final_conc: Some(0.4),
                rate_ml_h: Some(150.0),
                run_min: Some(40.0),
                ..Want::default()
            }),
        },
        Case {
            name: "PTSD step 0.2 mg/kg × 80 = 16 mg",
            row: PTSD,
            settings: settings_a,
            req: with(req("ptsd-adult-iv-ketamine", 80.0), |r| {
                r.infusion.step = Some(0)
            }),
            expect: Ok(ok(&[16.0])),
        },
        Case {
            name: "Social anxiety 65 kg: 32.5 mg",
            row: SAD,
            settings: settings_a,
            req: req("social-anxiety-adult-iv-ketamine", 65.0),
            expect: Ok(ok(&[32.5])),
        },
        Case {
            name: "SC anxiety step 0.25 × 70 = 17.5 mg; 1.75 mL → 1.8 mL → 18 mg delivered",
            row: SC,
            settings: settings_a,
            req: with(req("anxiety-adult-sc-ketamine", 70.0), |r| {
                r.dose.step = Some(0);
                r.preparation = prep(10.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![18.0],
                draw_ml: vec![1.8],
                ..Want::default()
            }),
        },
        Case {
            name: "SC anxiety step 1 mg/kg × 70 = 70 mg; 50 mg/mL → 1.4 mL",
            row: SC,
            settings: settings_a,
            req: with(req("anxiety-adult-sc-ketamine", 70.0), |r| {
                r.dose.step = Some(2);
                r.preparation = prep(50.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![70.0],
                draw_ml: vec![1.4],
                ..Want::default()
            }),
        },
        Case {
            name: "SC anxiety step 3 does not exist",
            row: SC,
            settings: settings_a,
            req: with(req("anxiety-adult-sc-ketamine", 70.0), |r| {
                r.dose.step = Some(3)
            }),
            expect: Err("StepOutOfRange", "max: 2"),
        },
        Case {
            name: "Bipolar SI blocked until the site sets the run time (U)",
            row: BIP,
            settings: settings_a,
            req: req("bipolar-si-adult-iv-ketamine", 70.0),
            expect: Err("Blocked", "bipolar-si-adult-iv-ketamine.duration_minutes"),
        },
        Case {
            name: "Bipolar SI with site run time 40 min: 35 mg, 3.5 mL to 50 mL, 75 mL/h",
            row: BIP,
            settings: bipolar_40,
            req: with(req("bipolar-si-adult-iv-ketamine", 70.0), |r| {
                r.preparation = prep(10.0, Some(50.0))
            }),
            expect: Ok(Want {
                dose_mg: vec![35.0],
                draw_ml: vec![3.5],
                rate_ml_h: Some(75.0),
                run_min: Some(40.0),
                ..Want::default()
            }),
        },
        // Pain.
        Case {
            name: "CRPS 22 mg/h × 5760 min = 2112 mg; 50 mg/mL 42.24 → 42.2 mL = 2110 mg; 0.4395 → 0.4 mL/h; run 6330 min",
            row: CRPS_A,
            settings: settings_a,
            req: with(req("crps-adult-iv-ketamine-22mgh", 70.0), |r| {
                r.preparation = prep(50.0, None)
            }),
            expect: Ok(Want {
                dose_mg: vec![2110.0],
                draw_ml: vec![42.2],
                rate_ml_h: Some(0.4),
                run_min: Some(6330.0),
                ..Want::default()
            }),
        },
        Case {
            name: "CRPS 22 mg/h, 211.2 mL of 10 mg/mL to 500 mL: 4.224 mg/mL; 5.208 → 5.2 mL/h; run 500/5.2×60",
            row: CRPS_A,
            settings: settings_a,
            req: with(req("crps-adult-iv-ketamine-22mgh", 70.0), |r| {
                r.preparation = prep(10.0, Some(500.0))
            }),
            expect: Ok(Want {
                dose_mg: vec![2112.0],
                draw_ml: vec![211.2],
                final_conc: Some(4.224),
                rate_ml_h: Some(5.2),
                run_min: Some(500.0 / 5.2 * 60.0),
                ..Want::default()
            }),
        },
        Case {
            name: "CRPS 22 mg/h at 50 mg/mL with a 1 mL/h pump: 0.44 mL/h rounds to 0 → refused (B)",
            row: CRPS_A,
            settings: settings_b,
            req: with(req("crps-adult-iv-ketamine-22mgh", 70.0), |r| {
                r.preparation = prep(50.0, None)
            }),
            expect: Err("RoundsToZero", "pump rate"),
        },
        Case {
            name: "CRPS 22 mg/h in a 10 kg patient: 2.2 mg/kg/h > hard 2",
            row: CRPS_A,
            settings: settings_a,
            req: req("crps-adult-iv-ketamine-22mgh", 10.0),
            expect: Err("HardLimit", "max-mg-per-kg-per-hour-hard"),
        },
        Case {
            name: "CRPS 0.35 mg/kg/h × 70 kg × 4 h = 98 mg; 9.8 mL to 100 mL; 25 mL/h",
            row: CRPS_B,
            settings: settings_a,
            req: with(req("crps-adult-iv-ketamine-035mgkgh", 70.0), |r| {
                r.preparation = prep(10.0, Some(100.0))
            }),
            expect: Ok(Want {
                dose_mg: vec![98.0],
                draw_ml: vec![9.8],
                final_conc: Some(0.98),
                rate_ml_h: Some(25.0),
                run_min: Some(240.0),
                ..Want::default()
            }),
        },
        Case {
            name: "CRPS 0.5 mg/kg/h × 70 × 4 h = 140 mg above regimen 0.35 → needs override",
            row: CRPS_B,
            settings: settings_a,
            req: with(req("crps-adult-iv-ketamine-035mgkgh", 70.0), |r| {
                r.infusion.amount = per_kg_h(0.5)
            }),
            expect: Ok(Want {
                dose_mg: vec![140.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Chronic pain 80 kg: bolus 0.35 → 28 mg (2.8 mL); 1 mg/kg/h × 120 min = 160 mg (16 mL, 8 mL/h)",
            row: CHRONIC,
            settings: settings_a,
            req: with(req("chronic-pain-adult-iv-ketamine", 80.0), |r| {
                r.bolus.amount = per_kg(0.35);
                r.infusion.amount = per_kg_h(1.0);
                r.infusion.duration_minutes = minutes(120.0);
                r.preparation = prep(10.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![28.0, 160.0],
                draw_ml: vec![2.8, 16.0],
                rate_ml_h: Some(8.0),
                run_min: Some(120.0),
                session_total: Some(188.0),
                ..Want::default()
            }),
        },
        Case {
            name: "Chronic pain without a chosen bolus refused",
            row: CHRONIC,
            settings: settings_a,
            req: req("chronic-pain-adult-iv-ketamine", 80.0),
            expect: Err("ChoiceRequired", "Bolus"),
        },
        Case {
            name: "Chronic pain bolus 0.4 mg/kg > hard 0.35",
            row: CHRONIC,
            settings: settings_a,
            req: with(req("chronic-pain-adult-iv-ketamine", 80.0), |r| {
                r.bolus.amount = per_kg(0.4);
                r.infusion.amount = per_kg_h(1.0);
                r.infusion.duration_minutes = minutes(120.0);
            }),
            expect: Err("HardLimit", "bolus-max-mg-per-kg"),
        },
        Case {
            name: "Chronic pain, bolus omitted, 0.4 mg/kg/h × 60 kg × 4 h = 96 mg < soft 0.5 → override",
            row: CHRONIC,
            settings: settings_a,
            req: with(req("chronic-pain-adult-iv-ketamine", 60.0), |r| {
                r.bolus.omit = true;
                r.infusion.amount = per_kg_h(0.4);
                r.infusion.duration_minutes = minutes(240.0);
            }),
            expect: Ok(Want {
                dose_mg: vec![96.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Acute pain 90 kg: bolus 0.25 → 22.5 mg, 2.25 → 2.3 mL = 23 mg; infusion 0.2 mg/kg/h × 60 min = 18 mg, 1.8 mL to 50 mL, 50 mL/h",
            row: ACUTE,
            settings: settings_a,
            req: with(req("acute-pain-adult-iv-ketamine", 90.0), |r| {
                r.bolus.amount = per_kg(0.25);
                r.infusion.amount = per_kg_h(0.2);
                r.infusion.duration_minutes = minutes(60.0);
                r.preparation = prep(10.0, Some(50.0));
                r.bolus_preparation = prep(10.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![23.0, 18.0],
                draw_ml: vec![2.3, 1.8],
                final_conc: Some(0.36),
                rate_ml_h: Some(50.0),
                run_min: Some(60.0),
                session_total: Some(41.0),
                ..Want::default()
            }),
        },
        Case {
            name: "Acute pain infusion 0.8 mg/kg/h above soft 0.5 → override",
            row: ACUTE,
            settings: settings_a,
            req: with(req("acute-pain-adult-iv-ketamine", 50.0), |r| {
                r.bolus.omit = true;
                r.infusion.amount = per_kg_h(0.8);
                r.infusion.duration_minutes = minutes(60.0);
            }),
            expect: Ok(Want {
                dose_mg: vec![40.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Acute pain infusion 1.2 mg/kg/h above hard 1",
            row: ACUTE,
            settings: settings_a,
            req: with(req("acute-pain-adult-iv-ketamine", 50.0), |r| {
                r.bolus.omit = true;
                r.infusion.amount = per_kg_h(1.2);
                r.infusion.duration_minutes = minutes(60.0);
            }),
            expect: Err("HardLimit", "infusion-max-hard"),
        },
        Case {
            name: "ED analgesia 80 kg default 0.3 = 24 mg; 2.4 mL",
            row: ED,
            settings: settings_a,
            req: with(req("ed-analgesia-adult-iv-ketamine", 80.0), |r| {
                r.preparation = prep(10.0, None)
            }),
            expect: Ok(Want {
                dose_mg: vec![24.0],
                draw_ml: vec![2.4],
                ..Want::default()
            }),
        },
        Case {
            name: "ED analgesia 0.6 mg/kg > hard 0.5",
            row: ED,
            settings: settings_a,
            req: with(req("ed-analgesia-adult-iv-ketamine", 80.0), |r| {
                r.bolus.amount = per_kg(0.6)
            }),
            expect: Err("HardLimit", "max-mg-per-kg"),
        },
        // Children.
        Case {
            name: "PRIME 10 y 30 kg: 45 mg; 100 mg/mL 0.45 → nearest 0.5 mL (50 mg = 1.67 mg/kg) crosses hard 1.5 → 0.4 mL = 40 mg",
            row: PRIME,
            settings: prime_cap_50_a,
            req: with(req("paediatric-pain-in-ketamine", 30.0), |r| {
                r.patient.age = age(10, 0);
                r.preparation = prep(100.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![40.0],
                draw_ml: vec![0.4],
                rounded_down: true,
                ..Want::default()
            }),
        },
        Case {
            name: "PRIME 14 y 50 kg: 75 mg capped at site cap 50 mg; 0.5 mL (B)",
            row: PRIME,
            settings: prime_cap_50_b,
            req: with(req("paediatric-pain-in-ketamine", 50.0), |r| {
                r.patient.age = age(14, 0);
                r.preparation = prep(100.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![50.0],
                draw_ml: vec![0.5],
                cap_applied: true,
                ..Want::default()
            }),
        },
        Case {
            name: "PRIME blocked until the site sets the mg cap (U)",
            row: PRIME,
            settings: settings_a,
            req: with(req("paediatric-pain-in-ketamine", 30.0), |r| {
                r.patient.age = age(10, 0)
            }),
            expect: Err("Blocked", "paediatric-pain-in-ketamine.cap_mg_per_dose"),
        },
        Case {
            name: "PRIME 7 y 22 kg: below trial ages 8–17 → override; 33 mg",
            row: PRIME,
            settings: prime_cap_50_a,
            req: with(req("paediatric-pain-in-ketamine", 22.0), |r| {
                r.patient.age = age(7, 6)
            }),
            expect: Ok(Want {
                dose_mg: vec![33.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation child IV 5 y 20 kg 1.5 mg/kg = 30 mg; 3 mL of 10 mg/mL",
            row: SED_C_IV,
            settings: settings_a,
            req: with(req("sedation-child-iv-ketamine", 20.0), |r| {
                r.patient.age = age(5, 0);
                r.bolus.amount = per_kg(1.5);
                r.preparation = prep(10.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![30.0],
                draw_ml: vec![3.0],
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation child IV at 2 months refused (< 3 months)",
            row: SED_C_IV,
            settings: settings_a,
            req: with(req("sedation-child-iv-ketamine", 5.0), |r| {
                r.patient.age = age(0, 2);
                r.bolus.amount = per_kg(1.5);
            }),
            expect: Err("HardLimit", "age-min-3-months"),
        },
        Case {
            name: "Sedation child IV at 3 months 6 kg 2 mg/kg = 12 mg; 1.2 mL",
            row: SED_C_IV,
            settings: settings_a,
            req: with(req("sedation-child-iv-ketamine", 6.0), |r| {
                r.patient.age = age(0, 3);
                r.bolus.amount = per_kg(2.0);
                r.preparation = prep(10.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![12.0],
                draw_ml: vec![1.2],
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation child IV without chosen dose refused",
            row: SED_C_IV,
            settings: settings_a,
            req: with(req("sedation-child-iv-ketamine", 20.0), |r| {
                r.patient.age = age(5, 0)
            }),
            expect: Err("ChoiceRequired", "Bolus"),
        },
        Case {
            name: "Sedation child IV 2.5 mg/kg × 20 = 50 mg above soft 2 → override",
            row: SED_C_IV,
            settings: settings_a,
            req: with(req("sedation-child-iv-ketamine", 20.0), |r| {
                r.patient.age = age(5, 0);
                r.bolus.amount = per_kg(2.5);
            }),
            expect: Ok(Want {
                dose_mg: vec![50.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation child IV 5 mg/kg > label IV 4.5",
            row: SED_C_IV,
            settings: settings_a,
            req: with(req("sedation-child-iv-ketamine", 20.0), |r| {
                r.patient.age = age(5, 0);
                r.bolus.amount = per_kg(5.0);
            }),
            expect: Err("HardLimit", "iv-max-hard"),
        },
        Case {
            name: "Sedation child IV repeat 1 mg/kg × 20 = 20 mg after 80 mg: total 100 mg = 5 mg/kg (soft met exactly)",
            row: SED_C_IV,
            settings: settings_a,
            req: with(req("sedation-child-iv-ketamine", 20.0), |r| {
                r.patient.age = age(5, 0);
                r.administration = Administration::Repeat;
                r.repeat.amount = per_kg(1.0);
                r.given_this_session_mg = dose_mg(80.0);
            }),
            expect: Ok(Want {
                dose_mg: vec![20.0],
                session_total: Some(100.0),
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation child IV repeat after 90 mg: total 110 mg = 5.5 mg/kg → override",
            row: SED_C_IV,
            settings: settings_a,
            req: with(req("sedation-child-iv-ketamine", 20.0), |r| {
                r.patient.age = age(5, 0);
                r.administration = Administration::Repeat;
                r.repeat.amount = per_kg(1.0);
                r.given_this_session_mg = dose_mg(90.0);
            }),
            expect: Ok(Want {
                dose_mg: vec![20.0],
                session_total: Some(110.0),
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation adult IV 75 kg default 1 mg/kg = 75 mg; 50 mg/mL → 1.5 mL",
            row: SED_A_IV,
            settings: settings_a,
            req: with(req("sedation-adult-iv-ketamine", 75.0), |r| {
                r.preparation = prep(50.0, None)
            }),
            expect: Ok(Want {
                dose_mg: vec![75.0],
                draw_ml: vec![1.5],
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation adult IV 100 mg/mL 0.75 mL diluted to 1.5 mL (equal volume): 50 mg/mL (B)",
            row: VIALS,
            settings: settings_b,
            req: with(req("sedation-adult-iv-ketamine", 75.0), |r| {
                r.preparation = prep(100.0, Some(1.5))
            }),
            expect: Ok(Want {
                dose_mg: vec![75.0],
                draw_ml: vec![0.75],
                final_conc: Some(50.0),
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation adult IM 70 kg 4 mg/kg = 280 mg; 2.8 mL of 100 mg/mL (no IV dilution rule)",
            row: SED_IM,
            settings: settings_a,
            req: with(req("sedation-adult-im-ketamine", 70.0), |r| {
                r.dose.amount = per_kg(4.0);
                r.preparation = prep(100.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![280.0],
                draw_ml: vec![2.8],
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation child IM 3 y 15 kg 5 mg/kg = 75 mg: 0.75 → 0.8 mL = 80 mg (5.33 mg/kg) crosses soft 5 → override (A)",
            row: SED_IM,
            settings: settings_a,
            req: with(req("sedation-child-im-ketamine", 15.0), |r| {
                r.patient.age = age(3, 0);
                r.dose.amount = per_kg(5.0);
                r.preparation = prep(100.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![80.0],
                draw_ml: vec![0.8],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation child IM same with 0.01 mL syringe: 0.75 mL = 75 mg (B)",
            row: SED_IM,
            settings: settings_b,
            req: with(req("sedation-child-im-ketamine", 15.0), |r| {
                r.patient.age = age(3, 0);
                r.dose.amount = per_kg(5.0);
                r.preparation = prep(100.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![75.0],
                draw_ml: vec![0.75],
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation child IM repeat 14 mg/kg > label IM 13",
            row: SED_IM,
            settings: settings_a,
            req: with(req("sedation-child-im-ketamine", 15.0), |r| {
                r.patient.age = age(3, 0);
                r.administration = Administration::Repeat;
                r.repeat.amount = per_kg(14.0);
            }),
            expect: Err("HardLimit", "im-max-hard"),
        },
        Case {
            name: "Sedation child IN 4 y 15 kg 4 mg/kg = 60 mg; 0.6 mL",
            row: SED_IN,
            settings: settings_a,
            req: with(req("sedation-child-in-ketamine", 15.0), |r| {
                r.patient.age = age(4, 0);
                r.dose.amount = per_kg(4.0);
                r.preparation = prep(100.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![60.0],
                draw_ml: vec![0.6],
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation child IN 7 mg/kg > 6",
            row: SED_IN,
            settings: settings_a,
            req: with(req("sedation-child-in-ketamine", 15.0), |r| {
                r.patient.age = age(4, 0);
                r.dose.amount = per_kg(7.0);
            }),
            expect: Err("HardLimit", "max-hard"),
        },
        // Oral and sublingual.
        Case {
            name: "Oral fixed start 50 mg; 1 mL of 50 mg/mL",
            row: ORAL_F,
            settings: settings_a,
            req: with(req("trd-adult-oral-ketamine-fixed", 70.0), |r| {
                r.preparation = prep(50.0, None)
            }),
            expect: Ok(Want {
                dose_mg: vec![50.0],
                draw_ml: vec![1.0],
                ..Want::default()
            }),
        },
        Case {
            name: "Oral fixed step 2: 50 + 2 × 25 = 100 mg",
            row: ORAL_F,
            settings: settings_a,
            req: with(req("trd-adult-oral-ketamine-fixed", 70.0), |r| {
                r.dose.step = Some(2)
            }),
            expect: Ok(ok(&[100.0])),
        },
        Case {
            name: "Oral fixed step 11: 325 mg > 300 mg",
            row: ORAL_F,
            settings: settings_a,
            req: with(req("trd-adult-oral-ketamine-fixed", 70.0), |r| {
                r.dose.step = Some(11)
            }),
            expect: Err("HardLimit", "max-mg-per-dose"),
        },
        Case {
            name: "Oral fixed 100 mg in a 12 kg patient: 8.3 mg/kg > 7.0",
            row: ORAL_F,
            settings: settings_a,
            req: with(req("trd-adult-oral-ketamine-fixed", 12.0), |r| {
                r.dose.step = Some(2)
            }),
            expect: Err("HardLimit", "max-mg-per-kg"),
        },
        Case {
            name: "Oral 2.5 mg/kg × 80 = 200 mg; 2 mL of 100 mg/mL",
            row: ORAL_W,
            settings: settings_a,
            req: with(req("trd-adult-oral-ketamine-weight", 80.0), |r| {
                r.dose.amount = per_kg(2.5);
                r.preparation = prep(100.0, None);
            }),
            expect: Ok(Want {
                dose_mg: vec![200.0],
                draw_ml: vec![2.0],
                ..Want::default()
            }),
        },
        Case {
            name: "Oral obese 150 kg × 2.5 = 375 mg > 300 mg",
            row: ORAL_W,
            settings: settings_a,
            req: with(req("trd-adult-oral-ketamine-weight", 150.0), |r| {
                r.dose.amount = per_kg(2.5)
            }),
            expect: Err("HardLimit", "max-mg-per-dose"),
        },
        Case {
            name: "Oral weight-based without chosen dose refused",
            row: ORAL_W,
            settings: settings_a,
            req: req("trd-adult-oral-ketamine-weight", 80.0),
            expect: Err("ChoiceRequired", "Dose"),
        },
        Case {
            name: "Sublingual 10 mg: 0.1 mL of 100 mg/mL",
            row: SL,
            settings: settings_a,
            req: with(req("depression-adult-sl-ketamine", 60.0), |r| {
                r.preparation = prep(100.0, None)
            }),
            expect: Ok(Want {
                dose_mg: vec![10.0],
                draw_ml: vec![0.1],
                ..Want::default()
            }),
        },
        Case {
            name: "Sublingual from 50 mg/mL refused (protocol requires 100 mg/mL)",
            row: SL,
            settings: settings_a,
            req: with(req("depression-adult-sl-ketamine", 60.0), |r| {
                r.preparation = prep(50.0, None)
            }),
            expect: Err("ConcentrationNotAllowed", "100"),
        },
        // ---- The patient against the protocol's population and the weight's plausibility ----
        Case {
            name: "Adult IM sedation for a 2-month-old refused (population adult)",
            row: SED_IM,
            settings: settings_a,
            req: with(req("sedation-adult-im-ketamine", 5.0), |r| {
                r.patient.age = age(0, 2);
                r.dose.amount = per_kg(4.0);
            }),
            expect: Err("AgeOutsidePopulation", "infant"),
        },
        Case {
            name: "Adult PTSD protocol for a 5-year-old refused (population adult)",
            row: PTSD,
            settings: settings_a,
            req: with(req("ptsd-adult-iv-ketamine", 20.0), |r| {
                r.patient.age = age(5, 0)
            }),
            expect: Err("AgeOutsidePopulation", "child"),
        },
        Case {
            name: "Yale adolescent protocol for a 40-year-old refused (its age limits are unset U values)",
            row: YALE,
            settings: settings_a,
            req: req("trd-adolescent-iv-ketamine-yale", 70.0),
            expect: Err("AgeOutsidePopulation", "adult"),
        },
        Case {
            name: "Adult PTSD (no age limit of its own) without an age refused: every protocol checks its population",
            row: PTSD,
            settings: settings_a,
            req: with(req("ptsd-adult-iv-ketamine", 70.0), |r| {
                r.patient.age = None
            }),
            expect: Err("AgeRequired", "population adult"),
        },
        Case {
            name: "700 kg refused: heavier than any person recorded (635 kg)",
            row: TRD,
            settings: settings_a,
            req: req("trd-adult-iv-ketamine", 700.0),
            expect: Err("WeightImpossible", "GWR-HEAVIEST-PERSON"),
        },
        Case {
            name: "0.1 kg refused: lighter than any surviving birth (212 g)",
            row: SED_C_IV,
            settings: settings_a,
            req: with(req("sedation-child-iv-ketamine", 0.1), |r| {
                r.patient.age = age(0, 6)
            }),
            expect: Err("WeightImpossible", "GWR-LIGHTEST-BIRTH"),
        },
        Case {
            name: "250 kg above the site's plausible 200 kg: an order that needs a prescriber's reason",
            row: TRD,
            settings: || settings_a().with("patient.weight_soft_max_kg", 200.0),
            req: req("trd-adult-iv-ketamine", 250.0),
            expect: Ok(Want {
                dose_mg: vec![125.0],
                needs_override: true,
                ..Want::default()
            }),
        },
        Case {
            name: "Sedation adult IV: a chosen 0.5 mg/kg bolus is used, not the 1 mg/kg default",
            row: SED_A_IV,
            settings: settings_a,
            req: with(req("sedation-adult-iv-ketamine", 70.0), |r| {
                r.bolus.amount = per_kg(0.5)
            }),
            expect: Ok(ok(&[35.0])),
        },
        Case {
            name: "Sedation adult IV: a chosen 5 mg/kg bolus is above the 4.5 mg/kg label limit",
            row: SED_A_IV,
            settings: settings_a,
            req: with(req("sedation-adult-iv-ketamine", 70.0), |r| {
                r.bolus.amount = per_kg(5.0)
            }),
            expect: Err("HardLimit", "4.5"),
        },
        Case {
            name: "Sedation adult IV: an infusion choice is refused (the protocol has none)",
            row: SED_A_IV,
            settings: settings_a,
            req: with(req("sedation-adult-iv-ketamine", 70.0), |r| {
                r.infusion.amount = per_kg(0.5)
            }),
            expect: Err("NoSuchComponent", "Infusion"),
        },
    ]
}

#[test]
fn dose_table_has_at_least_fifty_cases_and_zero_wrong() {
    let lib = lib();
    let cases = cases();
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let mut wrong = Vec::new();
    for c in &cases {
        let settings = (c.settings)();
        let got = calculate(&lib, &settings, &c.req);
        let problem: Option<String> = match (&c.expect, got) {
            (Expect::Err(variant, text), Err(e)) => {
                let dbg = format!("{e:?}");
                (!(dbg.starts_with(variant) && dbg.contains(text)))
                    .then(|| format!("expected error {variant} containing {text:?}, got {dbg}"))
            }
            (Expect::Err(variant, _), Ok(o)) => Some(format!(
                "expected error {variant}, got order {:?}",
                o.calculation
                    .components
                    .iter()
                    .map(|c| c.dose_mg.value)
                    .collect::<Vec<_>>()
            )),
            (Expect::Ok(_), Err(e)) => Some(format!("expected an order, got {e}")),
            (Expect::Ok(w), Ok(o)) => {
                let calc = &o.calculation;
                let mut p = Vec::new();
                let doses: Vec<f64> = calc.components.iter().map(|c| c.dose_mg.value).collect();
                if doses.len() != w.dose_mg.len()
                    || doses.iter().zip(&w.dose_mg).any(|(a, b)| !close(*a, *b))
                {
                    p.push(format!("dose {doses:?} ≠ {:?}", w.dose_mg));
                }
                let draws: Vec<f64> = calc
                    .components
                    .iter()
                    .filter_map(|c| c.preparation.as_ref().map(|p| p.volume_to_draw.value))
                    .collect();
                if !w.draw_ml.is_empty()
                    && (draws.len() != w.draw_ml.len()
                        || draws.iter().zip(&w.draw_ml).any(|(a, b)| !close(*a, *b)))
                {
                    p.push(format!("draw {draws:?} ≠ {:?}", w.draw_ml));
                }
                let main = calc.components.last().and_then(|c| c.preparation.as_ref());
                if let Some(fc) = w.final_conc
                    && !main.is_some_and(|m| close(m.final_concentration.value, fc))
                {
                    p.push(format!(
                        "final concentration {:?} ≠ {fc}",
                        main.map(|m| m.final_concentration.value)
                    ));
                }
                if let Some(r) = w.rate_ml_h
                    && !main
                        .and_then(|m| m.rate_ml_per_h.as_ref())
                        .is_some_and(|x| close(x.value, r))
                {
                    p.push(format!(
                        "rate {:?} ≠ {r}",
                        main.and_then(|m| m.rate_ml_per_h.as_ref()).map(|x| x.value)
                    ));
                }
                if let Some(r) = w.run_min
                    && !main
                        .and_then(|m| m.run_time_minutes.as_ref())
                        .is_some_and(|x| close(x.value, r))
                {
                    p.push(format!(
                        "run {:?} ≠ {r}",
                        main.and_then(|m| m.run_time_minutes.as_ref())
                            .map(|x| x.value)
                    ));
                }
                if let Some(d) = w.devices {
                    let e = calc.esketamine.as_ref();
                    if e.map(|e| e.devices) != Some(d) {
                        p.push(format!("devices {:?} ≠ {d}", e.map(|e| e.devices)));
                    }
                    let sched: Vec<f64> = e
                        .map(|e| e.schedule.iter().map(|s| s.at_minute).collect())
                        .unwrap_or_default();
                    if sched != w.schedule {
                        p.push(format!("schedule {sched:?} ≠ {:?}", w.schedule));
                    }
                }
                if let Some(t) = w.session_total
                    && !close(calc.session_total_mg.value, t)
                {
                    p.push(format!(
                        "session total {} ≠ {t}",
                        calc.session_total_mg.value
                    ));
                }
                let needs = o.state == OrderState::NeedsOverride;
                if needs != w.needs_override {
                    p.push(format!(
                        "state {:?}, soft crossed {:?}",
                        o.state,
                        calc.soft_limits_crossed
                            .iter()
                            .map(|l| &l.limit_id)
                            .collect::<Vec<_>>()
                    ));
                }
                if calc.caps_applied.is_empty() == w.cap_applied {
                    p.push(format!("caps applied {:?}", calc.caps_applied));
                }
                let down = calc
                    .roundings
                    .iter()
                    .any(|r| r.direction == ketcare_clinical::dose::Direction::Down);
                if down != w.rounded_down {
                    p.push(format!("rounded down = {down}: {:?}", calc.roundings));
                }
                // Every order records the protocol and version, and every number its source.
                if calc.protocol_id != c.req.protocol_id || calc.protocol_version == 0 {
                    p.push("protocol id/version not recorded".into());
                }
                (!p.is_empty()).then(|| p.join("; "))
            }
        };
        if let Some(problem) = problem {
            wrong.push(format!("{} [{}]: {problem}", c.name, c.row));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong of {}:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}
