//! Sites over HTTP: the caller's sites, an administrator's new site, who works where, and the
//! settings a site sets for itself (API and page). The store and the application layer decide
//! (scope from the record, the administrator's right, which keys a site may set); this is the
//! thin edge.

use crate::AppState;
use crate::api::{ApiPath, JsonBody};
use crate::auth::Principal;
use crate::clinical_pages::{SettingRow, field, form_pairs, number, setting_row};
use crate::error::{AppError, ErrorBody, PageError};
use crate::pages::{Nav, PagePath, render_html};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ketcare_app::clinical::{SettingsAtSite, settings_at};
use ketcare_clinical::SiteSettings;
use ketcare_store::{NewSite, Site, SiteScope};
use serde::{Deserialize, Serialize};

/// The caller's sites and the one they work at now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MySites {
    pub sites: Vec<Site>,
    /// The site taken when a request names none (the `X-Ketcare-Site` header's, or the only one).
    pub working_site: Option<i64>,
    /// The role the caller acts in: the one held at the working site (an account may hold
    /// another at another site; `sites` are those where it holds this one).
    pub role: ketcare_core::Role,
}

/// The sites the caller works at (every site for an account of all sites).
#[utoipa::path(get, path = "/api/v1/sites", responses(
    (status = 200, description = "the caller's sites", body = MySites), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn my_sites(State(s): State<AppState>, p: Principal) -> Result<Json<MySites>, AppError> {
    Ok(Json(MySites {
        sites: s.store.sites(&p.actor).await?,
        working_site: p.site,
        role: p.user.role,
    }))
}

/// Creates a site with its own empty ledger chain (administrator).
#[utoipa::path(post, path = "/api/v1/sites", request_body = NewSite, responses(
    (status = 201, description = "the new site", body = Site), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_site(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(site): JsonBody<NewSite>,
) -> Result<(StatusCode, Json<Site>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(s.store.create_site(&p.actor, &site).await?),
    ))
}

/// Changes a site's name, address, time zone or DEA registration (administrator; audited). A
/// site's registration is what its inventories and transfers carry.
#[utoipa::path(put, path = "/api/v1/sites/{id}", params(("id" = i64, Path)), request_body = NewSite, responses(
    (status = 200, description = "the site as changed", body = Site), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_site(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(site): JsonBody<NewSite>,
) -> Result<Json<Site>, AppError> {
    Ok(Json(s.store.update_site(&p.actor, id, &site).await?))
}

/// Where an account works: every site (`all`), or exactly `sites`, with its own role at some.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
pub struct UserSites {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub sites: Vec<i64>,
    /// The account's role at some of `sites` where it is not the account's own (a nurse here,
    /// the pharmacist there). Left out of a change: each site kept keeps its role; given: these
    /// roles, every other site the account's own. An account of every site holds its own
    /// role everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<SiteRole>>,
}

/// A role held at one site.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteRole {
    pub site: i64,
    pub role: ketcare_core::Role,
}

/// Sets the sites an account works at, and its role at each (administrator; audited).
#[utoipa::path(put, path = "/api/v1/users/{id}/sites", params(("id" = i64, Path)), request_body = UserSites, responses(
    (status = 200, description = "the account's sites", body = UserSites), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_user_sites(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(body): JsonBody<UserSites>,
) -> Result<Json<UserSites>, AppError> {
    let user = ketcare_core::UserId::new(id);
    let scope = match (body.all, body.sites.is_empty()) {
        (true, true) => SiteScope::All,
        (false, false) => SiteScope::Only(body.sites),
        (true, false) => {
            return Err(AppError::invalid(
                "sites",
                "give `all: true` or a list of sites, not both",
            ));
        }
        (false, true) => return Err(AppError::invalid("sites", "name at least one site")),
    };
    match body.roles {
        None => s.store.set_user_sites(&p.actor, user, &scope).await?,
        Some(roles) => {
            let roles: Vec<(i64, ketcare_core::Role)> =
                roles.into_iter().map(|r| (r.site, r.role)).collect();
            s.store
                .assign_user_sites(&p.actor, user, &scope, &roles)
                .await?
        }
    }
    let (all, sites) = match s.store.user_sites(&p.actor, user).await? {
        SiteScope::All => (true, Vec::new()),
        SiteScope::Only(sites) => (false, sites),
    };
    let roles = s
        .store
        .user_site_roles(&p.actor, user)
        .await?
        .into_iter()
        .map(|(site, role)| SiteRole { site, role })
        .collect();
    Ok(Json(UserSites {
        all,
        sites,
        roles: Some(roles),
    }))
}

