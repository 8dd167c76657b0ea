//! A payment's status move with the rows that record it: the compare-and-set of the status, its
//! event and its audit event. On PostgreSQL one statement of data-modifying CTEs (one round trip,
//! issue 13); on SQLite three statements inside the group commit's transaction, where a round trip
//! costs nothing.

use sqlx::AnyConnection;

use super::audit_log::{self, PendingAuditRow};
use super::payments::{self, PaymentEventRow};
use super::StorageResult;
use crate::config::Backend;
use crate::model::PaymentStatus;

/// One move from `from` to `to`; `timed_out` when pforte's own timeout moved it.
pub struct StatusMove<'a> {
    pub transaction_id: &'a str,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    pub detail: Option<&'a str>,
    pub timed_out: bool,
    pub event: &'a PaymentEventRow,
    pub audit: &'a PendingAuditRow,
}

/// Moves the status if it still is `from`, and only then writes the event and the audit event.
/// False when another writer moved it first: nothing was written.
pub async fn move_status(
    conn: &mut AnyConnection,
    backend: Backend,
    at: i64,
    change: &StatusMove<'_>,
) -> StorageResult<bool> {
    if backend == Backend::Sqlite {
        let StatusMove { transaction_id, from, to, detail, timed_out, event, audit } = change;
        if !payments::compare_and_set_status(conn, transaction_id, *from, *to, *detail, *timed_out, at).await? {
            return Ok(false);
        }
        payments::insert_event(conn, transaction_id, event).await?;
        let a = audit;
        audit_log::insert_pending(conn, a.recorded_at, &a.event, &a.actor, &a.subject, &a.details).await?;
        return Ok(true);
    }
    let moved: i64 = sqlx::query_scalar(
        "WITH moved AS ( \
           UPDATE payments SET status = $1, status_detail = $2, updated_at = $3, \
             timed_out_at = CASE WHEN $4 = 1 THEN $3 ELSE timed_out_at END, \
             paid_at = CASE WHEN $7 = 1 THEN $3 ELSE paid_at END \
           WHERE transaction_id = $5 AND status = $6 RETURNING transaction_id), \
         event AS ( \
           INSERT INTO payment_events (transaction_id, from_status, to_status, source, detail, recorded_at) \
           SELECT transaction_id, $8, $9, $10, $11, $12 FROM moved), \
         audit AS ( \
           INSERT INTO audit_pending (recorded_at, event, actor, subject, details) \
           SELECT $13, $14, $15, $16, $17 FROM moved) \
         SELECT COUNT(*) FROM moved",
    )
    .bind(change.to.as_str())
    .bind(change.detail)
    .bind(at)
    .bind(i64::from(change.timed_out))
    .bind(change.transaction_id)
    .bind(change.from.as_str())
    .bind(i64::from(change.to == PaymentStatus::Payed))
    .bind(change.event.from_status.as_str())
    .bind(change.event.to_status.as_str())
    .bind(&change.event.source)
    .bind(&change.event.detail)
    .bind(change.event.recorded_at)
    .bind(change.audit.recorded_at)
    .bind(&change.audit.event)
    .bind(&change.audit.actor)
    .bind(&change.audit.subject)
    .bind(&change.audit.details)
    .fetch_one(&mut *conn)
    .await?;
    Ok(moved == 1)
}
