//! The research registry's use cases: a cohort of de-identified subjects (the store builds them;
//! no identifier reaches this layer for a researcher), its outcome table, its durability curve
//! and its predictors, and the CSV export with its data dictionary.
//!
//! Definitions: response and remission are the instrument's own cited rules (the catalogue's
//! response fraction and remission bound, as every course outcome uses); relapse is the
//! catalogue's rule with the site's consecutive count. When each is measured is the site's:
//! the reference gives no window, so the window and the induction's definition are site
//! settings, unset until the site sets them, and the tables say so. Cells under the site's small-cell
//! count are suppressed in every table and export.

use crate::Error;
use crate::measures::find;
use jiff::civil::Date;
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::Actor;
use ketcare_measures::Point;
use ketcare_measures::mme::DatedMme;
use ketcare_research::deid::{Cell, cell, events_per_variable_minimum, small_groups};
use ketcare_research::export::{self, Column, Kind, Value};
use ketcare_research::proportion::{Proportion, wilson};
use ketcare_research::survival::{KaplanMeier, kaplan_meier};
use ketcare_research::{Coefficient, cox, logistic};
use ketcare_store::Store;
use ketcare_store::registry::{ProgramPatient, RegistrySubject};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Site setting: the smallest count a table or export shows (smaller counts are suppressed).
pub const SMALL_CELL: &str = "research.small_cell_patients";
/// Site settings: the outcome window, in days after the first treatment.
pub const WINDOW_FROM: &str = "research.response_window_from_days";
pub const WINDOW_TO: &str = "research.response_window_to_days";
/// Site settings: an induction is completed with at least this many sessions within this many
/// days of the first.
pub const INDUCTION_SESSIONS: &str = "research.induction_min_sessions";
pub const INDUCTION_DAYS: &str = "research.induction_within_days";

/// The cohort a researcher asks for (every field optional: all subjects).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CohortQuery {
    /// The outcome instrument (default `phq9`).
    #[serde(default)]
    pub instrument: Option<String>,
    /// The indication of the first session's protocol (`trd`, `mdsi`, `ptsd` …).
    #[serde(default)]
    pub indication: Option<String>,
    /// `ketamine` or `esketamine` (the first session's protocol).
    #[serde(default)]
    pub drug: Option<String>,
    /// The route of the first session's protocol.
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    /// The ICH E11 band at first treatment: `adult`, `adolescent`, `child`, `infant`.
    #[serde(default)]
    pub age_band: Option<String>,
    #[serde(default)]
    pub sex: Option<String>,
    /// The instrument's severity band of the baseline score (its own band label).
    #[serde(default)]
    pub baseline_band: Option<String>,
    /// The predictors' covariates, comma-separated (default: baseline, age, female, esketamine);
    /// see [`COVARIATES`].
    #[serde(default)]
    pub covariates: Option<String>,
    /// First treatment in this calendar year or later (empty: any).
    #[serde(default)]
    pub year_from: Option<String>,
    /// First treatment in this calendar year or earlier (empty: any).
    #[serde(default)]
    pub year_to: Option<String>,
}

impl CohortQuery {
    /// The outcome instrument asked for, PHQ-9 when none is.
    pub fn instrument_or_default(&self) -> String {
        self.instrument
            .clone()
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| "phq9".into())
    }
}

/// One subject's derived outcome (de-identified).
#[derive(Debug, Clone, Serialize)]
pub struct SubjectOutcome {
    pub study_id: String,
    pub age: String,
    pub age_band: String,
    pub sex: String,
    pub indication: String,
    pub drug: String,
    pub route: String,
    pub protocol: String,
    pub sessions: usize,
    pub induction_completed: Option<bool>,
    pub baseline: Option<i64>,
    pub baseline_band: Option<String>,
    /// The last score within the window.
    pub window_score: Option<i64>,
    pub response: Option<bool>,
    pub remission: Option<bool>,
    pub days_to_response: Option<i64>,
    /// Responders: days from first response to relapse, or to the last score (censored).
    pub durability_days: Option<i64>,
    pub relapsed: Option<bool>,
    pub mean_dose_mg: Option<f64>,
    /// Mean over the induction sessions (day 0 to the site's induction days) of the PK
    /// engine's predicted Cmax of what each gave (ng/mL); `None` while the induction is unset
    /// or when an induction session has no prediction.
    pub induction_cmax_ng_ml: Option<f64>,
    /// The same mean of the predicted AUC over each prediction's horizon (ng·min/mL).
    pub induction_auc_ng_min_ml: Option<f64>,
    /// Median days between consecutive sessions, counting each session after the site's
    /// induction days from the session before it.
    pub maintenance_interval_days: Option<f64>,
    pub adverse_events: u32,
    pub alarms: u32,
    pub max_systolic_rise: Option<f64>,
    pub max_dissociation: Option<u32>,
    pub alerts: usize,
    /// Total MME per day at the last follow-up minus at the first treatment (subjects with an
    /// opioid recorded).
    pub mme_change: Option<f64>,
    pub bmi: Option<f64>,
    pub family_history_alcohol_use_disorder: Option<bool>,
    pub prior_suicide_attempt: Option<bool>,
    pub prior_ect_or_tms: Option<bool>,
    pub comorbid_anxiety: Option<bool>,
    pub ptsd: Option<bool>,
    pub chronic_pain: Option<bool>,
    /// Every dose had its integration session within the site's window
    /// (`therapy.integration_window_days`; `None` while it is unset).
    pub integration_in_window: Option<bool>,
    /// Days of those alerts (for the table's periods; not a column of the export).
    #[serde(skip)]
    pub alert_days: Vec<i64>,
    /// The calendar year of the first treatment (for the query's years; not a column).
    #[serde(skip)]
    pub year: i16,
}

/// A cohort's outcomes, shared: a subject's outcome derived once is the same allocation in every
/// cohort and export that holds it (a write re-derives only the subjects it changed).
pub type Cohort = Arc<Vec<Arc<SubjectOutcome>>>;

/// A proportion as a table shows it: suppressed under the small-cell count.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rate {
    /// A count, or `{"below": k}` when suppressed.
    pub k: Cell,
    pub n: Cell,
    /// Shown only when neither count is suppressed: `k`, `n`, `p` and the 95 % Wilson
    /// interval `lower`–`upper`.
    #[schema(value_type = Option<Object>)]
    pub estimate: Option<Proportion>,
}

/// Response by tertile of a subject's predicted exposure over the induction (see
/// [`ketcare_research::tertile`]: cut points by sample quantile, a value at a cut point in the
/// lower tertile).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExposureTertiles {
    /// `induction_cmax_ng_ml` or `induction_auc_ng_min_ml` (the export's column).
    pub measure: &'static str,
    pub unit: &'static str,
    /// Subjects with the exposure and a response evaluated (suppressed under the small-cell
    /// count).
    pub subjects: Cell,
    /// The 1/3 and 2/3 cut points; shown only when the subjects are at least the small-cell
    /// count (a quantile of fewer describes too few people).
    pub cut_points: Option<[f64; 2]>,
    /// Lowest, middle and highest tertile: `[label with its range, response rate]`.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub tertiles: Vec<(String, Rate)>,
}

/// A predictor model's result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Model {
    pub n: usize,
    pub events: usize,
    /// Each: `name`, `coef`, `se`, `z`, `p`, `ratio` (odds or hazard) and its 95 % interval.
    #[schema(value_type = Vec<Object>)]
    pub coefficients: Vec<Coefficient>,
    /// A plain warning when events per covariate are too few (with the rule's source), or why
    /// the model could not be fitted.
    pub warnings: Vec<String>,
}

