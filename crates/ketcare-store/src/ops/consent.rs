//! Consent documents (versioned per protocol), signatures and withdrawals, and the consent
//! status a session or booking checks.

use super::*;
use ketcare_ops::consent;

fn parse_timestamp(col: &str, s: Option<&str>) -> Result<Option<Timestamp>> {
    s.map(|s| s.parse().map_err(|_| corrupt(col, s)))
        .transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(col: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| corrupt(col, s))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_u32(col: &str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(col, &v.to_string()))
}
const DOC_COLUMNS: &str = "id, protocol_id, protocol_version, version, title, sections, valid_days";

/// An `ops_consent_documents` row as stored (`DOC_COLUMNS`).
#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: ConsentDocumentId,
    protocol_id: String,
    protocol_version: i64,
    version: i64,
    title: String,
    sections: String,
    valid_days: Option<i64>,
}

impl TryFrom<DocumentRow> for ConsentDocument {
    type Error = StoreError;
    fn try_from(r: DocumentRow) -> Result<Self> {
        Ok(ConsentDocument {
            id: r.id,
            protocol_version: to_u32("protocol_version", r.protocol_version)?,
            version: to_u32("version", r.version)?,
            sections: parse_json("sections", &r.sections)?,
            valid_days: r.valid_days.and_then(|v| u32::try_from(v).ok()),
            protocol_id: r.protocol_id,
            title: r.title,
        })
    }
}

const SIG_COLUMNS: &str = "id, patient_id, document_id, protocol_id, document_version, protocol_version, signer, assent, signed_at, expires_at, withdrawn_at, withdrawn_by, withdrawal_reason, recorded_by";

/// An `ops_consent_signatures` row as stored (`SIG_COLUMNS`).
#[derive(sqlx::FromRow)]
struct SignatureRow {
    id: ConsentId,
    patient_id: i64,
    document_id: ConsentDocumentId,
    protocol_id: String,
    document_version: i64,
    protocol_version: i64,
    signer: String,
    assent: Option<String>,
    signed_at: String,
    expires_at: Option<String>,
    withdrawn_at: Option<String>,
    withdrawn_by: Option<String>,
    withdrawal_reason: Option<String>,
    recorded_by: i64,
}

impl TryFrom<SignatureRow> for ConsentSignature {
    type Error = StoreError;
    fn try_from(r: SignatureRow) -> Result<Self> {
        Ok(ConsentSignature {
            id: r.id,
            patient_id: r.patient_id,
            document_id: r.document_id,
            document_version: to_u32("document_version", r.document_version)?,
            protocol_version: to_u32("protocol_version", r.protocol_version)?,
            signer: parse_json("signer", &r.signer)?,
            assent: r
                .assent
                .as_deref()
                .map(|a| parse_json("assent", a))
                .transpose()?,
            signed_at: parse_timestamp("signed_at", Some(&r.signed_at))?
                .ok_or_else(|| corrupt("signed_at", "(empty)"))?,
            expires_at: parse_timestamp("expires_at", r.expires_at.as_deref())?,
            withdrawn_at: parse_timestamp("withdrawn_at", r.withdrawn_at.as_deref())?,
            protocol_id: r.protocol_id,
            withdrawn_by: r.withdrawn_by,
            withdrawal_reason: r.withdrawal_reason,
            recorded_by: r.recorded_by,
        })
    }
}

async fn load_signature(tx: &mut Tx, id: ConsentId) -> Result<ConsentSignature> {
    sqlx::query_as::<_, SignatureRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {SIG_COLUMNS} FROM ops_consent_signatures WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await?
    .try_into()
}
/// The consent record's answer inside a transaction (the session gate calls it in its own).
pub(crate) async fn consent_status_tx(
    tx: &mut Tx,
    patient: PatientId,
    protocol_id: &str,
    protocol_version: u32,
    at: Timestamp,
) -> Result<ConsentStatus> {
    let p = load_patient(tx, patient).await?;
    let bands = AgeBands::builtin().map_err(|e| StoreError::Config(e.to_string()))?;
    // A minor on the organisation's day (a consent is the organisation's, not a site's).
    let day = at
        .to_zoned(crate::sites::organisation_zone(tx).await?)
        .date();
    let is_minor = p
        .record
        .day_of_care(day, &bands)
        .map(|d| d.band.is_minor())
        .unwrap_or(true);
    let doc = sqlx::query_as::<_, DocumentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM ops_consent_documents WHERE protocol_id = $1 ORDER BY version DESC LIMIT 1"
        )))
        .bind(protocol_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(ConsentDocument::try_from)
        .transpose()?;
    let guardians: Vec<(i64, String)> = p
        .guardians
        .iter()
        .map(|g| (g.id.get(), g.record.name.clone()))
        .collect();
    let sigs = sqlx::query_as::<_, SignatureRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SIG_COLUMNS} FROM ops_consent_signatures WHERE patient_id = $1 AND protocol_id = $2"
        )))
        .bind(patient.get())
        .bind(protocol_id)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(ConsentSignature::try_from)
        .collect::<Result<Vec<_>>>()?;
    let status = consent::consent_valid(
        &ConsentQuery {
            patient_id: patient.get(),
            is_minor,
            protocol_id,
            protocol_version,
            current_document: doc.as_ref(),
            guardians: &guardians,
            at,
        },
        &sigs,
    );
    Ok(status)
}

