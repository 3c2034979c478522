//! Contact preferences and the outbox through the real router on both backends: nothing is
//! queued without recorded consent, a channel the site has set up and an address on the record;
//! the staff "send link" (API and page) queues its message with the link and shows its state; the
//! delivery loop retries a failed try after its back-off and waits out the quiet hours.

use crate::common;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use common::{Auth, START, TestApp, adult_form};
use ketcare_app::outreach::{Channels, DeliverySettings};
use ketcare_core::{Actor, Role};
use ketcare_ops::outreach::Attempt;
use ketcare_store::outreach::OutboxMessage;
use ketcare_store::testing::BACKENDS;
use serde_json::json;
use std::sync::Mutex;

/// Saves the site's delivery settings (text) beside the test clinic's numbers.
pub(crate) async fn delivery_settings(app: &TestApp, extra: &[(&str, &str)]) {
    delivery_settings_with(app, extra, &[]).await;
}

/// [`delivery_settings`] with further numbers (the relay's port).
pub(crate) async fn delivery_settings_with(
    app: &TestApp,
    extra: &[(&str, &str)],
    numbers: &[(&str, f64)],
) {
    let mut texts = serde_json::Map::new();
    for (k, v) in [
        ("outreach.public_url", "https://care.example.org"),
        ("outreach.smtp_host", "127.0.0.1"),
        ("outreach.email_from", "clinic@example.org"),
        ("outreach.smtp_security", "none"),
    ]
    .iter()
    .chain(extra)
    {
        texts.insert((*k).into(), (*v).into());
    }
    let mut values = serde_json::Map::new();
    for (k, v) in common::TEST_SITE_SETTINGS.iter().chain(numbers) {
        values.insert((*k).into(), (*v).into());
    }
    let body = json!({ "values": values, "texts": texts }).to_string();
    app.store
        .save_site_settings(&Actor::system(Role::Administrator), &body, "delivery")
        .await
        .unwrap();
}

/// An adult with an email address, made through the intake page; and a nurse's API token.
pub(crate) async fn patient_with_email(app: &TestApp) -> (i64, Auth) {
    app.add_user("nina", Role::Nurse).await;
    let page = app.login("nina").await;
    let mut form = adult_form();
    form.push(("email", "sam@example.org"));
    form.push(("phone", "+1 555 0100"));
    let created = app.post_form("/patients", &page, &form).await;
    let pid: i64 = created
        .location()
        .trim_start_matches("/patients/")
        .parse()
        .unwrap();
    (pid, app.bearer("nina").await)
}

