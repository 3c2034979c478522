//! Questionnaires and their answers as FHIR.
//!
//! - `Questionnaire` (id = the instrument's id) from the instrument data: each item with its
//!   answer range; the item's wording only where the instrument's licence allows it
//!   (`wording = free`), otherwise the neutral label the data file gives (the clinic's licensed
//!   text stays in ketcare). The canonical URL is `urn:ketcare:questionnaire:{id}`.
//! - `QuestionnaireResponse` (id = the response's id): the answers as integers, the
//!   questionnaire's canonical, the date taken and who entered it.

use crate::resources::{instant, meta};
use jiff::Timestamp;
use ketcare_measures::catalogue::{Instrument, Wording};
use serde_json::{Value, json};

const CANONICAL_PREFIX: &str = "urn:ketcare:questionnaire:";

/// An instrument's `Questionnaire` id: its id with `_` as `-` (a FHIR id allows letters,
/// digits, `-` and `.` only).
pub fn fhir_id(instrument: &str) -> String {
    instrument.replace('_', "-")
}

/// Whether a questionnaire named in a request (by [`instrument_of`]) is this instrument.
pub fn names(requested: &str, instrument: &str) -> bool {
    requested == instrument || requested == fhir_id(instrument)
}

/// The canonical URL of an instrument's `Questionnaire`.
pub fn canonical(instrument: &str) -> String {
    format!("{CANONICAL_PREFIX}{}", fhir_id(instrument))
}

/// The instrument a `questionnaire` search value names: the canonical (with or without a
/// `|version`), `Questionnaire/{id}` or the bare id.
pub fn instrument_of(value: &str) -> &str {
    let v = value.split('|').next().unwrap_or(value);
    v.strip_prefix(CANONICAL_PREFIX)
        .or_else(|| v.rsplit_once("Questionnaire/").map(|(_, id)| id))
        .unwrap_or(v)
}

/// An instrument as a `Questionnaire`.
pub fn questionnaire(i: &Instrument) -> Value {
    let free = i.wording == Wording::Free;
    let items: Vec<Value> = i
        .items
        .iter()
        .map(|item| {
            let text = match (&item.text, free) {
                (Some(t), true) => t.clone(),
                _ => item.label.clone(),
            };
            let options = if item.options.is_empty() {
                &i.options
            } else {
                &item.options
            };
            let mut v = json!({
                "linkId": item.n.to_string(),
                "text": text,
                "type": "integer",
                "required": item.required,
            });
            if !options.is_empty() {
                v["type"] = json!("choice");
                v["answerOption"] = options
                    .iter()
                    .map(|o| {
                        json!({"valueCoding": {
                            "system": format!("{}/answers", canonical(&i.id)),
                            "code": o.value.to_string(),
                            "display": if free { o.label.clone() } else { o.value.to_string() },
                        }})
                    })
                    .collect();
            }
            v
        })
        .collect();
    let mut v = json!({
        "resourceType": "Questionnaire",
        "id": fhir_id(&i.id),
        "meta": {"versionId": "1"},
        "url": canonical(&i.id),
        "name": i.id.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        "title": i.name,
        "status": "active",
        "subjectType": ["Patient"],
        "description": i.measures,
        "copyright": i.licence.text,
        "item": items,
    });
    if let Some(panel) = &i.loinc_panel {
        v["code"] = json!([{"system": "http://loinc.org", "code": panel.code}]);
    }
    v
}

/// What a stored response is, as the mapping needs it.
#[derive(Debug, Clone, Copy)]
pub struct ResponseOf<'a> {
    pub response_id: i64,
    pub patient: i64,
    pub instrument: &'a str,
    /// The stored answers: a JSON array of integers (`null` = unanswered).
    pub answers: &'a str,
    pub taken_on: &'a str,
    pub recorded_by: &'a str,
    pub recorded_at: Timestamp,
}

/// A stored response as a `QuestionnaireResponse` (`completed`; unanswered items are left out).
pub fn questionnaire_response(r: ResponseOf<'_>) -> Value {
    let answers: Vec<Option<i64>> = serde_json::from_str(r.answers).unwrap_or_default();
    let items: Vec<Value> = answers
        .iter()
        .enumerate()
        .filter_map(|(n, a)| {
            a.map(|a| json!({"linkId": (n + 1).to_string(), "answer": [{"valueInteger": a}]}))
        })
        .collect();
    json!({
        "resourceType": "QuestionnaireResponse",
        "id": r.response_id.to_string(),
        "meta": meta("1", r.recorded_at),
        "questionnaire": canonical(r.instrument),
        "status": "completed",
        "subject": {"reference": format!("Patient/{}", r.patient)},
        "authored": if r.taken_on.len() == 10 { r.taken_on.to_owned() } else { instant(r.recorded_at) },
        "author": {"display": r.recorded_by},
        "item": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_questionnaire_search_value_names_its_instrument_in_every_form() {
        assert_eq!(instrument_of("urn:ketcare:questionnaire:phq9"), "phq9");
        assert_eq!(instrument_of("urn:ketcare:questionnaire:phq9|1"), "phq9");
        assert_eq!(instrument_of("Questionnaire/gad7"), "gad7");
        assert_eq!(instrument_of("http://h/fhir/r4/Questionnaire/gad7"), "gad7");
        assert_eq!(instrument_of("cssrs"), "cssrs");
        assert_eq!(
            canonical("qids_sr16"),
            "urn:ketcare:questionnaire:qids-sr16"
        );
        assert!(names(instrument_of(&canonical("qids_sr16")), "qids_sr16"));
        assert!(names("qids_sr16", "qids_sr16") && !names("qids", "qids_sr16"));
    }
}
