//! Pages for operations: the schedule (day view per chair, week view, booking a course, moves,
//! cancellations), consent and assent, the ledger (receipt, draw, witnessed waste, counts,
//! discrepancies, destruction, theft/loss), and billing (superbill, course estimate).

use super::service;
use crate::AppState;
use crate::auth::Principal;
use crate::clinical_pages::{field, form_pairs};
use crate::error::{AppError, PageError};
use crate::pages::PagePath;
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use ketcare_core::{BookingId, ConsentId, PatientId, Permission, Role};
use ketcare_ops::amount::Microlitres;
use ketcare_ops::billing::{self, money};
use ketcare_ops::consent::{Assent, Section, SectionKind, Signer};
use ketcare_ops::ledger::{
    BusinessTime, ContainerStatus, CountLine, InventoryKind, LedgerEvent, LedgerState, entries,
};
use ketcare_ops::schedule::{Booking, BookingStatus, MoveMode};
use ketcare_ops::session_facts::{Drug, EmLevel, Route};
use ketcare_ops::{Micrograms, SessionFacts};
use ketcare_store::{BalanceClaim, StoreError};
use ketcare_store::{BookOutcome, NewConsentDocument, NewSignature};
use std::collections::{BTreeMap, HashMap};

type Q = Query<HashMap<String, String>>;

fn q<'a>(query: &'a HashMap<String, String>, k: &str) -> &'a str {
    query.get(k).map(|s| s.trim()).unwrap_or("")
}

