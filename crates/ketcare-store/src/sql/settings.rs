//! Site settings versions, settings proposals awaiting a second administrator, and the site's
//! protocol files.

use super::*;
use crate::status::ProposalState;

/// A `settings_proposals` row as stored.
#[derive(sqlx::FromRow)]
struct ProposalRow {
    id: i64,
    body: String,
    reason: String,
    state: ProposalState,
    proposed_by: String,
    decided_by: Option<String>,
    created_at: String,
}

impl From<ProposalRow> for SettingsProposal {
    fn from(r: ProposalRow) -> Self {
        SettingsProposal {
            id: r.id,
            body: r.body,
            reason: r.reason,
            state: r.state,
            proposed_by: r.proposed_by,
            decided_by: r.decided_by,
            created_at: r.created_at,
        }
    }
}

const PROPOSAL_SELECT: &str =
    "SELECT id, body, reason, state, proposed_by, decided_by, created_at FROM settings_proposals";

/// Stores the next settings version: the organisation's (`site` None) or one site's own keys.
/// Versions share one sequence across the organisation and every site.
async fn insert_settings_version(
    tx: &mut Unit<'_>,
    site: Option<i64>,
    body: &str,
    reason: &str,
) -> Result<SiteSettingsVersion> {
    let actor = tx.actor;
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM site_settings")
        .fetch_one(tx.conn())
        .await?;
    let version: i64 = row.try_get::<i64, _>("v")? + 1;
    let saved = SiteSettingsVersion {
        version,
        body: body.to_owned(),
        set_by: actor.username.clone(),
        set_at: now_rfc3339(),
        reason: reason.trim().to_owned(),
    };
    sqlx::query("INSERT INTO site_settings (version, body, set_by, set_at, reason, site_id) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(saved.version)
        .bind(&saved.body)
        .bind(&saved.set_by)
        .bind(&saved.set_at)
        .bind(&saved.reason)
        .bind(site)
        .execute(tx.conn())
        .await?;
    let whose = site.map(|s| format!(" of site {s}")).unwrap_or_default();
    tx.audit(&AuditEvent::new(
        "settings.update",
        None,
        format!("version {version}{whose}: {}", saved.reason),
    ))
    .await?;
    Ok(saved)
}
/// A `site_settings` row as stored.
#[derive(sqlx::FromRow)]
struct SettingsRow {
    version: i64,
    body: String,
    set_by: String,
    set_at: String,
    reason: String,
}

impl From<SettingsRow> for SiteSettingsVersion {
    fn from(r: SettingsRow) -> Self {
        SiteSettingsVersion {
            version: r.version,
            body: r.body,
            set_by: r.set_by,
            set_at: r.set_at,
            reason: r.reason,
        }
    }
}

/// A `site_protocols` row as stored.
#[derive(sqlx::FromRow)]
struct ProtocolRow {
    id: i64,
    file_name: String,
    body: String,
    added_by: String,
    added_at: String,
    site_id: Option<i64>,
}

impl From<ProtocolRow> for SiteProtocol {
    fn from(r: ProtocolRow) -> Self {
        SiteProtocol {
            id: r.id,
            file_name: r.file_name,
            body: r.body,
            added_by: r.added_by,
            added_at: r.added_at,
            site_id: r.site_id,
        }
    }
}

impl SqlStore {
    pub(crate) async fn site_settings(&self) -> Result<Option<SiteSettingsVersion>> {
        Ok(sqlx::query_as::<_, SettingsRow>("SELECT version, body, set_by, set_at, reason FROM site_settings WHERE site_id IS NULL ORDER BY version DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .map(SiteSettingsVersion::from))
    }

    pub(crate) async fn save_site_settings(
        &self,
        actor: &Actor,
        body: &str,
        reason: &str,
    ) -> Result<SiteSettingsVersion> {
        self.save_settings_version(actor, None, body, reason).await
    }

    /// Stores the next version: the organisation's (`site` None) or one site's own keys, whose
    /// site must exist and be one of the actor's (another answers not found). A reason is
    /// required.
    async fn save_settings_version(
        &self,
        actor: &Actor,
        site: Option<i64>,
        body: &str,
        reason: &str,
    ) -> Result<SiteSettingsVersion> {
        require(actor, Permission::SiteSettingsWrite)?;
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "reason",
                "say why the settings change",
            )));
        }
        let mut tx = self.unit(actor).await?;
        if let Some(site) = site {
            let known: Option<i64> = sqlx::query_scalar("SELECT id FROM sites WHERE id = $1")
                .bind(site)
                .fetch_optional(&mut **tx)
                .await?;
            if known.is_none() {
                return Err(StoreError::NotFound {
                    what: format!("site {site}"),
                });
            }
            crate::sites::check_site(&mut tx, actor, site, format!("site {site}")).await?;
        }
        let saved = insert_settings_version(&mut tx, site, body, reason).await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// The newest version a site set for itself (only the keys it sets), if it set any.
    pub(crate) async fn settings_of_site(&self, site: i64) -> Result<Option<SiteSettingsVersion>> {
        Ok(sqlx::query_as::<_, SettingsRow>(
            "SELECT version, body, set_by, set_at, reason FROM site_settings WHERE site_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(site)
        .fetch_optional(&self.pool)
        .await?
        .map(SiteSettingsVersion::from))
    }

    /// Stores the keys a site sets for itself as its next version. The site must be one of the
    /// actor's (another answers not found).
    pub(crate) async fn save_settings_of_site(
        &self,
        actor: &Actor,
        site: i64,
        body: &str,
        reason: &str,
    ) -> Result<SiteSettingsVersion> {
        self.save_settings_version(actor, Some(site), body, reason)
            .await
    }

    pub(crate) async fn propose_settings_change(
        &self,
        actor: &Actor,
        body: &str,
        reason: &str,
    ) -> Result<SettingsProposal> {
        require(actor, Permission::SiteSettingsWrite)?;
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "reason",
                "say why the limit changes",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let row = sqlx::query(
            "INSERT INTO settings_proposals (body, reason, state, proposed_by, created_at) VALUES ($1, $2, 'pending', $3, $4) RETURNING id",
        )
        .bind(body)
        .bind(reason.trim())
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        tx.audit(&AuditEvent::new(
            "settings.propose",
            None,
            format!("proposal {id}: {}", reason.trim()),
        ))
        .await?;
        let p: SettingsProposal = sqlx::query_as::<_, ProposalRow>(sqlx::AssertSqlSafe(format!(
            "{PROPOSAL_SELECT} WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .into();
        tx.commit().await?;
        Ok(p)
    }

    pub(crate) async fn settings_proposals(&self) -> Result<Vec<SettingsProposal>> {
        Ok(
            sqlx::query_as::<_, ProposalRow>(sqlx::AssertSqlSafe(format!(
                "{PROPOSAL_SELECT} ORDER BY id DESC"
            )))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(SettingsProposal::from)
            .collect(),
        )
    }

    pub(crate) async fn settings_proposal(&self, id: i64) -> Result<SettingsProposal> {
        sqlx::query_as::<_, ProposalRow>(sqlx::AssertSqlSafe(format!(
            "{PROPOSAL_SELECT} WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(SettingsProposal::from)
        .ok_or_else(|| StoreError::NotFound {
            what: format!("settings proposal {id}"),
        })
    }

    pub(crate) async fn approve_settings_change(
        &self,
        actor: &Actor,
        id: i64,
        new_settings: &str,
    ) -> Result<SiteSettingsVersion> {
        let mut tx = self.write(actor, Permission::SiteSettingsWrite).await?;
        let p = sqlx::query_as::<_, ProposalRow>(sqlx::AssertSqlSafe(format!(
            "{PROPOSAL_SELECT} WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(SettingsProposal::from)
        .ok_or_else(|| StoreError::NotFound {
            what: format!("settings proposal {id}"),
        })?;
        if p.state != ProposalState::Pending {
            return Err(StoreError::Conflict(format!(
                "proposal {id} is already {}",
                p.state
            )));
        }
        if p.proposed_by == actor.username {
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "approver",
                "a second administrator, not the one who proposed it, must approve",
            )));
        }
        sqlx::query("UPDATE settings_proposals SET state = 'approved', decided_by = $1, decided_at = $2 WHERE id = $3")
            .bind(&actor.username)
            .bind(now_rfc3339())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new(
            "settings.approve",
            None,
            format!("proposal {id} by {}", p.proposed_by),
        ))
        .await?;
        let saved = insert_settings_version(
            &mut tx,
            None,
            new_settings,
            &format!("approved proposal {id}: {}", p.reason),
        )
        .await?;
        tx.commit().await?;
        Ok(saved)
    }

    pub(crate) async fn site_protocols(&self) -> Result<Vec<SiteProtocol>> {
        Ok(sqlx::query_as::<_, ProtocolRow>(
            "SELECT id, file_name, body, added_by, added_at, site_id FROM site_protocols s
             WHERE id = (SELECT MAX(id) FROM site_protocols t WHERE t.file_name = s.file_name) ORDER BY file_name",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(SiteProtocol::from)
        .collect())
    }

    pub(crate) async fn add_site_protocol(
        &self,
        actor: &Actor,
        site: Option<i64>,
        file_name: &str,
        body: &str,
    ) -> Result<SiteProtocol> {
        let mut tx = self.write(actor, Permission::SiteSettingsWrite).await?;
        if let Some(id) = site {
            // One of the actor's sites (an administrator of some sites adds to those only).
            crate::sites::acting_site(&mut tx, actor, Some(id)).await?;
        }
        // A file keeps its owner: a new version of the organisation's file is the
        // organisation's, and one site's stays that site's.
        let owner: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT site_id FROM site_protocols WHERE file_name = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(file_name)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(owner) = owner
            && owner != site
        {
            let whose = |s: Option<i64>| {
                s.map_or("the organisation's".to_owned(), |s| format!("site {s}'s"))
            };
            return Err(StoreError::Invalid(ketcare_core::FieldErrors::single(
                "site",
                format!(
                    "protocol file {file_name} is {}: a new version stays {}",
                    whose(owner),
                    whose(owner)
                ),
            )));
        }
        let added_at = now_rfc3339();
        let row = sqlx::query("INSERT INTO site_protocols (file_name, body, added_by, added_at, site_id) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(file_name)
            .bind(body)
            .bind(&actor.username)
            .bind(&added_at)
            .bind(site)
            .fetch_one(&mut **tx)
            .await?;
        let id: i64 = row.try_get("id")?;
        tx.audit(&AuditEvent::new(
            "protocol.add",
            None,
            format!(
                "{} protocol file {file_name} (row {id})",
                site.map_or("organisation".to_owned(), |s| format!("site {s}'s own"))
            ),
        ))
        .await?;
        tx.commit().await?;
        Ok(SiteProtocol {
            id,
            file_name: file_name.to_owned(),
            body: body.to_owned(),
            added_by: actor.username.clone(),
            added_at,
            site_id: site,
        })
    }
}

/// Whether a yes/no site setting is on in the newest settings version (unset or anything but 1
/// is no), read inside the unit that depends on it.
pub(crate) async fn setting_is_on(tx: &mut Unit<'_>, key: &str) -> Result<bool> {
    let body: Option<String> = sqlx::query_scalar(
        "SELECT body FROM site_settings WHERE site_id IS NULL ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(body
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v["values"][key].as_f64())
        == Some(1.0))
}
