//! A consistent copy of the embedded SQLite database while the service runs (`pforte backup`).
//! `VACUUM INTO` reads one snapshot (WAL lets writers go on meanwhile) and writes a compact database
//! file that SQLite opens as it is: restoring is putting the file where `database.url` points.

use std::path::Path;

use super::{Database, StorageError, StorageResult};
use crate::config::Backend;

impl Database {
    /// Writes a copy of the SQLite database to `target`, which must not exist yet. The name is
    /// claimed atomically first (`create_new`), so two backups never write one file and an
    /// existing file is never overwritten; a copy that fails is removed, so no half-written file
    /// is left to be mistaken for a backup.
    pub async fn backup_into(&self, target: &Path) -> StorageResult<u64> {
        if self.backend() != Backend::Sqlite {
            return Err(StorageError::SqliteFile("backups by pforte are for SQLite; use pg_dump on PostgreSQL".into()));
        }
        let io = |e: std::io::Error| StorageError::SqliteFile(format!("{}: {e}", target.display()));
        // SQLite's VACUUM INTO accepts an existing empty file, so the claim does not stand in its way.
        std::fs::OpenOptions::new().write(true).create_new(true).open(target).map_err(io)?;
        let copied =
            sqlx::query("VACUUM INTO $1").bind(target.to_string_lossy().into_owned()).execute(self.pool()).await;
        if let Err(e) = copied {
            std::fs::remove_file(target).ok();
            return Err(e.into());
        }
        // VACUUM INTO does not sync the copy; a backup should survive a power cut right after.
        let file = std::fs::File::open(target).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(file.metadata().map_err(io)?.len())
    }
}
