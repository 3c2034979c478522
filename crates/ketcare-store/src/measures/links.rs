//! Questionnaire links sent to a patient or guardian: created, opened and submitted under the
//! link's own actor, token stored only as a hash.

use super::*;

const LINK_COLS: &str = "id, patient_id, instruments, status, expires_at, created_by, created_at, opened_at, completed_at, guardian_id, sent_to";
/// A `measure_links` row as stored (`LINK_COLS`).
#[derive(sqlx::FromRow)]
struct LinkRow {
    id: LinkId,
    patient_id: PatientId,
    instruments: String,
    status: LinkStatus,
    expires_at: i64,
    created_by: String,
    created_at: String,
    opened_at: Option<String>,
    completed_at: Option<String>,
    guardian_id: Option<GuardianId>,
    sent_to: String,
}

impl TryFrom<LinkRow> for MeasureLink {
    type Error = StoreError;
    fn try_from(r: LinkRow) -> Result<Self> {
        Ok(MeasureLink {
            instruments: serde_json::from_str(&r.instruments)
                .map_err(|_| corrupt("measure_links.instruments", &r.instruments))?,
            id: r.id,
            patient_id: r.patient_id,
            status: r.status,
            expires_at: r.expires_at,
            created_by: r.created_by,
            created_at: r.created_at,
            opened_at: r.opened_at,
            completed_at: r.completed_at,
            guardian_id: r.guardian_id,
            sent_to: r.sent_to,
        })
    }
}

fn link_actor(link_id: LinkId, address: &str) -> Actor {
    Actor {
        user_id: None,
        username: format!("patient-link:{link_id}"),
        role: None,
        address: address.to_owned(),
    }
}
async fn link_by_hash(tx: &mut Tx, token_hash: &str) -> Result<MeasureLink> {
    sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINK_COLS} FROM measure_links WHERE token_hash = $1"
    )))
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await?
    .map(MeasureLink::try_from)
    .transpose()?
    .ok_or_else(|| StoreError::NotFound {
        what: "questionnaire link".into(),
    })
}

async fn link_by_id(tx: &mut Tx, id: LinkId) -> Result<MeasureLink> {
    let r = sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINK_COLS} FROM measure_links WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    MeasureLink::try_from(r)
}
impl SqlStore {
    /// The link's own actor (`patient-link:{id}`), from the stored link, for the unit its action
    /// runs in; `NotFound` when no link has this token.
    pub(super) async fn link_actor_for(&self, token_hash: &str, address: &str) -> Result<Actor> {
        let row = sqlx::query("SELECT id FROM measure_links WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "questionnaire link".into(),
            })?;
        Ok(link_actor(row.try_get("id")?, address))
    }
}

/// The link, read again inside the unit of its actor (the token names the same link).
pub(super) async fn link_in_unit(
    tx: &mut Unit<'_>,
    token_hash: &str,
    actor: &Actor,
) -> Result<MeasureLink> {
    let link = link_by_hash(tx, token_hash).await?;
    if actor.username != format!("patient-link:{}", link.id) {
        return Err(StoreError::NotFound {
            what: "questionnaire link".into(),
        });
    }
    Ok(link)
}
/// Refuses an expired link (used links are handled by the caller).
pub(super) fn check_expiry(link: &MeasureLink, now: i64) -> Result<()> {
    if now >= link.expires_at {
        return Err(StoreError::Conflict("link: this link has expired".into()));
    }
    Ok(())
}

impl SqlStore {
    pub(crate) async fn create_link(
        &self,
        actor: &Actor,
        patient: PatientId,
        token_hash: &str,
        instruments: &[String],
        expires_at: i64,
        guardian: Option<GuardianId>,
    ) -> Result<MeasureLink> {
        require(actor, Permission::RecordMeasures)?;
        let mut tx = self.unit(actor).await?;
        let link = insert_link(
            &mut tx,
            patient,
            token_hash,
            instruments,
            expires_at,
            guardian,
        )
        .await?;
        tx.commit().await?;
        Ok(link)
    }

