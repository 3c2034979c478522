//! Vital signs: recording a reading with its alarms, matching a monitor message to its session,
//! listing readings, and the time rules.

use super::*;
use std::collections::{HashMap, HashSet};

const VITAL_COLUMNS: &str = "id, session_id, at, received_at, source, recorded_by, message_key, control_id, systolic, diastolic, heart_rate, spo2, resp_rate, etco2, temperature_c";

/// A `session_vitals` row as stored (`VITAL_COLUMNS`).
#[derive(sqlx::FromRow)]
struct VitalRow {
    id: i64,
    session_id: SessionId,
    at: String,
    received_at: String,
    source: String,
    recorded_by: String,
    message_key: Option<String>,
    control_id: Option<String>,
    systolic: Option<f64>,
    diastolic: Option<f64>,
    heart_rate: Option<f64>,
    spo2: Option<f64>,
    resp_rate: Option<f64>,
    etco2: Option<f64>,
    temperature_c: Option<f64>,
}

impl TryFrom<VitalRow> for StoredVital {
    type Error = StoreError;
    fn try_from(r: VitalRow) -> Result<Self> {
        Ok(StoredVital {
            id: r.id,
            session_id: r.session_id,
            reading: VitalReading {
                at: r.at.parse().map_err(|_| corrupt("vital time", &r.at))?,
                vitals: Vitals {
                    systolic: r.systolic,
                    diastolic: r.diastolic,
                    heart_rate: r.heart_rate,
                    spo2: r.spo2,
                    resp_rate: r.resp_rate,
                    etco2: r.etco2,
                    temperature_c: r.temperature_c,
                },
                source: VitalSource::parse(&r.source)
                    .ok_or_else(|| corrupt("vital source", &r.source))?,
                by: r.recorded_by,
                // Rows before migration 0009 hold only the joined key.
                control_id: r.control_id.or_else(|| {
                    r.message_key
                        .map(|k| k.rsplit('|').next().unwrap_or_default().to_owned())
                }),
            },
            received_at: r.received_at,
        })
    }
}
async fn load_vitals(tx: &mut Tx, id: SessionId) -> Result<Vec<StoredVital>> {
    sqlx::query_as::<_, VitalRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {VITAL_COLUMNS} FROM session_vitals WHERE session_id = $1 ORDER BY at_epoch, id"
    )))
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(StoredVital::try_from)
    .collect()
}
/// A patient a monitor message names, with their active session (the newest) if any.
#[derive(Clone, sqlx::FromRow)]
struct NamedPatient {
    patient_id: PatientId,
    mrn: String,
    session_id: Option<SessionId>,
    chair: Option<String>,
}

pub(super) fn alarm_summary(alarms: &[Alarm]) -> String {
    alarms
        .iter()
        .map(|a| format!("alarm {} {}", a.id, a.kind.label()))
        .collect::<Vec<_>>()
        .join(", ")
}
impl SqlStore {
    /// The active session seated at a chair named `location` (any case): id, patient, chair.
    async fn seated_at(&self, location: &str) -> Result<Option<(SessionId, PatientId, String)>> {
        let row: Option<(SessionId, PatientId, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, patient_id, chair FROM treatment_sessions WHERE LOWER(chair) = LOWER($1) AND phase IN ({}) ORDER BY id DESC",
            active_list()
        )))
        .bind(location)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }
}

