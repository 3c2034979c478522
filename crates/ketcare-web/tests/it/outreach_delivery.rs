//! The outbox through the real channels, on both backends, with nothing leaving the machine: a
//! local SMTP server (Python's aiosmtpd, `tests/smtp/sink.py`) and a local webhook receiver that
//! checks the HMAC-SHA256 signature. Each channel first fails (no server yet; the gateway answers
//! 503), the message waits its back-off, and the next pass delivers it.
//!
//! aiosmtpd comes from `scripts/smtp-test`'s virtual environment (`target/smtp-venv`) or the
//! Python named by `KETCARE_TEST_SMTPD_PYTHON`. Without it the SMTP half is skipped — unless
//! `KETCARE_TEST_REQUIRE_SMTPD` is set, as `scripts/smtp-test` (run by `scripts/test`) sets it.

use crate::common;
use crate::outreach::{delivery_settings_with, link, patient_with_email, prefer, texting_patient};

use axum::http::{HeaderMap, StatusCode};
use common::{START, TestApp};
use ketcare_store::SecretText;
use ketcare_store::testing::BACKENDS;
use ketcare_web::outreach::delivery::{DeliverySecrets, LiveChannels, sign};
use serde_json::json;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A Python that has aiosmtpd, or `None` (the test is then skipped, unless required).
fn smtpd_python() -> Option<String> {
    let candidates = [
        std::env::var("KETCARE_TEST_SMTPD_PYTHON").ok(),
        Some(format!(
            "{}/../../target/smtp-venv/bin/python",
            env!("CARGO_MANIFEST_DIR")
        )),
    ];
    let found = candidates.into_iter().flatten().find(|py| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() && std::env::var_os("KETCARE_TEST_REQUIRE_SMTPD").is_some() {
        panic!("aiosmtpd is required (run scripts/smtp-test) but no Python has it");
    }
    found
}

/// The SMTP sink, killed when dropped; its lines (one JSON per message) arrive on `lines`.
struct Sink {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Sink {
    /// The next message the sink received (within 20 s), as its JSON line.
    fn next_message(&self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sink(python: &str, port: u16) -> Sink {
    start_sink_with(python, port, &[]).expect("the SMTP sink starts")
}

/// A sink with TLS options on a free port, tried on a fresh port if the first is taken
/// meanwhile (or the sink's own start-up check times out on a busy machine).
fn start_tls_sink(python: &str, tls: &[&str]) -> (Sink, u16) {
    for _ in 0..3 {
        let port = free_port();
        if let Some(sink) = start_sink_with(python, port, tls) {
            return (sink, port);
        }
    }
    panic!("the TLS SMTP sink did not start");
}

/// [`start_sink`] with the sink's TLS options (`tls|starttls CERT KEY`).
fn start_sink_with(python: &str, port: u16, tls: &[&str]) -> Option<Sink> {
    let mut child = Command::new(python)
        .arg(format!(
            "{}/../../tests/smtp/sink.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(port.to_string())
        .args(tls)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let sink = Sink { child, lines: rx };
    let ready = sink.lines.recv_timeout(std::time::Duration::from_secs(20));
    (ready.as_deref() == Ok("ready")).then_some(sink)
}

/// A patient with an email address who consents to email, the site's relay on `port` (with the
/// delivery settings `texts` besides), and a nurse's API token.
async fn emailing_patient(app: &TestApp, texts: &[(&str, &str)], port: u16) -> (i64, common::Auth) {
    let (pid, nurse) = patient_with_email(app).await;
    delivery_settings_with(app, texts, &[("outreach.smtp_port", f64::from(port))]).await;
    prefer(
        app,
        pid,
        &nurse,
        json!({"channel": "email", "consented": true}),
    )
    .await;
    (pid, nurse)
}

fn channels(sms_secret: Option<&str>) -> LiveChannels {
    LiveChannels {
        secrets: DeliverySecrets {
            smtp_username: None,
            smtp_password: None,
            sms_secret: sms_secret.map(SecretText::new),
            smtp_ca_pem: None,
        },
    }
}

#[tokio::test]
async fn email_reaches_a_local_smtp_server_after_a_failed_try() {
    let Some(python) = smtpd_python() else {
        eprintln!("skipped: no Python with aiosmtpd (scripts/smtp-test installs it)");
        return;
    };
    let utc = jiff::tz::TimeZone::UTC;
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let port = free_port();
        let (pid, nurse) = emailing_patient(&app, &[], port).await;
        let l = link(&app, pid, &nurse).await;
        let path = l["path"].as_str().unwrap().to_owned();
        let live = channels(None);
        let s = app.store.as_ref();

        // No server yet: the try fails and the message waits its back-off.
        let done = ketcare_app::outreach::deliver_due(s, &live, START, &utc)
            .await
            .unwrap();
        assert_eq!(done[0].status.as_str(), "queued");
        assert!(
            done[0]
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("relay"),
            "{done:?}"
        );
        assert_eq!(done[0].next_attempt_at, START + 300);

        let sink = start_sink(&python, port);
        let done = ketcare_app::outreach::deliver_due(s, &live, START + 300, &utc)
            .await
            .unwrap();
        assert_eq!(done[0].status.as_str(), "sent", "{done:?}");
        let got = sink.next_message();
        assert_eq!(got["to"], json!(["sam@example.org"]));
        assert_eq!(got["from"], "clinic@example.org");
        assert!(
            got["data"]
                .as_str()
                .unwrap()
                .contains("Subject: A form is waiting for you")
        );
        let data = got["text"].as_str().unwrap();
        assert!(
            data.contains(&format!("https://care.example.org{path}")),
            "{data}"
        );
        assert!(data.contains("Hello"));
        let lower = data.to_lowercase();
        for w in ["phq", "depress", "ketamine"] {
            assert!(!lower.contains(w), "{w} in {data}");
        }
        // Nothing more is due: it is not sent twice.
        assert!(
            ketcare_app::outreach::deliver_due(s, &live, START + 100_000, &utc)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            sink.lines
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err()
        );
    }
}

/// What the local gateway received: (signature valid, idempotency key, JSON body).
type Received = Arc<Mutex<Vec<(bool, String, serde_json::Value)>>>;

/// A local SMS gateway: answers 503 to its first request and 200 after, and checks each
/// request's signature with the shared secret.
async fn gateway(secret: &'static str) -> (u16, Received) {
    let received: Received = Arc::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/sms",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let ts: i64 = h("x-ketcare-timestamp").parse().unwrap_or(0);
                let valid = h("x-ketcare-signature") == expected_signature(secret, ts, &body)
                    && (jiff::Timestamp::now().as_second() - ts).abs() < 300;
                let mut v = seen.lock().unwrap();
                v.push((
                    valid,
                    h("idempotency-key"),
                    serde_json::from_str(&body).unwrap_or_default(),
                ));
                if v.len() == 1 || !valid {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (port, received)
}

/// The receiver's own computation of the signature (HMAC-SHA256 over "<timestamp>.<body>").
fn expected_signature(secret: &str, ts: i64, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_text_message_reaches_a_signed_webhook_after_a_failed_try() {
    const SECRET: &str = "gateway-shared-secret";
    assert_eq!(sign(b"k", 7, "{}"), expected_signature("k", 7, "{}"));
    let utc = jiff::tz::TimeZone::UTC;
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let (port, received) = gateway(SECRET).await;
        let (pid, nurse) = texting_patient(&app, &format!("http://127.0.0.1:{port}/sms")).await;
        let l = link(&app, pid, &nurse).await;
        assert_eq!(l["message"]["recipient"], "+1 555 0100");
        let path = l["path"].as_str().unwrap().to_owned();
        let s = app.store.as_ref();

        // Without the secret the server does not send an unsigned request.
        let done = ketcare_app::outreach::deliver_due(s, &channels(None), START, &utc)
            .await
            .unwrap();
        assert_eq!(done[0].status.as_str(), "queued");
        assert!(received.lock().unwrap().is_empty());

        let live = channels(Some(SECRET));
        let done = ketcare_app::outreach::deliver_due(s, &live, START + 300, &utc)
            .await
            .unwrap();
        assert_eq!(
            done[0].status.as_str(),
            "queued",
            "the gateway's 503 is retried"
        );
        assert_eq!(
            done[0].last_error.as_deref(),
            Some("gateway: HTTP 503 Service Unavailable")
        );
        assert_eq!(
            done[0].next_attempt_at,
            START + 300 + 600,
            "the second back-off doubles"
        );
        let done = ketcare_app::outreach::deliver_due(s, &live, START + 900, &utc)
            .await
            .unwrap();
        assert_eq!(done[0].status.as_str(), "sent", "{done:?}");

        let got = received.lock().unwrap().clone();
        assert_eq!(got.len(), 2);
        for (valid, key, body) in &got {
            assert!(valid, "signature checked by the receiver");
            assert_eq!(key, &format!("ketcare-message-{}", done[0].id));
            assert_eq!(body["to"], "+1 555 0100");
            let text = body["text"].as_str().unwrap();
            assert!(
                text.starts_with("Hello")
                    && text.ends_with(&format!("https://care.example.org{path}"))
            );
        }
        // A request signed with another secret is refused by the receiver.
        received.lock().unwrap().clear();
        let l2 = link(&app, pid, &nurse).await;
        assert!(l2["message"].is_object());
        let done =
            ketcare_app::outreach::deliver_due(s, &channels(Some("wrong")), START + 900, &utc)
                .await
                .unwrap();
        assert_eq!(done[0].status.as_str(), "queued");
        assert!(!received.lock().unwrap()[0].0);
    }
}

#[tokio::test]
async fn a_remote_gateway_must_be_https() {
    use ketcare_app::outreach::Channels;
    let msg = ketcare_store::outreach::OutboxMessage {
        id: ketcare_core::MessageId::new(1),
        patient_id: ketcare_core::PatientId::new(1),
        guardian_id: None,
        link_id: None,
        channel: ketcare_ops::outreach::Channel::Sms,
        recipient: "+1 555 0100".into(),
        status: ketcare_ops::outreach::MessageState::Queued,
        attempts: 1,
        next_attempt_at: 0,
        last_error: None,
        created_by: "test".into(),
        created_at: String::new(),
        sent_at: None,
        finished_at: None,
        subject: String::new(),
        body: "Hello https://care.example.org/q/x".into(),
    };
    let mut site = ketcare_clinical::SiteSettings::default();
    site.texts.insert(
        "outreach.sms_gateway_url".into(),
        "http://sms.example.invalid/send".into(),
    );
    let settings = ketcare_app::outreach::DeliverySettings::of(&site);
    // Refused before any connection is made: nothing leaves the machine.
    match channels(Some("s")).send(&msg, &settings).await {
        ketcare_ops::outreach::Attempt::Transient(e) => {
            assert!(e.contains("needs https://"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// A test certificate authority and a certificate it issued for `localhost` (and 127.0.0.1),
/// made with the `openssl` command in a fresh folder: (folder, CA PEM path, cert path, key path).
fn test_certificates() -> (std::path::PathBuf, String, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "ketcare-smtp-tls-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let at = |f: &str| dir.join(f).to_string_lossy().into_owned();
    std::fs::write(
        at("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let steps: [Vec<String>; 3] = [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ketcare test CA",
            "-keyout",
            &at("ca.key"),
            "-out",
            &at("ca.pem"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &at("leaf.key"),
            "-out",
            &at("leaf.csr"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &at("leaf.csr"),
            "-CA",
            &at("ca.pem"),
            "-CAkey",
            &at("ca.key"),
            "-CAcreateserial",
            "-extfile",
            &at("leaf.ext"),
            "-out",
            &at("leaf.pem"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    ];
    for args in steps {
        let done = Command::new("openssl")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(done.success(), "openssl {args:?}");
    }
    (dir.clone(), at("ca.pem"), at("leaf.pem"), at("leaf.key"))
}

#[tokio::test]
async fn email_goes_over_tls_or_starttls_as_the_site_says_verifying_the_relay() {
    let Some(python) = smtpd_python() else {
        eprintln!("skipped: no Python with aiosmtpd (scripts/smtp-test installs it)");
        return;
    };
    let (dir, ca, cert, key) = test_certificates();
    let ca_pem = std::fs::read(&ca).unwrap();
    let utc = jiff::tz::TimeZone::UTC;
    for backend in BACKENDS {
        for mode in ["tls", "starttls"] {
            let app = TestApp::new(backend).await;
            let (sink, port) = start_tls_sink(&python, &[mode, &cert, &key]);
            let texts = [
                ("outreach.smtp_host", "localhost"),
                ("outreach.smtp_security", mode),
            ];
            let (pid, nurse) = emailing_patient(&app, &texts, port).await;
            link(&app, pid, &nurse).await;
            let s = app.store.as_ref();

            // Without the test's authority the relay's certificate is not trusted: not sent.
            let done = ketcare_app::outreach::deliver_due(s, &channels(None), START, &utc)
                .await
                .unwrap();
            assert_eq!(done[0].status.as_str(), "queued", "{mode}: {done:?}");
            assert!(
                sink.lines
                    .recv_timeout(std::time::Duration::from_millis(300))
                    .is_err(),
                "{mode}: nothing reached the relay"
            );

            let mut trusted = channels(None);
            trusted.secrets.smtp_ca_pem = Some(ca_pem.clone());
            let done = ketcare_app::outreach::deliver_due(s, &trusted, START + 300, &utc)
                .await
                .unwrap();
            assert_eq!(done[0].status.as_str(), "sent", "{mode}: {done:?}");
            let got = sink.next_message();
            assert_eq!(got["tls"], true, "{mode}: {got}");
            assert_eq!(got["to"], json!(["sam@example.org"]));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
