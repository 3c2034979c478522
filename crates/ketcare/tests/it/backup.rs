//! A backup taken while monitors stream vitals is one consistent snapshot: it verifies (both
//! chains intact), restores into a fresh data folder, and the restored database verifies and
//! holds exactly what the backup held.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{ketcare, text};
use crate::sessions_durability::{start, stream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_backup_under_load_verifies_and_restores_identically() {
    let root = std::env::temp_dir().join(format!("ketcare-backup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("live");
    let (mut server, mllp) = start(&data, true);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let monitors: Vec<_> = (0..2)
        .map(|m| {
            let acked = acked.clone();
            std::thread::spawn(move || stream(mllp, m, acked))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The backup is taken by another process while vitals are being written.
    let file = root.join("snapshot.db");
    let b = ketcare(&data, &["backup", "--to", file.to_str().unwrap()]);
    assert!(b.status.success(), "{}", text(&b));
    assert!(text(&b).contains("backup verified"), "{}", text(&b));
    let during = acked.lock().unwrap().len();
    server.kill().unwrap();
    server.wait().unwrap();
    for m in monitors {
        m.join().unwrap();
    }
    assert!(during >= 50, "vitals were streaming during the backup");
    // A backup never overwrites a file.
    let again = ketcare(&data, &["backup", "--to", file.to_str().unwrap()]);
    assert!(!again.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // Restored into a fresh data folder, the database verifies and matches the backup.
    let restored = root.join("restored");
    let r = ketcare(&restored, &["restore", "--from", file.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    let refused = ketcare(&restored, &["restore", "--from", file.to_str().unwrap()]);
    assert!(
        !refused.status.success(),
        "an existing database is not replaced silently"
    );
    let v = ketcare(&restored, &["audit", "verify"]);
    assert!(v.status.success(), "{}", text(&v));
    let l = ketcare(&restored, &["ledger", "verify"]);
    assert!(l.status.success(), "{}", text(&l));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let open = |p: std::path::PathBuf| async move {
            ketcare_store::open(&format!("sqlite://{}?mode=rw", p.display()))
                .await
                .unwrap()
        };
        let a = open(file.clone()).await;
        let b = open(restored.join("ketcare.db")).await;
        for table in ["patients", "audit_log", "ops_ledger", "session_vitals"] {
            assert_eq!(
                a.count(table).await.unwrap(),
                b.count(table).await.unwrap(),
                "{table}"
            );
        }
        assert_eq!(
            a.chain_head(ketcare_store::Chain::Audit).await.unwrap(),
            b.chain_head(ketcare_store::Chain::Audit).await.unwrap()
        );
        assert!(a.count("session_vitals").await.unwrap() > 0);
    });
    let _ = std::fs::remove_dir_all(&root);
}
