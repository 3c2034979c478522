//! A second factor for staff (TOTP, RFC 6238) on SQLite and PostgreSQL: enrolment from the
//! account page, the sign-in's second step (a code, never the same step twice; a recovery code,
//! once), wrong codes counted by the sign-in throttle, an administrator's reset for a lost phone,
//! and the site setting that makes administrators and prescribers set one up. Codes are computed
//! here with totp-rs from the secret the page shows, as an authenticator app would.

use crate::common;

use axum::http::{Method, StatusCode, header};
use common::*;
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use serde_json::json;
use std::sync::atomic::Ordering;

/// The 6-digit code of `secret` (base32) at `time`, as an authenticator app shows it.
fn code_at(secret: &str, time: i64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret)
        .unwrap()
        .as_bytes()
        .to_vec();
    totp_rs::Builder::new()
        .with_secret(bytes)
        .build()
        .unwrap()
        .generate(time as u64)
        .to_string()
}

fn now(app: &TestApp) -> i64 {
    app.now.load(Ordering::SeqCst)
}

/// The text of the element with `id` (its first text run).
fn text_of(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id}: {html}"));
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    rest[open..].split('<').next().unwrap().to_owned()
}

fn recovery_codes(html: &str) -> Vec<String> {
    let list = &html[html
        .find("id=\"recovery-codes\"")
        .expect("recovery codes shown")..];
    let list = &list[..list.find("</ol>").unwrap()];
    list.split("<code>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_owned())
        .collect()
}

/// Sets up a second factor for the signed-in `auth`: returns the secret and the recovery codes.
async fn enrol(app: &TestApp, auth: &Auth) -> (String, Vec<String>) {
    let page = app.get("/account/second-factor", auth).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("id=\"second-factor-begin\""),
        "{}",
        page.body
    );
    let begun = app
        .post_form("/account/second-factor", auth, &[("action", "begin")])
        .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let secret = text_of(&begun.body, "totp-secret");
    let uri = text_of(&begun.body, "totp-uri").replace("&amp;", "&");
    assert!(uri.starts_with("otpauth://totp/ketcare:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    // A wrong code does not turn it on.
    let wrong = app
        .post_form(
            "/account/second-factor",
            auth,
            &[
                ("action", "confirm"),
                ("code", &other_code(&secret, now(app))),
            ],
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.body
    );
    assert!(
        wrong.body.contains("id=\"totp-secret\""),
        "still setting up"
    );
    let code = code_at(&secret, now(app));
    let on = app
        .post_form(
            "/account/second-factor",
            auth,
            &[("action", "confirm"), ("code", &code)],
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert!(on.body.contains("Your second factor is on"), "{}", on.body);
    let codes = recovery_codes(&on.body);
    assert_eq!(codes.len(), 10, "{}", on.body);
    // Shown once: the page does not show them again.
    let again = app.get("/account/second-factor", auth).await;
    assert!(!again.body.contains(&codes[0]));
    assert!(
        again.body.contains("Recovery codes left: 10"),
        "{}",
        again.body
    );
    (secret, codes)
}

/// A 6-digit code that is none of the codes the secret accepts around `time`.
fn other_code(secret: &str, time: i64) -> String {
    let near: Vec<String> = (-2..=2).map(|k| code_at(secret, time + 30 * k)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// The first step of a sign-in: the cookies the second step needs, or the reply if there is no
/// second step.
struct Pending {
    cookies: String,
    csrf: String,
}

async fn password_step(app: &TestApp, username: &str, password: &str) -> (Reply, Option<Pending>) {
    let form = app.get("/login", &Auth::None).await;
    let login_cookie = set_cookie(&form.headers, "ketcare_login_csrf").unwrap();
    let csrf = hidden_csrf(&form.body);
    let body = serde_urlencoded::to_string([
        ("username", username),
        ("password", password),
        ("csrf_token", csrf.as_str()),
        ("next", "/"),
    ])
    .unwrap();
    let r = app
        .send(
            Method::POST,
            "/login",
            &Auth::None,
            Some("application/x-www-form-urlencoded"),
            body,
            &[("cookie", &format!("ketcare_login_csrf={login_cookie}"))],
        )
        .await;
    let pending = set_cookie(&r.headers, "ketcare_sign_in")
        .filter(|v| !v.is_empty())
        .map(|challenge| Pending {
            cookies: format!("ketcare_login_csrf={login_cookie}; ketcare_sign_in={challenge}"),
            csrf,
        });
    (r, pending)
}

async fn code_step(app: &TestApp, pending: &Pending, code: &str) -> (Reply, Auth) {
    let body = serde_urlencoded::to_string([
        ("code", code),
        ("csrf_token", pending.csrf.as_str()),
        ("next", "/"),
    ])
    .unwrap();
    let r = app
        .send(
            Method::POST,
            "/login/second-factor",
            &Auth::None,
            Some("application/x-www-form-urlencoded"),
            body,
            &[("cookie", &pending.cookies)],
        )
        .await;
    let Some(session) = set_cookie(&r.headers, "ketcare_session").filter(|v| !v.is_empty()) else {
        return (r, Auth::None);
    };
    let cookie = format!("ketcare_session={session}");
    let home = app
        .get(
            "/",
            &Auth::Session {
                cookie: cookie.clone(),
                csrf: String::new(),
            },
        )
        .await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    let csrf = hidden_csrf(&home.body);
    (r, Auth::Session { cookie, csrf })
}

/// Password, then `code`: the reply to the second step and the session if it opened one.
async fn sign_in_with(app: &TestApp, username: &str, code: &str) -> (Reply, Auth) {
    let (r, pending) = password_step(app, username, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"second-step-form\""), "{}", r.body);
    code_step(app, &pending.expect("a second step"), code).await
}

#[tokio::test]
async fn enrol_then_sign_in_with_a_code_once_per_step_or_a_recovery_code_once() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("alex", Role::Administrator).await;
        let nina = app.add_user("nina", Role::Nurse).await;
        let auth = app.login("nina").await;
        let (secret, codes) = enrol(&app, &auth).await;
        // Turned on, it is not begun again over the top.
        let again = app
            .post_form("/account/second-factor", &auth, &[("action", "begin")])
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

        // The password alone opens no session: the second step's cookie is not one.
        let (r, pending) = password_step(&app, "nina", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?}: {}", r.body);
        assert!(set_cookie(&r.headers, "ketcare_session").is_none());
        let pending = pending.expect("a second step");
        let as_cookie = app
            .send(
                Method::GET,
                "/",
                &Auth::None,
                None,
                String::new(),
                &[("cookie", &pending.cookies)],
            )
            .await;
        assert_eq!(as_cookie.status, StatusCode::SEE_OTHER);
        assert!(as_cookie.location().starts_with("/login"));
        let api = app
            .send(
                Method::GET,
                "/api/v1/me",
                &Auth::None,
                None,
                String::new(),
                &[("cookie", &pending.cookies)],
            )
            .await;
        assert_eq!(api.status, StatusCode::UNAUTHORIZED);

        // A wrong code is refused; so is the code that confirmed the set-up (its step is used).
        let (r, none) = code_step(&app, &pending, &other_code(&secret, now(&app))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert!(matches!(none, Auth::None));
        assert!(r.body.contains("That code is not right"), "{}", r.body);
        let used = code_at(&secret, now(&app));
        let (r, _) = code_step(&app, &pending, &used).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "replayed: {}", r.body);

        // The next step's code signs in, once.
        app.advance(30);
        let code = code_at(&secret, now(&app));
        let (r, session) = code_step(&app, &pending, &code).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{backend:?}: {}", r.body);
        assert_eq!(app.get("/patients", &session).await.status, StatusCode::OK);
        let (r, _) = code_step(&app, &pending, &code).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "challenge ended");
        assert!(r.body.contains("sign in again"), "{}", r.body);
        let (r, none) = sign_in_with(&app, "nina", &code).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "replayed: {}", r.body);
        assert!(matches!(none, Auth::None));
        // One step of skew either side of the clock is accepted, two are not; and a code of a
        // step before the last accepted one is refused, though the clock would allow it.
        app.advance(30);
        let (r, _) = sign_in_with(&app, "nina", &code_at(&secret, now(&app) + 60)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "skew +2");
        let (r, _) = sign_in_with(&app, "nina", &code_at(&secret, now(&app) + 30)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "skew +1: {}", r.body);
        let (r, _) = sign_in_with(&app, "nina", &code_at(&secret, now(&app))).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "earlier step: {}",
            r.body
        );

        // The second step waits five minutes, no longer.
        app.advance(120);
        let (_, pending) = password_step(&app, "nina", PASSWORD).await;
        app.advance(301);
        let (r, _) = code_step(&app, &pending.unwrap(), &code_at(&secret, now(&app))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body.contains("took too long"), "{}", r.body);

        // A recovery code works once, however it is typed.
        let typed = codes[3].to_uppercase().replace('-', " ");
        let (r, _) = sign_in_with(&app, "nina", &typed).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let (r, _) = sign_in_with(&app, "nina", &codes[3]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "used: {}", r.body);
        let (r, auth) = sign_in_with(&app, "nina", &codes[4]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let page = app.get("/account/second-factor", &auth).await;
        assert!(
            page.body.contains("Recovery codes left: 8"),
            "{}",
            page.body
        );

        // Turned off only with a current code.
        let r = app
            .post_form(
                "/account/second-factor",
                &auth,
                &[("action", "off"), ("code", &other_code(&secret, now(&app)))],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        app.advance(60);
        let r = app
            .post_form(
                "/account/second-factor",
                &auth,
                &[("action", "off"), ("code", &code_at(&secret, now(&app)))],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("Your second factor is off"), "{}", r.body);
        let (r, pending) = password_step(&app, "nina", PASSWORD).await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "password alone: {}",
            r.body
        );
        assert!(pending.is_none());

        // Audited by action and account id, never with the secret or a code.
        let admin = app.bearer("alex").await;
        let audit = app.get("/api/v1/audit?limit=500", &admin).await;
        assert_eq!(audit.status, StatusCode::OK);
        for action in [
            "user.second_factor_begin",
            "user.second_factor_on",
            "login.password_ok",
            "login.second_factor",
            "login.second_factor_failed",
            "user.second_factor_reset",
        ] {
            assert!(audit.body.contains(action), "{backend:?} {action}");
        }
        let records = audit.json();
        let on = records
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["action"] == "user.second_factor_on")
            .unwrap();
        assert_eq!(on["detail"], format!("user {}", nina.id.get()));
        assert!(!audit.body.contains(&secret));
        for c in &codes {
            assert!(!audit.body.contains(c.as_str()));
        }
    }
}