impl SqlStore {
    pub(crate) async fn add_consent_document(
        &self,
        actor: &Actor,
        doc: &NewConsentDocument,
    ) -> Result<ConsentDocument> {
        require(actor, Permission::RecordConsent)?;
        if doc.protocol_id.trim().is_empty() {
            return Err(invalid("protocol_id", "required"));
        }
        let mut tx = self.unit(actor).await?;
        let last: Option<i64> = sqlx::query(
            "SELECT MAX(version) AS v FROM ops_consent_documents WHERE protocol_id = $1",
        )
        .bind(&doc.protocol_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("v")?;
        let version =
            u32::try_from(last.unwrap_or(0) + 1).map_err(|_| corrupt("version", "overflow"))?;
        let d = ConsentDocument {
            id: ConsentDocumentId::new(0),
            protocol_id: doc.protocol_id.clone(),
            protocol_version: doc.protocol_version,
            version,
            title: doc.title.trim().to_owned(),
            sections: doc.sections.clone(),
            valid_days: doc.valid_days,
        };
        d.check(doc.off_label)
            .map_err(|e| invalid(&e.field, e.message))?;
        let id: ConsentDocumentId = sqlx::query(
            "INSERT INTO ops_consent_documents (protocol_id, protocol_version, version, title, sections, valid_days, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&d.protocol_id)
        .bind(i64::from(d.protocol_version))
        .bind(i64::from(version))
        .bind(&d.title)
        .bind(to_json(&d.sections)?)
        .bind(d.valid_days.map(i64::from))
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        audit(
            &mut tx,
            "consent_document.create",
            None,
            format!("{} version {version}", d.protocol_id),
        )
        .await?;
        tx.commit().await?;
        Ok(ConsentDocument { id, ..d })
    }

    pub(crate) async fn consent_documents(&self, actor: &Actor) -> Result<Vec<ConsentDocument>> {
        require(actor, Permission::PatientRead)?;
        sqlx::query_as::<_, DocumentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM ops_consent_documents ORDER BY protocol_id, version DESC"
        )))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(ConsentDocument::try_from)
        .collect()
    }

    pub(crate) async fn current_consent_document(
        &self,
        actor: &Actor,
        protocol_id: &str,
    ) -> Result<Option<ConsentDocument>> {
        require(actor, Permission::PatientRead)?;
        sqlx::query_as::<_, DocumentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM ops_consent_documents WHERE protocol_id = $1 ORDER BY version DESC LIMIT 1"
        )))
        .bind(protocol_id)
        .fetch_optional(&self.pool)
        .await?
        .map(ConsentDocument::try_from)
        .transpose()
    }

    pub(crate) async fn record_consent(
        &self,
        actor: &Actor,
        sig: &NewSignature,
    ) -> Result<ConsentSignature> {
        require(actor, Permission::RecordConsent)?;
        let recorded_by = actor
            .user_id
            .ok_or(StoreError::Forbidden {
                permission: Permission::RecordConsent,
            })?
            .get();
        let mut tx = self.unit(actor).await?;
        let patient = load_patient(&mut tx, sig.patient_id).await?;
        let doc = sqlx::query_as::<_, DocumentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM ops_consent_documents WHERE protocol_id = $1 ORDER BY version DESC LIMIT 1"
        )))
        .bind(&sig.protocol_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(ConsentDocument::try_from)
        .transpose()?
        .ok_or_else(|| invalid("protocol_id", "this protocol has no consent document"))?;
        let bands = AgeBands::builtin().map_err(|e| StoreError::Config(e.to_string()))?;
        let day = sig
            .signed_at
            .to_zoned(crate::sites::organisation_zone(&mut tx).await?)
            .date();
        let minor = patient
            .record
            .day_of_care(day, &bands)
            .ok_or_else(|| invalid("signed_at", "before the patient's date of birth"))?
            .band
            .is_minor();
        let guardians: Vec<i64> = patient.guardians.iter().map(|g| g.id.get()).collect();
        consent::check_signer(minor, &sig.signer, sig.assent.as_ref(), &guardians)
            .map_err(|e| invalid(&e.field, e.message))?;
        // The guardian's name and relationship are the guardian record's, never the request's.
        let signer = match &sig.signer {
            Signer::Patient => Signer::Patient,
            Signer::Guardian {
                guardian_id,
                name,
                relationship,
            } => {
                let g = patient
                    .guardians
                    .iter()
                    .find(|g| g.id.get() == *guardian_id)
                    .ok_or_else(|| {
                        invalid(
                            "guardian_id",
                            "this person is not a guardian of record of the patient",
                        )
                    })?;
                let rec_name = g.record.name.trim().to_owned();
                let rec_rel = g.record.relationship.as_str().to_owned();
                let norm = |v: &str| v.trim().replace('_', " ").to_lowercase();
                let differs =
                    |typed: &str, held: &str| !typed.trim().is_empty() && norm(typed) != norm(held);
                if differs(name, &rec_name) {
                    return Err(invalid(
                        "signer.name",
                        format!(
                            "guardian {guardian_id} is {rec_name} on the patient's record, not {:?}",
                            name.trim()
                        ),
                    ));
                }
                if differs(relationship, &rec_rel) {
                    return Err(invalid(
                        "signer.relationship",
                        format!(
                            "guardian {guardian_id} is the patient's {rec_rel} on the record, not {:?}",
                            relationship.trim()
                        ),
                    ));
                }
                Signer::Guardian {
                    guardian_id: *guardian_id,
                    name: rec_name,
                    relationship: rec_rel,
                }
            }
        };
        // Whoever obtained the assent is an existing clinician account.
        if let Some(Assent::Given { obtained_by } | Assent::NotCapable { obtained_by, .. }) =
            &sig.assent
        {
            // The clinician holds a role that records consent at a site where the recorder
            // works in the role they act in: a nurse at one site who is another's scheduler
            // obtains assent only at the first.
            let at = crate::sites::scope_permitting(
                &mut tx,
                UserId::new(*obtained_by),
                Permission::RecordConsent,
            )
            .await?;
            let ours = crate::sites::scope_of(&mut tx, actor).await?;
            match user_exists(&mut tx, *obtained_by).await? {
                None => {
                    return Err(invalid(
                        "assent.obtained_by",
                        format!("no user {obtained_by}"),
                    ));
                }
                Some((username, _)) if !at.meets(&ours) => {
                    return Err(invalid(
                        "assent.obtained_by",
                        format!(
                            "{username} is not a clinician (prescriber or nurse) at a site where you work as {}; assent is obtained by one",
                            actor.role.map_or("staff", Role::as_str)
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let expires = consent::expiry(&doc, sig.signed_at);
        let id: ConsentId = sqlx::query(
            "INSERT INTO ops_consent_signatures (patient_id, document_id, protocol_id, document_version, protocol_version, signer, assent, signed_at, expires_at, recorded_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(sig.patient_id.get())
        .bind(doc.id)
        .bind(&doc.protocol_id)
        .bind(i64::from(doc.version))
        .bind(i64::from(doc.protocol_version))
        .bind(to_json(&signer)?)
        .bind(sig.assent.as_ref().map(to_json).transpose()?)
        .bind(sig.signed_at.to_string())
        .bind(expires.map(|e| e.to_string()))
        .bind(recorded_by)
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        audit(
            &mut tx,
            "consent.sign",
            Some(sig.patient_id.get()),
            format!("{} document version {}", doc.protocol_id, doc.version),
        )
        .await?;
        let out = load_signature(&mut tx, id).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn withdraw_consent(
        &self,
        actor: &Actor,
        patient: PatientId,
        id: ConsentId,
        at: Timestamp,
        reason: &str,
    ) -> Result<ConsentSignature> {
        require(actor, Permission::RecordConsent)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(invalid("reason", "say why the consent is withdrawn"));
        }
        let mut tx = self.unit(actor).await?;
        load_patient(&mut tx, patient).await?;
        sqlx::query(
            "SELECT id FROM ops_consent_signatures WHERE id = $1 AND patient_id = $2 AND withdrawn_at IS NULL",
        )
        .bind(id)
        .bind(patient.get())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("consent {id} in force for patient {}", patient.get()),
        })?;
        sqlx::query(
            "UPDATE ops_consent_signatures SET withdrawn_at = $1, withdrawn_by = $2, withdrawal_reason = $3 WHERE id = $4",
        )
        .bind(at.to_string())
        .bind(actor.username.as_str())
        .bind(reason)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        let out = load_signature(&mut tx, id).await?;
        audit(
            &mut tx,
            "consent.withdraw",
            Some(patient.get()),
            format!("consent {id} ({}) withdrawn: {reason}", out.protocol_id),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn consent_signatures(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<ConsentSignature>> {
        let mut tx = self.write(actor, Permission::ClinicalRead).await?;
        load_patient(&mut tx, patient).await?;
        let out = sqlx::query_as::<_, SignatureRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SIG_COLUMNS} FROM ops_consent_signatures WHERE patient_id = $1 ORDER BY signed_at DESC, id DESC"
        )))
        .bind(patient.get())
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(ConsentSignature::try_from)
        .collect::<Result<Vec<_>>>()?;
        audit(&mut tx, "consent.read", Some(patient.get()), String::new()).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn consent_status(
        &self,
        actor: &Actor,
        patient: PatientId,
        protocol_id: &str,
        protocol_version: u32,
        at: Timestamp,
    ) -> Result<ConsentStatus> {
        let mut tx = self.write(actor, Permission::ClinicalRead).await?;
        let status = consent_status_tx(&mut tx, patient, protocol_id, protocol_version, at).await?;
        audit(
            &mut tx,
            "consent.check",
            Some(patient.get()),
            format!(
                "{protocol_id}: {}",
                if status.is_valid() {
                    "valid"
                } else {
                    "not valid"
                }
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(status)
    }
}
