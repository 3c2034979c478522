//! What the verified order says about delivery (pump rate, prepared concentration, bolus,
//! single dose, device strength, and the protocol's limits as the order recorded them), the
//! check of a pump rate against it, and [`Session::delivered`]: the one computation of the mg
//! given and the infusion's running time from the administration record. Signing's ledger
//! balance, billing and the predicted curve all read it, so they cannot disagree.

use jiff::Timestamp;
use ketcare_clinical::dose::DoseCalculation;
use ketcare_clinical::protocol::{Bound, LimitQuantity, LimitSeverity, Role};
use serde::{Deserialize, Serialize};

use crate::rules::Mode;
use crate::session::{AdminEvent, Session};

/// Relative tolerance for comparing rates and limits (binary noise only).
const TOL: f64 = 1e-9;

/// A protocol limit as the verified order applied it, re-checked against a pump rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateLimit {
    pub limit_id: String,
    pub label: String,
    /// `infusion` (the infusion component) or `session` (the session total).
    pub applies_to: String,
    pub severity: LimitSeverity,
    pub bound: Bound,
    pub quantity: LimitQuantity,
    pub limit: f64,
    pub unit: String,
}

/// The verified order's infusion: what the pump should run and what bounds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderedInfusion {
    /// The ordered pump rate (mL/h).
    pub rate_ml_per_h: f64,
    /// The prepared (final) concentration in the bag or syringe (mg/mL).
    pub concentration_mg_per_ml: f64,
    /// The infusion component's mg.
    pub dose_mg: f64,
    /// The ordered running time (min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<f64>,
    /// The weight the order dosed on (kg).
    pub basis_kg: f64,
    /// The session total the order counted, less this infusion (bolus, mg already given).
    #[serde(default)]
    pub other_session_mg: f64,
    /// The protocol's limits on the infusion and the session total, as the order applied them.
    #[serde(default)]
    pub limits: Vec<RateLimit>,
}

/// What a verified order says about delivery, read from its calculation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderedDelivery {
    pub infusion: Option<OrderedInfusion>,
    /// The infusion component's mg, whether or not the order prepared it (a pump rate).
    #[serde(default)]
    pub infusion_mg: Option<f64>,
    pub bolus_mg: Option<f64>,
    pub single_dose_mg: Option<f64>,
    pub device_mg: Option<f64>,
}

/// Reads the delivery facts of a dose calculation (the verified order's).
pub fn ordered_delivery(calc: &DoseCalculation) -> OrderedDelivery {
    let basis_kg = calc.weight.basis_kg.value;
    let infusion = calc
        .components
        .iter()
        .find(|c| c.role == Role::Infusion)
        .and_then(|c| {
            let p = c.preparation.as_ref()?;
            let rate = p.rate_ml_per_h.as_ref()?.value;
            let conc = p.final_concentration.value;
            (rate.is_finite() && rate > 0.0 && conc.is_finite() && conc > 0.0).then(|| {
                OrderedInfusion {
                    rate_ml_per_h: rate,
                    concentration_mg_per_ml: conc,
                    dose_mg: c.dose_mg.value,
                    duration_minutes: c.duration_minutes.as_ref().map(|d| d.value),
                    basis_kg,
                    other_session_mg: (calc.session_total_mg.value - c.dose_mg.value).max(0.0),
                    limits: calc
                        .limit_checks
                        .iter()
                        .filter(|l| l.applies_to == "infusion" || l.applies_to == "session")
                        .map(|l| RateLimit {
                            limit_id: l.limit_id.clone(),
                            label: l.label.clone(),
                            applies_to: l.applies_to.clone(),
                            severity: l.severity,
                            bound: l.bound,
                            quantity: l.quantity,
                            limit: l.limit,
                            unit: l.unit.clone(),
                        })
                        .collect(),
                }
            })
        });
    let mg_of = |role: Role| {
        calc.components
            .iter()
            .find(|c| c.role == role)
            .map(|c| c.dose_mg.value)
    };
    OrderedDelivery {
        infusion,
        infusion_mg: mg_of(Role::Infusion),
        bolus_mg: mg_of(Role::Bolus),
        single_dose_mg: mg_of(Role::Dose),
        device_mg: calc.esketamine.as_ref().map(|e| e.device_mg.value),
    }
}

/// A limit a rate would cross.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossed {
    pub limit_id: String,
    pub severity: LimitSeverity,
    /// "highest dose tested (1 mg/kg): 5 mg/kg at 750 mL/h over 40 min".
    pub text: String,
}

impl OrderedInfusion {
    /// Whether `rate` is the ordered rate.
    pub fn is_ordered(&self, rate: f64) -> bool {
        (rate - self.rate_ml_per_h).abs() <= self.rate_ml_per_h * TOL
    }

