//! `ketcare ledger …`: check the controlled-substance ledger's chain, and show it.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ketcare_core::{Actor, Permission};
use ketcare_ops::Micrograms;
use ketcare_store::Store;

#[derive(Subcommand)]
pub enum BillingCommand {
    /// Set the site's price for a billing code, e.g. `ketcare billing price 96365 300.00`.
    Price { code: String, amount: String },
}

pub async fn billing(store: &dyn Store, admin: &Actor, cmd: BillingCommand) -> Result<()> {
    match cmd {
        BillingCommand::Price { code, amount } => {
            let cents = parse_cents(&amount)?;
            store.set_price(admin, &code, cents).await?;
            println!("{code}: {}", ketcare_ops::billing::money(cents));
            Ok(())
        }
    }
}

/// "300" or "300.5" or "300.50" (dollars) → cents, exactly.
fn parse_cents(amount: &str) -> Result<i64> {
    let t = amount.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !(whole.chars().chain(frac.chars())).all(|c| c.is_ascii_digit())
    {
        bail!("amount: `{t}` is not an amount like 300 or 300.00");
    }
    let w: i64 = whole.parse().context("amount: too large")?;
    let f: i64 = format!("{frac:0<2}").parse().context("amount")?;
    w.checked_mul(100)
        .and_then(|w| w.checked_add(f))
        .context("amount: too large")
}

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Check every site's ledger chain and name the first altered entry.
    Verify,
    /// Show the entries, stock on hand and open discrepancies (as a user allowed to read it).
    Show {
        /// The account reading the ledger (a pharmacist, nurse or prescriber); the read is audited.
        #[arg(long = "as")]
        as_user: String,
        #[arg(long)]
        json: bool,
        /// The site whose ledger to show (its id; needed where the account works at several).
        #[arg(long)]
        site: Option<i64>,
    },
}

pub async fn run(store: &dyn Store, cmd: LedgerCommand) -> Result<()> {
    match cmd {
        LedgerCommand::Verify => verify(store).await,
        LedgerCommand::Show {
            as_user,
            json,
            site,
        } => show(store, &as_user, json, site).await,
    }
}

async fn verify(store: &dyn Store) -> Result<()> {
    let v = store.verify_ledger().await?;
    match v.broken {
        None => {
            println!("ledger chain intact: {} entries", v.entries);
            Ok(())
        }
        Some(b) => {
            match v.site_id {
                Some(site) => println!("site {site}: {b}"),
                None => println!("{b}"),
            }
            bail!("the ledger has been altered")
        }
    }
}

async fn show(store: &dyn Store, username: &str, json: bool, site: Option<i64>) -> Result<()> {
    let actor = crate::cli_actor(
        store,
        username,
        Permission::LedgerRead,
        site,
        "read the ledger",
    )
    .await?;
    let records = store.ledger_records_at(&actor, site).await?;
    let state = store.ledger_state_at(&actor, site).await?;
    if json {
        let out = serde_json::json!({
            "entries": records,
            "stock": state.inventory_lines(),
            "open_discrepancies": state.open_discrepancies().collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:>5}  {:<25}  {:<12}  {:<10}  body",
        "seq", "at", "user", "kind"
    );
    for r in &records {
        println!(
            "{:>5}  {:<25}  {:<12}  {:<10}  {}",
            r.seq, r.at, r.username, r.kind, r.body
        );
    }
    println!("\non hand:");
    for l in state.inventory_lines() {
        println!(
            "  {:<55} {:>3} containers  {:>10} mg",
            l.label,
            l.containers,
            Micrograms(l.total_ug)
        );
    }
    let open: Vec<_> = state.open_discrepancies().collect();
    if open.is_empty() {
        println!("no open discrepancies");
    }
    for d in open {
        println!(
            "OPEN discrepancy {} on container {}: book {} µL, counted {} µL",
            d.id, d.container, d.expected_ul, d.counted_ul
        );
    }
    Ok(())
}
