//! The calculation itself: pure function of library, settings and request.

use super::order::{DoseOrder, OrderState};
use super::round::{Direction, clean, round_to};
use super::types::*;
use crate::eligibility::Age;
use crate::protocol::library::{EffectiveLimit, effective_limit, readiness};
use crate::protocol::{
    Bound, Component, DoseBasis, Drug, Indication, Library, LimitQuantity, LimitScope,
    LimitSeverity, Protocol, Role, SCited, WeightBasis,
};
use crate::settings::{SiteSettings, keys};
use crate::source::{Provenance, Resolved};
use crate::units::{
    ConcentrationMgPerMl, DoseMg, MgPerHour, MgPerKg, MgPerKgPerHour, Minutes, RateMlPerH,
    VolumeMl, WeightKg,
};

/// Relative tolerance for limit comparisons (binary noise only).
const TOL: f64 = 1e-9;

fn over(x: f64, max: f64) -> bool {
    x > max * (1.0 + TOL)
}
fn under(x: f64, min: f64) -> bool {
    x < min * (1.0 - TOL)
}

fn num(value: f64, unit: &str, provenance: Provenance) -> Number {
    Number {
        value: clean(value),
        unit: unit.to_string(),
        provenance,
    }
}
fn computed(formula: String) -> Provenance {
    Provenance::Computed { formula }
}
fn input(field: &str) -> Provenance {
    Provenance::Input {
        field: field.to_string(),
    }
}
fn resolved(c: &SCited, settings: &SiteSettings) -> Option<Resolved> {
    c.get_ref().resolve(settings)
}

/// What a component's per-unit quantities are for a candidate dose in mg.
#[derive(Clone, Copy)]
struct Frame {
    basis_kg: f64,
    duration_min: Option<f64>,
}

impl Frame {
    fn quantity(&self, q: LimitQuantity, mg: f64, mg_per_hour: Option<f64>) -> Option<f64> {
        let per_hour = mg_per_hour.or_else(|| self.duration_min.map(|d| mg * 60.0 / d));
        match q {
            LimitQuantity::Mg => Some(mg),
            LimitQuantity::MgPerKg => Some(mg / self.basis_kg),
            LimitQuantity::MgPerHour => per_hour,
            LimitQuantity::MgPerKgPerHour => per_hour.map(|h| h / self.basis_kg),
            LimitQuantity::Minutes => self.duration_min,
            LimitQuantity::AgeYears | LimitQuantity::AgeMonths | LimitQuantity::Kg => None,
        }
    }
}

struct Limits {
    all: Vec<EffectiveLimit>,
}

impl Limits {
    fn for_role(&self, role: Role) -> impl Iterator<Item = (&EffectiveLimit, f64)> {
        self.all.iter().filter_map(move |l| {
            (l.applies_to.covers(role))
                .then_some(())
                .and(l.value.map(|v| (l, v)))
        })
    }

    /// The first hard (or cap) bound the candidate crosses.
    fn hard_crossed(
        &self,
        role: Role,
        frame: Frame,
        mg: f64,
        mg_per_hour: Option<f64>,
    ) -> Option<Bound> {
        self.for_role(role).find_map(|(l, v)| {
            if l.severity == LimitSeverity::Soft {
                return None;
            }
            let x = frame.quantity(l.quantity, mg, mg_per_hour)?;
            match l.bound {
                Bound::Max if over(x, v) => Some(Bound::Max),
                Bound::Min if under(x, v) => Some(Bound::Min),
                _ => None,
            }
        })
    }
}

fn check(
    l: &EffectiveLimit,
    v: f64,
    x: f64,
    applies_to: String,
    out: &mut Vec<LimitCheck>,
    p: &Protocol,
) -> Result<(), DoseError> {
    let crossed = match l.bound {
        Bound::Max => over(x, v),
        Bound::Min => under(x, v),
    };
    let provenance = l
        .provenance
        .clone()
        .unwrap_or(Provenance::SiteSetting { key: l.id.clone() });
    if crossed && l.severity != LimitSeverity::Soft {
        let (source, status) = limit_source(p, &l.id);
        return Err(DoseError::HardLimit(Box::new(HardLimitRefusal {
            limit_id: l.id.clone(),
            label: l.label.clone(),
            applies_to,
            bound: l.bound,
            limit: v,
            computed: clean(x),
            unit: l.quantity.unit().to_string(),
            sources: source,
            status,
            provenance,
        })));
    }
    out.push(LimitCheck {
        limit_id: l.id.clone(),
        label: l.label.clone(),
        applies_to,
        severity: l.severity,
        bound: l.bound,
        quantity: l.quantity,
        limit: v,
        computed: clean(x),
        unit: l.quantity.unit().to_string(),
        provenance,
        within: !crossed,
    });
    Ok(())
}