/// The cohort's outcome table. Counts are a number or `{"below": k}` when suppressed; a rate
/// is a [`Rate`]; a labelled row is `[label, Rate]`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutcomeTable {
    pub instrument: String,
    pub small_cell: u64,
    /// The outcome window `[from, to]` in days after the first treatment.
    #[schema(value_type = Option<Vec<i64>>)]
    pub window: Option<(i64, i64)>,
    pub subjects: Cell,
    pub induction_completed: Option<Rate>,
    pub response: Option<Rate>,
    pub remission: Option<Rate>,
    pub median_days_to_response: Option<f64>,
    /// Kaplan-Meier of time from response to relapse (responders), when enough to show.
    #[schema(value_type = Option<Object>)]
    pub durability: Option<KaplanMeier>,
    pub sessions_per_subject_median: Option<f64>,
    /// Quartiles of the subjects' median maintenance interval, days.
    pub maintenance_interval_quartiles: Option<[f64; 3]>,
    /// Subjects with an opioid recorded whose total MME per day fell by the last follow-up.
    pub mme_reduced: Option<Rate>,
    /// Quartiles of the change of total MME per day (subjects with an opioid recorded).
    pub mme_change_quartiles: Option<[f64; 3]>,
    pub adverse_events_per_session: Option<f64>,
    pub alarms_per_session: Option<f64>,
    pub systolic_rise_quartiles: Option<[f64; 3]>,
    pub dissociation_quartiles: Option<[f64; 3]>,
    /// Suicide-risk alerts raised in days 0–30, 31–90 and later.
    pub alerts_by_period: [Cell; 3],
    /// Response by mean dose tertile (lowest first).
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub response_by_dose_tertile: Vec<(String, Rate)>,
    /// Response by tertile of the induction's mean predicted Cmax (ng/mL).
    pub response_by_cmax_tertile: Option<ExposureTertiles>,
    /// Response by tertile of the induction's mean predicted AUC (ng·min/mL).
    pub response_by_auc_tertile: Option<ExposureTertiles>,
    /// Response split by whether every dose had its integration session within the site's
    /// window (empty while the window is unset).
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub response_by_integration: Vec<(String, Rate)>,
    pub logistic: Option<Model>,
    pub cox: Option<Model>,
    /// What could not be evaluated and why (unset settings, no rule).
    pub notes: Vec<String>,
}

fn setting(settings: &SiteSettings, key: &str) -> Option<i64> {
    settings.value(key).map(|v| v.round() as i64)
}

/// [`outcomes`], reusing `earlier` (subjects and the outcomes derived from them under the same
/// library, settings and instrument): a subject equal to its earlier self (by study id) keeps
/// its outcome; every other is derived. The same answer as [`outcomes`], in the same order.
/// The store shares a subject unchanged since the last read (the same allocation), so one that
/// is the very same is taken as equal without comparing it field by field.
pub fn outcomes_reusing(
    earlier: (&[Arc<RegistrySubject>], &[Arc<SubjectOutcome>]),
    subjects: &[Arc<RegistrySubject>],
    library: &Library,
    settings: &SiteSettings,
    instrument: &str,
) -> Result<Vec<Arc<SubjectOutcome>>, Error> {
    let (before, derived) = earlier;
    let fresh = |s: &Arc<RegistrySubject>| -> Result<Arc<SubjectOutcome>, Error> {
        let mut one = outcomes(std::slice::from_ref(s), library, settings, instrument)?;
        Ok(Arc::new(one.pop().ok_or_else(|| {
            Error::Conflict("a subject derived no outcome".into())
        })?))
    };
    if before.len() != derived.len() {
        return subjects.iter().map(fresh).collect();
    }
    // The same subject at the same place is the common case (a write changes a few subjects
    // and keeps the order): checked first, the map of every study id built only when needed.
    let mut at: Option<std::collections::HashMap<&str, usize>> = None;
    let mut out = Vec::with_capacity(subjects.len());
    for (pos, s) in subjects.iter().enumerate() {
        let i = match before.get(pos) {
            Some(b) if b.study_id == s.study_id => Some(pos),
            _ => at
                .get_or_insert_with(|| {
                    before
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (s.study_id.as_str(), i))
                        .collect()
                })
                .get(s.study_id.as_str())
                .copied(),
        };
        match i {
            Some(i) if Arc::ptr_eq(&before[i], s) || before[i] == *s => {
                out.push(derived[i].clone())
            }
            _ => out.push(fresh(s)?),
        }
    }
    Ok(out)
}

/// Derives each subject's outcome under the site's definitions.
pub fn outcomes<S: std::borrow::Borrow<RegistrySubject>>(
    subjects: &[S],
    library: &Library,
    settings: &SiteSettings,
    instrument: &str,
) -> Result<Vec<SubjectOutcome>, Error> {
    let inst = find(instrument)
        .map_err(|_| Error::invalid("instrument", format!("unknown instrument {instrument:?}")))?;
    let window = setting(settings, WINDOW_FROM).zip(setting(settings, WINDOW_TO));
    let induction = setting(settings, INDUCTION_SESSIONS).zip(setting(settings, INDUCTION_DAYS));
    let integration_window = setting(settings, crate::therapy::INTEGRATION_WINDOW_DAYS);
    // Day offsets become dates on an arbitrary origin only to reuse the course-outcome rules.
    let origin = Date::constant(2000, 1, 1);
    let at = |day: i64| {
        origin
            .checked_add(jiff::Span::new().days(day))
            .unwrap_or(origin)
    };
    let mut out = Vec::with_capacity(subjects.len());
    for s in subjects {
        let s: &RegistrySubject = s.borrow();
        let first = s.sessions.first();
        let protocol = first.and_then(|x| library.get(&x.protocol_id).ok());
        let word = |v: serde_json::Result<serde_json::Value>| {
            v.ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into())
        };
        let pts: Vec<(i64, i64)> = s
            .scores
            .iter()
            .filter(|x| x.instrument == inst.id)
            .map(|x| (x.day, x.total))
            .collect();
        // The baseline is the last score on or before the first treatment.
        let baseline = pts
            .iter()
            .filter(|(d, _)| *d <= 0)
            .max_by_key(|(d, _)| *d)
            .copied();
        let from_baseline: Vec<Point> = baseline
            .into_iter()
            .chain(pts.iter().copied().filter(|(d, _)| *d > 0))
            .map(|(d, v)| Point {
                date: at(d),
                score: i32::try_from(v).unwrap_or(i32::MAX),
            })
            .collect();
        let course = (baseline.is_some() && from_baseline.len() > 1)
            .then(|| ketcare_measures::course_outcome(inst, &from_baseline, settings));
        let window_score = window.and_then(|(lo, hi)| {
            pts.iter()
                .filter(|(d, _)| *d >= lo && *d <= hi)
                .max_by_key(|(d, _)| *d)
                .map(|(_, v)| *v)
        });
        let (response, remission) = match (baseline, window_score, &course) {
            (Some((_, b)), Some(w), Some(c)) => (
                c.response_rule
                    .as_ref()
                    .filter(|_| b > 0)
                    .map(|r| (b - w) as f64 >= r.value * b as f64 - 1e-9),
                c.remission_rule.as_ref().map(|r| (w as f64) <= r.value),
            ),
            _ => (None, None),
        };
        let day_of = |d: Option<Date>| {
            d.and_then(|d| origin.until(d).ok())
                .map(|s| i64::from(s.get_days()))
        };
        let first_response = course.as_ref().and_then(|c| day_of(c.first_response));
        let relapse = course.as_ref().and_then(|c| day_of(c.relapse));
        let last_score = pts.iter().map(|(d, _)| *d).max();
        let (durability_days, relapsed) = match (first_response, relapse, last_score) {
            (Some(r), Some(l), _) => (Some(l - r), Some(true)),
            (Some(r), None, Some(last)) => (Some(last - r), Some(false)),
            _ => (None, None),
        };
        let doses: Vec<f64> = s.sessions.iter().filter_map(|x| x.given_mg).collect();
        let maintenance_interval_days = induction.and_then(|(_, days)| {
            let gaps: Vec<f64> = s
                .sessions
                .windows(2)
                .filter(|w| w[1].day > days)
                .map(|w| (w[1].day - w[0].day) as f64)
                .collect();
            median_of(gaps)
        });
        let follow_up = s
            .sessions
            .iter()
            .map(|x| x.day)
            .chain(s.scores.iter().map(|x| x.day))
            .max()
            .unwrap_or(0);
        let mme_change = mme_change(&s.opioids, follow_up, at);
        out.push(SubjectOutcome {
            study_id: s.study_id.clone(),
            age: s.age.clone(),
            age_band: s.age_band.clone(),
            sex: s.sex.clone(),
            indication: protocol.map_or_else(
                || "unknown".into(),
                |p| word(serde_json::to_value(p.indication)),
            ),
            drug: protocol.map_or_else(|| "unknown".into(), |p| word(serde_json::to_value(p.drug))),
            route: protocol
                .map_or_else(|| "unknown".into(), |p| word(serde_json::to_value(p.route))),
            protocol: first.map_or_else(String::new, |x| x.protocol_id.clone()),
            sessions: s.sessions.len(),
            induction_completed: induction
                .map(|(n, days)| s.sessions.iter().filter(|x| x.day <= days).count() as i64 >= n),
            baseline: baseline.map(|(_, v)| v),
            baseline_band: baseline.and_then(|(_, v)| band_of(inst, v)),
            window_score,
            response,
            remission,
            days_to_response: first_response,
            durability_days,
            relapsed,
            mean_dose_mg: (!doses.is_empty())
                .then(|| doses.iter().sum::<f64>() / doses.len() as f64),
            induction_cmax_ng_ml: induction_mean(s, induction, |x| x.predicted_cmax_ng_ml),
            induction_auc_ng_min_ml: induction_mean(s, induction, |x| x.predicted_auc_ng_min_ml),
            maintenance_interval_days,
            adverse_events: s.sessions.iter().map(|x| x.adverse_events).sum(),
            alarms: s.sessions.iter().map(|x| x.alarms).sum(),
            max_systolic_rise: s
                .sessions
                .iter()
                .filter_map(|x| x.systolic_rise)
                .reduce(f64::max),
            max_dissociation: s.sessions.iter().filter_map(|x| x.max_dissociation).max(),
            alerts: s.alert_days.len(),
            mme_change,
            bmi: s.bmi,
            family_history_alcohol_use_disorder: s.intake.family_history_alcohol_use_disorder,
            prior_suicide_attempt: s.intake.prior_suicide_attempt,
            prior_ect_or_tms: s.intake.prior_ect_or_tms,
            comorbid_anxiety: s.intake.comorbid_anxiety,
            ptsd: s.intake.ptsd,
            chronic_pain: s.intake.chronic_pain,
            integration_in_window: integration_window.map(|w| {
                s.sessions
                    .iter()
                    .all(|x| x.integration_after_days.is_some_and(|d| d <= w))
            }),
            alert_days: s.alert_days.clone(),
            year: s.year,
        });
    }
    Ok(out)
}

