//! Bedside monitors over a real MLLP connection, on SQLite and PostgreSQL: patient identity
//! before the chair, OBX-6 units, torn and oversize frames, the three-column message key, and
//! physiologically impossible vitals refused on every edge (MLLP, API, page form).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use jiff::Timestamp;
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::patient::{NewPatient, PatientInput};
use ketcare_core::{Actor, AgeBands, Role};
use ketcare_session::hl7::{self, Frame};
use ketcare_session::{Command, RulesFile, Session};
use ketcare_store::{Backend, StoredVital};
use ketcare_web::{AppState, WebConfig};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn nurse() -> Actor {
    Actor::system(Role::Nurse)
}

fn t0() -> Timestamp {
    Timestamp::from_second(START).unwrap()
}

/// A checked-in session for a new patient (MRN `mrn`) in `chair`.
async fn seated(app: &TestApp, mrn: &str, chair: &str) -> ketcare_core::SessionId {
    let input: PatientInput = serde_json::from_value(json!({
        "mrn": mrn, "given_name": "Ada", "family_name": "Monitor", "date_of_birth": "1980-02-03",
        "sex": "female"
    }))
    .unwrap();
    let p = NewPatient::parse(&input, jiff::civil::date(2026, 1, 1)).unwrap();
    let pid = app.store.create_patient(&nurse(), &p).await.unwrap().id;
    let lib = Library::builtin().unwrap();
    let rules = RulesFile::builtin(lib.sources()).unwrap();
    let settings = SiteSettings::new()
        .with("observation.ketamine_psychiatric_minutes", 60.0)
        .with("session.ketamine.bp_gate_systolic_mmhg", 140.0)
        .with("session.ketamine.bp_gate_diastolic_mmhg", 90.0);
    let plan = rules.plan(lib.get("trd-adult-iv-ketamine").unwrap(), &settings, 0);
    ketcare_store::testing::consent_on_file(
        app.store.as_ref(),
        pid,
        &plan.protocol_id,
        plan.protocol_version,
        Timestamp::from_second(START - 86_400).unwrap(),
    )
    .await;
    let id = app
        .store
        .create_treatment_session(&nurse(), pid, &Session::new(plan, chair, t0()))
        .await
        .unwrap()
        .id;
    app.store
        .apply_session_command(&nurse(), id, &Command::CheckIn, t0())
        .await
        .unwrap();
    id
}

/// The MLLP listener over the test app's store, on a free port.
async fn listener(app: &TestApp) -> SocketAddr {
    listener_on(app.store.clone()).await
}

