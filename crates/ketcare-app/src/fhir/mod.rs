//! The FHIR R4 use cases: each loads the records through the same role-checked, audited store
//! calls as the pages and the JSON API, and translates them with `ketcare-fhir`. A search's
//! parameters are checked first, each refusal naming its parameter.

use crate::error::{Error, Result};
use jiff::Timestamp;
use ketcare_core::patient::{PatientDemographics, VisiblePatient};
use ketcare_core::{Actor, PatientId};
use ketcare_fhir::resources::{self, ReadingOf};
use ketcare_fhir::search::{DateParam, Paging, ParamError, token};
use ketcare_store::Store;
use serde_json::Value;

mod care;
mod read;
mod write;

pub use care::group_members;
pub use read::read;
pub use write::{create_patient, create_response, update_patient, vital_reading};

/// The most patients one search reads (the paging then shows them page by page).
pub const MAX_MATCHES: i64 = 10_000;

impl From<ParamError> for Error {
    fn from(e: ParamError) -> Self {
        Error::invalid(&e.param, e.message)
    }
}

pub(crate) fn time_of(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn demographics(v: VisiblePatient) -> PatientDemographics {
    match v {
        VisiblePatient::Full(p) => p.into(),
        VisiblePatient::Demographics(d) => d,
    }
}

/// A search's parameters as (name, value) pairs, refused naming any not in `allowed`.
pub fn check_params(params: &[(String, String)], allowed: &[&str]) -> Result<()> {
    match params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(Error::invalid(
            k,
            format!(
                "not a search parameter of this resource (use {})",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn patient_param(params: &[(String, String)]) -> Result<PatientId> {
    let text = param(params, "patient").ok_or_else(|| Error::invalid("patient", "required"))?;
    text.trim_start_matches("Patient/")
        .parse::<i64>()
        .map(PatientId::new)
        .map_err(|_| Error::invalid("patient", "use a patient id or Patient/{id}"))
}

/// `Patient/{id}`: the demographics (what minimum necessary lets a patient reader see).
pub async fn read_patient(store: &dyn Store, actor: &Actor, id: PatientId) -> Result<Value> {
    let d = demographics(store.patient_view(actor, id).await?);
    let updated = time_of(&d.updated_at);
    Ok(resources::patient(&d, updated))
}

/// `Patient?…`: by `_id`, `identifier` (the MRN), `name` and `birthdate` (all that are given
/// must match), in name order.
pub async fn search_patients(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["_id", "identifier", "name", "birthdate"])?;
    let mrn = param(params, "identifier")
        .map(|t| token("identifier", t, ketcare_fhir::mrn_system()))
        .transpose()?;
    let birthdate = param(params, "birthdate")
        .map(|t| DateParam::parse("birthdate", t))
        .transpose()?;
    let id = param(params, "_id")
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| Error::invalid("_id", "use a patient id"))
        })
        .transpose()?;
    let name = param(params, "name").unwrap_or("");
    let query = mrn.unwrap_or(name);
    let found = match id {
        // By id: that one record (or none), whatever the size of the clinic.
        Some(i) => match store.patient_view(actor, PatientId::new(i)).await {
            Ok(v) => vec![demographics(v).into()],
            Err(ketcare_store::StoreError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        },
        None => store.search_patients(actor, query, MAX_MATCHES).await?,
    };
    // A search is never cut short silently: past the cap it is refused, asking for more terms.
    if found.len() as i64 >= MAX_MATCHES {
        return Err(Error::invalid(
            if name.is_empty() {
                "name"
            } else {
                "identifier"
            },
            format!(
                "{MAX_MATCHES} or more patients match: narrow the search (name, identifier or birthdate)"
            ),
        ));
    }
    let folded_name = ketcare_core::patient::search_fold(name.trim());
    let mut out = Vec::new();
    for s in found {
        if mrn.is_some_and(|m| s.mrn != m)
            || id.is_some_and(|i| s.id.get() != i)
            || birthdate.is_some_and(|b| !b.matches_date(s.date_of_birth))
            || !s.name_matches(&folded_name)
        {
            continue;
        }
        out.push(read_patient(store, actor, s.id).await?);
    }
    Ok(out)
}

/// `RelatedPerson?patient=…`: the patient's guardians.
pub async fn search_related_persons(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["patient"])?;
    let pid = patient_param(params)?;
    let d = demographics(store.patient_view(actor, pid).await?);
    let updated = time_of(&d.updated_at);
    Ok(d.guardians
        .iter()
        .map(|g| resources::related_person(g, pid.get(), updated))
        .collect())
}

/// The parameters every search takes, handled here for every type: paging, `_lastUpdated`,
/// `_include` and `_revinclude`.
const COMMON: [&str; 5] = [
    "_count",
    "_offset",
    "_lastUpdated",
    "_include",
    "_revinclude",
];

/// Every match of a search of `kind` (any resource type the server offers), in the type's
/// order, filtered by `_lastUpdated`: the one entry the FHIR edge and the export call.
pub async fn matches(
    store: &dyn Store,
    actor: &Actor,
    kind: &str,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    let own: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !COMMON.contains(&k.as_str()))
        .cloned()
        .collect();
    let updated: Vec<DateParam> = params
        .iter()
        .filter(|(k, _)| k == "_lastUpdated")
        .map(|(_, v)| DateParam::parse("_lastUpdated", v))
        .collect::<std::result::Result<_, _>>()?;
    let params = own.as_slice();
    let found = match kind {
        "Patient" => search_patients(store, actor, params).await?,
        "RelatedPerson" => search_related_persons(store, actor, params).await?,
        "Observation" => search_observations(store, actor, params).await?,
        "MedicationRequest" => care::medication_requests(store, actor, params).await?,
        "MedicationAdministration" => {
            care::medication_administrations(store, actor, params).await?
        }
        "QuestionnaireResponse" => care::questionnaire_responses(store, actor, params).await?,
        "Questionnaire" => care::questionnaires(params)?,
        "Consent" => care::consents(store, actor, params, Timestamp::now()).await?,
        "Appointment" => care::appointments(store, actor, params).await?,
        "Practitioner" | "PractitionerRole" => care::staff(store, actor, kind, params).await?,
        "AuditEvent" => care::audit_events(store, actor, params).await?,
        "Group" => care::groups(store, actor, params).await?,
        other => search_by_patient(store, actor, other, params).await?,
    };
    if updated.is_empty() {
        return Ok(found);
    }
    Ok(found
        .into_iter()
        .filter(|r| {
            r["meta"]["lastUpdated"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_some_and(|t| updated.iter().all(|d| d.matches(t)))
        })
        .collect())
}

/// One page of a search: the matches on it, what they include, and how many match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub total: usize,
    pub paging: Paging,
    pub matches: Vec<Value>,
    pub included: Vec<Value>,
}

