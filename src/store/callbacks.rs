//! Rows of `provider_callbacks`: which provider events pforte has acted on, for deduplication, and
//! the lookup of a payment by the provider's transaction id.

use sqlx::AnyConnection;

use super::{Database, StorageResult};

/// Records that `event_id` of `provider_id` was acted on, inside the caller's write transaction.
/// False when it was recorded before: the caller has a replay and must change nothing.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    provider_id: &str,
    event_id: &str,
    transaction_id: &str,
    received_at: i64,
) -> StorageResult<bool> {
    // ON CONFLICT instead of catching the violation: on PostgreSQL a failed statement would abort
    // the whole transaction.
    let done = sqlx::query(
        "INSERT INTO provider_callbacks (provider_id, event_id, transaction_id, received_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (provider_id, event_id) DO NOTHING",
    )
    .bind(provider_id)
    .bind(event_id)
    .bind(transaction_id)
    .bind(received_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Database {
    /// Whether pforte has acted on this provider event already.
    pub async fn provider_callback_seen(&self, provider_id: &str, event_id: &str) -> StorageResult<bool> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT event_id FROM provider_callbacks WHERE provider_id = $1 AND event_id = $2")
                .bind(provider_id)
                .bind(event_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(found.is_some())
    }

    /// The event ids acted on for a payment, oldest first.
    pub async fn provider_callbacks_of(&self, transaction_id: &str) -> StorageResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT event_id FROM provider_callbacks WHERE transaction_id = $1 ORDER BY received_at, event_id",
        )
        .bind(transaction_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// pforte's transaction id of the payment `provider_id` knows as `reference`.
    pub async fn payment_by_provider_reference(
        &self,
        provider_id: &str,
        reference: &str,
    ) -> StorageResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT transaction_id FROM payments WHERE provider_id = $1 AND provider_reference = $2")
            .bind(provider_id)
            .bind(reference)
            .fetch_optional(self.pool())
            .await?)
    }
}
