//! The `ketcare` command: serves the web app and API, and administers accounts, tokens and the
//! audit log from the shell.
#![forbid(unsafe_code)]

mod cli_bench_fhir;
mod cli_bench_pages;
mod cli_bench_registry;
mod cli_fhir_client;
mod cli_loadgen;
mod cli_measures;
mod cli_ops;
mod cli_pk;
mod cli_registry;
mod cli_sessions;
mod demo;
mod demo_measures;
mod demo_ops;
mod demo_sessions;
mod demo_sites;
mod demo_synthetic;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use ketcare_app::password::{hash_password, new_api_token, token_hash};
use ketcare_core::{Actor, AgeBands, ApiTokenId, Permission, Role};
use ketcare_store::{NewUser, Store};
use ketcare_web::{AppState, WebConfig};
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// ketcare runs a ketamine and esketamine therapy program. It supports clinicians; it does not
/// replace their judgement, and it never drives an infusion pump.
#[derive(Parser)]
#[command(name = "ketcare", version, about)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct DbArgs {
    /// Folder for the embedded SQLite database (used unless --database-url is given).
    #[arg(
        long,
        global = true,
        env = "KETCARE_DATA",
        default_value = "ketcare-data"
    )]
    data: PathBuf,
    /// `postgres://…` (or `sqlite://…`) to use instead of the embedded file.
    #[arg(long, global = true, env = "KETCARE_DATABASE_URL")]
    database_url: Option<String>,
    /// A read-only PostgreSQL replica of `--database-url` (a streaming standby) for the research
    /// registry's reads; each read checks the replica has caught up with the primary and reads
    /// the primary otherwise.
    #[arg(long, global = true, env = "KETCARE_READ_DATABASE_URL")]
    read_database_url: Option<String>,
    /// Connections of the shared pool (default: 16 on PostgreSQL, 4 on SQLite); the vitals
    /// writer has one more of its own.
    #[arg(long, global = true, env = "KETCARE_DB_POOL_SIZE")]
    db_pool_size: Option<u32>,
    /// How long a statement waits for a lock, in milliseconds (PostgreSQL `lock_timeout`,
    /// SQLite `busy_timeout`).
    #[arg(
        long,
        global = true,
        env = "KETCARE_DB_LOCK_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    db_lock_timeout_ms: u64,
    /// PostgreSQL `statement_timeout` in milliseconds (0: none).
    #[arg(
        long,
        global = true,
        env = "KETCARE_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    db_statement_timeout_ms: u64,
    /// Vital signs waiting to be written at most; one more is refused (monitors: ACK AR) rather
    /// than queued.
    #[arg(
        long,
        global = true,
        env = "KETCARE_VITALS_QUEUE",
        default_value_t = 1024
    )]
    vitals_queue: usize,
    /// Vital signs committed in one transaction at most.
    #[arg(
        long,
        global = true,
        env = "KETCARE_VITALS_BATCH",
        default_value_t = 256
    )]
    vitals_batch: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Start the web app and JSON API.
    Serve(ServeArgs),
    /// Create or update the database's tables, then stop. On PostgreSQL run it as the tables'
    /// owner; the server can then run as a role that owns nothing (README).
    Migrate,
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A bedside-monitor load generator (its own process): ORU^R01 over MLLP from one connection
    /// per chair at a steady rate; prints ACK and dashboard latencies as one JSON line.
    Loadgen(cli_loadgen::LoadgenArgs),
    /// The demo clinic with a synthetic clinic at scale: N fictional patients with sessions,
    /// doses, vital signs and PHQ-9 totals (responders, non-responders, drop-outs, relapses),
    /// deterministic from the seed. Refused on a clinic's own database.
    Demo(cli_bench_registry::DemoArgs),
    /// Staff accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens for machine clients.
    #[command(subcommand)]
    Token(TokenCommand),
    /// SMART backend clients of the FHIR API (client credentials with a signed JWT).
    #[command(subcommand)]
    FhirClient(cli_fhir_client::FhirClientCommand),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The cited protocol library.
    #[command(subcommand)]
    Protocol(ProtocolCommand),
    /// Eligibility screening from a JSON file (the API's ScreeningInput).
    Screen {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Dose, volume and pump rate for a protocol and a patient.
    Dose(DoseArgs),
    /// The site's settings (values the reference leaves unconfirmed, narrowed limits).
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Predicted concentrations for a dose by a route, for a person or a population.
    Simulate(Box<cli_pk::SimulateArgs>),
    /// Advisory target-controlled infusion schedule (ketcare never drives a pump).
    Tci(Box<cli_pk::TciArgs>),
    /// The pharmacokinetic model library.
    #[command(subcommand)]
    Model(cli_pk::ModelCommand),
    /// Score a questionnaire (the same numbers as the pages and the API).
    Score(cli_measures::ScoreArgs),
    /// The measurement instruments.
    #[command(subcommand)]
    Instrument(cli_measures::InstrumentCommand),
    /// Morphine milligram equivalents per day of one opioid (CDC 2022 factors).
    Mme(cli_measures::MmeArgs),
    /// The controlled-substance (Schedule III) ledger.
    #[command(subcommand)]
    Ledger(cli_ops::LedgerCommand),
    /// The de-identified research registry (as a researcher account).
    #[command(subcommand)]
    Registry(cli_registry::RegistryCommand),
    /// Copy the embedded database to FILE while ketcare runs (one consistent snapshot), then
    /// verify the copy's audit and ledger chains. PostgreSQL: use pg_dump (README).
    Backup {
        #[arg(long)]
        to: PathBuf,
    },
    /// Open a backup copy (never the file itself) and verify its audit and ledger chains.
    VerifyBackup { file: PathBuf },
    /// Put a verified backup in place as the data folder's database (ketcare must be stopped).
    /// An existing database is refused unless --replace, which keeps it beside as
    /// `ketcare.db.before-restore-<time>`.
    Restore {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        replace: bool,
    },
    /// The site's billing prices.
    #[command(subcommand)]
    Billing(cli_ops::BillingCommand),
}

#[derive(Subcommand)]
enum ProtocolCommand {
    /// Every protocol, and whether the site's settings let it be used.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One protocol with every value's source.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Add (or replace) a protocol file; the whole library is validated with it. With `--site`,
    /// the file is that site's own protocol, used only there; without, the organisation's.
    Add {
        file: PathBuf,
        #[arg(long)]
        site: Option<i64>,
    },
}

