//! What a de-identified registry may show (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)): ages over
//! 89 as one "90+" category, dates as whole days since the patient's first treatment, and the
//! small-cell rule: a count under the site's k is suppressed in every table and export.
//!
//! The rules' numbers live in `data/research/methods.toml`, each with its source. The k of the
//! small-cell rule is the site's setting: the reference gives none.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

const METHODS_TEXT: &str = include_str!("../../../data/research/methods.toml");

#[derive(Debug, Clone, Deserialize)]
struct Cited {
    #[serde(alias = "minimum", alias = "oldest_shown_age")]
    value: i64,
    source: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Methods {
    events_per_variable: Cited,
    safe_harbor: Cited,
}

static METHODS: std::sync::LazyLock<Result<Methods, String>> = std::sync::LazyLock::new(|| {
    toml::from_str(METHODS_TEXT).map_err(|e| format!("data/research/methods.toml: {e}"))
});

/// The methods file could not be read (a build defect the tests catch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MethodsError(String);

fn methods() -> Result<&'static Methods, MethodsError> {
    METHODS.as_ref().map_err(|e| MethodsError(e.clone()))
}

/// The fewest events per covariate a regression is trusted with, and its source.
pub fn events_per_variable_minimum() -> Result<(i64, &'static str), MethodsError> {
    let m = &methods()?.events_per_variable;
    Ok((m.value, m.source.as_str()))
}

/// An age as the registry shows it: whole years up to the Safe Harbor limit, then "90+".
pub fn age_shown(years: i64) -> Result<String, MethodsError> {
    let oldest = methods()?.safe_harbor.value;
    Ok(if years > oldest {
        format!("{}+", oldest + 1)
    } else {
        years.to_string()
    })
}

/// A date as whole days since the patient's first treatment (negative before it).
pub fn day_of(first_treatment: Date, d: Date) -> i64 {
    first_treatment
        .until(d)
        .map(|s| i64::from(s.get_days()))
        .unwrap_or(0)
}

/// A count as a table shows it under the small-cell rule: a number, or `{"below": k}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Cell {
    Count(u64),
    /// 1 to k − 1: shown as "< k".
    Suppressed {
        below: u64,
    },
}

/// Applies the small-cell rule: counts from 1 to k − 1 are suppressed (0 is shown: it discloses
/// no one).
pub fn cell(n: u64, k: u64) -> Cell {
    if n > 0 && n < k {
        Cell::Suppressed { below: k }
    } else {
        Cell::Count(n)
    }
}

/// The quasi-identifier groups (age band, sex, indication, year …) smaller than `k`: rows of
/// these groups are left out of an export.
pub fn small_groups<K: Ord + Clone>(keys: &[K], k: u64) -> std::collections::BTreeSet<K> {
    let mut counts: std::collections::BTreeMap<&K, u64> = std::collections::BTreeMap::new();
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n < k)
        .map(|(key, _)| key.clone())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn the_methods_file_parses_with_its_sources() {
        let m: Methods = toml::from_str(METHODS_TEXT).unwrap();
        assert_eq!(m.events_per_variable.value, 10);
        assert!(m.events_per_variable.source.contains("Peduzzi"));
        assert_eq!(m.safe_harbor.value, 89);
        assert!(m.safe_harbor.source.contains("164.514(b)(2)(i)(C)"));
    }

    #[test]
    fn ages_over_89_are_one_category() {
        assert_eq!(age_shown(17).unwrap(), "17");
        assert_eq!(age_shown(89).unwrap(), "89");
        assert_eq!(age_shown(90).unwrap(), "90+");
        assert_eq!(age_shown(104).unwrap(), "90+");
        assert_eq!(events_per_variable_minimum().unwrap().0, 10);
    }

    #[test]
    fn dates_become_days_since_the_first_treatment() {
        let first = date(2026, 2, 27);
        assert_eq!(day_of(first, date(2026, 2, 27)), 0);
        assert_eq!(day_of(first, date(2026, 3, 1)), 2);
        assert_eq!(day_of(first, date(2026, 2, 20)), -7);
        assert_eq!(day_of(first, date(2027, 2, 27)), 365);
    }

    #[test]
    fn small_cells_and_groups_are_suppressed() {
        assert_eq!(cell(0, 11), Cell::Count(0));
        assert_eq!(cell(1, 11), Cell::Suppressed { below: 11 });
        assert_eq!(cell(10, 11), Cell::Suppressed { below: 11 });
        assert_eq!(cell(11, 11), Cell::Count(11));
        let keys = ["a", "a", "a", "b", "c", "c"];
        let small = small_groups(&keys, 3);
        assert_eq!(small.into_iter().collect::<Vec<_>>(), vec!["b", "c"]);
    }
}
