//! When a course's questionnaires are sent by themselves: the occurrences of a schedule, pure.
//!
//! A schedule belongs to a course. Its occurrences are computed from the course's facts (first
//! and last day, the days a dose was given, the booked sessions) up to an instant; each has a
//! key that names it for good (`every:2026-06-15`, `dose:7`, `session:42`), which the store keeps
//! unique per schedule so that an occurrence is sent at most once, across restarts.

use jiff::civil::{Date, DateTime, Time};
use serde::{Deserialize, Serialize};

/// How a course's questionnaires are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SendSchedule {
    /// Every `days` days from the course's first day; with `restart_at_treatment`, counted
    /// again from each day a dose is given (a treatment resets the clock).
    EveryDays {
        days: u32,
        #[serde(default)]
        restart_at_treatment: bool,
    },
    /// On each of these days after the course's first dose (day 1 = the day after it).
    AfterFirstDose { days: Vec<u32> },
    /// `hours` before each booked session.
    BeforeEachSession { hours: u32 },
}

/// Why a schedule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("days: expected 1 to 365, got {0}")]
    Days(u32),
    #[error("days: give 1 to 20 days, each 1 to 365, without repeats")]
    DayList,
    #[error("hours: expected 1 to 168, got {0}")]
    Hours(u32),
}

impl ScheduleError {
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::Days(_) | ScheduleError::DayList => "days",
            ScheduleError::Hours(_) => "hours",
        }
    }
}

impl SendSchedule {
    /// The rule in words, for staff pages.
    pub fn describe(&self) -> String {
        match self {
            SendSchedule::EveryDays {
                days,
                restart_at_treatment,
            } => format!(
                "every {days} days{}",
                if *restart_at_treatment {
                    ", counted again from each treatment"
                } else {
                    ""
                }
            ),
            SendSchedule::AfterFirstDose { days } => format!(
                "on day{} {} after the first dose",
                if days.len() == 1 { "" } else { "s" },
                days.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            SendSchedule::BeforeEachSession { hours } => {
                format!("{hours} hours before each booked session")
            }
        }
    }

    /// Checks the numbers: a day count within a year, an hour count within a week (bounds of a
    /// schedule's shape, not clinical values).
    pub fn check(&self) -> Result<(), ScheduleError> {
        match self {
            SendSchedule::EveryDays { days, .. } if !(1..=365).contains(days) => {
                Err(ScheduleError::Days(*days))
            }
            SendSchedule::AfterFirstDose { days } => {
                let mut d = days.clone();
                d.sort_unstable();
                d.dedup();
                if d.is_empty()
                    || d.len() != days.len()
                    || d.len() > 20
                    || d.iter().any(|x| !(1..=365).contains(x))
                {
                    Err(ScheduleError::DayList)
                } else {
                    Ok(())
                }
            }
            SendSchedule::BeforeEachSession { hours } if !(1..=168).contains(hours) => {
                Err(ScheduleError::Hours(*hours))
            }
            _ => Ok(()),
        }
    }
}

/// What the record says about a course, as a schedule needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CourseFacts {
    pub first_day: Date,
    /// The course's last day, if it has ended (no occurrence after it).
    pub last_day: Option<Date>,
    /// The days a dose was given, in any order.
    pub dose_days: Vec<Date>,
    /// Booked sessions: a stable id and the civil start time.
    pub sessions: Vec<(i64, DateTime)>,
}

/// One send of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// Names the occurrence for good (unique per schedule).
    pub key: String,
    /// When it is due (civil time in the site's zone; days are due from midnight, and quiet
    /// hours move the message itself).
    pub at: DateTime,
}

fn midnight(d: Date) -> DateTime {
    d.to_datetime(Time::midnight())
}

fn add_days(d: Date, n: i64) -> Option<Date> {
    d.checked_add(jiff::Span::new().days(n)).ok()
}

