//! `ketcare bench fhir`: the FHIR edge on a synthetic clinic, through the same router the server
//! runs (in process, no network): the p50/p95 of `Observation?patient=…&category=vital-signs&
//! date=ge…` and a system Bulk Data export's rate (resources/s) and the process's peak memory
//! before and after it.

use crate::cli_bench_pages::{bench_nurse_token, pct};
use crate::demo_sessions::running;
use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::{Timestamp, ToSpan};
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::{Actor, Role};
use ketcare_session::RulesFile;
use ketcare_session::vitals::{VitalReading, VitalSource, Vitals};
use ketcare_store::Store;
use ketcare_web::AppState;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

#[derive(clap::Args)]
pub struct BenchFhirArgs {
    /// Patients in the synthetic clinic.
    #[arg(long, default_value_t = 300)]
    pub patients: usize,
    /// How many of them (the first) have a session in a chair with readings; all when not
    /// given. The rest are registered patients with a clinical record only, as most of a large
    /// clinic's patients are between courses.
    #[arg(long)]
    pub sessions: Option<usize>,
    /// Readings per session (one every 5 minutes; each gives 3 to 4 Observations).
    #[arg(long, default_value_t = 24)]
    pub readings: usize,
    /// Searches timed.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// The export's `_type` (comma-separated); every exported type when not given.
    #[arg(long)]
    pub export_types: Option<String>,
}

/// The process's peak resident memory so far (VmHWM), in MB, where the system says.
fn peak_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn call(
    app: &axum::Router,
    req: Request<Body>,
) -> Result<(StatusCode, axum::http::HeaderMap, axum::body::Bytes)> {
    let res = app.clone().oneshot(req).await?;
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
    Ok((status, headers, body))
}

