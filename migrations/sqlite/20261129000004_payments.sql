-- Payment transactions as online services created them through the XBezahldienste API.
-- Amounts are exact decimal text (never floating point); `request` is the validated request as JSON.
CREATE TABLE payments (
    transaction_id        TEXT PRIMARY KEY NOT NULL,
    originator_id         TEXT NOT NULL,
    endpoint_id           TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    request_id            TEXT NOT NULL,
    request               TEXT NOT NULL,
    gros_amount           TEXT NOT NULL,
    provider_id           TEXT NOT NULL,
    provider_reference    TEXT,
    pay_url               TEXT,
    status                TEXT NOT NULL,
    status_detail         TEXT,
    -- Set when pforte itself failed the payment because no final answer came in time.
    timed_out_at          BIGINT,
    -- Set when the provider reported PAYED after that: the finance office must see it.
    paid_after_timeout_at BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    UNIQUE (originator_id, endpoint_id, request_id)
);
CREATE INDEX payments_open ON payments (status, expires_at);

-- Every status change and every flag, in order; never updated.
CREATE TABLE payment_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL REFERENCES payments (transaction_id),
    from_status    TEXT NOT NULL,
    to_status      TEXT NOT NULL,
    source         TEXT NOT NULL,
    detail         TEXT,
    recorded_at    BIGINT NOT NULL
);
CREATE INDEX payment_events_by_transaction ON payment_events (transaction_id, id);
