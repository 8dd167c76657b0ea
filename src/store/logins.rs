//! Login transactions, pushed authorization requests, client assertion ids and revoked tokens.
//! State changes that must happen once (code issued, code redeemed, request_uri used) are
//! conditional updates: the row count says whether this caller won.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Database, StorageResult};

#[derive(Debug, Clone)]
pub struct LoginRow {
    pub id: String,
    pub client_id: String,
    pub request: String,
    pub browser_hash: String,
    pub provider_id: Option<String>,
    pub upstream_sealed: Option<String>,
    pub identity_sealed: Option<String>,
    pub code_expires_at: Option<i64>,
    pub redeemed_at: Option<i64>,
    pub access_jti: Option<String>,
    /// The refresh-token family issued from the code, when the client has the refresh grant.
    pub refresh_family: Option<String>,
    /// A SAML Response held between the IdP's cross-site POST and the browser's return (sealed).
    pub upstream_answer_sealed: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

const COLUMNS: &str = "id, client_id, request, browser_hash, provider_id, upstream_sealed, identity_sealed, \
                       code_expires_at, redeemed_at, access_jti, refresh_family, upstream_answer_sealed, created_at, \
                       expires_at";

fn from_row(row: &AnyRow) -> StorageResult<LoginRow> {
    Ok(LoginRow {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        request: row.try_get("request")?,
        browser_hash: row.try_get("browser_hash")?,
        provider_id: row.try_get("provider_id")?,
        upstream_sealed: row.try_get("upstream_sealed")?,
        identity_sealed: row.try_get("identity_sealed")?,
        code_expires_at: row.try_get("code_expires_at")?,
        redeemed_at: row.try_get("redeemed_at")?,
        access_jti: row.try_get("access_jti")?,
        refresh_family: row.try_get("refresh_family")?,
        upstream_answer_sealed: row.try_get("upstream_answer_sealed")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// What one purge run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub logins: u64,
    pub par_requests: u64,
    pub assertion_ids: u64,
    pub revoked_tokens: u64,
    pub refresh_families: u64,
    pub idempotency_keys: u64,
    pub saml_assertion_ids: u64,
    pub saml_sessions: u64,
    pub saml_logout_requests: u64,
}

impl Database {
    pub async fn insert_login(&self, row: &LoginRow) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO login_transactions (id, client_id, request, browser_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.id)
        .bind(&row.client_id)
        .bind(&row.request)
        .bind(&row.browser_hash)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn login_where(&self, condition: &str, value: &str) -> StorageResult<Option<LoginRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM login_transactions WHERE {condition} = $1"))
            .bind(value)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn login_by_id(&self, id: &str) -> StorageResult<Option<LoginRow>> {
        self.login_where("id", id).await
    }

    pub async fn login_by_upstream_state(&self, state_hash: &str) -> StorageResult<Option<LoginRow>> {
        self.login_where("upstream_state_hash", state_hash).await
    }

    pub async fn login_by_code(&self, code_hash: &str) -> StorageResult<Option<LoginRow>> {
        self.login_where("code_hash", code_hash).await
    }

    /// Records the upstream request of a login that has not come back yet. Choosing again (the
    /// browser went back to the choice page) replaces the earlier request.
    pub async fn set_login_upstream(
        &self,
        id: &str,
        provider_id: &str,
        state_hash: &str,
        sealed: &str,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE login_transactions SET provider_id = $1, upstream_state_hash = $2, upstream_sealed = $3 \
             WHERE id = $4 AND code_hash IS NULL AND redeemed_at IS NULL",
        )
        .bind(provider_id)
        .bind(state_hash)
        .bind(sealed)
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Holds the SAML Response that arrived for the login whose upstream state (RelayState) hashes
    /// to `state_hash`, once: false when the login is unknown, finished, or already has one.
    pub async fn hold_upstream_answer(&self, state_hash: &str, provider_id: &str, sealed: &str) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE login_transactions SET upstream_answer_sealed = $1 \
             WHERE upstream_state_hash = $2 AND provider_id = $3 AND upstream_answer_sealed IS NULL \
             AND code_hash IS NULL",
        )
        .bind(sealed)
        .bind(state_hash)
        .bind(provider_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the upstream part of a login whose answer failed pforte's checks: the same AuthnRequest
    /// (its InResponseTo) cannot be answered a second time.
    pub async fn end_login_upstream(&self, id: &str) -> StorageResult<()> {
        sqlx::query(
            "UPDATE login_transactions SET upstream_sealed = NULL, upstream_state_hash = NULL, \
             upstream_answer_sealed = NULL WHERE id = $1 AND code_hash IS NULL",
        )
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Remembers a consumed SAML assertion id of `provider_id` until `expires_at`; false when it was
    /// consumed before (a replay).
    pub async fn consume_saml_assertion(
        &self,
        provider_id: &str,
        id_hash: &str,
        expires_at: i64,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "INSERT INTO saml_assertion_ids (provider_id, assertion_id_hash, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(provider_id)
        .bind(id_hash)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores the identity and the code, once; the upstream request is no longer needed.
    pub async fn set_login_code(
        &self,
        id: &str,
        identity_sealed: &str,
        code_hash: &str,
        code_expires_at: i64,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE login_transactions SET identity_sealed = $1, code_hash = $2, code_expires_at = $3, \
             expires_at = $3, upstream_sealed = NULL, upstream_state_hash = NULL, upstream_answer_sealed = NULL \
             WHERE id = $4 AND code_hash IS NULL AND upstream_state_hash IS NOT NULL",
        )
        .bind(identity_sealed)
        .bind(code_hash)
        .bind(code_expires_at)
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_refresh_family(
        &self,
        family_id: &str,
        client_id: &str,
        jti: &str,
        session_ends_at: i64,
        expires_at: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO refresh_families (family_id, client_id, current_jti, session_ends_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(family_id)
        .bind(client_id)
        .bind(jti)
        .bind(session_ends_at)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Moves a family from `old_jti` to `new_jti`, once, while it is neither revoked nor expired.
    /// False means the presented token was not the current one (or the family is over).
    pub async fn rotate_refresh(
        &self,
        family_id: &str,
        old_jti: &str,
        new_jti: &str,
        now: i64,
        expires_at: i64,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE refresh_families SET current_jti = $1, expires_at = $2 \
             WHERE family_id = $3 AND current_jti = $4 AND revoked_at IS NULL AND expires_at > $5",
        )
        .bind(new_jti)
        .bind(expires_at)
        .bind(family_id)
        .bind(old_jti)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> StorageResult<()> {
        sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(family_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Marks the code used and drops the identity, once, noting the tokens issued from it (access
    /// token id, refresh family). `keep_until` keeps the row (without any personal data) as long as
    /// those tokens live, so a replay can revoke them.
    pub async fn redeem_login(
        &self,
        id: &str,
        now: i64,
        access_jti: Option<&str>,
        refresh_family: Option<&str>,
        keep_until: i64,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE login_transactions SET redeemed_at = $1, identity_sealed = NULL, access_jti = $2, \
             refresh_family = $3, expires_at = $4 WHERE id = $5 AND redeemed_at IS NULL",
        )
        .bind(now)
        .bind(access_jti)
        .bind(refresh_family)
        .bind(keep_until)
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_login(&self, id: &str) -> StorageResult<()> {
        sqlx::query("DELETE FROM login_transactions WHERE id = $1").bind(id).execute(self.writer()).await?;
        Ok(())
    }

    pub async fn insert_par(
        &self,
        request_uri_hash: &str,
        client_id: &str,
        parameters: &str,
        expires_at: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO par_requests (request_uri_hash, client_id, parameters, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(request_uri_hash)
        .bind(client_id)
        .bind(parameters)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The parameters of a pushed request, if it exists, belongs to `client_id`, has not expired and
    /// was not used before; it is marked used in the same step.
    pub async fn take_par(&self, request_uri_hash: &str, client_id: &str, now: i64) -> StorageResult<Option<String>> {
        let mut tx = self.writer().begin().await?;
        let claimed = sqlx::query(
            "UPDATE par_requests SET used_at = $1 \
             WHERE request_uri_hash = $2 AND client_id = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(request_uri_hash)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        let parameters: String = sqlx::query_scalar("SELECT parameters FROM par_requests WHERE request_uri_hash = $1")
            .bind(request_uri_hash)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(parameters))
    }

    /// False when this client already presented an assertion with this `jti`.
    pub async fn record_assertion_jti(&self, client_id: &str, jti: &str, expires_at: i64) -> StorageResult<bool> {
        let done = sqlx::query(
            "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// `expires_at` in milliseconds, like every expiry in these tables.
    pub async fn revoke_token(&self, jti: &str, expires_at: i64) -> StorageResult<()> {
        sqlx::query("INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn is_token_revoked(&self, jti: &str) -> StorageResult<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT expires_at FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    /// Removes everything whose time is over: logins (and any identity still in them), pushed
    /// requests, remembered assertion ids and revocations of tokens that have expired anyway.
    pub async fn purge_expired(&self, now: i64) -> StorageResult<Purged> {
        let mut purged = Purged::default();
        for (table, counter) in [
            ("login_transactions", &mut purged.logins),
            ("par_requests", &mut purged.par_requests),
            ("client_assertion_jtis", &mut purged.assertion_ids),
            ("revoked_tokens", &mut purged.revoked_tokens),
            ("refresh_families", &mut purged.refresh_families),
            ("idempotency_keys", &mut purged.idempotency_keys),
            ("saml_assertion_ids", &mut purged.saml_assertion_ids),
            ("saml_sessions", &mut purged.saml_sessions),
            ("saml_logout_requests", &mut purged.saml_logout_requests),
        ] {
            let done = sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= $1"))
                .bind(now)
                .execute(self.writer())
                .await?;
            *counter = done.rows_affected();
        }
        Ok(purged)
    }
}
