//! Psychotherapy integration: therapy encounters (preparation, integration, ongoing
//! psychotherapy), their structured part, and whether each dose had its integration session
//! within the site's window.
//!
//! The structured part belongs to the medical record. The psychotherapy note (HIPAA §164.501) is
//! not here: it is free text the store keeps in its own table and shows only to its author (and,
//! where the site allows, the patient's treating therapists).
//!
//! Pure: times and dates are passed in; the window is the site's setting (the reference gives no
//! number of days), so a missing window is a state of its own, never a guess.

use crate::ids::{EncounterId, SessionId};
use crate::validation::FieldErrors;
use jiff::civil::{Date, DateTime};
use serde::{Deserialize, Serialize};

/// What a therapy encounter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EncounterKind {
    /// Before a dose: intention, set and setting.
    Preparation,
    /// After a dose: making sense of the experience.
    Integration,
    /// Psychotherapy between courses or alongside them, not tied to a dose.
    Ongoing,
    /// Continuous in-person monitoring of the patient during a dosing session (linked to it;
    /// its duration is the time monitored).
    Monitoring,
}

/// How the encounter was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    Individual,
    Group,
    Family,
    Other,
}

/// The suicide-risk part of the encounter's risk assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuicideRisk {
    Negative,
    /// Raises the same urgent safety alert as a positive questionnaire item.
    Positive,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$(<$t>::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),+ }
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

text_enum!(EncounterKind { Preparation => "preparation", Integration => "integration", Ongoing => "ongoing", Monitoring => "monitoring" });
text_enum!(Modality { Individual => "individual", Group => "group", Family => "family", Other => "other" });
text_enum!(SuicideRisk { Negative => "negative", Positive => "positive" });

/// An encounter as an edge received it (text fields, as typed).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncounterInput {
    /// `preparation`, `integration`, `ongoing` or `monitoring` (in person, during a dosing
    /// session).
    pub kind: String,
    /// When it began, the clinic's wall-clock time: `YYYY-MM-DDTHH:MM`.
    pub at: String,
    /// Length in whole minutes (1–1440).
    #[schema(minimum = 1, maximum = 1440)]
    pub duration_minutes: i64,
    /// `individual`, `group`, `family` or `other`.
    pub modality: String,
    /// For preparation and integration: the dosing session it prepares for or integrates; for
    /// monitoring (required) the dosing session monitored (one of this patient's sessions).
    #[serde(default)]
    pub session_id: Option<SessionId>,
    #[serde(default)]
    pub themes: String,
    #[serde(default)]
    pub intentions: String,
    #[serde(default)]
    pub homework: String,
    /// `negative` or `positive`.
    pub suicide_risk: String,
    /// What was assessed and what was done; required when the risk is positive.
    #[serde(default)]
    pub risk_note: String,
}

/// A checked encounter, ready to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewEncounter {
    pub kind: EncounterKind,
    pub at: DateTime,
    pub duration_minutes: i64,
    pub modality: Modality,
    pub session_id: Option<SessionId>,
    pub themes: String,
    pub intentions: String,
    pub homework: String,
    pub suicide_risk: SuicideRisk,
    pub risk_note: String,
}

/// A day's minutes: an encounter cannot be longer (a bound of the calendar, not a clinical one).
const MAX_MINUTES: i64 = 24 * 60;

