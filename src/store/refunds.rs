//! Rows of `payment_refunds` and `payment_refund_events`. A refund is written in the caller's write
//! transaction after [`lock_paid_payment`] has locked its payment, so the sum of a payment's refunds
//! is read and extended by one writer at a time on both backends.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Database, StorageResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub refund_id: String,
    pub transaction_id: String,
    /// Exact decimal text, e.g. `12.50`.
    pub amount: String,
    pub reason: Option<String>,
    /// `PENDING`, `SUBMITTED`, `INSTRUCTION` or `FAILED`.
    pub status: String,
    /// Why a refund FAILED.
    pub status_detail: Option<String>,
    /// The provider's id of the refund, when it gave one.
    pub provider_reference: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A refund with the payment it belongs to, for the finance office's lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRefundRow {
    pub refund: RefundRow,
    pub originator_id: String,
    pub endpoint_id: String,
    pub request_id: String,
    pub transaction_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundEventRow {
    /// `None` for the first event (the refund was created).
    pub from_status: Option<String>,
    pub to_status: String,
    pub detail: Option<String>,
    pub recorded_at: i64,
}

const COLUMNS: &str = "r.refund_id, r.transaction_id, r.amount, r.reason, r.status, r.status_detail, \
                       r.provider_reference, r.created_at, r.updated_at";

fn from_row(row: &AnyRow) -> StorageResult<RefundRow> {
    Ok(RefundRow {
        refund_id: row.try_get("refund_id")?,
        transaction_id: row.try_get("transaction_id")?,
        amount: row.try_get("amount")?,
        reason: row.try_get("reason")?,
        status: row.try_get("status")?,
        status_detail: row.try_get("status_detail")?,
        provider_reference: row.try_get("provider_reference")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Locks the payment row until the transaction ends, if it is PAYED; returns its status otherwise
/// (`None` for an unknown payment). An UPDATE takes the row lock on PostgreSQL without dialect
/// differences (`SELECT … FOR UPDATE` does not exist in SQLite, where the write transaction holds
/// the database lock anyway), so a second refund of the same payment waits here and then sees the
/// first one's row when it adds up the refunds.
pub async fn lock_paid_payment(conn: &mut AnyConnection, transaction_id: &str) -> StorageResult<Result<(), String>> {
    let locked =
        sqlx::query("UPDATE payments SET updated_at = updated_at WHERE transaction_id = $1 AND status = 'PAYED'")
            .bind(transaction_id)
            .execute(&mut *conn)
            .await?;
    if locked.rows_affected() == 1 {
        return Ok(Ok(()));
    }
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM payments WHERE transaction_id = $1")
        .bind(transaction_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(Err(status.unwrap_or_default()))
}

/// The amounts of a payment's refunds that count against it: all but FAILED ones.
pub async fn counted_amounts(conn: &mut AnyConnection, transaction_id: &str) -> StorageResult<Vec<String>> {
    // Summed by the caller as exact decimals: TEXT amounts cannot be summed in SQL without floats.
    let amounts =
        sqlx::query_scalar("SELECT amount FROM payment_refunds WHERE transaction_id = $1 AND status <> 'FAILED'")
            .bind(transaction_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(amounts)
}

pub async fn insert(conn: &mut AnyConnection, row: &RefundRow) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO payment_refunds (refund_id, transaction_id, amount, reason, status, status_detail, \
         provider_reference, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&row.refund_id)
    .bind(&row.transaction_id)
    .bind(&row.amount)
    .bind(&row.reason)
    .bind(&row.status)
    .bind(&row.status_detail)
    .bind(&row.provider_reference)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves a refund from `from` to `to` with its outcome, only if it is still `from`.
pub async fn compare_and_set_status(
    conn: &mut AnyConnection,
    refund_id: &str,
    from: &str,
    to: &str,
    detail: Option<&str>,
    provider_reference: Option<&str>,
    now: i64,
) -> StorageResult<bool> {
    let done = sqlx::query(
        "UPDATE payment_refunds SET status = $1, status_detail = $2, \
         provider_reference = COALESCE($3, provider_reference), updated_at = $4 \
         WHERE refund_id = $5 AND status = $6",
    )
    .bind(to)
    .bind(detail)
    .bind(provider_reference)
    .bind(now)
    .bind(refund_id)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_event(
    conn: &mut AnyConnection,
    refund_id: &str,
    from: Option<&str>,
    to: &str,
    detail: Option<&str>,
    now: i64,
) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO payment_refund_events (refund_id, from_status, to_status, detail, recorded_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(refund_id)
    .bind(from)
    .bind(to)
    .bind(detail)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Database {
    pub async fn refund(&self, refund_id: &str) -> StorageResult<Option<RefundRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM payment_refunds r WHERE r.refund_id = $1"))
            .bind(refund_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A payment's refunds, oldest first.
    pub async fn refunds_of(&self, transaction_id: &str) -> StorageResult<Vec<RefundRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_refunds r WHERE r.transaction_id = $1 ORDER BY r.created_at, r.refund_id"
        ))
        .bind(transaction_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The refunds of one authority (tenant, `endPointId`) created in `[from, until)` (millis), in
    /// order of creation: what the finance office pays back or books.
    pub async fn refunds_of_tenant(
        &self,
        endpoint_id: &str,
        from: i64,
        until: i64,
    ) -> StorageResult<Vec<TenantRefundRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, p.originator_id, p.endpoint_id, p.request_id, p.transaction_reference \
             FROM payment_refunds r JOIN payments p ON p.transaction_id = r.transaction_id \
             WHERE p.endpoint_id = $1 AND r.created_at >= $2 AND r.created_at < $3 \
             ORDER BY r.created_at, r.refund_id"
        ))
        .bind(endpoint_id)
        .bind(from)
        .bind(until)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TenantRefundRow {
                    refund: from_row(row)?,
                    originator_id: row.try_get("originator_id")?,
                    endpoint_id: row.try_get("endpoint_id")?,
                    request_id: row.try_get("request_id")?,
                    transaction_reference: row.try_get("transaction_reference")?,
                })
            })
            .collect()
    }

    /// A refund's statuses in order.
    pub async fn refund_events(&self, refund_id: &str) -> StorageResult<Vec<RefundEventRow>> {
        let rows = sqlx::query(
            "SELECT from_status, to_status, detail, recorded_at FROM payment_refund_events WHERE refund_id = $1 ORDER BY id",
        )
        .bind(refund_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RefundEventRow {
                    from_status: row.try_get("from_status")?,
                    to_status: row.try_get("to_status")?,
                    detail: row.try_get("detail")?,
                    recorded_at: row.try_get("recorded_at")?,
                })
            })
            .collect()
    }
}
