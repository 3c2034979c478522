//! ketcare's records as FHIR R4 resources.
//!
//! - `Patient` carries the demographics only (identifier = MRN, name, gender, birthDate,
//!   telecom): a FHIR client that may read patients gets what minimum necessary allows.
//! - `RelatedPerson`: a guardian of the patient, with the relationship as text.
//! - `Observation`: one vital sign of one reading, per the FHIR vital-signs profile (category
//!   `vital-signs`, LOINC code, UCUM unit); systolic and diastolic pressure together as the blood
//!   pressure panel with two components.

use jiff::Timestamp;
use ketcare_core::patient::{Guardian, PatientDemographics, Sex};
use ketcare_session::vitals::{VitalReading, VitalSource};
use serde_json::{Value, json};

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// `meta` of a resource: `versionId` and `lastUpdated` (an instant, RFC 3339 UTC).
pub(crate) fn meta(version: &str, last_updated: Timestamp) -> Value {
    json!({"versionId": version, "lastUpdated": instant(last_updated)})
}

/// The version of a record last changed at `updated`: its microsecond, so every change makes a
/// new version.
pub fn version_of(updated: Timestamp) -> String {
    updated.as_microsecond().to_string()
}

/// FHIR `instant`: UTC to the second.
pub fn instant(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn gender(s: Sex) -> &'static str {
    match s {
        Sex::Female => "female",
        Sex::Male => "male",
        Sex::Other => "other",
        Sex::Unknown => "unknown",
    }
}

fn telecom(phone: &str, email: &str) -> Vec<Value> {
    let mut t = Vec::new();
    if !phone.is_empty() {
        t.push(json!({"system": "phone", "value": phone}));
    }
    if !email.is_empty() {
        t.push(json!({"system": "email", "value": email}));
    }
    t
}

/// A patient's demographics as a `Patient`. `updated` is when the record last changed: its
/// version is [`version_of`] it.
pub fn patient(p: &PatientDemographics, updated: Timestamp) -> Value {
    let mut v = json!({
        "resourceType": "Patient",
        "id": p.id.get().to_string(),
        "meta": meta(&version_of(updated), updated),
        "identifier": [{
            "use": "usual",
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                "code": "MR",
                "display": "Medical record number",
            }]},
            "system": crate::mrn_system(),
            "value": p.mrn,
        }],
        "active": true,
        "name": [{"use": "official", "family": p.family_name, "given": [p.given_name]}],
        "gender": gender(p.sex),
        "birthDate": p.date_of_birth.to_string(),
    });
    let t = telecom(&p.phone, &p.email);
    if !t.is_empty() {
        v["telecom"] = Value::Array(t);
    }
    v
}

/// A guardian of `patient` as a `RelatedPerson` (its id is the guardian's).
pub fn related_person(g: &Guardian, patient: i64, updated: Timestamp) -> Value {
    let mut v = json!({
        "resourceType": "RelatedPerson",
        "id": g.id.get().to_string(),
        "meta": meta(&updated.as_second().to_string(), updated),
        "active": true,
        "patient": {"reference": format!("Patient/{patient}")},
        "relationship": [{"text": g.record.relationship.as_str()}],
        "name": [{"text": g.record.name}],
    });
    let t = telecom(&g.record.phone, &g.record.email);
    if !t.is_empty() {
        v["telecom"] = Value::Array(t);
    }
    v
}

/// One vital sign: the id suffix, LOINC codes (first is the main one), display and UCUM unit.
struct Sign {
    suffix: &'static str,
    codes: &'static [(&'static str, &'static str)],
    unit: &'static str,
}

const HEART_RATE: Sign = Sign {
    suffix: "hr",
    codes: &[("8867-4", "Heart rate")],
    unit: "/min",
};
const SPO2: Sign = Sign {
    suffix: "spo2",
    codes: &[
        (
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
        ),
        ("2708-6", "Oxygen saturation in Arterial blood"),
    ],
    unit: "%",
};
const RESP_RATE: Sign = Sign {
    suffix: "rr",
    codes: &[("9279-1", "Respiratory rate")],
    unit: "/min",
};
const TEMPERATURE: Sign = Sign {
    suffix: "temp",
    codes: &[("8310-5", "Body temperature")],
    unit: "Cel",
};
const ETCO2: Sign = Sign {
    suffix: "etco2",
    codes: &[(
        "19935-6",
        "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration",
    )],
    unit: "mm[Hg]",
};
const BP_PANEL: (&str, &str) = ("85354-9", "Blood pressure panel with all children optional");
const SYSTOLIC: (&str, &str) = ("8480-6", "Systolic blood pressure");
const DIASTOLIC: (&str, &str) = ("8462-4", "Diastolic blood pressure");

