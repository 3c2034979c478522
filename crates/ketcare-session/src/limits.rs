//! Physiological plausibility of a reading (`data/sessions/plausibility.toml`) and the unit
//! conversions a monitor's OBX-6 may need (`data/sessions/units.toml`).
//!
//! Both files are embedded, loaded and validated like the other data files: a bad file is
//! refused naming file, line and field. [`check_reading`] is the one function that decides
//! whether a reading is physiologically possible; [`crate::Vitals::validate`] calls it, and the
//! store calls that before any reading is written, so no edge (page, API, monitor) can skip it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ketcare_clinical::data::{DataError, line_of, parse_toml};
use serde::{Deserialize, Serialize};

use crate::vitals::{FieldError, Vitals};

/// The built-in plausibility file.
pub const PLAUSIBILITY: (&str, &str) = (
    "data/sessions/plausibility.toml",
    include_str!("../../../data/sessions/plausibility.toml"),
);

/// The built-in units file.
pub const UNITS: (&str, &str) = (
    "data/sessions/units.toml",
    include_str!("../../../data/sessions/units.toml"),
);

/// One cited bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = PlausibleBound)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    pub value: f64,
    pub source: Vec<String>,
    /// D (by definition), V (as read in the source), S (as reported by secondary accounts).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The range of one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub unit: String,
    pub min: Bound,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Bound>,
    /// Why there is no upper bound (required when `max` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_max: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub citation: String,
}

/// The plausibility file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plausibility {
    pub version: u32,
    pub sources: BTreeMap<String, Source>,
    pub systolic: Range,
    pub diastolic: Range,
    pub heart_rate: Range,
    pub spo2: Range,
    pub resp_rate: Range,
    pub etco2: Range,
    pub temperature_c: Range,
}

fn invalid(file: &str, text: &str, field: &str, message: String) -> DataError {
    // The line of the field's table, then of the key inside it.
    let mut parts = field.split('.');
    let table = parts.next().unwrap_or(field);
    let start = text
        .find(&format!("[{table}]"))
        .or_else(|| text.find(&format!("{table} =")))
        .unwrap_or(0);
    let offset = match parts.next() {
        Some(key) => text[start..]
            .find(&format!("{key} ="))
            .map_or(start, |o| start + o),
        None => start,
    };
    DataError::Invalid {
        file: file.to_owned(),
        line: line_of(text, offset),
        field: field.to_owned(),
        message,
    }
}

