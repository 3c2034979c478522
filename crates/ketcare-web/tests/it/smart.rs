//! SMART Backend Services on both backends: the discovery document and the CapabilityStatement's
//! token URL; clients registered by an administrator (API); RS384 and ES384 assertions granted a
//! token that reads as the client's account; every refusal with its RFC 6749 code (wrong key,
//! audience, expired, `exp` too far ahead, replayed `jti`, disabled or unknown client, a write
//! scope, another grant type); the token refused outside the FHIR reads; scopes limiting reads
//! and exports; grants and refusals audited without the assertion.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ketcare_core::Role;
use ketcare_store::AuditFilter;
use ketcare_store::testing::BACKENDS;
use serde_json::{Value, json};

const TOKEN_URL: &str = "http://localhost/fhir/r4/auth/token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A test key: its private half (to sign) and its public JWK with `kid`.
struct Key {
    private: EncodingKey,
    alg: Algorithm,
    kid: &'static str,
}

impl Key {
    fn rsa(kid: &'static str) -> Self {
        Self::load(include_bytes!("smart_keys/rsa.pem"), Algorithm::RS384, kid)
    }
    fn other_rsa(kid: &'static str) -> Self {
        Self::load(
            include_bytes!("smart_keys/other_rsa.pem"),
            Algorithm::RS384,
            kid,
        )
    }
    fn ec(kid: &'static str) -> Self {
        Self::load(
            include_bytes!("smart_keys/ec384.pem"),
            Algorithm::ES384,
            kid,
        )
    }
    fn load(pem: &[u8], alg: Algorithm, kid: &'static str) -> Self {
        let private = match alg {
            Algorithm::RS384 => EncodingKey::from_rsa_pem(pem),
            _ => EncodingKey::from_ec_pem(pem),
        }
        .unwrap();
        Self { private, alg, kid }
    }
    fn public(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.private, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.into());
        jwk
    }
    /// An assertion for `client` at `now` with these claims changed.
    fn sign(&self, client: &str, now: i64, jti: &str, changes: Value) -> String {
        let mut claims = json!({
            "iss": client, "sub": client, "aud": TOKEN_URL, "exp": now + 240, "jti": jti,
        });
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.into());
        jsonwebtoken::encode(&header, &claims, &self.private).unwrap()
    }
}

fn jwks(keys: &[&Key]) -> Value {
    serde_json::to_value(JwkSet {
        keys: keys.iter().map(|k| k.public()).collect(),
    })
    .unwrap()
}

async fn register(app: &TestApp, admin: &Auth, user: &str, keys: Value, scope: &str) -> String {
    let r = app
        .json(
            Method::POST,
            "/api/v1/fhir-clients",
            admin,
            &json!({"name": "registry feed", "user": user, "jwks": keys, "scope": scope}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()["client_id"].as_str().unwrap().to_owned()
}

async fn ask(app: &TestApp, fields: &[(&str, &str)]) -> Reply {
    app.post_form("/fhir/r4/auth/token", &Auth::None, fields)
        .await
}

async fn token_with(app: &TestApp, assertion: &str, scope: &str) -> Reply {
    ask(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("scope", scope),
        ],
    )
    .await
}

fn refused(r: &Reply, status: StatusCode, code: &str, field: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"], code, "{}", r.body);
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(field), "{description} names {field}");
}

/// An app whose token endpoint is not paused by the many refusals a test makes on purpose (the
/// pause is tested on its own).
async fn patient_app(backend: ketcare_store::Backend) -> TestApp {
    TestApp::with_config(
        backend,
        ketcare_web::WebConfig {
            api_burst: 1e9,
            idle_minutes: 1_000_000,
            lockout_attempts: 1_000,
            ..ketcare_web::WebConfig::default()
        },
    )
    .await
}

/// The newest 100 audit records matching `filter`.
async fn audit(app: &TestApp, filter: AuditFilter) -> Vec<ketcare_core::audit::AuditRecord> {
    let filter = AuditFilter {
        limit: 100,
        ..filter
    };
    let admin = ketcare_core::Actor::system(Role::Administrator);
    app.store.audit_records(&admin, &filter).await.unwrap()
}

