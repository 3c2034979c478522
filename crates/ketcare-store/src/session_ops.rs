//! Where sessions and operations meet: the consent record gates the start of a session, the
//! controlled-substance ledger gates its signature, and billing reads what the record documents.
//! Both gates run inside the transaction that applies the session command, so what was checked
//! is what was stored.

use crate::Result;
use crate::sql::Tx;
use jiff::Timestamp;
use ketcare_ops::ConsentStatus;
use ketcare_session::Session;
use ketcare_session::session::ConsentCheck;

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
