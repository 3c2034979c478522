//! Alarm rules and the alarm lifecycle (raised → acknowledged → resolved, with who and when).
//!
//! Rules: absolute thresholds (BP, HR, SpO2, RR, EtCO2), rise over the session's baseline,
//! missed scheduled vitals, esketamine's BP check at about 40 minutes. A threshold the reference
//! does not give is a site setting; while it is unset its rule is inactive and
//! [`inactive_rules`] says so. High alarms fire strictly above the threshold, low alarms strictly
//! below it. (The minimum observation time is enforced by the discharge checklist.)

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::rules::{Action, Plan, Setting};
use crate::vitals::{VitalReading, Vitals};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    SystolicHigh,
    DiastolicHigh,
    SystolicLow,
    HeartRateHigh,
    HeartRateLow,
    Spo2Low,
    RespRateLow,
    RespRateHigh,
    Etco2High,
    SystolicRise,
    DiastolicRise,
    VitalsMissed,
    EsketamineBpCheck,
}

impl AlarmKind {
    pub fn label(self) -> &'static str {
        match self {
            AlarmKind::SystolicHigh => "Systolic BP high",
            AlarmKind::DiastolicHigh => "Diastolic BP high",
            AlarmKind::SystolicLow => "Systolic BP low",
            AlarmKind::HeartRateHigh => "Heart rate high",
            AlarmKind::HeartRateLow => "Heart rate low",
            AlarmKind::Spo2Low => "SpO2 low",
            AlarmKind::RespRateLow => "Respiratory rate low",
            AlarmKind::RespRateHigh => "Respiratory rate high",
            AlarmKind::Etco2High => "EtCO2 high",
            AlarmKind::SystolicRise => "Systolic rise over baseline",
            AlarmKind::DiastolicRise => "Diastolic rise over baseline",
            AlarmKind::VitalsMissed => "Scheduled vitals missed",
            AlarmKind::EsketamineBpCheck => "Esketamine BP check due (~40 min)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Raised,
    Acknowledged,
    Resolved,
}

/// Who did something and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stamp {
    pub by: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alarm {
    /// Number within the session, from 1.
    pub id: u32,
    pub kind: AlarmKind,
    pub raised_at: Timestamp,
    /// What was seen and the threshold with its provenance.
    pub detail: String,
    pub action: Action,
    pub state: AlarmState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_note: Option<String>,
}

impl Alarm {
    pub fn is_open(&self) -> bool {
        self.state != AlarmState::Resolved
    }

    /// Raised → acknowledged.
    pub fn acknowledge(&mut self, by: &str, at: Timestamp) -> Result<(), String> {
        match self.state {
            AlarmState::Raised => {
                self.state = AlarmState::Acknowledged;
                self.acknowledged = Some(Stamp { by: by.into(), at });
                Ok(())
            }
            AlarmState::Acknowledged => Err(format!("alarm {} is already acknowledged", self.id)),
            AlarmState::Resolved => Err(format!("alarm {} is already resolved", self.id)),
        }
    }

