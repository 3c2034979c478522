#![allow(dead_code)]
//! Shared fixtures for the integration tests.

use ketcare_clinical::dose::{Amount, DoseRequest, Preparation};
use ketcare_clinical::eligibility::Age;
use ketcare_clinical::units::*;
use ketcare_clinical::{Library, SiteSettings, Timestamp, Username};

pub fn lib() -> Library {
    static LIB: std::sync::OnceLock<Library> = std::sync::OnceLock::new();
    LIB.get_or_init(|| match Library::builtin() {
        Ok(l) => l,
        Err(e) => panic!("built-in library refused: {e}"),
    })
    .clone()
}

/// Site settings every U value a demo clinic would set, with rounding rule set "A":
/// dose to 0.5 mg, syringe to 0.1 mL, pump to 0.1 mL/h.
pub fn settings_a() -> SiteSettings {
    base()
        .with("rounding.dose_mg_increment", 0.5)
        .with("rounding.syringe_ml_increment", 0.1)
        .with("rounding.pump_ml_per_h_increment", 0.1)
}

/// Rounding rule set "B": dose to 1 mg, syringe to 0.01 mL, pump to 1 mL/h.
pub fn settings_b() -> SiteSettings {
    base()
        .with("rounding.dose_mg_increment", 1.0)
        .with("rounding.syringe_ml_increment", 0.01)
        .with("rounding.pump_ml_per_h_increment", 1.0)
}

fn base() -> SiteSettings {
    SiteSettings::new()
        .with("observation.ketamine_psychiatric_minutes", 120.0)
        .with("observation.ketamine_pain_minutes", 120.0)
        .with("observation.ketamine_paediatric_ed_minutes", 60.0)
}

pub fn user(id: &str) -> Username {
    match Username::new(id) {
        Ok(u) => u,
        Err(e) => panic!("{e}"),
    }
}

pub fn ts(s: &str) -> Timestamp {
    match Timestamp::parse(s) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

pub fn kg(v: f64) -> WeightKg {
    match WeightKg::new(v) {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    }
}

/// A request with protocol defaults for a 40-year-old (cases for other ages set their own).
pub fn req(protocol: &str, weight: f64) -> DoseRequest {
    let mut r = DoseRequest::new(
        protocol,
        kg(weight),
        user("dr.author"),
        ts("2026-11-22T09:00:00Z"),
    );
    r.patient.age = age(40, 0);
    r
}

pub fn age(years: u32, months: u32) -> Option<Age> {
    Some(Age { years, months })
}

pub fn prep(conc: f64, final_ml: Option<f64>) -> Option<Preparation> {
    let c = match ConcentrationMgPerMl::new(conc) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    Some(Preparation {
        concentration_mg_per_ml: c,
        final_volume_ml: final_ml.map(|v| match VolumeMl::new(v) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }),
    })
}

pub fn per_kg(v: f64) -> Option<Amount> {
    MgPerKg::new(v).ok().map(Amount::MgPerKg)
}
pub fn per_kg_h(v: f64) -> Option<Amount> {
    MgPerKgPerHour::new(v).ok().map(Amount::MgPerKgPerHour)
}
pub fn mg(v: f64) -> Option<Amount> {
    DoseMg::new(v).ok().map(Amount::Mg)
}
pub fn minutes(v: f64) -> Option<Minutes> {
    Minutes::new(v).ok()
}
pub fn dose_mg(v: f64) -> Option<DoseMg> {
    DoseMg::new(v).ok()
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + b.abs())
}
