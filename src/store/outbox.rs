//! Rows of `notification_outbox` and `notification_attempts`. Workers claim due messages with a
//! lease in one statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so instances sharing a database
//! never take the same message), deliver outside any transaction, then record the attempt.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Database, StorageResult};
use crate::config::Backend;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: String,
    pub client_id: String,
    pub transaction_id: String,
    pub url: String,
    pub payload: String,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i64,
    pub delivered_at: Option<i64>,
    pub gave_up_at: Option<i64>,
    pub gave_up_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub attempted_at: i64,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    RetryAt(i64),
    GiveUp(String),
}

pub(super) const COLUMNS: &str = "id, client_id, transaction_id, url, payload, created_at, next_attempt_at, attempts, \
                       delivered_at, gave_up_at, gave_up_reason";

pub(super) fn from_row(row: &AnyRow) -> StorageResult<OutboxRow> {
    Ok(OutboxRow {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        transaction_id: row.try_get("transaction_id")?,
        url: row.try_get("url")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        attempts: row.try_get("attempts")?,
        delivered_at: row.try_get("delivered_at")?,
        gave_up_at: row.try_get("gave_up_at")?,
        gave_up_reason: row.try_get("gave_up_reason")?,
    })
}

/// Adds a message inside the caller's write transaction (the one that makes the change it announces).
pub(crate) async fn enqueue(conn: &mut AnyConnection, row: &OutboxRow) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO notification_outbox (id, client_id, transaction_id, url, payload, created_at, next_attempt_at, attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
    )
    .bind(&row.id)
    .bind(&row.client_id)
    .bind(&row.transaction_id)
    .bind(&row.url)
    .bind(&row.payload)
    .bind(row.created_at)
    .bind(row.next_attempt_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Database {
    /// Takes up to `limit` due messages for this worker until `lease_until`.
    pub async fn claim_due_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StorageResult<Vec<OutboxRow>> {
        let skip_locked = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            // SQLite has one writer at a time: the statement cannot interleave with another claim.
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE notification_outbox SET locked_until = $1 WHERE id IN (\
               SELECT id FROM notification_outbox \
               WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= $2 \
                 AND (locked_until IS NULL OR locked_until <= $2) \
               ORDER BY next_attempt_at LIMIT $3 {skip_locked}) \
             RETURNING {COLUMNS}"
        ))
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(self.writer())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Logs the attempt and settles the message: delivered, retried later, or given up.
    pub async fn record_notification_attempt(
        &self,
        id: &str,
        attempt: &AttemptRow,
        outcome: &AttemptOutcome,
    ) -> StorageResult<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO notification_attempts (outbox_id, attempted_at, http_status, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(attempt.attempted_at)
        .bind(attempt.http_status)
        .bind(&attempt.error)
        .bind(attempt.duration_ms)
        .execute(&mut *tx)
        .await?;
        let (delivered_at, next_attempt_at, gave_up_at, reason) = match outcome {
            AttemptOutcome::Delivered => (Some(attempt.attempted_at), None, None, None),
            AttemptOutcome::RetryAt(at) => (None, Some(*at), None, None),
            AttemptOutcome::GiveUp(reason) => (None, None, Some(attempt.attempted_at), Some(reason.clone())),
        };
        sqlx::query(
            "UPDATE notification_outbox SET attempts = attempts + 1, locked_until = NULL, \
             delivered_at = COALESCE($1, delivered_at), next_attempt_at = COALESCE($2, next_attempt_at), \
             gave_up_at = $3, gave_up_reason = $4 WHERE id = $5",
        )
        .bind(delivered_at)
        .bind(next_attempt_at)
        .bind(gave_up_at)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts a given-up message back in line (the operator's or the service's "redeliver").
    pub async fn redeliver_notification(&self, id: &str, now: i64) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE notification_outbox SET gave_up_at = NULL, gave_up_reason = NULL, next_attempt_at = $1, \
             locked_until = NULL WHERE id = $2 AND delivered_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn notification(&self, id: &str) -> StorageResult<Option<OutboxRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM notification_outbox WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn notifications_of(&self, transaction_id: &str) -> StorageResult<Vec<OutboxRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM notification_outbox WHERE transaction_id = $1 ORDER BY created_at, id"
        ))
        .bind(transaction_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The delivery log of one message, oldest first.
    pub async fn notification_attempts(&self, id: &str) -> StorageResult<Vec<AttemptRow>> {
        let rows = sqlx::query(
            "SELECT attempted_at, http_status, error, duration_ms FROM notification_attempts WHERE outbox_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptRow {
                    attempted_at: row.try_get("attempted_at")?,
                    http_status: row.try_get("http_status")?,
                    error: row.try_get("error")?,
                    duration_ms: row.try_get("duration_ms")?,
                })
            })
            .collect()
    }
}
