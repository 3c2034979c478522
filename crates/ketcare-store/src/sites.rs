//! Sites: the organisation's clinics (each with its own DEA registration, chairs, bookings,
//! sessions and controlled-substance ledger), who works at which, and the scope every
//! site-owned query is narrowed to.
//!
//! The scope is loaded from the record (`users.all_sites`, `user_sites`) inside the unit that
//! uses it, never taken from the caller: a row of a site outside the actor's scope is answered
//! as not found (its existence is not disclosed), and a list shows only the scope's rows.
//! Patients belong to the organisation and are seen at sites, so the patient record itself is
//! not site-scoped. Local processes (`Actor::system`, the monitor feed) act for every site.

use crate::sql::{Tx, now_rfc3339};
use crate::{Result, SqlStore, StoreError, require};
use async_trait::async_trait;
use ketcare_core::audit::AuditEvent;
use ketcare_core::{Actor, FieldErrors, Permission, Role, UserId};

/// The site every existing row belongs to after migration 0027 (a single-site clinic's only one).
pub const DEFAULT_SITE: i64 = 1;

/// A site of the organisation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Site {
    pub id: i64,
    pub name: String,
    pub address: String,
    /// IANA time zone; empty: the server's own.
    pub time_zone: String,
    /// The site's DEA registration number (its ledger's registrant).
    pub dea_registration: String,
    pub created_by: String,
    pub created_at: String,
}

/// A site to create.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct NewSite {
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub time_zone: String,
    #[serde(default)]
    pub dea_registration: String,
}

/// The sites an actor may act at, as the record has them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "sites", rename_all = "snake_case")]
pub enum SiteScope {
    /// Every site, now and later.
    All,
    /// Exactly these sites (ascending ids).
    Only(Vec<i64>),
}

impl SiteScope {
    pub fn admits(&self, site: i64) -> bool {
        match self {
            SiteScope::All => true,
            SiteScope::Only(s) => s.binary_search(&site).is_ok(),
        }
    }

    /// Whether this scope and `other` share a site (two scopes of every site share the
    /// organisation's first, which a migration creates).
    pub fn meets(&self, other: &SiteScope) -> bool {
        match (self, other) {
            (SiteScope::All, SiteScope::All) => true,
            (SiteScope::All, SiteScope::Only(s)) | (SiteScope::Only(s), SiteScope::All) => {
                !s.is_empty()
            }
            (SiteScope::Only(a), SiteScope::Only(b)) => {
                a.iter().any(|x| b.binary_search(x).is_ok())
            }
        }
    }

    /// A SQL condition on `column` admitting exactly this scope's rows. The ids are integers
    /// read from the record, so they are written into the text.
    pub(crate) fn sql(&self, column: &str) -> String {
        match self {
            SiteScope::All => "1 = 1".into(),
            SiteScope::Only(s) if s.is_empty() => "1 = 0".into(),
            SiteScope::Only(s) => {
                let ids: Vec<String> = s.iter().map(i64::to_string).collect();
                format!("{column} IN ({})", ids.join(", "))
            }
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::Invalid(FieldErrors::single(field, message.into()))
}

/// The actor's scope, from the record: the sites where the account holds the role the actor
/// acts in (a nurse at one site who is the pharmacist at another reaches only the first site's
/// records as a nurse). A local process acts for every site.
pub(crate) async fn scope_of(tx: &mut Tx, actor: &Actor) -> Result<SiteScope> {
    match actor.user_id {
        None => Ok(SiteScope::All),
        Some(user) => match actor.role {
            Some(role) => scope_where(tx, user, |held| held == role).await,
            None => Ok(SiteScope::Only(Vec::new())),
        },
    }
}

/// Account `user`'s sites, from the record, whatever its role at each (none for an account that
/// does not exist).
pub(crate) async fn scope_of_user(tx: &mut Tx, user: UserId) -> Result<SiteScope> {
    scope_where(tx, user, |_| true).await
}

/// The sites where account `user` holds a role that grants `permission`, from the record.
pub(crate) async fn scope_permitting(
    tx: &mut Tx,
    user: UserId,
    permission: ketcare_core::Permission,
) -> Result<SiteScope> {
    scope_where(tx, user, |held| held.allows(permission)).await
}

fn parse_role(text: &str) -> Result<Role> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("role `{text}`")))
}

