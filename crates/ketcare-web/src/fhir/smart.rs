//! SMART Backend Services at the FHIR edge: the public `.well-known/smart-configuration`
//! document and the token endpoint (`POST /fhir/r4/auth/token`, form-encoded), whose decision is
//! `ketcare_app::smart::token`. Its answers are OAuth's, not FHIR's: the token as JSON, or an
//! RFC 6749 §5.2 error (`invalid_client` 401, the others 400). Failed requests are counted by
//! the sign-in throttle per address, so guessing is paused as it is at sign-in.

use crate::AppState;
use crate::auth::client_address;
use crate::throttle::Verdict;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ketcare_app::smart::{TokenError, TokenErrorKind, TokenRequest};
use ketcare_fhir::smart;
use serde_json::json;

/// The name the token endpoint's failures are counted under in the sign-in throttle (`#` is
/// no username's character, so it is no one's account).
const THROTTLE_NAME: &str = "#fhir-token-endpoint";

/// `GET /fhir/r4/.well-known/smart-configuration` (public).
pub async fn configuration(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    Json(smart::configuration(&super::base(&s, &headers)))
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

/// A refused token request: `invalid_client` is 401, the others 400 (RFC 6749 §5.2).
fn refused(e: &TokenError) -> Response {
    let status = match e.kind {
        TokenErrorKind::InvalidClient => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.kind.code(), &e.description)
}

/// `POST /fhir/r4/auth/token` (public; the assertion is the credential).
pub async fn token(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    let address = client_address(&extensions);
    let now = s.now();
    let paused = match s.throttle.check(&address, THROTTLE_NAME, now) {
        Verdict::Allowed => None,
        Verdict::AccountPaused(w) | Verdict::AddressPaused(w) => Some(w),
    };
    if let Some(wait) = paused {
        // RFC 6749 §4.1.2.1's code for a server that cannot answer now.
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            &format!("too many failed token requests from this address: try again in {wait} s"),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let request: TokenRequest = match serde_urlencoded::from_bytes(&body) {
        Ok(r) => r,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "body: send the fields form-encoded (application/x-www-form-urlencoded)",
            );
        }
    };
    let token_url = smart::token_url(&super::base(&s, &headers));
    match ketcare_app::smart::token(s.store.as_ref(), &request, &token_url, now, &address).await {
        Ok(granted) => {
            s.throttle.succeeded(&address, THROTTLE_NAME);
            Json(json!({
                "access_token": granted.access_token,
                "token_type": "bearer",
                "expires_in": granted.expires_in,
                "scope": granted.scope,
            }))
            .into_response()
        }
        Err(e) => {
            s.throttle.failed(
                &address,
                THROTTLE_NAME,
                now,
                s.config.lockout_attempts,
                s.config.lockout_minutes * 60,
            );
            refused(&e)
        }
    }
}