    /// The limits `rate` (mL/h) would cross: per-hour limits from rate × concentration, dose
    /// limits over the ordered running time, time limits as the time to give the ordered dose.
    pub fn crossed(&self, rate: f64) -> Vec<Crossed> {
        let mg_per_h = rate * self.concentration_mg_per_ml;
        let over_duration = self.duration_minutes.map(|d| mg_per_h * d / 60.0);
        let minutes = (mg_per_h > 0.0).then(|| self.dose_mg / mg_per_h * 60.0);
        let mut out = Vec::new();
        for l in &self.limits {
            let session = l.applies_to == "session";
            let x = match l.quantity {
                LimitQuantity::MgPerHour if !session => Some(mg_per_h),
                LimitQuantity::MgPerKgPerHour if !session => Some(mg_per_h / self.basis_kg),
                LimitQuantity::Mg => over_duration.map(|m| {
                    if session {
                        m + self.other_session_mg
                    } else {
                        m
                    }
                }),
                LimitQuantity::MgPerKg => over_duration.map(|m| {
                    (if session {
                        m + self.other_session_mg
                    } else {
                        m
                    }) / self.basis_kg
                }),
                LimitQuantity::Minutes if !session => minutes,
                _ => None,
            };
            let Some(x) = x else { continue };
            let crossed = match l.bound {
                Bound::Max => x > l.limit * (1.0 + TOL),
                Bound::Min => x < l.limit * (1.0 - TOL),
            };
            if crossed {
                let how = match l.quantity {
                    LimitQuantity::Mg | LimitQuantity::MgPerKg => format!(
                        " over the ordered {} min",
                        trim(self.duration_minutes.unwrap_or_default())
                    ),
                    LimitQuantity::Minutes => {
                        format!(" to give the ordered {} mg", trim(self.dose_mg))
                    }
                    _ => String::new(),
                };
                out.push(Crossed {
                    limit_id: l.limit_id.clone(),
                    severity: l.severity,
                    text: format!(
                        "{} {} ({}, {} {} {}): {} {} at {} mL/h{how}",
                        match l.severity {
                            LimitSeverity::Soft => "soft limit",
                            LimitSeverity::Hard => "hard limit",
                            LimitSeverity::Cap => "cap",
                        },
                        l.limit_id,
                        l.label,
                        match l.bound {
                            Bound::Max => "at most",
                            Bound::Min => "at least",
                        },
                        trim(l.limit),
                        l.unit,
                        trim(x),
                        l.unit,
                        trim(rate)
                    ),
                });
            }
        }
        out
    }
}

fn trim(x: f64) -> String {
    let r = (x * 1000.0).round() / 1000.0;
    let s = format!("{r}");
    if s == "-0" { "0".into() } else { s }
}

/// A pump rate other than the verified order's, accepted with a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateDeviation {
    pub ordered_ml_per_h: f64,
    pub given_ml_per_h: f64,
    pub reason: String,
    pub by: String,
    pub at: Timestamp,
    /// Soft limits the rate crosses (passed with the reason).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub soft_limits_crossed: Vec<String>,
}

/// How an amount came to be counted as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GivenKind {
    /// The order's IV bolus, given at the start.
    Bolus,
    /// The order's single (non-IV) dose, given at the start.
    Single,
    /// An esketamine device.
    Device,
}

/// An amount given at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GivenDose {
    pub at: Timestamp,
    pub mg: f64,
    pub kind: GivenKind,
}

/// A stretch of time the pump ran at one rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunningInterval {
    pub from: Timestamp,
    /// `None`: still running at the end of the record.
    pub to: Option<Timestamp>,
    pub rate_ml_per_h: f64,
    pub mg_per_min: f64,
}

/// What the administration record says was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivered {
    /// Total mg given (infusion + bolus, single dose and devices), to the microgram.
    pub mg: f64,
    /// mg from the pump: rate × running time × the order's prepared concentration.
    pub infusion_mg: f64,
    /// Minutes the infusion ran (pauses and the stop excluded).
    pub running_minutes: f64,
    /// Whether the infusion still runs at the end of the record (counted to its last event).
    pub running: bool,
    /// The first administration.
    pub started_at: Option<Timestamp>,
    pub intervals: Vec<RunningInterval>,
    pub doses: Vec<GivenDose>,
}

/// The nurse's confirmation (or correction, with a reason) of the mg given before signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GivenConfirmation {
    pub mg: f64,
    /// What the administration record computed when it was confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_mg: Option<f64>,
    /// Why the mg differs from the computed one (a correction), or how it was established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub by: String,
    pub at: Timestamp,
}

fn seconds_between(a: Timestamp, b: Timestamp) -> f64 {
    let s = b.as_second() - a.as_second();
    let ns = f64::from(b.subsec_nanosecond() - a.subsec_nanosecond()) * 1e-9;
    (s as f64 + ns).max(0.0)
}

fn round_ug(mg: f64) -> f64 {
    (mg * 1000.0).round() / 1000.0
}

