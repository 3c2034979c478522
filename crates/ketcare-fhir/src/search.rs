//! What a FHIR search asks: date parameters with their prefixes, tokens, and paging. Errors
//! name the parameter, which the edge reports as an `OperationOutcome` with it as `expression`.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A search parameter that could not be understood: its name and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl ParamError {
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: param.to_owned(),
            message: message.into(),
        }
    }
}

/// The comparison a date parameter's prefix asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
}

/// A date search: the prefix and the range `[start, end)` the value's precision covers
/// (`2026-12` is the whole month). Dates without a time zone are read in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateParam {
    pub prefix: Prefix,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl DateParam {
    pub fn parse(param: &str, text: &str) -> Result<Self, ParamError> {
        let bad = |m: &str| ParamError::new(param, m);
        let (prefix, rest) = match text.get(..2) {
            Some("eq") => (Prefix::Eq, &text[2..]),
            Some("ne") => (Prefix::Ne, &text[2..]),
            Some("gt") => (Prefix::Gt, &text[2..]),
            Some("lt") => (Prefix::Lt, &text[2..]),
            Some("ge") => (Prefix::Ge, &text[2..]),
            Some("le") => (Prefix::Le, &text[2..]),
            Some("sa") => (Prefix::Sa, &text[2..]),
            Some("eb") => (Prefix::Eb, &text[2..]),
            Some("ap") => return Err(bad("the `ap` prefix is not supported")),
            _ => (Prefix::Eq, text),
        };
        let utc = |d: DateTime| d.to_zoned(TimeZone::UTC).map(|z| z.timestamp());
        let range = || -> Option<(Timestamp, Timestamp)> {
            match rest.len() {
                4 => {
                    let y: i16 = rest.parse().ok()?;
                    let s = Date::new(y, 1, 1).ok()?;
                    Some((
                        utc(s.into()).ok()?,
                        utc(s.checked_add(1.year()).ok()?.into()).ok()?,
                    ))
                }
                7 => {
                    let s: Date = format!("{rest}-01").parse().ok()?;
                    Some((
                        utc(s.into()).ok()?,
                        utc(s.checked_add(1.month()).ok()?.into()).ok()?,
                    ))
                }
                10 => {
                    let s: Date = rest.parse().ok()?;
                    Some((
                        utc(s.into()).ok()?,
                        utc(s.checked_add(1.day()).ok()?.into()).ok()?,
                    ))
                }
                _ => {
                    // A date and time: with a zone (Z or ±hh:mm) it is an instant; without, UTC.
                    // To the minute or to the second; a fraction counts to the second.
                    let t = rest
                        .parse::<Timestamp>()
                        .ok()
                        .or_else(|| rest.parse::<DateTime>().ok().and_then(|d| utc(d).ok()))?;
                    let minute_only = rest.len() >= 16 && rest.as_bytes().get(16) != Some(&b':');
                    let width = if minute_only { 60 } else { 1 };
                    let start = Timestamp::from_second(t.as_second()).ok()?;
                    Some((start, start.checked_add(width.seconds()).ok()?))
                }
            }
        };
        let (start, end) = range()
            .ok_or_else(|| bad("use a FHIR date: YYYY, YYYY-MM, YYYY-MM-DD or a date and time"))?;
        Ok(Self { prefix, start, end })
    }

    /// Whether an instant `t` (a point in time) matches.
    pub fn matches(&self, t: Timestamp) -> bool {
        let inside = t >= self.start && t < self.end;
        match self.prefix {
            Prefix::Eq => inside,
            Prefix::Ne => !inside,
            Prefix::Gt | Prefix::Sa => t >= self.end,
            Prefix::Lt | Prefix::Eb => t < self.start,
            Prefix::Ge => t >= self.start,
            Prefix::Le => t < self.end,
        }
    }

    /// Whether a date (a whole day, as a birth date is) matches.
    pub fn matches_date(&self, d: Date) -> bool {
        let Ok(start) = d.to_zoned(TimeZone::UTC).map(|z| z.timestamp()) else {
            return false;
        };
        let Ok(end) = d
            .checked_add(1.day())
            .and_then(|e| e.to_zoned(TimeZone::UTC))
            .map(|z| z.timestamp())
        else {
            return false;
        };
        let overlaps = start < self.end && end > self.start;
        match self.prefix {
            Prefix::Eq => start >= self.start && end <= self.end,
            Prefix::Ne => !(start >= self.start && end <= self.end),
            Prefix::Gt => end > self.end,
            Prefix::Lt => start < self.start,
            Prefix::Ge => end > self.start && (overlaps || start >= self.end),
            Prefix::Le => start < self.end,
            Prefix::Sa => start >= self.end,
            Prefix::Eb => end <= self.start,
        }
    }
}

