//! The one service for sessions: pages, the API, the MLLP listener and the CLI call these.

use crate::error::AppError;
use crate::{AppState, clinical};
use jiff::Timestamp;
use ketcare_clinical::dose::OrderState;
use ketcare_core::{Actor, PatientId};
use ketcare_session::session::VerifiedDose;
use ketcare_session::{Command, RulesFile, Session, VitalReading};
use ketcare_store::{MessageKey, RecordKind, SessionRecord, VitalOutcome};

/// The built-in monitoring rules, validated against the library's sources.
pub fn rules(state: &AppState) -> Result<RulesFile, AppError> {
    RulesFile::builtin(state.library().sources()).map_err(|e| {
        tracing::error!(error = %e, "monitoring rules");
        AppError::Internal
    })
}

/// The dose a verified order gives, for the checklist; `None` while it is not verified.
pub fn verified_dose(order_id: i64, order: &ketcare_clinical::DoseOrder) -> Option<VerifiedDose> {
    let v = order.verification.as_ref()?;
    if order.state != OrderState::Verified {
        return None;
    }
    let c = &order.calculation;
    let mut parts: Vec<String> = c
        .components
        .iter()
        .map(|x| {
            let mut s = format!(
                "{} {} mg ({} mg/kg)",
                serde_json::to_value(x.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                ketcare_core::units::trim_float(x.dose_mg.value),
                ketcare_core::units::trim_float(x.mg_per_kg.value)
            );
            if let Some(d) = &x.duration_minutes {
                s.push_str(&format!(
                    " over {} min",
                    ketcare_core::units::trim_float(d.value)
                ));
            }
            if let Some(rate) = x
                .preparation
                .as_ref()
                .and_then(|p| p.rate_ml_per_h.as_ref())
            {
                s.push_str(&format!(
                    " at {} mL/h",
                    ketcare_core::units::trim_float(rate.value)
                ));
            }
            s
        })
        .collect();
    let mut devices = 0;
    let mut dose_mg: f64 = c.components.iter().map(|x| x.dose_mg.value).sum();
    if let Some(e) = &c.esketamine {
        devices = e.devices;
        dose_mg = e.dose_mg.value;
        parts.push(format!(
            "{} mg = {} devices",
            ketcare_core::units::trim_float(e.dose_mg.value),
            e.devices
        ));
    }
    Some(VerifiedDose {
        order_id,
        summary: format!("{} — {}", c.protocol_title, parts.join("; ")),
        author: order.author.to_string(),
        verified_by: v.by.to_string(),
        devices,
        dose_mg: (dose_mg > 0.0).then_some(dose_mg),
        delivery: ketcare_session::ordered_delivery(c),
    })
}

/// Schedules a session for a patient from one of their dose orders.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    patient: PatientId,
    order_id: i64,
    chair: &str,
    scheduled_for: Timestamp,
) -> Result<SessionRecord, AppError> {
    if chair.trim().is_empty() {
        return Err(AppError::invalid("chair", "required"));
    }
    if chair.trim().chars().count() > 60 {
        return Err(AppError::invalid("chair", "at most 60 characters"));
    }
    let rec = state
        .store
        .record(actor, RecordKind::DoseOrder, order_id)
        .await
        .map_err(|e| match e {
            ketcare_store::StoreError::NotFound { .. } => {
                AppError::invalid("order_id", format!("no dose order {order_id}"))
            }
            e => e.into(),
        })?;
    if rec.patient_id != patient {
        return Err(AppError::invalid(
            "order_id",
            format!("dose order {order_id} belongs to another patient"),
        ));
    }
    let order = clinical::order_of(&rec)?.order;
    if order.state != OrderState::Verified {
        return Err(AppError::invalid(
            "order_id",
            format!(
                "dose order {order_id} is {}: a session is scheduled only for an order verified by a second clinician",
                serde_json::to_value(order.state)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                    .unwrap_or_default()
            ),
        ));
    }
    let library = state.library();
    let protocol = library
        .get(&order.calculation.protocol_id)
        .map_err(|e| AppError::invalid("order_id", e.to_string()))?;
    let (settings, _) = clinical::settings(state.store.as_ref()).await?;
    let devices = order
        .calculation
        .esketamine
        .as_ref()
        .map_or(0, |e| e.devices);
    let plan = rules(state)?.plan(protocol, &settings, devices);
    let mut session = Session::new(plan, chair, scheduled_for);
    session.dose_order_id = Some(order_id);
    let Some(dose) = verified_dose(order_id, &order) else {
        return Err(AppError::invalid(
            "order_id",
            format!("dose order {order_id} has no verification"),
        ));
    };
    session
        .apply(
            &Command::AttachDose { dose },
            &actor.username,
            scheduled_for,
        )
        .map_err(|r| AppError::Conflict(r.to_string()))?;
    let created = state
        .store
        .create_treatment_session(actor, patient, &session)
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
    sid: i64,
) -> Result<SessionRecord, AppError> {
    let rec = state.store.session_record(actor, sid).await?;
    let Some(order_id) = rec.session.dose_order_id else {
        return Err(AppError::Conflict("this session has no dose order".into()));
    };
    let order = clinical::order_of(
        &state
            .store
            .record(actor, RecordKind::DoseOrder, order_id)
            .await?,
    )?;
    let Some(dose) = verified_dose(order_id, &order.order) else {
        return Err(AppError::Conflict(format!(
            "dose order {order_id} is not verified by a second clinician yet"
        )));
    };
    command(state, actor, sid, &Command::AttachDose { dose }).await
}

