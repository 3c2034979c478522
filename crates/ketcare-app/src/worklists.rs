//! The work waiting for the signed-in user, by what their role may do: orders to verify or to
//! pass with a reason, the sessions in the chairs with their open alarms, the ledger's open
//! discrepancies, the bookings of the coming days that are not ready (no verified dose order
//! waiting, or no consent in force at the booking's start) and the site settings that still
//! block something. Each item links to the page
//! where the work is done. Every patient shown is an audited access.

use crate::clinical;
use crate::error::Result;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ketcare_clinical::Library;
use ketcare_clinical::dose::OrderState;
use ketcare_core::patient::PatientSummary;
use ketcare_core::{Actor, PatientId, Permission};
use ketcare_ops::consent::ConsentStatus;
use ketcare_ops::schedule::BookingStatus;
use ketcare_store::{RecordKind, Store};
use serde::Serialize;
use std::collections::BTreeMap;

/// One piece of work.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkItem {
    /// Who or what it is about, e.g. "Alvarez, Maria (KC-1001)".
    pub label: String,
    /// What is waiting, in words.
    pub detail: String,
    /// Where the work is done.
    pub href: String,
    /// Needs attention now (an open alarm, a crossed limit).
    pub urgent: bool,
}

/// One queue of the home page.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Queue {
    /// Stable id for pages and tests, e.g. "orders-to-verify".
    pub id: &'static str,
    pub title: &'static str,
    /// What the empty queue says.
    pub empty: &'static str,
    pub items: Vec<WorkItem>,
}

fn name(p: Option<&PatientSummary>) -> String {
    p.map(|p| format!("{}, {} ({})", p.family_name, p.given_name, p.mrn))
        .unwrap_or_else(|| "a patient".into())
}

/// How far ahead the bookings queue looks: today and the next two days. This is how much of
/// the schedule a working list shows, not a clinical limit.
pub const BOOKINGS_AHEAD_DAYS: i64 = 2;

