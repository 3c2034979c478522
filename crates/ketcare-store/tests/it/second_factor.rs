//! The store's half of the second factor, on SQLite and on PostgreSQL: a time step is accepted
//! once and only moving forward, a recovery code once — also when requests race — and a set-up
//! is confirmed only for the secret that was begun.

use ketcare_core::{Actor, Role};
use ketcare_store::testing::{BACKENDS, fresh_store};
use ketcare_store::{NewUser, SecondFactorProof, SecretText, Store, User};
use std::sync::Arc;

async fn enrolled(store: &Arc<dyn Store>) -> User {
    let user = store
        .create_user(
            &Actor::system(Role::Administrator),
            &NewUser {
                username: "nina".into(),
                display_name: "Nina".into(),
                role: Role::Nurse,
                password_hash: "x".into(),
            },
        )
        .await
        .unwrap();
    let me = Actor::user(user.id, &user.username, user.role, "test");
    let secret = SecretText::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
    store.begin_second_factor(&me, &secret).await.unwrap();
    // Confirming another secret than the one begun is refused.
    let other = SecretText::new("KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU");
    assert!(
        store
            .confirm_second_factor(&me, &other, 100, &[])
            .await
            .is_err()
    );
    let hashes = vec!["hash-a".to_owned(), "hash-b".to_owned()];
    let user = store
        .confirm_second_factor(&me, &secret, 100, &hashes)
        .await
        .unwrap();
    assert!(user.second_factor);
    let state = store.second_factor(user.id).await.unwrap();
    assert_eq!(state.last_step, 100);
    assert_eq!(state.recovery_codes_left, 2);
    assert!(state.pending.is_none());
    assert_eq!(state.secret, Some(secret));
    user
}

#[tokio::test]
async fn a_step_is_accepted_once_and_only_forward_even_when_requests_race() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let user = enrolled(&store).await;
        let proof = |p: SecondFactorProof| {
            let store = store.clone();
            let user = user.clone();
            tokio::spawn(async move {
                store
                    .second_factor_sign_in(&user, "test", &p)
                    .await
                    .unwrap()
            })
        };
        // The confirming step and earlier ones are used.
        for step in [99, 100] {
            assert!(!proof(SecondFactorProof::Step(step)).await.unwrap());
        }
        // Eight requests with one later step: exactly one is accepted.
        let racing: Vec<_> = (0..8)
            .map(|_| proof(SecondFactorProof::Step(101)))
            .collect();
        let mut accepted = 0;
        for t in racing {
            accepted += usize::from(t.await.unwrap());
        }
        assert_eq!(accepted, 1, "{backend:?}");
        assert_eq!(store.second_factor(user.id).await.unwrap().last_step, 101);
        // A recovery code, raced the same way, is used once; an unknown one never.
        let hash = || SecondFactorProof::RecoveryCodeHash("hash-a".into());
        let racing: Vec<_> = (0..8).map(|_| proof(hash())).collect();
        let mut accepted = 0;
        for t in racing {
            accepted += usize::from(t.await.unwrap());
        }
        assert_eq!(accepted, 1, "{backend:?}");
        let unknown = SecondFactorProof::RecoveryCodeHash("hash-z".into());
        assert!(!proof(unknown).await.unwrap());
        assert!(!proof(SecondFactorProof::Wrong).await.unwrap());
        assert_eq!(
            store
                .second_factor(user.id)
                .await
                .unwrap()
                .recovery_codes_left,
            1
        );
        // Each failure counted on the account and audited, without a secret.
        let failed = store
            .audit_records(
                &Actor::system(Role::Administrator),
                &ketcare_store::AuditFilter {
                    action: Some("login.second_factor_failed".into()),
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(failed.len(), 2 + 7 + 7 + 2, "{backend:?}");
        assert!(failed.iter().all(|r| r.detail == "wrong or used code"));
    }
}
