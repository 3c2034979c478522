//! A read by id (`{type}/{id}`) and the `_include` / `_revinclude` of a search.
//!
//! A read finds the patient the resource belongs to (from its id, or by the store's owner
//! lookup), then searches that patient's resources of the type through the same audited calls
//! as a search and picks the one asked for — so a read can never show what a search by that
//! user would not.

use super::{matches, read_patient};
use crate::error::{Error, Result};
use ketcare_core::{Actor, PatientId};
use ketcare_store::{OwnedRow, Store};
use serde_json::Value;

fn not_found(kind: &str, id: &str) -> Error {
    Error::NotFound(format!("{kind}/{id}"))
}

/// The patient whose resource `kind/id` is, if the id can be one of that type.
async fn owner(store: &dyn Store, actor: &Actor, kind: &str, id: &str) -> Result<PatientId> {
    let number = |s: &str| s.parse::<i64>().map_err(|_| not_found(kind, id));
    let row = |row: OwnedRow, n: i64| async move {
        store
            .owner_of(actor, row, n)
            .await?
            .ok_or_else(|| not_found(kind, id))
    };
    match kind {
        // Ids `{patient}-{n}`: the patient is in the id.
        "Condition" | "AllergyIntolerance" | "MedicationStatement" => {
            let (p, _) = id.split_once('-').ok_or_else(|| not_found(kind, id))?;
            Ok(PatientId::new(number(p)?))
        }
        "RelatedPerson" => row(OwnedRow::Guardian, number(id)?).await,
        "Flag" => row(OwnedRow::Alert, number(id)?).await,
        "Encounter" | "MedicationAdministration" => row(OwnedRow::Session, number(id)?).await,
        "MedicationRequest" => row(OwnedRow::Record, number(id)?).await,
        "Consent" => row(OwnedRow::Consent, number(id)?).await,
        "Appointment" => row(OwnedRow::Booking, number(id)?).await,
        "QuestionnaireResponse" => row(OwnedRow::Response, number(id)?).await,
        // `q{response}`, `s{session}-{n}` or `{vital}-{sign}`.
        "Observation" => {
            if let Some(r) = id.strip_prefix('q') {
                row(OwnedRow::Response, number(r)?).await
            } else if let Some(rest) = id.strip_prefix('s') {
                let (s, _) = rest.split_once('-').ok_or_else(|| not_found(kind, id))?;
                row(OwnedRow::Session, number(s)?).await
            } else {
                let (v, _) = ketcare_fhir::resources::parse_observation_id(id)
                    .ok_or_else(|| not_found(kind, id))?;
                row(OwnedRow::Vital, v).await
            }
        }
        _ => Err(not_found(kind, id)),
    }
}

/// `{kind}/{id}`: one resource, as a search by this user would show it.
pub async fn read(store: &dyn Store, actor: &Actor, kind: &str, id: &str) -> Result<Value> {
    let by_id = [("_id".to_owned(), id.to_owned())];
    let found = match kind {
        "Patient" => {
            let n = id.parse::<i64>().map_err(|_| not_found(kind, id))?;
            return read_patient(store, actor, PatientId::new(n)).await;
        }
        "Questionnaire" | "Practitioner" | "PractitionerRole" | "AuditEvent" | "Group" => {
            if id.parse::<i64>().is_err() && !matches!(kind, "Questionnaire" | "Group") {
                return Err(not_found(kind, id));
            }
            matches(store, actor, kind, &by_id).await?
        }
        _ => {
            let pid = owner(store, actor, kind, id).await?;
            let by = [("patient".to_owned(), pid.get().to_string())];
            matches(store, actor, kind, &by).await?
        }
    };
    found
        .into_iter()
        .find(|r| r["id"] == id)
        .ok_or_else(|| not_found(kind, id))
}

/// One `_include` a search asked for: the reference path it follows and the type it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    pub path: &'static str,
    pub target: &'static str,
}

