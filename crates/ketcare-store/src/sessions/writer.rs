//! The vitals writer: group commit for readings.
//!
//! Every reading, whatever its edge (monitor, page, API, FHIR), is put in one bounded queue; one
//! task with its own connection takes what has queued up (up to `vitals_batch`) and writes it in
//! one transaction: each reading's row, its alarms evaluated by the pure core on the session as
//! the batch left it, each session document written once, and one audit record per reading,
//! chained in the queue's order. Only after the commit does each caller get its outcome, so an
//! edge never acknowledges a reading that is not durable. While a batch commits, the next one
//! queues: the busier the feed, the larger the batches, and throughput does not fall as load
//! rises. A full queue refuses the reading at once ([`StoreError::Busy`]) instead of letting a
//! backlog grow.
//!
//! A batch that fails on a retryable error (serialization failure, deadlock, lock timeout, busy
//! SQLite) is run again; one that fails otherwise is split and each reading written on its own,
//! so one bad row cannot refuse the others.

use super::vitals::alarm_summary;
use super::*;
use crate::StoreOptions;
use crate::sql::{Unit, retryable};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// One reading waiting for the writer.
struct Job {
    actor: Actor,
    session: SessionId,
    reading: VitalReading,
    key: Option<MessageKey>,
    reply: oneshot::Sender<Result<VitalOutcome>>,
}

/// The queue in front of the writer task and the writer's own connection.
pub(crate) struct VitalsWriter {
    pool: sqlx::AnyPool,
    capacity: usize,
    batch: usize,
    /// Started by the first reading, on the caller's runtime (a store may be opened before a
    /// runtime serves it); started again should that runtime have ended.
    queue: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
}

/// Attempts of a batch that failed on a retryable error.
const ATTEMPTS: usize = 3;

impl VitalsWriter {
    pub(crate) fn new(pool: sqlx::AnyPool, o: &StoreOptions) -> Self {
        Self {
            pool,
            capacity: o.vitals_queue.max(1),
            batch: o.vitals_batch.max(1),
            queue: std::sync::Mutex::new(None),
        }
    }

    fn sender(&self) -> mpsc::Sender<Job> {
        let mut q = match self.queue.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match q.as_ref() {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(self.capacity);
                tokio::spawn(run(self.pool.clone(), rx, self.batch));
                *q = Some(tx.clone());
                tx
            }
        }
    }

    /// Queues the reading and waits for its batch's commit; refused at once when the queue is
    /// full.
    pub(crate) async fn write(
        &self,
        actor: &Actor,
        session: SessionId,
        reading: &VitalReading,
        key: Option<&MessageKey>,
    ) -> Result<VitalOutcome> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            actor: actor.clone(),
            session,
            reading: reading.clone(),
            key: key.cloned(),
            reply,
        };
        match self.sender().try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(StoreError::Busy(format!(
                    "busy: {} readings are waiting to be written; nothing stored, send again",
                    self.capacity
                )));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(StoreError::Corrupt("the vitals writer has stopped".into()));
            }
        }
        answer
            .await
            .map_err(|_| StoreError::Corrupt("the vitals writer has stopped".into()))?
    }
}

/// The writer task: takes what has queued (at least one, at most `max`), writes it as one
/// batch, answers each caller, and goes on until every sender is gone.
async fn run(pool: sqlx::AnyPool, mut rx: mpsc::Receiver<Job>, max: usize) {
    let mut jobs = Vec::with_capacity(max);
    while rx.recv_many(&mut jobs, max).await > 0 {
        let batch = std::mem::take(&mut jobs);
        commit(&pool, batch).await;
    }
}

async fn commit(pool: &sqlx::AnyPool, jobs: Vec<Job>) {
    let mut attempt = 1;
    let outcome = loop {
        match write_batch(pool, &jobs).await {
            Err(e) if retryable(&e) && attempt < ATTEMPTS => attempt += 1,
            other => break other,
        }
    };
    match outcome {
        Ok(outcomes) => {
            for (job, out) in jobs.into_iter().zip(outcomes) {
                // A caller that went away (its connection closed) needs no answer.
                let _ = job.reply.send(out);
            }
        }
        Err(e) if jobs.len() > 1 && matches!(e, StoreError::Database(sqlx::Error::Database(_))) => {
            tracing::warn!(error = %e, readings = jobs.len(), "vitals batch refused; writing each on its own");
            for job in jobs {
                let out = match write_batch(pool, std::slice::from_ref(&job)).await {
                    Ok(mut v) => v.pop().unwrap_or_else(|| {
                        Err(StoreError::Corrupt("a batch of one without outcome".into()))
                    }),
                    Err(e) => Err(e),
                };
                let _ = job.reply.send(out);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, readings = jobs.len(), "vitals batch not written");
            let msg = e.to_string();
            for job in jobs {
                let _ = job
                    .reply
                    .send(Err(StoreError::Corrupt(format!("not stored: {msg}"))));
            }
        }
    }
}

