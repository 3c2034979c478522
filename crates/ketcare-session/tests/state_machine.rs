//! Every command in every phase: legal ones succeed, illegal ones are refused naming what is
//! missing and leave the session unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;
use common::*;
use ketcare_session::session::{DischargeConfirmations, ScoreKind, Severity};
use ketcare_session::{Command, Phase, Session};

fn commands() -> Vec<Command> {
    vec![
        Command::CheckIn,
        Command::BeginPreAssessment,
        Command::UpdateChecklist(full_checklist()),
        Command::SetBaseline { vitals: baseline() },
        Command::AttachDose { dose: dose(0) },
        Command::VerifyDose,
        Command::Start {
            rate_ml_per_h: Some(rate(8.75)),
            rate_reason: None,
        },
        Command::GiveDevice,
        Command::ChangeRate {
            rate_ml_per_h: rate(10.0),
            rate_reason: Some("slow response, per the prescriber".into()),
        },
        Command::Pause {
            reason: "nausea".into(),
        },
        Command::Resume,
        Command::Stop { reason: None },
        Command::ConfirmDischarge(DischargeConfirmations {
            escort_present: Some(true),
            ..Default::default()
        }),
        Command::ReadyForDischarge,
        Command::Discharge,
        Command::Escalate {
            reason: "hypertension".into(),
        },
        Command::DeEscalate {
            note: "settled".into(),
        },
        Command::Transfer {
            destination: "ED".into(),
        },
        Command::Cancel {
            reason: "unwell".into(),
        },
        Command::Score {
            kind: ScoreKind::Moaas,
            value: 5,
        },
        Command::SideEffect {
            text: "nausea".into(),
            severity: Some(Severity::Mild),
        },
        Command::Intervene {
            drug: "ondansetron".into(),
            dose: "4 mg".into(),
            route: "IV".into(),
        },
        Command::AdverseEvent {
            text: "vomiting".into(),
            severity: Severity::Moderate,
        },
        Command::Sign,
        Command::Addendum {
            text: "late entry".into(),
        },
        Command::RecordGiven {
            given_mg: 20.0,
            reason: Some("pump log read after the alarm".into()),
        },
        Command::ApplySettings {
            version: 1,
            plan: Box::new(infusion_plan()),
        },
    ]
}

fn legal(phase: Phase, cmd: &Command) -> bool {
    use Phase::*;
    let chair = matches!(
        phase,
        Running | Paused | Observation | ReadyForDischarge | Escalated
    );
    match cmd {
        Command::CheckIn => phase == Scheduled,
        Command::BeginPreAssessment => phase == CheckedIn,
        Command::UpdateChecklist(_) | Command::SetBaseline { .. } => {
            matches!(phase, CheckedIn | PreAssessment)
        }
        Command::AttachDose { .. } => matches!(phase, Scheduled | CheckedIn | PreAssessment),
        Command::VerifyDose => phase == PreAssessment,
        Command::Start { .. } => phase == DoseVerified,
        Command::GiveDevice => false, // an infusion plan
        Command::ChangeRate { .. } | Command::Pause { .. } => phase == Running,
        Command::Resume => phase == Paused,
        Command::Stop { .. } => matches!(phase, Running | Paused),
        Command::ConfirmDischarge(_) => matches!(phase, Observation | ReadyForDischarge),
        Command::ReadyForDischarge => phase == Observation,
        Command::Discharge => phase == ReadyForDischarge,
        Command::Escalate { .. } => {
            matches!(phase, Running | Paused | Observation | ReadyForDischarge)
        }
        Command::DeEscalate { .. } | Command::Transfer { .. } => phase == Escalated,
        Command::Cancel { .. } => {
            matches!(phase, Scheduled | CheckedIn | PreAssessment | DoseVerified)
        }
        Command::Score { .. } => chair || matches!(phase, PreAssessment | DoseVerified),
        Command::SideEffect { .. } | Command::Intervene { .. } | Command::AdverseEvent { .. } => {
            chair
        }
        Command::Sign => matches!(phase, Discharged | Transferred | Cancelled),
        Command::Addendum { .. } => false, // not signed yet
        Command::RecordGiven { .. } => matches!(
            phase,
            Observation | ReadyForDischarge | Escalated | Discharged | Transferred
        ),
        Command::ApplySettings { .. } => !matches!(phase, Discharged | Transferred | Cancelled),
        Command::AcknowledgeAlarm { .. } | Command::ResolveAlarm { .. } => unreachable!(),
    }
}