fn error_text(e: &AppError) -> String {
    let b = e.body();
    if b.fields.is_empty() {
        b.message
    } else {
        b.fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn with_status(status: StatusCode, r: Response) -> Response {
    (status, r).into_response()
}

/// The one-shot message shown on the page a form redirects to. It travels in a short-lived
/// cookie the server sets, never in the address, so no link can make a ketcare page say
/// something ketcare did not.
const FLASH_COOKIE: &str = "ketcare_flash";

fn back(path: &str, msg: &str) -> Response {
    let mut r = Redirect::to(path).into_response();
    let v = serde_urlencoded::to_string([("m", msg)]).unwrap_or_default();
    let v = v.trim_start_matches("m=");
    if let Ok(h) = crate::auth::set_cookie(FLASH_COOKIE, v, 60, false).parse() {
        r.headers_mut().append(axum::http::header::SET_COOKIE, h);
    }
    r
}

/// The message a redirect left for this page ("" when none).
fn flash(headers: &HeaderMap) -> String {
    crate::auth::cookie(headers, FLASH_COOKIE)
        .and_then(|v| serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("m={v}")).ok())
        .and_then(|mut v| v.pop())
        .map(|(_, m)| m)
        .unwrap_or_default()
}

/// Clears the message once shown.
fn shown(mut r: Response, headers: &HeaderMap) -> Response {
    if crate::auth::cookie(headers, FLASH_COOKIE).is_some()
        && let Ok(h) = crate::auth::set_cookie(FLASH_COOKIE, "", 0, false).parse()
    {
        r.headers_mut().append(axum::http::header::SET_COOKIE, h);
    }
    r
}

fn now(s: &AppState) -> Result<Timestamp, AppError> {
    Timestamp::from_second(s.now()).map_err(|_| AppError::Internal)
}

// ---- Schedule --------------------------------------------------------------------------------

pub struct BookingRow {
    pub id: BookingId,
    pub time: String,
    pub patient: i64,
    /// "Alvarez, Maria (KC-1001)" (the patient number only if the record cannot be read).
    pub patient_name: String,
    pub phase: String,
    pub status: String,
    pub booked: bool,
    pub start: String,
}

pub struct ChairRow {
    pub name: String,
    pub days: Vec<Vec<BookingRow>>,
}

#[derive(Template)]
#[template(path = "ops_schedule.html")]
pub struct SchedulePage {
    nav: Option<Nav>,
    date: String,
    week: bool,
    day_labels: Vec<String>,
    prev: String,
    next: String,
    rows: Vec<ChairRow>,
    chairs: Vec<(i64, String)>,
    nurses: Vec<(i64, String, String)>,
    prescribers: Vec<(i64, String, String)>,
    templates: Vec<(String, String, String)>,
    /// Each roster entry in view: its id and who is on site when.
    on_site: Vec<(i64, String)>,
    message: String,
    error: String,
    conflicts: Vec<(String, Vec<String>)>,
    move_plan: Vec<String>,
    move_apply: Option<(BookingId, String, String)>,
}

fn row(b: &Booking, names: &BTreeMap<PatientId, String>) -> BookingRow {
    BookingRow {
        patient_name: names
            .get(&PatientId::new(b.patient_id))
            .cloned()
            .unwrap_or_else(|| format!("patient {}", b.patient_id)),
        id: b.id,
        time: format!(
            "{} – {}",
            b.start.time().strftime("%H:%M"),
            b.end.time().strftime("%H:%M")
        ),
        patient: b.patient_id,
        phase: b.phase.as_str().to_owned(),
        status: b.status.as_str().replace('_', "-"),
        booked: b.status == BookingStatus::Booked,
        start: b.start.strftime("%Y-%m-%dT%H:%M").to_string(),
    }
}

#[derive(Default)]
struct Extra {
    message: String,
    error: String,
    conflicts: Vec<(String, Vec<String>)>,
    move_plan: Vec<String>,
    move_apply: Option<(BookingId, String, String)>,
}

async fn schedule_page(
    s: &AppState,
    p: &Principal,
    date: Date,
    week: bool,
    x: Extra,
) -> Result<Response, AppError> {
    let start = if week {
        let back = i64::from(date.weekday().to_monday_zero_offset());
        date.checked_sub(back.days()).unwrap_or(date)
    } else {
        date
    };
    let days = if week { 7 } else { 1 };
    let from = start.to_datetime(jiff::civil::Time::midnight());
    let to = from
        .checked_add(days.days())
        .map_err(|_| AppError::invalid("date", "out of range"))?;
    let chairs = s.store.chairs(&p.actor).await?;
    let bookings = s.store.bookings(&p.actor, from, to).await?;
    let ids: Vec<PatientId> = bookings
        .iter()
        .map(|b| PatientId::new(b.patient_id))
        .collect();
    // Who each booking is for, by name and MRN (one audited read of the day's patients).
    let names = ketcare_app::patients::labels(s.store.as_ref(), &p.actor, &ids).await?;
    let rows = chairs
        .iter()
        .map(|c| ChairRow {
            name: c.name.clone(),
            days: (0..days)
                .map(|d| {
                    let day = start.checked_add(d.days()).unwrap_or(start);
                    bookings
                        .iter()
                        .filter(|b| b.chair_id == c.id && b.start.date() == day)
                        .map(|b| row(b, &names))
                        .collect()
                })
                .collect(),
        })
        .collect();
    let day_labels = (0..days)
        .map(|d| {
            let day = start.checked_add(d.days()).unwrap_or(start);
            day.strftime("%a %Y-%m-%d").to_string()
        })
        .collect();
    let step = if week { 7 } else { 1 };
    let prescribers = s.store.staff(&p.actor, Role::Prescriber).await?;
    let on_site = s
        .store
        .on_site(&p.actor, from, to)
        .await?
        .iter()
        .map(|o| {
            let who = prescribers
                .iter()
                .find(|(id, _, _)| *id == o.user_id)
                .map_or_else(
                    || format!("prescriber #{}", o.user_id),
                    |(_, _, n)| n.clone(),
                );
            (
                o.id,
                format!(
                    "{who}: {} – {}",
                    o.start.strftime("%Y-%m-%d %H:%M"),
                    o.end.strftime(if o.end.date() == o.start.date() {
                        "%H:%M"
                    } else {
                        "%Y-%m-%d %H:%M"
                    })
                ),
            )
        })
        .collect();
    let templates = service::templates()?
        .all()
        .iter()
        .map(|t| (t.id.clone(), t.title.clone(), t.protocols.join(", ")))
        .collect();
    let page = SchedulePage {
        nav: Nav::of(p),
        date: date.to_string(),
        week,
        day_labels,
        prev: date.checked_sub(step.days()).unwrap_or(date).to_string(),
        next: date.checked_add(step.days()).unwrap_or(date).to_string(),
        rows,
        chairs: chairs.iter().map(|c| (c.id, c.name.clone())).collect(),
        nurses: service::nurses(s.store.as_ref(), &p.actor).await?,
        prescribers,
        templates,
        on_site,
        message: x.message,
        error: x.error,
        conflicts: x.conflicts,
        move_plan: x.move_plan,
        move_apply: x.move_apply,
    };
    Ok(render_html(&page))
}

pub async fn schedule(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Principal,
    Query(query): Q,
) -> Result<Response, PageError> {
    let date = match q(&query, "date") {
        "" => s.today(),
        d => service::parse_date("date", d)?,
    };
    let x = Extra {
        message: flash(&headers),
        ..Extra::default()
    };
    Ok(shown(
        schedule_page(&s, &p, date, q(&query, "view") == "week", x).await?,
        &headers,
    ))
}

async fn schedule_error(s: &AppState, p: &Principal, e: AppError) -> Result<Response, PageError> {
    let status = e.status();
    if matches!(
        e,
        AppError::Internal | AppError::Forbidden(_) | AppError::Unauthorized
    ) {
        return Err(PageError(e));
    }
    let x = Extra {
        error: error_text(&e),
        ..Extra::default()
    };
    Ok(with_status(
        status,
        schedule_page(s, p, s.today(), false, x).await?,
    ))
}

pub async fn book_course(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let id = |k: &str| -> Result<i64, AppError> {
        field(&f, k)
            .parse()
            .map_err(|_| AppError::invalid(k, "choose one"))
    };
    let patient = ketcare_app::patients::resolve(
        s.store.as_ref(),
        &p.actor,
        "patient_id",
        field(&f, "patient_id"),
    )
    .await
    .map(|x| x.get())
    .map_err(AppError::from);
    let req = match (patient, id("chair_id"), id("nurse_id")) {
        (Ok(patient_id), Ok(chair_id), Ok(nurse_id)) => service::CourseRequest {
            patient_id,
            template_id: field(&f, "template_id").to_owned(),
            protocol_id: Some(field(&f, "protocol_id").to_owned()),
            first_day: field(&f, "first_day").to_owned(),
            time: field(&f, "time").to_owned(),
            chair_id,
            nurse_id,
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return schedule_error(&s, &p, e).await,
    };
    match service::book_course(s.store.as_ref(), &p.actor, &req)
        .await
        .map_err(AppError::from)
    {
        Ok((_, BookOutcome::Booked { bookings, .. })) => {
            let first = bookings
                .first()
                .map(|b| b.start.date().to_string())
                .unwrap_or_default();
            Ok(back(
                &format!("/schedule?date={first}&view=week"),
                &format!("Course booked: {} sessions", bookings.len()),
            ))
        }
        Ok((planned, BookOutcome::Refused(list))) => {
            let conflicts = list
                .into_iter()
                .map(|(i, cs)| {
                    let when = planned
                        .get(i)
                        .map(|pl| {
                            format!(
                                "Session {} ({} {})",
                                pl.index,
                                pl.start.strftime("%a %Y-%m-%d %H:%M"),
                                pl.phase.as_str()
                            )
                        })
                        .unwrap_or_default();
                    (when, cs.iter().map(ToString::to_string).collect())
                })
                .collect();
            let date = service::parse_date("first_day", &req.first_day).unwrap_or(s.today());
            let x = Extra {
                error: "Nothing was booked: these sessions conflict.".into(),
                conflicts,
                ..Extra::default()
            };
            Ok(with_status(
                StatusCode::CONFLICT,
                schedule_page(&s, &p, date, true, x).await?,
            ))
        }
        Err(e) => schedule_error(&s, &p, e).await,
    }
}

pub async fn book_session(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let id = |k: &str| -> Result<i64, AppError> {
        field(&f, k)
            .parse()
            .map_err(|_| AppError::invalid(k, "choose one"))
    };
    let patient = ketcare_app::patients::resolve(
        s.store.as_ref(),
        &p.actor,
        "patient_id",
        field(&f, "patient_id"),
    )
    .await
    .map(|x| x.get())
    .map_err(AppError::from);
    let req = match (patient, id("chair_id"), id("nurse_id")) {
        (Ok(patient_id), Ok(chair_id), Ok(nurse_id)) => service::SessionRequest {
            patient_id,
            template_id: field(&f, "template_id").to_owned(),
            phase: field(&f, "phase").to_owned(),
            start: field(&f, "start").to_owned(),
            chair_id,
            nurse_id,
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return schedule_error(&s, &p, e).await,
    };
    match service::book_session(s.store.as_ref(), &p.actor, &req)
        .await
        .map_err(AppError::from)
    {
        Ok((b, BookOutcome::Booked { .. })) => Ok(back(
            &format!("/schedule?date={}", b.start.date()),
            &format!("{} session booked", b.phase.as_str()),
        )),
        Ok((b, BookOutcome::Refused(list))) => {
            let x = Extra {
                error: "Nothing was booked: this session conflicts.".into(),
                conflicts: list
                    .into_iter()
                    .map(|(_, cs)| {
                        (
                            b.start.strftime("%a %Y-%m-%d %H:%M").to_string(),
                            cs.iter().map(ToString::to_string).collect(),
                        )
                    })
                    .collect(),
                ..Extra::default()
            };
            Ok(with_status(
                StatusCode::CONFLICT,
                schedule_page(&s, &p, b.start.date(), false, x).await?,
            ))
        }
        Err(e) => schedule_error(&s, &p, e).await,
    }
}

pub async fn add_chair(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let site = match field(&f, "site") {
        "" => p.site,
        v => Some(
            v.parse()
                .map_err(|_| AppError::invalid("site", "choose one of your sites"))?,
        ),
    };
    match s
        .store
        .add_chair_at(&p.actor, site, field(&f, "name"))
        .await
    {
        Ok(c) => Ok(back("/schedule", &format!("Chair \"{}\" added", c.name))),
        Err(e) => schedule_error(&s, &p, e.into()).await,
    }
}

pub async fn add_on_site(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let r = async {
        let user: i64 = field(&f, "user_id")
            .parse()
            .map_err(|_| AppError::invalid("user_id", "choose a prescriber"))?;
        let start = service::parse_datetime("start", field(&f, "start"))?;
        let end = service::parse_datetime("end", field(&f, "end"))?;
        s.store
            .add_on_site_at(
                &p.actor,
                p.site,
                ketcare_core::UserId::new(user),
                start,
                end,
            )
            .await
            .map_err(AppError::from)
    }
    .await;
    match r {
        Ok(o) => Ok(back(
            &format!("/schedule?date={}", o.start.date()),
            "Prescriber rostered on site",
        )),
        Err(e) => schedule_error(&s, &p, e).await,
    }
}

/// Takes a prescriber's roster entry off (refused while it alone covers a booking that needs a
/// prescriber on site).
pub async fn remove_on_site(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    match s.store.remove_on_site(&p.actor, id).await {
        Ok(o) => Ok(back(
            &format!("/schedule?date={}", o.start.date()),
            "Roster entry removed",
        )),
        Err(e) => schedule_error(&s, &p, e.into()).await,
    }
}

pub async fn booking_status(
    State(s): State<AppState>,
    p: Principal,
    PagePath(bid): PagePath<BookingId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let Some(status) = BookingStatus::parse(field(&f, "status")) else {
        return schedule_error(
            &s,
            &p,
            AppError::invalid("status", "attended, cancelled or no_show"),
        )
        .await;
    };
    match s
        .store
        .set_booking_status(&p.actor, bid, status, field(&f, "reason"))
        .await
    {
        Ok(b) => Ok(back(
            &format!("/schedule?date={}", b.start.date()),
            &format!("Booking {bid}: {}", status.as_str().replace('_', "-")),
        )),
        Err(e) => schedule_error(&s, &p, e.into()).await,
    }
}

pub async fn move_booking(
    State(s): State<AppState>,
    p: Principal,
    PagePath(bid): PagePath<BookingId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let start = match service::parse_datetime("start", field(&f, "start")) {
        Ok(t) => t,
        Err(e) => return schedule_error(&s, &p, e.into()).await,
    };
    let mode = if field(&f, "mode") == "this_and_later" {
        MoveMode::ThisAndLater
    } else {
        MoveMode::OnlyThis
    };
    let apply = field(&f, "apply") == "1";
    let site = match service::booking_site(s.store.as_ref(), &p.actor, bid).await {
        Ok(site) => site,
        Err(e) => return schedule_error(&s, &p, e.into()).await,
    };
    let values = service::site_values(s.store.as_ref(), Some(site)).await?;
    let plan = match s
        .store
        .move_booking(
            &p.actor,
            bid,
            start,
            mode,
            service::staffing(&values),
            apply,
        )
        .await
    {
        Ok(plan) => plan,
        Err(e) => return schedule_error(&s, &p, e.into()).await,
    };
    if apply && plan.is_clear() {
        return Ok(back(
            &format!("/schedule?date={}&view=week", start.date()),
            &format!("Moved {} session(s)", plan.moves.len()),
        ));
    }
    let mut lines: Vec<String> = plan
        .moves
        .iter()
        .map(|m| {
            format!(
                "Booking {}: {} → {}",
                m.booking_id,
                m.from.strftime("%a %Y-%m-%d %H:%M"),
                m.to.strftime("%a %Y-%m-%d %H:%M")
            )
        })
        .collect();
    for (id, cs) in &plan.conflicts {
        for c in cs {
            lines.push(format!("Booking {id} would conflict: {c}"));
        }
    }
    let x = Extra {
        move_plan: lines,
        move_apply: plan.is_clear().then(|| {
            (
                bid,
                start.strftime("%Y-%m-%dT%H:%M").to_string(),
                if mode == MoveMode::ThisAndLater {
                    "this_and_later"
                } else {
                    "only_this"
                }
                .to_owned(),
            )
        }),
        error: if plan.is_clear() {
            String::new()
        } else {
            "This move conflicts; nothing was moved.".into()
        },
        ..Extra::default()
    };
    let status = if plan.is_clear() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok(with_status(
        status,
        schedule_page(&s, &p, start.date(), true, x).await?,
    ))
}

// ---- Consent ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ops_consent.html")]
pub struct ConsentPage {
    nav: Option<Nav>,
    patient_id: i64,
    minor: bool,
    band: String,
    guardians: Vec<(i64, String)>,
    statuses: Vec<(String, String, bool, String)>,
    protocols: Vec<(String, String)>,
    /// (signature id, text, in force)
    signatures: Vec<(ConsentId, String, bool)>,
    can_sign: bool,
    message: String,
    error: String,
    /// The patient header (name, MRN, age, weight, allergies, alerts, consent) and tabs.
    header: Option<crate::chart::PatientHeader>,
}

async fn consent_page(
    s: &AppState,
    p: &Principal,
    id: i64,
    message: String,
    error: String,
) -> Result<Response, AppError> {
    let patient = s.store.get_patient(&p.actor, PatientId::new(id)).await?;
    let today = s.today();
    let day = patient.record.day_of_care(today, &s.bands);
    let minor = day.map(|d| d.band.is_minor()).unwrap_or(true);
    let docs = s.store.consent_documents(&p.actor).await?;
    let mut protocols: Vec<(String, String)> = Vec::new();
    for d in &docs {
        if !protocols.iter().any(|(pid, _)| *pid == d.protocol_id) {
            protocols.push((
                d.protocol_id.clone(),
                format!("{} (document version {})", d.protocol_id, d.version),
            ));
        }
    }
    let statuses = crate::chart::consent_lines(s, p, PatientId::new(id), now(s)?)
        .await?
        .into_iter()
        .map(|l| (l.protocol_id, l.document_version, l.in_force, l.text))
        .collect();
    let signatures = s
        .store
        .consent_signatures(&p.actor, PatientId::new(id))
        .await?
        .iter()
        .map(|g| {
            let who = match &g.signer {
                Signer::Patient => "the patient".to_owned(),
                Signer::Guardian {
                    name, relationship, ..
                } => format!("{name} ({relationship})"),
            };
            let assent = match &g.assent {
                Some(Assent::Given { .. }) => "; the minor assented".to_owned(),
                Some(Assent::NotCapable { reason, .. }) => {
                    format!("; the minor cannot assent: {reason}")
                }
                None => String::new(),
            };
            let withdrawn = match g.withdrawn_at {
                Some(w) => format!(
                    " — withdrawn {} by {}: {}",
                    w.strftime("%Y-%m-%d %H:%M"),
                    g.withdrawn_by.as_deref().unwrap_or("(not recorded)"),
                    g.withdrawal_reason
                        .as_deref()
                        .unwrap_or("(no reason recorded)")
                ),
                None => String::new(),
            };
            let text = format!(
                "{} — {} document v{} (protocol v{}) signed by {who}{assent}{withdrawn}",
                g.signed_at.strftime("%Y-%m-%d %H:%M"),
                g.protocol_id,
                g.document_version,
                g.protocol_version,
            );
            (g.id, text, g.withdrawn_at.is_none())
        })
        .collect();
    let header = crate::chart::header(s, p, PatientId::new(id), "consent")
        .await
        .ok();
    let page = ConsentPage {
        header,
        nav: Nav::of(p),
        patient_id: id,
        minor,
        band: day.map(|d| d.band.to_string()).unwrap_or_default(),
        guardians: patient
            .guardians
            .iter()
            .map(|g| {
                (
                    g.id.get(),
                    format!("{} ({})", g.record.name, g.record.relationship.as_str()),
                )
            })
            .collect(),
        statuses,
        protocols,
        signatures,
        can_sign: p.user.role.allows(Permission::RecordConsent),
        message,
        error,
    };
    Ok(render_html(&page))
}

pub async fn consent(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    Ok(shown(
        consent_page(&s, &p, id, flash(&headers), String::new()).await?,
        &headers,
    ))
}

pub async fn sign_consent(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let r = async {
        // The protocol is a required choice: the form names none by default.
        if field(&f, "protocol_id").trim().is_empty() {
            return Err(AppError::invalid(
                "protocol_id",
                "choose the protocol this consent is for",
            ));
        }
        let me = p.actor.user_id.map(|u| u.get()).unwrap_or(0);
        let signer = match field(&f, "signer") {
            "patient" => Signer::Patient,
            g => {
                let gid: i64 = g
                    .parse()
                    .map_err(|_| AppError::invalid("signer", "choose who signs"))?;
                let patient = s.store.get_patient(&p.actor, PatientId::new(id)).await?;
                let guardian = patient
                    .guardians
                    .iter()
                    .find(|x| x.id.get() == gid)
                    .ok_or_else(|| AppError::invalid("signer", "not a guardian of this patient"))?;
                Signer::Guardian {
                    guardian_id: gid,
                    name: guardian.record.name.clone(),
                    relationship: guardian.record.relationship.as_str().to_owned(),
                }
            }
        };
        let assent = match field(&f, "assent") {
            "given" => Some(Assent::Given { obtained_by: me }),
            "not_capable" => Some(Assent::NotCapable {
                obtained_by: me,
                reason: field(&f, "assent_reason").to_owned(),
            }),
            _ => None,
        };
        ketcare_app::ops::record_consent(
            s.store.as_ref(),
            &s.library(),
            &p.actor,
            &NewSignature {
                patient_id: PatientId::new(id),
                protocol_id: field(&f, "protocol_id").to_owned(),
                signer,
                assent,
                signed_at: now(&s)?,
            },
            s.today(),
        )
        .await
        .map_err(AppError::from)
    }
    .await;
    match r {
        Ok(_) => Ok(back(&format!("/patients/{id}/consent"), "Consent recorded")),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => Ok(with_status(
            e.status(),
            consent_page(&s, &p, id, String::new(), error_text(&e)).await?,
        )),
        Err(e) => Err(PageError(e)),
    }
}

/// Withdraws a consent from the patient's consent page: who (the signed-in user), when (now),
/// why (required); audited by the store.
pub async fn withdraw_consent(
    State(s): State<AppState>,
    p: Principal,
    PagePath((id, sid)): PagePath<(i64, ConsentId)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let r = async {
        s.store
            .withdraw_consent(
                &p.actor,
                PatientId::new(id),
                sid,
                now(&s)?,
                field(&f, "reason"),
            )
            .await
            .map_err(AppError::from)
    }
    .await;
    match r {
        Ok(_) => Ok(back(
            &format!("/patients/{id}/consent"),
            "Consent withdrawn",
        )),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_) | AppError::NotFound(_))) => {
            Ok(with_status(
                e.status(),
                consent_page(&s, &p, id, String::new(), error_text(&e)).await?,
            ))
        }
        Err(e) => Err(PageError(e)),
    }
}

