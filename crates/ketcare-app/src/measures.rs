//! Measurement-based care: questionnaires, patient links, safety alerts, trajectories, opioid MME.
//!
//! One service here is what the pages, the JSON API and the CLI call, so
//! they give the same numbers: scoring and outcomes come from `ketcare-measures`, storage from
//! [`ketcare_store::MeasuresStore`].

use crate::error::{Error, Result};
use jiff::civil::Date;
use ketcare_clinical::Library;
use ketcare_core::{Actor, GuardianId, PatientId, Permission, RecordId, ResponseId, SessionId};
use ketcare_measures::mme::{DatedMme, MmeLine};
use ketcare_measures::outcome::CourseOutcome;
use ketcare_measures::{
    BoosterDue, BoosterRule, Catalogue, DoseUnit, Instrument, OpioidEntry, Point, Score,
    ScoreError, SiteSettings,
};
use ketcare_store::measures::{
    ItemText, MeasureCourse, MeasureLink, NewAlert, NewResponse, OpioidRow, SafetyAlert,
    StoredResponse, TextVersion,
};
use ketcare_store::{AlertStatus, RecordKind, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How long a questionnaire link stays usable unless staff choose otherwise (ketcare's own
/// default, not a clinical value).
pub const DEFAULT_LINK_HOURS: i64 = 72;

/// Shown to a patient at once when an answer is a positive suicide-risk answer. Generic on
/// purpose: the reference gives no crisis line numbers, so none is hard-coded.
pub const CRISIS_TEXT: &str = "If you are thinking about ending your life or are in danger now, call your local emergency number or go to the nearest emergency department now. If you can, tell someone near you. Your care team has been alerted and will contact you.";

/// Scores answers given as text (`1,2,,0`): the one function the CLI, the API and the pages
/// call.
pub fn score_text(
    instrument: &str,
    answers: &str,
    settings: &SiteSettings,
) -> Result<Score, ScoreError> {
    let answers = ketcare_measures::parse_answers(answers)?;
    score_answers(instrument, &answers, settings)
}

/// Scores answers by instrument id.
pub fn score_answers(
    instrument: &str,
    answers: &[Option<i32>],
    settings: &SiteSettings,
) -> Result<Score, ScoreError> {
    ketcare_measures::score(find(instrument)?, answers, settings)
}

/// The built-in catalogue (validated by a test and at start).
pub fn catalogue() -> Option<&'static Catalogue> {
    Catalogue::builtin().ok()
}

pub fn find(id: &str) -> Result<&'static Instrument, ScoreError> {
    catalogue()
        .and_then(|c| c.instrument(id))
        .ok_or_else(|| ScoreError::UnknownInstrument { id: id.to_string() })
}

impl From<ScoreError> for Error {
    fn from(e: ScoreError) -> Self {
        Error::invalid(e.field(), e.to_string())
    }
}

/// Parses a `YYYY-MM-DD` field.
pub fn date_field(field: &str, v: &str) -> Result<Date, Error> {
    v.trim()
        .parse::<Date>()
        .map_err(|_| Error::invalid(field, format!("expected a date YYYY-MM-DD, got {v:?}")))
}

/// The store row for a scored form, with one alert per positive suicide-risk answer.
pub fn new_response(
    score: &Score,
    taken_on: Date,
    submission_key: &str,
) -> Result<NewResponse, Error> {
    Ok(NewResponse {
        instrument: score.instrument.clone(),
        answers: json(&score.answers)?,
        total: score.total.map(i64::from),
        result: json(score)?,
        taken_on: taken_on.to_string(),
        submission_key: submission_key.to_string(),
        alerts: alerts_of(&score.safety),
    })
}

/// One alert per positive suicide-risk answer.
pub fn alerts_of(flags: &[ketcare_measures::SafetyFlag]) -> Vec<NewAlert> {
    flags
        .iter()
        .map(|f| NewAlert {
            item: i64::from(f.item),
            answer: i64::from(f.answer),
            detail: format!(
                "{} item {} ({}) answered {} — positive suicide-risk answer",
                instrument_name(&f.instrument),
                f.item,
                f.label,
                f.answer
            ),
        })
        .collect()
}

fn json<T: Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| {
        tracing::error!(error = %e, "serialising a measure");
        Error::Internal
    })
}

