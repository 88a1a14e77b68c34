-- Login sessions with rotating refresh tokens, and users' second factor (D1).
-- Times that SQL compares are compared in the application, not in SQL: they are stored as text.

CREATE TABLE sessions (
    id           BLOB    PRIMARY KEY NOT NULL,
    user_id      BLOB    NOT NULL REFERENCES users (id),
    created_at   TEXT    NOT NULL,
    refreshed_at TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    mfa          INTEGER NOT NULL DEFAULT 0,
    client       TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    ended_at     TEXT,
    end_reason   TEXT
) STRICT;

-- Ids are UUIDv7: (user_id, id) lists a user's sessions newest first.
CREATE INDEX sessions_by_user ON sessions (user_id, id);

-- Only hashes of refresh tokens; each is used once (used_at), which is how reuse is detected.
CREATE TABLE refresh_tokens (
    token_hash BLOB    PRIMARY KEY NOT NULL,
    session_id BLOB    NOT NULL REFERENCES sessions (id),
    generation INTEGER NOT NULL,
    issued_at  TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    used_at    TEXT
) STRICT;

CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- TOTP (RFC 6238): the shared secret, when it was confirmed, and the last accepted time step
-- (a code is never accepted twice).
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN totp_enabled_at TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;

-- One-time recovery codes, hashed (80-bit random codes: SHA-256 is enough).
CREATE TABLE recovery_codes (
    user_id    BLOB NOT NULL REFERENCES users (id),
    code_hash  BLOB NOT NULL,
    created_at TEXT NOT NULL,
    used_at    TEXT,
    PRIMARY KEY (user_id, code_hash)
) STRICT;
