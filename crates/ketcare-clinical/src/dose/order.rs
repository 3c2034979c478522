//! The order lifecycle: soft-limit override, then verification by a second clinician; a wrong
//! order is withdrawn with a reason before it is given.

use serde::{Deserialize, Serialize};

use super::types::DoseCalculation;
use crate::ids::{Timestamp, Username};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// A soft limit was crossed: needs an override with a reason before verification.
    NeedsOverride,
    /// Waiting for a second clinician (not the author) to verify.
    PendingVerification,
    Verified,
    /// Withdrawn with a reason before it was given; it can no longer be verified or scheduled.
    Withdrawn,
}

impl OrderState {
    /// The state in words, for pages.
    pub fn label(self) -> &'static str {
        match self {
            Self::NeedsOverride => "needs a reason to pass a soft limit",
            Self::PendingVerification => "waiting for a second clinician",
            Self::Verified => "verified",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// Who withdrew an order, why and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Withdrawal {
    pub by: Username,
    pub reason: String,
    pub at: Timestamp,
}

/// Who passed the soft limits, why and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SoftLimitOverride {
    pub limit_ids: Vec<String>,
    pub by: Username,
    pub reason: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verification {
    pub by: Username,
    pub at: Timestamp,
}

/// A calculated order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DoseOrder {
    pub calculation: DoseCalculation,
    pub author: Username,
    pub created_at: Timestamp,
    pub state: OrderState,
    pub soft_override: Option<SoftLimitOverride>,
    pub verification: Option<Verification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawal: Option<Withdrawal>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum OrderError {
    #[error("order is {state:?}; expected {expected:?}")]
    WrongState {
        state: OrderState,
        expected: OrderState,
    },
    #[error("override needs a reason; expected non-empty text")]
    EmptyReason,
    #[error("the verifier must be a second clinician, not the author {author}")]
    VerifierIsAuthor { author: String },
    #[error("the order is already withdrawn")]
    AlreadyWithdrawn,
}

impl DoseOrder {
    /// Records the override of every crossed soft limit; the order then awaits verification.
    pub fn override_soft_limits(
        &self,
        by: Username,
        reason: &str,
        at: Timestamp,
    ) -> Result<DoseOrder, OrderError> {
        if self.state != OrderState::NeedsOverride {
            return Err(OrderError::WrongState {
                state: self.state,
                expected: OrderState::NeedsOverride,
            });
        }
        if reason.trim().is_empty() {
            return Err(OrderError::EmptyReason);
        }
        let mut next = self.clone();
        next.soft_override = Some(SoftLimitOverride {
            limit_ids: self
                .calculation
                .soft_limits_crossed
                .iter()
                .map(|c| c.limit_id.clone())
                .collect(),
            by,
            reason: reason.trim().to_string(),
            at,
        });
        next.state = OrderState::PendingVerification;
        Ok(next)
    }

    /// Withdraws the order with a reason (the caller checks that nothing of it was given).
    pub fn withdraw(
        &self,
        by: Username,
        reason: &str,
        at: Timestamp,
    ) -> Result<DoseOrder, OrderError> {
        if self.state == OrderState::Withdrawn {
            return Err(OrderError::AlreadyWithdrawn);
        }
        if reason.trim().is_empty() {
            return Err(OrderError::EmptyReason);
        }
        let mut next = self.clone();
        next.withdrawal = Some(Withdrawal {
            by,
            reason: reason.trim().to_string(),
            at,
        });
        next.state = OrderState::Withdrawn;
        Ok(next)
    }

    /// A second clinician (not the author) confirms the order.
    pub fn verify(&self, by: Username, at: Timestamp) -> Result<DoseOrder, OrderError> {
        if self.state != OrderState::PendingVerification {
            return Err(OrderError::WrongState {
                state: self.state,
                expected: OrderState::PendingVerification,
            });
        }
        if by == self.author {
            return Err(OrderError::VerifierIsAuthor {
                author: self.author.to_string(),
            });
        }
        let mut next = self.clone();
        next.verification = Some(Verification { by, at });
        next.state = OrderState::Verified;
        Ok(next)
    }
}
