-- SAML upstream providers (issue 12). The IdP posts its Response cross-site, so the browser's SameSite
-- cookie is not sent with it: the Response is held here, sealed under the master key and bound to
-- the login, until the same browser comes back on pforte's own origin. One per login: a second
-- Response to the same AuthnRequest (InResponseTo used twice) finds the slot taken.
ALTER TABLE login_transactions ADD COLUMN upstream_answer_sealed TEXT;

-- Assertion ids already consumed, per provider, kept until the assertion could no longer be valid:
-- a replayed assertion is refused even inside a new login.
CREATE TABLE saml_assertion_ids (
    provider_id       TEXT NOT NULL,
    assertion_id_hash TEXT NOT NULL,
    expires_at        BIGINT NOT NULL,
    PRIMARY KEY (provider_id, assertion_id_hash)
);
CREATE INDEX saml_assertion_ids_expiry ON saml_assertion_ids (expires_at);