#[derive(Args)]
struct DoseArgs {
    #[arg(long)]
    protocol: String,
    #[arg(long)]
    weight_kg: f64,
    #[arg(long)]
    height_cm: Option<f64>,
    /// female or male.
    #[arg(long)]
    sex: Option<String>,
    /// Completed years of age (every protocol checks its population and age limits).
    #[arg(long)]
    age_years: Option<u32>,
    /// Completed months beyond the years (for infants and children).
    #[arg(long)]
    age_months: Option<u32>,
    /// Vial strength in mg/mL (10, 50 or 100).
    #[arg(long)]
    concentration_mg_per_ml: Option<f64>,
    /// Dilute to this final volume in mL.
    #[arg(long)]
    final_volume_ml: Option<f64>,
    /// Titration step of the main component.
    #[arg(long)]
    step: Option<u32>,
    /// A chosen amount in mg/kg for the main component (instead of a step).
    #[arg(long)]
    mg_per_kg: Option<f64>,
    /// A chosen rate in mg/kg/h for an infusion dosed per hour (instead of a step).
    #[arg(long = "mg-per-kg-per-h")]
    mg_per_kg_per_h: Option<f64>,
    /// The main component's duration in minutes (where the protocol gives none).
    #[arg(long)]
    duration_min: Option<f64>,
    /// The bolus before an infusion, in mg/kg (protocol default when absent).
    #[arg(long)]
    bolus_mg_per_kg: Option<f64>,
    /// Leave out the bolus before an infusion.
    #[arg(long)]
    no_bolus: bool,
    /// Esketamine dose in mg (28 mg devices).
    #[arg(long)]
    esketamine_dose_mg: Option<f64>,
    /// Esketamine: this is the first dose of the course.
    #[arg(long)]
    first_dose_of_course: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum SettingsCommand {
    /// The current settings and every setting a protocol still needs; with `--site`, the
    /// settings in force at that site (its own keys marked).
    Show {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        site: Option<i64>,
    },
    /// Set one value (a new, audited version of the settings); with `--site`, for that site
    /// only (a key of its sessions, bookings or bills).
    Set {
        key: String,
        value: f64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        site: Option<i64>,
    },
    /// Narrow a protocol's limit (a widening of a hard limit waits for a second administrator).
    Limit {
        protocol: String,
        limit: String,
        value: f64,
        #[arg(long)]
        reason: String,
        /// Who is changing it (an administrator's username; recorded).
        #[arg(long)]
        by: String,
    },
    /// Approve a proposed widening as a second administrator.
    Approve {
        id: i64,
        /// The approving administrator's username (must differ from the proposer).
        #[arg(long)]
        by: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Population benchmark of the PK engine (Domino, N = 10,000 and 100,000).
    Pk,
    /// Vitals over MLLP: messages per second, ACK and dashboard latency, losses.
    Vitals(cli_sessions::BenchVitalsArgs),
    /// Server-side time of the chart, the session page, the suite and the home queues on a
    /// synthetic clinic with years of history (seeded into the database given by --db/--data:
    /// use a fresh one). Prints p50/p95 per page.
    Pages(cli_bench_pages::BenchPagesArgs),
    /// The FHIR edge on a synthetic clinic (seeded into the database given by --db/--data: use
    /// a fresh one): p50/p95 of a patient's vital-sign search, and a system export's
    /// resources/s and peak memory.
    Fhir(cli_bench_fhir::BenchFhirArgs),
    /// The research registry's cohort outcome table on the synthetic clinic (`ketcare demo
    /// --patients …` first), through the function the page and API call; then its Parquet
    /// export and, with --duckdb, the same table by DuckDB from that export.
    Registry(cli_bench_registry::BenchRegistryArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Also accept HL7 v2 ORU^R01 from bedside monitors over MLLP on this address.
    #[arg(long, env = "KETCARE_MLLP")]
    mllp: Option<SocketAddr>,
    /// Address to listen on.
    #[arg(long, env = "KETCARE_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Seed a demo clinic (staff of every role, twenty patients) and print the logins.
    #[arg(long)]
    demo: bool,
    /// Minutes a browser session lasts.
    #[arg(long, env = "KETCARE_SESSION_MINUTES", default_value_t = 480)]
    session_minutes: i64,
    /// Failed sign-ins for one account from one address before that address is paused for it.
    #[arg(long, env = "KETCARE_LOCKOUT_ATTEMPTS", default_value_t = 5)]
    lockout_attempts: i64,
    /// The counting window and first pause, in minutes (each further pause doubles, up to a day).
    #[arg(long, env = "KETCARE_LOCKOUT_MINUTES", default_value_t = 15)]
    lockout_minutes: i64,
    /// Minutes without a request after which a browser session ends.
    #[arg(long, env = "KETCARE_IDLE_MINUTES", default_value_t = 30)]
    idle_minutes: i64,
    /// Always mark cookies Secure (set this when a TLS proxy does not send X-Forwarded-Proto).
    #[arg(long, env = "KETCARE_SECURE_COOKIES")]
    secure_cookies: bool,
    /// API requests one token, browser session or address may make at once…
    #[arg(long, env = "KETCARE_API_BURST", default_value_t = 300.0)]
    api_burst: f64,
    /// …and per second after that (beyond: 429 with Retry-After).
    #[arg(long, env = "KETCARE_API_PER_SECOND", default_value_t = 50.0)]
    api_per_second: f64,
    /// The URI the site's medical record numbers are known by (FHIR `Patient.identifier.system`);
    /// `urn:ketcare:mrn` when not given.
    #[arg(long, env = "KETCARE_MRN_SYSTEM")]
    mrn_system: Option<String>,
    /// The user name on the site's SMTP relay (its host is a site setting).
    #[arg(long, env = "KETCARE_SMTP_USERNAME")]
    smtp_username: Option<String>,
    /// A file holding the SMTP relay's password (or set `KETCARE_SMTP_PASSWORD`).
    #[arg(long, env = "KETCARE_SMTP_PASSWORD_FILE")]
    smtp_password_file: Option<PathBuf>,
    /// A file holding the secret the SMS webhook is signed with (or set
    /// `KETCARE_SMS_WEBHOOK_SECRET`).
    #[arg(long, env = "KETCARE_SMS_WEBHOOK_SECRET_FILE")]
    sms_secret_file: Option<PathBuf>,
    /// A PEM file of an extra certificate authority the SMTP relay's certificate may chain to
    /// (a relay with the site's own CA); the public roots stay trusted.
    #[arg(long, env = "KETCARE_SMTP_CA_FILE")]
    smtp_ca_file: Option<PathBuf>,
    /// Seconds between passes of the outbox's delivery worker.
    #[arg(long, env = "KETCARE_OUTBOX_SECONDS", default_value_t = 15)]
    outbox_seconds: u64,
}

/// A secret from the environment variable `var`, else from `file`; never from a flag's value,
/// which other users of the host could read in the process list.
fn secret(var: &str, file: Option<&std::path::Path>) -> Result<Option<ketcare_store::SecretText>> {
    if let Ok(v) = std::env::var(var)
        && !v.trim().is_empty()
    {
        return Ok(Some(ketcare_store::SecretText::new(v.trim())));
    }
    match file {
        None => Ok(None),
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading the secret in {}", f.display()))?;
            Ok(Some(ketcare_store::SecretText::new(text.trim())))
        }
    }
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a staff account; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        /// administrator, prescriber, nurse, pharmacist, therapist, scheduler or researcher.
        #[arg(long)]
        role: String,
        /// Full name shown in the app (defaults to the username).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List staff accounts with their status.
    List,
    /// Disable an account: it cannot sign in; its sessions end and its API tokens are revoked.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Re-enable a disabled account.
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Clear an account's failed attempts and witness lock.
    Unlock {
        #[arg(long)]
        username: String,
    },
    /// Change an account's role.
    Role {
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
    },
    /// Set a temporary password (printed once) that the user must replace at the next sign-in;
    /// their sessions end.
    ResetPassword {
        #[arg(long)]
        username: String,
    },
    /// End every browser session and revoke every API token of an account.
    EndSessions {
        #[arg(long)]
        username: String,
    },
    /// Remove an account's second factor and recovery codes (a lost phone): the password alone
    /// signs in until the user sets up a new one.
    ResetSecondFactor {
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user and print it once.
    Create {
        #[arg(long)]
        user: String,
        /// What the token is for.
        #[arg(long, default_value = "api")]
        label: String,
        /// Days until the token is refused (1–366): every token has an end date.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// List a user's tokens (never the secrets).
    List {
        #[arg(long)]
        user: String,
    },
    /// Revoke a token by id.
    Revoke {
        #[arg(long)]
        id: i64,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain and name the first broken record, then every anchor of the chain
    /// kept outside the database (`<data>/anchors.log`): a rewrite that recomputed every hash
    /// still fails there.
    Verify,
    /// Append the current heads of the audit chain and of every site's ledger chain to the
    /// anchor file now (`serve` does this every minute).
    Anchor,
}

impl DbArgs {
    fn options(&self) -> ketcare_store::StoreOptions {
        ketcare_store::StoreOptions {
            pool_size: self.db_pool_size,
            lock_timeout_ms: self.db_lock_timeout_ms,
            statement_timeout_ms: self.db_statement_timeout_ms,
            vitals_queue: self.vitals_queue,
            vitals_batch: self.vitals_batch,
            read_url: self
                .read_database_url
                .clone()
                .filter(|u| !u.trim().is_empty()),
        }
    }

    fn url(&self) -> Result<String> {
        if let Some(url) = self
            .database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            return Ok(url.to_owned());
        }
        std::fs::create_dir_all(&self.data)
            .with_context(|| format!("creating data folder {}", self.data.display()))?;
        owner_only(&self.data, 0o700)?;
        let file = self.data.join("ketcare.db");
        Ok(format!("sqlite://{}?mode=rwc", file.display()))
    }

    async fn open(&self) -> Result<Arc<dyn Store>> {
        let url = self.url()?;
        let store = ketcare_store::open_with(&url, &self.options())
            .await
            .with_context(|| format!("opening the database ({})", redact(&url)))?;
        // The embedded database holds patient records and password hashes: only the account
        // that runs ketcare may read it (the folder 0700, the files 0600).
        if !url.starts_with("postgres") {
            for name in ["ketcare.db", "ketcare.db-wal", "ketcare.db-shm"] {
                let f = self.data.join(name);
                if f.exists() {
                    owner_only(&f, 0o600)?;
                }
            }
        }
        Ok(store)
    }
}

async fn backup(db: &DbArgs, to: &std::path::Path) -> Result<()> {
    let store = db.open().await?;
    store
        .backup_into(to)
        .await
        .with_context(|| format!("backing up to {}", to.display()))?;
    owner_only(to, 0o600)?;
    println!("backed up to {}", to.display());
    verify_backup(to).await.map(|_| ())
}

/// Verifies a backup on a private copy (so not even a migration touches the file); returns the
/// heads of its chains.
async fn verify_backup(file: &std::path::Path) -> Result<[(i64, String); 2]> {
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    let dir = std::env::temp_dir().join(format!(
        "ketcare-verify-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    ));
    std::fs::create_dir_all(&dir)?;
    owner_only(&dir, 0o700)?;
    let copy = dir.join("ketcare.db");
    std::fs::copy(file, &copy).with_context(|| format!("copying {}", file.display()))?;
    let result = async {
        let store = ketcare_store::open(&format!("sqlite://{}?mode=rw", copy.display()))
            .await
            .with_context(|| format!("{} is not a ketcare database", file.display()))?;
        let audit = store.verify_audit().await?;
        if let Some(b) = audit.broken {
            bail!("the backup's audit log is altered: {b}");
        }
        let ledger = store.verify_ledger().await?;
        if let Some(b) = ledger.broken {
            bail!("the backup's ledger is altered: {b}");
        }
        let heads = [
            store.chain_head(ketcare_store::Chain::Audit).await?,
            store.chain_head(ketcare_store::Chain::FIRST_LEDGER).await?,
        ];
        println!(
            "backup verified: audit chain intact ({} records), ledger chain intact ({} entries), {} patients",
            audit.records,
            ledger.entries,
            store.count("patients").await?
        );
        Ok(heads)
    }
    .await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

async fn restore(db: &DbArgs, from: &std::path::Path, replace: bool) -> Result<()> {
    if db
        .database_url
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty())
    {
        bail!(
            "restore puts a backup in place in --data; a PostgreSQL database is restored with pg_restore (README)"
        );
    }
    verify_backup(from).await?;
    std::fs::create_dir_all(&db.data)?;
    owner_only(&db.data, 0o700)?;
    let target = db.data.join("ketcare.db");
    if target.exists() {
        if !replace {
            bail!(
                "{} exists; add --replace to keep it beside and put the backup in its place",
                target.display()
            );
        }
        let stamp = jiff::Timestamp::now().as_second();
        for suffix in ["", "-wal", "-shm"] {
            let f = db.data.join(format!("ketcare.db{suffix}"));
            if f.exists() {
                let kept = db
                    .data
                    .join(format!("ketcare.db.before-restore-{stamp}{suffix}"));
                std::fs::rename(&f, &kept)
                    .with_context(|| format!("keeping {} as {}", f.display(), kept.display()))?;
            }
        }
    }
    std::fs::copy(from, &target).with_context(|| format!("copying {}", from.display()))?;
    owner_only(&target, 0o600)?;
    println!("restored {} into {}", from.display(), target.display());
    Ok(())
}

/// Sets `path`'s permission bits (Unix; elsewhere the platform's defaults stand).
fn owner_only(path: &std::path::Path, mode: u32) -> Result<()> {
    ketcare_app::files::owner_only(path, mode)
        .with_context(|| format!("restricting {} to its owner", path.display()))
}

/// Hides a password in a database URL before it is printed.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The shell user acts as a local administrator: the audit log records `cli` as the address.
fn cli_admin() -> Actor {
    let who = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    Actor {
        user_id: None,
        username: format!("cli:{who}"),
        role: Some(Role::Administrator),
        address: "cli".into(),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KETCARE_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&cli.db, args).await,
        Command::Bench(BenchCommand::Pk) => cli_pk::bench(),
        Command::Loadgen(a) => cli_loadgen::main(a).await,
        Command::Bench(BenchCommand::Pages(a)) => {
            cli_bench_pages::bench_pages(cli.db.open().await?, a).await
        }
        Command::Bench(BenchCommand::Fhir(a)) => {
            cli_bench_fhir::bench_fhir(cli.db.open().await?, a).await
        }
        Command::Bench(BenchCommand::Registry(a)) => {
            let store = cli.db.open().await?;
            let backend = format!("{:?}", store.backend());
            cli_bench_registry::bench(store.as_ref(), &backend, a).await
        }
        Command::Demo(a) => cli_bench_registry::demo(cli.db.open().await?.as_ref(), a).await,
        Command::Bench(BenchCommand::Vitals(a)) => {
            let url = cli.db.url()?;
            let db = cli_sessions::ServerDb {
                url: &url,
                data: &cli.db.data,
            };
            cli_sessions::bench_vitals(cli.db.open().await?, &db, a).await
        }
        Command::User(cmd) => user(&cli.db, cmd).await,
        Command::Token(cmd) => token(&cli.db, cmd).await,
        Command::FhirClient(cmd) => {
            cli_fhir_client::run(cli.db.open().await?.as_ref(), &cli_admin(), cmd).await
        }
        Command::Audit(AuditCommand::Verify) => audit_verify(&cli.db).await,
        Command::Migrate => {
            cli.db.open().await?;
            println!("the database is up to date");
            Ok(())
        }
        Command::Backup { to } => backup(&cli.db, &to).await,
        Command::VerifyBackup { file } => verify_backup(&file).await.map(|_| ()),
        Command::Restore { from, replace } => restore(&cli.db, &from, replace).await,
        Command::Protocol(cmd) => protocol(&cli.db, cmd).await,
        Command::Screen { input, json } => screen(&cli.db, &input, json).await,
        Command::Dose(args) => dose(&cli.db, args).await,
        Command::Settings(cmd) => settings(&cli.db, cmd).await,
        Command::Simulate(args) => cli_pk::simulate(&args),
        Command::Tci(args) => cli_pk::tci(&args),
        Command::Model(cmd) => cli_pk::model(cmd),
        Command::Score(args) => cli_measures::score(&cli.db, args).await,
        Command::Instrument(cmd) => cli_measures::instrument(cmd),
        Command::Mme(args) => cli_measures::mme(args),
        Command::Registry(cmd) => {
            let store = cli.db.open().await?;
            cli_registry::run(store.as_ref(), cmd).await
        }
        Command::Ledger(cmd) => {
            let store = cli.db.open().await?;
            cli_ops::run(store.as_ref(), cmd).await?;
            verify_anchors(&cli.db, store.as_ref(), None).await
        }
        Command::Audit(AuditCommand::Anchor) => {
            let store = cli.db.open().await?;
            let anchors = ketcare_app::anchors::Anchors::open(&cli.db.data)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let added = anchors
                .record(store.as_ref(), jiff::Timestamp::now())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for a in &added {
                println!("anchored {} record {}", a.chain.name(), a.seq);
            }
            if added.is_empty() {
                println!("nothing new to anchor");
            }
            Ok(())
        }
        Command::Billing(cmd) => {
            cli_ops::billing(cli.db.open().await?.as_ref(), &cli_admin(), cmd).await
        }
    }
}

async fn serve(db: &DbArgs, args: ServeArgs) -> Result<()> {
    let bands = AgeBands::builtin().context("loading data/age_bands.toml")?;
    let store = db.open().await?;
    let library = clinical_library(store.as_ref()).await?;
    let today = jiff::Zoned::now().date();
    if args.demo {
        if demo::seed(store.as_ref(), today).await? {
            println!("Seeded the demo clinic.");
        }
        demo::print_logins();
        println!(
            "The demo clinic's own site settings are in place (Settings page): they are its \
             choices, not recommendations."
        );
    }
    if let Some(system) = args.mrn_system.as_deref() {
        anyhow::ensure!(
            system.contains(':') && !system.contains(char::is_whitespace) && !system.contains('|'),
            "--mrn-system: give a URI (for example https://clinic.example/mrn or urn:oid:…)"
        );
        ketcare_fhir::set_mrn_system(system);
    }
    let config = WebConfig {
        session_minutes: args.session_minutes,
        idle_minutes: args.idle_minutes,
        lockout_attempts: args.lockout_attempts,
        lockout_minutes: args.lockout_minutes,
        secure_cookies: args.secure_cookies,
        api_burst: args.api_burst,
        api_per_second: args.api_per_second,
    };
    // The outbox is drained inside the server: questionnaire links by email and text message.
    let secrets = ketcare_web::outreach::delivery::DeliverySecrets {
        smtp_username: args.smtp_username.clone(),
        smtp_password: secret("KETCARE_SMTP_PASSWORD", args.smtp_password_file.as_deref())?,
        sms_secret: secret(
            "KETCARE_SMS_WEBHOOK_SECRET",
            args.sms_secret_file.as_deref(),
        )?,
        smtp_ca_pem: match &args.smtp_ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("reading --smtp-ca-file {}", path.display()))?,
            ),
            None => None,
        },
    };
    // FHIR bulk exports are written in the data folder (0700), beside the database.
    let state = AppState::new(store.clone(), config, bands, library)
        .with_export_dir(db.data.join("exports"))
        .with_sms_secret(secrets.sms_secret.clone());
    state
        .refresh_demo()
        .await
        .map_err(|e| anyhow::anyhow!("reading the site settings: {e}"))?;
    cli_sessions::start(&state, &db.url()?, args.mllp).await?;
    ketcare_web::outreach::delivery::spawn_worker(
        state.clone(),
        Arc::new(ketcare_web::outreach::delivery::LiveChannels { secrets }),
        args.outbox_seconds,
    );
    // The chain heads are anchored outside the database at start and every minute after, so a
    // rewrite of the database that recomputes every hash is still found by `verify`.
    let anchors =
        ketcare_app::anchors::Anchors::open(&db.data).map_err(|e| anyhow::anyhow!("{e}"))?;
    {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Err(e) = anchors.record(store.as_ref(), jiff::Timestamp::now()).await {
                    tracing::error!(error = %e, "anchoring the chain heads");
                }
            }
        });
    }
    let app = ketcare_web::router(state);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let addr = listener.local_addr()?;
    println!(
        "ketcare listening on http://{addr} ({} database)",
        store.backend().as_str()
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving")
}

