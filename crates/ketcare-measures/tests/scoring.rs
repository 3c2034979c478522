//! Scoring vectors for every instrument: every band boundary, every cut-off at both sides,
//! every missing-item rule, every safety item.

use ketcare_measures::{Catalogue, ScoreError, SiteSettings, parse_answers, safety_flags, score};

fn cat() -> &'static Catalogue {
    Catalogue::builtin().unwrap_or_else(|e| unreachable!("{e}"))
}

/// Answers for `inst` whose total is `total`: scored items filled greedily; unscored required
/// items answered at their minimum.
fn answers_for(id: &str, total: i32, settings: &SiteSettings) -> Vec<Option<i32>> {
    let inst = cat().instrument(id).unwrap_or_else(|| unreachable!());
    let mut left = total;
    inst.items
        .iter()
        .map(|item| {
            let (min, max) = inst.item_range(item, settings);
            let max = max.unwrap_or(min);
            if !item.scored {
                return Some(min);
            }
            // Domain scoring: only the first item of each domain carries the value.
            if let Some(d) = inst.domains.iter().find(|d| d.items.contains(&item.n))
                && d.items[0] != item.n
            {
                return Some(min);
            }
            let v = left.clamp(min, max);
            left -= v;
            Some(v)
        })
        .collect()
}

fn total_of(
    id: &str,
    a: &[Option<i32>],
    s: &SiteSettings,
) -> Result<ketcare_measures::Score, ScoreError> {
    score(cat().instrument(id).unwrap_or_else(|| unreachable!()), a, s)
}

#[test]
fn every_band_boundary_of_every_instrument() {
    let s = SiteSettings::new();
    let mut checked = 0;
    for inst in &cat().instruments {
        for b in &inst.bands {
            for t in [b.min, b.max] {
                let a = answers_for(&inst.id, t, &s);
                let r =
                    total_of(&inst.id, &a, &s).unwrap_or_else(|e| unreachable!("{}: {e}", inst.id));
                assert_eq!(r.total, Some(t), "{} total", inst.id);
                assert_eq!(
                    r.band.as_ref().map(|b| b.label.as_str()),
                    Some(b.label.as_str()),
                    "{} at {t}",
                    inst.id
                );
                checked += 1;
            }
        }
    }
    // phq9 5 bands, phq_a 5, gad7 4, pain 4, madrs 4, qids 5 → 27 bands × 2
    assert_eq!(checked, 54);
}

#[test]
fn hand_worked_vectors() {
    let s = SiteSettings::new();
    let cases: &[(&str, &str, i32, &str)] = &[
        ("phq9", "0,0,0,0,0,0,0,0,0", 0, "none/minimal"),
        ("phq9", "1,1,1,1,1,0,0,0,0", 5, "mild"),
        ("phq9", "3,3,3,3,3,3,3,3,3,2", 27, "severe"),
        ("phq9", "2,2,2,2,2,0,0,0,0", 10, "moderate"),
        ("phq9", "3,3,3,3,3,2,2,0,0", 19, "moderately severe"),
        ("gad7", "3,3,3,3,3,3,3", 21, "severe"),
        ("gad7", "1,1,1,1,1,0,0", 5, "mild"),
        ("gad7", "2,2,2,2,2,0,0", 10, "moderate"),
        ("madrs", "6,6,6,6,6,6,6,6,6,6", 60, "severe"),
        ("madrs", "2,2,2,0,0,0,0,0,0,0", 6, "absent/normal"),
        ("madrs", "2,2,2,1,0,0,0,0,0,0", 7, "mild"),
        // QIDS: sleep max(1,3,0,2)=3; mood 2; appetite max(0,1,3,0)=3; 1;1;0;2;1; max(0,2)=2 → 15
        (
            "qids_sr16",
            "1,3,0,2,2,0,1,3,0,1,1,0,2,1,0,2",
            15,
            "moderate",
        ),
        ("pain_nrs", "7", 7, "severe"),
        ("pain_nrs", "0", 0, "no pain"),
        ("phq_a", "1,1,1,1,1,1,1,1,0,0,0", 8, "mild"),
    ];
    for (id, a, total, band) in cases {
        let r = total_of(id, &parse_answers(a).unwrap_or_default(), &s)
            .unwrap_or_else(|e| unreachable!("{id} {a}: {e}"));
        assert_eq!(r.total, Some(*total), "{id} {a}");
        assert_eq!(
            r.band.map(|b| b.label),
            Some((*band).to_string()),
            "{id} {a}"
        );
    }
}

