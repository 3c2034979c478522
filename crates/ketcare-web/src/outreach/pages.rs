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
use ketcare_app::outreach::{ContactInput, Contacts, ScheduleView};
use ketcare_core::{PatientId, Permission};
use ketcare_store::outreach::OutboxMessage;

#[derive(Template)]
#[template(path = "outreach_contact.html")]
pub struct ContactPage {
    nav: Option<Nav>,
    header: Option<PatientHeader>,
    patient_id: i64,
    c: Contacts,
    can_edit: bool,
    error: String,
    /// The course schedules and the messages (`None`: the role does not read the clinical
    /// record).
    schedules: Option<Vec<ScheduleView>>,
    messages: Option<Vec<OutboxMessage>>,
    can_stop: bool,
}

impl ContactPage {
    fn message_state(&self, m: &OutboxMessage) -> String {
        let mut t = m.status.label().to_owned();
        if let Some(e) = &m.last_error {
            t.push_str(&format!(": {e}"));
        }
        t
    }
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
    let clinical = p.user.role.allows(Permission::ClinicalRead);
    let (schedules, messages) = if clinical {
        let zone = ketcare_app::zones::organisation(s.store.as_ref()).await?;
        let store = s.store.as_ref();
        (
            Some(
                ketcare_app::outreach::schedules(
                    store,
                    &p.actor,
                    PatientId::new(id),
                    s.now(),
                    &zone,
                )
                .await?,
            ),
            Some(ketcare_app::outreach::messages(store, &p.actor, PatientId::new(id)).await?),
        )
    } else {
        (None, None)
    };
    Ok(render_with(
        status,
        &ContactPage {
            nav: Nav::of(p),
            header,
            patient_id: id,
            c,
            can_edit: p.user.role.allows(Permission::PatientWrite),
            error,
            schedules,
            messages,
            can_stop: p.user.role.allows(Permission::RecordMeasures),
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

/// Stops one of the patient's course schedules, then shows the contact page again.
pub async fn stop_schedule(
    State(s): State<AppState>,
    p: Principal,
    PagePath((id, schedule_id)): PagePath<(i64, i64)>,
) -> Result<Response, PageError> {
    match ketcare_app::outreach::stop_schedule(
        s.store.as_ref(),
        &p.actor,
        PatientId::new(id),
        schedule_id,
    )
    .await
    .map_err(AppError::from)
    {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/contact#schedules")).into_response()),
        Err(e @ AppError::Conflict(_)) => contact_page(&s, &p, id, message(&e), e.status()).await,
        Err(e) => Err(PageError(e)),
    }
}
