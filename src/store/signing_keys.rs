//! Rows of `signing_keys`. The private half is stored only as a JWE under the master key.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Database, StorageResult};

#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_jwe: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

const COLUMNS: &str = "kid, alg, private_jwe, public_jwk, created_at, retired_at, publish_until";

fn from_row(row: &AnyRow) -> StorageResult<SigningKeyRow> {
    Ok(SigningKeyRow {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        private_jwe: row.try_get("private_jwe")?,
        public_jwk: row.try_get("public_jwk")?,
        created_at: row.try_get("created_at")?,
        retired_at: row.try_get("retired_at")?,
        publish_until: row.try_get("publish_until")?,
    })
}

/// Adds `new` as the active key of its algorithm and retires the keys it replaces, which stay
/// published until `publish_until`. Runs inside the caller's write transaction (so the audit entry
/// commits with it). Returns the ids of the retired keys.
pub(crate) async fn rotate(
    conn: &mut AnyConnection,
    new: &SigningKeyRow,
    publish_until: i64,
) -> StorageResult<Vec<String>> {
    let retired: Vec<String> =
        sqlx::query_scalar("SELECT kid FROM signing_keys WHERE alg = $1 AND retired_at IS NULL ORDER BY kid")
            .bind(&new.alg)
            .fetch_all(&mut *conn)
            .await?;
    sqlx::query("UPDATE signing_keys SET retired_at = $1, publish_until = $2 WHERE alg = $3 AND retired_at IS NULL")
        .bind(new.created_at)
        .bind(publish_until)
        .bind(&new.alg)
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!("INSERT INTO signing_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL, NULL)"))
        .bind(&new.kid)
        .bind(&new.alg)
        .bind(&new.private_jwe)
        .bind(&new.public_jwk)
        .bind(new.created_at)
        .execute(&mut *conn)
        .await?;
    Ok(retired)
}

impl Database {
    /// The key that signs new tokens of this algorithm: the newest one not retired.
    pub async fn active_signing_key(&self, alg: &str) -> StorageResult<Option<SigningKeyRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM signing_keys WHERE alg = $1 AND retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC LIMIT 1"
        ))
        .bind(alg)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Keys that verifiers may still meet: active ones and retired ones inside their overlap.
    pub async fn published_signing_keys(&self, now: i64) -> StorageResult<Vec<SigningKeyRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM signing_keys WHERE retired_at IS NULL OR publish_until > $1 \
             ORDER BY created_at DESC, kid"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
