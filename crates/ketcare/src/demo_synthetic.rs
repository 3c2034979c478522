//! The synthetic clinic: `ketcare demo --patients N --years Y [--seed S]` adds N fictional
//! patients, first treated over the last Y years, to the demo clinic — their sessions, doses,
//! vital signs and PHQ-9 totals, with responders, non-responders, drop-outs and relapses drawn
//! from the distributions below — through the store's bulk path, deterministically from the
//! seed (the same seed and day give the same clinic). It exists to measure the registry, its
//! exports and the other benchmarks on a clinic of realistic size.
//!
//! **Every number here is the synthetic clinic's own choice, made to look like a busy program;
//! none is a clinical fact, a reference value or a prediction**, and nothing ketcare decides
//! reads it.

use anyhow::{Context, Result};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::patient::{Intake, Measured, NewPatient, Sex};
use ketcare_core::units::{HeightCm, WeightKg};
use ketcare_core::{Actor, Role};
use ketcare_session::OrderedDelivery;
use ketcare_session::delivery::OrderedInfusion;
use ketcare_session::session::{AdminEvent, Administration, Phase, Signature, VerifiedDose};
use ketcare_session::{RulesFile, Session};
use ketcare_store::Store;
use ketcare_store::synthetic::{SyntheticPatient, SyntheticSession, SyntheticVital};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// The protocols patients start on, with their shares (the synthetic clinic's mix).
const PROTOCOLS: [(&str, f64); 4] = [
    ("trd-adult-iv-ketamine", 0.60),
    ("trd-adult-esketamine", 0.20),
    ("ptsd-adult-iv-ketamine", 0.10),
    ("chronic-pain-adult-iv-ketamine", 0.10),
];
/// Days of the induction's sessions after the first (six over twelve days).
const INDUCTION: [i64; 6] = [0, 2, 4, 7, 9, 11];
/// Shares of patients: drop out during the induction; respond (of those who complete it);
/// relapse (of responders).
const DROPOUT: f64 = 0.10;
const RESPONDER: f64 = 0.50;
const RELAPSE: f64 = 0.40;
/// PHQ-9 at baseline (uniform, inclusive), and the fraction of it reached by responders and by
/// non-responders (uniform), and after a relapse.
const BASELINE: (i64, i64) = (15, 27);
const RESPONDER_FRACTION: (f64, f64) = (0.10, 0.49);
const NON_RESPONDER_FRACTION: (f64, f64) = (0.60, 1.00);
const RELAPSED_FRACTION: (f64, f64) = (0.75, 1.00);
/// Days from response to relapse: 30 + exponential with this mean.
const RELAPSE_MEAN_DAYS: f64 = 120.0;
/// Responders' maintenance sessions every this many days (uniform, inclusive) until relapse.
const MAINTENANCE_DAYS: (i64, i64) = (28, 56);
/// PHQ-9 on days 14 and 28, then every this many days.
const SCORE_EVERY_DAYS: i64 = 28;
/// Vital signs per session: minutes from the dose's start (the first before it).
const VITALS_AT_MIN: [i64; 6] = [-5, 10, 20, 30, 40, 50];
/// Systolic before the dose (mean, sd), its rise at the peak (mean, sd), heart rate (mean, sd).
const SYSTOLIC: (f64, f64) = (124.0, 12.0);
const RISE: (f64, f64) = (14.0, 6.0);
const HEART_RATE: (f64, f64) = (76.0, 8.0);
/// Age at first treatment (mean, sd; kept to 18–85), weight kg (mean, sd; 45–150), height cm.
const AGE: (f64, f64) = (42.0, 13.0);
const WEIGHT: (f64, f64) = (80.0, 16.0);
const HEIGHT: (f64, f64) = (170.0, 9.0);
/// Shares answering yes to each intake question (each is always asked here).
const INTAKE_YES: [f64; 6] = [0.20, 0.25, 0.15, 0.50, 0.20, 0.20];
/// IV ketamine: the mg given per kg of the chart's weight (rounded to 0.1 mg); esketamine: 56 mg
/// for the first two sessions, 84 mg after.
const IV_MG_PER_KG: f64 = 0.5;
/// IV ketamine runs over this many minutes from a bag of this concentration (the pump rate
/// follows); esketamine is given device by device at the protocol's device strength and wait.
const IV_MINUTES: i64 = 40;
const IV_MG_PER_ML: f64 = 1.0;
/// Patients per store batch (one unit each).
pub const BATCH: usize = 500;

