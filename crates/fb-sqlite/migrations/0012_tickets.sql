-- Maintenance tickets (issue #7, C1): one row per ticket, with its repair steps, history and
-- linked alert ids as JSON text, and one row per linked alert in ticket_alerts.

CREATE TABLE tickets (
    id                  BLOB    PRIMARY KEY NOT NULL, -- UUIDv7: time-ordered
    machine_id          TEXT    NOT NULL,
    site                TEXT    NOT NULL, -- the machine's site when the ticket was opened
    title               TEXT    NOT NULL,
    description         TEXT    NOT NULL,
    failure_type        TEXT    NOT NULL,
    priority            TEXT    NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
    assignee            TEXT,
    reporter            TEXT    NOT NULL,
    steps               TEXT    NOT NULL, -- JSON array of {text, done, done_by?, done_at?}
    cost_estimate_minor INTEGER CHECK (cost_estimate_minor >= 0),
    actual_cost_minor   INTEGER CHECK (actual_cost_minor >= 0),
    alert_ids           TEXT    NOT NULL, -- JSON array of alert ids, oldest first
    created_at          TEXT    NOT NULL,
    started_at          TEXT,
    resolved_at         TEXT,
    closed_at           TEXT,
    history             TEXT    NOT NULL, -- JSON array of {action, by, at, comment?}
    version             INTEGER NOT NULL,
    updated_at          TEXT    NOT NULL
) STRICT;

-- At most one open or in-progress ticket per machine and failure type, whatever writes them.
CREATE UNIQUE INDEX tickets_one_active ON tickets (machine_id, failure_type)
    WHERE status IN ('open', 'in_progress');
CREATE INDEX tickets_by_machine ON tickets (machine_id, created_at);
CREATE INDEX tickets_by_site ON tickets (site, id);
CREATE INDEX tickets_by_status ON tickets (status, id);

-- An alert is linked to one ticket at most.
CREATE TABLE ticket_alerts (
    alert_id  BLOB PRIMARY KEY NOT NULL,
    ticket_id BLOB NOT NULL REFERENCES tickets (id)
) STRICT;

CREATE INDEX ticket_alerts_by_ticket ON ticket_alerts (ticket_id);
