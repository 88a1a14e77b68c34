-- Refused payloads and readings, kept for inspection and replay (A3).

CREATE TABLE dead_letters (
    id           BLOB PRIMARY KEY NOT NULL, -- UUIDv7: time-ordered
    received_at  TEXT NOT NULL,
    source       TEXT NOT NULL,
    code         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    payload      BLOB NOT NULL,
    content_type TEXT NOT NULL,
    replayed_at  TEXT
) STRICT;

CREATE INDEX dead_letters_by_code ON dead_letters (code, id);