/// The mean of a session figure over the induction's sessions (day 0 to the site's induction
/// days): the exposure the outcome window follows. `None` while the induction is unset, or
/// when any induction session lacks the figure (a mean of the predicted ones only would
/// silently describe another exposure). The mean rather than the median: the response is
/// read after the whole induction, so the quantity is the average exposure it gave (the
/// total over the induction divided by its sessions); a median would ignore how high or low
/// the other sessions went.
fn induction_mean(
    s: &RegistrySubject,
    induction: Option<(i64, i64)>,
    figure: impl Fn(&ketcare_store::registry::RegistrySession) -> Option<f64>,
) -> Option<f64> {
    let (_, days) = induction?;
    let values: Vec<f64> = s
        .sessions
        .iter()
        .filter(|x| x.day <= days)
        .map(figure)
        .collect::<Option<_>>()?;
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn median_of(v: Vec<f64>) -> Option<f64> {
    quartiles(v).map(|q| q[1])
}

/// Total MME per day at `follow_up` minus at day 0, from the subject's opioid list (`None`
/// without an opioid whose MME can be computed; one that cannot counts as nothing, as on the
/// chart).
fn mme_change(
    opioids: &[ketcare_store::registry::RegistryOpioid],
    follow_up: i64,
    at: impl Fn(i64) -> Date,
) -> Option<f64> {
    if opioids.is_empty() {
        return None;
    }
    let dated: Vec<DatedMme> = opioids
        .iter()
        .filter_map(|o| {
            let line =
                crate::measures::entry_mme(&o.drug, o.dose, &o.unit, o.per_day, o.route.clone())
                    .ok()?;
            Some(DatedMme {
                start: at(o.start_day),
                stop: o.stop_day.map(&at),
                mme_per_day: line.mme_per_day?,
            })
        })
        .collect();
    if dated.is_empty() {
        return None;
    }
    let window = ketcare_measures::mme::window(
        &ketcare_measures::mme::timeline(&dated),
        at(0),
        at(follow_up.max(0)),
    );
    ketcare_measures::mme::change(&window)
}

fn band_of(inst: &ketcare_measures::Instrument, total: i64) -> Option<String> {
    inst.bands
        .iter()
        .find(|b| i64::from(b.min) <= total && total <= i64::from(b.max))
        .map(|b| b.label.clone())
}

fn year(field: &str, v: &Option<String>) -> Result<Option<i16>, Error> {
    match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(y) => y
            .parse::<i16>()
            .ok()
            .filter(|y| (1900..=9999).contains(y))
            .map(Some)
            .ok_or_else(|| Error::invalid(field, format!("expected a calendar year, got {y:?}"))),
    }
}

/// The query as a test of a subject (a bad year is refused naming its field).
pub fn matcher(q: &CohortQuery) -> Result<impl Fn(&SubjectOutcome) -> bool + '_, Error> {
    let (from, to) = (
        year("year_from", &q.year_from)?,
        year("year_to", &q.year_to)?,
    );
    let eq = |want: &Option<String>, have: &str| {
        want.as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .is_none_or(|w| w == have)
    };
    Ok(move |s: &SubjectOutcome| {
        eq(&q.indication, &s.indication)
            && eq(&q.drug, &s.drug)
            && eq(&q.route, &s.route)
            && eq(&q.protocol, &s.protocol)
            && eq(&q.age_band, &s.age_band)
            && eq(&q.sex, &s.sex)
            && eq(&q.baseline_band, s.baseline_band.as_deref().unwrap_or(""))
            && from.is_none_or(|y| s.year >= y)
            && to.is_none_or(|y| s.year <= y)
    })
}

/// Keeps the subjects the query asks for.
pub fn select(
    all: &[Arc<SubjectOutcome>],
    q: &CohortQuery,
) -> Result<Vec<Arc<SubjectOutcome>>, Error> {
    let keep = matcher(q)?;
    Ok(all.iter().filter(|s| keep(s)).cloned().collect())
}

fn rate(k: u64, n: u64, small: u64) -> Rate {
    let (kc, nc) = (cell(k, small), cell(n, small));
    let shown = matches!((kc, nc), (Cell::Count(_), Cell::Count(_)));
    Rate {
        k: kc,
        n: nc,
        estimate: if shown { wilson(k, n) } else { None },
    }
}

fn quartiles(mut v: Vec<f64>) -> Option<[f64; 3]> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let h = (v.len() - 1) as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (h - lo as f64)
    };
    Some([q(0.25), q(0.5), q(0.75)])
}

fn flag(b: Option<bool>) -> Option<f64> {
    b.map(|b| f64::from(u8::from(b)))
}

