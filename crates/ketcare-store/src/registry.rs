//! The de-identified research registry, built here, inside the researcher's unit, so that no
//! identifier leaves the store for a `RegistryRead` actor: each treated patient becomes a
//! subject with a random study id (`registry_keys`), an age at first treatment under Safe Harbor
//! ("90+" above 89), a sex, the calendar year of the first treatment, and their sessions, scores
//! and safety alerts as whole days since the first treatment. No name, MRN, date of birth,
//! contact, address, free text or date leaves it. Every read is audited with the study ids shown.

use crate::sessions::{SESSION_COLUMNS, SessionRow};
use crate::sql::{Unit, now_rfc3339};
use crate::{Result, SessionRecord, SqlStore, StoreError};
use async_trait::async_trait;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use ketcare_core::age::{Age, AgeBands};
use ketcare_core::audit::AuditEvent;
use ketcare_core::{Actor, Permission};
use ketcare_research::deid::{age_shown, day_of};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// One treatment session as the registry shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RegistrySession {
    /// Days since the subject's first treatment (0 = that day).
    pub day: i64,
    /// The protocol it ran (a protocol id is not an identifier).
    pub protocol_id: String,
    /// The mg given as confirmed, when the record says.
    pub given_mg: Option<f64>,
    pub adverse_events: u32,
    pub alarms: u32,
    /// The highest dissociation score recorded in the session (its scale's own number).
    pub max_dissociation: Option<u32>,
    /// The highest systolic rise over the pre-dose reading, mmHg, when both were recorded.
    pub systolic_rise: Option<f64>,
    /// Days from the dose to its integration session (the first integration encounter linked
    /// to this session, or unlinked, on or after the dose day); `None`: none recorded.
    pub integration_after_days: Option<i64>,
    /// The PK engine's predicted Cmax of what the session gave (ng/mL), computed when it was
    /// signed (`registry_session_exposure`); `None`: not predicted.
    pub predicted_cmax_ng_ml: Option<f64>,
    /// The engine's exact AUC of that prediction over its horizon (ng·min/mL).
    pub predicted_auc_ng_min_ml: Option<f64>,
}

/// The PK engine's prediction of what a signed session gave, as the registry keeps it
/// (`registry_session_exposure`): the application layer computes it (the store cannot run the
/// engine) and stores it with the signature ([`crate::SessionStore::sign_session`]) or, for a
/// session signed without one, [`RegistryStore::put_session_exposure`].
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PredictedExposure {
    /// The PK model's id.
    pub model: String,
    /// The charted weight the prediction used (kg).
    pub weight_kg: f64,
    /// The highest predicted plasma concentration on the engine's 1-minute grid (ng/mL).
    pub cmax_ng_ml: f64,
    /// The exact AUC from the first administration to `auc_horizon_min` (ng·min/mL).
    pub auc_ng_min_ml: f64,
    /// The prediction's horizon (min after the first administration).
    pub auc_horizon_min: f64,
}

/// One questionnaire total.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RegistryScore {
    pub instrument: String,
    pub day: i64,
    pub total: i64,
}

/// A treated patient, de-identified.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RegistrySubject {
    /// Random; never derived from an identifier.
    pub study_id: String,
    /// Age in years at the first treatment, "90+" above 89 (Safe Harbor).
    pub age: String,
    /// The ICH E11 band at the first treatment.
    pub age_band: String,
    pub sex: String,
    /// The calendar year of the first treatment (shown only where a table asks for it).
    pub year: i16,
    /// The intake questions (yes, no, not asked).
    pub intake: ketcare_core::patient::Intake,
    /// Body-mass index from the recorded weight and height, one decimal.
    pub bmi: Option<f64>,
    /// Oldest first.
    pub sessions: Vec<RegistrySession>,
    pub scores: Vec<RegistryScore>,
    /// Days of the suicide-risk safety alerts raised.
    pub alert_days: Vec<i64>,
    /// The opioid list (no free text, no author).
    pub opioids: Vec<RegistryOpioid>,
}

/// An opioid on the subject's list, its dates as days since the first treatment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RegistryOpioid {
    /// The opioid catalogue's id.
    pub drug: String,
    pub dose: f64,
    /// `mg` or `mcg/h`.
    pub unit: String,
    /// Doses per day, where the unit is per dose.
    pub per_day: Option<f64>,
    pub route: Option<String>,
    pub start_day: i64,
    /// Exclusive; `None` while it continues.
    pub stop_day: Option<i64>,
}

/// A saved cohort: a name, its version, and the query (JSON) as saved.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct SavedCohort {
    pub id: i64,
    pub name: String,
    pub version: i64,
    pub query: String,
    pub created_by: String,
    pub created_at: String,
}

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Every patient with at least one dosed session, de-identified (`RegistryRead`; audited
    /// `registry.read` with the study ids shown). A patient without a study id gets one here.
    async fn registry(&self, actor: &Actor) -> Result<Researched>;
    /// The program dashboard's view (`ProgramOutcomes`; identified: the clinic's own medical
    /// director): the same subjects with their patient id, name and MRN, and no study id (the
    /// registry's key never meets a name). Audited `program.read` with the patient ids shown.
    async fn program(&self, actor: &Actor) -> Result<Vec<(ProgramPatient, RegistrySubject)>>;
    /// Saves a cohort's query under `name`: the next version of that name (`RegistryRead`;
    /// audited).
    async fn save_cohort(&self, actor: &Actor, name: &str, query: &str) -> Result<SavedCohort>;
    /// Every saved cohort version, newest first (`RegistryRead`).
    async fn cohorts(&self, actor: &Actor) -> Result<Vec<SavedCohort>>;
    /// One saved cohort version (`RegistryRead`).
    async fn saved_cohort(&self, actor: &Actor, id: i64) -> Result<SavedCohort>;
    /// Writes a batch of synthetic patients with their sessions, vital signs and questionnaire
    /// totals in one unit (`PatientWrite` and `RunSession`; one audit record for the batch).
    /// For the synthetic demo clinic only; returns the patients written.
    async fn insert_synthetic(
        &self,
        actor: &Actor,
        batch: &[crate::synthetic::SyntheticPatient],
    ) -> Result<usize>;
    /// Up to `limit` signed sessions after id `after` that have no predicted exposure (signed
    /// before migration 0025, or when the engine could not read the record), by id. Ids only:
    /// the caller reads each record through its audited read.
    async fn signed_sessions_without_exposure(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ketcare_core::SessionId>>;
    /// Stores the predicted exposure of signed session `session` (`SignSession`; audited
    /// `session.exposure`), replacing an earlier one. Refused for a session not signed: the
    /// figure describes a final record.
    async fn put_session_exposure(
        &self,
        actor: &Actor,
        session: ketcare_core::SessionId,
        exposure: &PredictedExposure,
    ) -> Result<()>;
}

const COHORT_COLS: &str = "id, name, version, query, created_by, created_at";

/// A study id: `S-` and 12 random characters of an alphabet without look-alikes.
fn new_study_id() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("S-{tail}")
}

/// The patient's study id from `keys` (every key, loaded once), or a new one, stored.
async fn study_id(tx: &mut Unit<'_>, keys: &HashMap<i64, String>, patient: i64) -> Result<String> {
    if let Some(id) = keys.get(&patient) {
        return Ok(id.clone());
    }
    let id = new_study_id();
    sqlx::query("INSERT INTO registry_keys (patient_id, study_id, created_at) VALUES ($1, $2, $3)")
        .bind(patient)
        .bind(&id)
        .bind(now_rfc3339())
        .execute(tx.conn())
        .await?;
    Ok(id)
}

