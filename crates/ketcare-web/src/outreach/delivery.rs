//! The real channels and the worker that drains the outbox inside the server.
//!
//! Email goes to the site's own SMTP relay (`outreach.smtp_*` settings; user name and password
//! given to `ketcare serve`, never stored or shown) with lettre over rustls. A text message is an
//! HTTP POST of JSON to the site's gateway (`outreach.sms_gateway_url`), signed with HMAC-SHA256
//! under a secret given to `ketcare serve`:
//!
//! ```text
//! POST <gateway>            Content-Type: application/json
//! X-Ketcare-Timestamp: <epoch seconds>
//! X-Ketcare-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//! Idempotency-Key: ketcare-message-<id>
//! {"message_id": 12, "to": "+1 555 0100", "text": "Hello, …"}
//! ```
//!
//! The timestamp is signed with the body so a captured request cannot be replayed later; the
//! idempotency key lets a gateway drop the repeat of a try whose answer was lost.

use crate::AppState;
use async_trait::async_trait;
use hmac::{KeyInit, Mac};
use http_body_util::Full;
use ketcare_app::outreach::{Channels, DeliverySettings, SmtpSecurity};
use ketcare_ops::outreach::{Attempt, Channel};
use ketcare_store::SecretText;
use ketcare_store::jobs::Job;
use ketcare_store::outreach::OutboxMessage;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;

/// How often the worker runs the course schedules and reminders (the outbox itself every pass).
pub const SCHEDULES_EVERY_SECONDS: i64 = 300;

/// How long one try may take on either channel (connection, TLS, the exchange).
const TRY_SECONDS: u64 = 60;

/// Credentials given to `ketcare serve` (environment or file), never stored in the database.
#[derive(Debug, Clone, Default)]
pub struct DeliverySecrets {
    pub smtp_username: Option<String>,
    pub smtp_password: Option<SecretText>,
    /// The key the SMS webhook's body is signed with.
    pub sms_secret: Option<SecretText>,
    /// An extra certificate authority (PEM) the relay's certificate may chain to, beside the
    /// public roots: a relay with the site's private CA, or a test server's. It never turns
    /// verification off.
    pub smtp_ca_pem: Option<Vec<u8>>,
}

/// The channels of a running server.
pub struct LiveChannels {
    pub secrets: DeliverySecrets,
}

#[async_trait]
impl Channels for LiveChannels {
    async fn send(&self, m: &OutboxMessage, settings: &DeliverySettings) -> Attempt {
        let tried = tokio::time::timeout(Duration::from_secs(TRY_SECONDS), async {
            match m.channel {
                Channel::Email => self.email(m, settings).await,
                Channel::Sms => self.sms(m, settings).await,
                Channel::None => Attempt::Permanent("no channel".into()),
            }
        })
        .await;
        tried.unwrap_or_else(|_| Attempt::Transient(format!("no answer within {TRY_SECONDS} s")))
    }
}

impl LiveChannels {
    async fn email(&self, m: &OutboxMessage, s: &DeliverySettings) -> Attempt {
        let (Some(host), Some(from)) = (s.smtp_host.as_deref(), s.email_from.as_deref()) else {
            return Attempt::Transient(
                "email is not set up (outreach.smtp_host, email_from)".into(),
            );
        };
        let message = match build_email(from, m) {
            Ok(x) => x,
            Err(e) => return Attempt::Permanent(e),
        };
        let builder = match (s.smtp_security, &self.secrets.smtp_ca_pem) {
            (SmtpSecurity::None, _) => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
            (security, Some(pem)) => with_extra_ca(host, security, pem),
            (SmtpSecurity::Tls, None) => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            (SmtpSecurity::StartTls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            }
        };
        let mut builder = match builder {
            Ok(b) => b,
            Err(e) => return Attempt::Transient(format!("relay {host}: {e}")),
        };
        let port = s.smtp_port.unwrap_or(match s.smtp_security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::None => 25,
        });
        builder = builder
            .port(port)
            .timeout(Some(Duration::from_secs(TRY_SECONDS)));
        if let (Some(user), Some(password)) =
            (&self.secrets.smtp_username, &self.secrets.smtp_password)
        {
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    user.clone(),
                    password.expose().to_owned(),
                ));
        }
        match builder.build().send(message).await {
            Ok(_) => Attempt::Accepted,
            Err(e) if e.is_permanent() => Attempt::Permanent(format!("relay refused: {e}")),
            Err(e) => Attempt::Transient(format!("relay {host}:{port}: {e}")),
        }
    }

    async fn sms(&self, m: &OutboxMessage, s: &DeliverySettings) -> Attempt {
        let Some(url) = s.sms_gateway_url.as_deref() else {
            return Attempt::Transient(
                "text messages are not set up (outreach.sms_gateway_url)".into(),
            );
        };
        let Some(secret) = &self.secrets.sms_secret else {
            return Attempt::Transient("no SMS webhook secret was given to the server".into());
        };
        let body = serde_json::json!({
            "message_id": m.id.get(),
            "to": m.recipient,
            "text": m.body,
        })
        .to_string();
        let timestamp = jiff::Timestamp::now().as_second();
        let signature = sign(secret.expose().as_bytes(), timestamp, &body);
        match post(url, &body, timestamp, &signature, m.id.get()).await {
            Ok(status) if status.is_success() => Attempt::Accepted,
            Ok(status)
                if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 =>
            {
                Attempt::Permanent(format!("gateway refused: HTTP {status}"))
            }
            Ok(status) => Attempt::Transient(format!("gateway: HTTP {status}")),
            Err(e) => Attempt::Transient(format!("gateway: {e}")),
        }
    }
}

