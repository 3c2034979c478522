//! Reaching patients between sessions: contact preferences and consent to be contacted, sending
//! a questionnaire link through the outbox, and draining the outbox through the site's channels.
//!
//! The decisions are `ketcare_ops::outreach`'s (who may be contacted, on which channel, the
//! words, the back-off, quiet hours); this module loads the facts — the preference in force, the
//! addresses on the record, the site's delivery settings — and has the store write.

use crate::{Error, Result};
use async_trait::async_trait;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ketcare_clinical::SiteSettings;
use ketcare_core::patient::{PatientDemographics, VisiblePatient};
use ketcare_core::{Actor, GuardianId, PatientId};
use ketcare_measures::sending::{CourseFacts, SendSchedule, occurrences};
use ketcare_ops::outreach::{
    Attempt, CLAIM_SECONDS, Channel, Next, QuietHours, Reach, Unreachable, after_attempt,
    link_message, reminder_due, route,
};
use ketcare_store::Store;
use ketcare_store::measures::MeasureLink;
use ketcare_store::outreach::{
    ContactPreference, NewContactPreference, NewLink, NewMessage, OutboxMessage, StoredSchedule,
};
use serde::{Deserialize, Serialize};

/// Site setting (text): the address patients open links at, e.g. `https://care.example.org`.
pub const PUBLIC_URL: &str = "outreach.public_url";
/// Site setting (text): the SMTP relay's host name.
pub const SMTP_HOST: &str = "outreach.smtp_host";
/// Site setting (number): the SMTP relay's port.
pub const SMTP_PORT: &str = "outreach.smtp_port";
/// Site setting (text): `tls` (implicit TLS), `starttls` or `none` (a relay on this host only).
pub const SMTP_SECURITY: &str = "outreach.smtp_security";
/// Site setting (text): the sender's address.
pub const EMAIL_FROM: &str = "outreach.email_from";
/// Site setting (text): the SMS gateway's webhook URL.
pub const SMS_GATEWAY_URL: &str = "outreach.sms_gateway_url";
/// Site setting (number): days after a link's message before an unanswered link is reminded of
/// (once).
pub const REMINDER_AFTER_DAYS: &str = "outreach.reminder_after_days";
/// Site setting (number): how many reminders an unanswered link gets, one a day from the first
/// (1 when unset).
pub const REMINDER_COUNT: &str = "outreach.reminder_count";
/// Site setting (text): quiet hours, `HH:MM-HH:MM` in the site's time zone.
pub const QUIET_HOURS: &str = "outreach.quiet_hours";