/// Applies a command now and publishes the change.
pub async fn command(
    state: &AppState,
    actor: &Actor,
    sid: i64,
    cmd: &Command,
) -> Result<SessionRecord, AppError> {
    let now = now(state)?;
    super::pre_measures::check_score(state, cmd).await?;
    let rec = state
        .store
        .apply_session_command(actor, sid, cmd, now)
        .await?;
    state.live.publish("session", sid, phase_json(&rec));
    if let Command::AcknowledgeAlarm { alarm } | Command::ResolveAlarm { alarm, .. } = cmd
        && let Some(a) = rec.session.alarms.iter().find(|a| a.id == *alarm)
    {
        state.live.publish(
            "alarm",
            sid,
            serde_json::json!({ "chair": rec.session.chair, "alarm": a }),
        );
    }
    Ok(rec)
}

/// Stores a reading and publishes it (and any alarm it raised) after the commit. Every edge
/// (page, API, monitors) comes through here, and the store refuses a physiologically impossible
/// reading before writing it (`ketcare_session::limits::check_reading`), naming the field.
pub async fn record_vital(
    state: &AppState,
    actor: &Actor,
    sid: i64,
    reading: &VitalReading,
    message_key: Option<&MessageKey>,
) -> Result<VitalOutcome, AppError> {
    let out = state
        .store
        .record_vital(actor, sid, reading, message_key)
        .await?;
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
    let actor = Actor {
        user_id: None,
        username: "system:session-rules".into(),
        role: Some(ketcare_core::Role::Nurse),
        address: "local".into(),
    };
    let now = now(state)?;
    for (sid, alarms) in state.store.tick_sessions(&actor, now).await? {
        for a in alarms {
            state
                .live
                .publish("alarm", sid, serde_json::json!({ "alarm": a }));
        }
    }
    Ok(())
}

/// Runs [`tick`] every `every_seconds` until the process ends.
pub fn spawn_ticker(state: AppState, every_seconds: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval =
            tokio::time::interval(std::time::Duration::from_secs(every_seconds.max(1)));
        loop {
            interval.tick().await;
            if let Err(e) = tick(&state).await {
                tracing::warn!(error = %e, "session time rules");
            }
        }
    })
}

/// Now, from the injected clock.
pub fn now(state: &AppState) -> Result<Timestamp, AppError> {
    Timestamp::from_second(state.now()).map_err(|_| AppError::Internal)
}
