//! The session timeline (`GET /api/v1/sessions/{sid}/timeline`, the session page and the
//! printable record): one time axis from check-in to discharge (or now) carrying the predicted
//! plasma concentration of what was given — the same call as [`super::history::predicted`], so
//! the two never differ — with the model's other outputs (a metabolite where it has one), the
//! projections "if it runs as ordered" and "if stopped now" while dosing is open, the vitals of
//! the monitor feed and manual entries, MOAA/S and CADSS scores, administrations and alarms.
//!
//! The curves are a model prediction for decision support ([`ketcare_pk::ADVISORY`]); ketcare
//! never drives a pump.

use super::history::{PredictedQuery, horizon_after, predicted, run};
use crate::error::{Error, Result};
use crate::pk::PkLibrary;
use jiff::Timestamp;
use jiff::civil::Date;
use ketcare_clinical::Library;
use ketcare_core::{Actor, PatientId, SessionId};
use ketcare_pk::{Covariates, Dose, Options, RateStep, Regimen, SimRequest, SimResult};
use ketcare_session::Session;
use ketcare_session::rules::Mode;
use ketcare_session::session::{AdminEvent, Phase, ScoreKind};
use ketcare_store::Store;
use serde::Serialize;

/// One output of the model over the axis (minutes from [`Timeline::origin`]).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Series {
    /// The model's output id (the first is the parent drug; a second, where the model has it,
    /// is the metabolite).
    pub output: String,
    pub t_min: Vec<f64>,
    pub ng_ml: Vec<f64>,
}

/// The population's 5th–95th percentile band of the first output, where the prediction has one.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = TimelineBand)]
pub struct Band {
    pub output: String,
    pub subjects: usize,
    pub t_min: Vec<f64>,
    pub p5: Vec<f64>,
    pub median: Vec<f64>,
    pub p95: Vec<f64>,
}

/// A prediction of what would follow from now under a stated assumption.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Projection {
    /// Where on the axis the projection departs from what was given (now).
    pub from_min: f64,
    /// Where on the axis its dosing ends.
    pub dosing_end_min: f64,
    /// What is assumed, in words.
    pub assumes: String,
    pub series: Vec<Series>,
}

/// The predicted concentration of what the session gave.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Concentration {
    pub model: String,
    pub model_name: String,
    pub drug: String,
    pub route: String,
    pub weight_kg: f64,
    pub age_years: Option<f64>,
    /// The first administration on the axis: the prediction's minute 0.
    pub offset_min: f64,
    /// The prediction of what was given (`/predicted`'s curve, shifted by `offset_min`). While
    /// an infusion runs, its part after now continues the current rate, as `/predicted` does.
    pub given: Vec<Series>,
    pub band: Option<Band>,
    /// While dosing is open: the ordered infusion (or remaining devices) from now.
    pub as_ordered: Option<Projection>,
    /// While an infusion runs: the rate set to zero now.
    pub if_stopped_now: Option<Projection>,
    pub assumptions: Vec<String>,
    pub warnings: Vec<String>,
}

/// One vital-signs reading on the axis.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VitalPoint {
    pub t_min: f64,
    pub at: Timestamp,
    /// `monitor`, `manual` or `api`; the checklist's baseline is `manual` with `baseline` set.
    pub source: String,
    pub baseline: bool,
    pub systolic: Option<f64>,
    pub diastolic: Option<f64>,
    pub heart_rate: Option<f64>,
    pub spo2: Option<f64>,
    pub resp_rate: Option<f64>,
}

/// A MOAA/S or CADSS score.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScorePoint {
    pub t_min: f64,
    pub at: Timestamp,
    /// `moaas` or `cadss`.
    pub kind: String,
    pub value: u32,
    pub by: String,
}

/// An administration event (start, rate change, pause, resume, stop, device).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AdminMarker {
    pub t_min: f64,
    pub at: Timestamp,
    pub kind: String,
    pub label: String,
    pub by: String,
}

/// An alarm, at the time it was raised.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlarmMarker {
    pub t_min: f64,
    pub at: Timestamp,
    pub id: u32,
    pub label: String,
    pub state: String,
    pub detail: String,
}

