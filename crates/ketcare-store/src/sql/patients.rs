//! Patients and their guardians: the row types, the MRN check, and the audited reads and writes.

use super::*;

macro_rules! patient_columns {
    () => {
        "id, mrn, given_name, family_name, date_of_birth, sex, weight_kg, weight_measured_on, height_cm, height_measured_on, indications, psychiatric_history, substance_use_history, medications, allergies, phone, email, intake, updated_at"
    };
}

fn parse_date(col: &str, s: &str) -> Result<jiff::civil::Date> {
    s.parse().map_err(|_| corrupt(col, s))
}

fn parse_list(col: &str, s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|_| corrupt(col, s))
}

fn parse_sex(s: &str) -> Result<Sex> {
    Sex::parse(s).ok_or_else(|| corrupt("sex", s))
}

/// A value with the day it was measured, when both are stored.
fn measured<T, E>(
    col: &str,
    value: Option<f64>,
    on_col: &str,
    on: Option<String>,
    make: impl Fn(f64) -> std::result::Result<T, E>,
) -> Result<Option<Measured<T>>> {
    let on = on.map(|d| parse_date(on_col, &d)).transpose()?;
    Ok(match (value, on) {
        (Some(v), Some(on)) => Some(Measured {
            value: make(v).map_err(|_| corrupt(col, &v.to_string()))?,
            measured_on: on,
        }),
        _ => None,
    })
}

/// A `patients` row as stored (`patient_columns!`).
#[derive(sqlx::FromRow)]
struct PatientRow {
    mrn: String,
    given_name: String,
    family_name: String,
    date_of_birth: String,
    sex: String,
    weight_kg: Option<f64>,
    weight_measured_on: Option<String>,
    height_cm: Option<f64>,
    height_measured_on: Option<String>,
    indications: String,
    psychiatric_history: String,
    substance_use_history: String,
    medications: String,
    allergies: String,
    phone: String,
    email: String,
    intake: String,
    updated_at: String,
}

impl PatientRow {
    /// The patient's record and when it was last changed.
    fn into_record(self) -> Result<(NewPatient, String)> {
        let record = NewPatient {
            weight: measured(
                "weight_kg",
                self.weight_kg,
                "weight_measured_on",
                self.weight_measured_on,
                WeightKg::new,
            )?,
            height: measured(
                "height_cm",
                self.height_cm,
                "height_measured_on",
                self.height_measured_on,
                HeightCm::new,
            )?,
            date_of_birth: parse_date("date_of_birth", &self.date_of_birth)?,
            sex: parse_sex(&self.sex)?,
            indications: parse_list("indications", &self.indications)?,
            medications: parse_list("medications", &self.medications)?,
            allergies: parse_list("allergies", &self.allergies)?,
            mrn: self.mrn,
            given_name: self.given_name,
            family_name: self.family_name,
            psychiatric_history: self.psychiatric_history,
            substance_use_history: self.substance_use_history,
            phone: self.phone,
            email: self.email,
            intake: serde_json::from_str(&self.intake)
                .map_err(|_| corrupt("patients.intake", &self.intake))?,
        };
        Ok((record, self.updated_at))
    }
}

/// A `guardians` row as stored.
#[derive(sqlx::FromRow)]
struct GuardianRow {
    id: i64,
    name: String,
    relationship: String,
    phone: String,
    email: String,
}

impl TryFrom<GuardianRow> for Guardian {
    type Error = StoreError;
    fn try_from(g: GuardianRow) -> Result<Self> {
        Ok(Guardian {
            id: GuardianId::new(g.id),
            record: NewGuardian {
                name: g.name,
                relationship: Relationship::parse(&g.relationship)
                    .ok_or_else(|| corrupt("relationship", &g.relationship))?,
                phone: g.phone,
                email: g.email,
            },
        })
    }
}

/// A patient as a search result lists them.
#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: i64,
    mrn: String,
    given_name: String,
    family_name: String,
    date_of_birth: String,
    sex: String,
}

