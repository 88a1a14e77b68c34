-- The model registry (issue #6): trained models with their metadata and opaque payload, in lines
-- of versions per kind and machine type.
--
-- A line's row holds its version counter and its current activation: the one place that says
-- which model is active, so there is never more than one. Inserts and activations update the
-- line's row first, which locks it until commit and so serialises them per line on every node
-- (the version is the counter after the update). Every activation remembers the activation a
-- rollback returns to.

CREATE TABLE models (
    id             uuid        PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('rul', 'failure')),
    machine_type   text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    format         text        NOT NULL,
    created_at     timestamptz NOT NULL,
    created_by     text        NOT NULL,
    data_hash      text        NOT NULL,
    -- JSON array of strings, in the model's order.
    features       text        NOT NULL,
    -- JSON object of name -> the number in Rust's shortest round-trip text, read back exactly.
    metrics        text        NOT NULL,
    -- JSON object of name -> text.
    params         text        NOT NULL,
    note           text,
    payload_bytes  bigint      NOT NULL,
    payload_sha256 text        NOT NULL,
    -- Stored out of line (TOAST): reading the metadata never reads it.
    payload        bytea       NOT NULL,
    UNIQUE (kind, machine_type, version)
);

CREATE TABLE model_activations (
    id           uuid        PRIMARY KEY,
    kind         text        NOT NULL,
    machine_type text        NOT NULL,
    seq          bigint      NOT NULL,
    model_id     uuid        NOT NULL REFERENCES models (id),
    action       text        NOT NULL CHECK (action IN ('promote', 'rollback')),
    activated_at timestamptz NOT NULL,
    activated_by text        NOT NULL,
    rollback_to  uuid        REFERENCES model_activations (id),
    UNIQUE (kind, machine_type, seq)
);

CREATE TABLE model_lines (
    kind               text    NOT NULL,
    machine_type       text    NOT NULL,
    last_version       bigint  NOT NULL,
    activations        bigint  NOT NULL,
    current_activation uuid    REFERENCES model_activations (id),
    PRIMARY KEY (kind, machine_type)
);
