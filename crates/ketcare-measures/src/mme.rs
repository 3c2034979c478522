//! Opioid morphine milligram equivalents per day with the CDC 2022 factors
//! (`data/measures/opioids.toml`).

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use ketcare_clinical::DataError;
use ketcare_clinical::data::{line_of, parse_toml};
use ketcare_clinical::source::Status;

/// The unit a dose is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DoseUnit {
    /// Milligrams per dose (oral and other mg-dosed forms).
    Mg,
    /// Micrograms per hour (patch strength).
    McgPerH,
}

impl DoseUnit {
    /// Parses `mg` or `mcg/h` (also `mcg_per_h`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mg" => Some(DoseUnit::Mg),
            "mcg/h" | "mcg_per_h" | "mcg/hr" => Some(DoseUnit::McgPerH),
            _ => None,
        }
    }
    /// Display form.
    pub fn as_str(self) -> &'static str {
        match self {
            DoseUnit::Mg => "mg",
            DoseUnit::McgPerH => "mcg/h",
        }
    }
}

/// One row of the conversion table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Opioid {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<DoseUnit>,
    /// No MME is computed; the entry is flagged for review.
    #[serde(default)]
    pub flag_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The conversion table with its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpioidTable {
    #[serde(skip_serializing)]
    #[allow(dead_code)]
    version: u32,
    pub source: Vec<String>,
    pub status: Status,
    pub opioid: Vec<Opioid>,
}

/// Cautions that go with every MME result (I72).
pub const CAUTIONS: &str = "MME conversions are estimates and cannot account for individual variability; do not use the calculated MME to choose the dose when converting from one opioid to another (the new opioid is typically dosed substantially lower).";

impl OpioidTable {
    pub(crate) fn parse(
        file: &str,
        text: &str,
        sources: &BTreeMap<String, String>,
    ) -> Result<Self, DataError> {
        let t: OpioidTable = parse_toml(file, text)?;
        let at = |needle: &str, field: String, message: String| DataError::Invalid {
            file: file.into(),
            line: line_of(text, text.find(needle).unwrap_or(0)),
            field,
            message,
        };
        if let Some(bad) = t.source.iter().find(|s| !sources.contains_key(s.as_str())) {
            return Err(at(
                "source",
                "source".into(),
                format!("unknown source ID {bad:?}"),
            ));
        }
        if t.source.is_empty() {
            return Err(at(
                "source",
                "source".into(),
                "expected at least one source ID".into(),
            ));
        }
        for (i, o) in t.opioid.iter().enumerate() {
            let needle = format!("id = \"{}\"", o.id);
            let field = format!("opioid[{i}]");
            if t.opioid[..i].iter().any(|p| p.id == o.id) {
                return Err(at(
                    &needle,
                    field,
                    format!("opioid id {:?} is already defined", o.id),
                ));
            }
            match (o.flag_only, o.factor, o.unit) {
                (true, None, _) => {}
                (true, Some(_), _) => {
                    return Err(at(
                        &needle,
                        format!("{field}.factor"),
                        "a flag-only opioid has no factor".into(),
                    ));
                }
                (false, Some(f), Some(_)) if f.is_finite() && f > 0.0 => {}
                (false, _, _) => {
                    return Err(at(
                        &needle,
                        format!("{field}.factor"),
                        "expected a factor > 0 and a unit".into(),
                    ));
                }
            }
        }
        Ok(t)
    }

    /// A drug by id.
    pub fn get(&self, id: &str) -> Option<&Opioid> {
        self.opioid.iter().find(|o| o.id == id)
    }
}

/// One entry of a patient's opioid list (as entered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpioidEntry {
    /// Table id (`oxycodone`, `fentanyl_transdermal`, …).
    pub drug: String,
    /// Dose per administration (mg) or patch strength (mcg/h).
    pub dose: f64,
    pub unit: DoseUnit,
    /// Administrations per day (mg-dosed drugs only).
    #[serde(default)]
    pub per_day: Option<f64>,
    /// Route as written (informational).
    #[serde(default)]
    pub route: Option<String>,
}

/// The MME of one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MmeLine {
    pub drug: String,
    pub name: String,
    /// mg/day, or mcg/h for a patch.
    pub daily_dose: f64,
    pub unit: DoseUnit,
    pub factor: Option<f64>,
    pub mme_per_day: Option<f64>,
    /// True when no MME can be computed (buprenorphine): a clinician must review.
    pub flagged: bool,
    pub notes: Vec<String>,
    pub source: Vec<String>,
    pub status: Status,
    pub formula: String,
}

/// An opioid entry that cannot be converted; every variant names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum MmeError {
    #[error("drug: {drug:?} is not in the CDC 2022 conversion table; expected one of {known}")]
    UnknownDrug { drug: String, known: String },
    #[error("dose: expected a finite number > 0, got {value}")]
    BadDose { value: f64 },
    #[error("unit: {drug} is dosed in {expected}, got {got}")]
    WrongUnit {
        drug: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("per_day: expected the number of doses a day (> 0) for {drug}")]
    MissingPerDay { drug: String },
    #[error("per_day: not used for {drug}, dosed by patch strength in mcg/h; leave it out")]
    PerDayNotUsed { drug: String },
}

impl MmeError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            MmeError::UnknownDrug { .. } => "drug",
            MmeError::BadDose { .. } => "dose",
            MmeError::WrongUnit { .. } => "unit",
            MmeError::MissingPerDay { .. } | MmeError::PerDayNotUsed { .. } => "per_day",
        }
    }
}

