//! Rows of `refused_attempts`: per-hour counters of refused attempts, kept outside the audit chain
//! (SECURITY.md #32). One upsert per attempt, no chain lock.

use sqlx::Row;

use super::{Database, StorageResult};

/// One counter: how often `event` was refused for `subject` with `reason` in the hour from `hour_start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedCount {
    pub event: String,
    pub subject: String,
    pub reason: String,
    pub hour_start: i64,
    pub attempts: i64,
    pub last_at: i64,
}

const HOUR_MILLIS: i64 = 3_600_000;

impl Database {
    /// Adds one refused attempt at `now_millis` to its hour's counter.
    pub async fn count_refused_attempt(
        &self,
        event: &str,
        subject: &str,
        reason: &str,
        now_millis: i64,
    ) -> StorageResult<()> {
        let hour_start = now_millis - now_millis.rem_euclid(HOUR_MILLIS);
        sqlx::query(
            "INSERT INTO refused_attempts (event, subject, reason, hour_start, attempts, last_at) \
             VALUES ($1, $2, $3, $4, 1, $5) \
             ON CONFLICT (event, subject, reason, hour_start) \
             DO UPDATE SET attempts = refused_attempts.attempts + 1, last_at = excluded.last_at",
        )
        .bind(event)
        .bind(subject)
        .bind(reason)
        .bind(hour_start)
        .bind(now_millis)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The counters of `event` (all events when `None`), newest hour first.
    pub async fn refused_attempts(&self, event: Option<&str>) -> StorageResult<Vec<RefusedCount>> {
        let rows = sqlx::query(
            "SELECT event, subject, reason, hour_start, attempts, last_at FROM refused_attempts \
             WHERE $1 = '' OR event = $1 ORDER BY hour_start DESC, event, subject, reason",
        )
        .bind(event.unwrap_or_default())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RefusedCount {
                    event: row.try_get("event")?,
                    subject: row.try_get("subject")?,
                    reason: row.try_get("reason")?,
                    hour_start: row.try_get("hour_start")?,
                    attempts: row.try_get("attempts")?,
                    last_at: row.try_get("last_at")?,
                })
            })
            .collect()
    }
}
