//! Reaching a patient between sessions, pure: who may be contacted and on which channel, the
//! words of a message (a greeting and a link, nothing clinical), when a failed delivery is tried
//! again, and the site's quiet hours. No I/O and no clock: the caller passes `now`.

use jiff::civil::Time;
use serde::{Deserialize, Serialize};

/// How a patient (or their guardian) is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    /// Not to be contacted: links are handed over in person.
    None,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            "none" => Some(Channel::None),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Channel::Email => "Email",
            Channel::Sms => "Text message (SMS)",
            Channel::None => "Not to be contacted",
        }
    }
}

/// What the record says about reaching one person: the preference in force, and the
/// addresses on their record.
#[derive(Debug, Clone, PartialEq)]
pub struct Reach<'a> {
    pub channel: Channel,
    /// Consent to be contacted, as recorded.
    pub consented: bool,
    pub email: &'a str,
    pub phone: &'a str,
}

/// Why no message can be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error("no contact preference is recorded")]
    NoPreference,
    #[error("consent to be contacted is not recorded")]
    NoConsent,
    #[error("the contact preference is not to be contacted")]
    ChannelNone,
    #[error("no {channel} address on the record")]
    NoAddress { channel: &'static str },
    #[error("the site has not configured {channel} delivery")]
    ChannelNotConfigured { channel: &'static str },
}

impl Unreachable {
    /// The request or record field the refusal is about.
    pub fn field(&self) -> &'static str {
        match self {
            Unreachable::NoPreference | Unreachable::ChannelNone => "channel",
            Unreachable::NoConsent => "consent",
            Unreachable::NoAddress { channel: "email" } => "email",
            Unreachable::NoAddress { .. } => "phone",
            Unreachable::ChannelNotConfigured { .. } => "channel",
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub channel: Channel,
    pub address: String,
}

/// The route of a message, or why there is none. Nothing is sent without recorded consent, on a
/// channel the site has configured, to an address on the record.
pub fn route(
    reach: Option<&Reach<'_>>,
    email_configured: bool,
    sms_configured: bool,
) -> Result<Route, Unreachable> {
    let r = reach.ok_or(Unreachable::NoPreference)?;
    if r.channel == Channel::None {
        return Err(Unreachable::ChannelNone);
    }
    if !r.consented {
        return Err(Unreachable::NoConsent);
    }
    let (address, configured) = match r.channel {
        Channel::Email => (r.email.trim(), email_configured),
        Channel::Sms => (r.phone.trim(), sms_configured),
        Channel::None => return Err(Unreachable::ChannelNone),
    };
    if address.is_empty() {
        return Err(Unreachable::NoAddress {
            channel: r.channel.as_str(),
        });
    }
    if !configured {
        return Err(Unreachable::ChannelNotConfigured {
            channel: r.channel.as_str(),
        });
    }
    Ok(Route {
        channel: r.channel,
        address: address.to_owned(),
    })
}

/// A message's words: a greeting and the link, nothing else — no instrument, diagnosis, clinic
/// specialty or name, since an email or text can be read by someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText {
    /// Email subject (empty for SMS).
    pub subject: String,
    pub body: String,
}

/// The words of a link message. `reminder` says it is a reminder of the same link.
pub fn link_message(channel: Channel, url: &str, reminder: bool) -> MessageText {
    let opening = if reminder {
        "Hello, a reminder: you have a short form waiting for you."
    } else {
        "Hello, you have a short form waiting for you."
    };
    match channel {
        Channel::Sms => MessageText {
            subject: String::new(),
            body: format!("{opening} {url}"),
        },
        _ => MessageText {
            subject: if reminder {
                "Reminder: a form is waiting for you".into()
            } else {
                "A form is waiting for you".into()
            },
            body: format!("{opening}\n\nPlease open this link to fill it in:\n{url}\n"),
        },
    }
}

/// How many times a message is tried before it is failed. Five tries over about 2.5 hours ride
/// out a relay restart or a gateway outage; after that a person should look (the failure is
/// shown on the patient's page), rather than the link expiring while it is retried.
pub const MAX_ATTEMPTS: u32 = 5;
/// The pause after the first failed try; it doubles after each further failure.
pub const FIRST_RETRY_SECONDS: i64 = 5 * 60;
/// The longest pause between tries.
pub const MAX_RETRY_SECONDS: i64 = 2 * 3600;
/// How long a message being handed to its channel is held by one worker before another may
/// take it again (a crash mid-send): longer than the channels' own timeouts (60 s).
pub const CLAIM_SECONDS: i64 = 120;

/// A message's state in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Waiting for its next try (`next_attempt_at`).
    Queued,
    /// Accepted by the channel (the relay or the gateway).
    Sent,
    /// The channel reported it delivered.
    Delivered,
    /// Given up after [`MAX_ATTEMPTS`], or refused permanently.
    Failed,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Queued => "queued",
            MessageState::Sent => "sent",
            MessageState::Delivered => "delivered",
            MessageState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(MessageState::Queued),
            "sent" => Some(MessageState::Sent),
            "delivered" => Some(MessageState::Delivered),
            "failed" => Some(MessageState::Failed),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            MessageState::Queued => "waiting to be sent",
            MessageState::Sent => "sent",
            MessageState::Delivered => "delivered",
            MessageState::Failed => "could not be sent",
        }
    }
}

