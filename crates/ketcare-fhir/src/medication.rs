//! What was ordered and what was given, as FHIR.
//!
//! - `MedicationRequest`: a dose order (calculated, verified by a second clinician, or
//!   withdrawn), one `dosageInstruction` per component with its mg, rate and duration, the
//!   protocol as `instantiatesCanonical`.
//! - `MedicationAdministration`: what a session gave — start and stop, each rate change, pause
//!   and device as an extension, the mg given as confirmed before signing.
//!
//! The drug and route are coded as text: the clinical reference does not confirm an RxNorm or
//! SNOMED code for them (instruments.md, "RxNorm ingredient, ketamine: not confirmed").

use crate::resources::{instant, meta};
use jiff::Timestamp;
use ketcare_clinical::dose::Number;
use ketcare_clinical::protocol::{Drug, Route};
use ketcare_clinical::{DoseOrder, OrderState};
use ketcare_session::session::{AdminEvent, Session};
use serde_json::{Value, json};

const UCUM: &str = "http://unitsofmeasure.org";
/// The extension naming the protocol (id and version) an order follows.
pub const PROTOCOL_EXTENSION: &str = "urn:ketcare:fhir:protocol";
/// The extension holding one administration event (start, rate change, pause, resume, stop,
/// device) of a session.
pub const EVENT_EXTENSION: &str = "urn:ketcare:fhir:administration-event";

/// The drug in words.
pub fn drug_text(d: Drug) -> &'static str {
    match d {
        Drug::RacemicKetamine => "ketamine (racemic)",
        Drug::Esketamine => "esketamine",
    }
}

/// The route in words.
pub fn route_text(r: Route) -> &'static str {
    match r {
        Route::IvInfusion => "intravenous infusion",
        Route::IvBolus => "intravenous bolus",
        Route::Im => "intramuscular",
        Route::Intranasal => "intranasal",
        Route::Oral => "oral",
        Route::Sublingual => "sublingual",
        Route::Subcutaneous => "subcutaneous",
    }
}

/// A clinical record's timestamp as a FHIR instant (as stored when it does not parse).
fn clinical_time(t: &ketcare_clinical::Timestamp) -> String {
    t.as_str()
        .parse::<Timestamp>()
        .map(instant)
        .unwrap_or_else(|_| t.as_str().to_owned())
}

fn quantity(n: f64, unit: &str) -> Value {
    json!({"value": n, "unit": unit, "system": UCUM, "code": unit})
}

fn number(n: &Number) -> Value {
    quantity(n.value, &n.unit)
}

/// The FHIR status of an order's state: verified orders are `active`; orders still waiting for
/// an override or a second clinician are `draft`; withdrawn ones `revoked`.
pub fn request_status(s: OrderState) -> &'static str {
    match s {
        OrderState::Verified => "active",
        OrderState::NeedsOverride | OrderState::PendingVerification => "draft",
        OrderState::Withdrawn => "revoked",
    }
}

/// The protocol a record follows, as a canonical reference `urn:ketcare:protocol:{id}|{version}`.
pub fn protocol_canonical(id: &str, version: u32) -> String {
    format!("urn:ketcare:protocol:{id}|{version}")
}

/// Who ordered what for whom, as stored.
#[derive(Debug, Clone, Copy)]
pub struct OrderOf<'a> {
    pub order_id: i64,
    pub patient: i64,
    pub revision: i64,
    pub drug: Option<Drug>,
    pub route: Option<Route>,
    pub updated: Timestamp,
    pub order: &'a DoseOrder,
}