fn normal(rng: &mut ChaCha8Rng, (mean, sd): (f64, f64)) -> f64 {
    Normal::new(mean, sd).map_or(mean, |n| n.sample(rng))
}

fn uniform(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

fn at(day: Date, hour: i8, minutes: i64) -> Timestamp {
    day.at(hour, 0, 0, 0)
        .to_zoned(TimeZone::system())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        + minutes.minutes()
}

/// The generator: the protocol library's plans, the PK engine's models (each signed session's
/// predicted exposure is the engine's, through the application layer), and the day the clinic
/// is generated on.
pub struct Generator {
    plans: Vec<(ketcare_session::Plan, f64)>,
    library: Library,
    pk: ketcare_pk::Library,
    today: Date,
    years: i64,
}

impl Generator {
    pub fn new(today: Date, years: i64) -> Result<Self> {
        let lib = Library::builtin().context("the protocol library")?;
        let rules = RulesFile::builtin(lib.sources()).context("the monitoring rules")?;
        let plans = PROTOCOLS
            .iter()
            .map(|(id, share)| {
                let p = lib.get(id).with_context(|| format!("protocol {id}"))?;
                Ok((rules.plan(p, &SiteSettings::new(), 0), *share))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            plans,
            library: lib,
            pk: ketcare_pk::Library::builtin().context("the PK model library")?,
            today,
            years,
        })
    }

    /// Patient number `n` of the clinic of `seed` (each patient from its own stream, so any
    /// batch can be generated alone and the clinic does not depend on the batch size).
    pub fn patient(&self, seed: u64, n: u64) -> Result<SyntheticPatient> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let rng = &mut rng;
        let span = (self.years * 365).max(1);
        let first = self.today - (1 + rng.random_range(0..span)).days();
        let mut pick = rng.random::<f64>();
        let (plan, _) = self
            .plans
            .iter()
            .find(|(_, share)| {
                pick -= share;
                pick < 0.0
            })
            .unwrap_or(&self.plans[0]);
        let esketamine = plan.protocol_id.contains("esketamine");
        let age = normal(rng, AGE).clamp(18.0, 85.0) as i64;
        let dob = first - age.years() - rng.random_range(1..365).days();
        let sex = match rng.random::<f64>() {
            x if x < 0.60 => Sex::Female,
            x if x < 0.99 => Sex::Male,
            _ => Sex::Other,
        };
        let weight = (normal(rng, WEIGHT).clamp(45.0, 150.0) * 10.0).round() / 10.0;
        let height = normal(rng, HEIGHT).clamp(140.0, 205.0).round();
        let mut yes = INTAKE_YES
            .map(|p| Some(rng.random::<f64>() < p))
            .into_iter();
        let intake = Intake {
            family_history_alcohol_use_disorder: yes.next().flatten(),
            prior_suicide_attempt: yes.next().flatten(),
            prior_ect_or_tms: yes.next().flatten(),
            comorbid_anxiety: yes.next().flatten(),
            ptsd: yes.next().flatten(),
            chronic_pain: yes.next().flatten(),
        };
        let patient = NewPatient {
            mrn: format!("SYN-{seed}-{n:07}"),
            given_name: "Synthetic".into(),
            family_name: format!("Patient {n:07}"),
            date_of_birth: dob,
            sex,
            weight: Some(Measured {
                value: WeightKg::new(weight).context("weight")?,
                measured_on: first,
            }),
            height: Some(Measured {
                value: HeightCm::new(height).context("height")?,
                measured_on: first,
            }),
            indications: vec![plan.protocol_id.clone()],
            psychiatric_history: String::new(),
            substance_use_history: String::new(),
            medications: Vec::new(),
            allergies: Vec::new(),
            phone: String::new(),
            email: String::new(),
            intake,
        };

        // The course: an induction (or part of it), then maintenance for responders.
        let days_left = (self.today - first).get_days() as i64;
        let dropout = rng.random::<f64>() < DROPOUT;
        let responder = !dropout && rng.random::<f64>() < RESPONDER;
        let relapse_day = (responder && rng.random::<f64>() < RELAPSE).then(|| {
            let e = -RELAPSE_MEAN_DAYS * (1.0 - rng.random::<f64>()).ln();
            14 + 30 + e as i64
        });
        let mut days: Vec<i64> = if dropout {
            INDUCTION[..rng.random_range(1..INDUCTION.len())].to_vec()
        } else {
            INDUCTION.to_vec()
        };
        if responder {
            let mut d = INDUCTION[INDUCTION.len() - 1];
            loop {
                d += rng.random_range(MAINTENANCE_DAYS.0..=MAINTENANCE_DAYS.1);
                if d >= days_left || relapse_day.is_some_and(|r| d > r) {
                    break;
                }
                days.push(d);
            }
        }
        days.retain(|d| *d < days_left);
        let mut sessions = Vec::with_capacity(days.len());
        for (i, d) in days.iter().enumerate() {
            let day = first + d.days();
            let start = at(day, 9 + (rng.random_range(0..6) as i8), 0);
            let mut s = Session::new(plan.clone(), "Chair 1", start);
            let mg = if esketamine {
                if i < 2 { 56.0 } else { 84.0 }
            } else {
                (IV_MG_PER_KG * weight * 10.0).round() / 10.0
            };
            let (dose, administrations) = self.dosing(plan, mg, weight, start)?;
            s.checklist.dose = Some(dose);
            s.administrations = administrations;
            s.given_mg = Some(mg);
            s.phase = Phase::Discharged;
            s.signature = Some(Signature {
                by: "synthetic".into(),
                at: start + 120.minutes(),
            });
            let pre = normal(rng, SYSTOLIC).round();
            let rise = normal(rng, RISE);
            let hr = normal(rng, HEART_RATE);
            let vitals = VITALS_AT_MIN
                .iter()
                .map(|m| {
                    // Rises to its peak at 20–30 minutes, back by the end.
                    let shape = match m {
                        ..=0 => 0.0,
                        10 => 0.6,
                        20 | 30 => 1.0,
                        40 => 0.5,
                        _ => 0.2,
                    };
                    let systolic = (pre + rise * shape).round();
                    SyntheticVital {
                        at: start + m.minutes(),
                        systolic,
                        diastolic: (systolic * 0.64).round(),
                        heart_rate: (hr + 4.0 * shape).round(),
                        spo2: 97.0 + f64::from(rng.random_range(0..3u8)),
                    }
                })
                .collect();
            let age_years =
                ketcare_core::age::Age::on(dob, day).map(|a| f64::from(a.completed_months) / 12.0);
            let exposure = ketcare_app::sessions::history::session_exposure(
                &self.library,
                &self.pk,
                &s,
                weight,
                age_years,
            )
            .map_err(|e| anyhow::anyhow!("the predicted exposure of synthetic patient {n}: {e}"))?;
            sessions.push(SyntheticSession {
                session: s,
                vitals,
                exposure,
            });
        }

        // PHQ-9: a baseline three days before, then days 14, 28 and every 28 days after, while
        // the patient is followed (a drop-out is followed to two weeks after their last session).
        let baseline = rng.random_range(BASELINE.0..=BASELINE.1);
        let fraction = if responder {
            RESPONDER_FRACTION
        } else {
            NON_RESPONDER_FRACTION
        };
        let reached = uniform(rng, fraction);
        let relapsed_to = uniform(rng, RELAPSED_FRACTION);
        let followed = if dropout {
            days.last().copied().unwrap_or(0) + 14
        } else {
            days_left
        };
        let phq9 = ketcare_app::measures::find("phq9").map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut responses = Vec::new();
        let mut day = -3;
        while day < followed.min(days_left) {
            let f = match day {
                ..=0 => 1.0,
                // Most of the change by day 14, all of it by day 28.
                1..=14 => 1.0 - (1.0 - reached) * 0.8,
                _ if relapse_day.is_some_and(|r| day >= r) => relapsed_to,
                _ => reached,
            };
            let total = ((baseline as f64) * f).round() as i64;
            responses.push(response(phq9, total, first + day.days(), n, day)?);
            day = match day {
                ..=0 => 14,
                14 => 28,
                d => d + SCORE_EVERY_DAYS,
            };
        }
        Ok(SyntheticPatient {
            patient,
            sessions,
            responses,
        })
    }
}