pub async fn bench_fhir(store: Arc<dyn Store>, args: BenchFhirArgs) -> Result<()> {
    let library = ketcare_app::clinical::load_library(store.as_ref())
        .await
        .map_err(anyhow::Error::msg)?;
    let bands = ketcare_core::AgeBands::builtin().context("age bands")?;
    let exports = tempfile_dir()?;
    let state = AppState::new(
        store.clone(),
        ketcare_web::WebConfig::default(),
        bands,
        library.clone(),
    )
    .with_export_dir(exports.clone());
    let app = ketcare_web::router(state);
    let tag = format!("{}", Timestamp::now().as_second() % 100_000);
    let nurse = Actor::system(Role::Nurse);
    let rules = RulesFile::builtin(library.sources()).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The synthetic clinic's own settings, so its sessions can run: its configuration, not
    // recommendations (the real site's settings are not touched).
    let settings = SiteSettings::new()
        .with("session.ketamine.bp_gate_systolic_mmhg", 160.0)
        .with("session.ketamine.bp_gate_diastolic_mmhg", 100.0);
    let protocol = Library::builtin()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .get("trd-adult-iv-ketamine")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .clone();
    let plan = rules.plan(&protocol, &settings, 0);
    let today = jiff::Zoned::now().date();
    let start = Timestamp::now()
        .checked_sub(((args.readings as i64) * 5 + 5).minutes())
        .context("bench time")?;
    let with_sessions = args.sessions.unwrap_or(args.patients).min(args.patients);
    println!(
        "seeding {} patients, {with_sessions} of them with a session × {} readings ({} database)…",
        args.patients,
        args.readings,
        store.backend().as_str()
    );
    let t0 = Instant::now();
    let mut patients = Vec::new();
    for i in 0..args.patients {
        let input: ketcare_core::patient::PatientInput =
            serde_json::from_value(serde_json::json!({
                "mrn": format!("BF-{tag}-{i:05}"), "given_name": "Bench",
                "family_name": format!("Fhir {i}"), "date_of_birth": "1980-01-01",
                "sex": "female", "weight_value": 70, "weight_unit": "kg",
                "weight_measured_on": today.to_string(),
                "indications": ["Treatment-resistant depression"]
            }))?;
        let p = ketcare_core::patient::NewPatient::parse(&input, today)
            .map_err(|e| anyhow::anyhow!("bench patient: {e:?}"))?;
        let pid = store.create_patient(&nurse, &p).await?.id;
        if i >= with_sessions {
            patients.push(pid);
            if (i + 1) % 5000 == 0 {
                println!("  {} patients seeded", i + 1);
            }
            continue;
        }
        let s = running(&plan, &format!("Chair {i}"), start)?;
        let rec = store.create_treatment_session(&nurse, pid, &s).await?;
        for k in 0..args.readings {
            let at = start
                .checked_add(((k as i64) * 5 + 5).minutes())
                .context("bench time")?;
            let reading = VitalReading {
                at,
                vitals: Vitals {
                    systolic: Some(120.0 + (k % 7) as f64),
                    diastolic: Some(78.0),
                    heart_rate: Some(70.0 + (k % 5) as f64),
                    spo2: Some(97.0),
                    resp_rate: (k % 2 == 0).then_some(14.0),
                    ..Vitals::default()
                },
                source: VitalSource::Monitor,
                by: "BENCH".into(),
                control_id: None,
            };
            store.record_vital(&nurse, rec.id, &reading, None).await?;
        }
        patients.push(pid);
        if (i + 1) % 50 == 0 {
            println!("  {} patients seeded", i + 1);
        }
    }
    println!(
        "seeded {} patients and {} readings in {:.1} s",
        patients.len(),
        with_sessions * args.readings,
        t0.elapsed().as_secs_f64()
    );
    let token = bench_nurse_token(store.as_ref(), "fhir", &tag).await?;
    let bearer = format!("Bearer {token}");
    let since = today.to_string();

    // Searches: a patient's vital signs of today.
    let mut ms = Vec::with_capacity(args.requests);
    let mut found = 0usize;
    for i in 0..args.requests {
        let pid = patients[(i * 7) % with_sessions.max(1)];
        let req = Request::get(format!(
            "/fhir/r4/Observation?patient={pid}&category=vital-signs&date=ge{since}"
        ))
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::empty())?;
        let t = Instant::now();
        let (status, _, body) = call(&app, req).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if status != StatusCode::OK {
            anyhow::bail!("Observation search: {status}");
        }
        if i == 0 {
            let b: serde_json::Value = serde_json::from_slice(&body)?;
            found = b["total"].as_u64().unwrap_or(0) as usize;
        }
    }
    let max = ms.iter().copied().fold(0.0, f64::max);
    println!(
        "Observation?patient&category=vital-signs&date=ge: {} requests, {found} matches each; p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        args.requests,
        pct(&mut ms, 50.0),
        pct(&mut ms, 95.0),
        max
    );

    // A system export of the whole clinic.
    let before = peak_mb();
    let t = Instant::now();
    let export_path = match &args.export_types {
        Some(t) => format!("/fhir/r4/$export?_type={t}"),
        None => "/fhir/r4/$export".to_owned(),
    };
    let req = Request::get(export_path.as_str())
        .header(header::AUTHORIZATION, &bearer)
        .header("prefer", "respond-async")
        .body(Body::empty())?;
    let (status, headers, _) = call(&app, req).await?;
    if status != StatusCode::ACCEPTED {
        anyhow::bail!("export kick-off: {status}");
    }
    let location = headers
        .get(header::CONTENT_LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| {
            l.split_once("/fhir/r4")
                .map(|(_, p)| format!("/fhir/r4{p}"))
        })
        .context("Content-Location")?;
    let manifest = loop {
        let req = Request::get(location.as_str())
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())?;
        let (status, _, body) = call(&app, req).await?;
        match status {
            StatusCode::OK => break serde_json::from_slice::<serde_json::Value>(&body)?,
            StatusCode::ACCEPTED => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            other => anyhow::bail!("export status: {other}"),
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let resources: u64 = manifest["output"]
        .as_array()
        .map(|o| o.iter().map(|x| x["count"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    println!(
        "system $export: {resources} resources in {secs:.2} s ({:.0} resources/s); peak memory {} MB before, {} MB after",
        resources as f64 / secs.max(1e-9),
        before.map_or("?".into(), |m| format!("{m:.0}")),
        peak_mb().map_or("?".into(), |m| format!("{m:.0}")),
    );
    let _ = std::fs::remove_dir_all(&exports);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ketcare-bench-fhir-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
