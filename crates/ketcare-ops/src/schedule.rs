//! Course scheduling: course templates from the protocols, laying a course out on the calendar,
//! and the conflicts that refuse a booking (chair, nurse, prescriber on site, patient).
//!
//! Times are the clinic's wall-clock time ([`jiff::civil::DateTime`]); the edge converts.

use crate::cited::{Cited, MissingSetting, Provenance, data_error, line_near, parse_toml};
use crate::session_facts::Drug;
use jiff::civil::{Date, DateTime, Time};
use jiff::{Span, ToSpan};
use ketcare_core::BookingId;
use ketcare_core::data::DataFileError;
use serde::{Deserialize, Serialize};

/// The built-in course templates.
pub const BUILTIN_FILE: &str = "data/ops/courses.toml";
pub const BUILTIN_TEXT: &str = include_str!("../../../data/ops/courses.toml");

/// Induction, maintenance, or a single booster outside the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    Induction,
    Maintenance,
    Booster,
}

impl PhaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Induction => "induction",
            Self::Maintenance => "maintenance",
            Self::Booster => "booster",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "induction" => Some(Self::Induction),
            "maintenance" => Some(Self::Maintenance),
            "booster" => Some(Self::Booster),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    pub kind: PhaseKind,
    pub weeks: Cited<u32>,
    pub sessions_per_week: Cited<u32>,
    pub every_weeks: Cited<u32>,
    /// Day offsets within a week, counted from the course's first day.
    pub days: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseTemplate {
    pub id: String,
    pub protocols: Vec<String>,
    pub title: String,
    pub drug: Drug,
    pub dose_minutes: Cited<u32>,
    pub observation_minutes: Cited<u32>,
    pub prescriber_on_site: Cited<bool>,
    pub phase: Vec<PhaseSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplatesFile {
    template: Vec<CourseTemplate>,
}

/// The validated set of course templates.
#[derive(Debug, Clone)]
pub struct Templates {
    templates: Vec<CourseTemplate>,
}

impl Templates {
    pub fn builtin() -> Result<Self, DataFileError> {
        Self::parse(BUILTIN_FILE, BUILTIN_TEXT)
    }

    /// Parses and validates a templates file; a bad file is refused with file, line and field.
    pub fn parse(file: &str, text: &str) -> Result<Self, DataFileError> {
        let f: TemplatesFile = parse_toml(file, text)?;
        let mut seen = std::collections::BTreeSet::new();
        for t in &f.template {
            let anchor = format!("id = \"{}\"", t.id);
            let fail = |field: &str, msg: String| {
                data_error(
                    file,
                    line_near(text, &anchor, field.rsplit('.').next().unwrap_or(field)),
                    &format!("template[{}].{field}", t.id),
                    msg,
                )
            };
            if t.id.trim().is_empty() {
                return Err(fail("id", "a template needs an id".into()));
            }
            if !seen.insert(t.id.clone()) {
                return Err(fail("id", format!("template id `{}` appears twice", t.id)));
            }
            for (field, c) in [
                ("dose_minutes", &t.dose_minutes),
                ("observation_minutes", &t.observation_minutes),
            ] {
                c.check(field).map_err(|(f, m)| fail(&f, m))?;
                if let Cited::Value { value: 0, .. } = c {
                    return Err(fail(field, "must be more than 0 minutes".into()));
                }
            }
            t.prescriber_on_site
                .check("prescriber_on_site")
                .map_err(|(f, m)| fail(&f, m))?;
            if t.phase.is_empty() {
                return Err(fail("phase", "a template needs at least one phase".into()));
            }
            for (i, p) in t.phase.iter().enumerate() {
                for (field, c) in [
                    ("weeks", &p.weeks),
                    ("sessions_per_week", &p.sessions_per_week),
                    ("every_weeks", &p.every_weeks),
                ] {
                    let name = format!("phase[{i}].{field}");
                    c.check(&name).map_err(|(f, m)| fail(&f, m))?;
                    match c {
                        Cited::Value { value: 0, .. } => {
                            return Err(fail(&name, "must be at least 1".into()));
                        }
                        Cited::SiteSetting { .. } => {
                            return Err(fail(
                                &name,
                                "a phase's shape must be a cited value".into(),
                            ));
                        }
                        Cited::Value { .. } => {}
                    }
                }
                let mut days = p.days.clone();
                days.sort_unstable();
                days.dedup();
                if days.len() != p.days.len() || p.days.iter().any(|d| *d > 6) {
                    return Err(fail(
                        &format!("phase[{i}].days"),
                        "days are distinct offsets 0–6 within a week".into(),
                    ));
                }
                if let Cited::Value { value, .. } = &p.sessions_per_week
                    && *value as usize != p.days.len()
                {
                    return Err(fail(
                        &format!("phase[{i}].days"),
                        format!(
                            "sessions_per_week is {value} but {} days are listed",
                            p.days.len()
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            templates: f.template,
        })
    }

    pub fn all(&self) -> &[CourseTemplate] {
        &self.templates
    }

    pub fn get(&self, id: &str) -> Option<&CourseTemplate> {
        self.templates.iter().find(|t| t.id == id)
    }
}

/// A template's chair time and staffing, once site settings are applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SlotRules {
    pub dose_minutes: u32,
    pub observation_minutes: u32,
    pub prescriber_on_site: bool,
    /// Where each of the three came from, in that order.
    pub provenance: Vec<Provenance>,
}

impl SlotRules {
    /// Slot length = dose time + the protocol's minimum observation.
    pub fn slot_minutes(&self) -> u32 {
        self.dose_minutes + self.observation_minutes
    }
}

impl CourseTemplate {
    /// Applies site settings; a missing one blocks booking and names the setting.
    pub fn slot_rules(
        &self,
        settings: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SlotRules, MissingSetting> {
        let (dose, p1) = self.dose_minutes.resolve("the dose time", settings)?;
        let (obs, p2) = self
            .observation_minutes
            .resolve("the minimum observation time", settings)?;
        let (pres, p3) = self
            .prescriber_on_site
            .resolve("whether a prescriber must be on site", settings)?;
        if obs == 0 || dose == 0 {
            return Err(MissingSetting {
                key: match &self.observation_minutes {
                    Cited::SiteSetting { site_setting, .. } => site_setting.clone(),
                    Cited::Value { .. } => "dose_minutes".into(),
                },
                why: "a slot must be longer than 0 minutes".into(),
            });
        }
        Ok(SlotRules {
            dose_minutes: dose,
            observation_minutes: obs,
            prescriber_on_site: pres,
            provenance: vec![p1, p2, p3],
        })
    }

    /// Lays the whole course out from `first_day` at `time`.
    ///
    /// A phase's `days` are weekdays (Monday = 0), as `data/ops/courses.toml` says, so a course
    /// keeps its weekdays whatever day it starts on. The first phase's weeks are counted from
    /// the Monday of `first_day`'s week; pattern days before `first_day` are skipped and made
    /// up at the end, so every phase keeps its number of sessions (a Monday–Wednesday–Friday
    /// course started on a Wednesday runs Wed, Fri, Mon, Wed, Fri, Mon). Each later phase
    /// starts in the week after the previous phase's last session.
    pub fn plan(&self, rules: &SlotRules, first_day: Date, time: Time) -> Vec<PlannedSession> {
        let mut out = Vec::new();
        let monday = |d: Date| {
            d.checked_sub(i64::from(d.weekday().to_monday_zero_offset()).days())
                .ok()
        };
        let Some(mut anchor) = monday(first_day) else {
            return out;
        };
        let mut not_before = first_day;
        for phase in &self.phase {
            let v = |c: &Cited<u32>| match c {
                Cited::Value { value, .. } => i64::from(*value),
                Cited::SiteSetting { .. } => 1,
            };
            let (weeks, every) = (v(&phase.weeks), v(&phase.every_weeks).max(1));
            let target = (0..weeks).filter(|w| w % every == 0).count() * phase.days.len();
            let mut days = phase.days.clone();
            days.sort_unstable();
            let mut taken = 0usize;
            let mut last = None;
            // The skipped days of the first week are made up within one extra period.
            'weeks: for w in (0..weeks + every).step_by(every as usize) {
                for d in &days {
                    if taken == target {
                        break 'weeks;
                    }
                    let Ok(day) = anchor.checked_add((w * 7 + i64::from(*d)).days()) else {
                        break 'weeks;
                    };
                    if day < not_before {
                        continue;
                    }
                    let start = day.to_datetime(time);
                    let Ok(end) = start.checked_add(i64::from(rules.slot_minutes()).minutes())
                    else {
                        break 'weeks;
                    };
                    out.push(PlannedSession {
                        index: out.len() as u32 + 1,
                        phase: phase.kind,
                        start,
                        end,
                    });
                    taken += 1;
                    last = Some(day);
                }
            }
            let Some(next) = last
                .and_then(&monday)
                .and_then(|m| m.checked_add(7.days()).ok())
            else {
                break;
            };
            anchor = next;
            not_before = next;
        }
        out
    }
}

/// One session of a planned course, before it is placed on a chair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PlannedSession {
    pub index: u32,
    pub phase: PhaseKind,
    #[schema(value_type = String)]
    pub start: DateTime,
    #[schema(value_type = String)]
    pub end: DateTime,
}

/// Where a booking stands. Only a booked session can be attended, cancelled or missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Booked,
    Attended,
    Cancelled,
    NoShow,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booked => "booked",
            Self::Attended => "attended",
            Self::Cancelled => "cancelled",
            Self::NoShow => "no_show",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "booked" => Some(Self::Booked),
            "attended" => Some(Self::Attended),
            "cancelled" => Some(Self::Cancelled),
            "no_show" => Some(Self::NoShow),
            _ => None,
        }
    }
    /// Whether the booking holds its chair and staff.
    pub fn holds_slot(self) -> bool {
        matches!(self, Self::Booked | Self::Attended)
    }
    pub fn transition(self, to: BookingStatus) -> Result<BookingStatus, ScheduleError> {
        match (self, to) {
            (Self::Booked, Self::Attended | Self::Cancelled | Self::NoShow) => Ok(to),
            _ => Err(ScheduleError::Transition {
                from: self.as_str(),
                to: to.as_str(),
            }),
        }
    }
}