fn limit_source(p: &Protocol, id: &str) -> (Vec<String>, crate::source::Status) {
    p.limits
        .iter()
        .map(|l| l.get_ref())
        .find(|l| l.id == id)
        .map(|l| (l.value.get_ref().source.clone(), l.value.get_ref().status))
        .unwrap_or((Vec::new(), crate::source::Status::U))
}

/// Calculates a dose order. Refuses (Err) on hard limits, missing settings and bad input;
/// an order crossing a soft limit comes back in state `NeedsOverride`.
pub fn calculate(
    lib: &Library,
    settings: &SiteSettings,
    req: &DoseRequest,
) -> Result<DoseOrder, DoseError> {
    let p = lib.get(&req.protocol_id)?;
    let ready = readiness(p, settings);
    if !ready.ready {
        return Err(DoseError::Blocked {
            protocol_id: p.id.clone(),
            missing: ready.missing,
            settings_problems: ready.settings_problems,
        });
    }
    let mut all = Vec::new();
    for l in &p.limits {
        // readiness() has already refused invalid overrides.
        if let Ok(e) = effective_limit(p, l.get_ref(), settings) {
            all.push(e);
        }
    }
    let limits = Limits { all };
    let mut checks: Vec<LimitCheck> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut roundings: Vec<Rounding> = Vec::new();

    check_weight(lib, settings, &req.patient, &mut checks)?;
    check_choices(p, req)?;
    let weight = weight_report(p, &req.patient)?;
    let basis_kg = weight.basis_kg.value;

    check_age(lib, p, req.patient.age, &limits, &mut checks)?;

    let mut components = Vec::new();
    let mut esketamine = None;
    let mut order_mg = 0.0;
    match p.drug {
        Drug::Esketamine => {
            if req.preparation.is_some() || req.bolus_preparation.is_some() {
                return Err(DoseError::NotApplicable {
                    protocol_id: p.id.clone(),
                    what: "a vial preparation (esketamine comes in 28 mg devices)".into(),
                });
            }
            let d = devices(p, settings, req, &limits, basis_kg, &mut checks)?;
            order_mg = d.dose_mg.value;
            esketamine = Some(d);
        }
        Drug::RacemicKetamine => {
            let roles: Vec<Role> = match req.administration {
                Administration::Repeat => {
                    if p.repeat.is_none() {
                        return Err(DoseError::NoRepeatDose {
                            protocol_id: p.id.clone(),
                        });
                    }
                    vec![Role::Repeat]
                }
                Administration::Initial => p.components().into_iter().map(|(r, _)| r).collect(),
            };
            for r in [Role::Infusion, Role::Dose, Role::Repeat] {
                if req.choice(r).omit {
                    return Err(DoseError::NotApplicable {
                        protocol_id: p.id.clone(),
                        what: format!(
                            "omitting the {r:?} component (only a bolus before an infusion may be omitted)"
                        ),
                    });
                }
            }
            let omit_bolus = req.bolus.omit;
            if omit_bolus && !(p.bolus.is_some() && p.infusion.is_some()) {
                return Err(DoseError::NotApplicable {
                    protocol_id: p.id.clone(),
                    what: "omitting the bolus (only a bolus before an infusion may be omitted)"
                        .into(),
                });
            }
            let roles: Vec<Role> = roles
                .into_iter()
                .filter(|r| !(omit_bolus && *r == Role::Bolus))
                .collect();
            let main = if roles.contains(&Role::Infusion) {
                Role::Infusion
            } else {
                roles.first().copied().unwrap_or(Role::Dose)
            };
            if req.bolus_preparation.is_some()
                && !(roles.contains(&Role::Bolus) && main != Role::Bolus)
            {
                return Err(DoseError::NotApplicable {
                    protocol_id: p.id.clone(),
                    what: "bolus_preparation (only for protocols with a bolus and an infusion)"
                        .into(),
                });
            }
            for role in roles {
                let Some(comp) = p.component(role) else {
                    continue;
                };
                let prep = if role == main {
                    req.preparation.as_ref()
                } else {
                    req.bolus_preparation.as_ref().or(req.preparation.as_ref())
                };
                let dilute = role == main;
                let c = component(
                    lib,
                    p,
                    settings,
                    req,
                    role,
                    comp,
                    prep,
                    dilute,
                    &limits,
                    basis_kg,
                    &mut checks,
                    &mut roundings,
                )?;
                order_mg += c.dose_mg.value;
                components.push(c);
            }
            if req.preparation.is_none() {
                notes.push(
                    "No vial concentration given: volumes and pump rate are not computed.".into(),
                );
            }
        }
    }

    // Session totals.
    let given = req.given_this_session_mg.map_or(0.0, |d| d.value());
    let total = order_mg + given;
    let session_total_mg = num(
        total,
        "mg",
        computed(if given > 0.0 {
            format!(
                "{} mg this order + {given} mg already given",
                clean(order_mg)
            )
        } else {
            format!("{} mg this order", clean(order_mg))
        }),
    );
    for l in limits
        .all
        .iter()
        .filter(|l| l.applies_to == LimitScope::Session)
    {
        let Some(v) = l.value else { continue };
        let x = match l.quantity {
            LimitQuantity::MgPerKg => total / basis_kg,
            _ => total,
        };
        check(l, v, x, "session".into(), &mut checks, p)?;
    }
    for l in limits.all.iter().filter(|l| l.value.is_none()) {
        notes.push(format!(
            "Limit {} ({}) is an unconfirmed value the site has not set: not applied.",
            l.id, l.label
        ));
    }

    let soft_limits_crossed: Vec<LimitCheck> = checks
        .iter()
        .filter(|c| !c.within && c.severity == LimitSeverity::Soft)
        .cloned()
        .collect();
    let caps_applied: Vec<LimitCheck> = checks
        .iter()
        .filter(|c| c.severity == LimitSeverity::Cap && !c.within)
        .cloned()
        .collect();
    let calculation = DoseCalculation {
        protocol_id: p.id.clone(),
        protocol_version: p.version,
        protocol_title: p.title.clone(),
        weight,
        components,
        esketamine,
        session_total_mg,
        limit_checks: checks,
        soft_limits_crossed,
        caps_applied,
        roundings,
        notes,
    };
    let state = if calculation.soft_limits_crossed.is_empty() {
        OrderState::PendingVerification
    } else {
        OrderState::NeedsOverride
    };
    Ok(DoseOrder {
        calculation,
        author: req.author.clone(),
        created_at: req.created_at.clone(),
        state,
        soft_override: None,
        verification: None,
        withdrawal: None,
    })
}

