//! Clinical documents (screenings and dose orders) stored as JSON with a revision number.

use super::*;

macro_rules! record_columns {
    () => {
        "id, patient_id, kind, state, body, revision, created_by, created_at, updated_at"
    };
}

/// A `clinical_records` row as stored (`record_columns!`).
#[derive(sqlx::FromRow)]
struct ClinicalRow {
    id: RecordId,
    patient_id: PatientId,
    kind: String,
    state: String,
    body: String,
    revision: i64,
    created_by: String,
    created_at: String,
    updated_at: String,
}

impl TryFrom<ClinicalRow> for ClinicalRecord {
    type Error = StoreError;
    fn try_from(r: ClinicalRow) -> Result<Self> {
        Ok(ClinicalRecord {
            id: r.id,
            patient_id: r.patient_id,
            kind: match r.kind.as_str() {
                "screening" => RecordKind::Screening,
                "dose_order" => RecordKind::DoseOrder,
                other => return Err(corrupt("kind", other)),
            },
            state: r.state,
            body: r.body,
            revision: r.revision,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

async fn load_record(tx: &mut Tx, kind: RecordKind, id: RecordId) -> Result<ClinicalRecord> {
    sqlx::query_as::<_, ClinicalRow>(concat!(
        "SELECT ",
        record_columns!(),
        " FROM clinical_records WHERE id = $1 AND kind = $2"
    ))
    .bind(id)
    .bind(kind.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .map(ClinicalRecord::try_from)
    .transpose()?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("{} {id}", kind.as_str().replace('_', " ")),
    })
}

impl SqlStore {
    pub(crate) async fn create_record(
        &self,
        actor: &Actor,
        patient: PatientId,
        change: &RecordChange<'_>,
    ) -> Result<ClinicalRecord> {
        let RecordChange {
            permission,
            kind,
            state,
            body,
            action,
        } = *change;
        let mut tx = self.write(actor, permission).await?;
        load_patient(&mut tx, patient).await?;
        let now = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO clinical_records (patient_id, kind, state, body, revision, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 1, $5, $6, $6) RETURNING id",
        )
        .bind(patient.get())
        .bind(kind.as_str())
        .bind(state)
        .bind(body)
        .bind(&actor.username)
        .bind(&now)
        .fetch_one(&mut **tx)
        .await?;
        let id: RecordId = row.try_get("id")?;
        tx.audit(&AuditEvent::new(
            action,
            Some(patient.get()),
            format!("{} {id}: {state}", kind.as_str()),
        ))
        .await?;
        let created = load_record(&mut tx, kind, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn record(
        &self,
        actor: &Actor,
        kind: RecordKind,
        id: RecordId,
    ) -> Result<ClinicalRecord> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let r = load_record(&mut tx, kind, id).await?;
        tx.audit(&AuditEvent::new(
            &format!("{}.read", kind.as_str()),
            Some(r.patient_id.get()),
            format!("{} {id}", kind.as_str()),
        ))
        .await?;
        tx.commit().await?;
        Ok(r)
    }

    pub(crate) async fn update_record(
        &self,
        actor: &Actor,
        id: RecordId,
        revision: i64,
        change: &RecordChange<'_>,
    ) -> Result<ClinicalRecord> {
        let RecordChange {
            permission,
            kind,
            state,
            body,
            action,
        } = *change;
        let mut tx = self.write(actor, permission).await?;
        let current = load_record(&mut tx, kind, id).await?;
        if current.revision != revision {
            return Err(StoreError::Conflict(format!(
                "{} {id} changed since it was read (revision {revision}, now {}); reload it",
                kind.as_str(),
                current.revision
            )));
        }
        sqlx::query("UPDATE clinical_records SET state = $1, body = $2, revision = revision + 1, updated_at = $3 WHERE id = $4")
            .bind(state)
            .bind(body)
            .bind(now_rfc3339())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new(
            action,
            Some(current.patient_id.get()),
            format!("{} {id}: {} -> {state}", kind.as_str(), current.state),
        ))
        .await?;
        let updated = load_record(&mut tx, kind, id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    pub(crate) async fn patient_records(
        &self,
        actor: &Actor,
        patient: PatientId,
        kind: RecordKind,
    ) -> Result<Vec<ClinicalRecord>> {
        require(actor, Permission::ClinicalRead)?;
        sqlx::query_as::<_, ClinicalRow>(concat!(
            "SELECT ",
            record_columns!(),
            " FROM clinical_records WHERE patient_id = $1 AND kind = $2 ORDER BY id DESC"
        ))
        .bind(patient.get())
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(ClinicalRecord::try_from)
        .collect()
    }

    /// Records of `kind` in one of `states`, oldest first, for a worklist; each listed record is
    /// an audited access to its patient.
    pub(crate) async fn records_in_states(
        &self,
        actor: &Actor,
        kind: RecordKind,
        states: &[&str],
    ) -> Result<Vec<ClinicalRecord>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let mut found = Vec::new();
        for state in states {
            let rows = sqlx::query_as::<_, ClinicalRow>(concat!(
                "SELECT ",
                record_columns!(),
                " FROM clinical_records WHERE kind = $1 AND state = $2 ORDER BY id"
            ))
            .bind(kind.as_str())
            .bind(*state)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                found.push(ClinicalRecord::try_from(r)?);
            }
        }
        if found.is_empty() {
            return Ok(found);
        }
        found.sort_by_key(|r| r.id);
        for r in &found {
            tx.audit(&AuditEvent::new(
                &format!("{}.listed", kind.as_str()),
                Some(r.patient_id.get()),
                format!("{} {} on a worklist ({})", kind.as_str(), r.id, r.state),
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(found)
    }
}
