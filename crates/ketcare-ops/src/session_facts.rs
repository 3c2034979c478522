//! What a session record documents, as plain inputs. The session workflow fills these in; this
//! crate does not depend on it, so the two can be built and tested apart.

use crate::amount::Micrograms;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The controlled substance a session gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SessionFactsDrug)]
#[serde(rename_all = "snake_case")]
pub enum Drug {
    RacemicKetamine,
    Esketamine,
}

impl Drug {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RacemicKetamine => "racemic_ketamine",
            Self::Esketamine => "esketamine",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "racemic_ketamine" => Some(Self::RacemicKetamine),
            "esketamine" => Some(Self::Esketamine),
            _ => None,
        }
    }
}

/// How the drug went in, as far as billing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SessionFactsRoute)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    IvInfusion,
    IvPush,
    Intranasal,
    Intramuscular,
    Subcutaneous,
    Oral,
    Sublingual,
}

/// A separately documented E/M service on the day (CPT 99213–99215; a site setting enables them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmLevel {
    Low,
    Moderate,
    High,
}

/// The facts of one session that operations need: the ledger reconciles `given`, billing codes
/// the times and doses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionFacts {
    pub session_id: i64,
    pub patient_id: i64,
    pub drug: Drug,
    pub route: Route,
    /// Start and stop of the infusion (IV), as recorded by the session.
    #[schema(value_type = Option<String>)]
    pub infusion_start: Option<Timestamp>,
    #[schema(value_type = Option<String>)]
    pub infusion_stop: Option<Timestamp>,
    /// Minutes the infusion actually ran (pauses excluded), when the session record computes
    /// it; billing codes these rather than stop − start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infusion_minutes: Option<i64>,
    /// What the session record says was given, in micrograms (racemic ketamine or esketamine).
    #[schema(value_type = i64, minimum = 0)]
    pub given: Micrograms,
    /// Whether the session was cancelled (after or before a draw).
    pub cancelled: bool,
    /// A separately documented E/M service, if any.
    pub em_level: Option<EmLevel>,
    /// Minutes of continuous in-person monitoring recorded for this dosing session (therapy
    /// encounters of kind monitoring linked to it); `None` when none is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_minutes: Option<i64>,
}
