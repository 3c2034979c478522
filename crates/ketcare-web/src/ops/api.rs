//! JSON API for operations: bookings and courses, consent, the ledger, billing.

use super::service::{self, CourseRequest};
use crate::AppState;
use crate::api::{ApiPath, ApiQuery, JsonBody};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use ketcare_core::{BookingId, ConsentId, PatientId};
use ketcare_ops::SessionFacts;
use ketcare_ops::billing::{self, Estimate, Superbill};
use ketcare_ops::consent::{Assent, ConsentSignature, ConsentStatus, Signer};
use ketcare_ops::ledger::chain::LedgerRecord;
use ketcare_ops::ledger::{
    Balance, Container, Discrepancy, InventoryLine, LedgerEvent, TheftLossReport,
};
use ketcare_ops::schedule::{Booking, BookingStatus, Conflict, MoveMode, MovePlan, PlannedSession};
use ketcare_store::{BalanceClaim, BookOutcome, NewSignature, TransferDue};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Window {
    /// `YYYY-MM-DDTHH:MM` (clinic time)
    pub from: String,
    pub to: String,
}

/// Bookings in a time window (clinic wall-clock time).
#[utoipa::path(get, path = "/api/v1/schedule/bookings", params(Window), responses((status = 200, description = "bookings in the window", body = [Booking]), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn bookings(
    State(s): State<AppState>,
    p: Principal,
    ApiQuery(w): ApiQuery<Window>,
) -> Result<Json<Vec<Booking>>, AppError> {
    let from = service::parse_datetime("from", &w.from)?;
    let to = service::parse_datetime("to", &w.to)?;
    Ok(Json(s.store.bookings(&p.actor, from, to).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CourseBooked {
    pub course_id: Option<i64>,
    pub bookings: Vec<Booking>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionConflicts {
    /// 1-based index of the planned session.
    pub session: u32,
    pub planned: PlannedSession,
    pub conflicts: Vec<Conflict>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CourseRefused {
    /// Always `conflict`.
    pub error: &'static str,
    pub message: String,
    pub sessions: Vec<SessionConflicts>,
}

/// Books a course from its template (every session, or none with each conflict's reason).
#[utoipa::path(post, path = "/api/v1/schedule/courses", request_body = CourseRequest, responses((status = 201, description = "the booked course", body = CourseBooked), (status = 409, description = "conflicts, nothing booked", body = CourseRefused), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn book_course(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(req): JsonBody<CourseRequest>,
) -> Result<Response, AppError> {
    let (planned, outcome) = service::book_course(s.store.as_ref(), &p.actor, &req).await?;
    Ok(match outcome {
        BookOutcome::Booked {
            course_id,
            bookings,
        } => (
            StatusCode::CREATED,
            Json(CourseBooked {
                course_id,
                bookings,
            }),
        )
            .into_response(),
        BookOutcome::Refused(list) => (
            StatusCode::CONFLICT,
            Json(CourseRefused {
                error: "conflict",
                message: format!("{} session(s) conflict; nothing was booked", list.len()),
                sessions: list
                    .into_iter()
                    .filter_map(|(i, conflicts)| {
                        planned.get(i).map(|pl| SessionConflicts {
                            session: pl.index,
                            planned: pl.clone(),
                            conflicts,
                        })
                    })
                    .collect(),
            }),
        )
            .into_response(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MoveRequest {
    /// New start, `YYYY-MM-DDTHH:MM`
    pub start: String,
    pub mode: MoveMode,
    /// Apply when the plan is clear; otherwise only show it.
    #[serde(default)]
    pub apply: bool,
}

/// Shows what moving a session moves (and any conflicts); applies it when asked and clear.
#[utoipa::path(post, path = "/api/v1/schedule/bookings/{bid}/move", params(("bid" = i64, Path)), request_body = MoveRequest, responses((status = 200, description = "the move plan: what moved and what conflicts", body = MovePlan), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn move_booking(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(bid): ApiPath<BookingId>,
    JsonBody(m): JsonBody<MoveRequest>,
) -> Result<Json<MovePlan>, AppError> {
    let start = service::parse_datetime("start", &m.start)?;
    let site = service::booking_site(s.store.as_ref(), &p.actor, bid).await?;
    let values = service::site_values(s.store.as_ref(), Some(site)).await?;
    Ok(Json(
        s.store
            .move_booking(
                &p.actor,
                bid,
                start,
                m.mode,
                service::staffing(&values),
                m.apply,
            )
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StatusChange {
    pub status: BookingStatus,
    #[serde(default)]
    pub reason: String,
}

/// Records attendance, a cancellation or a no-show (the last two with a reason).
#[utoipa::path(post, path = "/api/v1/schedule/bookings/{bid}/status", params(("bid" = i64, Path)), request_body = StatusChange, responses((status = 200, description = "the booking with its new status", body = Booking), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn booking_status(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(bid): ApiPath<BookingId>,
    JsonBody(c): JsonBody<StatusChange>,
) -> Result<Json<Booking>, AppError> {
    Ok(Json(
        s.store
            .set_booking_status(&p.actor, bid, c.status, &c.reason)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsentQuery {
    pub protocol: String,
    /// RFC 3339; now when omitted.
    pub at: Option<String>,
}

/// Is consent valid for this patient under this protocol (its current version) at a time?
#[utoipa::path(get, path = "/api/v1/patients/{id}/consent-status", params(("id" = i64, Path), ConsentQuery), responses((status = 200, description = "whether a consent is in force, or why not", body = ConsentStatus), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn consent_status(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ConsentQuery>,
) -> Result<Json<ConsentStatus>, AppError> {
    let at = match q.at.as_deref() {
        Some(t) => t
            .parse::<Timestamp>()
            .map_err(|_| AppError::invalid("at", "an RFC 3339 time"))?,
        None => Timestamp::from_second(s.now()).map_err(|_| AppError::Internal)?,
    };
    let version = s
        .library()
        .get(&q.protocol)
        .map(|p| p.version)
        .map_err(|e| AppError::invalid("protocol", e.to_string()))?;
    Ok(Json(
        s.store
            .consent_status(&p.actor, PatientId::new(id), &q.protocol, version, at)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignRequest {
    pub protocol_id: String,
    pub signer: Signer,
    pub assent: Option<Assent>,
}

/// Records consent under the protocol's current document (a minor: guardian and assent).
#[utoipa::path(post, path = "/api/v1/patients/{id}/consents", params(("id" = i64, Path)), request_body = SignRequest, responses((status = 201, description = "the recorded consent signature", body = ConsentSignature), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn sign_consent(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<i64>,
    JsonBody(r): JsonBody<SignRequest>,
) -> Result<(StatusCode, Json<ConsentSignature>), AppError> {
    let sig = ketcare_app::ops::record_consent(
        s.store.as_ref(),
        &s.library(),
        &p.actor,
        &NewSignature {
            patient_id: PatientId::new(id),
            protocol_id: r.protocol_id,
            signer: r.signer,
            assent: r.assent,
            signed_at: Timestamp::from_second(s.now()).map_err(|_| AppError::Internal)?,
        },
        s.today(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(sig)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct WithdrawRequest {
    /// Why the consent is withdrawn (required; recorded and audited).
    pub reason: String,
}

/// Withdraws one of the patient's consents now, recording who and why; it is no longer valid.
#[utoipa::path(post, path = "/api/v1/patients/{id}/consents/{sid}/withdraw", params(("id" = i64, Path), ("sid" = i64, Path)), request_body = WithdrawRequest, responses((status = 200, description = "the withdrawn consent", body = ConsentSignature), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn withdraw_consent(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, sid)): ApiPath<(i64, ConsentId)>,
    JsonBody(r): JsonBody<WithdrawRequest>,
) -> Result<Json<ConsentSignature>, AppError> {
    let at = Timestamp::from_second(s.now()).map_err(|_| AppError::Internal)?;
    Ok(Json(
        s.store
            .withdraw_consent(&p.actor, PatientId::new(id), sid, at, &r.reason)
            .await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LedgerView {
    pub containers: Vec<Container>,
    pub on_hand: Vec<InventoryLine>,
    pub open_discrepancies: Vec<Discrepancy>,
    pub theft_loss_reports: Vec<TheftLossReport>,
    #[schema(value_type = Option<String>)]
    pub last_inventory: Option<jiff::civil::Date>,
}

/// Which site's ledger: one of the caller's sites. Without it, the `X-Ketcare-Site` header's, or
/// the caller's only site (refused, naming `site`, for a caller of several sites).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SiteQuery {
    pub site: Option<i64>,
}

/// Stock by container, what is on hand, open discrepancies and theft/loss reports, of one
/// site's ledger.
#[utoipa::path(get, path = "/api/v1/ledger", params(SiteQuery), responses((status = 200, description = "ledger entries, stock on hand and open discrepancies", body = LedgerView), (status = 422, description = "no such site of the caller's, or a caller of several sites named none", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn ledger(
    State(s): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<SiteQuery>,
) -> Result<Json<LedgerView>, AppError> {
    let st = s.store.ledger_state_at(&p.actor, q.site.or(p.site)).await?;
    Ok(Json(LedgerView {
        on_hand: st.inventory_lines(),
        open_discrepancies: st.open_discrepancies().cloned().collect(),
        theft_loss_reports: st.reports.clone(),
        last_inventory: st.last_inventory,
        containers: st.containers,
    }))
}

/// Other sites' transfers to this site's ledger not received yet: each is received with a
/// `transfer_in` entry naming `from_site` and `from_entry` (the ledger copies its lines,
/// invoice and registration from the sending site's entry).
#[utoipa::path(get, path = "/api/v1/ledger/transfers", params(SiteQuery), responses((status = 200, description = "transfers on their way to the site", body = Vec<TransferDue>), (status = 422, description = "no such site of the caller's, or a caller of several sites named none", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn ledger_transfers(
    State(s): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<SiteQuery>,
) -> Result<Json<Vec<TransferDue>>, AppError> {
    Ok(Json(
        s.store
            .ledger_transfers_due(&p.actor, q.site.or(p.site))
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct WitnessSignature {
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LedgerEntryRequest {
    /// The event; a waste's or destruction's witnesses are taken from `witnesses`, in order.
    pub event: LedgerEvent,
    /// Each witness signs with their own username and password.
    #[serde(default)]
    pub witnesses: Vec<WitnessSignature>,
    /// The site whose ledger takes the entry (one of the caller's; see `GET /api/v1/ledger`).
    /// A draw or a waste always goes to its session's site: a different `site` is refused.
    #[serde(default)]
    pub site: Option<i64>,
}

/// Appends a ledger entry (receipt, draw, waste, count, resolution, destruction, theft/loss,
/// inventory, a transfer to or from another site) if the ledger's rules and the caller's role
/// allow it.
#[utoipa::path(post, path = "/api/v1/ledger/events", request_body = LedgerEntryRequest, responses((status = 201, description = "the appended ledger record", body = LedgerRecord), (status = 404, description = "the session named is not at the caller's sites", body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn ledger_event(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(r): JsonBody<LedgerEntryRequest>,
) -> Result<(StatusCode, Json<LedgerRecord>), AppError> {
    let mut event = r.event;
    let mut signed = Vec::new();
    for (i, w) in r.witnesses.iter().enumerate() {
        signed.push(
            service::witness(
                &s,
                &p.actor,
                &format!("witnesses[{i}]"),
                &w.username,
                &w.password,
            )
            .await?,
        );
    }
    match &mut event {
        LedgerEvent::Waste { witness, .. } => *witness = signed.into_iter().next(),
        LedgerEvent::Destroy { witnesses, .. } => *witnesses = signed,
        _ => {}
    }
    Ok((
        StatusCode::CREATED,
        Json(
            s.store
                .ledger_append_at(&p.actor, r.site.or(p.site), &event)
                .await?,
        ),
    ))
}

/// Does this session's ledger balance (drawn = given + wasted)? The facts are the session
/// record's: a body that contradicts it (`patient_id`, `given`, `cancelled`) is refused naming
/// the field; its `given` is used only while the record documents none (a preview,
/// `given_from_record` false).
#[utoipa::path(post, path = "/api/v1/ledger/balance", request_body = SessionFacts, responses((status = 200, description = "whether drawn = given + wasted, with the numbers (the ledger of the session's own site)", body = Balance), (status = 404, description = "no such session at the caller's sites", body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn balance(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(f): JsonBody<SessionFacts>,
) -> Result<Json<Balance>, AppError> {
    if f.given.0 < 0 {
        return Err(AppError::invalid(
            "given",
            "micrograms given cannot be negative",
        ));
    }
    // The record's facts on the ledger of the session's own site; the body may only add a
    // `given` the record does not document yet, and a contradiction is refused.
    let claim = BalanceClaim {
        patient_id: (f.patient_id != 0).then_some(f.patient_id),
        given: Some(f.given),
        cancelled: Some(f.cancelled),
    };
    Ok(Json(
        s.store
            .ledger_balance(&p.actor, ketcare_core::SessionId::new(f.session_id), &claim)
            .await?,
    ))
}

/// The superbill for a session, from what its record documents.
#[utoipa::path(post, path = "/api/v1/billing/superbill", request_body = SessionFacts, responses((status = 200, description = "the superbill coded from the facts given", body = Superbill), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn superbill(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(f): JsonBody<SessionFacts>,
) -> Result<Json<Superbill>, AppError> {
    let site = p.site;
    superbill_at(&s, &p, &f, site).await
}

/// The superbill for `f` with the billing switches in force at `site` (the organisation's when
/// none is known).
async fn superbill_at(
    s: &AppState,
    p: &Principal,
    f: &SessionFacts,
    site: Option<i64>,
) -> Result<Json<Superbill>, AppError> {
    let values = service::site_values(s.store.as_ref(), site).await?;
    let prices = s.store.prices(&p.actor).await?;
    billing::superbill(
        f,
        &service::code_book()?,
        &prices,
        service::billing_site(&values),
    )
    .map(Json)
    .map_err(|e| AppError::invalid(&e.field, e.message))
}

/// The superbill for a session from its own record (signed or current): infusion start and
/// stop, the drug and the mg given as the session documents them.
#[utoipa::path(get, path = "/api/v1/sessions/{sid}/superbill", params(("sid" = i64, Path, description = "session id")), responses((status = 200, description = "the superbill coded from the session record", body = Superbill), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn session_superbill(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(sid): ApiPath<ketcare_core::SessionId>,
) -> Result<Json<Superbill>, AppError> {
    // The switches of the site the session was held at.
    let (f, site) = service::facts_of_session(s.store.as_ref(), &p.actor, sid).await?;
    superbill_at(&s, &p, &f, Some(site)).await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EstimateRequest {
    pub template_id: String,
    /// A typical session of the course (its dose and infusion time).
    pub typical: SessionFacts,
}

/// A self-pay estimate for a whole course: the template's sessions × a typical superbill.
#[utoipa::path(post, path = "/api/v1/billing/estimate", request_body = EstimateRequest, responses((status = 200, description = "the self-pay estimate", body = Estimate), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn estimate(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(r): JsonBody<EstimateRequest>,
) -> Result<Json<Estimate>, AppError> {
    let values = service::site_values(s.store.as_ref(), p.site).await?;
    let (_, _, sessions) = service::plan(
        &values,
        &r.template_id,
        s.today(),
        jiff::civil::Time::midnight(),
    )?;
    let prices = s.store.prices(&p.actor).await?;
    billing::course_estimate(
        &r.typical,
        sessions.len() as u32,
        &service::code_book()?,
        &prices,
        service::billing_site(&values),
    )
    .map(Json)
    .map_err(|e| AppError::invalid(&e.field, e.message))
}

/// Books one maintenance or booster session (its length from the template's slot rules).
#[utoipa::path(post, path = "/api/v1/schedule/sessions", request_body = service::SessionRequest, responses((status = 201, description = "the booking", body = Booking), (status = 409, description = "conflicts, nothing booked", body = CourseRefused), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn book_session(
    State(s): State<AppState>,
    p: Principal,
    JsonBody(req): JsonBody<service::SessionRequest>,
) -> Result<Response, AppError> {
    let (requested, outcome) = service::book_session(s.store.as_ref(), &p.actor, &req).await?;
    Ok(match outcome {
        BookOutcome::Booked { mut bookings, .. } => match bookings.pop() {
            Some(b) => (StatusCode::CREATED, Json(b)).into_response(),
            None => AppError::Internal.into_response(),
        },
        BookOutcome::Refused(list) => (
            StatusCode::CONFLICT,
            Json(CourseRefused {
                error: "conflict",
                message: "the session conflicts; nothing was booked".into(),
                sessions: list
                    .into_iter()
                    .map(|(_, conflicts)| SessionConflicts {
                        session: 1,
                        planned: PlannedSession {
                            index: 1,
                            phase: requested.phase,
                            start: requested.start,
                            end: requested.end,
                        },
                        conflicts,
                    })
                    .collect(),
            }),
        )
            .into_response(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PriceChange {
    /// Price per unit in cents (the site's own price list).
    pub cents: i64,
}

/// Sets the site's price for a billing code (administrators; audited).
#[utoipa::path(put, path = "/api/v1/billing/prices/{code}", params(("code" = String, Path)), request_body = PriceChange, responses((status = 204, description = "saved"), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_price(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(code): ApiPath<String>,
    JsonBody(c): JsonBody<PriceChange>,
) -> Result<StatusCode, AppError> {
    s.store.set_price(&p.actor, &code, c.cents).await?;
    Ok(StatusCode::NO_CONTENT)
}
