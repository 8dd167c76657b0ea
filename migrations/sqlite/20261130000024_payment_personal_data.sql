-- Personal data of payments (SECURITY.md #24): the payer (`requestor`) and the free text `description`
-- leave `request` and `effective_request` and are kept here, encrypted under the master key (JWE whose
-- key id names the payment). SQL has no key, so rows written before this migration are encrypted by
-- pforte's retention worker (`payment::retention`): a row with neither column set is such a row.
ALTER TABLE payments ADD COLUMN personal_data TEXT;
-- Millis when the retention worker purged the personal data (then `personal_data` is NULL).
ALTER TABLE payments ADD COLUMN personal_data_purged_at BIGINT;
CREATE INDEX payments_personal_data_pending ON payments (endpoint_id, status, updated_at)
    WHERE personal_data_purged_at IS NULL;
