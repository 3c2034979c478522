//! `ketcare demo --patients N --years Y` (the synthetic clinic) and `ketcare bench registry`:
//! the research registry's cohort outcome table on that clinic, timed through the same public
//! function the page, the API and the CLI call (`ketcare_app::registry::cohort`), then its
//! Parquet export, and — with `--duckdb PYTHON` — the same table computed by DuckDB from that
//! export in the same run, for comparison.

use anyhow::{Context, Result, bail};
use ketcare_app::registry::{CohortQuery, OutcomeTable};
use ketcare_core::{Actor, Permission};
use ketcare_research::deid::Cell;
use ketcare_store::Store;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Synthetic patients to add to the demo clinic.
    #[arg(long, default_value_t = 1000)]
    pub patients: u64,
    /// Years over which their first treatments fall (ending yesterday).
    #[arg(long, default_value_t = 2)]
    pub years: i64,
    /// The seed: the same seed and day give the same clinic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `ketcare demo`: the demo clinic (staff, settings, its twenty patients) if the database is
/// empty, then the synthetic patients. Refused on a clinic's own database.
pub async fn demo(store: &dyn Store, args: DemoArgs) -> Result<()> {
    let today = jiff::Zoned::now().date();
    crate::demo::seed(store, today).await?;
    let g =
        crate::demo_synthetic::generate(store, today, args.patients, args.years, args.seed).await?;
    println!(
        "synthetic clinic (seed {}): {} patients, {} sessions, {} vital-sign readings, {} PHQ-9 totals ({} observations) in {:.1} s ({:.0} observations/s)",
        args.seed,
        g.patients,
        g.sessions,
        g.vitals,
        g.scores,
        g.vitals + g.scores,
        g.seconds,
        (g.vitals + g.scores) as f64 / g.seconds.max(1e-9)
    );
    crate::demo::print_logins();
    Ok(())
}

#[derive(clap::Args)]
pub struct BenchRegistryArgs {
    /// The researcher account that reads the registry (the demo's by default).
    #[arg(long = "as", default_value = "researcher")]
    pub as_user: String,
    /// The cohort's indication (the table of "all depression patients": trd).
    #[arg(long, default_value = "trd")]
    pub indication: String,
    /// Timed runs of the outcome table (the figures are the median and the best).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// A Python with the `duckdb` package: computes the same table from the Parquet export.
    #[arg(long)]
    pub duckdb: Option<PathBuf>,
}

fn count(c: &Cell) -> String {
    match c {
        Cell::Count(n) => n.to_string(),
        Cell::Suppressed { below } => format!("<{below}"),
    }
}

fn rate(r: &Option<ketcare_app::registry::Rate>) -> String {
    match r {
        Some(r) => format!("{}/{}", count(&r.k), count(&r.n)),
        None => "not evaluated".into(),
    }
}

fn summary(t: &OutcomeTable) -> String {
    let cmax = t.response_by_cmax_tertile.as_ref().map_or_else(
        || "not evaluated".into(),
        |x| {
            let cuts = x
                .cut_points
                .map_or("not shown".into(), |[a, b]| format!("{a:.1}, {b:.1} ng/mL"));
            let rows: Vec<String> = x
                .tertiles
                .iter()
                .map(|(_, r)| rate(&Some(r.clone())))
                .collect();
            format!("cuts {cuts}: {}", rows.join(", "))
        },
    );
    format!(
        "subjects {}, induction completed {}, response {}, remission {}, median sessions {}; response by predicted Cmax tertile ({cmax})",
        count(&t.subjects),
        rate(&t.induction_completed),
        rate(&t.response),
        rate(&t.remission),
        t.sessions_per_subject_median
            .map_or("-".into(), |m| format!("{m}"))
    )
}

