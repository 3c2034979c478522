//! An eligibility case for every rule, and both sides of every numeric boundary.

mod common;
use common::*;

use ketcare_clinical::SiteSettings;
use ketcare_clinical::eligibility::*;
use ketcare_clinical::protocol::{Context, Drug, Indication};

fn settings() -> SiteSettings {
    // Values a demo site chose; the reference leaves them U.
    SiteSettings::new()
        .with("eligibility.trd_adequate_trial_min_weeks", 6.0)
        .with("eligibility.ketamine_bp_systolic_max_mmhg", 160.0)
        .with("eligibility.ketamine_bp_diastolic_max_mmhg", 100.0)
}

fn trial(weeks: f64) -> AntidepressantTrial {
    AntidepressantTrial {
        drug: "sertraline".into(),
        daily_dose_mg: 150.0,
        weeks,
        in_current_episode: true,
        adequate_dose: true,
        failed: true,
    }
}

fn base(drug: Drug, indication: Indication) -> ScreeningInput {
    ScreeningInput {
        indication,
        drug,
        age: Age {
            years: 40,
            months: 0,
        },
        weight_kg: kg(70.0),
        history: vec![],
        medications: vec![],
        pregnancy: PregnancyStatus::NotPregnant,
        breastfeeding: false,
        baseline: Some(Baseline {
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
            heart_rate_bpm: Some(70.0),
            spo2_percent: Some(98.0),
        }),
        antidepressant_trials: vec![trial(8.0), trial(8.0)],
    }
}

fn run(input: &ScreeningInput, s: &SiteSettings) -> ScreeningOutcome {
    let lib = lib();
    match screen(lib.eligibility_rules(), input, s) {
        Ok(o) => o,
        Err(e) => panic!("screen failed: {e}"),
    }
}

fn finding<'a>(o: &'a ScreeningOutcome, id: &str) -> Option<&'a Finding> {
    o.findings.iter().find(|f| f.id == id)
}

fn indication_for(c: Context) -> Indication {
    match c {
        Context::Psychiatric => Indication::Trd,
        Context::Pain => Indication::ChronicPain,
        Context::Sedation => Indication::ProceduralSedation,
    }
}

fn med(name: &str, classes: Vec<MedicationClass>) -> Medication {
    Medication {
        name: name.into(),
        classes,
        daily_dose_mg: None,
        diazepam_equivalent_mg_per_day: None,
    }
}

#[test]
fn clean_adult_is_eligible_for_each_drug() {
    for drug in [Drug::Esketamine, Drug::RacemicKetamine] {
        let o = run(&base(drug, Indication::Trd), &settings());
        assert_eq!(o.decision, Decision::Eligible, "{drug:?}: {:?}", o.findings);
        assert!(finding(&o, "trd-definition").is_some());
    }
}

