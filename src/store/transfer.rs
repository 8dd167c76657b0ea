//! Rows of the Datentransfer tables: submissions, announced attachments with their ciphertext in
//! chunks, and the event log. Chunks are written one statement each while an upload streams in and
//! read one at a time while a download streams out, so no attachment is ever whole in memory; the
//! switch to a complete upload is one short transaction.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::outbox::OutboxRow;
use super::transfer_callbacks::CallbackRow;
use super::{parse_column, Database, StorageError, StorageResult};
use crate::model::SubmissionStatus;

/// One submission as stored.
#[derive(Debug, Clone)]
pub struct SubmissionRow {
    pub submission_id: String,
    pub case_id: String,
    pub destination_id: String,
    pub tenant_id: String,
    pub sender_client: String,
    pub service_name: String,
    pub service_identifier: String,
    pub status: SubmissionStatus,
    pub encrypted_metadata: Option<String>,
    pub encrypted_data: Option<String>,
    pub created_at: i64,
    pub submitted_at: Option<i64>,
    /// The payment this submission is bound to (announce extension or payment evidence).
    pub payment_transaction_id: Option<String>,
    /// The sender's own callback (`new-events`): its URL, and its secret sealed under the master key
    /// (`transfer::sender_callback`); never the plain secret.
    pub sender_callback_url: Option<String>,
    pub sender_callback_secret: Option<String>,
}

/// One announced attachment; `upload_id` is `None` until an upload completed.
#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub attachment_id: String,
    pub upload_id: Option<String>,
    pub size_bytes: Option<i64>,
    pub auth_tag: Option<String>,
}

/// What a status change announces, committed with it: the callback to the destination's Fachverfahren
/// and the notification to the sending online service (its Standard Webhooks outbox).
#[derive(Debug, Clone, Default)]
pub struct StatusMessages {
    pub callback: Option<CallbackRow>,
    /// The sender's own callback (`new-events`), when its announcement gave one.
    pub sender_callback: Option<CallbackRow>,
    pub notification: Option<OutboxRow>,
}

/// One entry of the event log: a signed SET.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub event_id: String,
    pub case_id: String,
    pub submission_id: String,
    pub event_type: String,
    pub token: String,
    pub created_at: i64,
}

pub(super) const SUBMISSION_COLUMNS: &str =
    "submission_id, case_id, destination_id, tenant_id, sender_client, service_name, \
     service_identifier, status, encrypted_metadata, encrypted_data, created_at, submitted_at, payment_transaction_id, \
     sender_callback_url, sender_callback_secret";

pub(super) fn submission_from_row(row: &AnyRow) -> StorageResult<SubmissionRow> {
    let status: String = row.try_get("status")?;
    Ok(SubmissionRow {
        submission_id: row.try_get("submission_id")?,
        case_id: row.try_get("case_id")?,
        destination_id: row.try_get("destination_id")?,
        tenant_id: row.try_get("tenant_id")?,
        sender_client: row.try_get("sender_client")?,
        service_name: row.try_get("service_name")?,
        service_identifier: row.try_get("service_identifier")?,
        status: parse_column("transfer_submissions.status", &status, SubmissionStatus::parse)?,
        encrypted_metadata: row.try_get("encrypted_metadata")?,
        encrypted_data: row.try_get("encrypted_data")?,
        created_at: row.try_get("created_at")?,
        submitted_at: row.try_get("submitted_at")?,
        payment_transaction_id: row.try_get("payment_transaction_id")?,
        sender_callback_url: row.try_get("sender_callback_url")?,
        sender_callback_secret: row.try_get("sender_callback_secret")?,
    })
}

