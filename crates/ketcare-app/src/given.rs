//! What a session actually gave: its administrations (start, rate changes, pauses, stop,
//! esketamine devices) read with the verified dose order (concentration, device strength, the
//! protocol's drug and route) become a dose history — a PK regimen in minutes from the first
//! administration. The patient's score chart marks it ([`crate::measures::overview`]) and the PK
//! engine predicts its curve ([`crate::sessions::history::predicted`]); both read it here, so
//! measures does not depend on sessions.

use crate::error::{Error, Result};
use jiff::Timestamp;
use ketcare_clinical::Library;
use ketcare_clinical::protocol::{Drug, Route as ClinicalRoute};
use ketcare_core::{Actor, PatientId, RecordId, SessionId};
use ketcare_pk::{Dose, RateStep, Regimen, Route};
use ketcare_session::Session;
use ketcare_session::delivery::GivenKind;
use ketcare_store::{SessionRecord, Store};
use serde::Serialize;

/// The doses a session gave, as a PK regimen (times in minutes from `started_at`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DoseHistory {
    /// The first administration.
    pub started_at: Timestamp,
    /// "ketamine" or "esketamine".
    pub drug: String,
    /// The protocol's route (PK route name).
    pub route: String,
    pub regimen: Regimen,
    /// Total mg given by the end of the record.
    pub total_mg: f64,
    /// Minutes from the first to the last dosing event.
    pub last_event_min: f64,
    /// How the record was read, where it leaves something open.
    pub assumptions: Vec<String>,
}

fn pk_route(r: ClinicalRoute) -> Route {
    match r {
        ClinicalRoute::IvInfusion => Route::IvInfusion,
        ClinicalRoute::IvBolus => Route::IvBolus,
        ClinicalRoute::Im => Route::Intramuscular,
        ClinicalRoute::Intranasal => Route::Intranasal,
        ClinicalRoute::Oral => Route::Oral,
        ClinicalRoute::Sublingual => Route::Sublingual,
        ClinicalRoute::Subcutaneous => Route::Subcutaneous,
    }
}

fn minutes(from: Timestamp, at: Timestamp) -> f64 {
    let s = at.as_second() - from.as_second();
    (s.max(0) as f64 + f64::from(at.subsec_nanosecond() - from.subsec_nanosecond()) * 1e-9).max(0.0)
        / 60.0
}

/// Reads what a session gave — [`Session::delivered`], the same computation signing, the
/// ledger and billing use — as a PK regimen. `Ok(None)` when nothing was given yet; an error
/// (naming what is missing) when the record cannot be converted.
pub fn dose_history(
    session: &Session,
    drug: Drug,
    route: ClinicalRoute,
) -> Result<Option<DoseHistory>, String> {
    let d = session.delivered()?;
    let Some(t0) = d.started_at else {
        return Ok(None);
    };
    let mut doses = Vec::new();
    let mut rates: Vec<RateStep> = Vec::new();
    let mut assumptions = Vec::new();
    let step = |rates: &mut Vec<RateStep>, t: f64, mg_per_min: f64| {
        if let Some(last) = rates.last_mut()
            && last.time_min == t
        {
            last.rate_mg_per_min = mg_per_min;
        } else {
            rates.push(RateStep {
                time_min: t,
                rate_mg_per_min: mg_per_min,
            });
        }
    };
    for g in &d.doses {
        let pk = match g.kind {
            GivenKind::Bolus => {
                assumptions.push(format!(
                    "the order's IV bolus ({} mg) is taken as given at the start: the record has no separate bolus time",
                    ketcare_core::units::trim_float(g.mg)
                ));
                Route::IvBolus
            }
            GivenKind::Single => pk_route(route),
            GivenKind::Device => Route::Intranasal,
        };
        doses.push(Dose {
            time_min: minutes(t0, g.at),
            amount_mg: g.mg,
            route: pk,
            duration_min: None,
        });
    }
    for i in &d.intervals {
        step(&mut rates, minutes(t0, i.from), i.mg_per_min);
        if let Some(to) = i.to {
            step(&mut rates, minutes(t0, to), 0.0);
        }
    }
    if d.running {
        assumptions.push(
            "the infusion has not been stopped: the prediction continues it at the current rate"
                .into(),
        );
    }
    let end = session
        .administrations
        .last()
        .map(|a| minutes(t0, a.at))
        .unwrap_or(0.0);
    Ok(Some(DoseHistory {
        started_at: t0,
        drug: match drug {
            Drug::RacemicKetamine => "ketamine".into(),
            Drug::Esketamine => "esketamine".into(),
        },
        route: pk_route(route).as_str().to_owned(),
        regimen: Regimen {
            doses,
            iv_rates: rates,
        },
        total_mg: d.mg,
        last_event_min: end,
        assumptions,
    }))
}

