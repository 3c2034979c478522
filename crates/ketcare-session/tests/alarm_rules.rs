//! Each alarm rule at both sides of its boundary: high alarms fire strictly above the threshold,
//! low alarms strictly below; unset thresholds leave the rule inactive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;
use common::*;
use ketcare_clinical::SiteSettings;
use ketcare_session::alarms::{check_reading, check_time, inactive_rules};
use ketcare_session::{AlarmKind, Command, Phase, VitalReading, VitalSource, Vitals};
use proptest::prelude::*;

fn plan_set(key: &str, v: f64) -> ketcare_session::Plan {
    plan_with("trd-adult-iv-ketamine", &settings().with(key, v), 0)
}

fn kinds(plan: &ketcare_session::Plan, base: Option<&Vitals>, v: &Vitals) -> Vec<AlarmKind> {
    check_reading(plan, base, v)
        .into_iter()
        .map(|f| f.kind)
        .collect()
}

#[test]
fn absolute_thresholds_both_sides() {
    type Set = fn(&mut Vitals, f64);
    let cases: [(&str, f64, AlarmKind, bool, Set); 9] = [
        (
            "session.alarm.systolic_high_mmhg",
            180.0,
            AlarmKind::SystolicHigh,
            true,
            |v, x| {
                v.systolic = Some(x);
                v.diastolic = Some(60.0)
            },
        ),
        (
            "session.alarm.diastolic_high_mmhg",
            100.0,
            AlarmKind::DiastolicHigh,
            true,
            |v, x| {
                v.systolic = Some(170.0);
                v.diastolic = Some(x)
            },
        ),
        (
            "session.alarm.systolic_low_mmhg",
            90.0,
            AlarmKind::SystolicLow,
            false,
            |v, x| {
                v.systolic = Some(x);
                v.diastolic = Some(50.0)
            },
        ),
        (
            "session.alarm.heart_rate_high_bpm",
            110.0,
            AlarmKind::HeartRateHigh,
            true,
            |v, x| v.heart_rate = Some(x),
        ),
        (
            "session.alarm.heart_rate_low_bpm",
            50.0,
            AlarmKind::HeartRateLow,
            false,
            |v, x| v.heart_rate = Some(x),
        ),
        (
            "session.alarm.spo2_low_percent",
            92.0,
            AlarmKind::Spo2Low,
            false,
            |v, x| v.spo2 = Some(x),
        ),
        (
            "session.alarm.resp_rate_low_per_min",
            10.0,
            AlarmKind::RespRateLow,
            false,
            |v, x| v.resp_rate = Some(x),
        ),
        (
            "session.alarm.resp_rate_high_per_min",
            30.0,
            AlarmKind::RespRateHigh,
            true,
            |v, x| v.resp_rate = Some(x),
        ),
        (
            "session.alarm.etco2_high_mmhg",
            50.0,
            AlarmKind::Etco2High,
            true,
            |v, x| v.etco2 = Some(x),
        ),
    ];
    for (key, t, kind, high, set) in cases {
        let plan = plan_set(key, t);
        let mut at_t = Vitals::default();
        set(&mut at_t, t);
        assert!(
            !kinds(&plan, None, &at_t).contains(&kind),
            "{key}: at the threshold"
        );
        let mut over = Vitals::default();
        set(&mut over, if high { t + 1.0 } else { t - 1.0 });
        let found = check_reading(&plan, None, &over);
        let f = found
            .iter()
            .find(|f| f.kind == kind)
            .unwrap_or_else(|| panic!("{key}: past the threshold"));
        assert!(
            f.detail.contains(key),
            "{key}: detail names the site setting: {}",
            f.detail
        );
        assert!(!f.action.text.is_empty());
        // Unset: inactive.
        let unset = infusion_plan();
        assert!(
            !kinds(&unset, None, &over).contains(&kind),
            "{key}: unset rule fired"
        );
    }
}

