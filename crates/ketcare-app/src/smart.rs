//! SMART App Launch "Backend Services" (<https://hl7.org/fhir/smart-app-launch/backend-services.html>):
//! registering a backend client (its public JWK Set, the scopes it may be granted, the ketcare
//! account it acts as), the token endpoint's decision (an RS384 or ES384 JWT assertion checked
//! against the client's registered keys, its `jti` refused if replayed) and the look-up of an
//! access token. The same functions serve the CLI and the JSON API; the FHIR edge encodes the
//! token endpoint's answers as RFC 6749 §5.2 errors.
//!
//! A backend client is never an account of its own: it acts as the account chosen at
//! registration, so every role check and every audit record is that account's.

use crate::error::{Error, Result};
use crate::password::{random_token, token_hash};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use ketcare_core::audit::AuditEvent;
use ketcare_core::{Actor, Permission};
use ketcare_fhir::smart::{ACCESS_TOKEN_SECONDS, ASSERTION_TYPE, MAX_ASSERTION_SECONDS, Scopes};
use ketcare_store::{FhirClient, FhirGrant, GrantOutcome, NewFhirClient, Store, User};

/// Checks a JWK Set as a client registers it: JSON with at least one key, every key with a
/// `kid` (assertions name their key by it), an RSA key or an EC key on P-384, `alg` (when given)
/// RS384 or ES384 to match, and public parts only.
pub fn parse_jwks(text: &str) -> Result<JwkSet> {
    let invalid = |m: String| Error::invalid("jwks", m);
    let raw: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let set: JwkSet = serde_json::from_value(raw.clone())
        .map_err(|e| invalid(format!("not a JWK Set ({{\"keys\": [...]}}): {e}")))?;
    if set.keys.is_empty() {
        return Err(invalid("the set has no key".into()));
    }
    for (i, key) in set.keys.iter().enumerate() {
        let kid = key
            .common
            .key_id
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid(format!("key {i} has no kid")))?;
        if raw["keys"][i].get("d").is_some() {
            return Err(invalid(format!(
                "key {kid} holds a private part (d): register the public key only"
            )));
        }
        algorithm_of(key).map_err(|m| invalid(format!("key {kid}: {m}")))?;
        if set
            .keys
            .iter()
            .filter(|k| k.common.key_id == key.common.key_id)
            .count()
            > 1
        {
            return Err(invalid(format!("kid {kid} names more than one key")));
        }
    }
    Ok(set)
}

/// The one algorithm a registered key verifies: RS384 for an RSA key, ES384 for a P-384 key.
fn algorithm_of(key: &Jwk) -> Result<Algorithm, String> {
    let alg = match &key.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS384,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => Algorithm::ES384,
        AlgorithmParameters::EllipticCurve(_) => {
            return Err("an EC key must be on curve P-384 (ES384)".into());
        }
        _ => return Err("use an RSA key (RS384) or an EC P-384 key (ES384)".into()),
    };
    match key.common.key_algorithm {
        None => Ok(alg),
        Some(KeyAlgorithm::RS384) if alg == Algorithm::RS384 => Ok(alg),
        Some(KeyAlgorithm::ES384) if alg == Algorithm::ES384 => Ok(alg),
        Some(other) => Err(format!(
            "alg {other:?} does not fit the key (use RS384 or ES384)"
        )),
    }
}

/// What an administrator registers (the CLI's flags, the API's body).
#[derive(Debug, Clone)]
pub struct Registration {
    pub name: String,
    /// The username of the account the client acts as.
    pub user: String,
    /// The public JWK Set, as JSON.
    pub jwks: String,
    /// Space-separated scopes it may be granted.
    pub scopes: String,
}

