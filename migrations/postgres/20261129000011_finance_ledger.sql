-- Finance staff credentials: one tenant each, created and revoked by the operator. Only the SHA-256
-- of the token is stored; `token_id` names it in lists and audit entries.
CREATE TABLE finance_tokens (
    token_id   TEXT PRIMARY KEY NOT NULL,
    tenant_id  TEXT NOT NULL,
    label      TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX finance_tokens_by_tenant ON finance_tokens (tenant_id, created_at);

-- The double-entry journal (docs/ledger.md). A journal is one money event; `journal_key` names its
-- source event, so a repeated signal never posts twice. `amount` is the event's amount as exact
-- decimal text; `transaction_id` and `refund_id` say which payment (refund) it concerns.
CREATE TABLE ledger_journals (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    journal_key    TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    transaction_id TEXT,
    refund_id      TEXT,
    amount         TEXT NOT NULL,
    description    TEXT,
    -- A correction: the journal this one reverses, entry by entry with the signs turned.
    reverses       BIGINT UNIQUE REFERENCES ledger_journals (id),
    posted_at      BIGINT NOT NULL
);
CREATE INDEX ledger_journals_by_tenant ON ledger_journals (tenant_id, posted_at, id);
CREATE INDEX ledger_journals_by_transaction ON ledger_journals (transaction_id);

-- Entries: signed exact decimal text, debit positive and credit negative; each journal's sum is 0.
CREATE TABLE ledger_entries (
    id         BIGSERIAL PRIMARY KEY,
    journal_id BIGINT NOT NULL REFERENCES ledger_journals (id),
    tenant_id  TEXT NOT NULL,
    account    TEXT NOT NULL,
    amount     TEXT NOT NULL
);
CREATE INDEX ledger_entries_by_journal ON ledger_entries (journal_id, id);
CREATE INDEX ledger_entries_by_account ON ledger_entries (tenant_id, account);

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only; correct by a reversing journal';
END
$$;

CREATE TRIGGER ledger_journals_no_update_or_delete BEFORE UPDATE OR DELETE ON ledger_journals
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_journals_no_truncate BEFORE TRUNCATE ON ledger_journals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_no_update_or_delete BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
