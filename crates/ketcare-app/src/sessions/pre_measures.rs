//! Questionnaires before a session: for each of the patient's open measurement courses, the
//! latest score and whether the course's set is due (site setting
//! `measures.assessment_every_days`), the questionnaire links still open, and — when the site
//! asks for a set before every session (`measures.link_before_session` = 1) — whether a link for
//! the courses' self-report set is still to be sent. Shown on the session page and through
//! `GET /api/v1/sessions/{sid}/measures`; [`check_score`] checks a session score.

use crate::error::{Error, Result};
use ketcare_clinical::Library;
use ketcare_core::Actor;
use ketcare_session::Command;
use ketcare_session::session::ScoreKind;
use ketcare_store::{LinkStatus, SessionRecord, Store};
use serde::Serialize;

/// Site setting: 1 asks for the courses' questionnaire set before every session.
pub const LINK_BEFORE_SESSION: &str = "measures.link_before_session";

/// One open course as seen before a session.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreCourse {
    pub course_id: i64,
    pub label: String,
    pub instrument: String,
    pub instrument_name: String,
    pub latest_score: Option<i32>,
    pub latest_on: Option<String>,
    /// `None` when the site has set no schedule.
    pub due: Option<bool>,
    pub due_from: Option<String>,
}

/// What the session page shows about questionnaires.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreSession {
    pub courses: Vec<PreCourse>,
    /// Open links: (instruments, status, sent at).
    pub open_links: Vec<(Vec<String>, LinkStatus, String)>,
    /// The self-report instruments of the open courses (the set a link would carry).
    pub link_set: Vec<String>,
    /// Whether the site asks for a set before every session.
    pub asked_by_site: bool,
    /// Asked by the site, the set is not empty, and no open or completed link since the
    /// session was scheduled covers it.
    pub link_due: bool,
}

/// Builds the panel for a session (reads are audited by the store).
pub async fn panel(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    r: &SessionRecord,
    now: i64,
) -> Result<PreSession> {
    let o =
        crate::measures::overview(store, library, actor, r.patient_id, crate::today(now)).await?;
    let (settings, _) = crate::clinical::settings(store).await?;
    let asked_by_site = settings
        .value(LINK_BEFORE_SESSION)
        .is_some_and(|v| v >= 1.0);
    let mut courses = Vec::new();
    let mut link_set: Vec<String> = Vec::new();
    for c in o.courses.iter().filter(|c| c.course.ended_on.is_none()) {
        let id = c.course.instrument.clone();
        if crate::measures::find(&id).is_ok_and(|i| i.rater.is_self_report())
            && !link_set.contains(&id)
        {
            link_set.push(id.clone());
        }
        courses.push(PreCourse {
            course_id: c.course.id,
            label: c.course.label.clone(),
            instrument_name: crate::measures::instrument_name(&id),
            instrument: id,
            latest_score: c.outcome.latest.map(|p| p.score),
            latest_on: c.outcome.latest.map(|p| p.date.to_string()),
            due: c.assessment.as_ref().map(|a| a.due),
            due_from: c.assessment.as_ref().map(|a| a.from.to_string()),
        });
    }
    let open: Vec<_> = o
        .links
        .iter()
        .filter(|l| l.status != LinkStatus::Completed && l.expires_at > now)
        .collect();
    let since = r.created_at.as_str();
    let covered = o.links.iter().any(|l| {
        (l.status == LinkStatus::Completed || l.expires_at > now)
            && l.created_at.as_str() >= since
            && link_set.iter().all(|i| l.instruments.contains(i))
    });
    Ok(PreSession {
        courses,
        open_links: open
            .iter()
            .map(|l| (l.instruments.clone(), l.status, l.created_at.clone()))
            .collect(),
        link_due: asked_by_site && !link_set.is_empty() && !covered,
        link_set,
        asked_by_site,
    })
}

/// The measures instrument a session score is recorded with.
fn instrument_of(kind: ScoreKind) -> &'static str {
    match kind {
        ScoreKind::Moaas => "moaas",
        ScoreKind::Cadss => "cadss",
    }
}

/// Checks a session's MOAA/S or CADSS score against the measures catalogue's scoring (the
/// instrument's total range; CADSS's highest item score is the site setting
/// `measures.cadss.item_max`, so without it only a non-negative total is checked).
pub async fn check_score(store: &dyn Store, cmd: &Command) -> Result<()> {
    let Command::Score { kind, value } = cmd else {
        return Ok(());
    };
    let inst = crate::measures::find(instrument_of(*kind))?;
    let (settings, _) = crate::clinical::settings(store).await?;
    let (min, max) = (inst.total_min(), inst.total_max(&settings));
    let v = i64::from(*value);
    if v < i64::from(min) || max.is_some_and(|m| v > i64::from(m)) {
        return Err(Error::invalid(
            "value",
            format!(
                "{}: a total from {min} to {}",
                inst.name,
                max.map_or("—".into(), |m| m.to_string())
            ),
        ));
    }
    Ok(())
}