/// A session as the batch has it: loaded once, changed by each reading in turn.
struct Seated {
    rec: SessionRecord,
    alarmed: bool,
}

/// Writes `jobs` in one transaction; returns each reading's outcome once committed. A reading
/// refused for what it is (a session not taking vitals) is refused alone; a database error
/// fails the whole batch.
async fn write_batch(pool: &sqlx::AnyPool, jobs: &[Job]) -> Result<Vec<Result<VitalOutcome>>> {
    let Some(first) = jobs.first() else {
        return Ok(Vec::new());
    };
    let mut tx = Unit::on(pool, &first.actor).await?;
    let mut sessions: HashMap<SessionId, Seated> = HashMap::new();
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut events: Vec<(usize, AuditEvent)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if let Some(key) = &job.key
            && let Some((vital_id, session_id)) = stored_key(&mut tx, key).await?
        {
            // A message already stored (possibly earlier in this batch): nothing written.
            outcomes.push(Ok(VitalOutcome::Duplicate {
                vital_id,
                session_id,
            }));
            continue;
        }
        let seated = match sessions.entry(job.session) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                match load_session(&mut tx, job.session).await {
                    Ok(rec) => v.insert(Seated {
                        rec,
                        alarmed: false,
                    }),
                    Err(e @ StoreError::NotFound { .. }) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if let Err(r) = seated.rec.session.accepts_vitals() {
            outcomes.push(Err(StoreError::Conflict(r.to_string())));
            continue;
        }
        let (vital_id, received_at) =
            insert_vital(&mut tx, job.session, &job.reading, job.key.as_ref()).await?;
        let alarms = seated.rec.session.on_vital(&job.reading);
        seated.alarmed |= !alarms.is_empty();
        let mut detail = format!(
            "session {}: vitals {} ({})",
            job.session,
            job.reading.vitals.summary(),
            job.reading.source.as_str()
        );
        if !alarms.is_empty() {
            detail.push_str(&format!("; raised {}", alarm_summary(&alarms)));
        }
        let patient_id = seated.rec.patient_id;
        events.push((
            i,
            AuditEvent::new("session.vitals", Some(patient_id.get()), detail),
        ));
        outcomes.push(Ok(VitalOutcome::Stored {
            vital: Box::new(StoredVital {
                id: vital_id,
                session_id: job.session,
                reading: job.reading.clone(),
                received_at,
            }),
            alarms,
            patient_id,
        }));
    }
    if events.is_empty() {
        // Nothing stored (repeats and refusals only): nothing to commit; the unit is dropped.
        return Ok(outcomes);
    }
    for (id, seated) in &sessions {
        if seated.alarmed {
            // Also forgets the session's registry facts.
            write_session(&mut tx, *id, &seated.rec.session).await?;
        } else {
            crate::registry::forget_facts(&mut tx, id.get()).await?;
        }
    }
    let records: Vec<(&Actor, &AuditEvent)> =
        events.iter().map(|(i, e)| (&jobs[*i].actor, e)).collect();
    tx.audit_each(&records).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// The stored reading a monitor message key names, if any.
async fn stored_key(tx: &mut Tx, key: &MessageKey) -> Result<Option<(i64, SessionId)>> {
    Ok(sqlx::query_as(
        "SELECT id, session_id FROM session_vitals
         WHERE (sending_application = $1 AND sending_facility = $2 AND control_id = $3)
            OR (control_id IS NULL AND message_key = $4)",
    )
    .bind(&key.sending_application)
    .bind(&key.sending_facility)
    .bind(&key.control_id)
    .bind(key.legacy())
    .fetch_optional(&mut **tx)
    .await?)
}

/// Inserts the reading's row; returns its id and the time it was received.
async fn insert_vital(
    tx: &mut Tx,
    id: SessionId,
    reading: &VitalReading,
    key: Option<&MessageKey>,
) -> Result<(i64, String)> {
    let v = &reading.vitals;
    let received_at = now_rfc3339();
    let row = sqlx::query(
        "INSERT INTO session_vitals (session_id, at, at_epoch, received_at, source, recorded_by, sending_application, sending_facility, control_id, systolic, diastolic, heart_rate, spo2, resp_rate, etco2, temperature_c)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
    )
    // Not cached: a statement prepared with an absent (NULL) reading would type that
    // parameter for every later message on PostgreSQL.
    .persistent(false)
    .bind(id)
    .bind(reading.at.to_string())
    .bind(reading.at.as_second())
    .bind(&received_at)
    .bind(reading.source.as_str())
    .bind(&reading.by)
    .bind(key.map(|k| k.sending_application.as_str()))
    .bind(key.map(|k| k.sending_facility.as_str()))
    .bind(key.map(|k| k.control_id.as_str()))
    .bind(v.systolic)
    .bind(v.diastolic)
    .bind(v.heart_rate)
    .bind(v.spo2)
    .bind(v.resp_rate)
    .bind(v.etco2)
    .bind(v.temperature_c)
    .fetch_one(&mut **tx)
    .await?;
    Ok((row.try_get("id")?, received_at))
}