/// Every occurrence of `schedule` due at or before `until`, within the course, oldest first.
pub fn occurrences(schedule: &SendSchedule, f: &CourseFacts, until: DateTime) -> Vec<Occurrence> {
    let within = |d: Date| d >= f.first_day && f.last_day.is_none_or(|l| d <= l);
    let mut doses: Vec<Date> = f.dose_days.iter().copied().filter(|d| within(*d)).collect();
    doses.sort_unstable();
    doses.dedup();
    let mut out: Vec<Occurrence> = match schedule {
        SendSchedule::EveryDays {
            days,
            restart_at_treatment,
        } => {
            // The anchors the count starts from: the first day, then each dose day.
            let mut anchors = vec![f.first_day];
            if *restart_at_treatment {
                anchors.extend(doses.iter().copied().filter(|d| *d > f.first_day));
            }
            let mut v = Vec::new();
            for (i, a) in anchors.iter().enumerate() {
                let next = anchors.get(i + 1).copied();
                let mut k = 1i64;
                while let Some(d) = add_days(*a, k * i64::from(*days)) {
                    if next.is_some_and(|n| d >= n) || !within(d) || midnight(d) > until {
                        break;
                    }
                    v.push(Occurrence {
                        key: format!("every:{d}"),
                        at: midnight(d),
                    });
                    k += 1;
                }
            }
            v
        }
        SendSchedule::AfterFirstDose { days } => match doses.first() {
            None => Vec::new(),
            Some(first) => days
                .iter()
                .filter_map(|n| add_days(*first, i64::from(*n)).map(|d| (n, d)))
                .filter(|(_, d)| within(*d) && midnight(*d) <= until)
                .map(|(n, d)| Occurrence {
                    key: format!("dose:{n}"),
                    at: midnight(d),
                })
                .collect(),
        },
        SendSchedule::BeforeEachSession { hours } => f
            .sessions
            .iter()
            .filter(|(_, start)| within(start.date()))
            .filter_map(|(id, start)| {
                start
                    .checked_sub(jiff::Span::new().hours(i64::from(*hours)))
                    .ok()
                    .map(|at| (id, at))
            })
            .filter(|(_, at)| *at <= until)
            .map(|(id, at)| Occurrence {
                key: format!("session:{id}"),
                at,
            })
            .collect(),
    };
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.key.cmp(&b.key)));
    out.dedup_by(|a, b| a.key == b.key);
    out
}

