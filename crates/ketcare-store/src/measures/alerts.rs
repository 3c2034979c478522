//! Safety alerts: raised from a stored response, a link's form or an incomplete form, listed,
//! noted and resolved with the documented follow-up.

use super::*;

const ALERT_COLS: &str = "id, patient_id, response_id, instrument, item, answer, detail, status, raised_by, raised_at, closed_by, closed_at, follow_up";
pub(super) async fn alert_action(
    tx: &mut Tx,
    alert: AlertId,
    action: &str,
    note: &str,
    by: &str,
    at: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO safety_alert_actions (alert_id, action, note, done_by, done_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(alert)
        .bind(action)
        .bind(note)
        .bind(by)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Raises alerts from a form that could not be stored yet (incomplete answers), by whoever
/// entered it; an alert already open for the same patient, questionnaire, item and author is not
/// raised twice (and is joined to the response once the complete form is stored).
async fn raise_alerts_tx(
    tx: &mut Unit<'_>,
    patient: PatientId,
    instrument: &str,
    alerts: &[NewAlert],
) -> Result<Vec<SafetyAlert>> {
    let actor = tx.actor();
    let mut raised = Vec::new();
    for a in alerts {
        let existing = sqlx::query(
            "SELECT id FROM safety_alerts WHERE patient_id = $1 AND instrument = $2 AND item = $3 AND raised_by = $4 AND status = 'open'",
        )
        .bind(patient)
        .bind(instrument)
        .bind(a.item)
        .bind(&actor.username)
        .fetch_optional(tx.conn())
        .await?;
        if existing.is_some() {
            continue;
        }
        raised.push(raise_alert_tx(tx, patient, instrument, a, "form not complete").await?);
    }
    Ok(raised)
}

/// Raises one alert in the unit: the alert, its "raised" action and the audit record
/// `safety_alert.raise` (`why` says what raised it, no clinical text). Every path that raises an
/// alert outside a stored response comes here, so they land in the same queue.
pub(crate) async fn raise_alert_tx(
    tx: &mut Unit<'_>,
    patient: PatientId,
    instrument: &str,
    a: &NewAlert,
    why: &str,
) -> Result<SafetyAlert> {
    let actor = tx.actor();
    let at = now_rfc3339();
    let row = sqlx::query(
        "INSERT INTO safety_alerts (patient_id, instrument, item, answer, detail, status, raised_by, raised_at)
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $7) RETURNING id",
    )
    .bind(patient)
    .bind(instrument)
    .bind(a.item)
    .bind(a.answer)
    .bind(&a.detail)
    .bind(&actor.username)
    .bind(&at)
    .fetch_one(tx.conn())
    .await?;
    let id: AlertId = row.try_get("id")?;
    alert_action(tx, id, "raised", &a.detail, &actor.username, &at).await?;
    audit(
        tx,
        "safety_alert.raise",
        patient,
        format!("alert {id}: {instrument} item {} ({why})", a.item),
    )
    .await?;
    alert_by_id(tx, id).await
}
async fn alert_by_id(tx: &mut Tx, id: AlertId) -> Result<SafetyAlert> {
    sqlx::query_as::<_, SafetyAlert>(sqlx::AssertSqlSafe(format!(
        "SELECT {ALERT_COLS} FROM safety_alerts WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("safety alert {id}"),
    })
}
/// Commits a unit that raised alerts; one that raised none (all already open, or none given)
/// wrote nothing and has no record, so it is dropped.
async fn commit_if_raised(tx: Unit<'_>, raised: &[SafetyAlert]) -> Result<()> {
    if !raised.is_empty() {
        tx.commit().await?;
    }
    Ok(())
}

impl SqlStore {
    pub(crate) async fn raise_link_alerts(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        instrument: &str,
        alerts: &[NewAlert],
    ) -> Result<Vec<SafetyAlert>> {
        let actor = self.link_actor_for(token_hash, address).await?;
        let mut tx = self.unit(&actor).await?;
        let link = link_in_unit(&mut tx, token_hash, &actor).await?;
        if link.status == LinkStatus::Completed {
            return Err(StoreError::Conflict(
                "link: this link has already been used".into(),
            ));
        }
        check_expiry(&link, now)?;
        // Only the link's own questionnaires raise alerts through it.
        if !link.instruments.iter().any(|i| i == instrument) {
            return Err(StoreError::Invalid(FieldErrors::single(
                "instruments",
                format!("{instrument} is not part of this link's set"),
            )));
        }
        let raised = raise_alerts_tx(&mut tx, link.patient_id, instrument, alerts).await?;
        commit_if_raised(tx, &raised).await?;
        Ok(raised)
    }

    pub(crate) async fn raise_incomplete_alerts(
        &self,
        actor: &Actor,
        patient: PatientId,
        instrument: &str,
        alerts: &[NewAlert],
    ) -> Result<Vec<SafetyAlert>> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        load_patient(&mut tx, patient).await?;
        let raised = raise_alerts_tx(&mut tx, patient, instrument, alerts).await?;
        commit_if_raised(tx, &raised).await?;
        Ok(raised)
    }

    pub(crate) async fn alert_state(&self, actor: &Actor) -> Result<(i64, i64)> {
        require(actor, Permission::ClinicalRead)?;
        // Counts only, no patient's data: polled without an audit record, so no unit either.
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM safety_alerts WHERE status = 'open') AS n,
                    (SELECT COALESCE(MAX(id), 0) FROM safety_alerts) AS latest",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("latest")?))
    }

    pub(crate) async fn open_alerts(&self, actor: &Actor) -> Result<Vec<SafetyAlert>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let rows: Vec<SafetyAlert> = sqlx::query_as::<_, SafetyAlert>(sqlx::AssertSqlSafe(
            format!("SELECT {ALERT_COLS} FROM safety_alerts WHERE status = 'open' ORDER BY id"),
        ))
        .fetch_all(&mut **tx)
        .await?;
        if rows.is_empty() {
            // No alert, no patient shown: nothing to record, the unit is dropped.
            return Ok(rows);
        }
        for a in &rows {
            audit(
                &mut tx,
                "safety_alert.read",
                a.patient_id,
                format!("alert {}", a.id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    pub(crate) async fn patient_alerts(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<SafetyAlert>> {
        self.patient_rows(
            Permission::ClinicalRead,
            actor,
            patient,
            format!(
                "SELECT {ALERT_COLS} FROM safety_alerts WHERE patient_id = $1 ORDER BY id DESC"
            ),
            Ok,
            "safety_alert.read",
            "alerts",
        )
        .await
    }

    pub(crate) async fn resolve_alert(
        &self,
        actor: &Actor,
        id: AlertId,
        follow_up: &str,
    ) -> Result<SafetyAlert> {
        require(actor, Permission::ResolveSafetyAlert)?;
        let follow_up = follow_up.trim();
        if follow_up.is_empty() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "follow_up",
                "required: document the follow-up (who assessed the patient, what was decided)",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let alert = alert_by_id(&mut tx, id).await?;
        if alert.status != AlertStatus::Open {
            return Err(StoreError::Conflict(format!(
                "safety alert {id} is already closed"
            )));
        }
        let now = now_rfc3339();
        sqlx::query("UPDATE safety_alerts SET status = 'closed', closed_by = $1, closed_at = $2, follow_up = $3 WHERE id = $4")
            .bind(&actor.username)
            .bind(&now)
            .bind(follow_up)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        alert_action(&mut tx, id, "resolved", follow_up, &actor.username, &now).await?;
        audit(
            &mut tx,
            "safety_alert.resolve",
            alert.patient_id,
            format!("alert {id}"),
        )
        .await?;
        let alert = alert_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(alert)
    }

    pub(crate) async fn note_alert(
        &self,
        actor: &Actor,
        id: AlertId,
        note: &str,
    ) -> Result<AlertAction> {
        require(actor, Permission::ResolveSafetyAlert)?;
        let note = note.trim();
        if note.is_empty() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "note",
                "required: what was done",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let alert = alert_by_id(&mut tx, id).await?;
        if alert.status != AlertStatus::Open {
            return Err(StoreError::Conflict(format!(
                "safety alert {id} is already closed"
            )));
        }
        let now = now_rfc3339();
        alert_action(&mut tx, id, "note", note, &actor.username, &now).await?;
        audit(
            &mut tx,
            "safety_alert.note",
            alert.patient_id,
            format!("alert {id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(AlertAction {
            alert_id: id,
            action: "note".into(),
            note: note.into(),
            done_by: actor.username.clone(),
            done_at: now,
        })
    }

    pub(crate) async fn alert_actions(
        &self,
        actor: &Actor,
        id: AlertId,
    ) -> Result<Vec<AlertAction>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let alert = alert_by_id(&mut tx, id).await?;
        let rows = sqlx::query_as::<_, AlertAction>("SELECT alert_id, action, note, done_by, done_at FROM safety_alert_actions WHERE alert_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&mut **tx)
            .await?;
        audit(
            &mut tx,
            "safety_alert.read",
            alert.patient_id,
            format!("alert {id} actions"),
        )
        .await?;
        tx.commit().await?;
        Ok(rows)
    }
}