/// Registers a backend client (audited; `UserAdmin`), returning it with its new `client_id`.
pub async fn register(store: &dyn Store, actor: &Actor, r: &Registration) -> Result<FhirClient> {
    if !actor.may(Permission::UserAdmin) {
        return Err(Error::Forbidden(
            "only an administrator registers backend clients".into(),
        ));
    }
    let mut errors = ketcare_core::FieldErrors::new();
    let name = r.name.trim();
    if name.is_empty() {
        errors.push("name", "give the client a name people will recognise");
    }
    let user = store.user_by_username(r.user.trim()).await?;
    match &user {
        None => errors.push("user", format!("there is no account `{}`", r.user.trim())),
        Some(u) if u.disabled => errors.push("user", format!("account {} is disabled", u.username)),
        Some(_) => {}
    }
    if let Err(e) = parse_jwks(&r.jwks) {
        for f in e.fields().0 {
            errors.push(&f.field, f.message);
        }
    }
    let scopes = match Scopes::parse(&r.scopes) {
        Ok(s) if s.is_empty() => {
            errors.push("scope", "give at least one scope (system/*.read)");
            None
        }
        Ok(s) => Some(s),
        Err(e) => {
            errors.push("scope", e.to_string());
            None
        }
    };
    let (Some(user), Some(scopes), true) = (user, scopes, errors.is_empty()) else {
        return Err(Error::Invalid(errors));
    };
    Ok(store
        .register_fhir_client(
            actor,
            &NewFhirClient {
                // 96 random bits: a name, not a secret (the keys are the secret).
                client_id: format!("kc-client-{}", &random_token()[..24]),
                name: name.to_owned(),
                user_id: user.id,
                jwks: r.jwks.trim().to_owned(),
                scopes: scopes.to_string(),
            },
        )
        .await?)
}

/// The key ids of a stored client's JWK Set (for listings; the keys themselves are public but
/// long).
pub fn key_ids(client: &FhirClient) -> Vec<String> {
    parse_jwks(&client.jwks)
        .map(|s| s.keys.into_iter().filter_map(|k| k.common.key_id).collect())
        .unwrap_or_default()
}

/// Every backend client (`UserAdmin`).
pub async fn list(store: &dyn Store, actor: &Actor) -> Result<Vec<FhirClient>> {
    Ok(store.list_fhir_clients(actor).await?)
}

/// Disables a backend client; its access tokens end (`UserAdmin`; audited).
pub async fn disable(store: &dyn Store, actor: &Actor, client_id: &str) -> Result<FhirClient> {
    Ok(store.disable_fhir_client(actor, client_id.trim()).await?)
}

/// The fields of a token request (form-encoded), as sent.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
    pub scope: Option<String>,
}

/// RFC 6749 §5.2's error codes, as the token endpoint uses them. Every failure to authenticate
/// the client (unknown or disabled client, key, signature, `iss`, `sub`, `aud`, `exp`, replayed
/// `jti`) is `invalid_client`, as the Backend Services spec requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenErrorKind {
    InvalidRequest,
    InvalidClient,
    InvalidScope,
    UnsupportedGrantType,
}

impl TokenErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedGrantType => "unsupported_grant_type",
        }
    }
}

/// A refused token request: the code and what was wrong, naming the field or claim (never the
/// assertion's text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", kind.code())]
pub struct TokenError {
    pub kind: TokenErrorKind,
    pub description: String,
}

fn refuse(kind: TokenErrorKind, description: impl Into<String>) -> TokenError {
    TokenError {
        kind,
        description: description.into(),
    }
}

fn bad_client(description: impl Into<String>) -> TokenError {
    refuse(TokenErrorKind::InvalidClient, description)
}

/// An access token granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// Shown once to the client; stored only as its hash.
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
}