/// A site that is not the caller's answers 404, as if it did not exist.
fn own_site(p: &Principal, site: i64) -> Result<(), AppError> {
    if p.sites.iter().any(|(id, _)| *id == site) {
        Ok(())
    } else {
        Err(AppError::NotFound(format!("site {site}")))
    }
}

/// The settings in force at a site, and the keys a site may set for itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SiteSettingsView {
    #[serde(flatten)]
    pub at: SettingsAtSite,
    /// Every key a site may set for itself: those read only for one site's sessions, bookings
    /// and bills. Any other key is the organisation's.
    pub per_site_keys: Vec<String>,
}

async fn view(s: &AppState, site: i64) -> Result<SiteSettingsView, AppError> {
    let registry = ketcare_app::settings_registry::load(s.store.as_ref(), &s.library()).await?;
    Ok(SiteSettingsView {
        at: settings_at(s.store.as_ref(), site).await?,
        per_site_keys: registry
            .settings
            .into_iter()
            .filter(|spec| spec.per_site)
            .map(|spec| spec.key)
            .collect(),
    })
}

/// The settings in force at a site: the organisation's, with the keys the site sets for itself
/// (`own`) in their place. A user of the site may read them.
#[utoipa::path(get, path = "/api/v1/sites/{id}/settings", params(("id" = i64, Path)), responses(
    (status = 200, description = "the settings in force at the site and the site's own keys", body = SiteSettingsView),
    (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn settings_of_site(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SiteSettingsView>, AppError> {
    own_site(&p, id)?;
    Ok(Json(view(&s, id).await?))
}

/// The keys a site sets for itself, with why.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SiteSettingsChange {
    /// The whole set of the site's own keys: a key left out goes back to the organisation's
    /// value. Only the `per_site_keys` of `GET /api/v1/sites/{id}/settings` may be set.
    pub own: SiteSettings,
    pub reason: String,
}

/// Replaces the keys a site sets for itself (administrator; audited). The site's open sessions
/// follow the new settings at once.
#[utoipa::path(put, path = "/api/v1/sites/{id}/settings", params(("id" = i64, Path)), request_body = SiteSettingsChange, responses(
    (status = 200, description = "the settings now in force at the site", body = SiteSettingsView),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn put_settings_of_site(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(c): JsonBody<SiteSettingsChange>,
) -> Result<Json<SiteSettingsView>, AppError> {
    own_site(&p, id)?;
    ketcare_app::clinical::save_settings_of_site(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        id,
        &c.own,
        &c.reason,
        ketcare_app::sessions::service::at(s.now())?,
    )
    .await?;
    Ok(Json(view(&s, id).await?))
}

/// This area's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    my_sites,
    create_site,
    update_site,
    set_user_sites,
    settings_of_site,
    put_settings_of_site
))]
pub struct SitesApiDoc;

// ---- The page of one site's settings --------------------------------------------------------

/// One key a site may set for itself: the organisation's value, the site's own (if it sets one).
pub struct SiteSettingRow {
    organisation: SettingRow,
    own: SettingRow,
    is_own: bool,
}

