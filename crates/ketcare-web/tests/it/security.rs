//! CSRF, lock-out, session expiry, token revocation, cookie flags, and 422 bodies naming the field
//! for every form and JSON body.

use crate::common;

use axum::http::{Method, StatusCode, header};
use common::{Auth, PASSWORD, TestApp, cookie_attributes, hidden_csrf, minor_form, set_cookie};
use ketcare_core::{Actor, ApiTokenId, Role};
use ketcare_store::Backend;
use serde_json::json;

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nina", Role::Nurse).await;
    let nurse = app.login("nina").await;
    let Auth::Session { cookie, .. } = &nurse else {
        unreachable!()
    };
    let no_token = Auth::Session {
        cookie: cookie.clone(),
        csrf: String::new(),
    };
    let forged = Auth::Session {
        cookie: cookie.clone(),
        csrf: "0".repeat(64),
    };
    for auth in [&no_token, &forged] {
        let r = app.post_form("/patients", auth, &minor_form()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = app
            .json(Method::POST, "/api/v1/patients", auth, &json!({}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        app.store.count("patients").await.unwrap(),
        0,
        "nothing written"
    );
    // With the token, the same form goes through.
    assert_eq!(
        app.post_form("/patients", &nurse, &minor_form())
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // The login form has its own double-submit token.
    let body = "username=nina&password=correct+horse+battery&csrf_token=abc".to_string();
    let r = app
        .send(
            Method::POST,
            "/login",
            &Auth::None,
            Some("application/x-www-form-urlencoded"),
            body,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn repeated_failures_pause_this_address_for_the_account_with_one_answer() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nina", Role::Nurse).await;
    for _ in 0..app.config.lockout_attempts {
        let (r, auth) = app.try_login("nina", "not the password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(matches!(auth, Auth::None));
        assert!(
            r.body
                .contains("Wrong username or password, or too many attempts")
        );
    }
    // Paused for this address, with the same words as a wrong password or an unknown user.
    let (paused, _) = app.try_login("nina", PASSWORD).await;
    assert_eq!(
        paused.status,
        StatusCode::UNAUTHORIZED,
        "paused even with the right password"
    );
    let (unknown, _) = app.try_login("nobody-here", "whatever-it-is").await;
    let words = |body: &str| body.contains("Wrong username or password, or too many attempts");
    assert!(words(&paused.body) && words(&unknown.body));
    assert!(!paused.body.contains("locked"), "{}", paused.body);
    app.advance(app.config.lockout_minutes * 60 + 1);
    let (r, _) = app.try_login("nina", PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "open again after the pause"
    );
}

#[tokio::test]
async fn one_address_failing_on_many_accounts_gets_429_with_retry_after() {
    let app = TestApp::new(Backend::Sqlite).await;
    let limit = app.config.lockout_attempts * ketcare_web::throttle::ADDRESS_FACTOR;
    for i in 0..limit {
        let (r, _) = app.try_login(&format!("guess{i}"), "wrong-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let (r, _) = app.try_login("guess-more", "wrong-password").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let wait: i64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= app.config.lockout_minutes * 60);
}

#[tokio::test]
async fn sign_in_follows_only_plain_same_site_paths() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nina", Role::Nurse).await;
    for (next, expected) in [
        ("/\t/evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/patients\r\nSet-Cookie: x=1", "/patientsSet-Cookie: x=1"),
        ("/patients?q=ab", "/patients?q=ab"),
    ] {
        let form = app.get("/login", &Auth::None).await;
        let cookie = set_cookie(&form.headers, "ketcare_login_csrf").unwrap();
        let body = serde_urlencoded::to_string([
            ("username", "nina"),
            ("password", PASSWORD),
            ("csrf_token", hidden_csrf(&form.body).as_str()),
            ("next", next),
        ])
        .unwrap();
        let r = app
            .send(
                Method::POST,
                "/login",
                &Auth::None,
                Some("application/x-www-form-urlencoded"),
                body,
                &[("cookie", &format!("ketcare_login_csrf={cookie}"))],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{next:?}: {}", r.body);
        assert_eq!(r.headers[header::LOCATION], expected, "{next:?}");
    }
}

#[tokio::test]
async fn hsts_only_over_tls() {
    let app = TestApp::new(Backend::Sqlite).await;
    let plain = app.get("/login", &Auth::None).await;
    assert!(
        plain
            .headers
            .get(header::STRICT_TRANSPORT_SECURITY)
            .is_none()
    );
    let tls = app
        .send(
            Method::GET,
            "/login",
            &Auth::None,
            None,
            String::new(),
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(
        tls.headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000"
    );
}

#[tokio::test]
async fn control_characters_in_names_are_refused_naming_the_field() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nina", Role::Nurse).await;
    let api = app.bearer("nina").await;
    let r = app
        .json(
            Method::POST,
            "/api/v1/patients",
            &api,
            &serde_json::json!({"mrn": "CC-1", "given_name": "Ro\u{0}bin", "family_name": "Quill",
                                "date_of_birth": "1980-05-01", "sex": "female"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.fields().contains(&"given_name".to_owned()), "{}", r.body);
}

#[tokio::test]
async fn sessions_expire_and_logout_ends_them() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nina", Role::Nurse).await;
    let (r, nurse) = app.try_login("nina", PASSWORD).await;
    let attrs = cookie_attributes(&r.headers, "ketcare_session");
    for flag in ["HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(attrs.contains(flag), "{attrs}");
    }
    assert!(!attrs.contains("Secure"), "plain HTTP in tests");
    assert_eq!(app.get("/patients", &nurse).await.status, StatusCode::OK);
    app.advance(app.config.session_minutes * 60 + 1);
    let r = app.get("/patients", &nurse).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/login"));
    assert_eq!(
        app.get("/api/v1/me", &nurse).await.status,
        StatusCode::UNAUTHORIZED
    );

    let again = app.login("nina").await;
    assert_eq!(
        app.post_form("/logout", &again, &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.get("/api/v1/me", &again).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn secure_cookie_over_tls() {
    let app = TestApp::new(Backend::Sqlite).await;
    let r = app
        .send(
            Method::GET,
            "/login",
            &Auth::None,
            None,
            String::new(),
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert!(cookie_attributes(&r.headers, "ketcare_login_csrf").contains("; Secure"));
}

#[tokio::test]
async fn revoked_tokens_stop_working() {
    let app = TestApp::new(Backend::Sqlite).await;
    let u = app.add_user("bot", Role::Prescriber).await;
    let token = app.bearer("bot").await;
    assert_eq!(app.get("/api/v1/me", &token).await.status, StatusCode::OK);
    let t = app.store.list_api_tokens(u.id).await.unwrap();
    app.store
        .revoke_api_token(
            &Actor::system(Role::Administrator),
            ApiTokenId::new(t[0].id.get()),
        )
        .await
        .unwrap();
    assert_eq!(
        app.get("/api/v1/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/me", &Auth::Bearer("kc_guess".into()))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bad_input_gets_422_naming_each_field() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nina", Role::Nurse).await;
    let api = app.bearer("nina").await;
    let bad = json!({"mrn": "", "given_name": "A", "family_name": "B", "date_of_birth": "2031-02-30", "sex": "x",
                     "weight_value": -4, "weight_unit": "stone", "height_value": "tall", "email": "no-at-sign"});
    let r = app.json(Method::POST, "/api/v1/patients", &api, &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = r.fields();
    for f in [
        "mrn",
        "date_of_birth",
        "sex",
        "weight_value",
        "weight_unit",
        "weight_measured_on",
        "height_value",
        "email",
    ] {
        assert!(
            fields.contains(&f.to_string()),
            "{f} not named in {}",
            r.body
        );
    }
    // Malformed JSON, wrong type.
    let r = app
        .send(
            Method::POST,
            "/api/v1/patients",
            &api,
            Some("application/json"),
            "{".into(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .json(Method::POST, "/api/v1/patients", &api, &json!({"mrn": 5}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.fields(), vec!["mrn"]);

    // Update and guardian through the API.
    let good: serde_json::Value = json!({"mrn": "A-1", "given_name": "A", "family_name": "B", "date_of_birth": "2015-01-01", "sex": "male"});
    let created = app
        .json(Method::POST, "/api/v1/patients", &api, &good)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.json()["id"].as_i64().unwrap();
    let r = app
        .json(
            Method::PUT,
            &format!("/api/v1/patients/{id}"),
            &api,
            &json!({"mrn": "A-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.fields().contains(&"given_name".to_string()));
    let r = app
        .json(
            Method::POST,
            &format!("/api/v1/patients/{id}/guardians"),
            &api,
            &json!({"name": "", "relationship": "uncle"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.fields(), vec!["name", "relationship", "phone"]);
    // A duplicate MRN is named too, and nothing is half-written.
    let r = app
        .json(Method::POST, "/api/v1/patients", &api, &good)
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::UNPROCESSABLE_ENTITY, vec!["mrn".to_string()])
    );
    assert_eq!(app.store.count("patients").await.unwrap(), 1);
    // Query parameters.
    assert_eq!(
        app.get("/api/v1/patients?limit=0", &api).await.fields(),
        vec!["limit"]
    );
    assert_eq!(
        app.get("/api/v1/patients/999999", &api).await.status,
        StatusCode::NOT_FOUND
    );

    // Pages show the message beside the field, with a 422.
    let nurse = app.login("nina").await;
    let r = app
        .post_form(
            "/patients",
            &nurse,
            &[
                ("mrn", "P-9"),
                ("given_name", ""),
                ("family_name", "Z"),
                ("date_of_birth", "yesterday"),
                ("sex", "female"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("id=\"given_name-error\">required<"),
        "{}",
        r.body
    );
    assert!(r.body.contains("is not a date; use YYYY-MM-DD"));
    assert!(
        r.body.contains("value=\"P-9\""),
        "the form keeps what was typed"
    );
    let r = app
        .post_form(
            &format!("/patients/{id}"),
            &nurse,
            &[("mrn", "A-1"), ("sex", "female")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post_form(
            &format!("/patients/{id}/guardians"),
            &nurse,
            &[("name", "Kim"), ("relationship", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("choose mother, father"), "{}", r.body);
    assert_eq!(app.store.count("guardians").await.unwrap(), 0);
}

#[tokio::test]
async fn the_audit_log_holds_ids_and_actions_not_names_mrns_or_search_text() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nina", Role::Nurse).await;
    app.add_user("alex", Role::Administrator).await;
    let nurse = app.bearer("nina").await;
    let r = app
        .json(
            Method::POST,
            "/api/v1/patients",
            &nurse,
            &json!({"mrn": "PHI-77", "given_name": "Robin", "family_name": "Quillfeather",
                    "date_of_birth": "1980-05-01", "sex": "female"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let found = app.get("/api/v1/patients?q=Quillfeather", &nurse).await;
    assert_eq!(found.status, StatusCode::OK);
    let audit = app
        .get("/api/v1/audit?limit=200", &app.bearer("alex").await)
        .await;
    assert!(audit.body.contains("patient.search"), "{}", audit.body);
    for phi in ["PHI-77", "Quillfeather", "Robin"] {
        assert!(
            !audit.body.contains(phi),
            "{phi} in the audit log: {}",
            audit.body
        );
    }
}

/// The attack the chains alone cannot see: whoever can write the database rewrites a record,
/// recomputes every later hash and the head, and `verify` says intact. The anchors kept outside
/// the database (HMAC under a key that is not in the database) find it, and a forged anchor
/// line fails its HMAC.
#[tokio::test]
async fn a_rewrite_that_recomputes_every_hash_is_found_by_the_anchors() {
    use ketcare_app::anchors::Anchors;
    use ketcare_core::audit::record_hash;
    use ketcare_store::{AuditFilter, Chain};
    for backend in ketcare_store::testing::BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("alex", Role::Administrator).await;
        let nurse = app.bearer("nina").await;
        let r = app
            .json(
                Method::POST,
                "/api/v1/patients",
                &nurse,
                &json!({"mrn": "AN-1", "given_name": "Robin", "family_name": "Quill",
                        "date_of_birth": "1980-05-01", "sex": "female"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let dir = std::env::temp_dir().join(format!(
            "ketcare-anchors-{}-{backend:?}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let anchors = Anchors::open(&dir).unwrap();
        let store = app.store.as_ref();
        let added = anchors.record(store, jiff::Timestamp::now()).await.unwrap();
        assert!(added.iter().any(|a| a.chain == Chain::Audit), "{added:?}");
        let clean = anchors.verify(store, Chain::Audit).await.unwrap();
        assert!(clean.is_clean() && clean.checked == 1, "{clean:?}");

        // The attack: change record 2, then recompute every later hash and the head.
        let admin = Actor::system(Role::Administrator);
        let mut records = store
            .audit_records(
                &admin,
                &AuditFilter {
                    limit: 100_000,
                    ..AuditFilter::default()
                },
            )
            .await
            .unwrap();
        records.sort_by_key(|r| r.seq);
        let drop = match backend {
            Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
            Backend::Postgres => "DROP TRIGGER audit_log_no_change ON audit_log",
        };
        store.execute_raw(drop).await.unwrap();
        let mut prev = records[0].hash.clone();
        for r in records.iter_mut().skip(1) {
            if r.seq == 2 {
                r.detail = "nothing happened here".into();
            }
            r.prev_hash = prev.clone();
            r.hash = record_hash(&r.hash_input());
            store
                .execute_raw(&format!(
                    "UPDATE audit_log SET detail = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
                    r.detail.replace('\'', "''"),
                    r.prev_hash,
                    r.hash,
                    r.seq
                ))
                .await
                .unwrap();
            prev = r.hash.clone();
        }
        store
            .execute_raw(&format!(
                "UPDATE audit_head SET hash = '{prev}' WHERE id = 1"
            ))
            .await
            .unwrap();
        // The chain alone is fooled…
        let v = store.verify_audit().await.unwrap();
        assert!(v.broken.is_none(), "{backend:?}: {v:?}");
        // …the anchors are not.
        let found = anchors.verify(store, Chain::Audit).await.unwrap();
        assert!(!found.is_clean(), "{backend:?}");
        assert!(
            found.problems[0].contains("differs from its anchor"),
            "{found:?}"
        );

        // A forged anchor line (no key) fails its HMAC.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(anchors.file())
            .unwrap();
        writeln!(
            f,
            "v1 audit 1 {} 2026-01-01T00:00:00Z {}",
            records[0].hash,
            "00".repeat(32)
        )
        .unwrap();
        let forged = anchors.verify(store, Chain::Audit).await.unwrap();
        assert!(
            forged.problems.iter().any(|p| p.contains("fails its HMAC")),
            "{forged:?}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.join(ketcare_app::anchors::KEY_FILE)), 0o600);
            assert_eq!(mode(&anchors.file()), 0o600);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[tokio::test]
async fn the_api_is_paced_per_credential_with_429_and_retry_after() {
    let app = TestApp::with_config(
        Backend::Sqlite,
        ketcare_web::WebConfig {
            api_burst: 20.0,
            api_per_second: 1.0,
            ..ketcare_web::WebConfig::default()
        },
    )
    .await;
    app.add_user("nina", Role::Nurse).await;
    app.add_user("sam", Role::Scheduler).await;
    let nina = app.bearer("nina").await;
    let sam = app.bearer("sam").await;
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(app.get("/api/v1/me", &nina).await);
    }
    let ok = statuses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let paced: Vec<_> = statuses
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!((20..=25).contains(&ok), "{ok} answered");
    assert!(!paced.is_empty());
    assert!(paced[0].headers.contains_key(header::RETRY_AFTER));
    assert!(
        paced[0].body.contains("too_many_requests"),
        "{}",
        paced[0].body
    );
    // Another credential is not slowed by the first.
    assert_eq!(app.get("/api/v1/me", &sam).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refusals_are_audited_as_counted_summaries() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("sam", Role::Scheduler).await;
    app.add_user("alex", Role::Administrator).await;
    let sam = app.bearer("sam").await;
    for _ in 0..50 {
        let r = app.get("/api/v1/audit", &sam).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let audit = app
        .get(
            "/api/v1/audit?action=access.denied",
            &app.bearer("alex").await,
        )
        .await;
    let records = audit.json().as_array().unwrap().len();
    assert_eq!(
        records, 1,
        "one record for a minute of refusals: {}",
        audit.body
    );
    // The next minute's first refusal carries the count of the last.
    app.advance(61);
    app.get("/api/v1/audit", &sam).await;
    let audit = app
        .get(
            "/api/v1/audit?action=access.denied",
            &app.bearer("alex").await,
        )
        .await;
    assert!(
        audit.body.contains("and 49 more refusals"),
        "{}",
        audit.body
    );
}

/// A page says only what ketcare said: `?msg=` in a link shows nothing; the message after a
/// form travels in a one-shot cookie the server sets, shown once and cleared.
#[tokio::test]
async fn messages_after_a_form_are_not_in_the_address() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("sam", Role::Scheduler).await;
    let sam = app.login("sam").await;
    let forged = app
        .get(
            "/schedule?msg=Your+account+is+locked%3A+call+555-0199",
            &sam,
        )
        .await;
    assert_eq!(forged.status, StatusCode::OK);
    assert!(!forged.body.contains("call 555-0199"), "{}", forged.body);
    let r = app
        .post_form("/schedule/chairs", &sam, &[("name", "Chair Z")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/schedule");
    let flash = set_cookie(&r.headers, "ketcare_flash").expect("a flash cookie");
    let page = app
        .send(
            Method::GET,
            "/schedule",
            &sam,
            None,
            String::new(),
            &[("cookie", &format!("ketcare_flash={flash}"))],
        )
        .await;
    assert!(
        page.body
            .contains("id=\"schedule-message\">Chair &#34;Chair Z&#34; added<"),
        "{}",
        page.body
    );
    assert_eq!(
        set_cookie(&page.headers, "ketcare_flash").as_deref(),
        Some(""),
        "cleared once shown"
    );
}

#[tokio::test]
async fn sessions_end_after_idling_and_tokens_after_their_date() {
    let app = TestApp::with_config(
        Backend::Sqlite,
        ketcare_web::WebConfig {
            idle_minutes: 30,
            api_burst: 1e9,
            ..ketcare_web::WebConfig::default()
        },
    )
    .await;
    let nina = app.add_user("nina", Role::Nurse).await;
    let page = app.login("nina").await;
    // In use every 20 minutes: the session lives on past 30 minutes from sign-in.
    for _ in 0..3 {
        app.advance(20 * 60);
        assert_eq!(app.get("/", &page).await.status, StatusCode::OK);
    }
    // Left alone for 31 minutes: it has ended.
    app.advance(31 * 60);
    let r = app.get("/", &page).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // A token with an end date answers until then, and not after.
    let secret = "kc_expiring_test_token";
    let now = common::START + (3 * 20 + 31) * 60;
    app.store
        .create_api_token(
            &Actor::system(Role::Administrator),
            nina.id,
            &ketcare_app::password::token_hash(secret),
            "short-lived",
            Some(now + 3600),
        )
        .await
        .unwrap();
    let token = Auth::Bearer(secret.into());
    assert_eq!(app.get("/api/v1/me", &token).await.status, StatusCode::OK);
    app.advance(3601);
    assert_eq!(
        app.get("/api/v1/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// A page address with a malformed id (a typo, a truncated link) is the 404 page, never a
/// plain-text parser message.
#[tokio::test]
async fn a_malformed_page_address_is_the_not_found_page() {
    let app = TestApp::new(Backend::Sqlite).await;
    app.add_user("nina", Role::Nurse).await;
    let nurse = app.login("nina").await;
    for path in [
        "/patients/abc",
        "/patients/new/edit",
        "/sessions/12x",
        "/orders/-",
        "/patients/1e3/measures",
    ] {
        let r = app.get(path, &nurse).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap_or("")
                .starts_with("text/html"),
            "{path}"
        );
        assert!(!r.body.contains("Cannot parse"), "{path}: {}", r.body);
    }
}

/// Each site's ledger is anchored as its own chain (`ledger/site-N`): a rewritten entry of the
/// second site's ledger is found by its anchors, and the first site's anchors are unaffected.
#[tokio::test]
async fn every_sites_ledger_is_anchored_as_its_own_chain() {
    use ketcare_app::anchors::Anchors;
    use ketcare_store::{Chain, SiteScope};
    for backend in ketcare_store::testing::BACKENDS {
        let app = TestApp::new(backend).await;
        let store = app.store.as_ref();
        let admin = Actor::system(Role::Administrator);
        let north = app.add_site("North", "").await;
        let u = app.add_user("pharm", Role::Pharmacist).await;
        store
            .set_user_sites(&admin, u.id, &SiteScope::Only(vec![north]))
            .await
            .unwrap();
        let pharm = Actor::user(u.id, "pharm", Role::Pharmacist, "test");
        let receive = ketcare_ops::ledger::LedgerEvent::Receive {
            product: "ketamine-50".into(),
            ndc: "67457-108-10".into(),
            lot: "LN".into(),
            expiry: jiff::civil::date(2030, 1, 31),
            quantity: 1,
            invoice: "INV-N".into(),
            supplier: "Wholesaler".into(),
        };
        store.ledger_append(&pharm, &receive).await.unwrap();
        assert_eq!(
            Chain::parse(&Chain::Ledger(north).name()),
            Some(Chain::Ledger(north))
        );
        assert_eq!(
            Chain::FIRST_LEDGER.name(),
            "ledger",
            "as anchored before sites"
        );
        let dir = std::env::temp_dir().join(format!(
            "ketcare-site-anchors-{}-{backend:?}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let anchors = Anchors::open(&dir).unwrap();
        let added = anchors.record(store, jiff::Timestamp::now()).await.unwrap();
        assert!(
            added
                .iter()
                .any(|a| a.chain == Chain::Ledger(north) && a.seq == 1),
            "{added:?}"
        );
        let clean = anchors.verify_ledgers(store).await.unwrap();
        assert!(clean.is_clean() && clean.checked == 1, "{clean:?}");
        // Rewrite North's entry (its hash recomputed or not, the anchor holds the old one).
        let unlock = match backend {
            Backend::Sqlite => "DROP TRIGGER ops_ledger_no_update",
            Backend::Postgres => "ALTER TABLE ops_ledger DISABLE TRIGGER ops_ledger_no_change",
        };
        store.execute_raw(unlock).await.unwrap();
        store
            .execute_raw(&format!(
                "UPDATE ops_ledger SET hash = 'rewritten' WHERE site_id = {north} AND site_seq = 1"
            ))
            .await
            .unwrap();
        let found = anchors.verify_ledgers(store).await.unwrap();
        assert!(
            found
                .problems
                .iter()
                .any(|p| p.contains(&format!("ledger/site-{north} record 1 differs"))),
            "{backend:?}: {found:?}"
        );
        assert!(
            anchors
                .verify(store, Chain::FIRST_LEDGER)
                .await
                .unwrap()
                .is_clean()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
