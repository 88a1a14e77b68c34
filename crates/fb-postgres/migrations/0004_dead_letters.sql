-- Refused payloads and readings, kept for inspection and replay (A3).

CREATE TABLE dead_letters (
    id           uuid        PRIMARY KEY, -- UUIDv7: time-ordered
    received_at  timestamptz NOT NULL,
    source       text        NOT NULL,
    code         text        NOT NULL,
    reason       text        NOT NULL,
    payload      bytea       NOT NULL,
    content_type text        NOT NULL,
    replayed_at  timestamptz
);

CREATE INDEX dead_letters_by_code ON dead_letters (code, id);