#[derive(askama::Template)]
#[template(path = "site_settings.html")]
pub struct SiteSettingsPage {
    nav: Option<Nav>,
    site_id: i64,
    site_name: String,
    version: i64,
    organisation_version: i64,
    /// Who set the site's own version, when and why.
    own_by: Option<(String, String, String)>,
    rows: Vec<SiteSettingRow>,
    demo: bool,
    can_edit: bool,
    error: String,
}

async fn site_settings_page(
    s: &AppState,
    p: &Principal,
    site: i64,
    error: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    own_site(p, site)?;
    let name = p
        .sites
        .iter()
        .find(|(id, _)| *id == site)
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    let at = settings_at(s.store.as_ref(), site).await?;
    let (organisation, _) = ketcare_app::clinical::settings(s.store.as_ref()).await?;
    let registry = ketcare_app::settings_registry::load(s.store.as_ref(), &s.library()).await?;
    let rows = registry
        .settings
        .iter()
        .filter(|spec| spec.per_site)
        .map(|spec| SiteSettingRow {
            organisation: setting_row(
                spec,
                organisation.value(&spec.key),
                organisation.text(&spec.key),
            ),
            own: setting_row(spec, at.own.value(&spec.key), at.own.text(&spec.key)),
            is_own: at.is_own(&spec.key),
        })
        .collect();
    let mut r = render_html(&SiteSettingsPage {
        nav: Nav::of(p),
        site_id: site,
        site_name: name,
        version: at.version,
        organisation_version: at.organisation_version,
        own_by: at.own_version.as_ref().map(|v| {
            (
                v.set_by.clone(),
                crate::fmt::when(&v.set_at),
                v.reason.clone(),
            )
        }),
        rows,
        demo: s.is_demo(),
        can_edit: p
            .user
            .role
            .allows(ketcare_core::Permission::SiteSettingsWrite),
        error,
    });
    *r.status_mut() = status;
    Ok(r)
}

/// The keys a site sets for itself beside the organisation's values (a user of the site).
pub async fn site_settings_get(
    State(s): State<AppState>,
    p: Principal,
    PagePath(site): PagePath<i64>,
) -> Result<Response, PageError> {
    site_settings_page(&s, &p, site, String::new(), StatusCode::OK).await
}

/// Sets one key for the site, or (`clear`) gives it back to the organisation's value
/// (administrator; a new audited version of the site's own keys).
pub async fn site_settings_post(
    State(s): State<AppState>,
    p: Principal,
    PagePath(site): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    own_site(&p, site)?;
    let f = form_pairs(&body)?;
    let key = field(&f, "key").to_owned();
    let done = async {
        if key.is_empty() {
            return Err(AppError::invalid("key", "required"));
        }
        let mut own = settings_at(s.store.as_ref(), site).await?.own;
        if field(&f, "clear") == "1" {
            own.values.remove(&key);
            own.texts.remove(&key);
        } else {
            let is_text = ketcare_app::settings_registry::load(s.store.as_ref(), &s.library())
                .await?
                .get(&key)
                .is_some_and(|spec| spec.input.is_text());
            if is_text {
                own.texts.insert(key.clone(), field(&f, "value").to_owned());
            } else {
                let v =
                    number(&f, "value")?.ok_or_else(|| AppError::invalid("value", "required"))?;
                own.values.insert(key.clone(), v);
            }
        }
        ketcare_app::clinical::save_settings_of_site(
            s.store.as_ref(),
            &s.library(),
            &p.actor,
            site,
            &own,
            field(&f, "reason"),
            ketcare_app::sessions::service::at(s.now())?,
        )
        .await
        .map_err(AppError::from)
    }
    .await;
    match done {
        Ok(_) => Ok(Redirect::to(&format!(
            "/sites/{site}/settings#setting-{}",
            crate::clinical_pages::url_fragment(&key)
        ))
        .into_response()),
        Err(AppError::Invalid(e)) => {
            let msg =
                e.0.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
            site_settings_page(&s, &p, site, msg, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e.into()),
    }
}
