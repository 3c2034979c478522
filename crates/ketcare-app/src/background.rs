//! One worker thread for the long pure computations of the research side — a whole program's
//! registry outcomes and tables, an export's encoding — at a lower scheduling priority than the
//! rest of the process (Linux: nice 10 on its own thread), so that on a busy machine the bedside
//! feed, the pages and the database take the processor first and a researcher's table waits.
//! Jobs run one at a time, in the order given; a job whose caller stopped waiting is skipped; a
//! job that panics answers an error and the worker goes on. The lower priority ranks the worker
//! against the other threads of its scheduling group (on most systems, the process's session):
//! it yields to the bedside feed in this process, not necessarily to other services.

use crate::Error;
use std::sync::OnceLock;
use std::sync::mpsc::Sender;

type Job = Box<dyn FnOnce() + Send>;

/// How much lower than the process the worker is scheduled (a nice increment).
#[cfg(target_os = "linux")]
const NICER_BY: i32 = 10;

fn worker() -> &'static Sender<Job> {
    static WORKER: OnceLock<Sender<Job>> = OnceLock::new();
    WORKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("ketcare-background".into())
            .spawn(move || {
                lower_priority();
                for job in rx {
                    job();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the background worker could not start");
        }
        tx
    })
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    let me = rustix::thread::gettid();
    let lowered = rustix::process::getpriority_process(Some(me))
        .and_then(|now| rustix::process::setpriority_process(Some(me), (now + NICER_BY).min(19)));
    if let Err(e) = lowered {
        tracing::warn!(error = %e, "the background worker keeps the process's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Runs `f` on the background worker and answers what it returns.
pub async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // Nobody waits any more (the request was dropped): the work is skipped.
        if tx.is_closed() {
            return;
        }
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    worker()
        .send(job)
        .map_err(|_| Error::Conflict("the background worker has stopped".into()))?;
    match rx.await {
        Ok(Ok(out)) => out,
        Ok(Err(_)) => Err(Error::Conflict(
            "the computation failed (see the server's log)".into(),
        )),
        Err(_) => Err(Error::Conflict("the background worker has stopped".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_answer_in_turn_and_a_panic_is_an_error_not_a_dead_worker() {
        assert_eq!(run(|| Ok(6 * 7)).await.unwrap(), 42);
        let failed: Result<(), Error> = run(|| panic!("a bad job")).await;
        assert!(failed.is_err());
        assert_eq!(run(|| Ok("still here")).await.unwrap(), "still here");
        #[cfg(target_os = "linux")]
        {
            let nice = run(|| {
                Ok(rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok())
            })
            .await
            .unwrap();
            let mine = rustix::process::getpriority_process(None).ok();
            if let (Some(n), Some(m)) = (nice, mine) {
                assert!(
                    n > m || n == 19,
                    "the worker runs at nice {n}, the process at {m}"
                );
            }
        }
    }
}
