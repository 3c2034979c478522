//! Vital signs: recording a reading with its alarms, matching a monitor message to its session,
//! listing readings, and the time rules.

use super::*;

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
fn alarm_summary(alarms: &[Alarm]) -> String {
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
        // Vitals arrive from many monitors at once: queue them here rather than in SQLite's busy
        // handler, whose sleeps would show as latency spikes (PostgreSQL queues on the row lock).
        let _queue = match self.backend {
            crate::Backend::Sqlite => Some(self.vital_writes.lock().await),
            crate::Backend::Postgres => None,
        };
        let mut tx = self.unit(actor).await?;
        if let Some(key) = message_key {
            let dup: Option<(i64, SessionId)> = sqlx::query_as(
                "SELECT id, session_id FROM session_vitals
                 WHERE (sending_application = $1 AND sending_facility = $2 AND control_id = $3)
                    OR (control_id IS NULL AND message_key = $4)",
            )
            .bind(&key.sending_application)
            .bind(&key.sending_facility)
            .bind(&key.control_id)
            .bind(key.legacy())
            .fetch_optional(&mut **tx)
            .await?;
            if let Some((vital_id, session_id)) = dup {
                // A message already stored: nothing written, nothing to record; the unit is
                // dropped.
                return Ok(VitalOutcome::Duplicate {
                    vital_id,
                    session_id,
                });
            }
        }
        let mut rec = load_session(&mut tx, id).await?;
        rec.session
            .accepts_vitals()
            .map_err(|r| StoreError::Conflict(r.to_string()))?;
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
        .bind(message_key.map(|k| k.sending_application.as_str()))
        .bind(message_key.map(|k| k.sending_facility.as_str()))
        .bind(message_key.map(|k| k.control_id.as_str()))
        .bind(v.systolic)
        .bind(v.diastolic)
        .bind(v.heart_rate)
        .bind(v.spo2)
        .bind(v.resp_rate)
        .bind(v.etco2)
        .bind(v.temperature_c)
        .fetch_one(&mut **tx)
        .await?;
        let vital_id: i64 = row.try_get("id")?;
        crate::registry::forget_facts(&mut tx, id.get()).await?;
        let alarms = rec.session.on_vital(reading);
        if !alarms.is_empty() {
            write_session(&mut tx, id, &rec.session).await?;
        }
        let mut detail = format!(
            "session {id}: vitals {} ({})",
            reading.vitals.summary(),
            reading.source.as_str()
        );
        if !alarms.is_empty() {
            detail.push_str(&format!("; raised {}", alarm_summary(&alarms)));
        }
        tx.audit(&AuditEvent::new(
            "session.vitals",
            Some(rec.patient_id.get()),
            detail,
        ))
        .await?;
        tx.commit().await?;
        Ok(VitalOutcome::Stored {
            vital: Box::new(StoredVital {
                id: vital_id,
                session_id: id,
                reading: reading.clone(),
                received_at,
            }),
            alarms,
            patient_id: rec.patient_id,
        })
    }

    pub(crate) async fn session_vitals(
        &self,
        actor: &Actor,
        id: SessionId,
    ) -> Result<Vec<StoredVital>> {
        let mut tx = self.read_audited(actor, Permission::ClinicalRead).await?;
        let rec = load_session(&mut tx, id).await?;
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
        let mut patients: Vec<(PatientId, String)> = Vec::new();
        for id in &ids {
            if let Some((pid, mrn)) =
                sqlx::query_as::<_, (i64, String)>("SELECT id, mrn FROM patients WHERE mrn = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
            {
                let pid = PatientId::new(pid);
                if !patients.iter().any(|(p, _)| *p == pid) {
                    patients.push((pid, mrn));
                }
            }
        }
        let (patient_id, mrn) = match patients.as_slice() {
            [] => return Ok(MonitorMatch::UnknownPatient { ids }),
            [one] => one.clone(),
            several => {
                return Ok(MonitorMatch::SeveralPatients {
                    mrns: several.iter().map(|(_, m)| m.clone()).collect(),
                });
            }
        };
        let Some((session_id, patient_chair)) = sqlx::query_as::<_, (SessionId, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT id, chair FROM treatment_sessions WHERE patient_id = $1 AND phase IN ({}) ORDER BY id DESC",
            active_list()
        )))
        .bind(patient_id.get())
        .fetch_optional(&self.pool)
        .await?
        else {
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
        // Evaluate outside the write lock (vitals keep flowing); only sessions with something to
        // raise are re-read and written, in a write transaction each.
        let rows = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE phase IN ('running', 'paused', 'observation', 'escalated') AND signed = 0"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::new();
        for row in rows {
            let mut rec = SessionRecord::try_from(row)?;
            let readings: Vec<VitalReading> = sqlx::query_as::<_, VitalRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {VITAL_COLUMNS} FROM session_vitals WHERE session_id = $1 ORDER BY at_epoch, id"
            )))
            .bind(rec.id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| StoredVital::try_from(r).map(|v| v.reading))
            .collect::<Result<_>>()?;
            if !rec.session.on_tick(&readings, now).is_empty() {
                due.push(rec.id);
            }
        }
        let mut out = Vec::new();
        for id in due {
            let mut tx = self.unit(actor).await?;
            let mut rec = load_session(&mut tx, id).await?;
            let readings: Vec<VitalReading> = load_vitals(&mut tx, id)
                .await?
                .into_iter()
                .map(|v| v.reading)
                .collect();
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