/// A covariate's name and how a subject's value is read.
pub type Covariate = (&'static str, fn(&SubjectOutcome) -> Option<f64>);

/// Every covariate a predictor model may use: its name and its value for a subject (`None`:
/// missing; a subject missing a chosen covariate is left out of that model).
pub const COVARIATES: &[Covariate] = &[
    ("baseline", |s| s.baseline.map(|v| v as f64)),
    ("age", |s| s.age.parse::<f64>().ok()),
    ("female", |s| Some(f64::from(u8::from(s.sex == "female")))),
    ("esketamine", |s| {
        Some(f64::from(u8::from(s.drug == "esketamine")))
    }),
    ("bmi", |s| s.bmi),
    ("family_history_alcohol_use_disorder", |s| {
        flag(s.family_history_alcohol_use_disorder)
    }),
    ("prior_suicide_attempt", |s| flag(s.prior_suicide_attempt)),
    ("prior_ect_or_tms", |s| flag(s.prior_ect_or_tms)),
    ("comorbid_anxiety", |s| flag(s.comorbid_anxiety)),
    ("ptsd", |s| flag(s.ptsd)),
    ("chronic_pain", |s| flag(s.chronic_pain)),
    ("integration_in_window", |s| flag(s.integration_in_window)),
    ("max_dissociation", |s| s.max_dissociation.map(f64::from)),
];

/// The default covariates.
pub const DEFAULT_COVARIATES: [&str; 4] = ["baseline", "age", "female", "esketamine"];

/// The covariates a query chooses (default [`DEFAULT_COVARIATES`]); an unknown name is refused
/// naming `covariates`.
pub fn chosen_covariates(q: &CohortQuery) -> Result<Vec<&'static str>, Error> {
    let Some(list) = q.covariates.as_deref().filter(|v| !v.trim().is_empty()) else {
        return Ok(DEFAULT_COVARIATES.to_vec());
    };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some((known, _)) = COVARIATES.iter().find(|(n, _)| *n == name) else {
            return Err(Error::invalid(
                "covariates",
                format!(
                    "unknown covariate {name:?}; one of {}",
                    COVARIATES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if !out.contains(known) {
            out.push(*known);
        }
    }
    Ok(out)
}

fn covariates(s: &SubjectOutcome, names: &[&str]) -> Option<Vec<f64>> {
    names
        .iter()
        .map(|n| {
            COVARIATES
                .iter()
                .find(|(k, _)| k == n)
                .and_then(|(_, f)| f(s))
        })
        .collect()
}

fn epv_warnings(events: usize, covariates: usize) -> Vec<String> {
    match events_per_variable_minimum() {
        Ok((min, source)) if (events as f64) < (min as f64) * covariates as f64 => vec![format!(
            "only {events} events for {covariates} covariates: fewer than {min} per covariate, so \
             the estimates and their intervals are unreliable ({source})"
        )],
        Ok(_) => Vec::new(),
        Err(e) => vec![e.to_string()],
    }
}

/// A fitted model (or why it could not be fitted) with the events-per-variable warning.
/// `events`: the rarer outcome's count (logistic) or the events (Cox).
fn model(
    names: &[&str],
    n: usize,
    events: usize,
    fit: Result<Vec<Coefficient>, ketcare_research::FitError>,
) -> Model {
    match fit {
        Ok(coefficients) => Model {
            n,
            events,
            coefficients,
            warnings: epv_warnings(events, names.len()),
        },
        Err(e) => Model {
            n,
            events,
            coefficients: Vec::new(),
            warnings: vec![e.to_string()],
        },
    }
}

/// The outcome table of a cohort of derived outcomes.
pub fn table<S: std::ops::Deref<Target = SubjectOutcome>>(
    cohort: &[S],
    settings: &SiteSettings,
    instrument: &str,
    names: &[&str],
) -> Result<OutcomeTable, Error> {
    let small = setting(settings, SMALL_CELL).filter(|k| *k >= 1).ok_or_else(|| {
        Error::Conflict(format!(
            "the registry shows nothing until the site sets {SMALL_CELL} (the smallest count a table may show)"
        ))
    })? as u64;
    Ok(table_with(cohort, settings, instrument, names, small))
}

/// The outcome table with counts under `small` suppressed (1: none, for the identified program
/// dashboard).
fn table_with<S: std::ops::Deref<Target = SubjectOutcome>>(
    cohort: &[S],
    settings: &SiteSettings,
    instrument: &str,
    names: &[&str],
    small: u64,
) -> OutcomeTable {
    let mut notes = Vec::new();
    let window = setting(settings, WINDOW_FROM).zip(setting(settings, WINDOW_TO));
    if window.is_none() {
        notes.push(format!(
            "response and remission are not evaluated: the site has not set {WINDOW_FROM} and {WINDOW_TO}"
        ));
    }
    if setting(settings, INDUCTION_SESSIONS)
        .zip(setting(settings, INDUCTION_DAYS))
        .is_none()
    {
        notes.push(format!(
            "induction completion and response by predicted exposure are not evaluated: the site has not set {INDUCTION_SESSIONS} and {INDUCTION_DAYS}"
        ));
    }
    let n = cohort.len() as u64;
    let count = |f: &dyn Fn(&SubjectOutcome) -> Option<bool>| {
        let evaluable: Vec<bool> = cohort.iter().filter_map(|s| f(s)).collect();
        (!evaluable.is_empty()).then(|| {
            rate(
                evaluable.iter().filter(|b| **b).count() as u64,
                evaluable.len() as u64,
                small,
            )
        })
    };
    let median = |mut v: Vec<f64>| quartiles(std::mem::take(&mut v)).map(|q| q[1]);
    let sessions: usize = cohort.iter().map(|s| s.sessions).sum();
    let per_session = |total: u32| (sessions > 0).then(|| f64::from(total) / sessions as f64);
    // Durability: responders only, shown when there are at least the small-cell count of them.
    let durable: Vec<(f64, bool)> = cohort
        .iter()
        .filter_map(|s| Some((s.durability_days? as f64, s.relapsed?)))
        .collect();
    let durability = (durable.len() as u64 >= small)
        .then(|| kaplan_meier(&durable))
        .flatten();
    let mut alerts = [0u64; 3];
    for d in cohort.iter().flat_map(|s| &s.alert_days) {
        alerts[match *d {
            ..=30 => 0,
            31..=90 => 1,
            _ => 2,
        }] += 1;
    }
    let alerts_by_period = alerts.map(|n| cell(n, small));
    // Dose tertiles among subjects with a response evaluated and a mean dose.
    let mut dosed: Vec<(f64, bool)> = cohort
        .iter()
        .filter_map(|s| Some((s.mean_dose_mg?, s.response?)))
        .collect();
    dosed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let response_by_dose_tertile = if dosed.len() >= 3 {
        let third = dosed.len().div_ceil(3);
        dosed
            .chunks(third)
            .map(|c| {
                let label = format!(
                    "{}–{} mg",
                    ketcare_core::units::trim_float(c[0].0),
                    ketcare_core::units::trim_float(c[c.len() - 1].0)
                );
                (
                    label,
                    rate(
                        c.iter().filter(|x| x.1).count() as u64,
                        c.len() as u64,
                        small,
                    ),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let response_by_cmax_tertile = exposure_tertiles(
        cohort,
        "induction_cmax_ng_ml",
        "ng/mL",
        |s| s.induction_cmax_ng_ml,
        small,
    );
    let response_by_auc_tertile = exposure_tertiles(
        cohort,
        "induction_auc_ng_min_ml",
        "ng·min/mL",
        |s| s.induction_auc_ng_min_ml,
        small,
    );
    let response_by_integration = [
        (true, "every dose integrated within the window"),
        (false, "not every dose"),
    ]
    .into_iter()
    .filter_map(|(want, label)| {
        let group: Vec<bool> = cohort
            .iter()
            .filter(|s| s.integration_in_window == Some(want))
            .filter_map(|s| s.response)
            .collect();
        (!group.is_empty()).then(|| {
            (
                label.to_owned(),
                rate(
                    group.iter().filter(|r| **r).count() as u64,
                    group.len() as u64,
                    small,
                ),
            )
        })
    })
    .collect();
    // Predictors: logistic regression of response; Cox regression of time to relapse.
    let rows: Vec<(Vec<f64>, bool)> = cohort
        .iter()
        .filter_map(|s| Some((covariates(s, names)?, s.response?)))
        .collect();
    let logistic = (!rows.is_empty()).then(|| {
        let (x, y): (Vec<Vec<f64>>, Vec<bool>) = rows.into_iter().unzip();
        let events = y
            .iter()
            .filter(|v| **v)
            .count()
            .min(y.iter().filter(|v| !**v).count());
        model(
            names,
            y.len(),
            events,
            logistic::fit(names, &x, &y).map(|f| f.coefficients),
        )
    });
    let surv: Vec<(Vec<f64>, f64, bool)> = cohort
        .iter()
        .filter_map(|s| {
            Some((
                covariates(s, names)?,
                s.durability_days? as f64,
                s.relapsed?,
            ))
        })
        .collect();
    let cox = (!surv.is_empty()).then(|| {
        let subjects: Vec<cox::Subject<'_>> = surv
            .iter()
            .map(|(x, t, e)| cox::Subject {
                time: *t,
                event: *e,
                x,
            })
            .collect();
        let events = surv.iter().filter(|s| s.2).count();
        model(
            names,
            surv.len(),
            events,
            cox::fit(names, &subjects).map(|f| f.coefficients),
        )
    });
    // Models on fewer subjects than the small-cell count are not shown, and no distribution of
    // a cohort smaller than it (a median of two is two people's values).
    let shown = |m: Option<Model>| m.filter(|m| m.n as u64 >= small);
    let enough = n >= small;
    let median = |v: Vec<f64>| if enough { median(v) } else { None };
    let quartiles = |v: Vec<f64>| if enough { quartiles(v) } else { None };
    let per_session = |total: u32| if enough { per_session(total) } else { None };
    OutcomeTable {
        instrument: instrument.to_owned(),
        small_cell: small,
        window,
        subjects: cell(n, small),
        induction_completed: count(&|s| s.induction_completed),
        response: count(&|s| s.response),
        remission: count(&|s| s.remission),
        median_days_to_response: median(
            cohort
                .iter()
                .filter_map(|s| s.days_to_response)
                .map(|d| d as f64)
                .collect(),
        ),
        durability,
        sessions_per_subject_median: median(cohort.iter().map(|s| s.sessions as f64).collect()),
        maintenance_interval_quartiles: quartiles(
            cohort
                .iter()
                .filter_map(|s| s.maintenance_interval_days)
                .collect(),
        ),
        mme_reduced: count(&|s| s.mme_change.map(|c| c < 0.0)),
        mme_change_quartiles: quartiles(cohort.iter().filter_map(|s| s.mme_change).collect()),
        adverse_events_per_session: per_session(cohort.iter().map(|s| s.adverse_events).sum()),
        alarms_per_session: per_session(cohort.iter().map(|s| s.alarms).sum()),
        systolic_rise_quartiles: quartiles(
            cohort.iter().filter_map(|s| s.max_systolic_rise).collect(),
        ),
        dissociation_quartiles: quartiles(
            cohort
                .iter()
                .filter_map(|s| s.max_dissociation)
                .map(f64::from)
                .collect(),
        ),
        alerts_by_period,
        response_by_dose_tertile,
        response_by_cmax_tertile,
        response_by_auc_tertile,
        response_by_integration,
        logistic: shown(logistic),
        cox: shown(cox),
        notes,
    }
}

/// Response by tertile of an exposure among the subjects with the exposure and a response
/// evaluated; `None` under three such subjects. Each count leaves through [`rate`] (the
/// small-cell rule); the cut points are shown only for at least `small` subjects.
fn exposure_tertiles<S: std::ops::Deref<Target = SubjectOutcome>>(
    cohort: &[S],
    measure: &'static str,
    unit: &'static str,
    exposure: impl Fn(&SubjectOutcome) -> Option<f64>,
    small: u64,
) -> Option<ExposureTertiles> {
    let pairs: Vec<(f64, bool)> = cohort
        .iter()
        .filter_map(|s| Some((exposure(s)?, s.response?)))
        .collect();
    let t = ketcare_research::tertile::tertiles(&pairs)?;
    let n = pairs.len() as u64;
    let shown = n >= small;
    let [a, b] = t.cuts.map(|c| format!("{c:.1}"));
    let labels = if shown {
        [
            format!("lowest (≤ {a} {unit})"),
            format!("middle ({a}–{b} {unit})"),
            format!("highest (> {b} {unit})"),
        ]
    } else {
        ["lowest".into(), "middle".into(), "highest".into()]
    };
    Some(ExposureTertiles {
        measure,
        unit,
        subjects: cell(n, small),
        cut_points: shown.then_some(t.cuts),
        tertiles: labels
            .into_iter()
            .zip(t.counts)
            .map(|(label, c)| (label, rate(c.events, c.n, small)))
            .collect(),
    })
}

/// The last cohort computed, with everything it was computed from: the store's subjects (the
/// very copy — the store hands out a new one whenever the registry's version moved, so holding
/// it pins the data), the site settings' version, the protocol library's list and the query.
struct CohortMemo {
    subjects: ketcare_store::Researched,
    settings_version: i64,
    protocols: Vec<ketcare_clinical::protocol::ProtocolSummary>,
    query: String,
    instrument: String,
    /// Every subject's outcome (before the query's selection), in the subjects' order.
    all: Cohort,
    cohort: Cohort,
    table: OutcomeTable,
}

static COHORT_MEMO: std::sync::Mutex<Option<CohortMemo>> = std::sync::Mutex::new(None);

/// A researcher's cohort: the store's de-identified subjects, their outcomes, the rows of the
/// quasi-identifier groups under the small-cell count left out, the query applied.
///
/// Every call checks the reader's permission and is audited by the store; when the subjects,
/// the site settings, the library and the query are all the ones of the last call, the
/// outcomes and table derived then are returned again instead of being derived anew (they are
/// a pure function of those). The store's copy of the subjects changes with any write to what
/// they are derived from, so the answer is never older than the record.
pub async fn cohort(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    q: &CohortQuery,
) -> Result<(Cohort, OutcomeTable), Error> {
    let (settings, settings_version) = crate::clinical::settings(store).await?;
    let instrument = q.instrument_or_default();
    let subjects = store.registry(actor).await?;
    let query = serde_json::to_string(q).map_err(|e| Error::Conflict(e.to_string()))?;
    let protocols = library.list();
    let same = |m: &CohortMemo| {
        std::sync::Arc::ptr_eq(&m.subjects, &subjects)
            && m.settings_version == settings_version
            && m.query == query
            && m.protocols == protocols
    };
    if let Some(m) = COHORT_MEMO
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|m| same(m))
    {
        return Ok((m.cohort.clone(), m.table.clone()));
    }
    // The outcomes of the last call, when derived under the same definitions: a subject equal
    // to the one they were derived from keeps its outcome.
    let earlier = COHORT_MEMO
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|m| {
            m.settings_version == settings_version
                && m.protocols == protocols
                && m.instrument == instrument
        })
        .map(|m| (m.subjects.clone(), m.all.clone()));
    let (all, chosen, t) = off_the_workers({
        let (subjects, library, settings, q, instrument) = (
            subjects.clone(),
            library.clone(),
            settings.clone(),
            q.clone(),
            instrument.clone(),
        );
        move || {
            let all = std::sync::Arc::new(match earlier {
                Some((before, derived)) => outcomes_reusing(
                    (&before, &derived),
                    &subjects,
                    &library,
                    &settings,
                    &instrument,
                )?,
                None => outcomes(&subjects, &library, &settings, &instrument)?
                    .into_iter()
                    .map(Arc::new)
                    .collect(),
            });
            let chosen = std::sync::Arc::new(select(&all, &q)?);
            let names = chosen_covariates(&q)?;
            let t = table(&chosen, &settings, &instrument, &names)?;
            Ok((all, chosen, t))
        }
    })
    .await?;
    *COHORT_MEMO.lock().unwrap_or_else(|e| e.into_inner()) = Some(CohortMemo {
        subjects,
        settings_version,
        protocols,
        query,
        instrument,
        all,
        cohort: chosen.clone(),
        table: t.clone(),
    });
    Ok((chosen, t))
}

/// A patient of the program dashboard beside their derived outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramRow {
    pub patient: ProgramPatient,
    pub outcome: SubjectOutcome,
}

/// The program dashboard (the clinic's medical director, identified): the registry's outcome
/// table over the whole program's patients (or those the query selects) with each patient
/// beside their outcome. No cell is suppressed (the reader may read every record), and no
/// study id is shown.
pub async fn program(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    q: &CohortQuery,
) -> Result<(Vec<ProgramRow>, OutcomeTable), Error> {
    let (settings, _) = crate::clinical::settings(store).await?;
    let instrument = q.instrument_or_default();
    let names = chosen_covariates(q)?;
    // A bad query is refused before anything is read.
    let _checked = matcher(q)?;
    let read = store.program(actor).await?;
    let (rows, mut t) = off_the_workers({
        let (library, q) = (library.clone(), q.clone());
        move || {
            let keep = matcher(&q)?;
            let (patients, subjects): (Vec<ProgramPatient>, Vec<RegistrySubject>) =
                read.into_iter().unzip();
            let rows: Vec<ProgramRow> = patients
                .into_iter()
                .zip(outcomes(&subjects, &library, &settings, &instrument)?)
                .filter(|(_, o)| keep(o))
                .map(|(patient, outcome)| ProgramRow { patient, outcome })
                .collect();
            let cohort: Vec<&SubjectOutcome> = rows.iter().map(|r| &r.outcome).collect();
            let t = table_with(&cohort, &settings, &instrument, &names, 1);
            Ok((rows, t))
        }
    })
    .await?;
    t.notes.push(
        "The program's own records, identified: no count is suppressed (the registry's export suppresses small cells)."
            .into(),
    );
    Ok((rows, t))
}

/// Saves the query under `name` as that name's next version (the query is checked first: a
/// bad year or instrument is refused naming its field).
pub async fn save_cohort(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    q: &CohortQuery,
) -> Result<ketcare_store::registry::SavedCohort, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("name", "a name of 1 to 100 characters"));
    }
    let _checked = matcher(q)?;
    chosen_covariates(q)?;
    if let Some(i) = q.instrument.as_deref().filter(|i| !i.trim().is_empty()) {
        find(i).map_err(|_| Error::invalid("instrument", format!("unknown instrument {i:?}")))?;
    }
    let query = serde_json::to_string(q).map_err(|e| Error::Conflict(e.to_string()))?;
    Ok(store.save_cohort(actor, name, &query).await?)
}

/// A saved cohort's query.
pub async fn saved_query(
    store: &dyn Store,
    actor: &Actor,
    id: i64,
) -> Result<(ketcare_store::registry::SavedCohort, CohortQuery), Error> {
    let c = store.saved_cohort(actor, id).await?;
    let q = serde_json::from_str(&c.query)
        .map_err(|e| Error::Conflict(format!("saved cohort {id}: {e}")))?;
    Ok((c, q))
}

const fn col(
    name: &'static str,
    kind: Kind,
    unit: &'static str,
    definition: &'static str,
) -> Column {
    Column {
        name,
        kind,
        unit,
        definition,
    }
}

/// The export's columns: name, type, unit, definition (the data dictionary). CSV and Parquet are
/// written from the same typed rows ([`row`]), so the two cannot disagree.
pub const DICTIONARY: &[Column] = &[
    col(
        "study_id",
        Kind::Text,
        "",
        "Random study id; not derived from any identifier",
    ),
    col(
        "age",
        Kind::Text,
        "years",
        "Age at first treatment; 90+ above 89 (HIPAA Safe Harbor)",
    ),
    col(
        "age_band",
        Kind::Text,
        "",
        "ICH E11 age band at first treatment",
    ),
    col("sex", Kind::Text, "", "female, male, other or unknown"),
    col(
        "indication",
        Kind::Text,
        "",
        "Indication of the first session's protocol",
    ),
    col(
        "drug",
        Kind::Text,
        "",
        "Drug of the first session's protocol",
    ),
    col(
        "route",
        Kind::Text,
        "",
        "Route of the first session's protocol",
    ),
    col(
        "protocol",
        Kind::Text,
        "",
        "Protocol id of the first session",
    ),
    col(
        "sessions",
        Kind::Integer,
        "count",
        "Sessions that gave a dose",
    ),
    col(
        "induction_completed",
        Kind::Boolean,
        "",
        "At least the site's number of sessions within the site's days of the first (empty: not evaluated)",
    ),
    col(
        "baseline",
        Kind::Integer,
        "points",
        "Last score of the instrument on or before the first treatment",
    ),
    col(
        "baseline_band",
        Kind::Text,
        "",
        "The instrument's severity band of the baseline",
    ),
    col(
        "window_score",
        Kind::Integer,
        "points",
        "Last score within the site's outcome window",
    ),
    col(
        "response",
        Kind::Boolean,
        "",
        "Fall from baseline at the window of at least the instrument's cited response fraction",
    ),
    col(
        "remission",
        Kind::Boolean,
        "",
        "Window score at or below the instrument's cited remission bound",
    ),
    col(
        "days_to_response",
        Kind::Integer,
        "days",
        "Days from the first treatment to the first response",
    ),
    col(
        "durability_days",
        Kind::Integer,
        "days",
        "Responders: days from first response to relapse, or to the last score if none",
    ),
    col(
        "relapsed",
        Kind::Boolean,
        "",
        "Responders: relapse by the instrument's cited rule (false: censored)",
    ),
    col(
        "mean_dose_mg",
        Kind::Real,
        "mg",
        "Mean dose given per session",
    ),
    col(
        "induction_cmax_ng_ml",
        Kind::Real,
        "ng/mL",
        "Mean over the induction sessions (day 0 to the site's induction days) of the PK engine's predicted plasma Cmax of what each session gave, computed at signing for the weight charted then (default model: Domino for ketamine, Perez-Ruixo 2021 for esketamine; 1-minute grid). Empty: induction not set, or an induction session not predicted",
    ),
    col(
        "induction_auc_ng_min_ml",
        Kind::Real,
        "ng·min/mL",
        "The same mean of the predicted AUC, exact from each session's first administration to its last dosing event + 240 min (at least 360 min)",
    ),
    col(
        "maintenance_interval_days",
        Kind::Real,
        "days",
        "Median days between consecutive sessions after the site's induction days (empty: induction not set, or fewer than two such sessions)",
    ),
    col(
        "adverse_events",
        Kind::Integer,
        "count",
        "Adverse events recorded in sessions",
    ),
    col(
        "alarms",
        Kind::Integer,
        "count",
        "Alarms raised in sessions",
    ),
    col(
        "max_systolic_rise",
        Kind::Real,
        "mmHg",
        "Largest systolic rise over the last pre-dose reading in any session",
    ),
    col(
        "max_dissociation",
        Kind::Integer,
        "points",
        "Highest dissociation score recorded in any session",
    ),
    col(
        "alerts",
        Kind::Integer,
        "count",
        "Suicide-risk safety alerts raised",
    ),
    col(
        "mme_change",
        Kind::Real,
        "MME/day",
        "Total oral morphine milligram equivalents per day at the last follow-up minus at the first treatment (empty: no opioid recorded)",
    ),
    col(
        "bmi",
        Kind::Real,
        "kg/m2",
        "Body-mass index from the recorded weight and height",
    ),
    col(
        "family_history_alcohol_use_disorder",
        Kind::Boolean,
        "",
        "Intake: a first-degree relative with alcohol use disorder (empty: not asked)",
    ),
    col(
        "prior_suicide_attempt",
        Kind::Boolean,
        "",
        "Intake: a suicide attempt before (empty: not asked)",
    ),
    col(
        "prior_ect_or_tms",
        Kind::Boolean,
        "",
        "Intake: ECT or TMS before (empty: not asked)",
    ),
    col(
        "comorbid_anxiety",
        Kind::Boolean,
        "",
        "Intake: a comorbid anxiety disorder (empty: not asked)",
    ),
    col("ptsd", Kind::Boolean, "", "Intake: PTSD (empty: not asked)"),
    col(
        "chronic_pain",
        Kind::Boolean,
        "",
        "Intake: chronic pain (empty: not asked)",
    ),
    col(
        "integration_in_window",
        Kind::Boolean,
        "",
        "Every dose had its integration session within the site's window (empty: window not set)",
    ),
];

/// One subject's row of the export, in [`DICTIONARY`] order.
pub fn row(s: &SubjectOutcome) -> Vec<Value> {
    let text = |v: &str| Value::Text(Some(v.to_owned()));
    let int = |v: Option<i64>| Value::Integer(v);
    let count = |v: u64| Value::Integer(i64::try_from(v).ok());
    vec![
        text(&s.study_id),
        text(&s.age),
        text(&s.age_band),
        text(&s.sex),
        text(&s.indication),
        text(&s.drug),
        text(&s.route),
        text(&s.protocol),
        count(s.sessions as u64),
        Value::Boolean(s.induction_completed),
        int(s.baseline),
        Value::Text(s.baseline_band.clone()),
        int(s.window_score),
        Value::Boolean(s.response),
        Value::Boolean(s.remission),
        int(s.days_to_response),
        int(s.durability_days),
        Value::Boolean(s.relapsed),
        Value::Real(s.mean_dose_mg),
        Value::Real(s.induction_cmax_ng_ml),
        Value::Real(s.induction_auc_ng_min_ml),
        Value::Real(s.maintenance_interval_days),
        count(u64::from(s.adverse_events)),
        count(u64::from(s.alarms)),
        Value::Real(s.max_systolic_rise),
        int(s.max_dissociation.map(i64::from)),
        count(s.alerts as u64),
        Value::Real(s.mme_change),
        Value::Real(s.bmi),
        Value::Boolean(s.family_history_alcohol_use_disorder),
        Value::Boolean(s.prior_suicide_attempt),
        Value::Boolean(s.prior_ect_or_tms),
        Value::Boolean(s.comorbid_anxiety),
        Value::Boolean(s.ptsd),
        Value::Boolean(s.chronic_pain),
        Value::Boolean(s.integration_in_window),
    ]
}

/// The export's rows: one per subject, the rows of quasi-identifier groups (age band, sex,
/// indication) smaller than the small-cell count left out.
pub fn rows<S: std::ops::Deref<Target = SubjectOutcome>>(
    cohort: &[S],
    small_cell: u64,
) -> Vec<Vec<Value>> {
    let keys: Vec<(String, String, String)> = cohort
        .iter()
        .map(|s| (s.age_band.clone(), s.sex.clone(), s.indication.clone()))
        .collect();
    let small = small_groups(&keys, small_cell);
    cohort
        .iter()
        .zip(&keys)
        .filter(|(_, k)| !small.contains(*k))
        .map(|(s, _)| row(s))
        .collect()
}

/// Runs a long pure computation (deriving a whole program's outcomes, encoding an export) on
/// the background worker ([`crate::background`]) rather than on an async worker, so that the
/// bedside feed and every other request keep running — and come first — while it computes.
async fn off_the_workers<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    crate::background::run(f).await
}