/// The dose history of a stored session (its administrations with the verified order it
/// carries; the protocol gives the drug and route).
pub fn of_record(library: &Library, r: &SessionRecord) -> Result<Option<DoseHistory>> {
    of_session(library, &r.session)
}

/// [`of_record`] of a session document (the synthetic clinic's, before it is stored).
pub fn of_session(library: &Library, session: &Session) -> Result<Option<DoseHistory>> {
    if session.administrations.is_empty() {
        return Ok(None);
    }
    let protocol = library
        .get(&session.plan.protocol_id)
        .map_err(|e| Error::Conflict(e.to_string()))?;
    dose_history(session, protocol.drug, protocol.route).map_err(Error::Conflict)
}

/// A marker on the patient's score chart for every session that gave something (date of the
/// first administration, drug, route, dose given); the dose orders these sessions gave.
pub async fn patient_markers(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
) -> Result<(Vec<SessionMarker>, Vec<RecordId>)> {
    let mut out = Vec::new();
    let mut orders = Vec::new();
    let zones = crate::zones::Zones::load(store).await?;
    for r in store.patient_sessions(actor, patient).await? {
        if let Some(o) = r.session.dose_order_id {
            orders.push(RecordId::new(o));
        }
        let Some(h) = of_record(library, &r).ok().flatten() else {
            continue;
        };
        out.push(SessionMarker {
            session_id: r.id,
            date: h.started_at.to_zoned(zones.of(r.site_id)).date(),
            drug: h.drug,
            route: h.route,
            dose_mg: h.total_mg,
        });
    }
    out.sort_by_key(|m| (m.date, m.session_id));
    Ok((out, orders))
}