    pub(crate) async fn patient_links(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<MeasureLink>> {
        self.patient_rows(
            Permission::ClinicalRead,
            actor,
            patient,
            format!("SELECT {LINK_COLS} FROM measure_links WHERE patient_id = $1 ORDER BY id DESC"),
            <MeasureLink as TryFrom<LinkRow>>::try_from,
            "measure_link.read",
            "links",
        )
        .await
    }

    pub(crate) async fn open_link(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
    ) -> Result<MeasureLink> {
        let actor = self.link_actor_for(token_hash, address).await?;
        let mut tx = self.unit(&actor).await?;
        let link = link_in_unit(&mut tx, token_hash, &actor).await?;
        if link.status == LinkStatus::Completed {
            return Err(StoreError::Conflict(
                "link: this link has already been used".into(),
            ));
        }
        check_expiry(&link, now)?;
        if link.status == LinkStatus::Sent {
            sqlx::query("UPDATE measure_links SET status = 'opened', opened_at = $1 WHERE id = $2")
                .bind(now_rfc3339())
                .bind(link.id)
                .execute(&mut **tx)
                .await?;
        }
        audit(
            &mut tx,
            "measure_link.open",
            link.patient_id,
            format!("link {}", link.id),
        )
        .await?;
        let link = link_by_id(&mut tx, link.id).await?;
        tx.commit().await?;
        Ok(link)
    }

    pub(crate) async fn submit_link(
        &self,
        token_hash: &str,
        now: i64,
        address: &str,
        responses: &[NewResponse],
    ) -> Result<(MeasureLink, Vec<StoredResponse>, bool)> {
        let actor = self.link_actor_for(token_hash, address).await?;
        let mut tx = self.unit(&actor).await?;
        let link = link_in_unit(&mut tx, token_hash, &actor).await?;
        if link.status == LinkStatus::Completed {
            // A reload or double submit of the same answers: the stored rows, nothing new;
            // other answers on a used link are refused.
            let mut stored = Vec::new();
            for r in responses {
                match response_by_key(&mut tx, &r.submission_key).await? {
                    Some(s) if s.link_id == Some(link.id) && s.answers == r.answers => {
                        stored.push(s)
                    }
                    _ => {
                        return Err(StoreError::Conflict(
                            "link: this link has already been used".into(),
                        ));
                    }
                }
            }
            // Nothing was written or newly shown: the unit is dropped, not committed.
            return Ok((link, stored, false));
        }
        check_expiry(&link, now)?;
        let mut stored = Vec::new();
        for r in responses {
            if !link.instruments.contains(&r.instrument) {
                return Err(StoreError::Invalid(FieldErrors::single(
                    "instrument",
                    format!("{} is not part of this link's set", r.instrument),
                )));
            }
            stored.push(
                insert_response(&mut tx, link.patient_id, Some(link.id), r)
                    .await?
                    .0,
            );
        }
        let mut sent: Vec<&str> = responses.iter().map(|r| r.instrument.as_str()).collect();
        let mut set: Vec<&str> = link.instruments.iter().map(String::as_str).collect();
        sent.sort_unstable();
        set.sort_unstable();
        if sent != set {
            return Err(StoreError::Invalid(FieldErrors::single(
                "instruments",
                "every questionnaire of the link must be answered together",
            )));
        }
        sqlx::query(
            "UPDATE measure_links SET status = 'completed', completed_at = $1 WHERE id = $2",
        )
        .bind(now_rfc3339())
        .bind(link.id)
        .execute(&mut **tx)
        .await?;
        audit(
            &mut tx,
            "measure_link.complete",
            link.patient_id,
            format!("link {}", link.id),
        )
        .await?;
        let link = link_by_id(&mut tx, link.id).await?;
        tx.commit().await?;
        Ok((link, stored, true))
    }

    pub(crate) async fn link_instruments(&self, token_hash: &str) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let link = link_by_hash(&mut tx, token_hash).await?;
        tx.commit().await?;
        Ok(link.instruments)
    }
}

