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
//! A batch makes a few statements whatever its size: the sessions' revisions, the documents that
//! changed, the readings in multi-row inserts (whose unique message key finds a repeat), the
//! registry facts forgotten, the audit records in multi-row inserts, the head.
//!
//! A batch that fails on a retryable error (serialization failure, deadlock, lock timeout, busy
//! SQLite) is run again; one that fails otherwise is split and each reading written on its own,
//! so one bad row cannot refuse the others.

use super::vitals::alarm_summary;
use super::*;
use crate::StoreOptions;
use crate::sql::{Unit, Writers, placeholders, retryable};
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
    writers: Writers,
    /// SQLite: the shared pool, on which the write-ahead log is checkpointed beside the writer.
    checkpoints: Option<sqlx::AnyPool>,
    capacity: usize,
    batch: usize,
    /// Started by the first reading, on the caller's runtime (a store may be opened before a
    /// runtime serves it); started again should that runtime have ended.
    queue: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
}

/// Attempts of a batch that failed on a retryable error.
const ATTEMPTS: usize = 3;

impl VitalsWriter {
    pub(crate) fn new(
        pool: sqlx::AnyPool,
        writers: Writers,
        checkpoints: Option<sqlx::AnyPool>,
        o: &StoreOptions,
    ) -> Self {
        Self {
            pool,
            writers,
            checkpoints,
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
                tokio::spawn(run(
                    Conn {
                        pool: self.pool.clone(),
                        writers: self.writers.clone(),
                        checkpoints: self.checkpoints.clone().map(Checkpoints::new),
                    },
                    rx,
                    self.batch,
                ));
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

/// What the writer task writes with.
struct Conn {
    pool: sqlx::AnyPool,
    writers: Writers,
    checkpoints: Option<Checkpoints>,
}

/// SQLite: the writer's connection never checkpoints the write-ahead log (a checkpoint copies
/// pages back into the database and syncs it, which would hold up the acknowledgements of the
/// batch whose commit triggered it). Instead, at most once a second after a commit, a passive
/// checkpoint runs on a connection of the shared pool, beside the writer: it never blocks a
/// write, and keeps the log from growing.
struct Checkpoints {
    pool: sqlx::AnyPool,
    last: std::time::Instant,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpoints {
    fn new(pool: sqlx::AnyPool) -> Self {
        Self {
            pool,
            last: std::time::Instant::now(),
            running: Default::default(),
        }
    }

    fn after_commit(&mut self) {
        use std::sync::atomic::Ordering;
        if self.last.elapsed() < std::time::Duration::from_secs(1)
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.last = std::time::Instant::now();
        let (pool, running) = (self.pool.clone(), self.running.clone());
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "write-ahead log checkpoint");
            }
            running.store(false, Ordering::Release);
        });
    }
}

/// The session documents the writer holds between batches, with the revision they were read
/// at: a batch reads the revisions of its sessions and parses a document again only when its
/// revision moved (a command, a tick). Every session write holds the audit-head lock, which the
/// batch holds too, so the revisions it reads stay current until it commits.
type Held = HashMap<SessionId, SessionRecord>;

/// Sessions held at most; beyond it the least useful are simply read again.
const HELD_MAX: usize = 4096;

/// The writer task: takes what has queued (at least one, at most `max`), writes it as one
/// batch, answers each caller, and goes on until every sender is gone.
async fn run(mut conn: Conn, mut rx: mpsc::Receiver<Job>, max: usize) {
    let mut jobs = Vec::with_capacity(max);
    let mut held = Held::new();
    while rx.recv_many(&mut jobs, max).await > 0 {
        let batch = std::mem::take(&mut jobs);
        if held.len() > HELD_MAX {
            held.clear();
        }
        commit(&conn, &mut held, batch).await;
        if let Some(c) = &mut conn.checkpoints {
            c.after_commit();
        }
    }
}

