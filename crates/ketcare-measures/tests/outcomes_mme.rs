//! Outcomes on constructed trajectories; MME for every opioid in the table; malformed data
//! files; properties.

use jiff::civil::{Date, date};
use ketcare_measures::mme::{DatedMme, mme, timeline, total};
use ketcare_measures::outcome::{RELAPSE_CONSECUTIVE, relapse_key};
use ketcare_measures::{
    BoosterRule, Catalogue, DataError, DoseUnit, MmeError, OpioidEntry, Point, SiteSettings,
    booster_due, course_outcome, score,
};
use proptest::prelude::*;

fn cat() -> &'static Catalogue {
    Catalogue::builtin().unwrap_or_else(|e| unreachable!("{e}"))
}

fn pts(v: &[(Date, i32)]) -> Vec<Point> {
    v.iter()
        .map(|&(date, score)| Point { date, score })
        .collect()
}

#[test]
fn phq9_response_and_remission() {
    let phq9 = cat().instrument("phq9").unwrap_or_else(|| unreachable!());
    // Baseline 20; 11 is a 45% fall (no response); 10 is exactly 50% (response); 4 < 5 remission.
    let p = pts(&[
        (date(2026, 1, 5), 20),
        (date(2026, 1, 8), 11),
        (date(2026, 1, 12), 10),
        (date(2026, 1, 19), 4),
    ]);
    let o = course_outcome(phq9, &p, &SiteSettings::new());
    assert_eq!(o.baseline.map(|b| b.score), Some(20));
    assert_eq!(o.first_response, Some(date(2026, 1, 12)));
    assert_eq!(o.first_remission, Some(date(2026, 1, 19)));
    assert_eq!(o.points[1].response, Some(false));
    assert_eq!(o.points[2].response, Some(true));
    assert_eq!(o.points[2].remission, Some(false));
    assert_eq!(o.responding_now, Some(true));
    assert_eq!(o.in_remission_now, Some(true));
    assert_eq!(o.relapse, None);
    assert!(o.notes.iter().any(|n| n.contains("relapse not evaluated")));
    // 5 is not remission (PHQ-9 < 5).
    let o = course_outcome(
        phq9,
        &pts(&[(date(2026, 1, 5), 20), (date(2026, 1, 9), 5)]),
        &SiteSettings::new(),
    );
    assert_eq!(o.first_remission, None);
}

#[test]
fn madrs_remission_and_site_choice() {
    let madrs = cat().instrument("madrs").unwrap_or_else(|| unreachable!());
    let p = pts(&[(date(2026, 2, 1), 34), (date(2026, 2, 8), 12)]);
    let o = course_outcome(madrs, &p, &SiteSettings::new());
    assert_eq!(o.first_remission, Some(date(2026, 2, 8)));
    // A site that uses ≤ 10.
    let s = SiteSettings::new().with("measures.madrs.remission_at_most", 10.0);
    let o = course_outcome(madrs, &p, &s);
    assert_eq!(o.first_remission, None);
    assert!(matches!(
        o.remission_rule.map(|r| r.provenance),
        Some(ketcare_measures::Provenance::SiteSetting { .. })
    ));
}

#[test]
fn relapse_and_time_to_relapse_with_site_rule() {
    let madrs = cat().instrument("madrs").unwrap_or_else(|| unreachable!());
    let s = SiteSettings::new()
        .with(&relapse_key("madrs"), 22.0)
        .with(RELAPSE_CONSECUTIVE, 2.0);
    let p = pts(&[
        (date(2026, 3, 1), 36),
        (date(2026, 3, 10), 14), // response (61% fall)
        (date(2026, 3, 20), 23), // one high score is not a relapse
        (date(2026, 3, 25), 15),
        (date(2026, 3, 28), 22), // first of two consecutive ≥ 22
        (date(2026, 4, 2), 25),
    ]);
    let o = course_outcome(madrs, &p, &s);
    assert_eq!(o.first_response, Some(date(2026, 3, 10)));
    assert_eq!(o.relapse, Some(date(2026, 3, 28)));
    assert_eq!(o.days_to_relapse, Some(18));
    // No response → no relapse.
    let o = course_outcome(
        madrs,
        &pts(&[
            (date(2026, 3, 1), 36),
            (date(2026, 3, 9), 30),
            (date(2026, 3, 10), 30),
        ]),
        &s,
    );
    assert_eq!((o.first_response, o.relapse), (None, None));
}

