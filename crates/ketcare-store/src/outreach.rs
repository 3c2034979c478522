//! Reaching patients between sessions: contact preferences (channel and consent to be
//! contacted, per patient or guardian of record) and the outbox of messages.
//!
//! A preference is never changed in place: a new row replaces the one in force, so who
//! recorded consent, and when, stays. A message is inserted in the unit that creates the link it
//! carries, after checking — in that transaction — that the preference the caller routed it by is
//! still the one in force and still consents; so a link whose message is acknowledged is durable
//! with it, and nothing is queued after consent was withdrawn. The worker claims a due message by
//! moving its next try forward (a compare-and-set on `attempts`), hands it to its channel outside
//! any transaction, and records the outcome as an audited unit of the `system:outbox` account. A
//! message's text (which holds the link's token) is emptied once it is sent or failed.

use crate::measures::MeasureLink;
use crate::measures::insert_link;
use crate::sql::{Unit, corrupt, load_patient, now_rfc3339};
use crate::{Result, SqlStore, StoreError, require};
use async_trait::async_trait;
use ketcare_core::audit::AuditEvent;
use ketcare_core::{
    Actor, ContactPreferenceId, FieldErrors, GuardianId, LinkId, MessageId, PatientId, Permission,
};
use ketcare_ops::outreach::{Channel, MessageState, Next, Receipt, after_receipt};
use serde::Serialize;

/// The account the delivery worker records its outcomes as.
pub fn outbox_actor() -> Actor {
    Actor {
        user_id: None,
        username: "system:outbox".into(),
        role: None,
        address: "local".into(),
    }
}

/// A recorded contact preference.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ContactPreference {
    #[schema(value_type = i64)]
    pub id: ContactPreferenceId,
    #[schema(value_type = i64)]
    pub patient_id: PatientId,
    /// The guardian of record it is for (`None`: the patient).
    #[schema(value_type = Option<i64>)]
    pub guardian_id: Option<GuardianId>,
    pub channel: Channel,
    /// Consent to be contacted on that channel.
    pub consented: bool,
    pub recorded_by: String,
    pub recorded_at: String,
}

#[derive(sqlx::FromRow)]
struct PreferenceRow {
    id: ContactPreferenceId,
    patient_id: PatientId,
    guardian_id: Option<GuardianId>,
    channel: String,
    consented: i64,
    recorded_by: String,
    recorded_at: String,
}

impl TryFrom<PreferenceRow> for ContactPreference {
    type Error = StoreError;
    fn try_from(r: PreferenceRow) -> Result<Self> {
        Ok(ContactPreference {
            channel: Channel::parse(&r.channel)
                .ok_or_else(|| corrupt("contact_preferences.channel", &r.channel))?,
            id: r.id,
            patient_id: r.patient_id,
            guardian_id: r.guardian_id,
            consented: r.consented == 1,
            recorded_by: r.recorded_by,
            recorded_at: r.recorded_at,
        })
    }
}

const PREF_COLS: &str = "id, patient_id, guardian_id, channel, consented, recorded_by, recorded_at";

/// A preference to record.
#[derive(Debug, Clone)]
pub struct NewContactPreference {
    pub guardian_id: Option<GuardianId>,
    pub channel: Channel,
    pub consented: bool,
}

/// A message in the outbox. Its text is not shown (it holds the link's token while it waits).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OutboxMessage {
    #[schema(value_type = i64)]
    pub id: MessageId,
    #[schema(value_type = i64)]
    pub patient_id: PatientId,
    #[schema(value_type = Option<i64>)]
    pub guardian_id: Option<GuardianId>,
    #[schema(value_type = Option<i64>)]
    pub link_id: Option<LinkId>,
    pub channel: Channel,
    pub recipient: String,
    pub status: MessageState,
    /// Tries so far.
    pub attempts: i64,
    /// Epoch seconds of the next try, while queued.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub finished_at: Option<String>,
    #[serde(skip)]
    pub subject: String,
    #[serde(skip)]
    pub body: String,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: MessageId,
    patient_id: PatientId,
    guardian_id: Option<GuardianId>,
    link_id: Option<LinkId>,
    channel: String,
    recipient: String,
    subject: String,
    body: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created_by: String,
    created_at: String,
    sent_at: Option<String>,
    finished_at: Option<String>,
}

