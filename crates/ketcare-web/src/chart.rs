//! The patient header every patient page carries, and the chart's tabs: who this is (name, MRN,
//! date of birth, age and age band), the facts a clinician checks before acting (weight and
//! when it was measured, allergies), and what needs attention (open safety alerts, consent).
//!
//! Every fact is read from the record through the audited store, as the page's own content is;
//! a part the signed-in role may not read is left out rather than failing the page.

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use jiff::Timestamp;
use ketcare_core::{PatientId, Permission};
use ketcare_ops::consent::ConsentStatus;

/// One protocol's consent status for a patient: (protocol, document version, in force, words).
#[derive(Debug, Clone)]
pub struct ConsentLine {
    pub protocol_id: String,
    /// The protocol's title from the library (its id when the library no longer has it).
    pub title: String,
    pub document_version: String,
    pub in_force: bool,
    pub text: String,
}

/// Each protocol that has a consent document, with whether this patient's consent is in force
/// for the protocol's current version at `at`.
pub async fn consent_lines(
    s: &AppState,
    p: &Principal,
    id: PatientId,
    at: Timestamp,
) -> Result<Vec<ConsentLine>, AppError> {
    let docs = s.store.consent_documents(&p.actor).await?;
    let mut out: Vec<ConsentLine> = Vec::new();
    for d in &docs {
        if out.iter().any(|l| l.protocol_id == d.protocol_id) {
            continue;
        }
        let lib = s.library();
        let current = lib.get(&d.protocol_id).ok();
        let version = current.map(|p| p.version).unwrap_or(d.protocol_version);
        let title = current
            .map(|p| p.title.clone())
            .unwrap_or_else(|| d.protocol_id.clone());
        let st = s
            .store
            .consent_status(&p.actor, id, &d.protocol_id, version, at)
            .await?;
        let (in_force, text) = match st {
            ConsentStatus::Valid { expires_at, .. } => (
                true,
                match expires_at {
                    Some(e) => format!("valid until {}", e.strftime("%Y-%m-%d")),
                    None => "valid".into(),
                },
            ),
            ConsentStatus::Invalid { message, .. } => (false, message),
        };
        out.push(ConsentLine {
            protocol_id: d.protocol_id.clone(),
            title,
            document_version: format!("v{}", d.version),
            in_force,
            text,
        });
    }
    Ok(out)
}

/// The header shown at the top of every patient page.
#[derive(Debug, Clone)]
pub struct PatientHeader {
    pub id: i64,
    pub name: String,
    pub mrn: String,
    pub date_of_birth: String,
    pub age: String,
    pub band: String,
    pub minor: bool,
    /// "72.0 kg (measured 2026-11-02)" or "not recorded".
    pub weight: String,
    /// Allergies in words, or empty when none are recorded.
    pub allergies: Vec<String>,
    pub open_alerts: usize,
    /// Protocols whose consent is in force, in words ("ketamine-iv-trd: valid until …").
    pub consent_in_force: Vec<String>,
    /// Whether any consent document exists at all (so "none in force" means something).
    pub consent_known: bool,
    /// Which tab is this page: chart, measures, consent, screen, dose or a record page ("").
    pub tab: &'static str,
    pub can_screen: bool,
    pub can_order: bool,
    pub can_run: bool,
}

impl PatientHeader {
    pub fn allergies_text(&self) -> String {
        if self.allergies.is_empty() {
            "none recorded".into()
        } else {
            self.allergies.join(", ")
        }
    }

    pub fn consent_text(&self) -> String {
        if !self.consent_known {
            "no consent documents on file".into()
        } else if self.consent_in_force.is_empty() {
            "none in force".into()
        } else {
            self.consent_in_force.join("; ")
        }
    }
}

/// Loads the header for patient `id` (an audited read of the patient, alerts and consent).
pub async fn header(
    s: &AppState,
    p: &Principal,
    id: PatientId,
    tab: &'static str,
) -> Result<PatientHeader, AppError> {
    let patient = s.store.get_patient(&p.actor, id).await?;
    let r = &patient.record;
    let day = r.day_of_care(s.today(), &s.bands);
    let open_alerts = ketcare_app::measures::patient_open_alerts(s.store.as_ref(), &p.actor, id)
        .await
        .len();
    let at = Timestamp::from_second(s.now()).map_err(|_| AppError::Internal)?;
    // Consent is part of the header only for roles that may read it; a refusal is not an error.
    let lines = consent_lines(s, p, id, at).await.unwrap_or_default();
    Ok(PatientHeader {
        id: id.get(),
        name: format!("{} {}", r.given_name, r.family_name),
        mrn: r.mrn.clone(),
        date_of_birth: r.date_of_birth.to_string(),
        age: day.map(|d| d.age.to_string()).unwrap_or_else(|| "—".into()),
        band: day
            .map(|d| d.band.to_string())
            .unwrap_or_else(|| "—".into()),
        minor: day.is_some_and(|d| d.band.is_minor()),
        weight: r
            .weight
            .map(|w| format!("{} (measured {})", w.value, w.measured_on))
            .unwrap_or_else(|| "not recorded".into()),
        allergies: r.allergies.clone(),
        open_alerts,
        consent_known: !lines.is_empty(),
        consent_in_force: lines
            .iter()
            .filter(|l| l.in_force)
            .map(|l| format!("{}: {}", l.title, l.text))
            .collect(),
        tab,
        can_screen: p.user.role.allows(Permission::Screen),
        can_order: p.user.role.allows(Permission::OrderDose),
        can_run: p.user.role.allows(Permission::RunSession),
    })
}
