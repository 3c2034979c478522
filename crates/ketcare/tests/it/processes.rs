//! Two ketcare processes on one PostgreSQL: a vital received over MLLP by one process appears
//! on the suite dashboard's live stream served by the other (LISTEN/NOTIFY), once; and the
//! background jobs run in one process at a time (advisory locks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::sessions_durability::{Db, message, read_ack, start_serving};
use ketcare_session::hl7;
use ketcare_store::Backend;
use ketcare_store::jobs::Job;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// Opens the suite's live stream as `token` and returns its reader once the headers are read.
fn live_stream(http: SocketAddr, token: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(
        s,
        "GET /suite/events HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "the live stream: {status}");
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return r;
        }
    }
}

/// Reads the stream until `deadline`; the `data:` lines that mention `needle`.
fn lines_with(r: &mut BufReader<TcpStream>, needle: &str, deadline: Instant) -> Vec<String> {
    let mut found = Vec::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) if line.starts_with("data:") && line.contains(needle) => found.push(line),
            // Read timeouts and keep-alive comments: keep reading until the deadline.
            _ => {}
        }
    }
    found
}

#[test]
fn a_vital_received_by_one_process_reaches_the_suite_of_another() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(ketcare_store::testing::fresh_url(Backend::Postgres));
    let data = std::env::temp_dir().join(format!("ketcare-two-processes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (mut a, mllp_a, http_a) = start_serving(&Db::Url(url.clone(), data.join("a")), true);
    let (mut b, _, http_b) = start_serving(&Db::Url(url.clone(), data.join("b")), false);

    let token = Command::new(env!("CARGO_BIN_EXE_ketcare"))
        .arg("--data")
        .arg(data.join("a"))
        .args(["--database-url", &url, "token", "create", "--user", "nurse"])
        .env_remove("KETCARE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();

    // The nurse watches the suite on process B (and, to compare, on A).
    let mut on_b = live_stream(http_b, &token);
    let mut on_a = live_stream(http_a, &token);
    // A monitor sends a reading to process A.
    let id = "TWO-PROCESSES-1";
    let mut monitor = TcpStream::connect(mllp_a).unwrap();
    monitor.write_all(&message(id)).unwrap();
    let mut buf = Vec::new();
    let (code, ctrl, text) = hl7::parse_ack(&read_ack(&mut monitor, &mut buf).unwrap()).unwrap();
    assert_eq!((code.as_str(), ctrl.as_str()), ("AA", id), "{text}");

    // B shows it, once; so does A (its own event, not heard back from B).
    let deadline = Instant::now() + Duration::from_secs(5);
    let seen_b = lines_with(&mut on_b, id, deadline);
    let seen_a = lines_with(&mut on_a, id, Instant::now() + Duration::from_millis(500));
    assert_eq!(seen_b.len(), 1, "process B's live stream: {seen_b:?}");
    assert_eq!(seen_a.len(), 1, "process A's live stream: {seen_a:?}");
    assert!(seen_b[0].contains("\"kind\":\"vital\""), "{}", seen_b[0]);

    a.kill().unwrap();
    b.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
    let _ = std::fs::remove_dir_all(&data);
}

/// The advisory job lock: one holder across stores on one PostgreSQL; released on `release`,
/// and by the server when a holder's connection ends without it.
#[test]
fn a_job_runs_in_one_process_at_a_time() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = ketcare_store::testing::fresh_url(Backend::Postgres).await;
        let one = ketcare_store::open(&url).await.unwrap();
        let two = ketcare_store::open(&url).await.unwrap();
        let held = one.try_job_lock(Job::SessionTicker).await.unwrap();
        assert!(held.is_some());
        assert!(
            two.try_job_lock(Job::SessionTicker)
                .await
                .unwrap()
                .is_none()
        );
        // Another job is not held.
        let other = two.try_job_lock(Job::Outreach).await.unwrap();
        assert!(other.is_some());
        held.unwrap().release().await.unwrap();
        let taken = two.try_job_lock(Job::SessionTicker).await.unwrap();
        assert!(taken.is_some(), "released, so the other process takes it");
        // Dropped without release (a panicking pass): the connection closes, the lock goes.
        drop(taken);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(l) = one.try_job_lock(Job::SessionTicker).await.unwrap() {
                l.release().await.unwrap();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the dropped lock was never released"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        other.unwrap().release().await.unwrap();
        // `run_once`: a pass runs where the lock is free, and is skipped where it is held.
        let held = one.try_job_lock(Job::Outreach).await.unwrap().unwrap();
        let skipped = ketcare_store::jobs::run_once(two.as_ref(), Job::Outreach, async { 1 })
            .await
            .unwrap();
        assert_eq!(skipped, None);
        held.release().await.unwrap();
        let ran = ketcare_store::jobs::run_once(two.as_ref(), Job::Outreach, async { 1 })
            .await
            .unwrap();
        assert_eq!(ran, Some(1));
    });
}
