-- Device credentials for the embedded MQTT broker: one user per device, its secret stored as a
-- SHA-256 hash. Names are never reused (revoked devices keep theirs).

CREATE TABLE devices (
    id                BLOB PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL UNIQUE,
    machine           TEXT,
    site              TEXT,
    secret_hash       BLOB NOT NULL,
    created_by        BLOB REFERENCES users (id),
    created_at        TEXT NOT NULL,
    last_connected_at TEXT,
    revoked_at        TEXT
) STRICT;
