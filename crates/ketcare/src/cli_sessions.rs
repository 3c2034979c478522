//! Sessions on the command line: starting the MLLP listener and the session rules with `serve`,
//! and `ketcare bench vitals`.

use crate::cli_loadgen::{LoadReport, pct};
use anyhow::{Context, Result};
use clap::Args;
use jiff::Timestamp;
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::SessionId;
use ketcare_core::{Actor, Role};
use ketcare_session::session::VerifiedDose;
use ketcare_session::{Command, RulesFile, Session};
use ketcare_store::Store;
use ketcare_web::AppState;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Joins the live events of the other processes on the database at `url` (PostgreSQL
/// LISTEN/NOTIFY; nothing on SQLite), then starts the session rules ticker and, when asked, the
/// MLLP listener for bedside monitors.
pub async fn start(
    state: &AppState,
    url: &str,
    mllp: Option<SocketAddr>,
) -> Result<Option<SocketAddr>> {
    if let Some(bus) = ketcare_store::bus::connect(url, "ketcare_live")
        .await
        .map_err(|e| anyhow::anyhow!("joining the other processes' live events: {e}"))?
    {
        state.live.attach(bus);
    }
    ketcare_web::sessions::service::spawn_ticker(state.clone(), 10);
    let Some(addr) = mllp else { return Ok(None) };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("MLLP listening on {addr}"))?;
    let bound = listener.local_addr()?;
    println!("ketcare MLLP (HL7 v2 ORU^R01) listening on {bound}");
    tokio::spawn(ketcare_web::sessions::mllp::serve(state.clone(), listener));
    Ok(Some(bound))
}

#[derive(Args, Debug, Clone)]
pub struct BenchVitalsArgs {
    /// Chairs (one monitor connection each).
    #[arg(long, default_value_t = 200)]
    pub chairs: usize,
    /// Messages per chair per second in the main run.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Seconds of the main run.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Total rates (messages per second over all chairs) of the steps after the main run.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,3000")]
    pub steps: Vec<f64>,
    /// Seconds of each step (0: no steps).
    #[arg(long, default_value_t = 10)]
    pub ramp_seconds: u64,
    /// Instead of the runs: the server as a child process, killed with SIGKILL halfway through
    /// a run at the last step's rate, restarted, and every vital it acknowledged looked for.
    #[arg(long)]
    pub sigkill: bool,
    /// During the main run, also compute the registry's cohort outcome table (every patient)
    /// and write its Parquet export, one after the other without pause, as a researcher would
    /// (the functions the registry page, API and CLI call); reports their times.
    #[arg(long)]
    pub with_registry: bool,
}

