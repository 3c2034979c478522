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
            rate_ml_per_h: Some(8.75),
        },
        Command::GiveDevice,
        Command::ChangeRate {
            rate_ml_per_h: 10.0,
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
        Command::RecordGiven { given_mg: 20.0 },
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
    assert_eq!(checked, 12 * 26);
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
            &Command::ChangeRate { rate_ml_per_h: 5.0 },
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