async fn user(db: &DbArgs, cmd: UserCommand) -> Result<()> {
    let store = db.open().await?;
    match cmd {
        UserCommand::Add {
            username,
            role,
            display_name,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!(
                    "unknown role `{role}`; use one of: {}",
                    Role::ALL.map(Role::as_str).join(", ")
                )
            })?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let name = display_name.clone().unwrap_or_else(|| username.clone());
            ketcare_app::password::check_strength(password, &[&username, &name])
                .map_err(|m| anyhow::anyhow!("password: {m}"))?;
            let hash = hash_password(password).map_err(anyhow::Error::msg)?;
            let user = store
                .create_user(
                    &cli_admin(),
                    &NewUser {
                        display_name: display_name.unwrap_or_else(|| username.clone()),
                        username,
                        role,
                        password_hash: hash,
                    },
                )
                .await
                .context("adding the user")?;
            println!("added {} ({})", user.username, user.role);
        }
        UserCommand::List => {
            for u in store.list_users(&cli_admin()).await? {
                let status = match (u.disabled, u.must_change_password, u.second_factor) {
                    (true, _, _) => "disabled",
                    (false, true, _) => "must choose a new password",
                    (false, false, true) => "active, second factor",
                    _ => "active",
                };
                println!(
                    "{:<20} {:<14} {:<28} {}",
                    u.username, u.role, status, u.display_name
                );
            }
        }
        UserCommand::ResetPassword { username } => {
            let u = account(store.as_ref(), &username).await?;
            let (u, temporary) =
                ketcare_app::accounts::reset_password(store.as_ref(), &cli_admin(), u.id)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "temporary password for {}: {temporary}\n(shown once; they must choose their own at the next sign-in)",
                u.username
            );
        }
        UserCommand::Disable { username } => {
            change_account(store.as_ref(), &username, "disable", "").await?
        }
        UserCommand::Enable { username } => {
            change_account(store.as_ref(), &username, "enable", "").await?
        }
        UserCommand::Unlock { username } => {
            change_account(store.as_ref(), &username, "unlock", "").await?
        }
        UserCommand::EndSessions { username } => {
            change_account(store.as_ref(), &username, "end_sessions", "").await?
        }
        UserCommand::ResetSecondFactor { username } => {
            change_account(store.as_ref(), &username, "reset_second_factor", "").await?
        }
        UserCommand::Role { username, role } => {
            change_account(store.as_ref(), &username, "role", &role).await?
        }
    }
    Ok(())
}