impl NewEncounter {
    /// Checks every field and returns every bad one at once, each named.
    pub fn parse(i: &EncounterInput) -> Result<NewEncounter, FieldErrors> {
        let mut e = FieldErrors::new();
        let kind = EncounterKind::parse(i.kind.trim());
        if kind.is_none() {
            e.push(
                "kind",
                format!("expected one of {}", EncounterKind::expected()),
            );
        }
        let modality = Modality::parse(i.modality.trim());
        if modality.is_none() {
            e.push(
                "modality",
                format!("expected one of {}", Modality::expected()),
            );
        }
        let risk = SuicideRisk::parse(i.suicide_risk.trim());
        if risk.is_none() {
            e.push(
                "suicide_risk",
                format!("expected one of {}", SuicideRisk::expected()),
            );
        }
        let at = i.at.trim().parse::<DateTime>().ok();
        if at.is_none() {
            e.push("at", "expected a date and time, YYYY-MM-DDTHH:MM");
        }
        if !(1..=MAX_MINUTES).contains(&i.duration_minutes) {
            e.push(
                "duration_minutes",
                format!("expected whole minutes from 1 to {MAX_MINUTES}"),
            );
        }
        if kind == Some(EncounterKind::Ongoing) && i.session_id.is_some() {
            e.push(
                "session_id",
                "only a preparation, integration or monitoring encounter is linked to a dosing session",
            );
        }
        if kind == Some(EncounterKind::Monitoring) && i.session_id.is_none() {
            e.push(
                "session_id",
                "a monitoring encounter names the dosing session it monitored",
            );
        }
        if risk == Some(SuicideRisk::Positive) && i.risk_note.trim().is_empty() {
            e.push(
                "risk_note",
                "required when the suicide risk is positive: what was assessed and what was done",
            );
        }
        match (kind, modality, risk, at) {
            (Some(kind), Some(modality), Some(suicide_risk), Some(at)) if e.is_empty() => {
                Ok(NewEncounter {
                    kind,
                    at,
                    duration_minutes: i.duration_minutes,
                    modality,
                    session_id: i.session_id,
                    themes: i.themes.trim().to_owned(),
                    intentions: i.intentions.trim().to_owned(),
                    homework: i.homework.trim().to_owned(),
                    suicide_risk,
                    risk_note: i.risk_note.trim().to_owned(),
                })
            }
            _ => Err(e),
        }
    }

    /// The encounter's time as stored and shown: `YYYY-MM-DDTHH:MM`.
    pub fn at_text(&self) -> String {
        self.at.strftime("%Y-%m-%dT%H:%M").to_string()
    }
}

/// A psychotherapy note's text, checked: not empty.
pub fn parse_note(text: &str) -> Result<String, FieldErrors> {
    let t = text.trim();
    if t.is_empty() {
        return Err(FieldErrors::single("text", "required: the note is empty"));
    }
    Ok(t.to_owned())
}

/// A dose given in a session, as the integration check needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dose {
    pub session_id: SessionId,
    /// The clinic's date of the dose.
    pub on: Date,
}

/// An integration encounter, as the integration check needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Integration {
    pub id: EncounterId,
    pub session_id: Option<SessionId>,
    pub on: Date,
}

/// Whether a dose had its integration session within the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IntegrationState {
    /// An integration encounter within the window.
    Held {
        #[schema(value_type = i64)]
        encounter_id: EncounterId,
    },
    /// None yet; still due by this date.
    Due {
        #[schema(value_type = String)]
        by: Date,
    },
    /// None by the end of the window.
    Missed {
        #[schema(value_type = String)]
        by: Date,
    },
    /// The site has not set the window: nothing is called due or missed.
    WindowUnset,
}

/// One dose and its integration state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IntegrationLine {
    #[schema(value_type = i64)]
    pub session_id: SessionId,
    #[schema(value_type = String)]
    pub dosed_on: Date,
    pub integration: IntegrationState,
}

impl IntegrationLine {
    pub fn missed(&self) -> bool {
        matches!(self.integration, IntegrationState::Missed { .. })
    }
}