#[tokio::test]
async fn wrong_codes_count_toward_the_sign_in_throttle() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("pat", Role::Pharmacist).await;
        let auth = app.login("pat").await;
        let (secret, _) = enrol(&app, &auth).await;
        app.advance(30);
        let (r, pending) = password_step(&app, "pat", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK);
        let pending = pending.unwrap();
        for _ in 0..app.config.lockout_attempts {
            let (r, _) = code_step(&app, &pending, &other_code(&secret, now(&app))).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        // Paused: the right code is refused now, with the one answer every refusal gets, and
        // so is the password from this address.
        let (r, none) = code_step(&app, &pending, &code_at(&secret, now(&app))).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{backend:?}: {}",
            r.body
        );
        assert!(matches!(none, Auth::None));
        assert!(
            r.body.contains("too many attempts"),
            "{backend:?}: {}",
            r.body
        );
        let (r, pending) = password_step(&app, "pat", PASSWORD).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(pending.is_none());
        // After the pause, the right code signs in.
        app.advance(app.config.lockout_minutes * 60 + 1);
        let (r, _) = sign_in_with(&app, "pat", &code_at(&secret, now(&app))).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{backend:?}: {}", r.body);
    }
}

#[tokio::test]
async fn an_administrator_resets_a_lost_second_factor_on_the_page_and_the_api() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("alex", Role::Administrator).await;
        let nina = app.add_user("nina", Role::Nurse).await;
        let tess = app.add_user("tess", Role::Therapist).await;
        let admin = app.login("alex").await;
        for who in ["nina", "tess"] {
            let auth = app.login(who).await;
            enrol(&app, &auth).await;
        }
        let users = app.get("/users", &admin).await;
        assert!(users.body.contains("second factor on"), "{}", users.body);
        assert!(
            users.body.contains("value=\"reset_second_factor\""),
            "{}",
            users.body
        );
        let r = app
            .post_form(
                &format!("/users/{}/account", nina.id.get()),
                &admin,
                &[("action", "reset_second_factor")],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("nina: reset second factor"), "{}", r.body);
        let (r, pending) = password_step(&app, "nina", PASSWORD).await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "password alone: {}",
            r.body
        );
        assert!(pending.is_none());

        let token = app.bearer("alex").await;
        let path = format!("/api/v1/users/{}/account", tess.id.get());
        let r = app.get("/api/v1/users", &token).await;
        let tess_view = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == "tess")
            .cloned()
            .unwrap();
        assert_eq!(tess_view["second_factor"], true);
        let r = app
            .json(
                Method::POST,
                &path,
                &token,
                &json!({"action": "reset_second_factor"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["user"]["second_factor"], false);
        // An administrator's own goes only with a current code, on their account page.
        let alex_id = app
            .store
            .user_by_username("alex")
            .await
            .unwrap()
            .unwrap()
            .id;
        let own = app
            .json(
                Method::POST,
                &format!("/api/v1/users/{}/account", alex_id.get()),
                &token,
                &json!({"action": "reset_second_factor"}),
            )
            .await;
        assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", own.body);
        // Only an administrator resets another's second factor.
        let nurse = app.bearer("nina").await;
        let r = app
            .json(
                Method::POST,
                &path,
                &nurse,
                &json!({"action": "reset_second_factor"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let audit = app
            .get("/api/v1/audit?action=user.second_factor_reset", &token)
            .await
            .json();
        let details: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["detail"].as_str().unwrap())
            .collect();
        assert!(
            details.contains(&format!("user {}: second factor reset", nina.id.get()).as_str()),
            "{details:?}"
        );
        assert!(
            details.contains(&format!("user {}: second factor reset", tess.id.get()).as_str()),
            "{details:?}"
        );
    }
}

#[tokio::test]
async fn the_site_can_require_a_second_factor_of_administrators_and_prescribers() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("alex", Role::Administrator).await;
        app.add_user("doc", Role::Prescriber).await;
        app.add_user("nina", Role::Nurse).await;
        app.set_test_site_settings_with(&[("security.second_factor_required", 1.0)])
            .await;

        // A nurse is not asked.
        let nurse = app.login("nina").await;
        assert_eq!(app.get("/patients", &nurse).await.status, StatusCode::OK);

        for who in ["alex", "doc"] {
            let (r, auth) = app
                .try_login_to(who, PASSWORD, "/account/second-factor")
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{backend:?} {who}");
            let page = app.get("/account/second-factor", &auth).await;
            assert!(
                page.body.contains("id=\"second-factor-required\""),
                "{}",
                page.body
            );
            // Nothing else opens, on a page or through the session's API calls…
            for path in ["/", "/protocols", "/settings"] {
                let r = app.get(path, &auth).await;
                assert_eq!(r.status, StatusCode::SEE_OTHER, "{who} {path}");
                assert_eq!(r.headers[header::LOCATION], "/account/second-factor");
            }
            assert_eq!(
                app.get("/api/v1/me", &auth).await.status,
                StatusCode::FORBIDDEN
            );
            // …but an API token (a machine credential) is not held up.
            let token = app.bearer(who).await;
            assert_eq!(app.get("/api/v1/me", &token).await.status, StatusCode::OK);
            // Set up, everything opens again.
            enrol(&app, &auth).await;
            assert_eq!(app.get("/", &auth).await.status, StatusCode::OK, "{who}");
        }
        // With the setting at "no", an administrator without one is not held up.
        app.add_user("ada", Role::Administrator).await;
        app.set_test_site_settings_with(&[("security.second_factor_required", 2.0)])
            .await;
        let ada = app.login("ada").await;
        assert_eq!(app.get("/users", &ada).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn the_settings_page_offers_the_requirement_as_yes_or_no() {
    let app = TestApp::new(ketcare_store::Backend::Sqlite).await;
    app.add_user("alex", Role::Administrator).await;
    let page = app.get("/settings", &app.login("alex").await).await;
    assert!(
        page.body.contains("security.second_factor_required"),
        "{}",
        page.body
    );
    let token = app.bearer("alex").await;
    let bad = app
        .json(
            Method::PUT,
            "/api/v1/site-settings",
            &token,
            &json!({"settings": {"values": {"security.second_factor_required": 3}}, "reason": "policy"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(
        bad.body.contains("security.second_factor_required"),
        "{}",
        bad.body
    );
    let ok = app
        .json(
            Method::PUT,
            "/api/v1/site-settings",
            &token,
            &json!({"settings": {"values": {"security.second_factor_required": 1}}, "reason": "policy"}),
        )
        .await;
    assert!(ok.status.is_success(), "{}", ok.body);
}
