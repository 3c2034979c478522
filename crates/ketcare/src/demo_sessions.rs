//! Demo sessions: three adult demo patients with verified esketamine orders — one scheduled on
//! Chair 1, one dosing on Chair 2, one in observation on Chair 3 — so the suite has something to
//! show and a monitor simulator has a patient to stream to.

use anyhow::{Context, Result};
use jiff::{Timestamp, ToSpan};
use ketcare_app::clinical::{self, SimpleDose};
use ketcare_app::sessions::service::verified_dose;
use ketcare_clinical::Library;
use ketcare_core::{Actor, Role};
use ketcare_session::session::{
    ChecklistUpdate, ConsentCheck, DischargeConfirmations, Pregnancy, RemsSetting, RiskScreen,
    ScoreKind, VerifiedDose,
};
use ketcare_session::{Command, RulesFile, Session, Vitals};
use ketcare_store::Store;

/// The pre-assessment a demo or benchmark patient passes (every item answered).
pub fn full_checklist() -> ChecklistUpdate {
    ChecklistUpdate {
        consent_valid: None,
        fasting_confirmed: Some(true),
        pregnancy: Some(Pregnancy::NotApplicable),
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

pub fn demo_baseline() -> Vitals {
    Vitals {
        systolic: Some(124.0),
        diastolic: Some(78.0),
        heart_rate: Some(72.0),
        spo2: Some(98.0),
        resp_rate: Some(14.0),
        ..Vitals::default()
    }
}

/// Drives a session from scheduled to dosing (device 1 given) at `start`, with `consent` as the
/// consent record answered it.
pub fn to_running(
    s: &mut Session,
    by: &str,
    start: Timestamp,
    consent: ConsentCheck,
) -> Result<()> {
    s.set_consent(consent);
    let t = |min: i64| Timestamp::from_second(start.as_second() - min * 60).context("demo time");
    for (min, cmd) in [
        (15, Command::CheckIn),
        (14, Command::BeginPreAssessment),
        (13, Command::UpdateChecklist(full_checklist())),
        (
            12,
            Command::SetBaseline {
                vitals: demo_baseline(),
            },
        ),
        (10, Command::VerifyDose),
        (
            0,
            Command::Start {
                rate_ml_per_h: None,
                rate_reason: None,
            },
        ),
    ] {
        s.apply(&cmd, by, t(min)?)
            .map_err(|e| anyhow::anyhow!("demo session: {e}"))?;
    }
    Ok(())
}

/// A session given at `start` (an infusion stopped after 40 minutes) and discharged
/// `observed` minutes after the stop, built with the session's own commands.
pub(crate) fn discharged(
    plan: &ketcare_session::Plan,
    chair: &str,
    start: Timestamp,
    observed: i64,
) -> Result<Session> {
    let mut s = running(plan, chair, start)?;
    let t = |min: i64| start.checked_add(min.minutes()).context("demo time");
    for (min, cmd) in [
        (40, Command::Stop { reason: None }),
        (
            45,
            Command::Score {
                kind: ScoreKind::Moaas,
                value: 5,
            },
        ),
        (
            46,
            Command::Score {
                kind: ScoreKind::Cadss,
                value: 0,
            },
        ),
        (
            40 + observed,
            Command::ConfirmDischarge(DischargeConfirmations {
                clinically_stable: Some(true),
                dissociation_resolved: Some(true),
                respiratory_depression_resolved: Some(true),
                escort_present: Some(true),
                transport_advice_given: Some(true),
            }),
        ),
        (41 + observed, Command::ReadyForDischarge),
        (42 + observed, Command::Discharge),
    ] {
        s.apply(&cmd, "nurse", t(min)?)
            .map_err(|e| anyhow::anyhow!("demo session: {e}"))?;
    }
    Ok(s)
}

pub(crate) fn running(
    plan: &ketcare_session::Plan,
    chair: &str,
    start: Timestamp,
) -> Result<Session> {
    let mut s = Session::new(plan.clone(), chair, start);
    s.apply(
        &Command::AttachDose {
            dose: VerifiedDose {
                order_id: 0,
                summary: "no order on file".into(),
                author: "prescriber".into(),
                verified_by: "pharmacist".into(),
                devices: 0,
                dose_mg: Some(35.0),
                delivery: Default::default(),
            },
        },
        "nurse",
        start,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let consent = ConsentCheck {
        valid: true,
        reason: None,
        message: "no consent record on file".into(),
        at: start,
    };
    to_running(&mut s, "nurse", start, consent)?;
    Ok(s)
}

async fn user_actor(store: &dyn Store, username: &str) -> Result<Actor> {
    let u = store
        .user_by_username(username)
        .await?
        .with_context(|| format!("demo user {username}"))?;
    Ok(Actor::user(u.id, &u.username, u.role, "demo"))
}

/// Seeds the demo sessions (once).
pub async fn seed(store: &dyn Store) -> Result<()> {
    let nurse = Actor::system(Role::Nurse);
    let library = Library::builtin().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rules = RulesFile::builtin(library.sources()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let protocol = library
        .get("trd-adult-esketamine")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (settings, _) = clinical::settings(store)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let prescriber = user_actor(store, "prescriber").await?;
    let pharmacist = user_actor(store, "pharmacist").await?;
    let nurse_user = user_actor(store, "nurse").await?;
    let now = Timestamp::now();
    // Adults of the demo clinic (their ages are in `demo::PATIENTS`).
    for (i, mrn) in ["KC-1001", "KC-1002", "KC-1003"].into_iter().enumerate() {
        let Some(p) = store
            .search_patients(&nurse, mrn, 1)
            .await?
            .into_iter()
            .find(|p| p.mrn == mrn)
        else {
            continue;
        };
        // The order takes age, weight and "first dose of the course" from the record.
        let request = SimpleDose {
            protocol: protocol.id.clone(),
            esketamine_dose_mg: Some(56.0),
            ..SimpleDose::default()
        }
        .order_request(&library)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let order = ketcare_app::orders::sign(
            store,
            &library,
            &prescriber,
            p.id,
            &request,
            now.as_second(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("demo order: {:?}", e.fields()))?;
        let verified = clinical::transition(
            store,
            &pharmacist,
            order.id,
            ketcare_core::Permission::VerifyDose,
            "dose_order.verify",
            |o, u, t| o.verify(u, t),
            now.as_second(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("demo verification: {e}"))?;
        let devices = verified
            .order
            .calculation
            .esketamine
            .as_ref()
            .map_or(2, |e| e.devices);
        let mut s = Session::new(
            rules.plan(protocol, &settings, devices),
            &format!("Chair {}", i + 1),
            now,
        );
        s.dose_order_id = Some(order.id.get());
        // A session is scheduled only for a verified order.
        let dose = verified_dose(order.id, &verified.order).with_context(|| {
            format!(
                "demo session: order_id {} is {:?}, not verified",
                order.id, verified.order.state
            )
        })?;
        s.apply(&Command::AttachDose { dose }, "nurse", now)
            .map_err(|e| anyhow::anyhow!("demo session: {e}"))?;
        // The patient signed the protocol's consent document last week.
        let week_ago = Timestamp::from_second(now.as_second() - 7 * 86_400)?;
        store
            .record_consent(
                &nurse_user,
                &ketcare_store::NewSignature {
                    patient_id: p.id,
                    protocol_id: protocol.id.clone(),
                    signer: ketcare_ops::consent::Signer::Patient,
                    assent: None,
                    signed_at: week_ago,
                },
            )
            .await?;
        let nurse = &nurse;
        let protocol = &protocol;
        let consent = |at: Timestamp| async move {
            let status = store
                .consent_status(nurse, p.id, &protocol.id, protocol.version, at)
                .await?;
            anyhow::Ok(ketcare_store::session_ops::consent_check(&status, at))
        };
        match i {
            1 => {
                let start = Timestamp::from_second(now.as_second() - 3 * 60)?;
                to_running(&mut s, "nurse", start, consent(start).await?)?;
            }
            2 => {
                let start = Timestamp::from_second(now.as_second() - 60 * 60)?;
                to_running(&mut s, "nurse", start, consent(start).await?)?;
                let at = |m: i64| Timestamp::from_second(start.as_second() + m * 60);
                for (m, cmd) in [
                    (5, Command::GiveDevice),
                    (6, Command::Stop { reason: None }),
                    (
                        45,
                        Command::Score {
                            kind: ScoreKind::Moaas,
                            value: 4,
                        },
                    ),
                    (
                        45,
                        Command::Score {
                            kind: ScoreKind::Cadss,
                            value: 6,
                        },
                    ),
                ] {
                    s.apply(&cmd, "nurse", at(m)?)
                        .map_err(|e| anyhow::anyhow!("demo session: {e}"))?;
                }
            }
            _ => {}
        }
        store.create_treatment_session(nurse, p.id, &s).await?;
    }
    yesterdays_infusion(store, &library, &rules, &settings, now).await
}

/// KC-1003 also had an IV infusion yesterday at 10:00, given and discharged: the dose a
/// therapist's integration session follows (created after the three above, so their ids stay).
async fn yesterdays_infusion(
    store: &dyn Store,
    library: &Library,
    rules: &RulesFile,
    settings: &ketcare_clinical::SiteSettings,
    now: Timestamp,
) -> Result<()> {
    let nurse = Actor::system(Role::Nurse);
    let Some(p) = store
        .search_patients(&nurse, "KC-1003", 1)
        .await?
        .into_iter()
        .find(|p| p.mrn == "KC-1003")
    else {
        return Ok(());
    };
    let zone = jiff::tz::TimeZone::system();
    let start = now
        .to_zoned(zone.clone())
        .date()
        .yesterday()?
        .at(10, 0, 0, 0)
        .to_zoned(zone)?
        .timestamp();
    let protocol = library
        .get("trd-adult-iv-ketamine")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let observed = settings
        .value("observation.ketamine_psychiatric_minutes")
        .map_or(120, |m| m.ceil() as i64);
    let s = discharged(
        &rules.plan(protocol, settings, 0),
        "Chair 3",
        start,
        observed + 5,
    )?;
    store.create_treatment_session(&nurse, p.id, &s).await?;
    Ok(())
}
