-- Device credentials for the embedded MQTT broker: one user per device, its secret stored as a
-- SHA-256 hash. Names are never reused (revoked devices keep theirs).

CREATE TABLE devices (
    id                uuid        PRIMARY KEY,
    name              text        NOT NULL UNIQUE,
    machine           text,
    site              text,
    secret_hash       bytea       NOT NULL,
    created_by        uuid        REFERENCES users (id),
    created_at        timestamptz NOT NULL,
    last_connected_at timestamptz,
    revoked_at        timestamptz
);
