//! Consent and assent: versioned consent documents per protocol with the content the program
//! requires, signatures by the patient or, for a minor, a guardian with the minor's assent, and
//! the one question a session asks before it starts: [`consent_valid`].

use jiff::Timestamp;
use ketcare_core::{ConsentDocumentId, ConsentId};
use serde::{Deserialize, Serialize};

/// A part every consent document must contain (the list: off-label use where it applies,
/// abuse potential, common and serious side effects, alternatives, that ketamine is not a
/// standalone treatment, no driving until the next day [R2, R59]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    OffLabelUse,
    AbusePotential,
    SideEffects,
    Alternatives,
    NotStandalone,
    NoDrivingUntilNextDay,
}

impl SectionKind {
    pub const ALL: [SectionKind; 6] = [
        Self::OffLabelUse,
        Self::AbusePotential,
        Self::SideEffects,
        Self::Alternatives,
        Self::NotStandalone,
        Self::NoDrivingUntilNextDay,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OffLabelUse => "off_label_use",
            Self::AbusePotential => "abuse_potential",
            Self::SideEffects => "side_effects",
            Self::Alternatives => "alternatives",
            Self::NotStandalone => "not_standalone",
            Self::NoDrivingUntilNextDay => "no_driving_until_next_day",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::OffLabelUse => "Off-label use",
            Self::AbusePotential => "Abuse potential",
            Self::SideEffects => "Common and serious side effects",
            Self::Alternatives => "Alternatives",
            Self::NotStandalone => "Not a standalone treatment",
            Self::NoDrivingUntilNextDay => "No driving until the next day",
        }
    }
}

/// The sections a document must have: all of them, off-label use only where the protocol is
/// off-label.
pub fn required_sections(off_label: bool) -> Vec<SectionKind> {
    SectionKind::ALL
        .into_iter()
        .filter(|k| off_label || *k != SectionKind::OffLabelUse)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Section {
    pub kind: SectionKind,
    pub text: String,
}

/// One version of a protocol's consent document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentDocument {
    pub id: ConsentDocumentId,
    pub protocol_id: String,
    /// The protocol version this document was written for.
    pub protocol_version: u32,
    pub version: u32,
    pub title: String,
    pub sections: Vec<Section>,
    /// How long a signature stays valid, in days; `None` = until the document or protocol changes.
    /// The reference gives no period, so this is the site's choice.
    pub valid_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field}: {message}")]
pub struct DocumentError {
    pub field: String,
    pub message: String,
}