impl Plausibility {
    /// The built-in ranges (parsed once).
    pub fn builtin() -> Result<&'static Plausibility, DataError> {
        static P: OnceLock<Result<Plausibility, DataError>> = OnceLock::new();
        P.get_or_init(|| Plausibility::parse(PLAUSIBILITY.0, PLAUSIBILITY.1))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The ranges as (field name, range), in the order of [`Vitals::fields`].
    pub fn ranges(&self) -> [(&'static str, &Range); 7] {
        [
            ("systolic", &self.systolic),
            ("diastolic", &self.diastolic),
            ("heart_rate", &self.heart_rate),
            ("spo2", &self.spo2),
            ("resp_rate", &self.resp_rate),
            ("etco2", &self.etco2),
            ("temperature_c", &self.temperature_c),
        ]
    }

    /// Parses and validates a plausibility file: every field present, each bound finite with a
    /// known source and a status of D, V or S, min below max, and a reason where there is no max.
    pub fn parse(file: &str, text: &str) -> Result<Plausibility, DataError> {
        let p: Plausibility = parse_toml(file, text)?;
        for (id, s) in &p.sources {
            if s.citation.trim().is_empty() {
                return Err(invalid(
                    file,
                    text,
                    &format!("sources.{id}.citation"),
                    "every source needs its citation".into(),
                ));
            }
        }
        for (name, r) in p.ranges() {
            let mut bounds = vec![("min", &r.min)];
            if let Some(m) = &r.max {
                bounds.push(("max", m));
            }
            for (which, b) in bounds {
                let field = format!("{name}.{which}");
                if !b.value.is_finite() {
                    return Err(invalid(file, text, &field, "value is not a number".into()));
                }
                if !matches!(b.status.as_str(), "D" | "V" | "S") {
                    return Err(invalid(
                        file,
                        text,
                        &field,
                        format!("status {:?}; expected D, V or S", b.status),
                    ));
                }
                if b.source.is_empty() {
                    return Err(invalid(
                        file,
                        text,
                        &field,
                        "every bound names its source".into(),
                    ));
                }
                if let Some(s) = b.source.iter().find(|s| !p.sources.contains_key(*s)) {
                    return Err(invalid(
                        file,
                        text,
                        &field,
                        format!("unknown source {s:?}; expected one of [sources]"),
                    ));
                }
            }
            match &r.max {
                Some(m) if m.value <= r.min.value => {
                    return Err(invalid(
                        file,
                        text,
                        &format!("{name}.max"),
                        format!("{} is not above min {}", m.value, r.min.value),
                    ));
                }
                None if r.no_max.as_deref().is_none_or(|s| s.trim().is_empty()) => {
                    return Err(invalid(
                        file,
                        text,
                        name,
                        "no `max`: say why in `no_max`".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

fn num(v: f64) -> String {
    format!("{v}")
}

fn cite(p: &Plausibility, b: &Bound) -> String {
    b.source
        .iter()
        .map(|s| {
            if s == "definition" {
                "by definition".to_owned()
            } else {
                p.sources
                    .get(s)
                    .map(|c| c.citation.split('.').next().unwrap_or(s).to_owned())
                    .map(|authors| format!("{s}: {authors}"))
                    .unwrap_or_else(|| s.clone())
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks a reading against the physiological ranges: every impossible value is an error
/// naming its field, the value, the bound and its source. Non-finite values are refused too.
pub fn check_reading(p: &Plausibility, v: &Vitals) -> Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    for ((name, value), (_, range)) in v.fields().iter().zip(p.ranges()) {
        let Some(x) = value else { continue };
        let unit = &range.unit;
        if !x.is_finite() {
            errs.push(FieldError::new(*name, "not a finite number"));
        } else if *x < range.min.value {
            errs.push(FieldError::new(
                *name,
                format!(
                    "{} {unit} is physiologically impossible: below {} {unit} ({}); check the reading and its unit",
                    num(*x),
                    num(range.min.value),
                    cite(p, &range.min)
                ),
            ));
        } else if let Some(max) = &range.max
            && *x > max.value
        {
            errs.push(FieldError::new(
                *name,
                format!(
                    "{} {unit} is physiologically impossible: above {} {unit}, the highest ever recorded or possible ({}); check the reading and its unit",
                    num(*x),
                    num(max.value),
                    cite(p, max)
                ),
            ));
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// One cited conversion constant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constant {
    pub value: f64,
    pub source: Vec<String>,
}

/// The units file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Units {
    pub version: u32,
    pub pascal_per_mmhg: Constant,
    pub fahrenheit_offset: Constant,
    pub fahrenheit_per_celsius: Constant,
}

impl Units {
    /// The built-in conversions (parsed once).
    pub fn builtin() -> Result<&'static Units, DataError> {
        static U: OnceLock<Result<Units, DataError>> = OnceLock::new();
        U.get_or_init(|| Units::parse(UNITS.0, UNITS.1))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Parses and validates a units file: every constant finite, positive where it divides, and
    /// cited.
    pub fn parse(file: &str, text: &str) -> Result<Units, DataError> {
        let u: Units = parse_toml(file, text)?;
        for (name, c, positive) in [
            ("pascal_per_mmhg", &u.pascal_per_mmhg, true),
            ("fahrenheit_offset", &u.fahrenheit_offset, false),
            ("fahrenheit_per_celsius", &u.fahrenheit_per_celsius, true),
        ] {
            if !c.value.is_finite() || (positive && c.value <= 0.0) {
                return Err(invalid(
                    file,
                    text,
                    name,
                    format!("{} is not a usable conversion constant", c.value),
                ));
            }
            if c.source.iter().all(|s| s.trim().is_empty()) {
                return Err(invalid(
                    file,
                    text,
                    name,
                    "every constant names its source".into(),
                ));
            }
        }
        Ok(u)
    }

    /// mmHg in one kPa (1000 Pa / the pascals in one mmHg).
    pub fn mmhg_per_kpa(&self) -> f64 {
        1000.0 / self.pascal_per_mmhg.value
    }

    /// kPa to mmHg.
    pub fn kpa_to_mmhg(&self, kpa: f64) -> f64 {
        kpa * self.mmhg_per_kpa()
    }

    /// °F to °C.
    pub fn fahrenheit_to_celsius(&self, f: f64) -> f64 {
        (f - self.fahrenheit_offset.value) / self.fahrenheit_per_celsius.value
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn p() -> &'static Plausibility {
        Plausibility::builtin().unwrap()
    }

    #[test]
    fn builtin_files_load() {
        assert_eq!(p().version, 1);
        let u = Units::builtin().unwrap();
        assert!(
            (u.mmhg_per_kpa() - 7.50062).abs() < 1e-5,
            "{}",
            u.mmhg_per_kpa()
        );
        assert!((u.fahrenheit_to_celsius(98.6) - 37.0).abs() < 1e-9);
        assert!((u.kpa_to_mmhg(16.0) - 120.01).abs() < 0.01);
    }

    #[test]
    fn impossible_values_name_the_field_and_the_source() {
        let v = Vitals {
            systolic: Some(500.0),
            diastolic: Some(90.0),
            heart_rate: Some(700.0),
            spo2: Some(150.0),
            temperature_c: Some(10.0),
            ..Vitals::default()
        };
        let errs = check_reading(p(), &v).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["systolic", "heart_rate", "spo2", "temperature_c"]);
        assert!(errs[0].message.contains("MacDougall1985"), "{}", errs[0]);
        assert!(errs[0].message.contains("480"), "{}", errs[0]);
        assert!(errs[1].message.contains("Chhabra2012"), "{}", errs[1]);
        assert!(errs[2].message.contains("by definition"), "{}", errs[2]);
        assert!(errs[3].message.contains("Gilbert2000"), "{}", errs[3]);
    }

    #[test]
    fn each_bound_is_inclusive_and_the_next_value_out() {
        for (name, r) in p().ranges() {
            let set = |x: f64| {
                let mut v = Vitals::default();
                match name {
                    "systolic" => v.systolic = Some(x),
                    "diastolic" => v.diastolic = Some(x),
                    "heart_rate" => v.heart_rate = Some(x),
                    "spo2" => v.spo2 = Some(x),
                    "resp_rate" => v.resp_rate = Some(x),
                    "etco2" => v.etco2 = Some(x),
                    _ => v.temperature_c = Some(x),
                }
                v
            };
            assert!(check_reading(p(), &set(r.min.value)).is_ok(), "{name} min");
            let below = check_reading(p(), &set(r.min.value - 0.1)).unwrap_err();
            assert_eq!(below[0].field, name);
            if let Some(m) = &r.max {
                assert!(check_reading(p(), &set(m.value)).is_ok(), "{name} max");
                let above = check_reading(p(), &set(m.value + 0.1)).unwrap_err();
                assert_eq!(above[0].field, name);
            }
            let nan = check_reading(p(), &set(f64::NAN)).unwrap_err();
            assert_eq!(nan[0].field, name);
        }
    }

    #[test]
    fn a_bad_file_is_refused_naming_file_line_and_field() {
        let (file, text) = PLAUSIBILITY;
        let cases = [
            (
                text.replace(
                    "value = 600, source = [\"Chhabra2012\"]",
                    "value = 600, source = [\"Nobody\"]",
                ),
                "heart_rate.max",
            ),
            (
                text.replace(
                    "value = 600, source = [\"Chhabra2012\"], status = \"S\"",
                    "value = 600, source = [\"Chhabra2012\"], status = \"U\"",
                ),
                "heart_rate.max",
            ),
            (text.replace("value = 350,", "value = -1,"), "diastolic.max"),
            (
                text.replace(
                    "no_max = \"no primary source for the highest respiratory",
                    "# no_max = \"",
                ),
                "resp_rate",
            ),
        ];
        for (bad, field) in cases {
            assert_ne!(bad, text, "the replacement for {field} did not apply");
            match Plausibility::parse(file, &bad) {
                Err(DataError::Invalid {
                    file: f,
                    line,
                    field: got,
                    ..
                }) => {
                    assert_eq!(f, file);
                    assert_eq!(got, field);
                    let table = field.split('.').next().unwrap();
                    let table_line = text
                        .lines()
                        .position(|l| l == format!("[{table}]"))
                        .unwrap()
                        + 1;
                    assert!(
                        line >= table_line && line <= table_line + 4,
                        "{field}: line {line}"
                    );
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        // A missing field is named by the TOML reader.
        let missing = text.replace("[spo2]", "[spo2_typo]");
        match Plausibility::parse(file, &missing) {
            Err(DataError::Malformed { field, .. }) => assert!(field.contains("spo2"), "{field}"),
            other => panic!("{other:?}"),
        }
        let (ufile, utext) = UNITS;
        match Units::parse(ufile, &utext.replace("value = 1.8,", "value = 0,")) {
            Err(DataError::Invalid { field, line, .. }) => {
                assert_eq!(field, "fahrenheit_per_celsius");
                assert!(line > 1);
            }
            other => panic!("{other:?}"),
        }
    }
}