/// The form of a delivery text setting, or `None` for another key.
pub fn text_format(key: &str) -> Option<crate::settings_registry::TextFormat> {
    use crate::settings_registry::TextFormat;
    match key {
        PUBLIC_URL | SMS_GATEWAY_URL => Some(TextFormat::Url),
        SMTP_HOST => Some(TextFormat::Host),
        EMAIL_FROM => Some(TextFormat::Email),
        SMTP_SECURITY => Some(TextFormat::SmtpSecurity),
        QUIET_HOURS => Some(TextFormat::QuietHours),
        _ => None,
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, required (port 587).
    StartTls,
    /// No TLS: only for a relay on the same host or a test server.
    None,
}

impl SmtpSecurity {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "tls" => Some(Self::Tls),
            "starttls" => Some(Self::StartTls),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// The site's delivery settings, as saved (read at the time of use).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettings {
    pub public_url: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_security: SmtpSecurity,
    pub email_from: Option<String>,
    pub sms_gateway_url: Option<String>,
    pub quiet_hours: Option<QuietHours>,
}

impl DeliverySettings {
    pub fn of(s: &SiteSettings) -> Self {
        let text = |k: &str| s.text(k).map(str::to_owned);
        DeliverySettings {
            public_url: text(PUBLIC_URL).map(|u| u.trim_end_matches('/').to_owned()),
            smtp_host: text(SMTP_HOST),
            smtp_port: s
                .value(SMTP_PORT)
                .filter(|p| p.fract() == 0.0 && (1.0..=65535.0).contains(p))
                .map(|p| p as u16),
            smtp_security: s
                .text(SMTP_SECURITY)
                .and_then(SmtpSecurity::parse)
                .unwrap_or(SmtpSecurity::StartTls),
            email_from: text(EMAIL_FROM),
            sms_gateway_url: text(SMS_GATEWAY_URL),
            quiet_hours: s.text(QUIET_HOURS).and_then(|q| QuietHours::parse(q).ok()),
        }
    }

    /// Email can be sent: a relay, a sender and the address links are opened at.
    pub fn email_ready(&self) -> bool {
        self.public_url.is_some() && self.smtp_host.is_some() && self.email_from.is_some()
    }

    /// SMS can be sent: a gateway and the address links are opened at.
    pub fn sms_ready(&self) -> bool {
        self.public_url.is_some() && self.sms_gateway_url.is_some()
    }

    /// When a message due at `at` may go, after the quiet hours.
    pub fn release(&self, at: i64, zone: &TimeZone) -> i64 {
        match (self.quiet_hours, Timestamp::from_second(at)) {
            (Some(q), Ok(t)) => q.release(t, zone).as_second(),
            _ => at,
        }
    }
}

/// The site's delivery settings as saved now.
pub async fn delivery_settings(store: &dyn Store) -> Result<DeliverySettings> {
    let (s, _) = crate::clinical::settings(store).await?;
    Ok(DeliverySettings::of(&s))
}

/// A preference as a request carries it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ContactInput {
    /// The guardian of record it is for; absent: the patient.
    #[serde(default)]
    pub guardian_id: Option<i64>,
    /// `email`, `sms` or `none`.
    pub channel: String,
    /// Consent to be contacted on that channel, as stated by the patient or guardian.
    pub consented: bool,
}

/// Records a contact preference (the patient's, or a guardian's of record).
pub async fn record_contact(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    input: &ContactInput,
) -> Result<ContactPreference> {
    let channel = Channel::parse(input.channel.trim())
        .ok_or_else(|| Error::invalid("channel", "expected email, sms or none"))?;
    if channel == Channel::None && input.consented {
        return Err(Error::invalid(
            "consented",
            "consent to be contacted needs a channel (email or sms)",
        ));
    }
    Ok(store
        .record_contact_preference(
            actor,
            patient,
            &NewContactPreference {
                guardian_id: input.guardian_id.map(GuardianId::new),
                channel,
                consented: input.consented,
            },
        )
        .await?)
}

/// One recipient's contact: who, their addresses on the record, the preference in force.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Contact {
    /// `None`: the patient.
    #[schema(value_type = Option<i64>)]
    pub guardian_id: Option<GuardianId>,
    /// "patient", or the guardian's name and relationship.
    pub who: String,
    pub email: String,
    pub phone: String,
    pub preference: Option<ContactPreference>,
    /// Why a link would not be sent to them now (`None`: it would be).
    pub not_sent_because: Option<String>,
}

/// The patient's and guardians' contacts, and every preference recorded (newest first).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Contacts {
    pub contacts: Vec<Contact>,
    pub history: Vec<ContactPreference>,
}

fn demographics(v: VisiblePatient) -> PatientDemographics {
    match v {
        VisiblePatient::Full(p) => p.into(),
        VisiblePatient::Demographics(d) => d,
    }
}

fn in_force(
    history: &[ContactPreference],
    guardian: Option<GuardianId>,
) -> Option<&ContactPreference> {
    // Newest first: the first of the recipient is the one in force.
    history.iter().find(|p| p.guardian_id == guardian)
}

fn reach_of<'a>(
    pref: Option<&ContactPreference>,
    email: &'a str,
    phone: &'a str,
) -> Option<Reach<'a>> {
    pref.map(|p| Reach {
        channel: p.channel,
        consented: p.consented,
        email,
        phone,
    })
}

