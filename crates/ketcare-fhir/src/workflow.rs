//! The duties around treatment as FHIR: signed consents (`Consent`), bookings (`Appointment`),
//! the staff who act on records (`Practitioner`, `PractitionerRole`, never credentials) and the
//! audit log (`AuditEvent`, for administrators, with no free text so no PHI beyond the patient
//! reference).

use crate::resources::{instant, meta};
use jiff::Timestamp;
use ketcare_core::Role;
use ketcare_core::audit::AuditRecord;
use ketcare_ops::consent::{Assent, ConsentSignature, Signer};
use ketcare_ops::schedule::{Booking, BookingStatus};
use serde_json::{Value, json};

/// The identifier system of ketcare user names.
pub const USERNAME_SYSTEM: &str = "urn:ketcare:username";

/// The consent document (id and version) a signature is for, as the `policy` URI.
pub fn consent_policy(document_id: i64, version: u32) -> String {
    format!("urn:ketcare:consent-document:{document_id}|{version}")
}

/// A signed consent as a `Consent`: `active` until withdrawn (`inactive`) or expired
/// (`inactive`, its provision period ended). `now` decides expiry.
pub fn consent(c: &ConsentSignature, now: Timestamp) -> Value {
    let ended = c.withdrawn_at.or(c.expires_at.filter(|e| *e <= now));
    let mut period = json!({"start": instant(c.signed_at)});
    if let Some(end) = c.withdrawn_at.or(c.expires_at) {
        period["end"] = json!(instant(end));
    }
    let performer = match &c.signer {
        Signer::Patient => json!({"reference": format!("Patient/{}", c.patient_id)}),
        Signer::Guardian { guardian_id, .. } => {
            json!({"reference": format!("RelatedPerson/{guardian_id}")})
        }
    };
    let updated = c.withdrawn_at.unwrap_or(c.signed_at);
    let mut v = json!({
        "resourceType": "Consent",
        "id": c.id.get().to_string(),
        "meta": meta(if c.withdrawn_at.is_some() { "2" } else { "1" }, updated),
        "status": if ended.is_some() { "inactive" } else { "active" },
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment", "display": "Treatment"}]},
        "category": [{"text": format!("consent to treatment under protocol {} version {}", c.protocol_id, c.protocol_version)}],
        "patient": {"reference": format!("Patient/{}", c.patient_id)},
        "dateTime": instant(c.signed_at),
        "performer": [performer],
        "policy": [{"uri": consent_policy(c.document_id.get(), c.document_version)}],
        "provision": {"type": "permit", "period": period},
    });
    if let Some(a) = &c.assent {
        let text = match a {
            Assent::Given { .. } => "the minor assented".to_owned(),
            Assent::NotCapable { reason, .. } => {
                format!("the minor cannot assent: {reason}")
            }
        };
        v["verification"] = json!([{
            "verified": matches!(a, Assent::Given { .. }),
            "verifiedWith": {"reference": format!("Patient/{}", c.patient_id), "display": text},
            "verificationDate": instant(c.signed_at),
        }]);
    }
    v
}

fn appointment_status(s: BookingStatus) -> &'static str {
    match s {
        BookingStatus::Booked => "booked",
        BookingStatus::Attended => "fulfilled",
        BookingStatus::Cancelled => "cancelled",
        BookingStatus::NoShow => "noshow",
    }
}

/// A booking as an `Appointment`; `start` and `end` are its times as instants (the site's wall
/// clock resolved by the caller). The chair is a location participant, the nurse a practitioner.
pub fn appointment(b: &Booking, start: Timestamp, end: Timestamp, chair: &str) -> Value {
    let mut participants = vec![
        json!({"actor": {"reference": format!("Patient/{}", b.patient_id)}, "required": "required", "status": "accepted"}),
        json!({"actor": {"reference": format!("Practitioner/{}", b.nurse_id)}, "required": "required", "status": "accepted"}),
        json!({"actor": {"display": chair}, "required": "required", "status": "accepted"}),
    ];
    if b.prescriber_required {
        participants.push(json!({"type": [{"text": "prescriber on site"}], "required": "required", "status": "needs-action"}));
    }
    json!({
        "resourceType": "Appointment",
        "id": b.id.get().to_string(),
        "meta": meta("1", start),
        "status": appointment_status(b.status),
        "serviceType": [{"text": format!("ketamine or esketamine treatment ({})", b.phase.as_str())}],
        "start": instant(start),
        "end": instant(end),
        "participant": participants,
    })
}