/// The zone each session's day is read in: its site's. Sessions at a site in the organisation's
/// zone (its first site's) are not listed, so an organisation in one zone reads no session here.
struct SessionZones {
    home: TimeZone,
    away: HashMap<i64, TimeZone>,
}

impl SessionZones {
    async fn load(tx: &mut Unit<'_>, ids: Option<&[i64]>) -> Result<SessionZones> {
        let sites: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, time_zone FROM sites ORDER BY id")
                .fetch_all(tx.conn())
                .await?;
        let home = sites
            .first()
            .map_or_else(TimeZone::system, |(_, z)| crate::sites::zone_named(z));
        let others: HashMap<i64, TimeZone> = sites
            .iter()
            .map(|(id, z)| (*id, crate::sites::zone_named(z)))
            .filter(|(_, z)| *z != home)
            .collect();
        let mut away = HashMap::new();
        if !others.is_empty() {
            let list: Vec<String> = others.keys().map(i64::to_string).collect();
            for (session, site) in sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(format!(
                "SELECT id, site_id FROM treatment_sessions WHERE site_id IN ({}){}",
                list.join(","),
                only(false, "patient_id", ids)
            )))
            .fetch_all(tx.conn())
            .await?
            {
                away.insert(session, others[&site].clone());
            }
        }
        Ok(SessionZones { home, away })
    }

    /// The day session `session`'s instant `t` falls on, at its site.
    fn day(&self, session: i64, t: jiff::Timestamp) -> Date {
        t.to_zoned(self.away.get(&session).unwrap_or(&self.home).clone())
            .date()
    }
}

/// A session's registry facts (`registry_session_facts`), derived from its record and its
/// systolic readings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fact {
    session_id: i64,
    patient_id: i64,
    /// The first administration (epoch seconds); `None`: no dose given.
    dose_epoch: Option<i64>,
    protocol_id: String,
    given_mg: Option<f64>,
    adverse_events: i64,
    alarms: i64,
    max_dissociation: Option<i64>,
    systolic_rise: Option<f64>,
}

impl Fact {
    /// The facts of session `session_id` of patient `patient_id`; `systolic`: its systolic
    /// readings (epoch seconds, mmHg), oldest first.
    pub(crate) fn of(
        session_id: i64,
        patient_id: i64,
        s: &ketcare_session::Session,
        systolic: &[(i64, f64)],
    ) -> Fact {
        let start = s.dose_start().map(|t| t.as_second());
        let (pre, peak) = match start {
            Some(start) => (
                systolic
                    .iter()
                    .rfind(|(at, _)| *at <= start)
                    .map(|(_, v)| *v),
                systolic
                    .iter()
                    .filter(|(at, _)| *at > start)
                    .map(|(_, v)| *v)
                    .reduce(f64::max),
            ),
            None => (None, None),
        };
        Fact {
            session_id,
            patient_id,
            dose_epoch: start,
            protocol_id: s.plan.protocol_id.clone(),
            given_mg: s.given_mg().ok(),
            adverse_events: i64::try_from(s.adverse_events.len()).unwrap_or(i64::MAX),
            alarms: i64::try_from(s.alarms.len()).unwrap_or(i64::MAX),
            max_dissociation: s.scores.iter().map(|x| i64::from(x.value)).max(),
            systolic_rise: pre.zip(peak).map(|(a, b)| b - a),
        }
    }
}

/// Forgets a session's registry facts (every write to the session or its vitals calls it in
/// its own transaction; the next registry read derives them again).
pub(crate) async fn forget_facts(tx: &mut crate::sql::Tx, session: i64) -> Result<()> {
    sqlx::query("DELETE FROM registry_session_facts WHERE session_id = $1")
        .bind(session)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// [`forget_facts`] for several sessions in one statement.
pub(crate) async fn forget_facts_of(tx: &mut crate::sql::Tx, sessions: &[i64]) -> Result<()> {
    for chunk in sessions.chunks(500) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM registry_session_facts WHERE session_id IN {}",
            crate::sql::placeholders(1, chunk.len())
        )));
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes a session's facts.
pub(crate) async fn put_fact(tx: &mut crate::sql::Tx, f: &Fact) -> Result<()> {
    put_facts(tx, std::slice::from_ref(f)).await
}

/// Writes sessions' facts, many rows per statement (a fact another reader wrote meanwhile, from
/// the same record, is kept).
pub(crate) async fn put_facts(tx: &mut crate::sql::Tx, facts: &[Fact]) -> Result<()> {
    for chunk in facts.chunks(200) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO registry_session_facts (session_id, patient_id, dose_epoch, protocol_id, given_mg, adverse_events, alarms, max_dissociation, systolic_rise)
             VALUES {} ON CONFLICT (session_id) DO NOTHING",
            crate::sql::placeholders(chunk.len(), 9)
        )))
        .persistent(false);
        for f in chunk {
            q = q
                .bind(f.session_id)
                .bind(f.patient_id)
                .bind(f.dose_epoch)
                .bind(&f.protocol_id)
                .bind(f.given_mg)
                .bind(f.adverse_events)
                .bind(f.alarms)
                .bind(f.max_dissociation)
                .bind(f.systolic_rise);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The audit record of a stored prediction.
pub(crate) fn exposure_event(
    session: ketcare_core::SessionId,
    patient: i64,
    e: &PredictedExposure,
) -> AuditEvent {
    AuditEvent::new(
        "session.exposure",
        Some(patient),
        format!(
            "session {session}: predicted Cmax {:.1} ng/mL, AUC {:.0} ng·min/mL ({}, {} kg)",
            e.cmax_ng_ml, e.auc_ng_min_ml, e.model, e.weight_kg
        ),
    )
}

/// Writes (or replaces) a signed session's predicted exposure.
pub(crate) async fn put_exposure(
    tx: &mut crate::sql::Tx,
    session: i64,
    patient: i64,
    e: &PredictedExposure,
    at: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO registry_session_exposure (session_id, patient_id, model, weight_kg, cmax_ng_ml, auc_ng_min_ml, auc_horizon_min, predicted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (session_id) DO UPDATE SET model = excluded.model, weight_kg = excluded.weight_kg, cmax_ng_ml = excluded.cmax_ng_ml,
             auc_ng_min_ml = excluded.auc_ng_min_ml, auc_horizon_min = excluded.auc_horizon_min, predicted_at = excluded.predicted_at",
    )
    .persistent(false)
    .bind(session)
    .bind(patient)
    .bind(&e.model)
    .bind(e.weight_kg)
    .bind(e.cmax_ng_ml)
    .bind(e.auc_ng_min_ml)
    .bind(e.auc_horizon_min)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// More unknown patients than this and a read takes every study id at once rather than asking
/// for theirs (an engineering choice: the length of one `IN` list).
const KEYS_READ_ALL: usize = 1_000;

/// Sessions whose facts one unit derives at most.
const FACTS_PER_UNIT: i64 = 500;

/// Derives the facts of up to [`FACTS_PER_UNIT`] sessions that have none (new, changed since,
/// or from before the table); how many it filled (the caller commits and calls again while a
/// whole unit's worth was missing). Every record is read and every fact computed before the first row is written,
/// so the unit holds the rows a fact's trigger locks (the patient's dirty mark, the registry
/// version — which every writer of the record also takes) only for one multi-row insert.
async fn fill_facts(tx: &mut Unit<'_>) -> Result<usize> {
    // The sessions without facts, as the triggers keep them (migration 0033): a short list, not
    // a scan of every session.
    let missing: Vec<i64> = sqlx::query_scalar(
        "SELECT session_id FROM registry_facts_missing ORDER BY session_id LIMIT $1",
    )
    .bind(FACTS_PER_UNIT)
    .fetch_all(tx.conn())
    .await?;
    if missing.is_empty() {
        return Ok(0);
    }
    let ids = missing
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let records: Vec<SessionRecord> = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(
        format!("SELECT {SESSION_COLUMNS} FROM treatment_sessions WHERE id IN ({ids})"),
    ))
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(SessionRecord::try_from)
    .collect::<Result<_>>()?;
    let mut systolic = grouped(
        sqlx::query_as::<_, (i64, i64, f64)>(sqlx::AssertSqlSafe(format!(
            "SELECT session_id, at_epoch, systolic FROM session_vitals WHERE session_id IN ({ids}) AND systolic IS NOT NULL ORDER BY session_id, at_epoch, id"
        )))
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(|(s, at, v)| (s, (at, v)))
        .collect(),
    );
    let facts: Vec<Fact> = records
        .iter()
        .map(|r| {
            let readings = systolic.remove(&r.id.get()).unwrap_or_default();
            Fact::of(r.id.get(), r.patient_id.get(), &r.session, &readings)
        })
        .collect();
    put_facts(tx, &facts).await?;
    // Deriving a fact takes its session off the list (a trigger); one whose facts another unit
    // derived first, or with no session row, is taken off here.
    // Only an entry that is settled: its facts are there now (a write that forgot them again
    // after another unit derived them put it back, and it stays), or it has no session.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM registry_facts_missing WHERE session_id IN ({ids})
         AND (EXISTS (SELECT 1 FROM registry_session_facts f WHERE f.session_id = registry_facts_missing.session_id)
              OR NOT EXISTS (SELECT 1 FROM treatment_sessions s WHERE s.id = registry_facts_missing.session_id))"
    )))
    .execute(tx.conn())
    .await?;
    Ok(missing.len())
}

