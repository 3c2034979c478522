//! The care plan of a treatment course (goals, agreed adjuncts, progress) and the patient's
//! (or guardian's) own view through their link: upcoming appointments, questionnaires due,
//! their score chart with the sessions marked, their plan and homework, the crisis line.
//!
//! A symptom goal's state is read from the patient's stored scores, never typed; the patient's
//! view is built only from what the store lets the link see.

use crate::Result;
use crate::measures::{Marker, ResponseView, find, instrument_name, response_view, series};
use jiff::civil::{Date, DateTime};
use ketcare_clinical::Library;
use ketcare_core::{Actor, PatientId, PlanItemId};
use ketcare_measures::Point;
use ketcare_measures::care_plan::{
    NewPlanItem, NewProgress, PlanItemInput, ProgressInput, TargetState, review_due, target_state,
};
use ketcare_store::Store;
use ketcare_store::care_plan::{PlanItem, ViewSharing};
use serde::Serialize;

/// A plan item as a page shows it: where a symptom target stands, whether review is due.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    #[serde(flatten)]
    pub item: PlanItem,
    /// The instrument's name (symptom goals).
    pub instrument_name: Option<String>,
    /// A symptom goal: the newest score against the target.
    pub target: Option<TargetState>,
    /// The review date has come and the item is still active.
    pub review_due: bool,
}

/// A patient's care plan, per course.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub items: Vec<ItemView>,
    /// The patient's choice about their guardians' view (none: not asked, not shown).
    pub sharing: Option<ViewSharing>,
}

fn scores_of(responses: &[ResponseView], instrument: &str) -> Vec<(Date, i64)> {
    responses
        .iter()
        .filter(|r| r.instrument == instrument)
        .filter_map(|r| Some((r.taken_on.parse::<Date>().ok()?, r.total?)))
        .collect()
}

fn item_view(item: PlanItem, responses: &[ResponseView], today: Date) -> ItemView {
    let target = match (&item.instrument, item.target_at_most) {
        (Some(i), Some(t)) => Some(target_state(t, &scores_of(responses, i))),
        _ => None,
    };
    let review = item
        .review_on
        .as_deref()
        .and_then(|d| d.parse::<Date>().ok());
    ItemView {
        instrument_name: item.instrument.as_deref().map(instrument_name),
        review_due: review_due(item.status, review, today),
        target,
        item,
    }
}

/// Adds a goal or adjunct, checked against the instrument catalogue and the site's settings.
pub async fn add_item(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    input: &PlanItemInput,
) -> Result<PlanItem> {
    let catalogue = crate::measures::catalogue()
        .ok_or_else(|| crate::Error::Conflict("the instrument catalogue is unavailable".into()))?;
    let (settings, _) = crate::clinical::settings(store).await?;
    let item = NewPlanItem::parse(input, catalogue, &settings).map_err(crate::Error::Invalid)?;
    Ok(store.add_plan_item(actor, patient, &item).await?)
}

/// Staff progress on a plan item (may change its status or review date).
pub async fn add_progress(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    item: PlanItemId,
    input: &ProgressInput,
) -> Result<PlanItem> {
    let p = NewProgress::parse(input, false).map_err(crate::Error::Invalid)?;
    Ok(store.add_plan_progress(actor, patient, item, &p).await?)
}

/// Records the patient's choice about their guardians' view (asked of the patient by staff).
pub async fn set_sharing(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    shares_scores_with_guardians: bool,
) -> Result<ViewSharing> {
    Ok(store
        .set_view_sharing(actor, patient, shares_scores_with_guardians)
        .await?)
}

/// The patient's plan with each symptom target's state from their stored scores.
pub async fn plan(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    today: Date,
) -> Result<PlanView> {
    let plan = store.care_plan(actor, patient).await?;
    let responses: Vec<ResponseView> = if plan.items.iter().any(|i| i.instrument.is_some()) {
        store
            .patient_responses(actor, patient)
            .await?
            .iter()
            .map(response_view)
            .collect()
    } else {
        Vec::new()
    };
    Ok(PlanView {
        items: plan
            .items
            .into_iter()
            .map(|i| item_view(i, &responses, today))
            .collect(),
        sharing: plan.sharing,
    })
}

/// A booked appointment as the patient sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Appointment {
    pub start: DateTime,
    pub end: DateTime,
}

/// A questionnaire the patient still has to answer.
#[derive(Debug, Clone, Serialize)]
pub struct Due {
    pub name: String,
    /// On this link (answerable here) or on another message the clinic sent.
    pub on_this_link: bool,
}

