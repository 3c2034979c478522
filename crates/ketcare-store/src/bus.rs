//! Events between the processes that share one PostgreSQL database, through `LISTEN/NOTIFY`:
//! a suite dashboard served by one process sees the vitals another process received.
//!
//! Each process sends what it publishes on one channel and hears what every other process sends
//! on it. Notifications are transient by design (PostgreSQL keeps none for a listener that is
//! not connected): they carry the live display only, never a record — every vital, alarm and
//! session change is committed before it is published, and a page that reconnects reads the
//! record. SQLite is one process's file: it has no bus.
//!
//! Invariants:
//! - A process never hears its own events back (each payload carries the sender's random id).
//! - Sending never blocks the publisher: events wait in a bounded queue and are sent in batches
//!   (one statement for many notifications); when the queue is full the event is dropped from
//!   the other processes' display and counted.
//! - A payload over PostgreSQL's limit (8,000 bytes) is not sent; it is counted.

use crate::{Backend, Result};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// PostgreSQL refuses a `NOTIFY` payload of 8,000 bytes or more (the server's default).
const MAX_PAYLOAD: usize = 7_999;
/// Events waiting to be sent, and events heard but not yet taken, at most.
const QUEUE: usize = 8_192;
/// Notifications sent in one statement at most.
const BATCH: usize = 512;

/// This process's end of the bus: send with [`Bus::send`], hear the others on `inbox`.
pub struct Bus {
    outbox: mpsc::Sender<String>,
    /// What the other processes published, in the order PostgreSQL delivered it.
    pub inbox: mpsc::Receiver<String>,
    /// Events not sent (queue full or payload too large) and events not taken (inbox full).
    pub dropped: Arc<AtomicU64>,
}

impl Bus {
    /// Queues one event for the other processes; never waits.
    pub fn sender(&self) -> BusSender {
        BusSender {
            outbox: self.outbox.clone(),
            dropped: self.dropped.clone(),
        }
    }
}

/// A cheap handle that queues events for the other processes.
#[derive(Clone)]
pub struct BusSender {
    outbox: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
}

impl BusSender {
    /// Queues `payload`; `false` (and counted) when it is too large or the queue is full.
    pub fn send(&self, payload: String) -> bool {
        let sent = payload.len() + 40 <= MAX_PAYLOAD && self.outbox.try_send(payload).is_ok();
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}

/// Joins the bus `channel` of the database at `url`: `None` on SQLite (one process). Starts a
/// listening task and a sending task, each with a connection of its own (not from the pool).
pub async fn connect(url: &str, channel: &'static str) -> Result<Option<Bus>> {
    if Backend::from_url(url)? != Backend::Postgres {
        return Ok(None);
    }
    let origin = format!("{:016x}", rand::random::<u64>());
    let mut listener = PgListener::connect(url).await?;
    listener.listen(channel).await?;
    let sending = PgConnection::connect(url).await?;
    let (outbox, queued) = mpsc::channel::<String>(QUEUE);
    let (heard, inbox) = mpsc::channel::<String>(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    {
        let origin = origin.clone();
        let dropped = dropped.clone();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(n) => {
                        if let Some(event) = foreign(n.payload(), &origin)
                            && heard.try_send(event.to_owned()).is_err()
                        {
                            if heard.is_closed() {
                                return;
                            }
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        // `recv` reconnects by itself; wait before asking again.
                        tracing::warn!(error = %e, "listening for other processes' events");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
    tokio::spawn(send_batches(
        url.to_owned(),
        channel,
        origin,
        sending,
        queued,
    ));
    Ok(Some(Bus {
        outbox,
        inbox,
        dropped,
    }))
}

/// The event of a payload another process sent (`origin:sequence:event`); `None` for our own.
fn foreign<'a>(payload: &'a str, origin: &str) -> Option<&'a str> {
    let (from, rest) = payload.split_once(':')?;
    let (_, event) = rest.split_once(':')?;
    (from != origin).then_some(event)
}

/// Sends what is queued, many notifications per statement, until every sender is gone. A
/// failed statement reconnects after a second; the events of that batch are lost to the other
/// processes' display (never to the record).
async fn send_batches(
    url: String,
    channel: &'static str,
    origin: String,
    mut conn: PgConnection,
    mut queued: mpsc::Receiver<String>,
) {
    // The sequence makes every payload distinct: PostgreSQL folds identical payloads sent in
    // one transaction into one notification.
    let mut seq: u64 = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while queued.recv_many(&mut batch, BATCH).await > 0 {
        let payloads: Vec<String> = batch
            .drain(..)
            .map(|event| {
                seq += 1;
                format!("{origin}:{seq}:{event}")
            })
            .collect();
        let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS t(p)")
            .bind(channel)
            .bind(&payloads)
            .execute(&mut conn)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, events = payloads.len(), "sending events to other processes");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            match PgConnection::connect(&url).await {
                Ok(c) => conn = c,
                Err(e) => tracing::warn!(error = %e, "reconnecting the event bus"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::foreign;

    #[test]
    fn a_process_hears_only_the_others() {
        assert_eq!(foreign("aa:1:{\"k\":1}", "bb"), Some("{\"k\":1}"));
        assert_eq!(foreign("bb:2:{\"k\":1}", "bb"), None);
        // An event may itself hold colons.
        assert_eq!(
            foreign("aa:3:{\"t\":\"09:00\"}", "bb"),
            Some("{\"t\":\"09:00\"}")
        );
        assert_eq!(foreign("garbage", "bb"), None);
    }
}
