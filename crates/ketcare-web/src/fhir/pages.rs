//! The administrators' page of SMART backend clients (`/fhir-clients`): the list, a register
//! form and a disable button, over the same `ketcare_app::smart` use cases as the API and the CLI.

use super::clients::FhirClientView;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{AppError, PageError};
use crate::pages::{FormBody, Nav, PagePath, render_with};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ketcare_app::smart;
use serde::Deserialize;

/// The register form as typed, so a refused form comes back as the administrator left it.
#[derive(Deserialize, Default)]
pub struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    jwks: String,
}

#[derive(Template)]
#[template(path = "fhir_clients.html")]
pub struct FhirClientsPage {
    nav: Option<Nav>,
    clients: Vec<FhirClientView>,
    form: RegisterForm,
    message: String,
    error: String,
}

async fn page(
    s: &AppState,
    p: &Principal,
    form: RegisterForm,
    outcome: Result<String, AppError>,
) -> Result<Response, PageError> {
    let clients = smart::list(s.store.as_ref(), &p.actor)
        .await
        .map_err(AppError::from)?;
    let (status, message, error) = match outcome {
        Ok(m) => (StatusCode::OK, m, String::new()),
        Err(e) => (
            e.status(),
            String::new(),
            crate::clinical_pages::invalid_text(&e),
        ),
    };
    Ok(render_with(
        status,
        &FhirClientsPage {
            nav: Nav::of(p),
            clients: clients.into_iter().map(Into::into).collect(),
            form,
            message,
            error,
        },
    ))
}

/// `GET /fhir-clients`.
pub async fn clients(State(s): State<AppState>, p: Principal) -> Result<Response, PageError> {
    let form = RegisterForm {
        scope: "system/*.read".into(),
        ..RegisterForm::default()
    };
    page(&s, &p, form, Ok(String::new())).await
}

/// `POST /fhir-clients`: registers a client; the page says its `client_id`.
pub async fn register(
    State(s): State<AppState>,
    p: Principal,
    FormBody(form): FormBody<RegisterForm>,
) -> Result<Response, PageError> {
    let registration = smart::Registration {
        name: form.name.clone(),
        user: form.user.clone(),
        jwks: form.jwks.clone(),
        scopes: form.scope.clone(),
    };
    match smart::register(s.store.as_ref(), &p.actor, &registration).await {
        Ok(c) => {
            let message = format!(
                "Registered {} acting as {}: its client_id is {}",
                c.name, c.username, c.client_id
            );
            page(&s, &p, RegisterForm::default(), Ok(message)).await
        }
        Err(e) => page(&s, &p, form, Err(e.into())).await,
    }
}

/// `POST /fhir-clients/{cid}/disable`.
pub async fn disable(
    State(s): State<AppState>,
    p: Principal,
    PagePath(cid): PagePath<String>,
) -> Result<Response, PageError> {
    let outcome = smart::disable(s.store.as_ref(), &p.actor, &cid)
        .await
        .map(|c| format!("Disabled {} ({}): its tokens ended", c.name, c.client_id))
        .map_err(AppError::from);
    page(&s, &p, RegisterForm::default(), outcome).await
}
