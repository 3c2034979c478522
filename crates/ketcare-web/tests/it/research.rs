//! The research registry through the real router on both backends: nothing until the site sets
//! its small-cell count; response and remission read at the site's window (day 13 vs 14, 31 vs
//! 32) by the instrument's cited rule (a 50 % fall responds, 47.6 % does not); small cells
//! suppressed; no identifier in the page, the API or the export; the researcher alone reads it,
//! every read audited by study id.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{Auth, REGISTRY_SETTINGS, START, TestApp, adult_form};
use ketcare_core::{Actor, PatientId, Role};
use ketcare_store::testing::{BACKENDS, dosed_session};
use serde_json::json;

/// PHQ-9 answers with item 9 (self-harm) at 0 that total `t` (at most 24).
fn answers(t: i64) -> Vec<i64> {
    let mut left = t;
    let mut a: Vec<i64> = (0..8)
        .map(|_| {
            let v = left.min(3);
            left -= v;
            v
        })
        .collect();
    a.push(0);
    a
}

fn date_of(ts: i64) -> String {
    jiff::Timestamp::from_second(ts)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::system())
        .date()
        .to_string()
}

const DAY: i64 = 86_400;

/// A patient first dosed 60 days before the test clock, with a baseline PHQ-9 the day before and
/// the given (day, total) scores after.
async fn subject(
    app: &TestApp,
    page: &Auth,
    nurse: &Auth,
    n: usize,
    scores: &[(i64, i64)],
) -> (i64, i64) {
    let mrn = format!("RG-{n}");
    let name = format!("Zebedee{n}");
    let mut form: Vec<(&str, &str)> = adult_form()
        .into_iter()
        .map(|(k, v)| match k {
            "mrn" => (k, mrn.as_str()),
            "family_name" => (k, name.as_str()),
            _ => (k, v),
        })
        .collect();
    // The intake questions: a prior suicide attempt on even subjects; PTSD not asked.
    form.push((
        "prior_suicide_attempt",
        if n.is_multiple_of(2) { "yes" } else { "no" },
    ));
    form.push(("comorbid_anxiety", "no"));
    let created = app.post_form("/patients", page, &form).await;
    let pid: i64 = created
        .location()
        .trim_start_matches("/patients/")
        .parse()
        .unwrap();
    let first = START - 60 * DAY;
    let sid = dosed_session(
        app.store.as_ref(),
        &Actor::system(Role::Nurse),
        PatientId::new(pid),
        jiff::Timestamp::from_second(first).unwrap(),
    )
    .await;
    for (i, score) in scores.iter().enumerate() {
        respond(app, nurse, pid, *score, &format!("rg-{n}-{i}")).await;
    }
    (pid, sid.get())
}