impl SqlStore {
    pub(crate) async fn record_vital(
        &self,
        actor: &Actor,
        id: SessionId,
        reading: &VitalReading,
        message_key: Option<&MessageKey>,
    ) -> Result<VitalOutcome> {
        require(actor, Permission::RunSession)?;
        if let Err(errs) = reading.vitals.validate() {
            let mut f = FieldErrors::new();
            for e in errs {
                f.push(&e.field, e.message);
            }
            return Err(StoreError::Invalid(f));
        }
        // A person enters readings only at their own sites (the monitor feed, a local process,
        // acts for every site and skips the look-up).
        if actor.user_id.is_some() {
            let mut tx = self.pool.begin().await?;
            let site = crate::ops::session_site(&mut tx, id.get())
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("session {id}"),
                })?;
            crate::sites::check_site(&mut tx, actor, site, format!("session {id}")).await?;
            tx.commit().await?;
        }
        // Every reading goes through the one vitals writer (`writer.rs`): committed in a batch,
        // returned only after its commit.
        self.vitals.write(actor, id, reading, message_key).await
    }

    pub(crate) async fn session_vitals(
        &self,
        actor: &Actor,
        id: SessionId,
    ) -> Result<Vec<StoredVital>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let rec = load_session_for(&mut tx, actor, id).await?;
        let vitals = load_vitals(&mut tx, id).await?;
        tx.audit(&AuditEvent::new(
            "session.vitals.read",
            Some(rec.patient_id.get()),
            format!("session {id}: {} readings", vitals.len()),
        ))
        .await?;
        tx.commit().await?;
        Ok(vitals)
    }

    pub(crate) async fn match_active_session(
        &self,
        patient_ids: &[String],
        locations: &[String],
    ) -> Result<MonitorMatch> {
        let mut ids: Vec<String> = Vec::new();
        for p in patient_ids
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            if !ids.iter().any(|i| i == p) {
                ids.push(p.to_owned());
            }
        }
        let locs: Vec<String> = locations
            .iter()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        if ids.is_empty() {
            // Only without a patient identifier: the patient seated at the location (the most
            // specific part first).
            for loc in locs.iter().rev() {
                if let Some((session_id, patient_id, _)) = self.seated_at(loc).await? {
                    return Ok(MonitorMatch::Session {
                        session_id,
                        patient_id,
                    });
                }
            }
            return Ok(MonitorMatch::NoSessionAtLocation { location: locs });
        }
        // Each identifier's patient with their active session, if any, in one query.
        let mut patients: Vec<NamedPatient> = Vec::new();
        for id in &ids {
            if let Some(p) = sqlx::query_as::<_, NamedPatient>(sqlx::AssertSqlSafe(format!(
                "SELECT p.id AS patient_id, p.mrn, s.id AS session_id, s.chair FROM patients p
                 LEFT JOIN treatment_sessions s ON s.patient_id = p.id AND s.phase IN ({})
                 WHERE p.mrn = $1 ORDER BY s.id DESC LIMIT 1",
                active_list()
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
                && !patients.iter().any(|q| q.patient_id == p.patient_id)
            {
                patients.push(p);
            }
        }
        let NamedPatient {
            patient_id,
            mrn,
            session_id,
            chair,
        } = match patients.as_slice() {
            [] => return Ok(MonitorMatch::UnknownPatient { ids }),
            [one] => one.clone(),
            several => {
                return Ok(MonitorMatch::SeveralPatients {
                    mrns: several.iter().map(|p| p.mrn.clone()).collect(),
                });
            }
        };
        let active = session_id.zip(chair);
        let Some((session_id, patient_chair)) = active else {
            return Ok(MonitorMatch::NoActiveSession { mrn });
        };
        if !locs.iter().any(|l| l.eq_ignore_ascii_case(&patient_chair)) {
            // PV1-3 names another chair: refused when another patient is seated there.
            for loc in locs.iter().rev() {
                if let Some((other, _, seated_chair)) = self.seated_at(loc).await?
                    && other != session_id
                {
                    return Ok(MonitorMatch::ChairMismatch {
                        mrn,
                        patient_chair,
                        location: locs.join("/"),
                        seated_chair,
                    });
                }
            }
        }
        Ok(MonitorMatch::Session {
            session_id,
            patient_id,
        })
    }

    pub(crate) async fn tick_sessions(
        &self,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<(SessionId, Vec<Alarm>)>> {
        require(actor, Permission::RunSession)?;
        // Evaluate outside the write lock (vitals keep flowing), on what the last tick read plus
        // what changed since; only sessions with something to raise are written, in a write
        // transaction each.
        let mut cache = self.tick_cache.lock().await;
        let seen = cache.refresh(&self.pool).await?;
        let mut due = Vec::new();
        for (id, w) in &cache.sessions {
            if !w.rec.session.clone().on_tick(&w.readings, now).is_empty() {
                due.push(*id);
            }
            // Many long sessions make this loop long: let the monitors' tasks run between
            // sessions rather than after all of them.
            tokio::task::yield_now().await;
        }
        let mut out = Vec::new();
        for id in due {
            let mut tx = self.unit(actor).await?;
            let mut rec = load_session(&mut tx, id).await?;
            // The readings the tick holds, and any stored since it read them.
            let mut readings = cache
                .sessions
                .get(&id)
                .map(|w| w.readings.clone())
                .unwrap_or_default();
            append_readings(
                &mut readings,
                vitals_where(tx.conn(), "session_id = $1 AND id > $2", id.get(), seen).await?,
            );
            let new = rec.session.on_tick(&readings, now);
            if new.is_empty() {
                // Raised meanwhile (or nothing due any more): nothing written, unit dropped.
                continue;
            }
            write_session(&mut tx, id, &rec.session).await?;
            tx.audit(&AuditEvent::new(
                "session.alarm.raise",
                Some(rec.patient_id.get()),
                format!("session {id}: raised {}", alarm_summary(&new)),
            ))
            .await?;
            tx.commit().await?;
            out.push((id, new));
        }
        Ok(out)
    }
}

/// What the session ticker holds between ticks: the sessions on the clock, each with its
/// document as of its revision and its readings, and the highest vital id read. Each tick reads
/// the sessions' revisions, the documents whose revision changed, the vitals stored after that
/// id, and every vital only of a session it has not seen before — so a tick's reads grow with
/// what changed, not with the length of the sessions.
///
/// Vital ids are read in commit order: every insert into `session_vitals` happens in a unit
/// holding the audit-chain lock, so no reading with a lower id can commit after a higher one is
/// visible.
#[derive(Default)]
pub(crate) struct TickCache {
    /// Every vital with an id up to this is in `sessions` (for the sessions there); `None`
    /// before the first tick.
    seen: Option<i64>,
    sessions: HashMap<SessionId, Watched>,
}

/// One session on the clock, as the ticker holds it.
struct Watched {
    rec: SessionRecord,
    /// Sorted by time, then id, as the time rules read them.
    readings: Vec<VitalReading>,
}

/// Appends readings read in id order, keeping the whole sorted by time, then id (a stable sort
/// of what arrived in id order), as the time rules read them.
fn append_readings(readings: &mut Vec<VitalReading>, new: Vec<StoredVital>) {
    readings.extend(new.into_iter().map(|v| v.reading));
    if !readings.is_sorted_by_key(|r| r.at) {
        readings.sort_by_key(|r| r.at);
    }
}

/// Readings matching `condition` (two parameters: a session id or vital id, then a vital id),
/// in id order.
async fn vitals_where(
    conn: &mut sqlx::AnyConnection,
    condition: &str,
    a: i64,
    b: i64,
) -> Result<Vec<StoredVital>> {
    sqlx::query_as::<_, VitalRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {VITAL_COLUMNS} FROM session_vitals WHERE {condition} ORDER BY id"
    )))
    .bind(a)
    .bind(b)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(StoredVital::try_from)
    .collect()
}