/// An export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

/// The cohort's export in `format` (see [`rows`]), encoded off the async workers: what the
/// page, the CLI and the benchmarks call.
pub async fn export(cohort: Cohort, small_cell: u64, format: Format) -> Result<Vec<u8>, Error> {
    off_the_workers(move || match format {
        Format::Csv => csv(&cohort, small_cell).map(String::into_bytes),
        Format::Parquet => parquet(&cohort, small_cell),
    })
    .await
}

/// The export as CSV (see [`rows`]).
pub fn csv<S: std::ops::Deref<Target = SubjectOutcome>>(
    cohort: &[S],
    small_cell: u64,
) -> Result<String, Error> {
    export::csv(DICTIONARY, &rows(cohort, small_cell)).map_err(|e| Error::Conflict(e.to_string()))
}

/// The export as one Parquet file (see [`rows`]), every column typed as the dictionary says.
pub fn parquet<S: std::ops::Deref<Target = SubjectOutcome>>(
    cohort: &[S],
    small_cell: u64,
) -> Result<Vec<u8>, Error> {
    export::parquet(DICTIONARY, &rows(cohort, small_cell))
        .map_err(|e| Error::Conflict(e.to_string()))
}

/// The data dictionary as CSV (column, type, unit, definition).
pub fn dictionary_csv() -> String {
    export::dictionary_csv(DICTIONARY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketcare_store::registry::{RegistryOpioid, RegistryScore, RegistrySession};

    fn session(day: i64) -> RegistrySession {
        RegistrySession {
            day,
            protocol_id: "none".into(),
            given_mg: Some(35.0),
            adverse_events: 0,
            alarms: 0,
            max_dissociation: None,
            systolic_rise: None,
            integration_after_days: None,
            predicted_cmax_ng_ml: Some(100.0 + day as f64),
            predicted_auc_ng_min_ml: Some(9000.0),
        }
    }

    fn oxycodone(dose: f64, start_day: i64, stop_day: Option<i64>) -> RegistryOpioid {
        RegistryOpioid {
            drug: "oxycodone".into(),
            dose: dose / 2.0,
            unit: "mg".into(),
            per_day: Some(2.0),
            route: None,
            start_day,
            stop_day,
        }
    }

    fn subject(days: &[i64], opioids: Vec<RegistryOpioid>) -> RegistrySubject {
        RegistrySubject {
            study_id: "S-TEST".into(),
            age: "40".into(),
            age_band: "adult".into(),
            sex: "female".into(),
            year: 2026,
            intake: Default::default(),
            bmi: None,
            sessions: days.iter().map(|d| session(*d)).collect(),
            scores: vec![RegistryScore {
                instrument: "phq9".into(),
                day: -1,
                total: 20,
            }],
            alert_days: Vec::new(),
            opioids,
        }
    }

    #[test]
    fn maintenance_intervals_count_sessions_after_the_induction_days() {
        let lib = Library::builtin().unwrap();
        let s = subject(&[0, 2, 4, 6, 40, 70, 90], Vec::new());
        let unset = outcomes(std::slice::from_ref(&s), &lib, &SiteSettings::new(), "phq9").unwrap();
        assert_eq!(unset[0].maintenance_interval_days, None, "induction unset");
        let settings = SiteSettings::new()
            .with(INDUCTION_SESSIONS, 4.0)
            .with(INDUCTION_DAYS, 28.0);
        let o = outcomes(&[s], &lib, &settings, "phq9").unwrap();
        // Gaps of the sessions after day 28: 40 − 6, 70 − 40, 90 − 70 → median 30.
        assert_eq!(o[0].maintenance_interval_days, Some(30.0));
        let only_induction = subject(&[0, 2, 4, 6], Vec::new());
        let o = outcomes(&[only_induction], &lib, &settings, "phq9").unwrap();
        assert_eq!(o[0].maintenance_interval_days, None);
    }

    #[test]
    fn mme_change_runs_from_the_first_treatment_to_the_last_follow_up() {
        let lib = Library::builtin().unwrap();
        let settings = SiteSettings::new();
        // 20 mg/day oxycodone (30 MME) until day 50, then 10 mg/day (15 MME); last session day
        // 90: the total fell by 15 MME/day.
        let s = subject(
            &[0, 90],
            vec![oxycodone(20.0, -100, Some(50)), oxycodone(10.0, 50, None)],
        );
        let o = outcomes(&[s], &lib, &settings, "phq9").unwrap();
        assert_eq!(o[0].mme_change, Some(-15.0));
        // No opioid recorded: no change to report (not zero).
        let none = outcomes(&[subject(&[0, 90], Vec::new())], &lib, &settings, "phq9").unwrap();
        assert_eq!(none[0].mme_change, None);
        // Started after the first treatment: a rise from 0.
        let rose = subject(&[0, 90], vec![oxycodone(20.0, 10, None)]);
        let o = outcomes(&[rose], &lib, &settings, "phq9").unwrap();
        assert_eq!(o[0].mme_change, Some(30.0));
    }

    /// A subject with a PHQ-9 of 20 before and `window` on day 14, and sessions on `days`
    /// whose predicted Cmax are `cmax` (`None`: not predicted).
    fn exposed(days: &[i64], cmax: &[Option<f64>], window: i64) -> RegistrySubject {
        let mut s = subject(days, Vec::new());
        for (x, c) in s.sessions.iter_mut().zip(cmax) {
            x.predicted_cmax_ng_ml = *c;
            x.predicted_auc_ng_min_ml = c.map(|c| c * 60.0);
        }
        s.scores.push(RegistryScore {
            instrument: "phq9".into(),
            day: 14,
            total: window,
        });
        s
    }

    #[test]
    fn outcomes_reused_from_an_earlier_read_equal_those_derived_afresh() {
        let lib = Library::builtin().unwrap();
        let settings = SiteSettings::new()
            .with(INDUCTION_SESSIONS, 2.0)
            .with(INDUCTION_DAYS, 7.0)
            .with(WINDOW_FROM, 14.0)
            .with(WINDOW_TO, 31.0);
        let named = |id: &str, s: RegistrySubject| RegistrySubject {
            study_id: id.into(),
            ..s
        };
        let before = vec![
            Arc::new(named(
                "A",
                exposed(&[0, 3], &[Some(100.0), Some(100.0)], 10),
            )),
            Arc::new(named(
                "B",
                exposed(&[0, 3], &[Some(200.0), Some(200.0)], 20),
            )),
            Arc::new(named("C", exposed(&[0, 3], &[Some(300.0), None], 5))),
            Arc::new(named("E", exposed(&[0, 3], &[Some(100.0), Some(90.0)], 12))),
        ];
        let derived: Vec<Arc<SubjectOutcome>> = outcomes(&before, &lib, &settings, "phq9")
            .unwrap()
            .into_iter()
            .map(Arc::new)
            .collect();
        // B's window score changes, C is gone, D is new, A is the very same subject shared, E
        // an equal copy of it.
        let after = vec![
            before[0].clone(),
            Arc::new(named("B", exposed(&[0, 3], &[Some(200.0), Some(200.0)], 9))),
            Arc::new(named(
                "D",
                exposed(&[0, 3, 7], &[Some(50.0), Some(60.0), None], 20),
            )),
            Arc::new((*before[3]).clone()),
        ];
        let reused =
            outcomes_reusing((&before, &derived), &after, &lib, &settings, "phq9").unwrap();
        let fresh = outcomes(&after, &lib, &settings, "phq9").unwrap();
        let json = |o: Vec<&SubjectOutcome>| serde_json::to_string(&o).unwrap();
        assert_eq!(
            json(reused.iter().map(|o| &**o).collect()),
            json(fresh.iter().collect())
        );
        // A, shared, keeps the very outcome derived before.
        assert!(Arc::ptr_eq(&reused[0], &derived[0]));
        assert_eq!(
            reused[1].response,
            Some(true),
            "B's new score is a response"
        );
    }

    #[test]
    fn response_by_predicted_exposure_tertile() {
        let lib = Library::builtin().unwrap();
        let settings = SiteSettings::new()
            .with(INDUCTION_SESSIONS, 2.0)
            .with(INDUCTION_DAYS, 7.0)
            .with(WINDOW_FROM, 14.0)
            .with(WINDOW_TO, 31.0)
            .with(SMALL_CELL, 1.0);
        // The induction's mean: the session on day 40 is after the induction's days and not
        // counted; a subject with an induction session not predicted has no exposure.
        let subjects = [
            exposed(&[0, 3, 40], &[Some(100.0), Some(200.0), Some(9_999.0)], 10), // 150, responds
            exposed(&[0, 3], &[Some(200.0), Some(200.0)], 20),                    // 200, no
            exposed(&[0, 3], &[Some(250.0), Some(250.0)], 10),                    // 250, responds
            exposed(&[0, 3], &[Some(300.0), Some(300.0)], 20),                    // 300, no
            exposed(&[0, 3], &[Some(350.0), Some(350.0)], 10),                    // 350, responds
            exposed(&[0, 3], &[Some(400.0), Some(400.0)], 10),                    // 400, responds
            exposed(&[0, 3], &[Some(400.0), None], 10),                           // not predicted
        ];
        let o = outcomes(&subjects, &lib, &settings, "phq9").unwrap();
        let o: Vec<&SubjectOutcome> = o.iter().collect();
        assert_eq!(o[0].induction_cmax_ng_ml, Some(150.0));
        assert_eq!(o[0].induction_auc_ng_min_ml, Some(9_000.0));
        assert_eq!(o[6].induction_cmax_ng_ml, None);
        assert_eq!(o.iter().filter(|s| s.response == Some(true)).count(), 5);
        let t = table(&o, &settings, "phq9", &DEFAULT_COVARIATES).unwrap();
        let x = t.response_by_cmax_tertile.as_ref().unwrap();
        assert_eq!(x.subjects, Cell::Count(6));
        // 150 200 250 300 350 400: h = 5/3 → 200 + 50·2/3; h = 10/3 → 300 + 50/3.
        let [a, b] = x.cut_points.unwrap();
        assert!((a - (200.0 + 100.0 / 3.0)).abs() < 1e-9, "{a}");
        assert!((b - (300.0 + 50.0 / 3.0)).abs() < 1e-9, "{b}");
        let counts: Vec<(Cell, Cell)> = x.tertiles.iter().map(|(_, r)| (r.k, r.n)).collect();
        assert_eq!(
            counts,
            [
                (Cell::Count(1), Cell::Count(2)),
                (Cell::Count(1), Cell::Count(2)),
                (Cell::Count(2), Cell::Count(2))
            ]
        );
        assert_eq!(x.tertiles[0].0, "lowest (≤ 233.3 ng/mL)");
        assert_eq!(x.tertiles[2].0, "highest (> 316.7 ng/mL)");
        assert_eq!(x.tertiles[2].1.estimate.unwrap().p, 1.0);
        // The AUC's tertiles (here 60 × Cmax) split the same subjects the same way.
        let auc = t.response_by_auc_tertile.as_ref().unwrap();
        assert_eq!(auc.unit, "ng·min/mL");
        assert_eq!(
            auc.tertiles.iter().map(|(_, r)| r.n).collect::<Vec<_>>(),
            [Cell::Count(2); 3]
        );
        // Under a small-cell count of 3 every tertile's count is suppressed, and with 7 the cut
        // points (quantiles of 6 people) are not shown either.
        let k3 = table_with(&o, &settings, "phq9", &DEFAULT_COVARIATES, 3);
        let x = k3.response_by_cmax_tertile.unwrap();
        assert!(x.cut_points.is_some());
        assert!(
            x.tertiles
                .iter()
                .all(|(_, r)| r.estimate.is_none() && r.n == Cell::Suppressed { below: 3 })
        );
        let k7 = table_with(&o, &settings, "phq9", &DEFAULT_COVARIATES, 7);
        let x = k7.response_by_cmax_tertile.unwrap();
        assert_eq!(x.cut_points, None);
        assert_eq!(x.subjects, Cell::Suppressed { below: 7 });
        assert_eq!(x.tertiles[0].0, "lowest");
        // Without the induction's definition there is no exposure, hence no table.
        let unset = SiteSettings::new()
            .with(WINDOW_FROM, 14.0)
            .with(WINDOW_TO, 31.0)
            .with(SMALL_CELL, 1.0);
        let o = outcomes(&subjects, &lib, &unset, "phq9").unwrap();
        let o: Vec<&SubjectOutcome> = o.iter().collect();
        let t = table(&o, &unset, "phq9", &DEFAULT_COVARIATES).unwrap();
        assert!(t.response_by_cmax_tertile.is_none());
        assert!(t.notes.iter().any(|n| n.contains("predicted exposure")));
    }

    #[test]
    fn csv_and_parquet_carry_every_dictionary_column() {
        let lib = Library::builtin().unwrap();
        let o = outcomes(
            &[subject(&[0], Vec::new())],
            &lib,
            &SiteSettings::new(),
            "phq9",
        )
        .unwrap();
        let o: Vec<&SubjectOutcome> = o.iter().collect();
        assert_eq!(row(o[0]).len(), DICTIONARY.len());
        let csv = csv(&o, 1).unwrap();
        assert_eq!(
            csv.lines().next().unwrap().split(',').count(),
            DICTIONARY.len()
        );
        assert!(parquet(&o, 1).unwrap().starts_with(b"PAR1"));
        // A group under the small-cell count leaves the export.
        assert_eq!(super::csv(&o, 2).unwrap().lines().count(), 1);
    }
}