#[test]
fn every_condition_rule_fires_with_its_condition_and_not_without() {
    let lib = lib();
    let rules = lib.eligibility_rules();
    let mut checked = 0;
    for r in &rules.condition_rule {
        let r = r.get_ref();
        for &drug in &r.drugs {
            for &ctx in &r.contexts {
                for &cond in &r.conditions {
                    let mut i = base(drug, indication_for(ctx));
                    let without = run(&i, &settings());
                    assert!(
                        finding(&without, &r.id).is_none(),
                        "{} fired without {cond:?}",
                        r.id
                    );
                    i.history = vec![cond];
                    let with = run(&i, &settings());
                    let f = finding(&with, &r.id).unwrap_or_else(|| {
                        panic!("{} did not fire for {cond:?} {drug:?} {ctx:?}", r.id)
                    });
                    assert_eq!(f.severity, r.severity);
                    assert!(!f.source.is_empty() && !f.reason.is_empty());
                    // The decision is at least as severe as the rule (another rule on the same
                    // condition may be stricter, e.g. aneurysm for esketamine).
                    match r.severity {
                        Severity::Absolute => {
                            assert_eq!(with.decision, Decision::NotEligible, "{}", r.id)
                        }
                        Severity::Relative => {
                            assert_ne!(with.decision, Decision::Eligible, "{}", r.id)
                        }
                        _ => {}
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 40, "{checked}");
}

#[test]
fn every_medication_rule_fires_with_its_class_and_not_without() {
    let lib = lib();
    let rules = lib.eligibility_rules();
    for r in &rules.medication_rule {
        let r = r.get_ref();
        for &drug in &r.drugs {
            for &ctx in &r.contexts {
                for &class in &r.classes {
                    let mut i = base(drug, indication_for(ctx));
                    assert!(finding(&run(&i, &settings()), &r.id).is_none());
                    i.medications = vec![Medication {
                        diazepam_equivalent_mg_per_day: Some(2.0),
                        ..med("some drug", vec![class])
                    }];
                    let o = run(&i, &settings());
                    let f = finding(&o, &r.id)
                        .unwrap_or_else(|| panic!("{} did not fire for {class:?}", r.id));
                    assert_eq!(f.severity, r.severity, "{}", r.id);
                    assert!(f.reason.contains("some drug"));
                }
            }
        }
    }
}

#[test]
fn every_status_rule_fires() {
    let lib = lib();
    for r in &lib.eligibility_rules().status_rule {
        let r = r.get_ref();
        for &drug in &r.drugs {
            let mut i = base(drug, Indication::Trd);
            assert!(finding(&run(&i, &settings()), &r.id).is_none());
            match r.when {
                StatusTrigger::Pregnant => i.pregnancy = PregnancyStatus::Pregnant,
                StatusTrigger::PregnancyStatusUnknown => i.pregnancy = PregnancyStatus::Unknown,
                StatusTrigger::Breastfeeding => i.breastfeeding = true,
            }
            let o = run(&i, &settings());
            assert_eq!(
                finding(&o, &r.id).map(|f| f.severity),
                Some(r.severity),
                "{}",
                r.id
            );
        }
    }
}

#[test]
fn named_rules_from_the_issue() {
    // Aneurysmal vascular disease and ICH are absolute for esketamine only.
    let mut i = base(Drug::Esketamine, Indication::Trd);
    i.history = vec![Condition::AneurysmalVascularDisease];
    assert_eq!(run(&i, &settings()).decision, Decision::NotEligible);
    i.history = vec![Condition::IntracerebralHaemorrhage];
    assert_eq!(run(&i, &settings()).decision, Decision::NotEligible);
    let mut k = base(Drug::RacemicKetamine, Indication::Trd);
    k.history = vec![Condition::IntracerebralHaemorrhage];
    assert_eq!(run(&k, &settings()).decision, Decision::Eligible);
    // Schizophrenia: absolute for ED sedation, relative for depression.
    let mut s = base(Drug::RacemicKetamine, Indication::ProceduralSedation);
    s.history = vec![Condition::Schizophrenia];
    assert_eq!(run(&s, &settings()).decision, Decision::NotEligible);
    k.history = vec![Condition::Schizophrenia];
    assert_eq!(
        run(&k, &settings()).decision,
        Decision::NeedsPrescriberReview
    );
    // Theophylline by name: absolute with ketamine.
    k.history = vec![];
    k.medications = vec![med("Aminophylline", vec![])];
    assert_eq!(
        finding(&run(&k, &settings()), "ketamine-theophylline").map(|f| f.severity),
        Some(Severity::Absolute)
    );
    // Stimulant and lamotrigine recognised by name.
    k.medications = vec![med("methylphenidate", vec![]), med("lamotrigine", vec![])];
    let o = run(&k, &settings());
    assert_eq!(
        finding(&o, "psychostimulant").map(|f| f.severity),
        Some(Severity::Caution)
    );
    assert_eq!(
        finding(&o, "lamotrigine").map(|f| f.severity),
        Some(Severity::Relative)
    );
}

#[test]
fn esketamine_age_boundary_18_years() {
    let mut i = base(Drug::Esketamine, Indication::Trd);
    i.age = Age {
        years: 17,
        months: 11,
    };
    let o = run(&i, &settings());
    assert_eq!(
        finding(&o, "esketamine-age").map(|f| f.severity),
        Some(Severity::Absolute)
    );
    assert_eq!(o.decision, Decision::NotEligible);
    i.age = Age {
        years: 18,
        months: 0,
    };
    assert!(finding(&run(&i, &settings()), "esketamine-age").is_none());
}

#[test]
fn sedation_age_boundary_3_months() {
    let mut i = base(Drug::RacemicKetamine, Indication::ProceduralSedation);
    i.age = Age {
        years: 0,
        months: 2,
    };
    let o = run(&i, &settings());
    assert_eq!(
        finding(&o, "sedation-age").map(|f| f.severity),
        Some(Severity::Absolute)
    );
    i.age = Age {
        years: 0,
        months: 3,
    };
    assert!(finding(&run(&i, &settings()), "sedation-age").is_none());
    // Not a sedation indication: the rule does not apply.
    let mut p = base(Drug::RacemicKetamine, Indication::PaediatricAcutePain);
    p.age = Age {
        years: 0,
        months: 2,
    };
    assert!(finding(&run(&p, &settings()), "sedation-age").is_none());
}

fn bp(i: &mut ScreeningInput, s: f64, d: f64) {
    if let Some(b) = i.baseline.as_mut() {
        b.systolic_mmhg = s;
        b.diastolic_mmhg = d;
    }
}

#[test]
fn esketamine_bp_gate_140_over_90() {
    let mut i = base(Drug::Esketamine, Indication::Trd);
    for (s, d, fires) in [
        (140.0, 90.0, false),
        (141.0, 90.0, true),
        (140.0, 91.0, true),
        (139.0, 89.0, false),
    ] {
        bp(&mut i, s, d);
        let o = run(&i, &settings());
        assert_eq!(finding(&o, "baseline-bp").is_some(), fires, "{s}/{d}");
        if fires {
            assert_eq!(o.decision, Decision::NeedsPrescriberReview);
            assert_eq!(
                finding(&o, "baseline-bp").map(|f| f.source.clone()),
                Some(vec!["R1d".to_string()])
            );
        }
    }
    // The S default is configurable by the site.
    bp(&mut i, 145.0, 85.0);
    let s = settings().with("eligibility.esketamine_bp_systolic_max_mmhg", 150.0);
    assert!(finding(&run(&i, &s), "baseline-bp").is_none());
}

#[test]
fn ketamine_bp_gate_is_a_site_setting() {
    let mut i = base(Drug::RacemicKetamine, Indication::Trd);
    bp(&mut i, 160.0, 100.0);
    assert!(finding(&run(&i, &settings()), "baseline-bp").is_none());
    bp(&mut i, 161.0, 100.0);
    assert!(finding(&run(&i, &settings()), "baseline-bp").is_some());
    bp(&mut i, 160.0, 101.0);
    assert!(finding(&run(&i, &settings()), "baseline-bp").is_some());
    // Unset: screening is blocked, naming the keys.
    let lib = lib();
    let s = SiteSettings::new().with("eligibility.trd_adequate_trial_min_weeks", 6.0);
    match screen(lib.eligibility_rules(), &i, &s) {
        Err(ScreenError::MissingSiteSettings { missing }) => {
            let keys: Vec<_> = missing.iter().map(|m| m.key.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "eligibility.ketamine_bp_diastolic_max_mmhg",
                    "eligibility.ketamine_bp_systolic_max_mmhg"
                ]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_baseline_needs_review() {
    let mut i = base(Drug::Esketamine, Indication::Trd);
    i.baseline = None;
    let o = run(&i, &settings());
    assert_eq!(
        finding(&o, "baseline-bp-missing").map(|f| f.severity),
        Some(Severity::Relative)
    );
}

#[test]
fn spo2_and_heart_rate_gates_only_when_the_site_sets_them() {
    let mut i = base(Drug::Esketamine, Indication::Trd);
    let o = run(&i, &settings());
    assert_eq!(
        finding(&o, "baseline-spo2").map(|f| f.severity),
        Some(Severity::Information)
    );
    assert_eq!(
        finding(&o, "baseline-heart-rate").map(|f| f.severity),
        Some(Severity::Information)
    );
    let s = settings()
        .with("eligibility.baseline_spo2_min_percent", 92.0)
        .with("eligibility.baseline_heart_rate_max_bpm", 100.0);
    if let Some(b) = i.baseline.as_mut() {
        b.spo2_percent = Some(92.0);
        b.heart_rate_bpm = Some(100.0);
    }
    let o = run(&i, &s);
    assert!(finding(&o, "baseline-spo2").is_none() && finding(&o, "baseline-heart-rate").is_none());
    if let Some(b) = i.baseline.as_mut() {
        b.spo2_percent = Some(91.0);
        b.heart_rate_bpm = Some(101.0);
    }
    let o = run(&i, &s);
    assert_eq!(
        finding(&o, "baseline-spo2").map(|f| f.severity),
        Some(Severity::Relative)
    );
    assert_eq!(
        finding(&o, "baseline-heart-rate").map(|f| f.severity),
        Some(Severity::Relative)
    );
}

#[test]
fn benzodiazepine_load_boundary_8_mg_diazepam_equivalents() {
    let mut i = base(Drug::RacemicKetamine, Indication::Trd);
    let diazepam = |mg: f64| Medication {
        daily_dose_mg: Some(mg),
        ..med("diazepam", vec![])
    };
    i.medications = vec![diazepam(8.0)];
    let o = run(&i, &settings());
    assert_eq!(
        finding(&o, "benzodiazepine-load").map(|f| f.severity),
        Some(Severity::Information)
    );
    assert_eq!(
        finding(&o, "benzodiazepine").map(|f| f.severity),
        Some(Severity::Caution)
    );
    assert_eq!(o.decision, Decision::Eligible);
    i.medications = vec![diazepam(8.5)];
    let o = run(&i, &settings());
    assert_eq!(
        finding(&o, "benzodiazepine-load").map(|f| f.severity),
        Some(Severity::Relative)
    );
    assert_eq!(
        finding(&o, "benzodiazepine-load").map(|f| f.source.clone()),
        Some(vec!["R23".to_string()])
    );
    // Two benzodiazepines add up: 5 + 4 = 9 > 8.
    i.medications = vec![
        diazepam(5.0),
        Medication {
            diazepam_equivalent_mg_per_day: Some(4.0),
            ..med("clonazepam", vec![MedicationClass::Benzodiazepine])
        },
    ];
    assert_eq!(
        finding(&run(&i, &settings()), "benzodiazepine-load").map(|f| f.severity),
        Some(Severity::Relative)
    );
    // No equivalence table in the reference: unknown unless given or set by the site.
    let lorazepam = Medication {
        daily_dose_mg: Some(1.0),
        ..med("Lorazepam", vec![MedicationClass::Benzodiazepine])
    };
    i.medications = vec![lorazepam.clone()];
    assert_eq!(
        finding(&run(&i, &settings()), "benzodiazepine-load-unknown").map(|f| f.severity),
        Some(Severity::Relative)
    );
    let s = settings().with("eligibility.diazepam_equivalent_factor.lorazepam", 10.0);
    assert_eq!(
        finding(&run(&i, &s), "benzodiazepine-load").map(|f| f.severity),
        Some(Severity::Relative)
    );
    let s = settings().with("eligibility.diazepam_equivalent_factor.lorazepam", 8.0);
    assert_eq!(
        finding(&run(&i, &s), "benzodiazepine-load").map(|f| f.severity),
        Some(Severity::Information)
    );
    // Pain context: the blunted-antidepressant-response flag does not apply.
    let mut p = base(Drug::RacemicKetamine, Indication::ChronicPain);
    p.medications = vec![diazepam(20.0)];
    let o = run(&p, &settings());
    assert!(finding(&o, "benzodiazepine-load").is_none());
    assert!(finding(&o, "benzodiazepine").is_some());
}

#[test]
fn trd_definition_boundary_failed_trials_and_weeks() {
    let mut i = base(Drug::Esketamine, Indication::Trd);
    i.antidepressant_trials = vec![trial(8.0)];
    let o = run(&i, &settings());
    assert_eq!(
        finding(&o, "trd-definition").map(|f| f.severity),
        Some(Severity::Relative)
    );
    assert_eq!(o.decision, Decision::NeedsPrescriberReview);
    i.antidepressant_trials = vec![trial(8.0), trial(6.0)];
    assert_eq!(
        finding(&run(&i, &settings()), "trd-definition").map(|f| f.severity),
        Some(Severity::Information)
    );
    // Weeks boundary (site setting 6): 5.9 weeks is not adequate.
    i.antidepressant_trials = vec![trial(8.0), trial(5.9)];
    assert_eq!(
        finding(&run(&i, &settings()), "trd-definition").map(|f| f.severity),
        Some(Severity::Relative)
    );
    // Trials outside the episode, at inadequate dose, or that worked do not count.
    for f in [
        |t: &mut AntidepressantTrial| t.in_current_episode = false,
        |t: &mut AntidepressantTrial| t.adequate_dose = false,
        |t: &mut AntidepressantTrial| t.failed = false,
    ] {
        let mut t = trial(8.0);
        f(&mut t);
        i.antidepressant_trials = vec![trial(8.0), t];
        assert_eq!(
            finding(&run(&i, &settings()), "trd-definition").map(|f| f.severity),
            Some(Severity::Relative)
        );
    }
    // Site threshold 3 (research protocols use 1–3).
    i.antidepressant_trials = vec![trial(8.0), trial(8.0)];
    let s = settings().with("eligibility.trd_min_failed_trials", 3.0);
    assert_eq!(
        finding(&run(&i, &s), "trd-definition").map(|f| f.severity),
        Some(Severity::Relative)
    );
    i.antidepressant_trials.push(trial(8.0));
    assert_eq!(
        finding(&run(&i, &s), "trd-definition").map(|f| f.severity),
        Some(Severity::Information)
    );
    // Other indications do not need the TRD definition.
    let m = base(Drug::Esketamine, Indication::Mdsi);
    assert!(finding(&run(&m, &settings()), "trd-definition").is_none());
}

#[test]
fn trd_screening_is_blocked_until_adequate_duration_is_set() {
    let lib = lib();
    let i = base(Drug::Esketamine, Indication::Trd);
    match screen(lib.eligibility_rules(), &i, &SiteSettings::new()) {
        Err(ScreenError::MissingSiteSettings { missing }) => {
            assert_eq!(missing[0].key, "eligibility.trd_adequate_trial_min_weeks");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn overrides_relative_only_and_never_absolute() {
    let mut i = base(Drug::Esketamine, Indication::Trd);
    i.history = vec![
        Condition::ActiveSubstanceUseDisorder,
        Condition::HistoryOfSubstanceUseDisorder,
    ];
    let o = run(&i, &settings());
    assert_eq!(o.decision, Decision::NeedsPrescriberReview);
    let at = ts("2026-11-22T10:00:00Z");
    assert!(matches!(
        o.override_finding("esketamine-active-sud", user("dr.p"), "  ", at.clone()),
        Err(OverrideError::EmptyReason { .. })
    ));
    assert!(matches!(
        o.override_finding("sud-history", user("dr.p"), "reviewed", at.clone()),
        Err(OverrideError::NotRelative { .. })
    ));
    assert!(matches!(
        o.override_finding("nope", user("dr.p"), "x", at.clone()),
        Err(OverrideError::UnknownFinding { .. })
    ));
    let o2 = match o.override_finding(
        "esketamine-active-sud",
        user("dr.p"),
        "in remission per addiction team",
        at.clone(),
    ) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(o2.decision, Decision::Eligible);
    assert_eq!(o2.overrides[0].by.as_str(), "dr.p");
    assert_eq!(o2.overrides[0].at, at);
    assert_eq!(
        o.decision,
        Decision::NeedsPrescriberReview,
        "original unchanged"
    );
    assert!(matches!(
        o2.override_finding("esketamine-active-sud", user("dr.q"), "again", at.clone()),
        Err(OverrideError::AlreadyOverridden { .. })
    ));

    i.history.push(Condition::AneurysmalVascularDisease);
    let o = run(&i, &settings());
    assert_eq!(o.decision, Decision::NotEligible);
    assert!(matches!(
        o.override_finding(
            "esketamine-aneurysmal-vascular-disease",
            user("dr.chief"),
            "benefit outweighs",
            at.clone()
        ),
        Err(OverrideError::Absolute { .. })
    ));
    // Overriding every relative finding still leaves an absolute one: not eligible.
    let o3 = o.override_finding("esketamine-active-sud", user("dr.p"), "ok", at);
    assert_eq!(o3.map(|o| o.decision).ok(), Some(Decision::NotEligible));
}

#[test]
fn input_reads_from_json_and_refuses_unknown_fields() {
    let json = r#"{
        "indication": "trd", "drug": "esketamine",
        "age": {"years": 34}, "weight_kg": 70.5,
        "history": ["intracerebral_haemorrhage"],
        "medications": [{"name": "lorazepam", "classes": ["benzodiazepine"], "daily_dose_mg": 2, "diazepam_equivalent_mg_per_day": 20}],
        "pregnancy": "not_pregnant",
        "baseline": {"systolic_mmhg": 150, "diastolic_mmhg": 85, "heart_rate_bpm": 72, "spo2_percent": 98},
        "antidepressant_trials": [{"drug": "sertraline", "daily_dose_mg": 150, "weeks": 8, "in_current_episode": true, "adequate_dose": true, "failed": true}]
    }"#;
    let input: ScreeningInput = match serde_json::from_str(json) {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    };
    let o = run(&input, &settings());
    assert_eq!(o.decision, Decision::NotEligible);
    let ids: Vec<&str> = o.findings.iter().map(|f| f.id.as_str()).collect();
    for id in [
        "esketamine-intracerebral-haemorrhage",
        "benzodiazepine",
        "benzodiazepine-load",
        "baseline-bp",
        "trd-definition",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    // Outcome serialises and reads back identically (API and CLI print the same thing).
    let back: Result<ScreeningOutcome, _> =
        serde_json::from_str(&serde_json::to_string(&o).unwrap_or_default());
    assert_eq!(back.ok(), Some(o));
    assert!(
        serde_json::from_str::<ScreeningInput>(
            &json.replace("\"pregnancy\"", "\"pregnant_status\"")
        )
        .is_err()
    );
    assert!(serde_json::from_str::<ScreeningInput>(&json.replace("70.5", "-1")).is_err());
    assert!(
        serde_json::from_str::<ScreeningInput>(
            &json.replace("intracerebral_haemorrhage", "bad_knee")
        )
        .is_err()
    );
}

#[test]
fn bad_numbers_refused() {
    let lib = lib();
    let mut i = base(Drug::Esketamine, Indication::Trd);
    i.age.months = 12;
    assert!(matches!(
        screen(lib.eligibility_rules(), &i, &settings()),
        Err(ScreenError::BadInput { .. })
    ));
    let mut i = base(Drug::Esketamine, Indication::Trd);
    bp(&mut i, f64::NAN, 80.0);
    assert!(matches!(
        screen(lib.eligibility_rules(), &i, &settings()),
        Err(ScreenError::BadInput { .. })
    ));
}
