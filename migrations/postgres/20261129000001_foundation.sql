-- Signing keys for pforte's own tokens. The private key is a JWE (dir + A256GCM) under the master key.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY NOT NULL,
    alg           TEXT NOT NULL,
    private_jwe   TEXT NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    retired_at    BIGINT,
    publish_until BIGINT
);
CREATE INDEX signing_keys_alg_active ON signing_keys (alg, retired_at, created_at);

-- Append-only, hash-chained record of security-relevant events. Rows are never updated or deleted;
-- `seq` is assigned as previous + 1, so two writers racing for the same position collide on the key.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY NOT NULL,
    recorded_at BIGINT NOT NULL,
    event       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