impl TryFrom<SummaryRow> for PatientSummary {
    type Error = StoreError;
    fn try_from(r: SummaryRow) -> Result<Self> {
        Ok(PatientSummary {
            id: PatientId::new(r.id),
            date_of_birth: parse_date("date_of_birth", &r.date_of_birth)?,
            sex: parse_sex(&r.sex)?,
            mrn: r.mrn,
            given_name: r.given_name,
            family_name: r.family_name,
        })
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// A new patient row: the bound patient ([`BindPatient`]), then its creation time and search
/// text.
pub(crate) const INSERT_PATIENT: &str = "INSERT INTO patients (mrn, given_name, family_name, date_of_birth, sex, weight_kg, weight_measured_on,
                height_cm, height_measured_on, indications, psychiatric_history, substance_use_history, medications,
                allergies, phone, email, intake, created_at, updated_at, search_text)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $19) RETURNING id";

/// Binds the sixteen patient columns, in table order, shared by insert and update.
pub(crate) trait BindPatient<'q> {
    fn bind_patient(self, p: &'q NewPatient) -> Self;
}

impl<'q> BindPatient<'q> for AnyQuery<'q> {
    fn bind_patient(self, p: &'q NewPatient) -> Self {
        self.bind(&p.mrn)
            .bind(&p.given_name)
            .bind(&p.family_name)
            .bind(p.date_of_birth.to_string())
            .bind(p.sex.as_str())
            .bind(p.weight.map(|w| w.value.kg()))
            .bind(p.weight.map(|w| w.measured_on.to_string()))
            .bind(p.height.map(|h| h.value.cm()))
            .bind(p.height.map(|h| h.measured_on.to_string()))
            .bind(json_list(&p.indications))
            .bind(&p.psychiatric_history)
            .bind(&p.substance_use_history)
            .bind(json_list(&p.medications))
            .bind(json_list(&p.allergies))
            .bind(&p.phone)
            .bind(&p.email)
            .bind(serde_json::to_string(&p.intake).unwrap_or_else(|_| "{}".into()))
    }
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(crate) async fn load_patient(tx: &mut Tx, id: PatientId) -> Result<Patient> {
    let (record, updated_at) = sqlx::query_as::<_, PatientRow>(concat!(
        "SELECT ",
        patient_columns!(),
        " FROM patients WHERE id = $1"
    ))
    .bind(id.get())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("patient {id}"),
    })?
    .into_record()?;
    let guardians = sqlx::query_as::<_, GuardianRow>(
        "SELECT id, name, relationship, phone, email FROM guardians WHERE patient_id = $1 ORDER BY id",
    )
    .bind(id.get())
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(Guardian::try_from)
    .collect::<Result<Vec<_>>>()?;
    Ok(Patient {
        id,
        record,
        guardians,
        updated_at,
    })
}

async fn mrn_taken(tx: &mut Tx, mrn: &str, except: Option<PatientId>) -> Result<bool> {
    let row = sqlx::query("SELECT id FROM patients WHERE mrn = $1")
        .bind(mrn)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        None => false,
        Some(r) => Some(PatientId::new(r.try_get("id")?)) != except,
    })
}

fn mrn_conflict() -> StoreError {
    StoreError::Invalid(ketcare_core::FieldErrors::single(
        "mrn",
        "this MRN belongs to another patient",
    ))
}

/// Lists which fields differ, for the audit detail (names only, never values).
fn changed_fields(old: &NewPatient, new: &NewPatient) -> String {
    let mut out = Vec::new();
    macro_rules! cmp {
        ($($f:ident),*) => { $( if old.$f != new.$f { out.push(stringify!($f)); } )* };
    }
    cmp!(
        mrn,
        given_name,
        family_name,
        date_of_birth,
        sex,
        weight,
        height,
        indications,
        psychiatric_history,
        substance_use_history,
        medications,
        allergies,
        phone,
        email
    );
    if out.is_empty() {
        "no change".into()
    } else {
        format!("changed: {}", out.join(", "))
    }
}