/// The sites where `user` holds a role that `fits`. An account of every site holds its own role
/// everywhere; a listed site's role is its own where one is set.
async fn scope_where(tx: &mut Tx, user: UserId, fits: impl Fn(Role) -> bool) -> Result<SiteScope> {
    let account: Option<(i64, String)> =
        sqlx::query_as("SELECT all_sites, role FROM users WHERE id = $1")
            .bind(user.get())
            .fetch_optional(&mut **tx)
            .await?;
    let Some((all, own)) = account else {
        return Ok(SiteScope::Only(Vec::new()));
    };
    let own = parse_role(&own)?;
    if all == 1 {
        return Ok(if fits(own) {
            SiteScope::All
        } else {
            SiteScope::Only(Vec::new())
        });
    }
    let rows: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT site_id, role FROM user_sites WHERE user_id = $1 ORDER BY site_id")
            .bind(user.get())
            .fetch_all(&mut **tx)
            .await?;
    let mut sites = Vec::with_capacity(rows.len());
    for (site, at) in rows {
        let held = match at {
            Some(r) => parse_role(&r)?,
            None => own,
        };
        if fits(held) {
            sites.push(site);
        }
    }
    Ok(SiteScope::Only(sites))
}

/// `user`'s name and role at `site`, as the record has it: the account's role for an account of
/// every site, the site's own where one is set; `None` when there is no such account, it is
/// disabled, or it does not work at `site` (a disabled account is booked, rostered and a witness
/// nowhere).
pub(crate) async fn role_at(tx: &mut Tx, user: i64, site: i64) -> Result<Option<(String, Role)>> {
    /// Name, account role, every site, the listed site, its own role there.
    type Row = (String, String, i64, Option<i64>, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT u.username, u.role, u.all_sites, us.site_id, us.role
         FROM users u LEFT JOIN user_sites us ON us.user_id = u.id AND us.site_id = $2
         WHERE u.id = $1 AND u.disabled_at IS NULL",
    )
    .bind(user)
    .bind(site)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((name, own, all, listed, at)) = row else {
        return Ok(None);
    };
    Ok(match (all, listed, at) {
        (1, _, _) | (_, Some(_), None) => Some((name, parse_role(&own)?)),
        (_, Some(_), Some(r)) => Some((name, parse_role(&r)?)),
        _ => None,
    })
}

/// The site whose own protocol `protocol` is (`None`: the organisation's), read from the newest
/// version of each site-owned protocol file in the record.
pub(crate) async fn protocol_owner(tx: &mut Tx, protocol: &str) -> Result<Option<i64>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT file_name, body, site_id FROM site_protocols s
         WHERE site_id IS NOT NULL AND id = (SELECT MAX(id) FROM site_protocols t WHERE t.file_name = s.file_name)",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (file, body, site) in rows {
        let table: toml::Table = toml::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("protocol file {file}: {e}")))?;
        if table.get("id").and_then(|v| v.as_str()) == Some(protocol) {
            return Ok(Some(site));
        }
    }
    Ok(None)
}

/// Refused, naming `field`, when `protocol` is one site's own and `site` is another: a local
/// protocol's sessions and courses are held at its site only, whichever edge asks.
pub(crate) async fn check_protocol_site(
    tx: &mut Tx,
    protocol: &str,
    site: i64,
    field: &str,
) -> Result<()> {
    match protocol_owner(tx, protocol).await? {
        Some(owner) if owner != site => Err(invalid(
            field,
            format!(
                "protocol {protocol} is site {owner}'s own: its sessions are held there, not at site {site}"
            ),
        )),
        _ => Ok(()),
    }
}

