//! Whether the database can be asked at all: the one place that tells "the database is away" (the
//! answer is 503, try again) from "the database refused this statement", and the log of outages,
//! which says once when the database went away and why, and once when it came back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a probe of the database failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeFailure {
    #[error("{0}")]
    Failed(String),
    #[error("no answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
}

/// PostgreSQL SQLSTATEs that mean the server cannot serve now: class 08 (connection exceptions),
/// shutdown, starting up, too many connections.
const PG_UNAVAILABLE: [&str; 4] = ["57P01", "57P02", "57P03", "53300"];
/// SQLite's primary result codes for a database held by another connection past the busy timeout.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;

/// See [`super::StorageError::is_unavailable`].
pub(super) fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => {
            let code = e.code().unwrap_or_default();
            if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Extended result codes keep the primary code in the low byte.
                code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
            } else {
                code.starts_with("08") || PG_UNAVAILABLE.contains(&code.as_ref())
            }
        }
        _ => false,
    }
}

/// Since when the database has been away, if it is; shared by every clone of a `Database`.
#[derive(Debug, Clone, Default)]
pub(super) struct OutageLog(Arc<Mutex<Option<Instant>>>);

impl OutageLog {
    /// Logs only the changes: the first failure of an outage (with its cause, never a password:
    /// `database` is the redacted URL) and the first success after it.
    pub(super) fn record(&self, database: &str, failure: Option<&ProbeFailure>) {
        let Ok(mut down_since) = self.0.lock() else { return };
        match (failure, *down_since) {
            (Some(failure), None) => {
                *down_since = Some(Instant::now());
                tracing::error!(
                    database,
                    error = %failure,
                    "database unreachable; requests that need it are answered 503 until it is back"
                );
            }
            (None, Some(since)) => {
                *down_since = None;
                let down_for_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
                tracing::info!(database, down_for_ms, "database reachable again");
            }
            _ => {}
        }
    }

    #[cfg(test)]
    fn is_down(&self) -> bool {
        self.0.lock().map(|d| d.is_some()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_refusals_are_not() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        for error in [
            sqlx::Error::Io(refused),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Protocol("unexpected end of stream".into()),
        ] {
            assert!(is_unavailable(&error), "{error}");
        }
        for error in [sqlx::Error::RowNotFound, sqlx::Error::ColumnNotFound("x".into()), sqlx::Error::BeginFailed] {
            assert!(!is_unavailable(&error), "{error}");
        }
    }

    #[tokio::test]
    async fn a_locked_sqlite_database_is_unavailable_and_a_constraint_violation_is_not() {
        let (db, dir) = crate::store::test_database().await.expect("database");
        let violation = sqlx::query("INSERT INTO payments (transaction_id) VALUES (NULL)").execute(db.pool()).await;
        let violation = crate::store::StorageError::from(violation.expect_err("refused"));
        assert!(!violation.is_unavailable(), "{violation}");

        // Another connection holds the write lock; this one does not wait for it.
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let mut holder = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.expect("connect");
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut holder).await.expect("lock");
        let mut waiter = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.expect("connect");
        sqlx::query("PRAGMA busy_timeout = 0").execute(&mut waiter).await.expect("pragma");
        // In WAL mode readers pass; a writer meets the lock.
        let locked = sqlx::query("DELETE FROM payments").execute(&mut waiter).await.expect_err("locked");
        assert!(crate::store::StorageError::from(locked).is_unavailable());
    }

    #[test]
    fn an_outage_is_logged_when_it_starts_and_when_it_ends_and_not_in_between() {
        let log = OutageLog::default();
        let failure = ProbeFailure::TimedOut(Duration::from_millis(2000));
        log.record("postgres://db", None);
        assert!(!log.is_down());
        log.record("postgres://db", Some(&failure));
        assert!(log.is_down());
        log.record("postgres://db", Some(&failure));
        assert!(log.is_down());
        log.record("postgres://db", None);
        assert!(!log.is_down());
        assert_eq!(failure.to_string(), "no answer within 2000 ms");
    }
}
