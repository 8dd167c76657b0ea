//! The notification outbox as operators read it (`pforte notifications ...`): messages with their
//! delivery state and last answer, and putting a given-up message back in line. The state is derived
//! from the rows the delivery worker writes, so it cannot drift from them: delivered once
//! `delivered_at` is set, pending while neither delivered nor given up, disabled when given up after
//! the receiver's last answer was 410 Gone, failed when given up otherwise.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::outbox::{self, OutboxRow};
use super::{Database, StorageResult};

/// A message with what the log adds: its state and the HTTP status of its last attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedNotification {
    pub message: OutboxRow,
    /// `pending`, `delivered`, `failed` or `disabled`.
    pub state: String,
    pub last_status: Option<i64>,
}

/// Which messages to list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct NotificationQuery {
    pub transaction_id: Option<String>,
    pub state: Option<String>,
    pub limit: i64,
}

const LAST_STATUS: &str =
    "(SELECT a.http_status FROM notification_attempts a WHERE a.outbox_id = o.id ORDER BY a.id DESC LIMIT 1)";

/// The log's view of the outbox: every column plus `last_status` and `state`.
fn logged_view() -> String {
    format!(
        "SELECT {columns}, last_status, \
           CASE WHEN delivered_at IS NOT NULL THEN 'delivered' \
                WHEN gave_up_at IS NULL THEN 'pending' \
                WHEN last_status = 410 THEN 'disabled' \
                ELSE 'failed' END AS state \
         FROM (SELECT o.*, {LAST_STATUS} AS last_status FROM notification_outbox o) logged",
        columns = outbox::COLUMNS
    )
}

fn logged_from_row(row: &AnyRow) -> StorageResult<LoggedNotification> {
    Ok(LoggedNotification {
        message: outbox::from_row(row)?,
        state: row.try_get("state")?,
        last_status: row.try_get("last_status")?,
    })
}

impl Database {
    /// Messages matching `query`, newest first.
    pub async fn logged_notifications(&self, query: &NotificationQuery) -> StorageResult<Vec<LoggedNotification>> {
        // Only the conditions asked for are written, so every placeholder has a typed value (PostgreSQL
        // cannot type a bare `$1 IS NULL`).
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        for (column, value) in [("transaction_id", &query.transaction_id), ("state", &query.state)] {
            if let Some(value) = value {
                values.push(value.clone());
                conditions.push(format!("{column} = ${}", values.len()));
            }
        }
        let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!(
            "SELECT * FROM ({view}) listed {filter} ORDER BY created_at DESC, id LIMIT ${n}",
            view = logged_view(),
            n = values.len() + 1
        );
        let mut statement = sqlx::query(&sql);
        for value in values {
            statement = statement.bind(value);
        }
        let rows = statement.bind(query.limit).fetch_all(self.pool()).await?;
        rows.iter().map(logged_from_row).collect()
    }

    pub async fn logged_notification(&self, id: &str) -> StorageResult<Option<LoggedNotification>> {
        let sql = format!("SELECT * FROM ({view}) listed WHERE id = $1", view = logged_view());
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(logged_from_row).transpose()
    }
}

/// Puts a given-up (failed or disabled) message back in line, due at `now`, inside the caller's
/// write transaction (where the audit entry goes too). False when the message is unknown, delivered
/// or still pending.
pub(crate) async fn requeue_given_up(conn: &mut AnyConnection, id: &str, now: i64) -> StorageResult<bool> {
    let done = sqlx::query(
        "UPDATE notification_outbox SET gave_up_at = NULL, gave_up_reason = NULL, next_attempt_at = $1, \
         locked_until = NULL WHERE id = $2 AND gave_up_at IS NOT NULL AND delivered_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