/// Display name of an instrument id.
pub fn instrument_name(id: &str) -> String {
    find(id)
        .map(|i| i.name.clone())
        .unwrap_or_else(|_| id.to_string())
}

/// Scores and stores a staff-entered form. Returns the stored row, the score, and whether it
/// is new (a repeated submission key stores nothing). A form that cannot be scored (items left
/// blank) is refused, but a positive suicide-risk answer on it raises the urgent alert first,
/// as the patient link does.
pub async fn record(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    instrument: &str,
    answers: &[Option<i32>],
    taken_on: Date,
    submission_key: &str,
) -> Result<(StoredResponse, Score, bool), Error> {
    let (settings, _) = crate::clinical::settings(store).await?;
    let score = match score_answers(instrument, answers, &settings) {
        Ok(score) => score,
        Err(e) => {
            // As on the patient link: an incomplete form is not stored as a score, but a
            // positive suicide-risk answer alerts the team now.
            let flags = find(instrument)
                .map(|inst| ketcare_measures::safety_flags(inst, answers))
                .unwrap_or_default();
            if flags.is_empty() {
                return Err(e.into());
            }
            store
                .raise_incomplete_alerts(actor, patient, instrument, &alerts_of(&flags))
                .await?;
            return Err(Error::invalid(
                e.field(),
                format!(
                    "{e} — the form is not stored, but a positive suicide-risk answer has raised an urgent safety alert"
                ),
            ));
        }
    };
    let row = new_response(&score, taken_on, submission_key)?;
    let (stored, new) = store.record_response(actor, patient, &row).await?;
    Ok((stored, score, new))
}

/// A new link: the token is returned once (only its hash is stored).
pub async fn create_link(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    instruments: &[String],
    hours: Option<i64>,
    guardian: Option<GuardianId>,
    now: i64,
) -> Result<(MeasureLink, String), Error> {
    let expires = link_expiry(instruments, hours, now)?;
    let token = crate::password::random_token();
    let link = store
        .create_link(
            actor,
            patient,
            &crate::password::token_hash(&token),
            instruments,
            expires,
            guardian,
        )
        .await?;
    Ok((link, token))
}

/// When a new link for `instruments` expires (epoch seconds), after checking that each is a
/// self-report questionnaire and that `hours` (default [`DEFAULT_LINK_HOURS`]) is 1 to 720.
pub fn link_expiry(instruments: &[String], hours: Option<i64>, now: i64) -> Result<i64, Error> {
    for id in instruments {
        let inst = find(id)
            .map_err(|_| Error::invalid("instruments", format!("unknown instrument {id:?}")))?;
        if !inst.rater.is_self_report() {
            return Err(Error::invalid(
                "instruments",
                format!("{} is not a self-report questionnaire", inst.name),
            ));
        }
    }
    let hours = hours.unwrap_or(DEFAULT_LINK_HOURS);
    if !(1..=24 * 30).contains(&hours) {
        return Err(Error::invalid(
            "expires_in_hours",
            "expected 1 to 720 hours",
        ));
    }
    Ok(now + hours * 3600)
}

/// The clinic's current licensed item wording (newest version per instrument).
pub async fn clinic_texts(store: &dyn Store) -> Result<Vec<TextVersion>, Error> {
    Ok(store.current_item_texts().await?)
}

/// Validates a clinic text file (`instrument,item,text` per line) and stores one new version
/// per instrument it names. A wrong line refuses the whole file with its line and field, and
/// nothing is stored.
pub async fn upload_texts(
    store: &dyn Store,
    actor: &Actor,
    file: &str,
) -> Result<Vec<TextVersion>, Error> {
    let cat = catalogue().ok_or(Error::Internal)?;
    let rows = ketcare_measures::clinic_text::parse(cat, "file", file).map_err(|e| match &e {
        ketcare_measures::DataError::Invalid {
            line,
            field,
            message,
            ..
        } => Error::invalid(field, format!("line {line}: {message}")),
        other => Error::invalid("file", other.to_string()),
    })?;
    let mut by_instrument: Vec<(String, Vec<ItemText>)> = Vec::new();
    for r in rows {
        let item = ItemText {
            item: i64::from(r.item),
            text: r.text,
        };
        match by_instrument.iter_mut().find(|(id, _)| *id == r.instrument) {
            Some((_, v)) => v.push(item),
            None => by_instrument.push((r.instrument, vec![item])),
        }
    }
    let mut out = Vec::new();
    for (id, items) in by_instrument {
        out.push(store.upload_item_texts(actor, &id, &items).await?);
    }
    Ok(out)
}

