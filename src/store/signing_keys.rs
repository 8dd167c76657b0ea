//! Rows of `signing_keys`. The private half is stored only as a JWE under the master key.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Database, StorageResult};
use crate::config::Backend;

#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_jwe: String,
    pub public_jwk: String,
    pub created_at: i64,
    /// When the key starts signing: `created_at` for a manual rotation, later for a scheduled one
    /// (published ahead of use).
    pub active_from: i64,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

/// `active_from` is NULL in rows an older instance wrote during a rolling upgrade: from creation.
const COLUMNS: &str =
    "kid, alg, private_jwe, public_jwk, created_at, COALESCE(active_from, created_at) AS active_from, retired_at, publish_until";

/// The advisory lock a scheduled rotation holds on PostgreSQL (its own number, beside the one sqlx
/// takes for migrations), so instances checking at the same moment add one key, not one each.
const ROTATION_LOCK: i64 = 0x7066_6f72_7465_6b72; // "pfortekr"

fn from_row(row: &AnyRow) -> StorageResult<SigningKeyRow> {
    Ok(SigningKeyRow {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        private_jwe: row.try_get("private_jwe")?,
        public_jwk: row.try_get("public_jwk")?,
        created_at: row.try_get("created_at")?,
        active_from: row.try_get("active_from")?,
        retired_at: row.try_get("retired_at")?,
        publish_until: row.try_get("publish_until")?,
    })
}

/// Adds `new` as the key of its algorithm that signs from `new.active_from`, and retires the keys it
/// replaces at that moment: they sign until then and stay published until `publish_until`. Keys
/// already retired later than that (an earlier scheduled rotation still ahead) are retired with it.
/// Runs inside the caller's write transaction (so the audit entry commits with it). Returns the ids
/// of the retired keys.
pub(crate) async fn rotate(
    conn: &mut AnyConnection,
    new: &SigningKeyRow,
    publish_until: i64,
) -> StorageResult<Vec<String>> {
    let replaced = "alg = $1 AND (retired_at IS NULL OR retired_at > $2)";
    let retired: Vec<String> =
        sqlx::query_scalar(&format!("SELECT kid FROM signing_keys WHERE {replaced} ORDER BY kid"))
            .bind(&new.alg)
            .bind(new.active_from)
            .fetch_all(&mut *conn)
            .await?;
    sqlx::query(&format!("UPDATE signing_keys SET retired_at = $2, publish_until = $3 WHERE {replaced}"))
        .bind(&new.alg)
        .bind(new.active_from)
        .bind(publish_until)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, private_jwe, public_jwk, created_at, active_from, retired_at, publish_until) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
    )
    .bind(&new.kid)
    .bind(&new.alg)
    .bind(&new.private_jwe)
    .bind(&new.public_jwk)
    .bind(new.created_at)
    .bind(new.active_from)
    .execute(&mut *conn)
    .await?;
    Ok(retired)
}

/// Inside a write transaction: waits for the rotation lock (PostgreSQL; on SQLite the transaction,
/// begun IMMEDIATE, already excludes every other writer), then returns when the newest key of `alg`
/// that is not retired began (or begins) to sign. `None` when `alg` has no such key.
pub(crate) async fn lock_and_read_newest(
    conn: &mut AnyConnection,
    backend: Backend,
    alg: &str,
) -> StorageResult<Option<i64>> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ROTATION_LOCK).execute(&mut *conn).await?;
    }
    newest_active_from(&mut *conn, alg).await
}

async fn newest_active_from(
    conn: impl sqlx::Executor<'_, Database = sqlx::Any>,
    alg: &str,
) -> StorageResult<Option<i64>> {
    let newest: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(COALESCE(active_from, created_at)) FROM signing_keys WHERE alg = $1 AND retired_at IS NULL",
    )
    .bind(alg)
    .fetch_one(conn)
    .await?;
    Ok(newest)
}

impl Database {
    /// The key of this algorithm that is not retired (the one signing, or the one published ahead to
    /// sign next), if any.
    pub async fn active_signing_key(&self, alg: &str) -> StorageResult<Option<SigningKeyRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM signing_keys WHERE alg = $1 AND retired_at IS NULL \
             ORDER BY COALESCE(active_from, created_at) DESC, kid DESC LIMIT 1"
        ))
        .bind(alg)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// When the newest key of `alg` that is not retired began (or begins) to sign, read without a
    /// lock: the cheap check before a scheduled rotation generates a key.
    pub async fn newest_signing_key_start(&self, alg: &str) -> StorageResult<Option<i64>> {
        newest_active_from(self.pool(), alg).await
    }

    /// Keys that verifiers may still meet: active ones, ones published ahead of use, and retired ones
    /// inside their overlap. Newest first.
    pub async fn published_signing_keys(&self, now: i64) -> StorageResult<Vec<SigningKeyRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM signing_keys WHERE retired_at IS NULL OR publish_until > $1 \
             ORDER BY COALESCE(active_from, created_at) DESC, created_at DESC, kid"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
