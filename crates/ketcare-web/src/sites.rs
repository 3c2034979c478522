//! Sites over HTTP: the caller's sites, an administrator's new site, and who works where. The
//! store decides (scope from the record, the administrator's right); this is the thin edge.

use crate::AppState;
use crate::api::{ApiPath, JsonBody};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ketcare_store::{NewSite, Site, SiteScope};
use serde::{Deserialize, Serialize};

/// The caller's sites and the one they work at now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MySites {
    pub sites: Vec<Site>,
    /// The site taken when a request names none (the `X-Ketcare-Site` header's, or the only one).
    pub working_site: Option<i64>,
}

/// The sites the caller works at (every site for an account of all sites).
#[utoipa::path(get, path = "/api/v1/sites", responses(
    (status = 200, description = "the caller's sites", body = MySites), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn my_sites(State(s): State<AppState>, p: Principal) -> Result<Json<MySites>, AppError> {
    Ok(Json(MySites {
        sites: s.store.sites(&p.actor).await?,
        working_site: p.site,
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

/// Where an account works: every site (`all`), or exactly `sites`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
pub struct UserSites {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub sites: Vec<i64>,
}

impl From<SiteScope> for UserSites {
    fn from(s: SiteScope) -> Self {
        match s {
            SiteScope::All => UserSites {
                all: true,
                sites: Vec::new(),
            },
            SiteScope::Only(sites) => UserSites { all: false, sites },
        }
    }
}

/// Sets the sites an account works at (administrator; audited).
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
    s.store.set_user_sites(&p.actor, user, &scope).await?;
    Ok(Json(s.store.user_sites(&p.actor, user).await?.into()))
}

/// This area's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(my_sites, create_site, set_user_sites))]
pub struct SitesApiDoc;
