-- Users, API keys and generated secrets (D1-D3).
-- STRICT tables: SQLite enforces the declared column types like the other backends do.

CREATE TABLE users (
    id                   BLOB    PRIMARY KEY NOT NULL,
    username             TEXT    NOT NULL UNIQUE,
    role                 TEXT    NOT NULL CHECK (role IN ('admin', 'supervisor', 'operator', 'viewer')),
    password_hash        TEXT    NOT NULL,
    disabled             INTEGER NOT NULL DEFAULT 0,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    -- Access tokens issued before this instant are refused.
    password_changed_at  TEXT    NOT NULL,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    secret_hash  BLOB NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'operator', 'viewer')),
    created_by   BLOB REFERENCES users (id),
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;

CREATE TABLE secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    value      BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