/// A session on a chair with its nurse, as the calendar knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Booking {
    pub id: BookingId,
    pub course_id: Option<i64>,
    pub patient_id: i64,
    pub chair_id: i64,
    pub nurse_id: i64,
    pub prescriber_required: bool,
    #[schema(value_type = String)]
    pub start: DateTime,
    #[schema(value_type = String)]
    pub end: DateTime,
    pub status: BookingStatus,
    pub phase: PhaseKind,
}

/// A prescriber's time on site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OnSite {
    /// The roster entry (0 for one not stored).
    pub id: i64,
    pub user_id: i64,
    #[schema(value_type = String)]
    pub start: DateTime,
    #[schema(value_type = String)]
    pub end: DateTime,
}

/// How many patients one nurse may monitor at once. The reference gives no ratio, so this is
/// a site setting; when unset, one patient per nurse (the strictest reading) applies.
pub const NURSE_MAX_CONCURRENT_SETTING: &str = "schedule.nurse_max_concurrent_patients";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staffing {
    pub nurse_max_concurrent: u32,
}

impl Default for Staffing {
    fn default() -> Self {
        Self {
            nurse_max_concurrent: 1,
        }
    }
}

/// Why a booking is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Conflict {
    #[error("chair {chair_id} is taken by booking {booking_id} ({start} – {end})")]
    ChairBusy {
        chair_id: i64,
        booking_id: BookingId,
        start: String,
        end: String,
    },
    #[error(
        "nurse {nurse_id} already monitors {count} patient(s) then (bookings {bookings:?}); the site allows {max}"
    )]
    NurseBusy {
        nurse_id: i64,
        count: u32,
        max: u32,
        bookings: Vec<BookingId>,
    },
    #[error(
        "the protocol needs a prescriber on site from {start} to {end}, and none is rostered for the whole time"
    )]
    NoPrescriberOnSite { start: String, end: String },
    #[error("patient {patient_id} is already booked then (booking {booking_id}, {start} – {end})")]
    PatientDoubleBooked {
        patient_id: i64,
        booking_id: BookingId,
        start: String,
        end: String,
    },
    #[error("the session must end after it starts")]
    EmptySlot,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("a booking cannot go from {from} to {to}")]
    Transition {
        from: &'static str,
        to: &'static str,
    },
    #[error("no booking {0}")]
    UnknownBooking(BookingId),
}

