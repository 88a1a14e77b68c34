-- Confidence gates (issue #7, E5, PostgreSQL): the approval queue and the agents' decision log. Times are
-- whole microseconds since the Unix epoch, so that expiry comparisons are exact.

CREATE TABLE approvals (
    id             uuid    PRIMARY KEY, -- UUIDv7: time-ordered
    kind           text    NOT NULL,
    site           text    NOT NULL,
    machine_id     text,
    summary        text    NOT NULL,
    payload        text    NOT NULL, -- JSON text, for the executor
    confidence     double precision NOT NULL,
    amount_minor   bigint,
    command        text,
    requested_by   text    NOT NULL,
    reasons        text    NOT NULL, -- JSON array of the hold reasons
    threshold      double precision NOT NULL,
    created_at_us  bigint  NOT NULL,
    expires_at_us  bigint  NOT NULL,
    status         text    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    answered_by    text,
    answered_at_us bigint,
    answer_reason  text,
    decision_id    uuid
);

CREATE INDEX approvals_by_site ON approvals (site, id);
CREATE INDEX approvals_pending_by_expiry ON approvals (expires_at_us) WHERE status = 'pending';

CREATE TABLE agent_decisions (
    id          uuid    PRIMARY KEY, -- UUIDv7
    agent       text    NOT NULL,
    site        text    NOT NULL,
    machine_id  text,
    inputs      text    NOT NULL, -- the inputs in short, JSON text
    action      text    NOT NULL,
    reason      text    NOT NULL,
    confidence  double precision NOT NULL,
    outcome     text    NOT NULL CHECK (outcome IN ('executed', 'held', 'rejected', 'failed')),
    approval_id uuid,
    ticket_id   uuid,
    alert_id    uuid,
    at_us       bigint  NOT NULL
);

CREATE INDEX agent_decisions_by_agent ON agent_decisions (agent, id);
CREATE INDEX agent_decisions_by_time ON agent_decisions (at_us);