fn bearer(r: &Reply) -> Auth {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    Auth::Bearer(r.json()["access_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn discovery_and_the_capability_statement_name_the_token_endpoint() {
    let app = TestApp::new(ketcare_store::Backend::Sqlite).await;
    let r = app
        .get("/fhir/r4/.well-known/smart-configuration", &Auth::None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let c = r.json();
    assert_eq!(c["token_endpoint"], TOKEN_URL);
    assert_eq!(
        c["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(
        c["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS384", "ES384"])
    );
    assert_eq!(c["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(c["capabilities"], json!(["client-confidential-asymmetric"]));
    let scopes = c["scopes_supported"].as_array().unwrap();
    assert!(
        scopes.contains(&json!("system/*.read"))
            && scopes.contains(&json!("system/Observation.read"))
    );
    let security = &app.get("/fhir/r4/metadata", &Auth::None).await.json()["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    assert_eq!(security["extension"][0]["extension"][0]["url"], "token");
    assert_eq!(
        security["extension"][0]["extension"][0]["valueUri"],
        TOKEN_URL
    );
}

#[tokio::test]
async fn a_backend_client_reads_as_its_account_and_every_bad_assertion_is_refused() {
    for backend in BACKENDS {
        let app = patient_app(backend).await;
        app.add_user("admin", Role::Administrator).await;
        app.add_user("nina", Role::Nurse).await;
        app.add_user("svc", Role::Pharmacist).await;
        let admin = app.bearer("admin").await;
        let nurse = app.login("nina").await;
        let pid = patient_born(&app, &nurse, "MRN-SMART-1", "2010-05-04").await;
        let now = START;
        let (rsa, ec) = (Key::rsa("rsa-1"), Key::ec("ec-1"));

        // Only an administrator registers; a bad JWK Set or scope is refused by field.
        let nurse_api = app.bearer("nina").await;
        let r = app
            .json(
                Method::POST,
                "/api/v1/fhir-clients",
                &nurse_api,
                &json!({"name": "x", "user": "svc", "jwks": jwks(&[&rsa])}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app
            .json(Method::POST, "/api/v1/fhir-clients", &admin, &json!({"name": "x", "user": "nobody", "jwks": {"keys": []}, "scope": "system/*.write"}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let mut fields = r.fields();
        fields.sort();
        assert_eq!(fields, ["jwks", "scope", "user"], "{}", r.body);

        let client = register(&app, &admin, "svc", jwks(&[&rsa, &ec]), "system/*.read").await;
        let listed = app.get("/api/v1/fhir-clients", &admin).await.json();
        assert_eq!(listed[0]["client_id"], client.as_str());
        assert_eq!(listed[0]["user"], "svc");
        assert_eq!(listed[0]["key_ids"], json!(["rsa-1", "ec-1"]));

        // A good RS384 and a good ES384 assertion each get a token that reads Patient.
        for (key, jti) in [(&rsa, "a-1"), (&ec, "a-2")] {
            let r = token_with(
                &app,
                &key.sign(&client, now, jti, json!({})),
                "system/*.read",
            )
            .await;
            let body = r.json();
            assert_eq!(body["token_type"], "bearer");
            assert_eq!(body["expires_in"], 300);
            assert_eq!(body["scope"], "system/*.read");
            let token = bearer(&r);
            let read = app.get(&format!("/fhir/r4/Patient/{pid}"), &token).await;
            assert_eq!(read.status, StatusCode::OK, "{}", read.body);
            assert_eq!(read.json()["identifier"][0]["value"], "MRN-SMART-1");
        }

        // The grant and the read are audited as the service account; no assertion text.
        let records = audit(
            &app,
            AuditFilter {
                username: Some("svc".into()),
                ..Default::default()
            },
        )
        .await;
        assert!(records.iter().any(|r| r.action == "fhir.token.grant"));
        assert!(records.iter().any(|r| r.patient_id == Some(pid)));

        // Each bad assertion, refused with its code and the claim it is about.
        let unauthorized = StatusCode::UNAUTHORIZED;
        let r = token_with(
            &app,
            &Key::other_rsa("rsa-1").sign(&client, now, "b-1", json!({})),
            "system/*.read",
        )
        .await;
        refused(&r, unauthorized, "invalid_client", "signature");
        let r = token_with(
            &app,
            &rsa.sign(
                &client,
                now,
                "b-2",
                json!({"aud": "https://elsewhere/token"}),
            ),
            "system/*.read",
        )
        .await;
        refused(&r, unauthorized, "invalid_client", "aud");
        let r = token_with(
            &app,
            &rsa.sign(&client, now, "b-3", json!({"exp": now - 1})),
            "system/*.read",
        )
        .await;
        refused(&r, unauthorized, "invalid_client", "exp");
        let r = token_with(
            &app,
            &rsa.sign(&client, now, "b-4", json!({"exp": now + 301})),
            "system/*.read",
        )
        .await;
        refused(&r, unauthorized, "invalid_client", "exp");
        let r = token_with(
            &app,
            &rsa.sign(&client, now, "b-5", json!({"sub": "someone"})),
            "system/*.read",
        )
        .await;
        refused(&r, unauthorized, "invalid_client", "sub");
        let r = token_with(
            &app,
            &rsa.sign("kc-client-unknown", now, "b-6", json!({})),
            "system/*.read",
        )
        .await;
        refused(&r, unauthorized, "invalid_client", "iss");
        let r = token_with(
            &app,
            &Key::rsa("rsa-9").sign(&client, now, "b-7", json!({})),
            "system/*.read",
        )
        .await;
        refused(&r, unauthorized, "invalid_client", "kid");
        let replayed = rsa.sign(&client, now, "c-1", json!({}));
        bearer(&token_with(&app, &replayed, "system/*.read").await);
        let r = token_with(&app, &replayed, "system/*.read").await;
        refused(&r, unauthorized, "invalid_client", "jti");
        let r = token_with(
            &app,
            &rsa.sign(&client, now, "b-8", json!({})),
            "system/*.read system/Patient.write",
        )
        .await;
        refused(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "system/Patient.write",
        );
        let r = ask(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("client_assertion_type", ASSERTION_TYPE),
                (
                    "client_assertion",
                    &rsa.sign(&client, now, "b-9", json!({})),
                ),
                ("scope", "system/*.read"),
            ],
        )
        .await;
        refused(
            &r,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type",
        );
        let r = ask(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("scope", "system/*.read"),
            ],
        )
        .await;
        refused(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion",
        );

        // Refusals are audited, never with the assertion's text.
        let all = audit(
            &app,
            AuditFilter {
                action: Some("fhir.token.refuse".into()),
                ..Default::default()
            },
        )
        .await;
        assert!(all.len() >= 10, "{} refusals audited", all.len());
        assert!(all.iter().all(|r| !r.detail.contains(&replayed[..40])));

        // The token is no credential outside the FHIR reads.
        let token = bearer(
            &token_with(
                &app,
                &rsa.sign(&client, now, "d-1", json!({})),
                "system/*.read",
            )
            .await,
        );
        assert_eq!(
            app.get("/api/v1/patients", &token).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.get("/api/v1/me", &token).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_ne!(app.get("/patients", &token).await.status, StatusCode::OK);
        // It expires after 300 s.
        app.advance(301);
        let r = app.get("/fhir/r4/Patient", &token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        let now = now + 301;

        // A disabled client gets no token, and its tokens end.
        let token = bearer(
            &token_with(
                &app,
                &rsa.sign(&client, now, "e-1", json!({})),
                "system/*.read",
            )
            .await,
        );
        let r = app
            .json(
                Method::POST,
                &format!("/api/v1/fhir-clients/{client}/disable"),
                &admin,
                &json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["disabled"], true);
        assert_eq!(
            app.get("/fhir/r4/Patient", &token).await.status,
            StatusCode::UNAUTHORIZED
        );
        let r = token_with(
            &app,
            &rsa.sign(&client, now, "e-2", json!({})),
            "system/*.read",
        )
        .await;
        refused(&r, StatusCode::UNAUTHORIZED, "invalid_client", "disabled");
    }
}

#[tokio::test]
async fn scopes_limit_reads_and_exports() {
    for backend in BACKENDS {
        let app = TestApp::new(backend).await;
        app.add_user("admin", Role::Administrator).await;
        app.add_user("svc", Role::Pharmacist).await;
        app.add_user("nina", Role::Nurse).await;
        let admin = app.bearer("admin").await;
        let nurse = app.login("nina").await;
        let pid = patient_born(&app, &nurse, "MRN-SMART-2", "1990-01-02").await;
        let ec = Key::ec("ec-1");
        let client = register(&app, &admin, "svc", jwks(&[&ec]), "system/Observation.read").await;
        // Asking for everything grants what the client is registered for.
        let r = token_with(
            &app,
            &ec.sign(&client, START, "s-1", json!({})),
            "system/*.read",
        )
        .await;
        assert_eq!(r.json()["scope"], "system/Observation.read");
        let token = bearer(&r);
        let r = app
            .get(&format!("/fhir/r4/Observation?patient={pid}"), &token)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = app.get("/fhir/r4/Patient", &token).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        let r = app.get(&format!("/fhir/r4/Patient/{pid}"), &token).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // Asking only for what is not registered is refused.
        let r = token_with(
            &app,
            &ec.sign(&client, START, "s-2", json!({})),
            "system/Patient.read",
        )
        .await;
        refused(&r, StatusCode::BAD_REQUEST, "invalid_scope", "scope");

        // Exports: an unscoped `_type` is refused; without `_type`, the scoped types only.
        let async_ = [("prefer", "respond-async")];
        let r = app
            .send(
                Method::POST,
                "/fhir/r4/$export?_type=Patient,Observation",
                &token,
                None,
                String::new(),
                &async_,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        assert!(r.body.contains("system/Patient.read"), "{}", r.body);
        let r = app
            .send(
                Method::POST,
                "/fhir/r4/$export",
                &token,
                None,
                String::new(),
                &async_,
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let status = r.headers["content-location"]
            .to_str()
            .unwrap()
            .trim_start_matches("http://localhost")
            .to_owned();
        let mut manifest = None;
        for _ in 0..100 {
            let s = app.get(&status, &token).await;
            if s.status == StatusCode::OK {
                manifest = Some(s.json());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let manifest = manifest.expect("the export finished");
        assert!(
            manifest["output"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o["type"] == "Observation"),
            "{manifest}"
        );
        // Reads only: any other write is no credential.
        let r = app
            .send(
                Method::POST,
                "/fhir/r4/Observation",
                &token,
                None,
                String::new(),
                &[],
            )
            .await;
        assert!(
            matches!(
                r.status,
                StatusCode::UNAUTHORIZED | StatusCode::METHOD_NOT_ALLOWED
            ),
            "{}",
            r.status
        );
    }
}

#[tokio::test]
async fn failed_token_requests_are_paused_like_sign_in() {
    let app = TestApp::new(ketcare_store::Backend::Sqlite).await;
    let attempts = app.config.lockout_attempts;
    let ask_badly = || ask(&app, &[("grant_type", "password")]);
    for _ in 0..attempts {
        assert_eq!(ask_badly().await.status, StatusCode::BAD_REQUEST);
    }
    let r = ask_badly().await;
    refused(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        "try again",
    );
    assert!(r.headers.contains_key("retry-after"));
    // The pause ends with its window.
    app.advance(app.config.lockout_minutes * 60);
    assert_eq!(ask_badly().await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_administrator_registers_and_disables_a_client_on_the_page() {
    let app = TestApp::new(ketcare_store::Backend::Sqlite).await;
    app.add_user("admin", Role::Administrator).await;
    app.add_user("svc", Role::Pharmacist).await;
    let admin = app.login("admin").await;
    let r = app.get("/fhir-clients", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("No backend client is registered"),
        "{}",
        r.body
    );
    let keys = jwks(&[&Key::ec("ec-1")]).to_string();
    // A refused form comes back as typed, naming the fields.
    let bad = [
        ("name", "feed"),
        ("user", "nobody"),
        ("scope", "system/*.write"),
        ("jwks", "{}"),
    ];
    let r = app.post_form("/fhir-clients", &admin, &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("user: there is no account"), "{}", r.body);
    assert!(
        r.body.contains("scope: scope `system/*.write`"),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"nobody\""), "{}", r.body);
    let good = [
        ("name", "feed"),
        ("user", "svc"),
        ("scope", "system/*.read"),
        ("jwks", keys.as_str()),
    ];
    let r = app.post_form("/fhir-clients", &admin, &good).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let client = app
        .get("/api/v1/fhir-clients", &app.bearer("admin").await)
        .await
        .json()[0]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        r.body.contains(&format!("its client_id is {client}")),
        "{}",
        r.body
    );
    assert!(r.body.contains("ec-1"));
    let r = app
        .post_form(&format!("/fhir-clients/{client}/disable"), &admin, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("its tokens ended"), "{}", r.body);
    // Not for other roles.
    app.add_user("nina", Role::Nurse).await;
    let nurse = app.login("nina").await;
    assert_eq!(
        app.get("/fhir-clients", &nurse).await.status,
        StatusCode::FORBIDDEN
    );
}