#[test]
fn unconfirmed_rules_are_not_evaluated() {
    let qids = cat()
        .instrument("qids_sr16")
        .unwrap_or_else(|| unreachable!());
    let p = pts(&[(date(2026, 1, 1), 20), (date(2026, 1, 8), 4)]);
    let o = course_outcome(qids, &p, &SiteSettings::new());
    assert_eq!(o.first_response, None);
    assert!(
        o.notes
            .iter()
            .any(|n| n.contains("measures.qids_sr16.response_fall_fraction"))
    );
    assert_eq!(o.first_remission, Some(date(2026, 1, 8)));
    let pct = SiteSettings::new().with("measures.qids_sr16.response_fall_fraction", 50.0);
    let o = course_outcome(qids, &p, &pct);
    assert_eq!(o.first_response, None);
    assert!(
        o.notes
            .iter()
            .any(|n| n.contains("fraction between 0 and 1"))
    );
    let s = SiteSettings::new().with("measures.qids_sr16.response_fall_fraction", 0.5);
    assert_eq!(
        course_outcome(qids, &p, &s).first_response,
        Some(date(2026, 1, 8))
    );
    let gad7 = cat().instrument("gad7").unwrap_or_else(|| unreachable!());
    let o = course_outcome(gad7, &p, &SiteSettings::new());
    assert!(o.response_rule.is_none() && o.first_response.is_none());
    // Zero baseline: response not evaluable.
    let phq9 = cat().instrument("phq9").unwrap_or_else(|| unreachable!());
    let o = course_outcome(
        phq9,
        &pts(&[(date(2026, 1, 1), 0), (date(2026, 1, 2), 0)]),
        &SiteSettings::new(),
    );
    assert_eq!(o.points[1].response, None);
}

#[test]
fn pain_response_is_the_immpact_30_percent() {
    let nrs = cat()
        .instrument("pain_nrs")
        .unwrap_or_else(|| unreachable!());
    let o = course_outcome(
        nrs,
        &pts(&[
            (date(2026, 1, 1), 10),
            (date(2026, 1, 2), 8),
            (date(2026, 1, 3), 7),
        ]),
        &SiteSettings::new(),
    );
    assert_eq!(o.first_response, Some(date(2026, 1, 3)));
}

#[test]
fn booster_rule() {
    let today = date(2026, 5, 30);
    let latest = Some(Point {
        date: date(2026, 5, 28),
        score: 12,
    });
    let none = booster_due(
        &BoosterRule::default(),
        latest,
        Some(date(2026, 5, 1)),
        today,
    );
    assert!(!none.due && !none.rule_set);
    let r = BoosterRule {
        score_at_least: Some(12),
        days_since_last_session: None,
    };
    assert!(booster_due(&r, latest, None, today).due);
    let r = BoosterRule {
        score_at_least: Some(13),
        days_since_last_session: Some(28),
    };
    assert!(!booster_due(&r, latest, Some(date(2026, 5, 3)), today).due); // 27 days
    let d = booster_due(&r, latest, Some(date(2026, 5, 2)), today); // 28 days
    assert!(d.due);
    assert_eq!(d.reasons.len(), 1);
}

#[test]
fn scheduled_sets() {
    use ketcare_measures::outcome::assessment_due;
    let start = date(2026, 1, 1);
    assert_eq!(assessment_due(None, start, None, date(2026, 1, 2)), None);
    assert_eq!(
        assessment_due(Some(7.0), start, None, date(2026, 1, 2)),
        Some((true, start))
    );
    let last = Some(date(2026, 1, 10));
    assert_eq!(
        assessment_due(Some(7.0), start, last, date(2026, 1, 16)),
        Some((false, date(2026, 1, 17)))
    );
    assert_eq!(
        assessment_due(Some(7.0), start, last, date(2026, 1, 17)),
        Some((true, date(2026, 1, 17)))
    );
}

fn entry(drug: &str, dose: f64, unit: DoseUnit, per_day: Option<f64>) -> OpioidEntry {
    OpioidEntry {
        drug: drug.into(),
        dose,
        unit,
        per_day,
        route: None,
    }
}