/// A member of staff as a `Practitioner`: the display name and user name, nothing of their
/// credentials.
pub fn practitioner(id: i64, username: &str, display_name: &str, active: bool) -> Value {
    json!({
        "resourceType": "Practitioner",
        "id": id.to_string(),
        "meta": {"versionId": "1"},
        "active": active,
        "identifier": [{"system": USERNAME_SYSTEM, "value": username}],
        "name": [{"text": display_name}],
    })
}

/// What a member of staff does here, as a `PractitionerRole` (id = the user's id).
pub fn practitioner_role(id: i64, role: Role, active: bool) -> Value {
    practitioner_roles(id, &[role], active)
}

/// A `PractitionerRole` of an account holding several roles (a different one at some sites):
/// one resource per account, a code per role.
pub fn practitioner_roles(id: i64, roles: &[Role], active: bool) -> Value {
    let code: Vec<Value> = roles
        .iter()
        .map(|r| json!({"coding": [{"system": "urn:ketcare:role", "code": r.as_str()}], "text": r.as_str()}))
        .collect();
    json!({
        "resourceType": "PractitionerRole",
        "id": id.to_string(),
        "meta": {"versionId": "1"},
        "active": active,
        "practitioner": {"reference": format!("Practitioner/{id}")},
        "code": code,
    })
}

/// An audit record as an `AuditEvent`: who (user name and role), when, from where, what action
/// and which patient; the record's free-text detail is left out (it may name a person).
pub fn audit_event(r: &AuditRecord) -> Value {
    let recorded =
        r.at.parse::<Timestamp>()
            .map(instant)
            .unwrap_or_else(|_| r.at.clone());
    let read = r.action.ends_with(".read") || r.action.ends_with(".view");
    let mut agent = json!({
        "who": {"identifier": {"system": USERNAME_SYSTEM, "value": r.username}},
        "requestor": true,
        "role": [{"text": r.role}],
    });
    if let Some(id) = r.user_id {
        agent["who"]["reference"] = json!(format!("Practitioner/{id}"));
    }
    if !r.address.is_empty() {
        agent["network"] = json!({"address": r.address, "type": "2"});
    }
    let mut v = json!({
        "resourceType": "AuditEvent",
        "id": r.seq.to_string(),
        "meta": {"versionId": "1", "lastUpdated": recorded},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "urn:ketcare:audit-action", "code": r.action}],
        "action": if read { "R" } else { "E" },
        "recorded": recorded,
        "outcome": "0",
        "agent": [agent],
        "source": {"observer": {"display": "ketcare"}},
    });
    if let Some(p) = r.patient_id {
        v["entity"] = json!([{"what": {"reference": format!("Patient/{p}")}}]);
    }
    v
}

/// The `Group` id of a protocol's cohort.
pub fn group_id(protocol_id: &str) -> String {
    format!("protocol-{protocol_id}")
}

/// The patients with a booked course of one protocol as a `Group` (an actual group of persons):
/// what a group-level bulk export exports.
pub fn group(protocol_id: &str, title: &str, members: &[i64]) -> Value {
    json!({
        "resourceType": "Group",
        "id": group_id(protocol_id),
        "meta": {"versionId": "1"},
        "identifier": [{"system": "urn:ketcare:protocol", "value": protocol_id}],
        "active": true,
        "type": "person",
        "actual": true,
        "name": format!("Patients with a course of {title}"),
        "quantity": members.len(),
        "member": members.iter().map(|m| json!({"entity": {"reference": format!("Patient/{m}")}})).collect::<Vec<_>>(),
    })
}
