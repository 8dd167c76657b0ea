//! The rows Datentransfer's deadlines and retention (`transfer::retention`) select and change. Every
//! change repeats its condition in the statement that makes it (compare-and-set; on PostgreSQL a
//! second worker's statement waits for the first one's commit and then finds nothing left), so
//! instances may run the worker side by side on one database and each step happens once.

use super::transfer::{insert_event, submission_from_row, EventRow, SubmissionRow, SUBMISSION_COLUMNS};
use super::transfer_callbacks::CallbackRow;
use super::{Database, StorageResult};
use crate::model::SubmissionStatus;

const SUBMITTED: &str = "status = 'submitted'";
const DECIDED: &str = "status IN ('accepted', 'rejected')";

impl Database {
    /// Records that an attachment upload starts, before its first chunk: if it never completes (a
    /// crash, the stream timeout), the record ages and the retention worker deletes its chunks.
    pub async fn start_transfer_upload(&self, upload_id: &str, submission_id: &str, now: i64) -> StorageResult<()> {
        sqlx::query("INSERT INTO transfer_uploads (upload_id, submission_id, started_at) VALUES ($1, $2, $3)")
            .bind(upload_id)
            .bind(submission_id)
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Submissions waiting since `submitted_before` or longer that have had fewer than `reminder`
    /// reminders, oldest first.
    pub async fn transfer_reminders_due(
        &self,
        reminder: i64,
        submitted_before: i64,
        limit: i64,
    ) -> StorageResult<Vec<SubmissionRow>> {
        let condition = format!("{SUBMITTED} AND submitted_at <= $1 AND reminders_sent < $2");
        self.submissions_where(&condition, &[submitted_before, reminder], limit).await
    }

    /// Records reminder number `reminder` of a submission still waiting, with its callback, in one
    /// transaction; `false` when another worker sent it or the submission was decided.
    pub async fn record_transfer_reminder(
        &self,
        submission_id: &str,
        reminder: i64,
        callback: Option<&CallbackRow>,
    ) -> StorageResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(&format!(
            "UPDATE transfer_submissions SET reminders_sent = $2 WHERE submission_id = $1 AND {SUBMITTED} \
             AND reminders_sent < $2"
        ))
        .bind(submission_id)
        .bind(reminder)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(callback) = callback {
            super::transfer_callbacks::enqueue(&mut tx, callback).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Submissions submitted at `submitted_before` or earlier and still undecided, oldest first
    /// (the reject itself is `change_transfer_status`, which only moves a submission still submitted).
    pub async fn transfer_undecided(&self, submitted_before: i64, limit: i64) -> StorageResult<Vec<SubmissionRow>> {
        self.submissions_where(&format!("{SUBMITTED} AND submitted_at <= $1"), &[submitted_before], limit).await
    }

    /// Decided submissions whose decision is `decided_before` or older and whose content is still there.
    pub async fn transfer_content_due(&self, decided_before: i64, limit: i64) -> StorageResult<Vec<SubmissionRow>> {
        let condition = format!("{DECIDED} AND content_deleted_at IS NULL AND decided_at <= $1");
        self.submissions_where(&condition, &[decided_before], limit).await
    }

    /// Deletes a decided submission's encrypted metadata, data and attachment chunks, and appends its
    /// `delete-submission` event; the row, the attachments' ids, sizes and tags, and the event log
    /// stay. `false` when another worker did it first.
    pub async fn delete_transfer_content(
        &self,
        submission_id: &str,
        event: &EventRow,
        sender_callback: Option<&CallbackRow>,
    ) -> StorageResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(&format!(
            "UPDATE transfer_submissions SET encrypted_metadata = NULL, encrypted_data = NULL, content_deleted_at = $2 \
             WHERE submission_id = $1 AND {DECIDED} AND content_deleted_at IS NULL"
        ))
        .bind(submission_id)
        .bind(event.created_at)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "DELETE FROM transfer_chunks WHERE upload_id IN \
             (SELECT upload_id FROM transfer_attachments WHERE submission_id = $1 AND upload_id IS NOT NULL)",
        )
        .bind(submission_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE transfer_attachments SET upload_id = NULL WHERE submission_id = $1")
            .bind(submission_id)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, event).await?;
        if let Some(callback) = sender_callback {
            super::transfer_callbacks::enqueue(&mut tx, callback).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes up to `limit` submissions announced at `announced_before` or earlier and never
    /// submitted, with their attachments, chunks and events. Returns how many.
    pub async fn purge_incomplete_transfers(&self, announced_before: i64, limit: i64) -> StorageResult<u64> {
        let condition = format!("status = '{}' AND created_at <= $1", SubmissionStatus::Announced.as_str());
        self.purge_submissions(&condition, announced_before, limit).await
    }

    /// Deletes up to `limit` submissions decided at `decided_before` or earlier with their event log
    /// and whatever is left of them. Returns how many.
    pub async fn purge_transfer_event_logs(&self, decided_before: i64, limit: i64) -> StorageResult<u64> {
        self.purge_submissions(&format!("{DECIDED} AND decided_at <= $1"), decided_before, limit).await
    }

    /// Deletes the chunks of up to `limit` uploads started at `started_before` or earlier that no
    /// attachment names (they never completed). Returns how many uploads.
    pub async fn purge_orphan_transfer_uploads(&self, started_before: i64, limit: i64) -> StorageResult<u64> {
        let unnamed =
            "NOT EXISTS (SELECT 1 FROM transfer_attachments a WHERE a.upload_id = transfer_uploads.upload_id)";
        let candidates: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT upload_id FROM transfer_uploads WHERE started_at <= $1 AND {unnamed} ORDER BY started_at LIMIT $2"
        ))
        .bind(started_before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut purged = 0;
        for upload_id in candidates {
            let mut tx = self.begin_write().await?;
            let claimed = sqlx::query(&format!(
                "DELETE FROM transfer_uploads WHERE upload_id = $1 AND started_at <= $2 AND {unnamed}"
            ))
            .bind(&upload_id)
            .bind(started_before)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() == 1 {
                sqlx::query("DELETE FROM transfer_chunks WHERE upload_id = $1")
                    .bind(&upload_id)
                    .execute(&mut *tx)
                    .await?;
                purged += 1;
            }
            tx.commit().await?;
        }
        Ok(purged)
    }

    /// Submissions matching `condition` (on `$1`, `$2`, … bound to `binds`), oldest first, at most `limit`.
    async fn submissions_where(&self, condition: &str, binds: &[i64], limit: i64) -> StorageResult<Vec<SubmissionRow>> {
        let sql = format!(
            "SELECT {SUBMISSION_COLUMNS} FROM transfer_submissions WHERE {condition} \
             ORDER BY created_at, submission_id LIMIT ${}",
            binds.len() + 1
        );
        let mut query = sqlx::query(&sql);
        for value in binds {
            query = query.bind(*value);
        }
        let rows = query.bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(submission_from_row).collect()
    }

    /// Deletes up to `limit` submissions matching `condition` (on `$1`) with everything of them, in
    /// one transaction. The first statement takes the rows (a no-op update that locks them on
    /// PostgreSQL; SQLite has one writer), so a second worker finds them gone.
    async fn purge_submissions(&self, condition: &str, before: i64, limit: i64) -> StorageResult<u64> {
        let mut tx = self.begin_write().await?;
        let taken: Vec<String> = sqlx::query_scalar(&format!(
            "UPDATE transfer_submissions SET status = status WHERE submission_id IN \
             (SELECT submission_id FROM transfer_submissions WHERE {condition} ORDER BY created_at LIMIT $2) \
             AND {condition} RETURNING submission_id"
        ))
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        for submission_id in &taken {
            for statement in [
                "DELETE FROM transfer_chunks WHERE upload_id IN \
                 (SELECT upload_id FROM transfer_attachments WHERE submission_id = $1 AND upload_id IS NOT NULL)",
                "DELETE FROM transfer_chunks WHERE upload_id IN \
                 (SELECT upload_id FROM transfer_uploads WHERE submission_id = $1)",
                "DELETE FROM transfer_uploads WHERE submission_id = $1",
                "DELETE FROM transfer_attachments WHERE submission_id = $1",
                "DELETE FROM transfer_events WHERE submission_id = $1",
                "DELETE FROM transfer_submissions WHERE submission_id = $1",
            ] {
                sqlx::query(statement).bind(submission_id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(u64::try_from(taken.len()).unwrap_or(u64::MAX))
    }
}
