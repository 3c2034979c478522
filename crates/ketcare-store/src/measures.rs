//! Measurement-based care: questionnaire responses, patient links, safety alerts, opioid lists.

use crate::SqlStore;
use async_trait::async_trait;

/// The store's part for this area (included in [`crate::Store`]).
#[async_trait]
pub trait MeasuresStore: Send + Sync {}

#[async_trait]
impl MeasuresStore for SqlStore {}