/// The `_include` values of a search of `kind`: `{kind}:patient` (or `:subject`) to the patient,
/// `{kind}:encounter` / `:context` to the session, `MedicationAdministration:request` to the
/// order and `QuestionnaireResponse:questionnaire` to the questionnaire.
pub fn includes(kind: &str, params: &[(String, String)]) -> Result<Vec<Include>> {
    let mut out = Vec::new();
    for (_, v) in params.iter().filter(|(k, _)| k == "_include") {
        let (source, name) = v.split_once(':').unwrap_or((v.as_str(), ""));
        let name = name.split(':').next().unwrap_or(name);
        let include = match (source == kind, name) {
            (true, "patient" | "subject") if kind != "Patient" => Include {
                path: if patient_field(kind) == "patient" {
                    "patient"
                } else {
                    "subject"
                },
                target: "Patient",
            },
            (true, "encounter") if kind == "Observation" => Include {
                path: "encounter",
                target: "Encounter",
            },
            (true, "context") if kind == "MedicationAdministration" => Include {
                path: "context",
                target: "Encounter",
            },
            (true, "request") if kind == "MedicationAdministration" => Include {
                path: "request",
                target: "MedicationRequest",
            },
            (true, "questionnaire") if kind == "QuestionnaireResponse" => Include {
                path: "questionnaire",
                target: "Questionnaire",
            },
            _ => {
                return Err(Error::invalid(
                    "_include",
                    format!(
                        "{v} is not offered on {kind} (use {kind}:patient and the references the capability statement lists)"
                    ),
                ));
            }
        };
        if !out.contains(&include) {
            out.push(include);
        }
    }
    Ok(out)
}

/// Where a resource type keeps its patient reference.
pub fn patient_field(kind: &str) -> &'static str {
    match kind {
        "AllergyIntolerance" | "Consent" | "RelatedPerson" => "patient",
        "Appointment" => "participant",
        _ => "subject",
    }
}

/// The `_revinclude` values of a `Patient` search: `{type}:patient` (or `:subject`) for each
/// type searched by patient.
pub fn revincludes(kind: &str, params: &[(String, String)]) -> Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for (_, v) in params.iter().filter(|(k, _)| k == "_revinclude") {
        let (source, name) = v.split_once(':').unwrap_or((v.as_str(), ""));
        let target = ketcare_fhir::capability::RESOURCES
            .iter()
            .find(|r| r.kind == source && r.params.iter().any(|p| p.name == "patient"));
        match (kind, target, name) {
            ("Patient", Some(t), "patient" | "subject") => {
                if !out.contains(&t.kind) {
                    out.push(t.kind);
                }
            }
            _ => {
                return Err(Error::invalid(
                    "_revinclude",
                    format!("{v} is not offered on {kind} (on Patient, use {{type}}:patient)"),
                ));
            }
        }
    }
    Ok(out)
}

/// The references of `resource` an include follows (`Type/id` pairs of the include's target).
fn references(resource: &Value, include: &Include) -> Vec<String> {
    let field = &resource[include.path];
    let mut refs = Vec::new();
    let mut push = |v: &Value| {
        if let Some(r) = v["reference"].as_str() {
            refs.push(r.to_owned());
        }
    };
    match field {
        Value::Array(items) => items.iter().for_each(|i| {
            push(i);
            push(&i["actor"]);
        }),
        Value::String(canonical) if include.target == "Questionnaire" => refs.push(format!(
            "Questionnaire/{}",
            ketcare_fhir::questionnaire::instrument_of(canonical)
        )),
        other => push(other),
    }
    refs.retain(|r| r.starts_with(&format!("{}/", include.target)));
    refs
}

/// The resources a page's matches include or are included by, each once, none that is
/// already a match.
pub async fn included(
    store: &dyn Store,
    actor: &Actor,
    kind: &str,
    page: &[Value],
    includes: &[Include],
    revincludes: &[&str],
) -> Result<Vec<Value>> {
    let mut seen: std::collections::HashSet<String> = page
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    let mut out = Vec::new();
    for include in includes {
        for r in page {
            for reference in references(r, include) {
                if !seen.insert(reference.clone()) {
                    continue;
                }
                let (t, id) = reference.split_once('/').unwrap_or(("", ""));
                out.push(read(store, actor, t, id).await?);
            }
        }
    }
    if kind == "Patient" {
        for r in page {
            let Some(id) = r["id"].as_str() else { continue };
            for t in revincludes {
                let by = [("patient".to_owned(), id.to_owned())];
                for found in matches(store, actor, t, &by).await? {
                    let key = format!("{t}/{}", found["id"].as_str().unwrap_or(""));
                    if seen.insert(key) {
                        out.push(found);
                    }
                }
            }
        }
    }
    Ok(out)
}
