//! Tamper evidence anchored outside the database.
//!
//! The audit log and the controlled-substance ledger are hash chains: each record's hash covers
//! the one before, so an edit breaks the chain. But whoever can write the database file can also
//! recompute every later hash and the head, and the chain then verifies. Anchors close that gap:
//! the chain heads (seq and hash) are appended now and then to a file *outside* the database
//! (`anchors.log`), each line authenticated with HMAC-SHA256 under a key that also lives outside
//! the database (`anchor.key`, 32 random bytes, created at first use with owner-only permissions).
//! Verifying compares every anchored hash with the record the database holds today: a rewritten
//! record, however carefully its successors were recomputed, no longer has the anchored hash; a
//! forged anchor line fails its HMAC; a truncated chain lacks the anchored record.
//!
//! Anyone holding the key could forge anchors; keep it (and the anchor file) away from the
//! database's own backups and accounts. Line format (one per chain per anchoring):
//! `v1 <chain> <seq> <hash> <at> <hmac>`, the chain being `audit`, `ledger` (the first site's
//! ledger, as anchored before sites) or `ledger/site-N` (each further site's own ledger).

use crate::error::{Error, Result};
use crate::files::owner_only;
use hmac::{Hmac, KeyInit, Mac};
use ketcare_store::{Chain, Store};
use rand::RngExt;
use sha2::Sha256;
use std::io::Write;
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<Sha256>;

/// The file names in the anchor folder.
pub const KEY_FILE: &str = "anchor.key";
pub const ANCHOR_FILE: &str = "anchors.log";

/// Where the key and the anchors are kept (a folder outside the database file).
#[derive(Debug, Clone)]
pub struct Anchors {
    dir: PathBuf,
    key: Vec<u8>,
}

/// One anchored head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub chain: Chain,
    pub seq: i64,
    pub hash: String,
    /// RFC 3339 time it was taken.
    pub at: String,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Anchors checked (of the chains asked for).
    pub checked: usize,
    /// One line per problem, in words.
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    tracing::error!(error = %e, path = %path.display(), "{what}");
    Error::Internal
}

