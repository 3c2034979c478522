//! The store's integration tests, one binary (it links once), each on SQLite and PostgreSQL.

mod audit_chain;
mod fhir_clients;
mod measures;
mod ops;
mod outreach;
mod second_factor;
mod session_ops;
mod sessions;
mod sites;
mod therapy;