impl TryFrom<MessageRow> for OutboxMessage {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self> {
        Ok(OutboxMessage {
            channel: Channel::parse(&r.channel)
                .ok_or_else(|| corrupt("outbox.channel", &r.channel))?,
            status: MessageState::parse(&r.status)
                .ok_or_else(|| corrupt("outbox.status", &r.status))?,
            id: r.id,
            patient_id: r.patient_id,
            guardian_id: r.guardian_id,
            link_id: r.link_id,
            recipient: r.recipient,
            subject: r.subject,
            body: r.body,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            created_by: r.created_by,
            created_at: r.created_at,
            sent_at: r.sent_at,
            finished_at: r.finished_at,
        })
    }
}

const MSG_COLS: &str = "id, patient_id, guardian_id, link_id, channel, recipient, subject, body, status, attempts, next_attempt_at, last_error, created_by, created_at, sent_at, finished_at";

/// A message to queue, routed by the caller from the preference `preference_id` (checked again
/// in the link's transaction).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub preference_id: ContactPreferenceId,
    pub channel: Channel,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// Epoch seconds of the first try (later than now in quiet hours).
    pub first_attempt_at: i64,
    /// A reminder of an unanswered link (else the link's first message).
    pub reminder: bool,
}

/// A link to create (see [`crate::MeasuresStore::create_link`]).
#[derive(Debug, Clone)]
pub struct NewLink<'a> {
    pub token_hash: &'a str,
    pub instruments: &'a [String],
    pub expires_at: i64,
    pub guardian: Option<GuardianId>,
}

/// A link the reminder runner may remind of.
#[derive(Debug, Clone, PartialEq)]
pub struct RemindableLink {
    pub link: MeasureLink,
    /// Epoch seconds its first message was due.
    pub first_due_at: i64,
    /// Reminders sent so far (the highest number recorded).
    pub reminders_sent: u32,
}

/// A schedule of a course (its rule is `ketcare_measures::sending::SendSchedule` as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct StoredSchedule {
    pub id: i64,
    #[schema(value_type = i64)]
    pub patient_id: PatientId,
    pub course_id: i64,
    #[schema(value_type = Option<i64>)]
    pub guardian_id: Option<GuardianId>,
    /// The rule, as JSON.
    pub schedule: String,
    pub created_by: String,
    pub created_at: String,
    /// Epoch seconds it was added: no occurrence due earlier is sent.
    pub created_epoch: i64,
    /// Who stopped it and when (`None`: it runs).
    pub stopped_by: Option<String>,
    pub stopped_at: Option<String>,
}

