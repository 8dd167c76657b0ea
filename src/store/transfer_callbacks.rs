//! Rows of `transfer_callbacks`: the callbacks to destinations' Fachverfahren and to senders. Written in the
//! transaction of the change they announce, claimed by a worker with a lease in one statement,
//! delivered outside any transaction, then marked.

use sqlx::Row;

use super::{Database, StorageResult};

/// One callback message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRow {
    pub id: String,
    pub destination_id: String,
    pub payload: String,
    pub created_at: i64,
    pub attempts: i64,
    /// Set for a message to this submission's sender (its own callback); `None` for one to the
    /// destination's Fachverfahren.
    pub submission_id: Option<String>,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    Delivered,
    RetryAt(i64, String),
    GiveUp(String),
}

/// Writes a callback message inside the caller's transaction, due at once.
pub(crate) async fn enqueue(conn: &mut sqlx::AnyConnection, row: &CallbackRow) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO transfer_callbacks (id, destination_id, payload, created_at, next_attempt_at, attempts, \
         submission_id) VALUES ($1, $2, $3, $4, $4, 0, $5)",
    )
    .bind(&row.id)
    .bind(&row.destination_id)
    .bind(&row.payload)
    .bind(row.created_at)
    .bind(&row.submission_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Database {
    /// Claims up to `limit` due messages until `lease_until`. The conditions are repeated outside the
    /// subquery so that on PostgreSQL a second worker updating the same row at the same moment
    /// re-reads it after the first one's commit and skips it.
    pub async fn claim_transfer_callbacks(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StorageResult<Vec<CallbackRow>> {
        let open = "delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= $1 \
                    AND (lease_until IS NULL OR lease_until <= $1)";
        let rows = sqlx::query(&format!(
            "UPDATE transfer_callbacks SET lease_until = $2 \
             WHERE id IN (SELECT id FROM transfer_callbacks WHERE {open} ORDER BY next_attempt_at LIMIT $3) AND {open} \
             RETURNING id, destination_id, payload, created_at, attempts, submission_id"
        ))
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .fetch_all(self.writer())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CallbackRow {
                    id: row.try_get("id")?,
                    destination_id: row.try_get("destination_id")?,
                    payload: row.try_get("payload")?,
                    created_at: row.try_get("created_at")?,
                    attempts: row.try_get("attempts")?,
                    submission_id: row.try_get("submission_id")?,
                })
            })
            .collect()
    }

    /// Records an attempt's outcome and releases the lease.
    pub async fn record_transfer_callback(&self, id: &str, now: i64, outcome: &CallbackOutcome) -> StorageResult<()> {
        let (delivered, next, gave_up, error) = match outcome {
            CallbackOutcome::Delivered => (Some(now), None, None, None),
            CallbackOutcome::RetryAt(at, error) => (None, Some(*at), None, Some(error.as_str())),
            CallbackOutcome::GiveUp(error) => (None, None, Some(now), Some(error.as_str())),
        };
        sqlx::query(
            "UPDATE transfer_callbacks SET attempts = attempts + 1, lease_until = NULL, delivered_at = $2, \
             next_attempt_at = COALESCE($3, next_attempt_at), gave_up_at = $4, last_error = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(delivered)
        .bind(next)
        .bind(gave_up)
        .bind(error)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