/// A patient's identity as the program dashboard (identified) lists it beside their subject.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProgramPatient {
    pub patient_id: i64,
    pub name: String,
    pub mrn: String,
}

/// Rows of one query grouped by their first column (the rows come ordered by it).
fn grouped<T>(rows: Vec<(i64, T)>) -> HashMap<i64, Vec<T>> {
    let mut out: HashMap<i64, Vec<T>> = HashMap::new();
    for (k, v) in rows {
        out.entry(k).or_default().push(v);
    }
    out
}

/// A session in the cache: (day, protocol, mg given, adverse events, alarms, highest
/// dissociation, systolic rise, days to integration, predicted Cmax, predicted AUC). Migration
/// 0025 marked every patient dirty when the last two were added, so no row of the older shape
/// is read.
type PackedSession = (
    i64,
    String,
    Option<f64>,
    u32,
    u32,
    Option<u32>,
    Option<f64>,
    Option<i64>,
    Option<f64>,
    Option<f64>,
);
/// An opioid in the cache: (drug, dose, unit, per day, route, start day, stop day).
type PackedOpioid = (
    String,
    f64,
    String,
    Option<f64>,
    Option<String>,
    i64,
    Option<i64>,
);

/// A subject as the cache holds it: arrays in field order instead of named fields (a third of
/// the size to store, send and parse); no study id.
#[derive(Serialize, Deserialize)]
struct Packed(
    String,
    String,
    String,
    i16,
    [Option<bool>; 6],
    Option<f64>,
    Vec<PackedSession>,
    Vec<(String, i64, i64)>,
    Vec<i64>,
    Vec<PackedOpioid>,
);

impl Packed {
    fn of(s: RegistrySubject) -> Packed {
        let i = s.intake;
        Packed(
            s.age,
            s.age_band,
            s.sex,
            s.year,
            [
                i.family_history_alcohol_use_disorder,
                i.prior_suicide_attempt,
                i.prior_ect_or_tms,
                i.comorbid_anxiety,
                i.ptsd,
                i.chronic_pain,
            ],
            s.bmi,
            s.sessions
                .into_iter()
                .map(|x| {
                    (
                        x.day,
                        x.protocol_id,
                        x.given_mg,
                        x.adverse_events,
                        x.alarms,
                        x.max_dissociation,
                        x.systolic_rise,
                        x.integration_after_days,
                        x.predicted_cmax_ng_ml,
                        x.predicted_auc_ng_min_ml,
                    )
                })
                .collect(),
            s.scores
                .into_iter()
                .map(|x| (x.instrument, x.day, x.total))
                .collect(),
            s.alert_days,
            s.opioids
                .into_iter()
                .map(|o| {
                    (
                        o.drug,
                        o.dose,
                        o.unit,
                        o.per_day,
                        o.route,
                        o.start_day,
                        o.stop_day,
                    )
                })
                .collect(),
        )
    }

    fn subject(self) -> RegistrySubject {
        let Packed(age, age_band, sex, year, i, bmi, sessions, scores, alert_days, opioids) = self;
        RegistrySubject {
            study_id: String::new(),
            age,
            age_band,
            sex,
            year,
            intake: ketcare_core::patient::Intake {
                family_history_alcohol_use_disorder: i[0],
                prior_suicide_attempt: i[1],
                prior_ect_or_tms: i[2],
                comorbid_anxiety: i[3],
                ptsd: i[4],
                chronic_pain: i[5],
            },
            bmi,
            sessions: sessions
                .into_iter()
                .map(
                    |(day, protocol_id, given_mg, ae, alarms, diss, rise, integ, cmax, auc)| {
                        RegistrySession {
                            day,
                            protocol_id,
                            given_mg,
                            adverse_events: ae,
                            alarms,
                            max_dissociation: diss,
                            systolic_rise: rise,
                            integration_after_days: integ,
                            predicted_cmax_ng_ml: cmax,
                            predicted_auc_ng_min_ml: auc,
                        }
                    },
                )
                .collect(),
            scores: scores
                .into_iter()
                .map(|(instrument, day, total)| RegistryScore {
                    instrument,
                    day,
                    total,
                })
                .collect(),
            alert_days,
            opioids: opioids
                .into_iter()
                .map(
                    |(drug, dose, unit, per_day, route, start_day, stop_day)| RegistryOpioid {
                        drug,
                        dose,
                        unit,
                        per_day,
                        route,
                        start_day,
                        stop_day,
                    },
                )
                .collect(),
        }
    }
}

/// ` AND <col> IN (…)` (or ` WHERE …` with `first`) limiting a query to `ids`; empty for all.
fn only(first: bool, col: &str, ids: Option<&[i64]>) -> String {
    match ids {
        None => String::new(),
        Some(ids) => format!(
            " {} {col} IN ({})",
            if first { "WHERE" } else { "AND" },
            if ids.is_empty() {
                "NULL".to_owned()
            } else {
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            }
        ),
    }
}

/// The audit record of a researcher's read: the study ids shown.
fn registry_read<'a>(ids: impl Iterator<Item = &'a str>) -> AuditEvent {
    let ids: Vec<&str> = ids.collect();
    AuditEvent::new(
        "registry.read",
        None,
        format!("{} subjects: {}", ids.len(), ids.join(", ")),
    )
}

/// The cached subjects, by patient.
const CACHED_SUBJECTS: &str = "SELECT patient_id, subject FROM registry_subject_cache WHERE subject IS NOT NULL ORDER BY patient_id";