pub async fn bench(store: &dyn Store, backend: &str, args: BenchRegistryArgs) -> Result<()> {
    let actor = crate::cli_actor(
        store,
        &args.as_user,
        Permission::RegistryRead,
        None,
        "read the research registry",
    )
    .await?;
    let library = ketcare_app::clinical::cached_library(store)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let q = CohortQuery {
        indication: Some(args.indication.clone()),
        ..CohortQuery::default()
    };
    // The first read derives what no read has cached yet (session facts, subjects): timed on
    // its own, once.
    let t0 = Instant::now();
    store.registry(&actor).await?;
    println!(
        "first read (derives the session facts and subjects not cached yet): {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    // The first table after a change derives each subject's outcome and the table; the next,
    // with nothing written in between, is what the first kept (both through the same call).
    let t0 = Instant::now();
    ketcare_app::registry::cohort(store, &library, &actor, &q)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "first outcome table since the last write (derives each outcome and the table): {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..args.runs.max(1) {
        let t0 = Instant::now();
        let r = ketcare_app::registry::cohort(store, &library, &actor, &q)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t0.elapsed().as_secs_f64());
        last = Some(r);
    }
    let (rows, table) = last.context("no run")?;
    times.sort_by(f64::total_cmp);
    // Where the time goes: the store's de-identified read alone (the rest is deriving each
    // subject's outcome and the table).
    let t0 = Instant::now();
    let subjects = store.registry(&actor).await?.len();
    let read = t0.elapsed().as_secs_f64();
    println!(
        "registry outcome table ({backend}, indication {}), nothing written between reads: median {:.3} s, best {:.3} s over {} runs — {}",
        args.indication,
        times[times.len() / 2],
        times[0],
        times.len(),
        summary(&table)
    );
    println!(
        "of which the store's de-identified read of {subjects} subjects: {read:.3} s (the rest derives each outcome and the table)"
    );
    // Writes as the clinic makes them (a nurse enters a PHQ-9 for one synthetic patient), each
    // followed by the table: what a researcher waits for once the record has moved on — only
    // what changed is read from the database and derived again. As many as the timed runs.
    let nurse = Actor::system(ketcare_core::Role::Nurse);
    let writes = store
        .search_patients(&nurse, "SYN-", i64::try_from(args.runs.max(1)).unwrap_or(1))
        .await?;
    let mut after = Vec::new();
    for (i, p) in writes.iter().enumerate() {
        let key = format!(
            "bench-registry-{}-{i}",
            jiff::Timestamp::now().as_millisecond()
        );
        ketcare_app::measures::record(
            store,
            &nurse,
            p.id,
            "phq9",
            &[Some(1); 9],
            jiff::Zoned::now().date(),
            &key,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t0 = Instant::now();
        ketcare_app::registry::cohort(store, &library, &actor, &q)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        after.push(t0.elapsed().as_secs_f64());
    }
    if !after.is_empty() {
        after.sort_by(f64::total_cmp);
        println!(
            "outcome table after one write (a PHQ-9 entered for one patient, then the table; {} times): median {:.3} s, best {:.3} s",
            after.len(),
            after[after.len() / 2],
            after[0]
        );
    }
    let t0 = Instant::now();
    let parquet = ketcare_app::registry::export(
        rows.clone(),
        table.small_cell,
        ketcare_app::registry::Format::Parquet,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = std::env::temp_dir().join(format!("ketcare-bench-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("registry.parquet");
    std::fs::write(&file, &parquet)?;
    println!(
        "parquet export: {} rows, {:.1} MB in {:.3} s",
        ketcare_app::registry::rows(&rows, table.small_cell).len(),
        parquet.len() as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    if let Some(python) = &args.duckdb {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/registry_duckdb.py");
        let o = std::process::Command::new(python)
            .arg(&script)
            .arg(&file)
            .output()
            .with_context(|| format!("{}", python.display()))?;
        print!("{}", String::from_utf8_lossy(&o.stdout));
        if !o.status.success() {
            bail!("duckdb: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