/// The queues the actor's role works on, in the order of a clinic's day. `now` is the instant
/// the page is built; bookings are in the site's local time (`tz`).
pub async fn home(
    store: &dyn Store,
    library: &Library,
    actor: &Actor,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<Vec<Queue>> {
    let mut queues = Vec::new();
    let may = |p: Permission| actor.may(p);

    // Dose orders: verification by a second clinician, and soft limits awaiting a reason.
    let mut orders = Vec::new();
    if may(Permission::VerifyDose) || may(Permission::OverrideClinical) {
        let states = ["pending_verification", "needs_override"];
        for r in store
            .records_in_states(actor, RecordKind::DoseOrder, &states)
            .await?
        {
            orders.push(clinical::order_of(&r)?);
        }
    }
    let mut sessions = Vec::new();
    if may(Permission::RunSession) {
        sessions = store.active_sessions(actor).await?;
    }
    let mut ids: Vec<PatientId> = orders
        .iter()
        .map(|o| o.patient_id)
        .chain(sessions.iter().map(|s| s.patient_id))
        .collect();
    ids.sort();
    ids.dedup();
    let people: BTreeMap<PatientId, PatientSummary> = if ids.is_empty() {
        BTreeMap::new()
    } else {
        store
            .patient_summaries(actor, &ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect()
    };
    let order_item = |o: &crate::clinical::StoredOrder, detail: String| WorkItem {
        label: name(people.get(&o.patient_id)),
        detail,
        href: format!("/orders/{}", o.id),
        urgent: false,
    };
    if may(Permission::VerifyDose) {
        queues.push(Queue {
            id: "orders-to-verify",
            title: "Dose orders to verify",
            empty: "No order waits for a second clinician.",
            items: orders
                .iter()
                .filter(|o| {
                    o.order.state == OrderState::PendingVerification
                        && o.order.author.as_str() != actor.username
                })
                .map(|o| {
                    order_item(
                        o,
                        format!(
                            "{} — signed by {}",
                            o.order.calculation.protocol_title,
                            o.order.author.as_str()
                        ),
                    )
                })
                .collect(),
        });
    }
    if may(Permission::OverrideClinical) {
        queues.push(Queue {
            id: "orders-to-override",
            title: "Orders past a soft limit",
            empty: "No order waits for a reason to pass a soft limit.",
            items: orders
                .iter()
                .filter(|o| o.order.state == OrderState::NeedsOverride)
                .map(|o| WorkItem {
                    urgent: true,
                    ..order_item(
                        o,
                        format!(
                            "{} — soft limit crossed: {}",
                            o.order.calculation.protocol_title,
                            o.order
                                .calculation
                                .soft_limits_crossed
                                .iter()
                                .map(|l| l.label.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    )
                })
                .collect(),
        });
    }
    if may(Permission::RunSession) {
        queues.push(Queue {
            id: "sessions-now",
            title: "Patients in the chairs",
            empty: "No patient is checked in.",
            items: sessions
                .iter()
                .map(|s| {
                    let open = s.session.alarms.iter().filter(|a| a.is_open()).count();
                    let mut detail = format!("{} — {}", s.session.chair, s.session.phase.label());
                    if open > 0 {
                        detail.push_str(&format!(
                            " — {open} open alarm{}",
                            if open == 1 { "" } else { "s" }
                        ));
                    }
                    WorkItem {
                        label: name(people.get(&s.patient_id)),
                        detail,
                        href: format!("/sessions/{}", s.id),
                        urgent: open > 0,
                    }
                })
                .collect(),
        });
    }
    if may(Permission::RecordMeasures) {
        queues.push(questionnaires_due(store, actor, now, tz).await?);
        queues.push(crate::outreach::unanswered_queue(store, actor, now).await?);
    }
    if may(Permission::PsychotherapyNotes) {
        queues.push(crate::therapy::integration_queue(store, actor, now, tz).await?);
    }
    // Readiness rests on the clinical record (the verified order, the consent in force), so it
    // is shown to those who book and may read that record: nurses and prescribers.
    if may(Permission::Schedule) && may(Permission::ClinicalRead) {
        queues.push(bookings_not_ready(store, actor, now, tz).await?);
    }
    if may(Permission::LedgerManage) {
        // Every site's ledger the pharmacist keeps: each is its own chain and stock.
        let sites = store.sites(actor).await?;
        let several = sites.len() > 1;
        let mut items = Vec::new();
        for site in sites {
            let ledger = store.ledger_state_at(actor, Some(site.id)).await?;
            items.extend(ledger.open_discrepancies().map(|d| WorkItem {
                label: if several {
                    format!("{}: container {}", site.name, d.container)
                } else {
                    format!("Container {}", d.container)
                },
                detail: format!(
                    "counted {} mL, book {} mL",
                    ketcare_core::units::trim_float(d.counted_ul as f64 / 1000.0),
                    ketcare_core::units::trim_float(d.expected_ul as f64 / 1000.0)
                ),
                href: "/ledger#discrepancies".into(),
                urgent: true,
            }));
        }
        queues.push(Queue {
            id: "ledger-discrepancies",
            title: "Open count discrepancies",
            empty: "No discrepancy is open.",
            items,
        });
    }
    if may(Permission::SiteSettingsWrite) {
        let (settings, _) = clinical::settings(store).await?;
        let registry = crate::settings_registry::load(store, library).await?;
        queues.push(Queue {
            id: "settings-needed",
            title: "Site settings that still block something",
            empty: "Nothing waits for a site setting.",
            items: registry
                .settings
                .iter()
                .filter(|s| s.blocks && settings.value(&s.key).is_none())
                .map(|s| WorkItem {
                    label: s.key.clone(),
                    detail: s.when_unset.clone(),
                    href: format!("/settings#setting-{}", s.key),
                    urgent: false,
                })
                .collect(),
        });
    }
    Ok(queues)
}

/// Bookings from now to the end of [`BOOKINGS_AHEAD_DAYS`] whose patient has no verified dose
/// order that no session has used yet, or whose consent for that order's protocol will not be in
/// force when the booking starts. Each item links to the patient's chart.
async fn bookings_not_ready(
    store: &dyn Store,
    actor: &Actor,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<Queue> {
    let local = now.to_zoned(tz.clone()).datetime();
    let end = local
        .date()
        .checked_add(jiff::Span::new().days(BOOKINGS_AHEAD_DAYS + 1))
        .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        .unwrap_or(local);
    let bookings: Vec<_> = store
        .bookings(actor, local, end)
        .await?
        .into_iter()
        .filter(|b| b.status == BookingStatus::Booked && b.start >= local)
        .collect();
    let mut items = Vec::new();
    if bookings.is_empty() {
        return Ok(not_ready_queue(items));
    }
    let mut ids: Vec<PatientId> = bookings
        .iter()
        .map(|b| PatientId::new(b.patient_id))
        .collect();
    ids.sort();
    ids.dedup();
    let people = crate::patients::labels(store, actor, &ids).await?;
    let mut verified: BTreeMap<PatientId, Vec<crate::clinical::StoredOrder>> = BTreeMap::new();
    for r in store
        .records_in_states(actor, RecordKind::DoseOrder, &["verified"])
        .await?
    {
        let o = clinical::order_of(&r)?;
        if ids.contains(&o.patient_id) {
            verified.entry(o.patient_id).or_default().push(o);
        }
    }
    // The order each patient's next session would use: the newest verified order no session
    // has been created from.
    let mut waiting: BTreeMap<PatientId, Option<crate::clinical::StoredOrder>> = BTreeMap::new();
    for id in &ids {
        let mut orders = verified.remove(id).unwrap_or_default();
        if !orders.is_empty() {
            let used: Vec<i64> = store
                .patient_sessions(actor, *id)
                .await?
                .iter()
                .filter_map(|s| s.session.dose_order_id)
                .collect();
            orders.retain(|o| !used.contains(&o.id.get()));
        }
        waiting.insert(*id, orders.into_iter().max_by_key(|o| o.id));
    }
    for b in &bookings {
        let pid = PatientId::new(b.patient_id);
        let when = b.start.strftime("%a %d %b %H:%M").to_string();
        let mut problems = Vec::new();
        match waiting.get(&pid).and_then(Option::as_ref) {
            None => problems.push("no verified dose order waiting".to_owned()),
            Some(o) => {
                let c = &o.order.calculation;
                let at = b
                    .start
                    .to_zoned(tz.clone())
                    .map(|z| z.timestamp())
                    .unwrap_or(now);
                if let ConsentStatus::Invalid { message, .. } = store
                    .consent_status(actor, pid, &c.protocol_id, c.protocol_version, at)
                    .await?
                {
                    problems.push(format!("consent not in force then: {message}"));
                }
            }
        }
        if problems.is_empty() {
            continue;
        }
        items.push(WorkItem {
            label: people
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| "a patient".into()),
            detail: format!(
                "{} session {when} — {}",
                b.phase.as_str(),
                problems.join("; ")
            ),
            href: format!("/patients/{pid}"),
            urgent: b.start.date() == local.date(),
        });
    }
    Ok(not_ready_queue(items))
}

fn not_ready_queue(items: Vec<WorkItem>) -> Queue {
    Queue {
        id: "bookings-not-ready",
        title: "Bookings not ready (today and the next two days)",
        empty: "Every booking of the coming days has a verified order and consent in force.",
        items,
    }
}

/// Courses whose scheduled questionnaire set is due today (site setting
/// `measures.assessment_every_days`: none since the course started, or the last one at least
/// that many days ago), each linking to the patient's scores page where a link is sent or the
/// answers entered.
async fn questionnaires_due(
    store: &dyn Store,
    actor: &Actor,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<Queue> {
    let today = now.to_zoned(tz.clone()).date();
    let (settings, _) = clinical::settings(store).await?;
    let every = settings.value(ketcare_measures::outcome::ASSESSMENT_EVERY_DAYS);
    let mut items = Vec::new();
    if every.is_some() {
        let courses = store.open_courses(actor, &today.to_string()).await?;
        let ids: Vec<PatientId> = courses.iter().map(|(c, _)| c.patient_id).collect();
        let people = crate::patients::labels(store, actor, &ids).await?;
        for (c, latest) in courses {
            let Ok(start) = c.started_on.parse::<jiff::civil::Date>() else {
                continue;
            };
            let latest = latest.and_then(|d| d.parse::<jiff::civil::Date>().ok());
            if let Some((true, from)) =
                ketcare_measures::outcome::assessment_due(every, start, latest, today)
            {
                items.push(WorkItem {
                    label: people
                        .get(&c.patient_id)
                        .cloned()
                        .unwrap_or_else(|| "a patient".into()),
                    detail: format!(
                        "{} ({}) — questionnaire set due since {from}",
                        c.label,
                        crate::measures::instrument_name(&c.instrument)
                    ),
                    href: format!("/patients/{}/measures", c.patient_id),
                    urgent: false,
                });
            }
        }
    }
    Ok(Queue {
        id: "questionnaires-due",
        title: "Questionnaires due",
        empty: if every.is_some() {
            "No course's questionnaire set is due."
        } else {
            "The site has set no questionnaire schedule (setting measures.assessment_every_days)."
        },
        items,
    })
}
