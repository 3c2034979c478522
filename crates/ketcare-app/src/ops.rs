//! The operations use cases the pages, the API and the CLI share: site settings as the operations core
//! reads them, course planning and booking, witness sign-off, ledger and billing calls.

use crate::error::Error as AppError;
use crate::password::{verify_dummy, verify_password};
use jiff::civil::{Date, Time};
use ketcare_core::{Actor, BookingId, PatientId, Role, SessionId};
use ketcare_ops::billing::{CodeBook, SiteBilling};
use ketcare_ops::ledger::Witness;
use ketcare_ops::schedule::{
    Booking, BookingStatus, CourseTemplate, NURSE_MAX_CONCURRENT_SETTING, PlannedSession,
    SlotRules, Staffing, Templates,
};
use ketcare_store::{BookOutcome, NewCourse, Store};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The settings in force at a site as strings, for the operations core's lookups: the site's
/// own keys over the organisation's; with no site, the organisation's alone.
pub async fn site_values(
    store: &dyn Store,
    site: Option<i64>,
) -> Result<BTreeMap<String, String>, AppError> {
    let settings = match site {
        Some(site) => crate::clinical::settings_at(store, site).await?.settings,
        None => crate::clinical::settings(store).await?.0,
    };
    Ok(settings
        .values
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect())
}

/// The site of a chair of the actor's sites; any other chair is refused naming `chair_id`.
pub async fn chair_site(store: &dyn Store, actor: &Actor, chair: i64) -> Result<i64, AppError> {
    store
        .chairs(actor)
        .await?
        .into_iter()
        .find(|c| c.id == chair)
        .map(|c| c.site_id)
        .ok_or_else(|| AppError::invalid("chair_id", format!("no chair {chair} at your sites")))
}

/// The site a booking is at (its chair's), for the settings its move is checked against.
pub async fn booking_site(
    store: &dyn Store,
    actor: &Actor,
    booking: BookingId,
) -> Result<i64, AppError> {
    let b = store.booking(actor, booking).await?;
    chair_site(store, actor, b.chair_id).await
}

pub fn lookup(values: &BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |k| values.get(k).cloned()
}

/// How many patients a nurse may monitor at once (site setting; one when unset).
pub fn staffing(values: &BTreeMap<String, String>) -> Staffing {
    let max = values
        .get(NURSE_MAX_CONCURRENT_SETTING)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.fract() == 0.0 && *v >= 1.0 && *v <= 20.0)
        .map(|v| v as u32)
        .unwrap_or(1);
    Staffing {
        nurse_max_concurrent: max,
    }
}

pub fn billing_site(values: &BTreeMap<String, String>) -> SiteBilling {
    SiteBilling::from_settings(&lookup(values))
}

pub fn templates() -> Result<Templates, AppError> {
    Templates::builtin().map_err(|e| {
        tracing::error!(error = %e, "course templates");
        AppError::Internal
    })
}

pub fn code_book() -> Result<CodeBook, AppError> {
    CodeBook::builtin().map_err(|e| {
        tracing::error!(error = %e, "billing codes");
        AppError::Internal
    })
}

/// A course to book: the patient, the template, where and when it starts, on which chair with
/// which nurse.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = BookingCourseRequest)]
pub struct CourseRequest {
    pub patient_id: i64,
    pub template_id: String,
    /// One of the template's protocols; the first when omitted.
    #[serde(default)]
    pub protocol_id: Option<String>,
    /// `YYYY-MM-DD`
    pub first_day: String,
    /// `HH:MM`
    pub time: String,
    pub chair_id: i64,
    pub nurse_id: i64,
}

pub fn parse_date(field: &str, v: &str) -> Result<Date, AppError> {
    v.trim()
        .parse()
        .map_err(|_| AppError::invalid(field, format!("`{v}` is not a date (YYYY-MM-DD)")))
}

pub fn parse_time(field: &str, v: &str) -> Result<Time, AppError> {
    v.trim()
        .parse()
        .map_err(|_| AppError::invalid(field, format!("`{v}` is not a time (HH:MM)")))
}

pub fn parse_datetime(field: &str, v: &str) -> Result<jiff::civil::DateTime, AppError> {
    v.trim().parse().map_err(|_| {
        AppError::invalid(
            field,
            format!("`{v}` is not a date and time (YYYY-MM-DDTHH:MM)"),
        )
    })
}

