//! SMART backend clients in the store, on SQLite and on PostgreSQL: registration and disabling
//! are administrators' audited writes; an assertion's `jti` is accepted once even when eight
//! requests race; a token is found by its hash only until it expires, and never after its
//! client is disabled.

use ketcare_core::{Actor, Role};
use ketcare_store::testing::{BACKENDS, fresh_store};
use ketcare_store::{AuditFilter, FhirGrant, GrantOutcome, NewFhirClient, NewUser, StoreError};

#[tokio::test]
async fn a_jti_is_accepted_once_and_tokens_end_with_their_client() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let admin = Actor::system(Role::Administrator);
        let svc = store
            .create_user(
                &admin,
                &NewUser {
                    username: "svc".into(),
                    display_name: "registry feed".into(),
                    role: Role::Pharmacist,
                    password_hash: "x".into(),
                },
            )
            .await
            .unwrap();
        let new = NewFhirClient {
            client_id: "kc-client-test".into(),
            name: "registry feed".into(),
            user_id: svc.id,
            jwks: r#"{"keys":[]}"#.into(),
            scopes: "system/*.read".into(),
        };
        // Only an administrator registers.
        let nurse = Actor::system(Role::Nurse);
        assert!(matches!(
            store.register_fhir_client(&nurse, &new).await,
            Err(StoreError::Forbidden { .. })
        ));
        let client = store.register_fhir_client(&admin, &new).await.unwrap();
        assert_eq!(client.username, "svc");
        assert!(!client.disabled);
        assert_eq!(
            store.list_fhir_clients(&admin).await.unwrap(),
            std::slice::from_ref(&client)
        );

        let me = Actor::user(svc.id, &svc.username, svc.role, "test");
        let grant = |jti: &'static str, hash: String| {
            let store = store.clone();
            let me = me.clone();
            tokio::spawn(async move {
                store
                    .grant_fhir_token(
                        &me,
                        &FhirGrant {
                            client_id: "kc-client-test",
                            jti,
                            jti_expires_at: 1_000 + 240,
                            token_hash: &hash,
                            scopes: "system/*.read",
                            expires_at: 1_000 + 300,
                            now: 1_000,
                        },
                    )
                    .await
                    .unwrap()
            })
        };
        // Eight requests with one assertion: exactly one is granted.
        let racing: Vec<_> = (0..8)
            .map(|i| grant("jti-1", format!("hash-{i}")))
            .collect();
        let mut granted = 0;
        for t in racing {
            granted += usize::from(t.await.unwrap() == GrantOutcome::Granted);
        }
        assert_eq!(granted, 1, "{backend:?}");
        assert_eq!(store.count("fhir_access_tokens").await.unwrap(), 1);
        assert_eq!(
            grant("jti-2", "hash-x".into()).await.unwrap(),
            GrantOutcome::Granted
        );
        // Found by hash until it expires.
        let (user, scopes) = store.fhir_token("hash-x", 1_299).await.unwrap().unwrap();
        assert_eq!(
            (user.username.as_str(), scopes.as_str()),
            ("svc", "system/*.read")
        );
        assert!(store.fhir_token("hash-x", 1_300).await.unwrap().is_none());
        assert!(
            store
                .fhir_token("hash-unknown", 1_000)
                .await
                .unwrap()
                .is_none()
        );

        // Disabled: its tokens end, nothing more is granted, a second disable is refused.
        let disabled = store
            .disable_fhir_client(&admin, "kc-client-test")
            .await
            .unwrap();
        assert!(disabled.disabled);
        assert!(store.fhir_token("hash-x", 1_000).await.unwrap().is_none());
        assert_eq!(
            grant("jti-3", "hash-y".into()).await.unwrap(),
            GrantOutcome::Disabled
        );
        assert!(matches!(
            store.disable_fhir_client(&admin, "kc-client-test").await,
            Err(StoreError::NotFound { .. })
        ));

        // Each change and each decision is in the audit chain, which holds.
        let records = store
            .audit_records(
                &admin,
                &AuditFilter {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for action in [
            "fhir_client.register",
            "fhir_client.disable",
            "fhir.token.grant",
            "fhir.token.refuse",
        ] {
            assert!(records.iter().any(|r| r.action == action), "{action}");
        }
        assert!(store.verify_audit().await.unwrap().broken.is_none());
    }
}