/// The MLLP listener over `store`, on a free port.
async fn listener_on(store: std::sync::Arc<dyn ketcare_store::Store>) -> SocketAddr {
    let state = AppState::new(
        store,
        WebConfig::default(),
        AgeBands::builtin().unwrap(),
        Library::builtin().unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(ketcare_web::sessions::mllp::serve(state, l));
    addr
}

/// An ORU^R01 (MSH-3 and MSH-4 as given, already escaped).
fn oru(app_fac: (&str, &str), control: &str, pid: &str, pv1: &str, obx: &[&str]) -> String {
    let (app, fac) = app_fac;
    let mut m = format!(
        "MSH|^~\\&|{app}|{fac}|KETCARE|SITE|20261122115900||ORU^R01^ORU_R01|{control}|P|2.6\rPID|||{pid}\rPV1||O|{pv1}\r"
    );
    for (i, o) in obx.iter().enumerate() {
        m.push_str(&format!("OBX|{}|NM|{o}|||||F\r", i + 1));
    }
    m
}

const SPO2: &str = "150456^MDC_PULS_OXIM_SAT_O2^MDC||";

struct Monitor {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Monitor {
    async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8], chunk: usize) {
        for c in bytes.chunks(chunk.max(1)) {
            self.stream.write_all(c).await.unwrap();
        }
        self.stream.flush().await.unwrap();
    }

    /// The next ACK as (code, acknowledged control id, text); `None` if none comes in 500 ms.
    async fn ack(&mut self) -> Option<(String, String, String)> {
        loop {
            match hl7::mllp_deframe(&self.buf) {
                Frame::Complete { payload, consumed } => {
                    self.buf.drain(..consumed);
                    return hl7::parse_ack(&String::from_utf8_lossy(&payload));
                }
                Frame::Garbage { skip } => {
                    self.buf.drain(..skip);
                }
                Frame::Incomplete => {
                    let mut chunk = [0u8; 4096];
                    let n = tokio::time::timeout(
                        Duration::from_millis(500),
                        self.stream.read(&mut chunk),
                    )
                    .await
                    .ok()?
                    .unwrap();
                    assert!(n > 0, "the connection closed");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    async fn send(&mut self, message: &str) -> (String, String, String) {
        self.write(&hl7::mllp_frame(message), usize::MAX).await;
        self.ack().await.expect("an ACK")
    }
}

async fn vitals(app: &TestApp, sid: ketcare_core::SessionId) -> Vec<StoredVital> {
    app.store.session_vitals(&nurse(), sid).await.unwrap()
}

#[tokio::test]
async fn monitor_messages_are_matched_by_patient_identity_first() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::new(backend).await;
        let a = seated(&app, "MRN-A", "Chair 1").await;
        let b = seated(&app, "MRN-B", "Chair 2").await;
        let mut mon = Monitor::connect(listener(&app).await).await;
        let spo2 = |v: &str| format!("{SPO2}{v}|%");

        // PID-3 names patient B while PV1-3 names A's chair: AE, nothing stored anywhere.
        let (code, id, text) = mon
            .send(&oru(
                ("MON", "W"),
                "M1",
                "MRN-B^^^H^MR",
                "SUITE^^Chair 1",
                &[&spo2("91")],
            ))
            .await;
        assert_eq!(
            (code.as_str(), id.as_str()),
            ("AE", "M1"),
            "{backend:?}: {text}"
        );
        assert!(
            text.contains("PID-3 and PV1-3 disagree") && text.contains("MRN-B"),
            "{text}"
        );
        // PID-3 names nobody: AE, although someone sits in the chair PV1-3 names.
        let (code, _, text) = mon
            .send(&oru(
                ("MON", "W"),
                "M2",
                "MRN-NOBODY",
                "SUITE^^Chair 1",
                &[&spo2("92")],
            ))
            .await;
        assert_eq!(code, "AE", "{text}");
        assert!(
            text.contains("PID-3: no patient") && text.contains("MRN-NOBODY"),
            "{text}"
        );
        assert!(vitals(&app, a).await.is_empty() && vitals(&app, b).await.is_empty());

        // PID-3 empty: the chair decides. PID-3 and PV1-3 agreeing: stored for that patient.
        let (code, _, text) = mon
            .send(&oru(
                ("MON", "W"),
                "M3",
                "",
                "SUITE^^Chair 1",
                &[&spo2("97")],
            ))
            .await;
        assert_eq!(code, "AA", "{text}");
        let (code, _, text) = mon
            .send(&oru(
                ("MON", "W"),
                "M4",
                "MRN-B",
                "SUITE^^Chair 2",
                &[&spo2("96")],
            ))
            .await;
        assert_eq!(code, "AA", "{text}");
        let va = vitals(&app, a).await;
        let vb = vitals(&app, b).await;
        assert_eq!(
            (
                va.len(),
                va[0].reading.control_id.as_deref(),
                va[0].reading.vitals.spo2
            ),
            (1, Some("M3"), Some(97.0))
        );
        assert_eq!(
            (
                vb.len(),
                vb[0].reading.control_id.as_deref(),
                vb[0].reading.vitals.spo2
            ),
            (1, Some("M4"), Some(96.0))
        );
    }
}

#[tokio::test]
async fn units_torn_frames_oversize_and_repeats_over_mllp() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::new(backend).await;
        let a = seated(&app, "MRN-U", "Chair 1").await;
        let mut mon = Monitor::connect(listener(&app).await).await;

        // OBX-6: 16.0/10.7 kPa is stored as 120.0/80.3 mmHg; an unknown unit is AE naming it.
        let (code, _, text) = mon
            .send(&oru(
                ("MON", "W"),
                "U1",
                "MRN-U",
                "",
                &[
                    "150021^MDC_PRESS_BLD_NONINV_SYS^MDC||16.0|kPa",
                    "150022^MDC_PRESS_BLD_NONINV_DIA^MDC||10.7|kPa",
                ],
            ))
            .await;
        assert_eq!(code, "AA", "{backend:?}: {text}");
        let v = vitals(&app, a).await;
        assert_eq!(
            (v[0].reading.vitals.systolic, v[0].reading.vitals.diastolic),
            (Some(120.0), Some(80.3))
        );
        let (code, _, text) = mon
            .send(&oru(
                ("MON", "W"),
                "U2",
                "MRN-U",
                "",
                &[
                    "150021^MDC_PRESS_BLD_NONINV_SYS^MDC||160|mbar",
                    "150022^MDC_PRESS_BLD_NONINV_DIA^MDC||107|mbar",
                ],
            ))
            .await;
        assert_eq!(code, "AE");
        assert!(
            text.starts_with("OBX-6") && text.contains("\"mbar\""),
            "{text}"
        );
        assert_eq!(vitals(&app, a).await.len(), 1);

        // A torn frame followed by a whole one: only the whole one, under its own id and value.
        let torn = oru(("MON", "W"), "T1", "MRN-U", "", &[&format!("{SPO2}91|%")]);
        let whole = oru(("MON", "W"), "T2", "MRN-U", "", &[&format!("{SPO2}97|%")]);
        let mut bytes = vec![hl7::MLLP_START];
        bytes.extend_from_slice(&torn.as_bytes()[..torn.len() - 5]);
        bytes.extend(hl7::mllp_frame(&whole));
        mon.write(&bytes, usize::MAX).await;
        let (code, id, text) = mon.ack().await.expect("an ACK for the whole frame");
        assert_eq!((code.as_str(), id.as_str()), ("AA", "T2"), "{text}");
        assert!(mon.ack().await.is_none(), "no ACK for the torn frame");
        let v = vitals(&app, a).await;
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[1].reading.control_id.as_deref(), v[1].reading.vitals.spo2),
            (Some("T2"), Some(97.0))
        );

        // Over 1 MiB: AR naming the limit whatever the TCP chunking; the next frame on the same
        // connection is read and stored normally.
        for (i, chunk) in [7, 1460, 65_536, usize::MAX].into_iter().enumerate() {
            let big = format!(
                "{}NTE|1||{}\r",
                oru(
                    ("MON", "W"),
                    &format!("BIG{i}"),
                    "MRN-U",
                    "",
                    &[&format!("{SPO2}90|%")]
                ),
                "x".repeat(hl7::MAX_MESSAGE)
            );
            let next = oru(
                ("MON", "W"),
                &format!("N{i}"),
                "MRN-U",
                "",
                &[&format!("{SPO2}98|%")],
            );
            let mut bytes = hl7::mllp_frame(&big);
            bytes.extend(hl7::mllp_frame(&next));
            mon.write(&bytes, chunk).await;
            let (code, id, text) = mon.ack().await.expect("an AR for the oversize frame");
            assert_eq!(
                (code.as_str(), id.clone()),
                ("AR", format!("BIG{i}")),
                "chunk {chunk}: {text}"
            );
            assert_eq!(
                text,
                format!(
                    "message of {} bytes is over the 1048576 byte limit: refused, nothing stored",
                    big.len()
                )
            );
            let (code, id, _) = mon.ack().await.expect("an ACK for the next frame");
            assert_eq!(
                (code.as_str(), id),
                ("AA", format!("N{i}")),
                "chunk {chunk}"
            );
        }
        let v = vitals(&app, a).await;
        assert_eq!(v.len(), 6);
        assert!(v.iter().all(|x| x.reading.vitals.spo2 != Some(90.0)));

        // "A|B" + "C" and "A" + "B|C" (escaped \F\ in MSH-3/MSH-4) are two senders now.
        for (sender, spo2) in [(("A\\F\\B", "C"), "95"), (("A", "B\\F\\C"), "94")] {
            let (code, _, text) = mon
                .send(&oru(
                    sender,
                    "77",
                    "MRN-U",
                    "",
                    &[&format!("{SPO2}{spo2}|%")],
                ))
                .await;
            assert_eq!((code.as_str(), text.as_str()), ("AA", ""), "{sender:?}");
        }
        let (code, _, text) = mon
            .send(&oru(
                ("A\\F\\B", "C"),
                "77",
                "MRN-U",
                "",
                &[&format!("{SPO2}95|%")],
            ))
            .await;
        assert_eq!(code, "AA");
        assert!(text.contains("duplicate"), "{text}");
        let v = vitals(&app, a).await;
        assert_eq!(v.len(), 8, "{backend:?}");
        assert_eq!(
            v[6..]
                .iter()
                .map(|x| (x.reading.control_id.clone(), x.reading.vitals.spo2))
                .collect::<Vec<_>>(),
            vec![
                (Some("77".into()), Some(95.0)),
                (Some("77".into()), Some(94.0))
            ]
        );
    }
}

