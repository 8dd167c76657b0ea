//! Rows of `payments` and `payment_events`. A status changes only by compare-and-set on the status
//! read before, inside the caller's write transaction, together with its event row.

use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{decimal_column, parse_column, Database, StorageResult};
use crate::model::PaymentStatus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub transaction_id: String,
    pub originator_id: String,
    pub endpoint_id: String,
    pub client_id: String,
    pub request_id: String,
    /// The request exactly as the online service sent it (what GET and POST echo).
    pub request: String,
    /// What the provider got: booking defaults merged, redirectUrl back to pforte, no notifyUrl.
    pub effective_request: String,
    pub gros_amount: Decimal,
    pub provider_id: String,
    pub provider_reference: Option<String>,
    pub pay_url: Option<String>,
    pub status: PaymentStatus,
    pub status_detail: Option<String>,
    pub timed_out_at: Option<i64>,
    pub paid_after_timeout_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    /// As the provider reported it (an unlisted method by its own name).
    pub payment_method: Option<String>,
    pub payment_method_detail: Option<String>,
    /// The Kassenzeichen, once the provider reported one.
    pub transaction_reference: Option<String>,
    /// When it became PAYED (or was paid after a timeout).
    pub paid_at: Option<i64>,
    /// The service's `notifyUrl` for this payment, overriding its registered notification URL.
    pub notify_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEventRow {
    pub from_status: PaymentStatus,
    pub to_status: PaymentStatus,
    pub source: String,
    pub detail: Option<String>,
    pub recorded_at: i64,
}

pub(super) const COLUMNS: &str =
    "transaction_id, originator_id, endpoint_id, client_id, request_id, request, gros_amount, \
                       provider_id, provider_reference, pay_url, status, status_detail, timed_out_at, \
                       paid_after_timeout_at, created_at, updated_at, expires_at, effective_request, \
                       payment_method, payment_method_detail, transaction_reference, paid_at, notify_url";

fn from_row(row: &AnyRow) -> StorageResult<PaymentRow> {
    let gros_amount: String = row.try_get("gros_amount")?;
    let status: String = row.try_get("status")?;
    Ok(PaymentRow {
        transaction_id: row.try_get("transaction_id")?,
        originator_id: row.try_get("originator_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        client_id: row.try_get("client_id")?,
        request_id: row.try_get("request_id")?,
        request: row.try_get("request")?,
        effective_request: row.try_get::<Option<String>, _>("effective_request")?.unwrap_or_default(),
        gros_amount: decimal_column("payments.gros_amount", &gros_amount)?,
        provider_id: row.try_get("provider_id")?,
        provider_reference: row.try_get("provider_reference")?,
        pay_url: row.try_get("pay_url")?,
        status: parse_column("payments.status", &status, PaymentStatus::parse)?,
        status_detail: row.try_get("status_detail")?,
        timed_out_at: row.try_get("timed_out_at")?,
        paid_after_timeout_at: row.try_get("paid_after_timeout_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
        payment_method: row.try_get("payment_method")?,
        payment_method_detail: row.try_get("payment_method_detail")?,
        transaction_reference: row.try_get("transaction_reference")?,
        paid_at: row.try_get("paid_at")?,
        notify_url: row.try_get("notify_url")?,
    })
}

/// Inserts a new payment; a second one with the same (originator, endpoint, requestId) fails with a
/// unique violation (`StorageError::is_unique_violation`), which the API answers `PAYMENT_EXISTS`.
pub async fn insert(conn: &mut AnyConnection, row: &PaymentRow) -> StorageResult<()> {
    insert_with_personal_data(conn, row, None).await
}

/// As `insert`, with the payment's sealed personal data in the same statement.
pub(super) async fn insert_with_personal_data(
    conn: &mut AnyConnection,
    row: &PaymentRow,
    personal_data: Option<&str>,
) -> StorageResult<()> {
    let sql = format!(
        "INSERT INTO payments ({COLUMNS}, personal_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
    );
    bind_row(sqlx::query(&sql), row).bind(personal_data).execute(&mut *conn).await?;
    Ok(())
}

/// Binds a row's values as `$1` to `$23`, in the order of `COLUMNS`.
pub(super) fn bind_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    row: &'q PaymentRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&row.transaction_id)
        .bind(&row.originator_id)
        .bind(&row.endpoint_id)
        .bind(&row.client_id)
        .bind(&row.request_id)
        .bind(&row.request)
        .bind(row.gros_amount.to_string())
        .bind(&row.provider_id)
        .bind(&row.provider_reference)
        .bind(&row.pay_url)
        .bind(row.status.as_str())
        .bind(&row.status_detail)
        .bind(row.timed_out_at)
        .bind(row.paid_after_timeout_at)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.expires_at)
        .bind(&row.effective_request)
        .bind(&row.payment_method)
        .bind(&row.payment_method_detail)
        .bind(&row.transaction_reference)
        .bind(row.paid_at)
        .bind(&row.notify_url)
}