/// A token `[system|]code`: the code, and whether the system (if given) is `expected`.
pub fn token<'a>(param: &str, text: &'a str, expected: &str) -> Result<&'a str, ParamError> {
    match text.split_once('|') {
        Some(("", code)) => Ok(code),
        Some((system, code)) if system == expected => Ok(code),
        Some((system, _)) => Err(ParamError::new(
            param,
            format!("the system {system} is not one this server codes with (use {expected})"),
        )),
        None => Ok(text),
    }
}

/// Paging: `_count` (1..=200, default 50) and `_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub count: usize,
    pub offset: usize,
}

pub const DEFAULT_COUNT: usize = 50;
pub const MAX_COUNT: usize = 200;

impl Paging {
    pub fn parse(count: Option<&str>, offset: Option<&str>) -> Result<Self, ParamError> {
        let count = match count {
            None => DEFAULT_COUNT,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_COUNT).contains(n))
                .ok_or_else(|| {
                    ParamError::new("_count", format!("use a number from 1 to {MAX_COUNT}"))
                })?,
        };
        let offset = match offset {
            None => 0,
            Some(o) => o
                .parse::<usize>()
                .map_err(|_| ParamError::new("_offset", "use a whole number of 0 or more"))?,
        };
        Ok(Self { count, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_default()
    }

    /// Every prefix at the edges of its range: the last second before, the first second of and
    /// the first second after a day.
    #[test]
    fn date_prefixes_at_their_boundaries() {
        let before = ts("2026-12-05T23:59:59Z");
        let first = ts("2026-12-06T00:00:00Z");
        let last = ts("2026-12-06T23:59:59Z");
        let after = ts("2026-12-07T00:00:00Z");
        let cases = [
            ("2026-12-06", [false, true, true, false]),
            ("eq2026-12-06", [false, true, true, false]),
            ("ne2026-12-06", [true, false, false, true]),
            ("gt2026-12-06", [false, false, false, true]),
            ("sa2026-12-06", [false, false, false, true]),
            ("lt2026-12-06", [true, false, false, false]),
            ("eb2026-12-06", [true, false, false, false]),
            ("ge2026-12-06", [false, true, true, true]),
            ("le2026-12-06", [true, true, true, false]),
        ];
        for (q, want) in cases {
            let p = DateParam::parse("date", q).unwrap_or_else(|e| panic!("{q}: {e:?}"));
            let got = [before, first, last, after].map(|t| p.matches(t));
            assert_eq!(got, want, "{q}");
        }
    }

    #[test]
    fn precisions_cover_their_range() {
        let month = DateParam::parse("date", "2026-02").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (month.start, month.end),
            (ts("2026-02-01T00:00:00Z"), ts("2026-03-01T00:00:00Z"))
        );
        let year = DateParam::parse("date", "ge2025").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(year.start, ts("2025-01-01T00:00:00Z"));
        let minute =
            DateParam::parse("date", "2026-12-06T10:15Z").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(minute.end, ts("2026-12-06T10:16:00Z"));
        let second = DateParam::parse("date", "2026-12-06T10:15:30+01:00")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (second.start, second.end),
            (ts("2026-12-06T09:15:30Z"), ts("2026-12-06T09:15:31Z"))
        );
        for bad in ["", "ap2026", "2026-13", "yesterday", "2026-02-30", "ge"] {
            let e = DateParam::parse("date", bad).expect_err(bad);
            assert_eq!(e.param, "date");
        }
    }

    #[test]
    fn birth_dates_compare_as_whole_days() {
        let d: Date = "1986-05-01".parse().unwrap_or_default();
        let on = |q: &str| DateParam::parse("birthdate", q).map(|p| p.matches_date(d));
        assert_eq!(on("1986-05-01"), Ok(true));
        assert_eq!(on("1986-05"), Ok(true));
        assert_eq!(on("1986-05-02"), Ok(false));
        assert_eq!(on("lt1986-05-02"), Ok(true));
        assert_eq!(on("lt1986-05-01"), Ok(false));
        assert_eq!(on("gt1986-04-30"), Ok(true));
        assert_eq!(on("ge1986-05-01"), Ok(true));
        assert_eq!(on("le1986-04-30"), Ok(false));
    }

    #[test]
    fn tokens_and_paging() {
        assert_eq!(
            token("code", "http://loinc.org|8867-4", "http://loinc.org"),
            Ok("8867-4")
        );
        assert_eq!(token("code", "8867-4", "http://loinc.org"), Ok("8867-4"));
        assert!(token("code", "http://snomed.info/sct|1", "http://loinc.org").is_err());
        assert_eq!(
            Paging::parse(None, None),
            Ok(Paging {
                count: 50,
                offset: 0
            })
        );
        assert_eq!(
            Paging::parse(Some("0"), None).map_err(|e| e.param),
            Err("_count".into())
        );
        assert_eq!(
            Paging::parse(Some("201"), None).map_err(|e| e.param),
            Err("_count".into())
        );
        assert_eq!(
            Paging::parse(Some("10"), Some("-1")).map_err(|e| e.param),
            Err("_offset".into())
        );
    }
}
