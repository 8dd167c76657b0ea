-- Refresh token families (OAuth 2.0 Security BCP §4.14: rotation with reuse detection). The token
-- itself is a JWE under the master key carrying the identity, so no personal data is stored here:
-- only which token of the family is current and until when the family may be used.
CREATE TABLE refresh_families (
    family_id   TEXT PRIMARY KEY NOT NULL,
    client_id   TEXT NOT NULL,
    current_jti TEXT NOT NULL,
    -- The end of the session (auth_time + longest session for the level) and of the idle period.
    session_ends_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX refresh_families_expiry ON refresh_families (expires_at);

-- The refresh family issued from a code, revoked if the code is ever presented again.
ALTER TABLE login_transactions ADD COLUMN refresh_family TEXT;