/// The zone an IANA name stands for; empty or unknown: the server's own (as the application
/// layer reads a site's zone).
pub(crate) fn zone_named(name: &str) -> jiff::tz::TimeZone {
    match name.trim() {
        "" => jiff::tz::TimeZone::system(),
        name => jiff::tz::TimeZone::get(name).unwrap_or_else(|_| jiff::tz::TimeZone::system()),
    }
}

/// The organisation's zone, from the record: its first site's (the server's where that site names
/// none), as the application layer's `zones::organisation` reads it.
pub(crate) async fn organisation_zone(tx: &mut Tx) -> Result<jiff::tz::TimeZone> {
    let first: Option<String> =
        sqlx::query_scalar("SELECT time_zone FROM sites ORDER BY id LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    Ok(first.map_or_else(jiff::tz::TimeZone::system, |z| zone_named(&z)))
}

/// What a change of an account's roles or sites does to the duties it leaves where it no longer
/// holds their role: a booking as the nurse of a session is refused (someone must give it
/// another nurse, cancel it, or record it attended or a no-show), naming `sites` where the
/// account would no longer work at the duty's site, else `role_field`; a roster entry as the
/// prescriber on site comes off the roster with the change — unless a booking that needs a
/// prescriber on site is covered by it and by no other entry, which is refused the same way.
/// Read inside the unit that makes the change, after it; a duty counts until its end has passed
/// at its site (its wall clock read in the site's zone). Returns the roster entries taken off,
/// for the change's audit record.
pub(crate) async fn check_duties(tx: &mut Tx, user: UserId, role_field: &str) -> Result<Vec<i64>> {
    // Rows ending from a day and a half ago (every zone's wall clock is within that of UTC),
    // then each end read in its site's zone.
    let now = jiff::Timestamp::now();
    let since = (now - jiff::SignedDuration::from_hours(36))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .datetime()
        .to_string();
    /// A duty's id, site, start and end as stored.
    type Duty = (i64, i64, String, String);
    let booked: Vec<Duty> = sqlx::query_as(
        "SELECT id, site_id, start_at, end_at FROM ops_bookings
         WHERE nurse_id = $1 AND status = 'booked' AND end_at > $2 ORDER BY start_at",
    )
    .bind(user.get())
    .bind(&since)
    .fetch_all(&mut **tx)
    .await?;
    let rostered: Vec<Duty> = sqlx::query_as(
        "SELECT id, site_id, start_at, end_at FROM ops_on_site WHERE user_id = $1 AND end_at > $2 ORDER BY start_at",
    )
    .bind(user.get())
    .bind(&since)
    .fetch_all(&mut **tx)
    .await?;
    if booked.is_empty() && rostered.is_empty() {
        return Ok(Vec::new());
    }
    let zones: std::collections::HashMap<i64, jiff::tz::TimeZone> =
        sqlx::query_as::<_, (i64, String)>("SELECT id, time_zone FROM sites")
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|(id, z)| (id, zone_named(&z)))
            .collect();
    let at = |site: i64, when: &str, field: &str| -> Result<jiff::Timestamp> {
        let wall: jiff::civil::DateTime =
            when.parse().map_err(|_| crate::sql::corrupt(field, when))?;
        let zone = zones
            .get(&site)
            .cloned()
            .unwrap_or_else(jiff::tz::TimeZone::system);
        Ok(wall
            .to_zoned(zone)
            .map_err(|_| crate::sql::corrupt(field, when))?
            .timestamp())
    };
    let mut held: std::collections::BTreeMap<i64, Option<Role>> = Default::default();
    let mut stranded = Vec::new();
    let mut left_site = false;
    // Each roster entry leaving: its site, whether the account leaves that site, the entry.
    let mut leaving: Vec<(i64, bool, ketcare_ops::schedule::OnSite)> = Vec::new();
    for (duties, needed) in [(booked, Role::Nurse), (rostered, Role::Prescriber)] {
        for (id, site, start, end) in duties {
            if at(site, &end, "end_at")? <= now {
                continue;
            }
            let role = match held.get(&site) {
                Some(r) => *r,
                None => {
                    let r = role_at(tx, user.get(), site).await?.map(|(_, r)| r);
                    held.insert(site, r);
                    r
                }
            };
            if role == Some(needed) {
                continue;
            }
            if needed == Role::Nurse {
                left_site |= role.is_none();
                stranded.push(format!(
                    "booking {id} at site {site} from {start} as its nurse (give it another nurse, cancel it, or record it attended or a no-show)"
                ));
            } else {
                let wall = |v: &str| {
                    v.parse::<jiff::civil::DateTime>()
                        .map_err(|_| crate::sql::corrupt("ops_on_site", v))
                };
                leaving.push((
                    site,
                    role.is_none(),
                    ketcare_ops::schedule::OnSite {
                        id,
                        user_id: user.get(),
                        start: wall(&start)?,
                        end: wall(&end)?,
                    },
                ));
            }
        }
    }
    let ids: Vec<i64> = leaving.iter().map(|(_, _, e)| e.id).collect();
    for (site, gone, entry) in &leaving {
        let needed = crate::ops::left_uncovered(tx, *site, entry, &ids).await?;
        if !needed.is_empty() {
            left_site |= *gone;
            stranded.push(format!(
                "on-site roster entry {} at site {site} from {} as the prescriber, the only one for {} (roster another prescriber first)",
                entry.id,
                entry.start,
                needed.join(", ")
            ));
        }
    }
    if !stranded.is_empty() {
        let n = stranded.len();
        stranded.truncate(5);
        return Err(invalid(
            if left_site { "sites" } else { role_field },
            format!(
                "the account would no longer hold the role for {n} {} not yet over: {}{}",
                if n == 1 { "duty" } else { "duties" },
                stranded.join("; "),
                if n > 5 { "; …" } else { "" },
            ),
        ));
    }
    for id in &ids {
        sqlx::query("DELETE FROM ops_on_site WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(ids)
}

/// The audit record's note of the roster entries a change took off (empty for none).
pub(crate) fn roster_note(ids: &[i64]) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!(
        "; {} on-site roster {} taken off: {}",
        ids.len(),
        if ids.len() == 1 { "entry" } else { "entries" },
        list.join(", ")
    )
}

/// Not found unless the actor's scope admits `site` (the row's own site, as stored).
pub(crate) async fn check_site(tx: &mut Tx, actor: &Actor, site: i64, what: String) -> Result<()> {
    if scope_of(tx, actor).await?.admits(site) {
        Ok(())
    } else {
        Err(StoreError::NotFound { what })
    }
}

/// The site a site-owned act without a record of its own (a chair, a receipt into stock, a
/// count) happens at: the one `named`, which must exist and be the actor's; else the actor's
/// only site. Refused, naming `site`, when the actor works at several and named none.
pub(crate) async fn acting_site(tx: &mut Tx, actor: &Actor, named: Option<i64>) -> Result<i64> {
    let scope = scope_of(tx, actor).await?;
    if let Some(id) = named {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM sites WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_none() || !scope.admits(id) {
            return Err(invalid("site", format!("no site {id} of yours")));
        }
        return Ok(id);
    }
    let candidates: Vec<i64> = match scope {
        SiteScope::All => {
            sqlx::query_scalar("SELECT id FROM sites ORDER BY id")
                .fetch_all(&mut **tx)
                .await?
        }
        SiteScope::Only(s) => s,
    };
    match candidates.as_slice() {
        [one] => Ok(*one),
        [] => Err(invalid("site", "you work at no site")),
        _ => Err(invalid(
            "site",
            "you work at several sites: name the site this is for",
        )),
    }
}

const SITE_COLUMNS: &str = "id, name, address, time_zone, dea_registration, created_by, created_at";

type SiteRow = (i64, String, String, String, String, String, String);

fn site_of(r: SiteRow) -> Site {
    Site {
        id: r.0,
        name: r.1,
        address: r.2,
        time_zone: r.3,
        dea_registration: r.4,
        created_by: r.5,
        created_at: r.6,
    }
}

/// A site's fields, trimmed and checked (name, IANA time zone, DEA registration with its check
/// digit), each refusal naming its field.
fn checked(site: &NewSite) -> Result<(&str, &str, String)> {
    let name = site.name.trim();
    let mut errors = FieldErrors::new();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push("name", "a site needs a name of 1–100 characters");
    }
    let zone = site.time_zone.trim();
    if !zone.is_empty() && jiff::tz::TimeZone::get(zone).is_err() {
        errors.push(
            "time_zone",
            format!("`{zone}` is not an IANA time zone (for example America/Chicago)"),
        );
    }
    // Kept in capitals, as the registration is written, so two copies compare equal.
    let dea = site.dea_registration.trim().to_uppercase();
    if !dea.is_empty() && !ketcare_ops::ledger::dea_registration_is_valid(&dea) {
        errors.push(
            "dea_registration",
            "a DEA registration is two letters and seven digits whose check digit matches",
        );
    }
    if errors.is_empty() {
        Ok((name, zone, dea))
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// One site as stored; not found when there is none.
async fn load_site(tx: &mut Tx, id: i64) -> Result<Site> {
    let row: Option<SiteRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SITE_COLUMNS} FROM sites WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(site_of).ok_or_else(|| StoreError::NotFound {
        what: format!("site {id}"),
    })
}

/// The store's part for sites (included in [`crate::Store`]).
#[async_trait]
pub trait SiteStore: Send + Sync {
    /// The sites in the actor's scope (every site for the administrator), by id.
    async fn sites(&self, actor: &Actor) -> Result<Vec<Site>>;
    /// The actor's own scope, from the record.
    async fn my_sites(&self, actor: &Actor) -> Result<SiteScope>;
    /// Every site of the organisation by id and name only (where stock may be sent: a
    /// pharmacist of one site sends to another she does not work at).
    async fn organisation_sites(&self) -> Result<Vec<(i64, String)>>;
    /// Every site's id and IANA time zone (empty: the server's own). Not patient data: what
    /// day a record's time falls on is read in its own site's zone, whoever reads it.
    async fn site_zones(&self) -> Result<Vec<(i64, String)>>;
    /// Every chair's id and the site it is at (where a booking's wall-clock times are read).
    async fn chair_sites(&self) -> Result<Vec<(i64, i64)>>;
    /// Creates a site with an empty ledger chain of its own (administrator; audited).
    async fn create_site(&self, actor: &Actor, site: &NewSite) -> Result<Site>;
    /// Changes a site's name, address, time zone or DEA registration (administrator; audited,
    /// a changed registration named in the audit record).
    async fn update_site(&self, actor: &Actor, id: i64, site: &NewSite) -> Result<Site>;
    /// An account's sites (administrator).
    async fn user_sites(&self, actor: &Actor, user: UserId) -> Result<SiteScope>;
    /// Sets an account's sites: every site, or exactly `sites` (administrator; audited). A site
    /// kept keeps its own role.
    async fn set_user_sites(&self, actor: &Actor, user: UserId, scope: &SiteScope) -> Result<()>;
    /// An account's own role at each listed site where it differs from the account's role
    /// (administrator).
    async fn user_site_roles(&self, actor: &Actor, user: UserId) -> Result<Vec<(i64, Role)>>;
    /// Sets an account's sites and, in the same unit, its role at each: `roles` names a role
    /// for some of the listed sites, every other site takes the account's own (administrator;
    /// audited). Refused, naming `roles`, for an account of every site or a site not listed.
    async fn assign_user_sites(
        &self,
        actor: &Actor,
        user: UserId,
        scope: &SiteScope,
        roles: &[(i64, Role)],
    ) -> Result<()>;
    /// The sites account `user` works at, each with the role it holds there, from the record
    /// (what the edge builds the acting user from: no permission is needed to read one's own).
    async fn sites_held(&self, user: UserId) -> Result<Vec<(Site, Role)>>;
    /// The site a session in `chair` is held at, as creating it would decide (the chair's own
    /// site, which must be the actor's; an unnamed chair: the actor's only site), refused
    /// naming `chair`.
    async fn chair_site(&self, actor: &Actor, chair: &str) -> Result<i64>;
}

#[async_trait]
impl SiteStore for SqlStore {
    async fn chair_site(&self, actor: &Actor, chair: &str) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let site = crate::sessions::session_site_for_chair(&mut tx, actor, chair).await?;
        tx.commit().await?;
        Ok(site)
    }

    async fn sites(&self, actor: &Actor) -> Result<Vec<Site>> {
        let mut tx = self.pool.begin().await?;
        let scope = scope_of(&mut tx, actor).await?;
        let rows: Vec<SiteRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SITE_COLUMNS} FROM sites WHERE {} ORDER BY id",
            scope.sql("id")
        )))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(site_of).collect())
    }

    async fn organisation_sites(&self) -> Result<Vec<(i64, String)>> {
        Ok(sqlx::query_as("SELECT id, name FROM sites ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn site_zones(&self) -> Result<Vec<(i64, String)>> {
        Ok(
            sqlx::query_as("SELECT id, time_zone FROM sites ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn chair_sites(&self) -> Result<Vec<(i64, i64)>> {
        Ok(
            sqlx::query_as("SELECT id, site_id FROM ops_chairs ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn my_sites(&self, actor: &Actor) -> Result<SiteScope> {
        let mut tx = self.pool.begin().await?;
        let scope = scope_of(&mut tx, actor).await?;
        tx.commit().await?;
        Ok(scope)
    }

    async fn create_site(&self, actor: &Actor, site: &NewSite) -> Result<Site> {
        require(actor, Permission::UserAdmin)?;
        let (name, zone, dea) = checked(site)?;
        let mut tx = self.unit(actor).await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM sites WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
        if taken.is_some() {
            return Err(invalid("name", "a site of that name exists"));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sites (name, address, time_zone, dea_registration, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(name)
        .bind(site.address.trim())
        .bind(zone)
        .bind(&dea)
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query("INSERT INTO ops_ledger_heads (site_id, seq, hash) VALUES ($1, 0, $2)")
            .bind(id)
            .bind(ketcare_core::audit::GENESIS)
            .execute(&mut **tx)
            .await?;
        tx.audit(&AuditEvent::new(
            "site.create",
            None,
            format!("site {id}: {name}"),
        ))
        .await?;
        let site = load_site(&mut tx, id).await?;
        tx.commit().await?;
        Ok(site)
    }

    async fn update_site(&self, actor: &Actor, id: i64, site: &NewSite) -> Result<Site> {
        require(actor, Permission::UserAdmin)?;
        let (name, zone, dea) = checked(site)?;
        let mut tx = self.unit(actor).await?;
        let before = load_site(&mut tx, id).await?;
        // An administrator of some sites changes only those.
        check_site(&mut tx, actor, id, format!("site {id}")).await?;
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT id FROM sites WHERE name = $1 AND id <> $2")
                .bind(name)
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
        if taken.is_some() {
            return Err(invalid("name", "a site of that name exists"));
        }
        sqlx::query(
            "UPDATE sites SET name = $1, address = $2, time_zone = $3, dea_registration = $4 WHERE id = $5",
        )
        .bind(name)
        .bind(site.address.trim())
        .bind(zone)
        .bind(&dea)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        let mut detail = format!("site {id}: {name}");
        if before.dea_registration != dea {
            detail.push_str(&format!(
                "; DEA registration {} → {}",
                if before.dea_registration.is_empty() {
                    "none"
                } else {
                    &before.dea_registration
                },
                if dea.is_empty() { "none" } else { &dea }
            ));
        }
        tx.audit(&AuditEvent::new("site.update", None, detail))
            .await?;
        let site = load_site(&mut tx, id).await?;
        tx.commit().await?;
        Ok(site)
    }

    async fn user_sites(&self, actor: &Actor, user: UserId) -> Result<SiteScope> {
        require(actor, Permission::UserAdmin)?;
        let mut tx = self.pool.begin().await?;
        let scope = scope_of_user(&mut tx, user).await?;
        tx.commit().await?;
        Ok(scope)
    }

    async fn set_user_sites(&self, actor: &Actor, user: UserId, scope: &SiteScope) -> Result<()> {
        self.assign(actor, user, scope, None).await
    }

    async fn assign_user_sites(
        &self,
        actor: &Actor,
        user: UserId,
        scope: &SiteScope,
        roles: &[(i64, Role)],
    ) -> Result<()> {
        self.assign(actor, user, scope, Some(roles)).await
    }

    async fn user_site_roles(&self, actor: &Actor, user: UserId) -> Result<Vec<(i64, Role)>> {
        require(actor, Permission::UserAdmin)?;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT site_id, role FROM user_sites WHERE user_id = $1 AND role IS NOT NULL ORDER BY site_id",
        )
        .bind(user.get())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(site, role)| Ok((site, parse_role(&role)?)))
            .collect()
    }

    async fn sites_held(&self, user: UserId) -> Result<Vec<(Site, Role)>> {
        let mut tx = self.pool.begin().await?;
        let account: Option<(i64, String)> =
            sqlx::query_as("SELECT all_sites, role FROM users WHERE id = $1")
                .bind(user.get())
                .fetch_optional(&mut *tx)
                .await?;
        let Some((all, own)) = account else {
            return Ok(Vec::new());
        };
        let own = parse_role(&own)?;
        let out = if all == 1 {
            let rows: Vec<SiteRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SITE_COLUMNS} FROM sites ORDER BY id"
            )))
            .fetch_all(&mut *tx)
            .await?;
            rows.into_iter().map(|r| (site_of(r), own)).collect()
        } else {
            type Row = (
                i64,
                String,
                String,
                String,
                String,
                String,
                String,
                Option<String>,
            );
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT s.id, s.name, s.address, s.time_zone, s.dea_registration, s.created_by,
                        s.created_at, us.role
                 FROM user_sites us JOIN sites s ON s.id = us.site_id
                 WHERE us.user_id = $1 ORDER BY s.id",
            )
            .bind(user.get())
            .fetch_all(&mut *tx)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, name, address, zone, dea, by, at, role) in rows {
                let role = match role {
                    Some(r) => parse_role(&r)?,
                    None => own,
                };
                out.push((site_of((id, name, address, zone, dea, by, at)), role));
            }
            out
        };
        tx.commit().await?;
        Ok(out)
    }
}