/// The patient-facing path of a link.
pub fn link_path(token: &str) -> String {
    format!("/q/{token}")
}

/// Submission key of a link's answers to one instrument: a reload or a double submit maps to
/// the same key, so nothing is stored twice.
pub fn link_key(link: &MeasureLink, instrument: &str) -> String {
    format!("link:{}:{instrument}", link.id)
}

/// A scored response as shown in lists.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResponseView {
    pub id: ResponseId,
    pub instrument: String,
    pub name: String,
    pub taken_on: String,
    pub total: Option<i64>,
    /// The total, "positive"/"negative" for screens, or "recorded".
    pub display: String,
    pub band: Option<String>,
    pub safety_items: Vec<u8>,
    pub via_link: bool,
    pub recorded_by: String,
}

pub fn response_view(r: &StoredResponse) -> ResponseView {
    let score: Option<Score> = serde_json::from_str(&r.result).ok();
    ResponseView {
        id: r.id,
        instrument: r.instrument.clone(),
        name: instrument_name(&r.instrument),
        taken_on: r.taken_on.clone(),
        total: r.total,
        display: score
            .as_ref()
            .map(Score::display)
            .unwrap_or_else(|| "—".into()),
        band: score
            .as_ref()
            .and_then(|s| s.band.as_ref().map(|b| b.label.clone())),
        safety_items: score
            .map(|s| s.safety.iter().map(|f| f.item).collect())
            .unwrap_or_default(),
        via_link: r.link_id.is_some(),
        recorded_by: r.recorded_by.clone(),
    }
}

/// One opioid entry with its MME per day (or why there is none).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpioidView {
    #[serde(flatten)]
    pub entry: OpioidRow,
    #[schema(value_type = Object)]
    pub mme: Option<MmeLine>,
    pub error: Option<String>,
}

/// A session that gave a dose (or a dose order no session has given yet) drawn on the chart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Marker {
    #[schema(value_type = String)]
    pub date: Date,
    pub label: String,
    /// The session (absent for a dose order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// "ketamine" or "esketamine" (sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drug: Option<String>,
    /// The route given (sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// mg given, from the session's administrations (sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dose_mg: Option<f64>,
}

/// A course with its outcome and booster flag.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CourseView {
    pub course: MeasureCourse,
    #[schema(value_type = Object)]
    pub outcome: CourseOutcome,
    #[schema(value_type = Object)]
    pub booster: BoosterDue,
    /// The next scheduled questionnaire set (site setting `measures.assessment_every_days`):
    /// `None` when the site has set no schedule.
    pub assessment: Option<AssessmentDue>,
}

/// Whether the course's scheduled questionnaire set is due, and from when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssessmentDue {
    pub due: bool,
    #[schema(value_type = String)]
    pub from: Date,
    pub every_days: f64,
}

/// Everything the patient's measures page and the API show.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Overview {
    pub responses: Vec<ResponseView>,
    pub courses: Vec<CourseView>,
    pub alerts: Vec<SafetyAlert>,
    pub links: Vec<MeasureLink>,
    pub opioids: Vec<OpioidView>,
    /// Current total MME per day of active entries (flagged entries add nothing).
    pub mme_total_now: f64,
    /// Total MME per day at each date it changes.
    #[schema(value_type = Vec<Object>)]
    pub mme_timeline: Vec<(Date, f64)>,
    /// Change of the total since the first entry (now minus first).
    pub mme_change: Option<f64>,
    pub markers: Vec<Marker>,
    /// Unscored notes (e.g. markers are dose orders until sessions exist).
    pub notes: Vec<String>,
}

/// Score series per instrument (dates and totals), in date order.
pub fn series(responses: &[ResponseView]) -> Vec<(String, Vec<Point>)> {
    let mut out: Vec<(String, Vec<Point>)> = Vec::new();
    for r in responses {
        let (Some(t), Ok(d)) = (r.total, r.taken_on.parse::<Date>()) else {
            continue;
        };
        let p = Point {
            date: d,
            score: t as i32,
        };
        match out.iter_mut().find(|(id, _)| *id == r.instrument) {
            Some((_, v)) => v.push(p),
            None => out.push((r.instrument.clone(), vec![p])),
        }
    }
    for (_, v) in &mut out {
        v.sort_by_key(|p| p.date);
    }
    out
}

