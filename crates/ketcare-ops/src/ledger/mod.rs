//! The Schedule III ledger: stock by product, NDC, lot and expiry; every container's balance;
//! draws tied to sessions; waste with a witness; counts with discrepancies held open until
//! resolved; destruction with two witnesses; theft/loss reports; inventories.
//!
//! The ledger is a list of events. [`LedgerState::apply`] is the only way an event becomes part
//! of it: an event that would lose a microgram, break a witness rule or overdraw a container is
//! refused with the reason. The stored form is hash-chained ([`chain`]) like the audit log.
//! The question the session asks before signing is [`session_balance`].

pub mod chain;
pub mod entries;
pub mod products;
pub mod reports;

use crate::amount::Micrograms;
use crate::session_facts::{Drug, SessionFacts};
use jiff::Timestamp;
use jiff::civil::Date;
use ketcare_core::{Permission, Role};
use products::{Form, Product, Stock};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who records an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerActor {
    pub user_id: i64,
    pub username: String,
    #[schema(value_type = String)]
    pub role: Role,
}

/// A second person who signs for what they saw. The edge proves their identity (they re-enter
/// their own password) before it builds one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Witness {
    pub user_id: i64,
    pub username: String,
    #[schema(value_type = String)]
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InventoryKind {
    Initial,
    Biennial,
}

/// Inventories are taken at the opening or the close of business [R45b].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BusinessTime {
    Opening,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CountLine {
    pub container: i64,
    /// What is in the container, in µL (an estimate is acceptable for Schedule III [R45]).
    pub counted_ul: i64,
}

/// One line of an inventory: drug name, strength, form, containers and total quantity [R45b].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InventoryLine {
    pub product: String,
    pub label: String,
    pub strength: String,
    pub form: Form,
    pub containers: u32,
    pub total_ul: i64,
    pub total_ug: i64,
}

/// One container moved from one site's ledger to another's, as the sending site's book had it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransferLine {
    /// The container's number in the sending site's ledger.
    pub container: i64,
    pub product: String,
    pub ndc: String,
    pub lot: String,
    #[schema(value_type = String)]
    pub expiry: Date,
    pub remaining_ul: i64,
    pub remaining_ug: i64,
}

/// An entry of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerEvent {
    /// Stock received against an invoice; `quantity` containers of one product, NDC and lot.
    Receive {
        product: String,
        ndc: String,
        lot: String,
        #[schema(value_type = String)]
        expiry: Date,
        quantity: u32,
        invoice: String,
        supplier: String,
    },
    /// Drug drawn from a container for a session (the first draw opens the container).
    Draw {
        container: i64,
        session_id: i64,
        /// The session's patient; may be omitted (0), when the ledger takes it from the
        /// session record. A different patient is refused.
        #[serde(default)]
        patient_id: i64,
        volume_ul: i64,
    },
    /// Drawn drug not given, wasted in front of a witness.
    Waste {
        session_id: i64,
        amount_ug: i64,
        witness: Option<Witness>,
        note: String,
    },
    /// A shift or day count of the containers listed.
    Count {
        period: String,
        lines: Vec<CountLine>,
    },
    /// A discrepancy closed with a reason; `adjust` sets the book balance to what was counted.
    Resolve {
        discrepancy: i64,
        reason: String,
        adjust: bool,
    },
    /// Stock destroyed on site in front of two witnesses (DEA Form 41) [R46].
    Destroy {
        container: i64,
        method: String,
        witnesses: Vec<Witness>,
    },
    /// Theft or significant loss discovered.
    TheftLoss {
        #[schema(value_type = String)]
        discovered: Date,
        theft: bool,
        containers: Vec<i64>,
        amount_ug: i64,
        description: String,
    },
    /// An initial or biennial inventory, a stand-alone document [R45].
    Inventory {
        inventory: InventoryKind,
        #[schema(value_type = String)]
        taken: Date,
        time: BusinessTime,
        registrant_name: String,
        registrant_address: String,
        dea_number: String,
        lines: Vec<InventoryLine>,
    },
    /// Sealed containers sent to another site of the organisation (another DEA registration):
    /// they leave this site's stock. The receiving site enters its side with `TransferIn`
    /// naming this entry; both sides carry the same invoice.
    TransferOut {
        to_site: i64,
        /// The receiving site's DEA registration, as its site record has it (the ledger fills
        /// it; a different one is refused).
        #[serde(default)]
        to_registration: String,
        /// This site's own DEA registration when it sent them (the ledger fills it; the
        /// receiving side copies it from here).
        #[serde(default)]
        from_registration: String,
        containers: Vec<i64>,
        /// The transfer's invoice or order number, shared by both sides.
        invoice: String,
        /// What left, as this site's book had it (the ledger fills it from the containers).
        #[serde(default)]
        lines: Vec<TransferLine>,
    },
    /// The receiving side of another site's `TransferOut` (entry `from_entry` of site
    /// `from_site`'s ledger): its containers join this site's stock, sealed, as that entry lists
    /// them. The ledger fills the registration, invoice and lines from that entry.
    TransferIn {
        from_site: i64,
        from_entry: i64,
        #[serde(default)]
        from_registration: String,
        #[serde(default)]
        invoice: String,
        #[serde(default)]
        lines: Vec<TransferLine>,
    },
}

