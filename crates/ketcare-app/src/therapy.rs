//! Psychotherapy integration: recording therapy encounters (a positive risk assessment raises the
//! urgent safety alert), the patient's integration status after each dose against the site's
//! window, and the psychotherapy notes (whose readers the store decides).

use crate::Result;
use crate::worklists::{Queue, WorkItem};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use ketcare_core::therapy::{
    Dose, EncounterInput, EncounterKind, Integration, IntegrationLine, IntegrationState,
    NewEncounter, SuicideRisk, integration_status,
};
use ketcare_core::{Actor, EncounterId, PatientId, Permission, TherapyNoteId};
use ketcare_store::measures::NewAlert;
use ketcare_store::therapy::{StoredEncounter, TherapyNote};
use ketcare_store::{SessionRecord, Store};
use serde::Serialize;

pub use ketcare_store::therapy::NOTES_SHARED_SETTING;

/// Site setting: how many days after a dose its integration session is due (the reference
/// gives no number; unset, nothing is called due or missed and the pages say so).
pub const INTEGRATION_WINDOW_DAYS: &str = "therapy.integration_window_days";

/// Records an encounter's structured part. A positive suicide risk raises the same urgent
/// safety alert a questionnaire's suicide-risk item raises, in the encounter's transaction.
pub async fn record_encounter(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    input: &EncounterInput,
) -> Result<StoredEncounter> {
    let e = NewEncounter::parse(input).map_err(crate::Error::Invalid)?;
    let alert = (e.suicide_risk == SuicideRisk::Positive).then(|| NewAlert {
        item: 1,
        answer: 1,
        detail: format!(
            "Suicide risk positive at a {} therapy encounter ({}): {}",
            e.kind.as_str(),
            e.at_text(),
            e.risk_note
        ),
    });
    Ok(store
        .record_encounter(actor, patient, &e, alert.as_ref())
        .await?)
}

/// A patient's therapy: the encounters and, for each dose given, whether its integration
/// session was held within the site's window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TherapyOverview {
    pub encounters: Vec<StoredEncounter>,
    /// The site's window in days; `None`: the site has not set it.
    pub window_days: Option<i64>,
    pub integration: Vec<IntegrationLine>,
    /// How many doses had no integration session within the window.
    pub missed: usize,
    /// The patient's sessions an encounter may be linked to, newest first.
    pub sessions: Vec<SessionChoice>,
}

/// A session an encounter may prepare for or integrate.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionChoice {
    #[schema(value_type = i64)]
    pub id: ketcare_core::SessionId,
    /// "dosed 2026-11-21" or "scheduled 2026-11-24".
    pub label: String,
}

fn encounter_date(at: &str) -> Option<Date> {
    at.parse::<DateTime>().ok().map(|d| d.date())
}

/// The doses the sessions gave, each on its date at its own site.
fn doses_of(sessions: &[SessionRecord], zones: &crate::zones::Zones) -> Vec<Dose> {
    sessions
        .iter()
        .filter_map(|s| {
            s.session.dose_start().map(|t| Dose {
                session_id: s.id,
                on: t.to_zoned(zones.of(s.site_id)).date(),
            })
        })
        .collect()
}

/// The integration encounters, as the integration check reads them.
fn integrations_of(encounters: &[StoredEncounter]) -> Vec<Integration> {
    encounters
        .iter()
        .filter(|e| e.kind == EncounterKind::Integration)
        .filter_map(|e| {
            encounter_date(&e.at).map(|on| Integration {
                id: e.id,
                session_id: e.session_id,
                on,
            })
        })
        .collect()
}

/// The site's integration window in days (`None`: not set).
async fn window_days(store: &dyn Store) -> Result<Option<i64>> {
    let (settings, _) = crate::clinical::settings(store).await?;
    Ok(settings
        .value(INTEGRATION_WINDOW_DAYS)
        .map(|d| d.round() as i64))
}

/// How many days past the end of its window a missed integration stays on the home queue: the
/// reach of a working list, not a clinical limit.
pub const QUEUE_MISSED_FOR_DAYS: i64 = 7;