/// Posts a PHQ-9 of `total` for patient `pid`, taken `day` days after the first treatment of
/// [`subject`], under `key`.
async fn respond(app: &TestApp, nurse: &Auth, pid: i64, (day, total): (i64, i64), key: &str) {
    let r = app
        .json(
            Method::POST,
            &format!("/api/v1/patients/{pid}/responses"),
            nurse,
            &json!({"instrument": "phq9", "answers": answers(total),
                    "taken_on": date_of(START - 60 * DAY + day * DAY),
                    "submission_key": key}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn the_registry_reads_outcomes_at_the_window_and_shows_no_identifier() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("rae", Role::Researcher).await;
        app.add_user("alex", Role::Administrator).await;
        let page = app.login("nina").await;
        let nurse = app.bearer("nina").await;
        let rae = app.bearer("rae").await;
        // A: 20 → 10 on day 14 (a 50 % fall: response). B: 21 → 11 on day 14 (47.6 %: none).
        // C: 20 → 4 on day 31 (response and remission). D: scores on days 13 and 32 only, E: on
        // day 32 only (outside the window: not evaluated).
        let (a, a_session) = subject(&app, &page, &nurse, 1, &[(-1, 20), (14, 10)]).await;
        subject(&app, &page, &nurse, 2, &[(-1, 21), (14, 11)]).await;
        subject(&app, &page, &nurse, 3, &[(-1, 20), (31, 4)]).await;
        subject(&app, &page, &nurse, 4, &[(-1, 20), (13, 4), (32, 20)]).await;
        subject(&app, &page, &nurse, 5, &[(-1, 20), (32, 10)]).await;

        // A's dose had its integration session the next day (the others none).
        app.add_user("thea", Role::Therapist).await;
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{a}/therapy/encounters"),
                &app.bearer("thea").await,
                &json!({"kind": "integration", "at": format!("{}T15:00", date_of(START - 59 * DAY)),
                        "duration_minutes": 50, "modality": "individual", "session_id": a_session,
                        "suicide_risk": "negative"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        // Nothing until the site sets its small-cell count.
        let r = app.get("/api/v1/registry/outcomes", &rae).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{backend:?}: {}", r.body);
        assert!(
            r.body.contains("research.small_cell_patients"),
            "{}",
            r.body
        );

        app.set_test_site_settings_with(
            &[
                &REGISTRY_SETTINGS[..],
                &[("therapy.integration_window_days", 3.0)],
            ]
            .concat(),
        )
        .await;
        let r = app.get("/api/v1/registry/outcomes", &rae).await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
        let t = r.json();
        assert_eq!(t["subjects"], 5, "{t}");
        assert_eq!(t["response"]["estimate"]["k"], 2, "{t}");
        assert_eq!(t["response"]["estimate"]["n"], 3, "{t}");
        assert_eq!(t["remission"]["estimate"]["k"], 1);
        assert_eq!(t["induction_completed"]["estimate"]["k"], 5);
        // Response split by integration within the window: A (integrated, responded); B and C
        // (not integrated: one response of two).
        let split = &t["response_by_integration"];
        assert_eq!(split[0][1]["estimate"]["k"], 1, "{t}");
        assert_eq!(split[0][1]["estimate"]["n"], 1);
        assert_eq!(split[1][1]["estimate"]["k"], 1);
        assert_eq!(split[1][1]["estimate"]["n"], 2);
        // The Wilson interval of 2 of 3.
        let lo = t["response"]["estimate"]["lower"].as_f64().unwrap();
        assert!((lo - 0.2077).abs() < 1e-3, "{lo}");

        // The same cohort filtered: a protocol nobody had is empty, not an error.
        let r = app
            .get("/api/v1/registry/outcomes?sex=male&indication=ptsd", &rae)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["subjects"], 0);
        // Predictors on the covariates asked for, the intake's among them; an unknown one named.
        let r = app
            .get(
                "/api/v1/registry/outcomes?covariates=baseline,prior_suicide_attempt",
                &rae,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = app
            .get(
                "/api/v1/registry/outcomes?covariates=baseline,shoe_size",
                &rae,
            )
            .await;
        assert_eq!(r.fields(), ["covariates"], "{}", r.body);
        let r = app.get("/api/v1/registry/outcomes?colour=red", &rae).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("colour"), "{}", r.body);

        // Small cells suppressed, in the table and its rates.
        app.set_test_site_settings_with(&[
            ("research.small_cell_patients", 4.0),
            ("research.response_window_from_days", 14.0),
            ("research.response_window_to_days", 31.0),
        ])
        .await;
        let t = app.get("/api/v1/registry/outcomes", &rae).await.json();
        assert_eq!(t["subjects"], 5);
        assert_eq!(t["response"]["k"]["below"], 4, "{t}");
        assert!(t["response"]["estimate"].is_null());
        assert!(t["sessions_per_subject_median"].is_number(), "{t}");
        // A cohort smaller than k shows no distribution either.
        app.set_test_site_settings_with(&[("research.small_cell_patients", 6.0)])
            .await;
        let t = app.get("/api/v1/registry/outcomes", &rae).await.json();
        assert_eq!(t["subjects"]["below"], 6, "{t}");
        assert!(t["sessions_per_subject_median"].is_null(), "{t}");
        assert!(t["alarms_per_session"].is_null(), "{t}");
        app.set_test_site_settings_with(&[
            ("research.small_cell_patients", 4.0),
            ("research.response_window_from_days", 14.0),
            ("research.response_window_to_days", 31.0),
        ])
        .await;

        // A saved cohort: the same name again is its next version; its table is the query's.
        let save = |name: &str, q: serde_json::Value| {
            let (app, rae) = (&app, rae.clone());
            let body = json!({"name": name, "query": q});
            async move {
                app.json(Method::POST, "/api/v1/registry/cohorts", &rae, &body)
                    .await
            }
        };
        let v1 = save("all adults", json!({"age_band": "adult"})).await;
        assert_eq!(v1.status, StatusCode::CREATED, "{}", v1.body);
        assert_eq!(v1.json()["version"], 1);
        let v2 = save("all adults", json!({"age_band": "adult", "sex": "female"})).await;
        assert_eq!(v2.json()["version"], 2);
        let bad = save("bad", json!({"year_from": "20x6"})).await;
        assert_eq!(bad.fields(), ["year_from"], "{}", bad.body);
        let list = app.get("/api/v1/registry/cohorts", &rae).await.json();
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
        let id = v1.json()["id"].as_i64().unwrap();
        let t = app
            .get(&format!("/api/v1/registry/cohorts/{id}/outcomes"), &rae)
            .await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.body);
        assert_eq!(t.json()["subjects"], 5);

        // No identifier anywhere the researcher reads.
        let page_r = app.login("rae").await;
        let html = app.get("/research", &page_r).await;
        assert_eq!(html.status, StatusCode::OK, "{}", html.body);
        assert!(html.body.contains("id=\"outcome-table\""), "{}", html.body);
        let csv = app.get("/research/export.csv", &page_r).await;
        assert_eq!(csv.status, StatusCode::OK);
        let dict = app.get("/research/dictionary.csv", &page_r).await;
        assert!(dict.body.contains("study_id"));
        let api = app.get("/api/v1/registry/outcomes", &rae).await;
        let parquet = app.get("/research/export.parquet", &page_r).await;
        assert_eq!(parquet.status, StatusCode::OK);
        let parquet_rows = parquet_text(&parquet.bytes);
        assert_eq!(parquet_rows.lines().count(), 5, "{parquet_rows}");
        duckdb_reads(&parquet.bytes, &dict_of(&app, &page_r).await, 5);
        let date = regex_lite_date();
        for (what, body) in [
            ("page", &html.body),
            ("csv", &csv.body),
            ("api", &api.body),
            ("parquet", &parquet_rows),
        ] {
            for n in 1..=5 {
                assert!(
                    !body.contains(&format!("Zebedee{n}")),
                    "{what} holds a name"
                );
                assert!(!body.contains(&format!("RG-{n}")), "{what} holds an MRN");
            }
            assert!(!body.contains("1986-05-01"), "{what} holds a birth date");
            assert!(!date(body), "{what} holds a date: {body}");
            assert!(!body.contains('@'), "{what} holds an email address");
        }
        // The export: one row per subject of groups at or above k (all five share the group).
        let lines: Vec<&str> = csv.body.lines().collect();
        assert_eq!(lines.len(), 6, "{}", csv.body);
        assert!(lines[1].starts_with("S-"), "{}", lines[1]);
        let header: Vec<&str> = lines[0].split(',').collect();
        let col = header
            .iter()
            .position(|c| *c == "prior_suicide_attempt")
            .unwrap();
        let mut answers: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.split(',').nth(col).unwrap())
            .collect();
        answers.sort();
        assert_eq!(answers, ["false", "false", "false", "true", "true"]);
        let ptsd = header.iter().position(|c| *c == "ptsd").unwrap();
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.split(',').nth(ptsd) == Some(""))
        );
        let bmi = header.iter().position(|c| *c == "bmi").unwrap();
        assert!(lines[1].split(',').nth(bmi).unwrap().parse::<f64>().is_ok());

        // The researcher alone; every read audited with the study ids shown.
        for who in [&nurse, &app.bearer("alex").await] {
            let r = app.get("/api/v1/registry/outcomes", who).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN);
        }
        assert_eq!(
            app.get("/research", &page).await.status,
            StatusCode::FORBIDDEN
        );
        let audit = app
            .get("/api/v1/audit", &app.bearer("alex").await)
            .await
            .body;
        assert!(audit.contains("registry.read"), "{audit}");
        let study = lines[1].split(',').next().unwrap();
        assert!(audit.contains(study), "the audit names the study ids");

        // The program dashboard: the same table over the clinic's patients, identified, for
        // the prescriber (the medical director) alone; never a study id; audited.
        app.add_user("medi", Role::Prescriber).await;
        let medi = app.bearer("medi").await;
        let prog = app.get("/api/v1/program/outcomes", &medi).await;
        assert_eq!(prog.status, StatusCode::OK, "{}", prog.body);
        let pj = prog.json();
        assert_eq!(pj["table"]["subjects"], 5, "{pj}");
        assert_eq!(
            pj["table"]["response"]["estimate"]["k"], 2,
            "the same outcomes as the registry"
        );
        let names: Vec<&str> = pj["patients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["patient"]["name"].as_str().unwrap())
            .collect();
        assert!(names.iter().any(|n| n.contains("Zebedee1")), "{names:?}");
        assert!(!prog.body.contains(study), "no study id beside a name");
        let html = app.get("/program", &app.login("medi").await).await;
        assert_eq!(html.status, StatusCode::OK, "{}", html.body);
        assert!(html.body.contains("Zebedee3") && html.body.contains("RG-3"));
        assert!(html.body.contains("id=\"outcome-table\""));
        assert!(!html.body.contains(study));
        for who in [&rae, &nurse] {
            let r = app.get("/api/v1/program/outcomes", who).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN);
        }
        let audit = app
            .get("/api/v1/audit", &app.bearer("alex").await)
            .await
            .body;
        assert!(audit.contains("program.read"), "{audit}");
    }
}

