-- The machines registry (A1).

CREATE TABLE machines (
    id                  text             PRIMARY KEY,
    name                text             NOT NULL,
    machine_type        text             NOT NULL,
    machine_class       text,
    site                text             NOT NULL,
    area                text,
    line                text,
    cell                text,
    status              text             NOT NULL,
    active              boolean          NOT NULL,
    sensors             text             NOT NULL, -- JSON array of sensor specs
    last_maintenance    timestamptz,
    next_maintenance    timestamptz,
    health_score        double precision,
    failure_probability double precision,
    rul_hours           double precision,
    created_at          timestamptz      NOT NULL,
    updated_at          timestamptz      NOT NULL
);

CREATE INDEX machines_by_site ON machines (site, area, line, cell);