/// The session timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub phase: String,
    /// Minute 0 of the axis: check-in, or the first event if one came earlier (or there was no
    /// check-in).
    pub origin: Timestamp,
    /// The end of the record on the axis: the final phase (discharge, transfer, cancellation)
    /// or now while the session is open.
    pub end_min: f64,
    /// `final` or `now`.
    pub end_is: &'static str,
    /// How far the chart reaches: `end_min`, or while dosing is open the end of dosing as ordered
    /// plus the plan's minimum observation (where the protocol or site sets one).
    pub view_end_min: f64,
    /// The concentration curve, or why there is none (`concentration_note`).
    pub concentration: Option<Concentration>,
    pub concentration_note: Option<String>,
    pub vitals: Vec<VitalPoint>,
    pub scores: Vec<ScorePoint>,
    pub administrations: Vec<AdminMarker>,
    pub alarms: Vec<AlarmMarker>,
    pub advisory: &'static str,
}

fn minutes(from: Timestamp, at: Timestamp) -> f64 {
    (at.as_millisecond() - from.as_millisecond()) as f64 / 60_000.0
}

fn trim(v: f64) -> String {
    ketcare_core::units::trim_float((v * 100.0).round() / 100.0)
}

fn admin_kind(e: &AdminEvent) -> (&'static str, String) {
    match e {
        AdminEvent::Start { rate_ml_per_h, .. } => (
            "start",
            match rate_ml_per_h {
                Some(r) => format!("start {} mL/h", trim(*r)),
                None => "start".into(),
            },
        ),
        AdminEvent::RateChange { rate_ml_per_h, .. } => {
            ("rate_change", format!("rate {} mL/h", trim(*rate_ml_per_h)))
        }
        AdminEvent::Pause { .. } => ("pause", "pause".into()),
        AdminEvent::Resume => ("resume", "resume".into()),
        AdminEvent::Stop { .. } => ("stop", "stop".into()),
        AdminEvent::Device { number } => ("device", format!("device {number}")),
    }
}

/// Minute 0: check-in, or the earliest event before it.
fn origin(se: &Session, vitals: &[ketcare_session::VitalReading], now: Timestamp) -> Timestamp {
    let check_in = se
        .transitions
        .iter()
        .find(|t| t.to == Phase::CheckedIn)
        .map(|t| t.at);
    let events = se
        .administrations
        .iter()
        .map(|a| a.at)
        .chain(se.scores.iter().map(|s| s.at))
        .chain(se.alarms.iter().map(|a| a.raised_at))
        .chain(vitals.iter().map(|v| v.at))
        .chain(check_in);
    events.min().unwrap_or(now)
}

fn shifted(r: &SimResult, offset: f64) -> Vec<Series> {
    r.typical
        .iter()
        .map(|(output, c)| Series {
            output: output.clone(),
            t_min: r.times_min.iter().map(|t| t + offset).collect(),
            ng_ml: c.clone(),
        })
        .collect()
}

/// Sets the IV rate to `mg_per_min` from `t` on (replacing steps at or after `t`).
fn rate_from(reg: &mut Regimen, t: f64, mg_per_min: f64) {
    reg.iv_rates.retain(|r| r.time_min < t);
    reg.iv_rates.push(RateStep {
        time_min: t,
        rate_mg_per_min: mg_per_min,
    });
}

