//! Where sessions and operations meet: the consent record gates the start of a session, the
//! controlled-substance ledger gates its signature, and billing reads what the record documents.
//! Both gates run inside the transaction that applies the session command, so what was checked
//! is what was stored.

use crate::Result;
use crate::sql::Tx;
use jiff::Timestamp;
use ketcare_ops::{ConsentStatus, Drug, Micrograms, SessionFacts, session_balance};
use ketcare_session::session::{ConsentCheck, LedgerCheck};
use ketcare_session::{Mode, Phase, Session};

/// The consent record's answer in the session's words.
pub fn consent_check(status: &ConsentStatus, at: Timestamp) -> ConsentCheck {
    match status {
        ConsentStatus::Valid { expires_at, .. } => ConsentCheck {
            valid: true,
            reason: None,
            message: match expires_at {
                Some(e) => format!("valid until {}", e.strftime("%Y-%m-%d")),
                None => "valid".into(),
            },
            at,
        },
        ConsentStatus::Invalid { reason, message } => ConsentCheck {
            valid: false,
            reason: serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
            message: message.clone(),
            at,
        },
    }
}

/// Re-checks consent for the session's patient, protocol and protocol version at `now`, until
/// dosing starts.
pub(crate) async fn refresh_consent(
    tx: &mut Tx,
    patient: ketcare_core::PatientId,
    session: &mut Session,
    now: Timestamp,
) -> Result<()> {
    if !session.consent_pending() {
        return Ok(());
    }
    let status = crate::ops::consent_status_tx(
        tx,
        patient,
        &session.plan.protocol_id,
        session.plan.protocol_version,
        now,
    )
    .await?;
    session.set_consent(consent_check(&status, now));
    Ok(())
}

/// What the session record documents, as operations reads it (the ledger's `given`, billing's
/// times and doses). The mg given and the running time come from [`Session::delivered`] (the
/// one computation from the administration record), or the mg the nurse confirmed or
/// corrected. `Err` names what the record is missing.
pub fn session_facts(
    session_id: ketcare_core::SessionId,
    patient: ketcare_core::PatientId,
    session: &Session,
) -> std::result::Result<SessionFacts, String> {
    use ketcare_ops::session_facts::Route;
    let given = session.given_mg()?;
    let (drug, route) = match session.plan.mode {
        Mode::Infusion => (Drug::RacemicKetamine, Route::IvInfusion),
        Mode::Esketamine => (Drug::Esketamine, Route::Intranasal),
    };
    let infusion_minutes = match session.plan.mode {
        Mode::Infusion => session
            .delivered()
            .ok()
            .filter(|d| !d.running)
            .map(|d| (d.running_minutes + 1e-9).floor() as i64),
        Mode::Esketamine => None,
    };
    Ok(SessionFacts {
        session_id: session_id.get(),
        patient_id: patient.get(),
        drug,
        route,
        infusion_start: session.dose_start(),
        infusion_stop: session.dose_end(),
        infusion_minutes,
        // Micrograms: the ledger's unit (mg × 1000, rounded to the microgram).
        given: Micrograms((given * 1000.0).round() as i64),
        cancelled: session.phase == Phase::Cancelled,
        em_level: None,
        monitoring_minutes: None,
    })
}

/// Before a signature: reconciles the ledger for this session (drawn = given + wasted, `given`
/// from the record) and puts the answer on the record; signing is refused unless it balances.
/// A session that gave nothing and drew nothing balances; one that gave drug must have draws.
pub(crate) async fn refresh_ledger(
    tx: &mut Tx,
    session_id: ketcare_core::SessionId,
    patient: ketcare_core::PatientId,
    session: &mut Session,
    now: Timestamp,
) -> Result<()> {
    let check = match session_facts(session_id, patient, session) {
        Err(message) => LedgerCheck {
            balanced: false,
            message,
            at: now,
        },
        Ok(facts) => {
            let site = crate::ops::session_site(tx, session_id.get())
                .await?
                .unwrap_or(crate::sites::DEFAULT_SITE);
            let records = crate::ops::ledger_records_tx(tx, site).await?;
            let state = crate::ops::replay(&records)?;
            let b = session_balance(&facts, &state);
            LedgerCheck {
                balanced: b.balanced,
                message: b.message,
                at: now,
            }
        }
    };
    session.set_ledger(check);
    Ok(())
}
