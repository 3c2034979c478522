//! Operations: chairs and bookings, consent, the controlled-substance ledger, billing.

use crate::SqlStore;
use async_trait::async_trait;

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait OpsStore: Send + Sync {}

#[async_trait]
impl OpsStore for SqlStore {}