/// Applies an account action (the same use case as the users page and the API).
async fn change_account(store: &dyn Store, username: &str, action: &str, role: &str) -> Result<()> {
    let u = account(store, username).await?;
    let change = ketcare_app::accounts::parse_change(action, role)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("a password reset is `ketcare user reset-password`")?;
    let u = ketcare_app::accounts::change(store, &cli_admin(), u.id, &change)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}: {}", u.username, action.replace('_', " "));
    Ok(())
}

/// The account named `username`, or an error naming it.
async fn account(store: &dyn Store, username: &str) -> Result<ketcare_store::User> {
    store
        .user_by_username(username.trim())
        .await?
        .with_context(|| format!("no user `{username}`"))
}

async fn token(db: &DbArgs, cmd: TokenCommand) -> Result<()> {
    let store = db.open().await?;
    let find = |username: String| {
        let store = store.clone();
        async move {
            store
                .user_by_username(&username)
                .await?
                .with_context(|| format!("no user `{username}`"))
        }
    };
    match cmd {
        TokenCommand::Create { user, label, days } => {
            if !(1..=366).contains(&days) {
                bail!("--days: from 1 to 366 (every token has an end date)");
            }
            let owner = find(user).await?;
            let secret = new_api_token();
            let expires = jiff::Timestamp::now().as_second() + days * 86_400;
            let t = store
                .create_api_token(
                    &cli_admin(),
                    owner.id,
                    &token_hash(&secret),
                    &label,
                    Some(expires),
                )
                .await?;
            eprintln!(
                "token {} for {} (until {}) — shown once; send it as `Authorization: Bearer <token>`:",
                t.id,
                owner.username,
                jiff::Timestamp::from_second(expires)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            );
            println!("{secret}");
        }
        TokenCommand::List { user } => {
            let owner = find(user).await?;
            for t in store.list_api_tokens(owner.id).await? {
                let now = jiff::Timestamp::now().as_second();
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(r), _) => format!("revoked {r}"),
                    (None, Some(e)) if e <= now => "expired".into(),
                    (None, Some(e)) => format!(
                        "active until {}",
                        jiff::Timestamp::from_second(e)
                            .map(|t| t.to_string())
                            .unwrap_or_default()
                    ),
                    (None, None) => "active (no end date: made before tokens had one)".into(),
                };
                println!(
                    "{:<6} {:<20} created {} {}",
                    t.id, t.label, t.created_at, state
                );
            }
        }
        TokenCommand::Revoke { id } => {
            store
                .revoke_api_token(&cli_admin(), ApiTokenId::new(id))
                .await?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}