impl ConsentDocument {
    /// Refuses a document that lacks a required section or has an empty one.
    pub fn check(&self, off_label: bool) -> Result<(), DocumentError> {
        if self.title.trim().is_empty() {
            return Err(DocumentError {
                field: "title".into(),
                message: "a consent document needs a title".into(),
            });
        }
        for k in required_sections(off_label) {
            match self.sections.iter().find(|s| s.kind == k) {
                None => {
                    return Err(DocumentError {
                        field: format!("sections.{}", k.as_str()),
                        message: format!("the document must cover: {}", k.label()),
                    });
                }
                Some(s) if s.text.trim().is_empty() => {
                    return Err(DocumentError {
                        field: format!("sections.{}", k.as_str()),
                        message: format!("the section \"{}\" is empty", k.label()),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Who signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signer {
    Patient,
    /// A guardian of record, named by id. The name and relationship stored are the guardian
    /// record's: a request may omit them; typed ones that contradict the record are refused.
    Guardian {
        guardian_id: i64,
        #[serde(default)]
        name: String,
        #[serde(default)]
        relationship: String,
    },
}

/// A minor's assent, recorded beside the guardian's consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Assent {
    /// The minor assented; the clinician who obtained it is recorded.
    Given { obtained_by: i64 },
    /// The minor cannot assent (for example an infant); the clinician records why.
    NotCapable { obtained_by: i64, reason: String },
}

/// A signed consent, tied to the document version and protocol version it was given for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentSignature {
    pub id: ConsentId,
    pub patient_id: i64,
    pub document_id: ConsentDocumentId,
    pub protocol_id: String,
    pub document_version: u32,
    pub protocol_version: u32,
    pub signer: Signer,
    pub assent: Option<Assent>,
    #[schema(value_type = String)]
    pub signed_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<String>)]
    pub withdrawn_at: Option<Timestamp>,
    /// Who recorded the withdrawal (username).
    #[serde(default)]
    pub withdrawn_by: Option<String>,
    /// Why the consent was withdrawn, as recorded.
    #[serde(default)]
    pub withdrawal_reason: Option<String>,
    pub recorded_by: i64,
}

/// Why a signature cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field}: {message}")]
pub struct SignError {
    pub field: String,
    pub message: String,
}

/// Checks who may sign: a minor needs a guardian of record and an assent entry; an adult signs
/// for themself. `guardians` are the patient's guardians of record (id).
pub fn check_signer(
    is_minor: bool,
    signer: &Signer,
    assent: Option<&Assent>,
    guardians: &[i64],
) -> Result<(), SignError> {
    match (is_minor, signer) {
        (false, Signer::Patient) => Ok(()),
        (false, Signer::Guardian { .. }) => Err(SignError {
            field: "signer".into(),
            message: "an adult patient signs their own consent".into(),
        }),
        (true, Signer::Patient) => Err(SignError {
            field: "signer".into(),
            message: "a minor's consent is signed by a guardian of record".into(),
        }),
        (true, Signer::Guardian { guardian_id, .. }) => {
            if !guardians.contains(guardian_id) {
                return Err(SignError {
                    field: "guardian_id".into(),
                    message: "this person is not a guardian of record of the patient".into(),
                });
            }
            match assent {
                None => Err(SignError {
                    field: "assent".into(),
                    message: "record the minor's assent (or why they cannot give it)".into(),
                }),
                Some(Assent::NotCapable { reason, .. }) if reason.trim().is_empty() => {
                    Err(SignError {
                        field: "assent_reason".into(),
                        message: "say why the minor cannot assent".into(),
                    })
                }
                Some(_) => Ok(()),
            }
        }
    }
}

/// The expiry of a signature given at `at` under `doc`.
pub fn expiry(doc: &ConsentDocument, at: Timestamp) -> Option<Timestamp> {
    doc.valid_days.and_then(|d| {
        at.checked_add(jiff::SignedDuration::from_hours(i64::from(d) * 24))
            .ok()
    })
}

/// The answer to "may this patient be treated under this protocol now, as far as consent goes?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConsentStatus {
    Valid {
        signature_id: ConsentId,
        #[schema(value_type = Option<String>)]
        expires_at: Option<Timestamp>,
    },
    Invalid {
        reason: InvalidReason,
        message: String,
    },
}

impl ConsentStatus {
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvalidReason {
    NoConsent,
    NoCurrentDocument,
    Expired,
    Withdrawn,
    OldDocumentVersion,
    ProtocolChanged,
    MinorWithoutGuardian,
    MinorWithoutAssent,
    /// The guardian who signed for a minor is no longer a guardian of record.
    GuardianUnlinked,
}

/// What `consent_valid` needs to know about the patient and protocol at time `at`.
#[derive(Debug, Clone)]
pub struct ConsentQuery<'a> {
    pub patient_id: i64,
    /// Whether the patient is a minor on the day of care.
    pub is_minor: bool,
    pub protocol_id: &'a str,
    pub protocol_version: u32,
    /// The protocol's current consent document, if one exists.
    pub current_document: Option<&'a ConsentDocument>,
    /// The patient's guardians of record now (id, name): a minor's consent signed by a
    /// guardian who has since been unlinked (or whose id now names someone else) is no longer
    /// valid.
    pub guardians: &'a [(i64, String)],
    pub at: Timestamp,
}

/// Is consent valid for this patient and protocol at time `at`? Yes with the signature, or no
/// with the reason. The newest signature for the protocol decides; an older one does not
/// revive when the newest is withdrawn.
pub fn consent_valid(q: &ConsentQuery<'_>, signatures: &[ConsentSignature]) -> ConsentStatus {
    let invalid = |reason, message: String| ConsentStatus::Invalid { reason, message };
    let Some(doc) = q.current_document else {
        return invalid(
            InvalidReason::NoCurrentDocument,
            format!("protocol {} has no consent document", q.protocol_id),
        );
    };
    let newest = signatures
        .iter()
        .filter(|s| {
            s.patient_id == q.patient_id && s.protocol_id == q.protocol_id && s.signed_at <= q.at
        })
        .max_by_key(|s| (s.signed_at, s.id));
    let Some(s) = newest else {
        return invalid(
            InvalidReason::NoConsent,
            "no consent has been signed for this protocol".into(),
        );
    };
    if let Some(w) = s.withdrawn_at.filter(|w| *w <= q.at) {
        let mut message = format!("consent was withdrawn on {}", w.strftime("%Y-%m-%d"));
        if let Some(by) = &s.withdrawn_by {
            message.push_str(&format!(" (recorded by {by})"));
        }
        if let Some(why) = &s.withdrawal_reason {
            message.push_str(&format!(": {why}"));
        }
        return invalid(InvalidReason::Withdrawn, message);
    }
    if s.expires_at.is_some_and(|e| e <= q.at) {
        return invalid(
            InvalidReason::Expired,
            format!(
                "consent expired on {}",
                s.expires_at.map(|e| e.to_string()).unwrap_or_default()
            ),
        );
    }
    if s.document_id != doc.id || s.document_version != doc.version {
        return invalid(
            InvalidReason::OldDocumentVersion,
            format!(
                "signed document version {}; the current version is {}: re-consent",
                s.document_version, doc.version
            ),
        );
    }
    if s.protocol_version != q.protocol_version {
        return invalid(
            InvalidReason::ProtocolChanged,
            format!(
                "signed for protocol version {}; the protocol is now version {}: re-consent",
                s.protocol_version, q.protocol_version
            ),
        );
    }
    if q.is_minor {
        if !matches!(s.signer, Signer::Guardian { .. }) {
            return invalid(
                InvalidReason::MinorWithoutGuardian,
                "a minor's consent must be signed by a guardian".into(),
            );
        }
        if let Signer::Guardian {
            guardian_id, name, ..
        } = &s.signer
            && !q
                .guardians
                .iter()
                .any(|(id, n)| id == guardian_id && n.trim().eq_ignore_ascii_case(name.trim()))
        {
            return invalid(
                InvalidReason::GuardianUnlinked,
                format!(
                    "signed by {} (guardian {guardian_id}), who is no longer a guardian of record: a guardian of record must re-consent",
                    if name.is_empty() { "a guardian" } else { name }
                ),
            );
        }
        if s.assent.is_none() {
            return invalid(
                InvalidReason::MinorWithoutAssent,
                "the minor's assent is not recorded".into(),
            );
        }
    }
    ConsentStatus::Valid {
        signature_id: s.id,
        expires_at: s.expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(version: u32, valid_days: Option<u32>) -> ConsentDocument {
        ConsentDocument {
            id: ConsentDocumentId::new(1),
            protocol_id: "trd-adult-iv-ketamine".into(),
            protocol_version: 1,
            version,
            title: "IV ketamine consent".into(),
            sections: SectionKind::ALL
                .into_iter()
                .map(|kind| Section {
                    kind,
                    text: format!("{} text", kind.label()),
                })
                .collect(),
            valid_days,
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn sig(d: &ConsentDocument, signer: Signer, assent: Option<Assent>) -> ConsentSignature {
        let at = ts("2026-12-01T10:00:00Z");
        ConsentSignature {
            id: ConsentId::new(1),
            patient_id: 5,
            document_id: d.id,
            protocol_id: d.protocol_id.clone(),
            document_version: d.version,
            protocol_version: d.protocol_version,
            signer,
            assent,
            signed_at: at,
            expires_at: expiry(d, at),
            withdrawn_at: None,
            withdrawn_by: None,
            withdrawal_reason: None,
            recorded_by: 2,
        }
    }

    fn query<'a>(d: &'a ConsentDocument, minor: bool, at: &str) -> ConsentQuery<'a> {
        ConsentQuery {
            patient_id: 5,
            is_minor: minor,
            protocol_id: "trd-adult-iv-ketamine",
            protocol_version: 1,
            current_document: Some(d),
            guardians: Box::leak(Box::new([(3, "Ann".to_owned())])),
            at: ts(at),
        }
    }

    fn reason(s: ConsentStatus) -> Option<InvalidReason> {
        match s {
            ConsentStatus::Invalid { reason, .. } => Some(reason),
            ConsentStatus::Valid { .. } => None,
        }
    }

    #[test]
    fn none_signed() {
        let d = doc(1, None);
        assert_eq!(
            reason(consent_valid(
                &query(&d, false, "2026-12-02T00:00:00Z"),
                &[]
            )),
            Some(InvalidReason::NoConsent)
        );
    }

    #[test]
    fn valid_then_expired() {
        let d = doc(1, Some(30));
        let s = [sig(&d, Signer::Patient, None)];
        assert!(consent_valid(&query(&d, false, "2026-12-02T00:00:00Z"), &s).is_valid());
        assert_eq!(
            reason(consent_valid(&query(&d, false, "2026-12-31T10:00:00Z"), &s)),
            Some(InvalidReason::Expired)
        );
    }

    #[test]
    fn old_document_version_needs_reconsent() {
        let d1 = doc(1, None);
        let s = [sig(&d1, Signer::Patient, None)];
        let d2 = doc(2, None);
        assert_eq!(
            reason(consent_valid(
                &query(&d2, false, "2026-12-02T00:00:00Z"),
                &s
            )),
            Some(InvalidReason::OldDocumentVersion)
        );
    }

    #[test]
    fn protocol_change_needs_reconsent() {
        let d = doc(1, None);
        let s = [sig(&d, Signer::Patient, None)];
        let mut q = query(&d, false, "2026-12-02T00:00:00Z");
        q.protocol_version = 2;
        assert_eq!(
            reason(consent_valid(&q, &s)),
            Some(InvalidReason::ProtocolChanged)
        );
    }

    #[test]
    fn minor_needs_guardian_and_assent() {
        let d = doc(1, None);
        let g = Signer::Guardian {
            guardian_id: 3,
            name: "Ann".into(),
            relationship: "mother".into(),
        };
        let s = [sig(&d, g.clone(), None)];
        assert_eq!(
            reason(consent_valid(&query(&d, true, "2026-12-02T00:00:00Z"), &s)),
            Some(InvalidReason::MinorWithoutAssent)
        );
        let s = [sig(&d, Signer::Patient, None)];
        assert_eq!(
            reason(consent_valid(&query(&d, true, "2026-12-02T00:00:00Z"), &s)),
            Some(InvalidReason::MinorWithoutGuardian)
        );
        let s = [sig(&d, g, Some(Assent::Given { obtained_by: 2 }))];
        assert!(consent_valid(&query(&d, true, "2026-12-02T00:00:00Z"), &s).is_valid());
        // The signing guardian is unlinked: no longer valid, and the status says why.
        let mut q = query(&d, true, "2026-12-02T00:00:00Z");
        let others = [(4, "Bob".to_owned())];
        q.guardians = &others;
        let st = consent_valid(&q, &s);
        assert_eq!(reason(st.clone()), Some(InvalidReason::GuardianUnlinked));
        assert!(
            matches!(&st, ConsentStatus::Invalid { message, .. } if message.contains("Ann (guardian 3)")),
            "{st:?}"
        );
    }

    #[test]
    fn signing_rules_for_minors() {
        let g = Signer::Guardian {
            guardian_id: 3,
            name: "Ann".into(),
            relationship: "mother".into(),
        };
        assert_eq!(
            check_signer(true, &g, None, &[3]).map_err(|e| e.field),
            Err("assent".into())
        );
        assert_eq!(
            check_signer(true, &g, Some(&Assent::Given { obtained_by: 1 }), &[4])
                .map_err(|e| e.field),
            Err("guardian_id".into())
        );
        assert!(check_signer(true, &g, Some(&Assent::Given { obtained_by: 1 }), &[3]).is_ok());
        assert!(check_signer(true, &Signer::Patient, None, &[3]).is_err());
        assert!(check_signer(false, &Signer::Patient, None, &[]).is_ok());
        let not_capable = Assent::NotCapable {
            obtained_by: 1,
            reason: " ".into(),
        };
        assert!(check_signer(true, &g, Some(&not_capable), &[3]).is_err());
    }

    #[test]
    fn withdrawal_and_no_document() {
        let d = doc(1, None);
        let mut s = sig(&d, Signer::Patient, None);
        s.withdrawn_at = Some(ts("2026-12-03T00:00:00Z"));
        assert_eq!(
            reason(consent_valid(
                &query(&d, false, "2026-12-04T00:00:00Z"),
                &[s]
            )),
            Some(InvalidReason::Withdrawn)
        );
        let mut q = query(&d, false, "2026-12-04T00:00:00Z");
        q.current_document = None;
        assert_eq!(
            reason(consent_valid(&q, &[])),
            Some(InvalidReason::NoCurrentDocument)
        );
    }

    #[test]
    fn a_document_must_cover_the_required_content() {
        let mut d = doc(1, None);
        assert!(d.check(true).is_ok());
        d.sections.retain(|s| s.kind != SectionKind::OffLabelUse);
        assert!(d.check(false).is_ok());
        assert_eq!(
            d.check(true).map_err(|e| e.field),
            Err("sections.off_label_use".into())
        );
        d.sections.retain(|s| s.kind != SectionKind::NotStandalone);
        assert_eq!(
            d.check(false).map_err(|e| e.field),
            Err("sections.not_standalone".into())
        );
    }
}