/// Computes an opioid entry's MME.
pub fn opioid_mme(e: &OpioidRow) -> Result<MmeLine, Error> {
    entry_mme(&e.drug, e.dose, &e.unit, e.per_day, e.route.clone())
}

/// Computes the MME of an opioid given by its fields (the chart's entry, the registry's).
pub fn entry_mme(
    drug: &str,
    dose: f64,
    unit: &str,
    per_day: Option<f64>,
    route: Option<String>,
) -> Result<MmeLine, Error> {
    let table = &catalogue().ok_or(Error::Internal)?.opioids;
    let unit = DoseUnit::parse(unit)
        .ok_or_else(|| Error::invalid("unit", format!("expected mg or mcg/h, got {unit:?}")))?;
    ketcare_measures::mme::mme(
        table,
        &OpioidEntry {
            drug: drug.to_owned(),
            dose,
            unit,
            per_day,
            route,
        },
    )
    .map_err(|err| Error::invalid(err.field(), err.to_string()))
}

/// Sessions that gave a dose as chart markers, then the dose orders no session belongs to.
async fn markers(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
) -> Vec<Marker> {
    let (sessions, given) = crate::given::patient_markers(store, library, actor, patient)
        .await
        .unwrap_or_default();
    let mut out: Vec<Marker> = sessions
        .into_iter()
        .map(|m| Marker {
            date: m.date,
            label: format!(
                "session {}: {} {} {} mg",
                m.session_id,
                m.drug,
                m.route,
                ketcare_core::units::trim_float(m.dose_mg)
            ),
            session_id: Some(m.session_id),
            drug: Some(m.drug),
            route: Some(m.route),
            dose_mg: Some(m.dose_mg),
        })
        .collect();
    out.extend(
        order_markers(store, actor, patient)
            .await
            .into_iter()
            .filter(|(id, _)| !given.contains(id))
            .map(|(_, m)| m),
    );
    out.sort_by_key(|m| m.date);
    out
}

/// Dose orders as chart markers, with their ids.
async fn order_markers(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
) -> Vec<(RecordId, Marker)> {
    let Ok(records) = store
        .patient_records(actor, patient, RecordKind::DoseOrder)
        .await
    else {
        return Vec::new();
    };
    records
        .iter()
        .filter_map(|r| {
            let o = crate::clinical::order_of(r).ok()?;
            let date = r.created_at.get(..10)?.parse::<Date>().ok()?;
            Some((
                o.id,
                Marker {
                    date,
                    session_id: None,
                    drug: None,
                    route: None,
                    dose_mg: None,
                    label: format!(
                        "order {} ({:?}): {} — {} {}",
                        o.id,
                        o.order.state,
                        o.order.calculation.protocol_title,
                        ketcare_core::units::trim_float(o.order.calculation.session_total_mg.value),
                        o.order.calculation.session_total_mg.unit
                    ),
                },
            ))
        })
        .collect()
}