/// A search as a client asks it: the matches, the page `_count`/`_offset` asks for, and the
/// resources its `_include`/`_revinclude` add to that page. Every parameter is checked before
/// anything is read.
pub async fn search(
    store: &dyn Store,
    actor: &Actor,
    kind: &str,
    params: &[(String, String)],
) -> Result<Page> {
    let paging = Paging::parse(param(params, "_count"), param(params, "_offset"))?;
    let includes = read::includes(kind, params)?;
    let revincludes = read::revincludes(kind, params)?;
    let all = matches(store, actor, kind, params).await?;
    let total = all.len();
    let page: Vec<Value> = all
        .into_iter()
        .skip(paging.offset)
        .take(paging.count)
        .collect();
    let included = read::included(store, actor, kind, &page, &includes, &revincludes).await?;
    Ok(Page {
        total,
        paging,
        matches: page,
        included,
    })
}

/// `{kind}?patient=…` for the resources searched by patient alone: `Condition` (indications),
/// `AllergyIntolerance`, `MedicationStatement` (from the clinical record), `Encounter` (the
/// treatment sessions) and `Flag` (suicide-risk safety alerts, open and closed).
pub async fn search_by_patient(
    store: &dyn Store,
    actor: &Actor,
    kind: &str,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["patient"])?;
    let pid = patient_param(params)?;
    Ok(match kind {
        "Condition" | "AllergyIntolerance" | "MedicationStatement" => {
            let p = store.get_patient(actor, pid).await?;
            resources::record_resources(pid.get(), &p.record, time_of(&p.updated_at))
                .into_iter()
                .filter(|r| r["resourceType"] == kind)
                .collect()
        }
        "Encounter" => store
            .patient_sessions(actor, pid)
            .await?
            .iter()
            .map(|s| {
                resources::encounter(
                    s.id.get(),
                    pid.get(),
                    s.revision,
                    &s.session,
                    time_of(&s.updated_at),
                )
            })
            .collect(),
        "Flag" => store
            .patient_alerts(actor, pid)
            .await?
            .iter()
            .map(|a| {
                resources::flag(
                    a.id.get(),
                    pid.get(),
                    &a.detail,
                    time_of(&a.raised_at),
                    a.closed_at.as_deref().map(time_of),
                )
            })
            .collect(),
        other => return Err(Error::NotFound(format!("resource type {other}"))),
    })
}

