-- Energy recommendations (issue #7, C3): one row per recommendation, with its expected savings,
-- decision and the machine command it became.

CREATE TABLE energy_recommendations (
    id                    BLOB    PRIMARY KEY NOT NULL, -- UUIDv7: time-ordered
    machine_id            TEXT    NOT NULL,
    site                  TEXT    NOT NULL, -- the machine's site when it was proposed
    action                TEXT    NOT NULL CHECK (action IN ('standby', 'load_reduction', 'shift_off_peak')),
    status                TEXT    NOT NULL CHECK (status IN ('proposed', 'accepted', 'dismissed', 'expired')),
    expected_kwh_saved    REAL    NOT NULL,
    expected_cost_saved   REAL    NOT NULL,
    expected_co2_kg_saved REAL    NOT NULL,
    reason                TEXT    NOT NULL,
    created_at            TEXT    NOT NULL,
    expires_at            TEXT    NOT NULL,
    decided_at            TEXT,
    decided_by            TEXT,
    command_id            BLOB,
    command_state         TEXT    CHECK (command_state IN ('pending', 'sent'))
) STRICT;

-- At most one proposed recommendation per machine and action, whatever writes them.
CREATE UNIQUE INDEX energy_recommendations_one_open ON energy_recommendations (machine_id, action)
    WHERE status = 'proposed';
CREATE INDEX energy_recommendations_by_site ON energy_recommendations (site, id);
CREATE INDEX energy_recommendations_by_status ON energy_recommendations (status, expires_at);
