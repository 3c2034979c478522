//! Bedside monitors: HL7 v2 ORU^R01 over MLLP.
//!
//! Each connection is served by its own task, so many monitors can be connected at once;
//! messages on one connection are handled in order. A message is matched to the active session
//! by patient identifier (PID-3, the MRN) or by bed/chair (PV1-3), stored, and only after the
//! commit answered with ACK AA. Unreadable messages get AR, readable ones that cannot be stored
//! (unknown patient, wrong type, no session in the chair, a refused value) AE with the reason. A
//! repeated message control id (per sending application and facility) is acknowledged again and
//! not stored twice.

use super::service;
use crate::AppState;
use crate::error::AppError;
use bytes::BytesMut;
use ketcare_core::{Actor, Role};
use ketcare_session::hl7::{self, AckCode, Frame, Header, Hl7Error};
use ketcare_session::{VitalReading, VitalSource};
use ketcare_store::VitalOutcome;
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
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        loop {
            match hl7::mllp_deframe(&buf) {
                Frame::Complete { payload, consumed } => {
                    let _ = buf.split_to(consumed);
                    let text = String::from_utf8_lossy(&payload).into_owned();
                    let ack = handle(&state, &text, &peer).await;
                    stream.write_all(&hl7::mllp_frame(&ack)).await?;
                }
                Frame::Garbage { skip } => {
                    let _ = buf.split_to(skip);
                }
                Frame::Incomplete => break,
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
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
        Ok(Some(sid)) => sid,
        Ok(None) => {
            return ack(
                &header,
                AckCode::AE,
                &format!(
                    "no patient in a chair for patient id [{}] or location [{}]",
                    msg.patient_ids.join(", "),
                    msg.location.join("/")
                ),
            );
        }
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
    let key = format!(
        "{}|{}|{}",
        header.sending_application, header.sending_facility, header.control_id
    );
    match service::record_vital(state, &actor, sid, &reading, Some(&key)).await {
        Ok(VitalOutcome::Stored { .. }) => ack(&header, AckCode::AA, ""),
        Ok(VitalOutcome::Duplicate { .. }) => ack(
            &header,
            AckCode::AA,
            "duplicate message control id: already stored",
        ),
        Err(AppError::Conflict(m)) => ack(&header, AckCode::AE, &m),
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
