//! `ketcare loadgen`: a bedside-monitor load generator, run as its own process so the load it
//! makes is not computed inside the server it measures. One MLLP connection per chair sends
//! ORU^R01 at a steady rate, waits for each ACK (as a monitor does) and times it; with `--http`
//! it also watches the suite's event stream and times each vital's arrival there. It prints one
//! JSON line ([`LoadReport`]); `ketcare bench vitals` runs it as a child process and reads it.

use anyhow::{Context, Result};
use clap::Args;
use jiff::Timestamp;
use ketcare_session::{Vitals, hl7};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The environment variable that carries the dashboard's API token (not a flag: flags show in
/// the process list).
pub const TOKEN_ENV: &str = "KETCARE_LOADGEN_TOKEN";

#[derive(Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// The server's MLLP listener.
    #[arg(long)]
    pub mllp: SocketAddr,
    /// The patients' MRNs are this prefix and the chair's number, four digits (`BENCH-1-0007`).
    #[arg(long)]
    pub mrn_prefix: String,
    /// Chairs (one monitor connection each).
    #[arg(long, default_value_t = 200)]
    pub chairs: usize,
    /// Messages per second in all (spread evenly over the chairs).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Prefix of the messages' control ids (unique per run).
    #[arg(long, default_value = "lg")]
    pub tag: String,
    /// The server's web address: watch `/suite/events` (token from KETCARE_LOADGEN_TOKEN) and
    /// time each vital's arrival on the dashboard.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Write the control id of every message acknowledged AA to this file, one a line.
    #[arg(long)]
    pub acked_file: Option<std::path::PathBuf>,
}

/// What one run of the load generator saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadReport {
    pub target: f64,
    pub seconds: f64,
    pub sent: u64,
    pub aa: u64,
    /// AE and AR: refused, nothing stored (overload sheds with AR).
    pub refused: u64,
    /// Sent and never answered (the connection broke).
    pub unanswered: u64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub dash_p99_ms: f64,
    pub dash_seen: usize,
    /// The first refusal's text, if any.
    pub refusal: Option<String>,
}

impl LoadReport {
    /// Acknowledged messages per second.
    pub fn achieved(&self) -> f64 {
        self.aa as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

#[derive(Default)]
struct Tally {
    sent: u64,
    aa: u64,
    refused: u64,
    unanswered: u64,
    ack_ms: Vec<f64>,
    acked: Vec<String>,
    refusal: Option<String>,
}

/// The `p`th percentile of `v` (nearest rank; NaN when empty).
pub(crate) fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

/// `ketcare loadgen`: runs the load and prints the report as one JSON line.
pub async fn main(args: LoadgenArgs) -> Result<()> {
    let token = std::env::var(TOKEN_ENV).ok();
    let (report, acked) = generate(&args, token).await?;
    if let Some(path) = &args.acked_file {
        std::fs::write(path, acked.join("\n")).with_context(|| format!("{}", path.display()))?;
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Runs the load; returns the report and the control ids acknowledged AA.
pub async fn generate(
    args: &LoadgenArgs,
    token: Option<String>,
) -> Result<(LoadReport, Vec<String>)> {
    let chairs = args.chairs.max(1);
    let per_chair = args.rate / chairs as f64;
    let sent_at = Arc::new(Mutex::new(HashMap::new()));
    let dash = Arc::new(Mutex::new(HashMap::new()));
    if let (Some(http), Some(token)) = (args.http, token) {
        let dash = dash.clone();
        tokio::spawn(async move {
            if let Err(e) = watch_dashboard(http, token, dash).await {
                eprintln!("dashboard stream: {e}");
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for i in 0..chairs {
        tasks.push(tokio::spawn(monitor(
            args.mllp,
            format!("{}{i:04}", args.mrn_prefix),
            args.tag.clone(),
            per_chair,
            until,
            sent_at.clone(),
            tally.clone(),
        )));
    }
    let mut broken = 0;
    let mut first_error = None;
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            broken += 1;
            first_error.get_or_insert(e.to_string());
        }
    }
    if let Some(e) = first_error {
        eprintln!("{broken} monitor connection(s) ended early; the first: {e}");
    }
    let elapsed = start.elapsed().as_secs_f64();
    if args.http.is_some() {
        // Let the stream deliver the last events.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let mut t = std::mem::take(&mut *tally.lock().map_err(|_| anyhow::anyhow!("tally"))?);
    let mut dash_ms = Vec::new();
    {
        let sent = sent_at.lock().map_err(|_| anyhow::anyhow!("sent"))?;
        let seen = dash.lock().map_err(|_| anyhow::anyhow!("dashboard"))?;
        for (id, t0) in sent.iter() {
            if let Some(t1) = seen.get(id) {
                let t1: &Instant = t1;
                dash_ms.push(t1.saturating_duration_since(*t0).as_secs_f64() * 1000.0);
            }
        }
    }
    let report = LoadReport {
        target: args.rate,
        seconds: elapsed,
        sent: t.sent,
        aa: t.aa,
        refused: t.refused,
        unanswered: t.unanswered,
        ack_p50_ms: pct(&mut t.ack_ms, 50.0),
        ack_p99_ms: pct(&mut t.ack_ms, 99.0),
        dash_p99_ms: pct(&mut dash_ms, 99.0),
        dash_seen: dash_ms.len(),
        refusal: t.refusal.take(),
    };
    Ok((report, std::mem::take(&mut t.acked)))
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

/// One monitor: a message every `1 / per_second` seconds until `until`, each ACK awaited.
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
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
    let mut next = Instant::now() + Duration::from_millis(offset(&mrn, period));
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
        if let Ok(mut t) = tally.lock() {
            t.sent += 1;
        }
        let answered = async {
            s.write_all(&frame).await?;
            loop {
                if let hl7::Frame::Complete { payload, consumed } = hl7::mllp_deframe(&buf) {
                    buf.drain(..consumed);
                    return Ok::<_, std::io::Error>(String::from_utf8_lossy(&payload).into_owned());
                }
                let k = s.read(&mut chunk).await?;
                if k == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..k]);
            }
        }
        .await;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let Ok(mut t) = tally.lock() else {
            anyhow::bail!("tally");
        };
        let ack = match answered {
            Ok(a) => a,
            Err(e) => {
                t.unanswered += 1;
                return Err(e.into());
            }
        };
        match hl7::parse_ack(&ack) {
            Some((code, ctrl, _)) if code == "AA" && ctrl == id => {
                t.aa += 1;
                t.ack_ms.push(ms);
                t.acked.push(id);
            }
            Some((_, _, text)) => {
                t.refused += 1;
                t.refusal.get_or_insert(text);
            }
            None => t.refused += 1,
        }
        drop(t);
        next += period;
        // Behind schedule: do not burst to catch up (the achieved rate shows it).
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
    Ok(())
}

/// A fixed offset per chair within the first period, so the chairs do not send in step.
fn offset(seed: &str, period: Duration) -> u64 {
    let h = seed.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    });
    h % (period.as_millis().max(1) as u64)
}
