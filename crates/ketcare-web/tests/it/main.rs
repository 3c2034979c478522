//! The web edge's integration tests, one binary (it links once): every area through the real
//! router over a fresh SQLite file and a fresh PostgreSQL database.

mod common;

mod accounts;
mod care_plan;
mod clinical;
mod contract;
mod exposure;
mod fhir;
mod fhir_care;
mod form_defaults;
mod ledger_page;
mod measures;
mod minimum_necessary;
mod monitors;
mod ops;
mod ops_more;
mod outreach;
mod outreach_delivery;
mod outreach_schedules;
mod pk;
mod research;
mod role_matrix;
mod second_factor;
mod security;
mod session_history;
mod session_timeline;
mod sessions;
mod site_changes;
mod site_settings;
mod sites;
mod smart;
mod story;
mod tci_page;
mod therapy;
mod worklists;
mod zones;
