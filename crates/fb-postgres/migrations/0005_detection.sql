-- Detection and alerts (B2, B3): alerts with their lifecycle, anomalies with their evidence,
-- and the anomaly score of every reading, partitioned by day like the readings.

CREATE TABLE alerts (
    id               uuid        PRIMARY KEY, -- UUIDv7: time-ordered
    machine_id       text        NOT NULL,
    kind             text        NOT NULL,
    severity         text        NOT NULL,
    status           text        NOT NULL,
    title            text        NOT NULL,
    evidence         text        NOT NULL, -- JSON array of {name, value}
    opened_at        timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    occurrences      bigint      NOT NULL,
    ack_by           text,
    ack_at           timestamptz,
    ack_comment      text,
    resolved_by      text,
    resolved_at      timestamptz,
    resolved_comment text,
    escalation_level bigint      NOT NULL,
    escalated_at     timestamptz,
    version          bigint      NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- At most one open or acknowledged alert per machine and kind, whatever node writes them.
CREATE UNIQUE INDEX alerts_one_active ON alerts (machine_id, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_by_machine ON alerts (machine_id, id);
CREATE INDEX alerts_by_status ON alerts (status, id);

CREATE TABLE anomalies (
    id         uuid             PRIMARY KEY,
    machine_id text             NOT NULL,
    sensor_key text,
    kind       text             NOT NULL,
    detector   text             NOT NULL,
    severity   text             NOT NULL,
    at         timestamptz      NOT NULL,
    score      double precision NOT NULL,
    evidence   text             NOT NULL
);

CREATE INDEX anomalies_by_machine ON anomalies (machine_id, at);

CREATE TABLE reading_scores (
    series  bigint      NOT NULL,
    ts      timestamptz NOT NULL,
    score   real        NOT NULL,
    anomaly boolean     NOT NULL,
    PRIMARY KEY (series, ts)
) PARTITION BY RANGE (ts);