/// Running benchmark sessions (esketamine, device 1 given) for `n` new patients
/// `BENCH-{tag}-{i:04}`; returns the sessions, chair by chair.
async fn seed_chairs(store: &dyn Store, n: usize, tag: &str) -> Result<Vec<SessionId>> {
    let nurse = Actor::system(Role::Nurse);
    let library = Library::builtin().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rules = RulesFile::builtin(library.sources()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let protocol = library
        .get("trd-adult-esketamine")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = rules.plan(protocol, &SiteSettings::new(), 2);
    let today = jiff::Zoned::now().date();
    let mut sessions = Vec::new();
    for i in 0..n {
        let mrn = format!("{}{i:04}", mrn_prefix(tag));
        let input: ketcare_core::patient::PatientInput =
            serde_json::from_value(serde_json::json!({
                "mrn": mrn, "given_name": "Bench", "family_name": format!("Chair {i}"),
                "date_of_birth": "1980-01-01", "sex": "unknown"
            }))?;
        let p = ketcare_core::patient::NewPatient::parse(&input, today)
            .map_err(|e| anyhow::anyhow!("bench patient: {e:?}"))?;
        let pid = store.create_patient(&nurse, &p).await?.id;
        let now = Timestamp::now();
        // A chair of the first site (a clinic of several sites holds a session in a site's
        // chair); one left by an earlier run is used again.
        let chair = format!("Bench {tag} {i}");
        let _ = store
            .add_chair_at(
                &Actor::system(Role::Scheduler),
                Some(ketcare_store::sites::DEFAULT_SITE),
                &chair,
            )
            .await;
        let mut s = Session::new(plan.clone(), &chair, now);
        s.apply(
            &Command::AttachDose {
                dose: VerifiedDose {
                    order_id: 0,
                    summary: "benchmark (no order)".into(),
                    author: "bench-prescriber".into(),
                    verified_by: "bench-pharmacist".into(),
                    devices: 2,
                    dose_mg: None,
                    delivery: Default::default(),
                },
            },
            "bench",
            now,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Synthetic chairs for the vitals benchmark: no consent record, like no dose order.
        let consent = ketcare_session::session::ConsentCheck {
            valid: true,
            reason: None,
            message: "benchmark session (no consent record)".into(),
            at: now,
        };
        crate::demo_sessions::to_running(&mut s, "bench", now, consent)?;
        sessions.push(store.create_treatment_session(&nurse, pid, &s).await?.id);
    }
    Ok(sessions)
}

fn mrn_prefix(tag: &str) -> String {
    format!("BENCH-{tag}-")
}

/// One run's figures: the load generator's, the readings stored, and the reads made meanwhile.
struct RunResult {
    load: LoadReport,
    stored: u64,
    read_p99_ms: f64,
    /// With `--with-registry`: seconds of each outcome table and of each export made meanwhile.
    registry: Option<(Vec<f64>, Vec<f64>)>,
}

impl RunResult {
    /// Acknowledged AA but not in the database.
    fn lost(&self) -> u64 {
        self.load.aa.saturating_sub(self.stored)
    }

    fn meets_targets(&self) -> bool {
        self.lost() == 0
            && self.load.unanswered == 0
            && self.load.refused == 0
            && self.load.ack_p99_ms < 50.0
            && self.load.dash_p99_ms < 1000.0
            && self.load.achieved() >= 0.95 * self.load.target
    }
}

/// Where the load generator sends, and what it needs to watch the dashboard.
struct Target {
    mllp: SocketAddr,
    http: SocketAddr,
    token: String,
    tag: String,
}

/// Runs `ketcare loadgen` (this binary, as a child process) against the server at `rate`
/// messages per second for `seconds`, while this process reads session records the way a page
/// does, to see whether reads wait behind the vitals.
async fn run(
    store: &Arc<dyn Store>,
    target: &Target,
    chairs: &[SessionId],
    rate: f64,
    seconds: u64,
    run_tag: &str,
    with_registry: bool,
) -> Result<RunResult> {
    let before = store.count("session_vitals").await?;
    let exe = std::env::current_exe().context("this program's path")?;
    let child = tokio::process::Command::new(exe)
        .arg("loadgen")
        .args(["--mllp", &target.mllp.to_string()])
        .args(["--http", &target.http.to_string()])
        .args(["--mrn-prefix", &mrn_prefix(&target.tag)])
        .args(["--chairs", &chairs.len().to_string()])
        .args(["--rate", &rate.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .args(["--tag", run_tag])
        .env(crate::cli_loadgen::TOKEN_ENV, &target.token)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the load generator")?;
    let reading = Arc::new(AtomicBool::new(true));
    let reader = tokio::spawn(read_meanwhile(
        store.clone(),
        chairs.to_vec(),
        reading.clone(),
    ));
    let researcher =
        with_registry.then(|| tokio::spawn(registry_meanwhile(store.clone(), reading.clone())));
    let out = child
        .wait_with_output()
        .await
        .context("the load generator")?;
    reading.store(false, Ordering::Relaxed);
    let mut read_ms = reader.await.unwrap_or_default();
    let registry = match researcher {
        Some(task) => Some(task.await.context("the registry reads")??),
        None => None,
    };
    anyhow::ensure!(
        out.status.success(),
        "the load generator failed: {}",
        out.status
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let load: LoadReport = serde_json::from_str(line.trim())
        .with_context(|| format!("the load generator's report: {line}"))?;
    let after = store.count("session_vitals").await?;
    Ok(RunResult {
        load,
        stored: (after - before) as u64,
        read_p99_ms: pct(&mut read_ms, 99.0),
        registry,
    })
}

/// While `on`: the cohort outcome table of every patient, then its Parquet export, again and
/// again, as a researcher (the public functions the registry's page, API and CLI call).
/// Returns the seconds of each table and each export.
async fn registry_meanwhile(
    store: Arc<dyn Store>,
    on: Arc<AtomicBool>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let researcher = Actor::system(Role::Researcher);
    let library = ketcare_app::clinical::cached_library(store.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let q = ketcare_app::registry::CohortQuery::default();
    let (mut tables, mut exports) = (Vec::new(), Vec::new());
    while on.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let (rows, table) =
            ketcare_app::registry::cohort(store.as_ref(), &library, &researcher, &q)
                .await
                .map_err(|e| anyhow::anyhow!("the cohort outcome table: {e}"))?;
        tables.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        let parquet = ketcare_app::registry::export(
            rows,
            table.small_cell,
            ketcare_app::registry::Format::Parquet,
        )
        .await
        .map_err(|e| anyhow::anyhow!("the Parquet export: {e}"))?;
        std::hint::black_box(parquet);
        exports.push(t0.elapsed().as_secs_f64());
    }
    Ok((tables, exports))
}

/// Reads one chair's session record (an audited read, as the session page makes) every 50 ms
/// while `on`; returns each read's time in milliseconds.
async fn read_meanwhile(
    store: Arc<dyn Store>,
    chairs: Vec<SessionId>,
    on: Arc<AtomicBool>,
) -> Vec<f64> {
    let nurse = Actor::system(Role::Nurse);
    let mut times = Vec::new();
    let mut i = 0;
    while on.load(Ordering::Relaxed) && !chairs.is_empty() {
        let t0 = Instant::now();
        if store
            .session_record(&nurse, chairs[i % chairs.len()])
            .await
            .is_ok()
        {
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    times
}

fn print(r: &RunResult, label: &str) {
    let l = &r.load;
    println!(
        "{label}: target {:.0} msg/s, achieved {:.1} msg/s; sent {}, ACK AA {}, refused (AE/AR) {}, unanswered {}, lost {}; ACK p50 {:.1} ms, p99 {:.1} ms; vital-to-dashboard p99 {:.1} ms ({} seen); session read p99 {:.1} ms",
        l.target,
        l.achieved(),
        l.sent,
        l.aa,
        l.refused,
        l.unanswered,
        r.lost(),
        l.ack_p50_ms,
        l.ack_p99_ms,
        l.dash_p99_ms,
        l.dash_seen,
        r.read_p99_ms
    );
    if let Some(why) = &l.refusal {
        println!("  first refusal: {why}");
    }
    if let Some((tables, exports)) = &r.registry {
        let (mut tables, mut exports) = (tables.clone(), exports.clone());
        println!(
            "  meanwhile, as a researcher: {} cohort outcome tables (median {:.3} s, slowest {:.3} s) and {} Parquet exports (median {:.3} s)",
            tables.len(),
            pct(&mut tables, 50.0),
            pct(&mut tables, 100.0),
            exports.len(),
            pct(&mut exports, 50.0),
        );
    }
}

/// A nurse account and API token for the dashboard stream; returns the token.
async fn dashboard_token(store: &dyn Store, tag: &str) -> Result<String> {
    let admin = Actor::system(Role::Administrator);
    let user = store
        .create_user(
            &admin,
            &ketcare_store::NewUser {
                username: format!("bench-nurse-{tag}"),
                display_name: "Benchmark nurse".into(),
                role: Role::Nurse,
                password_hash: "!".into(),
            },
        )
        .await?;
    let token = ketcare_app::password::new_api_token();
    store
        .create_api_token(
            &admin,
            user.id,
            &ketcare_app::password::token_hash(&token),
            "bench",
            None,
        )
        .await?;
    Ok(token)
}

/// `ketcare bench vitals`: starts a server (web + MLLP) on the configured database, seeds
/// running sessions, and runs `ketcare loadgen` as a separate process, which streams ORU^R01
/// over MLLP from one connection per chair and watches the suite's event stream; reports
/// throughput, ACK latency, dashboard latency, refusals and losses, and the time of session
/// reads made meanwhile; then runs each step of `--steps` and reports the highest rate that
/// keeps ACK p99 under 50 ms, dashboard p99 under 1 s, refuses nothing and loses nothing.
/// With `--sigkill`, the SIGKILL check instead ([`sigkill`]).
pub async fn bench_vitals(
    store: Arc<dyn Store>,
    db: &ServerDb<'_>,
    args: BenchVitalsArgs,
) -> Result<()> {
    if args.with_registry {
        // The first read derives what no read has cached yet: made here, before the clock runs.
        let t0 = Instant::now();
        let library = ketcare_app::clinical::cached_library(store.as_ref())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let researcher = Actor::system(Role::Researcher);
        let q = ketcare_app::registry::CohortQuery::default();
        let (rows, _) = ketcare_app::registry::cohort(store.as_ref(), &library, &researcher, &q)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "--with-registry needs a registry to read (`ketcare demo` makes one): {e}"
                )
            })?;
        println!(
            "the registry's cohort of every patient: {} subjects (first read {:.1} s)",
            rows.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    let tag = format!("{}", Timestamp::now().as_second() % 100000);
    let token = dashboard_token(store.as_ref(), &tag).await?;
    println!("seeding {} running sessions…", args.chairs);
    let chairs = seed_chairs(store.as_ref(), args.chairs, &tag).await?;
    if args.sigkill {
        return sigkill(&store, db, &args, &chairs, &tag).await;
    }
    let library = ketcare_app::clinical::load_library(store.as_ref())
        .await
        .map_err(anyhow::Error::msg)?;
    let bands = ketcare_core::AgeBands::builtin().context("age bands")?;
    let state = AppState::new(
        store.clone(),
        ketcare_web::WebConfig::default(),
        bands,
        library,
    );
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = http_listener.local_addr()?;
    let app = ketcare_web::router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(
            http_listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let mllp = start(&state, db.url, Some("127.0.0.1:0".parse()?))
        .await?
        .context("MLLP listener")?;
    let target = Target {
        mllp,
        http,
        token,
        tag: tag.clone(),
    };
    println!(
        "streaming: {} chairs × {} msg/s × {} s over MLLP from `ketcare loadgen` ({} database)",
        args.chairs,
        args.rate,
        args.seconds,
        store.backend().as_str()
    );
    let rate = args.rate * args.chairs as f64;
    let main = run(
        &store,
        &target,
        &chairs,
        rate,
        args.seconds,
        &format!("m{tag}"),
        args.with_registry,
    )
    .await?;
    print(&main, "main run");
    if args.ramp_seconds == 0 {
        return Ok(());
    }
    let mut best = main.meets_targets().then_some(main.load.achieved());
    for (step, rate) in args.steps.iter().enumerate() {
        let r = run(
            &store,
            &target,
            &chairs,
            *rate,
            args.ramp_seconds,
            &format!("r{step}{tag}"),
            false,
        )
        .await?;
        print(&r, &format!("step {} ({rate:.0} msg/s)", step + 1));
        println!(
            "  {rate:.0} vitals/s sustained with ACK p99 < 50 ms, dashboard p99 < 1 s, nothing lost or refused: {}",
            if r.meets_targets() { "yes" } else { "no" }
        );
        if r.meets_targets() {
            best = Some(best.map_or(r.load.achieved(), |b: f64| b.max(r.load.achieved())));
        }
    }
    match best {
        Some(b) => println!(
            "highest sustained rate: {b:.0} msg/s (ACK p99 < 50 ms, dashboard p99 < 1 s, none lost or refused)"
        ),
        None => println!("no rate met ACK p99 < 50 ms, dashboard p99 < 1 s and none lost"),
    }
    Ok(())
}

/// The database a `ketcare serve` child runs on: its URL, and the data folder for its other
/// files (the anchors).
pub struct ServerDb<'a> {
    pub url: &'a str,
    pub data: &'a std::path::Path,
}

/// A `ketcare serve` child process on `db`; returns it with its MLLP address once it listens.
async fn serve_child(db: &ServerDb<'_>) -> Result<(tokio::process::Child, SocketAddr)> {
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe().context("this program's path")?;
    let mut child = tokio::process::Command::new(exe)
        .arg("--data")
        .arg(db.data)
        .args(["--database-url", db.url])
        .args(["serve", "--addr", "127.0.0.1:0", "--mllp", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting `ketcare serve`")?;
    let out = child.stdout.take().context("the server's output")?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    let mut mllp = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix("ketcare MLLP (HL7 v2 ORU^R01) listening on ") {
            mllp = Some(rest.trim().parse()?);
        }
        if line.starts_with("ketcare listening on") {
            break;
        }
    }
    // Keep reading its output so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((
        child,
        mllp.context("the server did not print its MLLP address")?,
    ))
}

/// The SIGKILL check: `ketcare serve` runs as a child process on the same database, the load
/// generator sends at the last step's rate, the server is killed with SIGKILL halfway through,
/// restarted, and every control id it acknowledged AA is looked for in the chairs' sessions
/// (through the audited read the session page makes). Fails when one is missing or stored twice.
async fn sigkill(
    store: &Arc<dyn Store>,
    db: &ServerDb<'_>,
    args: &BenchVitalsArgs,
    chairs: &[SessionId],
    tag: &str,
) -> Result<()> {
    let rate = args.steps.last().copied().unwrap_or(2000.0);
    let seconds = args.ramp_seconds.max(4);
    let (mut server, mllp) = serve_child(db).await?;
    println!(
        "SIGKILL check: {} chairs, {rate:.0} msg/s to a `ketcare serve` child ({} database); SIGKILL after {} s",
        chairs.len(),
        store.backend().as_str(),
        seconds / 2
    );
    let load = crate::cli_loadgen::LoadgenArgs {
        mllp,
        mrn_prefix: mrn_prefix(tag),
        chairs: chairs.len(),
        rate,
        seconds,
        tag: format!("k{tag}"),
        http: None,
        acked_file: None,
    };
    let sender = tokio::spawn(async move { crate::cli_loadgen::generate(&load, None).await });
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    server.start_kill().context("SIGKILL")?;
    server.wait().await?;
    let (report, acked) = sender.await.context("the load generator")??;
    println!(
        "killed at full load: {} sent, {} acknowledged AA, {} refused, {} unanswered (in flight when killed)",
        report.sent, report.aa, report.refused, report.unanswered
    );
    let (mut server, _) = serve_child(db).await?;
    let nurse = Actor::system(Role::Nurse);
    let mut stored: HashMap<String, usize> = HashMap::new();
    for sid in chairs {
        for v in store.session_vitals(&nurse, *sid).await? {
            if let Some(id) = v.reading.control_id {
                *stored.entry(id).or_default() += 1;
            }
        }
    }
    let missing = acked.iter().filter(|id| !stored.contains_key(*id)).count();
    let twice = stored.values().filter(|n| **n > 1).count();
    server.start_kill().ok();
    server.wait().await.ok();
    println!(
        "after restart: {} of {} acknowledged vitals present, {missing} lost, {twice} stored twice",
        acked.len() - missing,
        acked.len()
    );
    anyhow::ensure!(
        missing == 0 && twice == 0,
        "acknowledged vitals lost ({missing}) or stored twice ({twice}) across SIGKILL"
    );
    Ok(())
}
