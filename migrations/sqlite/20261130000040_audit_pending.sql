-- Audit events waiting to be chained (issue 13). A request inserts its event here in its own
-- transaction, without the chain lock; the chainer (`audit::chainer`) moves committed events into
-- `audit_log` in id order, and deletes them here in the same transaction. Ids only order the events:
-- a lower id that commits late is chained in a later batch, never skipped (the chainer takes every
-- row present, not ids above a mark).
CREATE TABLE audit_pending (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at BIGINT NOT NULL,           -- milliseconds since the epoch, as in audit_log
    event       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL
);