/// [`patient_with_email`], the site's email set up, and the patient's consent to email.
pub(crate) async fn consenting_patient(app: &TestApp) -> (i64, Auth) {
    let (pid, nurse) = patient_with_email(app).await;
    delivery_settings(app, &[]).await;
    let r = prefer(
        app,
        pid,
        &nurse,
        json!({"channel": "email", "consented": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (pid, nurse)
}

/// [`patient_with_email`], the site's text messages set up with `gateway`, and the patient's
/// consent to them.
pub(crate) async fn texting_patient(app: &TestApp, gateway: &str) -> (i64, Auth) {
    let (pid, nurse) = patient_with_email(app).await;
    delivery_settings(app, &[("outreach.sms_gateway_url", gateway)]).await;
    let r = prefer(
        app,
        pid,
        &nurse,
        json!({"channel": "sms", "consented": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (pid, nurse)
}

pub(crate) async fn link(app: &TestApp, pid: i64, auth: &Auth) -> serde_json::Value {
    let r = app
        .json(
            Method::POST,
            &format!("/api/v1/patients/{pid}/links"),
            auth,
            &json!({"instruments": ["phq9"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()
}

pub(crate) async fn prefer(
    app: &TestApp,
    pid: i64,
    auth: &Auth,
    body: serde_json::Value,
) -> common::Reply {
    app.json(
        Method::POST,
        &format!("/api/v1/patients/{pid}/contact"),
        auth,
        &body,
    )
    .await
}

#[tokio::test]
async fn nothing_is_queued_without_consent_a_channel_and_an_address() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, nurse) = patient_with_email(&app).await;

        let l = link(&app, pid, &nurse).await;
        assert!(l["message"].is_null());
        assert_eq!(l["not_sent"], "no contact preference is recorded");

        let r = prefer(
            &app,
            pid,
            &nurse,
            json!({"channel": "email", "consented": true}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.json()["recorded_by"], "nina");
        let l = link(&app, pid, &nurse).await;
        assert_eq!(l["not_sent"], "the site has not configured email delivery");

        delivery_settings(&app, &[]).await;
        let l = link(&app, pid, &nurse).await;
        assert!(l["not_sent"].is_null(), "{l}");
        assert_eq!(l["message"]["status"], "queued");
        assert_eq!(l["message"]["recipient"], "sam@example.org");
        assert_eq!(l["message"]["link_id"], l["link"]["id"]);
        assert!(
            l["message"].get("body").is_none(),
            "the text is never shown"
        );

        // SMS needs a gateway; "none" cannot carry consent; consent withdrawn stops messages.
        let r = prefer(
            &app,
            pid,
            &nurse,
            json!({"channel": "sms", "consented": true}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let l = link(&app, pid, &nurse).await;
        assert_eq!(l["not_sent"], "the site has not configured sms delivery");
        let r = prefer(
            &app,
            pid,
            &nurse,
            json!({"channel": "none", "consented": true}),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.fields(), vec!["consented"]);
        let r = prefer(
            &app,
            pid,
            &nurse,
            json!({"channel": "pigeon", "consented": true}),
        )
        .await;
        assert_eq!(r.fields(), vec!["channel"]);
        let r = prefer(
            &app,
            pid,
            &nurse,
            json!({"channel": "email", "consented": false}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let l = link(&app, pid, &nurse).await;
        assert_eq!(l["not_sent"], "consent to be contacted is not recorded");

        // The contact view: the preference in force, why a link would be handed over, history.
        let c = app
            .get(&format!("/api/v1/patients/{pid}/contact"), &nurse)
            .await
            .json();
        assert_eq!(c["contacts"][0]["who"], "patient");
        assert_eq!(c["contacts"][0]["preference"]["consented"], false);
        assert_eq!(
            c["contacts"][0]["not_sent_because"],
            "consent to be contacted is not recorded"
        );
        assert_eq!(c["history"].as_array().unwrap().len(), 3);

        // Who may record and read: the scheduler books and records contact; the pharmacist
        // reads the record but does not edit it; the scheduler does not see the messages.
        app.add_user("sid", Role::Scheduler).await;
        let sched = app.bearer("sid").await;
        let r = prefer(
            &app,
            pid,
            &sched,
            json!({"channel": "email", "consented": true}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        app.add_user("phil", Role::Pharmacist).await;
        let pharm = app.bearer("phil").await;
        let r = prefer(
            &app,
            pid,
            &pharm,
            json!({"channel": "email", "consented": true}),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app
            .get(&format!("/api/v1/patients/{pid}/messages"), &sched)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let m = app
            .get(&format!("/api/v1/patients/{pid}/messages"), &nurse)
            .await
            .json();
        assert_eq!(m.as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn the_pages_record_consent_and_show_the_message_state() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, _) = patient_with_email(&app).await;
        delivery_settings(&app, &[]).await;
        let page = app.login("nina").await;

        let r = app.get(&format!("/patients/{pid}/contact"), &page).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.contains("none recorded"), "{}", r.body);
        let r = app
            .post_form(
                &format!("/patients/{pid}/contact"),
                &page,
                &[
                    ("guardian_id", ""),
                    ("channel", "email"),
                    ("consented", "yes"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = app.get(&format!("/patients/{pid}/contact"), &page).await;
        assert!(r.body.contains("sent by message"), "{}", r.body);
        assert!(r.body.contains("by nina"));

        let r = app
            .post_form(
                &format!("/patients/{pid}/measures/links"),
                &page,
                &[
                    ("instrument", "phq9"),
                    ("expires_in_hours", "72"),
                    ("guardian_id", ""),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert!(
            r.body.contains("queued by email to sam@example.org"),
            "{}",
            r.body
        );
        assert!(r.body.contains("email waiting to be sent"), "{}", r.body);

        // A refused preference is shown beside the form.
        let r = app
            .post_form(
                &format!("/patients/{pid}/contact"),
                &page,
                &[("channel", "none"), ("consented", "yes")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("needs a channel"), "{}", r.body);
    }
}

/// Channels that record what they were given and answer from a script.
struct Scripted {
    answers: Mutex<Vec<Attempt>>,
    seen: Mutex<Vec<(String, String, String)>>,
}

impl Scripted {
    /// Channels that accept every message.
    fn accepting() -> Self {
        Scripted {
            answers: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl Channels for Scripted {
    async fn send(&self, m: &OutboxMessage, _: &DeliverySettings) -> Attempt {
        self.seen
            .lock()
            .unwrap()
            .push((m.recipient.clone(), m.subject.clone(), m.body.clone()));
        let mut a = self.answers.lock().unwrap();
        if a.is_empty() {
            Attempt::Accepted
        } else {
            a.remove(0)
        }
    }
}

#[tokio::test]
async fn a_failed_try_is_retried_after_its_back_off_and_quiet_hours_defer_sending() {
    let utc = jiff::tz::TimeZone::UTC;
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, nurse) = consenting_patient(&app).await;
        let l = link(&app, pid, &nurse).await;
        let path = l["path"].as_str().unwrap().to_owned();

        let ch = Scripted {
            answers: Mutex::new(vec![Attempt::Transient("connection refused".into())]),
            seen: Mutex::new(Vec::new()),
        };
        let s = app.store.as_ref();
        let done = ketcare_app::outreach::deliver_due(s, &ch, START, &utc)
            .await
            .unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].status.as_str(), "queued");
        assert_eq!(done[0].next_attempt_at, START + 300, "the first back-off");
        assert_eq!(done[0].last_error.as_deref(), Some("connection refused"));
        {
            let seen = ch.seen.lock().unwrap();
            let (to, subject, body) = &seen[0];
            assert_eq!(to, "sam@example.org");
            assert!(
                body.contains(&format!("https://care.example.org{path}")),
                "{body}"
            );
            let words = format!("{subject} {body}").to_lowercase();
            for w in ["phq", "depress", "ketamine", "sam", "questionnaire"] {
                assert!(!words.contains(w), "{w}: {words}");
            }
        }
        // Not before the back-off; then sent, and its text is gone.
        let none = ketcare_app::outreach::deliver_due(s, &ch, START + 299, &utc)
            .await
            .unwrap();
        assert!(none.is_empty());
        let done = ketcare_app::outreach::deliver_due(s, &ch, START + 300, &utc)
            .await
            .unwrap();
        assert_eq!(done[0].status.as_str(), "sent");
        assert_eq!(done[0].attempts, 2);
        let m = app
            .get(&format!("/api/v1/patients/{pid}/messages"), &nurse)
            .await
            .json();
        assert_eq!(m[0]["status"], "sent");

        // Quiet hours: START is 12:00 UTC; a link made inside 11:00-13:00 waits until 13:00.
        delivery_settings(&app, &[("outreach.quiet_hours", "11:00-13:00")]).await;
        let r = ketcare_app::outreach::send_link(
            s,
            &Actor::system(Role::Nurse),
            ketcare_core::PatientId::new(pid),
            &["phq9".to_string()],
            None,
            None,
            START,
            &utc,
        )
        .await
        .unwrap();
        let m = r.message.unwrap();
        assert_eq!(m.next_attempt_at, START + 3600);
        assert!(
            ketcare_app::outreach::deliver_due(s, &ch, START + 3599, &utc)
                .await
                .unwrap()
                .is_empty()
        );
        // A permanent refusal fails the message at once.
        ch.answers
            .lock()
            .unwrap()
            .push(Attempt::Permanent("550 no such user".into()));
        let done = ketcare_app::outreach::deliver_due(s, &ch, START + 3600, &utc)
            .await
            .unwrap();
        assert_eq!(done[0].status.as_str(), "failed");
        let page = app.login("nina").await;
        let r = app.get(&format!("/patients/{pid}/measures"), &page).await;
        assert!(
            r.body.contains("email could not be sent: 550 no such user"),
            "{}",
            r.body
        );
    }
}

use crate::worklists::queue as home_queue;

#[tokio::test]
async fn a_link_that_expires_unanswered_reaches_the_clinicians_queue_escalated_after_a_positive_screen()
 {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, nurse) = patient_with_email(&app).await;
        let page = app.login("nina").await;
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/links"),
                &nurse,
                &json!({"instruments": ["phq9"], "expires_in_hours": 24}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let home = app.get("/", &page).await;
        assert!(home_queue(&home.body, "links-unanswered").contains("No questionnaire link"));

        app.advance(25 * 3600);
        // A day later: a new browser session (the first one has ended).
        let page = app.login("nina").await;
        let home = app.get("/", &page).await;
        let q = home_queue(&home.body, "links-unanswered");
        assert!(
            q.contains("expired unanswered") && q.contains("(T-200)"),
            "{q}"
        );
        assert!(!q.contains("reach them now"), "{q}");

        // A positive PHQ-9 item 9 on the last screen: the next unanswered link is urgent.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/responses"),
                &nurse,
                &json!({"instrument": "phq9", "answers": [1, 1, 1, 1, 1, 1, 1, 1, 2],
                        "taken_on": "2026-11-23", "submission_key": "screen-1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let home = app.get("/", &page).await;
        let q = home_queue(&home.body, "links-unanswered");
        assert!(q.contains("reach them now"), "{q}");

        // A newer link answered clears the item (the test marks it completed directly).
        let l = link(&app, pid, &nurse).await;
        let id = l["link"]["id"].as_i64().unwrap();
        app.store
            .execute_raw(&format!(
                "UPDATE measure_links SET status = 'completed' WHERE id = {id}"
            ))
            .await
            .unwrap();
        let home = app.get("/", &page).await;
        assert!(home_queue(&home.body, "links-unanswered").contains("No questionnaire link"));
    }
}

#[tokio::test]
async fn an_unanswered_link_is_reminded_once_with_a_new_address() {
    let utc = jiff::tz::TimeZone::UTC;
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, nurse) = consenting_patient(&app).await;
        let s = app.store.as_ref();
        let l = link(&app, pid, &nurse).await;
        let old = l["path"].as_str().unwrap().to_owned();
        let ch = Scripted::accepting();
        ketcare_app::outreach::deliver_due(s, &ch, START, &utc)
            .await
            .unwrap();
        // Unset: no reminder.
        assert!(
            ketcare_app::outreach::send_reminders(s, START + 86_400, &utc)
                .await
                .unwrap()
                .is_empty()
        );
        delivery_settings_with(&app, &[], &[("outreach.reminder_after_days", 1.0)]).await;
        assert!(
            ketcare_app::outreach::send_reminders(s, START + 86_399, &utc)
                .await
                .unwrap()
                .is_empty()
        );
        let sent = ketcare_app::outreach::send_reminders(s, START + 86_400, &utc)
            .await
            .unwrap();
        assert_eq!(sent.len(), 1);
        assert!(
            ketcare_app::outreach::send_reminders(s, START + 2 * 86_400, &utc)
                .await
                .unwrap()
                .is_empty(),
            "once"
        );
        ketcare_app::outreach::deliver_due(s, &ch, START + 86_400, &utc)
            .await
            .unwrap();
        let (_, subject, body) = ch.seen.lock().unwrap()[1].clone();
        assert!(
            subject.starts_with("Reminder") && body.contains("a reminder"),
            "{body}"
        );
        let new = body
            .split_whitespace()
            .find(|w| w.contains("/q/"))
            .unwrap()
            .trim_start_matches("https://care.example.org")
            .to_owned();
        assert_ne!(new, old);
        assert_eq!(app.get(&new, &Auth::None).await.status, StatusCode::OK);
        assert_ne!(app.get(&old, &Auth::None).await.status, StatusCode::OK);
        let m = app
            .get(&format!("/api/v1/patients/{pid}/messages"), &nurse)
            .await
            .json();
        assert_eq!(m.as_array().unwrap().len(), 2);
    }
}

/// Posts a delivery receipt signed with `secret` at `ts` (the gateway's side of the scheme).
async fn receipt(app: &TestApp, secret: &str, ts: i64, body: &serde_json::Value) -> common::Reply {
    let body = body.to_string();
    let signature = ketcare_web::outreach::delivery::sign(secret.as_bytes(), ts, &body);
    let ts = ts.to_string();
    app.send(
        Method::POST,
        "/api/v1/outreach/receipts",
        &Auth::None,
        Some("application/json"),
        body,
        &[
            ("x-ketcare-timestamp", ts.as_str()),
            ("x-ketcare-signature", signature.as_str()),
        ],
    )
    .await
}

#[tokio::test]
async fn the_gateway_receipt_marks_a_sent_text_message_delivered_once() {
    const SECRET: &str = "gateway-shared-secret";
    let utc = jiff::tz::TimeZone::UTC;
    for backend in BACKENDS {
        let app = TestApp::with_sms_secret(backend, SECRET).await;
        let (pid, nurse) = texting_patient(&app, "http://127.0.0.1:9/sms").await;
        let sms = link(&app, pid, &nurse).await["message"]["id"]
            .as_i64()
            .unwrap();
        // A text message not yet handed to the gateway takes no receipt.
        let delivered = json!({"message_id": sms, "status": "delivered"});
        let r = receipt(&app, SECRET, START, &delivered).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body.contains("not sent yet"), "{}", r.body);

        let ch = Scripted::accepting();
        let done = ketcare_app::outreach::deliver_due(app.store.as_ref(), &ch, START, &utc)
            .await
            .unwrap();
        assert_eq!(done[0].status.as_str(), "sent");

        // Unsigned, signed with another secret, or signed too long ago: refused, nothing changes.
        let r = app
            .send(
                Method::POST,
                "/api/v1/outreach/receipts",
                &Auth::None,
                Some("application/json"),
                delivered.to_string(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = receipt(&app, "another-secret", START, &delivered).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = receipt(&app, SECRET, START - 301, &delivered).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = receipt(
            &app,
            SECRET,
            START,
            &json!({"message_id": 999_999, "status": "delivered"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        let r = receipt(
            &app,
            SECRET,
            START,
            &json!({"message_id": sms, "status": "read"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

        let r = receipt(&app, SECRET, START, &delivered).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            r.json(),
            json!({"message_id": sms, "status": "delivered", "changed": true})
        );
        // The gateway sends it again (its answer was lost): the same, nothing more recorded.
        let r = receipt(&app, SECRET, START + 60, &delivered).await;
        assert_eq!(
            r.json(),
            json!({"message_id": sms, "status": "delivered", "changed": false})
        );
        // A contradicting receipt does not undo it.
        let r = receipt(
            &app,
            SECRET,
            START,
            &json!({"message_id": sms, "status": "failed", "error": "no handset"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

        let msgs = app
            .get(&format!("/api/v1/patients/{pid}/messages"), &nurse)
            .await
            .json();
        assert_eq!(msgs[0]["status"], "delivered");
        assert!(msgs[0]["finished_at"].is_string());
        let page = app.login("nina").await;
        let measures = app.get(&format!("/patients/{pid}/measures"), &page).await;
        assert!(measures.body.contains("sms delivered"), "{}", measures.body);

        // A second message the gateway could not deliver: failed, with its reason.
        let sms2 = link(&app, pid, &nurse).await["message"]["id"]
            .as_i64()
            .unwrap();
        ketcare_app::outreach::deliver_due(app.store.as_ref(), &ch, START, &utc)
            .await
            .unwrap();
        let failed = json!({"message_id": sms2, "status": "failed", "error": "no handset"});
        let r = receipt(&app, SECRET, START, &failed).await;
        assert_eq!(r.json()["status"], "failed", "{}", r.body);
        let msgs = app
            .get(&format!("/api/v1/patients/{pid}/messages"), &nurse)
            .await
            .json();
        assert_eq!(msgs[0]["status"], "failed");
        assert_eq!(msgs[0]["last_error"], "no handset");

        // Each change is in the audit trail as the outbox's own account.
        app.add_user("alex", Role::Administrator).await;
        let admin = app.bearer("alex").await;
        for (action, n) in [("outbox.delivered", 1), ("outbox.undelivered", 1)] {
            let log = app
                .get(&format!("/api/v1/audit?action={action}&limit=500"), &admin)
                .await
                .json();
            let rows = log.as_array().unwrap();
            assert_eq!(rows.len(), n, "{log}");
            assert_eq!(rows[0]["username"], "system:outbox", "{log}");
        }
    }
}

/// One pass of reminders at `at` by two runners at once; the links reminded of, sorted.
async fn reminders_by_two_runners(
    a: &dyn ketcare_store::Store,
    b: &dyn ketcare_store::Store,
    at: i64,
) -> Vec<i64> {
    let utc = jiff::tz::TimeZone::UTC;
    let (x, y) = tokio::join!(
        ketcare_app::outreach::send_reminders(a, at, &utc),
        ketcare_app::outreach::send_reminders(b, at, &utc)
    );
    let mut sent: Vec<i64> = x
        .unwrap()
        .into_iter()
        .chain(y.unwrap())
        .map(|m| m.link_id.unwrap().get())
        .collect();
    sent.sort_unstable();
    sent
}

#[tokio::test]
async fn reminders_go_daily_once_each_across_two_runners_until_answered_or_expired() {
    const DAY: i64 = 86_400;
    let utc = jiff::tz::TimeZone::UTC;
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (pid, nurse) = consenting_patient(&app).await;
        let s = app.store.as_ref();
        // A second server on the same database.
        let second = ketcare_store::open(&app.url).await.unwrap();
        let mut links = Vec::new();
        for hours in [84, 120] {
            let r = app
                .json(
                    Method::POST,
                    &format!("/api/v1/patients/{pid}/links"),
                    &nurse,
                    &json!({"instruments": ["phq9"], "expires_in_hours": hours}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            links.push(r.json()["link"]["id"].as_i64().unwrap());
        }
        let ch = Scripted::accepting();
        ketcare_app::outreach::deliver_due(s, &ch, START, &utc)
            .await
            .unwrap();
        delivery_settings_with(
            &app,
            &[],
            &[
                ("outreach.reminder_after_days", 1.0),
                ("outreach.reminder_count", 5.0),
            ],
        )
        .await;
        let second = second.as_ref();
        let both = |at: i64| reminders_by_two_runners(s, second, at);
        // Day 1: each link is reminded of once, whichever runner got there first.
        assert_eq!(both(START + DAY).await, links);
        assert!(both(START + DAY + DAY / 2).await.is_empty(), "once a day");
        // The second link is answered: its reminders stop.
        app.store
            .execute_raw(&format!(
                "UPDATE measure_links SET status = 'completed' WHERE id = {}",
                links[1]
            ))
            .await
            .unwrap();
        assert_eq!(both(START + 2 * DAY).await, vec![links[0]]);
        assert!(both(START + 2 * DAY + 60).await.is_empty());
        assert_eq!(both(START + 3 * DAY).await, vec![links[0]]);
        // The first link expired at 3.5 days: no more, though the count allows five.
        assert!(both(START + 4 * DAY).await.is_empty(), "expired");
        let m = app
            .get(&format!("/api/v1/patients/{pid}/messages"), &nurse)
            .await
            .json();
        let of = |link: i64| {
            m.as_array()
                .unwrap()
                .iter()
                .filter(|x| x["link_id"] == link)
                .count()
        };
        assert_eq!(of(links[0]), 4, "the message and three reminders");
        assert_eq!(of(links[1]), 2, "the message and one reminder");
    }
}
