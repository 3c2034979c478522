//! Running the `ketcare` binary from the tests.

use std::process::{Command, Output};

/// Runs `ketcare --data DATA ARGS…` (never on a database named by the environment).
pub fn ketcare(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ketcare"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("KETCARE_DATABASE_URL")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// Standard output and error together, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
