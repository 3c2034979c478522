//! The `ketcare` command's integration tests, one binary (it links once).

mod backup;
mod cli;
mod common;
mod ledger;
mod measures;
mod pk;
mod processes;
mod sessions_durability;
