//! Killing the server with SIGKILL loses nothing it acknowledged: monitors stream ORU^R01 over
//! MLLP, the process is killed mid-stream, restarted on the same database, and every vital that
//! got an ACK AA is there exactly once; re-sent messages are acknowledged and not stored again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ketcare_core::{Actor, Role};
use ketcare_session::{Vitals, hl7};
use ketcare_store::Backend;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) fn start(data: &std::path::Path, demo: bool) -> (Child, SocketAddr) {
    start_on(&Db::Data(data.to_owned()), demo)
}

/// The database a server runs on: the embedded file in a folder, or a URL (with a folder for
/// the server's other files, the anchors).
pub(crate) enum Db {
    Data(std::path::PathBuf),
    Url(String, std::path::PathBuf),
}

pub(crate) fn start_on(db: &Db, demo: bool) -> (Child, SocketAddr) {
    let (child, mllp, _) = start_serving(db, demo);
    (child, mllp)
}

/// [`start_on`], with the web address too: (process, MLLP address, HTTP address).
pub(crate) fn start_serving(db: &Db, demo: bool) -> (Child, SocketAddr, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ketcare"));
    match db {
        Db::Data(data) => cmd.arg("--data").arg(data),
        Db::Url(url, data) => cmd.arg("--data").arg(data).args(["--database-url", url]),
    };
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--mllp", "127.0.0.1:0"]);
    if demo {
        cmd.arg("--demo");
    }
    let mut child = cmd
        .env_remove("KETCARE_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut mllp = None;
    let mut http = None;
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ketcare MLLP (HL7 v2 ORU^R01) listening on ") {
            mllp = Some(rest.trim().parse().unwrap());
        }
        if let Some(rest) = line.strip_prefix("ketcare listening on http://") {
            http = rest.split_whitespace().next().map(|a| a.parse().unwrap());
            break;
        }
    }
    (
        child,
        mllp.expect("the server printed its MLLP address"),
        http.expect("the server printed its address"),
    )
}

pub(crate) fn message(id: &str) -> Vec<u8> {
    let v = Vitals {
        systolic: Some(120.0),
        diastolic: Some(80.0),
        spo2: Some(97.0),
        ..Vitals::default()
    };
    hl7::mllp_frame(&hl7::build_oru(id, "KC-1002", "", "20260101090000", &v))
}

pub(crate) fn read_ack(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let hl7::Frame::Complete { payload, consumed } = hl7::mllp_deframe(buf) {
            buf.drain(..consumed);
            return Some(String::from_utf8_lossy(&payload).into_owned());
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Streams until the connection breaks; records every control id acknowledged with AA.
pub(crate) fn stream(addr: SocketAddr, monitor: usize, acked: Arc<Mutex<Vec<String>>>) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let mut buf = Vec::new();
    for n in 0.. {
        let id = format!("M{monitor}-{n}");
        if s.write_all(&message(&id)).is_err() {
            return;
        }
        match read_ack(&mut s, &mut buf).and_then(|a| hl7::parse_ack(&a)) {
            Some((code, ctrl, _)) if code == "AA" && ctrl == id => acked.lock().unwrap().push(id),
            Some(other) => panic!("unexpected ACK {other:?}"),
            None => return,
        }
    }
}

/// On both backends: vitals are committed in batches, and a batch's ACKs go out only after its
/// commit.
#[test]
fn acknowledged_vitals_survive_sigkill_exactly_once() {
    let data = std::env::temp_dir().join(format!("ketcare-sigkill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let postgres = rt.block_on(ketcare_store::testing::fresh_url(Backend::Postgres));
    let file = format!("sqlite://{}?mode=rw", data.join("ketcare.db").display());
    let on_postgres = Db::Url(postgres.clone(), data.join("postgres"));
    for (db, url) in [(Db::Data(data.clone()), file), (on_postgres, postgres)] {
        survives_sigkill(&rt, &db, &url);
    }
    let _ = std::fs::remove_dir_all(&data);
}

fn survives_sigkill(rt: &tokio::runtime::Runtime, db: &Db, url: &str) {
    let (mut server, mllp) = start_on(db, true);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let monitors: Vec<_> = (0..4)
        .map(|m| {
            let acked = acked.clone();
            std::thread::spawn(move || stream(mllp, m, acked))
        })
        .collect();
    // Kill mid-stream, once a good number of messages has been acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    for m in monitors {
        m.join().unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 200,
        "only {} acknowledged before the deadline",
        acked.len()
    );

    // Restart on the same database; re-send some acknowledged messages: AA, not stored again.
    let (mut server, mllp) = start_on(db, false);
    let mut s = TcpStream::connect(mllp).unwrap();
    let mut buf = Vec::new();
    for id in acked.iter().take(5) {
        s.write_all(&message(id)).unwrap();
        let (code, ctrl, text) = hl7::parse_ack(&read_ack(&mut s, &mut buf).unwrap()).unwrap();
        assert_eq!((code.as_str(), ctrl.as_str()), ("AA", id.as_str()));
        assert!(text.contains("duplicate"), "{text}");
    }
    drop(s);
    server.kill().unwrap();
    server.wait().unwrap();

    rt.block_on(async {
        let store = ketcare_store::open(url).await.unwrap();
        let nurse = Actor::system(Role::Nurse);
        let sid = store
            .match_active_session(&["KC-1002".into()], &[])
            .await
            .unwrap()
            .session()
            .expect("the demo's dosing session");
        let stored: Vec<String> = store
            .session_vitals(&nurse, sid)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|v| v.reading.control_id)
            .collect();
        let unique: HashSet<&String> = stored.iter().collect();
        assert_eq!(unique.len(), stored.len(), "a vital was stored twice");
        for id in &acked {
            assert!(
                unique.contains(id),
                "acknowledged vital {id} is missing after SIGKILL"
            );
        }
        // At most one unacknowledged message per monitor was in flight when the server died.
        assert!(stored.len() <= acked.len() + 4);
    });
}