#[test]
fn cutoffs_at_both_sides() {
    let s = SiteSettings::new();
    for (id, at) in [
        ("phq9", 10),
        ("phq2", 3),
        ("gad7", 10),
        ("phq_a", 11),
        ("aldrete_mod", 9),
    ] {
        for (t, met) in [(at - 1, false), (at, true)] {
            let r =
                total_of(id, &answers_for(id, t, &s), &s).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(r.cutoffs.len(), 1, "{id}");
            assert_eq!(r.cutoffs[0].met, met, "{id} at {t}");
        }
    }
    // The site may change the Aldrete discharge threshold; the result says the site set it.
    let site = SiteSettings::new().with("measures.aldrete_mod.discharge_at_least", 8.0);
    let r = total_of(
        "aldrete_mod",
        &parse_answers("2,2,2,1,1").unwrap_or_default(),
        &site,
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    assert!(r.cutoffs[0].met);
    assert!(matches!(
        r.cutoffs[0].provenance,
        ketcare_measures::Provenance::SiteSetting { .. }
    ));
}

#[test]
fn missing_scored_items_are_refused_by_name_for_every_instrument() {
    let s = SiteSettings::new().with("measures.cadss.item_max", 4.0);
    for inst in &cat().instruments {
        let mut a = answers_for(&inst.id, 0, &s);
        let required: Vec<u8> = inst
            .items
            .iter()
            .filter(|i| i.required)
            .map(|i| i.n)
            .collect();
        // Blank the first and last required item.
        let blank = [required[0], *required.last().unwrap_or(&required[0])];
        for n in blank {
            a[usize::from(n) - 1] = None;
        }
        let mut want = blank.to_vec();
        want.dedup();
        match score(inst, &a, &s) {
            Err(ScoreError::MissingItems { items, .. }) => assert_eq!(items, want, "{}", inst.id),
            other => unreachable!("{}: {other:?}", inst.id),
        }
        // Short answer lists: the unanswered tail is named too.
        let e = score(inst, &[], &s);
        assert!(
            matches!(e, Err(ScoreError::MissingItems { ref items, .. }) if *items == required),
            "{}",
            inst.id
        );
    }
}

#[test]
fn optional_unscored_items_may_be_left_out() {
    let s = SiteSettings::new();
    // PHQ-9 item 10 (difficulty), PHQ-A items 12–13, ASQ acuity item 5.
    for (id, a) in [
        ("phq9", "0,0,0,0,0,0,0,0,0"),
        ("phq_a", "0,0,0,0,0,0,0,0,0,0,0"),
        ("asq", "0,0,0,0"),
    ] {
        assert!(
            total_of(id, &parse_answers(a).unwrap_or_default(), &s).is_ok(),
            "{id}"
        );
    }
    let e = total_of(
        "phq_a",
        &parse_answers("0,0,0,0,0,0,0,0,0").unwrap_or_default(),
        &s,
    );
    assert!(matches!(e, Err(ScoreError::MissingItems { ref items, .. }) if *items == vec![10, 11]));
}

#[test]
fn out_of_range_and_too_many_are_refused() {
    let s = SiteSettings::new();
    let e = total_of(
        "phq9",
        &parse_answers("0,0,4,0,0,0,0,0,0").unwrap_or_default(),
        &s,
    );
    assert!(matches!(
        e,
        Err(ScoreError::OutOfRange {
            item: 3,
            value: 4,
            ..
        })
    ));
    let e = total_of(
        "phq9",
        &parse_answers("-1,0,0,0,0,0,0,0,0").unwrap_or_default(),
        &s,
    );
    assert!(matches!(e, Err(ScoreError::OutOfRange { item: 1, .. })));
    let e = total_of("phq2", &parse_answers("0,0,0").unwrap_or_default(), &s);
    assert!(matches!(
        e,
        Err(ScoreError::TooManyAnswers {
            given: 3,
            items: 2,
            ..
        })
    ));
    assert!(matches!(
        parse_answers("1,x"),
        Err(ScoreError::NotANumber { position: 2, .. })
    ));
    let e = total_of("asq", &parse_answers("0,2,0,0").unwrap_or_default(), &s);
    assert!(matches!(e, Err(ScoreError::OutOfRange { item: 2, .. })));
}

#[test]
fn cadss_needs_the_site_item_scale() {
    let a = vec![Some(1); 23];
    let e = total_of("cadss", &a, &SiteSettings::new());
    assert!(
        matches!(e, Err(ScoreError::SettingMissing { ref key, .. }) if key == "measures.cadss.item_max")
    );
    let s = SiteSettings::new().with("measures.cadss.item_max", 4.0);
    let r = total_of("cadss", &a, &s).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(r.total, Some(23));
    assert_eq!(r.total_max, Some(92));
    assert_eq!(r.subscores[0].value, 6);
    assert_eq!(
        r.item_scale_set_by_site.as_deref(),
        Some("measures.cadss.item_max")
    );
    let mut hi = a.clone();
    hi[0] = Some(5);
    assert!(matches!(
        total_of("cadss", &hi, &s),
        Err(ScoreError::OutOfRange { item: 1, .. })
    ));
}

#[test]
fn screens_and_single_items() {
    let s = SiteSettings::new();
    let r = total_of("asq", &parse_answers("0,0,0,0").unwrap_or_default(), &s)
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!((r.total, r.positive), (None, Some(false)));
    assert!(r.safety.is_empty());
    for k in 0..4 {
        let mut a = vec![Some(0); 4];
        a[k] = Some(1);
        let r = total_of("asq", &a, &s).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(r.positive, Some(true));
        assert_eq!(r.safety.len(), 1);
        assert_eq!(usize::from(r.safety[0].item), k + 1);
    }
    for v in 0..=5 {
        let r = total_of("moaas", &[Some(v)], &s).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(r.total, Some(v));
    }
    assert!(total_of("moaas", &[Some(6)], &s).is_err());
    let r = total_of("peg3", &parse_answers("5,6,7").unwrap_or_default(), &s)
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(r.total, None, "PEG-3 score rule is U: items only");
    assert_eq!(r.display(), "recorded");
    let r = total_of("phq2", &parse_answers("2,1").unwrap_or_default(), &s)
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(r.total, Some(3));
    assert_eq!(r.total_max, Some(6));
}

#[test]
fn suicide_risk_answers() {
    let s = SiteSettings::new();
    let phq9 = cat().instrument("phq9").unwrap_or_else(|| unreachable!());
    for v in 0..=3 {
        let mut a = vec![Some(0); 9];
        a[8] = Some(v);
        let r = score(phq9, &a, &s).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(r.safety.len(), usize::from(v >= 1), "item 9 = {v}");
    }
    // A flag is raised even when the form is incomplete (scoring refuses, safety does not).
    let partial = parse_answers(",,,,,,,,2").unwrap_or_default();
    assert!(score(phq9, &partial, &s).is_err());
    assert_eq!(safety_flags(phq9, &partial).len(), 1);
    // Adolescent form: item 9 and the two extra suicide items.
    let phq_a = cat().instrument("phq_a").unwrap_or_else(|| unreachable!());
    let base = parse_answers("0,0,0,0,0,0,0,0,0,0,0").unwrap_or_default();
    for (i, n) in [(8usize, 9u8), (9, 10), (10, 11)] {
        let mut a = base.clone();
        a[i] = Some(1);
        let r = score(phq_a, &a, &s).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(r.safety.iter().map(|f| f.item).collect::<Vec<_>>(), vec![n]);
    }
    // Instruments without a safety rule raise none (MADRS item 10 has no rule in the reference).
    let madrs = cat().instrument("madrs").unwrap_or_else(|| unreachable!());
    assert!(safety_flags(madrs, &[Some(6); 10]).is_empty());
}

#[test]
fn licence_rules_hold_for_shipped_text() {
    for inst in &cat().instruments {
        if inst.wording == ketcare_measures::Wording::LabelsOnly {
            assert!(inst.items.iter().all(|i| i.text.is_none()), "{}", inst.id);
        }
        assert!(!["cssrs_screener", "bpi_sf"].contains(&inst.id.as_str()));
    }
    let ids: Vec<&str> = cat().instruments.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "phq9",
            "phq_a",
            "phq2",
            "gad7",
            "asq",
            "pain_nrs",
            "peg3",
            "moaas",
            "aldrete_mod",
            "cadss",
            "madrs",
            "qids_sr16"
        ]
    );
}

#[test]
fn loinc_codes_where_the_reference_has_them() {
    let phq9 = cat().instrument("phq9").unwrap_or_else(|| unreachable!());
    assert_eq!(
        phq9.loinc_total.as_ref().map(|c| c.code.as_str()),
        Some("44261-6")
    );
    assert_eq!(
        phq9.loinc_panel.as_ref().map(|c| c.code.as_str()),
        Some("44249-1")
    );
    assert_eq!(
        phq9.items[8].loinc.as_ref().map(|c| c.code.as_str()),
        Some("44260-8")
    );
    let gad7 = cat().instrument("gad7").unwrap_or_else(|| unreachable!());
    assert_eq!(
        gad7.loinc_total.as_ref().map(|c| c.code.as_str()),
        Some("70274-6")
    );
    let nrs = cat()
        .instrument("pain_nrs")
        .unwrap_or_else(|| unreachable!());
    assert_eq!(
        nrs.loinc_total.as_ref().map(|c| c.code.as_str()),
        Some("72514-3")
    );
    assert!(
        cat()
            .instrument("madrs")
            .is_some_and(|m| m.loinc_total.is_none())
    );
}