/// The patient's contacts (`PatientRead`).
pub async fn contacts(store: &dyn Store, actor: &Actor, patient: PatientId) -> Result<Contacts> {
    let record = demographics(Store::patient_view(store, actor, patient).await?);
    let history = store.contact_preferences(actor, patient).await?;
    let settings = delivery_settings(store).await?;
    let mut out = Vec::new();
    let mut add = |guardian: Option<GuardianId>, who: String, email: &str, phone: &str| {
        let pref = in_force(&history, guardian).cloned();
        let why = route(
            reach_of(pref.as_ref(), email, phone).as_ref(),
            settings.email_ready(),
            settings.sms_ready(),
        )
        .err()
        .map(|e| e.to_string());
        out.push(Contact {
            guardian_id: guardian,
            who,
            email: email.to_owned(),
            phone: phone.to_owned(),
            preference: pref,
            not_sent_because: why,
        });
    };
    add(None, "patient".into(), &record.email, &record.phone);
    for g in &record.guardians {
        add(
            Some(g.id),
            format!(
                "{} ({})",
                g.record.name,
                g.record.relationship.as_str().replace('_', " ")
            ),
            &g.record.email,
            &g.record.phone,
        );
    }
    Ok(Contacts {
        contacts: out,
        history,
    })
}

/// A link made for a patient: the token (shown once), and the message queued, or why none was.
#[derive(Debug, Clone)]
pub struct SentLink {
    pub link: MeasureLink,
    pub token: String,
    pub message: Option<OutboxMessage>,
    pub not_sent: Option<Unreachable>,
}

/// Creates a questionnaire link and, where the recipient consents to be contacted on a channel
/// the site has configured, queues its message in the same transaction. Otherwise the link is
/// made as before, to be handed over, and `not_sent` says why no message was queued.
#[allow(clippy::too_many_arguments)]
pub async fn send_link(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    instruments: &[String],
    hours: Option<i64>,
    guardian: Option<GuardianId>,
    now: i64,
    zone: &TimeZone,
) -> Result<SentLink> {
    let expires_at = crate::measures::link_expiry(instruments, hours, now)?;
    let p = prepare(store, actor, patient, guardian, (now, zone), false).await?;
    let link = NewLink {
        token_hash: &p.token_hash,
        instruments,
        expires_at,
        guardian,
    };
    let Some(m) = &p.message else {
        let link = store
            .create_link(
                actor,
                patient,
                &p.token_hash,
                instruments,
                expires_at,
                guardian,
            )
            .await?;
        return Ok(SentLink {
            link,
            token: p.token,
            message: None,
            not_sent: p.not_sent,
        });
    };
    let (link, message) = store
        .create_link_with_message(actor, patient, &link, m)
        .await?;
    Ok(SentLink {
        link,
        token: p.token,
        message: Some(message),
        not_sent: None,
    })
}

/// A new link's token and, where the recipient may be reached, its message.
struct Prepared {
    token: String,
    token_hash: String,
    message: Option<NewMessage>,
    not_sent: Option<Unreachable>,
}

