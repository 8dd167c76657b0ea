-- Files the finance office imported for reconciliation: provider settlement reports and bank statements.
-- One header row per file; a file's content hash is unique per tenant and kind, so the same file twice
-- imports nothing new. Rows are never updated; amounts are exact decimal text, dates YYYY-MM-DD.
CREATE TABLE finance_imports (
    import_id      TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    kind           TEXT NOT NULL,          -- settlement | bank
    provider_id    TEXT,                   -- the provider of a settlement report
    content_sha256 TEXT NOT NULL,
    file_name      TEXT NOT NULL,
    row_count      BIGINT NOT NULL,
    imported_at    BIGINT NOT NULL,
    imported_by    TEXT NOT NULL,
    UNIQUE (tenant_id, kind, content_sha256)
);

-- One row per transaction of a settlement report; a refund's gross amount is negative.
CREATE TABLE settlement_rows (
    import_id            TEXT NOT NULL REFERENCES finance_imports (import_id),
    line                 BIGINT NOT NULL,
    tenant_id            TEXT NOT NULL,
    provider_id          TEXT NOT NULL,
    provider_transaction TEXT NOT NULL,
    kind                 TEXT NOT NULL,    -- payment | refund
    gross                TEXT NOT NULL,
    fee                  TEXT NOT NULL,
    payout_reference     TEXT NOT NULL,
    booked_on            TEXT NOT NULL,
    PRIMARY KEY (import_id, line)
);
CREATE INDEX settlement_rows_by_date ON settlement_rows (tenant_id, booked_on);
CREATE INDEX settlement_rows_by_transaction ON settlement_rows (provider_id, provider_transaction);

-- One booked entry of a bank statement (camt.053) or notification (camt.054); debits are negative.
CREATE TABLE bank_entries (
    import_id       TEXT NOT NULL REFERENCES finance_imports (import_id),
    position        BIGINT NOT NULL,
    tenant_id       TEXT NOT NULL,
    message         TEXT NOT NULL,         -- camt.053 | camt.054
    account_iban    TEXT NOT NULL,
    statement_id    TEXT NOT NULL,
    entry_reference TEXT NOT NULL,
    amount          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    booked_on       TEXT NOT NULL,
    value_on        TEXT,
    remittance      TEXT NOT NULL,
    PRIMARY KEY (import_id, position)
);
CREATE INDEX bank_entries_by_date ON bank_entries (tenant_id, booked_on);