/// The regimen "as ordered" from `now_min` (minutes from the first administration), with what it
/// assumes; `None` when the order leaves nothing to give.
fn as_ordered(
    se: &Session,
    given: &Regimen,
    now_min: f64,
    started_at: Timestamp,
) -> Option<(Regimen, f64, String)> {
    let dose = se.checklist.dose.as_ref()?;
    let delivery = &dose.delivery;
    if se.plan.mode == Mode::Esketamine {
        let device_mg = delivery.device_mg?;
        let interval = se.plan.minutes_between_devices.value()?;
        let left = se.plan.devices_planned.saturating_sub(se.devices_given());
        if left == 0 {
            return None;
        }
        let last = se
            .last_device()
            .map(|(_, at)| minutes(started_at, at))
            .unwrap_or(now_min);
        let mut reg = given.clone();
        let mut t = (last + interval).max(now_min);
        for _ in 0..left {
            reg.doses.push(Dose {
                time_min: t,
                amount_mg: device_mg,
                route: ketcare_pk::Route::Intranasal,
                duration_min: None,
            });
            t += interval;
        }
        let end = t - interval;
        return Some((
            reg,
            end,
            format!(
                "the {left} remaining device(s) of {} mg given {} min apart (the plan's interval), the next one due now or at its time",
                trim(device_mg),
                trim(interval)
            ),
        ));
    }
    let inf = delivery.infusion.as_ref()?;
    let mg_per_min = inf.rate_ml_per_h * inf.concentration_mg_per_ml / 60.0;
    if mg_per_min <= 0.0 {
        return None;
    }
    // `delivered` counts an infusion that still runs to the record's last event: add what it
    // gave from there to now.
    let d = se.delivered().ok()?;
    let last_min = se
        .administrations
        .last()
        .map_or(now_min, |a| minutes(started_at, a.at));
    let open_mg: f64 = d
        .intervals
        .iter()
        .filter(|i| i.to.is_none())
        .map(|i| i.mg_per_min * (now_min - last_min).max(0.0))
        .sum();
    let done = d.infusion_mg + open_mg;
    let left = inf.dose_mg - done;
    let mut reg = given.clone();
    if left <= 0.0 {
        rate_from(&mut reg, now_min, 0.0);
        return Some((
            reg,
            now_min,
            format!(
                "the ordered {} mg infusion has been given: it stops now",
                trim(inf.dose_mg)
            ),
        ));
    }
    let end = now_min + left / mg_per_min;
    rate_from(&mut reg, now_min, mg_per_min);
    reg.iv_rates.push(RateStep {
        time_min: end,
        rate_mg_per_min: 0.0,
    });
    Some((
        reg,
        end,
        format!(
            "the infusion runs at the ordered {} mL/h from now until the ordered {} mg is given ({} mg more, about {} min), then stops",
            trim(inf.rate_ml_per_h),
            trim(inf.dose_mg),
            trim(left),
            trim(left / mg_per_min)
        ),
    ))
}