/// How long a registry read waits for the replica to reach the primary before reading the
/// primary instead.
pub const REPLICA_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether `replica`'s audit chain has reached `seq` (polled until [`REPLICA_WAIT`]). Every
/// write of either kind goes through the chain's head, so a replica at or past `seq` holds all
/// that was committed up to it.
async fn caught_up(replica: &sqlx::AnyPool, seq: i64) -> bool {
    let deadline = std::time::Instant::now() + REPLICA_WAIT;
    loop {
        match sqlx::query_scalar::<_, i64>("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(replica)
            .await
        {
            Ok(at) if at >= seq => return true,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the replica's audit head");
                return false;
            }
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The registry's version (`registry_version`): moved in every transaction that changes what a
/// subject is derived from.
async fn registry_version(tx: &mut Unit<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT version FROM registry_version WHERE id = 1")
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Above this many dirty patients the subjects are derived from whole-table scans rather than
/// per-patient lists.
const SCAN_ABOVE: usize = 2_000;

/// The cache's next counter value, its row locked until the unit commits (migration 0029).
async fn next_stamp(tx: &mut Unit<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar(
            "UPDATE registry_cache_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq",
        )
        .fetch_one(tx.conn())
        .await?,
    )
}

/// Re-derives the subjects of the patients marked dirty (`registry_dirty`) into
/// `registry_subject_cache`, stamping the rows with the cache's next counter value, and clears
/// each mark whose generation is still the one read.
///
/// Refreshes run one at a time, each reading the marks after the one before committed — else a
/// refresh that read a mark before another wrote a newer subject could write its older one over
/// it. `in_turn`: the unit already holds the process's write turn (SQLite, whose units run one
/// at a time; there the counter is taken only to write, since SQLite's write lock would stop the
/// bedside feed for the whole derivation). Otherwise (PostgreSQL, whose derived units run side by
/// side, in every process) the counter's row lock is taken before the marks are read: it is not
/// a row any writer of the record takes.
async fn refresh_subjects(tx: &mut Unit<'_>, in_turn: bool) -> Result<()> {
    let marks = async |tx: &mut Unit<'_>| -> Result<Vec<(i64, i64)>> {
        Ok(
            sqlx::query_as("SELECT patient_id, gen FROM registry_dirty ORDER BY patient_id")
                .fetch_all(tx.conn())
                .await?,
        )
    };
    let mut dirty = marks(tx).await?;
    if dirty.is_empty() {
        return Ok(());
    }
    let mut stamp = None;
    if !in_turn {
        stamp = Some(next_stamp(tx).await?);
        dirty = marks(tx).await?;
        if dirty.is_empty() {
            return Ok(());
        }
    }
    let ids: Vec<i64> = dirty.iter().map(|d| d.0).collect();
    let mut derived: HashMap<i64, RegistrySubject> =
        derive_subjects(tx, (ids.len() <= SCAN_ABOVE).then_some(&ids[..]))
            .await?
            .into_iter()
            .collect();
    let stamp = match stamp {
        Some(s) => s,
        None => next_stamp(tx).await?,
    };
    for chunk in dirty.chunks(400) {
        let mut put = String::from(
            "INSERT INTO registry_subject_cache (patient_id, subject, changed) VALUES ",
        );
        let mut clear = String::from("DELETE FROM registry_dirty WHERE ");
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                put.push_str(", ");
                clear.push_str(" OR ");
            }
            put.push_str(&format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3));
            clear.push_str(&format!(
                "(patient_id = ${} AND gen = ${})",
                2 * i + 1,
                2 * i + 2
            ));
        }
        put.push_str(
            " ON CONFLICT (patient_id) DO UPDATE SET subject = excluded.subject, changed = excluded.changed",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(put));
        for (pid, _) in chunk {
            let json = derived
                .remove(pid)
                .map(|s| serde_json::to_string(&Packed::of(s)))
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            q = q.bind(*pid).bind(json).bind(stamp);
        }
        q.execute(tx.conn()).await?;
        let mut q = sqlx::query(sqlx::AssertSqlSafe(clear));
        for (pid, generation) in chunk {
            q = q.bind(*pid).bind(*generation);
        }
        q.execute(tx.conn()).await?;
    }
    Ok(())
}