/// What one try of a channel gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Accepted,
    /// A failure worth trying again (connection refused, timeout, 4xx SMTP, 5xx HTTP).
    Transient(String),
    /// A failure no retry can mend (a refused address).
    Permanent(String),
}

/// The state after a try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Sent,
    Retry { at: i64, error: String },
    Failed { error: String },
}

/// The pause before try `attempts + 1`, after `attempts` failed tries (1, 2, …):
/// [`FIRST_RETRY_SECONDS`] doubled per further failure, at most [`MAX_RETRY_SECONDS`].
pub fn backoff_seconds(attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(20);
    (FIRST_RETRY_SECONDS << doublings).min(MAX_RETRY_SECONDS)
}

/// The transition of a queued message after its `attempts`-th try (counting this one) at `now`.
pub fn after_attempt(attempts: u32, outcome: Attempt, now: i64) -> Next {
    match outcome {
        Attempt::Accepted => Next::Sent,
        Attempt::Permanent(error) => Next::Failed { error },
        Attempt::Transient(error) if attempts >= MAX_ATTEMPTS => Next::Failed { error },
        Attempt::Transient(error) => Next::Retry {
            at: now + backoff_seconds(attempts),
            error,
        },
    }
}

/// The number of the newest reminder due at `now` (1, 2, …) for a link whose first message was
/// due at `first_due` (epoch seconds): the first `after_days` days later, then one a day, at
/// most `count` in all. `None`: none due yet (or `count` is 0). After a pause only the newest
/// is due, so a runner that was down sends one reminder, not the ones it missed.
pub fn reminder_due(first_due: i64, after_days: f64, count: u32, now: i64) -> Option<u32> {
    const DAY: i64 = 86_400;
    if count == 0 || !after_days.is_finite() || after_days < 0.0 {
        return None;
    }
    let first = first_due.saturating_add((after_days * DAY as f64) as i64);
    if now < first {
        return None;
    }
    let later_days = (now - first) / DAY;
    let number = u32::try_from(later_days.saturating_add(1)).unwrap_or(u32::MAX);
    Some(number.min(count))
}

/// What a channel reported about a message it had accepted (the SMS gateway's delivery
/// receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Receipt {
    Delivered,
    Failed,
}

/// Why a delivery receipt cannot be applied to a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptRefused {
    /// The message has not been accepted by its channel yet (its try is still being recorded,
    /// or it waits): the gateway should send the receipt again later.
    #[error("message {0}: not sent yet, expected a sent message")]
    NotSent(i64),
    /// The message is already final in the other state.
    #[error("message {id}: already {state}, the receipt says {receipt}")]
    Contradicts {
        id: i64,
        state: &'static str,
        receipt: &'static str,
    },
    /// Only text messages have delivery receipts.
    #[error("message {0}: not a text message")]
    NotSms(i64),
}

impl Receipt {
    pub fn state(self) -> MessageState {
        match self {
            Receipt::Delivered => MessageState::Delivered,
            Receipt::Failed => MessageState::Failed,
        }
    }
}

/// The state of message `id` (on `channel`, now `current`) after a delivery receipt:
/// `Ok(Some(state))` to record, `Ok(None)` when it is already so (a repeated receipt changes
/// nothing), or why it cannot apply. Only a sent text message takes one.
pub fn after_receipt(
    id: i64,
    channel: Channel,
    current: MessageState,
    receipt: Receipt,
) -> Result<Option<MessageState>, ReceiptRefused> {
    if channel != Channel::Sms {
        return Err(ReceiptRefused::NotSms(id));
    }
    let wanted = receipt.state();
    match current {
        MessageState::Queued => Err(ReceiptRefused::NotSent(id)),
        MessageState::Sent => Ok(Some(wanted)),
        state if state == wanted => Ok(None),
        state => Err(ReceiptRefused::Contradicts {
            id,
            state: state.as_str(),
            receipt: wanted.as_str(),
        }),
    }
}

