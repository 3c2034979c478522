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
    pub params: &'static [SearchParam],
}

const fn p(name: &'static str, kind: &'static str, documentation: &'static str) -> SearchParam {
    SearchParam {
        name,
        kind,
        documentation,
    }
}

const COMMON: [SearchParam; 2] = [
    p("_count", "number", "page size, 1 to 200 (default 50)"),
    p(
        "_offset",
        "number",
        "how many matches to skip (the next link carries it)",
    ),
];

/// Every resource type, in the order the capability statement lists them.
pub const RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        kind: "Patient",
        profile: Some("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"),
        read: true,
        search: true,
        params: &[
            p("_id", "token", "the patient's id"),
            p(
                "identifier",
                "token",
                "the MRN, as `value` or `urn:ketcare:mrn|value`",
            ),
            p(
                "name",
                "string",
                "given or family name (any case, accents ignored)",
            ),
            p("birthdate", "date", "date of birth, with a prefix"),
            COMMON[0],
            COMMON[1],
        ],
    },
    ResourceDef {
        kind: "RelatedPerson",
        profile: None,
        read: false,
        search: true,
        params: &[
            p("patient", "reference", "the patient (required)"),
            COMMON[0],
            COMMON[1],
        ],
    },
    ResourceDef {
        kind: "Observation",
        profile: Some("http://hl7.org/fhir/StructureDefinition/vitalsigns"),
        read: false,
        search: true,
        params: &[
            p("patient", "reference", "the patient (required)"),
            p(
                "category",
                "token",
                "`vital-signs` or `survey` (MOAA/S, CADSS)",
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
        ],
    },
    by_patient("Encounter", None),
    by_patient("Condition", None),
    by_patient("AllergyIntolerance", None),
    by_patient("MedicationStatement", None),
    by_patient("Flag", None),
];

const BY_PATIENT: [SearchParam; 3] = [
    p("patient", "reference", "the patient (required)"),
    COMMON[0],
    COMMON[1],
];

/// A resource searched by patient only.
const fn by_patient(kind: &'static str, profile: Option<&'static str>) -> ResourceDef {
    ResourceDef {
        kind,
        profile,
        read: false,
        search: true,
        params: &BY_PATIENT,
    }
}

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
            let mut v = json!({
                "type": r.kind,
                "interaction": interaction,
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
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
            }],
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
