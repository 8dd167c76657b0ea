-- Idempotency keys of the payment API (Stripe semantics, security.md #17): the first response to a
-- (client, key) is stored and returned again for the same request; another request under the same
-- key is refused; a second request while the first is still running gets 409.
CREATE TABLE idempotency_keys (
    client_id       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    -- SHA-256 of method, path and body: "the same request".
    request_hash    TEXT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (client_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