/// A session as marked on the chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionMarker {
    pub session_id: SessionId,
    pub date: jiff::civil::Date,
    pub drug: String,
    pub route: String,
    pub dose_mg: f64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ketcare_clinical::{DoseOrder, Library, SiteSettings};
    use ketcare_session::RulesFile;
    use ketcare_session::session::{AdminEvent, Administration, VerifiedDose};
    use serde_json::json;

    /// A session of the order's protocol carrying the order's delivery facts, with `admin`.
    fn session(o: &DoseOrder, admin: &[Administration]) -> Session {
        let lib = Library::builtin().unwrap();
        let rules = RulesFile::builtin(lib.sources()).unwrap();
        let c = &o.calculation;
        let devices = c.esketamine.as_ref().map_or(0, |e| e.devices);
        let plan = rules.plan(
            lib.get(&c.protocol_id).unwrap(),
            &SiteSettings::new(),
            devices,
        );
        let mut s = Session::new(
            plan,
            "Chair 1",
            Timestamp::from_second(1_800_000_000).unwrap(),
        );
        s.checklist.dose = Some(VerifiedDose {
            order_id: 1,
            summary: String::new(),
            author: "a".into(),
            verified_by: "b".into(),
            devices,
            dose_mg: None,
            delivery: ketcare_session::ordered_delivery(c),
        });
        s.administrations = admin.to_vec();
        s
    }

    fn order(body: serde_json::Value) -> DoseOrder {
        let lib = Library::builtin().unwrap();
        let mut settings = SiteSettings::new();
        for (k, v) in [
            ("rounding.dose_mg_increment", 1.0),
            ("rounding.pump_ml_per_h_increment", 0.1),
            ("rounding.syringe_ml_increment", 0.1),
            ("observation.ketamine_psychiatric_minutes", 120.0),
        ] {
            settings = settings.with(k, v);
        }
        let actor = Actor::system(ketcare_core::Role::Prescriber);
        let req = crate::clinical::dose_request(body, &actor, 1_800_000_000).unwrap();
        ketcare_clinical::calculate(&lib, &settings, &req).unwrap()
    }

    fn at(min: i64, event: AdminEvent) -> Administration {
        Administration {
            at: Timestamp::from_second(1_800_000_000 + min * 60).unwrap(),
            by: "nurse".into(),
            event,
        }
    }

    fn iv_order(prepared: bool) -> DoseOrder {
        let mut body = json!({"protocol_id": "trd-adult-iv-ketamine",
            "patient": {"weight_kg": 70, "age": {"years": 46}}});
        if prepared {
            body["preparation"] = json!({"concentration_mg_per_ml": 50, "final_volume_ml": 100});
        }
        order(body)
    }

    #[test]
    fn rate_steps_pauses_and_stop_become_the_regimen() {
        let o = iv_order(true);
        let admin = [
            at(
                0,
                AdminEvent::Start {
                    rate_ml_per_h: Some(8.75),
                    deviation: None,
                },
            ),
            at(
                5,
                AdminEvent::Pause {
                    reason: "nausea".into(),
                },
            ),
            at(7, AdminEvent::Resume),
            at(
                10,
                AdminEvent::RateChange {
                    rate_ml_per_h: 17.5,
                    deviation: None,
                },
            ),
            at(20, AdminEvent::Stop { reason: None }),
        ];
        let h = dose_history(
            &session(&o, &admin),
            Drug::RacemicKetamine,
            ClinicalRoute::IvInfusion,
        )
        .unwrap()
        .unwrap();
        let steps: Vec<(f64, f64)> = h
            .regimen
            .iv_rates
            .iter()
            .map(|r| (r.time_min, r.rate_mg_per_min))
            .collect();
        let r = steps[0].1;
        assert!(r > 0.0);
        assert_eq!(
            steps,
            vec![(0.0, r), (5.0, 0.0), (7.0, r), (10.0, 2.0 * r), (20.0, 0.0)]
        );
        assert!((h.total_mg - (r * 8.0 + 2.0 * r * 10.0)).abs() < 1e-3);
        // The one computation: the same mg and running time signing and billing read.
        let d = session(&o, &admin).delivered().unwrap();
        assert_eq!(h.total_mg, d.mg);
        assert!((d.running_minutes - 18.0).abs() < 1e-9);
        assert_eq!(
            (h.drug.as_str(), h.route.as_str()),
            ("ketamine", "iv_infusion")
        );
        assert!(h.assumptions.is_empty(), "{:?}", h.assumptions);
        // Still running: continued at the current rate, and said so.
        let h = dose_history(
            &session(&o, &admin[..4]),
            Drug::RacemicKetamine,
            ClinicalRoute::IvInfusion,
        )
        .unwrap()
        .unwrap();
        assert!(h.assumptions.iter().any(|a| a.contains("not been stopped")));
    }

    #[test]
    fn nothing_given_is_none_and_a_rate_without_concentration_is_refused() {
        let o = iv_order(false);
        assert_eq!(
            dose_history(
                &session(&o, &[]),
                Drug::RacemicKetamine,
                ClinicalRoute::IvInfusion
            )
            .unwrap(),
            None
        );
        let e = dose_history(
            &session(
                &o,
                &[at(
                    0,
                    AdminEvent::Start {
                        rate_ml_per_h: Some(8.75),
                        deviation: None,
                    },
                )],
            ),
            Drug::RacemicKetamine,
            ClinicalRoute::IvInfusion,
        )
        .unwrap_err();
        assert!(e.contains("concentration"), "{e}");
    }

    #[test]
    fn esketamine_devices_are_intranasal_doses_of_the_device_strength() {
        let o = order(json!({"protocol_id": "trd-adult-esketamine",
            "patient": {"weight_kg": 70, "age": {"years": 42}},
            "esketamine_dose_mg": 56, "first_dose_of_course": true}));
        let device = o.calculation.esketamine.as_ref().unwrap().device_mg.value;
        let admin = [
            at(0, AdminEvent::Device { number: 1 }),
            at(5, AdminEvent::Device { number: 2 }),
        ];
        let h = dose_history(
            &session(&o, &admin),
            Drug::Esketamine,
            ClinicalRoute::Intranasal,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.regimen.doses.len(), 2);
        assert!(
            h.regimen
                .doses
                .iter()
                .all(|d| d.route == Route::Intranasal && d.amount_mg == device)
        );
        assert_eq!(h.regimen.doses[1].time_min, 5.0);
        assert_eq!(h.total_mg, 2.0 * device);
        assert_eq!(h.drug, "esketamine");
    }
}