    /// Raised or acknowledged → resolved (a raised alarm is acknowledged by the same act).
    pub fn resolve(&mut self, by: &str, at: Timestamp, note: &str) -> Result<(), String> {
        if self.state == AlarmState::Resolved {
            return Err(format!("alarm {} is already resolved", self.id));
        }
        if note.trim().is_empty() {
            return Err("note: say what was done".into());
        }
        if self.acknowledged.is_none() {
            self.acknowledged = Some(Stamp { by: by.into(), at });
        }
        self.state = AlarmState::Resolved;
        self.resolved = Some(Stamp { by: by.into(), at });
        self.resolution_note = Some(note.trim().to_owned());
        Ok(())
    }
}

/// An alarm a rule wants raised (the session numbers it and skips kinds already open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AlarmFinding)]
pub struct Finding {
    pub kind: AlarmKind,
    pub detail: String,
    pub action: Action,
}

fn threshold_text(s: &Setting) -> String {
    format!(
        "{} [{}]",
        s.value().unwrap_or(f64::NAN),
        s.provenance_text()
    )
}

/// Rules on one reading: absolute thresholds and rise over baseline.
pub fn check_reading(plan: &Plan, baseline: Option<&Vitals>, v: &Vitals) -> Vec<Finding> {
    let a = &plan.alarms;
    let x = &a.actions;
    let mut out = Vec::new();
    let mut above = |kind, value: Option<f64>, s: &Setting, what: &str, action: &Action| {
        if let (Some(v), Some(t)) = (value, s.value())
            && v > t
        {
            out.push(Finding {
                kind,
                detail: format!("{what} {v} above {}", threshold_text(s)),
                action: action.clone(),
            });
        }
    };
    above(
        AlarmKind::SystolicHigh,
        v.systolic,
        &a.systolic_high,
        "systolic",
        &x.hypertension,
    );
    above(
        AlarmKind::DiastolicHigh,
        v.diastolic,
        &a.diastolic_high,
        "diastolic",
        &x.hypertension,
    );
    above(
        AlarmKind::HeartRateHigh,
        v.heart_rate,
        &a.heart_rate_high,
        "heart rate",
        &x.heart_rate,
    );
    above(
        AlarmKind::RespRateHigh,
        v.resp_rate,
        &a.resp_rate_high,
        "respiratory rate",
        &x.respiratory,
    );
    above(
        AlarmKind::Etco2High,
        v.etco2,
        &a.etco2_high,
        "EtCO2",
        &x.respiratory,
    );
    if let Some(b) = baseline {
        let rise = |now: Option<f64>, base: Option<f64>| match (now, base) {
            (Some(n), Some(b)) => Some(n - b),
            _ => None,
        };
        if let (Some(r), Some(t)) = (rise(v.systolic, b.systolic), a.systolic_rise.value())
            && r > t
        {
            out.push(Finding {
                kind: AlarmKind::SystolicRise,
                detail: format!(
                    "systolic {} is {r} over the baseline {}; limit {}",
                    v.systolic.unwrap_or_default(),
                    b.systolic.unwrap_or_default(),
                    threshold_text(&a.systolic_rise)
                ),
                action: x.hypertension.clone(),
            });
        }
        if let (Some(r), Some(t)) = (rise(v.diastolic, b.diastolic), a.diastolic_rise.value())
            && r > t
        {
            out.push(Finding {
                kind: AlarmKind::DiastolicRise,
                detail: format!(
                    "diastolic {} is {r} over the baseline {}; limit {}",
                    v.diastolic.unwrap_or_default(),
                    b.diastolic.unwrap_or_default(),
                    threshold_text(&a.diastolic_rise)
                ),
                action: x.hypertension.clone(),
            });
        }
    }
    let mut below = |kind, value: Option<f64>, s: &Setting, what: &str, action: &Action| {
        if let (Some(v), Some(t)) = (value, s.value())
            && v < t
        {
            out.push(Finding {
                kind,
                detail: format!("{what} {v} below {}", threshold_text(s)),
                action: action.clone(),
            });
        }
    };
    below(
        AlarmKind::SystolicLow,
        v.systolic,
        &a.systolic_low,
        "systolic",
        &x.hypotension,
    );
    below(
        AlarmKind::HeartRateLow,
        v.heart_rate,
        &a.heart_rate_low,
        "heart rate",
        &x.heart_rate,
    );
    below(
        AlarmKind::Spo2Low,
        v.spo2,
        &a.spo2_low,
        "SpO2",
        &x.desaturation,
    );
    below(
        AlarmKind::RespRateLow,
        v.resp_rate,
        &a.resp_rate_low,
        "respiratory rate",
        &x.respiratory,
    );
    out
}

fn minutes(m: f64) -> i64 {
    (m * 60.0).round() as i64
}

/// The scheduled vital checks (epoch seconds) from the start of dosing: the cited schedule, then
/// every site interval (if set) until `until`.
pub fn schedule(plan: &Plan, start: Timestamp, until: Timestamp) -> Vec<i64> {
    let s = start.as_second();
    let mut due: Vec<i64> = plan
        .vital_schedule
        .iter()
        .map(|m| s + minutes(*m))
        .collect();
    if let Some(step) = plan.alarms.vitals_interval.value().filter(|v| *v > 0.0) {
        let mut t = due.last().copied().unwrap_or(s);
        // Bounded: at most one check per interval up to `until`, capped at a day of checks.
        for _ in 0..1440 {
            t += minutes(step).max(60);
            if t > until.as_second() {
                break;
            }
            due.push(t);
        }
    }
    due
}

/// Time rules: missed scheduled vitals and esketamine's ~40 min BP check, at `now`.
/// `dose_start` is the start of dosing; `last_dose` the last esketamine device.
pub fn check_time(
    plan: &Plan,
    dose_start: Option<Timestamp>,
    last_dose: Option<Timestamp>,
    readings: &[VitalReading],
    now: Timestamp,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let grace = plan.alarms.vitals_grace.value().map(minutes).unwrap_or(0);
    let now_s = now.as_second();
    if let Some(start) = dose_start {
        let due = schedule(plan, start, now);
        let mut prev: Option<i64> = None;
        let mut missed: Option<i64> = None;
        for &t in &due {
            if now_s > t + grace {
                // On time (after the previous check, up to `t + grace`) or late: a reading
                // recorded after the check was missed clears it (the suggested action is to
                // record vitals now). The check at 0 min is due the second dosing starts, so any
                // reading meets it, one taken before dosing included (the session passes its
                // baseline).
                let satisfied = readings
                    .iter()
                    .any(|r| prev.is_none_or(|p| r.at.as_second() > p));
                if !satisfied {
                    missed = Some(t);
                }
            }
            prev = Some(t);
        }
        if let Some(t) = missed {
            let mins = (t - start.as_second()) / 60;
            out.push(Finding {
                kind: AlarmKind::VitalsMissed,
                detail: format!(
                    "no vitals recorded for the check at {mins} min after the start (schedule: {}; grace {})",
                    if plan.vital_schedule_source.is_empty() {
                        plan.alarms.vitals_interval.provenance_text()
                    } else {
                        plan.vital_schedule_source.join(", ")
                    },
                    plan.alarms.vitals_grace.provenance_text()
                ),
                action: plan.alarms.actions.missed_vitals.clone(),
            });
        }
    }
    if let (Some(dose), Some(after)) = (last_dose, plan.bp_check_minutes_after_dose.value()) {
        let due = dose.as_second() + minutes(after);
        if now_s > due + grace {
            let done = readings
                .iter()
                .any(|r| r.vitals.has_bp() && r.at.as_second() >= due - grace);
            if !done {
                out.push(Finding {
                    kind: AlarmKind::EsketamineBpCheck,
                    detail: format!(
                        "no blood pressure since {after} min after the last device [{}]",
                        plan.bp_check_minutes_after_dose.provenance_text()
                    ),
                    action: plan.alarms.actions.esketamine_bp_check.clone(),
                });
            }
        }
    }
    out
}

/// The rules that are inactive because the site has not set their threshold.
pub fn inactive_rules(plan: &Plan) -> Vec<(String, String)> {
    let a = &plan.alarms;
    [
        ("systolic high", &a.systolic_high),
        ("diastolic high", &a.diastolic_high),
        ("systolic low", &a.systolic_low),
        ("heart rate high", &a.heart_rate_high),
        ("heart rate low", &a.heart_rate_low),
        ("SpO2 low", &a.spo2_low),
        ("respiratory rate low", &a.resp_rate_low),
        ("respiratory rate high", &a.resp_rate_high),
        ("EtCO2 high", &a.etco2_high),
        ("systolic rise over baseline", &a.systolic_rise),
        ("diastolic rise over baseline", &a.diastolic_rise),
        ("vitals interval after the schedule", &a.vitals_interval),
    ]
    .into_iter()
    .filter_map(|(name, s)| match s {
        Setting::Unset { key, .. } => Some((name.to_owned(), key.clone())),
        Setting::Set(_) => None,
    })
    .collect()
}