fn quantity(value: f64, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM, "code": unit})
}

fn codeable(codes: &[(&str, &str)]) -> Value {
    json!({
        "coding": codes.iter().map(|(c, d)| json!({"system": LOINC, "code": c, "display": d})).collect::<Vec<_>>(),
        "text": codes.first().map(|(_, d)| *d).unwrap_or(""),
    })
}

/// Where a reading came from, as the observation tells it.
fn source(v: &mut Value, r: &VitalReading) {
    match r.source {
        VitalSource::Monitor => v["device"] = json!({"display": format!("monitor {}", r.by)}),
        VitalSource::Manual | VitalSource::Api => {
            v["performer"] = json!([{"display": r.by}]);
        }
    }
}

/// The identity of a stored reading: its id, the session it belongs to, its patient and when
/// ketcare stored it.
#[derive(Debug, Clone, Copy)]
pub struct ReadingOf {
    pub vital_id: i64,
    pub session_id: i64,
    pub patient_id: i64,
    pub stored_at: Timestamp,
}

/// The LOINC codes an observation of this reading carries, by id suffix (for `code` searches).
pub fn observation_codes(suffix: &str) -> &'static [&'static str] {
    match suffix {
        "bp" => &["85354-9", "8480-6", "8462-4"],
        "hr" => &["8867-4"],
        "spo2" => &["59408-5", "2708-6"],
        "rr" => &["9279-1"],
        "temp" => &["8310-5"],
        "etco2" => &["19935-6"],
        _ => &[],
    }
}

/// Every vital-sign `Observation` of one stored reading (one per sign it holds; systolic and
/// diastolic together as the blood pressure panel). Ids are `{vital id}-{sign}`, stable.
pub fn vital_observations(of: ReadingOf, r: &VitalReading) -> Vec<Value> {
    let base = |suffix: &str, code: Value| {
        let mut v = json!({
            "resourceType": "Observation",
            "id": format!("{}-{suffix}", of.vital_id),
            "meta": meta("1", of.stored_at),
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs", "display": "Vital Signs"}], "text": "Vital Signs"}],
            "code": code,
            "subject": {"reference": format!("Patient/{}", of.patient_id)},
            "encounter": {"reference": format!("Encounter/{}", of.session_id)},
            "effectiveDateTime": instant(r.at),
        });
        source(&mut v, r);
        v
    };
    let mut out = Vec::new();
    let x = &r.vitals;
    if x.systolic.is_some() || x.diastolic.is_some() {
        let mut v = base("bp", codeable(&[BP_PANEL]));
        let mut components = Vec::new();
        for (value, code) in [(x.systolic, SYSTOLIC), (x.diastolic, DIASTOLIC)] {
            if let Some(value) = value {
                components.push(
                    json!({"code": codeable(&[code]), "valueQuantity": quantity(value, "mm[Hg]")}),
                );
            }
        }
        v["component"] = Value::Array(components);
        out.push(v);
    }
    for (value, sign) in [
        (x.heart_rate, &HEART_RATE),
        (x.spo2, &SPO2),
        (x.resp_rate, &RESP_RATE),
        (x.temperature_c, &TEMPERATURE),
        (x.etco2, &ETCO2),
    ] {
        if let Some(value) = value {
            let mut v = base(sign.suffix, codeable(sign.codes));
            v["valueQuantity"] = quantity(value, sign.unit);
            out.push(v);
        }
    }
    out
}

/// Splits an observation id `{vital id}-{sign}` into its parts.
pub fn parse_observation_id(id: &str) -> Option<(i64, &str)> {
    let (n, suffix) = id.split_once('-')?;
    let n: i64 = n.parse().ok()?;
    (!observation_codes(suffix).is_empty()).then_some((n, suffix))
}

