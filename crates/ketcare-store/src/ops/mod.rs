//! Operations: chairs and bookings, consent, the controlled-substance ledger, billing.
//!
//! Decisions are made by `ketcare_ops` inside the write transaction (conflicts are checked
//! against the bookings as they are while the audit head is locked, and a ledger event is
//! replayed against every earlier entry), so two schedulers or two nurses cannot race past a
//! rule. Counts and discrepancies are ledger entries; their state is the ledger replayed.
//!
//! This module holds the `OpsStore` trait, its shared types and helpers; each aggregate's
//! queries and row types are in its own file (`schedule`, `consent`, `ledger`, `billing`).

use crate::sql::{Tx, Unit, corrupt, load_patient, now_rfc3339};
use crate::{Result, SqlStore, StoreError, require};
use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::DateTime;
use ketcare_core::audit::AuditEvent;
use ketcare_core::{
    Actor, AgeBands, BookingId, ConsentDocumentId, ConsentId, FieldErrors, PatientId, Permission,
    Role, SessionId, UserId,
};
use ketcare_ops::Drug;
use ketcare_ops::SessionFacts;
use ketcare_ops::billing::PriceList;
use ketcare_ops::consent::{
    Assent, ConsentDocument, ConsentQuery, ConsentSignature, ConsentStatus, Section, Signer,
};
use ketcare_ops::ledger::chain::{self, LedgerBreak, LedgerRecord};
use ketcare_ops::ledger::products::Stock;
use ketcare_ops::ledger::{Balance, LedgerActor, LedgerEvent, LedgerState, SessionTarget, Witness};
use ketcare_ops::schedule::{
    Booking, BookingStatus, Conflict, MoveMode, MovePlan, OnSite, PhaseKind, Staffing,
};
use sqlx::Row;

mod billing;
mod consent;
mod ledger;
mod schedule;

pub(crate) use consent::consent_status_tx;
pub(crate) use ledger::{ledger_records_tx, replay, session_site};
pub(crate) use schedule::left_uncovered;

/// A treatment chair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chair {
    pub id: i64,
    pub name: String,
    /// The site the chair is at.
    pub site_id: i64,
}

/// A course being booked: its patient, template and protocol.
#[derive(Debug, Clone)]
pub struct NewCourse {
    pub patient_id: PatientId,
    pub template_id: String,
    pub protocol_id: String,
}

/// The outcome of a booking request: booked, or refused with each session's conflicts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum BookOutcome {
    Booked {
        course_id: Option<i64>,
        bookings: Vec<Booking>,
    },
    /// (index of the requested session, its conflicts); nothing was written.
    Refused(Vec<(usize, Vec<Conflict>)>),
}

/// A new consent document version (the version number is the next one for the protocol).
#[derive(Debug, Clone)]
pub struct NewConsentDocument {
    pub protocol_id: String,
    pub protocol_version: u32,
    pub off_label: bool,
    pub title: String,
    pub sections: Vec<Section>,
    pub valid_days: Option<u32>,
}

/// A signature to record under the protocol's current document.
#[derive(Debug, Clone)]
pub struct NewSignature {
    pub patient_id: PatientId,
    pub protocol_id: String,
    pub signer: Signer,
    pub assent: Option<Assent>,
    pub signed_at: Timestamp,
}

/// Another site's transfer to this site that this site's ledger has not received yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TransferDue {
    pub from_site: i64,
    pub from_site_name: String,
    /// The transfer's entry in the sending site's ledger (what `transfer_in` names).
    pub from_entry: i64,
    pub sent_at: String,
    pub sent_by: String,
    pub invoice: String,
    pub lines: Vec<ketcare_ops::ledger::TransferLine>,
}

/// What a caller says of a session when asking whether its ledger balances: each figure is
/// checked against the record, and `given` is used only while the record documents none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BalanceClaim {
    pub patient_id: Option<i64>,
    pub given: Option<ketcare_ops::Micrograms>,
    pub cancelled: Option<bool>,
}

