-- Login sessions with rotating refresh tokens, and users' second factor (D1).

CREATE TABLE sessions (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL,
    refreshed_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    mfa          boolean     NOT NULL DEFAULT false,
    client       text        NOT NULL,
    source       text        NOT NULL,
    ended_at     timestamptz,
    end_reason   text
);

-- Ids are UUIDv7: (user_id, id) lists a user's sessions newest first.
CREATE INDEX sessions_by_user ON sessions (user_id, id);

-- Only hashes of refresh tokens; each is used once (used_at), which is how reuse is detected.
CREATE TABLE refresh_tokens (
    token_hash bytea       PRIMARY KEY,
    session_id uuid        NOT NULL REFERENCES sessions (id),
    generation bigint      NOT NULL,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- TOTP (RFC 6238): the shared secret, when it was confirmed, and the last accepted time step
-- (a code is never accepted twice).
ALTER TABLE users ADD COLUMN totp_secret bytea;
ALTER TABLE users ADD COLUMN totp_enabled_at timestamptz;
ALTER TABLE users ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0;

-- One-time recovery codes, hashed (80-bit random codes: SHA-256 is enough).
CREATE TABLE recovery_codes (
    user_id    uuid        NOT NULL REFERENCES users (id),
    code_hash  bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);
