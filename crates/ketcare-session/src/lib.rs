//! # ketcare-session
//!
//! The pure treatment-session core: the session state machine with its pre-assessment and
//! discharge checklists, administrations (infusion or esketamine device by device), scores,
//! side effects, interventions and adverse events, the alarm rules and alarm lifecycle, the
//! esketamine REMS Patient Monitoring Form, and HL7 v2 ORU^R01 parsing, ACK building and MLLP
//! framing for bedside monitors. No I/O and no clock: times are passed in.
//!
//! Every number comes from `data/sessions/monitoring.toml` (cited to the clinical reference) or
//! the protocol; values the reference does not confirm are site settings (see [`rules`]).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod alarms;
pub mod delivery;
pub mod hl7;
pub mod limits;
pub mod rules;
pub mod session;
pub mod vitals;

pub use alarms::{Alarm, AlarmKind, AlarmState};
pub use delivery::{Delivered, OrderedDelivery, RateDeviation, ordered_delivery};
pub use rules::{Mode, Plan, RulesFile, Setting};
pub use session::{Command, Phase, Refusal, Session, consent_valid, ledger_balances};
pub use vitals::{FieldError, VitalReading, VitalSource, Vitals};
