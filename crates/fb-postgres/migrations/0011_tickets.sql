-- Maintenance tickets (issue #7, C1): one row per ticket, with its repair steps, history and
-- linked alert ids as JSON text, and one row per linked alert in ticket_alerts.

CREATE TABLE tickets (
    id                  uuid        PRIMARY KEY, -- UUIDv7: time-ordered
    machine_id          text        NOT NULL,
    site                text        NOT NULL, -- the machine's site when the ticket was opened
    title               text        NOT NULL,
    description         text        NOT NULL,
    failure_type        text        NOT NULL,
    priority            text        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
    assignee            text,
    reporter            text        NOT NULL,
    steps               text        NOT NULL, -- JSON array of {text, done, done_by?, done_at?}
    cost_estimate_minor bigint      CHECK (cost_estimate_minor >= 0),
    actual_cost_minor   bigint      CHECK (actual_cost_minor >= 0),
    alert_ids           text        NOT NULL, -- JSON array of alert ids, oldest first
    created_at          timestamptz NOT NULL,
    started_at          timestamptz,
    resolved_at         timestamptz,
    closed_at           timestamptz,
    history             text        NOT NULL, -- JSON array of {action, by, at, comment?}
    version             bigint      NOT NULL,
    updated_at          timestamptz NOT NULL
);

-- At most one open or in-progress ticket per machine and failure type, whatever node writes them.
CREATE UNIQUE INDEX tickets_one_active ON tickets (machine_id, failure_type)
    WHERE status IN ('open', 'in_progress');
CREATE INDEX tickets_by_machine ON tickets (machine_id, created_at);
CREATE INDEX tickets_by_site ON tickets (site, id);
CREATE INDEX tickets_by_status ON tickets (status, id);

-- An alert is linked to one ticket at most.
CREATE TABLE ticket_alerts (
    alert_id  uuid PRIMARY KEY,
    ticket_id uuid NOT NULL REFERENCES tickets (id)
);

CREATE INDEX ticket_alerts_by_ticket ON ticket_alerts (ticket_id);
