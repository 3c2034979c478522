//! Order lifecycle: soft-limit override with reason, who and when; second-clinician verification.

mod common;
use common::*;

use ketcare_clinical::dose::{OrderError, OrderState, calculate};
use ketcare_clinical::settings::LimitOverride;
use ketcare_clinical::{DoseOrder, Library, SiteSettings};

fn order(lib: &Library, s: &SiteSettings, amount: f64) -> DoseOrder {
    let mut r = req("trd-adult-iv-ketamine", 70.0);
    r.infusion.amount = per_kg(amount);
    r.preparation = prep(10.0, Some(50.0));
    match calculate(lib, s, &r) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn soft_limit_needs_a_reason_then_a_second_clinician() {
    let lib = lib();
    let o = order(&lib, &settings_a(), 0.8);
    assert_eq!(o.state, OrderState::NeedsOverride);
    assert_eq!(
        o.calculation.soft_limits_crossed[0].limit_id,
        "max-mg-per-kg-soft"
    );
    let at = ts("2026-11-22T09:05:00Z");
    assert!(matches!(
        o.verify(user("nurse.b"), at.clone()),
        Err(OrderError::WrongState { .. })
    ));
    assert!(matches!(
        o.override_soft_limits(user("dr.author"), " ", at.clone()),
        Err(OrderError::EmptyReason)
    ));
    let o = match o.override_soft_limits(
        user("dr.author"),
        "partial response at 0.75 mg/kg",
        at.clone(),
    ) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(o.state, OrderState::PendingVerification);
    let ov = o.soft_override.clone();
    assert_eq!(ov.as_ref().map(|v| v.by.as_str()), Some("dr.author"));
    assert_eq!(ov.as_ref().map(|v| v.at.clone()), Some(at.clone()));
    assert_eq!(
        ov.map(|v| v.limit_ids),
        Some(vec!["max-mg-per-kg-soft".to_string()])
    );
    assert!(matches!(
        o.verify(user("dr.author"), at.clone()),
        Err(OrderError::VerifierIsAuthor { .. })
    ));
    let v = match o.verify(user("nurse.b"), ts("2026-11-22T09:10:00Z")) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(v.state, OrderState::Verified);
    assert_eq!(
        v.verification.as_ref().map(|x| x.by.as_str()),
        Some("nurse.b")
    );
    assert!(matches!(
        v.verify(user("nurse.c"), at),
        Err(OrderError::WrongState { .. })
    ));
    // Stored as JSON and read back, the order is identical (API and CLI share it).
    let json = serde_json::to_string(&v).unwrap_or_default();
    let back: Result<DoseOrder, _> = serde_json::from_str(&json);
    assert_eq!(back.ok(), Some(v));
}

#[test]
fn within_limits_goes_straight_to_pending_verification() {
    let lib = lib();
    let o = order(&lib, &settings_a(), 0.5);
    assert_eq!(o.state, OrderState::PendingVerification);
    assert!(matches!(
        o.override_soft_limits(user("dr.author"), "x", ts("2026-11-22T09:05:00Z")),
        Err(OrderError::WrongState { .. })
    ));
    assert_eq!(o.calculation.protocol_id, "trd-adult-iv-ketamine");
    assert_eq!(o.calculation.protocol_version, 1);
}

#[test]
fn every_number_names_its_source() {
    let lib = lib();
    let mut r = req("trd-adult-iv-ketamine", 70.0);
    r.preparation = prep(10.0, Some(50.0));
    let o = calculate(&lib, &settings_a(), &r).ok();
    let json = serde_json::to_value(&o).unwrap_or_default();
    let c = &json["calculation"]["components"][0];
    assert_eq!(c["ordered"]["provenance"]["kind"], "reference");
    assert_eq!(
        c["ordered"]["provenance"]["source"],
        serde_json::json!(["R17", "R18", "R19"])
    );
    assert_eq!(
        c["duration_minutes"]["provenance"]["source"],
        serde_json::json!(["R17", "R19"])
    );
    assert_eq!(
        c["preparation"]["vial_concentration"]["provenance"]["source"],
        serde_json::json!(["R33c"])
    );
    assert_eq!(c["preparation"]["rate_ml_per_h"]["value"], 75.0);
    assert_eq!(json["calculation"]["weight"]["basis"], "actual");
    assert!(
        json["calculation"]["weight"]["ideal_and_adjusted_weight"]
            .as_str()
            .unwrap_or("")
            .contains("R39")
    );
    // Roundings are stated with the site setting they used.
    let r = &json["calculation"]["roundings"];
    assert!(r.as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x["setting"] == "rounding.pump_ml_per_h_increment")
    }));
    // Hard limits refuse naming limit and source.
    let mut q = req("trd-adult-iv-ketamine", 70.0);
    q.infusion.amount = per_kg(1.5);
    let e = calculate(&lib, &settings_a(), &q)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("max-mg-per-kg-hard") && e.contains("R19"), "{e}");
}

#[test]
fn limit_override_checks() {
    let lib = lib();
    let mut s = settings_a();
    s.limit_overrides.push(LimitOverride {
        protocol_id: "trd-adult-iv-ketamine".into(),
        limit_id: "max-mg-per-kg-hard".into(),
        value: 1.2,
        set_by: user("admin.one"),
        second_approver: Some(user("admin.one")),
        reason: "x".into(),
    });
    let problems = lib.check_settings(&s);
    assert!(
        format!("{problems:?}").contains("ApproverIsAuthor"),
        "{problems:?}"
    );
    s.limit_overrides[0].second_approver = None;
    assert!(format!("{:?}", lib.check_settings(&s)).contains("WideningNeedsSecondApprover"));
    s.limit_overrides[0].value = 0.9;
    assert!(
        lib.check_settings(&s).is_empty(),
        "narrowing needs no second approver"
    );
    // A soft limit may be widened by one administrator.
    s.limit_overrides[0].limit_id = "max-mg-per-kg-soft".into();
    assert!(lib.check_settings(&s).is_empty());
    s.limit_overrides[0].limit_id = "no-such-limit".into();
    assert!(format!("{:?}", lib.check_settings(&s)).contains("UnknownLimit"));
    let bad = SiteSettings::new().with("rounding.syringe_ml_increment", -0.1);
    assert!(format!("{:?}", lib.check_settings(&bad)).contains("BadValue"));
}

#[test]
fn unusable_settings_values_block_instead_of_misrounding() {
    let lib = lib();
    let s = settings_a().with("rounding.syringe_ml_increment", -0.1);
    let r = lib.readiness("trd-adult-iv-ketamine", &s).ok();
    assert_eq!(r.as_ref().map(|r| r.ready), Some(false));
    assert!(format!("{r:?}").contains("BadValue"));
    let s = settings_a().with("rounding.pump_ml_per_h_increment", f64::NAN);
    assert!(calculate(&lib, &s, &req("trd-adult-iv-ketamine", 70.0)).is_err());
    // Same answer from the protocol itself.
    let s = settings_a().with("rounding.dose_mg_increment", 0.0);
    let p = lib.get("trd-adult-iv-ketamine").ok();
    assert_eq!(
        p.map(|p| p.readiness(&s)),
        lib.readiness("trd-adult-iv-ketamine", &s).ok()
    );
}
