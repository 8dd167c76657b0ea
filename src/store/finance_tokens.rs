//! Rows of `finance_tokens`: finance staff credentials. Only the token's SHA-256 is stored; it is
//! looked up by that hash, so the token itself never reaches the database.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Database, StorageResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinanceTokenRow {
    pub token_id: String,
    pub tenant_id: String,
    pub label: Option<String>,
    pub token_hash: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "token_id, tenant_id, label, token_hash, created_at, revoked_at";

fn from_row(row: &AnyRow) -> StorageResult<FinanceTokenRow> {
    Ok(FinanceTokenRow {
        token_id: row.try_get("token_id")?,
        tenant_id: row.try_get("tenant_id")?,
        label: row.try_get("label")?,
        token_hash: row.try_get("token_hash")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub(crate) async fn insert(conn: &mut AnyConnection, row: &FinanceTokenRow) -> StorageResult<()> {
    sqlx::query(&format!("INSERT INTO finance_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
        .bind(&row.token_id)
        .bind(&row.tenant_id)
        .bind(&row.label)
        .bind(&row.token_hash)
        .bind(row.created_at)
        .bind(row.revoked_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut AnyConnection, token_id: &str) -> StorageResult<Option<FinanceTokenRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM finance_tokens WHERE token_id = $1"))
        .bind(token_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Marks the token revoked, once. True when this call revoked it.
pub(crate) async fn revoke(conn: &mut AnyConnection, token_id: &str, now: i64) -> StorageResult<bool> {
    let done = sqlx::query("UPDATE finance_tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(token_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

impl Database {
    pub async fn finance_token_by_hash(&self, token_hash: &str) -> StorageResult<Option<FinanceTokenRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM finance_tokens WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// All tokens, or those of one tenant, oldest first.
    pub async fn finance_tokens(&self, tenant_id: Option<&str>) -> StorageResult<Vec<FinanceTokenRow>> {
        let rows = match tenant_id {
            Some(tenant) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM finance_tokens WHERE tenant_id = $1 ORDER BY created_at, token_id"
                ))
                .bind(tenant)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM finance_tokens ORDER BY tenant_id, created_at, token_id"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(from_row).collect()
    }
}
