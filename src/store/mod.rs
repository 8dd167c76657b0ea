//! All SQL lives under this module. One query text serves both backends through sqlx's `Any` driver
//! (numbered `$n` parameters work on SQLite and PostgreSQL alike); where the dialects differ, the
//! statement is chosen by `Database::backend`. Migrations are kept per backend side by side.

pub(crate) mod audit_log;
pub mod backlog;
mod backup;
pub(crate) mod callbacks;
pub(crate) mod finance_imports;
pub(crate) mod finance_sessions;
pub(crate) mod finance_tokens;
mod group_commit;
mod health;
pub(crate) mod idempotency;
pub(crate) mod ledger;
pub(crate) mod logins;
pub(crate) mod notification_log;
pub(crate) mod outbox;
pub mod payment_create;
pub mod payment_status;
pub mod payments;
pub mod personal_data;
pub mod refunds;
pub mod refused_attempts;
pub(crate) mod saml_logout;
pub(crate) mod signing_keys;
pub mod transfer;
pub mod transfer_callbacks;
pub mod transfer_retention;

pub use audit_log::AuditRow;
pub use health::ProbeFailure;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Connection, Executor};

use crate::config::{Backend, DatabaseSettings, DatabaseUrl};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// A stored value that is not what pforte writes. The message names the column and never the value,
/// which may be personal data.
pub(crate) fn corrupt(column: &'static str) -> StorageError {
    StorageError::Corrupt(format!("{column} holds a value pforte does not write"))
}

/// A column's text read as a value of the shared vocabulary (`crate::model`); text that does not
/// parse is corrupt data, never a default.
pub(crate) fn parse_column<T>(
    column: &'static str,
    text: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> StorageResult<T> {
    parse(text).ok_or_else(|| corrupt(column))
}

/// A column holding an amount as exact decimal text (never a float); anything else means the row
/// was altered outside pforte.
pub(crate) fn decimal_column(column: &'static str, text: &str) -> StorageResult<rust_decimal::Decimal> {
    parse_column(column, text, |t| rust_decimal::Decimal::from_str_exact(t).ok())
}

/// A column holding a calendar day `YYYY-MM-DD`.
pub(crate) fn date_column(column: &'static str, text: &str) -> StorageResult<chrono::NaiveDate> {
    parse_column(column, text, |t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the SQLite database file: {0}")]
    SqliteFile(String),
    #[error("stored data is not what pforte wrote: {0}")]
    Corrupt(String),
    /// The shared transaction of a group commit (SQLite) failed; every member it held shares the error.
    #[error("database error: {0}")]
    Batch(std::sync::Arc<sqlx::Error>),
    /// The group commit's writer task stopped (the database is shutting down).
    #[error("the database writer is not running")]
    WriterGone,
}

impl StorageError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StorageError::Sqlx(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    /// Whether the database could not be asked: unreachable, connection lost, no free connection in
    /// time, shutting down, or (SQLite) locked by another process past the busy timeout. Such a
    /// failure says nothing about the request, so callers answer "try again" (503), never "refused"
    /// or "broken". A statement the database refused (a constraint, bad data) is not one of them.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StorageError::Sqlx(e) | StorageError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => {
                health::is_unavailable(e)
            }
            StorageError::Batch(e) => health::is_unavailable(e),
            StorageError::WriterGone => true,
            _ => false,
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// A handle on the database. Cloning is cheap; all clones share one pool.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    /// Where writes go. On SQLite one connection: writers queue here in order instead of polling
    /// SQLite's file lock (which costs milliseconds per retry under load). On PostgreSQL the same pool.
    writer: AnyPool,
    backend: Backend,
    redacted_url: String,
    /// Whether the database is known to be away, so an outage is logged once, not per request.
    outage: health::OutageLog,
    /// Shared by all clones, like the pools.
    write_waits: std::sync::Arc<backlog::WriteWaits>,
    /// The queue to the SQLite writer that commits concurrent writes together.
    group_commit: std::sync::Arc<group_commit::GroupCommit>,
}

impl Database {
    /// Prepares a pool without connecting, so the server can start (and report not-ready) while the
    /// database is still unreachable. For SQLite the file and its folder are created when missing.
    pub fn connect_lazy(settings: &DatabaseSettings) -> StorageResult<Database> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let backend = settings.url.backend();
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(&settings.url)?,
            Backend::Postgres => settings.url.expose().to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = pool_options(backend, settings.max_connections, settings).connect_lazy_with(options.clone());
        let writer = match backend {
            Backend::Sqlite => pool_options(backend, 1, settings).connect_lazy_with(options),
            Backend::Postgres => pool.clone(),
        };
        let redacted_url = settings.url.redacted();
        Ok(Database {
            pool,
            writer,
            backend,
            outage: health::OutageLog::default(),
            redacted_url,
            write_waits: Default::default(),
            group_commit: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The URL without credentials, for log lines.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Applies pending migrations. On PostgreSQL sqlx holds an advisory lock meanwhile, so several
    /// instances starting together migrate once.
    pub async fn migrate(&self) -> StorageResult<usize> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let applied_before = self.applied_migrations().await.unwrap_or(0);
        migrator.run(&self.writer).await?;
        let applied_after = self.applied_migrations().await?;
        Ok(applied_after.saturating_sub(applied_before))
    }

    async fn applied_migrations(&self) -> StorageResult<usize> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// A round trip to the database, for readiness.
    pub async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A round trip within `limit`, for readiness and the outage watch: the first failure after a
    /// success logs what failed, the first success after failures logs that the database is back
    /// and how long it was away; every other probe logs nothing.
    pub async fn probe(&self, limit: Duration) -> Result<(), ProbeFailure> {
        let outcome = match tokio::time::timeout(limit, self.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ProbeFailure::Failed(e.to_string())),
            Err(_) => Err(ProbeFailure::TimedOut(limit)),
        };
        self.outage.record(&self.redacted_url, outcome.as_ref().err());
        outcome
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// A pooled connection idle this long is pinged before it is handed out; a busier one is not.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

fn pool_options(backend: Backend, max_connections: u32, settings: &DatabaseSettings) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(settings.connect_timeout_secs))
        // sqlx pings every connection it hands out by default: one more round trip per statement,
        // which on PostgreSQL cost as much as the statements of a payment create (issue 13). A
        // connection in use a moment ago is alive or fails its statement with an error the caller
        // answers as unavailable, and sqlx drops it when its ping on release fails; one that sat idle
        // (a restart of the database may have cut it) is still tested first.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_WHEN_IDLE_FOR {
                    return Ok(true);
                }
                Ok(conn.ping().await.is_ok())
            })
        })
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers proceed while the writer commits; the busy timeout covers the
                    // moments another process (a CLI command) holds the lock.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                }
                Ok(())
            })
        })
}