impl Session {
    /// The mg given and the infusion's running time, from the administration record and the
    /// verified order it carries: pump rates × running intervals × the order's prepared
    /// concentration (pauses, resumes, rate changes and the stop honoured), plus the order's
    /// bolus (or single non-IV dose) at the start and each esketamine device's strength. `Err`
    /// names what the record lacks to compute it.
    pub fn delivered(&self) -> Result<Delivered, String> {
        let mut out = Delivered {
            mg: 0.0,
            infusion_mg: 0.0,
            running_minutes: 0.0,
            running: false,
            started_at: self.administrations.first().map(|a| a.at),
            intervals: vec![],
            doses: vec![],
        };
        if self.administrations.is_empty() {
            return Ok(out);
        }
        let Some(dose) = self.checklist.dose.as_ref() else {
            return Err(
                "no verified dose order is attached: the mg given cannot be computed".into(),
            );
        };
        let conc = || {
            dose.delivery.infusion
                .as_ref()
                .map(|i| i.concentration_mg_per_ml)
                .ok_or_else(|| {
                    "the verified order gives no prepared concentration (mg/mL): the pump rate cannot be read as mg"
                        .to_string()
                })
        };
        // The pump: current rate, whether it runs, since when.
        let mut rate: Option<f64> = None;
        let mut running = false;
        let mut since = out.started_at.unwrap_or(self.scheduled_for);
        let mut stopped = false;
        let close = |out: &mut Delivered,
                     running: bool,
                     rate: Option<f64>,
                     from,
                     to|
         -> Result<(), String> {
            if !running {
                return Ok(());
            }
            let secs = seconds_between(from, to);
            out.running_minutes += secs / 60.0;
            if let Some(r) = rate {
                let c = conc()?;
                let mg_per_min = r * c / 60.0;
                out.infusion_mg += mg_per_min * secs / 60.0;
                out.intervals.push(RunningInterval {
                    from,
                    to: Some(to),
                    rate_ml_per_h: r,
                    mg_per_min,
                });
            }
            Ok(())
        };
        for a in &self.administrations {
            if stopped {
                break;
            }
            match &a.event {
                AdminEvent::Start { rate_ml_per_h, .. } => {
                    if let Some(b) = dose.delivery.bolus_mg {
                        out.doses.push(GivenDose {
                            at: a.at,
                            mg: b,
                            kind: GivenKind::Bolus,
                        });
                    }
                    match rate_ml_per_h {
                        Some(r) => {
                            conc()?;
                            rate = Some(*r);
                            running = true;
                        }
                        None if dose.delivery.infusion_mg.is_some() => {
                            return Err(
                                "the start names no pump rate, so the infusion's mg cannot be computed"
                                    .into(),
                            );
                        }
                        None => match dose.delivery.single_dose_mg {
                            Some(mg) => out.doses.push(GivenDose {
                                at: a.at,
                                mg,
                                kind: GivenKind::Single,
                            }),
                            None if dose.delivery.bolus_mg.is_some() => {}
                            None => {
                                return Err(
                                    "the start names no pump rate and the verified order no single dose: the mg given cannot be computed"
                                        .into(),
                                );
                            }
                        },
                    }
                    since = a.at;
                }
                AdminEvent::RateChange { rate_ml_per_h, .. } => {
                    close(&mut out, running, rate, since, a.at)?;
                    conc()?;
                    rate = Some(*rate_ml_per_h);
                    since = a.at;
                }
                AdminEvent::Pause { .. } => {
                    close(&mut out, running, rate, since, a.at)?;
                    running = false;
                    since = a.at;
                }
                AdminEvent::Resume => {
                    running = rate.is_some();
                    since = a.at;
                }
                AdminEvent::Stop { .. } => {
                    close(&mut out, running, rate, since, a.at)?;
                    running = false;
                    stopped = true;
                }
                AdminEvent::Device { .. } => {
                    let mg = match (dose.delivery.device_mg, dose.dose_mg) {
                        (Some(d), _) => d,
                        (None, Some(total)) if dose.devices > 0 => total / f64::from(dose.devices),
                        _ => {
                            return Err(
                                "the verified order gives no device strength: the mg given cannot be computed"
                                    .into(),
                            );
                        }
                    };
                    out.doses.push(GivenDose {
                        at: a.at,
                        mg,
                        kind: GivenKind::Device,
                    });
                }
            }
        }
        if running && self.plan.mode == Mode::Infusion {
            // Still running: counted to the last event of the record; the interval stays open.
            if let Some(last) = self.administrations.last() {
                close(&mut out, running, rate, since, last.at)?;
                if let Some(i) = out.intervals.last_mut() {
                    i.to = None;
                }
            }
            out.running = true;
        }
        out.infusion_mg = round_ug(out.infusion_mg);
        out.mg = round_ug(out.infusion_mg + out.doses.iter().map(|d| d.mg).sum::<f64>());
        Ok(out)
    }

    /// Every pump rate other than the verified order's, with who, when and why.
    pub fn rate_deviations(&self) -> Vec<&RateDeviation> {
        self.administrations
            .iter()
            .filter_map(|a| match &a.event {
                AdminEvent::Start { deviation, .. } | AdminEvent::RateChange { deviation, .. } => {
                    deviation.as_ref()
                }
                _ => None,
            })
            .collect()
    }
}