/// Builds the timeline at `now`: the record and its vitals (reads are audited), the prediction
/// of what was given from [`predicted`] (the same function as `/predicted`, with `q`'s model),
/// and while dosing is open the two projections with the same model and covariates.
#[allow(clippy::too_many_arguments)]
pub async fn timeline(
    store: &dyn Store,
    library: &Library,
    pk: PkLibrary,
    actor: &Actor,
    sid: SessionId,
    q: &PredictedQuery,
    today: Date,
    now: Timestamp,
) -> Result<Timeline> {
    let r = store.session_record(actor, sid).await?;
    let stored = store.session_vitals(actor, sid).await?;
    let se = &r.session;
    let mut readings: Vec<ketcare_session::VitalReading> =
        stored.iter().map(|v| v.reading.clone()).collect();
    let mut baseline_at = None;
    if let Some(b) = &se.checklist.baseline
        && !readings.iter().any(|v| v.at == b.at)
    {
        baseline_at = Some(b.at);
        readings.push(b.clone());
    }
    readings.sort_by_key(|v| v.at);
    let t0 = origin(se, &readings, now);
    let (end_at, end_is) = if se.phase.is_final() {
        (se.transitions.last().map(|t| t.at).unwrap_or(now), "final")
    } else {
        (now, "now")
    };
    let vitals = readings
        .iter()
        .map(|v| VitalPoint {
            t_min: minutes(t0, v.at),
            at: v.at,
            source: v.source.as_str().to_owned(),
            baseline: Some(v.at) == baseline_at,
            systolic: v.vitals.systolic,
            diastolic: v.vitals.diastolic,
            heart_rate: v.vitals.heart_rate,
            spo2: v.vitals.spo2,
            resp_rate: v.vitals.resp_rate,
        })
        .collect();
    let scores = se
        .scores
        .iter()
        .map(|s| ScorePoint {
            t_min: minutes(t0, s.at),
            at: s.at,
            kind: match s.kind {
                ScoreKind::Moaas => "moaas".into(),
                ScoreKind::Cadss => "cadss".into(),
            },
            value: s.value,
            by: s.by.clone(),
        })
        .collect();
    let administrations = se
        .administrations
        .iter()
        .map(|a| {
            let (kind, label) = admin_kind(&a.event);
            AdminMarker {
                t_min: minutes(t0, a.at),
                at: a.at,
                kind: kind.into(),
                label,
                by: a.by.clone(),
            }
        })
        .collect();
    let alarms = se
        .alarms
        .iter()
        .map(|a| AlarmMarker {
            t_min: minutes(t0, a.raised_at),
            at: a.raised_at,
            id: a.id,
            label: a.kind.label().into(),
            state: serde_json::to_value(a.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            detail: a.detail.clone(),
        })
        .collect();
    let (concentration, concentration_note) =
        match predicted(store, library, pk.clone(), actor, sid, q, today).await {
            Ok(p) => (Some(projections(se, p, t0, now, pk).await?), None),
            Err(Error::Conflict(m)) => (None, Some(m)),
            Err(Error::Invalid(f)) => (
                None,
                Some(
                    f.0.iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            ),
            Err(e) => return Err(e),
        };
    let end_min = minutes(t0, end_at).max(0.0);
    let dosing_end = concentration
        .as_ref()
        .and_then(|c| c.as_ordered.as_ref().or(c.if_stopped_now.as_ref()))
        .map(|p| p.dosing_end_min);
    let view_end_min = match dosing_end {
        Some(d) => end_min.max(d + se.plan.minimum_observation_minutes.value().unwrap_or(0.0)),
        None => end_min,
    };
    Ok(Timeline {
        session_id: sid,
        patient_id: r.patient_id,
        phase: se.phase.as_str().to_owned(),
        origin: t0,
        end_min,
        end_is,
        view_end_min,
        concentration,
        concentration_note,
        vitals,
        scores,
        administrations,
        alarms,
        advisory: ketcare_pk::ADVISORY,
    })
}

async fn projections(
    se: &Session,
    p: super::history::Predicted,
    t0: Timestamp,
    now: Timestamp,
    pk: PkLibrary,
) -> Result<Concentration> {
    let h = &p.history;
    let offset = minutes(t0, h.started_at);
    let res = &p.result;
    let now_min = minutes(h.started_at, now);
    let open = matches!(se.phase, Phase::Running | Phase::Paused);
    let running = se.delivered().map(|d| d.running).unwrap_or(false);
    let req = |regimen: Regimen, end: f64, label: &str| SimRequest {
        model: res.model.id.clone(),
        regimen,
        covariates: Covariates {
            weight_kg: p.weight_kg,
            age_years: p.age_years,
        },
        options: Options::default(),
        horizon_min: horizon_after(end),
        step_min: 1.0,
        population: None,
        label: Some(label.to_owned()),
    };
    let mut as_ordered_p = None;
    if open && let Some((reg, end, assumes)) = as_ordered(se, &h.regimen, now_min, h.started_at) {
        let r = run(pk.clone(), req(reg, end, "as ordered")).await?;
        as_ordered_p = Some(Projection {
            from_min: offset + now_min,
            dosing_end_min: offset + end,
            assumes,
            series: shifted(&r, offset),
        });
    }
    let mut stopped = None;
    if running && now_min > 0.0 {
        let mut reg = h.regimen.clone();
        rate_from(&mut reg, now_min, 0.0);
        let r = run(pk, req(reg, now_min, "if stopped now")).await?;
        stopped = Some(Projection {
            from_min: offset + now_min,
            dosing_end_min: offset + now_min,
            assumes: "the infusion is stopped now".into(),
            series: shifted(&r, offset),
        });
    }
    let band = res.population.as_ref().and_then(|pop| {
        pop.bands.first().map(|b| Band {
            output: b.output.clone(),
            subjects: pop.subjects,
            t_min: res.times_min.iter().map(|t| t + offset).collect(),
            p5: b.p5.clone(),
            median: b.median.clone(),
            p95: b.p95.clone(),
        })
    });
    let mut assumptions = h.assumptions.clone();
    assumptions.extend(res.assumptions.iter().map(|a| {
        format!(
            "{}{}: {}",
            a.name,
            a.value
                .map(|v| format!(" = {} {}", trim(v), a.unit))
                .unwrap_or_default(),
            a.note
        )
    }));
    Ok(Concentration {
        model: res.model.id.clone(),
        model_name: res.model.name.clone(),
        drug: h.drug.clone(),
        route: h.route.clone(),
        weight_kg: p.weight_kg,
        age_years: p.age_years,
        offset_min: offset,
        given: shifted(res, offset),
        band,
        as_ordered: as_ordered_p,
        if_stopped_now: stopped,
        assumptions,
        warnings: res.warnings.clone(),
    })
}
