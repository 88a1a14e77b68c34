-- Confidence gates (issue #7, E5): the approval queue and the agents' decision log. Times are
-- whole microseconds since the Unix epoch, so that expiry comparisons are exact.

CREATE TABLE approvals (
    id             BLOB    PRIMARY KEY NOT NULL, -- UUIDv7: time-ordered
    kind           TEXT    NOT NULL,
    site           TEXT    NOT NULL,
    machine_id     TEXT,
    summary        TEXT    NOT NULL,
    payload        TEXT    NOT NULL, -- JSON text, for the executor
    confidence     REAL    NOT NULL,
    amount_minor   INTEGER,
    command        TEXT,
    requested_by   TEXT    NOT NULL,
    reasons        TEXT    NOT NULL, -- JSON array of the hold reasons
    threshold      REAL    NOT NULL,
    created_at_us  INTEGER NOT NULL,
    expires_at_us  INTEGER NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    answered_by    TEXT,
    answered_at_us INTEGER,
    answer_reason  TEXT,
    decision_id    BLOB
) STRICT;

CREATE INDEX approvals_by_site ON approvals (site, id);
CREATE INDEX approvals_pending_by_expiry ON approvals (expires_at_us) WHERE status = 'pending';

CREATE TABLE agent_decisions (
    id          BLOB    PRIMARY KEY NOT NULL, -- UUIDv7
    agent       TEXT    NOT NULL,
    site        TEXT    NOT NULL,
    machine_id  TEXT,
    inputs      TEXT    NOT NULL, -- the inputs in short, JSON text
    action      TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    confidence  REAL    NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('executed', 'held', 'rejected', 'failed')),
    approval_id BLOB,
    ticket_id   BLOB,
    alert_id    BLOB,
    at_us       INTEGER NOT NULL
) STRICT;

CREATE INDEX agent_decisions_by_agent ON agent_decisions (agent, id);
CREATE INDEX agent_decisions_by_time ON agent_decisions (at_us);