/// Derives the subjects of `ids` (every patient with `None`) from the facts, each loaded in
/// one query for all of them (not one per patient or session); study ids are left empty.
async fn derive_subjects(
    tx: &mut Unit<'_>,
    ids: Option<&[i64]>,
) -> Result<Vec<(i64, RegistrySubject)>> {
    let bands = AgeBands::builtin().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut by_patient: std::collections::BTreeMap<i64, Vec<Fact>> =
        std::collections::BTreeMap::new();
    type FactRow = (
        i64,
        i64,
        Option<i64>,
        String,
        Option<f64>,
        i64,
        i64,
        Option<i64>,
        Option<f64>,
    );
    // In session order (the table's own, a scan): each patient's sessions stay in order.
    for (session_id, patient_id, dose_epoch, protocol_id, given_mg, ae, alarms, diss, rise) in
        sqlx::query_as::<_, FactRow>(sqlx::AssertSqlSafe(format!(
            "SELECT session_id, patient_id, dose_epoch, protocol_id, given_mg, adverse_events, alarms, max_dissociation, systolic_rise
             FROM registry_session_facts WHERE dose_epoch IS NOT NULL{} ORDER BY session_id",
            only(false, "patient_id", ids)
        )))
        .fetch_all(tx.conn())
        .await?
    {
        by_patient.entry(patient_id).or_default().push(Fact {
            session_id,
            patient_id,
            dose_epoch,
            protocol_id,
            given_mg,
            adverse_events: ae,
            alarms,
            max_dissociation: diss,
            systolic_rise: rise,
        });
    }
    type PatientFacts = (String, String, String, Option<f64>, Option<f64>);
    let patients: HashMap<i64, PatientFacts> = sqlx::query_as::<
        _,
        (i64, String, String, String, Option<f64>, Option<f64>),
    >(sqlx::AssertSqlSafe(format!(
        "SELECT id, date_of_birth, sex, intake, weight_kg, height_cm FROM patients{}",
        only(true, "id", ids)
    )))
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(|(id, dob, sex, intake, w, h)| (id, (dob, sex, intake, w, h)))
    .collect();
    let exposure: HashMap<i64, (f64, f64)> =
        sqlx::query_as::<_, (i64, f64, f64)>(sqlx::AssertSqlSafe(format!(
            "SELECT session_id, cmax_ng_ml, auc_ng_min_ml FROM registry_session_exposure{}",
            only(true, "patient_id", ids)
        )))
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(|(sid, cmax, auc)| (sid, (cmax, auc)))
        .collect();
    let mut integrations = grouped(
        sqlx::query_as::<_, (i64, Option<i64>, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT patient_id, session_id, at FROM therapy_encounters WHERE kind = 'integration'{} ORDER BY patient_id, at, id",
            only(false, "patient_id", ids)
        )))
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .filter_map(|(p, s, at)| Some((p, (s, at.parse::<jiff::civil::DateTime>().ok()?.date()))))
        .collect(),
    );
    let mut scores = grouped(
        sqlx::query_as::<_, (i64, String, String, i64)>(sqlx::AssertSqlSafe(format!(
            "SELECT patient_id, instrument, taken_on, total FROM measure_responses WHERE total IS NOT NULL{} ORDER BY id",
            only(false, "patient_id", ids)
        )))
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .filter_map(|(p, i, on, t)| Some((p, (i, on.parse::<Date>().ok()?, t))))
        .collect(),
    );
    let mut alerts = grouped(
        sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT patient_id, raised_at FROM safety_alerts{} ORDER BY patient_id, id",
            only(true, "patient_id", ids)
        )))
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .filter_map(|(p, at)| Some((p, at.parse::<jiff::Timestamp>().ok()?)))
        .collect(),
    );
    let mut opioids = grouped(
        sqlx::query_as::<_, (i64, String, f64, String, Option<f64>, Option<String>, String, Option<String>)>(sqlx::AssertSqlSafe(format!(
            "SELECT patient_id, drug, dose, unit, per_day, route, started_on, stopped_on FROM opioid_entries{} ORDER BY patient_id, id",
            only(true, "patient_id", ids)
        )))
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(|(p, drug, dose, unit, per_day, route, start, stop)| {
            (p, (drug, dose, unit, per_day, route, start, stop))
        })
        .collect(),
    );
    let zones = SessionZones::load(tx, ids).await?;
    let mut out = Vec::with_capacity(by_patient.len());
    for (pid, records) in by_patient {
        let dosed_on = |f: &Fact| {
            let t = jiff::Timestamp::from_second(f.dose_epoch?).ok()?;
            Some(zones.day(f.session_id, t))
        };
        // The first treatment's day at its site; the patient's alerts are read in that zone.
        let Some((first, first_session)) = records
            .iter()
            .filter_map(|f| Some((dosed_on(f)?, f.session_id)))
            .min()
        else {
            continue;
        };
        let Some((dob, sex, intake, weight, height)) = patients.get(&pid) else {
            continue;
        };
        let intake = serde_json::from_str(intake)
            .map_err(|_| crate::sql::corrupt("patients.intake", intake))?;
        let bmi = match (weight, height) {
            (Some(w), Some(h)) if *h > 0.0 => Some((w / (h / 100.0).powi(2) * 10.0).round() / 10.0),
            _ => None,
        };
        let dob: Date = dob
            .parse()
            .map_err(|_| crate::sql::corrupt("patients.date_of_birth", dob))?;
        let age = Age::on(dob, first);
        let integrations = integrations.remove(&pid).unwrap_or_default();
        let mut sessions = Vec::with_capacity(records.len());
        for f in records {
            let Some(dosed) = dosed_on(&f) else {
                continue;
            };
            let integration_after_days = integrations
                .iter()
                .filter(|(sid, on)| sid.is_none_or(|x| x == f.session_id) && *on >= dosed)
                .map(|(_, on)| day_of(dosed, *on))
                .min();
            let predicted = exposure.get(&f.session_id);
            sessions.push(RegistrySession {
                day: day_of(first, dosed),
                protocol_id: f.protocol_id,
                given_mg: f.given_mg,
                adverse_events: u32::try_from(f.adverse_events).unwrap_or(u32::MAX),
                alarms: u32::try_from(f.alarms).unwrap_or(u32::MAX),
                max_dissociation: f.max_dissociation.and_then(|v| u32::try_from(v).ok()),
                systolic_rise: f.systolic_rise,
                integration_after_days,
                predicted_cmax_ng_ml: predicted.map(|p| p.0),
                predicted_auc_ng_min_ml: predicted.map(|p| p.1),
            });
        }
        sessions.sort_by_key(|s| s.day);
        // Read in the table's order (a scan, not an index walk); by date here, entry order
        // kept among a day's answers.
        let mut mine = scores.remove(&pid).unwrap_or_default();
        mine.sort_by_key(|(_, on, _)| *on);
        let scores = mine
            .into_iter()
            .map(|(instrument, on, total)| RegistryScore {
                instrument,
                day: day_of(first, on),
                total,
            })
            .collect();
        let alert_days = alerts
            .remove(&pid)
            .unwrap_or_default()
            .into_iter()
            .map(|t| day_of(first, zones.day(first_session, t)))
            .collect();
        let day = |d: &str| d.parse::<Date>().ok().map(|d| day_of(first, d));
        let opioids = opioids
            .remove(&pid)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(drug, dose, unit, per_day, route, start, stop)| {
                Some(RegistryOpioid {
                    drug,
                    dose,
                    unit,
                    per_day,
                    route,
                    start_day: day(&start)?,
                    stop_day: stop.as_deref().and_then(day),
                })
            })
            .collect();
        out.push((
            pid,
            RegistrySubject {
                study_id: String::new(),
                age: match age {
                    Some(a) => age_shown(i64::from(a.years()))
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    None => "unknown".into(),
                },
                age_band: age
                    .map(|a| bands.band_for(a).as_str().to_owned())
                    .unwrap_or_else(|| "unknown".into()),
                sex: sex.clone(),
                year: first.year(),
                intake,
                bmi,
                sessions,
                scores,
                alert_days,
                opioids,
            },
        ));
    }
    Ok(out)
}

/// The subjects a process last loaded, each with the registry version it loaded them at
/// (`registry_version`, moved by a trigger in every transaction that changes what a subject is
/// derived from). A copy is served only while the version is still the one it was loaded at,
/// so it is never staler than the database, whichever process wrote.
#[derive(Default)]
pub(crate) struct Memo {
    /// With study ids: the researcher's view, and how its study ids are recorded.
    researcher: Option<(i64, Researched, Shown)>,
    /// Every study id read so far by patient (`registry_keys` only grows, and a key never
    /// changes): a read asks the database only for those of patients not in it.
    keys: Option<Arc<HashMap<i64, String>>>,
    /// Each subject the researcher's view last gave, with its study id, beside the mirror's
    /// subject it was made from: a subject whose mirror copy is the same one is shared again
    /// rather than copied.
    studied: Option<Arc<Studied>>,
    /// The last audit record that listed every study id a researcher's read showed, and those
    /// ids: later reads are recorded as the difference from it while that stays small.
    listing: Option<Listing>,
    /// Without, beside each patient id: the program's view.
    program: Option<Held<(i64, RegistrySubject)>>,
    /// Every cached subject (no study id) by patient, as read at a value of the cache's counter
    /// (`registry_cache_seq`): a later read takes only the rows stamped above it.
    mirror: Option<(i64, Mirror)>,
}

/// The cached subjects by patient.
type Mirror = Arc<std::collections::BTreeMap<i64, Arc<RegistrySubject>>>;

/// Each subject the researcher's view gave by patient, beside the mirror subject it was made
/// from.
type Studied = HashMap<i64, (Arc<RegistrySubject>, Arc<RegistrySubject>)>;

/// The researcher's view: each subject with its study id, shared.
pub type Researched = Arc<Vec<Arc<RegistrySubject>>>;

/// A view's subjects and the registry version they were loaded at.
type Held<T> = (i64, Arc<Vec<T>>);

/// An audit record that listed every study id of a read, and those ids.
#[derive(Clone)]
pub(crate) struct Listing {
    seq: i64,
    ids: Arc<std::collections::HashSet<String>>,
    /// The same ids in the order listed (a read of the same subjects lists them in that order
    /// again, so it is recognised without hashing every id).
    ordered: Arc<Vec<String>>,
}

impl Listing {
    fn of(seq: i64, ids: &[&str]) -> Listing {
        let ordered: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        Listing {
            seq,
            ids: Arc::new(ordered.iter().cloned().collect()),
            ordered: Arc::new(ordered),
        }
    }
}

/// How a read's study ids are recorded: listed in full, or as a listing record's ids plus those
/// added and less those gone since (each list sorted).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Shown {
    Full,
    Since {
        seq: i64,
        added: Vec<String>,
        removed: Vec<String>,
    },
}

/// Above this many ids added or gone since the last full listing, a read lists every id again.
const DIFFERENCE_AT_MOST: usize = 1_000;

