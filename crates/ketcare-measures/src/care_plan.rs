//! A course's care plan: goals (a symptom target tied to an instrument, or function, sleep,
//! exercise, substance use, mindfulness practice), the adjuncts agreed (psychotherapy,
//! medication changes, lifestyle), each with an owner and a review date, and progress recorded
//! by staff or by the patient through their link.
//!
//! Pure: the instrument catalogue and site settings are passed in, dates are civil dates. A
//! symptom target is a total at or below a number the clinic agrees with the patient; it is
//! checked against the instrument's own score range, and whether it is met is read from the
//! patient's newest score, never typed.

use crate::catalogue::{Catalogue, ScoringKind};
use jiff::civil::Date;
use ketcare_clinical::SiteSettings;
use ketcare_core::FieldErrors;
use serde::{Deserialize, Serialize};

macro_rules! words {
    ($t:ident { $($v:ident => $s:literal : $label:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $t { $($v),+ }
        impl $t {
            pub const ALL: &'static [$t] = &[$($t::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),+ }
            }
            /// The words a page shows.
            pub fn label(self) -> &'static str {
                match self { $($t::$v => $label),+ }
            }
            pub fn parse(s: &str) -> Option<$t> {
                Self::ALL.iter().copied().find(|k| k.as_str() == s)
            }
            /// The accepted words, for an error message.
            pub fn expected() -> String {
                Self::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

words!(ItemKind { Goal => "goal": "goal", Adjunct => "adjunct": "agreed adjunct" });
words!(GoalCategory {
    Symptom => "symptom": "symptoms",
    Function => "function": "daily function",
    Sleep => "sleep": "sleep",
    Exercise => "exercise": "exercise",
    SubstanceUse => "substance_use": "substance use",
    Mindfulness => "mindfulness": "mindfulness practice",
    Other => "other": "other",
});
words!(AdjunctCategory {
    Psychotherapy => "psychotherapy": "psychotherapy",
    MedicationChange => "medication_change": "medication change",
    Lifestyle => "lifestyle": "lifestyle",
    Other => "other": "other",
});
words!(ItemStatus { Active => "active": "active", Met => "met": "met", Stopped => "stopped": "stopped" });
words!(Effort {
    NotYet => "not_yet": "not yet",
    Partly => "partly": "partly",
    Done => "done": "done",
});

/// Longest description or note a plan holds (a bound of the page, not a clinical one).
pub const MAX_TEXT: usize = 2000;
/// Longest owner name.
pub const MAX_OWNER: usize = 200;

/// A plan item as an edge received it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanItemInput {
    /// `goal` or `adjunct`.
    pub item: String,
    /// A goal: `symptom`, `function`, `sleep`, `exercise`, `substance_use`, `mindfulness` or
    /// `other`. An adjunct: `psychotherapy`, `medication_change`, `lifestyle` or `other`.
    pub category: String,
    /// What is agreed, in words the patient will read.
    pub description: String,
    /// A symptom goal: the instrument whose total is the target (for example `phq9`).
    #[serde(default)]
    pub instrument: Option<String>,
    /// A symptom goal: the total at or below which the goal is met.
    #[serde(default)]
    pub target_at_most: Option<i64>,
    /// Who carries it: the patient, a clinician, the therapist…
    pub owner: String,
    /// When the plan reviews it: `YYYY-MM-DD`.
    #[serde(default)]
    pub review_on: Option<String>,
    /// The patient's treatment course it belongs to (default: the newest).
    #[serde(default)]
    pub course_id: Option<i64>,
}

/// A checked plan item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPlanItem {
    pub item: ItemKind,
    /// The category's word (`GoalCategory` or `AdjunctCategory`).
    pub category: String,
    pub description: String,
    pub instrument: Option<String>,
    pub target_at_most: Option<i64>,
    pub owner: String,
    pub review_on: Option<Date>,
    pub course_id: Option<i64>,
}

fn text(errors: &mut FieldErrors, field: &str, v: &str, max: usize, required: bool) -> String {
    let t = v.trim();
    if required && t.is_empty() {
        errors.push(field, "required");
    } else if t.chars().count() > max {
        errors.push(field, format!("at most {max} characters"));
    }
    t.to_owned()
}

fn date(errors: &mut FieldErrors, field: &str, v: Option<&str>) -> Option<Date> {
    let v = v.map(str::trim).filter(|s| !s.is_empty())?;
    match v.parse::<Date>() {
        Ok(d) => Some(d),
        Err(_) => {
            errors.push(field, "expected a date YYYY-MM-DD");
            None
        }
    }
}

impl NewPlanItem {
    /// Checks every field and names every bad one. A symptom goal needs an instrument with a
    /// total and a target inside that total's range; other items take neither.
    pub fn parse(
        i: &PlanItemInput,
        catalogue: &Catalogue,
        settings: &SiteSettings,
    ) -> Result<NewPlanItem, FieldErrors> {
        let mut errors = FieldErrors::default();
        let item = ItemKind::parse(i.item.trim());
        if item.is_none() {
            errors.push("item", format!("expected one of {}", ItemKind::expected()));
        }
        let category = i.category.trim().to_owned();
        let symptom = item == Some(ItemKind::Goal) && category == GoalCategory::Symptom.as_str();
        match item {
            Some(ItemKind::Goal) if GoalCategory::parse(&category).is_none() => errors.push(
                "category",
                format!("a goal is one of {}", GoalCategory::expected()),
            ),
            Some(ItemKind::Adjunct) if AdjunctCategory::parse(&category).is_none() => errors.push(
                "category",
                format!("an adjunct is one of {}", AdjunctCategory::expected()),
            ),
            _ => {}
        }
        let description = text(&mut errors, "description", &i.description, MAX_TEXT, true);
        let owner = text(&mut errors, "owner", &i.owner, MAX_OWNER, true);
        let review_on = date(&mut errors, "review_on", i.review_on.as_deref());
        let instrument = i
            .instrument
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let (mut inst_out, mut target_out) = (None, None);
        if symptom {
            match instrument.and_then(|id| catalogue.instrument(id)) {
                None if instrument.is_none() => errors.push(
                    "instrument",
                    "a symptom goal names the questionnaire whose total is its target",
                ),
                None => errors.push(
                    "instrument",
                    format!("unknown instrument {:?}", instrument.unwrap_or_default()),
                ),
                Some(inst)
                    if matches!(inst.scoring, ScoringKind::AnyYes | ScoringKind::ItemsOnly) =>
                {
                    errors.push(
                        "instrument",
                        format!("{} has no total to set a target on", inst.name),
                    )
                }
                Some(inst) => {
                    inst_out = Some(inst.id.clone());
                    match i.target_at_most {
                        None => errors.push(
                            "target_at_most",
                            "a symptom goal needs the total at or below which it is met",
                        ),
                        Some(t) => {
                            let lo = i64::from(inst.total_min());
                            let hi = inst.total_max(settings).map(i64::from);
                            if t < lo || hi.is_some_and(|h| t > h) {
                                errors.push(
                                    "target_at_most",
                                    match hi {
                                        Some(h) => {
                                            format!("{}'s total runs {lo} to {h}", inst.name)
                                        }
                                        None => format!("{}'s total starts at {lo}", inst.name),
                                    },
                                );
                            } else {
                                target_out = Some(t);
                            }
                        }
                    }
                }
            }
        } else {
            if instrument.is_some() {
                errors.push("instrument", "only a symptom goal names an instrument");
            }
            if i.target_at_most.is_some() {
                errors.push("target_at_most", "only a symptom goal has a target score");
            }
        }
        if i.course_id.is_some_and(|c| c < 1) {
            errors.push("course_id", "expected a course id");
        }
        errors.into_result(())?;
        Ok(NewPlanItem {
            item: item.unwrap_or(ItemKind::Goal),
            category,
            description,
            instrument: inst_out,
            target_at_most: target_out,
            owner,
            review_on,
            course_id: i.course_id,
        })
    }
}

/// Progress on a plan item as an edge received it. Staff may also change the item's status or
/// its review date; the patient's link records a note and how far they got.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressInput {
    #[serde(default)]
    pub note: String,
    /// `not_yet`, `partly` or `done`.
    #[serde(default)]
    pub effort: Option<String>,
    /// Staff only: `active`, `met` or `stopped`.
    #[serde(default)]
    pub status: Option<String>,
    /// Staff only: the next review, `YYYY-MM-DD`.
    #[serde(default)]
    pub review_on: Option<String>,
}

/// Checked progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewProgress {
    pub note: String,
    pub effort: Option<Effort>,
    pub status: Option<ItemStatus>,
    pub review_on: Option<Date>,
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl NewProgress {
    /// `by_patient`: the patient's (or guardian's) link, which may not change status or review
    /// date. Something must be said: a note, an effort, a status or a review date.
    pub fn parse(i: &ProgressInput, by_patient: bool) -> Result<NewProgress, FieldErrors> {
        let mut errors = FieldErrors::default();
        let note = text(&mut errors, "note", &i.note, MAX_TEXT, false);
        let effort = blank(&i.effort).and_then(|e| {
            let v = Effort::parse(e);
            if v.is_none() {
                errors.push("effort", format!("expected one of {}", Effort::expected()));
            }
            v
        });
        let status = blank(&i.status).and_then(|s| {
            let v = ItemStatus::parse(s);
            if by_patient {
                errors.push("status", "the care team changes a goal's status");
                None
            } else {
                if v.is_none() {
                    errors.push(
                        "status",
                        format!("expected one of {}", ItemStatus::expected()),
                    );
                }
                v
            }
        });
        let review_on = if by_patient && blank(&i.review_on).is_some() {
            errors.push("review_on", "the care team sets the review date");
            None
        } else {
            date(&mut errors, "review_on", blank(&i.review_on))
        };
        if errors.0.is_empty()
            && note.is_empty()
            && effort.is_none()
            && status.is_none()
            && review_on.is_none()
        {
            errors.push("note", "say how it is going");
        }
        errors.into_result(())?;
        Ok(NewProgress {
            note,
            effort,
            status,
            review_on,
        })
    }
}

/// Where a symptom target stands on the patient's newest score of its instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TargetState {
    /// No score of the instrument yet.
    NoScore,
    /// The newest total is at or below the target.
    Met {
        score: i64,
        #[schema(value_type = String)]
        on: Date,
    },
    /// The newest total is above the target.
    NotYet {
        score: i64,
        #[schema(value_type = String)]
        on: Date,
    },
}

