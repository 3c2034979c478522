//! The live channel: every stored vital, raised alarm and session change is published here and
//! streamed to the suite dashboard as server-sent events.

use crate::AppState;
use crate::auth::Principal;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use ketcare_core::SessionId;
use serde::Serialize;
use std::convert::Infallible;
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

/// The broadcast channel (cheap to clone; subscribers that fall behind skip old events).
#[derive(Clone)]
pub struct Live {
    tx: broadcast::Sender<LiveEvent>,
}

impl Default for Live {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self { tx }
    }
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Live {
    pub fn publish(&self, kind: &'static str, session_id: SessionId, data: serde_json::Value) {
        // No subscriber is fine: nobody is watching the suite.
        let _ = self.tx.send(LiveEvent {
            kind,
            session_id,
            sent_at_ms: now_ms(),
            data,
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