/// The token endpoint: checks the request and its assertion for the endpoint `token_url` at
/// `now`, and grants the requested scopes the client is registered for. Every grant and every
/// refusal is audited (as the client's account when the client is known), without the assertion.
pub async fn token(
    store: &dyn Store,
    request: &TokenRequest,
    token_url: &str,
    now: i64,
    address: &str,
) -> std::result::Result<Granted, TokenError> {
    let mut claimed: Option<FhirClient> = None;
    let mut audited = false;
    let result = grant(
        store,
        request,
        token_url,
        now,
        address,
        &mut claimed,
        &mut audited,
    )
    .await;
    if let Err(e) = &result
        && !audited
    {
        let (actor, who) = match &claimed {
            Some(c) => (
                client_actor(store, c, address).await,
                format!("backend client {}", c.client_id),
            ),
            None => (
                Actor {
                    user_id: None,
                    username: "unknown backend client".into(),
                    role: None,
                    address: address.to_owned(),
                },
                "unknown backend client".into(),
            ),
        };
        let event = AuditEvent::new("fhir.token.refuse", None, format!("{who}: {e}"));
        if let Err(e) = store.audit(&actor, event).await {
            tracing::error!(error = %e, "could not audit a refused token request");
        }
    }
    result
}

/// The actor a client's refusals are recorded as: its account, or the client itself when the
/// account cannot be read.
async fn client_actor(store: &dyn Store, c: &FhirClient, address: &str) -> Actor {
    match store.user_by_id(c.user_id).await {
        Ok(Some(u)) => Actor::user(u.id, &u.username, u.role, address),
        _ => Actor {
            user_id: Some(c.user_id),
            username: c.username.clone(),
            role: None,
            address: address.to_owned(),
        },
    }
}

/// The claims of a Backend Services assertion.
#[derive(Debug, serde::Deserialize)]
struct Claims {
    exp: i64,
    #[serde(default)]
    jti: String,
}

/// Only `iss`, read before the signature is checked to find the client's keys.
#[derive(Debug, serde::Deserialize)]
struct Issuer {
    iss: Option<String>,
}