/// Inserts a link for one patient and one set, with its audit record, inside the caller's unit
/// (the caller checked `RecordMeasures`): the recipient must be the patient or one of their
/// guardians of record.
pub(crate) async fn insert_link(
    tx: &mut Unit<'_>,
    patient: PatientId,
    token_hash: &str,
    instruments: &[String],
    expires_at: i64,
    guardian: Option<GuardianId>,
) -> Result<MeasureLink> {
    if instruments.is_empty() {
        return Err(StoreError::Invalid(FieldErrors::single(
            "instruments",
            "choose at least one questionnaire",
        )));
    }
    let record = load_patient(tx, patient).await?;
    let sent_to = match guardian {
        None => "patient".to_string(),
        Some(g) => {
            let Some(found) = record.guardians.iter().find(|x| x.id == g) else {
                return Err(StoreError::Invalid(FieldErrors::single(
                    "guardian_id",
                    "not a guardian of record of this patient",
                )));
            };
            format!(
                "{} ({})",
                found.record.name,
                found.record.relationship.as_str().replace('_', " ")
            )
        }
    };
    let set = serde_json::to_string(instruments)
        .map_err(|e| StoreError::Corrupt(format!("instruments: {e}")))?;
    let row = sqlx::query(
        "INSERT INTO measure_links (patient_id, token_hash, instruments, status, expires_at, created_by, created_at, guardian_id, sent_to)
         VALUES ($1, $2, $3, 'sent', $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(patient)
    .bind(token_hash)
    .bind(&set)
    .bind(expires_at)
    .bind(&tx.actor().username)
    .bind(now_rfc3339())
    .bind(guardian)
    .bind(&sent_to)
    .fetch_one(&mut ***tx)
    .await?;
    let id: LinkId = row.try_get("id")?;
    audit(
        tx,
        "measure_link.create",
        patient,
        format!("link {id} to {sent_to}: {}", instruments.join(", ")),
    )
    .await?;
    let link = link_by_id(tx, id).await?;
    Ok(link)
}

impl SqlStore {
    /// Links that expired unanswered in `[from, to)` whose patient has completed no later link,
    /// oldest first (`ClinicalRead`; each listed patient an audited access).
    pub(crate) async fn expired_unanswered_links(
        &self,
        actor: &Actor,
        from: i64,
        to: i64,
    ) -> Result<Vec<MeasureLink>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let links = sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {LINK_COLS} FROM measure_links l
             WHERE l.status <> 'completed' AND l.expires_at >= $1 AND l.expires_at < $2
               AND NOT EXISTS (SELECT 1 FROM measure_links n
                               WHERE n.patient_id = l.patient_id AND n.status = 'completed' AND n.id > l.id)
             ORDER BY l.expires_at, l.id"
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(MeasureLink::try_from)
        .collect::<Result<Vec<_>>>()?;
        let mut patients: Vec<PatientId> = links.iter().map(|l| l.patient_id).collect();
        patients.sort_unstable();
        patients.dedup();
        for p in &patients {
            audit(
                &mut tx,
                "measure_link.unanswered_read",
                *p,
                "links expired unanswered".into(),
            )
            .await?;
        }
        if patients.is_empty() {
            // Nothing listed: nothing to record; the unit is dropped.
            return Ok(links);
        }
        tx.commit().await?;
        Ok(links)
    }
}

/// One link by id, outside a unit (the schedule runner's bookkeeping read).
pub(crate) async fn link_by_id_pool(pool: &sqlx::AnyPool, id: LinkId) -> Result<MeasureLink> {
    let r = sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINK_COLS} FROM measure_links WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(pool)
    .await?;
    MeasureLink::try_from(r)
}
