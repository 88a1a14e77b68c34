-- The machines registry (A1).

CREATE TABLE machines (
    id                  TEXT    PRIMARY KEY NOT NULL,
    name                TEXT    NOT NULL,
    machine_type        TEXT    NOT NULL,
    machine_class       TEXT,
    site                TEXT    NOT NULL,
    area                TEXT,
    line                TEXT,
    cell                TEXT,
    status              TEXT    NOT NULL,
    active              INTEGER NOT NULL,
    sensors             TEXT    NOT NULL, -- JSON array of sensor specs
    last_maintenance    TEXT,
    next_maintenance    TEXT,
    health_score        REAL,
    failure_probability REAL,
    rul_hours           REAL,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
) STRICT;

CREATE INDEX machines_by_site ON machines (site, area, line, cell);