impl SqlStore {
    pub(crate) async fn create_patient(&self, actor: &Actor, p: &NewPatient) -> Result<Patient> {
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        if mrn_taken(&mut tx, &p.mrn, None).await? {
            return Err(mrn_conflict());
        }
        let now = now_rfc3339();
        let row = sqlx::query(INSERT_PATIENT)
            .bind_patient(p)
            .bind(&now)
            .bind(p.search_text())
            .fetch_one(&mut **tx)
            .await?;
        let id = PatientId::new(row.try_get("id")?);
        tx.audit(&AuditEvent::new(
            "patient.create",
            Some(id.get()),
            format!("patient {id}"),
        ))
        .await?;
        let created = load_patient(&mut tx, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn update_patient(
        &self,
        actor: &Actor,
        id: PatientId,
        p: &NewPatient,
    ) -> Result<Patient> {
        self.write_patient(actor, id, p, None).await
    }

    pub(crate) async fn update_demographics(
        &self,
        actor: &Actor,
        id: PatientId,
        p: &NewPatient,
        read_at: &str,
    ) -> Result<Patient> {
        self.write_patient(actor, id, p, Some(read_at)).await
    }

    /// Writes a patient's record. With `read_at` (the `updated_at` the caller read), only the
    /// demographics change — the clinical part is kept whatever the role — and only if nobody
    /// changed the record since.
    async fn write_patient(
        &self,
        actor: &Actor,
        id: PatientId,
        p: &NewPatient,
        read_at: Option<&str>,
    ) -> Result<Patient> {
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        let old = load_patient(&mut tx, id).await?;
        if read_at.is_some_and(|r| r != old.updated_at) {
            return Err(StoreError::Conflict(format!(
                "patient {id} changed since it was read (at {}): read it again",
                old.updated_at
            )));
        }
        // Someone who may not read the clinical part (a scheduler) cannot change it either: an
        // edit of theirs that carries any of it is refused naming the field, and one without it
        // keeps what the record holds.
        let merged;
        let p = if read_at.is_some() {
            merged = p.clone().with_clinical_part_of(&old.record);
            &merged
        } else if actor.may(Permission::ClinicalRead) {
            p
        } else {
            let given = p.clinical_fields_given();
            if !given.is_empty() {
                let mut errors = ketcare_core::FieldErrors::new();
                for field in given {
                    errors.push(
                        field,
                        "your role does not change the clinical record: leave this out",
                    );
                }
                return Err(StoreError::Invalid(errors));
            }
            merged = p.clone().with_clinical_part_of(&old.record);
            &merged
        };
        if mrn_taken(&mut tx, &p.mrn, Some(id)).await? {
            return Err(mrn_conflict());
        }
        sqlx::query(
            "UPDATE patients SET mrn = $1, given_name = $2, family_name = $3, date_of_birth = $4, sex = $5,
                weight_kg = $6, weight_measured_on = $7, height_cm = $8, height_measured_on = $9, indications = $10,
                psychiatric_history = $11, substance_use_history = $12, medications = $13, allergies = $14,
                phone = $15, email = $16, intake = $17, updated_at = $18, search_text = $19
             WHERE id = $20",
        )
        .bind_patient(p)
        .bind(now_rfc3339())
        .bind(p.search_text())
        .bind(id.get())
        .execute(&mut **tx)
        .await?;
        tx.audit(&AuditEvent::new(
            "patient.update",
            Some(id.get()),
            changed_fields(&old.record, p),
        ))
        .await?;
        let updated = load_patient(&mut tx, id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    pub(crate) async fn owner_of(
        &self,
        actor: &Actor,
        row: OwnedRow,
        id: i64,
    ) -> Result<Option<PatientId>> {
        require(actor, Permission::PatientRead)?;
        let found: Option<i64> = sqlx::query_scalar(row.sql())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.map(PatientId::new))
    }

    pub(crate) async fn all_patient_ids(&self, actor: &Actor) -> Result<Vec<PatientId>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM patients ORDER BY id")
            .fetch_all(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new(
            "patient.list_all",
            None,
            format!("{} patients", ids.len()),
        ))
        .await?;
        tx.commit().await?;
        Ok(ids.into_iter().map(PatientId::new).collect())
    }

    /// The patient as this reader may see them: the whole record with the clinical-read right,
    /// the demographics with the patient-read right alone.
    pub(crate) async fn patient_view(
        &self,
        actor: &Actor,
        id: PatientId,
    ) -> Result<VisiblePatient> {
        let clinical = actor.may(Permission::ClinicalRead);
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let patient = load_patient(&mut tx, id).await?;
        let action = if clinical {
            "patient.read"
        } else {
            "patient.demographics.read"
        };
        tx.audit(&AuditEvent::new(action, Some(id.get()), ""))
            .await?;
        tx.commit().await?;
        Ok(VisiblePatient::of(patient, clinical))
    }

    pub(crate) async fn get_patient(&self, actor: &Actor, id: PatientId) -> Result<Patient> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let patient = load_patient(&mut tx, id).await?;
        tx.audit(&AuditEvent::new("patient.read", Some(id.get()), ""))
            .await?;
        tx.commit().await?;
        Ok(patient)
    }

    pub(crate) async fn search_patients(
        &self,
        actor: &Actor,
        query: &str,
        limit: i64,
    ) -> Result<Vec<PatientSummary>> {
        // Names, MRN fragments and indications are compared folded on both sides (the column is
        // written folded by Rust), so SQLite's ASCII-only lower() plays no part; a date of birth
        // is compared as written.
        let q = ketcare_core::patient::search_fold(query.trim());
        let like = format!("%{}%", q.replace(['\\', '%', '_'], ""));
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        // The folded text holds indications too; someone who may not read them (a scheduler)
        // finds patients by name, MRN or date of birth only, so a search cannot tell them who
        // has which indication.
        let clinical = actor.may(Permission::ClinicalRead);
        let mut found = sqlx::query_as::<_, SummaryRow>(
            "SELECT id, mrn, given_name, family_name, date_of_birth, sex FROM patients
             WHERE $1 = '' OR search_text LIKE $2 OR date_of_birth = $1
             ORDER BY family_name, given_name, id LIMIT $3",
        )
        .bind(&q)
        .bind(&like)
        .bind(if clinical { limit } else { i64::MAX })
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(PatientSummary::try_from)
        .collect::<Result<Vec<_>>>()?;
        if !clinical {
            found.retain(|p| p.demographics_match(&q));
            found.truncate(usize::try_from(limit).unwrap_or(0));
        }
        tx.audit(&AuditEvent::new(
            "patient.search",
            None,
            // The number found, never the search text (a name or MRN is PHI).
            format!("{} found", found.len()),
        ))
        .await?;
        // Each patient shown in a result list is an access to that patient's record.
        for p in &found {
            tx.audit(&AuditEvent::new(
                "patient.listed",
                Some(p.id.get()),
                "search result",
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// The summaries (name, MRN, date of birth) of these patients, for a worklist; each is an
    /// audited access.
    pub(crate) async fn patient_summaries(
        &self,
        actor: &Actor,
        ids: &[PatientId],
    ) -> Result<Vec<PatientSummary>> {
        let mut tx = self.read_audited(actor, Permission::PatientRead).await?;
        let mut out = Vec::new();
        for id in ids {
            let row = sqlx::query_as::<_, SummaryRow>(
                "SELECT id, mrn, given_name, family_name, date_of_birth, sex FROM patients WHERE id = $1",
            )
            .bind(id.get())
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(r) = row {
                out.push(PatientSummary::try_from(r)?);
                tx.audit(&AuditEvent::new(
                    "patient.listed",
                    Some(id.get()),
                    "worklist",
                ))
                .await?;
            }
        }
        if out.is_empty() {
            return Ok(out);
        }
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn add_guardian(
        &self,
        actor: &Actor,
        patient: PatientId,
        g: &NewGuardian,
    ) -> Result<Guardian> {
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        load_patient(&mut tx, patient).await?;
        let row = sqlx::query(
            "INSERT INTO guardians (patient_id, name, relationship, phone, email, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(patient.get())
        .bind(&g.name)
        .bind(g.relationship.as_str())
        .bind(&g.phone)
        .bind(&g.email)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        let id = GuardianId::new(row.try_get("id")?);
        tx.audit(&AuditEvent::new(
            "guardian.add",
            Some(patient.get()),
            format!("guardian {id} ({})", g.relationship.as_str()),
        ))
        .await?;
        tx.commit().await?;
        Ok(Guardian {
            id,
            record: g.clone(),
        })
    }

    pub(crate) async fn remove_guardian(
        &self,
        actor: &Actor,
        patient: PatientId,
        guardian: GuardianId,
    ) -> Result<()> {
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        let done = sqlx::query("DELETE FROM guardians WHERE id = $1 AND patient_id = $2")
            .bind(guardian.get())
            .bind(patient.get())
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: format!("guardian {guardian} of patient {patient}"),
            });
        }
        tx.audit(&AuditEvent::new(
            "guardian.remove",
            Some(patient.get()),
            format!("guardian {guardian}"),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
