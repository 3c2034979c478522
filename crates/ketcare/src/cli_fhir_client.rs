//! `ketcare fhir-client …`: SMART backend clients (client credentials with a signed JWT), the
//! same use cases as `/api/v1/fhir-clients` (`ketcare_app::smart`).

use anyhow::{Context, Result};
use clap::Subcommand;
use ketcare_core::Actor;
use ketcare_store::Store;

#[derive(Subcommand)]
pub enum FhirClientCommand {
    /// Register a backend client acting as account USER; prints its client_id.
    Add {
        /// A name people will recognise.
        #[arg(long)]
        name: String,
        /// The (service) account the client acts as: its role decides what the client reads.
        #[arg(long)]
        user: String,
        /// A file with the client's public JWK Set (RS384 or ES384 keys, each with a kid).
        #[arg(long)]
        jwks: std::path::PathBuf,
        /// A scope it may be granted (`system/*.read` or `system/<Type>.read`); repeat for more.
        #[arg(long = "scope", default_value = "system/*.read")]
        scopes: Vec<String>,
    },
    /// List the backend clients.
    List,
    /// Disable a backend client by client_id: no token is granted again; its tokens end.
    Disable { client_id: String },
}

pub async fn run(store: &dyn Store, admin: &Actor, cmd: FhirClientCommand) -> Result<()> {
    match cmd {
        FhirClientCommand::Add {
            name,
            user,
            jwks,
            scopes,
        } => {
            let text = std::fs::read_to_string(&jwks)
                .with_context(|| format!("--jwks: cannot read {}", jwks.display()))?;
            let c = ketcare_app::smart::register(
                store,
                admin,
                &ketcare_app::smart::Registration {
                    name,
                    user,
                    jwks: text,
                    scopes: scopes.join(" "),
                },
            )
            .await
            .map_err(crate::app_error)?;
            eprintln!(
                "backend client {} acting as {}, scopes {}; its client_id:",
                c.name, c.username, c.scopes
            );
            println!("{}", c.client_id);
        }
        FhirClientCommand::List => {
            for c in ketcare_app::smart::list(store, admin)
                .await
                .map_err(crate::app_error)?
            {
                println!(
                    "{}  {:<20} as {:<12} {:<9} keys {}  scopes {}",
                    c.client_id,
                    c.name,
                    c.username,
                    if c.disabled { "disabled" } else { "enabled" },
                    ketcare_app::smart::key_ids(&c).join(","),
                    c.scopes
                );
            }
        }
        FhirClientCommand::Disable { client_id } => {
            let c = ketcare_app::smart::disable(store, admin, &client_id)
                .await
                .map_err(crate::app_error)?;
            println!("disabled backend client {} ({})", c.client_id, c.name);
        }
    }
    Ok(())
}
