//! Billing codes derived from what a session record documents (clinical.md §7): IV infusion
//! time → 96374/96365/96366, esketamine dose → G2082/G2083, drug lines, E/M. Codes come from
//! `data/ops/billing.toml`; codes the reference marks uncertain are used only when the site
//! turns them on; prices are the site's own price list. A superbill per session and a self-pay
//! estimate for a course.

use crate::cited::{data_error, line_near, parse_toml};
use crate::session_facts::{Drug, EmLevel, Route, SessionFacts};
use ketcare_core::data::DataFileError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const BUILTIN_FILE: &str = "data/ops/billing.toml";
pub const BUILTIN_TEXT: &str = include_str!("../../../data/ops/billing.toml");

/// An infusion must run more than this many minutes to be an infusion (96365), else it is an
/// IV push (96374) [R50, R50c].
pub const INFUSION_MIN_MINUTES: i64 = 15;
/// Each additional hour (96366) is reported once the infusion runs more than 30 minutes past
/// the previous hour [R50b, R50c].
pub const ADD_ON_THRESHOLD_MINUTES: i64 = 30;
/// The esketamine G-code boundary: up to 56 mg → G2082, more → G2083 [R47, R47b].
pub const G2082_MAX_UG: i64 = 56_000;
/// One esketamine device holds 28 mg [R5] (units of the esketamine drug line).
pub const ESKETAMINE_DEVICE_UG: i64 = 28_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRow {
    pub code: String,
    pub kind: String,
    pub description: String,
    #[serde(default)]
    pub source: Vec<String>,
    pub status: String,
    /// For S and U codes: the site setting that turns the code on.
    #[serde(default)]
    pub site_setting: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeFile {
    code: Vec<CodeRow>,
}

/// The validated code table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBook {
    codes: Vec<CodeRow>,
}

impl CodeBook {
    pub fn builtin() -> Result<Self, DataFileError> {
        Self::parse(BUILTIN_FILE, BUILTIN_TEXT)
    }

    pub fn parse(file: &str, text: &str) -> Result<Self, DataFileError> {
        let f: CodeFile = parse_toml(file, text)?;
        for (i, c) in f.code.iter().enumerate() {
            let anchor = format!("code = \"{}\"", c.code);
            let fail = |field: &str, m: &str| {
                data_error(
                    file,
                    line_near(text, &anchor, field),
                    &format!("code[{i}].{field}"),
                    m.into(),
                )
            };
            if c.code.trim().is_empty() {
                return Err(fail("code", "empty"));
            }
            if f.code[..i].iter().any(|o| o.code == c.code) {
                return Err(fail("code", "appears twice"));
            }
            match c.status.as_str() {
                "V" if c.source.is_empty() => {
                    return Err(fail("source", "a V code names its source"));
                }
                "S" if c.source.is_empty() => {
                    return Err(fail("source", "an S code names its source"));
                }
                "U" if c.site_setting.is_none() => {
                    return Err(fail(
                        "site_setting",
                        "a U code is only used when a site setting turns it on",
                    ));
                }
                "V" | "S" | "U" => {}
                _ => return Err(fail("status", "V, S or U")),
            }
        }
        Ok(Self { codes: f.code })
    }

    pub fn all(&self) -> &[CodeRow] {
        &self.codes
    }

    pub fn get(&self, code: &str) -> Option<&CodeRow> {
        self.codes.iter().find(|c| c.code == code)
    }
}

/// The site's price list: code → price per unit in cents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceList(pub BTreeMap<String, i64>);

/// Site choices for codes the reference does not settle (read from site settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SiteBilling {
    pub em_codes_enabled: bool,
    pub code_96372_enabled: bool,
    pub esketamine_drug_line: bool,
    /// 0820T–0822T turned on.
    pub psychedelic_monitoring_enabled: bool,
    /// Minutes of monitoring one 0820T unit stands for (the site's; the reference gives none).
    pub monitoring_unit_minutes: Option<i64>,
}

impl SiteBilling {
    pub const EM: &str = "billing.em_codes_enabled";
    pub const C96372: &str = "billing.code_96372_enabled";
    pub const ESK_DRUG: &str = "billing.esketamine_drug_line";
    pub const MONITORING: &str = "billing.psychedelic_monitoring_codes_enabled";
    pub const MONITORING_UNIT: &str = "billing.psychedelic_monitoring_unit_minutes";