impl Shown {
    /// How `ids` are recorded against `listing` (the last full one, if any).
    fn of(listing: Option<&Listing>, ids: &[&str]) -> Shown {
        let Some(l) = listing else {
            return Shown::Full;
        };
        if l.ordered.len() == ids.len() && l.ordered.iter().zip(ids).all(|(a, b)| a == b) {
            return Shown::Since {
                seq: l.seq,
                added: Vec::new(),
                removed: Vec::new(),
            };
        }
        let now: std::collections::HashSet<&str> = ids.iter().copied().collect();
        let mut added: Vec<String> = now
            .iter()
            .filter(|id| !l.ids.contains(**id))
            .map(|id| (*id).to_owned())
            .collect();
        if added.len() > DIFFERENCE_AT_MOST {
            return Shown::Full;
        }
        let mut removed: Vec<String> = l
            .ids
            .iter()
            .filter(|id| !now.contains(id.as_str()))
            .cloned()
            .collect();
        if added.len() + removed.len() > DIFFERENCE_AT_MOST {
            return Shown::Full;
        }
        added.sort();
        removed.sort();
        Shown::Since {
            seq: l.seq,
            added,
            removed,
        }
    }

    /// The same with `new` study ids (patients given one by this read) among the added, or in
    /// full when they make the difference too large.
    fn and(self, new: Vec<String>) -> Shown {
        match self {
            Shown::Full => Shown::Full,
            Shown::Since { .. } if new.is_empty() => self,
            Shown::Since {
                seq,
                mut added,
                mut removed,
            } => {
                // An id another read listed meanwhile is in the listing: shown again, it is
                // neither added nor gone.
                for id in new {
                    match removed.iter().position(|r| *r == id) {
                        Some(i) => {
                            removed.remove(i);
                        }
                        None => added.push(id),
                    }
                }
                if added.len() + removed.len() > DIFFERENCE_AT_MOST {
                    return Shown::Full;
                }
                added.sort();
                Shown::Since {
                    seq,
                    added,
                    removed,
                }
            }
        }
    }

    /// The audit record of a researcher's read of `ids` recorded this way.
    fn event(&self, ids: &[&str]) -> AuditEvent {
        match self {
            Shown::Full => registry_read(ids.iter().copied()),
            Shown::Since {
                seq,
                added,
                removed,
            } => {
                let mut detail = format!(
                    "{} subjects: the study ids audit record {seq} lists",
                    ids.len()
                );
                if added.is_empty() && removed.is_empty() {
                    detail.push_str(" (unchanged since)");
                }
                if !added.is_empty() {
                    detail.push_str(&format!(", and {}", added.join(", ")));
                }
                if !removed.is_empty() {
                    detail.push_str(&format!(", less {}", removed.join(", ")));
                }
                AuditEvent::new("registry.read", None, detail)
            }
        }
    }
}

/// Decodes cached subjects (JSON; none: the patient is no longer a subject) on the blocking
/// pool: a large clinic's rows take long enough to hold up every request scheduled on an async
/// worker.
async fn decoded(rows: Vec<(i64, Option<String>)>) -> Result<Vec<(i64, Option<RegistrySubject>)>> {
    blocking(move || {
        rows.into_iter()
            .map(|(pid, json)| match json {
                None => Ok((pid, None)),
                Some(json) => serde_json::from_str::<Packed>(&json)
                    .map(|p| (pid, Some(p.subject())))
                    .map_err(|_| crate::sql::corrupt("registry_subject_cache.subject", &json)),
            })
            .collect::<Result<Vec<_>>>()
    })
    .await?
}

/// The study ids these patients have (the ids are integers, written into the text).
async fn keys_of<'e>(
    e: impl sqlx::Executor<'e, Database = sqlx::Any>,
    patients: &[i64],
) -> Result<Vec<(i64, String)>> {
    let list = patients
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    Ok(
        sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT patient_id, study_id FROM registry_keys WHERE patient_id IN ({list})"
        )))
        .fetch_all(e)
        .await?,
    )
}

/// Runs `f` on the blocking pool: work over a whole clinic's subjects (decoding, copying,
/// comparing their study ids) would otherwise hold up every request scheduled on the async
/// worker it ran on.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Corrupt(format!("the registry's computation failed: {e}")))
}

impl SqlStore {
    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.registry_memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every cached subject, read from `source`: the copy held in memory brought up to date with
    /// the rows stamped since it was read (migration 0029), or every row the first time. Read
    /// after the cache was brought up to date, it holds at least what that refresh wrote.
    async fn mirror(&self, source: &sqlx::AnyPool) -> Result<Mirror> {
        let seq: i64 = sqlx::query_scalar("SELECT seq FROM registry_cache_seq WHERE id = 1")
            .fetch_one(source)
            .await?;
        let held = self.memo().mirror.clone();
        let (rows, mut map): (Vec<(i64, Option<String>)>, _) = match held {
            Some((at, m)) if at == seq => return Ok(m),
            // A counter behind the copy (a restored database, a standby promoted before it had
            // caught up) says nothing about which rows changed: every row is read again.
            Some((at, m)) if at < seq => (
                sqlx::query_as(
                    "SELECT patient_id, subject FROM registry_subject_cache WHERE changed > $1",
                )
                .bind(at)
                .fetch_all(source)
                .await?,
                (*m).clone(),
            ),
            _ => (
                sqlx::query_as(CACHED_SUBJECTS).fetch_all(source).await?,
                std::collections::BTreeMap::new(),
            ),
        };
        for (pid, subject) in decoded(rows).await? {
            match subject {
                Some(s) => map.insert(pid, Arc::new(s)),
                None => map.remove(&pid),
            };
        }
        let map = Arc::new(map);
        self.memo().mirror = Some((seq, map.clone()));
        Ok(map)
    }

    /// Brings the per-subject cache up to date and returns the registry version it is at least
    /// as new as. Units of derived data ([`Unit::derived`], no audit lock), each committed on
    /// its own — the facts a few hundred sessions at a time, then the dirty subjects: filling
    /// facts moves the version (its row is locked by every writer that marks a subject stale,
    /// the bedside feed included) and clearing dirty marks locks theirs, so neither is held
    /// across the other step, nor for longer than one unit's writes. The version is read after the facts are filled
    /// and before the dirty subjects are derived: a write committed after that read moves it
    /// past the one returned, so what is derived is never older than its version says.
    async fn derive(&self, actor: &Actor) -> Result<i64> {
        // Until a unit finds less than its whole worth missing: what the bedside feed forgets
        // meanwhile is filled by the next read, so the loop ends however fast it writes.
        loop {
            let mut fill = Unit::derived(&self.pool, &self.writers, actor).await?;
            let filled = fill_facts(&mut fill).await?;
            fill.commit().await?;
            if filled < FACTS_PER_UNIT as usize {
                break;
            }
        }
        let mut derive = Unit::derived(&self.pool, &self.writers, actor).await?;
        let version = registry_version(&mut derive).await?;
        refresh_subjects(&mut derive, self.backend == crate::Backend::Sqlite).await?;
        derive.commit().await?;
        Ok(version)
    }

