//! The audit log: security-relevant events in an append-only table whose rows form a SHA-256 hash
//! chain. Each row's hash covers its own fields and the previous row's hash, so changing, inserting or
//! removing a row breaks the chain at that row. `pforte audit verify` recomputes it.
//!
//! Recording and chaining are apart (issue 13, SECURITY.md #26): a request records its event in its
//! own transaction with a plain insert into `audit_pending` ([`AuditLog::append_in`]), so the event
//! exists exactly when its change does and no request waits for another's commit. The chainer
//! ([`AuditLog::chain_pending`], run by `app` every `audit.chain_interval_ms` on every instance)
//! moves committed events into the chain in batches; each batch takes the chain lock, so one chainer
//! at a time extends it, and writes the chain rows and deletes their pending rows in one transaction,
//! so a crash mid-batch neither loses nor repeats an event. Verification also reports events left
//! pending longer than `audit.max_chain_delay_secs`.
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
use crate::store::audit_log::{self, AuditRow, PendingAuditRow, PendingSummary};
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

/// Events recorded and not chained yet, as `pforte audit verify` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unchained {
    /// All events waiting for the chainer.
    pub pending: i64,
    /// Those of them waiting longer than the bound.
    pub overdue: i64,
    /// How long the oldest overdue event has waited, in milliseconds.
    pub oldest_overdue_ms: Option<i64>,
}

/// What one chaining step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStep {
    /// This many events were chained (0: none were waiting).
    Chained(usize),
    /// Another chainer holds the chain lock; it chains what waits.
    Busy,
}

/// Events moved per chaining transaction: large enough to keep up with every request of a busy
/// instance within one interval, small enough to keep the chain lock briefly.
pub const CHAIN_BATCH: i64 = 500;

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

    /// Records one event in its own transaction, for the chainer. Returns its pending id.
    pub async fn append(&self, event: AuditEvent) -> Result<i64, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let id = self.append_in(&mut tx, event).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records an event inside the caller's write transaction (from `Database::begin_write`), so the
    /// event commits or rolls back together with the change it records. A plain insert into
    /// `audit_pending` without the chain lock; the chainer gives it its place in the chain. Returns
    /// its pending id (not its chain position, which it does not have yet).
    pub async fn append_in(&self, conn: &mut AnyConnection, event: AuditEvent) -> Result<i64, StorageError> {
        let row = self.pending(event);
        audit_log::insert_pending(conn, row.recorded_at, &row.event, &row.actor, &row.subject, &row.details).await
    }

    /// The row `append_in` would write, for a request that writes it with its other rows in one
    /// statement (`store::payment_create`).
    pub fn pending(&self, event: AuditEvent) -> PendingAuditRow {
        PendingAuditRow {
            recorded_at: self.clock.now_millis(),
            event: event.event,
            actor: event.actor,
            subject: event.subject,
            details: event.details.to_string(),
        }
    }

    /// Chains every event waiting when called, batch after batch, until none waits or another
    /// chainer holds the lock. Returns how many this call chained.
    pub async fn chain_pending(&self) -> Result<usize, StorageError> {
        let mut chained = 0;
        // Checked on the read pool first: an idle instance does not take SQLite's write lock.
        while self.db.audit_pending_summary(None).await?.count > 0 {
            match self.chain_batch(CHAIN_BATCH).await? {
                ChainStep::Chained(0) | ChainStep::Busy => break,
                ChainStep::Chained(n) => chained += n,
            }
        }
        Ok(chained)
    }

    /// Moves the oldest `limit` committed pending events into the chain in one transaction: chain
    /// rows in, pending rows out, or neither. Under the chain lock, so the head read here stays the
    /// head and no other chainer sees these pending rows before they are gone. Takes every committed
    /// row in id order, not ids above a mark: on PostgreSQL a lower id may commit after a higher one
    /// was chained, and it is chained by the next batch.
    pub async fn chain_batch(&self, limit: i64) -> Result<ChainStep, StorageError> {
        let started = std::time::Instant::now();
        let mut tx = self.db.begin_write().await?;
        if !audit_log::try_lock_chain(&mut tx, self.db.backend()).await? {
            return Ok(ChainStep::Busy);
        }
        let pending = audit_log::pending_batch(&mut tx, limit).await?;
        if pending.is_empty() {
            tx.rollback().await?;
            return Ok(ChainStep::Chained(0));
        }
        let (mut seq, mut prev_hash) = match audit_log::last_entry(&mut tx).await? {
            Some(last) => (last.seq, last.hash),
            None => (0, GENESIS_HASH.to_owned()),
        };
        let mut rows = Vec::with_capacity(pending.len());
        for event in &pending {
            seq += 1;
            let mut row = AuditRow {
                seq,
                recorded_at: event.recorded_at,
                event: event.event.clone(),
                actor: event.actor.clone(),
                subject: event.subject.clone(),
                details: event.details.clone(),
                prev_hash,
                hash: String::new(),
            };
            row.hash = entry_hash(&row);
            prev_hash = row.hash.clone();
            rows.push(row);
        }
        audit_log::insert_entries(&mut tx, &rows).await?;
        let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
        let deleted = audit_log::delete_pending(&mut tx, &ids).await?;
        if deleted != ids.len() as u64 {
            // Someone else removed pending rows under the lock: chain nothing rather than twice.
            return Err(StorageError::Corrupt(format!(
                "audit_pending lost {} of {} rows while they were being chained",
                ids.len() as u64 - deleted,
                ids.len()
            )));
        }
        tx.commit().await?;
        crate::telemetry::metrics::audit_chain_batch(rows.len(), started.elapsed());
        Ok(ChainStep::Chained(rows.len()))
    }

    /// Events waiting for the chainer, and those of them older than `bound`.
    pub async fn unchained(&self, bound: std::time::Duration) -> Result<Unchained, StorageError> {
        let now = self.clock.now_millis();
        let bound_ms = i64::try_from(bound.as_millis()).unwrap_or(i64::MAX);
        let all = self.db.audit_pending_summary(None).await?;
        let PendingSummary { count: overdue, oldest_recorded_at } =
            self.db.audit_pending_summary(Some(now.saturating_sub(bound_ms))).await?;
        Ok(Unchained {
            pending: all.count,
            overdue,
            oldest_overdue_ms: oldest_recorded_at.map(|at| now.saturating_sub(at)),
        })
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