    pub fn from_settings(settings: &dyn Fn(&str) -> Option<String>) -> Self {
        let on = |k: &str| {
            settings(k).and_then(|v| <bool as crate::cited::FromSetting>::from_setting(&v))
                == Some(true)
        };
        Self {
            em_codes_enabled: on(Self::EM),
            code_96372_enabled: on(Self::C96372),
            esketamine_drug_line: on(Self::ESK_DRUG),
            psychedelic_monitoring_enabled: on(Self::MONITORING),
            monitoring_unit_minutes: settings(Self::MONITORING_UNIT)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|m| m.fract() == 0.0 && *m >= 1.0 && *m <= 1440.0)
                .map(|m| m as i64),
        }
    }
}

/// One line of a superbill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Line {
    pub code: String,
    pub description: String,
    pub units: u32,
    pub modifier: Option<String>,
    /// Why this code: the documented fact it was derived from.
    pub basis: String,
    pub source: Vec<String>,
    pub status: String,
    pub unit_price_cents: Option<i64>,
    pub amount_cents: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Superbill {
    pub session_id: i64,
    pub patient_id: i64,
    pub lines: Vec<Line>,
    /// The total when every line has a price.
    pub total_cents: Option<i64>,
    /// Codes the site has not priced.
    pub unpriced: Vec<String>,
    /// What could not be coded, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field}: {message}")]
pub struct BillingError {
    pub field: String,
    pub message: String,
}

/// Infusion codes for `minutes` of infusion: 96374 up to 15 min; 96365 for the first hour;
/// one 96366 for each further hour once more than 30 minutes into it.
pub fn infusion_codes(minutes: i64) -> Vec<(&'static str, u32)> {
    if minutes <= INFUSION_MIN_MINUTES {
        return vec![("96374", 1)];
    }
    let mut out = vec![("96365", 1)];
    let extra = if minutes > 60 + ADD_ON_THRESHOLD_MINUTES {
        (minutes - 60 - ADD_ON_THRESHOLD_MINUTES - 1) / 60 + 1
    } else {
        0
    };
    if extra > 0 {
        out.push(("96366", u32::try_from(extra).unwrap_or(u32::MAX)));
    }
    out
}

/// The superbill for one session.
pub fn superbill(
    facts: &SessionFacts,
    book: &CodeBook,
    prices: &PriceList,
    site: SiteBilling,
) -> Result<Superbill, BillingError> {
    let mut lines: Vec<Line> = Vec::new();
    let mut notes = Vec::new();
    let mut add = |code: &str, units: u32, modifier: Option<&str>, basis: String| {
        if let Some(c) = book.get(code) {
            let price = prices.0.get(code).copied();
            lines.push(Line {
                code: c.code.clone(),
                description: c.description.clone(),
                units,
                modifier: modifier.map(str::to_owned),
                basis,
                source: c.source.clone(),
                status: c.status.clone(),
                unit_price_cents: price,
                amount_cents: price.map(|p| p.saturating_mul(i64::from(units))),
            });
        }
    };
    if facts.cancelled {
        notes.push("the session was cancelled: nothing is billed".into());
    } else {
        let given = facts.given.0;
        match facts.route {
            Route::IvInfusion | Route::IvPush => {
                let minutes = match (facts.infusion_start, facts.infusion_stop) {
                    _ if facts.infusion_minutes.is_some_and(|m| m < 0) => {
                        return Err(BillingError {
                            field: "infusion_minutes".into(),
                            message: "the running time cannot be negative".into(),
                        });
                    }
                    (Some(a), Some(b)) if b > a => facts
                        .infusion_minutes
                        .unwrap_or(b.duration_since(a).as_secs() / 60),
                    (Some(_), Some(_)) => {
                        return Err(BillingError {
                            field: "infusion_stop".into(),
                            message: "the infusion must stop after it starts".into(),
                        });
                    }
                    _ if facts.route == Route::IvPush => 0,
                    _ => {
                        return Err(BillingError {
                            field: "infusion_start".into(),
                            message: "the session record has no infusion start and stop times"
                                .into(),
                        });
                    }
                };
                for (code, units) in infusion_codes(minutes) {
                    add(code, units, None, format!("infusion time {minutes} min"));
                }
            }
            Route::Intranasal if facts.drug == Drug::Esketamine => {
                if given <= 0 {
                    notes.push("no esketamine dose documented: no G-code".into());
                } else {
                    let code = if given <= G2082_MAX_UG {
                        "G2082"
                    } else {
                        "G2083"
                    };
                    add(
                        code,
                        1,
                        None,
                        format!("esketamine {} mg given", facts.given),
                    );
                }
            }
            Route::Intramuscular | Route::Subcutaneous => {
                if site.code_96372_enabled {
                    add("96372", 1, None, "SC/IM injection".into());
                } else {
                    notes.push(format!(
                        "96372 (SC/IM injection) is unconfirmed in the reference; the site turns it on with `{}`",
                        SiteBilling::C96372
                    ));
                }
            }
            _ => notes.push("no administration code in the reference for this route".into()),
        }
        match facts.drug {
            Drug::RacemicKetamine if given > 0 => {
                add(
                    "J3490",
                    1,
                    None,
                    format!("racemic ketamine {} mg", facts.given),
                );
            }
            Drug::Esketamine if given > 0 && site.esketamine_drug_line => {
                let devices = (given - 1) / ESKETAMINE_DEVICE_UG + 1;
                add(
                    "J0013",
                    u32::try_from(devices).unwrap_or(u32::MAX),
                    None,
                    format!("esketamine {} mg ({devices} × 28 mg devices)", facts.given),
                );
            }
            _ => {}
        }
        if let Some(level) = facts.em_level {
            if site.em_codes_enabled {
                let code = match level {
                    EmLevel::Low => "99213",
                    EmLevel::Moderate => "99214",
                    EmLevel::High => "99215",
                };
                add(
                    code,
                    1,
                    Some("25"),
                    "separate, significant E/M documented".into(),
                );
            } else {
                notes.push(format!(
                    "an E/M service is documented, but E/M pairing is unconfirmed in the reference; the site turns it on with `{}`",
                    SiteBilling::EM
                ));
            }
        }
    }
    if !facts.cancelled
        && let Some(minutes) = facts.monitoring_minutes
    {
        match (site.psychedelic_monitoring_enabled, site.monitoring_unit_minutes) {
            (false, _) => notes.push(format!(
                "{minutes} min of in-person monitoring are recorded, but 0820T is unconfirmed in the reference; the site turns it on with `{}`",
                SiteBilling::MONITORING
            )),
            (true, None) => notes.push(format!(
                "{minutes} min of in-person monitoring are recorded; 0820T waits for the minutes one unit stands for (`{}`)",
                SiteBilling::MONITORING_UNIT
            )),
            // Whole units only: time not monitored is never billed.
            (true, Some(unit)) => match u32::try_from(minutes / unit) {
                Ok(units) if units > 0 => add(
                    "0820T",
                    units,
                    None,
                    format!("{minutes} min of in-person monitoring recorded ({unit} min per unit, the site's)"),
                ),
                _ => notes.push(format!(
                    "{minutes} min of in-person monitoring are recorded: less than one unit of {unit} min"
                )),
            },
        }
    }
    let unpriced: Vec<String> = lines
        .iter()
        .filter(|l| l.unit_price_cents.is_none())
        .map(|l| l.code.clone())
        .collect();
    let total_cents = unpriced
        .is_empty()
        .then(|| lines.iter().filter_map(|l| l.amount_cents).sum());
    Ok(Superbill {
        session_id: facts.session_id,
        patient_id: facts.patient_id,
        lines,
        total_cents,
        unpriced,
        notes,
    })
}

/// A self-pay estimate: `sessions` sessions like `typical`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Estimate {
    pub sessions: u32,
    pub per_session: Superbill,
    pub total_cents: Option<i64>,
}

