-- Users, API keys and generated secrets (D1-D3).

CREATE TABLE users (
    id                   uuid        PRIMARY KEY,
    username             text        NOT NULL UNIQUE,
    role                 text        NOT NULL CHECK (role IN ('admin', 'supervisor', 'operator', 'viewer')),
    password_hash        text        NOT NULL,
    disabled             boolean     NOT NULL DEFAULT false,
    must_change_password boolean     NOT NULL DEFAULT false,
    -- Access tokens issued before this instant are refused.
    password_changed_at  timestamptz NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY,
    prefix       text        NOT NULL UNIQUE,
    secret_hash  bytea       NOT NULL,
    name         text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('admin', 'supervisor', 'operator', 'viewer')),
    created_by   uuid        REFERENCES users (id),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE secrets (
    name       text        PRIMARY KEY,
    value      bytea       NOT NULL,
    created_at timestamptz NOT NULL
);
