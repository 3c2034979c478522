//! The one table of what the FHIR edge serves: each resource type, its interactions and search
//! parameters. The routes and the `CapabilityStatement` are both made from it, so they cannot
//! drift apart (a test in the web crate checks every entry has its route).

use serde_json::{Value, json};

/// A search parameter: its name, FHIR type and what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParam {
    pub name: &'static str,
    pub kind: &'static str,
    pub documentation: &'static str,
}

/// One resource type the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceDef {
    pub kind: &'static str,
    /// The profile its instances follow, where one applies.
    pub profile: Option<&'static str>,
    pub read: bool,
    pub search: bool,
    /// `POST {type}`: a client may bring this type in.
    pub create: bool,
    /// `PUT {type}/{id}` (with `If-Match`).
    pub update: bool,
    pub params: &'static [SearchParam],
}

const fn p(name: &'static str, kind: &'static str, documentation: &'static str) -> SearchParam {
    SearchParam {
        name,
        kind,
        documentation,
    }
}

const COMMON: [SearchParam; 5] = [
    p("_count", "number", "page size, 1 to 200 (default 50)"),
    p(
        "_offset",
        "number",
        "how many matches to skip (the next link carries it)",
    ),
    p(
        "_lastUpdated",
        "date",
        "when the resource last changed, with a prefix",
    ),
    p(
        "_include",
        "special",
        "`{type}:patient` (or `:subject`), and the references listed for the type",
    ),
    p(
        "_revinclude",
        "special",
        "on Patient: `{type}:patient` for each type searched by patient",
    ),
];

const PATIENT: SearchParam = p("patient", "reference", "the patient (required)");
const STATUS: SearchParam = p(
    "status",
    "token",
    "the status code (MedicationRequest: active = verified, draft = awaiting verification, revoked = withdrawn; Consent: active, inactive; Appointment: booked, fulfilled, cancelled, noshow)",
);

/// Every resource type, in the order the capability statement lists them.
pub const RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        kind: "Patient",
        profile: Some("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"),
        read: true,
        search: true,
        create: true,
        update: true,
        params: &[
            p("_id", "token", "the patient's id"),
            p(
                "identifier",
                "token",
                "the MRN, as `value` or `{system}|value` (the system the site names, `urn:ketcare:mrn` by default)",
            ),
            p(
                "name",
                "string",
                "given or family name (any case, accents ignored)",
            ),
            p("birthdate", "date", "date of birth, with a prefix"),
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[4],
        ],
    },
    by_patient("RelatedPerson", None),
    ResourceDef {
        kind: "Observation",
        profile: Some("http://hl7.org/fhir/StructureDefinition/vitalsigns"),
        read: true,
        search: true,
        create: true,
        update: false,
        params: &[
            PATIENT,
            p(
                "category",
                "token",
                "`vital-signs` or `survey` (questionnaire totals, MOAA/S, CADSS)",
            ),
            p(
                "code",
                "token",
                "a LOINC code, as `code` or `http://loinc.org|code`",
            ),
            p(
                "date",
                "date",
                "when observed, with a prefix (eq ne gt lt ge le sa eb)",
            ),
            p("_sort", "string", "`date` or `-date` (the default)"),
            COMMON[0],
            COMMON[1],
            COMMON[2],
            p(
                "_include",
                "special",
                "`Observation:patient`, `Observation:encounter`",
            ),
        ],
    },
    by_patient("Encounter", None),
    by_patient("Condition", None),
    by_patient("AllergyIntolerance", None),
    by_patient("MedicationStatement", None),
    with_status("MedicationRequest"),
    ResourceDef {
        kind: "MedicationAdministration",
        profile: None,
        read: true,
        search: true,
        create: false,
        update: false,
        params: &[
            PATIENT,
            p("status", "token", "`in-progress` or `completed`"),
            COMMON[0],
            COMMON[1],
            COMMON[2],
            p(
                "_include",
                "special",
                "`MedicationAdministration:patient`, `:request` (the order), `:context` (the session)",
            ),
        ],
    },
    ResourceDef {
        kind: "QuestionnaireResponse",
        profile: None,
        read: true,
        search: true,
        create: true,
        update: false,
        params: &[
            PATIENT,
            p(
                "questionnaire",
                "reference",
                "the questionnaire: its canonical `urn:ketcare:questionnaire:{id}`, `Questionnaire/{id}` or id",
            ),
            COMMON[0],
            COMMON[1],
            COMMON[2],
            p(
                "_include",
                "special",
                "`QuestionnaireResponse:patient`, `:questionnaire`",
            ),
        ],
    },
    ResourceDef {
        kind: "Questionnaire",
        profile: None,
        read: true,
        search: true,
        create: false,
        update: false,
        params: &[
            p("_id", "token", "the instrument's id"),
            p(
                "url",
                "uri",
                "the canonical `urn:ketcare:questionnaire:{id}`",
            ),
            COMMON[0],
            COMMON[1],
        ],
    },
    with_status("Consent"),
    with_status("Appointment"),
    by_patient("Flag", None),
    ResourceDef {
        kind: "Group",
        profile: None,
        read: true,
        search: true,
        create: false,
        update: false,
        params: &[
            p(
                "_id",
                "token",
                "`protocol-{protocol id}`: the patients with a booked course of that protocol",
            ),
            COMMON[0],
            COMMON[1],
        ],
    },
    staff("Practitioner"),
    staff("PractitionerRole"),
    ResourceDef {
        kind: "AuditEvent",
        profile: None,
        read: true,
        search: true,
        create: false,
        update: false,
        params: &[
            p("patient", "reference", "the patient the record is about"),
            p("agent", "token", "the user name of who acted"),
            p(
                "subtype",
                "token",
                "the action, or its start (e.g. `patient.` for every patient action)",
            ),
            COMMON[0],
            COMMON[1],
        ],
    },
];