/// `Observation?patient=…`: the patient's vital signs from every session (monitor, page and
/// API readings), and as `survey` the questionnaire totals (LOINC-coded where the instrument's
/// data has a code) and the sessions' MOAA/S and CADSS scores (which have no code), filtered by
/// `category`, `code` and `date`, newest first unless `_sort=date`.
pub async fn search_observations(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["patient", "category", "code", "date", "_sort"])?;
    let pid = patient_param(params)?;
    let category = param(params, "category")
        .map(|c| {
            token(
                "category",
                c,
                "http://terminology.hl7.org/CodeSystem/observation-category",
            )
        })
        .transpose()?;
    let vitals = category.is_none_or(|c| c == "vital-signs");
    let scores = category.is_none_or(|c| c == "survey");
    let code = param(params, "code")
        .map(|t| token("code", t, "http://loinc.org"))
        .transpose()?;
    let dates: Vec<DateParam> = params
        .iter()
        .filter(|(k, _)| k == "date")
        .map(|(_, v)| DateParam::parse("date", v))
        .collect::<std::result::Result<_, _>>()?;
    let ascending = match param(params, "_sort") {
        None | Some("-date") => false,
        Some("date") => true,
        Some(_) => return Err(Error::invalid("_sort", "use date or -date")),
    };
    let mut found: Vec<(Timestamp, Value)> = Vec::new();
    // Questionnaire totals (survey), coded by LOINC where the instrument's data has the code.
    if scores {
        let catalogue = crate::measures::catalogue().ok_or(Error::Internal)?;
        for r in store.patient_responses(actor, pid).await? {
            let Some(total) = r.total else { continue };
            let instrument = catalogue.instrument(&r.instrument);
            let loinc = instrument
                .and_then(|i| i.loinc_total.as_ref())
                .map(|c| c.code.as_str());
            if code.is_some_and(|c| loinc != Some(c)) {
                continue;
            }
            let at = r
                .taken_on
                .parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
                .unwrap_or_else(|| time_of(&r.recorded_at));
            if !dates.iter().all(|d| d.matches(at)) {
                continue;
            }
            found.push((
                at,
                resources::questionnaire_total(
                    r.id.get(),
                    pid.get(),
                    instrument.map(|i| i.name.as_str()).unwrap_or(&r.instrument),
                    loinc,
                    total,
                    &r.taken_on,
                    time_of(&r.recorded_at),
                ),
            ));
        }
    }
    for s in store.patient_sessions(actor, pid).await? {
        if scores && code.is_none() {
            for o in resources::score_observations(
                s.id.get(),
                pid.get(),
                &s.session,
                time_of(&s.updated_at),
            ) {
                let at = o["effectiveDateTime"]
                    .as_str()
                    .map(time_of)
                    .unwrap_or(Timestamp::UNIX_EPOCH);
                if dates.iter().all(|d| d.matches(at)) {
                    found.push((at, o));
                }
            }
        }
        if !vitals {
            continue;
        }
        for v in store.session_vitals(actor, s.id).await? {
            let at = v.reading.at;
            if !dates.iter().all(|d| d.matches(at)) {
                continue;
            }
            let of = ReadingOf {
                vital_id: v.id,
                session_id: s.id.get(),
                patient_id: pid.get(),
                stored_at: time_of(&v.received_at),
            };
            for o in resources::vital_observations(of, &v.reading) {
                let suffix = o["id"]
                    .as_str()
                    .and_then(resources::parse_observation_id)
                    .map(|(_, s)| s)
                    .unwrap_or("");
                if code.is_some_and(|c| !resources::observation_codes(suffix).contains(&c)) {
                    continue;
                }
                found.push((at, o));
            }
        }
    }
    // Stable: readings of the same instant keep their order.
    found.sort_by(|a, b| {
        if ascending {
            a.0.cmp(&b.0)
        } else {
            b.0.cmp(&a.0)
        }
    });
    Ok(found.into_iter().map(|(_, o)| o).collect())
}

