//! Demo data for measurement-based care: an induction course followed with the PHQ-9 (a
//! trajectory that reaches response and remission) and an opioid list for a pain patient.
//! Everything is fictional.

use anyhow::{Context, Result};
use jiff::Span;
use jiff::civil::Date;
use ketcare_core::{Actor, Role};
use ketcare_store::Store;
use ketcare_store::measures::{NewCourse, NewOpioid};

/// PHQ-9 answers (days before today, the nine items).
const PHQ9: &[(i64, [i32; 9])] = &[
    (42, [3, 3, 2, 3, 2, 3, 2, 2, 0]),
    (35, [2, 2, 2, 2, 2, 2, 2, 1, 0]),
    (28, [2, 1, 1, 2, 1, 1, 1, 1, 0]),
    (21, [1, 1, 1, 1, 1, 1, 1, 1, 0]),
    (14, [1, 1, 1, 1, 0, 1, 0, 0, 0]),
    (7, [1, 0, 1, 1, 0, 0, 0, 0, 0]),
];

async fn patient_id(
    store: &dyn Store,
    actor: &Actor,
    mrn: &str,
) -> Result<ketcare_core::PatientId> {
    store
        .search_patients(actor, mrn, 1)
        .await?
        .first()
        .map(|p| p.id)
        .with_context(|| format!("demo patient {mrn}"))
}

fn days_before(today: Date, n: i64) -> Result<Date> {
    today
        .checked_sub(Span::new().days(n))
        .context("demo measures date")
}

pub async fn seed(store: &dyn Store, today: Date) -> Result<()> {
    let nurse = Actor::system(Role::Nurse);
    let depressed = patient_id(store, &nurse, "KC-1002").await?;
    let phq9 = ketcare_measures::Catalogue::builtin()?
        .instrument("phq9")
        .context("phq9 in the catalogue")?;
    for (n, answers) in PHQ9 {
        let on = days_before(today, *n)?;
        let a: Vec<Option<i32>> = answers.iter().copied().map(Some).collect();
        let score = ketcare_measures::score(phq9, &a, &Default::default())?;
        let row = ketcare_app::measures::new_response(&score, on, &format!("demo:phq9:{on}"))
            .map_err(|e| anyhow::anyhow!("demo response: {e}"))?;
        store.record_response(&nurse, depressed, &row).await?;
    }
    store
        .save_course(
            &nurse,
            depressed,
            &NewCourse {
                label: "IV ketamine induction".into(),
                instrument: "phq9".into(),
                started_on: days_before(today, 42)?.to_string(),
                ended_on: None,
                booster_score_at_least: Some(10),
                booster_days: Some(28),
            },
        )
        .await?;
    let pain = patient_id(store, &nurse, "KC-1005").await?;
    for (drug, dose, unit, per_day, route, n) in [
        ("oxycodone", 5.0, "mg", Some(3.0), "oral", 60),
        (
            "fentanyl_transdermal",
            12.0,
            "mcg/h",
            None,
            "transdermal",
            20,
        ),
    ] {
        store
            .add_opioid(
                &nurse,
                pain,
                &NewOpioid {
                    drug: drug.into(),
                    dose,
                    unit: unit.into(),
                    per_day,
                    route: Some(route.into()),
                    started_on: days_before(today, n)?.to_string(),
                },
            )
            .await?;
    }
    Ok(())
}
