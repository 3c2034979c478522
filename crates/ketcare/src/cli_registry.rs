//! `ketcare registry`: the de-identified research registry from the command line, as a
//! researcher account (every read audited by study id, as on the web).

use anyhow::{Context, Result};
use clap::Subcommand;
use ketcare_core::{Actor, Permission};
use ketcare_store::Store;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// List the saved cohorts (every version).
    Cohorts {
        /// The researcher account reading the registry.
        #[arg(long = "as")]
        as_user: String,
    },
    /// Write a saved cohort (or the whole registry) with its data dictionary into DIR:
    /// `registry.csv` or `registry.parquet`, and `registry-dictionary.csv`.
    Export {
        #[arg(long = "as")]
        as_user: String,
        /// A saved cohort's id (`ketcare registry cohorts`); without it, every subject.
        #[arg(long)]
        cohort: Option<i64>,
        /// `csv` or `parquet` (every column typed as the dictionary says).
        #[arg(long, default_value = "csv", value_parser = ["csv", "parquet"])]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Predict and store the exposure (Cmax, AUC) of every signed session that has none: one
    /// signed before the registry kept it, or whose prediction was not stored (run once after
    /// upgrading; the sessions it cannot predict are listed with why).
    BackfillExposure,
}

async fn researcher(store: &dyn Store, username: &str) -> Result<Actor> {
    crate::cli_actor(
        store,
        username,
        Permission::RegistryRead,
        None,
        "read the research registry",
    )
    .await
}

pub async fn run(store: &dyn Store, cmd: RegistryCommand) -> Result<()> {
    match cmd {
        RegistryCommand::BackfillExposure => {
            let library = ketcare_app::clinical::cached_library(store)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let done = ketcare_app::sessions::history::backfill_exposure(
                store,
                &library,
                std::sync::Arc::new(ketcare_pk::Library::builtin()),
                &ketcare_app::sessions::history::backfill_actor(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "predicted exposure stored for {} signed session{}",
                done.predicted,
                if done.predicted == 1 { "" } else { "s" }
            );
            for (sid, why) in &done.unpredictable {
                println!("session {sid}: not predicted: {why}");
            }
            Ok(())
        }
        RegistryCommand::Cohorts { as_user } => {
            let actor = researcher(store, &as_user).await?;
            for c in store.cohorts(&actor).await? {
                println!("{}\t{} v{}\t{}", c.id, c.name, c.version, c.query);
            }
            Ok(())
        }
        RegistryCommand::Export {
            as_user,
            cohort,
            format,
            out,
        } => {
            let actor = researcher(store, &as_user).await?;
            let q = match cohort {
                Some(id) => {
                    ketcare_app::registry::saved_query(store, &actor, id)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .1
                }
                None => ketcare_app::registry::CohortQuery::default(),
            };
            let library = ketcare_app::clinical::cached_library(store)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (rows, table) = ketcare_app::registry::cohort(store, &library, &actor, &q)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
            let kept = ketcare_app::registry::rows(&rows, table.small_cell).len();
            let (file, format) = if format == "parquet" {
                ("registry.parquet", ketcare_app::registry::Format::Parquet)
            } else {
                ("registry.csv", ketcare_app::registry::Format::Csv)
            };
            let bytes = ketcare_app::registry::export(rows, table.small_cell, format)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            std::fs::write(out.join(file), &bytes)?;
            std::fs::write(
                out.join("registry-dictionary.csv"),
                ketcare_app::registry::dictionary_csv(),
            )?;
            println!(
                "wrote {kept} rows to {} (groups under {} left out)",
                out.join(file).display(),
                table.small_cell
            );
            Ok(())
        }
    }
}
