-- When a signing key starts signing. A scheduled rotation publishes the new key first and lets it sign
-- only from this time on, so the JWKS caches of online services know it before they meet it. NULL
-- (rows written before this column, or by an older instance during a rolling upgrade) means from
-- created_at.
ALTER TABLE signing_keys ADD COLUMN active_from BIGINT;
UPDATE signing_keys SET active_from = created_at;
