//! Treatment sessions: the session record, vitals, alarms, HL7 message log.

use crate::SqlStore;
use async_trait::async_trait;

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait SessionStore: Send + Sync {}

#[async_trait]
impl SessionStore for SqlStore {}