/// For each dose, whether an integration encounter was held from the dose's day to `window_days`
/// after it (inclusive). An encounter linked to a session counts for that session's dose only;
/// an unlinked one counts for any dose whose window holds its date. `window_days` is the site's
/// setting; `None` gives [`IntegrationState::WindowUnset`] for every dose.
pub fn integration_status(
    doses: &[Dose],
    integrations: &[Integration],
    window_days: Option<i64>,
    today: Date,
) -> Vec<IntegrationLine> {
    doses
        .iter()
        .map(|d| {
            let integration = match window_days {
                None => IntegrationState::WindowUnset,
                Some(days) => {
                    let by =
                        d.on.checked_add(jiff::Span::new().days(days))
                            .unwrap_or(d.on);
                    let held = integrations.iter().find(|i| {
                        i.session_id.is_none_or(|s| s == d.session_id) && i.on >= d.on && i.on <= by
                    });
                    match held {
                        Some(i) => IntegrationState::Held { encounter_id: i.id },
                        None if today > by => IntegrationState::Missed { by },
                        None => IntegrationState::Due { by },
                    }
                }
            };
            IntegrationLine {
                session_id: d.session_id,
                dosed_on: d.on,
                integration,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn input() -> EncounterInput {
        EncounterInput {
            kind: "integration".into(),
            at: "2026-11-23T10:00".into(),
            duration_minutes: 50,
            modality: "individual".into(),
            session_id: Some(SessionId::new(3)),
            suicide_risk: "negative".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_encounter_parses() {
        let e = NewEncounter::parse(&input()).unwrap();
        assert_eq!(e.kind, EncounterKind::Integration);
        assert_eq!(e.at_text(), "2026-11-23T10:00");
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = EncounterInput {
            kind: "dosing".into(),
            at: "tomorrow".into(),
            duration_minutes: 0,
            modality: "phone".into(),
            suicide_risk: "maybe".into(),
            ..Default::default()
        };
        let e = NewEncounter::parse(&bad).unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["kind", "modality", "suicide_risk", "at", "duration_minutes"]
        );
    }

    #[test]
    fn monitoring_names_the_dosing_session() {
        let mut i = input();
        i.kind = "monitoring".into();
        i.duration_minutes = 120;
        assert_eq!(
            NewEncounter::parse(&i).unwrap().kind,
            EncounterKind::Monitoring
        );
        i.session_id = None;
        assert!(
            NewEncounter::parse(&i)
                .unwrap_err()
                .get("session_id")
                .is_some()
        );
    }

    #[test]
    fn positive_risk_needs_a_note_and_ongoing_has_no_session() {
        let mut i = input();
        i.suicide_risk = "positive".into();
        assert!(
            NewEncounter::parse(&i)
                .unwrap_err()
                .get("risk_note")
                .is_some()
        );
        let mut i = input();
        i.kind = "ongoing".into();
        assert!(
            NewEncounter::parse(&i)
                .unwrap_err()
                .get("session_id")
                .is_some()
        );
    }

    #[test]
    fn integration_is_held_due_missed_or_unknown() {
        let doses = [
            Dose {
                session_id: SessionId::new(1),
                on: date(2026, 11, 2),
            },
            Dose {
                session_id: SessionId::new(2),
                on: date(2026, 11, 20),
            },
            Dose {
                session_id: SessionId::new(3),
                on: date(2026, 11, 21),
            },
        ];
        let held = [Integration {
            id: EncounterId::new(9),
            session_id: Some(SessionId::new(3)),
            on: date(2026, 11, 22),
        }];
        let today = date(2026, 11, 22);
        let lines = integration_status(&doses, &held, Some(3), today);
        assert_eq!(
            lines[0].integration,
            IntegrationState::Missed {
                by: date(2026, 11, 5)
            }
        );
        // A linked encounter counts for its own session only.
        assert_eq!(
            lines[1].integration,
            IntegrationState::Due {
                by: date(2026, 11, 23)
            }
        );
        assert_eq!(
            lines[2].integration,
            IntegrationState::Held {
                encounter_id: EncounterId::new(9)
            }
        );
        assert!(
            integration_status(&doses, &held, None, today)
                .iter()
                .all(|l| l.integration == IntegrationState::WindowUnset)
        );
    }
}
