#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
use jiff::Timestamp;
use ketcare_clinical::protocol::{Bound, LimitQuantity, LimitSeverity};
use ketcare_clinical::{Library, SiteSettings};
use ketcare_session::delivery::{OrderedDelivery, OrderedInfusion, RateLimit};
use ketcare_session::session::{
    ChecklistUpdate, ConsentCheck, DischargeConfirmations, Pregnancy, RemsSetting, RiskScreen,
    ScoreKind, VerifiedDose,
};
use ketcare_session::{Command, Phase, Plan, RulesFile, Session, Vitals};

pub const T0: i64 = 1_767_258_000; // 2026-01-01T09:00:00Z

pub fn at(min: f64) -> Timestamp {
    Timestamp::from_second(T0 + (min * 60.0).round() as i64).unwrap()
}

pub fn settings() -> SiteSettings {
    SiteSettings::new()
        .with("observation.ketamine_psychiatric_minutes", 60.0)
        .with("session.ketamine.bp_gate_systolic_mmhg", 140.0)
        .with("session.ketamine.bp_gate_diastolic_mmhg", 90.0)
}

pub fn plan_with(protocol: &str, settings: &SiteSettings, devices: u32) -> Plan {
    let lib = Library::builtin().unwrap();
    let rules = RulesFile::builtin(lib.sources()).unwrap();
    rules.plan(lib.get(protocol).unwrap(), settings, devices)
}

pub fn infusion_plan() -> Plan {
    plan_with("trd-adult-iv-ketamine", &settings(), 0)
}

pub fn esketamine_plan() -> Plan {
    plan_with("trd-adult-esketamine", &settings(), 2)
}

pub fn baseline() -> Vitals {
    Vitals {
        systolic: Some(120.0),
        diastolic: Some(80.0),
        heart_rate: Some(70.0),
        spo2: Some(98.0),
        resp_rate: Some(14.0),
        ..Vitals::default()
    }
}

pub fn full_checklist() -> ChecklistUpdate {
    ChecklistUpdate {
        consent_valid: None,
        fasting_confirmed: Some(true),
        pregnancy: Some(Pregnancy::NotPregnant),
        escort_home: Some(true),
        eligibility_reconfirmed: Some(true),
        suicide_risk: Some(RiskScreen::Negative),
        bp_gate_reason: None,
        rems: Some(RemsSetting {
            setting_certified: Some(true),
            patient_enrolled: Some(true),
            prescriber_on_site: Some(true),
            pulse_oximeter_on_site: Some(true),
            concomitant_sedating: Some("none".into()),
            concomitant_bp_raising: Some("none".into()),
        }),
    }
}

pub fn dose(devices: u32) -> VerifiedDose {
    VerifiedDose {
        order_id: 1,
        summary: "0.5 mg/kg".into(),
        author: "prescriber".into(),
        verified_by: "pharmacist".into(),
        devices,
        dose_mg: Some(if devices > 0 { 56.0 } else { 35.0 }),
        delivery: if devices > 0 {
            OrderedDelivery {
                device_mg: Some(28.0),
                ..Default::default()
            }
        } else {
            OrderedDelivery {
                infusion: Some(trd_infusion()),
                ..Default::default()
            }
        },
    }
}

fn limit(id: &str, severity: LimitSeverity, bound: Bound, q: LimitQuantity, v: f64) -> RateLimit {
    RateLimit {
        limit_id: id.into(),
        label: id.into(),
        applies_to: "infusion".into(),
        severity,
        bound,
        quantity: q,
        limit: v,
        unit: q.unit().into(),
    }
}

/// 0.5 mg/kg for 70 kg = 35 mg over 40 min at 8.75 mL/h of 6 mg/mL, with the adult TRD
/// protocol's limits (soft 0.1–0.75 mg/kg, hard 1.0 mg/kg, soft 2–100 min).
pub fn trd_infusion() -> OrderedInfusion {
    use Bound::*;
    use LimitQuantity::*;
    use LimitSeverity::*;
    OrderedInfusion {
        rate_ml_per_h: 8.75,
        concentration_mg_per_ml: 6.0,
        dose_mg: 35.0,
        duration_minutes: Some(40.0),
        basis_kg: 70.0,
        other_session_mg: 0.0,
        limits: vec![
            limit("max-mg-per-kg-soft", Soft, Max, MgPerKg, 0.75),
            limit("min-mg-per-kg-soft", Soft, Min, MgPerKg, 0.1),
            limit("max-mg-per-kg-hard", Hard, Max, MgPerKg, 1.0),
            limit("min-duration-soft", Soft, Min, Minutes, 2.0),
            limit("max-duration-soft", Soft, Max, Minutes, 100.0),
        ],
    }
}

