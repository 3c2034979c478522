//! The stored form of the ledger: append-only records, each hashed over its fields and the
//! previous record's hash, exactly as the audit log is ([`ketcare_core::audit`]); the same
//! hashing and verification are reused, with the record's kind in the action field and its
//! event as the detail.

use super::{LedgerActor, LedgerError, LedgerEvent, LedgerState};
use jiff::Timestamp;
use ketcare_core::audit::{self, AuditRecord, ChainBreak, HashInput};
use serde::Serialize;

/// Marks ledger records in the shared hash encoding, so a ledger record can never pass as an
/// audit record or the other way round.
const DOMAIN: &str = "ledger";

/// The site whose chain the single ledger became (migration 0027): its records keep the plain
/// domain, so the chain hashed before sites existed verifies unchanged.
pub const FIRST_SITE: i64 = 1;

/// The hash domain of `site`'s chain: a record of one site's ledger can never pass as another's.
fn domain(site: i64) -> String {
    if site == FIRST_SITE {
        DOMAIN.to_owned()
    } else {
        format!("{DOMAIN}/site {site}")
    }
}

/// One stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LedgerRecord {
    /// The site (DEA registration) whose chain holds the entry.
    pub site_id: i64,
    /// The entry's number in its site's chain.
    pub seq: i64,
    /// RFC 3339 UTC time.
    pub at: String,
    pub user_id: i64,
    pub username: String,
    pub role: String,
    pub kind: String,
    pub session_id: Option<i64>,
    /// The event as JSON.
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

impl LedgerRecord {
    fn hash_input<'a>(&'a self, domain: &'a str) -> HashInput<'a> {
        HashInput {
            seq: self.seq,
            at: &self.at,
            user_id: Some(self.user_id),
            username: &self.username,
            role: &self.role,
            address: domain,
            action: &self.kind,
            patient_id: self.session_id,
            detail: &self.body,
            prev_hash: &self.prev_hash,
        }
    }

    fn as_audit(&self) -> AuditRecord {
        AuditRecord {
            seq: self.seq,
            at: self.at.clone(),
            user_id: Some(self.user_id),
            username: self.username.clone(),
            role: self.role.clone(),
            address: domain(self.site_id),
            action: self.kind.clone(),
            patient_id: self.session_id,
            detail: self.body.clone(),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }

    /// Builds the next record of the first site's chain after `prev` (None for the first).
    pub fn next(
        prev: Option<(i64, &str)>,
        at: Timestamp,
        actor: &LedgerActor,
        event: &LedgerEvent,
    ) -> Result<Self, LedgerError> {
        Self::next_at(FIRST_SITE, prev, at, actor, event)
    }

    /// Builds the next record of `site`'s chain after `prev` (None for the first).
    pub fn next_at(
        site: i64,
        prev: Option<(i64, &str)>,
        at: Timestamp,
        actor: &LedgerActor,
        event: &LedgerEvent,
    ) -> Result<Self, LedgerError> {
        let (seq, prev_hash) = match prev {
            Some((s, h)) => (s + 1, h.to_owned()),
            None => (1, audit::GENESIS.to_owned()),
        };
        let body = serde_json::to_string(event).map_err(|e| LedgerError {
            field: "event".into(),
            message: e.to_string(),
        })?;
        let mut r = Self {
            site_id: site,
            seq,
            at: at.to_string(),
            user_id: actor.user_id,
            username: actor.username.clone(),
            role: actor.role.as_str().to_owned(),
            kind: event.kind().to_owned(),
            session_id: event.session_id(),
            body,
            prev_hash,
            hash: String::new(),
        };
        let d = domain(site);
        r.hash = audit::record_hash(&r.hash_input(&d));
        Ok(r)
    }

    pub fn event(&self) -> Result<LedgerEvent, LedgerError> {
        serde_json::from_str(&self.body).map_err(|e| LedgerError {
            field: format!("entry {}", self.seq),
            message: format!("unreadable event: {e}"),
        })
    }
}

/// Where the ledger's chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("ledger chain broken at entry {seq}: {reason}")]
pub struct LedgerBreak {
    pub seq: i64,
    pub reason: String,
}

impl From<ChainBreak> for LedgerBreak {
    fn from(b: ChainBreak) -> Self {
        Self {
            seq: b.seq,
            reason: b.reason,
        }
    }
}

/// Verifies the records (in sequence order) against the stored head: any edited, removed or
/// reordered entry is named. Returns the number of entries checked.
pub fn verify(records: &[LedgerRecord], head: Option<(i64, &str)>) -> Result<u64, LedgerBreak> {
    let as_audit: Vec<AuditRecord> = records.iter().map(LedgerRecord::as_audit).collect();
    Ok(audit::verify_chain(&as_audit, head)?)
}

/// Replays stored records into a state, checking each event against the rules again.
pub fn replay(
    records: &[LedgerRecord],
    mut state: LedgerState,
) -> Result<LedgerState, LedgerBreak> {
    for r in records {
        let event = r.event().map_err(|e| LedgerBreak {
            seq: r.seq,
            reason: e.message,
        })?;
        let at: Timestamp = r.at.parse().map_err(|_| LedgerBreak {
            seq: r.seq,
            reason: "unreadable time".into(),
        })?;
        let role = ketcare_core::Role::parse(&r.role).ok_or_else(|| LedgerBreak {
            seq: r.seq,
            reason: format!("unknown role `{}`", r.role),
        })?;
        let actor = LedgerActor {
            user_id: r.user_id,
            username: r.username.clone(),
            role,
        };
        state
            .apply(r.seq, at, &actor, &event)
            .map_err(|e| LedgerBreak {
                seq: r.seq,
                reason: format!("the entry breaks a ledger rule: {e}"),
            })?;
    }
    Ok(state)
}