fn expected_phase(from: Phase, cmd: &Command) -> Phase {
    use Phase::*;
    match cmd {
        Command::CheckIn => CheckedIn,
        Command::BeginPreAssessment => PreAssessment,
        Command::VerifyDose => DoseVerified,
        Command::Start { .. } | Command::Resume => Running,
        Command::Pause { .. } => Paused,
        Command::Stop { .. } | Command::DeEscalate { .. } => Observation,
        Command::ReadyForDischarge => ReadyForDischarge,
        Command::Discharge => Discharged,
        Command::Escalate { .. } => Escalated,
        Command::Transfer { .. } => Transferred,
        Command::Cancel { .. } => Cancelled,
        _ => from,
    }
}

#[test]
fn every_command_in_every_phase() {
    let mut checked = 0;
    for phase in Phase::ALL {
        for cmd in commands() {
            let mut s = session_in(infusion_plan(), phase);
            assert_eq!(s.phase, phase);
            let before = s.clone();
            let r = s.apply(&cmd, "nurse", at(300.0));
            if legal(phase, &cmd) {
                r.unwrap_or_else(|e| panic!("{phase:?} + {cmd:?} should be legal: {e}"));
                assert_eq!(s.phase, expected_phase(phase, &cmd), "{phase:?} + {cmd:?}");
            } else {
                let e = r.expect_err(&format!("{phase:?} + {cmd:?} should be refused"));
                assert!(
                    !e.missing.is_empty(),
                    "{phase:?} + {cmd:?}: refusal says nothing"
                );
                assert!(e.to_string().starts_with("cannot "), "{e}");
                assert_eq!(s, before, "a refused command changed the session");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12 * 27);
}

#[test]
fn signed_record_is_locked_and_takes_addenda() {
    let mut s = session_in(infusion_plan(), Phase::Discharged);
    ok(&mut s, Command::Sign, 210.0);
    for cmd in commands() {
        if matches!(cmd, Command::Addendum { .. }) {
            continue;
        }
        let e = s.apply(&cmd, "nurse", at(220.0)).unwrap_err();
        assert!(e.missing[0].contains("signed and locked"), "{e}");
    }
    ok(
        &mut s,
        Command::Addendum {
            text: "BP re-checked by phone".into(),
        },
        230.0,
    );
    assert_eq!(s.addenda.len(), 1);
    assert_eq!(s.addenda[0].by, "nurse");
    assert!(s.accepts_vitals().is_err());
}

#[test]
fn verify_dose_lists_everything_missing() {
    let mut s = Session::new(infusion_plan(), "Chair 2", at(0.0));
    ok(&mut s, Command::CheckIn, 0.0);
    ok(&mut s, Command::BeginPreAssessment, 1.0);
    let e = s.apply(&Command::VerifyDose, "nurse", at(2.0)).unwrap_err();
    let text = e.to_string();
    for needle in [
        "consent not checked against the consent record",
        "fasting not confirmed",
        "baseline vitals not recorded",
        "pregnancy status",
        "escort home",
        "eligibility not re-confirmed",
        "suicide-risk screen",
        "no verified dose order",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    // Not esketamine: no REMS items.
    assert!(!text.contains("REMS"));
}

#[test]
fn bp_gate_needs_a_reason_above_and_passes_at_the_gate() {
    let mut s = session_in(infusion_plan(), Phase::PreAssessment);
    let mut v = baseline();
    v.systolic = Some(140.0);
    v.diastolic = Some(90.0);
    ok(&mut s, Command::SetBaseline { vitals: v.clone() }, 4.0);
    assert!(
        s.checklist_missing().is_empty(),
        "{:?}",
        s.checklist_missing()
    );
    v.systolic = Some(141.0);
    ok(&mut s, Command::SetBaseline { vitals: v }, 4.5);
    let m = s.checklist_missing();
    assert!(
        m.iter().any(|x| x.contains("above the BP gate 140/90")),
        "{m:?}"
    );
    ok(
        &mut s,
        Command::UpdateChecklist(ketcare_session::session::ChecklistUpdate {
            bp_gate_reason: Some("benefit outweighs a transient rise; prescriber agrees".into()),
            ..Default::default()
        }),
        4.8,
    );
    assert!(s.checklist_missing().is_empty());
    ok(&mut s, Command::VerifyDose, 5.0);
}

#[test]
fn unset_bp_gate_blocks_and_names_the_setting() {
    let plan = plan_with(
        "trd-adult-iv-ketamine",
        &ketcare_clinical::SiteSettings::new(),
        0,
    );
    let s = session_in(plan, Phase::PreAssessment);
    let m = s.checklist_missing().join("; ");
    assert!(m.contains("session.ketamine.bp_gate_systolic_mmhg"), "{m}");
}

#[test]
fn same_author_and_verifier_refused() {
    let mut s = session_in(infusion_plan(), Phase::CheckedIn);
    let mut d = dose(0);
    d.verified_by = d.author.clone();
    let e = s
        .apply(&Command::AttachDose { dose: d }, "nurse", at(1.0))
        .unwrap_err();
    assert!(e.to_string().contains("second clinician"));
}

#[test]
fn esketamine_devices_five_minutes_apart() {
    let mut s = session_in(esketamine_plan(), Phase::Running);
    assert_eq!(s.devices_given(), 1);
    // Started at 10 min: 4:59 later is too soon, 5:00 is fine.
    let e = s
        .apply(
            &Command::GiveDevice,
            "nurse",
            ketcare_session::session::Session::dose_start(&s)
                .map(|t| jiff::Timestamp::from_second(t.as_second() + 299).unwrap())
                .unwrap(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("wait 5 min between devices"), "{e}");
    assert!(e.to_string().contains("0:01 to go"), "{e}");
    ok(&mut s, Command::GiveDevice, 15.0);
    assert_eq!(s.devices_given(), 2);
    let e = s
        .apply(&Command::GiveDevice, "nurse", at(30.0))
        .unwrap_err();
    assert!(e.to_string().contains("all 2 planned devices"), "{e}");
    // Esketamine has no rate.
    assert!(
        s.apply(
            &Command::ChangeRate {
                rate_ml_per_h: rate(5.0),
                rate_reason: Some("test".into()),
            },
            "nurse",
            at(31.0)
        )
        .is_err()
    );
}

#[test]
fn esketamine_early_stop_needs_a_reason() {
    let mut s = session_in(esketamine_plan(), Phase::Running);
    let e = s
        .apply(&Command::Stop { reason: None }, "nurse", at(12.0))
        .unwrap_err();
    assert!(e.to_string().contains("only 1 of 2 devices"), "{e}");
    ok(
        &mut s,
        Command::Stop {
            reason: Some("patient declined second device".into()),
        },
        12.0,
    );
    assert_eq!(s.phase, Phase::Observation);
}

#[test]
fn esketamine_checklist_has_rems_items() {
    let mut s = Session::new(esketamine_plan(), "Chair 3", at(0.0));
    ok(&mut s, Command::CheckIn, 0.0);
    ok(&mut s, Command::BeginPreAssessment, 1.0);
    let m = s.checklist_missing().join("; ");
    for needle in [
        "REMS-certified setting",
        "REMS enrolment",
        "prescriber on site",
        "pulse oximeter",
        "sedating",
        "BP-raising",
    ] {
        assert!(m.contains(needle), "{needle}: {m}");
    }
}

#[test]
fn minimum_observation_boundary_esketamine() {
    // Two devices at 10 and 15 min: observation is 120 min from the last device (R3, R1a).
    let mut s = session_in(esketamine_plan(), Phase::Observation);
    let last = s.dose_end().unwrap().as_second();
    let before = jiff::Timestamp::from_second(last + 120 * 60 - 1).unwrap();
    let e = s
        .apply(&Command::ReadyForDischarge, "nurse", before)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("minimum observation not elapsed: 1 min to go"),
        "{e}"
    );
    assert!(e.to_string().contains("R3, R1a"), "{e}");
    let exact = jiff::Timestamp::from_second(last + 120 * 60).unwrap();
    s.apply(&Command::ReadyForDischarge, "nurse", exact)
        .unwrap();
}

#[test]
fn discharge_needs_sedation_resolved_and_escort() {
    let mut s = session_in(infusion_plan(), Phase::Observation);
    ok(
        &mut s,
        Command::Score {
            kind: ScoreKind::Moaas,
            value: 4,
        },
        100.0,
    );
    ok(
        &mut s,
        Command::ConfirmDischarge(DischargeConfirmations {
            escort_present: Some(false),
            ..Default::default()
        }),
        101.0,
    );
    let e = s
        .apply(&Command::ReadyForDischarge, "nurse", at(200.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("sedation not resolved: latest MOAA/S 4"), "{e}");
    assert!(e.contains("escort not present"), "{e}");
    // Not esketamine: no REMS discharge items.
    assert!(!e.contains("transport"), "{e}");
}

#[test]
fn alarms_acknowledge_then_resolve_with_who_and_when() {
    let settings = settings().with("session.alarm.spo2_low_percent", 92.0);
    let plan = plan_with("trd-adult-iv-ketamine", &settings, 0);
    let mut s = session_in(plan, Phase::Running);
    let reading = ketcare_session::VitalReading {
        at: at(20.0),
        vitals: ketcare_session::Vitals {
            spo2: Some(88.0),
            ..Default::default()
        },
        source: ketcare_session::VitalSource::Monitor,
        by: "monitor".into(),
        control_id: Some("1".into()),
    };
    let new = s.on_vital(&reading);
    assert_eq!(new.len(), 1);
    assert!(new[0].action.text.contains("Stop the infusion"));
    // Same kind while open: not raised twice.
    assert!(s.on_vital(&reading).is_empty());
    let e = s
        .apply(
            &Command::ResolveAlarm {
                alarm: 1,
                note: " ".into(),
            },
            "nurse",
            at(21.0),
        )
        .unwrap_err();
    assert!(e.to_string().contains("say what was done"));
    ok(&mut s, Command::AcknowledgeAlarm { alarm: 1 }, 21.0);
    assert!(
        s.apply(&Command::AcknowledgeAlarm { alarm: 1 }, "nurse", at(21.5))
            .is_err()
    );
    assert!(
        s.apply(&Command::AcknowledgeAlarm { alarm: 9 }, "nurse", at(21.5))
            .is_err()
    );
    ok(
        &mut s,
        Command::ResolveAlarm {
            alarm: 1,
            note: "chin lift, SpO2 97".into(),
        },
        22.0,
    );
    let a = &s.alarms[0];
    assert_eq!(a.acknowledged.as_ref().unwrap().at, at(21.0));
    assert_eq!(a.resolved.as_ref().unwrap().by, "nurse");
    assert!(
        s.apply(
            &Command::ResolveAlarm {
                alarm: 1,
                note: "x".into()
            },
            "nurse",
            at(23.0)
        )
        .is_err()
    );
    // Resolved: a new reading raises a new alarm.
    assert_eq!(s.on_vital(&reading)[0].id, 2);
}

#[test]
fn signing_needs_alarms_resolved() {
    let settings = settings().with("session.alarm.spo2_low_percent", 92.0);
    let plan = plan_with("trd-adult-iv-ketamine", &settings, 0);
    let mut s = session_in(plan, Phase::Transferred);
    s.raise(
        vec![ketcare_session::alarms::Finding {
            kind: ketcare_session::AlarmKind::Spo2Low,
            detail: "x".into(),
            action: s.plan.alarms.actions.desaturation.clone(),
        }],
        at(24.0),
    );
    let e = s.apply(&Command::Sign, "prescriber", at(30.0)).unwrap_err();
    assert!(e.to_string().contains("open alarms 1"), "{e}");
}

#[test]
fn consent_comes_from_the_consent_record_and_gates_the_start() {
    // The nurse cannot tick consent.
    let mut s = session_in(infusion_plan(), Phase::PreAssessment);
    let e = s
        .apply(
            &Command::UpdateChecklist(ketcare_session::session::ChecklistUpdate {
                consent_valid: Some(true),
                ..Default::default()
            }),
            "nurse",
            at(5.0),
        )
        .unwrap_err();
    assert!(e.to_string().contains("consent_valid"), "{e}");
    // Withdrawn after the dose was verified: the start is refused with the reason.
    let mut s = session_in(infusion_plan(), Phase::DoseVerified);
    s.set_consent(ketcare_session::session::ConsentCheck {
        valid: false,
        reason: Some("withdrawn".into()),
        message: "consent was withdrawn".into(),
        at: at(6.0),
    });
    let e = s
        .apply(
            &Command::Start {
                rate_ml_per_h: None,
                rate_reason: None,
            },
            "nurse",
            at(6.0),
        )
        .unwrap_err();
    assert!(e.to_string().contains("consent was withdrawn"), "{e}");
    assert_eq!(s.phase, Phase::DoseVerified);
    s.set_consent(valid_consent());
    ok(
        &mut s,
        Command::Start {
            rate_ml_per_h: None,
            rate_reason: None,
        },
        7.0,
    );
    // Once dosing started the check that let it start stays on the record.
    s.set_consent(ketcare_session::session::ConsentCheck {
        valid: false,
        reason: Some("expired".into()),
        message: "expired".into(),
        at: at(8.0),
    });
    assert!(s.checklist.consent.as_ref().unwrap().valid);
}

fn secs(s: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(T0 + s).unwrap()
}

#[test]
fn start_rate_is_the_verified_orders_unless_another_is_confirmed_within_limits() {
    // No rate given: the pump runs at the verified order's 8.75 mL/h, no deviation.
    let mut s = session_in(infusion_plan(), Phase::DoseVerified);
    ok(
        &mut s,
        Command::Start {
            rate_ml_per_h: None,
            rate_reason: None,
        },
        10.0,
    );
    assert_eq!(s.rate(), Some(8.75));
    assert!(s.rate_deviations().is_empty());

    // Ten times the order (87.5 mL/h → 5 mg/kg over 40 min): over the hard 1.0 mg/kg,
    // refused with or without a reason, naming the limit.
    for reason in [None, Some("prescriber asked".to_string())] {
        let mut s = session_in(infusion_plan(), Phase::DoseVerified);
        let before = s.clone();
        let e = s
            .apply(
                &Command::Start {
                    rate_ml_per_h: Some(rate(87.5)),
                    rate_reason: reason,
                },
                "nurse",
                at(10.0),
            )
            .unwrap_err();
        let t = e.to_string();
        assert!(t.contains("rate_ml_per_h"), "{t}");
        assert!(t.contains("max-mg-per-kg-hard"), "{t}");
        assert!(t.contains("5 mg/kg"), "{t}");
        assert_eq!(s, before);
    }

    // 9.5 mL/h is within every limit: refused without a reason (naming rate_reason and both
    // rates), accepted with one and flagged with who, when, why, ordered and given.
    let mut s = session_in(infusion_plan(), Phase::DoseVerified);
    let e = s
        .apply(
            &Command::Start {
                rate_ml_per_h: Some(rate(9.5)),
                rate_reason: Some("  ".into()),
            },
            "nurse",
            at(10.0),
        )
        .unwrap_err();
    let t = e.to_string();
    assert!(t.contains("rate_reason"), "{t}");
    assert!(t.contains("9.5 mL/h") && t.contains("8.75 mL/h"), "{t}");
    assert_eq!(s.phase, Phase::DoseVerified);
    s.apply(
        &Command::Start {
            rate_ml_per_h: Some(rate(9.5)),
            rate_reason: Some("pump set to the prescriber's verbal order".into()),
        },
        "nurse2",
        at(10.0),
    )
    .unwrap();
    let d = s.rate_deviations();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].ordered_ml_per_h, 8.75);
    assert_eq!(d[0].given_ml_per_h, 9.5);
    assert_eq!(d[0].by, "nurse2");
    assert_eq!(d[0].at, at(10.0));
    assert_eq!(d[0].reason, "pump set to the prescriber's verbal order");
    assert!(d[0].soft_limits_crossed.is_empty());

    // A rate change above the soft 0.75 mg/kg (14 mL/h → 0.8 mg/kg over 40 min) needs a reason
    // and lists the soft limit; back to the ordered rate needs none.
    let e = s
        .apply(
            &Command::ChangeRate {
                rate_ml_per_h: rate(14.0),
                rate_reason: None,
            },
            "nurse",
            at(12.0),
        )
        .unwrap_err();
    assert!(e.to_string().contains("max-mg-per-kg-soft"), "{e}");
    ok(
        &mut s,
        Command::ChangeRate {
            rate_ml_per_h: rate(14.0),
            rate_reason: Some("prescriber at the chair".into()),
        },
        12.0,
    );
    assert!(s.rate_deviations()[1].soft_limits_crossed[0].contains("max-mg-per-kg-soft"));
    ok(
        &mut s,
        Command::ChangeRate {
            rate_ml_per_h: rate(8.75),
            rate_reason: None,
        },
        13.0,
    );
    assert_eq!(s.rate_deviations().len(), 2);
    // Nonsense rates are refused by type (zero, negative) or range.
    assert!(
        serde_json::from_value::<Command>(
            serde_json::json!({"command": "change_rate", "rate_ml_per_h": 0})
        )
        .is_err()
    );
    let e = s
        .apply(
            &Command::ChangeRate {
                rate_ml_per_h: rate(5000.0),
                rate_reason: Some("x".into()),
            },
            "nurse",
            at(14.0),
        )
        .unwrap_err();
    assert!(e.to_string().contains("not a pump rate"), "{e}");
}

#[test]
fn an_order_without_a_pump_rate_refuses_a_typed_rate() {
    let mut s = session_in(infusion_plan(), Phase::DoseVerified);
    if let Some(d) = s.checklist.dose.as_mut() {
        d.delivery.infusion = None;
    }
    let e = s
        .apply(
            &Command::Start {
                rate_ml_per_h: Some(rate(8.75)),
                rate_reason: Some("x".into()),
            },
            "nurse",
            at(10.0),
        )
        .unwrap_err();
    assert!(e.to_string().contains("gives no pump rate"), "{e}");
}

#[test]
fn delivered_follows_rates_pauses_resumes_and_the_stop() {
    let mut s = session_in(infusion_plan(), Phase::DoseVerified);
    ok(
        &mut s,
        Command::Start {
            rate_ml_per_h: None,
            rate_reason: None,
        },
        10.0,
    );
    ok(
        &mut s,
        Command::ChangeRate {
            rate_ml_per_h: rate(17.5),
            rate_reason: Some("prescriber".into()),
        },
        20.0,
    );
    ok(
        &mut s,
        Command::Pause {
            reason: "nausea".into(),
        },
        25.0,
    );
    ok(&mut s, Command::Resume, 30.0);
    // Running, not stopped: counted to the last event, still running.
    let d = s.delivered().unwrap();
    assert!(d.running);
    ok(&mut s, Command::Stop { reason: None }, 35.0);
    let d = s.delivered().unwrap();
    // 10 min × 8.75 mL/h × 6 mg/mL = 8.75 mg; 5 min and 5 min at 17.5 mL/h = 17.5 mg.
    assert!((d.mg - 26.25).abs() < 1e-9, "{d:?}");
    assert!((d.running_minutes - 20.0).abs() < 1e-9, "{d:?}");
    assert!(!d.running);
    assert_eq!(d.intervals.len(), 3);
    assert_eq!(s.given_mg().unwrap(), 26.25);
}

#[test]
fn paused_from_8_to_17_and_stopped_at_19_ran_10_minutes() {
    let mut s = session_in(infusion_plan(), Phase::DoseVerified);
    ok(
        &mut s,
        Command::Start {
            rate_ml_per_h: None,
            rate_reason: None,
        },
        0.0,
    );
    ok(
        &mut s,
        Command::Pause {
            reason: "BP".into(),
        },
        8.0,
    );
    ok(&mut s, Command::Resume, 17.0);
    ok(&mut s, Command::Stop { reason: None }, 19.0);
    let d = s.delivered().unwrap();
    assert!((d.running_minutes - 10.0).abs() < 1e-9, "{d:?}");
    assert!((d.mg - 8.75).abs() < 1e-9, "{d:?}");
}

#[test]
fn stopped_early_counts_what_ran_and_signing_needs_the_nurses_confirmation() {
    let mut s = session_in(infusion_plan(), Phase::DoseVerified);
    s.apply(
        &Command::Start {
            rate_ml_per_h: None,
            rate_reason: None,
        },
        "nurse",
        secs(0),
    )
    .unwrap();
    s.apply(
        &Command::Stop {
            reason: Some("patient asked to stop".into()),
        },
        "nurse",
        secs(43),
    )
    .unwrap();
    // 8.75 mL/h × 6 mg/mL × 43 s = 0.627 mg, not the order's 35 mg.
    let d = s.delivered().unwrap();
    assert_eq!(d.mg, 0.627);
    assert_eq!(s.given_mg().unwrap(), 0.627);
    ok(&mut s, Command::Escalate { reason: "x".into() }, 5.0);
    ok(
        &mut s,
        Command::Transfer {
            destination: "ED".into(),
        },
        6.0,
    );
    let e = s.apply(&Command::Sign, "nurse", at(7.0)).unwrap_err();
    assert!(e.to_string().contains("0.627 mg"), "{e}");
    assert!(e.to_string().contains("not confirmed"), "{e}");
    // A different amount needs a reason.
    let e = s
        .apply(
            &Command::RecordGiven {
                given_mg: 35.0,
                reason: None,
            },
            "nurse",
            at(7.0),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("reason: 35 mg differs from the 0.627 mg"),
        "{e}"
    );
    ok(
        &mut s,
        Command::RecordGiven {
            given_mg: 0.627,
            reason: None,
        },
        8.0,
    );
    let c = s.given_confirmation.clone().unwrap();
    assert_eq!(
        (c.mg, c.computed_mg, c.by.as_str()),
        (0.627, Some(0.627), "nurse")
    );
    ok(&mut s, Command::Sign, 9.0);
    // A correction keeps who, when, why and what the record computed.
    let mut s2 = session_in(infusion_plan(), Phase::Transferred);
    ok(
        &mut s2,
        Command::RecordGiven {
            given_mg: 3.0,
            reason: Some("pump history shows 3 mg".into()),
        },
        30.0,
    );
    let c = s2.given_confirmation.clone().unwrap();
    assert_eq!(c.mg, 3.0);
    assert_eq!(c.reason.as_deref(), Some("pump history shows 3 mg"));
    assert_eq!(s2.given_mg().unwrap(), 3.0);
}

#[test]
fn esketamine_devices_are_counted_as_given() {
    let s = session_in(esketamine_plan(), Phase::Observation);
    let d = s.delivered().unwrap();
    assert_eq!(d.mg, 56.0);
    assert_eq!(d.doses.len(), 2);
    assert_eq!(d.running_minutes, 0.0);
}

#[test]
fn an_infusion_started_without_a_rate_is_not_counted_as_nothing() {
    // An order with a bolus and an infusion but no prepared concentration: the start names no
    // rate, so the record cannot compute the infusion's mg (the bolus alone would understate it).
    let mut s = session_in(infusion_plan(), Phase::DoseVerified);
    if let Some(d) = s.checklist.dose.as_mut() {
        d.delivery.infusion = None;
        d.delivery.infusion_mg = Some(35.0);
        d.delivery.bolus_mg = Some(10.0);
    }
    ok(
        &mut s,
        Command::Start {
            rate_ml_per_h: None,
            rate_reason: None,
        },
        10.0,
    );
    let e = s.delivered().unwrap_err();
    assert!(e.contains("no pump rate"), "{e}");
    assert!(s.given_mg().unwrap_err().contains("record_given"));
}
