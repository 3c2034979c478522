//! What a client brings in, read from FHIR into ketcare's own inputs — which then go through the
//! same validation as the pages and the JSON API. Every refusal names the element by its
//! FHIRPath (`Patient.birthDate`, `Observation.valueQuantity.code`).

use crate::search::ParamError;
use ketcare_core::patient::PatientInput;
use ketcare_session::vitals::Vitals;
use serde_json::Value;

fn bad(path: &str, message: impl Into<String>) -> ParamError {
    ParamError::new(path, message)
}

fn resource_type(v: &Value, want: &str) -> Result<(), ParamError> {
    match v["resourceType"].as_str() {
        Some(t) if t == want => Ok(()),
        Some(t) => Err(bad(
            "resourceType",
            format!("this is the {want} endpoint; the body is a {t}"),
        )),
        None => Err(bad("resourceType", format!("expected \"{want}\""))),
    }
}

/// The FHIRPath of a field of ketcare's patient input, for errors.
pub fn patient_path(field: &str) -> &str {
    match field {
        "mrn" => "Patient.identifier",
        "given_name" => "Patient.name.given",
        "family_name" => "Patient.name.family",
        "date_of_birth" => "Patient.birthDate",
        "sex" => "Patient.gender",
        "phone" | "email" => "Patient.telecom",
        other => other,
    }
}

/// A `Patient` as ketcare's patient input: the MRN (the identifier with ketcare's MRN system, or
/// the only identifier), the official (or first) name, birth date, gender and telecom. The
/// clinical record is not part of a `Patient`: it is left as the record holds it.
pub fn patient_input(v: &Value) -> Result<PatientInput, ParamError> {
    resource_type(v, "Patient")?;
    let identifiers = v["identifier"].as_array().cloned().unwrap_or_default();
    let mrn = identifiers
        .iter()
        .find(|i| i["system"] == crate::mrn_system())
        .or(match identifiers.as_slice() {
            [one] => Some(one),
            _ => None,
        })
        .and_then(|i| i["value"].as_str())
        .ok_or_else(|| {
            bad(
                "Patient.identifier",
                format!(
                    "give the medical record number as an identifier with system {}",
                    crate::mrn_system()
                ),
            )
        })?;
    let names = v["name"].as_array().cloned().unwrap_or_default();
    let name = names
        .iter()
        .find(|n| n["use"] == "official")
        .or(names.first())
        .ok_or_else(|| bad("Patient.name", "give the patient's name"))?;
    let given = name["given"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let telecom = |system: &str| {
        v["telecom"].as_array().and_then(|t| {
            t.iter()
                .find(|c| c["system"] == system)
                .and_then(|c| c["value"].as_str())
                .map(str::to_owned)
        })
    };
    Ok(PatientInput {
        mrn: mrn.to_owned(),
        given_name: given,
        family_name: name["family"].as_str().unwrap_or("").to_owned(),
        date_of_birth: v["birthDate"].as_str().unwrap_or("").to_owned(),
        sex: v["gender"].as_str().unwrap_or("").to_owned(),
        phone: telecom("phone"),
        email: telecom("email"),
        ..PatientInput::default()
    })
}

/// The id of a reference `Type/{id}` (or a bare id), refused naming `path` otherwise.
pub fn reference_id(v: &Value, kind: &str, path: &str) -> Result<i64, ParamError> {
    let text = v["reference"]
        .as_str()
        .ok_or_else(|| bad(path, format!("give a reference {kind}/{{id}}")))?;
    text.rsplit_once(&format!("{kind}/"))
        .map(|(_, id)| id)
        .unwrap_or(text)
        .parse()
        .map_err(|_| bad(path, format!("give a reference {kind}/{{id}}")))
}

/// A vital-sign `Observation` brought in: the session (`encounter`), the patient (`subject`),
/// when (`effectiveDateTime`, else now) and the reading.
#[derive(Debug, Clone, PartialEq)]
pub struct VitalIn {
    pub session: i64,
    pub patient: i64,
    pub at: Option<jiff::Timestamp>,
    pub vitals: Vitals,
}

/// The UCUM unit each sign must carry.
fn expected_unit(code: &str) -> Option<&'static str> {
    match code {
        "8480-6" | "8462-4" | "19935-6" => Some("mm[Hg]"),
        "8867-4" | "9279-1" => Some("/min"),
        "59408-5" | "2708-6" => Some("%"),
        "8310-5" => Some("Cel"),
        _ => None,
    }
}

fn loinc_code(c: &Value) -> Option<&str> {
    c["coding"].as_array().and_then(|a| {
        a.iter()
            .find(|x| x["system"] == "http://loinc.org")
            .and_then(|x| x["code"].as_str())
    })
}