#[test]
fn rise_over_baseline_both_sides() {
    let base = baseline(); // 120/80
    let plan = plan_with(
        "trd-adult-iv-ketamine",
        &settings()
            .with("session.alarm.systolic_rise_mmhg", 20.0)
            .with("session.alarm.diastolic_rise_mmhg", 15.0),
        0,
    );
    let v = |s, d| Vitals {
        systolic: Some(s),
        diastolic: Some(d),
        ..Vitals::default()
    };
    assert!(kinds(&plan, Some(&base), &v(140.0, 95.0)).is_empty());
    assert_eq!(
        kinds(&plan, Some(&base), &v(141.0, 95.0)),
        vec![AlarmKind::SystolicRise]
    );
    assert_eq!(
        kinds(&plan, Some(&base), &v(140.0, 96.0)),
        vec![AlarmKind::DiastolicRise]
    );
    // No baseline: the rise rule cannot apply.
    assert!(kinds(&plan, None, &v(200.0, 120.0)).is_empty());
}

fn reading(min: f64, v: Vitals) -> VitalReading {
    VitalReading {
        at: at(min),
        vitals: v,
        source: VitalSource::Manual,
        by: "nurse".into(),
        control_id: None,
    }
}

#[test]
fn missed_scheduled_vitals_both_sides() {
    // Cited schedule (R40): 0, 15, 30, 45, 60, 90 min after the start.
    let plan = infusion_plan();
    let start = Some(at(10.0));
    let rs = vec![reading(10.0, baseline())];
    // Check at 15 min after start (25 min): due, not yet missed at exactly 25:00.
    assert!(check_time(&plan, start, None, &rs, at(25.0)).is_empty());
    let f = check_time(
        &plan,
        start,
        None,
        &rs,
        jiff::Timestamp::from_second(at(25.0).as_second() + 1).unwrap(),
    );
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, AlarmKind::VitalsMissed);
    assert!(
        f[0].detail.contains("15 min after the start") && f[0].detail.contains("R40"),
        "{}",
        f[0].detail
    );
    // A reading between the previous check and the due time satisfies it.
    let rs2 = vec![reading(10.0, baseline()), reading(24.0, baseline())];
    assert!(check_time(&plan, start, None, &rs2, at(26.0)).is_empty());
    // With a 2-minute grace (site setting), 27:00 is still fine, 27:01 is not.
    let grace = plan_with(
        "trd-adult-iv-ketamine",
        &settings().with("session.alarm.vitals_grace_minutes", 2.0),
        0,
    );
    assert!(check_time(&grace, start, None, &rs, at(27.0)).is_empty());
    assert_eq!(
        check_time(
            &grace,
            start,
            None,
            &rs,
            jiff::Timestamp::from_second(at(27.0).as_second() + 1).unwrap()
        )
        .len(),
        1
    );
}

#[test]
fn late_vitals_clear_a_missed_check() {
    let plan = infusion_plan();
    let start = Some(at(10.0));
    let after = |min: f64, s: i64| jiff::Timestamp::from_second(at(min).as_second() + s).unwrap();
    // No grace set: the check at 0 min is missed one second after the start...
    assert_eq!(check_time(&plan, start, None, &[], after(10.0, 1)).len(), 1);
    // ...and a reading recorded after it (a monitor, seconds later) clears it.
    let late = vec![VitalReading {
        at: after(10.0, 2),
        ..reading(10.0, baseline())
    }];
    assert!(check_time(&plan, start, None, &late, after(10.0, 3)).is_empty());
    // The next check (15 min) still needs a reading after the 0-min check time.
    assert_eq!(
        check_time(
            &plan,
            start,
            None,
            &[reading(10.0, baseline())],
            after(25.0, 1)
        )
        .len(),
        1
    );
    let rs = vec![reading(10.0, baseline()), reading(30.0, baseline())];
    assert!(check_time(&plan, start, None, &rs, at(31.0)).is_empty());
}