#[test]
fn mme_for_every_opioid_in_the_table() {
    let t = &cat().opioids;
    // (drug, dose, unit, per day, expected MME/day) — CDC 2022 factors (I72).
    let cases = [
        ("codeine", 30.0, DoseUnit::Mg, Some(4.0), 18.0),
        ("fentanyl_transdermal", 25.0, DoseUnit::McgPerH, None, 60.0),
        ("hydrocodone", 5.0, DoseUnit::Mg, Some(4.0), 20.0), // the table's own example
        ("hydromorphone", 2.0, DoseUnit::Mg, Some(3.0), 30.0),
        ("methadone", 10.0, DoseUnit::Mg, Some(2.0), 94.0),
        ("morphine", 15.0, DoseUnit::Mg, Some(2.0), 30.0),
        ("oxycodone", 10.0, DoseUnit::Mg, Some(2.0), 30.0), // the table's own example
        ("oxymorphone", 5.0, DoseUnit::Mg, Some(2.0), 30.0),
        ("tapentadol", 50.0, DoseUnit::Mg, Some(2.0), 40.0),
        ("tramadol", 50.0, DoseUnit::Mg, Some(4.0), 40.0),
    ];
    assert_eq!(cases.len() + 1, t.opioid.len());
    let mut lines = Vec::new();
    for (drug, dose, unit, per_day, want) in cases {
        let l = mme(t, &entry(drug, dose, unit, per_day))
            .unwrap_or_else(|e| unreachable!("{drug}: {e}"));
        assert_eq!(l.mme_per_day, Some(want), "{drug}");
        assert!(!l.flagged);
        lines.push(l);
    }
    assert_eq!(total(&lines), 392.0);
    let m = mme(t, &entry("methadone", 10.0, DoseUnit::Mg, Some(1.0)))
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert!(m.notes.iter().any(|n| n.contains("methadone")));
    let f = mme(
        t,
        &entry("fentanyl_transdermal", 12.0, DoseUnit::McgPerH, None),
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    assert!(f.notes.iter().any(|n| n.contains("mcg/h")));
    let b = mme(t, &entry("buprenorphine", 8.0, DoseUnit::Mg, Some(1.0)))
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert!(b.flagged && b.mme_per_day.is_none());
    assert_eq!(total(&[b]), 0.0);
}

#[test]
fn mme_errors_name_the_field() {
    let t = &cat().opioids;
    let cases = [
        (entry("heroin", 1.0, DoseUnit::Mg, Some(1.0)), "drug"),
        (entry("morphine", 0.0, DoseUnit::Mg, Some(1.0)), "dose"),
        (entry("morphine", f64::NAN, DoseUnit::Mg, Some(1.0)), "dose"),
        (entry("morphine", 10.0, DoseUnit::McgPerH, None), "unit"),
        (
            entry("fentanyl_transdermal", 25.0, DoseUnit::Mg, Some(1.0)),
            "unit",
        ),
        (entry("morphine", 10.0, DoseUnit::Mg, None), "per_day"),
        (entry("morphine", 10.0, DoseUnit::Mg, Some(0.0)), "per_day"),
        (
            entry("fentanyl_transdermal", 25.0, DoseUnit::McgPerH, Some(1.0)),
            "per_day",
        ),
    ];
    for (e, field) in cases {
        let err: MmeError = mme(t, &e).err().unwrap_or_else(|| unreachable!("{e:?}"));
        assert_eq!(err.field(), field, "{e:?}: {err}");
        assert!(err.to_string().starts_with(field), "{err}");
    }
}

#[test]
fn mme_timeline_steps() {
    let tl = timeline(&[
        DatedMme {
            start: date(2026, 1, 1),
            stop: Some(date(2026, 2, 1)),
            mme_per_day: 30.0,
        },
        DatedMme {
            start: date(2026, 1, 15),
            stop: None,
            mme_per_day: 60.0,
        },
    ]);
    assert_eq!(
        tl,
        vec![
            (date(2026, 1, 1), 30.0),
            (date(2026, 1, 15), 90.0),
            (date(2026, 2, 1), 60.0)
        ]
    );
}

fn parse_with(instruments: &str) -> Result<Catalogue, DataError> {
    use ketcare_measures::catalogue::{OPIOIDS_FILE, SOURCES_FILE};
    Catalogue::parse(SOURCES_FILE, ("test.toml", instruments), OPIOIDS_FILE)
}

#[test]
fn malformed_data_is_refused_with_file_line_and_field() {
    let good = ketcare_measures::catalogue::INSTRUMENTS_FILE.1;
    let cases = [
        // wording on a labels-only instrument
        (good.replacen("label = \"Item 1\"\n", "label = \"Item 1\"\ntext = \"x\"\n", 1), "phq_a.items[1].text"),
        // unknown source
        (good.replacen("source = [\"I17\"]", "source = [\"I999\"]", 1), "phq9.cutoffs"),
        // bands with a gap
        (good.replacen("{ min = 5, max = 9, label = \"mild\" }", "{ min = 6, max = 9, label = \"mild\" }", 1), "phq9.bands"),
        // a U value with a number
        (good.replacen("response = { site_setting = \"measures.qids_sr16.response_fall_fraction\", source = [], status = \"U\"", "response = { value = 0.5, site_setting = \"measures.qids_sr16.response_fall_fraction\", source = [], status = \"U\"", 1), "qids_sr16.response"),
        // unknown field
        (good.replacen("rater = \"self\"", "rater = \"self\"\ncolour = 1", 1), "instrument[0]"),
        // items out of order
        (good.replacen("n = 2\nlabel = \"Mood\"", "n = 3\nlabel = \"Mood\"", 1), "phq9.items[3]"),
    ];
    for (text, field) in cases {
        let e = parse_with(&text)
            .err()
            .unwrap_or_else(|| unreachable!("accepted: {field}"));
        let msg = e.to_string();
        assert!(msg.starts_with("test.toml:"), "{msg}");
        assert!(msg.contains(field), "{field}: {msg}");
        let line: usize = msg
            .split(':')
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        assert!(line > 1, "{msg}");
    }
}

proptest! {
    #[test]
    fn scoring_never_panics_and_totals_stay_in_range(idx in 0usize..12, raw in proptest::collection::vec(proptest::option::of(-3i32..12), 0..30)) {
        let s = SiteSettings::new().with("measures.cadss.item_max", 4.0);
        let inst = &cat().instruments[idx % cat().instruments.len()];
        if let Ok(r) = score(inst, &raw, &s)
            && let (Some(t), Some(lo), Some(hi)) = (r.total, r.total_min, r.total_max)
        {
            prop_assert!(lo <= t && t <= hi);
            if !inst.bands.is_empty() {
                prop_assert!(r.band.is_some());
            }
        }
    }

    #[test]
    fn complete_forms_always_score(idx in 0usize..12, seed in proptest::collection::vec(0i32..=10, 23)) {
        let s = SiteSettings::new().with("measures.cadss.item_max", 4.0);
        let inst = &cat().instruments[idx % cat().instruments.len()];
        let ans: Vec<Option<i32>> = inst.items.iter().zip(&seed).map(|(item, v)| {
            let (min, max) = inst.item_range(item, &s);
            let max = max.unwrap_or(min);
            Some(min + v % (max - min + 1))
        }).collect();
        let r = score(inst, &ans, &s).map_err(|e| TestCaseError::fail(format!("{}: {e}", inst.id)))?;
        if let (Some(t), Some(lo), Some(hi)) = (r.total, r.total_min, r.total_max) {
            prop_assert!(lo <= t && t <= hi);
            prop_assert_eq!(r.band.is_some(), !inst.bands.is_empty());
        }
    }

    #[test]
    fn phq9_total_is_the_sum_and_item9_flags(a in proptest::collection::vec(0i32..=3, 9)) {
        let phq9 = cat().instrument("phq9").unwrap_or_else(|| unreachable!());
        let ans: Vec<Option<i32>> = a.iter().copied().map(Some).collect();
        let r = score(phq9, &ans, &SiteSettings::new()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(r.total, Some(a.iter().sum()));
        prop_assert_eq!(r.safety.len(), usize::from(a[8] >= 1));
    }

    #[test]
    fn mme_is_linear_in_dose(dose in 0.1f64..500.0, per_day in 1u8..6, i in 0usize..10) {
        let t = &cat().opioids;
        let o = &t.opioid[i];
        let (unit, pd) = match o.unit { Some(DoseUnit::McgPerH) => (DoseUnit::McgPerH, None), _ => (DoseUnit::Mg, Some(f64::from(per_day))) };
        let one = mme(t, &entry(&o.id, dose, unit, pd)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let two = mme(t, &entry(&o.id, dose * 2.0, unit, pd)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let (Some(a), Some(b)) = (one.mme_per_day, two.mme_per_day) {
            prop_assert!((b - 2.0 * a).abs() < 0.01);
        }
    }

    #[test]
    fn response_needs_half_the_baseline(base in 1i32..=27, later in 0i32..=27) {
        let phq9 = cat().instrument("phq9").unwrap_or_else(|| unreachable!());
        let o = course_outcome(phq9, &pts(&[(date(2026, 1, 1), base), (date(2026, 1, 8), later)]), &SiteSettings::new());
        prop_assert_eq!(o.first_response.is_some(), 2 * (base - later) >= base);
        prop_assert_eq!(o.first_remission.is_some(), later < 5);
    }
}