pub async fn get(conn: &mut AnyConnection, transaction_id: &str) -> StorageResult<Option<PaymentRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM payments WHERE transaction_id = $1"))
        .bind(transaction_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Moves the status from `from` to `to`, only if it is still `from`. True when this call moved it.
/// A move to PAYED records `paid_at` (the finance exports need it).
pub async fn compare_and_set_status(
    conn: &mut AnyConnection,
    transaction_id: &str,
    from: PaymentStatus,
    to: PaymentStatus,
    detail: Option<&str>,
    timed_out: bool,
    now: i64,
) -> StorageResult<bool> {
    let done = sqlx::query(
        "UPDATE payments SET status = $1, status_detail = $2, updated_at = $3, \
         timed_out_at = CASE WHEN $4 = 1 THEN $3 ELSE timed_out_at END, \
         paid_at = CASE WHEN $7 = 1 THEN $3 ELSE paid_at END \
         WHERE transaction_id = $5 AND status = $6",
    )
    .bind(to.as_str())
    .bind(detail)
    .bind(now)
    .bind(i64::from(timed_out))
    .bind(transaction_id)
    .bind(from.as_str())
    .bind(i64::from(to == PaymentStatus::Payed))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a payment pforte closed itself (timed out, or cancelled for the service) as paid afterwards,
/// once, with its paid-at time. True when this call marked it.
pub async fn flag_paid_after_timeout(conn: &mut AnyConnection, transaction_id: &str, now: i64) -> StorageResult<bool> {
    let done = sqlx::query(
        "UPDATE payments SET paid_after_timeout_at = $1, paid_at = $1, updated_at = $1 \
         WHERE transaction_id = $2 AND (timed_out_at IS NOT NULL OR status = 'CANCELED') \
         AND paid_after_timeout_at IS NULL",
    )
    .bind(now)
    .bind(transaction_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the online service cancelled this payment (through pforte, not at the provider).
pub async fn canceled_by_client(conn: &mut AnyConnection, transaction_id: &str) -> StorageResult<bool> {
    let found = sqlx::query(
        "SELECT 1 FROM payment_events WHERE transaction_id = $1 AND to_status = 'CANCELED' AND source = 'client'",
    )
    .bind(transaction_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// Whether the payment has an event with exactly this detail (a flag written before).
pub async fn has_event_detail(conn: &mut AnyConnection, transaction_id: &str, detail: &str) -> StorageResult<bool> {
    let found: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM payment_events WHERE transaction_id = $1 AND detail = $2")
            .bind(transaction_id)
            .bind(detail)
            .fetch_one(&mut *conn)
            .await?;
    Ok(found > 0)
}

pub async fn insert_event(
    conn: &mut AnyConnection,
    transaction_id: &str,
    event: &PaymentEventRow,
) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO payment_events (transaction_id, from_status, to_status, source, detail, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(transaction_id)
    .bind(event.from_status.as_str())
    .bind(event.to_status.as_str())
    .bind(&event.source)
    .bind(&event.detail)
    .bind(event.recorded_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a provider reported besides the status. `None` leaves a known value as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderFacts {
    pub payment_method: Option<String>,
    pub payment_method_detail: Option<String>,
    pub transaction_reference: Option<String>,
}

impl ProviderFacts {
    /// Whether storing these would change `row`: a new value, not merely a missing one.
    pub fn would_change(&self, row: &PaymentRow) -> bool {
        let differs = |new: &Option<String>, old: &Option<String>| new.is_some() && new != old;
        differs(&self.payment_method, &row.payment_method)
            || differs(&self.payment_method_detail, &row.payment_method_detail)
            || differs(&self.transaction_reference, &row.transaction_reference)
    }
}

impl Database {
    /// Stores what the provider reported; a value it did not report keeps the one known before.
    pub async fn store_provider_facts(
        &self,
        transaction_id: &str,
        facts: &ProviderFacts,
        now: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "UPDATE payments SET payment_method = COALESCE($1, payment_method), \
             payment_method_detail = COALESCE($2, payment_method_detail), \
             transaction_reference = COALESCE($3, transaction_reference), updated_at = $4 \
             WHERE transaction_id = $5",
        )
        .bind(&facts.payment_method)
        .bind(&facts.payment_method_detail)
        .bind(&facts.transaction_reference)
        .bind(now)
        .bind(transaction_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// When the status worker next reads this open payment at its provider.
    pub async fn schedule_payment_check(&self, transaction_id: &str, at: i64) -> StorageResult<()> {
        sqlx::query("UPDATE payments SET next_check_at = $1 WHERE transaction_id = $2 AND status = 'INITIAL'")
            .bind(at)
            .bind(transaction_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Open payments whose next status read is due, each pushed to `next_check_at` in the same
    /// statement so that other workers (instances) skip them meanwhile.
    pub async fn claim_open_payments(
        &self,
        now: i64,
        next_check_at: i64,
        limit: i64,
    ) -> StorageResult<Vec<PaymentRow>> {
        let skip_locked = match self.backend() {
            crate::config::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            crate::config::Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE payments SET next_check_at = $1, checks = checks + 1 WHERE transaction_id IN (\
               SELECT transaction_id FROM payments WHERE status = 'INITIAL' \
                 AND (next_check_at IS NULL OR next_check_at <= $2) \
               ORDER BY next_check_at LIMIT $3 {skip_locked}) \
             RETURNING {COLUMNS}"
        ))
        .bind(next_check_at)
        .bind(now)
        .bind(limit)
        .fetch_all(self.writer())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn payment(&self, transaction_id: &str) -> StorageResult<Option<PaymentRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM payments WHERE transaction_id = $1"))
            .bind(transaction_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn payment_exists(
        &self,
        originator_id: &str,
        endpoint_id: &str,
        request_id: &str,
    ) -> StorageResult<bool> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT transaction_id FROM payments WHERE originator_id = $1 AND endpoint_id = $2 AND request_id = $3",
        )
        .bind(originator_id)
        .bind(endpoint_id)
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    pub async fn payment_events(&self, transaction_id: &str) -> StorageResult<Vec<PaymentEventRow>> {
        let rows = sqlx::query(
            "SELECT from_status, to_status, source, detail, recorded_at FROM payment_events \
             WHERE transaction_id = $1 ORDER BY id",
        )
        .bind(transaction_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let from_status: String = row.try_get("from_status")?;
                let to_status: String = row.try_get("to_status")?;
                Ok(PaymentEventRow {
                    from_status: parse_column("payment_events.from_status", &from_status, PaymentStatus::parse)?,
                    to_status: parse_column("payment_events.to_status", &to_status, PaymentStatus::parse)?,
                    source: row.try_get("source")?,
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

    fn payment(transaction_id: &str) -> PaymentRow {
        PaymentRow {
            transaction_id: transaction_id.to_owned(),
            originator_id: "o".into(),
            endpoint_id: "e".into(),
            client_id: "c".into(),
            request_id: transaction_id.to_owned(),
            request: "{}".into(),
            effective_request: "{}".into(),
            gros_amount: Decimal::new(1230, 2),
            provider_id: "p".into(),
            provider_reference: None,
            pay_url: None,
            status: PaymentStatus::Initial,
            status_detail: None,
            timed_out_at: None,
            paid_after_timeout_at: None,
            created_at: 1,
            updated_at: 1,
            expires_at: 2,
            payment_method: None,
            payment_method_detail: None,
            transaction_reference: None,
            paid_at: None,
            notify_url: None,
        }
    }

    /// Stores a valid payment, overwrites one column with text pforte never writes, and reads it back.
    async fn read_after(column: &str, text: &str) -> Result<StorageResult<Option<PaymentRow>>, StorageError> {
        let (db, _dir) = test_database().await?;
        let mut conn = db.writer().acquire().await?;
        insert(&mut conn, &payment("tx-1")).await?;
        sqlx::query(&format!("UPDATE payments SET {column} = $1")).bind(text).execute(&mut *conn).await?;
        drop(conn);
        Ok(db.payment("tx-1").await)
    }

    #[tokio::test]
    async fn a_payment_reads_back_typed() -> Result<(), StorageError> {
        let (db, _dir) = test_database().await?;
        let mut conn = db.writer().acquire().await?;
        insert(&mut conn, &payment("tx-1")).await?;
        drop(conn);
        let stored = db.payment("tx-1").await?;
        assert_eq!(
            stored.map(|p| (p.status, p.gros_amount.to_string())),
            Some((PaymentStatus::Initial, "12.30".into()))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_corrupt_status_or_amount_is_reported_by_its_column_and_never_defaulted() -> Result<(), StorageError> {
        let status = read_after("status", "PAID").await?.expect_err("an unknown status must not read");
        assert!(is_corrupt_column(&status, "payments.status"), "{status}");
        assert!(!status.to_string().contains("PAID"), "the value stays out of the message: {status}");
        let amount = read_after("gros_amount", "12,30").await?.expect_err("a comma amount must not read");
        assert!(is_corrupt_column(&amount, "payments.gros_amount"), "{amount}");
        Ok(())
    }
}
