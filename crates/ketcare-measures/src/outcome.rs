//! Course outcomes (clinical.md §8): baseline, response (≥ a cited fall from baseline),
//! remission (the instrument's cut-off), relapse and time to relapse, and the booster-due rule.
//!
//! Relapse has no confirmed definition in the reference (the SUSTAIN-1 rule is U), so it is
//! evaluated only when the site sets `measures.<instrument>.relapse_at_least` and
//! `measures.relapse_consecutive`: after the first response, that many consecutive scores at or
//! above the threshold are a relapse, dated at the first of them.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use ketcare_clinical::SiteSettings;
use ketcare_clinical::source::Provenance;

use crate::catalogue::Instrument;

/// Site-setting key of the consecutive-scores count for relapse.
pub const RELAPSE_CONSECUTIVE: &str = "measures.relapse_consecutive";

/// Site-setting key of an instrument's relapse threshold.
pub fn relapse_key(instrument: &str) -> String {
    format!("measures.{instrument}.relapse_at_least")
}

/// One score on a date.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Point {
    pub date: Date,
    pub score: i32,
}

/// One point of the course with its status against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointStatus {
    pub date: Date,
    pub score: i32,
    /// Fall from baseline as a fraction of the baseline (negative when worse).
    pub fall_fraction: Option<f64>,
    pub response: Option<bool>,
    pub remission: Option<bool>,
}

/// A rule value used, with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleValue {
    pub value: f64,
    pub provenance: Provenance,
}

/// Outcome of one course on one instrument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CourseOutcome {
    pub instrument: String,
    pub baseline: Option<Point>,
    pub latest: Option<Point>,
    pub response_rule: Option<RuleValue>,
    pub remission_rule: Option<RuleValue>,
    pub relapse_rule: Option<RuleValue>,
    pub relapse_consecutive: Option<u32>,
    pub first_response: Option<Date>,
    pub first_remission: Option<Date>,
    pub responding_now: Option<bool>,
    pub in_remission_now: Option<bool>,
    pub relapse: Option<Date>,
    pub days_to_relapse: Option<i64>,
    pub points: Vec<PointStatus>,
    /// Why something could not be evaluated (unset site settings, zero baseline, no rule).
    pub notes: Vec<String>,
}