fn overlaps(a: &Booking, s: DateTime, e: DateTime) -> bool {
    a.start < e && s < a.end
}

/// Every conflict `candidate` has with the bookings already on the calendar.
pub fn conflicts(
    existing: &[Booking],
    candidate: &Booking,
    prescribers: &[OnSite],
    staffing: Staffing,
) -> Vec<Conflict> {
    let (s, e) = (candidate.start, candidate.end);
    let mut out = Vec::new();
    if e <= s {
        out.push(Conflict::EmptySlot);
        return out;
    }
    let live = existing
        .iter()
        .filter(|b| b.id != candidate.id && b.status.holds_slot() && overlaps(b, s, e));
    let mut nurse_overlap = Vec::new();
    for b in live {
        if b.chair_id == candidate.chair_id {
            out.push(Conflict::ChairBusy {
                chair_id: b.chair_id,
                booking_id: b.id,
                start: b.start.to_string(),
                end: b.end.to_string(),
            });
        }
        if b.patient_id == candidate.patient_id {
            out.push(Conflict::PatientDoubleBooked {
                patient_id: b.patient_id,
                booking_id: b.id,
                start: b.start.to_string(),
                end: b.end.to_string(),
            });
        }
        if b.nurse_id == candidate.nurse_id {
            nurse_overlap.push(b);
        }
    }
    // The nurse's load is the largest number of their patients present at one instant.
    let max = staffing.nurse_max_concurrent.max(1);
    let peak = peak_concurrency(&nurse_overlap, s, e);
    if peak >= max {
        out.push(Conflict::NurseBusy {
            nurse_id: candidate.nurse_id,
            count: peak,
            max,
            bookings: nurse_overlap.iter().map(|b| b.id).collect(),
        });
    }
    if candidate.prescriber_required && !covered(prescribers, s, e) {
        out.push(Conflict::NoPrescriberOnSite {
            start: s.to_string(),
            end: e.to_string(),
        });
    }
    out
}

