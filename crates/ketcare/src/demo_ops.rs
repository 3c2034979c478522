//! The demo clinic's operations: three chairs, the prescriber on site on weekdays, consent
//! documents for three protocols, and stock received by the pharmacist. Demo data only: the
//! ketamine NDCs and lots are made up (marked DEMO); the esketamine kit NDC is the one the
//! reference cites [R5].

use anyhow::{Context, Result};
use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use ketcare_core::Actor;
use ketcare_ops::consent::{Section, SectionKind};
use ketcare_ops::ledger::LedgerEvent;
use ketcare_store::{NewConsentDocument, Store};

async fn staff(store: &dyn Store, username: &str) -> Result<Actor> {
    let u = store
        .user_by_username(username)
        .await?
        .with_context(|| format!("demo user {username}"))?;
    Ok(Actor::user(u.id, &u.username, u.role, "demo"))
}

fn sections(off_label: bool, drug: &str) -> Vec<Section> {
    let text = |k: SectionKind| {
        match k {
        SectionKind::OffLabelUse => format!(
            "{drug} is not approved for this use; your prescriber recommends it off-label and will explain the evidence."
        ),
        SectionKind::AbusePotential => format!(
            "{drug} is a Schedule III controlled substance and can be misused; it is given only here, under supervision."
        ),
        SectionKind::SideEffects => "Common: dissociation, dizziness, nausea, sedation and a rise in blood pressure during and after the session. Serious but rare: loss of consciousness, breathing problems, misuse. Tell the team at once if you feel unwell.".to_owned(),
        SectionKind::Alternatives => "Other antidepressant medicines, psychotherapy, electroconvulsive therapy and other treatments exist; you may choose them instead.".to_owned(),
        SectionKind::NotStandalone => format!(
            "{drug} is not a standalone treatment: it is part of a plan that includes your other care."
        ),
        SectionKind::NoDrivingUntilNextDay => "Do not drive or operate machinery until the next day after a restful sleep; arrange transport home.".to_owned(),
    }
    };
    SectionKind::ALL
        .into_iter()
        .filter(|k| off_label || *k != SectionKind::OffLabelUse)
        .map(|kind| Section {
            kind,
            text: text(kind),
        })
        .collect()
}

/// Seeds the operations demo data once (nothing if a chair exists).
pub async fn seed(store: &dyn Store, today: Date) -> Result<()> {
    let scheduler = staff(store, "scheduler").await?;
    if !store.chairs(&scheduler).await?.is_empty() {
        return Ok(());
    }
    for name in ["Chair 1", "Chair 2", "Chair 3"] {
        store.add_chair(&scheduler, name).await?;
    }
    let prescriber = store
        .user_by_username("prescriber")
        .await?
        .context("demo prescriber")?;
    for d in 0..20 * 7 {
        let day = today.checked_add(d.days())?;
        if matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
            continue;
        }
        store
            .add_on_site(
                &scheduler,
                prescriber.id,
                day.at(8, 0, 0, 0),
                day.at(18, 0, 0, 0),
            )
            .await?;
    }
    let nurse = staff(store, "nurse").await?;
    for (protocol, version, off_label, drug, title) in [
        (
            "trd-adult-iv-ketamine",
            1,
            true,
            "Ketamine",
            "Intravenous ketamine for depression",
        ),
        (
            "trd-adolescent-iv-ketamine-yale",
            1,
            true,
            "Ketamine",
            "Intravenous ketamine for depression (13–17 years)",
        ),
        (
            "trd-adult-esketamine",
            1,
            false,
            "Esketamine (Spravato)",
            "Esketamine nasal spray for treatment-resistant depression",
        ),
    ] {
        store
            .add_consent_document(
                &nurse,
                &NewConsentDocument {
                    protocol_id: protocol.into(),
                    protocol_version: version,
                    off_label,
                    title: title.into(),
                    sections: sections(off_label, drug),
                    valid_days: Some(365),
                },
            )
            .await?;
    }
    let pharmacist = staff(store, "pharmacist").await?;
    let expiry = today.checked_add(18.months())?;
    for (product, ndc, lot, quantity) in [
        ("ketamine-50", "99999-0050-01", "DEMO-K50-1", 4),
        ("ketamine-10", "99999-0010-01", "DEMO-K10-1", 2),
        ("esketamine-28", "50458-028-02", "DEMO-E28-1", 6),
    ] {
        store
            .ledger_append(
                &pharmacist,
                &LedgerEvent::Receive {
                    product: product.into(),
                    ndc: ndc.into(),
                    lot: lot.into(),
                    expiry,
                    quantity,
                    invoice: "DEMO-INV-1".into(),
                    supplier: "Demo wholesaler".into(),
                },
            )
            .await?;
    }
    Ok(())
}
