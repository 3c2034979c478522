//! FHIR R4 for ketcare, with no I/O: what a record looks like as a FHIR resource
//! ([`resources`]), what a search asks ([`search`]), the searchset [`bundle`], the error
//! [`outcome`], and the [`capability`] table that both the routes and `/metadata` are built from.
//!
//! Resources are `serde_json::Value`s in FHIR's JSON form (R4, 4.0.1). The application layer
//! loads the records (role-checked and audited); this crate only translates.

pub mod bundle;
pub mod capability;
pub mod medication;
pub mod outcome;
pub mod questionnaire;
pub mod resources;
pub mod search;
pub mod smart;
pub mod workflow;
pub mod write;

/// The FHIR version ketcare speaks.
pub const FHIR_VERSION: &str = "4.0.1";
/// The media type of every FHIR answer.
pub const FHIR_JSON: &str = "application/fhir+json";
/// The identifier system of ketcare's medical record numbers unless the site names its own.
pub const MRN_SYSTEM: &str = "urn:ketcare:mrn";

static SITE_MRN_SYSTEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the site's MRN identifier system (a URI its EHR and registries know the MRNs by), once,
/// as the server starts (`ketcare serve --mrn-system`). Returns false when one was set already.
pub fn set_mrn_system(system: &str) -> bool {
    SITE_MRN_SYSTEM.set(system.to_owned()).is_ok()
}

/// The MRN identifier system: the site's, or [`MRN_SYSTEM`].
pub fn mrn_system() -> &'static str {
    SITE_MRN_SYSTEM
        .get()
        .map(String::as_str)
        .unwrap_or(MRN_SYSTEM)
}
