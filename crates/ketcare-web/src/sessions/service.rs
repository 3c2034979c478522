//! The web side of the session use cases: each function makes one call into
//! [`ketcare_app::sessions::service`] with what it needs from [`AppState`], then publishes the
//! change on the live channel (after the commit). The 10-second ticker for the time rules lives
//! here too, as it is a task of the running server.

use crate::AppState;
use crate::error::AppError;
use jiff::Timestamp;
use ketcare_app::sessions::service as app;
use ketcare_core::{Actor, PatientId, RecordId, SessionId};
use ketcare_session::{Command, VitalReading};
use ketcare_store::jobs::Job;
use ketcare_store::{MessageKey, SessionRecord, VitalOutcome};

pub use ketcare_app::sessions::service::{rules, verified_dose};

/// Schedules a session for a patient from one of their dose orders.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    patient: PatientId,
    order_id: RecordId,
    chair: &str,
    scheduled_for: Timestamp,
) -> Result<SessionRecord, AppError> {
    let created = app::create(
        state.store.as_ref(),
        &state.library(),
        actor,
        patient,
        order_id,
        chair,
        scheduled_for,
    )
    .await?;
    state
        .live
        .publish("session", created.id, phase_json(&created));
    Ok(created)
}

fn phase_json(r: &SessionRecord) -> serde_json::Value {
    serde_json::json!({
        "phase": r.session.phase.as_str(),
        "label": r.session.phase.label(),
        "chair": r.session.chair,
        "open_alarms": r.session.open_alarms().count(),
    })
}

/// Re-reads the session's dose order and attaches it once it is verified.
pub async fn attach_dose(
    state: &AppState,
    actor: &Actor,
    sid: SessionId,
) -> Result<SessionRecord, AppError> {
    let rec = app::attach_dose(state.store.as_ref(), actor, sid, now(state)?).await?;
    state.live.publish("session", sid, phase_json(&rec));
    Ok(rec)
}

/// Applies a command now and publishes the change.
pub async fn command(
    state: &AppState,
    actor: &Actor,
    sid: SessionId,
    cmd: &Command,
) -> Result<SessionRecord, AppError> {
    let rec = app::command(
        state.store.as_ref(),
        &state.library(),
        state.pk.clone(),
        actor,
        sid,
        cmd,
        now(state)?,
    )
    .await?;
    publish_command(state, sid, cmd, &rec);
    Ok(rec)
}

/// Publishes a command's result: the session's phase, and the alarm it acknowledged or
/// resolved.
fn publish_command(state: &AppState, sid: SessionId, cmd: &Command, rec: &SessionRecord) {
    state.live.publish("session", sid, phase_json(rec));
    if let Command::AcknowledgeAlarm { alarm } | Command::ResolveAlarm { alarm, .. } = cmd
        && let Some(a) = rec.session.alarms.iter().find(|a| a.id == *alarm)
    {
        state.live.publish(
            "alarm",
            sid,
            serde_json::json!({ "chair": rec.session.chair, "alarm": a }),
        );
    }
}

/// Stores a reading through [`app::record_vital`] (the one path of every edge: page, API,
/// monitors) and publishes it, and any alarm it raised, after the commit.
pub async fn record_vital(
    state: &AppState,
    actor: &Actor,
    sid: SessionId,
    reading: &VitalReading,
    message_key: Option<&MessageKey>,
) -> Result<VitalOutcome, AppError> {
    let out = app::record_vital(state.store.as_ref(), actor, sid, reading, message_key).await?;
    if let VitalOutcome::Stored { vital, alarms, .. } = &out {
        state.live.publish(
            "vital",
            sid,
            serde_json::json!({
                "vital_id": vital.id,
                "at": vital.reading.at.to_string(),
                "source": vital.reading.source.as_str(),
                "control_id": vital.reading.control_id,
                "vitals": vital.reading.vitals,
                "summary": vital.reading.vitals.summary(),
            }),
        );
        for a in alarms {
            state
                .live
                .publish("alarm", sid, serde_json::json!({ "alarm": a }));
        }
    }
    Ok(out)
}

/// Runs the time rules now and publishes raised alarms.
pub async fn tick(state: &AppState) -> Result<(), AppError> {
    for (sid, alarms) in app::tick(state.store.as_ref(), now(state)?).await? {
        for a in alarms {
            state
                .live
                .publish("alarm", sid, serde_json::json!({ "alarm": a }));
        }
    }
    Ok(())
}

/// Runs [`tick`] every `every_seconds` until the process ends; a pass runs in one process only
/// when several share the database ([`ketcare_store::jobs`]).
pub fn spawn_ticker(state: AppState, every_seconds: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval =
            tokio::time::interval(std::time::Duration::from_secs(every_seconds.max(1)));
        loop {
            interval.tick().await;
            // Once across the processes sharing the database (an advisory lock on PostgreSQL).
            let pass = ketcare_store::jobs::run_once(
                state.store.as_ref(),
                Job::SessionTicker,
                tick(&state),
            );
            match pass.await {
                Ok(Some(Err(e))) => tracing::warn!(error = %e, "session time rules"),
                Err(e) => tracing::warn!(error = %e, "session time rules: the job lock"),
                Ok(_) => {}
            }
        }
    })
}

/// Now, from the injected clock.
pub fn now(state: &AppState) -> Result<Timestamp, AppError> {
    Ok(app::at(state.now())?)
}