/// What the consent record answers for a patient who signed the current document.
pub fn valid_consent() -> ConsentCheck {
    ConsentCheck {
        valid: true,
        reason: None,
        message: "valid".into(),
        at: at(0.0),
    }
}

pub fn rate(r: f64) -> ketcare_clinical::units::RateMlPerH {
    ketcare_clinical::units::RateMlPerH::new(r).unwrap()
}

pub fn ok(s: &mut Session, c: Command, min: f64) {
    s.apply(&c, "nurse", at(min))
        .unwrap_or_else(|e| panic!("{c:?} refused: {e}"));
}

/// A session of `plan` driven to `phase` along the main path (times in minutes from T0).
pub fn session_in(plan: Plan, phase: Phase) -> Session {
    let devices = plan.devices_planned;
    let mut s = Session::new(plan, "Chair 1", at(0.0));
    s.set_consent(valid_consent());
    s.set_ledger(ketcare_session::session::LedgerCheck {
        balanced: true,
        message: "balanced".into(),
        at: at(0.0),
    });
    if phase == Phase::Scheduled {
        return s;
    }
    if phase == Phase::Cancelled {
        ok(
            &mut s,
            Command::Cancel {
                reason: "patient unwell".into(),
            },
            0.0,
        );
        return s;
    }
    ok(&mut s, Command::CheckIn, 0.0);
    if phase == Phase::CheckedIn {
        return s;
    }
    ok(&mut s, Command::BeginPreAssessment, 1.0);
    ok(&mut s, Command::UpdateChecklist(full_checklist()), 2.0);
    ok(&mut s, Command::SetBaseline { vitals: baseline() }, 3.0);
    ok(
        &mut s,
        Command::AttachDose {
            dose: dose(devices),
        },
        4.0,
    );
    if phase == Phase::PreAssessment {
        return s;
    }
    ok(&mut s, Command::VerifyDose, 5.0);
    if phase == Phase::DoseVerified {
        return s;
    }
    ok(
        &mut s,
        Command::Start {
            rate_ml_per_h: None,
            rate_reason: None,
        },
        10.0,
    );
    if phase == Phase::Running {
        return s;
    }
    if phase == Phase::Paused {
        ok(
            &mut s,
            Command::Pause {
                reason: "nausea".into(),
            },
            20.0,
        );
        return s;
    }
    if matches!(phase, Phase::Escalated | Phase::Transferred) {
        ok(
            &mut s,
            Command::Escalate {
                reason: "BP unresponsive".into(),
            },
            20.0,
        );
        if phase == Phase::Transferred {
            ok(
                &mut s,
                Command::Transfer {
                    destination: "Emergency department".into(),
                },
                25.0,
            );
            confirm_given(&mut s, 26.0);
        }
        return s;
    }
    if s.plan.mode == ketcare_session::Mode::Esketamine {
        for i in 1..devices {
            ok(&mut s, Command::GiveDevice, 10.0 + 5.0 * i as f64);
        }
    }
    ok(&mut s, Command::Stop { reason: None }, 50.0);
    ok(
        &mut s,
        Command::Score {
            kind: ScoreKind::Moaas,
            value: 5,
        },
        60.0,
    );
    ok(
        &mut s,
        Command::Score {
            kind: ScoreKind::Cadss,
            value: 0,
        },
        60.0,
    );
    ok(
        &mut s,
        Command::ConfirmDischarge(DischargeConfirmations {
            dissociation_resolved: Some(true),
            respiratory_depression_resolved: Some(true),
            clinically_stable: Some(true),
            escort_present: Some(true),
            transport_advice_given: Some(true),
        }),
        61.0,
    );
    if phase == Phase::Observation {
        return s;
    }
    ok(&mut s, Command::ReadyForDischarge, 200.0);
    if phase == Phase::ReadyForDischarge {
        return s;
    }
    ok(&mut s, Command::Discharge, 201.0);
    confirm_given(&mut s, 202.0);
    s
}

/// The nurse confirms the mg the administration record computes (signing needs it).
pub fn confirm_given(s: &mut Session, min: f64) {
    let mg = s.delivered().unwrap().mg;
    ok(
        s,
        Command::RecordGiven {
            given_mg: mg,
            reason: None,
        },
        min,
    );
}
