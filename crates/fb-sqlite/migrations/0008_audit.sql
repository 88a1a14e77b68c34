-- The audit log (D5): one row per audited action, each chained to the one before it by hash
-- (see fb-core's `audit` module for the hash), and the chain's head kept apart so that deleting
-- the newest rows shows.
--
-- Append-only: the triggers below refuse to change or delete a record, or to move the head
-- back. They stop mistakes, not an attacker with write access to this file (who can drop them);
-- `factorybrain audit verify` finds what such a person changed, and an anchor kept outside the
-- store (`factorybrain audit head`) finds even a rewritten chain.

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY NOT NULL, -- 1, 2, 3 … without gaps: the chain's order
    at_micros INTEGER NOT NULL,             -- Unix microseconds, UTC (what the hash covers)
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT,
    outcome   TEXT    NOT NULL,
    op_id     TEXT    NOT NULL,
    source    TEXT    NOT NULL,
    details   TEXT    NOT NULL,             -- JSON object of strings
    prev_hash BLOB    NOT NULL,
    hash      BLOB    NOT NULL
) STRICT;

CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_by_action ON audit_log (action, seq);
CREATE INDEX audit_log_by_target ON audit_log (target, seq);
CREATE INDEX audit_log_by_time ON audit_log (at_micros);

-- Exactly one row: the newest record's seq and hash; (0, 32 zero bytes) while the log is empty.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL
) STRICT;

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head cannot be deleted');
END;

CREATE TRIGGER audit_head_only_forward BEFORE UPDATE ON audit_head
WHEN NEW.seq < OLD.seq
BEGIN
    SELECT RAISE(ABORT, 'audit_head cannot move back');
END;