impl Anchors {
    /// Opens the anchor folder `dir`, creating it and the key (0700 / 0600) at first use.
    pub fn open(dir: &Path) -> Result<Anchors> {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the anchor folder", dir, e))?;
        let key_path = dir.join(KEY_FILE);
        if !key_path.exists() {
            let key: [u8; 32] = rand::rng().random();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&key_path)
                .map_err(|e| io("creating the anchor key", &key_path, e))?;
            owner_only(&key_path, 0o600).map_err(|e| io("restricting the key", &key_path, e))?;
            f.write_all(hex::encode(key).as_bytes())
                .map_err(|e| io("writing the anchor key", &key_path, e))?;
        }
        let text = std::fs::read_to_string(&key_path)
            .map_err(|e| io("reading the anchor key", &key_path, e))?;
        let key = hex::decode(text.trim()).map_err(|_| {
            Error::invalid(
                "anchor_key",
                format!("{} is not a hex key", key_path.display()),
            )
        })?;
        if key.len() < 32 {
            return Err(Error::invalid(
                "anchor_key",
                format!("{} is shorter than 32 bytes", key_path.display()),
            ));
        }
        Ok(Anchors {
            dir: dir.to_owned(),
            key,
        })
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(ANCHOR_FILE)
    }

    fn mac(&self, body: &str) -> String {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("any key length");
        m.update(body.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    fn line(&self, a: &Anchor) -> String {
        let body = format!("v1 {} {} {} {}", a.chain.name(), a.seq, a.hash, a.at);
        format!("{body} {}\n", self.mac(&body))
    }

    /// Every anchor in the file, with the problems of lines that are not authentic.
    pub fn read(&self) -> Result<(Vec<Anchor>, Vec<String>)> {
        let path = self.file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io("reading the anchors", &path, e)),
        };
        let mut anchors = Vec::new();
        let mut problems = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let Some((body, mac)) = line.rsplit_once(' ') else {
                problems.push(format!("anchor line {n} is malformed"));
                continue;
            };
            let parts: Vec<&str> = body.split(' ').collect();
            let parsed = match parts.as_slice() {
                ["v1", chain, seq, hash, at] => Chain::parse(chain)
                    .zip(seq.parse::<i64>().ok())
                    .map(|(chain, seq)| Anchor {
                        chain,
                        seq,
                        hash: (*hash).to_owned(),
                        at: (*at).to_owned(),
                    }),
                _ => None,
            };
            let Some(anchor) = parsed else {
                problems.push(format!("anchor line {n} is malformed"));
                continue;
            };
            let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("any key length");
            m.update(body.as_bytes());
            let authentic = hex::decode(mac).is_ok_and(|bytes| m.verify_slice(&bytes).is_ok());
            if !authentic {
                problems.push(format!(
                    "anchor line {n} ({} record {}) fails its HMAC: it was not written with this key",
                    anchor.chain.name(),
                    anchor.seq
                ));
                continue;
            }
            anchors.push(anchor);
        }
        Ok((anchors, problems))
    }

    /// Appends the current head of each chain that has grown since its last anchor; returns
    /// what was appended.
    pub async fn record(&self, store: &dyn Store, at: jiff::Timestamp) -> Result<Vec<Anchor>> {
        let (existing, _) = self.read()?;
        let mut new = Vec::new();
        // The audit log, and every site's ledger (each its own chain).
        let chains = std::iter::once(Chain::Audit).chain(
            store
                .organisation_sites()
                .await?
                .into_iter()
                .map(|(site, _)| Chain::Ledger(site)),
        );
        for chain in chains {
            let (seq, hash) = store.chain_head(chain).await?;
            let last = existing
                .iter()
                .filter(|a| a.chain == chain)
                .map(|a| a.seq)
                .max()
                .unwrap_or(0);
            if seq > last {
                new.push(Anchor {
                    chain,
                    seq,
                    hash,
                    at: at.to_string(),
                });
            }
        }
        if new.is_empty() {
            return Ok(new);
        }
        let path = self.file();
        let fresh = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io("opening the anchors", &path, e))?;
        if fresh {
            owner_only(&path, 0o600).map_err(|e| io("restricting the anchors", &path, e))?;
        }
        let text: String = new.iter().map(|a| self.line(a)).collect();
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| io("writing the anchors", &path, e))?;
        Ok(new)
    }

    /// Checks every anchor of `chain` against the database.
    pub async fn verify(&self, store: &dyn Store, chain: Chain) -> Result<Report> {
        self.verify_where(store, |c| c == chain).await
    }

    /// Checks every anchor of every site's ledger against the database.
    pub async fn verify_ledgers(&self, store: &dyn Store) -> Result<Report> {
        self.verify_where(store, |c| matches!(c, Chain::Ledger(_)))
            .await
    }

    async fn verify_where(
        &self,
        store: &dyn Store,
        keep: impl Fn(Chain) -> bool,
    ) -> Result<Report> {
        let (anchors, forged) = self.read()?;
        let mut report = Report {
            problems: forged,
            ..Report::default()
        };
        for a in anchors.iter().filter(|a| keep(a.chain)) {
            report.checked += 1;
            match store.chain_hash_at(a.chain, a.seq).await? {
                Some(h) if h == a.hash => {}
                Some(_) => report.problems.push(format!(
                    "{} record {} differs from its anchor of {}: it was rewritten after then",
                    a.chain.name(),
                    a.seq,
                    a.at
                )),
                None => report.problems.push(format!(
                    "{} record {} (anchored {}) is missing: the chain was cut",
                    a.chain.name(),
                    a.seq,
                    a.at
                )),
            }
        }
        Ok(report)
    }
}
