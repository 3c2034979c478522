//! Account administration on SQLite and PostgreSQL: an administrator disables, re-enables,
//! unlocks, changes the role of, resets the password of and ends the sessions of an account; a
//! user replaces a temporary password; each change is audited without secrets.

use crate::common;

use axum::http::{Method, StatusCode, header};
use common::*;
use ketcare_core::Role;
use ketcare_store::testing::BACKENDS;
use serde_json::json;

#[tokio::test]
async fn an_administrator_runs_the_accounts_and_users_follow() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        let admin = app.add_user("alex", Role::Administrator).await;
        let nina = app.add_user("nina", Role::Nurse).await;
        let alex = app.login("alex").await;
        let nurse = app.login("nina").await;
        let token = app.bearer("nina").await;
        assert_eq!(app.get("/api/v1/me", &token).await.status, StatusCode::OK);
        let act = |action: &'static str, role: &'static str| {
            let path = format!("/users/{}/account", nina.id.get());
            let alex = alex.clone();
            let app = &app;
            async move {
                app.post_form(&path, &alex, &[("action", action), ("role", role)])
                    .await
            }
        };

        // Disabled: the open session and the token stop at once, and sign-in is refused with
        // the one answer every refused sign-in gets.
        let r = act("disable", "").await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?} {}", r.body);
        assert!(r.body.contains("nina: disable"), "{}", r.body);
        let home = app.get("/", &nurse).await;
        assert_eq!(home.status, StatusCode::SEE_OTHER, "{}", home.body);
        assert_eq!(
            app.get("/api/v1/me", &token).await.status,
            StatusCode::UNAUTHORIZED
        );
        let (r, _) = app.try_login("nina", PASSWORD).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.body
                .contains("Wrong username or password, or too many attempts")
        );
        // An administrator cannot disable themselves.
        let own = app
            .post_form(
                &format!("/users/{}/account", admin.id.get()),
                &alex,
                &[("action", "disable")],
            )
            .await;
        assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", own.body);

        // Re-enabled, with a new role.
        assert_eq!(act("enable", "").await.status, StatusCode::OK);
        let r = act("role", "scheduler").await;
        assert!(r.body.contains("nina: role"), "{}", r.body);
        let r = act("role", "surgeon").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("role"), "{}", r.body);
        let nurse = app.login("nina").await;
        let me = app.get("/", &nurse).await;
        assert!(me.body.contains("scheduler"), "{}", me.body);

        // A temporary password, shown once; with it the user can do nothing but choose their own.
        let api_admin = app.bearer("alex").await;
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/users/{}/account", nina.id.get()),
                &api_admin,
                &json!({"action": "reset_password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let temporary = r.json()["temporary_password"].as_str().unwrap().to_owned();
        assert_eq!(r.json()["user"]["must_change_password"], true);
        assert_eq!(app.get("/", &nurse).await.status, StatusCode::SEE_OTHER);
        let (r, temp) = app
            .try_login_to("nina", &temporary, "/account/password")
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let patients = app.get("/patients", &temp).await;
        assert_eq!(patients.status, StatusCode::SEE_OTHER);
        assert_eq!(patients.headers[header::LOCATION], "/account/password");
        let form = app.get("/account/password", &temp).await;
        assert!(
            form.body.contains("id=\"password-required\""),
            "{}",
            form.body
        );
        let r = app
            .post_form(
                "/account/password",
                &temp,
                &[
                    ("current", &temporary),
                    ("new", "short"),
                    ("repeat", "short"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body.contains("new:"), "{}", r.body);
        let new = "a much longer pass phrase";
        let r = app
            .post_form(
                "/account/password",
                &temp,
                &[("current", &temporary), ("new", new), ("repeat", new)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(
            app.get("/", &temp).await.status,
            StatusCode::SEE_OTHER,
            "session ended"
        );
        let (r, _) = app.try_login("nina", new).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

        // Ending sessions revokes the token too; the users page lists every account's status.
        let token = app.bearer("nina").await;
        assert_eq!(act("end_sessions", "").await.status, StatusCode::OK);
        assert_eq!(
            app.get("/api/v1/me", &token).await.status,
            StatusCode::UNAUTHORIZED
        );
        let page = app.get("/users", &alex).await;
        assert!(page.body.contains("data-user=\"nina\""), "{}", page.body);
        // Every change is audited by action and account id, never with a password.
        let audit = app.get("/api/v1/audit?limit=200", &api_admin).await;
        for action in [
            "user.disable",
            "user.enable",
            "user.role",
            "user.password",
            "user.end_sessions",
        ] {
            assert!(
                audit.body.contains(action),
                "{backend:?} {action}: {}",
                audit.body
            );
        }
        assert!(!audit.body.contains(&temporary));
        assert!(!audit.body.contains(new));
    }
}
