-- Datentransfer (issue 15): submissions to a destination's Fachverfahren, FIT-Connect compatible.
-- pforte holds ciphertext only: the JWEs of metadata and data, and each attachment's JWE in chunks.
CREATE TABLE transfer_submissions (
    submission_id      TEXT PRIMARY KEY,
    case_id            TEXT NOT NULL,
    destination_id     TEXT NOT NULL,
    tenant_id          TEXT NOT NULL,
    sender_client      TEXT NOT NULL,
    service_name       TEXT NOT NULL,
    service_identifier TEXT NOT NULL,
    -- announced | submitted | accepted | rejected
    status             TEXT NOT NULL,
    encrypted_metadata TEXT,
    encrypted_data     TEXT,
    created_at         BIGINT NOT NULL,
    submitted_at       BIGINT,
    decided_at         BIGINT
);
CREATE INDEX transfer_submissions_destination ON transfer_submissions (destination_id, status, submitted_at);
CREATE INDEX transfer_submissions_case ON transfer_submissions (case_id);

-- Announced attachments; `upload_id` names the complete upload whose chunks are its content (NULL
-- until one completed). A repeated upload writes new chunks and switches over in one transaction.
CREATE TABLE transfer_attachments (
    submission_id TEXT NOT NULL REFERENCES transfer_submissions (submission_id),
    attachment_id TEXT NOT NULL,
    upload_id     TEXT,
    size_bytes    BIGINT,
    auth_tag      TEXT,
    uploaded_at   BIGINT,
    PRIMARY KEY (submission_id, attachment_id)
);

-- The ciphertext, 1 MiB per row, written while the request body streams in and read back as it
-- streams out.
CREATE TABLE transfer_chunks (
    upload_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    bytes     BLOB NOT NULL,
    PRIMARY KEY (upload_id, seq)
);

-- The event log: Security Event Tokens, pforte's own and the subscriber's as posted, in order per case.
CREATE TABLE transfer_events (
    event_id      TEXT PRIMARY KEY,
    case_id       TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    submission_id TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    token         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (case_id, seq)
);

-- Callbacks to a destination's Fachverfahren (`new-submissions`), written in the submit's transaction
-- and delivered by a worker with retries; best effort, polling stays the source of truth. A worker
-- holds the messages it claimed until `lease_until`.
CREATE TABLE transfer_callbacks (
    id              TEXT PRIMARY KEY,
    destination_id  TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT,
    gave_up_at      BIGINT
);
CREATE INDEX transfer_callbacks_due ON transfer_callbacks (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