async fn grant(
    store: &dyn Store,
    request: &TokenRequest,
    token_url: &str,
    now: i64,
    address: &str,
    claimed: &mut Option<FhirClient>,
    audited: &mut bool,
) -> std::result::Result<Granted, TokenError> {
    use TokenErrorKind::*;
    let field = |v: &Option<String>, name: &str| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| refuse(InvalidRequest, format!("{name}: required")))
    };
    let grant_type = field(&request.grant_type, "grant_type")?;
    if grant_type != "client_credentials" {
        return Err(refuse(
            UnsupportedGrantType,
            "grant_type: only client_credentials is offered",
        ));
    }
    if field(&request.client_assertion_type, "client_assertion_type")? != ASSERTION_TYPE {
        return Err(refuse(
            InvalidRequest,
            format!("client_assertion_type: use {ASSERTION_TYPE}"),
        ));
    }
    let assertion = field(&request.client_assertion, "client_assertion")?;
    let asked = Scopes::parse(&field(&request.scope, "scope")?)
        .map_err(|e| refuse(InvalidScope, e.to_string()))?;

    let header = jsonwebtoken::decode_header(&assertion)
        .map_err(|_| bad_client("client_assertion: not a signed JWT"))?;
    let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Issuer>(&assertion)
        .ok()
        .and_then(|c| c.iss)
        .ok_or_else(|| bad_client("iss: required (the client_id)"))?;
    let client = store
        .fhir_client(&iss)
        .await
        .map_err(|_| bad_client("the client could not be looked up"))?
        .ok_or_else(|| {
            // A name the caller chose: cut short before it reaches the log.
            let shown: String = iss.chars().take(64).collect();
            bad_client(format!("iss: no backend client {shown} is registered"))
        })?;
    *claimed = Some(client.clone());
    if client.disabled {
        return Err(bad_client("the client is disabled"));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| bad_client("kid: the assertion's header must name its key"))?;
    let keys = parse_jwks(&client.jwks)
        .map_err(|_| bad_client("the client's registered keys cannot be read"))?;
    let key = keys
        .find(kid)
        .ok_or_else(|| bad_client(format!("kid: no registered key {kid}")))?;
    let alg = algorithm_of(key).map_err(|m| bad_client(format!("key {kid}: {m}")))?;
    if header.alg != alg {
        return Err(bad_client(format!(
            "alg: key {kid} verifies {alg:?}, the assertion says {:?}",
            header.alg
        )));
    }
    let decoding =
        DecodingKey::from_jwk(key).map_err(|_| bad_client(format!("key {kid} cannot be used")))?;
    let mut validation = Validation::new(alg);
    // `exp` is checked below against the server's clock (with no leeway), not the library's.
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[&client.client_id]);
    validation.sub = Some(client.client_id.clone());
    validation.set_audience(&[token_url]);
    let claims = jsonwebtoken::decode::<Claims>(&assertion, &decoding, &validation)
        .map_err(|e| {
            bad_client(match e.kind() {
                ErrorKind::InvalidSignature => {
                    format!("the signature does not verify with key {kid}")
                }
                ErrorKind::InvalidAudience => format!("aud: must be {token_url}"),
                ErrorKind::InvalidIssuer => "iss: must be the client_id".into(),
                ErrorKind::InvalidSubject => "sub: must be the client_id".into(),
                ErrorKind::MissingRequiredClaim(c) => format!("{c}: required"),
                _ => "client_assertion: the claims cannot be read (exp a number, jti a string)"
                    .into(),
            })
        })?
        .claims;
    if claims.exp <= now {
        return Err(bad_client("exp: the assertion has expired"));
    }
    if claims.exp > now + MAX_ASSERTION_SECONDS {
        return Err(bad_client(format!(
            "exp: more than {MAX_ASSERTION_SECONDS} s ahead (the spec allows five minutes)"
        )));
    }
    if claims.jti.trim().is_empty() {
        return Err(bad_client("jti: required"));
    }

    let registered = Scopes::parse(&client.scopes)
        .map_err(|_| bad_client("the client's registered scopes cannot be read"))?;
    let granted = asked.granted_by(&registered);
    if granted.is_empty() {
        return Err(refuse(
            InvalidScope,
            format!(
                "scope: none of the requested scopes is registered for this client ({})",
                client.scopes
            ),
        ));
    }
    let user: User = store
        .user_by_id(client.user_id)
        .await
        .ok()
        .flatten()
        .filter(|u| !u.disabled)
        .ok_or_else(|| bad_client("the account the client acts as is disabled"))?;
    let actor = Actor::user(user.id, &user.username, user.role, address);
    let access_token = format!("kc_smart_{}", random_token());
    let scope = granted.to_string();
    let outcome = store
        .grant_fhir_token(
            &actor,
            &FhirGrant {
                client_id: &client.client_id,
                jti: claims.jti.trim(),
                jti_expires_at: claims.exp,
                token_hash: &token_hash(&access_token),
                scopes: &scope,
                expires_at: now + ACCESS_TOKEN_SECONDS,
                now,
            },
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "granting a backend client's token");
            bad_client("the token could not be granted")
        })?;
    match outcome {
        GrantOutcome::Granted => Ok(Granted {
            access_token,
            expires_in: ACCESS_TOKEN_SECONDS,
            scope,
        }),
        // Audited by the store with the refusal; not again here.
        GrantOutcome::Replayed | GrantOutcome::Disabled => {
            *audited = true;
            Err(bad_client(match outcome {
                GrantOutcome::Replayed => "jti: this assertion was used before",
                _ => "the client is disabled",
            }))
        }
    }
}

/// The account and scopes of a backend client's access token, if it is current.
pub async fn access(store: &dyn Store, token: &str, now: i64) -> Result<Option<(User, Scopes)>> {
    match store.fhir_token(&token_hash(token), now).await? {
        Some((user, scopes)) => {
            let scopes = Scopes::parse(&scopes).map_err(|e| {
                tracing::error!(error = %e, "a stored token's scopes");
                Error::Internal
            })?;
            Ok(Some((user, scopes)))
        }
        None => Ok(None),
    }
}