#[test]
fn vitals_interval_after_schedule_is_a_site_setting() {
    let rs: Vec<_> = [10.0, 25.0, 40.0, 55.0, 70.0, 100.0]
        .iter()
        .map(|m| reading(*m, baseline()))
        .collect();
    let start = Some(at(10.0));
    let unset = infusion_plan();
    assert!(
        check_time(&unset, start, None, &rs, at(300.0)).is_empty(),
        "no interval set: nothing after 90 min"
    );
    let every30 = plan_with(
        "trd-adult-iv-ketamine",
        &settings().with("session.alarm.vitals_interval_minutes", 30.0),
        0,
    );
    assert!(check_time(&every30, start, None, &rs, at(130.0)).is_empty());
    assert_eq!(
        check_time(
            &every30,
            start,
            None,
            &rs,
            jiff::Timestamp::from_second(at(130.0).as_second() + 1).unwrap()
        )
        .len(),
        1
    );
}

#[test]
fn esketamine_bp_check_at_40_minutes_both_sides() {
    let plan = esketamine_plan();
    let last = at(15.0);
    let none: Vec<VitalReading> = vec![reading(
        16.0,
        Vitals {
            spo2: Some(98.0),
            ..Vitals::default()
        },
    )];
    assert!(check_time(&plan, Some(at(10.0)), Some(last), &none, at(55.0)).is_empty());
    let f = check_time(
        &plan,
        Some(at(10.0)),
        Some(last),
        &none,
        jiff::Timestamp::from_second(at(55.0).as_second() + 1).unwrap(),
    );
    assert_eq!(
        f.iter().map(|f| f.kind).collect::<Vec<_>>(),
        vec![AlarmKind::EsketamineBpCheck]
    );
    assert!(f[0].detail.contains("R2, R4"));
    let with_bp = vec![reading(55.0, baseline())];
    assert!(check_time(&plan, Some(at(10.0)), Some(last), &with_bp, at(80.0)).is_empty());
    let early_bp = vec![reading(54.0, baseline())];
    assert_eq!(
        check_time(&plan, Some(at(10.0)), Some(last), &early_bp, at(80.0)).len(),
        1
    );
}

#[test]
fn inactive_rules_name_their_settings() {
    let list = inactive_rules(&plan_with("trd-adult-iv-ketamine", &SiteSettings::new(), 0));
    assert!(
        list.iter()
            .any(|(_, k)| k == "session.alarm.spo2_low_percent")
    );
    let list = inactive_rules(&plan_set("session.alarm.spo2_low_percent", 90.0));
    assert!(
        !list
            .iter()
            .any(|(_, k)| k == "session.alarm.spo2_low_percent")
    );
}

#[test]
fn session_tick_raises_missed_vitals_once() {
    let mut s = session_in(infusion_plan(), Phase::Running);
    let rs = vec![reading(10.0, baseline())];
    assert_eq!(s.on_tick(&rs, at(26.0)).len(), 1);
    assert!(s.on_tick(&rs, at(27.0)).is_empty());
    assert_eq!(s.next_check(at(26.0)), Some(at(40.0)));
    ok(
        &mut s,
        Command::ResolveAlarm {
            alarm: 1,
            note: "vitals taken".into(),
        },
        28.0,
    );
}

/// `min` minutes and `s` seconds after the epoch the tests count from.
fn after(min: f64, s: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(at(min).as_second() + s).unwrap()
}