fn weight_report(p: &Protocol, m: &PatientMeasures) -> Result<WeightReport, DoseError> {
    let wb = p.weight_basis.get_ref();
    let explanation = "Ideal and adjusted body weight are not computed: clinical.md gives no formula for them, and its weight-basis row reports that LBM/IBW/BSA formulas were not supported for ketamine in TRD (Kwaśna 2024 [R39], S); trials dosed on actual body weight.";
    if wb.basis != WeightBasis::Actual {
        return Err(DoseError::WeightBasisUnavailable {
            basis: wb.basis,
            reason: explanation.into(),
        });
    }
    let kg = m.weight_kg.value();
    let bmi = m.height_cm.map(|h| {
        let metres = h.value() / 100.0;
        num(
            kg / (metres * metres),
            "kg/m²",
            computed(format!("{kg} kg / ({metres} m)²")),
        )
    });
    Ok(WeightReport {
        actual_kg: num(kg, "kg", input("patient.weight_kg")),
        basis: wb.basis,
        basis_kg: num(
            kg,
            "kg",
            Provenance::Reference {
                source: wb.source.clone(),
                status: wb.status,
            },
        ),
        basis_source: wb.source.clone(),
        basis_status: wb.status,
        bmi_kg_per_m2: bmi,
        ideal_and_adjusted_weight: explanation.into(),
    })
}

fn increment(
    settings: &SiteSettings,
    p: &Protocol,
    key: &str,
    what: &str,
) -> Result<f64, DoseError> {
    // readiness() has already refused a missing or unusable key; this keeps the path total.
    settings.value(key).ok_or_else(|| DoseError::Blocked {
        protocol_id: p.id.clone(),
        missing: vec![crate::protocol::MissingSetting {
            key: key.to_string(),
            used_for: what.to_string(),
        }],
        settings_problems: Vec::new(),
    })
}

/// A weight outside the possible human range is refused (hard); outside the site's plausible
/// range (optional settings) it is a soft limit the prescriber passes with a reason.
fn check_weight(
    lib: &Library,
    settings: &SiteSettings,
    m: &PatientMeasures,
    checks: &mut Vec<LimitCheck>,
) -> Result<(), DoseError> {
    let t = &lib.eligibility_rules().thresholds;
    let w = m.weight_kg.value();
    let (lo, hi) = (t.weight_min_kg.get_ref(), t.weight_max_kg.get_ref());
    if let (Some(min), Some(max)) = (lo.resolve(settings), hi.resolve(settings))
        && !(min.value..=max.value).contains(&w)
    {
        let mut sources = lo.source.clone();
        sources.extend(hi.source.iter().cloned());
        return Err(DoseError::WeightImpossible {
            weight_kg: clean(w),
            min_kg: min.value,
            max_kg: max.value,
            sources,
        });
    }
    for (id, c, bound) in [
        (
            "weight-soft-min",
            t.weight_soft_min_kg.get_ref(),
            Bound::Min,
        ),
        (
            "weight-soft-max",
            t.weight_soft_max_kg.get_ref(),
            Bound::Max,
        ),
    ] {
        let Some(r) = c.resolve(settings) else {
            continue;
        };
        let crossed = match bound {
            Bound::Max => over(w, r.value),
            Bound::Min => under(w, r.value),
        };
        checks.push(LimitCheck {
            limit_id: id.into(),
            label: format!(
                "the site's plausible weight ({} {} kg)",
                if bound == Bound::Max {
                    "at most"
                } else {
                    "at least"
                },
                r.value
            ),
            applies_to: "patient".into(),
            severity: LimitSeverity::Soft,
            bound,
            quantity: LimitQuantity::Kg,
            limit: r.value,
            computed: clean(w),
            unit: "kg".into(),
            provenance: r.provenance,
            within: !crossed,
        });
    }
    Ok(())
}

