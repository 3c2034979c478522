//! FHIR R4 for ketcare, with no I/O: what a record looks like as a FHIR resource
//! ([`resources`]), what a search asks ([`search`]), the searchset [`bundle`], the error
//! [`outcome`], and the [`capability`] table that both the routes and `/metadata` are built from.
//!
//! Resources are `serde_json::Value`s in FHIR's JSON form (R4, 4.0.1). The application layer
//! loads the records (role-checked and audited); this crate only translates.

pub mod bundle;
pub mod capability;
pub mod outcome;
pub mod resources;
pub mod search;
pub mod smart;

/// The FHIR version ketcare speaks.
pub const FHIR_VERSION: &str = "4.0.1";
/// The media type of every FHIR answer.
pub const FHIR_JSON: &str = "application/fhir+json";
/// The identifier system of ketcare's medical record numbers.
pub const MRN_SYSTEM: &str = "urn:ketcare:mrn";
