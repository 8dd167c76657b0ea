-- One login, from the authorization request to the redemption of its code. pforte keeps no user
-- profiles: the identity lives only in `identity_sealed` (encrypted under the master key) from the
-- upstream callback until the code is redeemed, and the row itself is purged once it expires.
CREATE TABLE login_transactions (
    id                  TEXT PRIMARY KEY NOT NULL,
    client_id           TEXT NOT NULL,
    -- The validated authorization request as JSON: redirect URI, state, nonce, PKCE challenge, scopes,
    -- required level. Protocol values only, no personal data.
    request             TEXT NOT NULL,
    -- SHA-256 of the browser-binding cookie: the callback must arrive in the browser that started.
    browser_hash        TEXT NOT NULL,
    provider_id         TEXT,
    -- SHA-256 of the state sent upstream, to find the login when the provider answers.
    upstream_state_hash TEXT UNIQUE,
    upstream_sealed     TEXT,
    identity_sealed     TEXT,
    code_hash           TEXT UNIQUE,
    code_expires_at     BIGINT,
    redeemed_at         BIGINT,
    -- Tokens issued from the code, revoked if the code is ever presented again.
    access_jti          TEXT,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL
);
CREATE INDEX login_transactions_expiry ON login_transactions (expires_at);

-- Pushed authorization requests (RFC 9126): single use, bound to the client, short-lived.
CREATE TABLE par_requests (
    request_uri_hash TEXT PRIMARY KEY NOT NULL,
    client_id        TEXT NOT NULL,
    parameters       TEXT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT
);
CREATE INDEX par_requests_expiry ON par_requests (expires_at);

-- `jti` values of client assertions seen, so none is accepted twice while it could still be valid.
CREATE TABLE client_assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expiry ON client_assertion_jtis (expires_at);

-- Access tokens revoked before their expiry (RFC 7009, code replay).
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
