-- The payment API's remaining surface: the request as the online service sent it next to what the
-- provider got, facts the provider reports, the paid-at time, a per-payment notification URL, and
-- refunds.

-- `request` now holds the request exactly as the service sent it (echoed by GET and POST);
-- `effective_request` what pforte sent to the provider: booking defaults merged (the finance exports
-- need the merged bookingData), redirectUrl pointing back at pforte, no notifyUrl. Rows written before
-- this migration stored the merged request in `request`; both columns then hold it.
ALTER TABLE payments ADD COLUMN effective_request TEXT;
UPDATE payments SET effective_request = request WHERE effective_request IS NULL;
-- What the provider reports when pforte reads a status; kept once known, never cleared.
ALTER TABLE payments ADD COLUMN payment_method TEXT;
ALTER TABLE payments ADD COLUMN payment_method_detail TEXT;
-- The business reference, typically the Kassenzeichen.
ALTER TABLE payments ADD COLUMN transaction_reference TEXT;
-- Millis when the payment became PAYED, or when a payment failed for timeout was paid after all.
ALTER TABLE payments ADD COLUMN paid_at BIGINT;
UPDATE payments SET paid_at = (
    SELECT MIN(e.recorded_at) FROM payment_events e
    WHERE e.transaction_id = payments.transaction_id AND e.to_status = 'PAYED'
) WHERE status = 'PAYED' OR paid_after_timeout_at IS NOT NULL;
-- The service's notifyUrl for this payment (overrides the client's notification_url).
ALTER TABLE payments ADD COLUMN notify_url TEXT;

-- Refunds of paid payments. Amounts are exact decimal text. A refund is PENDING until the provider
-- was asked, then SUBMITTED (the provider accepted it), INSTRUCTION (the provider cannot refund: the
-- finance office pays back by hand) or FAILED (the provider refused; the amount is free again).
CREATE TABLE payment_refunds (
    refund_id          TEXT PRIMARY KEY NOT NULL,
    transaction_id     TEXT NOT NULL REFERENCES payments (transaction_id),
    amount             TEXT NOT NULL,
    reason             TEXT,
    status             TEXT NOT NULL,
    -- Why a refund FAILED (the provider's answer), for the finance office.
    status_detail      TEXT,
    provider_reference TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX payment_refunds_by_transaction ON payment_refunds (transaction_id, created_at);
CREATE INDEX payment_refunds_by_time ON payment_refunds (created_at);

-- Every status a refund took, in order; never updated.
CREATE TABLE payment_refund_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    refund_id   TEXT NOT NULL REFERENCES payment_refunds (refund_id),
    from_status TEXT,
    to_status   TEXT NOT NULL,
    detail      TEXT,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX payment_refund_events_by_refund ON payment_refund_events (refund_id, id);