/// The built-in protocol library plus the site's own protocol files, validated together.
async fn clinical_library(store: &dyn Store) -> Result<ketcare_clinical::Library> {
    ketcare_app::clinical::load_library(store)
        .await
        .map_err(anyhow::Error::msg)
        .context("loading the protocol library")
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn provenance(p: &ketcare_clinical::source::Provenance) -> String {
    ketcare_app::clinical::provenance_text(p)
}

async fn protocol(db: &DbArgs, cmd: ProtocolCommand) -> Result<()> {
    let store = db.open().await?;
    let library = clinical_library(store.as_ref()).await?;
    let (settings, _) = ketcare_app::clinical::settings(store.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match cmd {
        ProtocolCommand::List { json } => {
            let mut rows = Vec::new();
            for p in library.list() {
                let r = library.readiness(&p.id, &settings)?;
                rows.push((p, r));
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(p, r)| serde_json::json!({"protocol": p, "readiness": r}))
                    .collect();
                return print_json(&v);
            }
            for (p, r) in rows {
                let state = if r.ready {
                    "ready".to_owned()
                } else {
                    format!(
                        "blocked until the site sets {}",
                        r.missing
                            .iter()
                            .map(|m| m.key.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                println!("{:<40} v{:<3} {}  [{state}]", p.id, p.version, p.title);
            }
        }
        ProtocolCommand::Add { file, site } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .context("the protocol file needs a name ending in .toml")?;
            ketcare_app::clinical::add_site_protocol(
                store.as_ref(),
                &cli_admin(),
                site,
                name,
                &text,
            )
            .await
            .map_err(app_error)?;
            match site {
                Some(site) => println!("added protocol {name}, site {site}'s own"),
                None => println!("added site protocol {name}"),
            }
        }
        ProtocolCommand::Show { id, json } => {
            let view = library.show(&id, &settings)?;
            if json {
                return print_json(&view);
            }
            println!(
                "{} (v{}) — {}",
                view.protocol.id, view.protocol.version, view.protocol.title
            );
            println!("file: {}", view.file);
            for (path, c) in view.protocol.cited_values() {
                let value = match (c.value, &c.site_setting) {
                    (Some(v), _) => v.to_string(),
                    (None, Some(key)) => match settings.value(key) {
                        Some(v) => format!("{v} (set by the site: {key})"),
                        None => format!("not set — site setting {key}"),
                    },
                    (None, None) => "—".into(),
                };
                println!(
                    "  {path:<45} {value:<28} [{} {:?}]",
                    c.source.join(", "),
                    c.status
                );
            }
            if !view.readiness.ready {
                println!(
                    "BLOCKED until the site sets: {}",
                    view.readiness
                        .missing
                        .iter()
                        .map(|m| m.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for (id, text) in &view.citations {
                println!("  [{id}] {text}");
            }
        }
    }
    Ok(())
}

async fn screen(db: &DbArgs, input: &std::path::Path, json: bool) -> Result<()> {
    let store = db.open().await?;
    let library = clinical_library(store.as_ref()).await?;
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let input: ketcare_clinical::ScreeningInput = serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("{}: field `{}`: {}", input.display(), e.path(), e.inner()))?;
    let outcome = ketcare_app::clinical::screen(store.as_ref(), &library, &input)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.fields()
                    .0
                    .iter()
                    .map(|f| f.message.clone())
                    .next()
                    .unwrap_or_else(|| e.to_string())
            )
        })?;
    if json {
        return print_json(&outcome);
    }
    println!("decision: {:?}", outcome.decision);
    for f in &outcome.findings {
        println!(
            "  {:?}: {} [{} {:?}] ({})",
            f.severity,
            f.reason,
            f.source.join(", "),
            f.status,
            f.id
        );
    }
    Ok(())
}

async fn dose(db: &DbArgs, a: DoseArgs) -> Result<()> {
    let store = db.open().await?;
    let library = clinical_library(store.as_ref()).await?;
    let json = a.json;
    let simple = ketcare_app::clinical::SimpleDose {
        protocol: a.protocol,
        weight_kg: Some(a.weight_kg),
        height_cm: a.height_cm,
        sex: a.sex,
        age_years: a.age_years,
        age_months: a.age_months,
        concentration_mg_per_ml: a.concentration_mg_per_ml,
        final_volume_ml: a.final_volume_ml,
        step: a.step,
        amount_mg_per_kg: a.mg_per_kg,
        amount_mg_per_kg_per_h: a.mg_per_kg_per_h,
        duration_minutes: a.duration_min,
        bolus_mg_per_kg: a.bolus_mg_per_kg,
        omit_bolus: a.no_bolus,
        esketamine_dose_mg: a.esketamine_dose_mg,
        first_dose_of_course: Some(a.first_dose_of_course),
    };
    let request = simple
        .bare_request(&library, &cli_admin(), jiff::Timestamp::now().as_second())
        .map_err(app_error)?;
    let order = match ketcare_app::clinical::calculate(store.as_ref(), &library, &request).await {
        Ok(o) => o,
        Err(ketcare_app::Error::Dose(e)) => {
            if json {
                print_json(&e)?;
            }
            bail!("{}: {e}", e.field())
        }
        Err(e) => return Err(app_error(e)),
    };
    if json {
        return print_json(&order);
    }
    let c = &order.calculation;
    println!(
        "{} (v{}) — {}",
        c.protocol_id, c.protocol_version, c.protocol_title
    );
    println!(
        "weight basis: {:?} {} kg [{}]",
        c.weight.basis,
        c.weight.basis_kg.value,
        provenance(&c.weight.basis_kg.provenance)
    );
    for comp in &c.components {
        println!(
            "{:?}: {} {} → {} mg [{}]",
            comp.role,
            comp.ordered.value,
            comp.ordered.unit,
            comp.dose_mg.value,
            provenance(&comp.ordered.provenance)
        );
        if let Some(p) = &comp.preparation {
            println!(
                "  draw {} mL of {} mg/mL; final {} mg/mL",
                p.volume_to_draw.value, p.vial_concentration.value, p.final_concentration.value
            );
            if let (Some(rate), Some(run)) = (&p.rate_ml_per_h, &p.run_time_minutes) {
                println!("  pump {} mL/h for {} min", rate.value, run.value);
            }
        }
    }
    if let Some(e) = &c.esketamine {
        println!(
            "esketamine {} mg = {} devices of {} mg, {} min apart",
            e.dose_mg.value, e.devices, e.device_mg.value, e.minutes_between_devices.value
        );
    }
    for r in &c.roundings {
        println!(
            "rounded {}: {} → {} {} (step {} from {}) — {}",
            r.what, r.from, r.to, r.unit, r.increment, r.setting, r.why
        );
    }
    for l in &c.soft_limits_crossed {
        println!(
            "SOFT LIMIT crossed: {} {} {} vs {} [{}] — needs a prescriber's override with a reason",
            l.label,
            l.computed,
            l.unit,
            l.limit,
            provenance(&l.provenance)
        );
    }
    println!(
        "state: {:?} (a second clinician must verify before it is given)",
        order.state
    );
    Ok(())
}

async fn settings(db: &DbArgs, cmd: SettingsCommand) -> Result<()> {
    let store = db.open().await?;
    let library = clinical_library(store.as_ref()).await?;
    let (current, version) = ketcare_app::clinical::settings(store.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match cmd {
        SettingsCommand::Show {
            json,
            site: Some(site),
        } => {
            let at = ketcare_app::clinical::settings_at(store.as_ref(), site)
                .await
                .map_err(app_error)?;
            if json {
                return print_json(&at);
            }
            println!(
                "settings in force at site {site}: version {} (the organisation's: {})",
                at.version, at.organisation_version
            );
            for (k, v) in &at.settings.values {
                let whose = if at.is_own(k) {
                    "  (set by the site)"
                } else {
                    ""
                };
                println!("  {k:<55} {v}{whose}");
            }
        }
        SettingsCommand::Set {
            key,
            value,
            reason,
            site: Some(site),
        } => {
            let mut own = ketcare_app::clinical::settings_at(store.as_ref(), site)
                .await
                .map_err(app_error)?
                .own;
            own.values.insert(key.clone(), value);
            let v = ketcare_app::clinical::save_settings_of_site(
                store.as_ref(),
                &library,
                &cli_admin(),
                site,
                &own,
                &reason,
                jiff::Timestamp::now(),
            )
            .await
            .map_err(app_error)?;
            println!("{key} = {value} at site {site} (settings version {v})");
        }
        SettingsCommand::Show { json, site: None } => {
            if json {
                return print_json(&serde_json::json!({"version": version, "settings": current}));
            }
            println!("site settings version {version}");
            for (k, v) in &current.values {
                println!("  {k:<55} {v}");
            }
            let mut needed = std::collections::BTreeSet::new();
            for p in library.list() {
                for m in library.readiness(&p.id, &current)?.missing {
                    needed.insert(m.key);
                }
            }
            for k in needed {
                println!("  {k:<55} NOT SET (a protocol needs it)");
            }
        }
        SettingsCommand::Limit {
            protocol,
            limit,
            value,
            reason,
            by,
        } => {
            let actor = named_admin(store.as_ref(), &by).await?;
            match ketcare_app::clinical::change_limit(
                store.as_ref(),
                &library,
                &actor,
                &protocol,
                &limit,
                value,
                &reason,
            )
            .await
            .map_err(app_error)?
            {
                ketcare_app::clinical::LimitChange::Applied { version } => {
                    println!("{protocol}/{limit} = {value} (settings version {version})")
                }
                ketcare_app::clinical::LimitChange::AwaitingSecondApprover {
                    proposal_id,
                    reason,
                } => {
                    println!("proposal {proposal_id} waits for a second administrator: {reason}")
                }
            }
        }
        SettingsCommand::Approve { id, by } => {
            let actor = named_admin(store.as_ref(), &by).await?;
            let v = ketcare_app::clinical::approve_limit(store.as_ref(), &library, &actor, id)
                .await
                .map_err(app_error)?;
            println!("approved proposal {id} (settings version {v})");
        }
        SettingsCommand::Set {
            key,
            value,
            reason,
            site: None,
        } => {
            let mut next = current;
            next.values.insert(key.clone(), value);
            let v = ketcare_app::clinical::save_settings(
                store.as_ref(),
                &library,
                &cli_admin(),
                &next,
                &reason,
                jiff::Timestamp::now(),
            )
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}",
                    e.fields()
                        .0
                        .iter()
                        .map(|f| f.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            println!("{key} = {value} (settings version {v})");
        }
    }
    Ok(())
}

fn app_error(e: impl Into<ketcare_app::Error>) -> anyhow::Error {
    let e: ketcare_app::Error = e.into();
    if matches!(e, ketcare_app::Error::Internal) {
        return anyhow::anyhow!("{e}");
    }
    let detail: Vec<String> = e
        .fields()
        .0
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect();
    anyhow::anyhow!(
        "{}",
        if detail.is_empty() {
            e.to_string()
        } else {
            detail.join("; ")
        }
    )
}

/// An administrator account acting from the shell (limit changes record who set and who approved).
async fn named_admin(store: &dyn Store, username: &str) -> Result<Actor> {
    cli_actor(store, username, Permission::UserAdmin, None, "administer").await
}

/// Account `username` acting from the shell in a role it holds, as the record has it (the
/// account's own, or one it holds at a site): at `site`, when named, the role held there; else
/// its own role where it holds that and it grants `permission`, else the one role it holds that
/// does. Refused, saying why, when the account does not exist or is disabled, does not work at
/// `site`, holds no such role, or holds several (name the site).
pub(crate) async fn cli_actor(
    store: &dyn Store,
    username: &str,
    permission: Permission,
    site: Option<i64>,
    what: &str,
) -> Result<Actor> {
    let u = store
        .user_by_username(username)
        .await?
        .with_context(|| format!("no user `{username}`"))?;
    if u.disabled {
        bail!("{username}'s account is disabled");
    }
    let held = store.sites_held(u.id).await?;
    let role = match site {
        Some(id) => {
            let role = held
                .iter()
                .find(|(s, _)| s.id == id)
                .map(|(_, r)| *r)
                .with_context(|| format!("{username} does not work at site {id}"))?;
            if !role.allows(permission) {
                bail!("{username} is a {role} at site {id}, who may not {what}");
            }
            role
        }
        None => {
            let mut fitting: Vec<Role> = Vec::new();
            for (_, r) in &held {
                if r.allows(permission) && !fitting.contains(r) {
                    fitting.push(*r);
                }
            }
            match fitting.as_slice() {
                [] => bail!(
                    "a {} may not {what}{}",
                    u.role,
                    if held.iter().any(|(_, r)| *r != u.role) {
                        " (nor does any role the account holds at a site)"
                    } else {
                        ""
                    }
                ),
                _ if fitting.contains(&u.role) => u.role,
                [one] => *one,
                several => bail!(
                    "{username} may {what} as {}; name the site to say which",
                    several
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            }
        }
    };
    Ok(Actor::user(u.id, &u.username, role, "cli"))
}

async fn audit_verify(db: &DbArgs) -> Result<()> {
    let store = db.open().await?;
    let v = store.verify_audit().await?;
    match v.broken {
        None => println!("audit chain intact: {} records", v.records),
        Some(b) => {
            println!("{b}");
            bail!("the audit log has been altered")
        }
    }
    verify_anchors(db, store.as_ref(), Some(ketcare_store::Chain::Audit)).await
}

/// Checks the chain's anchors kept outside the database, when there are any (after a `verify`
/// of the chain itself, which a rewrite of every hash would pass).
/// `chain` None: every site's ledger.
async fn verify_anchors(
    db: &DbArgs,
    store: &dyn Store,
    chain: Option<ketcare_store::Chain>,
) -> Result<()> {
    if !db.data.join(ketcare_app::anchors::ANCHOR_FILE).exists() {
        println!(
            "no anchors outside the database yet ({} is written by `serve` and `ketcare audit anchor`)",
            ketcare_app::anchors::ANCHOR_FILE
        );
        return Ok(());
    }
    let anchors =
        ketcare_app::anchors::Anchors::open(&db.data).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = match chain {
        Some(chain) => anchors.verify(store, chain).await,
        None => anchors.verify_ledgers(store).await,
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if report.is_clean() {
        println!("{} anchors outside the database agree", report.checked);
        Ok(())
    } else {
        for p in &report.problems {
            println!("{p}");
        }
        bail!(
            "the {} disagrees with its anchors",
            chain.map_or("ledger".into(), |c| format!("{} chain", c.name()))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://ket:secret@db:5432/k"),
            "postgres://ket:***@db:5432/k"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[tokio::test]
    async fn demo_is_refused_on_a_clinics_own_database() {
        let dir = std::env::temp_dir().join(format!("ketcare-own-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("own.db").display());
        let store = ketcare_store::open(&url).await.unwrap();
        store
            .create_user(
                &Actor::system(Role::Administrator),
                &ketcare_store::NewUser {
                    username: "chief".into(),
                    display_name: "Chief Admin".into(),
                    role: Role::Administrator,
                    password_hash: "not-a-hash".into(),
                },
            )
            .await
            .unwrap();
        let e = demo::seed(store.as_ref(), jiff::civil::date(2026, 11, 22))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--demo refused"), "{e}");
        assert_eq!(store.count("users").await.unwrap(), 1);
        assert_eq!(store.count("patients").await.unwrap(), 0);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_data_folder_and_database_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ketcare-perm-{}", std::process::id()));
        let db = DbArgs {
            data: dir.clone(),
            database_url: None,
            db_pool_size: None,
            db_lock_timeout_ms: 10_000,
            db_statement_timeout_ms: 60_000,
            vitals_queue: 1024,
            vitals_batch: 256,
            read_database_url: None,
        };
        let _store = db.open().await.unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("ketcare.db")), 0o600);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn demo_seeds_every_role_and_minors_with_guardians() {
        let dir = std::env::temp_dir().join(format!("ketcare-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("demo.db").display());
        let store = ketcare_store::open(&url).await.unwrap();
        let today = jiff::civil::date(2026, 11, 22);
        assert!(demo::seed(store.as_ref(), today).await.unwrap());
        assert!(
            !demo::seed(store.as_ref(), today).await.unwrap(),
            "seeding twice"
        );
        // The seven roles at the main site, North clinic's nurse and pharmacist, and the float
        // nurse who is North's scheduler.
        assert_eq!(store.count("users").await.unwrap(), 10);
        let float = store.user_by_username("float").await.unwrap().unwrap();
        let held: Vec<(i64, Role)> = store
            .sites_held(float.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(s, r)| (s.id, r))
            .collect();
        assert_eq!(held, [(1, Role::Nurse), (2, Role::Scheduler)]);
        assert_eq!(store.count("patients").await.unwrap(), 20);
        // Two sites; the medical director works at both, the main site's nurse at one.
        let director = store.user_by_username("prescriber").await.unwrap().unwrap();
        let director = Actor::user(director.id, "prescriber", Role::Prescriber, "test");
        assert_eq!(store.sites(&director).await.unwrap().len(), 2);
        let main_nurse = store.user_by_username("nurse").await.unwrap().unwrap();
        let main_nurse = Actor::user(main_nurse.id, "nurse", Role::Nurse, "test");
        assert_eq!(
            store.my_sites(&main_nurse).await.unwrap(),
            ketcare_store::SiteScope::Only(vec![1])
        );
        assert!(store.verify_ledger().await.unwrap().broken.is_none());
        // North sets its own heart-rate alarm; the main site keeps the organisation's.
        let (key, north_value) = crate::demo_sites::NORTH_HEART_RATE_ALARM;
        let north = ketcare_app::clinical::settings_at(store.as_ref(), 2)
            .await
            .unwrap();
        assert_eq!(north.settings.value(key), Some(north_value));
        assert!(north.is_own(key));
        let main = ketcare_app::clinical::settings_at(store.as_ref(), 1)
            .await
            .unwrap();
        assert!(!main.is_own(key));
        assert_ne!(main.settings.value(key), Some(north_value));
        let bands = AgeBands::builtin().unwrap();
        let nurse = Actor::system(Role::Nurse);
        let all = store.search_patients(&nurse, "", 200).await.unwrap();
        let mut seen = std::collections::HashSet::new();
        for s in all {
            let p = store.get_patient(&nurse, s.id).await.unwrap();
            let band = p.record.day_of_care(today, &bands).unwrap().band;
            seen.insert(band);
            if band.is_minor() {
                assert!(!p.guardians.is_empty(), "{} has no guardian", p.record.mrn);
            }
        }
        assert_eq!(seen.len(), 4, "every age band is represented");
        assert!(store.verify_audit().await.unwrap().broken.is_none());
        std::fs::remove_dir_all(&dir).ok();
    }
}