impl SqlStore {
    /// [`SiteStore::set_user_sites`] (`roles` `None`: each kept site keeps its role) and
    /// [`SiteStore::assign_user_sites`].
    async fn assign(
        &self,
        actor: &Actor,
        user: UserId,
        scope: &SiteScope,
        roles: Option<&[(i64, Role)]>,
    ) -> Result<()> {
        require(actor, Permission::UserAdmin)?;
        if actor.user_id == Some(user) {
            // An administrator neither widens their own reach nor gives themselves another role
            // at a site (the way round "another administrator changes your role").
            return Err(invalid(
                "user",
                "another administrator must change your own sites and roles",
            ));
        }
        let mut tx = self.unit(actor).await?;
        let own: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
            .bind(user.get())
            .fetch_optional(&mut **tx)
            .await?;
        let Some(own) = own else {
            return Err(StoreError::NotFound {
                what: format!("user {user}"),
            });
        };
        let own = parse_role(&own)?;
        // The roles each site is to have: those named, else (a plain change of sites) those the
        // record has; the account's own role is stored as none, so it follows a change of it.
        let before: Vec<(i64, String)> = sqlx::query_as(
            "SELECT site_id, role FROM user_sites WHERE user_id = $1 AND role IS NOT NULL",
        )
        .bind(user.get())
        .fetch_all(&mut **tx)
        .await?;
        let wanted: Vec<(i64, Role)> = match roles {
            Some(r) => r.to_vec(),
            None => before
                .iter()
                .map(|(site, role)| Ok((*site, parse_role(role)?)))
                .collect::<Result<_>>()?,
        };
        sqlx::query("DELETE FROM user_sites WHERE user_id = $1")
            .bind(user.get())
            .execute(&mut **tx)
            .await?;
        let detail = match scope {
            SiteScope::All => {
                if roles.is_some_and(|r| !r.is_empty()) {
                    return Err(invalid(
                        "roles",
                        "an account of every site holds its own role at each",
                    ));
                }
                sqlx::query("UPDATE users SET all_sites = 1 WHERE id = $1")
                    .bind(user.get())
                    .execute(&mut **tx)
                    .await?;
                format!("user {user}: every site")
            }
            SiteScope::Only(sites) => {
                if sites.is_empty() {
                    return Err(invalid("sites", "name at least one site"));
                }
                let mut sites = sites.clone();
                sites.sort_unstable();
                sites.dedup();
                if let Some(roles) = roles {
                    let mut seen = Vec::new();
                    for (site, _) in roles {
                        if sites.binary_search(site).is_err() {
                            return Err(invalid(
                                "roles",
                                format!("site {site} is not one of the account's sites"),
                            ));
                        }
                        if seen.contains(site) {
                            return Err(invalid("roles", format!("site {site} is named twice")));
                        }
                        seen.push(*site);
                    }
                }
                let mut differing = Vec::new();
                for s in &sites {
                    let found: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM sites WHERE id = $1")
                            .bind(*s)
                            .fetch_optional(&mut **tx)
                            .await?;
                    if found.is_none() {
                        return Err(invalid("sites", format!("no site {s}")));
                    }
                    let role = wanted
                        .iter()
                        .find(|(site, _)| site == s)
                        .map(|(_, r)| *r)
                        .filter(|r| *r != own);
                    if let Some(r) = role {
                        differing.push(format!("{r} at {s}"));
                    }
                    sqlx::query(
                        "INSERT INTO user_sites (user_id, site_id, role) VALUES ($1, $2, $3)",
                    )
                    .bind(user.get())
                    .bind(*s)
                    .bind(role.map(Role::as_str))
                    .execute(&mut **tx)
                    .await?;
                }
                sqlx::query("UPDATE users SET all_sites = 0 WHERE id = $1")
                    .bind(user.get())
                    .execute(&mut **tx)
                    .await?;
                let ids: Vec<String> = sites.iter().map(i64::to_string).collect();
                let mut detail = format!("user {user}: sites {}", ids.join(", "));
                if !differing.is_empty() {
                    detail.push_str(&format!(" ({})", differing.join(", ")));
                }
                detail
            }
        };
        let off = check_duties(
            &mut tx,
            user,
            if roles.is_some() { "roles" } else { "sites" },
        )
        .await?;
        let detail = format!("{detail}{}", roster_note(&off));
        tx.audit(&AuditEvent::new("user.sites", None, detail))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_admits_and_narrows() {
        assert!(SiteScope::All.admits(7));
        let s = SiteScope::Only(vec![1, 3]);
        assert!(s.admits(1) && s.admits(3) && !s.admits(2));
        assert_eq!(s.sql("site_id"), "site_id IN (1, 3)");
        assert_eq!(SiteScope::Only(vec![]).sql("site_id"), "1 = 0");
        assert_eq!(SiteScope::All.sql("site_id"), "1 = 1");
    }
}
