//! Bedside monitors: HL7 v2 ORU^R01 over MLLP.
//!
//! Each connection is served by its own task, so many monitors can be connected at once;
//! messages on one connection are handled in order. A message is matched to the active session
//! by patient identity first: the patient PID-3 names (MRN); PV1-3 (bed/chair) only when PID-3
//! is empty. PID-3 naming no patient, a patient with no session in a chair, or a patient other
//! than the one seated in the chair PV1-3 names is answered AE with the reason, and nothing is
//! stored. OBX-6 units are converted (kPa → mmHg, °F → °C) or refused. The reading is stored,
//! and only after the commit answered with ACK AA. Unreadable messages get AR, readable ones
//! that cannot be stored (wrong type, an unknown unit, an impossible value) AE with the reason.
//! A repeated message (same sending application, sending facility and control id) is
//! acknowledged again and not stored twice.
//!
//! Overload: readings are committed in batches by the store's vitals writer behind a bounded
//! queue; when it is full the message is answered AR ("busy … send again") at once and nothing
//! is stored, so more load than the database can commit is shed, never queued without bound.
//! Each connection has at most one message in hand (the next frame is read after the ACK of the
//! previous one is written), which is the back-pressure on a monitor that sends without waiting.
//!
//! Framing ([`hl7::MllpReader`]) does not depend on how TCP splits the stream: a start block
//! before an end block discards the torn frame (no ACK: it was never received whole, so the
//! monitor resends it), and a frame over 1 MiB is discarded up to its end block and answered
//! with one ACK AR naming the limit, every time; the connection stays open and the next frame
//! is read normally.

