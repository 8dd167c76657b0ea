-- Refused attempts (a wrong finance token or staff session, a wrong provider callback signature, a
-- failed staff sign-in), counted per hour outside the audit chain (SECURITY.md #32): anyone can cause
-- them, so each one may not add an undeletable chain row under the chain's lock. One row per event,
-- subject (a registered tenant or provider, else 'unregistered'), reason and hour, upserted; the
-- number of rows is bounded by the registry, not by the attacker.
CREATE TABLE refused_attempts (
    event       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    hour_start  BIGINT NOT NULL,           -- milliseconds since the epoch, a multiple of 3600000
    attempts    BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    PRIMARY KEY (event, subject, reason, hour_start)
);
