-- Finance staff in the browser. A session is named by the SHA-256 of the random id in the browser's
-- cookie (the id itself is never stored); it ends on logout (ended_at), after finance.session_idle_secs
-- without a request (last_seen_at) and after finance.session_max_secs in all (created_at).
CREATE TABLE finance_sessions (
    session_hash  TEXT PRIMARY KEY NOT NULL,
    staff_id      TEXT NOT NULL,           -- provider/subject of a staff sign-in, or the ftk_ id of a token
    display_name  TEXT NOT NULL,           -- what the page shows: a name, or the subject
    tenants       TEXT NOT NULL,           -- the tenant ids this session may act for, comma-separated
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    ended_at      BIGINT
);

-- Staff sign-ins in flight at the authority's identity provider: keyed by the SHA-256 of the OAuth
-- state, bound to the browser by the SHA-256 of its pre-session cookie, used once. The flow (PKCE
-- verifier, nonce) is sealed under the master key.
CREATE TABLE finance_staff_logins (
    state_hash    TEXT PRIMARY KEY NOT NULL,
    browser_hash  TEXT NOT NULL,
    provider_id   TEXT NOT NULL,
    flow_sealed   TEXT NOT NULL,
    expires_at    BIGINT NOT NULL
);