/// The patient's (or guardian's) own view.
#[derive(Debug, Clone, Serialize)]
pub struct OwnView {
    pub given_name: String,
    pub by_guardian: bool,
    pub shows_patient_answers: bool,
    pub appointments: Vec<Appointment>,
    pub due: Vec<Due>,
    /// The newest score per instrument, with its plain-language band.
    pub latest: Vec<ResponseView>,
    /// For the chart.
    pub series: Vec<(String, Vec<Point>)>,
    pub markers: Vec<Marker>,
    pub goals: Vec<ItemView>,
    pub adjuncts: Vec<ItemView>,
    pub homework: Vec<(String, String)>,
}

/// Builds the patient's own view from their link (refused when the link is unknown or has
/// expired). `now_local` is the clinic's wall-clock time, for "upcoming".
pub async fn own_view(
    store: &dyn Store,
    library: &Library,
    token_hash: &str,
    now: i64,
    now_local: DateTime,
    address: &str,
) -> Result<OwnView> {
    let v = store.link_view(token_hash, now, address).await?;
    let responses: Vec<ResponseView> = v.responses.iter().map(response_view).collect();
    let mut latest: Vec<ResponseView> = Vec::new();
    for r in responses.iter().rev() {
        if r.total.is_some() && !latest.iter().any(|l| l.instrument == r.instrument) {
            latest.push(r.clone());
        }
    }
    let mut markers = Vec::new();
    let zones = crate::zones::Zones::load(store).await?;
    for r in &v.sessions {
        if let Ok(Some(h)) = crate::given::of_record(library, r) {
            markers.push(Marker {
                date: h.started_at.to_zoned(zones.of(r.site_id)).date(),
                label: "treatment".into(),
                session_id: None,
                drug: None,
                route: None,
                dose_mg: None,
            });
        }
    }
    let appointments = v
        .bookings
        .iter()
        .filter_map(|(s, e)| Some((s.parse::<DateTime>().ok()?, e.parse::<DateTime>().ok()?)))
        .filter(|(_, end)| *end >= now_local)
        .map(|(start, end)| Appointment { start, end })
        .collect();
    let mut due: Vec<Due> = Vec::new();
    if v.link.status != ketcare_store::LinkStatus::Completed {
        due.extend(v.link.instruments.iter().map(|i| Due {
            name: instrument_name(i),
            on_this_link: true,
        }));
    }
    for (set, _) in &v.other_open_links {
        due.extend(set.iter().filter(|i| find(i).is_ok()).map(|i| Due {
            name: instrument_name(i),
            on_this_link: false,
        }));
    }
    let today = now_local.date();
    let (goals, adjuncts): (Vec<ItemView>, Vec<ItemView>) = v
        .items
        .into_iter()
        .map(|i| {
            let mut view = item_view(i, &responses, today);
            if !v.shows_patient_answers {
                // A symptom target's state would tell the guardian the patient's score.
                view.target = None;
            }
            view
        })
        .partition(|i| i.item.item == ketcare_measures::care_plan::ItemKind::Goal);
    Ok(OwnView {
        given_name: v.given_name,
        by_guardian: v.by_guardian,
        shows_patient_answers: v.shows_patient_answers,
        appointments,
        due,
        series: series(&responses),
        latest,
        markers,
        goals,
        adjuncts,
        homework: v.homework,
    })
}

/// Progress recorded through the patient's link: a note and how far they got.
pub async fn link_progress(
    store: &dyn Store,
    token_hash: &str,
    now: i64,
    address: &str,
    item: PlanItemId,
    input: &ProgressInput,
) -> Result<PlanItem> {
    let p = NewProgress::parse(input, true).map_err(crate::Error::Invalid)?;
    Ok(store
        .link_progress(token_hash, now, address, item, &p)
        .await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn resp(instrument: &str, on: &str, total: i64) -> ResponseView {
        ResponseView {
            id: ketcare_core::ResponseId::new(1),
            instrument: instrument.into(),
            name: instrument.into(),
            taken_on: on.into(),
            total: Some(total),
            display: total.to_string(),
            band: None,
            safety_items: vec![],
            via_link: false,
            recorded_by: "n".into(),
        }
    }

    #[test]
    fn scores_are_those_of_the_goals_instrument() {
        let r = [
            resp("phq9", "2027-01-01", 12),
            resp("gad7", "2027-01-05", 2),
            resp("phq9", "2027-01-03", 4),
        ];
        let s = scores_of(&r, "phq9");
        assert_eq!(s, vec![(date(2027, 1, 1), 12), (date(2027, 1, 3), 4)]);
        assert_eq!(
            target_state(4, &s),
            TargetState::Met {
                score: 4,
                on: date(2027, 1, 3)
            }
        );
    }
}
