-- Detection and alerts (B2, B3): alerts with their lifecycle, anomalies with their evidence,
-- and the anomaly score of every reading, kept as segments like the readings themselves.

CREATE TABLE alerts (
    id               BLOB    PRIMARY KEY NOT NULL, -- UUIDv7: time-ordered
    machine_id       TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    title            TEXT    NOT NULL,
    evidence         TEXT    NOT NULL, -- JSON array of {name, value}
    opened_at        TEXT    NOT NULL,
    last_seen_at     TEXT    NOT NULL,
    occurrences      INTEGER NOT NULL,
    ack_by           TEXT,
    ack_at           TEXT,
    ack_comment      TEXT,
    resolved_by      TEXT,
    resolved_at      TEXT,
    resolved_comment TEXT,
    escalation_level INTEGER NOT NULL,
    escalated_at     TEXT,
    version          INTEGER NOT NULL,
    updated_at       TEXT    NOT NULL
) STRICT;

-- At most one open or acknowledged alert per machine and kind, whatever writes them.
CREATE UNIQUE INDEX alerts_one_active ON alerts (machine_id, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_by_machine ON alerts (machine_id, id);
CREATE INDEX alerts_by_status ON alerts (status, id);

CREATE TABLE anomalies (
    id         BLOB PRIMARY KEY NOT NULL, -- UUIDv7
    machine_id TEXT NOT NULL,
    sensor_key TEXT,
    kind       TEXT NOT NULL,
    detector   TEXT NOT NULL,
    severity   TEXT NOT NULL,
    at         TEXT NOT NULL,
    score      REAL NOT NULL,
    evidence   TEXT NOT NULL
) STRICT;

CREATE INDEX anomalies_by_machine ON anomalies (machine_id, at);

-- Like segments: data holds count samples of 16 bytes, (ts: i64, score: f32, flags: u32)
-- little-endian, ts ascending; flag bit 0 is "anomaly".
CREATE TABLE score_segments (
    series INTEGER NOT NULL,
    chunk  INTEGER NOT NULL,
    first  INTEGER NOT NULL,
    last   INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    data   BLOB    NOT NULL
) STRICT;

CREATE INDEX score_segments_by_span ON score_segments (series, chunk, last, first);
