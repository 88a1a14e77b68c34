-- The model registry (issue #6): trained models with their metadata and opaque payload, in lines
-- of versions per kind and machine type.
--
-- A line's row holds its version counter and its current activation: the one place that says
-- which model is active, so there is never more than one. Inserts and activations update the
-- line's row first, which serialises them per line on every node (the version is the counter
-- after the update). Every activation remembers the activation a rollback returns to.

CREATE TABLE models (
    id             BLOB PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('rul', 'failure')),
    machine_type   TEXT NOT NULL,
    version        INTEGER NOT NULL CHECK (version > 0),
    format         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    data_hash      TEXT NOT NULL,
    -- JSON array of strings, in the model's order.
    features       TEXT NOT NULL,
    -- JSON object of name -> the number in Rust's shortest round-trip text, read back exactly.
    metrics        TEXT NOT NULL,
    -- JSON object of name -> text.
    params         TEXT NOT NULL,
    note           TEXT,
    payload_bytes  INTEGER NOT NULL,
    payload_sha256 TEXT NOT NULL,
    -- Last, so that reading the metadata never touches the payload's overflow pages.
    payload        BLOB NOT NULL,
    UNIQUE (kind, machine_type, version)
) STRICT;

CREATE TABLE model_activations (
    id           BLOB PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    machine_type TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    model_id     BLOB NOT NULL REFERENCES models (id),
    action       TEXT NOT NULL CHECK (action IN ('promote', 'rollback')),
    activated_at TEXT NOT NULL,
    activated_by TEXT NOT NULL,
    rollback_to  BLOB REFERENCES model_activations (id),
    UNIQUE (kind, machine_type, seq)
) STRICT;

CREATE TABLE model_lines (
    kind               TEXT NOT NULL,
    machine_type       TEXT NOT NULL,
    last_version       INTEGER NOT NULL,
    activations        INTEGER NOT NULL,
    current_activation BLOB REFERENCES model_activations (id),
    PRIMARY KEY (kind, machine_type)
) STRICT;