#[test]
fn the_check_at_the_start_is_met_by_the_baseline_taken_before_dosing() {
    // The false "scheduled vitals missed" seconds after the start: the check at 0 min is due the
    // moment dosing starts, and the vitals taken for it (the checklist's baseline, which dosing
    // needs) are kept on the session, not among the readings the ticker loads; a tick before the
    // first new reading raised the alarm.
    let mut s = session_in(infusion_plan(), Phase::Running); // baseline at 3 min, start at 10
    for secs in [1, 2, 5, 10, 59, 60, 14 * 60 + 59, 15 * 60] {
        assert!(s.on_tick(&[], after(10.0, secs)).is_empty(), "{secs} s");
    }
    // The check at 15 min still needs a reading taken after the start.
    let f = s.on_tick(&[], after(25.0, 1));
    assert_eq!(f.len(), 1);
    assert!(
        f[0].detail.contains("15 min after the start"),
        "{}",
        f[0].detail
    );
    // A session whose baseline was never recorded (not reachable through the commands) still
    // has the check at 0 min missed.
    let mut none = session_in(infusion_plan(), Phase::Running);
    none.checklist.baseline = None;
    assert_eq!(none.on_tick(&[], after(10.0, 1)).len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Whatever the grace (unset or set) and whenever the ticks come before the check at 15 min
    /// falls due, no "vitals missed" is raised for a session started after its baseline.
    #[test]
    fn no_missed_vitals_before_the_second_check(
        ticks in proptest::collection::vec(1i64..=15 * 60, 1..8),
        grace in proptest::option::of(0u8..10),
    ) {
        let plan = match grace {
            None => infusion_plan(),
            Some(g) => plan_set("session.alarm.vitals_grace_minutes", f64::from(g)),
        };
        let mut s = session_in(plan, Phase::Running);
        let mut ticks = ticks;
        ticks.sort_unstable();
        for t in ticks {
            let raised = s.on_tick(&[], after(10.0, t));
            prop_assert!(raised.is_empty(), "{} s after the start: {:?}", t, raised);
        }
    }

    /// A check is missed exactly when its due time plus the grace has passed with no reading
    /// after the previous check: readings every 15 min from the start keep the session quiet.
    #[test]
    fn readings_on_schedule_never_raise_missed_vitals(
        late in 0i64..60,
        now in 1i64..=100 * 60,
    ) {
        let mut s = session_in(infusion_plan(), Phase::Running);
        let rs: Vec<_> = [10.0, 25.0, 40.0, 55.0, 70.0, 100.0]
            .iter()
            .map(|m| VitalReading { at: after(*m, -late), ..reading(*m, baseline()) })
            .filter(|r| r.at <= after(10.0, now))
            .collect();
        let raised = s.on_tick(&rs, after(10.0, now));
        prop_assert!(raised.is_empty(), "{} s: {:?}", now, raised);
    }
}

#[test]
fn no_next_check_once_the_session_has_ended() {
    // With a site interval the checks go on after the cited schedule; they stop with the session.
    let plan = || plan_set("session.alarm.vitals_interval_minutes", 30.0);
    for phase in [
        Phase::Running,
        Phase::Paused,
        Phase::Escalated,
        Phase::Observation,
    ] {
        assert!(
            session_in(plan(), phase).next_check(at(200.0)).is_some(),
            "{phase:?}"
        );
    }
    for phase in [
        Phase::ReadyForDischarge,
        Phase::Discharged,
        Phase::Transferred,
        Phase::Cancelled,
    ] {
        assert_eq!(
            session_in(plan(), phase).next_check(at(200.0)),
            None,
            "{phase:?}"
        );
    }
}

#[test]
fn vitals_before_dosing_raise_nothing() {
    let plan = plan_set("session.alarm.systolic_high_mmhg", 150.0);
    let mut s = session_in(plan, Phase::PreAssessment);
    let v = Vitals {
        systolic: Some(190.0),
        diastolic: Some(95.0),
        ..Vitals::default()
    };
    assert!(s.on_vital(&reading(4.0, v)).is_empty());
}

#[test]
fn bad_rules_file_names_file_line_and_field() {
    let lib = ketcare_clinical::Library::builtin().unwrap();
    let text = ketcare_session::rules::BUILTIN.1.replace(
        "spo2_low_percent = { site_setting = \"session.alarm.spo2_low_percent\", status = \"U\"",
        "spo2_low_percent = { value = 90, site_setting = \"session.alarm.spo2_low_percent\", status = \"U\"",
    );
    let e = ketcare_session::RulesFile::parse("monitoring.toml", &text, lib.sources())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("monitoring.toml:")
            && e.contains("alarms.spo2_low_percent")
            && e.contains("never a built-in default"),
        "{e}"
    );
    let line: usize = e.split(':').nth(1).unwrap().parse().unwrap();
    assert!(
        text.lines()
            .nth(line - 1)
            .unwrap()
            .starts_with("spo2_low_percent")
    );
    let text = ketcare_session::rules::BUILTIN.1.replace(
        "[\"R2\", \"R4\"], status = \"V\" }",
        "[\"R999\"], status = \"V\" }",
    );
    let e = ketcare_session::RulesFile::parse("monitoring.toml", &text, lib.sources())
        .unwrap_err()
        .to_string();
    assert!(e.contains("R999"), "{e}");
    let e = ketcare_session::RulesFile::parse(
        "m.toml",
        "version = 1\n[esketamine]\nbogus = 1\n",
        lib.sources(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("m.toml:"), "{e}");
}

#[test]
fn a_threshold_set_while_a_session_runs_applies_from_then_and_the_record_says_so() {
    let mut s = session_in(infusion_plan(), Phase::Running);
    let high = Vitals {
        systolic: Some(190.0),
        ..baseline()
    };
    assert!(kinds(&s.plan, None, &high).is_empty(), "no threshold yet");
    let observation_before = s.plan.minimum_observation_minutes.clone();
    let gate_before = s.plan.bp_gate_systolic.clone();

    let fresh = plan_with(
        "trd-adult-iv-ketamine",
        &settings()
            .with("session.alarm.systolic_high_mmhg", 170.0)
            .with("session.ketamine.bp_gate_systolic_mmhg", 150.0)
            .with("observation.ketamine_psychiatric_minutes", 90.0),
        0,
    );
    let changes = s.apply_settings(&fresh, 7, "admin", at(12.0));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(
        changes[0].starts_with("systolic high alarm: not set → 170"),
        "{changes:?}"
    );
    assert_eq!(kinds(&s.plan, None, &high), vec![AlarmKind::SystolicHigh]);
    // Frozen: the observation time the patient was prepared for, and the gate already passed.
    assert_eq!(s.plan.minimum_observation_minutes, observation_before);
    assert_eq!(s.plan.bp_gate_systolic, gate_before);
    assert_eq!(s.settings_applied.len(), 1);
    assert_eq!(s.settings_applied[0].version, 7);
    // The same settings again change nothing and record nothing.
    assert!(s.apply_settings(&fresh, 8, "admin", at(13.0)).is_empty());
    assert_eq!(s.settings_applied.len(), 1);
}

#[test]
fn a_bp_gate_set_after_scheduling_applies_before_dosing_and_ended_sessions_are_left_alone() {
    let unset = plan_with(
        "trd-adult-iv-ketamine",
        &SiteSettings::new().with("observation.ketamine_psychiatric_minutes", 60.0),
        0,
    );
    let mut s = session_in(unset.clone(), Phase::CheckedIn);
    assert_eq!(s.plan.bp_gate_systolic.value(), None);
    let changes = s.apply_settings(&infusion_plan(), 3, "admin", at(1.0));
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(s.plan.bp_gate_systolic.value(), Some(140.0));

    let mut done = session_in(infusion_plan(), Phase::Discharged);
    let stricter = plan_with(
        "trd-adult-iv-ketamine",
        &settings().with("session.alarm.systolic_high_mmhg", 170.0),
        0,
    );
    assert!(
        done.apply_settings(&stricter, 4, "admin", at(99.0))
            .is_empty()
    );
    assert_eq!(done.plan.alarms.systolic_high.value(), None);
    assert!(done.settings_applied.is_empty());
}