/// The target's state from the instrument's scores (`(date, total)`, any order): the newest
/// decides (the later entry wins on the same date).
pub fn target_state(target_at_most: i64, scores: &[(Date, i64)]) -> TargetState {
    match scores.iter().enumerate().max_by_key(|(i, (d, _))| (*d, *i)) {
        None => TargetState::NoScore,
        Some((_, &(on, score))) if score <= target_at_most => TargetState::Met { score, on },
        Some((_, &(on, score))) => TargetState::NotYet { score, on },
    }
}

/// Whether a review date has come (on or before `today`) for an item still active.
pub fn review_due(status: ItemStatus, review_on: Option<Date>, today: Date) -> bool {
    status == ItemStatus::Active && review_on.is_some_and(|d| d <= today)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn cat() -> &'static Catalogue {
        Catalogue::builtin().unwrap()
    }
    fn settings() -> SiteSettings {
        SiteSettings::default()
    }
    fn symptom(target: Option<i64>) -> PlanItemInput {
        PlanItemInput {
            item: "goal".into(),
            category: "symptom".into(),
            description: "Mood lifts to the mild range".into(),
            instrument: Some("phq9".into()),
            target_at_most: target,
            owner: "patient and Dr Adams".into(),
            review_on: Some("2027-01-10".into()),
            course_id: None,
        }
    }
    fn fields(e: FieldErrors) -> Vec<String> {
        e.0.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn a_symptom_goal_takes_a_target_inside_the_instruments_range() {
        let ok = NewPlanItem::parse(&symptom(Some(4)), cat(), &settings()).unwrap();
        assert_eq!(ok.instrument.as_deref(), Some("phq9"));
        assert_eq!(ok.target_at_most, Some(4));
        assert_eq!(ok.review_on, Some(date(2027, 1, 10)));
        // PHQ-9 totals run 0 to 27.
        assert!(NewPlanItem::parse(&symptom(Some(27)), cat(), &settings()).is_ok());
        assert!(NewPlanItem::parse(&symptom(Some(0)), cat(), &settings()).is_ok());
        for bad in [-1, 28, 1000] {
            let e = NewPlanItem::parse(&symptom(Some(bad)), cat(), &settings()).unwrap_err();
            assert_eq!(fields(e), ["target_at_most"], "{bad}");
        }
        let e = NewPlanItem::parse(&symptom(None), cat(), &settings()).unwrap_err();
        assert_eq!(fields(e), ["target_at_most"]);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let i = PlanItemInput {
            item: "wish".into(),
            category: "".into(),
            description: " ".into(),
            owner: "".into(),
            review_on: Some("10/01/2027".into()),
            ..Default::default()
        };
        let e = NewPlanItem::parse(&i, cat(), &settings()).unwrap_err();
        assert_eq!(fields(e), ["item", "description", "owner", "review_on"]);
        let i = PlanItemInput {
            item: "adjunct".into(),
            category: "sleep".into(),
            description: "x".into(),
            owner: "y".into(),
            instrument: Some("phq9".into()),
            target_at_most: Some(3),
            ..Default::default()
        };
        let e = NewPlanItem::parse(&i, cat(), &settings()).unwrap_err();
        assert_eq!(fields(e), ["category", "instrument", "target_at_most"]);
    }

    #[test]
    fn a_symptom_goal_needs_an_instrument_with_a_total() {
        let mut i = symptom(Some(3));
        i.instrument = Some("cssrs_screen".into());
        let e = NewPlanItem::parse(&i, cat(), &settings());
        if cat().instrument("cssrs_screen").is_some() {
            assert_eq!(fields(e.unwrap_err()), ["instrument"]);
        }
        i.instrument = Some("nope".into());
        assert_eq!(
            fields(NewPlanItem::parse(&i, cat(), &settings()).unwrap_err()),
            ["instrument"]
        );
        i.instrument = None;
        assert_eq!(
            fields(NewPlanItem::parse(&i, cat(), &settings()).unwrap_err()),
            ["instrument"]
        );
    }

    #[test]
    fn a_patient_cannot_change_status_or_review_and_must_say_something() {
        let p = ProgressInput {
            note: "walked twice".into(),
            effort: Some("partly".into()),
            ..Default::default()
        };
        let ok = NewProgress::parse(&p, true).unwrap();
        assert_eq!(ok.effort, Some(Effort::Partly));
        let p = ProgressInput {
            status: Some("met".into()),
            review_on: Some("2027-02-01".into()),
            ..Default::default()
        };
        assert_eq!(
            fields(NewProgress::parse(&p, true).unwrap_err()),
            ["status", "review_on"]
        );
        let staff = NewProgress::parse(&p, false).unwrap();
        assert_eq!(staff.status, Some(ItemStatus::Met));
        assert_eq!(
            fields(NewProgress::parse(&ProgressInput::default(), false).unwrap_err()),
            ["note"]
        );
        let p = ProgressInput {
            effort: Some("lots".into()),
            ..Default::default()
        };
        assert_eq!(
            fields(NewProgress::parse(&p, true).unwrap_err()),
            ["effort"]
        );
    }

    #[test]
    fn the_newest_score_decides_the_target() {
        assert_eq!(target_state(4, &[]), TargetState::NoScore);
        let s = [
            (date(2027, 1, 1), 3),
            (date(2027, 1, 20), 9),
            (date(2027, 1, 10), 2),
        ];
        assert_eq!(
            target_state(4, &s),
            TargetState::NotYet {
                score: 9,
                on: date(2027, 1, 20)
            }
        );
        // At the target is met; the later entry on the same date wins.
        let s = [(date(2027, 1, 20), 9), (date(2027, 1, 20), 4)];
        assert_eq!(
            target_state(4, &s),
            TargetState::Met {
                score: 4,
                on: date(2027, 1, 20)
            }
        );
    }

    #[test]
    fn review_is_due_on_its_day_for_active_items_only() {
        let d = date(2027, 3, 1);
        assert!(review_due(ItemStatus::Active, Some(d), d));
        assert!(!review_due(ItemStatus::Active, Some(d), date(2027, 2, 28)));
        assert!(!review_due(ItemStatus::Met, Some(d), d));
        assert!(!review_due(ItemStatus::Active, None, d));
    }

    proptest! {
        #[test]
        fn met_exactly_when_the_newest_is_at_or_below(
            target in 0i64..30,
            scores in proptest::collection::vec((0i64..400, 0i64..30), 1..20),
        ) {
            let base = date(2027, 1, 1);
            let dated: Vec<(Date, i64)> = scores
                .iter()
                .map(|&(d, s)| (base.checked_add(jiff::Span::new().days(d)).unwrap(), s))
                .collect();
            let newest_day = dated.iter().map(|(d, _)| *d).max().unwrap();
            let newest = dated.iter().rev().find(|(d, _)| *d == newest_day).unwrap().1;
            let st = target_state(target, &dated);
            prop_assert_eq!(matches!(st, TargetState::Met { .. }), newest <= target);
        }

        #[test]
        fn any_text_parses_or_names_its_fields(
            item in ".{0,12}", category in ".{0,12}", description in ".{0,30}",
            owner in ".{0,10}", target in proptest::option::of(-50i64..100),
        ) {
            let i = PlanItemInput {
                item, category, description, owner,
                instrument: Some("phq9".into()), target_at_most: target,
                ..Default::default()
            };
            match NewPlanItem::parse(&i, cat(), &settings()) {
                Ok(p) => prop_assert!(!p.description.is_empty() && !p.owner.is_empty()),
                Err(e) => prop_assert!(!e.0.is_empty()),
            }
        }
    }
}
