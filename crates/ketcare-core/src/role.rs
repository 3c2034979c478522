//! Roles, permissions and the least-privilege table that joins them.

use crate::ids::UserId;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Administrator,
    Prescriber,
    Nurse,
    Pharmacist,
    Therapist,
    Scheduler,
    Researcher,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Self::Administrator,
        Self::Prescriber,
        Self::Nurse,
        Self::Pharmacist,
        Self::Therapist,
        Self::Scheduler,
        Self::Researcher,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administrator => "administrator",
            Self::Prescriber => "prescriber",
            Self::Nurse => "nurse",
            Self::Pharmacist => "pharmacist",
            Self::Therapist => "therapist",
            Self::Scheduler => "scheduler",
            Self::Researcher => "researcher",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The least-privilege table. Every route and every store call asks this one function.
    ///
    /// - Minimum necessary: a patient's demographics (name, MRN, date of birth, sex, contact,
    ///   guardians) are read by the care team and the scheduler, who books; the clinical content
    ///   (history, medications, allergies, weight, indications, questionnaires, alerts,
    ///   screenings, orders, sessions, consent records) only by the clinicians: prescriber, nurse,
    ///   pharmacist (dispensing needs the patient and weight) and therapist.
    /// - Records are created and edited by the staff who do intake: prescriber, nurse, scheduler;
    ///   a scheduler's edit changes the demographics only (the store keeps the clinical part).
    /// - The administrator manages accounts and reads the audit log but not clinical records.
    /// - The researcher never sees an identified record: the de-identified registry only
    ///   (`RegistryRead`, theirs alone). The program dashboard (the same outcome tables for the
    ///   whole clinic, identified) is the prescriber's (`ProgramOutcomes`).
    /// - Screening: prescriber and nurse; dose orders and clinical overrides: prescriber;
    ///   second-person verification: prescriber, nurse or pharmacist (never the order's author).
    /// - Questionnaires, links, opioid lists and closing safety alerts: the clinicians who follow the
    ///   patient (prescriber, nurse, therapist). Sessions are run and signed by prescriber or nurse.
    /// - Booking: scheduler, nurse, prescriber; consent is recorded by a clinician.
    /// - The Schedule III ledger: read, draw, waste and witness by prescriber, nurse, pharmacist;
    ///   receipt, counts, discrepancies, destruction and loss reports by the pharmacist alone.
    /// - Superbills: scheduler and prescriber.
    /// - Therapy encounters (their structured part belongs to the medical record): written by
    ///   therapists and prescribers, read with `ClinicalRead`. Psychotherapy notes (HIPAA
    ///   §164.501) are written and read by therapists only, and the store narrows a read further
    ///   to the note's author and, where the site allows, the patient's treating therapists.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match p {
            PatientRead => matches!(
                self,
                Prescriber | Nurse | Pharmacist | Therapist | Scheduler
            ),
            ClinicalRead => matches!(self, Prescriber | Nurse | Pharmacist | Therapist),
            PatientWrite => matches!(self, Prescriber | Nurse | Scheduler),
            AuditRead | UserAdmin | SiteSettingsWrite => self == Administrator,
            Screen => matches!(self, Prescriber | Nurse),
            OrderDose | OverrideClinical => self == Prescriber,
            VerifyDose => matches!(self, Prescriber | Nurse | Pharmacist),
            RecordMeasures => matches!(self, Prescriber | Nurse | Therapist),
            ResolveSafetyAlert => matches!(self, Prescriber | Nurse | Therapist),
            RunSession | SignSession => matches!(self, Prescriber | Nurse),
            Schedule => matches!(self, Scheduler | Nurse | Prescriber),
            RecordConsent => matches!(self, Prescriber | Nurse),
            LedgerRead => matches!(self, Pharmacist | Prescriber | Nurse),
            LedgerDraw => matches!(self, Prescriber | Nurse | Pharmacist),
            LedgerManage => self == Pharmacist,
            BillingRead => matches!(self, Scheduler | Prescriber),
            RecordTherapy => matches!(self, Therapist | Prescriber),
            PsychotherapyNotes => self == Therapist,
            RegistryRead => self == Researcher,
            ProgramOutcomes => self == Prescriber,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Permission {
    /// A patient's demographics: name, MRN, date of birth, sex, contact, guardians.
    PatientRead,
    /// A patient's clinical content: history, medications, allergies, weight and height,
    /// indications, questionnaires, alerts, screenings, orders, sessions and consent records.
    ClinicalRead,
    PatientWrite,
    AuditRead,
    UserAdmin,
    /// Change site settings (U values, narrowed limits).
    SiteSettingsWrite,
    /// Run an eligibility screening for a patient.
    Screen,
    /// Calculate and sign a dose order.
    OrderDose,
    /// Override a relative eligibility finding or a soft dose limit, with a reason.
    OverrideClinical,
    /// Verify a dose order as the second clinician.
    VerifyDose,
    // Measurement-based care
    /// Enter questionnaire answers, send patient links, keep the opioid list.
    RecordMeasures,
    /// Document the follow-up that closes a suicide-risk alert.
    ResolveSafetyAlert,
    // Treatment sessions
    /// Run a session: check-in, checklist, administration, vitals, scores, discharge.
    RunSession,
    /// Sign a session record (locks it; corrections become addenda).
    SignSession,
    // Operations
    /// Book, move and cancel sessions on chairs and staff.
    Schedule,
    /// Record consent and assent.
    RecordConsent,
    /// Read the controlled-substance ledger.
    LedgerRead,
    /// Draw, give and waste (or witness waste) at the chair.
    LedgerDraw,
    /// Receive stock, count, resolve discrepancies, destroy stock.
    LedgerManage,
    /// Read superbills and estimates.
    BillingRead,
    // Psychotherapy integration
    /// Record a therapy encounter's structured part (kind, modality, themes, risk assessment).
    RecordTherapy,
    /// Write and read psychotherapy notes. Holding it is necessary, not sufficient: the store
    /// shows a note only to its author and, where the site allows, the patient's other treating
    /// therapists.
    PsychotherapyNotes,
    // Research
    /// Read the de-identified research registry (study ids, day offsets, Safe Harbor ages; no
    /// identifier of a patient).
    RegistryRead,
    /// The program dashboard: the registry's outcome tables for the whole clinic, identified
    /// (names and MRNs beside the outcomes; never the registry's study ids). The prescriber —
    /// the clinic's medical director is one.
    ProgramOutcomes,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (login page, health check, API description).
    Public,
    /// Any signed-in user.
    SignedIn,
    /// A signed-in user whose role allows the permission.
    Requires(Permission),
}

