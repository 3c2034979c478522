//! Treatment session records: scheduling from a verified order, reading, listing and applying
//! commands with the pure core.

use super::*;

/// A session is scheduled only for a verified dose order of its own patient: the order's row
/// (not the caller's copy) is read in the creating transaction. Refusals name `order_id` and
/// the order's state.
async fn check_order_for_session(
    tx: &mut crate::sql::Tx,
    patient: PatientId,
    session: &Session,
) -> Result<()> {
    let Some(order_id) = session.dose_order_id else {
        return Ok(());
    };
    let bad = |m: String| StoreError::Invalid(FieldErrors::single("order_id", m));
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT patient_id, state, body FROM clinical_records WHERE id = $1 AND kind = 'dose_order'",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((owner, state, body)) = row else {
        return Err(bad(format!("no dose order {order_id}")));
    };
    // The session's protocol is the order's, as stored (what the site check reads).
    let ordered: serde_json::Value = serde_json::from_str(&body)
        .map_err(|_| crate::sql::corrupt("clinical_records.body", &body))?;
    let protocol = ordered["calculation"]["protocol_id"]
        .as_str()
        .unwrap_or_default();
    if protocol != session.plan.protocol_id {
        return Err(bad(format!(
            "dose order {order_id} is for protocol {protocol}, not the session plan's {}",
            session.plan.protocol_id
        )));
    }
    if owner != patient.get() {
        return Err(bad(format!(
            "dose order {order_id} belongs to another patient"
        )));
    }
    if state != "verified" {
        return Err(bad(format!(
            "dose order {order_id} is {}: a session is scheduled only for an order verified by a second clinician",
            state.replace('_', " ")
        )));
    }
    if session
        .checklist
        .dose
        .as_ref()
        .is_some_and(|d| d.order_id != order_id)
    {
        return Err(bad(format!(
            "the attached dose is not dose order {order_id}"
        )));
    }
    Ok(())
}

/// The site a new session is held at: its chair's, which must be one of the actor's sites; a
/// chair not on the chair list is at the actor's only site (an organisation of one site, or a
/// user of one).
pub(crate) async fn session_site_for_chair(
    tx: &mut crate::sql::Tx,
    actor: &Actor,
    chair: &str,
) -> Result<i64> {
    let bad = |m: String| StoreError::Invalid(FieldErrors::single("chair", m));
    let known: Option<i64> =
        sqlx::query_scalar("SELECT site_id FROM ops_chairs WHERE LOWER(name) = LOWER($1)")
            .bind(chair.trim())
            .fetch_optional(&mut **tx)
            .await?;
    match known {
        Some(site) => {
            if crate::sites::scope_of(tx, actor).await?.admits(site) {
                Ok(site)
            } else {
                Err(bad(format!("chair {chair} is not at a site of yours")))
            }
        }
        None => crate::sites::acting_site(tx, actor, None).await.map_err(|_| {
            bad(format!(
                "no chair named {chair}: where you work at several sites, a session is held in one of a site's chairs"
            ))
        }),
    }
}

