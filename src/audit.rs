//! The audit log: security-relevant events in an append-only table whose rows form a SHA-256 hash
//! chain. Each row's hash covers its own fields and the previous row's hash, so changing, inserting or
//! removing a row breaks the chain at that row. `pforte audit verify` recomputes it.
//!
//! Details must never carry personal data, tokens or secrets: ids, kinds and counts only.
//!
//! Refused attempts that anyone can cause (a wrong finance token or staff session, a wrong callback
//! signature, a failed staff sign-in) change nothing and are not chained: [`AuditLog::refused`] adds
//! them to a per-hour counter (`store::refused_attempts`) and logs a line (SECURITY.md #32). The
//! chain records what changes state and every allowed use.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::clock::SharedClock;
use crate::store::audit_log::{self, AuditRow};
use crate::store::{Database, StorageError};

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The subject of a refused attempt that named no registered tenant or provider: counted under this
/// one name, so made-up ids cannot multiply the counters.
pub const UNREGISTERED: &str = "unregistered";

#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// A stable dotted name such as `keys.rotated`.
    pub event: String,
    /// Who caused it: `operator`, `system`, or a client id.
    pub actor: String,
    /// What it concerns: a key id, a transaction id, a client id.
    pub subject: String,
    pub details: Value,
}

impl AuditEvent {
    pub fn new(event: &str, actor: &str, subject: &str, details: Value) -> Self {
        AuditEvent { event: event.to_owned(), actor: actor.to_owned(), subject: subject.to_owned(), details }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub rows: u64,
    /// Hash of the last row; record it elsewhere to detect a removed tail later.
    pub head_hash: String,
    pub first_broken: Option<BrokenRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRow {
    pub seq: i64,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct AuditLog {
    db: Database,
    clock: SharedClock,
}

impl AuditLog {
    pub fn new(db: Database, clock: SharedClock) -> Self {
        AuditLog { db, clock }
    }

    /// Appends one event in its own transaction. Returns its sequence number.
    pub async fn append(&self, event: AuditEvent) -> Result<i64, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let seq = self.append_in(&mut tx, event).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Appends inside the caller's write transaction (from `Database::begin_write`), so the event
    /// commits or rolls back together with the change it records.
    pub async fn append_in(&self, conn: &mut AnyConnection, event: AuditEvent) -> Result<i64, StorageError> {
        audit_log::lock_chain(conn, self.db.backend()).await?;
        let (seq, prev_hash) = match audit_log::last_entry(conn).await? {
            Some(last) => (last.seq + 1, last.hash),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let mut row = AuditRow {
            seq,
            recorded_at: self.clock.now_millis(),
            event: event.event,
            actor: event.actor,
            subject: event.subject,
            details: event.details.to_string(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = entry_hash(&row);
        audit_log::insert_entry(conn, &row).await?;
        Ok(seq)
    }

    /// Counts one refused attempt outside the chain: one upsert on its hour's counter, no chain lock,
    /// no row per attempt. `subject` must be a registered id (or `unregistered`) and `reason` a fixed
    /// word, so the counters stay as few as the registry's entries. `actor` (a token or staff id, or
    /// `unknown`) goes to the log line only.
    pub async fn refused(&self, event: &str, actor: &str, subject: &str, reason: &str) -> Result<(), StorageError> {
        tracing::warn!(event, actor, subject, reason, "refused attempt");
        self.db.count_refused_attempt(event, subject, reason, self.clock.now_millis()).await
    }

    /// Walks the whole chain in pages and names the first row that does not fit.
    pub async fn verify(&self) -> Result<Verification, StorageError> {
        const PAGE: i64 = 1000;
        let mut expected_seq = 1;
        let mut prev_hash = GENESIS_HASH.to_owned();
        let mut rows = 0u64;
        loop {
            let page = self.db.audit_entries_after(expected_seq - 1, PAGE).await?;
            if page.is_empty() {
                break;
            }
            for row in &page {
                if let Some(reason) = check_row(row, expected_seq, &prev_hash) {
                    return Ok(Verification {
                        rows,
                        head_hash: prev_hash,
                        first_broken: Some(BrokenRow { seq: row.seq, reason }),
                    });
                }
                rows += 1;
                expected_seq += 1;
                prev_hash = row.hash.clone();
            }
        }
        Ok(Verification { rows, head_hash: prev_hash, first_broken: None })
    }
}

fn check_row(row: &AuditRow, expected_seq: i64, prev_hash: &str) -> Option<String> {
    if row.seq != expected_seq {
        return Some(format!("expected row {expected_seq} next, found row {}: rows are missing", row.seq));
    }
    if row.prev_hash != prev_hash {
        return Some("its prev_hash does not match the hash of the row before it".to_owned());
    }
    if entry_hash(row) != row.hash {
        return Some("its contents do not match its hash: the row was altered".to_owned());
    }
    None
}

/// SHA-256 over every field but `hash`, each length-prefixed so no two rows encode alike.
pub fn entry_hash(row: &AuditRow) -> String {
    let mut hasher = Sha256::new();
    let seq = row.seq.to_string();
    let recorded_at = row.recorded_at.to_string();
    let fields: [&str; 7] = [&seq, &recorded_at, &row.event, &row.actor, &row.subject, &row.details, &row.prev_hash];
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}
