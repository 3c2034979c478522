//! The `ketcare` command end to end on an embedded SQLite file: users, tokens, and an audit chain
//! that `ketcare audit verify` checks and, after tampering, names the first broken record.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn ketcare(data: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketcare"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("KETCARE_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn users_tokens_and_audit_verify() {
    let data = std::env::temp_dir().join(format!("ketcare-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);

    let o = ketcare(
        &data,
        &["user", "add", "--username", "nina", "--role", "nurse"],
        "a long enough password\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = ketcare(
        &data,
        &["user", "add", "--username", "x", "--role", "surgeon"],
        "a long enough password\n",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown role `surgeon`"), "{}", text(&o));
    let o = ketcare(
        &data,
        &["user", "add", "--username", "y", "--role", "nurse"],
        "short\n",
    );
    assert!(!o.status.success());

    let o = ketcare(&data, &["token", "create", "--user", "nina"], "");
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(token.starts_with("kc_"));
    let o = ketcare(&data, &["token", "list", "--user", "nina"], "");
    assert!(
        text(&o).contains("active") && !text(&o).contains(&token),
        "secrets are never listed"
    );
    let o = ketcare(&data, &["token", "revoke", "--id", "1"], "");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&ketcare(&data, &["token", "list", "--user", "nina"], "")).contains("revoked"));

    let o = ketcare(&data, &["audit", "verify"], "");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("audit chain intact: 3 records"),
        "{}",
        text(&o)
    );

    // Someone edits the log directly in the database file.
    let url = format!("sqlite://{}?mode=rw", data.join("ketcare.db").display());
    let store = ketcare_store::open(&url).await.unwrap();
    store
        .execute_raw("DROP TRIGGER audit_log_no_update")
        .await
        .unwrap();
    store
        .execute_raw("UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 2")
        .await
        .unwrap();
    let o = ketcare(&data, &["audit", "verify"], "");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("audit chain broken at record 2"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&data).ok();
}