impl SqlStore {
    pub(crate) async fn create_treatment_session(
        &self,
        actor: &Actor,
        patient: PatientId,
        session: &Session,
    ) -> Result<SessionRecord> {
        require(actor, Permission::RunSession)?;
        if session.chair.is_empty() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "chair", "required",
            )));
        }
        let mut tx = self.unit(actor).await?;
        crate::sql::load_patient(&mut tx, patient).await?;
        check_order_for_session(&mut tx, patient, session).await?;
        let site = session_site_for_chair(&mut tx, actor, &session.chair).await?;
        crate::sites::check_protocol_site(&mut tx, &session.plan.protocol_id, site, "order_id")
            .await?;
        let now = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO treatment_sessions (patient_id, chair, phase, body, revision, signed, created_by, created_at, updated_at, site_id)
             VALUES ($1, $2, $3, $4, 1, 0, $5, $6, $6, $7) RETURNING id",
        )
        .bind(patient.get())
        .bind(&session.chair)
        .bind(session.phase.as_str())
        .bind(body_of(session)?)
        .bind(&actor.username)
        .bind(&now)
        .bind(site)
        .fetch_one(&mut **tx)
        .await?;
        let id: SessionId = row.try_get("id")?;
        tx.audit(&AuditEvent::new(
            "session.create",
            Some(patient.get()),
            format!(
                "session {id}: {} on {}",
                session.plan.protocol_id, session.chair
            ),
        ))
        .await?;
        let rec = load_session(&mut tx, id).await?;
        tx.commit().await?;
        Ok(rec)
    }

    pub(crate) async fn session_record(
        &self,
        actor: &Actor,
        id: SessionId,
    ) -> Result<SessionRecord> {
        self.session_record_as(actor, id, Permission::ClinicalRead, "session.read")
            .await
    }

    /// A session's record read under `permission`, audited as `action`.
    pub(crate) async fn session_record_as(
        &self,
        actor: &Actor,
        id: SessionId,
        permission: Permission,
        action: &str,
    ) -> Result<SessionRecord> {
        let mut tx = self.read_audited(actor, permission).await?;
        let rec = load_session_for(&mut tx, actor, id).await?;
        tx.audit(&AuditEvent::new(
            action,
            Some(rec.patient_id.get()),
            format!("session {id}"),
        ))
        .await?;
        tx.commit().await?;
        Ok(rec)
    }

    pub(crate) async fn apply_session_command(
        &self,
        actor: &Actor,
        id: SessionId,
        command: &Command,
        now: Timestamp,
    ) -> Result<SessionRecord> {
        self.apply_in(actor, id, command, now, None).await
    }

    /// [`SessionStore::sign_session`]: the signature and the exposure predicted from revision
    /// `revision` of the record, in one unit.
    pub(crate) async fn sign_session(
        &self,
        actor: &Actor,
        id: SessionId,
        now: Timestamp,
        revision: i64,
        exposure: Option<&crate::registry::PredictedExposure>,
    ) -> Result<SessionRecord> {
        self.apply_in(actor, id, &Command::Sign, now, Some((revision, exposure)))
            .await
    }

    /// Applies `command`; with `signed_as`, only to the record at that revision (anything else
    /// is `Conflict`, nothing written), and the exposure predicted from that revision, when
    /// there is one, is stored in the same unit as the signature.
    async fn apply_in(
        &self,
        actor: &Actor,
        id: SessionId,
        command: &Command,
        now: Timestamp,
        signed_as: Option<(i64, Option<&crate::registry::PredictedExposure>)>,
    ) -> Result<SessionRecord> {
        let permission = if command.needs_sign_permission() {
            Permission::SignSession
        } else {
            Permission::RunSession
        };
        let mut tx = self.write(actor, permission).await?;
        let mut rec = load_session_for(&mut tx, actor, id).await?;
        if let Some((revision, _)) = signed_as
            && rec.revision != revision
        {
            return Err(StoreError::Conflict(format!(
                "session {id} changed while it was being signed (revision {} now, {revision} read): sign it again",
                rec.revision
            )));
        }
        let before = rec.session.phase;
        let addenda_before = rec.session.addenda.len();
        crate::session_ops::refresh_consent(&mut tx, rec.patient_id, &mut rec.session, now).await?;
        if let Command::Sign = command {
            crate::session_ops::refresh_ledger(&mut tx, id, rec.patient_id, &mut rec.session, now)
                .await?;
        }
        rec.session
            .apply(command, &actor.username, now)
            .map_err(|r| StoreError::Conflict(r.to_string()))?;
        if let Command::Addendum { .. } = command {
            for a in &rec.session.addenda[addenda_before..] {
                sqlx::query(
                    "INSERT INTO session_addenda (session_id, at, written_by, text) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(a.at.to_string())
                .bind(&a.by)
                .bind(&a.text)
                .execute(&mut **tx)
                .await?;
            }
        } else {
            write_session(&mut tx, id, &rec.session).await?;
        }
        let after = rec.session.phase;
        let detail = if before == after {
            format!("session {id}: {}", command.name())
        } else {
            format!(
                "session {id}: {} ({} -> {})",
                command.name(),
                before.as_str(),
                after.as_str()
            )
        };
        let action = match command {
            Command::Sign => "session.sign",
            Command::Addendum { .. } => "session.addendum",
            Command::AcknowledgeAlarm { .. } => "session.alarm.acknowledge",
            Command::ResolveAlarm { .. } => "session.alarm.resolve",
            _ => "session.update",
        };
        tx.audit(&AuditEvent::new(action, Some(rec.patient_id.get()), detail))
            .await?;
        if let Some((_, Some(e))) = signed_as {
            crate::registry::put_exposure(
                &mut tx,
                id.get(),
                rec.patient_id.get(),
                e,
                &now.to_string(),
            )
            .await?;
            tx.audit(&crate::registry::exposure_event(
                id,
                rec.patient_id.get(),
                e,
            ))
            .await?;
        }
        let rec = load_session(&mut tx, id).await?;
        tx.commit().await?;
        Ok(rec)
    }

    pub(crate) async fn active_sessions(&self, actor: &Actor) -> Result<Vec<SessionRecord>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let scope = crate::sites::scope_of(&mut tx, actor).await?;
        let rows = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE phase IN ({}) AND {} ORDER BY chair, id",
            active_list(),
            scope.sql("site_id")
        )))
        .fetch_all(&mut **tx)
        .await?;
        let recs: Vec<SessionRecord> = rows
            .into_iter()
            .map(SessionRecord::try_from)
            .collect::<Result<_>>()?;
        if recs.is_empty() {
            // No session, no patient shown: nothing to record, the unit is dropped.
            return Ok(recs);
        }
        for r in &recs {
            tx.audit(&AuditEvent::new(
                "session.read",
                Some(r.patient_id.get()),
                format!("session {} on the suite dashboard", r.id),
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(recs)
    }

    pub(crate) async fn patient_sessions(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<SessionRecord>> {
        require(actor, Permission::ClinicalRead)?;
        sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE patient_id = $1 ORDER BY id DESC"
        )))
        .bind(patient.get())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(SessionRecord::try_from)
        .collect()
    }
}
