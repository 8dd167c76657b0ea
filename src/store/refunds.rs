//! Rows of `payment_refunds` and `payment_refund_events`. A refund is written in the caller's write
//! transaction after [`lock_paid_payment`] has locked its payment, so the sum of a payment's refunds
//! is read and extended by one writer at a time on both backends.

use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{decimal_column, parse_column, Database, StorageResult};
use crate::model::{PaymentStatus, RefundStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub refund_id: String,
    pub transaction_id: String,
    /// Stored as exact decimal text, e.g. `12.50`.
    pub amount: Decimal,
    pub reason: Option<String>,
    pub status: RefundStatus,
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
    pub from_status: Option<RefundStatus>,
    pub to_status: RefundStatus,
    pub detail: Option<String>,
    pub recorded_at: i64,
}

const COLUMNS: &str = "r.refund_id, r.transaction_id, r.amount, r.reason, r.status, r.status_detail, \
                       r.provider_reference, r.created_at, r.updated_at";

fn from_row(row: &AnyRow) -> StorageResult<RefundRow> {
    let amount: String = row.try_get("amount")?;
    let status: String = row.try_get("status")?;
    Ok(RefundRow {
        refund_id: row.try_get("refund_id")?,
        transaction_id: row.try_get("transaction_id")?,
        amount: decimal_column("payment_refunds.amount", &amount)?,
        reason: row.try_get("reason")?,
        status: parse_column("payment_refunds.status", &status, RefundStatus::parse)?,
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
pub async fn lock_paid_payment(
    conn: &mut AnyConnection,
    transaction_id: &str,
) -> StorageResult<Result<(), Option<PaymentStatus>>> {
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
    let status = status.map(|text| parse_column("payments.status", &text, PaymentStatus::parse)).transpose()?;
    Ok(Err(status))
}

/// The amounts of a payment's refunds that count against it: all but FAILED ones.
pub async fn counted_amounts(conn: &mut AnyConnection, transaction_id: &str) -> StorageResult<Vec<Decimal>> {
    // Summed by the caller as exact decimals: TEXT amounts cannot be summed in SQL without floats.
    let amounts: Vec<String> =
        sqlx::query_scalar("SELECT amount FROM payment_refunds WHERE transaction_id = $1 AND status <> 'FAILED'")
            .bind(transaction_id)
            .fetch_all(&mut *conn)
            .await?;
    amounts.iter().map(|amount| decimal_column("payment_refunds.amount", amount)).collect()
}

pub async fn insert(conn: &mut AnyConnection, row: &RefundRow) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO payment_refunds (refund_id, transaction_id, amount, reason, status, status_detail, \
         provider_reference, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&row.refund_id)
    .bind(&row.transaction_id)
    .bind(row.amount.to_string())
    .bind(&row.reason)
    .bind(row.status.as_str())
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
    from: RefundStatus,
    to: RefundStatus,
    detail: Option<&str>,
    provider_reference: Option<&str>,
    now: i64,
) -> StorageResult<bool> {
    let done = sqlx::query(
        "UPDATE payment_refunds SET status = $1, status_detail = $2, \
         provider_reference = COALESCE($3, provider_reference), updated_at = $4 \
         WHERE refund_id = $5 AND status = $6",
    )
    .bind(to.as_str())
    .bind(detail)
    .bind(provider_reference)
    .bind(now)
    .bind(refund_id)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_event(
    conn: &mut AnyConnection,
    refund_id: &str,
    from: Option<RefundStatus>,
    to: RefundStatus,
    detail: Option<&str>,
    now: i64,
) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO payment_refund_events (refund_id, from_status, to_status, detail, recorded_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(refund_id)
    .bind(from.map(RefundStatus::as_str))
    .bind(to.as_str())
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

    /// Claims up to `limit` refunds still PENDING that were last touched at or before
    /// `abandoned_before` (their request is gone), oldest first: each is moved to `updated_at = now`
    /// by compare-and-set, so another worker skips it until it counts as abandoned again.
    pub async fn claim_abandoned_refunds(
        &self,
        abandoned_before: i64,
        now: i64,
        limit: i64,
    ) -> StorageResult<Vec<RefundRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_refunds r WHERE r.status = 'PENDING' AND r.updated_at <= $1 \
             ORDER BY r.updated_at, r.refund_id LIMIT $2"
        ))
        .bind(abandoned_before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            let refund = from_row(&row)?;
            let taken = sqlx::query(
                "UPDATE payment_refunds SET updated_at = $1 \
                 WHERE refund_id = $2 AND status = 'PENDING' AND updated_at = $3",
            )
            .bind(now)
            .bind(&refund.refund_id)
            .bind(refund.updated_at)
            .execute(self.writer())
            .await?;
            if taken.rows_affected() == 1 {
                claimed.push(RefundRow { updated_at: now, ..refund });
            }
        }
        Ok(claimed)
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
                let from_status: Option<String> = row.try_get("from_status")?;
                let to_status: String = row.try_get("to_status")?;
                let status = |text: &str| parse_column("payment_refund_events.status", text, RefundStatus::parse);
                Ok(RefundEventRow {
                    from_status: from_status.as_deref().map(status).transpose()?,
                    to_status: status(&to_status)?,
                    detail: row.try_get("detail")?,
                    recorded_at: row.try_get("recorded_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{is_corrupt_column, test_database, StorageError};

    /// Stores a paid payment with one refund, overwrites a refund column with text pforte never
    /// writes, and reads the refund back.
    async fn read_after(column: &str, text: &str) -> Result<StorageResult<Option<RefundRow>>, StorageError> {
        let (db, _dir) = test_database().await?;
        let mut conn = db.writer().acquire().await?;
        sqlx::query(
            "INSERT INTO payments (transaction_id, originator_id, endpoint_id, client_id, request_id, request, \
             gros_amount, provider_id, status, created_at, updated_at, expires_at) \
             VALUES ('tx-1', 'o', 'e', 'c', 'r', '{}', '20.00', 'p', 'PAYED', 1, 1, 2)",
        )
        .execute(&mut *conn)
        .await?;
        let refund = RefundRow {
            refund_id: "rf-1".into(),
            transaction_id: "tx-1".into(),
            amount: Decimal::new(500, 2),
            reason: None,
            status: RefundStatus::Pending,
            status_detail: None,
            provider_reference: None,
            created_at: 1,
            updated_at: 1,
        };
        insert(&mut conn, &refund).await?;
        sqlx::query(&format!("UPDATE payment_refunds SET {column} = $1")).bind(text).execute(&mut *conn).await?;
        drop(conn);
        Ok(db.refund("rf-1").await)
    }

    #[tokio::test]
    async fn a_refund_reads_back_typed() -> Result<(), StorageError> {
        let stored = read_after("reason", "asked for").await??;
        assert_eq!(stored.map(|r| (r.status, r.amount.to_string())), Some((RefundStatus::Pending, "5.00".into())));
        Ok(())
    }

    #[tokio::test]
    async fn a_corrupt_status_or_amount_is_reported_by_its_column_and_never_defaulted() -> Result<(), StorageError> {
        let status = read_after("status", "DONE").await?.expect_err("an unknown status must not read");
        assert!(is_corrupt_column(&status, "payment_refunds.status"), "{status}");
        let amount = read_after("amount", "5 EUR").await?.expect_err("a malformed amount must not read");
        assert!(is_corrupt_column(&amount, "payment_refunds.amount"), "{amount}");
        assert!(!amount.to_string().contains("EUR"), "the value stays out of the message: {amount}");
        Ok(())
    }
}
