//! Sessions on the command line: starting the MLLP listener and the session rules with `serve`,
//! and `ketcare bench vitals`.

use anyhow::{Context, Result};
use clap::Args;
use jiff::Timestamp;
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::{Actor, Role};
use ketcare_session::hl7;
use ketcare_session::session::VerifiedDose;
use ketcare_session::{Command, RulesFile, Session, Vitals};
use ketcare_store::Store;
use ketcare_web::AppState;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the session rules ticker and, when asked, the MLLP listener for bedside monitors.
pub async fn start(state: &AppState, mllp: Option<SocketAddr>) -> Result<Option<SocketAddr>> {
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
    /// Messages per chair per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Seconds of the main run.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seconds of each step of the search for the highest sustained rate (0: skip it).
    #[arg(long, default_value_t = 10)]
    pub ramp_seconds: u64,
}

/// Running benchmark sessions (esketamine, device 1 given) for `n` new patients `BENCH-…`.
async fn seed_chairs(store: &dyn Store, n: usize, tag: &str) -> Result<Vec<String>> {
    let nurse = Actor::system(Role::Nurse);
    let library = Library::builtin().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rules = RulesFile::builtin(library.sources()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let protocol = library
        .get("trd-adult-esketamine")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = rules.plan(protocol, &SiteSettings::new(), 2);
    let today = jiff::Zoned::now().date();
    let mut mrns = Vec::new();
    for i in 0..n {
        let mrn = format!("BENCH-{tag}-{i:04}");
        let input: ketcare_core::patient::PatientInput =
            serde_json::from_value(serde_json::json!({
                "mrn": mrn, "given_name": "Bench", "family_name": format!("Chair {i}"),
                "date_of_birth": "1980-01-01", "sex": "unknown"
            }))?;
        let p = ketcare_core::patient::NewPatient::parse(&input, today)
            .map_err(|e| anyhow::anyhow!("bench patient: {e:?}"))?;
        let pid = store.create_patient(&nurse, &p).await?.id;
        let now = Timestamp::now();
        let mut s = Session::new(plan.clone(), &format!("Bench {tag} {i}"), now);
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
        store.create_treatment_session(&nurse, pid, &s).await?;
        mrns.push(mrn);
    }
    Ok(mrns)
}

#[derive(Default)]
struct Tally {
    sent: u64,
    aa: u64,
    other: u64,
    ack_ms: Vec<f64>,
    dash_ms: Vec<f64>,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

struct RunResult {
    target: f64,
    achieved: f64,
    sent: u64,
    aa: u64,
    lost: u64,
    ack_p50: f64,
    ack_p99: f64,
    dash_p99: f64,
    dash_seen: usize,
}

/// Reads the SSE stream and records, per control id, when its vital reached the dashboard.
async fn watch_dashboard(
    http: SocketAddr,
    token: String,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
) -> Result<()> {
    let mut s = TcpStream::connect(http).await?;
    let req = format!(
        "GET /suite/events HTTP/1.0\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        buf.extend_from_slice(&chunk[..n]);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(data) = line.trim_end().strip_prefix("data: ")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                && v["kind"] == "vital"
                && let Some(id) = v["data"]["control_id"].as_str()
                && let Ok(mut m) = seen.lock()
            {
                m.insert(id.to_owned(), now);
            }
        }
    }
}

async fn monitor(
    mllp: SocketAddr,
    mrn: String,
    tag: String,
    per_second: f64,
    until: Instant,
    sent_at: Arc<Mutex<HashMap<String, Instant>>>,
    tally: Arc<Mutex<Tally>>,
) -> Result<()> {
    let mut s = TcpStream::connect(mllp).await?;
    s.set_nodelay(true)?;
    let period = Duration::from_secs_f64(1.0 / per_second);
    let mut next = Instant::now() + Duration::from_millis(rand_offset(&mrn, period));
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        n += 1;
        let id = format!("{tag}-{mrn}-{n}");
        let ts = Timestamp::now().strftime("%Y%m%d%H%M%S+0000").to_string();
        let v = Vitals {
            systolic: Some(118.0 + (n % 7) as f64),
            diastolic: Some(76.0),
            heart_rate: Some(70.0 + (n % 5) as f64),
            spo2: Some(98.0),
            resp_rate: Some(14.0),
            ..Vitals::default()
        };
        let frame = hl7::mllp_frame(&hl7::build_oru(&id, &mrn, "", &ts, &v));
        let t0 = Instant::now();
        if let Ok(mut m) = sent_at.lock() {
            m.insert(id.clone(), t0);
        }
        s.write_all(&frame).await?;
        if let Ok(mut t) = tally.lock() {
            t.sent += 1;
        }
        let ack = loop {
            if let hl7::Frame::Complete { payload, consumed } = hl7::mllp_deframe(&buf) {
                buf.drain(..consumed);
                break String::from_utf8_lossy(&payload).into_owned();
            }
            let k = s.read(&mut chunk).await?;
            if k == 0 {
                anyhow::bail!("server closed the connection");
            }
            buf.extend_from_slice(&chunk[..k]);
        };
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if let Ok(mut t) = tally.lock() {
            match hl7::parse_ack(&ack) {
                Some((code, ctrl, _)) if code == "AA" && ctrl == id => {
                    t.aa += 1;
                    t.ack_ms.push(ms);
                }
                _ => t.other += 1,
            }
        }
        next += period;
        // Behind schedule: do not burst to catch up (the achieved rate shows it).
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
    Ok(())
}

fn rand_offset(seed: &str, period: Duration) -> u64 {
    let h = seed.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    });
    h % (period.as_millis().max(1) as u64)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    store: &dyn Store,
    mllp: SocketAddr,
    mrns: &[String],
    per_second: f64,
    seconds: u64,
    tag: &str,
    dash: Arc<Mutex<HashMap<String, Instant>>>,
) -> Result<RunResult> {
    let before = store.count("session_vitals").await?;
    let sent_at = Arc::new(Mutex::new(HashMap::new()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for mrn in mrns {
        tasks.push(tokio::spawn(monitor(
            mllp,
            mrn.clone(),
            tag.to_owned(),
            per_second,
            until,
            sent_at.clone(),
            tally.clone(),
        )));
    }
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            eprintln!("monitor: {e}");
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Give the dashboard stream a moment to deliver the last events.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = store.count("session_vitals").await?;
    let stored = (after - before) as u64;
    let mut t = std::mem::take(&mut *tally.lock().map_err(|_| anyhow::anyhow!("tally"))?);
    let sent = sent_at.lock().map_err(|_| anyhow::anyhow!("sent"))?;
    let dash_seen = dash.lock().map_err(|_| anyhow::anyhow!("dash"))?;
    for (id, t0) in sent.iter() {
        if let Some(t1) = dash_seen.get(id) {
            t.dash_ms
                .push(t1.saturating_duration_since(*t0).as_secs_f64() * 1000.0);
        }
    }
    let dash_count = t.dash_ms.len();
    Ok(RunResult {
        target: per_second * mrns.len() as f64,
        achieved: t.aa as f64 / elapsed,
        sent: t.sent,
        aa: t.aa,
        // Acknowledged but not stored, or sent and never acknowledged with AA.
        lost: t.aa.saturating_sub(stored) + (t.sent - t.aa),
        ack_p50: pct(&mut t.ack_ms, 50.0),
        ack_p99: pct(&mut t.ack_ms, 99.0),
        dash_p99: pct(&mut t.dash_ms, 99.0),
        dash_seen: dash_count,
    })
}

fn print(r: &RunResult, label: &str) {
    println!(
        "{label}: target {:.0} msg/s, achieved {:.1} msg/s; sent {}, ACK AA {}, lost {}; ACK p50 {:.1} ms, p99 {:.1} ms; vital-to-dashboard p99 {:.1} ms ({} seen on the dashboard)",
        r.target, r.achieved, r.sent, r.aa, r.lost, r.ack_p50, r.ack_p99, r.dash_p99, r.dash_seen
    );
}

/// `ketcare bench vitals`: starts a server (web + MLLP) on the configured database, seeds
/// running sessions, streams ORU^R01 over MLLP from one connection per chair, watches the suite's
/// event stream, and reports throughput, ACK latency, dashboard latency and losses; then steps the
/// rate up to find the highest rate that keeps ACK p99 under 50 ms, dashboard p99 under 1 s and
/// loses nothing.
pub async fn bench_vitals(store: Arc<dyn Store>, args: BenchVitalsArgs) -> Result<()> {
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
    let mllp = start(&state, Some("127.0.0.1:0".parse()?))
        .await?
        .context("MLLP listener")?;
    // A nurse account and API token for the dashboard stream.
    let admin = Actor::system(Role::Administrator);
    let tag = format!("{}", Timestamp::now().as_second() % 100000);
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
    let token = format!("bench{tag}{}", std::process::id());
    store
        .create_api_token(
            &admin,
            user.id,
            &ketcare_app::password::token_hash(&token),
            "bench",
            None,
        )
        .await?;
    println!("seeding {} running sessions…", args.chairs);
    let mrns = seed_chairs(store.as_ref(), args.chairs, &tag).await?;
    let dash = Arc::new(Mutex::new(HashMap::new()));
    tokio::spawn(watch_dashboard(http, token, dash.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "streaming: {} chairs × {} msg/s × {} s over MLLP ({} database)",
        args.chairs,
        args.rate,
        args.seconds,
        store.backend().as_str()
    );
    let main = run(
        store.as_ref(),
        mllp,
        &mrns,
        args.rate,
        args.seconds,
        &format!("m{tag}"),
        dash.clone(),
    )
    .await?;
    print(&main, "main run");
    if args.ramp_seconds == 0 {
        return Ok(());
    }
    let ok = |r: &RunResult| {
        r.lost == 0 && r.ack_p99 < 50.0 && r.dash_p99 < 1000.0 && r.achieved >= 0.95 * r.target
    };
    let mut best = if ok(&main) { Some(main.achieved) } else { None };
    let mut rate = args.rate;
    for step in 0..8 {
        rate *= 2.0;
        let r = run(
            store.as_ref(),
            mllp,
            &mrns,
            rate,
            args.ramp_seconds,
            &format!("r{step}{tag}"),
            dash.clone(),
        )
        .await?;
        print(&r, &format!("step {}", step + 1));
        if !ok(&r) {
            break;
        }
        best = Some(r.achieved);
    }
    match best {
        Some(b) => println!(
            "highest sustained rate: {b:.0} msg/s (ACK p99 < 50 ms, dashboard p99 < 1 s, none lost)"
        ),
        None => println!("no rate met ACK p99 < 50 ms, dashboard p99 < 1 s and none lost"),
    }
    Ok(())
}