/// The resource types a bulk export can hold, in the order it writes them.
pub const EXPORT_TYPES: [&str; 13] = [
    "Patient",
    "RelatedPerson",
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "Consent",
    "Appointment",
    "Flag",
    "QuestionnaireResponse",
    "Observation",
];

/// What a Bulk Data `$export` asks: the types (`_type`, all of [`EXPORT_TYPES`] by default) and
/// `_since` (only resources changed at or after it).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    pub types: Vec<&'static str>,
    pub since: Option<Timestamp>,
    /// A group export's members ([`group_members`]); every patient when `None`.
    pub patients: Option<Vec<PatientId>>,
}

impl ExportRequest {
    /// Reads `_type`, `_since` and `_outputFormat` (NDJSON only), refusing anything else by name.
    pub fn parse(params: &[(String, String)]) -> Result<Self> {
        check_params(params, &["_type", "_since", "_outputFormat"])?;
        if let Some(f) = param(params, "_outputFormat")
            && !matches!(
                f,
                "application/fhir+ndjson" | "application/ndjson" | "ndjson"
            )
        {
            return Err(Error::invalid(
                "_outputFormat",
                "only application/fhir+ndjson is offered",
            ));
        }
        let types = match param(params, "_type") {
            None => EXPORT_TYPES.to_vec(),
            Some(list) => {
                let mut types = Vec::new();
                for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let known = EXPORT_TYPES.iter().find(|k| **k == t).ok_or_else(|| {
                        Error::invalid(
                            "_type",
                            format!("{t} is not exported (use {})", EXPORT_TYPES.join(", ")),
                        )
                    })?;
                    if !types.contains(known) {
                        types.push(*known);
                    }
                }
                types
            }
        };
        let since = param(params, "_since")
            .map(|s| {
                s.parse::<Timestamp>().map_err(|_| {
                    Error::invalid("_since", "use an instant with a time zone (FHIR instant)")
                })
            })
            .transpose()?;
        Ok(Self {
            types,
            since,
            patients: None,
        })
    }
}

/// Writes every resource the export asks for, patient by patient, to `sink` (type, resource):
/// nothing is held beyond one patient's resources, so memory does not grow with the clinic.
/// Each read is the same audited call as a search by that user. `cancelled` is checked between
/// patients; `done` counts the patients written.
pub async fn export(
    store: &dyn Store,
    actor: &Actor,
    request: &ExportRequest,
    sink: &mut (dyn FnMut(&str, &Value) -> std::io::Result<()> + Send),
    cancelled: &std::sync::atomic::AtomicBool,
    progress: &ExportProgress,
) -> Result<()> {
    use std::sync::atomic::Ordering;
    if !actor.may(ketcare_core::Permission::ClinicalRead) {
        return Err(Error::Forbidden(
            "a bulk export holds clinical records: your role may not read them".into(),
        ));
    }
    // Every patient, however many: the export never stops at a search's cap.
    let patients = match &request.patients {
        Some(members) => members.clone(),
        None => store.all_patient_ids(actor).await?,
    };
    progress.total.store(patients.len(), Ordering::Relaxed);
    let changed = |r: &Value| {
        request.since.is_none_or(|since| {
            r["meta"]["lastUpdated"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_some_and(|t| t >= since)
        })
    };
    for pid in patients {
        if cancelled.load(Ordering::Relaxed) {
            return Err(Error::Conflict("the export was cancelled".into()));
        }
        let by = [("patient".to_owned(), pid.get().to_string())];
        for kind in &request.types {
            let resources = match *kind {
                "Patient" => vec![read_patient(store, actor, pid).await?],
                other => matches(store, actor, other, &by).await?,
            };
            for r in resources.iter().filter(|r| changed(r)) {
                sink(kind, r).map_err(|e| {
                    tracing::error!(error = %e, "writing an export file");
                    Error::Internal
                })?;
            }
        }
        progress.done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// How far an export has come: patients written of patients to write.
#[derive(Debug, Default)]
pub struct ExportProgress {
    pub done: std::sync::atomic::AtomicUsize,
    pub total: std::sync::atomic::AtomicUsize,
}
