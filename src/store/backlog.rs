//! What an operator watches for work piling up, read in one statement when metrics are scraped: the
//! notification outbox, open payments and their overdue status checks, audit events not chained yet;
//! and the use of the connection pools, from memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Row;

use super::{Database, StorageResult};
use crate::config::Backend;

/// The backlog at one moment. Times are Unix milliseconds of the oldest waiting row, `None` when
/// nothing waits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Notifications neither delivered nor given up.
    pub outbox_depth: i64,
    pub outbox_oldest_created_at: Option<i64>,
    /// Notifications given up after their last attempt, waiting for a redelivery by hand.
    pub outbox_given_up: i64,
    /// Payments in INITIAL, and those of them past their expiry (the status worker fails those).
    pub open_payments: i64,
    pub open_payments_expired: i64,
    /// When the most overdue status check of an open payment fell due.
    pub oldest_check_due_at: Option<i64>,
    pub audit_pending: i64,
    pub audit_oldest_recorded_at: Option<i64>,
}

/// One connection pool's use. On PostgreSQL reads and writes share the `main` pool; SQLite writes
/// through its own one-connection `writer` pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUse {
    pub name: &'static str,
    pub in_use: u64,
    pub idle: u64,
    pub max: u64,
}

/// Write transactions begun ([`Database::begin_write`]) and the time spent waiting to begin them:
/// for the writer connection and, on SQLite, the write lock.
#[derive(Debug, Default)]
pub(crate) struct WriteWaits {
    begun: AtomicU64,
    waited_micros: AtomicU64,
}

impl WriteWaits {
    pub(crate) fn add(&self, waited: Duration) {
        self.begun.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.waited_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl Database {
    /// The backlog as of `now` (Unix milliseconds), on the read pool.
    pub async fn backlog(&self, now: i64) -> StorageResult<Backlog> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM notification_outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL) \
                 AS outbox_depth, \
               (SELECT MIN(created_at) FROM notification_outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL) \
                 AS outbox_oldest, \
               (SELECT COUNT(*) FROM notification_outbox WHERE delivered_at IS NULL AND gave_up_at IS NOT NULL) \
                 AS outbox_given_up, \
               (SELECT COUNT(*) FROM payments WHERE status = 'INITIAL') AS open_payments, \
               (SELECT COUNT(*) FROM payments WHERE status = 'INITIAL' AND expires_at <= $1) AS open_expired, \
               (SELECT MIN(COALESCE(next_check_at, created_at)) FROM payments \
                 WHERE status = 'INITIAL' AND (next_check_at IS NULL OR next_check_at <= $1)) AS oldest_due, \
               (SELECT COUNT(*) FROM audit_pending) AS audit_pending, \
               (SELECT MIN(recorded_at) FROM audit_pending) AS audit_oldest",
        )
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(Backlog {
            outbox_depth: row.try_get("outbox_depth")?,
            outbox_oldest_created_at: row.try_get("outbox_oldest")?,
            outbox_given_up: row.try_get("outbox_given_up")?,
            open_payments: row.try_get("open_payments")?,
            open_payments_expired: row.try_get("open_expired")?,
            oldest_check_due_at: row.try_get("oldest_due")?,
            audit_pending: row.try_get("audit_pending")?,
            audit_oldest_recorded_at: row.try_get("audit_oldest")?,
        })
    }

    /// The pools' connections now; no database round trip.
    pub fn pool_use(&self) -> Vec<PoolUse> {
        let of = |name: &'static str, pool: &sqlx::AnyPool| {
            let size = u64::from(pool.size());
            let idle = u64::try_from(pool.num_idle()).unwrap_or(u64::MAX).min(size);
            PoolUse { name, in_use: size - idle, idle, max: u64::from(pool.options().get_max_connections()) }
        };
        let mut pools = vec![of("main", self.pool())];
        if self.backend() == Backend::Sqlite {
            pools.push(of("writer", self.writer()));
        }
        pools
    }

    /// Write transactions begun since the start, and the seconds spent waiting to begin them.
    pub fn write_waits(&self) -> (u64, f64) {
        let waits = &self.write_waits;
        let micros = waits.waited_micros.load(Ordering::Relaxed);
        (waits.begun.load(Ordering::Relaxed), Duration::from_micros(micros).as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_empty_database_has_no_backlog_and_a_write_is_counted() -> StorageResult<()> {
        let (db, _dir) = super::super::test_database().await?;
        assert_eq!(db.backlog(1_000).await?, Backlog::default());
        let before = db.write_waits().0;
        db.begin_write().await?.rollback().await?;
        assert_eq!(db.write_waits().0, before + 1);
        let names: Vec<&str> = db.pool_use().iter().map(|p| p.name).collect();
        assert_eq!(names, ["main", "writer"]);
        Ok(())
    }
}