    /// The registry's version now (one small row).
    async fn version_now(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT version FROM registry_version WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn registry_impl(&self, actor: &Actor) -> Result<Researched> {
        self.researcher_read(actor, self.read_pool.as_ref()).await
    }

    /// [`RegistryStore::registry`]. The copy held in memory while the registry's version is
    /// unchanged (one small row read, then the audited record). Otherwise three steps, none of
    /// which holds the audit chain's lock for long, so the bedside feed keeps committing while a
    /// researcher reads a large clinic: (1) the cache is brought up to date
    /// ([`SqlStore::derive`]); (2) the audited unit gives every cached subject its study id and
    /// records the read, committing at a chain sequence; (3) the subjects — the bulk of the
    /// bytes — are read outside any transaction and decoded off the async workers: from the
    /// `replica` once its audit chain has reached that sequence (so it holds the refreshed
    /// cache), else from the primary (after [`REPLICA_WAIT`], with a warning, when a replica
    /// lags). What is read is at least as new as the version (read after the facts were filled,
    /// before the subjects were derived), and is kept in memory under it.
    ///
    /// The read's record lists the study ids shown — or, while they differ little from those of
    /// the last record that listed them all ([`Memo::listing`]), refers to that record and names
    /// the ids added and gone since ([`Shown`]): the log is append-only, so the reference always
    /// resolves, and a 100,000-subject clinic does not write its whole list on every read.
    async fn researcher_read(
        &self,
        actor: &Actor,
        replica: Option<&sqlx::AnyPool>,
    ) -> Result<Researched> {
        crate::require(actor, Permission::RegistryRead)?;
        let now = self.version_now().await?;
        let held = self.memo().researcher.clone();
        if let Some((_, out, shown)) = held.filter(|(v, _, _)| *v == now) {
            // The record is made before the unit opens: the unit only appends it.
            let ids: Vec<&str> = out.iter().map(|s| s.study_id.as_str()).collect();
            let event = shown.event(&ids);
            let mut tx = self.read_audited(actor, Permission::RegistryRead).await?;
            tx.audit(&event).await?;
            let seq = tx.commit_seq().await?;
            if shown == Shown::Full {
                self.listed(&out, &ids, seq);
            }
            return Ok(out);
        }
        let version = self.derive(actor).await?;
        // The subjects and their keys, read before the audited unit so that it stays short.
        // Without a replica the subjects are the primary's, brought up to date now (only the
        // rows refreshed since the last read), and they name the cached patients; with one, the
        // patients are listed here and the subjects read from the replica once it has caught
        // up with the read's record.
        let early = match replica {
            None => Some(self.mirror(&self.pool).await?),
            Some(_) => None,
        };
        let cached: Vec<i64> = match &early {
            Some(mirror) => mirror.keys().copied().collect(),
            None => {
                sqlx::query_scalar(
                    "SELECT patient_id FROM registry_subject_cache WHERE subject IS NOT NULL ORDER BY patient_id",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        // The keys known from earlier reads, and those of the other cached patients (another
        // process may have given them one): all of them when most are unknown.
        let known = self.memo().keys.clone().unwrap_or_default();
        let unknown: Vec<i64> = cached
            .iter()
            .copied()
            .filter(|pid| !known.contains_key(pid))
            .collect();
        let mut keys: HashMap<i64, String> = if unknown.len() > KEYS_READ_ALL {
            sqlx::query_as::<_, (i64, String)>("SELECT patient_id, study_id FROM registry_keys")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect()
        } else {
            (*known).clone()
        };
        if !unknown.is_empty() && unknown.len() <= KEYS_READ_ALL {
            keys.extend(keys_of(&self.pool, &unknown).await?);
        }
        let missing: Vec<i64> = cached
            .iter()
            .copied()
            .filter(|pid| !keys.contains_key(pid))
            .collect();
        // How the read is recorded, worked out off the async workers before the audited unit
        // opens (over a large clinic's ids it takes a while): the unit only appends it.
        let listing = self.memo().listing.clone();
        let (cached, mut keys, mut shown) = blocking(move || {
            let ids: Vec<&str> = cached
                .iter()
                .filter_map(|pid| keys.get(pid).map(String::as_str))
                .collect();
            let shown = Shown::of(listing.as_ref(), &ids);
            (cached, keys, shown)
        })
        .await?;
        let mut tx = self.read_audited(actor, Permission::RegistryRead).await?;
        if !missing.is_empty() {
            // Another read may have given some of them a key meanwhile: read those again under
            // the unit's lock, then create the rest. Either way they are new to the listing.
            keys.extend(keys_of(tx.conn(), &missing).await?);
            let mut new = Vec::with_capacity(missing.len());
            for pid in missing {
                let id = study_id(&mut tx, &keys, pid).await?;
                new.push(id.clone());
                keys.insert(pid, id);
            }
            shown = shown.and(new);
        }
        let ids: Vec<&str> = cached
            .iter()
            .filter_map(|pid| keys.get(pid).map(String::as_str))
            .collect();
        tx.audit(&shown.event(&ids)).await?;
        let seq = tx.commit_seq().await?;
        drop(ids);
        let mirror = match (early, replica) {
            (Some(mirror), _) => mirror,
            (None, Some(replica)) if caught_up(replica, seq).await => self.mirror(replica).await?,
            (None, _) => {
                tracing::warn!(
                    "the read replica had not reached audit record {seq} within {} ms: the registry was read on the primary",
                    REPLICA_WAIT.as_millis()
                );
                self.mirror(&self.pool).await?
            }
        };
        // Exactly the subjects the read recorded (a patient cached after it is not among them),
        // each with its study id, made off the async workers: the one the last read gave when
        // it was made from the same cached subject, else a copy.
        let wanted = cached.len();
        let earlier = self.memo().studied.clone().unwrap_or_default();
        let (out, studied, keys) = blocking(move || {
            let mut studied = HashMap::with_capacity(cached.len());
            let out: Vec<Arc<RegistrySubject>> = cached
                .iter()
                .filter_map(|pid| {
                    let source = mirror.get(pid)?;
                    let id = keys.get(pid).map(String::as_str).unwrap_or_default();
                    let subject = match earlier.get(pid) {
                        Some((from, made)) if Arc::ptr_eq(from, source) && made.study_id == id => {
                            made.clone()
                        }
                        _ => {
                            let mut subject = (**source).clone();
                            subject.study_id = id.to_owned();
                            Arc::new(subject)
                        }
                    };
                    studied.insert(*pid, (source.clone(), subject.clone()));
                    Some(subject)
                })
                .collect();
            (Arc::new(out), Arc::new(studied), Arc::new(keys))
        })
        .await?;
        {
            let mut m = self.memo();
            m.keys = Some(keys);
            m.studied = Some(studied);
        }
        // What the replica held is at least as new as `version` (it had reached this read's
        // commit), so it is kept under it like a read on the primary. A replica missing a
        // subject the record named is read again next time (the copy is not kept).
        if out.len() == wanted {
            self.memo().researcher = Some((version, out.clone(), shown.clone()));
            if shown == Shown::Full {
                let ids: Vec<&str> = out.iter().map(|s| s.study_id.as_str()).collect();
                self.listed(&out, &ids, seq);
            }
        }
        Ok(out)
    }

    /// Notes that audit record `seq` listed every study id of `out` (`ids`): a later read of the
    /// held copy, or of a copy that differs little, refers to it.
    fn listed(&self, out: &Researched, ids: &[&str], seq: i64) {
        let listing = Listing::of(seq, ids);
        let mut m = self.memo();
        m.listing = Some(listing.clone());
        if let Some((_, held, shown)) = m.researcher.as_mut()
            && Arc::ptr_eq(held, out)
        {
            *shown = Shown::of(Some(&listing), ids);
        }
    }

    /// [`RegistryStore::program`], in the same steps as the researcher's read: the copy held in
    /// memory while the registry's version is unchanged, else the cache brought up to date
    /// ([`SqlStore::derive`]) and read; the patients' names and MRNs read beside it; then one
    /// short audited unit records the read (the patient ids shown) and commits before anything
    /// is returned. The derivation never holds the audit chain's lock.
    async fn program_impl(&self, actor: &Actor) -> Result<Vec<(ProgramPatient, RegistrySubject)>> {
        crate::require(actor, Permission::ProgramOutcomes)?;
        let now = self.version_now().await?;
        let held = self.memo().program.clone();
        let (subjects, loaded) = match held.filter(|(v, _)| *v == now) {
            Some((_, s)) => (s, None),
            None => {
                let version = self.derive(actor).await?;
                let mirror = self.mirror(&self.pool).await?;
                let subjects = blocking(move || {
                    mirror
                        .iter()
                        .map(|(pid, s)| (*pid, (**s).clone()))
                        .collect::<Vec<_>>()
                })
                .await?;
                (Arc::new(subjects), Some(version))
            }
        };
        let names: HashMap<i64, (String, String)> =
            sqlx::query_as::<_, (i64, String, String, String)>(
                "SELECT id, given_name, family_name, mrn FROM patients",
            )
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(id, g, f, mrn)| (id, (format!("{g} {f}"), mrn)))
            .collect();
        let out: Vec<(ProgramPatient, RegistrySubject)> = subjects
            .iter()
            .map(|(pid, s)| {
                let (name, mrn) = names.get(pid).cloned().unwrap_or_default();
                (
                    ProgramPatient {
                        patient_id: *pid,
                        name,
                        mrn,
                    },
                    s.clone(),
                )
            })
            .collect();
        let ids: Vec<String> = out.iter().map(|(p, _)| p.patient_id.to_string()).collect();
        let mut tx = self
            .read_audited(actor, Permission::ProgramOutcomes)
            .await?;
        tx.audit(&AuditEvent::new(
            "program.read",
            None,
            format!("{} patients: {}", ids.len(), ids.join(", ")),
        ))
        .await?;
        tx.commit().await?;
        if let Some(version) = loaded {
            self.memo().program = Some((version, subjects));
        }
        Ok(out)
    }
}

#[async_trait]
impl RegistryStore for SqlStore {
    async fn registry(&self, actor: &Actor) -> Result<Researched> {
        self.registry_impl(actor).await
    }

    async fn program(&self, actor: &Actor) -> Result<Vec<(ProgramPatient, RegistrySubject)>> {
        self.program_impl(actor).await
    }

    async fn insert_synthetic(
        &self,
        actor: &Actor,
        batch: &[crate::synthetic::SyntheticPatient],
    ) -> Result<usize> {
        self.insert_synthetic_impl(actor, batch).await
    }

    async fn signed_sessions_without_exposure(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ketcare_core::SessionId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT s.id FROM treatment_sessions s
             WHERE s.signed = 1 AND s.id > $1
               AND NOT EXISTS (SELECT 1 FROM registry_session_exposure e WHERE e.session_id = s.id)
             ORDER BY s.id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(ketcare_core::SessionId::new).collect())
    }

    async fn put_session_exposure(
        &self,
        actor: &Actor,
        session: ketcare_core::SessionId,
        exposure: &PredictedExposure,
    ) -> Result<()> {
        let mut tx = self.write(actor, Permission::SignSession).await?;
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT patient_id, signed FROM treatment_sessions WHERE id = $1")
                .bind(session)
                .fetch_optional(tx.conn())
                .await?;
        let Some((patient, signed)) = row else {
            return Err(StoreError::NotFound {
                what: format!("session {session}"),
            });
        };
        if signed == 0 {
            return Err(StoreError::Conflict(format!(
                "session {session} is not signed: its predicted exposure is kept only for a final record"
            )));
        }
        put_exposure(&mut tx, session.get(), patient, exposure, &now_rfc3339()).await?;
        tx.audit(&exposure_event(session, patient, exposure))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn save_cohort(&self, actor: &Actor, name: &str, query: &str) -> Result<SavedCohort> {
        let mut tx = self.write(actor, Permission::RegistryRead).await?;
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM registry_cohorts WHERE name = $1",
        )
        .bind(name)
        .fetch_one(tx.conn())
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO registry_cohorts (name, version, query, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(version)
        .bind(query)
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(tx.conn())
        .await?;
        tx.audit(&AuditEvent::new(
            "registry.cohort_save",
            None,
            format!("cohort {id}: {name} v{version}"),
        ))
        .await?;
        let saved = cohort_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn cohorts(&self, actor: &Actor) -> Result<Vec<SavedCohort>> {
        crate::require(actor, Permission::RegistryRead)?;
        Ok(
            sqlx::query_as::<_, SavedCohort>(sqlx::AssertSqlSafe(format!(
                "SELECT {COHORT_COLS} FROM registry_cohorts ORDER BY name, version DESC"
            )))
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn saved_cohort(&self, actor: &Actor, id: i64) -> Result<SavedCohort> {
        crate::require(actor, Permission::RegistryRead)?;
        sqlx::query_as::<_, SavedCohort>(sqlx::AssertSqlSafe(format!(
            "SELECT {COHORT_COLS} FROM registry_cohorts WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("saved cohort {id}"),
        })
    }
}

async fn cohort_in(tx: &mut Unit<'_>, id: i64) -> Result<SavedCohort> {
    Ok(
        sqlx::query_as::<_, SavedCohort>(sqlx::AssertSqlSafe(format!(
            "SELECT {COHORT_COLS} FROM registry_cohorts WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(tx.conn())
        .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(seq: i64, ids: &[&str]) -> Listing {
        Listing::of(seq, ids)
    }

    #[test]
    fn a_read_is_recorded_as_the_last_listing_and_what_changed_since_or_in_full() {
        assert_eq!(Shown::of(None, &["A"]), Shown::Full);
        let l = listing(7, &["A", "B", "C"]);
        let same = Shown::of(Some(&l), &["C", "A", "B"]);
        assert_eq!(
            same.event(&["C", "A", "B"]).detail,
            "3 subjects: the study ids audit record 7 lists (unchanged since)"
        );
        let moved = Shown::of(Some(&l), &["A", "C", "E", "D"]);
        assert_eq!(
            moved,
            Shown::Since {
                seq: 7,
                added: vec!["D".into(), "E".into()],
                removed: vec!["B".into()],
            }
        );
        assert_eq!(
            moved.event(&["A", "C", "E", "D"]).detail,
            "4 subjects: the study ids audit record 7 lists, and D, E, less B"
        );
        // Past the limit, every id is listed again.
        let many: Vec<String> = (0..=DIFFERENCE_AT_MOST).map(|i| format!("N{i}")).collect();
        let ids: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(Shown::of(Some(&l), &ids), Shown::Full);
        // A patient given a study id by the read itself is among the added.
        let grown = Shown::of(Some(&l), &["A", "B", "C"]).and(vec!["Z".into()]);
        assert_eq!(
            grown.event(&["A", "B", "C", "Z"]).detail,
            "4 subjects: the study ids audit record 7 lists, and Z"
        );
        assert_eq!(Shown::Full.and(vec!["Z".into()]), Shown::Full);
        // One the listing has (another read listed it meanwhile) is neither added nor gone.
        let listed_meanwhile = Shown::of(Some(&listing(8, &["A", "Z"])), &["A"]);
        assert_eq!(
            listed_meanwhile
                .and(vec!["Z".into()])
                .event(&["A", "Z"])
                .detail,
            "2 subjects: the study ids audit record 8 lists (unchanged since)"
        );
        let full = Shown::Full.event(&["A", "B"]);
        assert_eq!(full.detail, "2 subjects: A, B");
    }
}
