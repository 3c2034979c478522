//! The append-only, hash-chained audit log.
//!
//! Each record's hash covers its own fields and the previous record's hash, so editing or
//! deleting any stored record breaks the chain from that point on. The newest sequence number and
//! hash are also kept as a separate "head", so dropping records from the end is detected too.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash that precedes the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What was done, before the store gives it a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// A dotted verb: `patient.read`, `patient.update`, `login.failed`, …
    pub action: String,
    pub patient_id: Option<i64>,
    /// Short, non-clinical detail (which fields changed, the search terms).
    pub detail: String,
}

impl AuditEvent {
    pub fn new(action: &str, patient_id: Option<i64>, detail: impl Into<String>) -> Self {
        Self {
            action: action.to_owned(),
            patient_id,
            detail: detail.into(),
        }
    }
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub seq: i64,
    /// RFC 3339 UTC time.
    pub at: String,
    pub user_id: Option<i64>,
    pub username: String,
    pub role: String,
    pub address: String,
    pub action: String,
    pub patient_id: Option<i64>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The fields a record's hash covers, in order.
pub struct HashInput<'a> {
    pub seq: i64,
    pub at: &'a str,
    pub user_id: Option<i64>,
    pub username: &'a str,
    pub role: &'a str,
    pub address: &'a str,
    pub action: &'a str,
    pub patient_id: Option<i64>,
    pub detail: &'a str,
    pub prev_hash: &'a str,
}

/// SHA-256 over length-prefixed fields, so no two different records share an encoding.
pub fn record_hash(h: &HashInput<'_>) -> String {
    let mut d = Sha256::new();
    let mut field = |bytes: &[u8]| {
        d.update((bytes.len() as u64).to_be_bytes());
        d.update(bytes);
    };
    field(&h.seq.to_be_bytes());
    field(h.at.as_bytes());
    field(opt(h.user_id).as_bytes());
    field(h.username.as_bytes());
    field(h.role.as_bytes());
    field(h.address.as_bytes());
    field(h.action.as_bytes());
    field(opt(h.patient_id).as_bytes());
    field(h.detail.as_bytes());
    field(h.prev_hash.as_bytes());
    hex::encode(d.finalize())
}

fn opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl AuditRecord {
    pub fn hash_input(&self) -> HashInput<'_> {
        HashInput {
            seq: self.seq,
            at: &self.at,
            user_id: self.user_id,
            username: &self.username,
            role: &self.role,
            address: &self.address,
            action: &self.action,
            patient_id: self.patient_id,
            detail: &self.detail,
            prev_hash: &self.prev_hash,
        }
    }
}

/// Where the chain is broken, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit chain broken at record {seq}: {reason}")]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// Verifies records in sequence order against the stored head `(seq, hash)`.
/// Returns the number of records checked.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    head: Option<(i64, &str)>,
) -> Result<u64, ChainBreak> {
    let mut prev_hash = GENESIS.to_owned();
    let mut expected_seq = 1;
    let mut count = 0;
    for r in records {
        if r.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                reason: format!(
                    "record {expected_seq} is missing (next stored is {})",
                    r.seq
                ),
            });
        }
        if r.prev_hash != prev_hash {
            return Err(ChainBreak {
                seq: r.seq,
                reason: "its link to the previous record does not match".into(),
            });
        }
        if record_hash(&r.hash_input()) != r.hash {
            return Err(ChainBreak {
                seq: r.seq,
                reason: "its contents do not match its hash (edited)".into(),
            });
        }
        prev_hash.clone_from(&r.hash);
        expected_seq += 1;
        count += 1;
    }
    let last = expected_seq - 1;
    match head {
        None if last == 0 => Ok(count),
        None => Err(ChainBreak {
            seq: last,
            reason: "the chain head is missing".into(),
        }),
        Some((seq, hash)) if seq == last && hash == prev_hash => Ok(count),
        Some((seq, _)) if seq > last => Err(ChainBreak {
            seq: last + 1,
            reason: format!("records {} to {seq} are missing", last + 1),
        }),
        Some(_) => Err(ChainBreak {
            seq: last,
            reason: "the chain head does not match the last record".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for seq in 1..=n {
            let prev_hash = out.last().map(|r| r.hash.clone()).unwrap_or(GENESIS.into());
            let mut r = AuditRecord {
                seq,
                at: format!("2026-11-22T10:00:{seq:02}Z"),
                user_id: Some(1),
                username: "nurse".into(),
                role: "nurse".into(),
                address: "127.0.0.1".into(),
                action: "patient.read".into(),
                patient_id: Some(seq),
                detail: String::new(),
                prev_hash,
                hash: String::new(),
            };
            r.hash = record_hash(&r.hash_input());
            out.push(r);
        }
        out
    }

    fn head(c: &[AuditRecord]) -> Option<(i64, &str)> {
        c.last().map(|r| (r.seq, r.hash.as_str()))
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify_chain(&c, head(&c)), Ok(5));
        assert_eq!(verify_chain(&[], None), Ok(0));
    }

    #[test]
    fn edit_is_found_at_its_record() {
        let mut c = chain(5);
        let h = (5, c[4].hash.clone());
        c[2].detail = "changed".into();
        assert_eq!(verify_chain(&c, Some((h.0, &h.1))).unwrap_err().seq, 3);
    }

    #[test]
    fn deletion_in_middle_and_at_end_is_found() {
        let c = chain(5);
        let h = (5, c[4].hash.clone());
        let mut mid = c.clone();
        mid.remove(1);
        assert_eq!(verify_chain(&mid, Some((h.0, &h.1))).unwrap_err().seq, 2);
        let tail = &c[..4];
        assert_eq!(verify_chain(tail, Some((h.0, &h.1))).unwrap_err().seq, 5);
    }

    #[test]
    fn rehashing_an_edit_still_breaks_the_next_link() {
        let mut c = chain(4);
        let h = (4, c[3].hash.clone());
        c[1].detail = "forged".into();
        c[1].hash = record_hash(&c[1].hash_input());
        assert_eq!(verify_chain(&c, Some((h.0, &h.1))).unwrap_err().seq, 3);
    }
}