use super::service;
use crate::AppState;
use crate::error::AppError;
use ketcare_core::{Actor, Role};
use ketcare_session::hl7::{self, AckCode, Header, Hl7Error, MllpEvent, MllpReader};
use ketcare_session::{VitalReading, VitalSource};
use ketcare_store::{MessageKey, MonitorMatch, VitalOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Accepts monitor connections until the process ends.
pub async fn serve(state: AppState, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(state, stream).await {
                        tracing::debug!(%peer, error = %e, "MLLP connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "MLLP accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(state: AppState, mut stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut reader = MllpReader::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        for event in reader.push(&chunk[..n]) {
            match event {
                MllpEvent::Message(payload) => {
                    let text = String::from_utf8_lossy(&payload).into_owned();
                    let ack = handle(&state, &text, &peer).await;
                    stream.write_all(&hl7::mllp_frame(&ack)).await?;
                }
                MllpEvent::Oversize { head, size } => {
                    let ack = oversize_ack(&head, size);
                    stream.write_all(&hl7::mllp_frame(&ack)).await?;
                }
                MllpEvent::Torn { discarded } => {
                    tracing::warn!(%peer, discarded, "MLLP: torn frame discarded (a start block came before its end block)");
                }
            }
        }
    }
}

/// The ACK AR for a frame over the size limit: the same answer whatever the TCP chunking,
/// naming the message's control id when its MSH could be read from its first bytes.
pub fn oversize_ack(head: &[u8], size: usize) -> String {
    let header = hl7::parse_header(&String::from_utf8_lossy(head)).unwrap_or_default();
    ack(
        &header,
        AckCode::AR,
        &format!(
            "message of {size} bytes is over the {} byte limit: refused, nothing stored",
            hl7::MAX_MESSAGE
        ),
    )
}

fn hl7_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%d%H%M%S+0000")
        .to_string()
}

fn ack(header: &Header, code: AckCode, text: &str) -> String {
    let id = format!("ACK{}", header.control_id);
    hl7::build_ack(header, code, text, &id, &hl7_now())
}

/// Handles one message and returns the ACK to send.
pub async fn handle(state: &AppState, text: &str, peer: &str) -> String {
    let header = match hl7::parse_header(text) {
        Ok(h) => h,
        Err(e) => return ack(&Header::default(), AckCode::AR, &e.to_string()),
    };
    // Only the site's listed monitors may store vitals (when the site keeps a list).
    let allowed = match state.senders.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    if let Some(list) = allowed {
        let ip = peer
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip())
            .ok()
            .or_else(|| peer.parse().ok());
        if !list.admits(ip, &header.sending_facility) {
            let actor = Actor {
                user_id: None,
                username: format!("monitor:{}", header.sending_facility),
                role: None,
                address: peer.to_owned(),
            };
            let event = ketcare_core::audit::AuditEvent::new(
                "mllp.refused",
                None,
                format!(
                    "facility {:?} from {peer}: not on the site's list",
                    header.sending_facility
                ),
            );
            // Audited as counted summaries per address, like refused pages: a flood of messages
            // from an unlisted host cannot grow the log without bound.
            let key = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                ("mllp", ip).hash(&mut h);
                h.finish() as i64
            };
            if state.refusals.note(key, state.now()).is_some()
                && let Err(e) = state.store.audit(&actor, event).await
            {
                tracing::error!(error = %e, "could not audit an MLLP refusal");
            }
            return ack(
                &header,
                AckCode::AR,
                "sender not on this site's list of monitors (setting mllp.allowed_senders)",
            );
        }
    }
    let msg = match hl7::parse_oru(text) {
        Ok(m) => m,
        Err(Hl7Error::Reject(e)) => return ack(&header, AckCode::AR, &e),
        Err(Hl7Error::Error(e)) => return ack(&header, AckCode::AE, &e),
    };
    let sid = match state
        .store
        .match_active_session(&msg.patient_ids, &msg.location)
        .await
    {
        Ok(MonitorMatch::Session { session_id, .. }) => session_id,
        Ok(refused) => return ack(&header, AckCode::AE, &refused.reason()),
        Err(e) => {
            tracing::error!(error = %e, "MLLP session lookup");
            return ack(
                &header,
                AckCode::AE,
                "could not look up the session; send again",
            );
        }
    };
    let sender = if header.sending_application.is_empty() {
        peer.to_owned()
    } else {
        header.sending_application.clone()
    };
    let actor = Actor {
        user_id: None,
        username: format!("monitor:{sender}"),
        role: Some(Role::Nurse),
        address: peer.to_owned(),
    };
    let now = jiff::Timestamp::now();
    let at = msg
        .observed_at
        .as_deref()
        .and_then(hl7::parse_ts)
        // A monitor clock far ahead is not trusted: the reading is placed at its arrival.
        .filter(|t| t.as_second() <= now.as_second() + 300)
        .unwrap_or(now);
    let reading = VitalReading {
        at,
        vitals: msg.vitals.clone(),
        source: VitalSource::Monitor,
        by: format!("monitor:{sender}"),
        control_id: Some(header.control_id.clone()),
    };
    let key = MessageKey::new(
        header.sending_application.clone(),
        header.sending_facility.clone(),
        header.control_id.clone(),
    );
    match service::record_vital(state, &actor, sid, &reading, Some(&key)).await {
        Ok(VitalOutcome::Stored { .. }) => ack(&header, AckCode::AA, ""),
        Ok(VitalOutcome::Duplicate { .. }) => ack(
            &header,
            AckCode::AA,
            "duplicate message control id: already stored",
        ),
        Err(AppError::Conflict(m)) => ack(&header, AckCode::AE, &m),
        // Overload: the writer's queue is full. AR, HL7's answer for a message refused for
        // reasons other than its content (v2.5 §2.9.2); nothing was stored and the monitor
        // sends it again.
        Err(AppError::TooManyRequests(m)) => ack(&header, AckCode::AR, &m),
        Err(AppError::Invalid(f)) => ack(
            &header,
            AckCode::AE,
            &f.0.iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => {
            tracing::error!(error = %e, "MLLP store");
            ack(
                &header,
                AckCode::AE,
                "could not store the message; send again",
            )
        }
    }
}