fn peak_concurrency(bs: &[&Booking], s: DateTime, e: DateTime) -> u32 {
    let mut points: Vec<(DateTime, i32)> = Vec::new();
    for b in bs {
        points.push((b.start.max(s), 1));
        points.push((b.end.min(e), -1));
    }
    points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut peak) = (0i32, 0i32);
    for (_, d) in points {
        cur += d;
        peak = peak.max(cur);
    }
    peak.max(0) as u32
}

/// Whether the union of prescriber shifts covers `[s, e)` without a gap.
/// Whether `shifts` together cover `s`–`e` with no gap.
pub fn covered(shifts: &[OnSite], s: DateTime, e: DateTime) -> bool {
    let mut iv: Vec<(DateTime, DateTime)> = shifts
        .iter()
        .filter(|o| o.start < e && s < o.end)
        .map(|o| (o.start, o.end))
        .collect();
    iv.sort();
    let mut reach = s;
    for (a, b) in iv {
        if a > reach {
            return false;
        }
        reach = reach.max(b);
        if reach >= e {
            return true;
        }
    }
    reach >= e
}

/// Checks a whole set of new bookings (a course) against the calendar and against each other.
/// Returns, for each candidate that cannot be placed, its index and conflicts.
pub fn conflicts_all(
    existing: &[Booking],
    candidates: &[Booking],
    prescribers: &[OnSite],
    staffing: Staffing,
) -> Vec<(usize, Vec<Conflict>)> {
    let mut placed: Vec<Booking> = existing.to_vec();
    let mut out = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let cs = conflicts(&placed, c, prescribers, staffing);
        if cs.is_empty() {
            placed.push(c.clone());
        } else {
            out.push((i, cs));
        }
    }
    out
}

/// Move only this session, or this one and every later booked session of its course.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MoveMode {
    OnlyThis,
    ThisAndLater,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Move {
    pub booking_id: BookingId,
    #[schema(value_type = String)]
    pub from: DateTime,
    #[schema(value_type = String)]
    pub to: DateTime,
}

/// What moving a session does: every booking that moves, and any conflict it would cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MovePlan {
    pub moves: Vec<Move>,
    /// (booking id, its conflicts) pairs.
    pub conflicts: Vec<(BookingId, Vec<Conflict>)>,
}

impl MovePlan {
    pub fn is_clear(&self) -> bool {
        self.conflicts.is_empty()
    }
}

