//! SMART Backend Services clients (migration 0015): registration, disabling, the grant of an
//! access token (the assertion's `jti` recorded in the same statement that refuses a replay) and
//! the look-up of a granted token. Tokens are stored as hashes only.

use super::*;
use crate::{FhirClient, FhirGrant, GrantOutcome, NewFhirClient};

/// A `fhir_clients` row with its account's username.
#[derive(sqlx::FromRow)]
struct ClientRow {
    client_id: String,
    name: String,
    user_id: i64,
    username: String,
    jwks: String,
    scopes: String,
    created_at: String,
    disabled_at: Option<String>,
}

impl From<ClientRow> for FhirClient {
    fn from(r: ClientRow) -> Self {
        FhirClient {
            client_id: r.client_id,
            name: r.name,
            user_id: UserId::new(r.user_id),
            username: r.username,
            jwks: r.jwks,
            scopes: r.scopes,
            created_at: r.created_at,
            disabled: r.disabled_at.is_some(),
        }
    }
}

const CLIENT_SELECT: &str = "SELECT c.client_id, c.name, c.user_id, u.username, c.jwks, c.scopes, c.created_at, c.disabled_at
     FROM fhir_clients c JOIN users u ON u.id = c.user_id";

impl SqlStore {
    pub(crate) async fn register_fhir_client(
        &self,
        actor: &Actor,
        client: &NewFhirClient,
    ) -> Result<FhirClient> {
        let mut tx = self.write(actor, Permission::UserAdmin).await?;
        let exists = sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(client.user_id.get())
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "user",
                format!("there is no account {}", client.user_id),
            )));
        }
        sqlx::query(
            "INSERT INTO fhir_clients (client_id, name, user_id, jwks, scopes, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&client.client_id)
        .bind(&client.name)
        .bind(client.user_id.get())
        .bind(&client.jwks)
        .bind(&client.scopes)
        .bind(now_rfc3339())
        .execute(&mut **tx)
        .await?;
        let created = fetch_client(tx.conn(), &client.client_id).await?;
        tx.audit(&AuditEvent::new(
            "fhir_client.register",
            None,
            format!(
                "backend client {} ({}) acting as {}, scopes {}",
                created.client_id, created.name, created.username, created.scopes
            ),
        ))
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn list_fhir_clients(&self, actor: &Actor) -> Result<Vec<FhirClient>> {
        require(actor, Permission::UserAdmin)?;
        Ok(sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(format!(
            "{CLIENT_SELECT} ORDER BY c.created_at, c.client_id"
        )))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(FhirClient::from)
        .collect())
    }

    pub(crate) async fn fhir_client(&self, client_id: &str) -> Result<Option<FhirClient>> {
        find_client(&mut *self.pool.acquire().await?, client_id).await
    }

    pub(crate) async fn disable_fhir_client(
        &self,
        actor: &Actor,
        client_id: &str,
    ) -> Result<FhirClient> {
        let mut tx = self.write(actor, Permission::UserAdmin).await?;
        let done = sqlx::query(
            "UPDATE fhir_clients SET disabled_at = $1 WHERE client_id = $2 AND disabled_at IS NULL",
        )
        .bind(now_rfc3339())
        .bind(client_id)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: format!("enabled backend client {client_id}"),
            });
        }
        // Its tokens end with it.
        sqlx::query("DELETE FROM fhir_access_tokens WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut **tx)
            .await?;
        let client = fetch_client(tx.conn(), client_id).await?;
        tx.audit(&AuditEvent::new(
            "fhir_client.disable",
            None,
            format!("backend client {client_id} ({})", client.name),
        ))
        .await?;
        tx.commit().await?;
        Ok(client)
    }

    pub(crate) async fn grant_fhir_token(
        &self,
        actor: &Actor,
        grant: &FhirGrant<'_>,
    ) -> Result<GrantOutcome> {
        let mut tx = self.unit(actor).await?;
        // What has expired is no longer needed: an assertion past its `exp` is refused anyway.
        sqlx::query("DELETE FROM fhir_client_jtis WHERE expires_at <= $1")
            .bind(grant.now)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM fhir_access_tokens WHERE expires_at <= $1")
            .bind(grant.now)
            .execute(&mut **tx)
            .await?;
        let client = fetch_client(tx.conn(), grant.client_id).await?;
        let outcome = if client.disabled {
            GrantOutcome::Disabled
        } else {
            // The primary key (client_id, jti) makes the check and the insert one statement, so
            // two racing requests with one assertion cannot both pass.
            let fresh = sqlx::query(
                "INSERT INTO fhir_client_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (client_id, jti) DO NOTHING",
            )
            .bind(grant.client_id)
            .bind(grant.jti)
            .bind(grant.jti_expires_at)
            .execute(&mut **tx)
            .await?;
            if fresh.rows_affected() == 0 {
                GrantOutcome::Replayed
            } else {
                sqlx::query(
                    "INSERT INTO fhir_access_tokens (token_hash, client_id, scopes, expires_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(grant.token_hash)
                .bind(grant.client_id)
                .bind(grant.scopes)
                .bind(grant.expires_at)
                .execute(&mut **tx)
                .await?;
                GrantOutcome::Granted
            }
        };
        let (action, detail) = match outcome {
            GrantOutcome::Granted => (
                "fhir.token.grant",
                format!(
                    "backend client {}: scopes {}",
                    grant.client_id, grant.scopes
                ),
            ),
            GrantOutcome::Replayed => (
                "fhir.token.refuse",
                format!(
                    "backend client {}: invalid_client (jti: this assertion was used before)",
                    grant.client_id
                ),
            ),
            GrantOutcome::Disabled => (
                "fhir.token.refuse",
                format!(
                    "backend client {}: invalid_client (disabled)",
                    grant.client_id
                ),
            ),
        };
        tx.audit(&AuditEvent::new(action, None, detail)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    pub(crate) async fn fhir_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(User, String)>> {
        let row = sqlx::query(
            "SELECT c.user_id, t.scopes FROM fhir_access_tokens t
               JOIN fhir_clients c ON c.client_id = t.client_id
             WHERE t.token_hash = $1 AND t.expires_at > $2 AND c.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let scopes: String = row.try_get("scopes")?;
        Ok(self
            .user_by_id(UserId::new(row.try_get("user_id")?))
            .await?
            .filter(|u| !u.disabled)
            .map(|u| (u, scopes)))
    }
}

async fn find_client(
    conn: &mut sqlx::AnyConnection,
    client_id: &str,
) -> Result<Option<FhirClient>> {
    Ok(sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(format!(
        "{CLIENT_SELECT} WHERE c.client_id = $1"
    )))
    .bind(client_id)
    .fetch_optional(conn)
    .await?
    .map(FhirClient::from))
}

async fn fetch_client(conn: &mut sqlx::AnyConnection, client_id: &str) -> Result<FhirClient> {
    find_client(conn, client_id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("backend client {client_id}"),
        })
}