/// protocol, document version, protocol version, title, validity, (section, text)…
type DocumentRow = (String, u32, u32, String, String, Vec<(String, String)>);

#[derive(Template)]
#[template(path = "ops_consent_documents.html")]
pub struct ConsentDocumentsPage {
    nav: Option<Nav>,
    documents: Vec<DocumentRow>,
    protocols: Vec<(String, String)>,
    sections: Vec<(String, String)>,
    can_edit: bool,
    message: String,
    error: String,
}

async fn documents_page(
    s: &AppState,
    p: &Principal,
    message: String,
    error: String,
) -> Result<Response, AppError> {
    let docs = s.store.consent_documents(&p.actor).await?;
    let page = ConsentDocumentsPage {
        nav: Nav::of(p),
        documents: docs
            .iter()
            .map(|d| {
                (
                    d.protocol_id.clone(),
                    d.version,
                    d.protocol_version,
                    d.title.clone(),
                    d.valid_days
                        .map(|v| format!("{v} days"))
                        .unwrap_or_else(|| "until re-consent".into()),
                    d.sections
                        .iter()
                        .map(|x| (x.kind.label().to_owned(), x.text.clone()))
                        .collect(),
                )
            })
            .collect(),
        protocols: s
            .library()
            .list()
            .into_iter()
            .map(|x| (x.id, x.title))
            .collect(),
        sections: SectionKind::ALL
            .iter()
            .map(|k| (k.as_str().to_owned(), k.label().to_owned()))
            .collect(),
        can_edit: p.user.role.allows(Permission::RecordConsent),
        message,
        error,
    };
    Ok(render_html(&page))
}