/// The template, its slot rules under the site's settings, and the planned sessions.
pub fn plan(
    values: &BTreeMap<String, String>,
    template_id: &str,
    first_day: Date,
    time: Time,
) -> Result<(CourseTemplate, SlotRules, Vec<PlannedSession>), AppError> {
    let ts = templates()?;
    let t = ts.get(template_id).cloned().ok_or_else(|| {
        AppError::invalid(
            "template_id",
            format!(
                "unknown course template `{template_id}`; expected one of {}",
                ts.all()
                    .iter()
                    .map(|t| t.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let rules = t
        .slot_rules(&lookup(values))
        .map_err(|e| AppError::Conflict(format!("booking is blocked: {e}")))?;
    let sessions = t.plan(&rules, first_day, time);
    Ok((t, rules, sessions))
}

/// Plans the course and books every session, or returns the conflicts.
pub async fn book_course(
    store: &dyn Store,
    actor: &Actor,
    req: &CourseRequest,
) -> Result<(Vec<PlannedSession>, BookOutcome), AppError> {
    let site = chair_site(store, actor, req.chair_id).await?;
    let values = site_values(store, Some(site)).await?;
    let first = parse_date("first_day", &req.first_day)?;
    let time = parse_time("time", &req.time)?;
    let (t, rules, sessions) = plan(&values, &req.template_id, first, time)?;
    let protocol = match &req.protocol_id {
        Some(p) if !p.trim().is_empty() => {
            if !t.protocols.iter().any(|q| q == p.trim()) {
                return Err(AppError::invalid(
                    "protocol_id",
                    format!("template {} is for {}", t.id, t.protocols.join(", ")),
                ));
            }
            p.trim().to_owned()
        }
        _ => t.protocols.first().cloned().unwrap_or_default(),
    };
    // A site's own protocol is booked in that site's chairs only.
    crate::clinical::protocol_used_at(store, &protocol, site, "protocol_id").await?;
    let requests: Vec<Booking> = sessions
        .iter()
        .map(|p| Booking {
            id: BookingId::new(0),
            course_id: None,
            patient_id: req.patient_id,
            chair_id: req.chair_id,
            nurse_id: req.nurse_id,
            prescriber_required: rules.prescriber_on_site,
            start: p.start,
            end: p.end,
            status: BookingStatus::Booked,
            phase: p.phase,
        })
        .collect();
    let outcome = store
        .book(
            actor,
            Some(&NewCourse {
                patient_id: PatientId::new(req.patient_id),
                template_id: t.id.clone(),
                protocol_id: protocol,
            }),
            &requests,
            staffing(&values),
        )
        .await?;
    Ok((sessions, outcome))
}

/// The sign-in lock-out a witness password counts towards (the site's own security setting).
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    /// Failed attempts in a row before the account is locked.
    pub attempts: i64,
    /// How long a locked account stays locked.
    pub minutes: i64,
}

/// A witness signs by entering their own username and password on the recording clinician's
/// screen. The witness must be another account that may handle the drug; a wrong password
/// counts towards the witness account's lock-out like a failed sign-in.
pub async fn witness(
    store: &dyn Store,
    actor: &Actor,
    field: &str,
    username: &str,
    password: &str,
    now: i64,
    lockout: Lockout,
) -> Result<Witness, AppError> {
    let wrong = || AppError::invalid(field, "the witness's username or password is not right");
    let Some(u) = store.user_by_username(username.trim()).await? else {
        verify_dummy(password);
        return Err(wrong());
    };
    if u.disabled {
        verify_dummy(password);
        return Err(wrong());
    }
    if u.locked_until.is_some_and(|t| t > now) {
        return Err(AppError::invalid(field, "the witness's account is locked"));
    }
    if !verify_password(password, &u.password_hash) {
        // The same lock-out as the sign-in form: a witness password is a password.
        let lock = (u.failed_logins + 1 >= lockout.attempts).then_some(now + lockout.minutes * 60);
        store.login_failed(&u, "witness", lock).await?;
        return Err(wrong());
    }
    if Some(u.id) == actor.user_id {
        return Err(AppError::invalid(
            field,
            "the witness must be a different person",
        ));
    }
    // The role is the one the witness holds at the ledger's site: the store puts it in the
    // entry (an account may hold another role at another site) and the ledger's rules refuse
    // a role that may not witness, naming this field.
    Ok(Witness {
        user_id: u.id.get(),
        username: u.username,
        role: u.role,
    })
}

/// Staff who can be chosen as a nurse for a booking.
pub async fn nurses(
    store: &dyn Store,
    actor: &Actor,
) -> Result<Vec<(i64, String, String)>, AppError> {
    Ok(store.staff(actor, Role::Nurse).await?)
}

/// One session outside a course's plan: a maintenance session by schedule, or a booster when a
/// patient is flagged "booster due". Its length comes from the template's slot rules.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct SessionRequest {
    pub patient_id: i64,
    pub template_id: String,
    /// `maintenance` or `booster`
    pub phase: String,
    /// `YYYY-MM-DDTHH:MM`
    pub start: String,
    pub chair_id: i64,
    pub nurse_id: i64,
}

pub async fn book_session(
    store: &dyn Store,
    actor: &Actor,
    req: &SessionRequest,
) -> Result<(Booking, BookOutcome), AppError> {
    let site = chair_site(store, actor, req.chair_id).await?;
    let values = site_values(store, Some(site)).await?;
    let start = parse_datetime("start", &req.start)?;
    let phase = match ketcare_ops::schedule::PhaseKind::parse(req.phase.trim()) {
        Some(
            p @ (ketcare_ops::schedule::PhaseKind::Maintenance
            | ketcare_ops::schedule::PhaseKind::Booster),
        ) => p,
        _ => return Err(AppError::invalid("phase", "maintenance or booster")),
    };
    let ts = templates()?;
    let t = ts.get(&req.template_id).ok_or_else(|| {
        AppError::invalid(
            "template_id",
            format!("unknown course template `{}`", req.template_id),
        )
    })?;
    let rules = t
        .slot_rules(&lookup(&values))
        .map_err(|e| AppError::Conflict(format!("booking is blocked: {e}")))?;
    let end = start
        .checked_add(jiff::Span::new().minutes(i64::from(rules.slot_minutes())))
        .map_err(|_| AppError::invalid("start", "out of range"))?;
    let b = Booking {
        id: BookingId::new(0),
        course_id: None,
        patient_id: req.patient_id,
        chair_id: req.chair_id,
        nurse_id: req.nurse_id,
        prescriber_required: rules.prescriber_on_site,
        start,
        end,
        status: BookingStatus::Booked,
        phase,
    };
    let outcome = store
        .book(actor, None, std::slice::from_ref(&b), staffing(&values))
        .await?;
    Ok((b, outcome))
}

/// What a session's record documents, for its superbill: read under the billing right (a
/// scheduler bills without reading the clinical record).
/// What a session's record documents for its bill, and the site it was held at (whose billing
/// switches apply).
pub async fn facts_of_session(
    store: &dyn Store,
    actor: &Actor,
    sid: SessionId,
) -> Result<(ketcare_ops::SessionFacts, i64), AppError> {
    let rec = store.session_record_for_billing(actor, sid).await?;
    let mut facts = ketcare_store::session_ops::session_facts(sid, rec.patient_id, &rec.session)
        .map_err(AppError::Conflict)?;
    facts.monitoring_minutes = store.session_monitoring_minutes(actor, sid).await?;
    Ok((facts, rec.site_id))
}

/// Records a consent for a patient under a protocol's current document. The protocol must fit the
/// patient as the record has them: the same age rule every dose calculation applies (the
/// protocol's hard age limits, its population, the cited floors), refused naming `protocol_id`.
pub async fn record_consent(
    store: &dyn Store,
    library: &ketcare_clinical::Library,
    actor: &Actor,
    sig: &ketcare_store::NewSignature,
    today: Date,
) -> Result<ketcare_ops::consent::ConsentSignature, AppError> {
    let facts =
        crate::facts::PatientFacts::load(store, actor, sig.patient_id, today, library.age_bands())
            .await?;
    let (settings, _) = crate::clinical::settings(store).await?;
    ketcare_clinical::dose::check_patient_age(
        library,
        &settings,
        &sig.protocol_id,
        facts.clinical_age(),
    )
    .map_err(|e| AppError::invalid("protocol_id", e.to_string()))?;
    Ok(store.record_consent(actor, sig).await?)
}
