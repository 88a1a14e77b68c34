-- Energy recommendations (issue #7, C3): one row per recommendation, with its expected savings,
-- decision and the machine command it became.

CREATE TABLE energy_recommendations (
    id                    uuid             PRIMARY KEY, -- UUIDv7: time-ordered
    machine_id            text             NOT NULL,
    site                  text             NOT NULL, -- the machine's site when it was proposed
    action                text             NOT NULL CHECK (action IN ('standby', 'load_reduction', 'shift_off_peak')),
    status                text             NOT NULL CHECK (status IN ('proposed', 'accepted', 'dismissed', 'expired')),
    expected_kwh_saved    double precision NOT NULL,
    expected_cost_saved   double precision NOT NULL,
    expected_co2_kg_saved double precision NOT NULL,
    reason                text             NOT NULL,
    created_at            timestamptz      NOT NULL,
    expires_at            timestamptz      NOT NULL,
    decided_at            timestamptz,
    decided_by            text,
    command_id            uuid,
    command_state         text             CHECK (command_state IN ('pending', 'sent'))
);

-- At most one proposed recommendation per machine and action, whatever node writes them.
CREATE UNIQUE INDEX energy_recommendations_one_open ON energy_recommendations (machine_id, action)
    WHERE status = 'proposed';
CREATE INDEX energy_recommendations_by_site ON energy_recommendations (site, id);
CREATE INDEX energy_recommendations_by_status ON energy_recommendations (status, expires_at);
