//! SAML Single Logout's records: the sealed NameID and SessionIndex of a SAML login, found by the
//! hash of its `sid`, and the LogoutRequests sent and not yet answered. A LogoutRequest is taken
//! once (`DELETE … RETURNING`), so a second answer finds nothing, and its answer deletes the session
//! record; the purge worker removes the expired.

use sqlx::Row;

use super::{Database, StorageResult};

/// A LogoutRequest pforte sent, as its answer finds it.
pub struct PendingLogout {
    pub return_sealed: String,
    pub sid_hash: String,
}

impl Database {
    /// Keeps what a LogoutRequest for the login `sid_hash` needs, until `expires_at` (ms).
    pub async fn insert_saml_session(
        &self,
        sid_hash: &str,
        provider_id: &str,
        sealed: &str,
        expires_at: i64,
    ) -> StorageResult<()> {
        sqlx::query("INSERT INTO saml_sessions (sid_hash, provider_id, sealed, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(sid_hash)
            .bind(provider_id)
            .bind(sealed)
            .bind(expires_at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// The sealed session of `sid_hash` at `provider_id`, if unexpired. It stays until the IdP answers
    /// a LogoutRequest for it: a logout that is never confirmed or answered can be tried again.
    pub async fn saml_session(&self, sid_hash: &str, provider_id: &str, now: i64) -> StorageResult<Option<String>> {
        let sealed: Option<String> = sqlx::query_scalar(
            "SELECT sealed FROM saml_sessions WHERE sid_hash = $1 AND provider_id = $2 AND expires_at > $3",
        )
        .bind(sid_hash)
        .bind(provider_id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(sealed)
    }

    pub async fn delete_saml_session(&self, sid_hash: &str) -> StorageResult<()> {
        sqlx::query("DELETE FROM saml_sessions WHERE sid_hash = $1").bind(sid_hash).execute(self.writer()).await?;
        Ok(())
    }

    /// Remembers a LogoutRequest sent to `provider_id` until `expires_at` (ms).
    pub async fn insert_saml_logout_request(
        &self,
        request_id_hash: &str,
        provider_id: &str,
        sid_hash: &str,
        return_sealed: &str,
        expires_at: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO saml_logout_requests (request_id_hash, provider_id, sid_hash, return_sealed, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(request_id_hash)
        .bind(provider_id)
        .bind(sid_hash)
        .bind(return_sealed)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Takes the unexpired LogoutRequest a LogoutResponse of `provider_id` answers; `None` when there
    /// is none (another provider's, expired, or answered before).
    pub async fn take_saml_logout_request(
        &self,
        request_id_hash: &str,
        provider_id: &str,
        now: i64,
    ) -> StorageResult<Option<PendingLogout>> {
        let row = sqlx::query(
            "DELETE FROM saml_logout_requests WHERE request_id_hash = $1 AND provider_id = $2 AND expires_at > $3 \
             RETURNING return_sealed, sid_hash",
        )
        .bind(request_id_hash)
        .bind(provider_id)
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        row.map(|row| {
            Ok(PendingLogout { return_sealed: row.try_get("return_sealed")?, sid_hash: row.try_get("sid_hash")? })
        })
        .transpose()
    }
}