/// The site's quiet hours: no message is sent between `start` and `end` (local wall-clock time;
/// `start` after `end` spans midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
}

impl QuietHours {
    /// Reads `HH:MM-HH:MM` (24-hour clock).
    pub fn parse(s: &str) -> Result<QuietHours, String> {
        let (a, b) = s
            .trim()
            .split_once('-')
            .ok_or_else(|| "expected HH:MM-HH:MM, for example 21:00-08:00".to_string())?;
        let t = |x: &str| -> Result<Time, String> {
            let x = x.trim();
            let (h, m) = x
                .split_once(':')
                .ok_or_else(|| format!("{x:?}: expected HH:MM"))?;
            let h: i8 = h.parse().map_err(|_| format!("{x:?}: hour 0–23"))?;
            let m: i8 = m.parse().map_err(|_| format!("{x:?}: minute 0–59"))?;
            Time::new(h, m, 0, 0).map_err(|_| format!("{x:?}: hour 0–23, minute 0–59"))
        };
        let q = QuietHours {
            start: t(a)?,
            end: t(b)?,
        };
        if q.start == q.end {
            return Err("start and end are the same time".into());
        }
        Ok(q)
    }

    /// Whether `at` (local wall-clock time) falls within the quiet hours (start included, end
    /// not).
    pub fn contains(&self, at: Time) -> bool {
        if self.start < self.end {
            self.start <= at && at < self.end
        } else {
            at >= self.start || at < self.end
        }
    }

