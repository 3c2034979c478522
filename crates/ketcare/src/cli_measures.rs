//! `ketcare score`, `ketcare instrument list`, `ketcare mme`: the same functions the pages and
//! the API call (scores use the site's settings from the database).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ketcare_measures::{Catalogue, DoseUnit, OpioidEntry};

use crate::{DbArgs, print_json};

#[derive(Args)]
pub struct ScoreArgs {
    /// Instrument id (see `ketcare instrument list`).
    #[arg(long)]
    instrument: String,
    /// Item answers in order, comma-separated; leave a position empty or `-` when unanswered.
    #[arg(long, allow_hyphen_values = true)]
    answers: String,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum InstrumentCommand {
    /// Every instrument with its items, scoring rule and licence.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct MmeArgs {
    /// Drug id from the CDC 2022 table (morphine, oxycodone, fentanyl_transdermal, …).
    #[arg(long)]
    drug: String,
    /// Dose per administration (mg) or patch strength (mcg/h).
    #[arg(long)]
    dose: f64,
    /// mg or mcg/h.
    #[arg(long, default_value = "mg")]
    unit: String,
    /// Administrations per day (not for patches).
    #[arg(long)]
    per_day: Option<f64>,
    #[arg(long)]
    json: bool,
}

fn catalogue() -> Result<&'static Catalogue> {
    Catalogue::builtin().context("loading data/measures")
}

pub async fn score(db: &DbArgs, a: ScoreArgs) -> Result<()> {
    let store = db.open().await?;
    let (settings, _) = ketcare_app::clinical::settings(store.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = ketcare_app::measures::score_text(&a.instrument, &a.answers, &settings)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.json {
        return print_json(&r);
    }
    let inst = catalogue()?
        .instrument(&a.instrument)
        .context("instrument")?;
    println!("{}: {}", inst.name, r.display());
    if let (Some(lo), Some(hi)) = (r.total_min, r.total_max) {
        println!("range: {lo}–{hi}");
    }
    if let Some(b) = &r.band {
        println!("band: {} ({}–{})", b.label, b.min, b.max);
    }
    for c in &r.cutoffs {
        println!(
            "cut-off {} (≥ {}): {}",
            c.label,
            c.at_least,
            if c.met { "met" } else { "not met" }
        );
    }
    for d in r.domains.iter().chain(&r.subscores) {
        println!("{}: {}", d.label, d.value);
    }
    if let Some(k) = &r.item_scale_set_by_site {
        println!("item scale set by the site: {k}");
    }
    for f in &r.safety {
        println!(
            "SAFETY: item {} ({}) = {} — positive suicide-risk answer; {}",
            f.item,
            f.label,
            f.answer,
            f.note
                .as_deref()
                .unwrap_or("follow up with a clinical interview")
        );
    }
    Ok(())
}

pub fn instrument(cmd: InstrumentCommand) -> Result<()> {
    let InstrumentCommand::List { json } = cmd;
    let cat = catalogue()?;
    if json {
        return print_json(&cat.instruments);
    }
    for i in &cat.instruments {
        let range = match (i.total_max(&Default::default()), i.scoring) {
            (Some(m), _) => format!("{}–{m}", i.total_min()),
            (None, ketcare_measures::ScoringKind::AnyYes) => "positive/negative".into(),
            (None, _) => "no total".into(),
        };
        println!(
            "{:<12} {:<45} {:>2} items  {:<18} {}",
            i.id,
            i.name,
            i.items.len(),
            range,
            i.loinc_total
                .as_ref()
                .map(|c| format!("LOINC {}", c.code))
                .unwrap_or_default()
        );
    }
    Ok(())
}

pub fn mme(a: MmeArgs) -> Result<()> {
    let Some(unit) = DoseUnit::parse(&a.unit) else {
        bail!("unit: expected mg or mcg/h, got {:?}", a.unit);
    };
    let line = ketcare_measures::mme::mme(
        &catalogue()?.opioids,
        &OpioidEntry {
            drug: a.drug,
            dose: a.dose,
            unit,
            per_day: a.per_day,
            route: None,
        },
    )?;
    if a.json {
        return print_json(&line);
    }
    match line.mme_per_day {
        Some(m) => println!("{}: {m} MME/day ({})", line.name, line.formula),
        None => println!("{}: no MME computed — flagged for review", line.name),
    }
    for n in &line.notes {
        println!("note: {n}");
    }
    Ok(())
}