pub async fn consent_documents(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Principal,
) -> Result<Response, PageError> {
    Ok(shown(
        documents_page(&s, &p, flash(&headers), String::new()).await?,
        &headers,
    ))
}

/// Whether a protocol is off-label, as its own cited evidence and title say.
pub fn off_label(s: &AppState, protocol_id: &str) -> Result<(u32, bool), AppError> {
    let lib = s.library();
    let pr = lib
        .get(protocol_id)
        .map_err(|e| AppError::invalid("protocol_id", e.to_string()))?;
    let says = |t: &str| t.to_lowercase().contains("off-label");
    Ok((pr.version, says(&pr.title) || says(&pr.evidence.text)))
}

pub async fn add_consent_document(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let r = async {
        let pid = field(&f, "protocol_id");
        let (version, off) = off_label(&s, pid)?;
        let valid_days = match field(&f, "valid_days") {
            "" => None,
            v => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|d| (1..=3650).contains(d))
                    .ok_or_else(|| {
                        AppError::invalid("valid_days", "whole days, 1–3650, or empty")
                    })?,
            ),
        };
        let sections = SectionKind::ALL
            .iter()
            .filter_map(|k| {
                let t = field(&f, k.as_str());
                (!t.is_empty()).then(|| Section {
                    kind: *k,
                    text: t.to_owned(),
                })
            })
            .collect();
        s.store
            .add_consent_document(
                &p.actor,
                &NewConsentDocument {
                    protocol_id: pid.to_owned(),
                    protocol_version: version,
                    off_label: off,
                    title: field(&f, "title").to_owned(),
                    sections,
                    valid_days,
                },
            )
            .await
            .map_err(AppError::from)
    }
    .await;
    match r {
        Ok(d) => Ok(back(
            "/consent/documents",
            &format!("{} document version {} saved", d.protocol_id, d.version),
        )),
        Err(e @ AppError::Invalid(_)) => Ok(with_status(
            e.status(),
            documents_page(&s, &p, String::new(), error_text(&e)).await?,
        )),
        Err(e) => Err(PageError(e)),
    }
}