/// Creates the folder of an SQLite database file and asks the driver to create the file itself.
fn prepare_sqlite_url(url: &DatabaseUrl) -> StorageResult<String> {
    let raw = url.expose();
    let options = SqliteConnectOptions::from_str(raw).map_err(|e| StorageError::SqliteFile(e.to_string()))?;
    let file: PathBuf = options.get_filename().to_path_buf();
    let in_memory = raw.contains(":memory:") || raw.contains("mode=memory");
    if !in_memory {
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StorageError::SqliteFile(format!("{}: {e}", parent.display())))?;
        }
    }
    if raw.contains("mode=") || in_memory {
        Ok(raw.to_owned())
    } else if raw.contains('?') {
        Ok(format!("{raw}&mode=rwc"))
    } else {
        Ok(format!("{raw}?mode=rwc"))
    }
}

/// A fresh, migrated SQLite database in a temporary folder, for the row conversion tests.
#[cfg(test)]
pub(crate) async fn test_database() -> StorageResult<(Database, tempfile::TempDir)> {
    let dir = tempfile::tempdir().map_err(|e| StorageError::SqliteFile(e.to_string()))?;
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let settings = DatabaseSettings {
        url: DatabaseUrl::try_from(url).map_err(StorageError::SqliteFile)?,
        max_connections: 2,
        connect_timeout_secs: 5,
    };
    let db = Database::connect_lazy(&settings)?;
    db.migrate().await?;
    Ok((db, dir))
}

/// Whether an error is the corrupt-data report for `column`.
#[cfg(test)]
pub(crate) fn is_corrupt_column(error: &StorageError, column: &str) -> bool {
    matches!(error, StorageError::Corrupt(message) if message.starts_with(column))
}
