//! The personal data of payments (`payments.personal_data`, sealed by `payment::personal`), its
//! encryption of rows written before it existed, and its purge after the tenant's retention period
//! (SECURITY.md #24). The store never sees the plain data of a sealed value.

use sqlx::{AnyConnection, Row};

use super::{Database, StorageResult};

/// A payment's personal data as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonalData {
    /// Sealed under the master key.
    Sealed(String),
    /// Deleted by the retention worker at this time (millis).
    Purged(i64),
    /// Written before personal data was kept apart: still inside `request` (until the sweep).
    InRequest,
}

/// A row written before personal data was kept apart, to be sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsealedPayment {
    pub transaction_id: String,
    pub request: String,
    pub effective_request: Option<String>,
}

/// Deletes the personal data of up to `limit` payments of `endpoint_id` in a final status whose last
/// change was at or before `changed_before`; the number purged. Already purged rows and rows not yet
/// sealed are left alone, so running it again purges nothing twice.
pub(crate) async fn purge_batch(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    changed_before: i64,
    now: i64,
    limit: i64,
) -> StorageResult<u64> {
    let done = sqlx::query(
        "UPDATE payments SET personal_data = NULL, personal_data_purged_at = $1 WHERE transaction_id IN (\
           SELECT transaction_id FROM payments WHERE endpoint_id = $2 AND status <> 'INITIAL' \
             AND updated_at <= $3 AND personal_data_purged_at IS NULL AND personal_data IS NOT NULL \
           ORDER BY updated_at LIMIT $4)",
    )
    .bind(now)
    .bind(endpoint_id)
    .bind(changed_before)
    .bind(limit)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

impl Database {
    pub async fn payment_personal_data(&self, transaction_id: &str) -> StorageResult<Option<PersonalData>> {
        let row = sqlx::query("SELECT personal_data, personal_data_purged_at FROM payments WHERE transaction_id = $1")
            .bind(transaction_id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Option<String> = row.try_get("personal_data")?;
        let purged_at: Option<i64> = row.try_get("personal_data_purged_at")?;
        Ok(Some(match (sealed, purged_at) {
            (Some(sealed), _) => PersonalData::Sealed(sealed),
            (None, Some(at)) => PersonalData::Purged(at),
            (None, None) => PersonalData::InRequest,
        }))
    }

    /// Up to `limit` payments written before personal data was kept apart.
    pub async fn unsealed_payments(&self, limit: i64) -> StorageResult<Vec<UnsealedPayment>> {
        let rows = sqlx::query(
            "SELECT transaction_id, request, effective_request FROM payments \
             WHERE personal_data IS NULL AND personal_data_purged_at IS NULL ORDER BY created_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UnsealedPayment {
                    transaction_id: row.try_get("transaction_id")?,
                    request: row.try_get("request")?,
                    effective_request: row.try_get("effective_request")?,
                })
            })
            .collect()
    }

    /// Replaces an unsealed row's requests by their copies without personal data and stores that data
    /// sealed; false when another instance sealed (or purged) it first.
    pub async fn seal_payment(
        &self,
        transaction_id: &str,
        request: &str,
        effective_request: &str,
        sealed: &str,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE payments SET request = $1, effective_request = $2, personal_data = $3 \
             WHERE transaction_id = $4 AND personal_data IS NULL AND personal_data_purged_at IS NULL",
        )
        .bind(request)
        .bind(effective_request)
        .bind(sealed)
        .bind(transaction_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The tenants (endpoint ids) with payments in a final status whose personal data is still kept.
    pub async fn endpoints_keeping_personal_data(&self) -> StorageResult<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT endpoint_id FROM payments WHERE personal_data_purged_at IS NULL \
             AND personal_data IS NOT NULL AND status <> 'INITIAL'",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}
