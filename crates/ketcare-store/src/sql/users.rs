//! Staff accounts, sign-in (failed and successful logins, lock-out), browser sessions and API
//! tokens (both stored as hashes).

use super::*;

/// A `users` row as stored.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    role: String,
    password_hash: String,
    failed_logins: i64,
    locked_until: Option<i64>,
    disabled_at: Option<String>,
    must_change_password: i64,
    /// Read only to know whether there is one; the secret is dropped with the row.
    totp_secret: Option<String>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(User {
            id: UserId::new(r.id),
            username: r.username,
            display_name: r.display_name,
            role: Role::parse(&r.role).ok_or_else(|| corrupt("role", &r.role))?,
            password_hash: r.password_hash,
            failed_logins: r.failed_logins,
            locked_until: r.locked_until,
            disabled: r.disabled_at.is_some(),
            must_change_password: r.must_change_password != 0,
            second_factor: r.totp_secret.is_some(),
        })
    }
}

macro_rules! user_columns {
    () => {
        "id, username, display_name, role, password_hash, failed_logins, locked_until, disabled_at, must_change_password, totp_secret"
    };
}
/// An `api_tokens` row as listed (never the hash).
#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    user_id: i64,
    label: String,
    created_at: String,
    revoked_at: Option<String>,
    expires_at: Option<i64>,
}

impl From<TokenRow> for ApiToken {
    fn from(r: TokenRow) -> Self {
        ApiToken {
            id: ApiTokenId::new(r.id),
            user_id: UserId::new(r.user_id),
            label: r.label,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            expires_at: r.expires_at,
        }
    }
}