#[tokio::test]
async fn impossible_vitals_are_refused_on_every_edge() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::new(backend).await;
        let sid = seated(&app, "MRN-I", "Chair 1").await;
        app.add_user("nurse", Role::Nurse).await;
        let bearer = app.bearer("nurse").await;
        let page = app.login("nurse").await;
        let path = format!("/api/v1/sessions/{sid}/vitals");

        // JSON API: 422 naming each field, with the cited reason.
        for (body, field) in [
            (json!({"spo2": 150}), "spo2"),
            (json!({"heart_rate": 700}), "heart_rate"),
            (json!({"systolic": 500, "diastolic": 90}), "systolic"),
            (json!({"temperature_c": 50}), "temperature_c"),
        ] {
            let r = app.json(Method::POST, &path, &bearer, &body).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {}",
                r.body
            );
            assert_eq!(r.fields(), vec![field], "{backend:?} {body}");
            assert!(r.body.contains("physiologically impossible"), "{}", r.body);
        }
        // The page form: 422 with the message beside the field.
        let r = app
            .post_form(
                &format!("/sessions/{sid}/vitals"),
                &page,
                &[("systolic", "500"), ("diastolic", "90"), ("spo2", "97")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body
                .contains("systolic: 500 mmHg is physiologically impossible"),
            "{}",
            r.body
        );
        // Baseline vitals on the checklist (page and API command) go through the same check.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/sessions/{sid}/commands"),
                &bearer,
                &json!({"command": "set_baseline", "vitals": {"systolic": 120, "diastolic": 80, "spo2": 150}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(
            r.body.contains("spo2: 150 % is physiologically impossible"),
            "{}",
            r.body
        );
        // MLLP: AE naming the field.
        let mut mon = Monitor::connect(listener(&app).await).await;
        let (code, _, text) = mon
            .send(&oru(
                ("MON", "W"),
                "I1",
                "MRN-I",
                "",
                &[&format!("{SPO2}150|%")],
            ))
            .await;
        assert_eq!(code, "AE");
        assert!(
            text.contains("spo2") && text.contains("physiologically impossible"),
            "{text}"
        );
        assert!(vitals(&app, sid).await.is_empty(), "{backend:?}");
        // A possible reading on each edge is stored.
        let r = app
            .json(Method::POST, &path, &bearer, &json!({"spo2": 97}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let (code, _, _) = mon
            .send(&oru(
                ("MON", "W"),
                "I2",
                "MRN-I",
                "",
                &[&format!("{SPO2}98|%")],
            ))
            .await;
        assert_eq!(code, "AA");
        assert_eq!(vitals(&app, sid).await.len(), 2);
    }
}

/// With a list of monitors set, an unlisted sender (address or facility) gets AR and an audit
/// record and stores nothing; a listed one is accepted as before.
#[tokio::test]
async fn only_the_sites_listed_monitors_store_vitals() {
    for backend in ketcare_store::testing::BACKENDS {
        let app = TestApp::new(backend).await;
        app.set_test_site_settings().await;
        app.add_user("alex", Role::Administrator).await;
        let sid = seated(&app, "AL-1", "Chair 9").await;
        let state = AppState::new(
            app.store.clone(),
            WebConfig::default(),
            AgeBands::builtin().unwrap(),
            Library::builtin().unwrap(),
        );
        // The administrator lists the suite's monitors on the settings page.
        let admin = app.login("alex").await;
        let bad = app
            .post_form(
                "/settings",
                &admin,
                &[
                    ("key", "mllp.allowed_senders"),
                    ("value", "Ward 7!"),
                    ("reason", "typo"),
                ],
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
        assert!(bad.body.contains("mllp.allowed_senders"), "{}", bad.body);
        let r = app
            .post_form(
                "/settings",
                &admin,
                &[
                    ("key", "mllp.allowed_senders"),
                    ("value", "SUITE-A, 10.20.0.0/16"),
                    ("reason", "only the suite's monitors"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        state.refresh_demo().await.unwrap();
        let msg = |fac: &str, id: &str| {
            oru(
                ("MON", fac),
                id,
                "AL-1",
                "Chair 9",
                &[&format!("{SPO2}97|%")],
            )
        };
        let refused =
            ketcare_web::sessions::mllp::handle(&state, &msg("SUITE-A", "X1"), "172.16.0.9:4000")
                .await;
        assert!(refused.contains("MSA|AR|X1"), "{refused}");
        assert!(refused.contains("mllp.allowed_senders"), "{refused}");
        let refused =
            ketcare_web::sessions::mllp::handle(&state, &msg("ICU", "X2"), "10.20.1.2:4000").await;
        assert!(refused.contains("MSA|AR|X2"), "{refused}");
        let ok =
            ketcare_web::sessions::mllp::handle(&state, &msg("SUITE-A", "X3"), "10.20.1.2:4000")
                .await;
        assert!(ok.contains("MSA|AA|X3"), "{backend:?} {ok}");
        let stored = app.store.session_vitals(&nurse(), sid).await.unwrap();
        assert_eq!(stored.len(), 1, "only the listed monitor's vital");
        let audit = app
            .get(
                "/api/v1/audit?action=mllp.refused",
                &app.bearer("alex").await,
            )
            .await;
        assert!(audit.body.contains("172.16.0.9"), "{}", audit.body);
    }
}

/// Sends `message` on a new connection and waits for its ACK, however long the server takes.
async fn send_and_wait(addr: SocketAddr, message: String) -> (String, String, String) {
    let mut mon = Monitor::connect(addr).await;
    mon.write(&hl7::mllp_frame(&message), usize::MAX).await;
    loop {
        if let Some(ack) = mon.ack().await {
            return ack;
        }
    }
}

/// More load than the store can commit is shed, not queued without bound: with the vitals
/// writer held up (another transaction holds the audit chain's lock), a flood of monitors fills
/// the writer's bounded queue and every message beyond it is answered AR at once, nothing
/// stored. Once the writer goes on, every message it took is answered AA — only after its
/// commit — and is in the database; each refused one, sent again, is stored. Every message gets
/// an answer.
#[tokio::test]
async fn a_flood_is_shed_with_ar_and_every_aa_is_stored() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::new(backend).await;
        let sid = seated(&app, "MRN-F", "Chair F").await;
        // A queue of 2 and batches of 2: at most 4 messages are in the writer's hands.
        let options = ketcare_store::StoreOptions {
            vitals_queue: 2,
            vitals_batch: 2,
            lock_timeout_ms: 120_000,
            ..Default::default()
        };
        let store = ketcare_store::open_with(&app.url, &options).await.unwrap();
        let addr = listener_on(store).await;
        let message = |id: &str| oru(("MON", "SITE"), id, "MRN-F", "", &[&format!("{SPO2}97|%")]);
        let lock = ketcare_store::testing::hold_write_lock(&app.url).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for m in 0..16 {
            let (tx, msg) = (tx.clone(), message(&format!("F-{m}")));
            tokio::spawn(async move {
                let _ = tx.send(send_and_wait(addr, msg).await);
            });
        }
        drop(tx);
        let guard = Duration::from_secs(60);
        let mut answers = Vec::new();
        // Nothing can commit while the lock is held: the first 12 answers (16 less the 4 at most
        // the writer holds) are all refusals.
        while answers.len() < 12 {
            let ack = tokio::time::timeout(guard, rx.recv())
                .await
                .expect("answered while the writer is held")
                .unwrap();
            assert_eq!(ack.0, "AR", "{backend:?}: {ack:?}");
            assert!(ack.2.contains("busy"), "{backend:?}: {}", ack.2);
            answers.push(ack);
        }
        lock.release().await;
        while let Some(ack) = tokio::time::timeout(guard, rx.recv())
            .await
            .expect("every message answered")
        {
            answers.push(ack);
        }
        assert_eq!(answers.len(), 16, "{backend:?}: every message answered");
        let acked: Vec<&String> = answers
            .iter()
            .filter(|(code, _, _)| code == "AA")
            .map(|(_, ctrl, _)| ctrl)
            .collect();
        let refused: Vec<&String> = answers
            .iter()
            .filter(|(code, _, _)| code == "AR")
            .map(|(_, ctrl, _)| ctrl)
            .collect();
        assert_eq!(acked.len() + refused.len(), 16, "{backend:?}: {answers:?}");
        assert!(
            acked.len() >= 3,
            "{backend:?}: the writer's messages: {answers:?}"
        );
        let stored: Vec<String> = vitals(&app, sid)
            .await
            .into_iter()
            .filter_map(|v| v.reading.control_id)
            .collect();
        assert_eq!(
            stored.len(),
            acked.len(),
            "{backend:?}: only the AA'd are stored"
        );
        for id in &acked {
            assert!(stored.contains(id), "{backend:?}: AA'd {id} is stored");
        }
        // Sent again, each refused message is stored.
        for id in refused {
            let (code, ctrl, text) = send_and_wait(addr, message(id)).await;
            assert_eq!((code.as_str(), &ctrl), ("AA", id), "{backend:?}: {text}");
        }
        assert_eq!(vitals(&app, sid).await.len(), 16, "{backend:?}");
    }
}

/// The same overload through the JSON API: with the writer held, the POSTs beyond the bounded
/// queue are answered 429 with `Retry-After` at once, nothing stored; once the writer goes on,
/// every other POST is answered 201 — only after its commit — and exactly those are stored.
#[tokio::test]
async fn an_http_flood_is_shed_with_429_and_every_201_is_stored() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let options = ketcare_store::StoreOptions {
            vitals_queue: 2,
            vitals_batch: 2,
            lock_timeout_ms: 120_000,
            ..Default::default()
        };
        let app = std::sync::Arc::new(
            TestApp::with_store_options(backend, TestApp::config(), &options, |s| s).await,
        );
        let sid = seated(&app, "MRN-H", "Chair H").await;
        app.add_user("nurse", Role::Nurse).await;
        let bearer = app.bearer("nurse").await;
        let lock = ketcare_store::testing::hold_write_lock(&app.url).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for m in 0..12 {
            let (tx, app, bearer) = (tx.clone(), app.clone(), bearer.clone());
            tokio::spawn(async move {
                let path = format!("/api/v1/sessions/{sid}/vitals");
                let r = app
                    .json(Method::POST, &path, &bearer, &json!({"spo2": 88 + m}))
                    .await;
                let _ = tx.send(r);
            });
        }
        drop(tx);
        let guard = Duration::from_secs(60);
        let mut answers = Vec::new();
        // While the lock is held nothing commits: the first 8 answers (12 less the 4 at most the
        // writer holds) are all refusals.
        while answers.len() < 8 {
            let r = tokio::time::timeout(guard, rx.recv())
                .await
                .expect("answered while the writer is held")
                .unwrap();
            assert_eq!(
                r.status,
                StatusCode::TOO_MANY_REQUESTS,
                "{backend:?}: {}",
                r.body
            );
            assert_eq!(
                r.headers.get("retry-after").map(|v| v.as_bytes()),
                Some(&b"1"[..]),
                "{backend:?}"
            );
            answers.push(r.status);
        }
        lock.release().await;
        while let Some(r) = tokio::time::timeout(guard, rx.recv())
            .await
            .expect("every request answered")
        {
            assert!(
                [StatusCode::CREATED, StatusCode::TOO_MANY_REQUESTS].contains(&r.status),
                "{backend:?}: {} {}",
                r.status,
                r.body
            );
            answers.push(r.status);
        }
        assert_eq!(answers.len(), 12, "{backend:?}: every request answered");
        let created = answers
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        assert!(
            created >= 3,
            "{backend:?}: the writer's requests: {answers:?}"
        );
        assert_eq!(
            vitals(&app, sid).await.len(),
            created,
            "{backend:?}: only the 201s are stored"
        );
    }
}