/// Makes a token and routes its message from the record: the recipient's addresses, the
/// preference in force and the site's delivery settings.
async fn prepare(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    guardian: Option<GuardianId>,
    (now, zone): (i64, &TimeZone),
    reminder: bool,
) -> Result<Prepared> {
    let record = demographics(Store::patient_view(store, actor, patient).await?);
    let (email, phone) = match guardian {
        None => (record.email.clone(), record.phone.clone()),
        Some(g) => match record.guardians.iter().find(|x| x.id == g) {
            Some(x) => (x.record.email.clone(), x.record.phone.clone()),
            None => {
                return Err(Error::invalid(
                    "guardian_id",
                    "not a guardian of record of this patient",
                ));
            }
        },
    };
    let history = store.contact_preferences(actor, patient).await?;
    let pref = in_force(&history, guardian);
    let settings = delivery_settings(store).await?;
    let routed = route(
        reach_of(pref, &email, &phone).as_ref(),
        settings.email_ready(),
        settings.sms_ready(),
    );
    let token = crate::password::random_token();
    let token_hash = crate::password::token_hash(&token);
    let message = match (&routed, pref, settings.public_url.as_deref()) {
        (Ok(r), Some(pref), Some(base)) => {
            let url = format!("{base}{}", crate::measures::link_path(&token));
            let text = link_message(r.channel, &url, reminder);
            Some(NewMessage {
                preference_id: pref.id,
                channel: r.channel,
                recipient: r.address.clone(),
                subject: text.subject,
                body: text.body,
                first_attempt_at: settings.release(now, zone),
                reminder,
            })
        }
        _ => None,
    };
    Ok(Prepared {
        token,
        token_hash,
        message,
        not_sent: routed.err(),
    })
}

/// The account the schedule runner acts as: a nurse's rights (it reads the course and its
/// sessions and creates links), recorded under its own name.
pub fn schedules_actor() -> Actor {
    Actor {
        user_id: None,
        username: "system:schedules".into(),
        role: Some(ketcare_core::Role::Nurse),
        address: "local".into(),
    }
}

/// Adds a schedule to a patient's course: its questionnaire (the course's instrument) is then
/// sent by itself. Occurrences due before the schedule was added are not sent.
pub async fn add_schedule(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    course_id: i64,
    schedule: &SendSchedule,
    guardian: Option<GuardianId>,
    now: i64,
) -> Result<StoredSchedule> {
    schedule
        .check()
        .map_err(|e| Error::invalid(e.field(), e.to_string()))?;
    let json = serde_json::to_string(schedule).map_err(|_| Error::Internal)?;
    Ok(store
        .add_schedule(actor, patient, course_id, &json, guardian, now)
        .await?)
}

/// The facts schedule `sch` (rule `rule`) reads: its course and, where the rule needs them, the
/// days a dose was given and the booked sessions (each read audited). `None`: the course is
/// gone or its dates do not parse.
async fn course_facts(
    store: &dyn Store,
    actor: &Actor,
    sch: &StoredSchedule,
    rule: &SendSchedule,
    zone: &TimeZone,
) -> Result<Option<(ketcare_store::measures::MeasureCourse, CourseFacts)>> {
    let courses = store.patient_courses(actor, sch.patient_id).await?;
    let Some(course) = courses.into_iter().find(|c| c.id == sch.course_id) else {
        return Ok(None);
    };
    let (Ok(first_day), last_day) = (
        course.started_on.parse::<jiff::civil::Date>(),
        course.ended_on.as_deref().and_then(|d| d.parse().ok()),
    ) else {
        return Ok(None);
    };
    // Only the facts the rule reads are loaded.
    let dose_days = match rule {
        SendSchedule::BeforeEachSession { .. }
        | SendSchedule::EveryDays {
            restart_at_treatment: false,
            ..
        } => Vec::new(),
        _ => store
            .patient_sessions(actor, sch.patient_id)
            .await?
            .iter()
            .filter_map(|s| s.session.dose_start())
            .map(|t| t.to_zoned(zone.clone()).date())
            .collect(),
    };
    let booked = match rule {
        SendSchedule::BeforeEachSession { .. } => store
            .patient_bookings(actor, sch.patient_id)
            .await?
            .into_iter()
            .filter(|b| b.status == ketcare_ops::schedule::BookingStatus::Booked)
            .map(|b| (b.id.get(), b.start))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Some((
        course,
        CourseFacts {
            first_day,
            last_day,
            dose_days,
            sessions: booked,
        },
    )))
}

/// How far ahead a schedule's next occurrence is looked for (a year: the longest gap a rule
/// allows).
const NEXT_WITHIN_DAYS: i64 = 366;

