//! `ketcare bench pages`: server-side time of the pages staff live in — the patient's chart, a
//! session's page, the infusion suite and the home queues — on a synthetic clinic with years of
//! history, through the same router the server runs (in process, no network).

use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::{Timestamp, ToSpan};
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::{Actor, PatientId, Role};
use ketcare_session::RulesFile;
use ketcare_store::Store;
use ketcare_web::AppState;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

#[derive(clap::Args)]
pub struct BenchPagesArgs {
    /// Patients in the synthetic clinic.
    #[arg(long, default_value_t = 300)]
    pub patients: usize,
    /// Years of history: one session every four weeks and a PHQ-9 every two.
    #[arg(long, default_value_t = 2)]
    pub years: i64,
    /// Patients in the chairs now (running sessions on the suite).
    #[arg(long, default_value_t = 12)]
    pub chairs: usize,
    /// Requests timed per page.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

struct Clinic {
    patients: Vec<PatientId>,
    sessions: Vec<i64>,
}

async fn seed(store: &dyn Store, args: &BenchPagesArgs, tag: &str) -> Result<Clinic> {
    let nurse = Actor::system(Role::Nurse);
    let library = Library::builtin().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rules = RulesFile::builtin(library.sources()).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The synthetic clinic's own settings, so its sessions can run and be discharged: its
    // configuration, not recommendations (the real site's settings are not touched).
    let settings = SiteSettings::new()
        .with("session.ketamine.bp_gate_systolic_mmhg", 160.0)
        .with("session.ketamine.bp_gate_diastolic_mmhg", 100.0)
        .with("observation.ketamine_psychiatric_minutes", 60.0);
    let protocol = library
        .get("trd-adult-iv-ketamine")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = rules.plan(protocol, &settings, 0);
    let now = Timestamp::now();
    let today = jiff::Zoned::now().date();
    let sessions_each = (args.years * 13).max(1);
    let mut clinic = Clinic {
        patients: Vec::new(),
        sessions: Vec::new(),
    };
    for i in 0..args.patients {
        let input: ketcare_core::patient::PatientInput =
            serde_json::from_value(serde_json::json!({
                "mrn": format!("BP-{tag}-{i:05}"), "given_name": "Bench",
                "family_name": format!("Patient {i}"), "date_of_birth": "1980-01-01",
                "sex": "female", "weight_value": 70, "weight_unit": "kg",
                "weight_measured_on": today.to_string(),
                "indications": ["Treatment-resistant depression"]
            }))?;
        let p = ketcare_core::patient::NewPatient::parse(&input, today)
            .map_err(|e| anyhow::anyhow!("bench patient: {e:?}"))?;
        let pid = store.create_patient(&nurse, &p).await?.id;
        clinic.patients.push(pid);
        for k in 0..sessions_each {
            let start = now
                .checked_sub(((sessions_each - k) * 28 * 24).hours())
                .context("bench time")?;
            let s = crate::demo_sessions::discharged(&plan, "Chair 1", start, 60)?;
            let rec = store.create_treatment_session(&nurse, pid, &s).await?;
            clinic.sessions.push(rec.id.get());
            for half in 0..2 {
                let day = start
                    .checked_add((half * 14 * 24).hours())
                    .context("bench time")?
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .date();
                let answers: Vec<Option<i32>> = (0..9)
                    .map(|j| Some(((i + j + k as usize) % 3) as i32))
                    .collect();
                ketcare_app::measures::record(
                    store,
                    &nurse,
                    pid,
                    "phq9",
                    &answers
                        .iter()
                        .enumerate()
                        .map(|(j, a)| if j == 8 { Some(0) } else { *a })
                        .collect::<Vec<_>>(),
                    day,
                    &format!("bench-{tag}-{i}-{k}-{half}"),
                )
                .await
                .map_err(|e| anyhow::anyhow!("bench questionnaire: {e}"))?;
            }
        }
        if (i + 1) % 50 == 0 {
            println!("  {} patients seeded", i + 1);
        }
    }
    for (c, pid) in clinic.patients.iter().take(args.chairs).enumerate() {
        let s = crate::demo_sessions::running(&plan, &format!("Chair {}", c + 1), now)?;
        store.create_treatment_session(&nurse, *pid, &s).await?;
    }
    Ok(clinic)
}

pub(crate) fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len().saturating_sub(1))]
}

/// Seeds the synthetic clinic into `store` and prints p50/p95 of each page.
pub async fn bench_pages(store: Arc<dyn Store>, args: BenchPagesArgs) -> Result<()> {
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
    let app = ketcare_web::router(state);
    let tag = format!("{}", Timestamp::now().as_second() % 100_000);
    println!(
        "seeding {} patients × {} years ({} database)…",
        args.patients,
        args.years,
        store.backend().as_str()
    );
    let t0 = Instant::now();
    let clinic = seed(store.as_ref(), &args, &tag).await?;
    println!(
        "seeded {} patients, {} sessions and {} questionnaires in {:.1} s",
        clinic.patients.len(),
        clinic.sessions.len() + args.chairs.min(clinic.patients.len()),
        clinic.sessions.len() * 2,
        t0.elapsed().as_secs_f64()
    );
    // A nurse with an API token reads the pages, as a signed-in nurse would.
    let token = bench_nurse_token(store.as_ref(), "pages", &tag).await?;
    // The paths each page is read at: every patient's chart and a spread of past sessions.
    let n = args.requests;
    let pages: [(&str, Vec<String>); 4] = [
        (
            "patient chart",
            (0..n)
                .map(|i| format!("/patients/{}", clinic.patients[i % clinic.patients.len()]))
                .collect(),
        ),
        (
            "session page",
            (0..n)
                .map(|i| {
                    format!(
                        "/sessions/{}",
                        clinic.sessions[(i * 7) % clinic.sessions.len()]
                    )
                })
                .collect(),
        ),
        ("infusion suite", vec!["/suite".to_owned(); n]),
        ("home queues", vec!["/".to_owned(); n]),
    ];
    println!("page             requests   p50 ms   p95 ms   max ms");
    for (name, paths) in &pages {
        let mut ms = Vec::with_capacity(paths.len());
        for path in paths {
            let req = Request::get(path.as_str())
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())?;
            let t = Instant::now();
            let res = app.clone().oneshot(req).await?;
            let status = res.status();
            let _ = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if status != StatusCode::OK {
                anyhow::bail!("{name} {path}: {status}");
            }
        }
        let max = ms.iter().copied().fold(0.0, f64::max);
        println!(
            "{name:<16} {:>8} {:>8.1} {:>8.1} {:>8.1}",
            args.requests,
            pct(&mut ms, 50.0),
            pct(&mut ms, 95.0),
            max
        );
    }
    Ok(())
}

/// A nurse account made for a benchmark and an API token for it (`what` names the benchmark).
pub(crate) async fn bench_nurse_token(store: &dyn Store, what: &str, tag: &str) -> Result<String> {
    let admin = Actor::system(Role::Administrator);
    let user = store
        .create_user(
            &admin,
            &ketcare_store::NewUser {
                username: format!("bench-{what}-{tag}"),
                display_name: "Benchmark nurse".into(),
                role: Role::Nurse,
                password_hash: "!".into(),
            },
        )
        .await?;
    let token = format!("bench{what}{tag}{}", std::process::id());
    store
        .create_api_token(
            &admin,
            user.id,
            &ketcare_app::password::token_hash(&token),
            &format!("bench {what}"),
            None,
        )
        .await?;
    Ok(token)
}
