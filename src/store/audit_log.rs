//! Rows of `audit_log` (the chain) and `audit_pending` (events waiting to be chained). A request
//! inserts its event into `audit_pending` inside its own transaction and takes no lock. The chainer
//! (`audit::chainer`) extends `audit_log` in a transaction that first takes the chain lock, so the
//! last row it reads is still the last one when it writes, and no two chainers move the same event.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Database, StorageResult};
use crate::config::Backend;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub recorded_at: i64,
    pub event: String,
    pub actor: String,
    pub subject: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// An event recorded by its request and not chained yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingRow {
    pub id: i64,
    pub recorded_at: i64,
    pub event: String,
    pub actor: String,
    pub subject: String,
    pub details: String,
}

/// How many events wait for the chainer, and when the oldest of them was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingSummary {
    pub count: i64,
    pub oldest_recorded_at: Option<i64>,
}

/// An event as a request records it for the chainer (`audit_pending`), written with the request's
/// other rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAuditRow {
    pub recorded_at: i64,
    pub event: String,
    pub actor: String,
    pub subject: String,
    /// JSON text: ids, kinds and counts only.
    pub details: String,
}

const COLUMNS: &str = "seq, recorded_at, event, actor, subject, details, prev_hash, hash";
const PENDING_COLUMNS: &str = "id, recorded_at, event, actor, subject, details";

/// Chain rows written by one multi-row INSERT: 8 parameters each, well below every backend's limit.
const INSERT_CHUNK: usize = 100;

/// Arbitrary constant naming the audit chain's advisory lock on PostgreSQL.
const CHAIN_LOCK_KEY: i64 = 0x0070_666f_7274_6501;

fn from_row(row: &AnyRow) -> StorageResult<AuditRow> {
    Ok(AuditRow {
        seq: row.try_get("seq")?,
        recorded_at: row.try_get("recorded_at")?,
        event: row.try_get("event")?,
        actor: row.try_get("actor")?,
        subject: row.try_get("subject")?,
        details: row.try_get("details")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

fn pending_from_row(row: &AnyRow) -> StorageResult<PendingRow> {
    Ok(PendingRow {
        id: row.try_get("id")?,
        recorded_at: row.try_get("recorded_at")?,
        event: row.try_get("event")?,
        actor: row.try_get("actor")?,
        subject: row.try_get("subject")?,
        details: row.try_get("details")?,
    })
}

/// Records one event for the chainer inside the caller's transaction: a plain INSERT, no lock beyond
/// the row's own. Returns its pending id.
pub(crate) async fn insert_pending(
    conn: &mut AnyConnection,
    recorded_at: i64,
    event: &str,
    actor: &str,
    subject: &str,
    details: &str,
) -> StorageResult<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO audit_pending (recorded_at, event, actor, subject, details) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id",
    )
    .bind(recorded_at)
    .bind(event)
    .bind(actor)
    .bind(subject)
    .bind(details)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Takes the chain lock until the surrounding transaction ends, or answers false at once if another
/// chainer holds it. SQLite needs nothing here: the transaction was opened with `BEGIN IMMEDIATE`, so
/// it holds the database's single write lock.
pub(crate) async fn try_lock_chain(conn: &mut AnyConnection, backend: Backend) -> StorageResult<bool> {
    if backend == Backend::Postgres {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(CHAIN_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await?;
        return Ok(locked);
    }
    Ok(true)
}

pub(crate) async fn last_entry(conn: &mut AnyConnection) -> StorageResult<Option<AuditRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The oldest `limit` committed pending events, in id order.
pub(crate) async fn pending_batch(conn: &mut AnyConnection, limit: i64) -> StorageResult<Vec<PendingRow>> {
    let rows = sqlx::query(&format!("SELECT {PENDING_COLUMNS} FROM audit_pending ORDER BY id LIMIT $1"))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(pending_from_row).collect()
}

pub(crate) async fn insert_entries(conn: &mut AnyConnection, entries: &[AuditRow]) -> StorageResult<()> {
    for chunk in entries.chunks(INSERT_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = i * 8;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7,
                    p + 8
                )
            })
            .collect();
        let sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES {}", values.join(", "));
        let mut query = sqlx::query(&sql);
        for entry in chunk {
            query = query
                .bind(entry.seq)
                .bind(entry.recorded_at)
                .bind(&entry.event)
                .bind(&entry.actor)
                .bind(&entry.subject)
                .bind(&entry.details)
                .bind(&entry.prev_hash)
                .bind(&entry.hash);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes the chained events from `audit_pending`; answers how many rows went.
pub(crate) async fn delete_pending(conn: &mut AnyConnection, ids: &[i64]) -> StorageResult<u64> {
    let mut deleted = 0;
    for chunk in ids.chunks(INSERT_CHUNK) {
        let params: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!("DELETE FROM audit_pending WHERE id IN ({})", params.join(", "));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        deleted += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(deleted)
}

impl Database {
    /// Begins a transaction that may record audit events (and write anything else).
    /// The time it waits to begin is counted (`Database::write_waits`).
    pub async fn begin_write(&self) -> StorageResult<sqlx::Transaction<'static, sqlx::Any>> {
        let started = std::time::Instant::now();
        let tx = match self.backend() {
            Backend::Sqlite => self.writer().begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer().begin().await?,
        };
        self.write_waits.add(started.elapsed());
        Ok(tx)
    }

    /// Entries in chain order after `after_seq`, at most `limit` of them.
    pub async fn audit_entries_after(&self, after_seq: i64, limit: i64) -> StorageResult<Vec<AuditRow>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"))
            .bind(after_seq)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Events recorded but not chained yet: all of them, or (with `recorded_before`) those older than
    /// the chainer's bound.
    pub async fn audit_pending_summary(&self, recorded_before: Option<i64>) -> StorageResult<PendingSummary> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n, MIN(recorded_at) AS oldest FROM audit_pending WHERE recorded_at < $1")
                .bind(recorded_before.unwrap_or(i64::MAX))
                .fetch_one(self.pool())
                .await?;
        Ok(PendingSummary { count: row.try_get("n")?, oldest_recorded_at: row.try_get("oldest")? })
    }
}
