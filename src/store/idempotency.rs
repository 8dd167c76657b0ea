//! Rows of `idempotency_keys`. Claiming a key is one insert that either wins or finds the earlier
//! claim, so two concurrent requests with the same key can never both proceed.

use sqlx::{AnyConnection, Row};

use super::{Database, StorageResult};
use crate::config::Backend;

/// Stores the response under the key inside the caller's transaction, so that the response of a
/// create is recorded with the payment it announces (a crash cannot keep one without the other).
pub(crate) async fn store_response_in(
    conn: &mut AnyConnection,
    client_id: &str,
    key: &str,
    status: u16,
    body: &str,
) -> StorageResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $1, response_body = $2 \
         WHERE client_id = $3 AND idempotency_key = $4",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(client_id)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct ClaimTimes {
    now: i64,
    expires_at: i64,
    abandoned_before: i64,
}

/// The claim statement; 1 when this call holds the key now.
async fn claim_in(
    conn: &mut AnyConnection,
    client_id: &str,
    key: &str,
    request_hash: &str,
    times: ClaimTimes,
) -> StorageResult<u64> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (client_id, idempotency_key, request_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (client_id, idempotency_key) DO UPDATE SET request_hash = excluded.request_hash, \
           created_at = excluded.created_at, expires_at = excluded.expires_at, \
           response_status = NULL, response_body = NULL \
         WHERE idempotency_keys.expires_at <= $4 \
           OR (idempotency_keys.response_status IS NULL AND idempotency_keys.created_at <= $6)",
    )
    .bind(client_id)
    .bind(key)
    .bind(request_hash)
    .bind(times.now)
    .bind(times.expires_at)
    .bind(times.abandoned_before)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// What is stored under a key that was claimed before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub request_hash: String,
    /// `None` while the first request is still running.
    pub response: Option<(u16, String)>,
}

impl Database {
    /// Claims the key for this request. `None` means this call claimed it; otherwise the earlier
    /// claim is returned (a live key: expired ones are taken over, and so are claims still without an
    /// answer that were made at or before `abandoned_before`: their request died with its process or
    /// was cut off, and would otherwise block the key for its whole lifetime).
    pub async fn claim_idempotency_key(
        &self,
        client_id: &str,
        key: &str,
        request_hash: &str,
        now: i64,
        abandoned_before: i64,
        expires_at: i64,
    ) -> StorageResult<Option<StoredKey>> {
        // One statement: insert the claim, or take over an expired or abandoned one. On SQLite it
        // joins the group commit, so concurrent claims share one sync.
        let claimed = match self.backend() {
            Backend::Sqlite => {
                let (client, key, hash) = (client_id.to_owned(), key.to_owned(), request_hash.to_owned());
                let times = ClaimTimes { now, expires_at, abandoned_before };
                self.write_grouped(Box::new(move |conn| {
                    Box::pin(async move { claim_in(conn, &client, &key, &hash, times).await })
                }))
                .await?
            }
            Backend::Postgres => {
                let times = ClaimTimes { now, expires_at, abandoned_before };
                claim_in(&mut *self.writer().acquire().await?, client_id, key, request_hash, times).await?
            }
        };
        if claimed == 1 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT request_hash, response_status, response_body FROM idempotency_keys \
             WHERE client_id = $1 AND idempotency_key = $2",
        )
        .bind(client_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            // Released between our insert and this read: report it as still running; a retry will claim it.
            return Ok(Some(StoredKey { request_hash: request_hash.to_owned(), response: None }));
        };
        let status: Option<i64> = row.try_get("response_status")?;
        let body: Option<String> = row.try_get("response_body")?;
        let response = match (status, body) {
            (Some(status), Some(body)) => Some((u16::try_from(status).unwrap_or(500), body)),
            _ => None,
        };
        Ok(Some(StoredKey { request_hash: row.try_get("request_hash")?, response }))
    }

    /// Stores the response of the request that claimed the key.
    pub async fn store_idempotent_response(
        &self,
        client_id: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> StorageResult<()> {
        let mut conn = self.writer().acquire().await?;
        store_response_in(&mut conn, client_id, key, status, body).await
    }

    /// Frees the claim made at `created_at` if it is still there without an answer (a claim made or
    /// taken over by another request has another `created_at`).
    pub async fn release_idempotency_claim(&self, client_id: &str, key: &str, created_at: i64) -> StorageResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE client_id = $1 AND idempotency_key = $2 AND created_at = $3 \
             AND response_status IS NULL",
        )
        .bind(client_id)
        .bind(key)
        .bind(created_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Frees a key whose request failed in a way the client should retry (e.g. provider down).
    pub async fn release_idempotency_key(&self, client_id: &str, key: &str) -> StorageResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE client_id = $1 AND idempotency_key = $2 AND response_status IS NULL",
        )
        .bind(client_id)
        .bind(key)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
