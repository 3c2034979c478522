//! The JSON API of SMART backend clients (`/api/v1/fhir-clients`, administrators): register,
//! list, disable. Each handler is one call into `ketcare_app::smart`, the same the CLI makes.

use crate::AppState;
use crate::api::{ApiPath, JsonBody};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ketcare_app::smart;
use ketcare_store::FhirClient;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// A registered backend client (its public keys named by their `kid`).
#[derive(Serialize, ToSchema)]
pub struct FhirClientView {
    pub client_id: String,
    pub name: String,
    /// The account it acts as: its role decides what the client reads.
    pub user: String,
    /// The scopes it may be granted, space-separated.
    pub scope: String,
    /// The `kid` of every key of its JWK Set.
    pub key_ids: Vec<String>,
    pub created_at: String,
    pub disabled: bool,
}

impl From<FhirClient> for FhirClientView {
    fn from(c: FhirClient) -> Self {
        Self {
            key_ids: smart::key_ids(&c),
            client_id: c.client_id,
            name: c.name,
            user: c.username,
            scope: c.scopes,
            created_at: c.created_at,
            disabled: c.disabled,
        }
    }
}

fn default_scope() -> String {
    "system/*.read".into()
}

/// A backend client to register.
#[derive(Deserialize, ToSchema)]
pub struct NewFhirClientBody {
    pub name: String,
    /// The username of the (service) account the client acts as.
    pub user: String,
    /// The client's public JWK Set (`{"keys": [...]}`): RSA keys (RS384) or EC P-384 keys
    /// (ES384), each with a `kid`.
    #[schema(value_type = Object)]
    pub jwks: serde_json::Value,
    /// The scopes it may be granted, space-separated: `system/*.read` (the default) or
    /// `system/<Type>.read`.
    #[serde(default = "default_scope")]
    pub scope: String,
}

/// Registers a SMART backend client (audited); its `client_id` is generated.
#[utoipa::path(post, path = "/api/v1/fhir-clients", request_body = NewFhirClientBody, responses(
    (status = 201, description = "the client registered", body = FhirClientView), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn register(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(body): JsonBody<NewFhirClientBody>,
) -> Result<(StatusCode, Json<FhirClientView>), AppError> {
    let client = smart::register(
        s.store.as_ref(),
        &p.actor,
        &smart::Registration {
            name: body.name,
            user: body.user,
            jwks: body.jwks.to_string(),
            scopes: body.scope,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(client.into())))
}

/// Every SMART backend client.
#[utoipa::path(get, path = "/api/v1/fhir-clients", responses(
    (status = 200, description = "the registered backend clients", body = [FhirClientView]), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<FhirClientView>>, AppError> {
    let clients = smart::list(s.store.as_ref(), &p.actor).await?;
    Ok(Json(clients.into_iter().map(Into::into).collect()))
}

/// Disables a SMART backend client: no token is granted to it again, and its tokens end
/// (audited).
#[utoipa::path(post, path = "/api/v1/fhir-clients/{cid}/disable", params(("cid" = String, Path)), responses(
    (status = 200, description = "the client, disabled", body = FhirClientView), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn disable(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(cid): ApiPath<String>,
) -> Result<Json<FhirClientView>, AppError> {
    let client = smart::disable(s.store.as_ref(), &p.actor, &cid).await?;
    Ok(Json(client.into()))
}

#[derive(OpenApi)]
#[openapi(paths(register, list, disable))]
pub struct FhirClientsApiDoc;