pub fn course_estimate(
    typical: &SessionFacts,
    sessions: u32,
    book: &CodeBook,
    prices: &PriceList,
    site: SiteBilling,
) -> Result<Estimate, BillingError> {
    let per_session = superbill(typical, book, prices, site)?;
    let total_cents = per_session
        .total_cents
        .map(|t| t.saturating_mul(i64::from(sessions)));
    Ok(Estimate {
        sessions,
        per_session,
        total_cents,
    })
}

/// Formats cents as dollars: 12345 → "123.45".
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Micrograms;
    use jiff::Timestamp;

    fn iv(minutes: i64, seconds: i64) -> SessionFacts {
        let start: Timestamp = "2026-12-07T09:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        SessionFacts {
            infusion_minutes: None,
            session_id: 1,
            patient_id: 2,
            drug: Drug::RacemicKetamine,
            route: Route::IvInfusion,
            infusion_start: Some(start),
            infusion_stop: start
                .checked_add(jiff::SignedDuration::from_secs(minutes * 60 + seconds))
                .ok(),
            given: Micrograms::from_mg(35),
            cancelled: false,
            em_level: None,
            monitoring_minutes: None,
        }
    }

    fn codes(f: &SessionFacts) -> Vec<(String, u32)> {
        let book = CodeBook::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        superbill(f, &book, &PriceList::default(), SiteBilling::default())
            .map(|s| s.lines.into_iter().map(|l| (l.code, l.units)).collect())
            .unwrap_or_default()
    }

    fn c(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(a, b)| ((*a).to_owned(), *b)).collect()
    }

    #[test]
    fn monitoring_is_coded_only_when_the_site_turns_it_on_and_sets_its_unit() {
        let book = CodeBook::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let mut f = iv(40, 0);
        f.monitoring_minutes = Some(150);
        let bill = |site: SiteBilling| {
            superbill(&f, &book, &PriceList::default(), site)
                .unwrap_or_else(|e| unreachable!("{e}"))
        };
        // Off by default: a note names the setting, no line.
        let off = bill(SiteBilling::default());
        assert!(off.lines.iter().all(|l| l.code != "0820T"));
        assert!(
            off.notes
                .iter()
                .any(|n| n.contains(SiteBilling::MONITORING))
        );
        // On without its unit: still no line; the note names the unit setting.
        let on = SiteBilling {
            psychedelic_monitoring_enabled: true,
            ..SiteBilling::default()
        };
        let waiting = bill(on);
        assert!(waiting.lines.iter().all(|l| l.code != "0820T"));
        assert!(
            waiting
                .notes
                .iter()
                .any(|n| n.contains(SiteBilling::MONITORING_UNIT))
        );
        // With a unit the site chose: whole units of recorded monitoring only.
        let sixty = bill(SiteBilling {
            monitoring_unit_minutes: Some(60),
            ..on
        });
        let Some(line) = sixty.lines.iter().find(|l| l.code == "0820T") else {
            unreachable!("0820T is coded: {sixty:?}")
        };
        assert_eq!((line.units, line.status.as_str()), (2, "U"));
        assert!(
            sixty
                .lines
                .iter()
                .all(|l| l.code != "0821T" && l.code != "0822T")
        );
        let short = bill(SiteBilling {
            monitoring_unit_minutes: Some(200),
            ..on
        });
        assert!(short.lines.iter().all(|l| l.code != "0820T"));
        // No monitoring recorded: nothing about it.
        f.monitoring_minutes = None;
        let none =
            superbill(&f, &book, &PriceList::default(), on).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(none.notes.iter().all(|n| !n.contains("monitoring")));
    }

    #[test]
    fn infusion_time_boundaries() {
        // 15 min is a push; more than 15 (16+) is an infusion [R50].
        assert_eq!(codes(&iv(15, 0)), c(&[("96374", 1), ("J3490", 1)]));
        assert_eq!(codes(&iv(15, 59)), c(&[("96374", 1), ("J3490", 1)]));
        assert_eq!(codes(&iv(16, 0)), c(&[("96365", 1), ("J3490", 1)]));
        assert_eq!(codes(&iv(40, 0)), c(&[("96365", 1), ("J3490", 1)]));
        // 96366 once more than 30 min past the first hour [R50b].
        assert_eq!(codes(&iv(90, 0)), c(&[("96365", 1), ("J3490", 1)]));
        assert_eq!(
            codes(&iv(91, 0)),
            c(&[("96365", 1), ("96366", 1), ("J3490", 1)])
        );
        assert_eq!(
            codes(&iv(150, 0)),
            c(&[("96365", 1), ("96366", 1), ("J3490", 1)])
        );
        assert_eq!(
            codes(&iv(151, 0)),
            c(&[("96365", 1), ("96366", 2), ("J3490", 1)])
        );
        assert_eq!(
            codes(&iv(240, 0)),
            c(&[("96365", 1), ("96366", 3), ("J3490", 1)])
        );
    }

    #[test]
    fn running_time_not_stop_minus_start_is_coded() {
        // Paused from minute 8 to 17, stopped at 19: 10 minutes ran → 96374, not 96365.
        let mut f = iv(19, 0);
        f.infusion_minutes = Some(10);
        assert_eq!(codes(&f), c(&[("96374", 1), ("J3490", 1)]));
        let book = CodeBook::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let sb = superbill(&f, &book, &PriceList::default(), SiteBilling::default())
            .unwrap_or_else(|e| unreachable!("{e:?}"));
        assert!(
            sb.lines[0].basis.contains("infusion time 10 min"),
            "{:?}",
            sb.lines[0]
        );
        f.infusion_minutes = Some(-1);
        assert!(superbill(&f, &book, &PriceList::default(), SiteBilling::default()).is_err());
    }

    #[test]
    fn esketamine_dose_boundary() {
        let mut f = iv(0, 0);
        f.drug = Drug::Esketamine;
        f.route = Route::Intranasal;
        f.given = Micrograms::from_mg(56);
        assert_eq!(codes(&f), c(&[("G2082", 1)]));
        f.given = Micrograms::from_mg(28);
        assert_eq!(codes(&f), c(&[("G2082", 1)]));
        f.given = Micrograms::from_mg(84);
        assert_eq!(codes(&f), c(&[("G2083", 1)]));
        let book = CodeBook::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let site = SiteBilling {
            esketamine_drug_line: true,
            ..SiteBilling::default()
        };
        let s = superbill(&f, &book, &PriceList::default(), site)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.lines[1].code, "J0013");
        assert_eq!(s.lines[1].units, 3);
    }

    #[test]
    fn em_and_96372_only_when_the_site_turns_them_on() {
        let mut f = iv(40, 0);
        f.em_level = Some(EmLevel::Moderate);
        assert_eq!(codes(&f), c(&[("96365", 1), ("J3490", 1)]));
        let book = CodeBook::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let site = SiteBilling {
            em_codes_enabled: true,
            ..SiteBilling::default()
        };
        let s = superbill(&f, &book, &PriceList::default(), site)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.lines[2].code, "99214");
        assert_eq!(s.lines[2].modifier.as_deref(), Some("25"));
        f.route = Route::Intramuscular;
        let s = superbill(&f, &book, &PriceList::default(), SiteBilling::default())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(s.notes.iter().any(|n| n.contains("96372")));
    }

    #[test]
    fn prices_total_and_estimate() {
        let book = CodeBook::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let mut prices = PriceList::default();
        prices.0.insert("96365".into(), 30_000);
        let s = superbill(&iv(40, 0), &book, &prices, SiteBilling::default())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.total_cents, None);
        assert_eq!(s.unpriced, vec!["J3490".to_owned()]);
        prices.0.insert("J3490".into(), 2_550);
        let e = course_estimate(&iv(40, 0), 6, &book, &prices, SiteBilling::default())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(e.total_cents, Some(6 * 32_550));
        assert_eq!(money(195_300), "1953.00");
    }

    #[test]
    fn missing_times_and_cancelled() {
        let mut f = iv(40, 0);
        f.infusion_stop = None;
        let book = CodeBook::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let e = superbill(&f, &book, &PriceList::default(), SiteBilling::default()).err();
        assert_eq!(e.map(|e| e.field), Some("infusion_start".into()));
        let mut f = iv(40, 0);
        f.cancelled = true;
        assert!(codes(&f).is_empty());
    }

    #[test]
    fn a_u_code_without_a_site_setting_is_refused() {
        let t = BUILTIN_TEXT.replacen("site_setting = \"billing.code_96372_enabled\"\n", "", 1);
        let e = CodeBook::parse("billing.toml", &t)
            .err()
            .unwrap_or_else(|| unreachable!());
        assert!(e.field.ends_with("site_setting"), "{e}");
        assert!(e.line > 0);
    }

    proptest::proptest! {
        #[test]
        fn add_on_units_grow_by_one_per_hour(m in 31i64..2000) {
            let codes = infusion_codes(m);
            let units = codes.iter().find(|c| c.0 == "96366").map(|c| c.1).unwrap_or(0);
            let next = infusion_codes(m + 60).iter().find(|c| c.0 == "96366").map(|c| c.1).unwrap_or(0);
            proptest::prop_assert_eq!(next, units + 1);
        }
    }
}