/// The clinical part of a patient's record as FHIR: one `Condition` per indication, one
/// `AllergyIntolerance` per allergy, one `MedicationStatement` per current medication, each
/// coded as text (as the record keeps them). Ids are `{patient}-{n}`, by position in the record.
pub fn record_resources(
    patient: i64,
    record: &ketcare_core::patient::NewPatient,
    updated: Timestamp,
) -> Vec<Value> {
    let version = updated.as_second().to_string();
    let subject = json!({"reference": format!("Patient/{patient}")});
    let mut out = Vec::new();
    for (n, text) in record.indications.iter().enumerate() {
        out.push(json!({
            "resourceType": "Condition",
            "id": format!("{patient}-{n}"),
            "meta": meta(&version, updated),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item", "display": "Problem List Item"}], "text": "indication for treatment"}],
            "code": {"text": text},
            "subject": subject,
        }));
    }
    for (n, text) in record.allergies.iter().enumerate() {
        out.push(json!({
            "resourceType": "AllergyIntolerance",
            "id": format!("{patient}-{n}"),
            "meta": meta(&version, updated),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "code": {"text": text},
            "patient": subject,
        }));
    }
    for (n, text) in record.medications.iter().enumerate() {
        out.push(json!({
            "resourceType": "MedicationStatement",
            "id": format!("{patient}-{n}"),
            "meta": meta(&version, updated),
            "status": "active",
            "medicationCodeableConcept": {"text": text},
            "subject": subject,
            "dateAsserted": instant(updated),
        }));
    }
    out
}

/// A treatment session as an ambulatory `Encounter`: its period from check-in to discharge (or
/// transfer or cancellation), the chair as its location.
pub fn encounter(
    session_id: i64,
    patient: i64,
    revision: i64,
    session: &ketcare_session::session::Session,
    updated: Timestamp,
) -> Value {
    use ketcare_session::session::Phase;
    let status = match session.phase {
        Phase::Scheduled => "planned",
        Phase::Discharged | Phase::Transferred => "finished",
        Phase::Cancelled => "cancelled",
        _ => "in-progress",
    };
    let started = session
        .transitions
        .iter()
        .find(|t| t.from == Phase::Scheduled && t.to != Phase::Cancelled)
        .map(|t| t.at);
    let ended = session
        .transitions
        .iter()
        .rev()
        .find(|t| {
            matches!(
                t.to,
                Phase::Discharged | Phase::Transferred | Phase::Cancelled
            )
        })
        .map(|t| t.at);
    let mut v = json!({
        "resourceType": "Encounter",
        "id": session_id.to_string(),
        "meta": meta(&revision.to_string(), updated),
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
        "type": [{"text": "ketamine or esketamine treatment session"}],
        "subject": {"reference": format!("Patient/{patient}")},
        "location": [{"location": {"display": session.chair}}],
    });
    match (started, ended) {
        (Some(s), Some(e)) => v["period"] = json!({"start": instant(s), "end": instant(e)}),
        (Some(s), None) => v["period"] = json!({"start": instant(s)}),
        (None, Some(e)) => v["period"] = json!({"end": instant(e)}),
        (None, None) => v["period"] = json!({"start": instant(session.scheduled_for)}),
    }
    v
}

/// The dissociation and sedation scores a session recorded (MOAA/S, CADSS) as `survey`
/// Observations coded as text (the reference gives them no LOINC code). Ids are
/// `s{session}-{n}`.
pub fn score_observations(
    session_id: i64,
    patient: i64,
    session: &ketcare_session::session::Session,
    updated: Timestamp,
) -> Vec<Value> {
    use ketcare_session::session::ScoreKind;
    session
        .scores
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let text = match s.kind {
                ScoreKind::Moaas => "MOAA/S (Modified Observer's Assessment of Alertness/Sedation)",
                ScoreKind::Cadss => "CADSS total (Clinician-Administered Dissociative States Scale)",
            };
            json!({
                "resourceType": "Observation",
                "id": format!("s{session_id}-{n}"),
                "meta": meta("1", updated),
                "status": "final",
                "category": [{"coding": [{"system": CATEGORY, "code": "survey", "display": "Survey"}], "text": "Survey"}],
                "code": {"text": text},
                "subject": {"reference": format!("Patient/{patient}")},
                "encounter": {"reference": format!("Encounter/{session_id}")},
                "effectiveDateTime": instant(s.at),
                "performer": [{"display": s.by}],
                "valueInteger": s.value,
            })
        })
        .collect()
}