/// Computes a course's outcomes from its scores (any order; sorted by date here). The first
/// score is the baseline.
pub fn course_outcome(
    inst: &Instrument,
    points: &[Point],
    settings: &SiteSettings,
) -> CourseOutcome {
    let mut pts = points.to_vec();
    pts.sort_by_key(|p| p.date);
    let mut notes = Vec::new();
    let rule = |r: Option<Result<(f64, Provenance), String>>,
                what: &str,
                notes: &mut Vec<String>| match r {
        None => {
            notes.push(format!(
                "{}: the reference gives no {what} definition",
                inst.name
            ));
            None
        }
        Some(Err(key)) => {
            notes.push(format!("{what} not evaluated: the site has not set {key}"));
            None
        }
        Some(Ok((value, provenance))) => Some(RuleValue { value, provenance }),
    };
    let response_rule = rule(inst.response_fraction(settings), "response", &mut notes)
        .filter(|r| {
            let ok = r.value > 0.0 && r.value < 1.0;
            if !ok {
                notes.push(format!(
                    "response not evaluated: the fall must be a fraction between 0 and 1 (0.5 = 50 %), got {}",
                    r.value
                ));
            }
            ok
        });
    let remission_rule = rule(inst.remission_at_most(settings), "remission", &mut notes);
    let rkey = relapse_key(&inst.id);
    let relapse_rule = settings.value(&rkey).map(|v| RuleValue {
        value: v,
        provenance: Provenance::SiteSetting { key: rkey.clone() },
    });
    let relapse_consecutive = settings
        .value(RELAPSE_CONSECUTIVE)
        .map(|v| v.round().max(1.0) as u32);
    if relapse_rule.is_none() || relapse_consecutive.is_none() {
        notes.push(format!(
            "relapse not evaluated: no confirmed definition in the reference; the site sets {rkey} and {RELAPSE_CONSECUTIVE}"
        ));
    }
    let baseline = pts.first().copied();
    if baseline.is_some_and(|b| b.score <= 0) && response_rule.is_some() {
        notes.push("response not evaluable: the baseline score is 0".into());
    }
    let statuses: Vec<PointStatus> = pts
        .iter()
        .map(|p| {
            let fall = baseline
                .filter(|b| b.score > 0)
                .map(|b| f64::from(b.score - p.score) / f64::from(b.score));
            PointStatus {
                date: p.date,
                score: p.score,
                fall_fraction: fall,
                response: match (&response_rule, fall) {
                    (Some(r), Some(f)) => Some(f + 1e-9 >= r.value),
                    _ => None,
                },
                remission: remission_rule
                    .as_ref()
                    .map(|r| f64::from(p.score) <= r.value + 1e-9),
            }
        })
        .collect();
    // Baseline itself never counts as a response or remission date.
    let after = statuses.iter().skip(1);
    let first_response = after
        .clone()
        .find(|s| s.response == Some(true))
        .map(|s| s.date);
    let first_remission = after
        .clone()
        .find(|s| s.remission == Some(true))
        .map(|s| s.date);
    let mut relapse = None;
    if let (Some(r), Some(n), Some(start)) = (&relapse_rule, relapse_consecutive, first_response) {
        let later: Vec<&PointStatus> = statuses.iter().filter(|s| s.date > start).collect();
        let n = n as usize;
        relapse = later
            .windows(n)
            .find(|w| w.iter().all(|s| f64::from(s.score) >= r.value))
            .map(|w| w[0].date);
    }
    let days_to_relapse = match (first_response, relapse) {
        (Some(a), Some(b)) => a.until(b).ok().map(|span| i64::from(span.get_days())),
        _ => None,
    };
    let last = statuses.last();
    CourseOutcome {
        instrument: inst.id.clone(),
        baseline,
        latest: pts.last().copied(),
        responding_now: if pts.len() > 1 {
            last.and_then(|s| s.response)
        } else {
            None
        },
        in_remission_now: if pts.len() > 1 {
            last.and_then(|s| s.remission)
        } else {
            None
        },
        response_rule,
        remission_rule,
        relapse_rule,
        relapse_consecutive,
        first_response,
        first_remission,
        relapse,
        days_to_relapse,
        points: statuses,
        notes,
    }
}

/// A course's booster rule, set by the clinic (both parts optional; either part due → due).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BoosterRule {
    /// Due when the latest score is at least this.
    pub score_at_least: Option<i32>,
    /// Due when at least this many days have passed since the last session.
    pub days_since_last_session: Option<i64>,
}

/// Whether a maintenance session is due, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoosterDue {
    pub due: bool,
    /// False when the course has no rule: nothing is flagged.
    pub rule_set: bool,
    pub reasons: Vec<String>,
}

/// Applies a booster rule. Dates are passed in.
pub fn booster_due(
    rule: &BoosterRule,
    latest: Option<Point>,
    last_session: Option<Date>,
    today: Date,
) -> BoosterDue {
    let mut reasons = Vec::new();
    if let (Some(t), Some(p)) = (rule.score_at_least, latest)
        && p.score >= t
    {
        reasons.push(format!(
            "latest score {} on {} is at or above the site's booster threshold {t}",
            p.score, p.date
        ));
    }
    if let (Some(d), Some(s)) = (rule.days_since_last_session, last_session)
        && let Ok(span) = s.until(today)
        && i64::from(span.get_days()) >= d
    {
        reasons.push(format!(
            "{} days since the last session on {s} (site rule: {d} days)",
            span.get_days()
        ));
    }
    BoosterDue {
        due: !reasons.is_empty(),
        rule_set: rule.score_at_least.is_some() || rule.days_since_last_session.is_some(),
        reasons,
    }
}

/// Site-setting key: days between scheduled questionnaire sets of a course.
pub const ASSESSMENT_EVERY_DAYS: &str = "measures.assessment_every_days";

/// Whether a course's scheduled questionnaire set is due: none since the course started, or
/// the last one at least `every_days` ago. `None` when the site has set no schedule.
pub fn assessment_due(
    every_days: Option<f64>,
    course_start: Date,
    last: Option<Date>,
    today: Date,
) -> Option<(bool, Date)> {
    let every = every_days?.round() as i64;
    let from = last.unwrap_or(course_start);
    let next = if last.is_some() {
        from.checked_add(jiff::Span::new().days(every)).ok()?
    } else {
        course_start
    };
    Some((today >= next, next))
}
