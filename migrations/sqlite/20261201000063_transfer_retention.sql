-- Datentransfer deadlines and retention (issue 15 item 6, `transfer::retention`).
-- How many of `transfer.reminder_days` were sent for a submission still waiting: each once.
ALTER TABLE transfer_submissions ADD COLUMN reminders_sent BIGINT NOT NULL DEFAULT 0;
-- When the encrypted metadata, data and attachments were deleted (the row and the event log stay).
ALTER TABLE transfer_submissions ADD COLUMN content_deleted_at BIGINT;
CREATE INDEX transfer_submissions_due ON transfer_submissions (status, submitted_at);
CREATE INDEX transfer_submissions_decided ON transfer_submissions (status, decided_at);
CREATE INDEX transfer_submissions_created ON transfer_submissions (status, created_at);
CREATE INDEX transfer_events_submission ON transfer_events (submission_id);
CREATE INDEX transfer_attachments_upload ON transfer_attachments (upload_id);

-- Every attachment upload from its start until it became an attachment's `upload_id` or was refused:
-- what is still here after `transfer.orphan_upload_grace_secs` was cut off (a crash, the stream
-- timeout) and its chunks are deleted.
CREATE TABLE transfer_uploads (
    upload_id     TEXT PRIMARY KEY,
    submission_id TEXT NOT NULL,
    started_at    BIGINT NOT NULL
);
CREATE INDEX transfer_uploads_started ON transfer_uploads (started_at);
-- Chunks that no attachment names were left by earlier versions; they age from now.
INSERT INTO transfer_uploads (upload_id, submission_id, started_at)
SELECT DISTINCT c.upload_id, '', CAST(strftime('%s', 'now') AS INTEGER) * 1000
FROM transfer_chunks c
WHERE NOT EXISTS (SELECT 1 FROM transfer_attachments a WHERE a.upload_id = c.upload_id);