impl LedgerEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Receive { .. } => "receive",
            Self::Draw { .. } => "draw",
            Self::Waste { .. } => "waste",
            Self::Count { .. } => "count",
            Self::Resolve { .. } => "resolve",
            Self::Destroy { .. } => "destroy",
            Self::TheftLoss { .. } => "theft_loss",
            Self::Inventory { .. } => "inventory",
            Self::TransferOut { .. } => "transfer_out",
            Self::TransferIn { .. } => "transfer_in",
        }
    }
    /// The permission the actor needs to record this event.
    pub fn permission(&self) -> Permission {
        match self {
            Self::Draw { .. } | Self::Waste { .. } => Permission::LedgerDraw,
            _ => Permission::LedgerManage,
        }
    }
    pub fn session_id(&self) -> Option<i64> {
        match self {
            Self::Draw { session_id, .. } | Self::Waste { session_id, .. } => Some(*session_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContainerStatus {
    Sealed,
    Open,
    Empty,
    Destroyed,
    Lost,
    /// Sent to another site (its `TransferOut` entry): no longer in this site's stock.
    Transferred,
}

/// One vial or device, with its book balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Container {
    pub id: i64,
    pub product: String,
    pub ndc: String,
    pub lot: String,
    #[schema(value_type = String)]
    pub expiry: Date,
    pub invoice: String,
    pub received_seq: i64,
    pub remaining_ul: i64,
    pub remaining_ug: i64,
    #[schema(value_type = Option<String>)]
    pub opened_at: Option<Timestamp>,
    pub status: ContainerStatus,
}

impl Container {
    /// What the book says is in the container, in µL: nothing once destroyed or lost.
    pub fn book_ul(&self) -> i64 {
        match self.status {
            ContainerStatus::Destroyed | ContainerStatus::Lost | ContainerStatus::Transferred => 0,
            _ => self.remaining_ul,
        }
    }
}

/// What the ledger knows about one session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SessionLedger {
    pub patient_id: i64,
    pub drawn_ug: i64,
    pub wasted_ug: i64,
    pub drawn_by: Vec<i64>,
    pub entries: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Discrepancy {
    /// The sequence number of the count that found it.
    pub id: i64,
    pub container: i64,
    pub expected_ul: i64,
    pub counted_ul: i64,
    pub counted_by: i64,
    pub resolution: Option<Resolution>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Resolution {
    pub seq: i64,
    pub reason: String,
    pub by: i64,
    pub adjusted: bool,
}

/// A theft/loss report with its deadlines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TheftLossReport {
    pub seq: i64,
    #[schema(value_type = String)]
    pub discovered: Date,
    pub theft: bool,
    pub amount_ug: i64,
    pub description: String,
    pub deadlines: reports::Deadlines,
}

/// Why an event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field}: {message}")]
pub struct LedgerError {
    pub field: String,
    pub message: String,
}

fn refuse(field: &str, message: impl Into<String>) -> LedgerError {
    LedgerError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The ledger folded up to some point: containers, sessions, discrepancies, reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerState {
    pub containers: Vec<Container>,
    pub sessions: BTreeMap<i64, SessionLedger>,
    pub discrepancies: Vec<Discrepancy>,
    pub reports: Vec<TheftLossReport>,
    pub last_inventory: Option<Date>,
    #[serde(skip)]
    stock: Stock,
    /// The other sites' transfers this ledger has received: (site, entry).
    #[serde(skip)]
    received: std::collections::BTreeSet<(i64, i64)>,
}

/// Checks a witness: a different person from the one recording, and someone whose role may
/// handle the drug at the chair (an administrator account, for example, may not witness).
fn check_witness(
    field: &str,
    actor: &LedgerActor,
    w: &Witness,
    also_not: &[i64],
) -> Result<(), LedgerError> {
    if w.user_id == actor.user_id {
        return Err(refuse(field, "the witness must be a different person"));
    }
    if also_not.contains(&w.user_id) {
        return Err(refuse(
            field,
            "the witness drew or gave this drug; another person must witness",
        ));
    }
    if !w.role.allows(Permission::LedgerDraw) {
        return Err(refuse(
            field,
            format!("a {} may not witness controlled-substance handling", w.role),
        ));
    }
    Ok(())
}

impl LedgerState {
    pub fn new(stock: Stock) -> Self {
        Self {
            containers: Vec::new(),
            sessions: BTreeMap::new(),
            discrepancies: Vec::new(),
            reports: Vec::new(),
            last_inventory: None,
            stock,
            received: std::collections::BTreeSet::new(),
        }
    }

    /// Whether entry `entry` of site `site`'s ledger (a transfer to this site) was received.
    pub fn has_received(&self, site: i64, entry: i64) -> bool {
        self.received.contains(&(site, entry))
    }

    /// The lines of a transfer of `containers` as this book has them: each must exist, be
    /// sealed (an opened multi-dose vial stays where it was opened) and be named once.
    pub fn transfer_lines(&self, containers: &[i64]) -> Result<Vec<TransferLine>, LedgerError> {
        if containers.is_empty() {
            return Err(refuse("containers", "name at least one sealed container"));
        }
        if containers.len() > 1000 {
            return Err(refuse("containers", "at most 1000 containers per transfer"));
        }
        let mut out = Vec::with_capacity(containers.len());
        for (i, id) in containers.iter().enumerate() {
            let c = self
                .container(*id)
                .ok_or_else(|| refuse("containers", format!("no container {id}")))?;
            if containers[..i].contains(id) {
                return Err(refuse(
                    "containers",
                    format!("container {id} is listed twice"),
                ));
            }
            if c.status != ContainerStatus::Sealed {
                return Err(refuse(
                    "containers",
                    format!(
                        "container {id} is {}: only sealed containers move between sites",
                        format!("{:?}", c.status).to_lowercase()
                    ),
                ));
            }
            out.push(TransferLine {
                container: c.id,
                product: c.product.clone(),
                ndc: c.ndc.clone(),
                lot: c.lot.clone(),
                expiry: c.expiry,
                remaining_ul: c.remaining_ul,
                remaining_ug: c.remaining_ug,
            });
        }
        Ok(out)
    }

    pub fn stock(&self) -> &Stock {
        &self.stock
    }

    pub fn container(&self, id: i64) -> Option<&Container> {
        self.containers.iter().find(|c| c.id == id)
    }

    pub fn product_of(&self, c: &Container) -> Option<&Product> {
        self.stock.product(&c.product)
    }

    pub fn open_discrepancies(&self) -> impl Iterator<Item = &Discrepancy> {
        self.discrepancies.iter().filter(|d| d.resolution.is_none())
    }

    /// Applies one event as entry `seq`, recorded by `actor` at `at`; refuses it, changing
    /// nothing, if it would break a rule.
    pub fn apply(
        &mut self,
        seq: i64,
        at: Timestamp,
        actor: &LedgerActor,
        event: &LedgerEvent,
    ) -> Result<(), LedgerError> {
        if !actor.role.allows(event.permission()) {
            return Err(refuse(
                "actor",
                format!("a {} may not record a {}", actor.role, event.kind()),
            ));
        }
        let today = at.to_zoned(jiff::tz::TimeZone::UTC).date();
        match event {
            LedgerEvent::Receive {
                product,
                ndc,
                lot,
                expiry,
                quantity,
                invoice,
                supplier,
            } => {
                let p = self.stock.product(product).ok_or_else(|| {
                    refuse(
                        "product",
                        format!(
                            "unknown product `{product}`; expected one of {}",
                            self.stock
                                .products
                                .iter()
                                .map(|p| p.key.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                for (f, v) in [
                    ("ndc", ndc),
                    ("lot", lot),
                    ("invoice", invoice),
                    ("supplier", supplier),
                ] {
                    if v.trim().is_empty() {
                        return Err(refuse(f, "required"));
                    }
                }
                if !valid_ndc(ndc) {
                    return Err(refuse(
                        "ndc",
                        "an NDC is 10 or 11 digits, in groups separated by hyphens (e.g. 50458-028-02)",
                    ));
                }
                if *quantity == 0 || *quantity > 1000 {
                    return Err(refuse("quantity", "between 1 and 1000 containers"));
                }
                if *expiry <= today {
                    return Err(refuse("expiry", "this stock has already expired"));
                }
                let (ul, ug) = (p.container_ul, p.container_ug);
                let base = self.containers.len() as i64;
                for i in 0..i64::from(*quantity) {
                    self.containers.push(Container {
                        id: base + i + 1,
                        product: product.clone(),
                        ndc: ndc.trim().to_owned(),
                        lot: lot.trim().to_owned(),
                        expiry: *expiry,
                        invoice: invoice.trim().to_owned(),
                        received_seq: seq,
                        remaining_ul: ul,
                        remaining_ug: ug,
                        opened_at: None,
                        status: ContainerStatus::Sealed,
                    });
                }
            }
            LedgerEvent::Draw {
                container,
                session_id,
                patient_id,
                volume_ul,
            } => {
                let c = self
                    .container(*container)
                    .ok_or_else(|| refuse("container", format!("no container {container}")))?;
                let p = self
                    .product_of(c)
                    .ok_or_else(|| refuse("container", "its product is no longer known"))?;
                if !matches!(c.status, ContainerStatus::Sealed | ContainerStatus::Open) {
                    return Err(refuse(
                        "container",
                        format!("container {container} is {:?}", c.status).to_lowercase(),
                    ));
                }
                if c.expiry < today {
                    return Err(refuse(
                        "container",
                        format!("container {container} expired on {}", c.expiry),
                    ));
                }
                if *volume_ul <= 0 {
                    return Err(refuse("volume_ml", "must be more than 0"));
                }
                if p.form == Form::Device && *volume_ul != c.remaining_ul {
                    return Err(refuse("volume_ml", "a single-use device is drawn whole"));
                }
                if *volume_ul > c.remaining_ul {
                    return Err(refuse(
                        "volume_ml",
                        format!(
                            "only {} mL remain in container {container}",
                            crate::amount::Microlitres(c.remaining_ul)
                        ),
                    ));
                }
                let ug = p.ug_in(*volume_ul);
                if let Some(s) = self.sessions.get(session_id)
                    && s.patient_id != *patient_id
                {
                    return Err(refuse(
                        "patient_id",
                        format!("session {session_id} belongs to another patient"),
                    ));
                }
                let idx = self
                    .containers
                    .iter()
                    .position(|c| c.id == *container)
                    .ok_or_else(|| refuse("container", "missing"))?;
                let c = &mut self.containers[idx];
                // The last draw takes what the book says is left, so rounding never strands a µg.
                let taken = if *volume_ul == c.remaining_ul {
                    c.remaining_ug
                } else {
                    ug
                };
                c.remaining_ul -= volume_ul;
                c.remaining_ug -= taken;
                c.opened_at.get_or_insert(at);
                c.status = if c.remaining_ul == 0 {
                    ContainerStatus::Empty
                } else {
                    ContainerStatus::Open
                };
                let s = self.sessions.entry(*session_id).or_default();
                s.patient_id = *patient_id;
                s.drawn_ug += taken;
                if !s.drawn_by.contains(&actor.user_id) {
                    s.drawn_by.push(actor.user_id);
                }
                s.entries.push(seq);
            }
            LedgerEvent::Waste {
                session_id,
                amount_ug,
                witness,
                ..
            } => {
                let s = self.sessions.get(session_id).ok_or_else(|| {
                    refuse(
                        "session_id",
                        format!("nothing was drawn for session {session_id}"),
                    )
                })?;
                let w = witness
                    .as_ref()
                    .ok_or_else(|| refuse("witness", "waste needs a witness"))?;
                let others: Vec<i64> = s.drawn_by.clone();
                check_witness("witness", actor, w, &others)?;
                if *amount_ug <= 0 {
                    return Err(refuse("amount_mg", "must be more than 0"));
                }
                if s.wasted_ug + amount_ug > s.drawn_ug {
                    return Err(refuse(
                        "amount_mg",
                        format!(
                            "more than was drawn: {} mg drawn, {} mg already wasted",
                            Micrograms(s.drawn_ug),
                            Micrograms(s.wasted_ug)
                        ),
                    ));
                }
                let s = self.sessions.entry(*session_id).or_default();
                s.wasted_ug += amount_ug;
                s.entries.push(seq);
            }
            LedgerEvent::Count { period, lines } => {
                if period.trim().is_empty() {
                    return Err(refuse("period", "say which shift or day this count is for"));
                }
                if lines.is_empty() {
                    return Err(refuse("lines", "a count lists at least one container"));
                }
                for (i, l) in lines.iter().enumerate() {
                    let c = self.container(l.container).ok_or_else(|| {
                        refuse(
                            &format!("lines[{i}].container"),
                            format!("no container {}", l.container),
                        )
                    })?;
                    if l.counted_ul < 0 {
                        return Err(refuse(
                            &format!("lines[{i}].counted_ml"),
                            "cannot be negative",
                        ));
                    }
                    if lines[..i].iter().any(|m| m.container == l.container) {
                        return Err(refuse(&format!("lines[{i}].container"), "listed twice"));
                    }
                    let expected = c.book_ul();
                    if expected != l.counted_ul {
                        self.discrepancies.push(Discrepancy {
                            id: seq,
                            container: l.container,
                            expected_ul: expected,
                            counted_ul: l.counted_ul,
                            counted_by: actor.user_id,
                            resolution: None,
                        });
                    }
                }
            }
            LedgerEvent::Resolve {
                discrepancy,
                reason,
                adjust,
            } => {
                if reason.trim().is_empty() {
                    return Err(refuse("reason", "a discrepancy is resolved with a reason"));
                }
                let idx = self
                    .discrepancies
                    .iter()
                    .position(|d| d.id == *discrepancy && d.resolution.is_none())
                    .ok_or_else(|| {
                        refuse("discrepancy", format!("no open discrepancy {discrepancy}"))
                    })?;
                let (container, counted) = (
                    self.discrepancies[idx].container,
                    self.discrepancies[idx].counted_ul,
                );
                if *adjust
                    && self.container(container).map(|c| c.status)
                        == Some(ContainerStatus::Transferred)
                {
                    return Err(refuse(
                        "adjust",
                        "the container was sent to another site: its book is that site's",
                    ));
                }
                self.discrepancies[idx].resolution = Some(Resolution {
                    seq,
                    reason: reason.trim().to_owned(),
                    by: actor.user_id,
                    adjusted: *adjust,
                });
                if *adjust {
                    let stock = self.stock.clone();
                    if let Some(c) = self.containers.iter_mut().find(|c| c.id == container) {
                        c.remaining_ul = counted;
                        c.remaining_ug = stock
                            .product(&c.product)
                            .map(|p| p.ug_in(counted))
                            .unwrap_or(0);
                        if counted == 0
                            && matches!(c.status, ContainerStatus::Open | ContainerStatus::Sealed)
                        {
                            c.status = ContainerStatus::Empty;
                        }
                    }
                }
            }
            LedgerEvent::Destroy {
                container,
                method,
                witnesses,
            } => {
                let c = self
                    .container(*container)
                    .ok_or_else(|| refuse("container", format!("no container {container}")))?;
                if matches!(c.status, ContainerStatus::Destroyed | ContainerStatus::Lost) {
                    return Err(refuse("container", "already destroyed or reported lost"));
                }
                if c.status == ContainerStatus::Transferred {
                    return Err(refuse(
                        "container",
                        "sent to another site: it is that site's",
                    ));
                }
                if method.trim().is_empty() {
                    return Err(refuse("method", "say how it was made non-retrievable"));
                }
                let need = self.stock.rules.destruction_witnesses.value as usize;
                if witnesses.len() < need {
                    return Err(refuse(
                        "witnesses",
                        format!("destruction needs {need} witnesses [R46]"),
                    ));
                }
                for (i, w) in witnesses.iter().enumerate() {
                    check_witness(&format!("witnesses[{i}]"), actor, w, &[])?;
                    if witnesses[..i].iter().any(|o| o.user_id == w.user_id) {
                        return Err(refuse(
                            &format!("witnesses[{i}]"),
                            "the witnesses must be different people",
                        ));
                    }
                }
                if let Some(c) = self.containers.iter_mut().find(|c| c.id == *container) {
                    c.remaining_ul = 0;
                    c.remaining_ug = 0;
                    c.status = ContainerStatus::Destroyed;
                }
            }
            LedgerEvent::TheftLoss {
                discovered,
                theft,
                containers,
                amount_ug,
                description,
            } => {
                if description.trim().is_empty() {
                    return Err(refuse("description", "describe what was found"));
                }
                if *discovered > today {
                    return Err(refuse("discovered", "cannot be in the future"));
                }
                if *amount_ug <= 0 && containers.is_empty() {
                    return Err(refuse("amount_mg", "say what was lost"));
                }
                for id in containers {
                    if self.container(*id).is_none() {
                        return Err(refuse("containers", format!("no container {id}")));
                    }
                }
                for c in self
                    .containers
                    .iter_mut()
                    .filter(|c| containers.contains(&c.id))
                {
                    c.status = ContainerStatus::Lost;
                    c.remaining_ul = 0;
                    c.remaining_ug = 0;
                }
                self.reports.push(TheftLossReport {
                    seq,
                    discovered: *discovered,
                    theft: *theft,
                    amount_ug: *amount_ug,
                    description: description.trim().to_owned(),
                    deadlines: reports::deadlines(*discovered, &self.stock.rules),
                });
            }
            LedgerEvent::Inventory {
                taken,
                registrant_name,
                registrant_address,
                dea_number,
                ..
            } => {
                for (f, v) in [
                    ("registrant_name", registrant_name),
                    ("registrant_address", registrant_address),
                    ("dea_number", dea_number),
                ] {
                    if v.trim().is_empty() {
                        return Err(refuse(f, "required on an inventory"));
                    }
                }
                if *taken > today {
                    return Err(refuse("taken", "cannot be in the future"));
                }
                self.last_inventory = Some(*taken);
            }
            LedgerEvent::TransferOut {
                to_site,
                to_registration,
                containers,
                invoice,
                lines,
                ..
            } => {
                if *to_site <= 0 {
                    return Err(refuse("to_site", "name the site the containers go to"));
                }
                if invoice.trim().is_empty() {
                    return Err(refuse(
                        "invoice",
                        "a transfer carries an invoice or order number",
                    ));
                }
                if !to_registration.is_empty() && !dea_registration_is_valid(to_registration) {
                    return Err(refuse(
                        "to_registration",
                        "a DEA registration is two letters and seven digits whose check digit matches",
                    ));
                }
                if *lines != self.transfer_lines(containers)? {
                    return Err(refuse(
                        "lines",
                        "must list the containers as this site's book has them",
                    ));
                }
                for c in self
                    .containers
                    .iter_mut()
                    .filter(|c| containers.contains(&c.id))
                {
                    c.remaining_ul = 0;
                    c.remaining_ug = 0;
                    c.status = ContainerStatus::Transferred;
                }
            }
            LedgerEvent::TransferIn {
                from_site,
                from_entry,
                invoice,
                lines,
                ..
            } => {
                if *from_site <= 0 {
                    return Err(refuse(
                        "from_site",
                        "name the site the containers came from",
                    ));
                }
                if *from_entry <= 0 {
                    return Err(refuse(
                        "from_entry",
                        "name the sending site's transfer entry",
                    ));
                }
                if self.received.contains(&(*from_site, *from_entry)) {
                    return Err(refuse(
                        "from_entry",
                        format!(
                            "entry {from_entry} of site {from_site}'s ledger was already received"
                        ),
                    ));
                }
                if lines.is_empty() {
                    return Err(refuse("from_entry", "the transfer lists no containers"));
                }
                if invoice.trim().is_empty() {
                    return Err(refuse(
                        "invoice",
                        "a transfer carries an invoice or order number",
                    ));
                }
                if let Some(l) = lines
                    .iter()
                    .find(|l| self.stock.product(&l.product).is_none())
                {
                    return Err(refuse("lines", format!("unknown product `{}`", l.product)));
                }
                let base = self.containers.len() as i64;
                for (i, l) in lines.iter().enumerate() {
                    self.containers.push(Container {
                        id: base + i as i64 + 1,
                        product: l.product.clone(),
                        ndc: l.ndc.clone(),
                        lot: l.lot.clone(),
                        expiry: l.expiry,
                        invoice: invoice.trim().to_owned(),
                        received_seq: seq,
                        remaining_ul: l.remaining_ul,
                        remaining_ug: l.remaining_ug,
                        opened_at: None,
                        status: ContainerStatus::Sealed,
                    });
                }
                self.received.insert((*from_site, *from_entry));
            }
        }
        Ok(())
    }

    /// The inventory lines of what is on hand now, per product.
    pub fn inventory_lines(&self) -> Vec<InventoryLine> {
        let mut out: Vec<InventoryLine> = Vec::new();
        for p in &self.stock.products {
            let on_hand: Vec<&Container> = self
                .containers
                .iter()
                .filter(|c| {
                    c.product == p.key
                        && matches!(c.status, ContainerStatus::Sealed | ContainerStatus::Open)
                })
                .collect();
            out.push(InventoryLine {
                product: p.key.clone(),
                label: p.label.clone(),
                strength: p.concentration_label(),
                form: p.form,
                containers: on_hand.len() as u32,
                total_ul: on_hand.iter().map(|c| c.remaining_ul).sum(),
                total_ug: on_hand.iter().map(|c| c.remaining_ug).sum(),
            });
        }
        out
    }
}

/// What the session record says about the session a draw or a waste names. The store loads it
/// from the session (and its verified order) in the transaction that appends the event; the
/// request's copy is never used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTarget {
    pub session_id: i64,
    /// The session's patient.
    pub patient_id: i64,
    /// The drug of the session's verified order.
    pub drug: Drug,
    /// The vial strength the verified order was prepared from (mg/mL in thousandths, as
    /// [`Product::milli_mg_per_ml`]), where the order names one.
    pub vial_milli_mg_per_ml: Option<i64>,
    /// Why a draw for this session is refused in its present state (no verified order yet,
    /// cancelled, signed); `None` when a draw is allowed.
    pub draw_refused: Option<String>,
    /// Why a waste for this session is refused (signed: the ledger balanced at the signature).
    pub waste_refused: Option<String>,
}

impl LedgerState {
    /// Checks a draw or a waste against the session it names, as the session record has it
    /// (`None`: no such session). A draw must name an existing session of that patient, in a
    /// phase that allows a draw, from a container of the drug (and vial strength, where the
    /// order names one) of the session's verified order; a waste must name an existing session
    /// with draws. Other events pass. Each refusal names the field.
    pub fn check_session(
        &self,
        event: &LedgerEvent,
        target: Option<&SessionTarget>,
    ) -> Result<(), LedgerError> {
        match event {
            LedgerEvent::Draw {
                container,
                session_id,
                patient_id,
                ..
            } => {
                let t = target
                    .ok_or_else(|| refuse("session_id", format!("no session {session_id}")))?;
                if t.patient_id != *patient_id {
                    return Err(refuse(
                        "patient_id",
                        format!("session {session_id} is another patient's"),
                    ));
                }
                if let Some(why) = &t.draw_refused {
                    return Err(refuse("session_id", why.clone()));
                }
                let c = self
                    .container(*container)
                    .ok_or_else(|| refuse("container", format!("no container {container}")))?;
                let p = self
                    .product_of(c)
                    .ok_or_else(|| refuse("container", "its product is no longer known"))?;
                if p.drug != t.drug {
                    return Err(refuse(
                        "container",
                        format!(
                            "container {container} holds {} ({}); session {session_id}'s verified order gives {}",
                            drug_name(p.drug),
                            p.label,
                            drug_name(t.drug)
                        ),
                    ));
                }
                if let Some(want) = t.vial_milli_mg_per_ml
                    && p.form == Form::Vial
                    && want != p.milli_mg_per_ml
                {
                    return Err(refuse(
                        "container",
                        format!(
                            "container {container} is {}; session {session_id}'s verified order was prepared from a {} mg/mL vial",
                            p.concentration_label(),
                            Micrograms(want)
                        ),
                    ));
                }
                Ok(())
            }
            LedgerEvent::Waste { session_id, .. } => {
                let t = target
                    .ok_or_else(|| refuse("session_id", format!("no session {session_id}")))?;
                if let Some(why) = &t.waste_refused {
                    return Err(refuse("session_id", why.clone()));
                }
                if !self.sessions.contains_key(session_id) {
                    return Err(refuse(
                        "session_id",
                        format!("nothing was drawn for session {session_id}"),
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn drug_name(d: Drug) -> &'static str {
    match d {
        Drug::RacemicKetamine => "racemic ketamine",
        Drug::Esketamine => "esketamine",
    }
}

fn valid_ndc(ndc: &str) -> bool {
    let t = ndc.trim();
    let digits = t.chars().filter(char::is_ascii_digit).count();
    t.chars().all(|c| c.is_ascii_digit() || c == '-')
        && (digits == 10 || digits == 11)
        && !t.starts_with('-')
        && !t.ends_with('-')
        && !t.contains("--")
}

/// Whether a session's drug is accounted for: drawn = given + wasted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Balance {
    pub session_id: i64,
    pub drawn_ug: i64,
    pub given_ug: i64,
    pub wasted_ug: i64,
    /// drawn − given − wasted: positive = unaccounted for, negative = more recorded than drawn.
    pub unaccounted_ug: i64,
    pub balanced: bool,
    pub message: String,
    /// Whether `given` is the session record's (false: a preview with the figure the caller
    /// entered, while the record documents none yet).
    pub given_from_record: bool,
}

/// Whether `s` has the form of a DEA registration number: two letters, then seven digits whose
/// last is the check digit (the sum of the 1st, 3rd and 5th digits plus twice the sum of the
/// 2nd, 4th and 6th, modulo 10), as the DEA's registration numbers are built.
pub fn dea_registration_is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 9 || !b[..2].iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    let d: Vec<u32> = b[2..]
        .iter()
        .map(|c| u32::from(*c).wrapping_sub(48))
        .collect();
    if d.iter().any(|x| *x > 9) {
        return false;
    }
    let sum = d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5]);
    sum % 10 == d[6]
}

/// Does this session's ledger balance? `given` comes from the session record (nothing is given
/// in a cancelled session). A mismatch blocks signing the session.
pub fn session_balance(facts: &SessionFacts, state: &LedgerState) -> Balance {
    let s = state
        .sessions
        .get(&facts.session_id)
        .cloned()
        .unwrap_or_default();
    let given = if facts.cancelled { 0 } else { facts.given.0 };
    // Saturating: a figure no ledger can hold still gets an answer (and never balances).
    let unaccounted = s.drawn_ug.saturating_sub(given).saturating_sub(s.wasted_ug);
    let message = match unaccounted {
        0 => format!(
            "balanced: {} mg drawn = {} mg given + {} mg wasted",
            Micrograms(s.drawn_ug),
            Micrograms(given),
            Micrograms(s.wasted_ug)
        ),
        u if u > 0 => format!(
            "{} mg drawn is not accounted for (drawn {} mg, given {} mg, wasted {} mg): record the waste with a witness",
            Micrograms(u),
            Micrograms(s.drawn_ug),
            Micrograms(given),
            Micrograms(s.wasted_ug)
        ),
        u => format!(
            "{} mg more given and wasted than drawn (drawn {} mg, given {} mg, wasted {} mg): record the draw",
            Micrograms(u.saturating_neg()),
            Micrograms(s.drawn_ug),
            Micrograms(given),
            Micrograms(s.wasted_ug)
        ),
    };
    Balance {
        session_id: facts.session_id,
        drawn_ug: s.drawn_ug,
        given_ug: given,
        wasted_ug: s.wasted_ug,
        unaccounted_ug: unaccounted,
        balanced: unaccounted == 0,
        message,
        given_from_record: true,
    }
}

#[cfg(test)]
mod tests;
