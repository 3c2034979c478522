//! The session use cases: the plan from the verified order, commands and vitals. Pages, the
//! API, the MLLP listener and the CLI call these; the web edge publishes each change on its
//! live channel after the call returns (i.e. after the commit).

use crate::clinical;
use crate::error::{Error, Result};
use jiff::Timestamp;
use ketcare_clinical::Library;
use ketcare_clinical::dose::OrderState;
use ketcare_core::{Actor, PatientId, RecordId, SessionId};
use ketcare_session::alarms::Alarm;
use ketcare_session::session::VerifiedDose;
use ketcare_session::{Command, RulesFile, Session, VitalReading};
use ketcare_store::{MessageKey, RecordKind, SessionRecord, Store, VitalOutcome};

/// The built-in monitoring rules, validated against the library's sources.
pub fn rules(library: &Library) -> Result<RulesFile> {
    RulesFile::builtin(library.sources()).map_err(|e| {
        tracing::error!(error = %e, "monitoring rules");
        Error::Internal
    })
}

/// The dose a verified order gives, for the checklist; `None` while it is not verified.
pub fn verified_dose(
    order_id: RecordId,
    order: &ketcare_clinical::DoseOrder,
) -> Option<VerifiedDose> {
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
        order_id: order_id.get(),
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
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
    order_id: RecordId,
    chair: &str,
    scheduled_for: Timestamp,
) -> Result<SessionRecord> {
    if chair.trim().is_empty() {
        return Err(Error::invalid("chair", "required"));
    }
    if chair.trim().chars().count() > 60 {
        return Err(Error::invalid("chair", "at most 60 characters"));
    }
    let rec = store
        .record(actor, RecordKind::DoseOrder, order_id)
        .await
        .map_err(|e| match e {
            ketcare_store::StoreError::NotFound { .. } => {
                Error::invalid("order_id", format!("no dose order {order_id}"))
            }
            e => e.into(),
        })?;
    if rec.patient_id != patient {
        return Err(Error::invalid(
            "order_id",
            format!("dose order {order_id} belongs to another patient"),
        ));
    }
    let order = clinical::order_of(&rec)?.order;
    if order.state != OrderState::Verified {
        return Err(Error::invalid(
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
    let protocol = library
        .get(&order.calculation.protocol_id)
        .map_err(|e| Error::invalid("order_id", e.to_string()))?;
    // The settings in force at the chair's site (the store holds the session there); a site's
    // own protocol is given at that site only.
    let site = store.chair_site(actor, chair).await?;
    clinical::protocol_used_at(store, &order.calculation.protocol_id, site, "order_id").await?;
    let at = clinical::settings_at(store, site).await?;
    let (settings, version) = (at.settings, at.version);
    let devices = order
        .calculation
        .esketamine
        .as_ref()
        .map_or(0, |e| e.devices);
    let plan = rules(library)?.plan(protocol, &settings, devices);
    let mut session = Session::new(plan, chair, scheduled_for);
    session.settings_version = version;
    session.dose_order_id = Some(order_id.get());
    let Some(dose) = verified_dose(order_id, &order) else {
        return Err(Error::invalid(
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
        .map_err(|r| Error::Conflict(r.to_string()))?;
    Ok(store
        .create_treatment_session(actor, patient, &session)
        .await?)
}

/// Re-reads the session's dose order and attaches it once it is verified.
pub async fn attach_dose(
    store: &dyn Store,
    actor: &Actor,
    sid: SessionId,
    now: Timestamp,
) -> Result<SessionRecord> {
    let rec = store.session_record(actor, sid).await?;
    // The session document (ketcare-session) keeps the order's key as a bare integer.
    let Some(order_id) = rec.session.dose_order_id.map(RecordId::new) else {
        return Err(Error::Conflict("this session has no dose order".into()));
    };
    let order = clinical::order_of(&store.record(actor, RecordKind::DoseOrder, order_id).await?)?;
    let Some(dose) = verified_dose(order_id, &order.order) else {
        return Err(Error::Conflict(format!(
            "dose order {order_id} is not verified by a second clinician yet"
        )));
    };
    apply(store, actor, sid, &Command::AttachDose { dose }, now).await
}

/// Applies a command at `now` (a session score is first checked against the measures
/// catalogue). A signature goes through [`sign`].
pub async fn command(
    store: &dyn Store,
    library: &Library,
    pk: crate::pk::PkLibrary,
    actor: &Actor,
    sid: SessionId,
    cmd: &Command,
    now: Timestamp,
) -> Result<SessionRecord> {
    if let Command::Sign = cmd {
        return sign(store, library, pk, actor, sid, now).await;
    }
    apply(store, actor, sid, cmd, now).await
}

/// Signs session `sid` with what the PK engine predicts the record gave: the record is read,
/// its Cmax and AUC predicted ([`super::history::predict_exposure`]), and the signature and
/// the figure are stored in one unit, only onto the revision that was read
/// ([`ketcare_store::SessionStore::sign_session`]) — a record that changed meanwhile is read
/// and predicted again (a few times, then the conflict is the answer). A record the engine
/// cannot predict (no dose given, no weight charted) is signed without a figure, the reason
/// logged: the prediction never refuses a signature.
pub async fn sign(
    store: &dyn Store,
    library: &Library,
    pk: crate::pk::PkLibrary,
    actor: &Actor,
    sid: SessionId,
    now: Timestamp,
) -> Result<SessionRecord> {
    const TRIES: usize = 3;
    let mut tries = 0;
    loop {
        tries += 1;
        let rec = store.session_record(actor, sid).await?;
        let predicted = match super::history::predict_exposure(
            store,
            library,
            pk.clone(),
            actor,
            &rec,
        )
        .await
        {
            Ok(Ok(e)) => Some(e),
            Ok(Err(reason)) => {
                tracing::info!(session = %sid, %reason, "signed session has no predicted exposure");
                None
            }
            Err(e) => {
                tracing::warn!(session = %sid, error = %e, "predicted exposure not computed");
                None
            }
        };
        match store
            .sign_session(actor, sid, now, rec.revision, predicted.as_ref())
            .await
        {
            Err(ketcare_store::StoreError::Conflict(m)) if tries < TRIES => {
                // Only a record changed since it was read is tried again; any other refusal
                // (not discharged, the mg given unconfirmed…) is the answer.
                if store.session_record(actor, sid).await?.revision == rec.revision {
                    return Err(Error::Conflict(m));
                }
            }
            other => return Ok(other?),
        }
    }
}

async fn apply(
    store: &dyn Store,
    actor: &Actor,
    sid: SessionId,
    cmd: &Command,
    now: Timestamp,
) -> Result<SessionRecord> {
    super::pre_measures::check_score(store, cmd).await?;
    Ok(store.apply_session_command(actor, sid, cmd, now).await?)
}

/// Stores a reading. Every edge (page, API, monitors) comes through here, and the store refuses
/// a physiologically impossible reading before writing it
/// (`ketcare_session::limits::check_reading`), naming the field.
pub async fn record_vital(
    store: &dyn Store,
    actor: &Actor,
    sid: SessionId,
    reading: &VitalReading,
    message_key: Option<&MessageKey>,
) -> Result<VitalOutcome> {
    Ok(store.record_vital(actor, sid, reading, message_key).await?)
}

/// Brings every open session (scheduled, or with the patient in the chair) to the settings in
/// force at its own site ([`clinical::settings_at`]): alarm thresholds, the vitals interval and
/// the BP gate before dosing follow the settings from the moment they are saved
/// ([`Session::apply_settings`]); each session's record lists what changed. Runs as the
/// session-rules account. Returns the ids of the sessions that changed.
pub async fn apply_settings(
    store: &dyn Store,
    library: &Library,
    now: Timestamp,
) -> Result<Vec<ketcare_core::SessionId>> {
    let rules = rules(library)?;
    let actor = rules_actor();
    let mut at_site: std::collections::BTreeMap<i64, clinical::SettingsAtSite> =
        std::collections::BTreeMap::new();
    let mut changed = Vec::new();
    for sid in store.open_session_ids().await? {
        let rec = store.session_record(&actor, sid).await?;
        let s = &rec.session;
        if !s.is_open() {
            continue;
        }
        let at = match at_site.get(&rec.site_id) {
            Some(at) => at,
            None => {
                let at = clinical::settings_at(store, rec.site_id).await?;
                at_site.entry(rec.site_id).or_insert(at)
            }
        };
        if s.settings_version == at.version {
            continue;
        }
        let Ok(protocol) = library.get(&s.plan.protocol_id) else {
            continue;
        };
        let fresh = rules.plan(protocol, &at.settings, s.plan.devices_planned);
        let mut probe = s.clone();
        if probe
            .apply_settings(&fresh, at.version, &actor.username, now)
            .is_empty()
        {
            continue;
        }
        let cmd = Command::ApplySettings {
            version: at.version,
            plan: Box::new(fresh),
        };
        store.apply_session_command(&actor, sid, &cmd, now).await?;
        changed.push(sid);
    }
    Ok(changed)
}

/// The account the time rules run as.
pub fn rules_actor() -> Actor {
    Actor {
        user_id: None,
        username: "system:session-rules".into(),
        role: Some(ketcare_core::Role::Nurse),
        address: "local".into(),
    }
}

/// Runs the time rules at `now`; returns the alarms raised, by session.
pub async fn tick(store: &dyn Store, now: Timestamp) -> Result<Vec<(SessionId, Vec<Alarm>)>> {
    Ok(store.tick_sessions(&rules_actor(), now).await?)
}

/// The epoch second `now` as a timestamp.
pub fn at(now: i64) -> Result<Timestamp> {
    Timestamp::from_second(now).map_err(|_| Error::Internal)
}
