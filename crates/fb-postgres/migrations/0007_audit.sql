-- The audit log (D5): one row per audited action, each chained to the one before it by hash
-- (see fb-core's `audit` module for the hash), and the chain's head kept apart so that deleting
-- the newest rows shows. Every node appends to this one chain: an append locks the head row.
--
-- Append-only: the triggers below refuse to change, delete or truncate records, or to move the
-- head back. They stop mistakes, not an attacker with owner rights (who can drop them);
-- `factorybrain audit verify` finds what such a person changed, and an anchor kept outside the
-- database (`factorybrain audit head`) finds even a rewritten chain. Deployments that want the
-- database to enforce it against the application role too can revoke its UPDATE, DELETE and
-- TRUNCATE rights on audit_log.

CREATE TABLE audit_log (
    seq       bigint PRIMARY KEY,  -- 1, 2, 3 … without gaps: the chain's order
    at_micros bigint NOT NULL,     -- Unix microseconds, UTC (what the hash covers)
    actor     text   NOT NULL,
    action    text   NOT NULL,
    target    text,
    outcome   text   NOT NULL,
    op_id     text   NOT NULL,
    source    text   NOT NULL,
    details   text   NOT NULL,     -- JSON object of strings
    prev_hash bytea  NOT NULL,
    hash      bytea  NOT NULL
);

CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_by_action ON audit_log (action, seq);
CREATE INDEX audit_log_by_target ON audit_log (target, seq);
CREATE INDEX audit_log_by_time ON audit_log (at_micros);

-- Exactly one row: the newest record's seq and hash; (0, 32 zero bytes) while the log is empty.
CREATE TABLE audit_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint  NOT NULL,
    hash bytea   NOT NULL
);

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is refused: the audit log is append-only', TG_OP, TG_TABLE_NAME;
END
$$;

CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'audit_head cannot move back';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_head_only_forward BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();