async fn commit(conn: &Conn, held: &mut Held, jobs: Vec<Job>) {
    let mut attempt = 1;
    let outcome = loop {
        match write_batch(conn, held, &jobs).await {
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
                let out = match write_batch(conn, held, std::slice::from_ref(&job)).await {
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

/// A session as the batch has it: changed by each reading in turn.
struct Seated {
    rec: SessionRecord,
    alarmed: bool,
}

/// The batch's sessions: those `held` at their current revision, the others read (their
/// document only: a reading's alarms and the document written back do not involve the
/// addenda, which live in their own table). A session that does not exist is left out.
async fn seat(
    tx: &mut Tx,
    held: &mut Held,
    ids: &[SessionId],
) -> Result<HashMap<SessionId, Seated>> {
    let mut q = sqlx::query_as::<_, (SessionId, i64)>(sqlx::AssertSqlSafe(format!(
        "SELECT id, revision FROM treatment_sessions WHERE id IN {}",
        placeholders(1, ids.len())
    )));
    for id in ids {
        q = q.bind(*id);
    }
    let mut seated = HashMap::new();
    let mut stale = Vec::new();
    for (id, revision) in q.fetch_all(&mut **tx).await? {
        match held.remove(&id) {
            Some(rec) if rec.revision == revision => {
                seated.insert(
                    id,
                    Seated {
                        rec,
                        alarmed: false,
                    },
                );
            }
            _ => stale.push(id),
        }
    }
    if !stale.is_empty() {
        let mut q = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE id IN {}",
            placeholders(1, stale.len())
        )));
        for id in &stale {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut **tx).await? {
            let rec = SessionRecord::try_from(row)?;
            seated.insert(
                rec.id,
                Seated {
                    rec,
                    alarmed: false,
                },
            );
        }
    }
    Ok(seated)
}

/// Writes `jobs` in one transaction; returns each reading's outcome once committed. A reading
/// refused for what it is (a session not taking vitals) is refused alone; a database error
/// fails the whole batch.
async fn write_batch(
    conn: &Conn,
    held: &mut Held,
    jobs: &[Job],
) -> Result<Vec<Result<VitalOutcome>>> {
    let Some(first) = jobs.first() else {
        return Ok(Vec::new());
    };
    let mut tx = Unit::on(&conn.pool, &conn.writers, &first.actor).await?;
    let mut ids: Vec<SessionId> = jobs.iter().map(|j| j.session).collect();
    ids.sort();
    ids.dedup();
    // Taken out of `held` for the batch; put back only once it committed.
    let mut sessions = seat(&mut tx, held, &ids).await?;
    // Rows from before migration 0009 hold only the joined message key, which the unique index
    // of the insert does not see: only while such rows exist is each key looked for first.
    let legacy_keys = jobs.iter().any(|j| j.key.is_some())
        && sqlx::query_scalar::<_, i64>(
            // One lookup in a partial index of exactly these rows (migration 0026), however
            // many readings are stored.
            "SELECT id FROM session_vitals WHERE message_key IS NOT NULL AND control_id IS NULL LIMIT 1",
        )
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    // First what each reading is, in queue order, before anything is written: a repeat of a
    // pre-0009 key, a session that does not exist or does not take vitals (which no reading
    // changes: alarms never change the phase), or a row to insert.
    let mut decided: Vec<Option<Result<VitalOutcome>>> = Vec::with_capacity(jobs.len());
    for job in jobs {
        if legacy_keys
            && let Some(key) = &job.key
            && let Some((vital_id, session_id)) = stored_key(&mut tx, key).await?
        {
            decided.push(Some(Ok(VitalOutcome::Duplicate {
                vital_id,
                session_id,
            })));
            continue;
        }
        let Some(seated) = sessions.get(&job.session) else {
            decided.push(Some(Err(StoreError::NotFound {
                what: format!("session {}", job.session),
            })));
            continue;
        };
        decided.push(match seated.rec.session.accepts_vitals() {
            Ok(()) => None,
            // A repeat of a message stored while the session took vitals is still a repeat.
            Err(r) => Some(match &job.key {
                Some(key) => match stored_key(&mut tx, key).await? {
                    Some((vital_id, session_id)) => Ok(VitalOutcome::Duplicate {
                        vital_id,
                        session_id,
                    }),
                    None => Err(StoreError::Conflict(r.to_string())),
                },
                None => Err(StoreError::Conflict(r.to_string())),
            }),
        });
    }
    let to_insert: Vec<&Job> = jobs
        .iter()
        .zip(&decided)
        .filter(|(_, d)| d.is_none())
        .map(|(j, _)| j)
        .collect();
    let mut inserted = insert_vitals(&mut tx, &to_insert).await?.into_iter();
    // Then each reading in queue order: its alarms on the session as the readings before it
    // left it, and its audit record.
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut events: Vec<(usize, AuditEvent)> = Vec::new();
    for (i, (job, decided)) in jobs.iter().zip(decided).enumerate() {
        if let Some(outcome) = decided {
            outcomes.push(outcome);
            continue;
        }
        let (Some(seated), Some(row)) = (sessions.get_mut(&job.session), inserted.next()) else {
            return Err(StoreError::Corrupt(
                "a reading without its session or row".into(),
            ));
        };
        let Some((vital_id, received_at)) = row else {
            // The message key is stored already (possibly earlier in this batch): nothing
            // written.
            let (vital_id, session_id) = match &job.key {
                Some(key) => stored_key(&mut tx, key).await?,
                None => None,
            }
            .ok_or_else(|| StoreError::Corrupt("a repeated message key not found".into()))?;
            outcomes.push(Ok(VitalOutcome::Duplicate {
                vital_id,
                session_id,
            }));
            continue;
        };
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
        held.extend(sessions.into_iter().map(|(id, s)| (id, s.rec)));
        return Ok(outcomes);
    }
    let mut quiet = Vec::new();
    for (id, seated) in sessions.iter_mut() {
        if seated.alarmed {
            // Also forgets the session's registry facts.
            write_session(&mut tx, *id, &seated.rec.session).await?;
            seated.rec.revision += 1;
        } else {
            quiet.push(id.get());
        }
    }
    crate::registry::forget_facts_of(&mut tx, &quiet).await?;
    let records: Vec<(&Actor, &AuditEvent)> =
        events.iter().map(|(i, e)| (&jobs[*i].actor, e)).collect();
    tx.audit_each(&records).await?;
    tx.commit().await?;
    held.extend(sessions.into_iter().map(|(id, s)| (id, s.rec)));
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

/// Rows of one multi-row insert at most (16 parameters each).
const ROWS_PER_INSERT: usize = 100;

/// Inserts the readings' rows in their order; returns for each its id and the time it was
/// received, or `None` when its message key is stored already (the unique index decides, in the
/// same statement, also for a repeat within the batch). Readings with a message key go in
/// multi-row inserts, matched to their rows by the key; one without (entered by hand) alone, so
/// ids still follow the queue's order.
async fn insert_vitals(tx: &mut Tx, jobs: &[&Job]) -> Result<Vec<Option<(i64, String)>>> {
    let mut out = Vec::with_capacity(jobs.len());
    let mut rest = jobs;
    while !rest.is_empty() {
        let run = if rest[0].key.is_none() {
            1
        } else {
            rest.iter()
                .take(ROWS_PER_INSERT)
                .take_while(|j| j.key.is_some())
                .count()
        };
        let (now, later) = rest.split_at(run);
        out.extend(insert_run(tx, now).await?);
        rest = later;
    }
    Ok(out)
}

async fn insert_run(tx: &mut Tx, jobs: &[&Job]) -> Result<Vec<Option<(i64, String)>>> {
    let received_at = now_rfc3339();
    let sql = format!(
        "INSERT INTO session_vitals (session_id, at, at_epoch, received_at, source, recorded_by, sending_application, sending_facility, control_id, systolic, diastolic, heart_rate, spo2, resp_rate, etco2, temperature_c)
         VALUES {}
         ON CONFLICT (sending_application, sending_facility, control_id) DO NOTHING
         RETURNING id, sending_application, sending_facility, control_id",
        placeholders(jobs.len(), 16)
    );
    // Not cached: a statement prepared with an absent (NULL) reading would type that
    // parameter for every later message on PostgreSQL.
    let mut q = sqlx::query_as::<_, (i64, Option<String>, Option<String>, Option<String>)>(
        sqlx::AssertSqlSafe(sql),
    )
    .persistent(false);
    for job in jobs {
        let (r, key, v) = (&job.reading, job.key.as_ref(), &job.reading.vitals);
        q = q
            .bind(job.session)
            .bind(r.at.to_string())
            .bind(r.at.as_second())
            .bind(&received_at)
            .bind(r.source.as_str())
            .bind(&r.by)
            .bind(key.map(|k| k.sending_application.as_str()))
            .bind(key.map(|k| k.sending_facility.as_str()))
            .bind(key.map(|k| k.control_id.as_str()))
            .bind(v.systolic)
            .bind(v.diastolic)
            .bind(v.heart_rate)
            .bind(v.spo2)
            .bind(v.resp_rate)
            .bind(v.etco2)
            .bind(v.temperature_c);
    }
    let rows = q.fetch_all(&mut **tx).await?;
    if let [job] = jobs
        && job.key.is_none()
    {
        // No key to match by: the one row is this reading's.
        return Ok(vec![rows.first().map(|r| (r.0, received_at))]);
    }
    let mut ids: HashMap<(String, String, String), i64> = rows
        .into_iter()
        .filter_map(|(id, a, f, c)| Some(((a?, f?, c?), id)))
        .collect();
    Ok(jobs
        .iter()
        .map(|job| {
            let k = job.key.as_ref()?;
            // The first reading with a key gets its row; a repeat later in the run finds none.
            ids.remove(&(
                k.sending_application.clone(),
                k.sending_facility.clone(),
                k.control_id.clone(),
            ))
            .map(|id| (id, received_at.clone()))
        })
        .collect())
}
