//! Psychotherapy integration: recording therapy encounters (a positive risk assessment raises the
//! urgent safety alert), the patient's integration status after each dose against the site's
//! window, and the psychotherapy notes (whose readers the store decides).

use crate::Result;
use jiff::civil::{Date, DateTime};
use ketcare_core::therapy::{
    Dose, EncounterInput, EncounterKind, Integration, IntegrationLine, NewEncounter, SuicideRisk,
    integration_status,
};
use ketcare_core::{Actor, EncounterId, PatientId, Permission, TherapyNoteId};
use ketcare_store::Store;
use ketcare_store::measures::NewAlert;
use ketcare_store::therapy::{StoredEncounter, TherapyNote};
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

/// The encounters and the integration status (audited reads of encounters and sessions).
pub async fn overview(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    today: Date,
) -> Result<TherapyOverview> {
    let encounters = store.patient_encounters(actor, patient).await?;
    let sessions = store.patient_sessions(actor, patient).await?;
    let zone = jiff::tz::TimeZone::system();
    let choices = sessions
        .iter()
        .map(|s| SessionChoice {
            id: s.id,
            label: match s.session.dose_start() {
                Some(t) => format!("dosed {}", t.to_zoned(zone.clone()).date()),
                None => format!(
                    "scheduled {}",
                    s.session.scheduled_for.to_zoned(zone.clone()).date()
                ),
            },
        })
        .collect();
    let doses: Vec<Dose> = sessions
        .iter()
        .filter_map(|s| {
            s.session.dose_start().map(|t| Dose {
                session_id: s.id,
                on: t.to_zoned(zone.clone()).date(),
            })
        })
        .collect();
    let held: Vec<Integration> = encounters
        .iter()
        .filter(|e| e.kind == EncounterKind::Integration)
        .filter_map(|e| {
            encounter_date(&e.at).map(|on| Integration {
                id: e.id,
                session_id: e.session_id,
                on,
            })
        })
        .collect();
    let (settings, _) = crate::clinical::settings(store).await?;
    let window_days = settings
        .value(INTEGRATION_WINDOW_DAYS)
        .map(|d| d.round() as i64);
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
