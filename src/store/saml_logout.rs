//! SAML Single Logout's records: the sealed NameID and SessionIndex of a SAML login, found by the
//! hash of its `sid`, and the LogoutRequests sent and not yet answered. Both are taken once
//! (`DELETE … RETURNING`), so a second taker finds nothing; the purge worker removes the expired.

use super::{Database, StorageResult};

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

    /// Takes (deletes and returns) the sealed session of `sid_hash` at `provider_id`, if unexpired.
    pub async fn take_saml_session(
        &self,
        sid_hash: &str,
        provider_id: &str,
        now: i64,
    ) -> StorageResult<Option<String>> {
        let sealed: Option<String> = sqlx::query_scalar(
            "DELETE FROM saml_sessions WHERE sid_hash = $1 AND provider_id = $2 AND expires_at > $3 RETURNING sealed",
        )
        .bind(sid_hash)
        .bind(provider_id)
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        Ok(sealed)
    }

    /// Remembers a LogoutRequest sent to `provider_id` until `expires_at` (ms).
    pub async fn insert_saml_logout_request(
        &self,
        request_id_hash: &str,
        provider_id: &str,
        return_sealed: &str,
        expires_at: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO saml_logout_requests (request_id_hash, provider_id, return_sealed, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(request_id_hash)
        .bind(provider_id)
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
    ) -> StorageResult<Option<String>> {
        let sealed: Option<String> = sqlx::query_scalar(
            "DELETE FROM saml_logout_requests WHERE request_id_hash = $1 AND provider_id = $2 AND expires_at > $3 \
             RETURNING return_sealed",
        )
        .bind(request_id_hash)
        .bind(provider_id)
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        Ok(sealed)
    }
}