fn value_of(q: &Value, code: &str, path: &str) -> Result<f64, ParamError> {
    let want = expected_unit(code).unwrap_or("");
    let unit = q["code"].as_str().or(q["unit"].as_str()).unwrap_or("");
    if unit != want {
        return Err(bad(
            &format!("{path}.code"),
            format!("LOINC {code} is recorded in UCUM {want}, not {unit:?}"),
        ));
    }
    q["value"]
        .as_f64()
        .ok_or_else(|| bad(&format!("{path}.value"), "expected a number"))
}

fn put(slot: &mut Option<f64>, value: f64, path: &str) -> Result<(), ParamError> {
    if slot.is_some() {
        return Err(bad(path, "this sign is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn sign<'a>(v: &'a mut Vitals, code: &str) -> Option<&'a mut Option<f64>> {
    Some(match code {
        "8480-6" => &mut v.systolic,
        "8462-4" => &mut v.diastolic,
        "8867-4" => &mut v.heart_rate,
        "59408-5" | "2708-6" => &mut v.spo2,
        "9279-1" => &mut v.resp_rate,
        "8310-5" => &mut v.temperature_c,
        "19935-6" => &mut v.etco2,
        _ => return None,
    })
}

/// The FHIRPath of a vital sign ketcare refused by its field name (`systolic`, `spo2`, …) in the
/// `Observation` that carried it: the panel component holding its code, or the value.
pub fn vital_path(field: &str, v: &Value) -> String {
    let codes: &[&str] = match field {
        "systolic" => &["8480-6"],
        "diastolic" => &["8462-4"],
        "heart_rate" => &["8867-4"],
        "spo2" => &["59408-5", "2708-6"],
        "resp_rate" => &["9279-1"],
        "temperature_c" => &["8310-5"],
        "etco2" => &["19935-6"],
        _ => return field.to_owned(),
    };
    let component = v["component"].as_array().and_then(|cs| {
        cs.iter()
            .position(|c| loinc_code(&c["code"]).is_some_and(|x| codes.contains(&x)))
    });
    match component {
        Some(n) => format!("Observation.component[{n}].valueQuantity.value"),
        None => "Observation.valueQuantity.value".to_owned(),
    }
}

/// Reads a vital-sign `Observation` (one sign with `valueQuantity`, or the blood-pressure panel
/// 85354-9 with systolic and diastolic components), its units checked against UCUM.
pub fn vital_in(v: &Value) -> Result<VitalIn, ParamError> {
    resource_type(v, "Observation")?;
    let session = reference_id(&v["encounter"], "Encounter", "Observation.encounter")?;
    let patient = reference_id(&v["subject"], "Patient", "Observation.subject")?;
    let at = match v["effectiveDateTime"].as_str() {
        None => None,
        Some(t) => Some(t.parse::<jiff::Timestamp>().map_err(|_| {
            bad(
                "Observation.effectiveDateTime",
                "give an instant with a time zone",
            )
        })?),
    };
    let code = loinc_code(&v["code"])
        .ok_or_else(|| bad("Observation.code", "give the vital sign's LOINC code"))?;
    let mut vitals = Vitals::default();
    if code == "85354-9" {
        let components = v["component"].as_array().cloned().unwrap_or_default();
        if components.is_empty() {
            return Err(bad(
                "Observation.component",
                "a blood pressure panel carries systolic (8480-6) and diastolic (8462-4) components",
            ));
        }
        for (n, c) in components.iter().enumerate() {
            let path = format!("Observation.component[{n}]");
            let cc = loinc_code(&c["code"])
                .filter(|x| matches!(*x, "8480-6" | "8462-4"))
                .ok_or_else(|| {
                    bad(
                        &format!("{path}.code"),
                        "use 8480-6 (systolic) or 8462-4 (diastolic)",
                    )
                })?;
            let value = value_of(&c["valueQuantity"], cc, &format!("{path}.valueQuantity"))?;
            if let Some(slot) = sign(&mut vitals, cc) {
                put(slot, value, &path)?;
            }
        }
    } else {
        let slot = sign(&mut vitals, code).ok_or_else(|| {
            bad(
                "Observation.code",
                format!("{code} is not a vital sign ketcare records (use 85354-9, 8867-4, 59408-5, 2708-6, 9279-1, 8310-5 or 19935-6)"),
            )
        })?;
        let value = value_of(&v["valueQuantity"], code, "Observation.valueQuantity")?;
        put(slot, value, "Observation.valueQuantity")?;
    }
    Ok(VitalIn {
        session,
        patient,
        at,
        vitals,
    })
}

/// A `QuestionnaireResponse` brought in: the instrument, the patient, the date answered and the
/// answers by item (`linkId` = the item number; a missing item is unanswered).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseIn {
    pub instrument: String,
    pub patient: i64,
    pub taken_on: Option<String>,
    pub answers: Vec<(usize, i32)>,
    /// The client's identifier of the response, which makes a repeat store nothing new.
    pub identifier: Option<String>,
}

/// Reads a `QuestionnaireResponse`: `questionnaire` (canonical), `subject`, `authored`, and each
/// item's integer (or coded) answer.
pub fn response_in(v: &Value) -> Result<ResponseIn, ParamError> {
    resource_type(v, "QuestionnaireResponse")?;
    let q = v["questionnaire"].as_str().ok_or_else(|| {
        bad(
            "QuestionnaireResponse.questionnaire",
            "give the questionnaire's canonical (urn:ketcare:questionnaire:{id})",
        )
    })?;
    let patient = reference_id(&v["subject"], "Patient", "QuestionnaireResponse.subject")?;
    if v["status"].as_str().is_some_and(|s| s != "completed") {
        return Err(bad(
            "QuestionnaireResponse.status",
            "only a completed response is stored",
        ));
    }
    let mut answers = Vec::new();
    for (n, item) in v["item"].as_array().into_iter().flatten().enumerate() {
        let path = format!("QuestionnaireResponse.item[{n}]");
        let number: usize = item["linkId"]
            .as_str()
            .and_then(|l| l.parse().ok())
            .filter(|x| *x >= 1)
            .ok_or_else(|| bad(&format!("{path}.linkId"), "use the item's number"))?;
        let answer = &item["answer"][0];
        let value = answer["valueInteger"]
            .as_i64()
            .or_else(|| {
                answer["valueCoding"]["code"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
            })
            .and_then(|x| i32::try_from(x).ok());
        match value {
            Some(x) => answers.push((number, x)),
            None if answer.is_null() => {}
            None => {
                return Err(bad(
                    &format!("{path}.answer"),
                    "give valueInteger (or valueCoding with the option's code)",
                ));
            }
        }
    }
    Ok(ResponseIn {
        instrument: crate::questionnaire::instrument_of(q).to_owned(),
        patient,
        taken_on: v["authored"].as_str().map(|a| a.chars().take(10).collect()),
        answers,
        identifier: v["identifier"]["value"].as_str().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bp_panel_and_a_single_sign_become_a_reading_with_their_units_checked() {
        let bp = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "subject": {"reference": "Patient/4"}, "encounter": {"reference": "Encounter/9"},
            "component": [
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 131, "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 84, "code": "mm[Hg]"}}]});
        let r = vital_in(&bp).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((r.session, r.patient), (9, 4));
        assert_eq!(
            (r.vitals.systolic, r.vitals.diastolic),
            (Some(131.0), Some(84.0))
        );
        let mut hr = bp.clone();
        hr["code"]["coding"][0]["code"] = json!("8867-4");
        hr["valueQuantity"] = json!({"value": 72, "code": "/min"});
        assert_eq!(vital_in(&hr).map(|r| r.vitals.heart_rate), Ok(Some(72.0)));
        hr["valueQuantity"]["code"] = json!("mm[Hg]");
        assert_eq!(
            vital_in(&hr).map_err(|e| e.param),
            Err("Observation.valueQuantity.code".into())
        );
        let mut temp = hr.clone();
        temp["code"]["coding"][0]["code"] = json!("8310-5");
        temp["valueQuantity"] = json!({"value": 98.6, "code": "[degF]"});
        assert!(
            vital_in(&temp).is_err(),
            "Fahrenheit is refused, not converted"
        );
        assert_eq!(
            vital_path("diastolic", &bp),
            "Observation.component[1].valueQuantity.value"
        );
        assert_eq!(
            vital_path("heart_rate", &hr),
            "Observation.valueQuantity.value"
        );
        let mut no_enc = hr;
        no_enc["encounter"] = Value::Null;
        assert_eq!(
            vital_in(&no_enc).map_err(|e| e.param),
            Err("Observation.encounter".into())
        );
    }

    #[test]
    fn a_patient_and_a_response_read_from_fhir() {
        let p = json!({"resourceType": "Patient",
            "identifier": [{"system": "urn:ketcare:mrn", "value": "KC-9"}],
            "name": [{"family": "Quill", "given": ["Robin", "A"]}],
            "birthDate": "1980-05-01", "gender": "female",
            "telecom": [{"system": "email", "value": "r@example.org"}]});
        let i = patient_input(&p).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((i.mrn.as_str(), i.given_name.as_str()), ("KC-9", "Robin A"));
        assert_eq!(i.email.as_deref(), Some("r@example.org"));
        assert_eq!(
            patient_input(&json!({"resourceType": "Patient"}))
                .map(|_| ())
                .map_err(|e| e.param),
            Err("Patient.identifier".into())
        );
        let r = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": "urn:ketcare:questionnaire:phq9", "subject": {"reference": "Patient/4"},
            "authored": "2026-12-01T10:00:00Z",
            "item": [{"linkId": "1", "answer": [{"valueInteger": 2}]},
                     {"linkId": "2", "answer": [{"valueCoding": {"code": "1"}}]}]});
        let got = response_in(&r).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(got.instrument, "phq9");
        assert_eq!(got.answers, vec![(1, 2), (2, 1)]);
        assert_eq!(got.taken_on.as_deref(), Some("2026-12-01"));
    }
}
