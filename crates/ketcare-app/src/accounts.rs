//! Account administration, the same for the users page, the API and the CLI: disable and
//! re-enable an account, clear its failed attempts, change its role, set a temporary password the
//! user must replace at their next sign-in, end its sessions and tokens, remove its second factor
//! (a lost phone) — and a user choosing their own new password. Each change is one audited unit
//! of work in the store.

use crate::error::{Error, Result};
use crate::password::{hash_password, random_token, verify_password};
use ketcare_core::{Actor, Role, UserId};
use ketcare_store::{AccountChange, Store, User};

/// What an administrator asks for, by name (`action` field of the page, the API and the CLI).
pub fn parse_change(action: &str, role: &str) -> Result<Option<AccountChange>> {
    Ok(Some(match action {
        "disable" => AccountChange::Disable,
        "enable" => AccountChange::Enable,
        "unlock" => AccountChange::Unlock,
        "end_sessions" => AccountChange::EndSessions,
        "reset_second_factor" => AccountChange::ResetSecondFactor,
        "role" => AccountChange::SetRole(Role::parse(role.trim()).ok_or_else(|| {
            Error::invalid(
                "role",
                format!("choose one of: {}", Role::ALL.map(Role::as_str).join(", ")),
            )
        })?),
        // A password reset is its own use case: it makes the temporary password.
        "reset_password" => return Ok(None),
        other => {
            return Err(Error::invalid(
                "action",
                format!(
                    "`{other}` is not an account action; use disable, enable, unlock, role, \
                     reset_password, end_sessions or reset_second_factor"
                ),
            ));
        }
    }))
}

/// Applies an administrator's change to account `id`.
pub async fn change(
    store: &dyn Store,
    actor: &Actor,
    id: UserId,
    change: &AccountChange,
) -> Result<User> {
    if *change == AccountChange::ResetSecondFactor && actor.user_id == Some(id) {
        // One's own second factor goes only with a current code (`second_factor::turn_off`),
        // so an open session alone cannot remove it.
        return Err(Error::invalid(
            "user",
            "turn your own second factor off on your account page, with a current code",
        ));
    }
    Ok(store.change_account(actor, id, change).await?)
}

/// Sets a random temporary password on account `id` and returns it (shown once to the
/// administrator); the user must choose their own at the next sign-in, and every session of the
/// account ends.
pub async fn reset_password(
    store: &dyn Store,
    actor: &Actor,
    id: UserId,
) -> Result<(User, String)> {
    // 16 hex digits (64 bits): long enough for the short time it lives, short enough to read out.
    let temporary = random_token()[..16].to_owned();
    let hash = hash_password(&temporary).map_err(|m| Error::invalid("password", m))?;
    let user = store
        .change_account(
            actor,
            id,
            &AccountChange::SetPassword {
                hash,
                temporary: true,
            },
        )
        .await?;
    Ok((user, temporary))
}

/// A signed-in user replaces their own password: the current one must be right, the new one
/// must differ from it and pass the same rule as every password (see `hash_password`).
pub async fn set_own_password(
    store: &dyn Store,
    actor: &Actor,
    current: &str,
    new: &str,
    repeat: &str,
) -> Result<User> {
    let id = actor
        .user_id
        .ok_or_else(|| Error::invalid("current", "sign in first"))?;
    let user = store
        .user_by_id(id)
        .await?
        .ok_or_else(|| Error::invalid("current", "no such account"))?;
    if !verify_password(current, &user.password_hash) {
        return Err(Error::invalid(
            "current",
            "the current password is not right",
        ));
    }
    if new != repeat {
        return Err(Error::invalid("repeat", "the two new passwords differ"));
    }
    if new == current {
        return Err(Error::invalid(
            "new",
            "choose a password other than the current one",
        ));
    }
    if new.to_lowercase().contains(&user.username.to_lowercase()) {
        return Err(Error::invalid(
            "new",
            "a password must not contain the username",
        ));
    }
    crate::password::check_strength(new, &[&user.username, &user.display_name])
        .map_err(|m| Error::invalid("new", m))?;
    let hash = hash_password(new).map_err(|m| Error::invalid("new", m))?;
    Ok(store
        .change_account(
            actor,
            id,
            &AccountChange::SetPassword {
                hash,
                temporary: false,
            },
        )
        .await?)
}