    /// When a message due at `now` may go: `now` outside the quiet hours, else their end (the
    /// next occurrence of `end` in `zone`).
    pub fn release(&self, now: jiff::Timestamp, zone: &jiff::tz::TimeZone) -> jiff::Timestamp {
        let local = now.to_zoned(zone.clone());
        if !self.contains(local.time()) {
            return now;
        }
        let mut date = local.date();
        if local.time() >= self.end {
            date = date.tomorrow().unwrap_or(date);
        }
        date.to_datetime(self.end)
            .to_zoned(zone.clone())
            .map(|z| z.timestamp())
            .unwrap_or(now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jiff::civil::time;

    fn reach(channel: Channel, consented: bool) -> Reach<'static> {
        Reach {
            channel,
            consented,
            email: "pat@example.org",
            phone: "",
        }
    }

    #[test]
    fn reminders_go_daily_after_the_first_up_to_the_count() {
        const DAY: i64 = 86_400;
        let due = 1_000_000;
        // First after 3 days, then daily, three in all.
        assert_eq!(reminder_due(due, 3.0, 3, due), None);
        assert_eq!(reminder_due(due, 3.0, 3, due + 3 * DAY - 1), None);
        assert_eq!(reminder_due(due, 3.0, 3, due + 3 * DAY), Some(1));
        assert_eq!(reminder_due(due, 3.0, 3, due + 4 * DAY - 1), Some(1));
        assert_eq!(reminder_due(due, 3.0, 3, due + 4 * DAY), Some(2));
        assert_eq!(reminder_due(due, 3.0, 3, due + 5 * DAY), Some(3));
        assert_eq!(reminder_due(due, 3.0, 3, due + 50 * DAY), Some(3));
        assert_eq!(reminder_due(due, 1.0, 0, due + 5 * DAY), None);
        assert_eq!(reminder_due(due, 0.5, 1, due + DAY / 2), Some(1));
    }

    #[test]
    fn a_receipt_finishes_a_sent_text_message_once() {
        use MessageState::*;
        let sms = Channel::Sms;
        assert_eq!(
            after_receipt(1, sms, Sent, Receipt::Delivered),
            Ok(Some(Delivered))
        );
        assert_eq!(
            after_receipt(1, sms, Sent, Receipt::Failed),
            Ok(Some(Failed))
        );
        // Repeated: nothing changes.
        assert_eq!(
            after_receipt(1, sms, Delivered, Receipt::Delivered),
            Ok(None)
        );
        assert_eq!(after_receipt(1, sms, Failed, Receipt::Failed), Ok(None));
        assert_eq!(
            after_receipt(1, sms, Queued, Receipt::Delivered),
            Err(ReceiptRefused::NotSent(1))
        );
        assert!(matches!(
            after_receipt(1, sms, Delivered, Receipt::Failed),
            Err(ReceiptRefused::Contradicts { .. })
        ));
        assert_eq!(
            after_receipt(1, Channel::Email, Sent, Receipt::Delivered),
            Err(ReceiptRefused::NotSms(1))
        );
    }

    #[test]
    fn nothing_goes_without_consent_a_channel_and_an_address() {
        assert_eq!(route(None, true, true), Err(Unreachable::NoPreference));
        assert_eq!(
            route(Some(&reach(Channel::Email, false)), true, true),
            Err(Unreachable::NoConsent)
        );
        assert_eq!(
            route(Some(&reach(Channel::None, true)), true, true),
            Err(Unreachable::ChannelNone)
        );
        assert_eq!(
            route(Some(&reach(Channel::Sms, true)), true, true),
            Err(Unreachable::NoAddress { channel: "sms" })
        );
        assert_eq!(
            route(Some(&reach(Channel::Email, true)), false, true),
            Err(Unreachable::ChannelNotConfigured { channel: "email" })
        );
        assert_eq!(
            route(Some(&reach(Channel::Email, true)), true, false),
            Ok(Route {
                channel: Channel::Email,
                address: "pat@example.org".into()
            })
        );
    }

    #[test]
    fn a_message_says_hello_and_gives_the_link_only() {
        for ch in [Channel::Email, Channel::Sms] {
            for reminder in [false, true] {
                let m = link_message(ch, "https://clinic.example/q/abc", reminder);
                assert!(m.body.starts_with("Hello"));
                assert!(m.body.contains("https://clinic.example/q/abc"));
                let all = format!("{} {}", m.subject, m.body).to_lowercase();
                for word in [
                    "phq",
                    "gad",
                    "depress",
                    "ketamine",
                    "suicid",
                    "psychiatr",
                    "mood",
                ] {
                    assert!(!all.contains(word), "{word} in {all}");
                }
            }
        }
    }

    #[test]
    fn retries_back_off_doubling_to_a_cap_then_fail() {
        assert_eq!(backoff_seconds(1), 300);
        assert_eq!(backoff_seconds(2), 600);
        assert_eq!(backoff_seconds(3), 1200);
        assert_eq!(backoff_seconds(6), MAX_RETRY_SECONDS);
        assert_eq!(backoff_seconds(60), MAX_RETRY_SECONDS);
        assert_eq!(
            after_attempt(1, Attempt::Transient("refused".into()), 1000),
            Next::Retry {
                at: 1300,
                error: "refused".into()
            }
        );
        assert_eq!(
            after_attempt(MAX_ATTEMPTS, Attempt::Transient("refused".into()), 1000),
            Next::Failed {
                error: "refused".into()
            }
        );
        assert_eq!(
            after_attempt(1, Attempt::Permanent("no such user".into()), 1000),
            Next::Failed {
                error: "no such user".into()
            }
        );
        assert_eq!(after_attempt(3, Attempt::Accepted, 1000), Next::Sent);
    }

    #[test]
    fn quiet_hours_at_their_boundaries() {
        let q = QuietHours::parse("21:00-08:00").unwrap();
        assert!(q.contains(time(21, 0, 0, 0)));
        assert!(q.contains(time(3, 0, 0, 0)));
        assert!(q.contains(time(7, 59, 59, 0)));
        assert!(!q.contains(time(8, 0, 0, 0)));
        assert!(!q.contains(time(20, 59, 59, 0)));
        let day = QuietHours::parse("12:00-13:30").unwrap();
        assert!(day.contains(time(12, 0, 0, 0)) && !day.contains(time(13, 30, 0, 0)));
        assert!(QuietHours::parse("8-9").is_err());
        assert!(QuietHours::parse("25:00-08:00").is_err());
        assert!(QuietHours::parse("08:00-08:00").is_err());

        let utc = jiff::tz::TimeZone::UTC;
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            q.release(at("2026-06-01T22:00:00Z"), &utc),
            at("2026-06-02T08:00:00Z")
        );
        assert_eq!(
            q.release(at("2026-06-02T02:00:00Z"), &utc),
            at("2026-06-02T08:00:00Z")
        );
        assert_eq!(
            q.release(at("2026-06-02T09:00:00Z"), &utc),
            at("2026-06-02T09:00:00Z")
        );
    }
}