/// A course's schedule as staff see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    #[serde(flatten)]
    pub schedule: StoredSchedule,
    /// The rule in words.
    pub rule: String,
    /// The course's questionnaire.
    pub instrument: Option<String>,
    /// When the next occurrence is due (civil time in the site's zone, `YYYY-MM-DDTHH:MM:SS`),
    /// as the record stands now (a dose given later moves a rule counted from treatment);
    /// `None` when stopped or when none falls within a year.
    pub next_at: Option<String>,
}

/// The patient's course schedules, running and stopped, each with its next occurrence after
/// `now` (reads audited).
pub async fn schedules(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    now: i64,
    zone: &TimeZone,
) -> Result<Vec<ScheduleView>> {
    let now_local = Timestamp::from_second(now)
        .map_err(|_| Error::Internal)?
        .to_zoned(zone.clone())
        .datetime();
    let until = now_local
        .checked_add(jiff::Span::new().days(NEXT_WITHIN_DAYS))
        .unwrap_or(now_local);
    let mut out = Vec::new();
    for sch in store.patient_schedules(actor, patient).await? {
        let Ok(rule) = serde_json::from_str::<SendSchedule>(&sch.schedule) else {
            tracing::error!(schedule = sch.id, "a stored schedule does not parse");
            continue;
        };
        let facts = course_facts(store, actor, &sch, &rule, zone).await?;
        let next_at = match (&facts, &sch.stopped_at) {
            (Some((_, f)), None) => occurrences(&rule, f, until)
                .into_iter()
                .find(|o| o.at > now_local)
                .map(|o| o.at.to_string()),
            _ => None,
        };
        out.push(ScheduleView {
            rule: rule.describe(),
            instrument: facts.map(|(c, _)| c.instrument),
            next_at,
            schedule: sch,
        });
    }
    Ok(out)
}

/// Stops one of the patient's schedules: the runner sends nothing more for it (who and when
/// recorded; audited).
pub async fn stop_schedule(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
    schedule_id: i64,
) -> Result<StoredSchedule> {
    Ok(store.stop_schedule(actor, patient, schedule_id).await?)
}