/// Whether the patient's last suicide-risk screen was positive: the newest screen (a response
/// to a questionnaire with a suicide-risk item: `(recorded at, response id)`) raised an alert, or
/// an alert was raised at or after it (an incomplete form's alert has no response). Instants are
/// RFC 3339 text as stored, compared as instants; with no screen, any alert counts.
pub fn last_screen_positive(
    screens: &[(jiff::Timestamp, i64)],
    alerts: &[(jiff::Timestamp, Option<i64>)],
) -> bool {
    match screens.iter().max() {
        None => !alerts.is_empty(),
        Some((at, id)) => alerts
            .iter()
            .any(|(raised, response)| *response == Some(*id) || raised >= at),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    #[test]
    fn a_rule_reads_as_words() {
        let every = SendSchedule::EveryDays {
            days: 14,
            restart_at_treatment: true,
        };
        assert_eq!(
            every.describe(),
            "every 14 days, counted again from each treatment"
        );
        let after = SendSchedule::AfterFirstDose {
            days: vec![1, 7, 14],
        };
        assert_eq!(after.describe(), "on days 1, 7, 14 after the first dose");
        let before = SendSchedule::BeforeEachSession { hours: 24 };
        assert_eq!(before.describe(), "24 hours before each booked session");
    }

    fn facts() -> CourseFacts {
        CourseFacts {
            first_day: date(2026, 6, 1),
            last_day: None,
            dose_days: vec![date(2026, 6, 3), date(2026, 6, 20)],
            sessions: vec![(7, date(2026, 6, 10).at(9, 30, 0, 0))],
        }
    }

    fn keys(v: &[Occurrence]) -> Vec<&str> {
        v.iter().map(|o| o.key.as_str()).collect()
    }

    #[test]
    fn every_n_days_restarts_at_each_treatment() {
        let s = SendSchedule::EveryDays {
            days: 14,
            restart_at_treatment: true,
        };
        let until = midnight(date(2026, 7, 31));
        // From 06-01: 06-15 falls after the 06-03 dose restarts the count: 06-17, then the
        // 06-20 dose restarts again: 07-04, 07-18.
        assert_eq!(
            keys(&occurrences(&s, &facts(), until)),
            ["every:2026-06-17", "every:2026-07-04", "every:2026-07-18"]
        );
        let plain = SendSchedule::EveryDays {
            days: 14,
            restart_at_treatment: false,
        };
        assert_eq!(
            keys(&occurrences(&plain, &facts(), until)),
            [
                "every:2026-06-15",
                "every:2026-06-29",
                "every:2026-07-13",
                "every:2026-07-27"
            ]
        );
    }

    #[test]
    fn due_exactly_at_midnight_and_not_a_second_before() {
        let s = SendSchedule::EveryDays {
            days: 14,
            restart_at_treatment: false,
        };
        let f = CourseFacts {
            dose_days: vec![],
            ..facts()
        };
        let at = midnight(date(2026, 6, 15));
        assert_eq!(occurrences(&s, &f, at).len(), 1);
        let before = at.checked_sub(jiff::Span::new().seconds(1)).unwrap();
        assert!(occurrences(&s, &f, before).is_empty());
    }

    #[test]
    fn days_after_the_first_dose_and_the_course_end() {
        let s = SendSchedule::AfterFirstDose {
            days: vec![1, 7, 14],
        };
        let until = midnight(date(2026, 12, 31));
        let all = occurrences(&s, &facts(), until);
        assert_eq!(keys(&all), ["dose:1", "dose:7", "dose:14"]);
        assert_eq!(all[0].at, midnight(date(2026, 6, 4)));
        assert_eq!(all[2].at, midnight(date(2026, 6, 17)));
        let ended = CourseFacts {
            last_day: Some(date(2026, 6, 10)),
            ..facts()
        };
        assert_eq!(keys(&occurrences(&s, &ended, until)), ["dose:1", "dose:7"]);
        let no_dose = CourseFacts {
            dose_days: vec![],
            ..facts()
        };
        assert!(occurrences(&s, &no_dose, until).is_empty());
    }

    #[test]
    fn before_each_session() {
        let s = SendSchedule::BeforeEachSession { hours: 24 };
        let due = date(2026, 6, 9).at(9, 30, 0, 0);
        assert_eq!(keys(&occurrences(&s, &facts(), due)), ["session:7"]);
        let early = date(2026, 6, 9).at(9, 29, 59, 0);
        assert!(occurrences(&s, &facts(), early).is_empty());
    }

    #[test]
    fn checks_the_shape() {
        assert_eq!(
            SendSchedule::EveryDays {
                days: 0,
                restart_at_treatment: false
            }
            .check()
            .unwrap_err()
            .field(),
            "days"
        );
        assert!(
            SendSchedule::AfterFirstDose { days: vec![7, 7] }
                .check()
                .is_err()
        );
        assert!(
            SendSchedule::AfterFirstDose { days: vec![] }
                .check()
                .is_err()
        );
        assert!(
            SendSchedule::BeforeEachSession { hours: 169 }
                .check()
                .is_err()
        );
        assert!(
            SendSchedule::BeforeEachSession { hours: 48 }
                .check()
                .is_ok()
        );
    }

    #[test]
    fn the_last_screen_decides() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let screens = [
            (t("2026-06-01T10:00:00Z"), 1),
            (t("2026-06-08T10:00:00Z"), 2),
        ];
        assert!(!last_screen_positive(&screens, &[]));
        // An alert of the earlier screen, then a negative screen: not positive.
        assert!(!last_screen_positive(
            &screens,
            &[(t("2026-06-01T10:00:00Z"), Some(1))]
        ));
        assert!(last_screen_positive(
            &screens,
            &[(t("2026-06-08T10:00:00Z"), Some(2))]
        ));
        // An incomplete form's alert after the last screen counts.
        assert!(last_screen_positive(
            &screens,
            &[(t("2026-06-09T10:00:00Z"), None)]
        ));
        assert!(last_screen_positive(
            &[],
            &[(t("2026-06-09T10:00:00Z"), None)]
        ));
        assert!(!last_screen_positive(&[], &[]));
    }

    proptest! {
        /// Keys are unique; every occurrence is due by `until`, within the course and never on
        /// a dose day's own count; a later `until` only adds occurrences (what was due stays
        /// due, so a runner that restarts finds the same keys).
        #[test]
        fn occurrences_are_unique_bounded_and_grow_with_time(
            days in 1u32..40,
            restart in any::<bool>(),
            doses in proptest::collection::vec(0i64..200, 0..6),
            a in 0i64..300,
            b in 0i64..300,
        ) {
            let first = date(2026, 1, 1);
            let f = CourseFacts {
                first_day: first,
                last_day: None,
                dose_days: doses.iter().map(|d| add_days(first, *d).unwrap()).collect(),
                sessions: vec![],
            };
            let s = SendSchedule::EveryDays { days, restart_at_treatment: restart };
            let (lo, hi) = (a.min(b), a.max(b));
            let early = occurrences(&s, &f, midnight(add_days(first, lo).unwrap()));
            let late = occurrences(&s, &f, midnight(add_days(first, hi).unwrap()));
            let mut k: Vec<_> = late.iter().map(|o| o.key.clone()).collect();
            k.sort();
            k.dedup();
            prop_assert_eq!(k.len(), late.len());
            for o in &early {
                prop_assert!(late.contains(o));
            }
            for o in &late {
                prop_assert!(o.at <= midnight(add_days(first, hi).unwrap()));
                prop_assert!(o.at.date() > first);
                if restart {
                    prop_assert!(!f.dose_days.contains(&o.at.date()));
                }
            }
        }
    }
}