/// Builds the overview of a patient's measures (all reads audited by the store).
pub async fn overview(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    patient: PatientId,
    today: Date,
) -> Result<Overview, Error> {
    let (settings, _) = crate::clinical::settings(store).await?;
    let responses: Vec<ResponseView> = store
        .patient_responses(actor, patient)
        .await?
        .iter()
        .map(response_view)
        .collect();
    let markers = if actor.may(Permission::ClinicalRead) {
        markers(store, library, actor, patient).await
    } else {
        Vec::new()
    };
    let all_series = series(&responses);
    let last_session = markers
        .iter()
        .filter(|m| m.session_id.is_some())
        .map(|m| m.date)
        .filter(|d| *d <= today)
        .max()
        .or_else(|| markers.iter().map(|m| m.date).filter(|d| *d <= today).max());
    let mut courses = Vec::new();
    for c in store.patient_courses(actor, patient).await? {
        let Ok(inst) = find(&c.instrument) else {
            continue;
        };
        let start = c.started_on.parse::<Date>().ok();
        let end = c.ended_on.as_deref().and_then(|d| d.parse::<Date>().ok());
        let pts: Vec<Point> = all_series
            .iter()
            .filter(|(id, _)| *id == c.instrument)
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|pt| start.is_none_or(|s| pt.date >= s) && end.is_none_or(|e| pt.date <= e))
            .collect();
        let outcome = ketcare_measures::course_outcome(inst, &pts, &settings);
        let rule = BoosterRule {
            score_at_least: c.booster_score_at_least.map(|v| v as i32),
            days_since_last_session: c.booster_days,
        };
        let booster = ketcare_measures::booster_due(&rule, outcome.latest, last_session, today);
        let every = settings.value(ketcare_measures::outcome::ASSESSMENT_EVERY_DAYS);
        let assessment = start
            .and_then(|st| {
                ketcare_measures::outcome::assessment_due(
                    every,
                    st,
                    outcome.latest.map(|p| p.date),
                    today,
                )
            })
            .and_then(|(due, from)| {
                Some(AssessmentDue {
                    due,
                    from,
                    every_days: every?,
                })
            });
        courses.push(CourseView {
            course: c,
            outcome,
            booster,
            assessment,
        });
    }
    let alerts = store.patient_alerts(actor, patient).await?;
    let links = store.patient_links(actor, patient).await?;
    let mut opioids = Vec::new();
    let mut dated = Vec::new();
    for e in store.patient_opioids(actor, patient).await? {
        let (mme, error) = match opioid_mme(&e) {
            Ok(m) => (Some(m), None),
            Err(err) => (
                None,
                Some(match &err {
                    Error::Invalid(f) => {
                        f.0.first()
                            .map(|f| format!("{}: {}", f.field, f.message))
                            .unwrap_or_default()
                    }
                    _ => String::new(),
                }),
            ),
        };
        if let (Some(m), Ok(start)) = (
            mme.as_ref().and_then(|m| m.mme_per_day),
            e.started_on.parse::<Date>(),
        ) {
            dated.push(DatedMme {
                start,
                stop: e.stopped_on.as_deref().and_then(|d| d.parse().ok()),
                mme_per_day: m,
            });
        }
        opioids.push(OpioidView {
            entry: e,
            mme,
            error,
        });
    }
    let mme_timeline = ketcare_measures::mme::timeline(&dated);
    let mme_total_now = mme_timeline
        .iter()
        .rfind(|(d, _)| *d <= today)
        .map(|(_, v)| *v)
        .unwrap_or(0.0);
    let mme_change = mme_timeline
        .first()
        .map(|(_, first)| ((mme_total_now - first) * 1000.0).round() / 1000.0);
    let mut notes = Vec::new();
    if markers.iter().any(|m| m.session_id.is_none()) {
        notes.push(
            "Markers without a session are dose orders no session has given yet (date the order was written)."
                .into(),
        );
    }
    Ok(Overview {
        responses,
        courses,
        alerts,
        links,
        opioids,
        mme_total_now,
        mme_timeline,
        mme_change,
        markers,
        notes,
    })
}

/// Total MME per day over one course's dates, and its change over the course.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MmeOverCourse {
    pub course_id: i64,
    pub label: String,
    #[schema(value_type = String)]
    pub from: Date,
    /// The course's end, or today while it runs.
    #[schema(value_type = String)]
    pub to: Date,
    /// The total in force on the first day, every change within, and the total on the last day.
    #[schema(value_type = Vec<Object>)]
    pub timeline: Vec<(Date, f64)>,
    /// Last day minus first day.
    pub change: Option<f64>,
}

/// Limits the overview's MME timeline to one of the patient's courses.
pub fn mme_over_course(o: &Overview, course: i64, today: Date) -> Result<MmeOverCourse, Error> {
    let c = o
        .courses
        .iter()
        .find(|c| c.course.id == course)
        .ok_or_else(|| Error::invalid("course", format!("no course {course} for this patient")))?;
    let from = date_field("course", &c.course.started_on)?;
    let to = match c.course.ended_on.as_deref() {
        Some(e) => date_field("course", e)?,
        None => today.max(from),
    };
    let timeline = ketcare_measures::mme::window(&o.mme_timeline, from, to);
    Ok(MmeOverCourse {
        course_id: course,
        label: c.course.label.clone(),
        from,
        to,
        change: ketcare_measures::mme::change(&timeline),
        timeline,
    })
}

/// `?course=ID`: limit the opioid chart and change to a course's dates.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CourseQuery {
    #[serde(default)]
    pub course: Option<i64>,
}