const SCHEDULE_COLS: &str = "id, patient_id, course_id, guardian_id, schedule, created_by, created_at, created_epoch, stopped_by, stopped_at";

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait OutreachStore: Send + Sync {
    /// Records a preference for the patient or one of their guardians of record
    /// (`PatientWrite`; audited).
    async fn record_contact_preference(
        &self,
        actor: &Actor,
        patient: PatientId,
        pref: &NewContactPreference,
    ) -> Result<ContactPreference>;
    /// Every preference recorded for the patient and their guardians, newest first
    /// (`PatientRead`; audited). The first of each recipient is the one in force.
    async fn contact_preferences(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<ContactPreference>>;
    /// Creates a link and queues its message in one unit (`RecordMeasures`). Refused with a
    /// conflict naming `consent` when the preference the message was routed by is no longer the
    /// one in force, no longer consents, or names another channel.
    async fn create_link_with_message(
        &self,
        actor: &Actor,
        patient: PatientId,
        link: &NewLink<'_>,
        message: &NewMessage,
    ) -> Result<(MeasureLink, OutboxMessage)>;
    /// A patient's messages, newest first (`ClinicalRead`; audited).
    async fn patient_messages(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<OutboxMessage>>;
    /// Takes the oldest message due at `now` for one try: its attempts grow by one and its next
    /// try moves to `hold_until`, so no other worker takes it meanwhile. `None`: nothing due.
    async fn claim_due_message(&self, now: i64, hold_until: i64) -> Result<Option<OutboxMessage>>;
    /// Records the outcome of the try `claimed` (as [`Self::claim_due_message`] returned it)
    /// started, as `system:outbox`. A try already finished, or a claim another worker has since
    /// taken again, is refused (conflict).
    async fn finish_attempt(&self, claimed: &OutboxMessage, next: &Next) -> Result<OutboxMessage>;
    /// Applies the channel's delivery receipt for message `id` as `system:outbox` (audited
    /// `outbox.delivered` / `outbox.undelivered`): a sent text message becomes delivered or
    /// failed. A repeated receipt changes nothing (`false`); unknown `id` is not found; a receipt
    /// [`ketcare_ops::outreach::after_receipt`] refuses is a conflict.
    async fn record_receipt(
        &self,
        id: MessageId,
        receipt: Receipt,
        error: Option<&str>,
    ) -> Result<(OutboxMessage, bool)>;
    /// Unanswered, unexpired links at `now` whose first message was due at or before
    /// `due_before`, with when that was and how many reminders they have had (the runner's; ids
    /// only, not audited).
    async fn links_to_remind(&self, due_before: i64, now: i64) -> Result<Vec<RemindableLink>>;
    /// Sends reminder `number` of link `link` once: in one unit, records it under its unique key
    /// (link, number) and, only if it was not there yet, gives the link a new token (the old
    /// address stops working; the link, its questionnaires and expiry stay) and queues `message`
    /// with it (checked as [`Self::create_link_with_message`] does). `None`: that reminder was
    /// sent already, or the link was answered or expired meanwhile.
    async fn remind(
        &self,
        actor: &Actor,
        link: &MeasureLink,
        number: u32,
        new_token_hash: &str,
        message: &NewMessage,
        now: i64,
    ) -> Result<Option<OutboxMessage>>;
    /// Questionnaire links that expired unanswered in `[from, to)` (epoch seconds) and whose
    /// patient has completed no later link, oldest first (`ClinicalRead`; each listed patient an
    /// audited access).
    async fn expired_unanswered_links(
        &self,
        actor: &Actor,
        from: i64,
        to: i64,
    ) -> Result<Vec<MeasureLink>>;
    /// Adds a schedule to one of the patient's courses (`RecordMeasures`; audited).
    async fn add_schedule(
        &self,
        actor: &Actor,
        patient: PatientId,
        course_id: i64,
        schedule_json: &str,
        guardian: Option<GuardianId>,
        now: i64,
    ) -> Result<StoredSchedule>;
    /// Every schedule not stopped, for the runner (ids and rules only; not audited).
    async fn active_schedules(&self) -> Result<Vec<StoredSchedule>>;
    /// The patient's schedules, running and stopped, oldest first (`ClinicalRead`; audited).
    async fn patient_schedules(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StoredSchedule>>;
    /// Stops one of the patient's schedules (`RecordMeasures`; audited): it sends nothing more.
    /// Not the patient's: not found; stopped already: a conflict naming who stopped it.
    async fn stop_schedule(
        &self,
        actor: &Actor,
        patient: PatientId,
        schedule_id: i64,
    ) -> Result<StoredSchedule>;
    /// Whether the occurrence `key` of a schedule has been sent (not audited).
    async fn occurrence_sent(&self, schedule_id: i64, key: &str) -> Result<bool>;
    /// Sends occurrence `key` of `schedule` once: in one unit, inserts it under its unique key
    /// and, only if it was not there yet, creates its link and queues its message (checked as
    /// [`Self::create_link_with_message`] does). `None`: it had been sent already, or the
    /// schedule has been stopped.
    async fn send_occurrence(
        &self,
        actor: &Actor,
        schedule: &StoredSchedule,
        key: &str,
        link: &NewLink<'_>,
        message: Option<&NewMessage>,
    ) -> Result<Option<MeasureLink>>;
}

async fn message_by_id(tx: &mut Unit<'_>, id: MessageId) -> Result<OutboxMessage> {
    let r = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MSG_COLS} FROM outbox WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut ***tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: "message".into(),
    })?;
    OutboxMessage::try_from(r)
}

async fn audit(tx: &mut Unit<'_>, action: &str, patient: PatientId, detail: String) -> Result<()> {
    tx.audit(&AuditEvent::new(action, Some(patient.get()), detail))
        .await
}

