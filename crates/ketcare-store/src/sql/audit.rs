//! The audit log as read back: audit events outside another change, paging the log, and
//! checking the hash chain.

use super::*;

/// An `audit_log` row as stored.
#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: String,
    user_id: Option<i64>,
    username: String,
    role: String,
    address: String,
    action: String,
    patient_id: Option<i64>,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        AuditRecord {
            seq: r.seq,
            at: r.at,
            user_id: r.user_id,
            username: r.username,
            role: r.role,
            address: r.address,
            action: r.action,
            patient_id: r.patient_id,
            detail: r.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl SqlStore {
    pub(crate) async fn audit(&self, actor: &Actor, event: AuditEvent) -> Result<()> {
        let mut tx = self.unit(actor).await?;
        tx.audit(&event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn audit_records(
        &self,
        actor: &Actor,
        f: &AuditFilter,
    ) -> Result<Vec<AuditRecord>> {
        require(actor, Permission::AuditRead)?;
        let rows = sqlx::query_as::<_, AuditRow>(
            "SELECT seq, at, user_id, username, role, address, action, patient_id, detail, prev_hash, hash
             FROM audit_log
             WHERE ($1 = '' OR username = $1) AND ($2 = '' OR action LIKE $3)
               AND ($4 = 0 OR patient_id = $5) AND seq < $6
             ORDER BY seq DESC LIMIT $7",
        )
        .bind(f.username.as_deref().unwrap_or(""))
        .bind(f.action.as_deref().unwrap_or(""))
        .bind(format!("{}%", f.action.as_deref().unwrap_or("")))
        .bind(i64::from(f.patient_id.is_some()))
        .bind(f.patient_id.unwrap_or(0))
        .bind(f.before_seq.unwrap_or(i64::MAX))
        .bind(if f.limit > 0 { f.limit } else { 100 })
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AuditRecord::from).collect())
    }

    pub(crate) async fn verify_audit(&self) -> Result<AuditVerification> {
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        let records: Vec<AuditRecord> = sqlx::query_as::<_, AuditRow>(
            "SELECT seq, at, user_id, username, role, address, action, patient_id, detail, prev_hash, hash
             FROM audit_log ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(AuditRecord::from)
        .collect();
        let head_ref = head.as_ref().map(|(s, h)| (*s, h.as_str()));
        // An empty chain has the genesis head (seq 0); treat that as "no head".
        let head_ref = head_ref.filter(|(s, _)| *s > 0);
        Ok(match verify_chain(&records, head_ref) {
            Ok(n) => AuditVerification {
                records: n,
                broken: None,
            },
            Err(b) => AuditVerification {
                records: records.len() as u64,
                broken: Some(b),
            },
        })
    }
}
