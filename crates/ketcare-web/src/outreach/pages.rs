//! The contact page: each recipient's addresses on the record, the preference in force and
//! whether a link would be sent now, a form to record a new preference, and the history.

use crate::AppState;
use crate::auth::Principal;
use crate::chart::PatientHeader;
use crate::clinical_pages::{field, form_pairs};
use crate::error::{AppError, PageError};
use crate::measures::pages::message;
use crate::pages::{Nav, PagePath, render_with};
use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ketcare_app::outreach::{ContactInput, Contacts};
use ketcare_core::{PatientId, Permission};

#[derive(Template)]
#[template(path = "outreach_contact.html")]
pub struct ContactPage {
    nav: Option<Nav>,
    header: Option<PatientHeader>,
    patient_id: i64,
    c: Contacts,
    can_edit: bool,
    error: String,
}

async fn contact_page(
    s: &AppState,
    p: &Principal,
    id: i64,
    error: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    let c = ketcare_app::outreach::contacts(s.store.as_ref(), &p.actor, PatientId::new(id)).await?;
    let header = crate::chart::header(s, p, PatientId::new(id), "contact")
        .await
        .ok();
    Ok(render_with(
        status,
        &ContactPage {
            nav: Nav::of(p),
            header,
            patient_id: id,
            c,
            can_edit: p.user.role.allows(Permission::PatientWrite),
            error,
        },
    ))
}

pub async fn contact(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    contact_page(&s, &p, id, String::new(), StatusCode::OK).await
}

pub async fn record_contact(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let guardian = match field(&pairs, "guardian_id").trim() {
        "" => Ok(None),
        v => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| AppError::invalid("guardian_id", "expected a guardian of record")),
    };
    let r = match guardian {
        Ok(guardian_id) => ketcare_app::outreach::record_contact(
            s.store.as_ref(),
            &p.actor,
            PatientId::new(id),
            &ContactInput {
                guardian_id,
                channel: field(&pairs, "channel").to_owned(),
                consented: field(&pairs, "consented") == "yes",
            },
        )
        .await
        .map_err(AppError::from),
        Err(e) => Err(e),
    };
    match r {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/contact")).into_response()),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            contact_page(&s, &p, id, message(&e), e.status()).await
        }
        Err(e) => Err(PageError(e)),
    }
}
