//! Rows of `audit_log`. Appending happens inside a transaction that first takes the chain lock, so
//! the previous row read is still the last one when the new row is written.

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

const COLUMNS: &str = "seq, recorded_at, event, actor, subject, details, prev_hash, hash";

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

/// Serialises appenders until the surrounding transaction ends. SQLite needs nothing here: the
/// transaction was opened with `BEGIN IMMEDIATE` or has already written, so it holds the write lock.
pub(crate) async fn lock_chain(conn: &mut AnyConnection, backend: Backend) -> StorageResult<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK_KEY).execute(&mut *conn).await?;
    }
    Ok(())
}

pub(crate) async fn last_entry(conn: &mut AnyConnection) -> StorageResult<Option<AuditRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn insert_entry(conn: &mut AnyConnection, entry: &AuditRow) -> StorageResult<()> {
    sqlx::query(&format!("INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        .bind(entry.seq)
        .bind(entry.recorded_at)
        .bind(&entry.event)
        .bind(&entry.actor)
        .bind(&entry.subject)
        .bind(&entry.details)
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Database {
    /// Begins a transaction that may append to the audit chain (and write anything else).
    pub async fn begin_write(&self) -> StorageResult<sqlx::Transaction<'static, sqlx::Any>> {
        let tx = match self.backend() {
            Backend::Sqlite => self.writer().begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer().begin().await?,
        };
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
}
