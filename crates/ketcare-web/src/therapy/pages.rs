//! Pages for psychotherapy integration: the patient's therapy page (encounters, integration
//! after each dose, the form a therapist records an encounter with) and an encounter's page
//! (its structured part; its psychotherapy notes only for the readers the store allows).

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
use ketcare_app::therapy::TherapyOverview;
use ketcare_core::therapy::{EncounterInput, EncounterKind, IntegrationState, Modality};
use ketcare_core::{EncounterId, PatientId, Permission, SessionId, TherapyNoteId};
use ketcare_store::therapy::{StoredEncounter, TherapyNote};

#[derive(Template)]
#[template(path = "therapy_patient.html")]
pub struct TherapyPage {
    nav: Option<Nav>,
    header: Option<PatientHeader>,
    patient_id: i64,
    o: TherapyOverview,
    can_record: bool,
    kinds: Vec<&'static str>,
    modalities: Vec<&'static str>,
    /// The form as typed when it was refused (field, value).
    form: Vec<(String, String)>,
    error: String,
    now: String,
}

impl TherapyPage {
    fn value(&self, name: &str) -> &str {
        field(&self.form, name)
    }
    fn state_text(s: &IntegrationState) -> String {
        match s {
            IntegrationState::Held { encounter_id } => format!("held (encounter {encounter_id})"),
            IntegrationState::Due { by } => format!("due by {by}"),
            IntegrationState::Missed { by } => format!("missed: none by {by}"),
            IntegrationState::WindowUnset => {
                "not evaluated: the site has not set the window".into()
            }
        }
    }
}

async fn therapy_page(
    s: &AppState,
    p: &Principal,
    id: i64,
    form: Vec<(String, String)>,
    error: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    let o =
        ketcare_app::therapy::overview(s.store.as_ref(), &p.actor, PatientId::new(id), s.today())
            .await?;
    let header = crate::chart::header(s, p, PatientId::new(id), "therapy")
        .await
        .ok();
    let now = jiff::Timestamp::from_second(s.now())
        .map(|t| {
            t.to_zoned(ketcare_app::zones::here())
                .strftime("%Y-%m-%dT%H:%M")
                .to_string()
        })
        .unwrap_or_default();
    Ok(render_with(
        status,
        &TherapyPage {
            nav: Nav::of(p),
            header,
            patient_id: id,
            o,
            can_record: p.user.role.allows(Permission::RecordTherapy),
            kinds: EncounterKind::ALL.iter().map(|k| k.as_str()).collect(),
            modalities: Modality::ALL.iter().map(|k| k.as_str()).collect(),
            form,
            error,
            now,
        },
    ))
}

pub async fn patient_therapy(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    therapy_page(&s, &p, id, Vec::new(), String::new(), StatusCode::OK).await
}

fn encounter_input(pairs: &[(String, String)]) -> Result<EncounterInput, AppError> {
    let number = |name: &str| -> Result<Option<i64>, AppError> {
        match field(pairs, name).trim() {
            "" => Ok(None),
            v => v.parse().map(Some).map_err(|_| {
                AppError::invalid(name, format!("expected a whole number, got {v:?}"))
            }),
        }
    };
    Ok(EncounterInput {
        kind: field(pairs, "kind").into(),
        at: field(pairs, "at").into(),
        duration_minutes: number("duration_minutes")?.unwrap_or(0),
        modality: field(pairs, "modality").into(),
        session_id: number("session_id")?.map(SessionId::new),
        themes: field(pairs, "themes").into(),
        intentions: field(pairs, "intentions").into(),
        homework: field(pairs, "homework").into(),
        suicide_risk: field(pairs, "suicide_risk").into(),
        risk_note: field(pairs, "risk_note").into(),
    })
}

pub async fn record_encounter(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let r = async {
        let input = encounter_input(&pairs)?;
        let e = ketcare_app::therapy::record_encounter(
            s.store.as_ref(),
            &p.actor,
            PatientId::new(id),
            &input,
        )
        .await?;
        Ok::<_, AppError>(Redirect::to(&format!("/therapy/encounters/{}", e.id)).into_response())
    }
    .await;
    match r {
        Ok(resp) => Ok(resp),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            therapy_page(&s, &p, id, pairs, message(&e), e.status()).await
        }
        Err(e) => Err(PageError(e)),
    }
}

#[derive(Template)]
#[template(path = "therapy_encounter.html")]
pub struct EncounterPage {
    nav: Option<Nav>,
    header: Option<PatientHeader>,
    e: StoredEncounter,
    /// May write and read psychotherapy notes (the store still decides which).
    therapist: bool,
    notes: Vec<TherapyNote>,
    error: String,
}

async fn encounter_page(
    s: &AppState,
    p: &Principal,
    eid: i64,
    error: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    let id = EncounterId::new(eid);
    let e = ketcare_app::therapy::encounter(s.store.as_ref(), &p.actor, id).await?;
    let notes = ketcare_app::therapy::notes_for_page(s.store.as_ref(), &p.actor, id).await?;
    let header = crate::chart::header(s, p, e.patient_id, "therapy")
        .await
        .ok();
    Ok(render_with(
        status,
        &EncounterPage {
            nav: Nav::of(p),
            header,
            e,
            therapist: p.user.role.allows(Permission::PsychotherapyNotes),
            notes,
            error,
        },
    ))
}

pub async fn encounter(
    State(s): State<AppState>,
    p: Principal,
    PagePath(eid): PagePath<i64>,
) -> Result<Response, PageError> {
    encounter_page(&s, &p, eid, String::new(), StatusCode::OK).await
}

pub async fn add_note(
    State(s): State<AppState>,
    p: Principal,
    PagePath(eid): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs = form_pairs(&body)?;
    let r = async {
        let amends = match field(&pairs, "amends_id").trim() {
            "" => None,
            v => Some(v.parse::<TherapyNoteId>().map_err(|_| {
                AppError::invalid("amends_id", format!("expected a note number, got {v:?}"))
            })?),
        };
        ketcare_app::therapy::add_note(
            s.store.as_ref(),
            &p.actor,
            EncounterId::new(eid),
            field(&pairs, "text"),
            amends,
        )
        .await?;
        Ok::<_, AppError>(Redirect::to(&format!("/therapy/encounters/{eid}#notes")).into_response())
    }
    .await;
    match r {
        Ok(resp) => Ok(resp),
        Err(e @ AppError::Invalid(_)) => encounter_page(&s, &p, eid, message(&e), e.status()).await,
        Err(e) => Err(PageError(e)),
    }
}