async fn dict_of(app: &TestApp, auth: &Auth) -> String {
    app.get("/research/dictionary.csv", auth).await.body
}

/// DuckDB (an independent reader, from PyPI) reads the export back with the dictionary's types,
/// where `KETCARE_TEST_DUCKDB_PYTHON` names a Python that has it (`scripts/parquet-check`
/// installs it and requires this check; a plain `cargo test` leaves it out).
fn duckdb_reads(parquet: &[u8], dictionary: &str, rows: usize) {
    let Ok(python) = std::env::var("KETCARE_TEST_DUCKDB_PYTHON") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ketcare-parquet-{}-{}", std::process::id(), rows));
    std::fs::create_dir_all(&dir).unwrap();
    let (file, dict) = (dir.join("registry.parquet"), dir.join("dictionary.csv"));
    std::fs::write(&file, parquet).unwrap();
    std::fs::write(&dict, dictionary).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/parquet_check.py"
    );
    let o = std::process::Command::new(python)
        .arg(script)
        .arg(&file)
        .arg(&dict)
        .arg(rows.to_string())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        o.status.success(),
        "duckdb: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every row of a Parquet file as text (each field's value), read back by the parquet crate's
/// own reader.
fn parquet_text(bytes: &[u8]) -> String {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.to_vec())).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            r.unwrap()
                .get_column_iter()
                .map(|(_, f)| f.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `body` holds a calendar date (YYYY-MM-DD).
fn regex_lite_date() -> impl Fn(&str) -> bool {
    |body: &str| {
        let b = body.as_bytes();
        b.windows(10).any(|w| {
            w[..4].iter().all(u8::is_ascii_digit)
                && w[4] == b'-'
                && w[5..7].iter().all(u8::is_ascii_digit)
                && w[7] == b'-'
                && w[8..10].iter().all(u8::is_ascii_digit)
        })
    }
}

/// The registry keeps each subject derived from the record (a per-subject cache) and, in the
/// process, the decoded subjects by registry version: after a read, every kind of write the
/// subject is derived from — a questionnaire total, a safety alert, an opioid, an integration
/// encounter, the intake questions, a new session, a raw SQL update, a write through another
/// store on the same database (another process) — shows in the next read, on both backends,
/// whichever code wrote it; with no write in between, the held copy itself is served.
#[tokio::test]
async fn the_registry_follows_every_write_after_a_read() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("thea", Role::Therapist).await;
        let page = app.login("nina").await;
        let nurse = app.bearer("nina").await;
        let (pid, sid) = subject(&app, &page, &nurse, 7, &[(-1, 20), (14, 16)]).await;
        let researcher = Actor::system(Role::Researcher);
        let read_all = || app.store.registry(&researcher);
        let read = || async {
            let all = read_all().await.unwrap();
            assert_eq!(all.len(), 1, "{backend:?}");
            all[0].clone()
        };
        let before = read().await;
        assert_eq!(before.scores.len(), 2, "{backend:?}");
        assert_eq!(read().await, before, "{backend:?}: read again, unchanged");
        // Nothing written between two reads: the copy held in memory is served again.
        let (a, b) = (read_all().await.unwrap(), read_all().await.unwrap());
        assert!(std::sync::Arc::ptr_eq(&a, &b), "{backend:?}");
        // Every read is recorded; a read of the held copy refers to the record that listed its
        // study ids rather than listing them again.
        let reads = app
            .store
            .audit_records(
                &Actor::system(Role::Administrator),
                &ketcare_store::AuditFilter {
                    action: Some("registry.read".into()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let last = &reads[0];
        let listing = reads
            .iter()
            .find(|r| r.detail.contains(&a[0].study_id))
            .expect("a record lists the study ids");
        assert_eq!(
            last.detail,
            format!(
                "1 subjects: the study ids audit record {} lists (unchanged since)",
                listing.seq
            ),
            "{backend:?}"
        );
        let first = START - 60 * DAY;

        // A write no code of ours makes (raw SQL on a score) changes the next answer.
        app.store
            .execute_raw(&format!(
                "UPDATE measure_responses SET total = total - 1 WHERE patient_id = {pid} AND taken_on = '{}'",
                date_of(first + 14 * DAY)
            ))
            .await
            .unwrap();
        let s = read().await;
        assert_eq!(s.scores[1].total, before.scores[1].total - 1, "{backend:?}");
        // So does one through another store on the same database (another process, with its
        // own copy in memory), after both have read.
        let other = ketcare_store::open(&app.url).await.unwrap();
        assert_eq!(other.registry(&researcher).await.unwrap().len(), 1);
        other
            .execute_raw(&format!(
                "UPDATE measure_responses SET total = total + 1 WHERE patient_id = {pid} AND taken_on = '{}'",
                date_of(first + 14 * DAY)
            ))
            .await
            .unwrap();
        assert_eq!(
            read().await,
            before,
            "{backend:?}: the other store's write shows"
        );
        // A second session, dosed on day 3: a new session moves the version though it has no
        // facts yet; the next read derives them.
        dosed_session(
            app.store.as_ref(),
            &Actor::system(Role::Nurse),
            PatientId::new(pid),
            jiff::Timestamp::from_second(first + 3 * DAY).unwrap(),
        )
        .await;
        let s = read().await;
        assert_eq!(s.sessions.len(), 2, "{backend:?}: {s:?}");
        assert_eq!(s.sessions[1].day, 3);
        // And the other store, whose copy is older, reads it too.
        assert_eq!(
            other.registry(&researcher).await.unwrap()[0].sessions.len(),
            2,
            "{backend:?}"
        );

        // The outcome table the researcher reads (twice: the second from what the first
        // derived) follows the next write too.
        app.set_test_site_settings_with(&REGISTRY_SETTINGS).await;
        app.add_user("rae", Role::Researcher).await;
        let rae = app.bearer("rae").await;
        let response = || async {
            let r = app.get("/api/v1/registry/outcomes", &rae).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.json()["response"]["estimate"]["k"].clone()
        };
        assert_eq!(response().await, 0, "{backend:?}: 20 → 16 is no response");
        assert_eq!(response().await, 0, "{backend:?}");

        // A total on day 20, with a positive item 9 (a safety alert).
        let mut a = answers(8);
        a[8] = 1;
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/responses"),
                &nurse,
                &json!({"instrument": "phq9", "answers": a, "taken_on": date_of(first + 20 * DAY),
                        "submission_key": "rg-7-late"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let s = read().await;
        assert_eq!(s.scores.len(), 3, "{backend:?}: {s:?}");
        assert_eq!(s.scores[2].day, 20);
        assert_eq!(s.alert_days.len(), 1, "{backend:?}: {s:?}");
        assert_eq!(
            response().await,
            1,
            "{backend:?}: 20 → 9 on day 20 responds"
        );

        // An opioid.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/opioids"),
                &nurse,
                &json!({"drug": "oxycodone", "dose": 10, "unit": "mg", "per_day": 2,
                        "started_on": date_of(first)}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(read().await.opioids.len(), 1, "{backend:?}");

        // The dose's integration session, two days after it.
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/patients/{pid}/therapy/encounters"),
                &app.bearer("thea").await,
                &json!({"kind": "integration", "at": format!("{}T15:00", date_of(first + 2 * DAY)),
                        "duration_minutes": 50, "modality": "individual", "session_id": sid,
                        "suicide_risk": "negative"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(
            read().await.sessions[0].integration_after_days,
            Some(2),
            "{backend:?}"
        );

        // The intake, edited on the chart's form: PTSD now answered yes.
        let mut form: Vec<(&str, &str)> = adult_form()
            .into_iter()
            .map(|(k, v)| match k {
                "mrn" => (k, "RG-7"),
                "family_name" => (k, "Zebedee7"),
                _ => (k, v),
            })
            .collect();
        form.push(("prior_suicide_attempt", "no"));
        form.push(("comorbid_anxiety", "no"));
        form.push(("ptsd", "yes"));
        let r = app
            .post_form(&format!("/patients/{pid}"), &page, &form)
            .await;
        assert!(r.status.is_redirection(), "{}: {}", r.status, r.body);
        assert_eq!(read().await.intake.ptsd, Some(true), "{backend:?}");
    }
}

/// With a read replica (`--read-database-url`) the registry reads its subjects there once the
/// replica's audit chain has reached the read's own commit, and from the primary when it has
/// not within the wait; either way the answer is the primary's record.
#[tokio::test]
async fn the_registry_reads_a_replica_only_once_it_has_caught_up() {
    use ketcare_store::testing::{copy_postgres_database, run_sql};
    let app = TestApp::new(ketcare_store::Backend::Postgres).await;
    app.add_user("nina", Role::Nurse).await;
    let page = app.login("nina").await;
    let nurse = app.bearer("nina").await;
    let (pid1, _) = subject(&app, &page, &nurse, 1, &[(-1, 20), (14, 8)]).await;
    let (pid2, _) = subject(&app, &page, &nurse, 2, &[(-1, 22), (14, 20)]).await;
    let researcher = Actor::system(Role::Researcher);
    let on_primary = app.store.registry(&researcher).await.unwrap();
    assert_eq!(on_primary.len(), 2);
    let with_replica = |read: String| {
        let url = app.url.clone();
        async move {
            let options = ketcare_store::StoreOptions {
                read_url: Some(read),
                ..Default::default()
            };
            ketcare_store::open_with(&url, &options).await.unwrap()
        }
    };
    // The primary itself as the replica: the same answer.
    let same = with_replica(app.url.clone()).await;
    assert_eq!(same.registry(&researcher).await.unwrap(), on_primary);

    // A copy frozen now stands for a replica that stops replaying; then the primary moves on.
    let frozen = copy_postgres_database(&app.url).await;
    respond(&app, &nurse, pid1, (20, 3), "replica-late").await;
    let store = with_replica(frozen.clone()).await;
    let started = std::time::Instant::now();
    let lagging = store.registry(&researcher).await.unwrap();
    assert!(
        started.elapsed() >= ketcare_store::registry::REPLICA_WAIT,
        "it waited for the replica first"
    );
    assert_eq!(lagging.len(), 2);
    assert_eq!(
        lagging.iter().map(|s| s.scores.len()).sum::<usize>(),
        on_primary.iter().map(|s| s.scores.len()).sum::<usize>() + 1,
        "the replica lagged: the primary's answer, with the new score"
    );

    // The primary moves on again (the held copy is no longer current); the replica catches up
    // (its chain passes the primary's) — and, to tell which was read, a later refresh there
    // (its counter past the primary's) says the second patient is no longer a subject: the read
    // is the replica's.
    respond(&app, &nurse, pid1, (21, 2), "replica-later").await;
    run_sql(
        &frozen,
        &format!(
            "UPDATE audit_head SET seq = seq + 1000000 WHERE id = 1; \
             UPDATE registry_cache_seq SET seq = seq + 1000000 WHERE id = 1; \
             UPDATE registry_subject_cache SET subject = NULL, changed = (SELECT seq FROM registry_cache_seq) WHERE patient_id = {pid2}"
        ),
    )
    .await;
    let caught_up = store.registry(&researcher).await.unwrap();
    assert_eq!(caught_up.len(), 1, "read on the replica: {caught_up:?}");
}

/// A process that holds the registry in memory takes only the cached rows refreshed since it
/// read them; after writes of every kind its answer is the one a process reading everything
/// afresh gives.
#[tokio::test]
async fn the_registry_read_from_the_changes_equals_one_read_afresh() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        let page = app.login("nina").await;
        let nurse = app.bearer("nina").await;
        let (pid1, _) = subject(&app, &page, &nurse, 1, &[(-1, 20), (14, 8)]).await;
        subject(&app, &page, &nurse, 2, &[(-1, 22), (14, 20)]).await;
        let researcher = Actor::system(Role::Researcher);
        assert_eq!(app.store.registry(&researcher).await.unwrap().len(), 2);
        // A new score for one subject, and a third subject.
        respond(&app, &nurse, pid1, (20, 4), "changes-1").await;
        subject(&app, &page, &nurse, 3, &[(-1, 18), (14, 9)]).await;
        // The held copy brought up to date, and another process's first read.
        let both = || async {
            let afresh = ketcare_store::open(&app.url).await.unwrap();
            (
                app.store.registry(&researcher).await.unwrap(),
                afresh.registry(&researcher).await.unwrap(),
            )
        };
        let (held, afresh) = both().await;
        assert_eq!(held.len(), 3, "{backend:?}");
        assert_eq!(held, afresh, "{backend:?}");
        // A change no code of ours makes (raw SQL) reaches both the same way.
        app.store
            .execute_raw(&format!(
                "UPDATE measure_responses SET total = total + 1 WHERE patient_id = {pid1}"
            ))
            .await
            .unwrap();
        let (held, afresh) = both().await;
        assert_eq!(held, afresh, "{backend:?}");
    }
}