// ---- Ledger ----------------------------------------------------------------------------------

/// id, product, NDC, lot, expiry, mL left, mg left, status
type ContainerRow = (i64, String, String, String, String, String, String, String);

#[derive(Template)]
#[template(path = "ops_ledger.html")]
pub struct LedgerPage {
    nav: Option<Nav>,
    containers: Vec<ContainerRow>,
    /// Sealed and open containers: id, label with what is left (for the draw and destroy forms).
    live: Vec<(i64, String)>,
    on_hand: Vec<(String, u32, String)>,
    discrepancies: Vec<(i64, i64, String, String)>,
    /// (ledger entry, text)
    reports: Vec<(i64, String)>,
    /// The page of entries shown: number, time, by, kind, kind in words, the entry in words.
    entries: Vec<EntryRow>,
    /// The entries filter as typed, and the kinds to choose from (stored kind, words).
    filter: EntryFilter,
    kinds: Vec<(&'static str, &'static str)>,
    /// "Entries 1–25 of 73", or that none match.
    range: String,
    /// Links to the previous and next pages, with the filters kept.
    prev: Option<String>,
    next: Option<String>,
    products: Vec<(String, String)>,
    /// Sealed containers (id, label), for the transfer form.
    sealed: Vec<(i64, String)>,
    /// The organisation's other sites (id, name) a transfer may go to; empty for a clerk
    /// without the right to manage stock.
    other_sites: Vec<(i64, String)>,
    /// Other sites' transfers to this one not received yet: sending site, its entry, in words.
    due: Vec<(i64, i64, String)>,
    may_manage: bool,
    may_draw: bool,
    balance: Option<(bool, String)>,
    inventory: String,
    message: String,
    error: String,
}

/// seq, time, by, kind, kind in words, text
type EntryRow = (i64, String, String, String, String, String);

/// Entries per page of the ledger's entries table.
const ENTRIES_PER_PAGE: usize = 25;

/// The entries table's filters: the text as typed (kept in the form and the page links) and
/// the values checked from it.
#[derive(Debug, Default, Clone)]
pub struct EntryFilter {
    kind: String,
    container: String,
    session: String,
    from: String,
    to: String,
    container_id: Option<i64>,
    session_id: Option<i64>,
    from_date: Option<Date>,
    to_date: Option<Date>,
    page: usize,
}