impl Generator {
    /// The verified dose a synthetic session carries (so the record says how it was given, as
    /// a real one does) and its administrations from `start`: IV ketamine as one infusion of
    /// `mg` over [`IV_MINUTES`]; esketamine as `mg` ÷ the protocol's device strength devices,
    /// the protocol's minutes apart.
    fn dosing(
        &self,
        plan: &ketcare_session::Plan,
        mg: f64,
        weight: f64,
        start: Timestamp,
    ) -> Result<(VerifiedDose, Vec<Administration>)> {
        let admin = |at: Timestamp, event: AdminEvent| Administration {
            at,
            by: "synthetic".into(),
            event,
        };
        let protocol = self
            .library
            .get(&plan.protocol_id)
            .with_context(|| format!("protocol {}", plan.protocol_id))?;
        let dose = |devices: u32, summary: String, delivery: OrderedDelivery| VerifiedDose {
            order_id: 0,
            summary,
            author: "synthetic".into(),
            verified_by: "synthetic".into(),
            devices,
            dose_mg: Some(mg),
            delivery,
        };
        if let Some(e) = &protocol.esketamine {
            let e = e.get_ref();
            let (Some(device_mg), Some(gap)) = (
                e.device_mg.get_ref().value,
                e.minutes_between_devices.get_ref().value,
            ) else {
                anyhow::bail!(
                    "protocol {}: no device strength or wait between devices",
                    plan.protocol_id
                );
            };
            let devices = (mg / device_mg).round() as u32;
            let admins = (0..devices)
                .map(|i| {
                    admin(
                        start + ((f64::from(i) * gap * 60.0).round() as i64).seconds(),
                        AdminEvent::Device { number: i + 1 },
                    )
                })
                .collect();
            let delivery = OrderedDelivery {
                device_mg: Some(device_mg),
                ..OrderedDelivery::default()
            };
            return Ok((
                dose(
                    devices,
                    format!("synthetic: {mg} mg = {devices} devices"),
                    delivery,
                ),
                admins,
            ));
        }
        let rate = mg / IV_MG_PER_ML * 60.0 / IV_MINUTES as f64;
        let delivery = OrderedDelivery {
            infusion: Some(OrderedInfusion {
                rate_ml_per_h: rate,
                concentration_mg_per_ml: IV_MG_PER_ML,
                dose_mg: mg,
                duration_minutes: Some(IV_MINUTES as f64),
                basis_kg: weight,
                other_session_mg: 0.0,
                limits: Vec::new(),
            }),
            infusion_mg: Some(mg),
            ..OrderedDelivery::default()
        };
        Ok((
            dose(
                0,
                format!("synthetic: {mg} mg over {IV_MINUTES} min"),
                delivery,
            ),
            vec![
                admin(
                    start,
                    AdminEvent::Start {
                        rate_ml_per_h: Some(rate),
                        deviation: None,
                    },
                ),
                admin(
                    start + IV_MINUTES.minutes(),
                    AdminEvent::Stop { reason: None },
                ),
            ],
        ))
    }
}