impl TickCache {
    /// Brings the cache up to date; returns the highest vital id it now holds.
    async fn refresh(&mut self, pool: &sqlx::AnyPool) -> Result<i64> {
        let mut conn = pool.acquire().await?;
        // The watermark first: every reading up to it is committed (ids commit in order).
        let hi: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM session_vitals")
            .fetch_one(&mut *conn)
            .await?;
        let on_clock: Vec<(SessionId, i64)> = sqlx::query_as(
            "SELECT id, revision FROM treatment_sessions WHERE phase IN ('running', 'paused', 'observation', 'escalated') AND signed = 0",
        )
        .fetch_all(&mut *conn)
        .await?;
        let ids: HashSet<SessionId> = on_clock.iter().map(|(id, _)| *id).collect();
        self.sessions.retain(|id, _| ids.contains(id));
        // Readings stored since the last tick, for the sessions already held.
        if let Some(seen) = self.seen
            && hi > seen
        {
            let mut new: HashMap<SessionId, Vec<StoredVital>> = HashMap::new();
            for v in vitals_where(&mut conn, "id > $1 AND id <= $2", seen, hi).await? {
                if self.sessions.contains_key(&v.session_id) {
                    new.entry(v.session_id).or_default().push(v);
                }
            }
            for (id, rows) in new {
                if let Some(w) = self.sessions.get_mut(&id) {
                    append_readings(&mut w.readings, rows);
                }
            }
        }
        for (id, revision) in on_clock {
            let held = self.sessions.get(&id).map(|w| w.rec.revision);
            if held == Some(revision) {
                continue;
            }
            let Some(row) = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            else {
                continue;
            };
            let rec = SessionRecord::try_from(row)?;
            match self.sessions.get_mut(&id) {
                Some(w) => w.rec = rec,
                None => {
                    // A session not seen before: all its readings, once.
                    let mut readings = Vec::new();
                    append_readings(
                        &mut readings,
                        vitals_where(&mut conn, "session_id = $1 AND id <= $2", id.get(), hi)
                            .await?,
                    );
                    self.sessions.insert(id, Watched { rec, readings });
                }
            }
        }
        self.seen = Some(hi);
        Ok(hi)
    }
}
