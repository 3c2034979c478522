//! Age on the day of care, and the age band (infant, child, adolescent, adult) that decides which
//! rules apply. Band boundaries are data (`data/age_bands.toml`), each with its source.

use crate::data::{DataFileError, from_toml_error, line_of};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The band a patient falls in on a given day.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AgeBand {
    Infant,
    Child,
    Adolescent,
    Adult,
}

impl AgeBand {
    pub const ALL: [AgeBand; 4] = [Self::Infant, Self::Child, Self::Adolescent, Self::Adult];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Infant => "infant",
            Self::Child => "child",
            Self::Adolescent => "adolescent",
            Self::Adult => "adult",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// Minors need a guardian's consent and their own assent.
    pub fn is_minor(self) -> bool {
        self != Self::Adult
    }
}

impl fmt::Display for AgeBand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Completed age on a date, in whole months (and so whole years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct Age {
    pub completed_months: u32,
}

impl Age {
    /// Age on `on` for someone born on `born`; `None` when `on` is before the birth.
    pub fn on(born: Date, on: Date) -> Option<Age> {
        if on < born {
            return None;
        }
        let mut months = (i32::from(on.year()) - i32::from(born.year())) * 12
            + i32::from(on.month())
            - i32::from(born.month());
        if on.day() < born.day() {
            // A birthday on the 29th–31st is reached on the month's last day when the month is short.
            let last_day = on.last_of_month().day();
            if !(on.day() == last_day && born.day() > last_day) {
                months -= 1;
            }
        }
        u32::try_from(months).ok().map(|m| Age {
            completed_months: m,
        })
    }

    pub fn years(self) -> u32 {
        self.completed_months / 12
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.completed_months < 24 {
            write!(f, "{} mo", self.completed_months)
        } else {
            write!(f, "{} y", self.years())
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BandRule {
    pub band: AgeBand,
    pub from_months: u32,
    pub source: String,
    pub status: String,
}

/// The validated table of band boundaries.
#[derive(Debug, Clone, Serialize)]
pub struct AgeBands {
    pub version: u32,
    pub rules: Vec<BandRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    band: Vec<toml::Spanned<RawBand>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBand {
    name: toml::Spanned<String>,
    from_months: toml::Spanned<u32>,
    source: String,
    status: toml::Spanned<String>,
}

pub const BUILTIN_FILE: &str = "data/age_bands.toml";
pub const BUILTIN_TEXT: &str = include_str!("../../../data/age_bands.toml");

impl AgeBands {
    /// The bands shipped with ketcare.
    pub fn builtin() -> Result<Self, DataFileError> {
        Self::parse(BUILTIN_FILE, BUILTIN_TEXT)
    }

    /// Parses and validates a band file: every band once, starting at 0 months, strictly
    /// increasing, each with a source and a status of V or S.
    pub fn parse(file: &str, text: &str) -> Result<Self, DataFileError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| from_toml_error(file, text, &e))?;
        let err = |span: std::ops::Range<usize>, field: &str, message: String| DataFileError {
            file: file.to_owned(),
            line: line_of(text, span.start),
            field: field.to_owned(),
            message,
        };
        let mut rules: Vec<BandRule> = Vec::new();
        for b in &raw.band {
            let b = b.get_ref();
            let band = AgeBand::parse(b.name.get_ref()).ok_or_else(|| {
                err(
                    b.name.span(),
                    "name",
                    format!(
                        "unknown band `{}`; expected one of infant, child, adolescent, adult",
                        b.name.get_ref()
                    ),
                )
            })?;
            if rules.iter().any(|r| r.band == band) {
                return Err(err(
                    b.name.span(),
                    "name",
                    format!("band `{band}` given twice"),
                ));
            }
            if let Some(prev) = rules.last() {
                if *b.from_months.get_ref() <= prev.from_months || band <= prev.band {
                    return Err(err(
                        b.from_months.span(),
                        "from_months",
                        format!(
                            "bands must be in order infant, child, adolescent, adult with increasing from_months; `{band}` does not follow `{}`",
                            prev.band
                        ),
                    ));
                }
            } else if *b.from_months.get_ref() != 0 {
                return Err(err(
                    b.from_months.span(),
                    "from_months",
                    "the first band must start at 0 months".into(),
                ));
            }
            if !matches!(b.status.get_ref().as_str(), "V" | "S") {
                return Err(err(
                    b.status.span(),
                    "status",
                    "a band boundary must be V or S; U values are site settings".into(),
                ));
            }
            if b.source.trim().is_empty() {
                return Err(err(
                    b.name.span(),
                    "source",
                    "every band names its source".into(),
                ));
            }
            rules.push(BandRule {
                band,
                from_months: *b.from_months.get_ref(),
                source: b.source.clone(),
                status: b.status.get_ref().clone(),
            });
        }
        if rules.last().map(|r| r.band) != Some(AgeBand::Adult) {
            return Err(DataFileError {
                file: file.to_owned(),
                line: 0,
                field: "band".into(),
                message: "the last band must be `adult`".into(),
            });
        }
        Ok(Self {
            version: raw.version,
            rules,
        })
    }

    pub fn band_for(&self, age: Age) -> AgeBand {
        self.rules
            .iter()
            .rev()
            .find(|r| age.completed_months >= r.from_months)
            .map(|r| r.band)
            .unwrap_or(AgeBand::Infant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn builtin_bands_load() {
        let bands = AgeBands::builtin().unwrap();
        assert_eq!(bands.rules.len(), 4);
    }

    #[test]
    fn bands_at_their_boundaries() {
        let b = AgeBands::builtin().unwrap();
        let born = date(2008, 6, 15);
        // ICH E11: adolescents from 12 y; adult from 18 y (R59).
        assert_eq!(
            b.band_for(Age::on(born, date(2026, 6, 14)).unwrap()),
            AgeBand::Adolescent
        );
        assert_eq!(
            b.band_for(Age::on(born, date(2026, 6, 15)).unwrap()),
            AgeBand::Adult
        );
        assert_eq!(
            b.band_for(Age::on(born, date(2020, 6, 14)).unwrap()),
            AgeBand::Child
        );
        assert_eq!(
            b.band_for(Age::on(born, date(2020, 6, 15)).unwrap()),
            AgeBand::Adolescent
        );
        // ICH E11: children from 2 y (24 months).
        assert_eq!(
            b.band_for(Age::on(born, date(2010, 6, 14)).unwrap()),
            AgeBand::Infant
        );
        assert_eq!(
            b.band_for(Age::on(born, date(2010, 6, 15)).unwrap()),
            AgeBand::Child
        );
    }

    #[test]
    fn leap_day_birthday_turns_a_year_on_28_february() {
        let born = date(2008, 2, 29);
        assert_eq!(Age::on(born, date(2026, 2, 27)).unwrap().years(), 17);
        assert_eq!(Age::on(born, date(2026, 2, 28)).unwrap().years(), 18);
        assert!(Age::on(born, date(2008, 2, 28)).is_none());
    }

    #[test]
    fn malformed_file_names_line_and_field() {
        let text = "version = 1\n[[band]]\nname = \"toddler\"\nfrom_months = 0\nsource = \"x\"\nstatus = \"V\"\n";
        let e = AgeBands::parse("bands.toml", text).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.field.as_str()),
            ("bands.toml", 3, "name")
        );

        let text = "version = 1\n[[band]]\nname = \"infant\"\nfrom_months = 0\nsource = \"x\"\nstatus = \"U\"\n";
        let e = AgeBands::parse("bands.toml", text).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (6, "status"));

        let text = "version = 1\n[[band]]\nname = \"infant\"\nfrom_month = 0\n";
        let e = AgeBands::parse("bands.toml", text).unwrap_err();
        assert_eq!(e.field, "from_month");
        assert!(e.line >= 2, "{e}");
    }

    proptest::proptest! {
        #[test]
        fn age_never_decreases_with_time(days in 0i32..40_000, later in 0i32..400) {
            let born = date(1930, 1, 31);
            let d1 = born.checked_add(jiff::Span::new().days(days)).unwrap();
            let d2 = d1.checked_add(jiff::Span::new().days(later)).unwrap();
            proptest::prop_assert!(Age::on(born, d1).unwrap() <= Age::on(born, d2).unwrap());
        }
    }
}
