//! Dates the regulations set: theft/loss notices and Form 106 [R44, R44b], the next biennial
//! inventory [R45].

use super::chain::{LedgerBreak, LedgerRecord, replay};
use super::products::LedgerRules;
use super::{LedgerEvent, LedgerState};
use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Deadlines {
    /// Written notice to the DEA Field Division, by the end of this business day.
    #[schema(value_type = String)]
    pub notice_due: Date,
    /// DEA Form 106, filed electronically by this day.
    #[schema(value_type = String)]
    pub form_106_due: Date,
    pub sources: Vec<String>,
}

/// Adds `n` business days (Monday–Friday). Public holidays are not known here, so a notice
/// computed over a holiday is one day early, never late.
pub fn add_business_days(mut d: Date, n: u32) -> Date {
    let mut left = n;
    while left > 0 {
        d = d.checked_add(1.day()).unwrap_or(d);
        if !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    d
}

pub fn deadlines(discovered: Date, rules: &LedgerRules) -> Deadlines {
    let mut sources = rules.theft_loss_notice_business_days.source.clone();
    for s in &rules.form_106_days.source {
        if !sources.contains(s) {
            sources.push(s.clone());
        }
    }
    Deadlines {
        notice_due: add_business_days(discovered, rules.theft_loss_notice_business_days.value),
        form_106_due: discovered
            .checked_add(i64::from(rules.form_106_days.value).days())
            .unwrap_or(discovered),
        sources,
    }
}

/// The last day the next biennial inventory may be taken.
pub fn next_inventory_due(last: Date, rules: &LedgerRules) -> Date {
    last.checked_add(i64::from(rules.biennial_inventory_years.value).years())
        .unwrap_or(last)
}

/// One container of a count: the book and the count side by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CountSheetLine {
    pub container: i64,
    pub product: String,
    pub lot: String,
    /// What the book held just before the count, in µL.
    pub expected_ul: i64,
    pub counted_ul: i64,
}

impl CountSheetLine {
    pub fn matches(&self) -> bool {
        self.expected_ul == self.counted_ul
    }
}

/// A recorded count (per shift or day) with what the book expected at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CountSheet {
    pub seq: i64,
    pub at: String,
    pub by: String,
    pub period: String,
    pub lines: Vec<CountSheetLine>,
}

/// Every count in the ledger, oldest first, each line with the book balance just before it was
/// recorded (the ledger is replayed, so this is what the counter was checked against).
pub fn count_sheets(
    records: &[LedgerRecord],
    state: LedgerState,
) -> Result<Vec<CountSheet>, LedgerBreak> {
    let mut state = state;
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if r.kind == "count"
            && let Ok(LedgerEvent::Count { period, lines }) = r.event()
        {
            out.push(CountSheet {
                seq: r.seq,
                at: r.at.clone(),
                by: r.username.clone(),
                period,
                lines: lines
                    .iter()
                    .map(|l| {
                        let c = state.container(l.container);
                        CountSheetLine {
                            container: l.container,
                            product: c.map(|c| c.product.clone()).unwrap_or_default(),
                            lot: c.map(|c| c.lot.clone()).unwrap_or_default(),
                            expected_ul: c.map(|c| c.book_ul()).unwrap_or(0),
                            counted_ul: l.counted_ul,
                        }
                    })
                    .collect(),
            });
        }
        state = replay(&records[i..=i], state)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::products::Stock;
    use jiff::civil::date;

    #[test]
    fn theft_on_a_friday_is_noticed_by_monday_and_form_106_in_45_days() {
        let s = Stock::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let d = deadlines(date(2026, 12, 4), &s.rules);
        assert_eq!(d.notice_due, date(2026, 12, 7));
        assert_eq!(d.form_106_due, date(2027, 1, 18));
        let d = deadlines(date(2026, 12, 1), &s.rules);
        assert_eq!(d.notice_due, date(2026, 12, 2));
        assert_eq!(
            next_inventory_due(date(2026, 12, 1), &s.rules),
            date(2028, 12, 1)
        );
    }
}