/// A relay connection secured as `security` (implicit TLS or required STARTTLS) whose
/// certificate may also chain to the extra authority `pem`.
fn with_extra_ca(
    host: &str,
    security: SmtpSecurity,
    pem: &[u8],
) -> Result<lettre::transport::smtp::AsyncSmtpTransportBuilder, lettre::transport::smtp::Error> {
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let params = TlsParameters::builder(host.to_owned())
        .add_root_certificate(Certificate::from_pem(pem)?)
        .build_rustls()?;
    let tls = match security {
        SmtpSecurity::Tls => Tls::Wrapper(params),
        _ => Tls::Required(params),
    };
    Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(tls))
}

fn build_email(from: &str, m: &OutboxMessage) -> Result<lettre::Message, String> {
    let from: lettre::message::Mailbox =
        from.parse().map_err(|e| format!("sender address: {e}"))?;
    let to: lettre::message::Mailbox = m
        .recipient
        .parse()
        .map_err(|e| format!("recipient address: {e}"))?;
    lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(m.subject.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(m.body.clone())
        .map_err(|e| format!("message: {e}"))
}

/// `sha256=<hex>` of HMAC-SHA256 under `secret` over `"<timestamp>.<body>"`.
pub fn sign(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes a key of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// How far a delivery receipt's signed timestamp may be from the server's clock: a captured
/// receipt cannot be replayed later than this (ketcare's own limit, not a clinical number).
pub const RECEIPT_WINDOW_SECONDS: i64 = 300;

/// Whether `signature` is `sha256=<hex>` of HMAC-SHA256 under `secret` over
/// `"<timestamp>.<body>"` (compared in constant time), with `timestamp` within
/// [`RECEIPT_WINDOW_SECONDS`] of `now`: the scheme of [`sign`], the other way.
pub fn verify(secret: &[u8], timestamp: &str, body: &[u8], signature: &str, now: i64) -> bool {
    let Ok(at) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if (now - at).abs() > RECEIPT_WINDOW_SECONDS {
        return false;
    }
    let Some(Ok(expected)) = signature.strip_prefix("sha256=").map(hex::decode) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// One HTTP/1.1 POST to `url` (http or https); the answer's status.
async fn post(
    url: &str,
    body: &str,
    timestamp: i64,
    signature: &str,
    id: i64,
) -> Result<axum::http::StatusCode, String> {
    let uri: axum::http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url}: expected http:// or https://")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("{url}: no host"))?
        .to_owned();
    // The body carries a patient's link: plain HTTP only to a gateway on this host.
    if !https && !matches!(host.as_str(), "127.0.0.1" | "[::1]" | "::1" | "localhost") {
        return Err(format!("{url}: a gateway on another host needs https://"));
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| host.clone());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let request = axum::http::Request::post(path)
        .header(axum::http::header::HOST, authority)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .header("x-ketcare-timestamp", timestamp.to_string())
        .header("x-ketcare-signature", signature)
        .header("idempotency-key", format!("ketcare-message-{id}"))
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    if https {
        // ring, not aws-lc-rs (which needs CMake and a long C build): rustls marks ring's
        // provider deprecated because it offers no post-quantum key exchange; the gateway's
        // TLS is otherwise the same (TLS 1.2/1.3, Mozilla's roots).
        #[allow(deprecated)]
        let provider = tokio_rustls::rustls::crypto::ring::default_provider();
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        exchange(hyper_util::rt::TokioIo::new(tls), request).await
    } else {
        exchange(hyper_util::rt::TokioIo::new(tcp), request).await
    }
}

async fn exchange<I>(
    io: I,
    request: axum::http::Request<Full<bytes::Bytes>>,
) -> Result<axum::http::StatusCode, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer.status())
}

/// Runs the course schedules, the reminders and the outbox every `every_seconds` (and at once)
/// until the server stops: one pass sends each schedule's newest due occurrence (once: the
/// store's unique key), reminds of unanswered links (once each) and hands every due message to
/// its channel. Errors are logged; the next pass tries again.
pub fn spawn_worker(
    state: AppState,
    channels: Arc<dyn Channels>,
    every_seconds: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(every_seconds.max(1)));
        let mut schedules_at = i64::MIN;
        loop {
            interval.tick().await;
            // Once across the processes sharing the database (an advisory lock on PostgreSQL).
            let pass = async {
                // Read each pass: a change of the organisation's zone applies at the next.
                let zone = match ketcare_app::zones::organisation(state.store.as_ref()).await {
                    Ok(z) => z,
                    Err(e) => {
                        tracing::warn!(error = %e, "outreach: the organisation's zone");
                        return;
                    }
                };
                // Schedules read each patient's course (audited reads): every few minutes is
                // enough for occurrences due by the day or the hour.
                if state.now() >= schedules_at.saturating_add(SCHEDULES_EVERY_SECONDS) {
                    schedules_at = state.now();
                    if let Err(e) = ketcare_app::outreach::run_schedules(
                        state.store.as_ref(),
                        state.now(),
                        &zone,
                    )
                    .await
                    {
                        tracing::warn!(error = %e, "course schedules");
                    }
                    if let Err(e) = ketcare_app::outreach::send_reminders(
                        state.store.as_ref(),
                        state.now(),
                        &zone,
                    )
                    .await
                    {
                        tracing::warn!(error = %e, "reminders");
                    }
                }
                if let Err(e) = ketcare_app::outreach::deliver_due(
                    state.store.as_ref(),
                    channels.as_ref(),
                    state.now(),
                    &zone,
                )
                .await
                {
                    tracing::warn!(error = %e, "outbox delivery");
                }
            };
            if let Err(e) =
                ketcare_store::jobs::run_once(state.store.as_ref(), Job::Outreach, pass).await
            {
                tracing::warn!(error = %e, "outreach: the job lock");
            }
        }
    })
}
