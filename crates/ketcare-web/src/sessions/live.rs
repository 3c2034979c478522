//! The live channel: every stored vital, raised alarm and session change is published here and
//! streamed to the suite dashboard as server-sent events. On PostgreSQL the channel spans every
//! process sharing the database ([`Live::attach`], over `LISTEN/NOTIFY`): a dashboard served by
//! one process shows the vitals another received.

use crate::AppState;
use crate::auth::Principal;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use ketcare_core::SessionId;
use ketcare_store::bus::{Bus, BusSender};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// One live update.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    /// `vital`, `alarm` or `session`.
    pub kind: &'static str,
    pub session_id: SessionId,
    /// Milliseconds since the epoch when the server published it (for latency measurement).
    pub sent_at_ms: i64,
    pub data: serde_json::Value,
}

/// An event as another process sent it.
#[derive(Deserialize)]
struct Heard {
    kind: String,
    session_id: SessionId,
    sent_at_ms: i64,
    data: serde_json::Value,
}

/// The kinds of event there are (an event of another kind, from a newer process, is skipped).
const KINDS: [&str; 3] = ["vital", "alarm", "session"];

/// The broadcast channel (cheap to clone; subscribers that fall behind skip old events).
#[derive(Clone)]
pub struct Live {
    tx: broadcast::Sender<LiveEvent>,
    /// The other processes sharing the database, once [`Live::attach`]ed.
    relay: Arc<OnceLock<BusSender>>,
}

impl Default for Live {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            tx,
            relay: Arc::default(),
        }
    }
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Live {
    pub fn publish(&self, kind: &'static str, session_id: SessionId, data: serde_json::Value) {
        let event = LiveEvent {
            kind,
            session_id,
            sent_at_ms: now_ms(),
            data,
        };
        if let Some(relay) = self.relay.get()
            && let Ok(text) = serde_json::to_string(&event)
        {
            relay.send(text);
        }
        // No subscriber is fine: nobody is watching the suite.
        let _ = self.tx.send(event);
    }

    /// Joins the other processes of `bus`: what this process publishes goes to them, and what
    /// they publish reaches this process's subscribers (not sent on again).
    pub fn attach(&self, bus: Bus) {
        let sender = bus.sender();
        let Bus { mut inbox, .. } = bus;
        if self.relay.set(sender).is_err() {
            return;
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(text) = inbox.recv().await {
                let Ok(h) = serde_json::from_str::<Heard>(&text) else {
                    tracing::warn!("an event from another process could not be read");
                    continue;
                };
                if let Some(kind) = KINDS.into_iter().find(|k| *k == h.kind) {
                    let _ = tx.send(LiveEvent {
                        kind,
                        session_id: h.session_id,
                        sent_at_ms: h.sent_at_ms,
                        data: h.data,
                    });
                }
            }
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }
}

/// `GET /suite/events`: the live stream (text/event-stream).
pub async fn events(
    State(s): State<AppState>,
    _p: Principal,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.live.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(ev) => {
                let data = serde_json::to_string(&ev).unwrap_or_else(|_| "{}".into());
                Some((Ok(Event::default().event(ev.kind).data(data)), rx))
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let data = format!("{{\"skipped\":{n}}}");
                Some((Ok(Event::default().event("lagged").data(data)), rx))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The dashboard's script (served from the same origin: the CSP allows no inline script).
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/suite.js"),
    )
        .into_response()
}