/// A questionnaire's total as a `survey` Observation (US Core's screening assessment): coded with
/// the instrument's LOINC total code where its data file has one, otherwise by name. `taken_on`
/// is the date it was answered; the id is `q{response}`.
pub fn questionnaire_total(
    response_id: i64,
    patient: i64,
    instrument_name: &str,
    loinc_total: Option<&str>,
    total: i64,
    taken_on: &str,
    recorded_at: Timestamp,
) -> Value {
    let code = match loinc_total {
        Some(c) => {
            json!({"coding": [{"system": LOINC, "code": c, "display": format!("{instrument_name} total score")}], "text": format!("{instrument_name} total score")})
        }
        None => json!({"text": format!("{instrument_name} total score")}),
    };
    json!({
        "resourceType": "Observation",
        "id": format!("q{response_id}"),
        "meta": meta("1", recorded_at),
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "survey", "display": "Survey"}], "text": "Survey"}],
        "code": code,
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": taken_on,
        "valueInteger": total,
    })
}

/// A suicide-risk safety alert as a `Flag`: active until its follow-up closed it.
pub fn flag(
    alert_id: i64,
    patient: i64,
    detail: &str,
    raised_at: Timestamp,
    closed_at: Option<Timestamp>,
) -> Value {
    let mut period = json!({"start": instant(raised_at)});
    if let Some(c) = closed_at {
        period["end"] = json!(instant(c));
    }
    json!({
        "resourceType": "Flag",
        "id": alert_id.to_string(),
        "meta": meta("1", closed_at.unwrap_or(raised_at)),
        "status": if closed_at.is_some() { "inactive" } else { "active" },
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical", "display": "Clinical"}]}],
        "code": {"text": format!("Suicide-risk safety alert: {detail}")},
        "subject": {"reference": format!("Patient/{patient}")},
        "period": period,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketcare_session::vitals::Vitals;

    #[test]
    fn a_reading_becomes_one_observation_per_sign_with_the_bp_panel() {
        let at: Timestamp = "2026-12-06T10:15:00Z".parse().unwrap_or_default();
        let r = VitalReading {
            at,
            vitals: Vitals {
                systolic: Some(128.0),
                diastolic: Some(82.0),
                heart_rate: Some(72.0),
                spo2: Some(97.0),
                ..Vitals::default()
            },
            source: VitalSource::Monitor,
            by: "MONITOR".into(),
            control_id: None,
        };
        let of = ReadingOf {
            vital_id: 57,
            session_id: 3,
            patient_id: 12,
            stored_at: at,
        };
        let obs = vital_observations(of, &r);
        let ids: Vec<_> = obs.iter().map(|o| o["id"].as_str().unwrap_or("")).collect();
        assert_eq!(ids, ["57-bp", "57-hr", "57-spo2"]);
        assert_eq!(obs[0]["code"]["coding"][0]["code"], "85354-9");
        assert_eq!(
            obs[0]["component"][1]["code"]["coding"][0]["code"],
            "8462-4"
        );
        assert_eq!(obs[0]["component"][0]["valueQuantity"]["code"], "mm[Hg]");
        assert_eq!(obs[1]["valueQuantity"]["unit"], "/min");
        assert_eq!(obs[2]["code"]["coding"][1]["code"], "2708-6");
        assert_eq!(obs[1]["effectiveDateTime"], "2026-12-06T10:15:00Z");
        assert_eq!(obs[1]["device"]["display"], "monitor MONITOR");
        for o in &obs {
            let id = o["id"].as_str().unwrap_or("");
            assert_eq!(parse_observation_id(id).map(|(n, _)| n), Some(57));
        }
        assert_eq!(parse_observation_id("57-xx"), None);
        assert_eq!(parse_observation_id("x-hr"), None);
    }
}