/// The result of checking the ledger's chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerVerification {
    /// Entries checked, over every site's chain.
    pub entries: u64,
    /// The first break found.
    pub broken: Option<LedgerBreak>,
    /// The site whose chain is broken.
    pub site_id: Option<i64>,
}

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait OpsStore: Send + Sync {
    // Chairs and rosters
    /// Adds a chair at the actor's only site.
    async fn add_chair(&self, actor: &Actor, name: &str) -> Result<Chair> {
        self.add_chair_at(actor, None, name).await
    }
    /// Adds a chair at `site` (the actor's only site when `None`).
    async fn add_chair_at(&self, actor: &Actor, site: Option<i64>, name: &str) -> Result<Chair>;
    /// The chairs of the actor's sites.
    async fn chairs(&self, actor: &Actor) -> Result<Vec<Chair>>;
    /// Puts a prescriber on site from `start` to `end` (clinic wall-clock time) at the actor's
    /// only site.
    async fn add_on_site(
        &self,
        actor: &Actor,
        user: UserId,
        start: DateTime,
        end: DateTime,
    ) -> Result<OnSite> {
        self.add_on_site_at(actor, None, user, start, end).await
    }
    /// Puts a prescriber on `site` (the actor's only site when `None`); they must work there.
    async fn add_on_site_at(
        &self,
        actor: &Actor,
        site: Option<i64>,
        user: UserId,
        start: DateTime,
        end: DateTime,
    ) -> Result<OnSite>;
    async fn on_site(&self, actor: &Actor, from: DateTime, to: DateTime) -> Result<Vec<OnSite>>;
    /// Takes a roster entry off (audited); refused, naming `on_site`, while it alone covers a
    /// booking that needs a prescriber on site.
    async fn remove_on_site(&self, actor: &Actor, id: i64) -> Result<OnSite>;
    /// Staff of one role at the actor's sites, for choosing a nurse, a prescriber or a witness,
    /// and the FHIR staff directory (id, username, name; the patient-read right).
    async fn staff(&self, actor: &Actor, role: Role) -> Result<Vec<(i64, String, String)>>;

    // Bookings
    /// Bookings that start before `to` and end after `from` (every status).
    async fn bookings(&self, actor: &Actor, from: DateTime, to: DateTime) -> Result<Vec<Booking>>;
    async fn booking(&self, actor: &Actor, id: BookingId) -> Result<Booking>;
    /// The patients with a booked course of each protocol (protocol id, patient ids in id
    /// order), for FHIR `Group`s and group exports. The clinical-read right; one audited read.
    async fn course_groups(&self, actor: &Actor) -> Result<Vec<(String, Vec<PatientId>)>>;
    /// One patient's bookings, every status, in start order (the patient-read right; audited).
    async fn patient_bookings(&self, actor: &Actor, patient: PatientId) -> Result<Vec<Booking>>;
    /// Books sessions (a course when `course` is given) if none conflicts; else writes nothing
    /// and returns every conflict. `id`, `course_id` and `status` of the requests are ignored.
    async fn book(
        &self,
        actor: &Actor,
        course: Option<&NewCourse>,
        requests: &[Booking],
        staffing: Staffing,
    ) -> Result<BookOutcome>;
    /// Plans moving a booking; when `apply` and the plan is clear, moves every booking in it.
    async fn move_booking(
        &self,
        actor: &Actor,
        id: BookingId,
        new_start: DateTime,
        mode: MoveMode,
        staffing: Staffing,
        apply: bool,
    ) -> Result<MovePlan>;
    /// Records attendance, a cancellation or a no-show (with a reason).
    async fn set_booking_status(
        &self,
        actor: &Actor,
        id: BookingId,
        status: BookingStatus,
        reason: &str,
    ) -> Result<Booking>;

    // Consent
    async fn add_consent_document(
        &self,
        actor: &Actor,
        doc: &NewConsentDocument,
    ) -> Result<ConsentDocument>;
    /// Every version of every document, newest first.
    async fn consent_documents(&self, actor: &Actor) -> Result<Vec<ConsentDocument>>;
    /// The newest document version of a protocol.
    async fn current_consent_document(
        &self,
        actor: &Actor,
        protocol_id: &str,
    ) -> Result<Option<ConsentDocument>>;
    async fn record_consent(&self, actor: &Actor, sig: &NewSignature) -> Result<ConsentSignature>;
    /// Withdraws one of the patient's consents as of `at`, recording who and why; from then on
    /// it is not valid. A consent already withdrawn, or another patient's, is not found.
    async fn withdraw_consent(
        &self,
        actor: &Actor,
        patient: PatientId,
        id: ConsentId,
        at: Timestamp,
        reason: &str,
    ) -> Result<ConsentSignature>;
    async fn consent_signatures(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<ConsentSignature>>;
    /// Is consent valid for this patient under this protocol version at `at`? (audited)
    async fn consent_status(
        &self,
        actor: &Actor,
        patient: PatientId,
        protocol_id: &str,
        protocol_version: u32,
        at: Timestamp,
    ) -> Result<ConsentStatus>;

    // Ledger
    /// Appends an event if the ledger's rules accept it. Witnesses are named by user id; their
    /// name and role are taken from their accounts, never from the request.
    async fn ledger_append(&self, actor: &Actor, event: &LedgerEvent) -> Result<LedgerRecord> {
        self.ledger_append_at(actor, None, event).await
    }
    /// Appends to `site`'s ledger: a draw or a waste always goes to its session's site (a
    /// contradicting `site` is refused); anything else to `site`, or to the actor's only site
    /// when `None` (refused, naming `site`, for an actor of several sites).
    async fn ledger_append_at(
        &self,
        actor: &Actor,
        site: Option<i64>,
        event: &LedgerEvent,
    ) -> Result<LedgerRecord>;
    async fn ledger_records(&self, actor: &Actor) -> Result<Vec<LedgerRecord>> {
        self.ledger_records_at(actor, None).await
    }
    /// `site`'s chain (the actor's only site when `None`).
    async fn ledger_records_at(
        &self,
        actor: &Actor,
        site: Option<i64>,
    ) -> Result<Vec<LedgerRecord>>;
    /// `site`'s ledger replayed (the actor's only site when `None`).
    async fn ledger_state_at(&self, actor: &Actor, site: Option<i64>) -> Result<LedgerState>;
    /// The ledger of the site `session` was held at, replayed (for the session's balance).
    async fn session_ledger_state(&self, actor: &Actor, session: i64) -> Result<LedgerState>;
    /// Whether `session`'s ledger balances, on the record's facts ([`BalanceClaim`]).
    async fn ledger_balance(
        &self,
        actor: &Actor,
        session: SessionId,
        claimed: &BalanceClaim,
    ) -> Result<Balance>;
    /// The ledger replayed: containers, sessions, discrepancies, reports.
    async fn ledger_state(&self, actor: &Actor) -> Result<LedgerState> {
        self.ledger_state_at(actor, None).await
    }
    /// Checks the whole chain and names the first broken entry.
    async fn verify_ledger(&self) -> Result<LedgerVerification>;
    /// The other sites' transfers to `site` (the acting site when `None`) that its ledger has
    /// not received yet, oldest first (read under the ledger-read right; audited).
    async fn ledger_transfers_due(
        &self,
        actor: &Actor,
        site: Option<i64>,
    ) -> Result<Vec<TransferDue>>;

    // Billing
    async fn set_price(&self, actor: &Actor, code: &str, cents: i64) -> Result<()>;
    async fn prices(&self, actor: &Actor) -> Result<PriceList>;
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::Invalid(FieldErrors::single(field, message))
}

async fn audit(
    tx: &mut Unit<'_>,
    action: &str,
    patient: Option<i64>,
    detail: String,
) -> Result<()> {
    tx.audit(&AuditEvent::new(action, patient, detail)).await
}

async fn user_exists(tx: &mut Tx, id: i64) -> Result<Option<(String, Role)>> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT username, role FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    row.map(|(username, role)| {
        Ok((
            username,
            Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        ))
    })
    .transpose()
}