/// The protocol's own age limits (with their severities), then its population on each side
/// those limits leave open, and the cited age floors.
fn check_age(
    lib: &Library,
    p: &Protocol,
    age: Option<Age>,
    limits: &Limits,
    checks: &mut Vec<LimitCheck>,
) -> Result<(), DoseError> {
    for l in limits
        .all
        .iter()
        .filter(|l| l.applies_to == LimitScope::Patient)
    {
        let Some(v) = l.value else { continue };
        let Some(age) = age else {
            return Err(DoseError::AgeRequired {
                limit_id: l.id.clone(),
            });
        };
        let x = match l.quantity {
            LimitQuantity::AgeMonths => age.total_months() as f64,
            // Completed years: "ages 13–17" includes 17 y 11 m.
            _ => f64::from(age.years),
        };
        check(l, v, x, "patient".into(), checks, p)?;
    }
    check_population(lib, p, age, limits)
}

/// Whether a patient of `age` may be treated under `protocol_id` as far as age goes — the same
/// rule every dose calculation applies (hard age limits, the population, the cited floors).
/// A soft age limit crossed is not a refusal here: the order will need a prescriber's reason.
/// Used where a protocol is chosen before any dose, such as consent.
pub fn check_patient_age(
    lib: &Library,
    settings: &SiteSettings,
    protocol_id: &str,
    age: Age,
) -> Result<(), DoseError> {
    let p = lib.get(protocol_id)?;
    let all = p
        .limits
        .iter()
        .filter_map(|l| effective_limit(p, l.get_ref(), settings).ok())
        .collect();
    check_age(lib, p, Some(age), &Limits { all }, &mut Vec::new())
}