/// The preference in force for the patient (`guardian` `None`) or a guardian.
async fn preference_in_force(
    tx: &mut Unit<'_>,
    patient: PatientId,
    guardian: Option<GuardianId>,
) -> Result<Option<ContactPreference>> {
    let sql = match guardian {
        None => format!(
            "SELECT {PREF_COLS} FROM contact_preferences WHERE patient_id = $1 AND guardian_id IS NULL ORDER BY id DESC LIMIT 1"
        ),
        Some(_) => format!(
            "SELECT {PREF_COLS} FROM contact_preferences WHERE patient_id = $1 AND guardian_id = $2 ORDER BY id DESC LIMIT 1"
        ),
    };
    let mut q = sqlx::query_as::<_, PreferenceRow>(sqlx::AssertSqlSafe(sql)).bind(patient);
    if let Some(g) = guardian {
        q = q.bind(g);
    }
    q.fetch_optional(&mut ***tx)
        .await?
        .map(ContactPreference::try_from)
        .transpose()
}

/// Queues `m` for link `link` in the caller's unit, after checking that the preference it was
/// routed by is still the one in force, consents and names the same channel.
async fn queue_message(
    tx: &mut Unit<'_>,
    patient: PatientId,
    link: &MeasureLink,
    m: &NewMessage,
) -> Result<MessageId> {
    let current = preference_in_force(tx, patient, link.guardian_id).await?;
    match current {
        Some(p) if p.id == m.preference_id && p.consented && p.channel == m.channel => {}
        _ => {
            return Err(StoreError::Conflict(
                "consent: the contact preference changed; nothing was sent".into(),
            ));
        }
    }
    let row = sqlx::query(
        "INSERT INTO outbox (patient_id, guardian_id, link_id, preference_id, channel, recipient, subject, body, status, attempts, next_attempt_at, first_due_at, kind, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 0, $9, $9, $10, $11, $12) RETURNING id",
    )
    .bind(patient)
    .bind(link.guardian_id)
    .bind(link.id)
    .bind(m.preference_id)
    .bind(m.channel.as_str())
    .bind(&m.recipient)
    .bind(&m.subject)
    .bind(&m.body)
    .bind(m.first_attempt_at)
    .bind(if m.reminder { "reminder" } else { "link" })
    .bind(&tx.actor().username)
    .bind(now_rfc3339())
    .fetch_one(&mut ***tx)
    .await?;
    let id: MessageId = sqlx::Row::try_get(&row, "id")?;
    audit(
        tx,
        "outbox.queue",
        patient,
        format!(
            "message {id} for link {} by {}",
            link.id,
            m.channel.as_str()
        ),
    )
    .await?;
    Ok(id)
}