const BY_PATIENT: [SearchParam; 5] = [PATIENT, COMMON[0], COMMON[1], COMMON[2], COMMON[3]];

/// A resource searched by patient only.
const fn by_patient(kind: &'static str, profile: Option<&'static str>) -> ResourceDef {
    ResourceDef {
        kind,
        profile,
        read: true,
        search: true,
        create: false,
        update: false,
        params: &BY_PATIENT,
    }
}

/// A resource searched by patient and status.
const fn with_status(kind: &'static str) -> ResourceDef {
    ResourceDef {
        kind,
        profile: None,
        read: true,
        search: true,
        create: false,
        update: false,
        params: &WITH_STATUS,
    }
}

const WITH_STATUS: [SearchParam; 6] = [PATIENT, STATUS, COMMON[0], COMMON[1], COMMON[2], COMMON[3]];

/// A staff resource: by id, role and name.
const fn staff(kind: &'static str) -> ResourceDef {
    ResourceDef {
        kind,
        profile: None,
        read: true,
        search: true,
        create: false,
        update: false,
        params: &STAFF,
    }
}

const STAFF: [SearchParam; 5] = [
    p("_id", "token", "the user's id"),
    p(
        "role",
        "token",
        "prescriber, nurse, pharmacist or therapist",
    ),
    p("name", "string", "part of the display name"),
    COMMON[0],
    COMMON[1],
];

/// The definition of `kind`, if the server offers it.
pub fn resource(kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// The `CapabilityStatement` of a server at `base` (its absolute `/fhir/r4` URL), dated `date`
/// (RFC 3339).
pub fn statement(base: &str, software_version: &str, date: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            let mut interaction = Vec::new();
            if r.read {
                interaction.push(json!({"code": "read"}));
            }
            if r.search {
                interaction.push(json!({"code": "search-type"}));
            }
            if r.create {
                interaction.push(json!({"code": "create"}));
            }
            if r.update {
                interaction.push(json!({"code": "update"}));
            }
            let mut v = json!({
                "type": r.kind,
                "interaction": interaction,
                "versioning": if r.update { "versioned-update" } else { "versioned" },
                "conditionalUpdate": false,
                "searchParam": r.params.iter().map(|s| json!({
                    "name": s.name, "type": s.kind, "documentation": s.documentation,
                })).collect::<Vec<_>>(),
            });
            if let Some(profile) = r.profile {
                v["supportedProfile"] = json!([profile]);
            }
            v
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "ketcare",
        "kind": "instance",
        "software": {"name": "ketcare", "version": software_version},
        "implementation": {"description": "ketcare FHIR R4 server", "url": base},
        "fhirVersion": crate::FHIR_VERSION,
        "format": [crate::FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "security": crate::smart::security(base),
            "resource": resources,
            "operation": [
                {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
                {"name": "patient-export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
                {"name": "group-export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"},
            ],
        }],
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_lists_every_resource_with_its_parameters() {
        let s = statement("http://h/fhir/r4", "0.1.0", "2026-12-06T00:00:00Z");
        let listed = s["rest"][0]["resource"].as_array().map(Vec::len);
        assert_eq!(listed, Some(RESOURCES.len()));
        let obs = &s["rest"][0]["resource"][2];
        assert_eq!(obs["type"], "Observation");
        assert!(
            obs["searchParam"]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p["name"] == "date" && p["type"] == "date"))
        );
        assert!(resource("Observation").is_some() && resource("Claim").is_none());
    }
}