/// Every protocol is for a population (`adult`, `adolescent`, `child`): the patient's age band
/// on the day of care must be one it admits, and ketamine sedation has a cited age floor.
fn check_population(
    lib: &Library,
    p: &Protocol,
    age: Option<Age>,
    limits: &Limits,
) -> Result<(), DoseError> {
    let Some(age) = age else {
        return Err(DoseError::AgeRequired {
            limit_id: format!("population {}", p.population.as_str()),
        });
    };
    let months = age.total_months();
    let bands = lib.age_bands();
    let band = bands.band_for(ketcare_core::age::Age {
        completed_months: u32::try_from(months).unwrap_or(u32::MAX),
    });
    // A side the protocol bounds with an age limit of its own (applied above, with its own
    // severity) is decided by that limit; the population decides the sides it leaves open.
    let covered = |bound: Bound| {
        limits
            .all
            .iter()
            .any(|l| l.applies_to == LimitScope::Patient && l.bound == bound && l.value.is_some())
    };
    let younger = ketcare_core::AgeBand::ALL
        .into_iter()
        .find(|b| p.population.admits(*b))
        .is_some_and(|first| band < first);
    let side = if younger { Bound::Min } else { Bound::Max };
    if !p.population.admits(band) && !covered(side) {
        let sources = bands
            .rules
            .iter()
            .filter(|r| r.band == band || p.population.admits(r.band))
            .map(|r| r.source.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return Err(DoseError::AgeOutsidePopulation {
            protocol_id: p.id.clone(),
            population: p.population.as_str().into(),
            age_months: months,
            band: band.as_str().into(),
            sources,
        });
    }
    if p.drug == Drug::RacemicKetamine && p.indication == Indication::ProceduralSedation {
        let c = lib
            .eligibility_rules()
            .thresholds
            .sedation_min_age_months
            .get_ref();
        if let Some(min) = c.resolve(&SiteSettings::default())
            && (months as f64) < min.value
        {
            return Err(DoseError::AgeBelowFloor {
                protocol_id: p.id.clone(),
                min_months: min.value,
                age_months: months,
                sources: c.source.clone(),
            });
        }
    }
    Ok(())
}

/// A choice aimed at a component the protocol does not have is refused naming it, so a chosen
/// amount is never silently replaced by a default.
fn check_choices(p: &Protocol, req: &DoseRequest) -> Result<(), DoseError> {
    let mut available: Vec<String> = p
        .components()
        .into_iter()
        .map(|(r, _)| r.as_str().to_string())
        .collect();
    if p.repeat.is_some() {
        available.push(Role::Repeat.as_str().into());
    }
    for role in Role::ALL {
        if p.component(role).is_none() && *req.choice(role) != DoseChoice::default() {
            return Err(DoseError::NoSuchComponent {
                protocol_id: p.id.clone(),
                role,
                available,
            });
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn component(
    lib: &Library,
    p: &Protocol,
    settings: &SiteSettings,
    req: &DoseRequest,
    role: Role,
    comp: &Component,
    prep: Option<&Preparation>,
    dilute: bool,
    limits: &Limits,
    basis_kg: f64,
    checks: &mut Vec<LimitCheck>,
    roundings: &mut Vec<Rounding>,
) -> Result<ComponentResult, DoseError> {
    let choice = req.choice(role);
    let unit = comp.basis.unit();
    let field = format!("{role:?}").to_lowercase();

    // The ordered amount.
    let (amount, amount_prov) = if let Some(a) = choice.amount {
        if a.basis() != comp.basis {
            return Err(DoseError::WrongUnit {
                role,
                expected: unit.into(),
                got: a.basis().unit().into(),
            });
        }
        (a.value(), input(&format!("{field}.amount")))
    } else if let Some(step) = choice.step {
        if !comp.steps.is_empty() {
            let max = comp.steps.len().saturating_sub(1) as u32;
            let s = comp
                .steps
                .get(step as usize)
                .ok_or(DoseError::StepOutOfRange { role, step, max })?;
            let r = resolved(s, settings).ok_or(DoseError::ChoiceRequired {
                role,
                what: format!("titration step {step}"),
                unit: unit.into(),
            })?;
            (r.value, r.provenance)
        } else if let (Some(inc), Some(def)) = (&comp.increment, &comp.default) {
            let (Some(i), Some(d)) = (resolved(inc, settings), resolved(def, settings)) else {
                return Err(DoseError::NoTitration { role });
            };
            (
                d.value + f64::from(step) * i.value,
                computed(format!("{} {unit} + {step} × {} {unit}", d.value, i.value)),
            )
        } else {
            return Err(DoseError::NoTitration { role });
        }
    } else if let Some(r) = comp.default.as_ref().and_then(|d| resolved(d, settings)) {
        (r.value, r.provenance)
    } else {
        return Err(DoseError::ChoiceRequired {
            role,
            what: "amount".into(),
            unit: unit.into(),
        });
    };

    // Duration.
    let duration = match choice.duration_minutes {
        Some(m) => Some((m.value(), input(&format!("{field}.duration_minutes")))),
        None => comp
            .duration_minutes
            .as_ref()
            .and_then(|d| resolved(d, settings))
            .map(|r| (r.value, r.provenance)),
    };
    if duration.is_none() && (comp.basis.is_rate() || role == Role::Infusion) {
        return Err(DoseError::DurationRequired { role });
    }
    let dmin = duration.as_ref().map(|d| d.0);
    let frame = Frame {
        basis_kg,
        duration_min: dmin,
    };

    // Dimensional arithmetic through the unit types.
    let w = WeightKg::new(basis_kg)?;
    let dur = dmin.map(Minutes::new).transpose()?;
    let calculated = match (comp.basis, dur) {
        (DoseBasis::PerKg, _) => (MgPerKg::new(amount)? * w).value(),
        (DoseBasis::FixedMg, _) => DoseMg::new(amount)?.value(),
        (DoseBasis::PerKgPerHour, Some(d)) => (MgPerKgPerHour::new(amount)? * w * d).value(),
        (DoseBasis::MgPerHour, Some(d)) => (MgPerHour::new(amount)? * d).value(),
        (_, None) => return Err(DoseError::DurationRequired { role }),
    };
    let formula = match comp.basis {
        DoseBasis::PerKg => format!("{amount} mg/kg × {basis_kg} kg"),
        DoseBasis::FixedMg => format!("fixed {amount} mg"),
        DoseBasis::PerKgPerHour => format!(
            "{amount} mg/kg/h × {basis_kg} kg × {} min / 60",
            dmin.unwrap_or(0.0)
        ),
        DoseBasis::MgPerHour => format!("{amount} mg/h × {} min / 60", dmin.unwrap_or(0.0)),
    };
    let mut mg = calculated;
    let mut mg_prov = computed(formula.clone());

    // Caps.
    for (l, v) in limits.for_role(role) {
        if l.severity == LimitSeverity::Cap && over(mg, v) {
            checks.push(LimitCheck {
                limit_id: l.id.clone(),
                label: l.label.clone(),
                applies_to: field.clone(),
                severity: l.severity,
                bound: l.bound,
                quantity: l.quantity,
                limit: v,
                computed: clean(mg),
                unit: l.quantity.unit().to_string(),
                provenance: l
                    .provenance
                    .clone()
                    .unwrap_or(Provenance::SiteSetting { key: l.id.clone() }),
                within: false,
            });
            mg = v;
            mg_prov = computed(format!(
                "{formula} = {} mg, capped at {v} mg (limit {})",
                clean(calculated),
                l.id
            ));
        }
    }

    // Dose rounding (weight-based doses; fixed doses are already deliverable amounts).
    if comp.basis.is_weight_based() {
        let inc = increment(
            settings,
            p,
            keys::DOSE_MG_INCREMENT,
            "rounding of weight-based doses",
        )?;
        let (to, dir, why) = guarded_round(mg, inc, |x| limits.hard_crossed(role, frame, x, None));
        if to <= 0.0 {
            return Err(DoseError::RoundsToZero {
                what: format!("{field} dose {} mg", clean(mg)),
                increment: inc,
            });
        }
        roundings.push(Rounding {
            what: format!("{field} dose"),
            from: clean(mg),
            to,
            unit: "mg".into(),
            increment: inc,
            setting: keys::DOSE_MG_INCREMENT.into(),
            direction: dir,
            why,
        });
        if to != clean(mg) {
            mg_prov = computed(format!("{formula} = {} mg, rounded to {to} mg", clean(mg)));
        }
        mg = to;
    }

    // Preparation.
    let mut preparation = None;
    let mut pump_mg_per_hour = None;
    if let Some(prep) = prep {
        let (pr, delivered, mgh) = prepare(
            lib, p, settings, role, prep, dilute, mg, frame, limits, roundings,
        )?;
        if delivered != mg {
            mg_prov = computed(format!(
                "{} mL × {} mg/mL (volume rounded for the syringe)",
                pr.volume_to_draw.value, pr.vial_concentration.value
            ));
        }
        mg = delivered;
        pump_mg_per_hour = mgh;
        preparation = Some(pr);
    }

    // Limits on what will be given.
    let mg_per_hour = pump_mg_per_hour.or_else(|| dmin.map(|d| mg * 60.0 / d));
    for (l, v) in limits.for_role(role) {
        if let Some(x) = frame.quantity(l.quantity, mg, mg_per_hour) {
            check(l, v, x, field.clone(), checks, p)?;
        }
    }

    Ok(ComponentResult {
        role,
        basis: comp.basis,
        ordered: num(amount, unit, amount_prov),
        duration_minutes: duration.map(|(v, pr)| num(v, "min", pr)),
        calculated_mg: num(calculated, "mg", computed(formula)),
        dose_mg: num(mg, "mg", mg_prov),
        mg_per_kg: num(
            mg / basis_kg,
            "mg/kg",
            computed(format!("{} mg / {basis_kg} kg", clean(mg))),
        ),
        mg_per_hour: mg_per_hour.map(|h| {
            num(
                h,
                "mg/h",
                computed(match pump_mg_per_hour {
                    Some(_) => "pump rate (mL/h) × final concentration (mg/mL)".to_string(),
                    None => format!("{} mg × 60 / {} min", clean(mg), dmin.unwrap_or(0.0)),
                }),
            )
        }),
        mg_per_kg_per_hour: mg_per_hour.map(|h| {
            num(
                h / basis_kg,
                "mg/kg/h",
                computed(format!("{} mg/h / {basis_kg} kg", clean(h))),
            )
        }),
        preparation,
        administration: comp.administration.clone(),
    })
}

/// Rounds to nearest; if that crosses a hard bound the unrounded value respected, rounds the
/// other way instead.
fn guarded_round(
    x: f64,
    inc: f64,
    crossed: impl Fn(f64) -> Option<Bound>,
) -> (f64, Direction, String) {
    let nearest = round_to(x, inc, Direction::Nearest);
    let before = crossed(x);
    match (before, crossed(nearest)) {
        (None, Some(Bound::Max)) => (
            round_to(x, inc, Direction::Down),
            Direction::Down,
            "rounded down: rounding to nearest would cross a hard limit or cap".into(),
        ),
        (None, Some(Bound::Min)) => (
            round_to(x, inc, Direction::Up),
            Direction::Up,
            "rounded up: rounding to nearest would fall below a hard minimum".into(),
        ),
        _ => (
            nearest,
            Direction::Nearest,
            "rounded to the nearest deliverable increment".into(),
        ),
    }
}

/// A stocked vial strength, resolved.
struct Stocked {
    concentration: f64,
    vial: Resolved,
    dilution_sources: Vec<String>,
    dilution_factor: Option<Resolved>,
}

#[allow(clippy::too_many_arguments)]
fn prepare(
    lib: &Library,
    p: &Protocol,
    settings: &SiteSettings,
    role: Role,
    prep: &Preparation,
    dilute: bool,
    mg: f64,
    frame: Frame,
    limits: &Limits,
    roundings: &mut Vec<Rounding>,
) -> Result<(PreparationResult, f64, Option<f64>), DoseError> {
    let field = format!("{role:?}").to_lowercase();
    let conc = prep.concentration_mg_per_ml.value();
    let stocked: Vec<Stocked> = lib
        .vials()
        .iter()
        .filter_map(|v| {
            let c = v.concentration_mg_per_ml.get_ref();
            let r = c.resolve(settings)?;
            let f = v
                .iv_min_dilution_factor
                .as_ref()
                .and_then(|f| f.get_ref().resolve(settings));
            let src = v
                .iv_min_dilution_factor
                .as_ref()
                .map(|f| f.get_ref().source.clone())
                .unwrap_or_default();
            Some(Stocked {
                concentration: r.value,
                vial: r,
                dilution_sources: src,
                dilution_factor: f,
            })
        })
        .collect();
    let Some(Stocked {
        vial: vial_res,
        dilution_sources: dil_src,
        dilution_factor: dil_factor,
        ..
    }) = stocked
        .iter()
        .find(|s| (s.concentration - conc).abs() < 1e-9)
    else {
        return Err(DoseError::ConcentrationNotStocked {
            given: conc,
            available: stocked.iter().map(|s| s.concentration).collect(),
        });
    };
    if let Some(req) = &p.required_concentration_mg_per_ml
        && let Some(r) = resolved(req, settings)
        && (r.value - conc).abs() > 1e-9
    {
        return Err(DoseError::ConcentrationNotAllowed {
            given: conc,
            required: r.value,
            sources: req.get_ref().source.clone(),
        });
    }

    // Volume to draw, rounded for the syringe; the delivered mg follows from it.
    let inc = increment(
        settings,
        p,
        keys::SYRINGE_ML_INCREMENT,
        "rounding of volumes to draw",
    )?;
    let conc_q = ConcentrationMgPerMl::new(conc)?;
    let raw = (DoseMg::new(mg)? / conc_q).value();
    let (vol, dir, why) = guarded_round(raw, inc, |v| {
        limits.hard_crossed(role, frame, v * conc, None)
    });
    if vol <= 0.0 {
        return Err(DoseError::RoundsToZero {
            what: format!("{field} volume {} mL", clean(raw)),
            increment: inc,
        });
    }
    roundings.push(Rounding {
        what: format!("{field} volume to draw"),
        from: clean(raw),
        to: vol,
        unit: "mL".into(),
        increment: inc,
        setting: keys::SYRINGE_ML_INCREMENT.into(),
        direction: dir,
        why,
    });
    let delivered = clean((VolumeMl::new(vol)? * conc_q).value());

    // Dilution.
    let final_volume = if dilute {
        prep.final_volume_ml.map(|v| v.value())
    } else {
        None
    };
    if let Some(fv) = final_volume
        && under(fv, vol)
    {
        return Err(DoseError::FinalVolumeTooSmall {
            final_volume_ml: fv,
            drawn_ml: vol,
        });
    }
    if p.route.is_iv()
        && let Some(f) = dil_factor
    {
        let min_final = clean(vol * f.value);
        if final_volume.is_none_or(|fv| under(fv, min_final)) {
            return Err(DoseError::DilutionRequired {
                concentration: conc,
                min_final_volume_ml: min_final,
                factor: f.value,
                sources: dil_src.clone(),
            });
        }
    }
    let given_volume = final_volume.unwrap_or(vol);
    let given_volume_q = VolumeMl::new(given_volume)?;
    let final_conc_q = DoseMg::new(delivered)? / given_volume_q;
    let final_conc = final_conc_q.value();

    // Pump rate for infusions.
    let mut rate = None;
    let mut run = None;
    let mut mgh = None;
    if role == Role::Infusion
        && let Some(d) = frame.duration_min
    {
        let pinc = increment(
            settings,
            p,
            keys::PUMP_ML_PER_H_INCREMENT,
            "rounding of pump rates",
        )?;
        let raw_rate = (given_volume_q / Minutes::new(d)?).value();
        let (r, dir, why) = guarded_round(raw_rate, pinc, |r| {
            limits.hard_crossed(role, frame, delivered, Some(r * final_conc))
        });
        if r <= 0.0 {
            return Err(DoseError::RoundsToZero {
                what: format!("pump rate {} mL/h", clean(raw_rate)),
                increment: pinc,
            });
        }
        roundings.push(Rounding {
            what: "pump rate".into(),
            from: clean(raw_rate),
            to: r,
            unit: "mL/h".into(),
            increment: pinc,
            setting: keys::PUMP_ML_PER_H_INCREMENT.into(),
            direction: dir,
            why,
        });
        let rate_q = RateMlPerH::new(r)?;
        let run_min = (given_volume_q / rate_q).value();
        rate = Some(num(
            r,
            "mL/h",
            computed(format!(
                "{} mL / {d} min × 60, rounded",
                clean(given_volume)
            )),
        ));
        run = Some(num(
            run_min,
            "min",
            computed(format!("{} mL / {r} mL/h × 60", clean(given_volume))),
        ));
        mgh = Some((rate_q * final_conc_q).value());
    }

    let vial_prov = vial_res.provenance.clone();
    Ok((
        PreparationResult {
            vial_concentration: num(conc, "mg/mL", vial_prov),
            volume_to_draw: num(
                vol,
                "mL",
                computed(format!(
                    "{} mg / {conc} mg/mL = {} mL, rounded",
                    clean(mg),
                    clean(raw)
                )),
            ),
            final_volume: final_volume.map(|v| num(v, "mL", input("preparation.final_volume_ml"))),
            final_concentration: num(
                final_conc,
                "mg/mL",
                computed(format!("{delivered} mg / {} mL", clean(given_volume))),
            ),
            rate_ml_per_h: rate,
            run_time_minutes: run,
            delivered_mg_per_hour: mgh.map(|h| {
                num(
                    h,
                    "mg/h",
                    computed("pump rate × final concentration".into()),
                )
            }),
        },
        delivered,
        mgh,
    ))
}

fn devices(
    p: &Protocol,
    settings: &SiteSettings,
    req: &DoseRequest,
    limits: &Limits,
    basis_kg: f64,
    checks: &mut Vec<LimitCheck>,
) -> Result<DeviceResult, DoseError> {
    let Some(e) = p.esketamine.as_ref().map(|e| e.get_ref()) else {
        return Err(DoseError::NotApplicable {
            protocol_id: p.id.clone(),
            what: "device dosing".into(),
        });
    };
    let need = |c: &SCited, what: &str| {
        resolved(c, settings).ok_or(DoseError::ChoiceRequired {
            role: Role::Dose,
            what: what.into(),
            unit: "mg".into(),
        })
    };
    let device = need(&e.device_mg, "device strength")?;
    let gap = need(&e.minutes_between_devices, "minutes between devices")?;
    let options: Vec<f64> = e
        .dose_options_mg
        .iter()
        .filter_map(|o| resolved(o, settings).map(|r| r.value))
        .collect();
    let first = e.first_dose_mg.as_ref().and_then(|f| resolved(f, settings));
    let (dose, prov) = match (req.first_dose_of_course, &first, req.esketamine_dose_mg) {
        (true, Some(f), Some(g)) if (g.value() - f.value).abs() > 1e-9 => {
            return Err(DoseError::EsketamineFirstDose {
                required: f.value,
                given: g.value(),
                sources: e
                    .first_dose_mg
                    .as_ref()
                    .map(|c| c.get_ref().source.clone())
                    .unwrap_or_default(),
            });
        }
        (true, Some(f), _) => (f.value, f.provenance.clone()),
        (_, _, Some(g)) => (g.value(), input("esketamine_dose_mg")),
        _ => match e
            .default_dose_mg
            .as_ref()
            .and_then(|d| resolved(d, settings))
        {
            Some(d) => (d.value, d.provenance),
            None => {
                return Err(DoseError::ChoiceRequired {
                    role: Role::Dose,
                    what: format!("esketamine dose (one of {options:?} mg)"),
                    unit: "mg".into(),
                });
            }
        },
    };
    if !options.iter().any(|o| (o - dose).abs() < 1e-9) {
        return Err(DoseError::EsketamineDoseNotOffered {
            given: dose,
            options,
        });
    }
    let n = dose / device.value;
    if (n - n.round()).abs() > 1e-9 || n < 1.0 {
        return Err(DoseError::NotWholeDevices {
            dose_mg: dose,
            device_mg: device.value,
        });
    }
    let n = n.round() as u32;
    let frame = Frame {
        basis_kg,
        duration_min: None,
    };
    for (l, v) in limits.for_role(Role::Dose) {
        if let Some(x) = frame.quantity(l.quantity, dose, None) {
            check(l, v, x, "dose".into(), checks, p)?;
        }
    }
    Ok(DeviceResult {
        dose_mg: num(dose, "mg", prov),
        device_mg: num(device.value, "mg", device.provenance),
        devices: n,
        minutes_between_devices: num(gap.value, "min", gap.provenance),
        schedule: (0..n)
            .map(|i| DeviceStep {
                device: i + 1,
                at_minute: clean(f64::from(i) * gap.value),
            })
            .collect(),
        administration: e.administration.clone(),
    })
}
