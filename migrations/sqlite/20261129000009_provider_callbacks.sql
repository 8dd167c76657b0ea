-- Callbacks from payment providers (security.md #20): one row per provider event id, inserted in the
-- same transaction as what the callback caused, so a replayed event changes nothing.
CREATE TABLE provider_callbacks (
    provider_id    TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    transaction_id TEXT NOT NULL REFERENCES payments (transaction_id),
    received_at    BIGINT NOT NULL,
    UNIQUE (provider_id, event_id)
);
CREATE INDEX provider_callbacks_by_transaction ON provider_callbacks (transaction_id);

-- Callbacks name the payment by the provider's transaction id.
CREATE INDEX payments_by_provider_reference ON payments (provider_id, provider_reference);