/// Validates and stores an opioid entry (an entry whose MME cannot be computed is refused,
/// except buprenorphine, which is stored and flagged).
pub async fn save_opioid(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    req: &OpioidRequest,
) -> Result<OpioidView, Error> {
    let started = date_field("started_on", &req.started_on)?;
    let unit = DoseUnit::parse(&req.unit).ok_or_else(|| {
        Error::invalid("unit", format!("expected mg or mcg/h, got {:?}", req.unit))
    })?;
    let entry = ketcare_store::measures::NewOpioid {
        drug: req.drug.trim().to_string(),
        dose: req.dose,
        unit: unit.as_str().to_string(),
        per_day: req.per_day,
        route: req.route.clone().filter(|r| !r.trim().is_empty()),
        started_on: started.to_string(),
    };
    let probe = OpioidRow {
        id: 0,
        patient_id: patient,
        drug: entry.drug.clone(),
        dose: entry.dose,
        unit: entry.unit.clone(),
        per_day: entry.per_day,
        route: entry.route.clone(),
        started_on: entry.started_on.clone(),
        stopped_on: None,
        recorded_by: String::new(),
    };
    opioid_mme(&probe)?;
    let row = store.add_opioid(actor, patient, &entry).await?;
    let mme = opioid_mme(&row).ok();
    Ok(OpioidView {
        entry: row,
        mme,
        error: None,
    })
}

/// Validates and stores a course with its booster rule.
pub async fn save_course(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    req: &CourseRequest,
) -> Result<MeasureCourse, Error> {
    find(&req.instrument).map_err(|e| Error::invalid("instrument", e.to_string()))?;
    let start = date_field("started_on", &req.started_on)?;
    let end = match req.ended_on.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(v) => {
            let d = date_field("ended_on", v)?;
            if d < start {
                return Err(Error::invalid(
                    "ended_on",
                    "must be on or after the start date",
                ));
            }
            Some(d.to_string())
        }
    };
    if req.booster_score_at_least.is_some_and(|v| v < 0) {
        return Err(Error::invalid(
            "booster_score_at_least",
            "expected a score ≥ 0",
        ));
    }
    if req.booster_days.is_some_and(|v| !(1..=3650).contains(&v)) {
        return Err(Error::invalid("booster_days", "expected 1 to 3650 days"));
    }
    let label = if req.label.trim().is_empty() {
        "Course".to_string()
    } else {
        req.label.trim().to_string()
    };
    Ok(store
        .save_course(
            actor,
            patient,
            &ketcare_store::measures::NewCourse {
                label,
                instrument: req.instrument.clone(),
                started_on: start.to_string(),
                ended_on: end,
                booster_score_at_least: req.booster_score_at_least,
                booster_days: req.booster_days,
            },
        )
        .await?)
}

/// Open alerts for the dashboard (empty for roles that may not read the clinical record).
pub async fn open_alerts(store: &dyn Store, actor: &Actor) -> Vec<SafetyAlert> {
    if !actor.may(Permission::ClinicalRead) {
        return Vec::new();
    }
    store.open_alerts(actor).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "reading open safety alerts");
        Vec::new()
    })
}

/// A patient's open alerts for the patient page.
pub async fn patient_open_alerts(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
) -> Vec<SafetyAlert> {
    if !actor.may(Permission::ClinicalRead) {
        return Vec::new();
    }
    match store.patient_alerts(actor, patient).await {
        Ok(v) => v
            .into_iter()
            .filter(|a| a.status == AlertStatus::Open)
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "reading a patient's safety alerts");
            Vec::new()
        }
    }
}

/// An opioid entry as the API and the pages send it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpioidRequest {
    pub drug: String,
    pub dose: f64,
    /// `mg` or `mcg/h`.
    pub unit: String,
    #[serde(default)]
    pub per_day: Option<f64>,
    #[serde(default)]
    pub route: Option<String>,
    /// YYYY-MM-DD.
    pub started_on: String,
}

/// A measurement course as the API and the pages send it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseRequest {
    #[serde(default)]
    pub label: String,
    /// Instrument the course is followed with (baseline = its first score in the course).
    pub instrument: String,
    pub started_on: String,
    #[serde(default)]
    pub ended_on: Option<String>,
    /// Booster due when the latest score is at least this (site rule per course).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub booster_score_at_least: Option<i64>,
    /// Booster due when this many days have passed since the last session (1–3650).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub booster_days: Option<i64>,
}