/// One pass of the schedule runner at `now`: for each schedule, the newest occurrence due (after
/// the schedule was added) is sent once — a link for the course's questionnaire, and its message
/// where the recipient may be reached — the store's unique key on (schedule, occurrence) making
/// a second pass, another runner or a restart send nothing more. After a pause only the newest
/// due occurrence goes: the patient gets one current questionnaire, not the ones missed.
/// Returns the links made.
pub async fn run_schedules(
    store: &dyn Store,
    now: i64,
    zone: &TimeZone,
) -> Result<Vec<MeasureLink>> {
    let actor = schedules_actor();
    let until = Timestamp::from_second(now)
        .map_err(|_| Error::Internal)?
        .to_zoned(zone.clone())
        .datetime();
    let mut made = Vec::new();
    for sch in store.active_schedules().await? {
        let Ok(rule) = serde_json::from_str::<SendSchedule>(&sch.schedule) else {
            tracing::error!(schedule = sch.id, "a stored schedule does not parse");
            continue;
        };
        let Some((course, facts)) = course_facts(store, &actor, &sch, &rule, zone).await? else {
            continue;
        };
        let due = occurrences(&rule, &facts, until);
        let newest = due.iter().rev().find(|o| {
            o.at.to_zoned(zone.clone())
                .is_ok_and(|z| z.timestamp().as_second() >= sch.created_epoch)
        });
        let Some(occ) = newest else { continue };
        if store.occurrence_sent(sch.id, &occ.key).await? {
            continue;
        }
        let instruments = vec![course.instrument.clone()];
        let expires_at = crate::measures::link_expiry(&instruments, None, now)?;
        let p = prepare(
            store,
            &actor,
            sch.patient_id,
            sch.guardian_id,
            (now, zone),
            false,
        )
        .await?;
        let sent = store
            .send_occurrence(
                &actor,
                &sch,
                &occ.key,
                &NewLink {
                    token_hash: &p.token_hash,
                    instruments: &instruments,
                    expires_at,
                    guardian: sch.guardian_id,
                },
                p.message.as_ref(),
            )
            .await;
        match sent {
            Ok(Some(link)) => made.push(link),
            Ok(None) => {}
            // A preference changed between routing and sending: the next pass routes again.
            Err(ketcare_store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(made)
}

/// A patient's messages, newest first.
pub async fn messages(
    store: &dyn Store,
    actor: &Actor,
    patient: PatientId,
) -> Result<Vec<OutboxMessage>> {
    Ok(store.patient_messages(actor, patient).await?)
}

/// The channels a message is handed to (SMTP and the SMS webhook in the server; a recorder in
/// tests).
#[async_trait]
pub trait Channels: Send + Sync {
    async fn send(&self, message: &OutboxMessage, settings: &DeliverySettings) -> Attempt;
}

/// Hands every message due at `now` to its channel, one at a time, and records each outcome;
/// returns the messages as they were left. A failed try is retried after the back-off (moved
/// past the quiet hours), a last or permanent failure fails the message.
pub async fn deliver_due(
    store: &dyn Store,
    channels: &dyn Channels,
    now: i64,
    zone: &TimeZone,
) -> Result<Vec<OutboxMessage>> {
    let settings = delivery_settings(store).await?;
    let mut done = Vec::new();
    while let Some(m) = store.claim_due_message(now, now + CLAIM_SECONDS).await? {
        let outcome = channels.send(&m, &settings).await;
        let attempts = u32::try_from(m.attempts).unwrap_or(u32::MAX);
        let next = match after_attempt(attempts, outcome, now) {
            Next::Retry { at, error } => Next::Retry {
                at: settings.release(at, zone),
                error,
            },
            other => other,
        };
        done.push(store.finish_attempt(&m, &next).await?);
    }
    Ok(done)
}

/// The longest gateway error kept with a message (its words are the gateway's, shown to staff).
const RECEIPT_ERROR_CHARS: usize = 300;

/// A delivery receipt from the SMS gateway, already authenticated by the edge (its signature).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptInput {
    /// The `message_id` ketcare sent the message with.
    pub message_id: i64,
    /// `delivered` or `failed`.
    pub status: ketcare_ops::outreach::Receipt,
    /// The gateway's reason, when it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// What a receipt did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReceiptOutcome {
    pub message_id: i64,
    pub status: ketcare_ops::outreach::MessageState,
    /// `false` when the message was already so (a repeated receipt).
    pub changed: bool,
}

/// Records the gateway's delivery receipt: a sent text message becomes delivered or failed,
/// once (as `system:outbox`, audited). An unknown message is not found; a message not sent yet,
/// not a text message, or already final the other way is a conflict.
pub async fn record_receipt(store: &dyn Store, input: &ReceiptInput) -> Result<ReceiptOutcome> {
    let error = input
        .error
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| e.chars().take(RECEIPT_ERROR_CHARS).collect::<String>());
    let (msg, changed) = store
        .record_receipt(
            ketcare_core::MessageId::new(input.message_id),
            input.status,
            error.as_deref(),
        )
        .await?;
    Ok(ReceiptOutcome {
        message_id: msg.id.get(),
        status: msg.status,
        changed,
    })
}

/// How far back the unanswered-links queue looks: links that expired in the last two weeks.
/// How much a working list shows, not a clinical limit (a newer answered link also clears one).
pub const UNANSWERED_QUEUE_DAYS: i64 = 14;

/// The clinicians' queue of questionnaire links that expired unanswered, one item per patient
/// (their newest such link), urgent when the patient's last suicide-risk screen was positive
/// (`ketcare_measures::sending::last_screen_positive`, from their responses and alerts).
pub async fn unanswered_queue(
    store: &dyn Store,
    actor: &Actor,
    now: Timestamp,
) -> Result<crate::worklists::Queue> {
    let to = now.as_second();
    let links = store
        .expired_unanswered_links(actor, to - UNANSWERED_QUEUE_DAYS * 86_400, to)
        .await?;
    let mut newest: std::collections::BTreeMap<PatientId, &MeasureLink> = Default::default();
    for l in &links {
        newest.insert(l.patient_id, l);
    }
    let ids: Vec<PatientId> = newest.keys().copied().collect();
    let people = crate::patients::labels(store, actor, &ids).await?;
    let screening: Vec<String> = crate::measures::catalogue()
        .map(|c| {
            c.instruments
                .iter()
                .filter(|i| i.has_safety_items())
                .map(|i| i.id.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut items = Vec::new();
    for (pid, link) in newest {
        let at = |s: &str| s.parse::<Timestamp>().ok();
        let screens: Vec<(Timestamp, i64)> = store
            .patient_responses(actor, pid)
            .await?
            .iter()
            .filter(|r| screening.contains(&r.instrument))
            .filter_map(|r| at(&r.recorded_at).map(|t| (t, r.id.get())))
            .collect();
        let alerts: Vec<(Timestamp, Option<i64>)> = store
            .patient_alerts(actor, pid)
            .await?
            .iter()
            .filter_map(|a| at(&a.raised_at).map(|t| (t, a.response_id.map(|r| r.get()))))
            .collect();
        let urgent = ketcare_measures::sending::last_screen_positive(&screens, &alerts);
        let expired = Timestamp::from_second(link.expires_at)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        items.push(crate::worklists::WorkItem {
            label: people
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| "a patient".into()),
            detail: format!(
                "{} — link to {} expired unanswered {expired}{}",
                link.instruments.join(", "),
                link.sent_to,
                if urgent {
                    "; last suicide-risk screen positive: reach them now"
                } else {
                    ""
                }
            ),
            href: format!("/patients/{pid}/measures"),
            urgent,
        });
    }
    // Urgent first, as the other queues put what needs attention now.
    items.sort_by_key(|i| !i.urgent);
    Ok(crate::worklists::Queue {
        id: "links-unanswered",
        title: "Questionnaire links expired unanswered",
        empty: "No questionnaire link has expired unanswered in the last two weeks.",
        items,
    })
}

/// One pass of reminders at `now`: each unanswered, unexpired link whose message was first due
/// `outreach.reminder_after_days` days ago or more is reminded of, then once a day, up to
/// `outreach.reminder_count` reminders (1 when unset); each reminder gives the link a new token
/// and sends it (the old address stops working), once — where its recipient may still be
/// reached. After a pause only the newest reminder due goes. Nothing while the site has not set
/// the number of days.
pub async fn send_reminders(
    store: &dyn Store,
    now: i64,
    zone: &TimeZone,
) -> Result<Vec<OutboxMessage>> {
    let (site, _) = crate::clinical::settings(store).await?;
    let Some(days) = site.value(REMINDER_AFTER_DAYS) else {
        return Ok(Vec::new());
    };
    let count = site
        .value(REMINDER_COUNT)
        .filter(|c| c.fract() == 0.0 && *c >= 0.0)
        .map_or(1, |c| c.min(f64::from(u32::MAX)) as u32);
    let actor = schedules_actor();
    let mut sent = Vec::new();
    for r in store
        .links_to_remind(now - (days * 86_400.0) as i64, now)
        .await?
    {
        let Some(number) = reminder_due(r.first_due_at, days, count, now) else {
            continue;
        };
        if number <= r.reminders_sent {
            continue;
        }
        let link = &r.link;
        let p = prepare(
            store,
            &actor,
            link.patient_id,
            link.guardian_id,
            (now, zone),
            true,
        )
        .await?;
        let Some(m) = &p.message else { continue };
        match store
            .remind(&actor, link, number, &p.token_hash, m, now)
            .await
        {
            Ok(Some(msg)) => sent.push(msg),
            Ok(None) | Err(ketcare_store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
}
