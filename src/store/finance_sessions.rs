//! Rows of `finance_sessions` (finance staff signed in with a browser) and `finance_staff_logins`
//! (their sign-ins in flight at the staff identity provider). Sessions and flows are named by the
//! SHA-256 of their secrets only; ending a session and taking a flow are conditional writes, so each
//! happens once.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Database, StorageResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinanceSessionRow {
    pub session_hash: String,
    pub staff_id: String,
    pub display_name: String,
    /// The tenant ids, comma-separated (tenant ids are registry ids and hold no comma).
    pub tenants: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ended_at: Option<i64>,
}

const SESSION_COLUMNS: &str = "session_hash, staff_id, display_name, tenants, created_at, last_seen_at, ended_at";

fn session_from_row(row: &AnyRow) -> StorageResult<FinanceSessionRow> {
    Ok(FinanceSessionRow {
        session_hash: row.try_get("session_hash")?,
        staff_id: row.try_get("staff_id")?,
        display_name: row.try_get("display_name")?,
        tenants: row.try_get("tenants")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

/// A staff sign-in in flight; `flow_sealed` is opaque here (sealed by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffLoginRow {
    pub state_hash: String,
    pub browser_hash: String,
    pub provider_id: String,
    pub flow_sealed: String,
    pub expires_at: i64,
}

impl Database {
    pub async fn insert_finance_session(&self, row: &FinanceSessionRow) -> StorageResult<()> {
        sqlx::query(&format!("INSERT INTO finance_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&row.session_hash)
            .bind(&row.staff_id)
            .bind(&row.display_name)
            .bind(&row.tenants)
            .bind(row.created_at)
            .bind(row.last_seen_at)
            .bind(row.ended_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn finance_session(&self, session_hash: &str) -> StorageResult<Option<FinanceSessionRow>> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM finance_sessions WHERE session_hash = $1"))
            .bind(session_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Records a request of a live session (the idle timeout counts from here).
    pub async fn touch_finance_session(&self, session_hash: &str, now: i64) -> StorageResult<()> {
        sqlx::query("UPDATE finance_sessions SET last_seen_at = $1 WHERE session_hash = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(session_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends a session once. True when this call ended it.
    pub async fn end_finance_session(&self, session_hash: &str, now: i64) -> StorageResult<bool> {
        let done =
            sqlx::query("UPDATE finance_sessions SET ended_at = $1 WHERE session_hash = $2 AND ended_at IS NULL")
                .bind(now)
                .bind(session_hash)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_staff_login(&self, row: &StaffLoginRow) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO finance_staff_logins (state_hash, browser_hash, provider_id, flow_sealed, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.state_hash)
        .bind(&row.browser_hash)
        .bind(&row.provider_id)
        .bind(&row.flow_sealed)
        .bind(row.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes (reads and deletes) the flow with this state: a state answers one response only. `None`
    /// when there is none, or another request took it first.
    pub async fn take_staff_login(&self, state_hash: &str) -> StorageResult<Option<StaffLoginRow>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT state_hash, browser_hash, provider_id, flow_sealed, expires_at FROM finance_staff_logins \
             WHERE state_hash = $1",
        )
        .bind(state_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let deleted = sqlx::query("DELETE FROM finance_staff_logins WHERE state_hash = $1")
            .bind(state_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if deleted.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(Some(StaffLoginRow {
            state_hash: row.try_get("state_hash")?,
            browser_hash: row.try_get("browser_hash")?,
            provider_id: row.try_get("provider_id")?,
            flow_sealed: row.try_get("flow_sealed")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Removes flows that were never completed and sessions over their lifetime; returns how many.
    pub async fn purge_finance_sessions(&self, now: i64, sessions_before: i64) -> StorageResult<u64> {
        let flows = sqlx::query("DELETE FROM finance_staff_logins WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        let sessions = sqlx::query("DELETE FROM finance_sessions WHERE created_at < $1")
            .bind(sessions_before)
            .execute(self.pool())
            .await?;
        Ok(flows.rows_affected() + sessions.rows_affected())
    }
}