/// Plans a move of booking `id` to `new_start` (the slot length is kept).
pub fn plan_move(
    existing: &[Booking],
    id: BookingId,
    new_start: DateTime,
    mode: MoveMode,
    prescribers: &[OnSite],
    staffing: Staffing,
) -> Result<MovePlan, ScheduleError> {
    let target = existing
        .iter()
        .find(|b| b.id == id)
        .ok_or(ScheduleError::UnknownBooking(id))?;
    if target.status != BookingStatus::Booked {
        return Err(ScheduleError::Transition {
            from: target.status.as_str(),
            to: "moved",
        });
    }
    let delta: Span = target
        .start
        .until(new_start)
        .map_err(|_| ScheduleError::UnknownBooking(id))?;
    let moving: Vec<&Booking> = existing
        .iter()
        .filter(|b| {
            b.id == id
                || (mode == MoveMode::ThisAndLater
                    && b.status == BookingStatus::Booked
                    && b.course_id.is_some()
                    && b.course_id == target.course_id
                    && b.start > target.start)
        })
        .collect();
    let mut moved = Vec::new();
    let mut moves = Vec::new();
    for b in &moving {
        let (Ok(s), Ok(e)) = (b.start.checked_add(delta), b.end.checked_add(delta)) else {
            return Err(ScheduleError::UnknownBooking(b.id));
        };
        moves.push(Move {
            booking_id: b.id,
            from: b.start,
            to: s,
        });
        moved.push(Booking {
            start: s,
            end: e,
            ..(*b).clone()
        });
    }
    let staying: Vec<Booking> = existing
        .iter()
        .filter(|b| !moving.iter().any(|m| m.id == b.id))
        .cloned()
        .collect();
    let conflicts = conflicts_all(&staying, &moved, prescribers, staffing)
        .into_iter()
        .map(|(i, c)| (moved[i].id, c))
        .collect();
    Ok(MovePlan { moves, conflicts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn settings(k: &str) -> Option<String> {
        match k {
            "observation.ketamine_psychiatric_minutes" => Some("60".into()),
            "schedule.ketamine_prescriber_on_site" => Some("2".into()),
            _ => None,
        }
    }

    fn booking(id: i64, patient: i64, chair: i64, nurse: i64, h: i8, m: i64) -> Booking {
        let start = date(2026, 12, 7).at(h, 0, 0, 0);
        Booking {
            id: BookingId::new(id),
            course_id: None,
            patient_id: patient,
            chair_id: chair,
            nurse_id: nurse,
            prescriber_required: false,
            start,
            end: start.checked_add(m.minutes()).unwrap_or(start),
            status: BookingStatus::Booked,
            phase: PhaseKind::Induction,
        }
    }

    #[test]
    fn builtin_templates_validate() {
        let t = Templates::builtin();
        assert!(t.is_ok(), "{t:?}");
    }

    #[test]
    fn iv_course_is_six_infusions_over_two_weeks_and_slot_is_dose_plus_observation() {
        let ts = Templates::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let t = ts
            .get("iv-ketamine-induction-6")
            .unwrap_or_else(|| unreachable!());
        let rules = t
            .slot_rules(&settings)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(rules.slot_minutes(), 40 + 60);
        let plan = t.plan(&rules, date(2026, 12, 7), time(9, 0, 0, 0));
        assert_eq!(plan.len(), 6);
        assert_eq!(plan[0].start, date(2026, 12, 7).at(9, 0, 0, 0));
        assert_eq!(plan[0].end, date(2026, 12, 7).at(10, 40, 0, 0));
        assert_eq!(plan[5].start.date(), date(2026, 12, 18));
    }

    #[test]
    fn a_course_started_midweek_keeps_its_weekdays_and_its_count() {
        let ts = Templates::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let t = ts
            .get("iv-ketamine-induction-6")
            .unwrap_or_else(|| unreachable!());
        let rules = t
            .slot_rules(&settings)
            .unwrap_or_else(|e| unreachable!("{e}"));
        // 2026-12-09 is a Wednesday; the template's days are Monday, Wednesday, Friday.
        let plan = t.plan(&rules, date(2026, 12, 9), time(9, 0, 0, 0));
        let days: Vec<Date> = plan.iter().map(|p| p.start.date()).collect();
        assert_eq!(
            days,
            [
                date(2026, 12, 9),
                date(2026, 12, 11),
                date(2026, 12, 14),
                date(2026, 12, 16),
                date(2026, 12, 18),
                date(2026, 12, 21)
            ]
        );
    }

    #[test]
    fn every_template_keeps_its_weekdays_and_count_from_any_first_day() {
        let ts = Templates::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        for t in ts.all() {
            let Ok(rules) = t.slot_rules(&|_| Some("2".to_owned())) else {
                continue;
            };
            let monday = t.plan(&rules, date(2026, 12, 7), time(9, 0, 0, 0));
            for offset in 0..7 {
                let first = date(2026, 12, 7 + offset);
                let plan = t.plan(&rules, first, time(9, 0, 0, 0));
                assert_eq!(plan.len(), monday.len(), "{} from {first}", t.id);
                assert!(plan[0].start.date() >= first);
                for (p, m) in plan.iter().zip(&monday) {
                    assert_eq!(p.phase, m.phase, "{} from {first}", t.id);
                }
                for p in &plan {
                    let phase = t.phase.iter().find(|ph| ph.kind == p.phase);
                    let wd = p.start.date().weekday().to_monday_zero_offset();
                    assert!(
                        phase.is_some_and(|ph| ph.days.contains(&(wd as u8))),
                        "{} from {first}: {} is not one of the template's weekdays",
                        t.id,
                        p.start
                    );
                }
                for w in plan.windows(2) {
                    assert!(w[0].start < w[1].start);
                }
            }
        }
    }

    #[test]
    fn unset_observation_blocks_naming_the_setting() {
        let ts = Templates::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let t = ts
            .get("iv-ketamine-induction-6")
            .unwrap_or_else(|| unreachable!());
        let err = t.slot_rules(&|_| None).err();
        assert_eq!(
            err.map(|e| e.key),
            Some("observation.ketamine_psychiatric_minutes".to_owned())
        );
    }

    #[test]
    fn esketamine_twice_weekly_then_weekly_then_every_two_weeks() {
        let ts = Templates::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let t = ts.get("esketamine-trd").unwrap_or_else(|| unreachable!());
        let rules = t
            .slot_rules(&|_| None)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(rules.prescriber_on_site);
        assert_eq!(rules.slot_minutes(), 130);
        let plan = t.plan(&rules, date(2026, 12, 7), time(9, 0, 0, 0));
        let induction = plan
            .iter()
            .filter(|p| p.phase == PhaseKind::Induction)
            .count();
        assert_eq!(induction, 8);
        // weeks 5–8 weekly (4), weeks 9–16 every two weeks (4)
        assert_eq!(plan.len(), 16);
        assert_eq!(plan[8].start.date(), date(2027, 1, 4));
        assert_eq!(plan[12].start.date(), date(2027, 2, 1));
        assert_eq!(plan[13].start.date(), date(2027, 2, 15));
    }

    #[test]
    fn chair_conflict() {
        let cs = conflicts(
            &[booking(1, 10, 1, 100, 9, 100)],
            &booking(2, 11, 1, 101, 10, 100),
            &[],
            Staffing::default(),
        );
        assert!(
            matches!(cs[..], [Conflict::ChairBusy { booking_id, .. }] if booking_id == BookingId::new(1)),
            "{cs:?}"
        );
    }

    #[test]
    fn back_to_back_is_not_a_conflict() {
        let cs = conflicts(
            &[booking(1, 10, 1, 100, 9, 60)],
            &booking(2, 11, 1, 100, 10, 60),
            &[],
            Staffing::default(),
        );
        assert!(cs.is_empty(), "{cs:?}");
    }

    #[test]
    fn nurse_conflict_respects_the_site_ratio() {
        let existing = [booking(1, 10, 1, 100, 9, 120)];
        let cand = booking(2, 11, 2, 100, 10, 60);
        let cs = conflicts(&existing, &cand, &[], Staffing::default());
        assert!(
            matches!(cs[..], [Conflict::NurseBusy { nurse_id: 100, .. }]),
            "{cs:?}"
        );
        let two = Staffing {
            nurse_max_concurrent: 2,
        };
        assert!(conflicts(&existing, &cand, &[], two).is_empty());
        let existing = [
            booking(1, 10, 1, 100, 9, 120),
            booking(3, 12, 3, 100, 9, 120),
        ];
        assert!(!conflicts(&existing, &cand, &[], two).is_empty());
    }

    #[test]
    fn prescriber_must_cover_the_whole_slot() {
        let mut cand = booking(2, 11, 2, 100, 10, 130);
        cand.prescriber_required = true;
        let d = date(2026, 12, 7);
        let cs = conflicts(&[], &cand, &[], Staffing::default());
        assert!(matches!(cs[..], [Conflict::NoPrescriberOnSite { .. }]));
        let part = [OnSite {
            id: 0,
            user_id: 5,
            start: d.at(8, 0, 0, 0),
            end: d.at(11, 0, 0, 0),
        }];
        assert!(!conflicts(&[], &cand, &part, Staffing::default()).is_empty());
        let handover = [
            part[0].clone(),
            OnSite {
                id: 0,
                user_id: 6,
                start: d.at(11, 0, 0, 0),
                end: d.at(17, 0, 0, 0),
            },
        ];
        assert!(conflicts(&[], &cand, &handover, Staffing::default()).is_empty());
    }

    #[test]
    fn patient_double_booked() {
        let cs = conflicts(
            &[booking(1, 10, 1, 100, 9, 120)],
            &booking(2, 10, 2, 101, 10, 60),
            &[],
            Staffing::default(),
        );
        assert!(matches!(
            cs[..],
            [Conflict::PatientDoubleBooked { patient_id: 10, .. }]
        ));
    }

    #[test]
    fn cancelled_and_no_show_free_the_slot() {
        let mut b = booking(1, 10, 1, 100, 9, 120);
        b.status = BookingStatus::Booked
            .transition(BookingStatus::Cancelled)
            .unwrap_or(b.status);
        assert!(
            conflicts(
                &[b.clone()],
                &booking(2, 11, 1, 100, 9, 60),
                &[],
                Staffing::default()
            )
            .is_empty()
        );
        assert!(b.status.transition(BookingStatus::Attended).is_err());
        assert!(
            BookingStatus::Booked
                .transition(BookingStatus::NoShow)
                .is_ok()
        );
    }

    #[test]
    fn moving_a_session_shows_what_else_moves() {
        let mut bs: Vec<Booking> = (0..3)
            .map(|i| {
                let mut b = booking(i + 1, 10, 1, 100, 9, 60);
                b.course_id = Some(7);
                b.start = b.start.checked_add((2 * i).days()).unwrap_or(b.start);
                b.end = b.end.checked_add((2 * i).days()).unwrap_or(b.end);
                b
            })
            .collect();
        bs.push(booking(9, 20, 1, 101, 9, 60));
        bs[3].start = date(2026, 12, 10).at(9, 0, 0, 0);
        bs[3].end = date(2026, 12, 10).at(10, 0, 0, 0);
        let plan = plan_move(
            &bs,
            BookingId::new(2),
            date(2026, 12, 10).at(9, 30, 0, 0),
            MoveMode::ThisAndLater,
            &[],
            Staffing::default(),
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            plan.moves
                .iter()
                .map(|m| m.booking_id.get())
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(plan.moves[1].to, date(2026, 12, 12).at(9, 30, 0, 0));
        assert_eq!(plan.conflicts.len(), 1);
        assert_eq!(plan.conflicts[0].0, BookingId::new(2));
        let only = plan_move(
            &bs,
            BookingId::new(2),
            date(2026, 12, 9).at(12, 0, 0, 0),
            MoveMode::OnlyThis,
            &[],
            Staffing::default(),
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(only.moves.len(), 1);
        assert!(only.is_clear());
    }

    #[test]
    fn a_bad_template_file_names_file_line_and_field() {
        let text = BUILTIN_TEXT.replacen(
            "sessions_per_week = { value = 3",
            "sessions_per_week = { value = 4",
            1,
        );
        let e = Templates::parse("courses.toml", &text)
            .err()
            .unwrap_or_else(|| unreachable!());
        assert_eq!(e.file, "courses.toml");
        assert!(e.field.contains("days"), "{e}");
        assert!(e.line > 0);
        let text = BUILTIN_TEXT.replacen(
            "status = \"V\", note = \"0.5 mg/kg",
            "status = \"U\", note = \"0.5 mg/kg",
            1,
        );
        let e = Templates::parse("courses.toml", &text)
            .err()
            .unwrap_or_else(|| unreachable!());
        assert!(e.field.contains("dose_minutes"), "{e}");
        let e = Templates::parse("courses.toml", "template = 3")
            .err()
            .unwrap_or_else(|| unreachable!());
        assert_eq!(e.line, 1);
    }
}