/// The queries are written here, in the trait's one implementation.
#[async_trait]
impl OutreachStore for SqlStore {
    async fn record_contact_preference(
        &self,
        actor: &Actor,
        patient: PatientId,
        pref: &NewContactPreference,
    ) -> Result<ContactPreference> {
        let mut tx = self.write(actor, Permission::PatientWrite).await?;
        let record = load_patient(&mut tx, patient).await?;
        if let Some(g) = pref.guardian_id
            && !record.guardians.iter().any(|x| x.id == g)
        {
            return Err(StoreError::Invalid(FieldErrors::single(
                "guardian_id",
                "not a guardian of record of this patient",
            )));
        }
        let row = sqlx::query_as::<_, PreferenceRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO contact_preferences (patient_id, guardian_id, channel, consented, recorded_by, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {PREF_COLS}"
        )))
        .bind(patient)
        .bind(pref.guardian_id)
        .bind(pref.channel.as_str())
        .bind(i64::from(pref.consented))
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        let saved = ContactPreference::try_from(row)?;
        audit(
            &mut tx,
            "contact_preference.record",
            patient,
            format!(
                "preference {} for {}: {}, consent {}",
                saved.id,
                pref.guardian_id
                    .map(|g| format!("guardian {g}"))
                    .unwrap_or_else(|| "patient".into()),
                pref.channel.as_str(),
                if pref.consented { "yes" } else { "no" }
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn contact_preferences(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<ContactPreference>> {
        self.patient_rows(
            Permission::PatientRead,
            actor,
            patient,
            format!(
                "SELECT {PREF_COLS} FROM contact_preferences WHERE patient_id = $1 ORDER BY id DESC"
            ),
            <ContactPreference as TryFrom<PreferenceRow>>::try_from,
            "contact_preference.read",
            "preferences",
        )
        .await
    }

    async fn create_link_with_message(
        &self,
        actor: &Actor,
        patient: PatientId,
        link: &NewLink<'_>,
        m: &NewMessage,
    ) -> Result<(MeasureLink, OutboxMessage)> {
        require(actor, Permission::RecordMeasures)?;
        let mut tx = self.unit(actor).await?;
        let stored = insert_link(
            &mut tx,
            patient,
            link.token_hash,
            link.instruments,
            link.expires_at,
            link.guardian,
        )
        .await?;
        let id = queue_message(&mut tx, patient, &stored, m).await?;
        let msg = message_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok((stored, msg))
    }

    async fn patient_messages(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<OutboxMessage>> {
        self.patient_rows(
            Permission::ClinicalRead,
            actor,
            patient,
            format!("SELECT {MSG_COLS} FROM outbox WHERE patient_id = $1 ORDER BY id DESC"),
            <OutboxMessage as TryFrom<MessageRow>>::try_from,
            "outbox.read",
            "messages",
        )
        .await
    }

    /// Bookkeeping, not audited (like a sign-in cookie's): the try's outcome is.
    async fn claim_due_message(&self, now: i64, hold_until: i64) -> Result<Option<OutboxMessage>> {
        loop {
            let found = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {MSG_COLS} FROM outbox WHERE status = 'queued' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT 1"
            )))
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = found else {
                return Ok(None);
            };
            let mut msg = OutboxMessage::try_from(row)?;
            let taken = sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1
                 WHERE id = $2 AND status = 'queued' AND attempts = $3 AND next_attempt_at <= $4",
            )
            .bind(hold_until)
            .bind(msg.id)
            .bind(msg.attempts)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if taken == 1 {
                msg.attempts += 1;
                msg.next_attempt_at = hold_until;
                return Ok(Some(msg));
            }
            // Another worker took it first: look again.
        }
    }

    async fn finish_attempt(&self, claimed: &OutboxMessage, next: &Next) -> Result<OutboxMessage> {
        let (id, attempts) = (claimed.id, claimed.attempts);
        let actor = outbox_actor();
        let mut tx = self.unit(&actor).await?;
        let msg = message_by_id(&mut tx, id).await?;
        if msg.status != MessageState::Queued
            || msg.attempts != attempts
            || msg.next_attempt_at != claimed.next_attempt_at
        {
            return Err(StoreError::Conflict(
                "message: this try is no longer the message's current one".into(),
            ));
        }
        let now = now_rfc3339();
        let (action, detail) = match next {
            Next::Sent => {
                sqlx::query(
                    "UPDATE outbox SET status = 'sent', sent_at = $1, last_error = NULL, subject = '', body = '' WHERE id = $2",
                )
                .bind(&now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                ("outbox.sent", format!("message {id}, try {attempts}"))
            }
            Next::Retry { at, error } => {
                sqlx::query(
                    "UPDATE outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3",
                )
                .bind(at)
                .bind(error)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                (
                    "outbox.retry",
                    format!("message {id}, try {attempts} failed; next try at {at}"),
                )
            }
            Next::Failed { error } => {
                sqlx::query(
                    "UPDATE outbox SET status = 'failed', finished_at = $1, last_error = $2, subject = '', body = '' WHERE id = $3",
                )
                .bind(&now)
                .bind(error)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                ("outbox.failed", format!("message {id}, try {attempts}"))
            }
        };
        audit(&mut tx, action, msg.patient_id, detail).await?;
        let msg = message_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(msg)
    }

    async fn record_receipt(
        &self,
        id: MessageId,
        receipt: Receipt,
        error: Option<&str>,
    ) -> Result<(OutboxMessage, bool)> {
        let actor = outbox_actor();
        let mut tx = self.unit(&actor).await?;
        let msg = message_by_id(&mut tx, id).await?;
        let next = after_receipt(id.get(), msg.channel, msg.status, receipt)
            .map_err(|e| StoreError::Conflict(format!("receipt: {e}")))?;
        let Some(state) = next else {
            return Ok((msg, false));
        };
        // Compare-and-set on the state read, so two receipts at once record one change.
        let changed = sqlx::query(
            "UPDATE outbox SET status = $1, finished_at = $2, last_error = COALESCE($3, last_error) WHERE id = $4 AND status = $5",
        )
        .bind(state.as_str())
        .bind(now_rfc3339())
        .bind(error)
        .bind(id)
        .bind(msg.status.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(StoreError::Conflict(
                "receipt: the message changed meanwhile; send it again".into(),
            ));
        }
        let action = match receipt {
            Receipt::Delivered => "outbox.delivered",
            Receipt::Failed => "outbox.undelivered",
        };
        audit(
            &mut tx,
            action,
            msg.patient_id,
            format!("message {id}, by the gateway's receipt"),
        )
        .await?;
        let msg = message_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok((msg, true))
    }

    async fn add_schedule(
        &self,
        actor: &Actor,
        patient: PatientId,
        course_id: i64,
        schedule_json: &str,
        guardian: Option<GuardianId>,
        now: i64,
    ) -> Result<StoredSchedule> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        let record = load_patient(&mut tx, patient).await?;
        if let Some(g) = guardian
            && !record.guardians.iter().any(|x| x.id == g)
        {
            return Err(StoreError::Invalid(FieldErrors::single(
                "guardian_id",
                "not a guardian of record of this patient",
            )));
        }
        let owner: Option<PatientId> =
            sqlx::query_scalar("SELECT patient_id FROM measure_courses WHERE id = $1")
                .bind(course_id)
                .fetch_optional(&mut **tx)
                .await?;
        if owner != Some(patient) {
            return Err(StoreError::Invalid(FieldErrors::single(
                "course_id",
                "not a course of this patient",
            )));
        }
        let saved = sqlx::query_as::<_, StoredSchedule>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO measure_schedules (patient_id, course_id, guardian_id, schedule, created_by, created_at, created_epoch)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SCHEDULE_COLS}"
        )))
        .bind(patient)
        .bind(course_id)
        .bind(guardian)
        .bind(schedule_json)
        .bind(&actor.username)
        .bind(now_rfc3339())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        audit(
            &mut tx,
            "measure_schedule.create",
            patient,
            format!(
                "schedule {} for course {course_id}: {schedule_json}",
                saved.id
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn active_schedules(&self) -> Result<Vec<StoredSchedule>> {
        Ok(
            sqlx::query_as::<_, StoredSchedule>(sqlx::AssertSqlSafe(format!(
                "SELECT {SCHEDULE_COLS} FROM measure_schedules WHERE stopped_at IS NULL ORDER BY id"
            )))
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn patient_schedules(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StoredSchedule>> {
        self.patient_rows(
            Permission::ClinicalRead,
            actor,
            patient,
            format!(
                "SELECT {SCHEDULE_COLS} FROM measure_schedules WHERE patient_id = $1 ORDER BY id"
            ),
            Ok::<StoredSchedule, StoreError>,
            "measure_schedule.read",
            "schedules",
        )
        .await
    }

    async fn stop_schedule(
        &self,
        actor: &Actor,
        patient: PatientId,
        schedule_id: i64,
    ) -> Result<StoredSchedule> {
        let mut tx = self.write(actor, Permission::RecordMeasures).await?;
        let select = format!(
            "SELECT {SCHEDULE_COLS} FROM measure_schedules WHERE id = $1 AND patient_id = $2"
        );
        let found = sqlx::query_as::<_, StoredSchedule>(sqlx::AssertSqlSafe(select.clone()))
            .bind(schedule_id)
            .bind(patient)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "schedule".into(),
            })?;
        let stopped = sqlx::query(
            "UPDATE measure_schedules SET stopped_by = $1, stopped_at = $2 WHERE id = $3 AND stopped_at IS NULL",
        )
        .bind(&actor.username)
        .bind(now_rfc3339())
        .bind(schedule_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if stopped != 1 {
            return Err(StoreError::Conflict(format!(
                "schedule {schedule_id}: stopped already by {} at {}",
                found.stopped_by.unwrap_or_default(),
                found.stopped_at.unwrap_or_default()
            )));
        }
        audit(
            &mut tx,
            "measure_schedule.stop",
            patient,
            format!("schedule {schedule_id} for course {}", found.course_id),
        )
        .await?;
        let saved = sqlx::query_as::<_, StoredSchedule>(sqlx::AssertSqlSafe(select))
            .bind(schedule_id)
            .bind(patient)
            .fetch_one(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn occurrence_sent(&self, schedule_id: i64, key: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM schedule_occurrences WHERE schedule_id = $1 AND occurrence = $2",
        )
        .bind(schedule_id)
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    async fn send_occurrence(
        &self,
        actor: &Actor,
        schedule: &StoredSchedule,
        key: &str,
        link: &NewLink<'_>,
        message: Option<&NewMessage>,
    ) -> Result<Option<MeasureLink>> {
        require(actor, Permission::RecordMeasures)?;
        let mut tx = self.unit(actor).await?;
        // A write on the schedule's row first: a stop committed before it is seen (nothing is
        // sent), and a stop that comes later waits for this unit (PostgreSQL's row lock,
        // SQLite's one writer), so nothing is sent after a stop has been acknowledged.
        let running = sqlx::query(
            "UPDATE measure_schedules SET stopped_at = NULL WHERE id = $1 AND stopped_at IS NULL",
        )
        .bind(schedule.id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if running != 1 {
            return Ok(None);
        }
        let inserted = sqlx::query(
            "INSERT INTO schedule_occurrences (schedule_id, occurrence, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (schedule_id, occurrence) DO NOTHING RETURNING id",
        )
        .bind(schedule.id)
        .bind(key)
        .bind(now_rfc3339())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = inserted else {
            // Sent already: nothing is written, the unit is dropped.
            return Ok(None);
        };
        let occurrence: i64 = sqlx::Row::try_get(&row, "id")?;
        let stored = insert_link(
            &mut tx,
            schedule.patient_id,
            link.token_hash,
            link.instruments,
            link.expires_at,
            link.guardian,
        )
        .await?;
        if let Some(m) = message {
            queue_message(&mut tx, schedule.patient_id, &stored, m).await?;
        }
        sqlx::query("UPDATE schedule_occurrences SET link_id = $1 WHERE id = $2")
            .bind(stored.id)
            .bind(occurrence)
            .execute(&mut **tx)
            .await?;
        audit(
            &mut tx,
            "measure_schedule.send",
            schedule.patient_id,
            format!(
                "schedule {} occurrence {key}: link {}",
                schedule.id, stored.id
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    async fn expired_unanswered_links(
        &self,
        actor: &Actor,
        from: i64,
        to: i64,
    ) -> Result<Vec<MeasureLink>> {
        SqlStore::expired_unanswered_links(self, actor, from, to).await
    }

    async fn links_to_remind(&self, due_before: i64, now: i64) -> Result<Vec<RemindableLink>> {
        let rows: Vec<(LinkId, i64, i64)> = sqlx::query_as(
            "SELECT l.id,
                    (SELECT MIN(o.first_due_at) FROM outbox o WHERE o.link_id = l.id AND o.kind = 'link'),
                    COALESCE((SELECT MAX(r.number) FROM link_reminders r WHERE r.link_id = l.id), 0)
             FROM measure_links l
             WHERE l.status <> 'completed' AND l.expires_at > $2
               AND EXISTS (SELECT 1 FROM outbox o WHERE o.link_id = l.id AND o.kind = 'link' AND o.first_due_at <= $1)
             ORDER BY l.id",
        )
        .bind(due_before)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for (id, first_due_at, sent) in rows {
            out.push(RemindableLink {
                link: crate::measures::link_by_id_pool(&self.pool, id).await?,
                first_due_at,
                reminders_sent: u32::try_from(sent).unwrap_or(u32::MAX),
            });
        }
        Ok(out)
    }

    async fn remind(
        &self,
        actor: &Actor,
        link: &MeasureLink,
        number: u32,
        new_token_hash: &str,
        message: &NewMessage,
        now: i64,
    ) -> Result<Option<OutboxMessage>> {
        require(actor, Permission::RecordMeasures)?;
        let mut tx = self.unit(actor).await?;
        let inserted = sqlx::query(
            "INSERT INTO link_reminders (link_id, number, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (link_id, number) DO NOTHING RETURNING id",
        )
        .bind(link.id)
        .bind(i64::from(number))
        .bind(now_rfc3339())
        .fetch_optional(&mut **tx)
        .await?;
        if inserted.is_none() {
            // Sent already (another pass, a restart, a second server): the unit is dropped.
            return Ok(None);
        }
        let changed = sqlx::query(
            "UPDATE measure_links SET token_hash = $1 WHERE id = $2 AND status <> 'completed' AND expires_at > $3",
        )
        .bind(new_token_hash)
        .bind(link.id)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(None);
        }
        let id = queue_message(&mut tx, link.patient_id, link, message).await?;
        audit(
            &mut tx,
            "measure_link.remind",
            link.patient_id,
            format!(
                "link {}: new token, reminder {number}, message {id}",
                link.id
            ),
        )
        .await?;
        let msg = message_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(Some(msg))
    }
}