/// A dose order as a `MedicationRequest` (id = the order's record id).
pub fn medication_request(o: OrderOf<'_>) -> Value {
    let c = &o.order.calculation;
    let route = o.route.map(|r| json!({"text": route_text(r)}));
    let mut dosage: Vec<Value> = c
        .components
        .iter()
        .enumerate()
        .map(|(n, k)| {
            let role = serde_json::to_value(k.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut text = format!(
                "{role}: {} {} ({} mg)",
                k.ordered.value, k.ordered.unit, k.dose_mg.value
            );
            let mut rate = json!({"doseQuantity": number(&k.dose_mg)});
            if let Some(r) = k
                .preparation
                .as_ref()
                .and_then(|p| p.rate_ml_per_h.as_ref())
            {
                rate["rateQuantity"] = quantity(r.value, "mL/h");
                text.push_str(&format!(" at {} mL/h", r.value));
            }
            let mut d = json!({
                "sequence": n + 1,
                "text": text,
                "doseAndRate": [rate],
            });
            if let Some(m) = &k.duration_minutes {
                d["timing"] = json!({"repeat": {"duration": m.value, "durationUnit": "min"}});
                d["text"] = json!(format!("{text} over {} min", m.value));
            }
            if let Some(r) = &route {
                d["route"] = r.clone();
            }
            d
        })
        .collect();
    if let Some(e) = &c.esketamine {
        let mut d = json!({
            "sequence": dosage.len() + 1,
            "text": format!(
                "{} mg: {} device(s) of {} mg, {} min apart",
                e.dose_mg.value, e.devices, e.device_mg.value, e.minutes_between_devices.value
            ),
            "doseAndRate": [{"doseQuantity": number(&e.dose_mg)}],
        });
        if let Some(r) = &route {
            d["route"] = r.clone();
        }
        dosage.push(d);
    }
    let drug = o
        .drug
        .or(c.esketamine.as_ref().map(|_| Drug::Esketamine))
        .map(drug_text)
        .unwrap_or("ketamine");
    let mut v = json!({
        "resourceType": "MedicationRequest",
        "id": o.order_id.to_string(),
        "meta": meta(&o.revision.to_string(), o.updated),
        "status": request_status(o.order.state),
        "intent": "order",
        "medicationCodeableConcept": {"text": drug},
        "subject": {"reference": format!("Patient/{}", o.patient)},
        "authoredOn": clinical_time(&o.order.created_at),
        "requester": {"display": o.order.author.as_str()},
        "instantiatesCanonical": [protocol_canonical(&c.protocol_id, c.protocol_version)],
        "extension": [{"url": PROTOCOL_EXTENSION, "valueString": format!("{} (version {})", c.protocol_title, c.protocol_version)}],
        "dosageInstruction": dosage,
    });
    if let Some(w) = &o.order.withdrawal {
        v["statusReason"] = json!({"text": format!("withdrawn by {} at {}: {}", w.by.as_str(), clinical_time(&w.at), w.reason)});
    }
    if let Some(ver) = &o.order.verification {
        v["note"] = json!([{"text": format!("verified by {} at {}", ver.by.as_str(), clinical_time(&ver.at))}]);
    }
    v
}

fn event(at: Timestamp, by: &str, code: &str, rate: Option<f64>, text: Option<&str>) -> Value {
    let mut parts = vec![
        json!({"url": "at", "valueDateTime": instant(at)}),
        json!({"url": "event", "valueCode": code}),
        json!({"url": "by", "valueString": by}),
    ];
    if let Some(r) = rate {
        parts.push(json!({"url": "rate", "valueQuantity": quantity(r, "mL/h")}));
    }
    if let Some(t) = text.filter(|t| !t.is_empty()) {
        parts.push(json!({"url": "note", "valueString": t}));
    }
    json!({"url": EVENT_EXTENSION, "extension": parts})
}

/// What a session gave as a `MedicationAdministration` (id = the session's id), or `None` when
/// nothing was started. `completed` once stopped (or every planned device given and the session
/// ended), else `in-progress`.
pub fn medication_administration(
    session_id: i64,
    patient: i64,
    revision: i64,
    session: &Session,
    drug: Option<Drug>,
    updated: Timestamp,
) -> Option<Value> {
    let first = session.administrations.first()?;
    let mut extension = Vec::new();
    let mut rate = None;
    let mut stopped = None;
    let mut performers: Vec<&str> = Vec::new();
    for a in &session.administrations {
        if !performers.contains(&a.by.as_str()) {
            performers.push(&a.by);
        }
        let e = match &a.event {
            AdminEvent::Start { rate_ml_per_h, .. } => {
                rate = *rate_ml_per_h;
                event(a.at, &a.by, "start", *rate_ml_per_h, None)
            }
            AdminEvent::RateChange { rate_ml_per_h, .. } => {
                rate = Some(*rate_ml_per_h);
                event(a.at, &a.by, "rate-change", Some(*rate_ml_per_h), None)
            }
            AdminEvent::Pause { reason } => event(a.at, &a.by, "pause", None, Some(reason)),
            AdminEvent::Resume => event(a.at, &a.by, "resume", None, None),
            AdminEvent::Stop { reason } => {
                stopped = Some(a.at);
                event(a.at, &a.by, "stop", None, reason.as_deref())
            }
            AdminEvent::Device { number } => {
                stopped = Some(a.at);
                event(
                    a.at,
                    &a.by,
                    "device",
                    None,
                    Some(&format!("device {number}")),
                )
            }
        };
        extension.push(e);
    }
    let ended = session.signature.is_some()
        || matches!(
            session.administrations.last().map(|a| &a.event),
            Some(AdminEvent::Stop { .. })
        );
    let mut period = json!({"start": instant(first.at)});
    if let (true, Some(end)) = (ended, stopped) {
        period["end"] = json!(instant(end));
    }
    let mut dosage = json!({"text": format!("as given in session {session_id}")});
    if let Ok(mg) = session.given_mg() {
        dosage["dose"] = quantity(mg, "mg");
    }
    if let Some(r) = rate {
        dosage["rateQuantity"] = quantity(r, "mL/h");
    }
    let drug = drug.map(drug_text).unwrap_or("ketamine");
    let mut v = json!({
        "resourceType": "MedicationAdministration",
        "id": session_id.to_string(),
        "meta": meta(&revision.to_string(), updated),
        "status": if ended { "completed" } else { "in-progress" },
        "medicationCodeableConcept": {"text": drug},
        "subject": {"reference": format!("Patient/{patient}")},
        "context": {"reference": format!("Encounter/{session_id}")},
        "effectivePeriod": period,
        "performer": performers.iter().map(|p| json!({"actor": {"display": p}})).collect::<Vec<_>>(),
        "instantiates": [protocol_canonical(&session.plan.protocol_id, session.plan.protocol_version)],
        "dosage": dosage,
        "extension": extension,
    });
    if let Some(order) = session.dose_order_id {
        v["request"] = json!({"reference": format!("MedicationRequest/{order}")});
    }
    Some(v)
}