/// Each method calls the function of the same name in its aggregate's file.
#[async_trait]
impl OpsStore for SqlStore {
    async fn add_chair_at(&self, actor: &Actor, site: Option<i64>, name: &str) -> Result<Chair> {
        SqlStore::add_chair(self, actor, site, name).await
    }

    async fn chairs(&self, actor: &Actor) -> Result<Vec<Chair>> {
        SqlStore::chairs(self, actor).await
    }

    async fn add_on_site_at(
        &self,
        actor: &Actor,
        site: Option<i64>,
        user: UserId,
        start: DateTime,
        end: DateTime,
    ) -> Result<OnSite> {
        SqlStore::add_on_site(self, actor, site, user, start, end).await
    }

    async fn on_site(&self, actor: &Actor, from: DateTime, to: DateTime) -> Result<Vec<OnSite>> {
        SqlStore::on_site(self, actor, from, to).await
    }

    async fn remove_on_site(&self, actor: &Actor, id: i64) -> Result<OnSite> {
        SqlStore::remove_on_site(self, actor, id).await
    }

    async fn staff(&self, actor: &Actor, role: Role) -> Result<Vec<(i64, String, String)>> {
        SqlStore::staff(self, actor, role).await
    }

    async fn bookings(&self, actor: &Actor, from: DateTime, to: DateTime) -> Result<Vec<Booking>> {
        SqlStore::bookings(self, actor, from, to).await
    }

