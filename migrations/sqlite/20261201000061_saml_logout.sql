-- SAML Single Logout (issue 12 item 7). What a LogoutRequest for a SAML login names (NameID with its
-- qualifiers, SessionIndex), sealed under the master key and found by the hash of the login's `sid`
-- (a claim of pforte's ID token); deleted when the IdP answers the LogoutRequest for it, or by the
-- purge worker once the level's session limit is over.
CREATE TABLE saml_sessions (
    sid_hash    TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX saml_sessions_expiry ON saml_sessions (expires_at);

-- LogoutRequests sent and not yet answered: the LogoutResponse's InResponseTo must name one, once.
-- `return_sealed` is where the browser goes afterwards (the service's post_logout_redirect_uri);
-- `sid_hash` the session whose record the answer deletes.
CREATE TABLE saml_logout_requests (
    request_id_hash TEXT PRIMARY KEY,
    provider_id     TEXT NOT NULL,
    sid_hash        TEXT NOT NULL,
    return_sealed   TEXT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX saml_logout_requests_expiry ON saml_logout_requests (expires_at);
