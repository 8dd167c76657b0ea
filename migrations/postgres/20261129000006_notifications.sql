-- Notifications to online services (security.md #21): written in the same transaction as the change
-- they announce, delivered at least once by a worker with backoff, every attempt logged.
CREATE TABLE notification_outbox (
    id              TEXT PRIMARY KEY NOT NULL,  -- the webhook-id, stable across retries
    client_id       TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    url             TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    delivered_at    BIGINT,
    gave_up_at      BIGINT,
    gave_up_reason  TEXT,
    -- A worker's lease: other workers (other instances) skip the row until it passes.
    locked_until    BIGINT
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at);

CREATE TABLE notification_attempts (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   TEXT NOT NULL REFERENCES notification_outbox (id),
    attempted_at BIGINT NOT NULL,
    http_status BIGINT,
    error       TEXT,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX notification_attempts_by_message ON notification_attempts (outbox_id, id);