/// The home queue of integration sessions due or missed (doses from the window plus
/// [`QUEUE_MISSED_FOR_DAYS`] back). Until the site sets the window it says so and lists nothing.
pub async fn integration_queue(
    store: &dyn Store,
    actor: &Actor,
    now: Timestamp,
    zone: &TimeZone,
) -> Result<Queue> {
    let today = now.to_zoned(zone.clone()).date();
    let zones = crate::zones::Zones::load(store).await?;
    let window = window_days(store).await?;
    let mut items = Vec::new();
    if let Some(days) = window {
        let since = now
            .checked_sub(jiff::SignedDuration::from_hours(
                24 * (days + QUEUE_MISSED_FOR_DAYS + 1),
            ))
            .unwrap_or(now);
        let (sessions, encounters) = store.integration_watch(actor, &since.to_string()).await?;
        let ids: Vec<PatientId> = sessions.iter().map(|s| s.patient_id).collect();
        let people = crate::patients::labels(store, actor, &ids).await?;
        let oldest = today
            .checked_sub(jiff::Span::new().days(days + QUEUE_MISSED_FOR_DAYS))
            .unwrap_or(today);
        for s in &sessions {
            let doses: Vec<Dose> = doses_of(std::slice::from_ref(s), &zones)
                .into_iter()
                .filter(|d| d.on >= oldest)
                .collect();
            let theirs: Vec<StoredEncounter> = encounters
                .iter()
                .filter(|e| e.patient_id == s.patient_id)
                .cloned()
                .collect();
            let mine = integrations_of(&theirs);
            for line in integration_status(&doses, &mine, window, today) {
                let (detail, urgent) = match line.integration {
                    IntegrationState::Due { by } => (format!("due by {by}"), false),
                    IntegrationState::Missed { by } => (format!("missed: none by {by}"), true),
                    _ => continue,
                };
                items.push(WorkItem {
                    label: people
                        .get(&s.patient_id)
                        .cloned()
                        .unwrap_or_else(|| "a patient".into()),
                    detail: format!(
                        "dosed {} (session {}) — integration {detail}",
                        line.dosed_on, line.session_id
                    ),
                    href: format!("/patients/{}/therapy", s.patient_id),
                    urgent,
                });
            }
        }
    }
    Ok(Queue {
        id: "integration-due",
        title: "Integration sessions due or missed",
        empty: if window.is_some() {
            "No dose waits for its integration session."
        } else {
            "The site has not set the integration window (setting therapy.integration_window_days)."
        },
        items,
    })
}

/// The encounters (an audited read) and the integration status of each dose the patient's
/// sessions record.
pub async fn overview(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    today: Date,
) -> Result<TherapyOverview> {
    let encounters = store.patient_encounters(actor, patient).await?;
    let sessions = store.patient_sessions(actor, patient).await?;
    let zones = crate::zones::Zones::load(store).await?;
    let choices = sessions
        .iter()
        .map(|s| SessionChoice {
            id: s.id,
            label: match s.session.dose_start() {
                Some(t) => format!("dosed {}", t.to_zoned(zones.of(s.site_id)).date()),
                None => format!(
                    "scheduled {}",
                    s.session.scheduled_for.to_zoned(zones.of(s.site_id)).date()
                ),
            },
        })
        .collect();
    let doses = doses_of(&sessions, &zones);
    let held = integrations_of(&encounters);
    let window_days = window_days(store).await?;
    let integration = integration_status(&doses, &held, window_days, today);
    let missed = integration.iter().filter(|l| l.missed()).count();
    Ok(TherapyOverview {
        encounters,
        window_days,
        integration,
        missed,
        sessions: choices,
    })
}

/// One encounter's structured part (never its notes).
pub async fn encounter(
    store: &dyn Store,
    actor: &Actor,
    id: EncounterId,
) -> Result<StoredEncounter> {
    Ok(store.encounter(actor, id).await?)
}

/// The notes an encounter's page shows the actor: none asked for when the role holds no right
/// to psychotherapy notes (nothing is even looked up), else those the store lets them read.
pub async fn notes_for_page(
    store: &dyn Store,
    actor: &Actor,
    id: EncounterId,
) -> Result<Vec<TherapyNote>> {
    if !actor.may(Permission::PsychotherapyNotes) {
        return Ok(Vec::new());
    }
    notes(store, actor, id).await
}

/// The psychotherapy notes of an encounter the actor may read (the store decides who).
pub async fn notes(store: &dyn Store, actor: &Actor, id: EncounterId) -> Result<Vec<TherapyNote>> {
    Ok(store.therapy_notes(actor, id).await?)
}

/// Appends a psychotherapy note (or an amendment of one of the actor's own notes).
pub async fn add_note(
    store: &dyn Store,
    actor: &Actor,
    id: EncounterId,
    text: &str,
    amends: Option<TherapyNoteId>,
) -> Result<TherapyNote> {
    let text = ketcare_core::therapy::parse_note(text).map_err(crate::Error::Invalid)?;
    Ok(store.add_therapy_note(actor, id, &text, amends).await?)
}