impl EntryFilter {
    /// Reads `kind`, `container`, `session`, `from`, `to` and `page` from the query; a bad
    /// value is refused naming its field.
    fn parse(query: &HashMap<String, String>) -> Result<Self, AppError> {
        let number = |k: &str, what: &str| -> Result<Option<i64>, AppError> {
            match q(query, k) {
                "" => Ok(None),
                t => t
                    .trim_start_matches('#')
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| {
                        AppError::invalid(
                            k,
                            format!("`{t}` is not a {what} (a whole number, e.g. 3)"),
                        )
                    }),
            }
        };
        let date = |k: &str| -> Result<Option<Date>, AppError> {
            match q(query, k) {
                "" => Ok(None),
                t => Ok(Some(service::parse_date(k, t)?)),
            }
        };
        let mut f = Self::typed(query);
        if !f.kind.is_empty() && !entries::KINDS.iter().any(|(k, _)| *k == f.kind) {
            return Err(AppError::invalid(
                "kind",
                format!(
                    "`{}` is not a kind of entry; choose one of {}",
                    f.kind,
                    entries::KINDS
                        .iter()
                        .map(|(_, w)| *w)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        f.container_id = number("container", "container number")?;
        f.session_id = number("session", "session number")?;
        f.from_date = date("from")?;
        f.to_date = date("to")?;
        if let (Some(a), Some(b)) = (f.from_date, f.to_date)
            && b < a
        {
            return Err(AppError::invalid(
                "to",
                format!("{b} is before the from date {a}"),
            ));
        }
        f.page =
            match q(query, "page") {
                "" => 1,
                t => t.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    AppError::invalid("page", format!("`{t}` is not a page number"))
                })?,
            };
        Ok(f)
    }

    /// The filters as typed, unchecked (kept in the form when one is refused).
    fn typed(query: &HashMap<String, String>) -> Self {
        Self {
            kind: q(query, "kind").to_owned(),
            container: q(query, "container").to_owned(),
            session: q(query, "session").to_owned(),
            from: q(query, "from").to_owned(),
            to: q(query, "to").to_owned(),
            ..Self::default()
        }
    }

    fn keeps(&self, e: &entries::Entry) -> bool {
        let day = || {
            e.at.parse::<Timestamp>()
                .ok()
                .map(|t| t.to_zoned(ketcare_app::zones::here()).date())
        };
        (self.kind.is_empty() || e.kind == self.kind)
            && self.container_id.is_none_or(|c| e.containers.contains(&c))
            && self.session_id.is_none_or(|sid| e.session_id == Some(sid))
            && self.from_date.is_none_or(|d| day().is_some_and(|x| x >= d))
            && self.to_date.is_none_or(|d| day().is_some_and(|x| x <= d))
    }

    /// The link to `page` of the entries with these filters.
    fn link(&self, page: usize) -> String {
        let mut pairs: Vec<(&str, String)> = [
            ("kind", &self.kind),
            ("container", &self.container),
            ("session", &self.session),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect();
        pairs.push(("page", page.to_string()));
        format!(
            "/ledger?{}#entries",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    }

    fn is_set(&self) -> bool {
        !(self.kind.is_empty()
            && self.container.is_empty()
            && self.session.is_empty()
            && self.from.is_empty()
            && self.to.is_empty())
    }
}

async fn ledger_page(
    s: &AppState,
    p: &Principal,
    balance: Option<(bool, String)>,
    filter: Result<EntryFilter, EntryFilter>,
    message: String,
    error: String,
) -> Result<Response, AppError> {
    let st = s.store.ledger_state_at(&p.actor, p.site).await?;
    let records = s.store.ledger_records_at(&p.actor, p.site).await?;
    let ml = |ul: i64| format!("{} mL", Microlitres(ul));
    let mg = |ug: i64| format!("{} mg", Micrograms(ug));
    // A filter that was refused shows no entries (the error names the field) and keeps what
    // was typed in the form.
    let refused = filter.is_err();
    let filter = filter.unwrap_or_else(|typed| typed);
    let all = entries::entries(&records, LedgerState::new(st.stock().clone()));
    let matching: Vec<&entries::Entry> = all.iter().rev().filter(|e| filter.keeps(e)).collect();
    let total = matching.len();
    let pages = total.div_ceil(ENTRIES_PER_PAGE).max(1);
    let page = filter.page.clamp(1, pages);
    let shown: Vec<EntryRow> = if refused {
        Vec::new()
    } else {
        matching
            .iter()
            .skip((page - 1) * ENTRIES_PER_PAGE)
            .take(ENTRIES_PER_PAGE)
            .map(|e| {
                (
                    e.seq,
                    crate::fmt::when(&e.at),
                    e.by.clone(),
                    e.kind.clone(),
                    e.kind_words.clone(),
                    e.text.clone(),
                )
            })
            .collect()
    };
    let range = if refused {
        "Correct the filter to see entries.".to_owned()
    } else if total == 0 {
        if filter.is_set() {
            "No entries match these filters.".to_owned()
        } else {
            "No entries yet.".to_owned()
        }
    } else {
        let first = (page - 1) * ENTRIES_PER_PAGE + 1;
        format!(
            "Entries {first}–{} of {total}{}",
            first + shown.len() - 1,
            if filter.is_set() { " matching" } else { "" }
        )
    };
    let prev = (!refused && page > 1).then(|| filter.link(page - 1));
    let next = (!refused && page < pages).then(|| filter.link(page + 1));
    let may_manage = p.user.role.allows(Permission::LedgerManage);
    let (other_sites, due) = if may_manage {
        // The site whose ledger this is: the working site, or the user's only one.
        let here = p.site.or(match p.sites.as_slice() {
            [(only, _)] => Some(*only),
            _ => None,
        });
        let others = s
            .store
            .organisation_sites()
            .await?
            .into_iter()
            .filter(|(id, _)| Some(*id) != here)
            .collect();
        let due = s
            .store
            .ledger_transfers_due(&p.actor, p.site)
            .await?
            .into_iter()
            .map(|t| {
                let what: Vec<String> = t
                    .lines
                    .iter()
                    .map(|l| format!("{} lot {} ({})", l.product, l.lot, mg(l.remaining_ug)))
                    .collect();
                (
                    t.from_site,
                    t.from_entry,
                    format!(
                        "From {} (its entry {}), sent by {} at {}, invoice {}: {}",
                        t.from_site_name,
                        t.from_entry,
                        t.sent_by,
                        crate::fmt::when(&t.sent_at),
                        t.invoice,
                        what.join("; ")
                    ),
                )
            })
            .collect();
        (others, due)
    } else {
        (Vec::new(), Vec::new())
    };
    let page = LedgerPage {
        nav: Nav::of(p),
        containers: st
            .containers
            .iter()
            .map(|c| {
                (
                    c.id,
                    c.product.clone(),
                    c.ndc.clone(),
                    c.lot.clone(),
                    c.expiry.to_string(),
                    Microlitres(c.remaining_ul).to_string(),
                    Micrograms(c.remaining_ug).to_string(),
                    crate::fmt::words(&c.status),
                )
            })
            .collect(),
        live: st
            .containers
            .iter()
            .filter(|c| matches!(c.status, ContainerStatus::Sealed | ContainerStatus::Open))
            .map(|c| (c.id, format!("#{} {} lot {} — {} left", c.id, c.product, c.lot, ml(c.remaining_ul))))
            .collect(),
        on_hand: st.inventory_lines().into_iter().map(|l| (l.label, l.containers, mg(l.total_ug))).collect(),
        discrepancies: st
            .open_discrepancies()
            .map(|d| (d.id, d.container, ml(d.expected_ul), ml(d.counted_ul)))
            .collect(),
        reports: st
            .reports
            .iter()
            .map(|r| {
                (r.seq, format!(
                    "{} discovered {}: {} mg — notice to the DEA Field Division by {}; DEA Form 106 by {} [{}]",
                    if r.theft { "Theft" } else { "Loss" },
                    r.discovered,
                    Micrograms(r.amount_ug),
                    r.deadlines.notice_due,
                    r.deadlines.form_106_due,
                    r.deadlines.sources.join(", ")
                ))
            })
            .collect(),
        entries: shown,
        filter,
        kinds: entries::KINDS.to_vec(),
        range,
        prev,
        next,
        products: st.stock().products.iter().map(|x| (x.key.clone(), x.label.clone())).collect(),
        sealed: st
            .containers
            .iter()
            .filter(|c| c.status == ContainerStatus::Sealed)
            .map(|c| (c.id, format!("#{} {} lot {}, expiry {}", c.id, c.product, c.lot, c.expiry)))
            .collect(),
        other_sites,
        due,
        may_manage,
        may_draw: p.user.role.allows(Permission::LedgerDraw),
        balance,
        inventory: match st.last_inventory {
            Some(d) => format!(
                "Last inventory {d}; the next biennial inventory is due by {} [{}]",
                ketcare_ops::ledger::reports::next_inventory_due(d, &st.stock().rules),
                st.stock().rules.biennial_inventory_years.source.join(", ")
            ),
            None => "No inventory recorded yet: take the initial inventory on the first day of controlled-substance activity [R45].".into(),
        },
        message,
        error,
    };
    Ok(render_html(&page))
}

/// The count form: blind, so every sealed or open container has an empty box and the book is
/// not shown; once the count is recorded the ledger page and `/ledger/counts` set the book
/// beside it.
#[derive(Template)]
#[template(path = "ops_count.html")]
pub struct CountPage {
    nav: Option<Nav>,
    /// id, product and lot, what was typed (after a refused count)
    containers: Vec<(i64, String, String)>,
    period: String,
    error: String,
}

/// The blind count form, with what was typed when a count was refused.
async fn count_page(
    s: &AppState,
    p: &Principal,
    typed: &[(String, String)],
    error: String,
) -> Result<Response, AppError> {
    let st = s.store.ledger_state_at(&p.actor, p.site).await?;
    let page = CountPage {
        nav: Nav::of(p),
        containers: st
            .containers
            .iter()
            .filter(|c| matches!(c.status, ContainerStatus::Sealed | ContainerStatus::Open))
            .map(|c| {
                (
                    c.id,
                    format!("#{} {} lot {}", c.id, c.product, c.lot),
                    field(typed, &format!("counted_{}", c.id)).to_owned(),
                )
            })
            .collect(),
        period: field(typed, "period").to_owned(),
        error,
    };
    Ok(render_html(&page))
}

pub async fn count_form(State(s): State<AppState>, p: Principal) -> Result<Response, PageError> {
    if let Some(r) = crate::pages::site_needed(&p, "ledger") {
        return Ok(r);
    }
    Ok(count_page(&s, &p, &[], String::new()).await?)
}

pub async fn ledger(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Principal,
    Query(query): Q,
) -> Result<Response, PageError> {
    if let Some(r) = crate::pages::site_needed(&p, "ledger") {
        return Ok(r);
    }
    let balance = match q(&query, "session_id") {
        "" => None,
        sid => {
            let session_id: i64 = sid
                .parse()
                .map_err(|_| AppError::invalid("session_id", "a number"))?;
            // The record's facts on the ledger of the session's own site; a figure typed here
            // must agree with the record, and a `given` counts only while it documents none.
            let given = match q(&query, "given_mg") {
                "" => None,
                g => Some(
                    Micrograms::parse_mg("given_mg", g)
                        .map_err(|e| AppError::invalid(&e.field, e.message))?,
                ),
            };
            let claim = BalanceClaim {
                patient_id: None,
                given,
                cancelled: (q(&query, "cancelled") == "1").then_some(true),
            };
            let sid = ketcare_core::SessionId::new(session_id);
            match s.store.ledger_balance(&p.actor, sid, &claim).await {
                Ok(b) => Some((b.balanced, format!("Session {session_id}: {}", b.message))),
                Err(StoreError::Invalid(f)) => Some((
                    false,
                    format!(
                        "Session {session_id}: {}",
                        f.0.iter()
                            .map(|e| format!("{}: {}", e.field, e.message))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                )),
                Err(e) => return Err(AppError::from(e).into()),
            }
        }
    };
    let msg = flash(&headers);
    match EntryFilter::parse(&query) {
        Ok(f) => Ok(shown(
            ledger_page(&s, &p, balance, Ok(f), msg, String::new()).await?,
            &headers,
        )),
        Err(e) => Ok(with_status(
            StatusCode::BAD_REQUEST,
            ledger_page(
                &s,
                &p,
                balance,
                Err(EntryFilter::typed(&query)),
                msg,
                error_text(&e),
            )
            .await?,
        )),
    }
}

fn int(f: &[(String, String)], k: &str) -> Result<i64, AppError> {
    field(f, k)
        .parse()
        .map_err(|_| AppError::invalid(k, "a whole number"))
}

fn ml_field(f: &[(String, String)], k: &str) -> Result<i64, AppError> {
    Microlitres::parse_ml(k, field(f, k))
        .map(|v| v.0)
        .map_err(|e| AppError::invalid(&e.field, e.message))
}

fn mg_field(f: &[(String, String)], k: &str) -> Result<i64, AppError> {
    Micrograms::parse_mg(k, field(f, k))
        .map(|v| v.0)
        .map_err(|e| AppError::invalid(&e.field, e.message))
}

/// One handler for every ledger form: the form's `kind` names the event.
pub async fn ledger_post(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = form_pairs(&body)?;
    let r: Result<String, AppError> = async {
        let event = match field(&f, "kind") {
            "receive" => LedgerEvent::Receive {
                product: field(&f, "product").to_owned(),
                ndc: field(&f, "ndc").to_owned(),
                lot: field(&f, "lot").to_owned(),
                expiry: service::parse_date("expiry", field(&f, "expiry"))?,
                quantity: field(&f, "quantity")
                    .parse()
                    .map_err(|_| AppError::invalid("quantity", "a whole number of containers"))?,
                invoice: field(&f, "invoice").to_owned(),
                supplier: field(&f, "supplier").to_owned(),
            },
            "draw" => LedgerEvent::Draw {
                container: int(&f, "container")?,
                session_id: int(&f, "session_id")?,
                // The session's patient (by MRN or "Name (MRN)"); left empty, the ledger takes
                // it from the session, and a named one must be the session's.
                patient_id: match field(&f, "patient_id").trim() {
                    "" => 0,
                    named => ketcare_app::patients::resolve(
                        s.store.as_ref(),
                        &p.actor,
                        "patient_id",
                        named,
                    )
                    .await?
                    .get(),
                },
                volume_ul: ml_field(&f, "volume_ml")?,
            },
            "waste" => {
                let w = match field(&f, "witness_username") {
                    "" => None,
                    u => Some(
                        service::witness(&s, &p.actor, "witness", u, field(&f, "witness_password"))
                            .await?,
                    ),
                };
                LedgerEvent::Waste {
                    session_id: int(&f, "session_id")?,
                    amount_ug: mg_field(&f, "amount_mg")?,
                    witness: w,
                    note: field(&f, "note").to_owned(),
                }
            }
            "count" => {
                let mut lines = Vec::new();
                for (k, v) in &f {
                    if let Some(id) = k.strip_prefix("counted_") {
                        if v.trim().is_empty() {
                            continue;
                        }
                        let container = id
                            .parse()
                            .map_err(|_| AppError::invalid(k, "unknown container"))?;
                        lines.push(CountLine {
                            container,
                            counted_ul: ml_field(&f, k)?,
                        });
                    }
                }
                LedgerEvent::Count {
                    period: field(&f, "period").to_owned(),
                    lines,
                }
            }
            "resolve" => LedgerEvent::Resolve {
                discrepancy: int(&f, "discrepancy")?,
                reason: field(&f, "reason").to_owned(),
                adjust: field(&f, "adjust") == "1",
            },
            "destroy" => {
                let mut witnesses = Vec::new();
                for i in 1..=2 {
                    let u = field(&f, &format!("witness{i}_username"));
                    if !u.is_empty() {
                        witnesses.push(
                            service::witness(
                                &s,
                                &p.actor,
                                &format!("witnesses[{}]", i - 1),
                                u,
                                field(&f, &format!("witness{i}_password")),
                            )
                            .await?,
                        );
                    }
                }
                LedgerEvent::Destroy {
                    container: int(&f, "container")?,
                    method: field(&f, "method").to_owned(),
                    witnesses,
                }
            }
            "inventory" => LedgerEvent::Inventory {
                inventory: if field(&f, "inventory") == "initial" {
                    InventoryKind::Initial
                } else {
                    InventoryKind::Biennial
                },
                taken: service::parse_date("taken", field(&f, "taken"))?,
                time: if field(&f, "time") == "opening" {
                    BusinessTime::Opening
                } else {
                    BusinessTime::Close
                },
                registrant_name: field(&f, "registrant_name").to_owned(),
                registrant_address: field(&f, "registrant_address").to_owned(),
                dea_number: field(&f, "dea_number").to_owned(),
                lines: Vec::new(),
            },
            "theft_loss" => LedgerEvent::TheftLoss {
                discovered: service::parse_date("discovered", field(&f, "discovered"))?,
                theft: field(&f, "theft") == "1",
                containers: field(&f, "containers")
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|x| !x.is_empty())
                    .map(|x| {
                        x.parse().map_err(|_| {
                            AppError::invalid("containers", "container numbers separated by commas")
                        })
                    })
                    .collect::<Result<_, _>>()?,
                amount_ug: match field(&f, "amount_mg") {
                    "" => 0,
                    _ => mg_field(&f, "amount_mg")?,
                },
                description: field(&f, "description").to_owned(),
            },
            "transfer_out" => LedgerEvent::TransferOut {
                to_site: int(&f, "to_site")?,
                to_registration: String::new(),
                from_registration: String::new(),
                containers: f
                    .iter()
                    .filter(|(k, _)| k == "container")
                    .map(|(_, v)| {
                        v.trim()
                            .parse()
                            .map_err(|_| AppError::invalid("containers", "unknown container"))
                    })
                    .collect::<Result<_, _>>()?,
                invoice: field(&f, "invoice").to_owned(),
                lines: Vec::new(),
            },
            "transfer_in" => LedgerEvent::TransferIn {
                from_site: int(&f, "from_site")?,
                from_entry: int(&f, "from_entry")?,
                from_registration: String::new(),
                invoice: String::new(),
                lines: Vec::new(),
            },
            other => {
                return Err(AppError::invalid(
                    "kind",
                    format!("unknown ledger form `{other}`"),
                ));
            }
        };
        let kind = event.kind();
        let rec = s.store.ledger_append_at(&p.actor, p.site, &event).await?;
        Ok(format!("Ledger entry {} recorded ({kind})", rec.seq))
    }
    .await;
    match r {
        Ok(m) => Ok(back("/ledger", &m)),
        // A refused count goes back to the blind form with what was typed.
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => Ok(with_status(
            e.status(),
            if field(&f, "kind") == "count" {
                count_page(&s, &p, &f, error_text(&e)).await?
            } else {
                ledger_page(
                    &s,
                    &p,
                    None,
                    Ok(EntryFilter::default()),
                    String::new(),
                    error_text(&e),
                )
                .await?
            },
        )),
        Err(e) => Err(PageError(e)),
    }
}

// ---- Billing ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ops_billing.html")]
pub struct BillingPage {
    nav: Option<Nav>,
    form: HashMap<String, String>,
    lines: Vec<(String, String, u32, String, String, String, String)>,
    total: String,
    notes: Vec<String>,
    estimate: String,
    templates: Vec<(String, String)>,
    error: String,
}

impl BillingPage {
    fn v(&self, k: &str) -> &str {
        self.form.get(k).map(String::as_str).unwrap_or("")
    }
}

fn facts_from(query: &HashMap<String, String>) -> Result<SessionFacts, AppError> {
    let drug = Drug::parse(q(query, "drug"))
        .ok_or_else(|| AppError::invalid("drug", "racemic_ketamine or esketamine"))?;
    let route = match q(query, "route") {
        "iv_infusion" => Route::IvInfusion,
        "iv_push" => Route::IvPush,
        "intranasal" => Route::Intranasal,
        "intramuscular" => Route::Intramuscular,
        "subcutaneous" => Route::Subcutaneous,
        other => {
            return Err(AppError::invalid(
                "route",
                format!(
                    "`{other}`: iv_infusion, iv_push, intranasal, intramuscular or subcutaneous"
                ),
            ));
        }
    };
    let minutes = match q(query, "minutes") {
        "" => None,
        m => Some(
            m.parse::<i64>()
                .ok()
                .filter(|m| (0..=24 * 60).contains(m))
                .ok_or_else(|| AppError::invalid("minutes", "whole minutes, 0–1440"))?,
        ),
    };
    let start = Timestamp::UNIX_EPOCH;
    Ok(SessionFacts {
        infusion_minutes: None,
        session_id: match q(query, "session_id") {
            "" => 0,
            x => x
                .parse()
                .map_err(|_| AppError::invalid("session_id", "a number"))?,
        },
        patient_id: match q(query, "patient_id") {
            "" => 0,
            x => x
                .parse()
                .map_err(|_| AppError::invalid("patient_id", "a number"))?,
        },
        drug,
        route,
        infusion_start: minutes.map(|_| start),
        infusion_stop: minutes
            .and_then(|m| start.checked_add(jiff::SignedDuration::from_mins(m)).ok()),
        given: Micrograms::parse_mg(
            "given_mg",
            match q(query, "given_mg") {
                "" => "0",
                g => g,
            },
        )
        .map_err(|e| AppError::invalid(&e.field, e.message))?,
        cancelled: false,
        em_level: match q(query, "em") {
            "low" => Some(EmLevel::Low),
            "moderate" => Some(EmLevel::Moderate),
            "high" => Some(EmLevel::High),
            _ => None,
        },
        monitoring_minutes: None,
    })
}

/// The superbill for a session's documented facts, and a course estimate from a template.
pub async fn billing_page(
    State(s): State<AppState>,
    p: Principal,
    Query(query): Q,
) -> Result<Response, PageError> {
    let mut page = BillingPage {
        nav: Nav::of(&p),
        form: query.clone(),
        lines: Vec::new(),
        total: String::new(),
        notes: Vec::new(),
        estimate: String::new(),
        templates: service::templates()?
            .all()
            .iter()
            .map(|t| (t.id.clone(), t.title.clone()))
            .collect(),
        error: String::new(),
    };
    if q(&query, "drug").is_empty() && q(&query, "session").is_empty() {
        return Ok(render_html(&page));
    }
    let prices = s.store.prices(&p.actor).await?;
    let book = service::code_book()?;
    let r = async {
        // From a session's own record (the session page links here), with the switches of the
        // site it was held at; or from the form, with the working site's.
        let (facts, at) = match q(&query, "session") {
            "" => (facts_from(&query)?, p.site),
            sid => {
                let sid = sid
                    .parse()
                    .map_err(|_| AppError::invalid("session", "a session id"))?;
                let (facts, site) =
                    service::facts_of_session(s.store.as_ref(), &p.actor, sid).await?;
                (facts, Some(site))
            }
        };
        let values = service::site_values(s.store.as_ref(), at).await?;
        let site = service::billing_site(&values);
        let bill = billing::superbill(&facts, &book, &prices, site)
            .map_err(|e| AppError::invalid(&e.field, e.message))?;
        let estimate = match q(&query, "template_id") {
            "" => String::new(),
            t => match service::plan(&values, t, s.today(), jiff::civil::Time::midnight()) {
                // A course that cannot be planned yet (a site setting missing) still gets its superbill.
                Err(e) => format!("No course estimate: {}", error_text(&e.into())),
                Ok((_, _, sessions)) => {
                    let e = billing::course_estimate(
                        &facts,
                        sessions.len() as u32,
                        &book,
                        &prices,
                        site,
                    )
                    .map_err(|e| AppError::invalid(&e.field, e.message))?;
                    match e.total_cents {
                        Some(c) => format!(
                            "Self-pay estimate for the course ({} sessions): {}",
                            e.sessions,
                            money(c)
                        ),
                        None => format!(
                            "Self-pay estimate for {} sessions: the site has not priced {}",
                            e.sessions,
                            e.per_session.unpriced.join(", ")
                        ),
                    }
                }
            },
        };
        Ok::<_, AppError>((bill, estimate))
    }
    .await;
    match r {
        Ok((bill, estimate)) => {
            page.lines = bill
                .lines
                .iter()
                .map(|l| {
                    (
                        l.code.clone(),
                        l.description.clone(),
                        l.units,
                        l.modifier.clone().unwrap_or_default(),
                        l.basis.clone(),
                        format!("{} ({})", l.source.join(", "), l.status),
                        l.amount_cents
                            .map(money)
                            .unwrap_or_else(|| "not priced".into()),
                    )
                })
                .collect();
            page.total = match bill.total_cents {
                Some(c) => money(c),
                None => format!(
                    "incomplete: the site has not priced {}",
                    bill.unpriced.join(", ")
                ),
            };
            page.notes = bill.notes;
            page.estimate = estimate;
            Ok(render_html(&page))
        }
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            page.error = error_text(&e);
            Ok(with_status(e.status(), render_html(&page)))
        }
        Err(e) => Err(PageError(e)),
    }
}