impl Database {
    /// Records an announced submission, its announced attachments and its first event together. A
    /// payment already bound to another submission fails the insert as a unique violation, so of two
    /// racing announces with one payment only one commits.
    pub async fn insert_transfer_submission(
        &self,
        row: &SubmissionRow,
        attachment_ids: &[String],
        event: &EventRow,
    ) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO transfer_submissions ({SUBMISSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, NULL, $10, $11, $12)"
        ))
        .bind(&row.submission_id)
        .bind(&row.case_id)
        .bind(&row.destination_id)
        .bind(&row.tenant_id)
        .bind(&row.sender_client)
        .bind(&row.service_name)
        .bind(&row.service_identifier)
        .bind(row.status.as_str())
        .bind(row.created_at)
        .bind(&row.payment_transaction_id)
        .bind(&row.sender_callback_url)
        .bind(&row.sender_callback_secret)
        .execute(&mut *tx)
        .await?;
        for attachment_id in attachment_ids {
            sqlx::query("INSERT INTO transfer_attachments (submission_id, attachment_id) VALUES ($1, $2)")
                .bind(&row.submission_id)
                .bind(attachment_id)
                .execute(&mut *tx)
                .await?;
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn transfer_submission(&self, submission_id: &str) -> StorageResult<Option<SubmissionRow>> {
        let row =
            sqlx::query(&format!("SELECT {SUBMISSION_COLUMNS} FROM transfer_submissions WHERE submission_id = $1"))
                .bind(submission_id)
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(submission_from_row).transpose()
    }

    /// The first submission of a case (FIT-Connect: one submission opens a case; follow-up
    /// submissions have the same sender and destination, so the first answers for the case).
    pub async fn transfer_submission_of_case(&self, case_id: &str) -> StorageResult<Option<SubmissionRow>> {
        let row = sqlx::query(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM transfer_submissions WHERE case_id = $1 ORDER BY created_at LIMIT 1"
        ))
        .bind(case_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(submission_from_row).transpose()
    }

    /// Binds a payment to a submission still announced and bound to none; `false` when it is not
    /// (submitted meanwhile, or bound already). A payment bound elsewhere fails as a unique violation.
    pub async fn bind_transfer_payment(&self, submission_id: &str, transaction_id: &str) -> StorageResult<bool> {
        let bound = sqlx::query(
            "UPDATE transfer_submissions SET payment_transaction_id = $2 \
             WHERE submission_id = $1 AND status = $3 AND payment_transaction_id IS NULL",
        )
        .bind(submission_id)
        .bind(transaction_id)
        .bind(SubmissionStatus::Announced.as_str())
        .execute(self.writer())
        .await?;
        Ok(bound.rows_affected() == 1)
    }

    /// The submission a payment is bound to, if any (for the finance office and the checks).
    pub async fn transfer_submission_of_payment(&self, transaction_id: &str) -> StorageResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT submission_id FROM transfer_submissions WHERE payment_transaction_id = $1")
            .bind(transaction_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The announced attachments of a submission, by id.
    pub async fn transfer_attachments(&self, submission_id: &str) -> StorageResult<Vec<AttachmentRow>> {
        let rows = sqlx::query(
            "SELECT attachment_id, upload_id, size_bytes, auth_tag FROM transfer_attachments \
             WHERE submission_id = $1 ORDER BY attachment_id",
        )
        .bind(submission_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttachmentRow {
                    attachment_id: row.try_get("attachment_id")?,
                    upload_id: row.try_get("upload_id")?,
                    size_bytes: row.try_get("size_bytes")?,
                    auth_tag: row.try_get("auth_tag")?,
                })
            })
            .collect()
    }

    /// Stores one chunk of an upload in progress (its own statement: no transaction stays open while
    /// the sender's body streams in).
    pub async fn write_transfer_chunk(&self, upload_id: &str, seq: i64, bytes: &[u8]) -> StorageResult<()> {
        sqlx::query("INSERT INTO transfer_chunks (upload_id, seq, bytes) VALUES ($1, $2, $3)")
            .bind(upload_id)
            .bind(seq)
            .bind(bytes.to_vec())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Removes the chunks of an upload that was refused or replaced, and its record
    /// (`transfer_uploads`, see `start_transfer_upload`).
    pub async fn delete_transfer_upload(&self, upload_id: &str) -> StorageResult<()> {
        sqlx::query("DELETE FROM transfer_chunks WHERE upload_id = $1").bind(upload_id).execute(self.writer()).await?;
        sqlx::query("DELETE FROM transfer_uploads WHERE upload_id = $1").bind(upload_id).execute(self.writer()).await?;
        Ok(())
    }

    /// One chunk of a complete upload, `None` past the last.
    pub async fn transfer_chunk(&self, upload_id: &str, seq: i64) -> StorageResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT bytes FROM transfer_chunks WHERE upload_id = $1 AND seq = $2")
            .bind(upload_id)
            .bind(seq)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Makes `upload_id` the content of the attachment while its submission is still announced, and
    /// drops the chunks of the upload it replaces. `false` when the submission was submitted meanwhile
    /// (the caller then drops the new chunks).
    pub async fn complete_transfer_upload(
        &self,
        submission_id: &str,
        attachment: &AttachmentRow,
        now: i64,
    ) -> StorageResult<bool> {
        let mut tx = self.begin_write().await?;
        let previous: Option<Option<String>> = sqlx::query_scalar(
            "SELECT a.upload_id FROM transfer_attachments a JOIN transfer_submissions s ON s.submission_id = a.submission_id \
             WHERE a.submission_id = $1 AND a.attachment_id = $2 AND s.status = $3",
        )
        .bind(submission_id)
        .bind(&attachment.attachment_id)
        .bind(SubmissionStatus::Announced.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(previous) = previous else {
            tx.rollback().await?;
            return Ok(false);
        };
        let updated = sqlx::query(
            "UPDATE transfer_attachments SET upload_id = $3, size_bytes = $4, auth_tag = $5, uploaded_at = $6 \
             WHERE submission_id = $1 AND attachment_id = $2",
        )
        .bind(submission_id)
        .bind(&attachment.attachment_id)
        .bind(&attachment.upload_id)
        .bind(attachment.size_bytes)
        .bind(&attachment.auth_tag)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The retention worker may have deleted the submission meanwhile (it was announced too long).
        if updated.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Complete: no longer an upload in progress the retention worker would age out.
        sqlx::query("DELETE FROM transfer_uploads WHERE upload_id = $1")
            .bind(&attachment.upload_id)
            .execute(&mut *tx)
            .await?;
        if let Some(previous) = previous {
            sqlx::query("DELETE FROM transfer_chunks WHERE upload_id = $1").bind(previous).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Moves a submission from `from` to `to` with its event and the messages announcing it, in one
    /// transaction; `false` when it was not in `from` (another request moved it first). `content` sets
    /// the encrypted metadata and data on submit.
    pub async fn change_transfer_status(
        &self,
        submission_id: &str,
        from: SubmissionStatus,
        to: SubmissionStatus,
        content: Option<(&str, Option<&str>)>,
        event: &EventRow,
        messages: &StatusMessages,
    ) -> StorageResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = match content {
            Some((metadata, data)) => {
                sqlx::query(
                    "UPDATE transfer_submissions SET status = $3, encrypted_metadata = $4, encrypted_data = $5, \
                     submitted_at = $6 WHERE submission_id = $1 AND status = $2",
                )
                .bind(submission_id)
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(metadata)
                .bind(data)
                .bind(event.created_at)
                .execute(&mut *tx)
                .await?
            }
            None => sqlx::query(
                "UPDATE transfer_submissions SET status = $3, decided_at = $4 WHERE submission_id = $1 AND status = $2",
            )
            .bind(submission_id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(event.created_at)
            .execute(&mut *tx)
            .await?,
        };
        if changed.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_event(&mut tx, event).await?;
        for callback in [&messages.callback, &messages.sender_callback].into_iter().flatten() {
            super::transfer_callbacks::enqueue(&mut tx, callback).await?;
        }
        if let Some(notification) = &messages.notification {
            super::outbox::enqueue(&mut tx, notification).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Submissions of a destination in `status`, oldest first: `(total, page)`.
    pub async fn transfer_submissions_of_destination(
        &self,
        destination_id: &str,
        status: SubmissionStatus,
        offset: i64,
        limit: i64,
    ) -> StorageResult<(i64, Vec<SubmissionRow>)> {
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM transfer_submissions WHERE destination_id = $1 AND status = $2")
                .bind(destination_id)
                .bind(status.as_str())
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM transfer_submissions WHERE destination_id = $1 AND status = $2 \
             ORDER BY submitted_at, submission_id LIMIT $3 OFFSET $4"
        ))
        .bind(destination_id)
        .bind(status.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        Ok((total, rows.iter().map(submission_from_row).collect::<StorageResult<_>>()?))
    }

    /// The event log of a case in order: `(total, page)`.
    pub async fn transfer_events(&self, case_id: &str, offset: i64, limit: i64) -> StorageResult<(i64, Vec<EventRow>)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transfer_events WHERE case_id = $1")
            .bind(case_id)
            .fetch_one(self.pool())
            .await?;
        let rows = sqlx::query(
            "SELECT event_id, case_id, submission_id, event_type, token, created_at FROM transfer_events \
             WHERE case_id = $1 ORDER BY seq LIMIT $2 OFFSET $3",
        )
        .bind(case_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let events = rows
            .iter()
            .map(|row| {
                Ok(EventRow {
                    event_id: row.try_get("event_id")?,
                    case_id: row.try_get("case_id")?,
                    submission_id: row.try_get("submission_id")?,
                    event_type: row.try_get("event_type")?,
                    token: row.try_get("token")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<StorageResult<_>>()?;
        Ok((total, events))
    }
}

/// Appends an event as the next of its case. A SET whose `jti` is already in the log (a replay) fails
/// as a unique violation.
pub(super) async fn insert_event(conn: &mut sqlx::AnyConnection, event: &EventRow) -> Result<(), StorageError> {
    // A case may hold several submissions (follow-ups) whose events are written concurrently. Locking
    // one row of the case (its first submission's, by id) until commit makes them take turns on
    // PostgreSQL, so two never read the same MAX(seq); SQLite has one writer anyway.
    sqlx::query(
        "UPDATE transfer_submissions SET case_id = case_id WHERE submission_id = \
         (SELECT MIN(submission_id) FROM transfer_submissions WHERE case_id = $1)",
    )
    .bind(&event.case_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO transfer_events (event_id, case_id, seq, submission_id, event_type, token, created_at) \
         VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM transfer_events WHERE case_id = $2), $3, $4, $5, $6)",
    )
    .bind(&event.event_id)
    .bind(&event.case_id)
    .bind(&event.submission_id)
    .bind(&event.event_type)
    .bind(&event.token)
    .bind(event.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