    async fn patient_bookings(&self, actor: &Actor, patient: PatientId) -> Result<Vec<Booking>> {
        SqlStore::patient_bookings(self, actor, patient).await
    }

    async fn course_groups(&self, actor: &Actor) -> Result<Vec<(String, Vec<PatientId>)>> {
        SqlStore::course_groups(self, actor).await
    }

    async fn booking(&self, actor: &Actor, id: BookingId) -> Result<Booking> {
        SqlStore::booking(self, actor, id).await
    }

    async fn book(
        &self,
        actor: &Actor,
        course: Option<&NewCourse>,
        requests: &[Booking],
        staffing: Staffing,
    ) -> Result<BookOutcome> {
        SqlStore::book(self, actor, course, requests, staffing).await
    }

    async fn move_booking(
        &self,
        actor: &Actor,
        id: BookingId,
        new_start: DateTime,
        mode: MoveMode,
        staffing: Staffing,
        apply: bool,
    ) -> Result<MovePlan> {
        SqlStore::move_booking(self, actor, id, new_start, mode, staffing, apply).await
    }

    async fn set_booking_status(
        &self,
        actor: &Actor,
        id: BookingId,
        status: BookingStatus,
        reason: &str,
    ) -> Result<Booking> {
        SqlStore::set_booking_status(self, actor, id, status, reason).await
    }

    async fn add_consent_document(
        &self,
        actor: &Actor,
        doc: &NewConsentDocument,
    ) -> Result<ConsentDocument> {
        SqlStore::add_consent_document(self, actor, doc).await
    }

    async fn consent_documents(&self, actor: &Actor) -> Result<Vec<ConsentDocument>> {
        SqlStore::consent_documents(self, actor).await
    }

    async fn current_consent_document(
        &self,
        actor: &Actor,
        protocol_id: &str,
    ) -> Result<Option<ConsentDocument>> {
        SqlStore::current_consent_document(self, actor, protocol_id).await
    }

    async fn record_consent(&self, actor: &Actor, sig: &NewSignature) -> Result<ConsentSignature> {
        SqlStore::record_consent(self, actor, sig).await
    }

    async fn withdraw_consent(
        &self,
        actor: &Actor,
        patient: PatientId,
        id: ConsentId,
        at: Timestamp,
        reason: &str,
    ) -> Result<ConsentSignature> {
        SqlStore::withdraw_consent(self, actor, patient, id, at, reason).await
    }

    async fn consent_signatures(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<ConsentSignature>> {
        SqlStore::consent_signatures(self, actor, patient).await
    }

    async fn consent_status(
        &self,
        actor: &Actor,
        patient: PatientId,
        protocol_id: &str,
        protocol_version: u32,
        at: Timestamp,
    ) -> Result<ConsentStatus> {
        SqlStore::consent_status(self, actor, patient, protocol_id, protocol_version, at).await
    }

    async fn ledger_append_at(
        &self,
        actor: &Actor,
        site: Option<i64>,
        event: &LedgerEvent,
    ) -> Result<LedgerRecord> {
        SqlStore::ledger_append(self, actor, site, event).await
    }

    async fn ledger_records_at(
        &self,
        actor: &Actor,
        site: Option<i64>,
    ) -> Result<Vec<LedgerRecord>> {
        SqlStore::ledger_records(self, actor, site).await
    }

    async fn ledger_state_at(&self, actor: &Actor, site: Option<i64>) -> Result<LedgerState> {
        SqlStore::ledger_state(self, actor, site).await
    }

    async fn session_ledger_state(&self, actor: &Actor, session: i64) -> Result<LedgerState> {
        SqlStore::session_ledger_state(self, actor, session).await
    }

    async fn ledger_balance(
        &self,
        actor: &Actor,
        session: SessionId,
        claimed: &BalanceClaim,
    ) -> Result<Balance> {
        SqlStore::ledger_balance(self, actor, session, claimed).await
    }

    async fn verify_ledger(&self) -> Result<LedgerVerification> {
        SqlStore::verify_ledger(self).await
    }

    async fn ledger_transfers_due(
        &self,
        actor: &Actor,
        site: Option<i64>,
    ) -> Result<Vec<TransferDue>> {
        SqlStore::ledger_transfers_due(self, actor, site).await
    }

    async fn set_price(&self, actor: &Actor, code: &str, cents: i64) -> Result<()> {
        SqlStore::set_price(self, actor, code, cents).await
    }

    async fn prices(&self, actor: &Actor) -> Result<PriceList> {
        SqlStore::prices(self, actor).await
    }
}
