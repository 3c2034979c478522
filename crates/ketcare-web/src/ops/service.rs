//! The operations use cases live in [`ketcare_app::ops`] (re-exported here); only the witness
//! sign-off needs something of the web's own: the sign-in lock-out settings and the clock.

use crate::AppState;
use crate::error::AppError;
use ketcare_core::Actor;
use ketcare_ops::ledger::Witness;

pub use ketcare_app::ops::*;

/// A witness signs with their own username and password ([`ketcare_app::ops::witness`]); a
/// wrong password counts towards the site's sign-in lock-out.
pub async fn witness(
    s: &AppState,
    actor: &Actor,
    field: &str,
    username: &str,
    password: &str,
) -> Result<Witness, AppError> {
    Ok(ketcare_app::ops::witness(
        s.store.as_ref(),
        actor,
        field,
        username,
        password,
        s.now(),
        Lockout {
            attempts: s.config.lockout_attempts,
            minutes: s.config.lockout_minutes,
        },
    )
    .await?)
}