/// Computes the MME per day of one entry.
pub fn mme(table: &OpioidTable, e: &OpioidEntry) -> Result<MmeLine, MmeError> {
    let Some(o) = table.get(e.drug.trim()) else {
        return Err(MmeError::UnknownDrug {
            drug: e.drug.clone(),
            known: table
                .opioid
                .iter()
                .map(|o| o.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    if !(e.dose.is_finite() && e.dose > 0.0 && e.dose < 1e7) {
        return Err(MmeError::BadDose { value: e.dose });
    }
    let mut notes: Vec<String> = o.note.iter().cloned().collect();
    notes.push(CAUTIONS.to_string());
    let per_day = e.per_day.filter(|p| p.is_finite() && *p > 0.0 && *p < 1e4);
    let daily = match e.unit {
        DoseUnit::McgPerH => {
            if e.per_day.is_some() {
                return Err(MmeError::PerDayNotUsed {
                    drug: o.name.clone(),
                });
            }
            e.dose
        }
        DoseUnit::Mg => {
            let Some(p) = per_day else {
                return Err(MmeError::MissingPerDay {
                    drug: o.name.clone(),
                });
            };
            e.dose * p
        }
    };
    if let Some(expected) = o.unit
        && expected != e.unit
        && !o.flag_only
    {
        return Err(MmeError::WrongUnit {
            drug: o.name.clone(),
            expected: expected.as_str(),
            got: e.unit.as_str(),
        });
    }
    let (mme, formula) = match o.factor {
        Some(f) if !o.flag_only => (
            Some(round3(daily * f)),
            match e.unit {
                DoseUnit::McgPerH => format!("{} mcg/h × {f}", e.dose),
                DoseUnit::Mg => format!("{} mg × {} a day × {f}", e.dose, per_day.unwrap_or(1.0)),
            },
        ),
        _ => (None, "not computed: no CDC 2022 factor".to_string()),
    };
    Ok(MmeLine {
        drug: o.id.clone(),
        name: o.name.clone(),
        daily_dose: round3(daily),
        unit: e.unit,
        factor: if o.flag_only { None } else { o.factor },
        mme_per_day: mme,
        flagged: o.flag_only,
        notes,
        source: table.source.clone(),
        status: table.status,
        formula,
    })
}

/// The total-MME timeline limited to `from..=to` (a course's dates): the total in force on
/// `from` (0 when nothing was active), every change inside the window, and the total in force
/// on `to`. The change over the window is the last value minus the first.
pub fn window(timeline: &[(Date, f64)], from: Date, to: Date) -> Vec<(Date, f64)> {
    if to < from {
        return Vec::new();
    }
    let at = |d: Date| {
        timeline
            .iter()
            .rfind(|(t, _)| *t <= d)
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    };
    let mut out = vec![(from, at(from))];
    out.extend(
        timeline
            .iter()
            .filter(|(d, _)| *d > from && *d <= to)
            .copied(),
    );
    if out.last().is_some_and(|(d, _)| *d < to) {
        out.push((to, at(to)));
    }
    out
}

/// Change of the total over a windowed timeline (last minus first).
pub fn change(window: &[(Date, f64)]) -> Option<f64> {
    let (_, first) = window.first()?;
    let (_, last) = window.last()?;
    Some(round3(last - first))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Total MME per day of several lines (flagged lines contribute nothing; check `flagged`).
pub fn total(lines: &[MmeLine]) -> f64 {
    round3(lines.iter().filter_map(|l| l.mme_per_day).sum())
}

/// An entry active from `start` until `stop` (exclusive; open when `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatedMme {
    pub start: Date,
    pub stop: Option<Date>,
    pub mme_per_day: f64,
}

/// The total MME per day at every date where it changes (a step function), sorted.
pub fn timeline(entries: &[DatedMme]) -> Vec<(Date, f64)> {
    let mut dates: Vec<Date> = entries
        .iter()
        .flat_map(|e| std::iter::once(e.start).chain(e.stop))
        .collect();
    dates.sort();
    dates.dedup();
    dates
        .into_iter()
        .map(|d| {
            let v = entries
                .iter()
                .filter(|e| e.start <= d && e.stop.is_none_or(|s| d < s))
                .map(|e| e.mme_per_day)
                .sum::<f64>();
            (d, round3(v))
        })
        .collect()
}

#[cfg(test)]
mod window_tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn window_keeps_the_total_in_force_at_each_end() {
        let t = vec![
            (date(2026, 1, 1), 30.0),
            (date(2026, 2, 1), 50.0),
            (date(2026, 3, 1), 20.0),
            (date(2026, 4, 1), 0.0),
        ];
        let w = window(&t, date(2026, 1, 15), date(2026, 3, 10));
        assert_eq!(
            w,
            vec![
                (date(2026, 1, 15), 30.0),
                (date(2026, 2, 1), 50.0),
                (date(2026, 3, 1), 20.0),
                (date(2026, 3, 10), 20.0)
            ]
        );
        assert_eq!(change(&w), Some(-10.0));
        // Before any entry: starts at 0.
        let w = window(&t, date(2025, 12, 1), date(2026, 1, 1));
        assert_eq!(w, vec![(date(2025, 12, 1), 0.0), (date(2026, 1, 1), 30.0)]);
        assert_eq!(change(&w), Some(30.0));
        // A window ending on a change date ends there once.
        let w = window(&t, date(2026, 2, 1), date(2026, 3, 1));
        assert_eq!(w, vec![(date(2026, 2, 1), 50.0), (date(2026, 3, 1), 20.0)]);
        assert!(window(&t, date(2026, 3, 1), date(2026, 2, 1)).is_empty());
        assert_eq!(change(&[]), None);
    }
}