/// A PHQ-9 form that totals `total` with item 9 (self-harm) at 0, scored by the instrument's
/// own rules.
fn response(
    phq9: &ketcare_measures::Instrument,
    total: i64,
    on: Date,
    n: u64,
    day: i64,
) -> Result<ketcare_store::measures::NewResponse> {
    let mut left = total.clamp(0, 24) as i32;
    let answers: Vec<Option<i32>> = (0..9)
        .map(|i| {
            if i == 8 {
                return Some(0);
            }
            let v = left.min(3);
            left -= v;
            Some(v)
        })
        .collect();
    let score = ketcare_measures::score(phq9, &answers, &ketcare_measures::SiteSettings::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ketcare_app::measures::new_response(&score, on, &format!("synthetic-{n}-{day}"))
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// What a run wrote and how long it took.
pub struct Generated {
    pub patients: u64,
    pub sessions: u64,
    pub vitals: u64,
    pub scores: u64,
    pub seconds: f64,
}

/// Generates patients `0..patients` of the clinic of `seed` and writes them through the store
/// in batches of [`BATCH`], generation of the next batch overlapping the write of this one.
pub async fn generate(
    store: &dyn Store,
    today: Date,
    patients: u64,
    years: i64,
    seed: u64,
) -> Result<Generated> {
    let started = std::time::Instant::now();
    let g = std::sync::Arc::new(Generator::new(today, years)?);
    let actor = Actor::system(Role::Prescriber);
    let mut out = Generated {
        patients: 0,
        sessions: 0,
        vitals: 0,
        scores: 0,
        seconds: 0.0,
    };
    let batch_of = |from: u64| {
        let g = g.clone();
        tokio::task::spawn_blocking(move || {
            (from..(from + BATCH as u64).min(patients))
                .map(|n| g.patient(seed, n))
                .collect::<Result<Vec<_>>>()
        })
    };
    let mut next = (patients > 0).then(|| batch_of(0));
    let mut from = 0;
    while let Some(pending) = next.take() {
        let batch = pending.await.context("the generator")??;
        from += batch.len() as u64;
        if from < patients {
            next = Some(batch_of(from));
        }
        out.sessions += batch.iter().map(|p| p.sessions.len() as u64).sum::<u64>();
        out.vitals += batch
            .iter()
            .flat_map(|p| &p.sessions)
            .map(|s| s.vitals.len() as u64)
            .sum::<u64>();
        out.scores += batch.iter().map(|p| p.responses.len() as u64).sum::<u64>();
        out.patients += store.insert_synthetic(&actor, &batch).await? as u64;
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_patient_and_another_seed_another() {
        let g = Generator::new(jiff::civil::date(2026, 12, 1), 2).unwrap();
        let a = g.patient(7, 42).unwrap();
        let b = g.patient(7, 42).unwrap();
        assert_eq!(a.patient, b.patient);
        assert_eq!(a.responses.len(), b.responses.len());
        assert_eq!(a.sessions.len(), b.sessions.len());
        let c = g.patient(8, 42).unwrap();
        assert_ne!(a.patient.date_of_birth, c.patient.date_of_birth);
    }

    #[test]
    fn every_patient_is_adult_dosed_before_today_and_fictional() {
        let today = jiff::civil::date(2026, 12, 1);
        let g = Generator::new(today, 2).unwrap();
        for n in 0..200 {
            let p = g.patient(1, n).unwrap();
            assert!(p.patient.mrn.starts_with("SYN-"));
            assert!(!p.sessions.is_empty(), "patient {n} has a session");
            for s in &p.sessions {
                let start = s.session.dose_start().unwrap();
                assert!(start < at(today, 0, 0));
                assert!(s.session.given_mg().unwrap() > 0.0);
                assert_eq!(s.vitals.len(), VITALS_AT_MIN.len());
            }
            let first = p.sessions[0].session.dose_start().unwrap();
            let age = ketcare_core::age::Age::on(
                p.patient.date_of_birth,
                first.to_zoned(TimeZone::system()).date(),
            )
            .unwrap();
            assert!(age.years() >= 18, "{n}");
            assert!(p.responses.iter().all(|r| r.total.unwrap() <= 27));
        }
    }

    /// Each record says how its dose was given (the mg the delivery computation reads from it
    /// is the mg recorded), and its predicted exposure is the engine's prediction of exactly
    /// that history for the chart's weight.
    #[test]
    fn every_session_is_readable_as_given_and_predicted_by_the_engine() {
        let today = jiff::civil::date(2026, 12, 1);
        let g = Generator::new(today, 2).unwrap();
        let lib = Library::builtin().unwrap();
        let pk = ketcare_pk::Library::builtin().unwrap();
        let mut drugs = std::collections::BTreeSet::new();
        for n in 0..60 {
            let p = g.patient(1, n).unwrap();
            let weight = f64::from(p.patient.weight.as_ref().unwrap().value);
            for s in &p.sessions {
                let given = s.session.given_mg().unwrap();
                let delivered = s.session.delivered().unwrap();
                assert!(
                    (delivered.mg - given).abs() < 1e-3,
                    "{n}: {delivered:?} vs {given}"
                );
                let e = s.exposure.as_ref().expect("a signed session is predicted");
                let h = ketcare_app::given::of_session(&lib, &s.session)
                    .unwrap()
                    .unwrap();
                drugs.insert(h.drug.clone());
                let req = ketcare_pk::SimRequest {
                    model: e.model.clone(),
                    regimen: h.regimen.clone(),
                    covariates: ketcare_pk::Covariates {
                        weight_kg: weight,
                        age_years: ketcare_core::age::Age::on(
                            p.patient.date_of_birth,
                            h.started_at.to_zoned(TimeZone::system()).date(),
                        )
                        .map(|a| f64::from(a.completed_months) / 12.0),
                    },
                    options: ketcare_pk::Options::default(),
                    horizon_min: ketcare_app::sessions::history::horizon_after(h.last_event_min),
                    step_min: 1.0,
                    population: None,
                    label: None,
                };
                let r = ketcare_pk::simulate(&pk, &req, None).unwrap();
                assert_eq!(e.cmax_ng_ml, r.key.cmax_ng_ml);
                assert_eq!(e.auc_ng_min_ml, r.key.auc_ng_min_ml);
                assert!(e.cmax_ng_ml > 0.0 && e.auc_ng_min_ml > 0.0);
            }
        }
        assert_eq!(drugs.len(), 2, "both drugs seen: {drugs:?}");
    }
}