impl Access {
    pub fn admits(self, role: Option<Role>) -> bool {
        match (self, role) {
            (Access::Public, _) => true,
            (_, None) => false,
            (Access::SignedIn, Some(_)) => true,
            (Access::Requires(p), Some(r)) => r.allows(p),
        }
    }
}

/// The signed-in person (or system process) doing something, as the audit log records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub user_id: Option<UserId>,
    pub username: String,
    pub role: Option<Role>,
    /// Where the request came from ("cli" or "system" for local processes).
    pub address: String,
}

impl Actor {
    pub fn user(user_id: UserId, username: &str, role: Role, address: &str) -> Self {
        Self {
            user_id: Some(user_id),
            username: username.to_owned(),
            role: Some(role),
            address: address.to_owned(),
        }
    }

    /// A local process (demo seeding, migrations) acting with a role's rights.
    pub fn system(role: Role) -> Self {
        Self {
            user_id: None,
            username: "system".into(),
            role: Some(role),
            address: "local".into(),
        }
    }

    pub fn may(&self, p: Permission) -> bool {
        self.role.is_some_and(|r| r.allows(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn researcher_never_reads_identified_records() {
        assert!(!Role::Researcher.allows(Permission::PatientRead));
        assert!(!Role::Administrator.allows(Permission::PatientRead));
    }

    #[test]
    fn writers_can_read() {
        for r in Role::ALL {
            if r.allows(Permission::PatientWrite) {
                assert!(r.allows(Permission::PatientRead), "{r}");
            }
        }
    }

    #[test]
    fn clinical_content_is_a_subset_of_the_record() {
        for r in Role::ALL {
            if r.allows(Permission::ClinicalRead) {
                assert!(r.allows(Permission::PatientRead), "{r}");
            }
        }
        assert!(Role::Scheduler.allows(Permission::PatientRead));
        assert!(!Role::Scheduler.allows(Permission::ClinicalRead));
        assert!(!Role::Researcher.allows(Permission::ClinicalRead));
        assert!(!Role::Administrator.allows(Permission::ClinicalRead));
    }

    #[test]
    fn psychotherapy_notes_are_for_therapists_alone() {
        for r in Role::ALL {
            assert_eq!(
                r.allows(Permission::PsychotherapyNotes),
                r == Role::Therapist,
                "{r}"
            );
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
