//! Background jobs that must run once across every process sharing a database: each pass of a
//! job first takes the job's PostgreSQL advisory lock; a process that does not get it skips
//! that pass (another process is running it). SQLite is one process's file: the lock is always
//! granted.
//!
//! Invariants:
//! - The lock is a session-level advisory lock held on a connection of its own for the length
//!   of the pass; [`JobLock::release`] unlocks and returns the connection to the pool.
//! - A pass that ends without `release` (a panic, a cancelled task) closes that connection,
//!   and PostgreSQL releases the lock with it: a crashed process never holds a job.

use crate::Result;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection};

/// The jobs that run once across processes, each with its advisory lock key (fixed forever:
/// processes of two versions must agree on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// The session time rules (observation timers, alarms due by time).
    SessionTicker,
    /// Course schedules, reminders and the outbox.
    Outreach,
}

impl Job {
    /// The advisory lock key: a fixed prefix (ASCII "ketc") with the job's number.
    pub fn key(self) -> i64 {
        const PREFIX: i64 = 0x6b65_7463 << 32;
        PREFIX
            | match self {
                Job::SessionTicker => 1,
                Job::Outreach => 2,
            }
    }
}

/// A held job lock (see the module's invariants).
pub struct JobLock {
    held: Option<(PoolConnection<Any>, i64)>,
}

impl JobLock {
    /// SQLite: granted, nothing held.
    pub(crate) fn granted() -> Self {
        Self { held: None }
    }

    /// Takes `job`'s advisory lock on a pooled connection, or `None` when another process has it.
    pub(crate) async fn try_take(pool: &sqlx::AnyPool, job: Job) -> Result<Option<Self>> {
        let mut conn = pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(job.key())
            .fetch_one(&mut *conn)
            .await?;
        Ok(got.then(|| Self {
            held: Some((conn, job.key())),
        }))
    }

    /// Ends the pass: unlocks, and the connection goes back to the pool.
    pub async fn release(mut self) -> Result<()> {
        if let Some((mut conn, key)) = self.held.take() {
            let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await;
            match unlocked {
                Ok(true) => {}
                // Unlocking failed: closing the connection releases the lock.
                _ => conn.detach().close().await?,
            }
        }
        Ok(())
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        // Not released: the connection must not go back to the pool holding the lock. Dropping
        // the detached connection closes it, and the server releases the lock.
        if let Some((conn, _)) = self.held.take() {
            drop(conn.detach());
        }
    }
}

/// Runs one pass of `job` if this process gets its lock: `Ok(Some(answer))`, or `Ok(None)`
/// when another process sharing the database runs it now.
pub async fn run_once<T>(
    store: &dyn crate::Store,
    job: Job,
    pass: impl std::future::Future<Output = T>,
) -> Result<Option<T>> {
    let Some(lock) = store.try_job_lock(job).await? else {
        return Ok(None);
    };
    let answer = pass.await;
    lock.release().await?;
    Ok(Some(answer))
}