impl SqlStore {
    pub(crate) async fn create_user(&self, actor: &Actor, user: &NewUser) -> Result<User> {
        require(actor, Permission::UserAdmin)?;
        let mut errors = ketcare_core::FieldErrors::new();
        let username = user.username.trim();
        if username.is_empty()
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            errors.push("username", "use letters, digits, '.', '_' or '-'");
        }
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        let mut tx = self.unit(actor).await?;
        let exists = sqlx::query("SELECT id FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "username",
                "this username is taken",
            )));
        }
        let row = sqlx::query_as::<_, UserRow>(concat!(
            "INSERT INTO users (username, display_name, role, password_hash, failed_logins, created_at)
             VALUES ($1, $2, $3, $4, 0, $5) RETURNING ",
            user_columns!()
        ))
        .bind(username)
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        let created = User::try_from(row)?;
        tx.audit(&AuditEvent::new(
            "user.create",
            None,
            format!("user {} ({})", created.username, created.role),
        ))
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        .map(User::try_from)
        .transpose()
    }

    pub(crate) async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?
        .map(User::try_from)
        .transpose()
    }

    pub(crate) async fn list_users(&self, actor: &Actor) -> Result<Vec<User>> {
        require(actor, Permission::UserAdmin)?;
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(User::try_from)
        .collect()
    }

    pub(crate) async fn login_failed(
        &self,
        user: &User,
        address: &str,
        lock_until: Option<i64>,
    ) -> Result<()> {
        let actor = Actor::user(user.id, &user.username, user.role, address);
        let mut tx = self.unit(&actor).await?;
        sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1, locked_until = COALESCE($1, locked_until) WHERE id = $2",
        )
        .bind(lock_until)
        .bind(user.id.get())
        .execute(&mut **tx)
        .await?;
        let detail = match lock_until {
            Some(_) => "wrong password; account locked",
            None => "wrong password",
        };
        tx.audit(&AuditEvent::new("login.failed", None, detail))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn login_succeeded(&self, user: &User, address: &str) -> Result<()> {
        let actor = Actor::user(user.id, &user.username, user.role, address);
        let mut tx = self.unit(&actor).await?;
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user.id.get())
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new("login.ok", None, "")).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        // Not a unit of work: sign-in cookie bookkeeping, audited by the sign-in itself
        // (`login_succeeded`, `login.ok`); the sign-out that ends a session is audited.
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, user_id, csrf_token, created_at, expires_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(user.get())
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        // Expired sessions are of no use to anyone; drop them while we are here.
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn session(&self, token_hash: &str, now: i64) -> Result<Option<WebSession>> {
        let Some((user_id, csrf_token, expires_at, last_seen)) = sqlx::query_as::<_, (i64, String, i64, i64)>(
            "SELECT user_id, csrf_token, expires_at, last_seen FROM web_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let user = self.user_by_id(UserId::new(user_id)).await?;
        Ok(user.filter(|u| !u.disabled).map(|user| WebSession {
            user,
            csrf_token,
            expires_at,
            last_seen,
        }))
    }

    pub(crate) async fn touch_session(&self, token_hash: &str, now: i64) -> Result<()> {
        // Not a unit of work: the time of use, bookkeeping like the sign-in cookie.
        sqlx::query("UPDATE web_sessions SET last_seen = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn end_session(&self, token_hash: &str, actor: &Actor) -> Result<()> {
        let mut tx = self.unit(actor).await?;
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new("logout", None, "")).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn create_api_token(
        &self,
        actor: &Actor,
        user: UserId,
        token_hash: &str,
        label: &str,
        expires_at: Option<i64>,
    ) -> Result<ApiToken> {
        let mut tx = self.write(actor, Permission::UserAdmin).await?;
        let owner = sqlx::query("SELECT username FROM users WHERE id = $1")
            .bind(user.get())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("user {user}"),
            })?;
        let owner: String = owner.try_get("username")?;
        let created_at = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(user.get())
        .bind(token_hash)
        .bind(label)
        .bind(&created_at)
        .bind(expires_at)
        .fetch_one(&mut **tx)
        .await?;
        let id = ApiTokenId::new(row.try_get("id")?);
        tx.audit(&AuditEvent::new(
            "token.create",
            None,
            format!("token {id} for {owner}: {label}"),
        ))
        .await?;
        tx.commit().await?;
        Ok(ApiToken {
            id,
            user_id: user,
            label: label.to_owned(),
            created_at,
            revoked_at: None,
            expires_at,
        })
    }

    pub(crate) async fn api_token_user(&self, token_hash: &str, now: i64) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT user_id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(self
                .user_by_id(UserId::new(r.try_get("user_id")?))
                .await?
                .filter(|u| !u.disabled)),
            None => Ok(None),
        }
    }

    pub(crate) async fn change_account(
        &self,
        actor: &Actor,
        id: UserId,
        change: &AccountChange,
    ) -> Result<User> {
        // A user may change their own password and turn off their own second factor (the
        // application checks the current password or a current code first).
        let own = matches!(
            change,
            AccountChange::SetPassword { .. } | AccountChange::ResetSecondFactor
        ) && actor.user_id == Some(id);
        if !own {
            require(actor, Permission::UserAdmin)?;
        }
        if actor.user_id == Some(id)
            && matches!(change, AccountChange::Disable | AccountChange::SetRole(_))
        {
            // An administrator cannot lock themselves out or drop their own rights by mistake.
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "user",
                "another administrator must disable your account or change your role",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let detail = match change {
            AccountChange::Disable => {
                sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
                    .bind(now_rfc3339())
                    .bind(id.get())
                    .execute(&mut **tx)
                    .await?;
                end_sessions(&mut tx, id).await?;
                revoke_tokens(&mut tx, id).await?;
                format!("user {id}: disabled; sessions ended, tokens revoked")
            }
            AccountChange::Enable => {
                sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1")
                    .bind(id.get())
                    .execute(&mut **tx)
                    .await?;
                format!("user {id}: enabled")
            }
            AccountChange::Unlock => {
                sqlx::query(
                    "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1",
                )
                .bind(id.get())
                .execute(&mut **tx)
                .await?;
                format!("user {id}: unlocked")
            }
            AccountChange::SetRole(role) => {
                sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                    .bind(role.as_str())
                    .bind(id.get())
                    .execute(&mut **tx)
                    .await?;
                let off = crate::sites::check_duties(&mut tx, id, "role").await?;
                format!("user {id}: role {role}{}", crate::sites::roster_note(&off))
            }
            AccountChange::SetPassword { hash, temporary } => {
                sqlx::query(
                    "UPDATE users SET password_hash = $1, must_change_password = $2, failed_logins = 0, locked_until = NULL WHERE id = $3",
                )
                .bind(hash)
                .bind(i64::from(*temporary))
                .bind(id.get())
                .execute(&mut **tx)
                .await?;
                end_sessions(&mut tx, id).await?;
                if *temporary {
                    format!("user {id}: temporary password set; sessions ended")
                } else {
                    format!("user {id}: password changed; sessions ended")
                }
            }
            AccountChange::EndSessions => {
                end_sessions(&mut tx, id).await?;
                revoke_tokens(&mut tx, id).await?;
                format!("user {id}: sessions ended, tokens revoked")
            }
            AccountChange::ResetSecondFactor => {
                sqlx::query(
                    "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = 0 WHERE id = $1",
                )
                .bind(id.get())
                .execute(&mut **tx)
                .await?;
                sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(id.get())
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM sign_in_challenges WHERE user_id = $1")
                    .bind(id.get())
                    .execute(&mut **tx)
                    .await?;
                if actor.user_id == Some(id) {
                    format!("user {id}: second factor turned off by its owner")
                } else {
                    format!("user {id}: second factor reset")
                }
            }
        };
        let row = sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id.get())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("user {id}"),
        })?;
        tx.audit(&AuditEvent::new(change.action(), None, detail))
            .await?;
        tx.commit().await?;
        User::try_from(row)
    }

    pub(crate) async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>> {
        Ok(sqlx::query_as::<_, TokenRow>("SELECT id, user_id, label, created_at, revoked_at, expires_at FROM api_tokens WHERE user_id = $1 ORDER BY id")
            .bind(user.get())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(ApiToken::from)
            .collect())
    }

    pub(crate) async fn revoke_api_token(&self, actor: &Actor, id: ApiTokenId) -> Result<()> {
        let mut tx = self.write(actor, Permission::UserAdmin).await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_rfc3339())
        .bind(id.get())
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: format!("active API token {id}"),
            });
        }
        tx.audit(&AuditEvent::new(
            "token.revoke",
            None,
            format!("token {id}"),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A `users` row's second-factor columns.
#[derive(sqlx::FromRow)]
struct SecondFactorRow {
    totp_secret: Option<String>,
    totp_pending: Option<String>,
    totp_last_step: i64,
}

impl SqlStore {
    pub(crate) async fn second_factor(&self, id: UserId) -> Result<SecondFactorState> {
        let Some(row) = sqlx::query_as::<_, SecondFactorRow>(
            "SELECT totp_secret, totp_pending, totp_last_step FROM users WHERE id = $1",
        )
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Err(StoreError::NotFound {
                what: format!("user {id}"),
            });
        };
        let (left,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(id.get())
        .fetch_one(&self.pool)
        .await?;
        Ok(SecondFactorState {
            secret: row.totp_secret.map(SecretText::new),
            pending: row.totp_pending.map(SecretText::new),
            last_step: row.totp_last_step,
            recovery_codes_left: left,
        })
    }

    pub(crate) async fn begin_second_factor(
        &self,
        actor: &Actor,
        secret: &SecretText,
    ) -> Result<()> {
        let id = own_account(actor)?;
        let mut tx = self.unit(actor).await?;
        sqlx::query("UPDATE users SET totp_pending = $1 WHERE id = $2")
            .bind(secret.expose())
            .bind(id.get())
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new(
            "user.second_factor_begin",
            None,
            format!("user {id}"),
        ))
        .await?;
        tx.commit().await
    }

    pub(crate) async fn confirm_second_factor(
        &self,
        actor: &Actor,
        secret: &SecretText,
        step: i64,
        recovery_code_hashes: &[String],
    ) -> Result<User> {
        let id = own_account(actor)?;
        let mut tx = self.unit(actor).await?;
        let done = sqlx::query(
            "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $1
             WHERE id = $2 AND totp_pending = $3",
        )
        .bind(step)
        .bind(id.get())
        .bind(secret.expose())
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "the set-up changed (begun again elsewhere?): start again".into(),
            ));
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(id.get())
            .execute(&mut **tx)
            .await?;
        for hash in recovery_code_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(id.get())
                .bind(hash)
                .execute(&mut **tx)
                .await?;
        }
        let row = sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id.get())
        .fetch_one(&mut **tx)
        .await?;
        tx.audit(&AuditEvent::new(
            "user.second_factor_on",
            None,
            format!("user {id}"),
        ))
        .await?;
        tx.commit().await?;
        User::try_from(row)
    }

    pub(crate) async fn second_factor_sign_in(
        &self,
        user: &User,
        address: &str,
        proof: &SecondFactorProof,
    ) -> Result<bool> {
        let actor = Actor::user(user.id, &user.username, user.role, address);
        let mut tx = self.unit(&actor).await?;
        // Each update names the state it expects, so two requests racing with one code cannot
        // both succeed: the second finds the step already taken or the code already used.
        let accepted = match proof {
            SecondFactorProof::Step(step) => {
                sqlx::query(
                    "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_secret IS NOT NULL AND totp_last_step < $1",
                )
                .bind(step)
                .bind(user.id.get())
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1
            }
            SecondFactorProof::RecoveryCodeHash(hash) => {
                sqlx::query(
                    "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
                )
                .bind(now_rfc3339())
                .bind(user.id.get())
                .bind(hash)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1
            }
            SecondFactorProof::Wrong => false,
        };
        let event = match (accepted, proof) {
            (true, SecondFactorProof::RecoveryCodeHash(_)) => {
                AuditEvent::new("login.second_factor", None, "recovery code used")
            }
            (true, _) => AuditEvent::new("login.second_factor", None, "code"),
            (false, _) => {
                sqlx::query("UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1")
                    .bind(user.id.get())
                    .execute(&mut **tx)
                    .await?;
                AuditEvent::new("login.second_factor_failed", None, "wrong or used code")
            }
        };
        tx.audit(&event).await?;
        tx.commit().await?;
        Ok(accepted)
    }

    pub(crate) async fn create_sign_in_challenge(
        &self,
        user: &User,
        address: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<()> {
        let actor = Actor::user(user.id, &user.username, user.role, address);
        let mut tx = self.unit(&actor).await?;
        sqlx::query(
            "INSERT INTO sign_in_challenges (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(user.id.get())
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
        tx.audit(&AuditEvent::new(
            "login.password_ok",
            None,
            "second factor asked",
        ))
        .await?;
        tx.commit().await
    }

    pub(crate) async fn sign_in_challenge(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<User>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT user_id FROM sign_in_challenges WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some((id,)) => Ok(self
                .user_by_id(UserId::new(id))
                .await?
                .filter(|u| !u.disabled && u.second_factor)),
            None => Ok(None),
        }
    }

    pub(crate) async fn end_sign_in_challenge(&self, token_hash: &str, now: i64) -> Result<()> {
        // Not a unit of work: sign-in bookkeeping like `create_session`; the sign-in it
        // completes is audited (`login.second_factor`, `login.ok`).
        sqlx::query("DELETE FROM sign_in_challenges WHERE token_hash = $1 OR expires_at <= $2")
            .bind(token_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The actor's own account: setting up a second factor is for oneself only.
fn own_account(actor: &Actor) -> Result<UserId> {
    actor.user_id.ok_or_else(|| {
        StoreError::Invalid(ketcare_core::FieldErrors::single(
            "user",
            "a second factor is set up by a signed-in user for their own account",
        ))
    })
}

/// Ends every browser session of account `id` (within the caller's unit of work).
async fn end_sessions(tx: &mut Unit<'_>, id: UserId) -> Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
        .bind(id.get())
        .execute(&mut ***tx)
        .await?;
    Ok(())
}

/// Revokes every API token of account `id` (within the caller's unit of work).
async fn revoke_tokens(tx: &mut Unit<'_>, id: UserId) -> Result<()> {
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now_rfc3339())
        .bind(id.get())
        .execute(&mut ***tx)
        .await?;
    Ok(())
}
